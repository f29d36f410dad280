"""Unit tests for imrstats.meta.bayes: priors, input checks, the diagnostics gate, tables, persistence.

Numbers are validated against exact posteriors in tests/validation/test_bayes_validation.py; these
tests check behaviour. One compiled model (shared_sampler) serves the whole session.
"""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from imrstats.errors import AnalysisError, InputError
from imrstats.meta import bayes
from imrstats.meta.bayes import (
    SHIPPED_TAU_PRIORS,
    HalfCauchy,
    HalfNormal,
    LogNormalTau2,
    LogTTau2,
    Normal,
    UniformTau,
    check_table_diagnostics,
    cumulative_bayes,
    prior_sensitivity,
    read_heterogeneity_priors,
    save_posterior,
    shared_sampler,
    tau_prior_from_spec,
)

Y = np.array([0.28, 0.36, 0.50, 0.10, 0.00, 0.30])
SE = np.array([0.14, 0.20, 0.32, 0.15, 0.11, 0.15])
LABELS = ["A", "B", "C", "D", "E", "F"]
QUICK = dict(draws=300, tune=300, chains=2)


@pytest.fixture(scope="module")
def sampler():
    return shared_sampler(capacity=8)


@pytest.fixture(scope="module")
def quick_fit(sampler):
    return sampler.fit(Y, SE, LABELS, prior_mu=Normal(0, 1), prior_tau=HalfNormal(0.5), mid=0.2, seed=3, **QUICK)


# --- priors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prior", [HalfNormal(0.5), HalfCauchy(0.5), LogNormalTau2(-2.34, 1.72), LogTTau2(-3.85, 1.93, 5), UniformTau(3.0)]
)
def test_tau_prior_density_integrates_to_one(prior):
    # integrate over log tau (density * tau) so the spike near 0 of the log-scale priors is resolved
    def density(s):  # on the log-tau scale; 0 beyond where exp(s) under/overflows
        with np.errstate(over="ignore", divide="ignore"):
            return math.exp(prior.logpdf_tau(math.exp(s)) + s) if -700 < s < 700 else 0.0

    total = integrate.quad(density, -math.inf, 0, limit=500)[0] + integrate.quad(density, 0, math.inf, limit=500)[0]
    assert total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: HalfNormal(0),
        lambda: HalfCauchy(-1),
        lambda: LogNormalTau2(-2, 0),
        lambda: LogTTau2(-2, 1, nu=0),
        lambda: Normal(0, float("nan")),
        lambda: UniformTau(0),
        lambda: UniformTau(math.inf),
    ],
)
def test_bad_prior_parameters_raise(make):
    with pytest.raises(InputError, match="finite positive"):
        make()


def test_tau_prior_from_spec_builds_each_family_and_rejects_unknown():
    assert tau_prior_from_spec("half_normal", 0, 0.5) == HalfNormal(0.5)
    assert tau_prior_from_spec("half_cauchy", 0, 1) == HalfCauchy(1.0)
    assert tau_prior_from_spec("lognormal_tau2", -2.34, 1.72) == LogNormalTau2(-2.34, 1.72)
    assert tau_prior_from_spec("log_t_tau2", -3.85, 1.93, nu=5) == LogTTau2(-3.85, 1.93, 5.0)
    assert tau_prior_from_spec("uniform", 0, 1000) == UniformTau(1000.0)
    with pytest.raises(InputError, match="unknown tau prior family 'gamma'"):
        tau_prior_from_spec("gamma", 1, 1)


def test_uniform_tau_prior_is_flat_inside_and_impossible_beyond_its_bound():
    prior = UniformTau(4.0)
    assert prior.logpdf_tau([0.1, 2.0, 3.99]) == pytest.approx([-math.log(4.0)] * 3)
    assert np.all(np.isneginf(prior.logpdf_tau([-1.0, 0.0, 4.0, 10.0])))
    assert prior.label() == "tau ~ Uniform(0, 4)"


def test_uniform_tau_prior_keeps_the_sampler_inside_the_bound(sampler):
    """A tight bound (0.05, well below where the likelihood puts tau) must bind: every draw below it."""
    fit = sampler.fit(Y, SE, LABELS, prior_mu=Normal(0, 1), prior_tau=UniformTau(0.05), seed=5, **QUICK)
    tau = np.asarray(fit.posterior["posterior"]["tau"].values)
    assert tau.max() < 0.05
    assert fit.prior_tau == "tau ~ Uniform(0, 0.05)"


def test_study_effects_are_drawn_from_their_exact_conditional():
    rng = np.random.default_rng(1)
    mu, tau = np.full((2, 50000), 0.3), np.full((2, 50000), 0.2)
    y, se = np.array([0.5, -0.1]), np.array([0.1, 0.4])
    theta = bayes.draw_study_effects(mu, tau, y, se, rng)
    assert theta.shape == (2, 50000, 2)
    shrink = se**2 / (se**2 + 0.2**2)
    expected_mean = shrink * 0.3 + (1 - shrink) * y
    expected_sd = np.sqrt((1 - shrink) * se**2)
    np.testing.assert_allclose(theta.mean(axis=(0, 1)), expected_mean, atol=5 * expected_sd.max() / np.sqrt(1e5))
    np.testing.assert_allclose(theta.std(axis=(0, 1)), expected_sd, rtol=0.02)
    # tau -> 0: every study effect is mu (complete pooling), without dividing by zero
    np.testing.assert_allclose(bayes.draw_study_effects(mu, np.zeros_like(tau), y, se, rng), 0.3)


def test_unknown_parameterization_is_refused():
    with pytest.raises(InputError, match="parameterization"):
        bayes.BayesMeta(parameterization="centred")


def test_shipped_priors_carry_citations_and_the_flagged_rhodes_value():
    for named in SHIPPED_TAU_PRIORS.values():
        assert named.citation
    flagged = SHIPPED_TAU_PRIORS["rhodes_mental_health_nonpharm"]
    assert flagged.prior == LogTTau2(-3.85, 1.93, 5.0)
    assert "-2.85" in flagged.note
    assert set(bayes.DEFAULT_SENSITIVITY_KEYS) <= set(SHIPPED_TAU_PRIORS)


def test_read_heterogeneity_priors_adapter(tmp_path):
    path = tmp_path / "priors.csv"
    pd.DataFrame(
        {
            "key": ["rhodes_x", "turner_y"],
            "distribution": ["log-Student-t, 5 df on log(tau^2)", "normal on log(tau^2) (log-normal)"],
            "location": [-3.85, -2.34],
            "scale": [1.93, 1.72],
            "source": ["Rhodes", "Turner"],
            "note": ["", "binary"],
        }
    ).to_csv(path, index=False)
    priors = read_heterogeneity_priors(path)
    assert priors["rhodes_x"].prior == LogTTau2(-3.85, 1.93, 5.0)
    assert priors["turner_y"].prior == LogNormalTau2(-2.34, 1.72)
    pd.DataFrame({"key": ["a"], "location": [1.0]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="missing"):
        read_heterogeneity_priors(path)


# --- input checks (raise before any sampling) ----------------------------------------------------


@pytest.mark.parametrize(
    "yi, sei, labels, error, match",
    [
        ([], [], None, AnalysisError, "no studies"),
        ([0.1, 0.2], [0.1], None, InputError, "one standard error per effect"),
        ([0.1, float("nan")], [0.1, 0.1], None, InputError, "missing or infinite"),
        ([0.1, 0.2], [0.1, 0.0], None, InputError, "finite and > 0"),
        ([0.1, 0.2], [0.1, 0.1], ["a"], InputError, "one label per study"),
        ([0.1, 0.2], [0.1, 0.1], ["a", "a"], InputError, "unique"),
    ],
)
def test_bad_inputs_raise_before_sampling(yi, sei, labels, error, match):
    with pytest.raises(error, match=match):
        bayes.BayesMeta().fit(yi, sei, labels)  # never compiles: checks come first


def test_bad_sampler_settings_raise(sampler):
    with pytest.raises(InputError, match="chains"):
        sampler.fit(Y, SE, chains=1)
    with pytest.raises(InputError, match="draws and tune"):
        sampler.fit(Y, SE, draws=10)
    with pytest.raises(InputError, match="prior_tau"):
        sampler.fit(Y, SE, prior_tau=Normal(0, 1))


# --- a fit ---------------------------------------------------------------------------------------


def test_fit_reports_every_quantity_with_its_method(quick_fit):
    quantities = list(quick_fit.estimates["quantity"])
    assert quantities[:3] == ["mu", "tau", "mu_new"]
    assert [f"theta[{lab}]" for lab in LABELS] == quantities[3:9]
    assert {"P(mu > 0)", "P(mu > 0.2)", "P(mu_new > 0)", "P(mu_new > 0.2)"} <= set(quantities)
    assert "equal-tailed" in quick_fit.method and "HalfNormal(0.5)" in quick_fit.method
    mu = quick_fit.estimates.set_index("quantity").loc["mu"]
    assert mu["ci_low"] < mu["estimate"] < mu["ci_high"]
    # the predictive interval of a new trial is wider than the interval of the mean
    new = quick_fit.estimates.set_index("quantity").loc["mu_new"]
    assert new["ci_high"] - new["ci_low"] > mu["ci_high"] - mu["ci_low"]
    # shrinkage: each theta lies between its own estimate and the pooled mean (or on it)
    eff = quick_fit.study_effects
    lo, hi = np.minimum(eff["yi"], mu["estimate"]), np.maximum(eff["yi"], mu["estimate"])
    assert np.all((eff["theta_mean"] >= lo - 0.02) & (eff["theta_mean"] <= hi + 0.02))


def test_same_seed_same_draws_other_seed_other_draws(sampler, quick_fit):
    again = sampler.fit(Y, SE, LABELS, prior_mu=Normal(0, 1), prior_tau=HalfNormal(0.5), mid=0.2, seed=3, **QUICK)
    other = sampler.fit(Y, SE, LABELS, prior_mu=Normal(0, 1), prior_tau=HalfNormal(0.5), mid=0.2, seed=4, **QUICK)
    mu = lambda r: r.posterior["posterior"]["mu"].values  # noqa: E731
    np.testing.assert_array_equal(mu(again), mu(quick_fit))
    assert not np.array_equal(mu(other), mu(quick_fit))


def test_to_dict_is_json_serialisable(quick_fit):
    payload = json.loads(json.dumps(quick_fit.to_dict()))
    assert payload["k"] == len(Y)
    assert payload["diagnostics"]["divergences"] == quick_fit.diagnostics.divergences
    assert payload["estimates"][0]["quantity"] == "mu"


# --- the diagnostics gate ------------------------------------------------------------------------


def test_check_diagnostics_names_parameter_and_criterion(quick_fit):
    bad = dataclasses.replace(
        quick_fit.diagnostics,
        max_rhat=1.05,
        max_rhat_parameter="tau",
        min_ess_bulk=120.0,
        min_ess_parameter="theta[C]",
        divergences=3,
    )
    result = dataclasses.replace(quick_fit, diagnostics=bad)
    with pytest.raises(AnalysisError) as err:
        result.check_diagnostics()
    message = str(err.value)
    assert "R-hat of tau is 1.0500 > 1.01" in message
    assert "bulk ESS of theta[C] is 120 < 400" in message
    assert "3 divergent transitions" in message


def test_nan_rhat_fails_the_gate(quick_fit):
    bad = dataclasses.replace(quick_fit.diagnostics, max_rhat=float("nan"))
    assert not bad.ok


def test_check_table_diagnostics_lists_failing_rows():
    table = pd.DataFrame(
        {
            "year": [2007, 2009],
            "diagnostics_ok": [True, False],
            "diagnostic_problems": ["", "2 divergent transitions (must be 0)"],
        }
    )
    with pytest.raises(AnalysisError, match="year=2009: 2 divergent"):
        check_table_diagnostics(table, "cumulative")
    assert check_table_diagnostics(table.iloc[:1]) is not None


# --- tables --------------------------------------------------------------------------------------


def test_prior_sensitivity_one_row_per_prior(sampler):
    priors = {k: SHIPPED_TAU_PRIORS[k] for k in ("half_normal_0.5", "rhodes_mental_health_nonpharm")}
    table = prior_sensitivity(sampler, Y, SE, LABELS, priors=priors, prior_mu=Normal(0, 1), mid=0.2, seed=1, **QUICK)
    assert list(table["prior"]) == list(priors)
    assert table["citation"].str.contains("Rhodes").iloc[1]
    assert {"mu_mean", "tau_mean", "P(mu > 0.2)", "diagnostics_ok"} <= set(table.columns)
    # the Rhodes prior puts more mass on small tau than HalfNormal(0.5)
    assert table["tau_mean"].iloc[1] < table["tau_mean"].iloc[0]


def test_cumulative_bayes_adds_studies_in_year_order(sampler):
    years = [2011, 2007, 2009, 2009, 2019, 2021]
    table = cumulative_bayes(sampler, Y, SE, years, LABELS, prior_mu=Normal(0, 1), seed=1, **QUICK)
    assert list(table["year"]) == [2009, 2011, 2019, 2021]  # 2007 alone has 1 < min_studies study
    assert list(table["k"]) == [3, 4, 5, 6]
    assert list(table["added"]) == ["C; D", "A", "E", "F"]
    with pytest.raises(AnalysisError, match="min_studies"):
        cumulative_bayes(sampler, Y, SE, [2000] * 6, LABELS, min_studies=7, **QUICK)
    with pytest.raises(InputError, match="one finite year per study"):
        cumulative_bayes(sampler, Y, SE, years[:3], LABELS, **QUICK)


# --- persistence ---------------------------------------------------------------------------------


def test_save_posterior_round_trip(quick_fit, tmp_path):
    pytest.importorskip("h5py", reason="h5netcdf needs h5py to write netCDF (see report)")
    import arviz as az

    path = save_posterior(quick_fit, tmp_path / "sub" / "posterior.nc")
    back = az.from_netcdf(path)
    np.testing.assert_array_equal(back["posterior"]["mu"].values, quick_fit.posterior["posterior"]["mu"].values)
    assert list(back["posterior"]["theta"].coords["study"].values) == LABELS
    assert [p.name for p in path.parent.iterdir()] == ["posterior.nc"]  # no temporary file left


def test_save_posterior_writes_the_same_bytes_for_the_same_fit(sampler, tmp_path):
    """Same data, prior and seed -> identical files: no wall-clock stamp reaches the netCDF, and the
    in-memory posterior keeps its own."""
    fits = [
        sampler.fit(Y, SE, LABELS, prior_mu=Normal(0, 1), prior_tau=HalfNormal(0.5), seed=3, **QUICK) for _ in range(2)
    ]
    paths = [save_posterior(fit, tmp_path / f"p{i}.nc") for i, fit in enumerate(fits)]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert "created_at" not in paths[0].read_bytes().decode("latin-1")
    assert "created_at" in fits[0].posterior["posterior"].attrs


def test_save_posterior_without_h5py_says_what_to_install(quick_fit, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError("no h5py")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(ImportError, match="h5py"):
        save_posterior(quick_fit, tmp_path / "p.nc")
    assert not list(tmp_path.iterdir())
