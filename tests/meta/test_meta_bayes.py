"""The Bayesian pooling of the meta stage (imrstats.meta.bayes_stage): the stage part on the default data (tables,
flags, HTML, figures, posteriors, no participant id), settings and degenerate input, with the default exact engine
(its numbers in the stage's tables against the pinned R references of tests/validation/data/
bayes_exact_reference.json; the engine itself: tests/validation/test_bayes_exact_vs_r.py), and with the nuts
engine the gate with its one retry. One compiled model serves the session (bayes.shared_sampler)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.config import section_settings
from imrstats.errors import AnalysisError, SettingsError
from imrstats.meta import bayes_stage as meta_bayes
from imrstats.meta.bayes import SHIPPED_TAU_PRIORS, Normal
from imrstats.meta.bayes_stage import (
    EXACT_ENGINE,
    NOT_APPLICABLE,
    BayesStageResult,
    ExactResult,
    ExactSampler,
    bayes_pooling,
    cumulative_sentence,
    gated_fit,
    pool_outcome_bayes,
    retry_target_accept,
    run_meta_stage_with_bayes,
    write_posteriors,
)
from imrstats.meta.figures import posterior_figure, trace_rank_figure
from imrstats.pipeline.registry import render_section, with_section
from imrstats.pipeline.stage_result import to_json, write_stage

# small but gate-worthy: 2 chains x 1000 draws reach bulk ESS >= 400 on these data (NUTS keys: no effect when exact)
QUICK = {
    "draws": 1000,
    "tune": 1000,
    "chains": 2,
    "sensitivity_priors": ["half_normal_0.5", "rhodes_mental_health_nonpharm"],
}
SETTINGS = {
    "outcomes": {"imrs_clinician": ["imrs_clinician"], "hope": ["hope"], "hospitalisation": ["hospitalisation"]},
    "bayes": QUICK,
}
NUTS_SETTINGS = {
    "outcomes": {"imrs_clinician": ["imrs_clinician"]},
    "bayes": {
        **QUICK,
        "engine": "nuts",
        "sensitivity_priors": ["half_normal_0.5"],
        "implementation": {"enabled": False},
    },
}
REFERENCES = {
    case["name"]: case
    for case in json.loads(
        (Path(__file__).parents[1] / "validation" / "data" / "bayes_exact_reference.json").read_text()
    )["cases"]
}


@pytest.fixture(scope="session")
def clean(default_clean_tables):
    return default_clean_tables


@pytest.fixture(scope="session")
def stage(clean, default_config):
    settings = {**default_config.get("meta", {}), **SETTINGS}
    result = with_section(run_meta_stage_with_bayes(clean, settings, seed=default_config["seed"]))
    yield result
    import matplotlib.pyplot as plt

    for fig in result.figures.values():
        plt.close(fig)


@pytest.fixture(scope="session")
def nuts_stage(clean, default_config):
    settings = {**default_config.get("meta", {}), **NUTS_SETTINGS}
    result = with_section(run_meta_stage_with_bayes(clean, settings, seed=default_config["seed"]))
    yield result
    import matplotlib.pyplot as plt

    for fig in result.figures.values():
        plt.close(fig)


@pytest.fixture(scope="session")
def a_result(nuts_stage):
    """A NUTS fit (the gate tests replay it with chosen diagnostics)."""
    return nuts_stage.posteriors["imrs_clinician"]


@pytest.fixture(scope="session")
def exact_result(stage):
    return stage.posteriors["imrs_clinician"]


# ---- the stage on the default data ---------------------------------------------------------------


def test_stage_has_bayes_tables_and_posteriors(stage):
    assert isinstance(stage, BayesStageResult)
    for name in (
        "bayes_priors",
        "bayes_pooled",
        "bayes_study_effects",
        "bayes_sensitivity",
        "bayes_cumulative",
        "bayes_diagnostics",
        "bayes_factors",
    ):
        assert name in stage.tables and len(stage.tables[name]), name
    assert "meta_estimators" in stage.tables  # the frequentist part is still there
    assert set(stage.posteriors) == {
        "imrs_clinician",
        "hope",
        "implementation_dropout_pct",
        "implementation_completion_pct",
    }
    pooled = stage.tables["bayes_pooled"]
    clin = pooled.loc[pooled["outcome_label"] == "imrs_clinician"].set_index("quantity")
    assert {"mu", "tau", "mu_new", "P(mu > 0)", "P(mu > 0.2)", "P(mu_new > 0)"} <= set(clin.index)
    assert clin.at["mu", "ci_low"] < clin.at["mu", "estimate"] < clin.at["mu", "ci_high"]
    # the predictive interval of a new trial is wider than the interval of the mean
    width = clin["ci_high"] - clin["ci_low"]
    assert width["mu_new"] > width["mu"]
    assert clin.at["P(mu > 0.2)", "estimate"] < clin.at["P(mu > 0)", "estimate"]
    assert {"P(mu_new > 0.2)", "P(mu_new > 0)"} <= set(clin.index)
    assert clin["method"].str.contains("rhodes|t5\\(-3.85", regex=True).all()
    # every row names the engine and both priors; the shortest interval lies inside the equal-tailed one's span
    assert clin["method"].str.contains(EXACT_ENGINE, regex=False).all()
    assert clin["method"].str.contains("mu ~ Normal(0, 1)", regex=False).all()
    for q in ("mu", "mu_new"):
        assert clin.at[q, "hpd_high"] - clin.at[q, "hpd_low"] <= clin.at[q, "ci_high"] - clin.at[q, "ci_low"]
    impl = pooled.loc[pooled["outcome_label"] == "implementation: dropout_pct"].set_index("quantity")
    assert 0 < impl.at["pooled proportion (%)", "ci_low"] < impl.at["pooled proportion (%)", "ci_high"] < 100


def test_exact_percent_rows_back_transform_the_exact_quantiles(stage):
    from scipy import integrate
    from scipy.special import expit

    result = stage.posteriors["implementation_completion_pct"]
    assert isinstance(result, ExactResult)
    est = result.estimates.set_index("quantity")
    rows = meta_bayes.proportion_rows(result).set_index("quantity")
    for name, quantity in (("mu", "pooled proportion (%)"), ("mu_new", "proportion in a new study (%)")):
        row = rows.loc[quantity]
        # quantiles commute with the monotone expit
        assert row["estimate"] == pytest.approx(100 * expit(est.at[name, "median"]), rel=1e-14)
        assert row["ci_low"] == pytest.approx(100 * expit(est.at[name, "ci_low"]), rel=1e-14)
        assert row["ci_high"] == pytest.approx(100 * expit(est.at[name, "ci_high"]), rel=1e-14)

        # the SD by Gauss-Hermite over the mixture against adaptive quadrature of the exact density
        def moment(power):
            f = lambda x: (100 * expit(x)) ** power * result.exact.pdf(name, x)[0]  # noqa: E731
            return integrate.quad(f, -40, 40, points=[est.at[name, "median"]], epsabs=1e-12, epsrel=1e-11, limit=400)[0]

        assert row["se"] == pytest.approx(math.sqrt(moment(2) - moment(1) ** 2), rel=1e-7)


def test_sensitivity_and_cumulative_reuse_the_main_fit(stage):
    pooled = stage.tables["bayes_pooled"].set_index(["outcome_label", "quantity"])
    sens = stage.tables["bayes_sensitivity"]
    main = sens.loc[sens["main_prior"] & (sens["outcome_label"] == "imrs_clinician")].iloc[0]
    assert main["mu_mean"] == pooled.at[("imrs_clinician", "mu"), "estimate"]
    cum = stage.tables["bayes_cumulative"]
    clin = cum.loc[cum["outcome_label"] == "imrs_clinician"]
    assert list(clin["k"]) == [2, 3] and list(clin["year"]) == [2009, 2019]  # 2007 alone < min_studies
    assert clin["mu_mean"].iloc[-1] == pooled.at[("imrs_clinician", "mu"), "estimate"]
    assert "Jensen 2019" in clin["added"].iloc[-1]
    assert set(sens["prior"]) == set(QUICK["sensitivity_priors"])


def test_exact_tables_carry_no_sampler_diagnostics(stage):
    fits = stage.tables["bayes_diagnostics"]
    assert (fits["sampler_diagnostics"] == NOT_APPLICABLE).all() and (fits["engine"] == EXACT_ENGINE).all()
    assert (fits["quadrature_nodes"] > 0).all() and fits["passed"].all()
    sampler_columns = {"max_rhat", "min_ess_bulk", "divergences", "r_hat", "ess_bulk", "mcse_mean", "gate"}
    for name, frame in stage.tables.items():
        if name.startswith("bayes_"):
            assert not sampler_columns & set(frame.columns), name
    assert f"Sampler diagnostics: {NOT_APPLICABLE}" in stage.summary
    assert not [name for name in stage.figures if name.startswith("bayes_trace_")]  # no chains to plot


def test_nuts_engine_keeps_the_gate_and_its_diagnostics(nuts_stage):
    stage = nuts_stage
    pooled = stage.tables["bayes_pooled"]
    assert pooled["method"].str.contains("NUTS via nutpie").all() and "bayes_factors" not in stage.tables
    assert stage.record["bayes"]["gate"]["max_rhat"] == 1.01
    assert "figures/bayes_trace_imrs_clinician.png" in stage.html and "R-hat ≤ 1.01" in stage.html
    diag = stage.tables["bayes_diagnostics"]
    ok = diag.loc[diag["passed"].astype(bool)]
    assert (ok["max_rhat"] <= 1.01).all() and (ok["min_ess_bulk"] >= 400).all() and (ok["divergences"] == 0).all()
    assert (diag.loc[diag["analysis"] == "main", "passed"]).all()
    for frame in (stage.tables["bayes_sensitivity"], stage.tables["bayes_cumulative"]):
        failed = frame.loc[frame["gate"] != "passed"]
        assert failed["mu_mean"].isna().all()
    n_failed = int((~diag["passed"].astype(bool)).sum())
    assert sum("sampler gate failed" in f for f in stage.flags) == n_failed


def test_k1_outcome_is_noted_not_pooled(stage):
    assert "hospitalisation: k = 1 < meta.bayes.min_studies = 2; not pooled" in stage.summary
    assert "hospitalisation" not in set(stage.tables["bayes_pooled"]["outcome_label"])


def test_html_says_methods_and_references_every_figure(stage):
    html = stage.html
    assert "<h2>Bayesian random-effects pooling</h2>" in html
    assert "Rhodes KM, Turner RM, Higgins JPT (2015)" in html and "R-hat ≤ 1.01" not in html
    assert f"Engine: {EXACT_ENGINE}" in html and "Appendix: the fits (exact engine" in html
    bayes_html = html[html.index("<h2>Bayesian random-effects pooling</h2>") :]
    # one method line per table; a wide table is shown in parts, each part after the first says it continues
    tables = bayes_html.count("<table") - bayes_html.count("(continued; the first columns repeated)")
    assert tables == bayes_html.count("<p class='method'>Method:")
    for name in stage.figures:
        if name.startswith("bayes_"):
            assert f"figures/{name}.png" in html, name
    assert "bayes_trace_" not in html
    # the Bayes factor table of each outcome, with its one-line definition
    assert "imrs_clinician: marginal likelihood and Bayes factors per tau prior" in html
    assert "BF(tau = 0) = p(y | tau = 0) / p(y)" in html and "bayesmeta" in html


def test_stage_leaks_no_participant_id(stage, clean):
    ids = set(clean["participants"]["id"].astype(str))
    assert len(ids) > 100
    text = stage.html + to_json(stage.record) + stage.summary
    text += "".join(frame.to_csv(index=False) for frame in stage.tables.values())
    assert not [i for i in ids if i in text]


def test_record_is_json_and_files_are_written(stage, tmp_path):
    record = json.loads(to_json(stage.record))
    assert record["bayes"]["settings"]["tau_prior"] == "rhodes_mental_health_nonpharm"
    assert record["bayes"]["gate"] == NOT_APPLICABLE and record["bayes"]["engine"] == EXACT_ENGINE
    assert record["bayes"]["factors"] and "p(y | mu = 0)" in record["bayes"]["bayes_factors_definition"]
    written = write_stage(stage, tmp_path)
    assert (tmp_path / "tables" / "bayes_pooled.csv").exists() and "figure:bayes_posterior_hope" in written
    assert (tmp_path / "tables" / "bayes_factors.csv").exists()
    paths = write_posteriors(stage, tmp_path)
    import xarray as xr

    with xr.open_datatree(paths["hope"], engine="h5netcdf") as tree:
        post = tree["posterior"]
        assert list(post["theta"].coords["study"].values) == ["Jensen 2019", "Wong 2023"]
        assert post["theta"].dims == ("chain", "draw", "study") and post["mu"].dims == ("chain", "draw")
        assert post.sizes["draw"] == 4000 and post.sizes["chain"] == 1  # meta.bayes.exact_draws: i.i.d. draws
        assert post.attrs["engine"] == EXACT_ENGINE and "created_at" not in post.attrs
        assert list(tree["observed_data"]["y"].values) == list(stage.posteriors["hope"].exact.y)
    assert write_posteriors(BayesStageResult("x"), tmp_path / "none") == {}


def test_cumulative_sentence_reads_by_year():
    table = pd.DataFrame({"year": [2009, 2019], "k": [2, 3], "added": ["A; B", "C"], "P(mu > 0)": [0.97, np.nan]})
    assert cumulative_sentence(table) == "P(mu > 0): 2009 (k = 2) 0.97 -> 2019 (k = 3, + C) not reported (gate failed)"


# ---- figures -------------------------------------------------------------------------------------


def test_posterior_figure_overlays_both_priors(a_result, exact_result):
    prior_tau = SHIPPED_TAU_PRIORS["rhodes_mental_health_nonpharm"].prior
    for result in (a_result, exact_result):
        fig = posterior_figure(result, Normal(0, 1), prior_tau, title="t")
        labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
        assert "prior Normal(0, 1)" in labels and f"prior: {prior_tau.label()}" in labels
    # the exact figure draws the exact density, not a histogram of draws
    x, y = fig.axes[0].get_lines()[0].get_data()
    assert np.allclose(y, exact_result.exact.pdf("mu_new", x), rtol=1e-12)
    fig2 = trace_rank_figure(a_result)
    assert len(fig2.axes) == 4 and len(fig2.axes[0].get_lines()) == 2  # one trace per chain


# ---- the gate and its retry (a stand-in sampler replays real results with chosen diagnostics) --------


class ReplaySampler:
    def __init__(self, results, target_accept=0.99):
        self.results, self.target_accept, self.calls = list(results), target_accept, []

    def fit(self, yi, sei, labels, **kwargs):
        self.calls.append({**kwargs, "target_accept": self.target_accept})
        return self.results.pop(0)


def _with(result, **diagnostics):
    return dataclasses.replace(result, diagnostics=dataclasses.replace(result.diagnostics, **diagnostics))


FIT = dict(
    prior_mu=Normal(0, 1),
    prior_tau=SHIPPED_TAU_PRIORS["half_normal_0.5"].prior,
    mid=None,
    seed=5,
    draws=500,
    tune=400,
    chains=2,
    context="outcome X, prior P",
)


def test_a_failing_fit_is_retried_once_with_more_tuning_and_higher_target_accept(a_result):
    sampler = ReplaySampler([_with(a_result, divergences=2), a_result])
    fit = gated_fit(sampler, [0.1, 0.2], [0.1, 0.1], ["a", "b"], **FIT)
    assert fit.attempts == 2 and fit.passed and "2 divergent transitions" in fit.retry_reason
    first, retry = sampler.calls
    assert retry["draws"] == 1000 and retry["tune"] == 800 and retry["seed"] != first["seed"]
    assert retry["target_accept"] == pytest.approx(0.999) and sampler.target_accept == 0.99
    assert retry_target_accept(0.95) == pytest.approx(0.995)


def test_a_fit_failing_twice_raises_naming_outcome_prior_parameter_and_criterion(a_result):
    bad = _with(a_result, max_rhat=1.05, max_rhat_parameter="tau")
    with pytest.raises(AnalysisError, match=r"outcome X, prior P.*R-hat of tau is 1.0500 > 1.01"):
        gated_fit(ReplaySampler([bad, bad]), [0.1, 0.2], [0.1, 0.1], ["a", "b"], **FIT)
    fit = gated_fit(ReplaySampler([bad, bad]), [0.1, 0.2], [0.1, 0.1], ["a", "b"], **FIT, on_failure="flag")
    assert not fit.passed and "R-hat of tau" in fit.failure


def _data(k=2):
    return pd.DataFrame(
        {
            "study": [f"S{i}" for i in range(k)],
            "year": [2001 + i for i in range(k)],
            "yi": [0.1 * i for i in range(k)],
            "sei": [0.2] * k,
            "measure": ["SMD"] * k,
        }
    )


def test_main_fit_failure_stops_but_a_sensitivity_failure_is_flagged(a_result):
    bad = _with(a_result, min_ess_bulk=120.0, min_ess_parameter="tau")
    kwargs = dict(
        prior_mu=Normal(0, 1),
        prior_key="rhodes_mental_health_nonpharm",
        mid=0.2,
        seed=1,
        run=dict(draws=500, tune=500, chains=2),
        cumulative=False,
        min_studies=2,
        context="outcome hope",
    )
    with pytest.raises(AnalysisError, match=r"outcome hope, prior rhodes_mental_health_nonpharm.*bulk ESS of tau"):
        pool_outcome_bayes(ReplaySampler([bad, bad]), _data(), sensitivity_keys=[], **kwargs)
    part = pool_outcome_bayes(
        ReplaySampler([a_result, bad, bad]),
        _data(),
        sensitivity_keys=["half_cauchy_0.5"],
        on_secondary_failure="flag",
        **kwargs,
    )
    row = part["sensitivity"].iloc[0]
    assert np.isnan(row["mu_mean"]) and row["gate"].startswith("FAILED") and row["max_rhat"] == bad.diagnostics.max_rhat
    assert len(part["flags"]) == 1 and "sensitivity prior half_cauchy_0.5" in part["flags"][0]
    with pytest.raises(AnalysisError, match="sensitivity prior half_cauchy_0.5"):
        pool_outcome_bayes(
            ReplaySampler([a_result, bad, bad]),
            _data(),
            sensitivity_keys=["half_cauchy_0.5"],
            on_secondary_failure="fail",
            **kwargs,
        )


# ---- settings and degenerate input -------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"colour": 1}, "meta.bayes.colour: unknown key"),
        ({"tau_prior": "flat"}, "meta.bayes.tau_prior: must be one of half_normal_0.5, "),
        ({"sensitivity_priors": "half_normal_0.5"}, "meta.bayes.sensitivity_priors: must be a list"),
        ({"draws": 50}, "meta.bayes.draws: must be >= 100, got 50"),
        ({"chains": 1}, "meta.bayes.chains: must be >= 2, got 1"),
        ({"target_accept": 1.0}, "meta.bayes.target_accept: must be < 1"),
        ({"parameterization": "centred"}, "meta.bayes.parameterization"),
        ({"prior_mu": {"loc": 0, "scale": -1}}, "meta.bayes.prior_mu.scale: must be > 0, got -1"),
        ({"on_secondary_gate_failure": "ignore"}, "meta.bayes.on_secondary_gate_failure: must be one of flag, fail"),
        (
            {"implementation": {"tau_prior": {"family": "gamma", "scale": 1}}},
            "meta.bayes.implementation.tau_prior.family",
        ),
        ({"enabled": "yes"}, "meta.bayes.enabled: must be true or false"),
        ({"engine": "stan"}, "meta.bayes.engine: must be one of exact, nuts"),
        ({"exact_draws": 10}, "meta.bayes.exact_draws: must be >= 100, got 10"),
    ],
)
def test_bad_settings_raise_a_settings_error(raw, match):
    with pytest.raises(SettingsError, match=match):
        bayes_pooling({}, {"bayes": raw})


def test_defaults_ship_the_empirical_prior_and_every_shipped_prior_in_sensitivity():
    b = section_settings("meta.bayes")
    assert b["tau_prior"] == "rhodes_mental_health_nonpharm" and b["enabled"] and b["cumulative"]
    assert b["engine"] == "exact" and b["exact_draws"] == 4000
    assert {"half_normal_0.5", "half_cauchy_0.5", "turner_mental_health_nonpharm_vs_control"} <= set(
        b["sensitivity_priors"]
    )


def test_unpoolable_inputs_are_flagged_or_noted_without_sampling():
    inputs = {
        "raw md": _data().assign(measure="MD"),
        "empty": _data(0),
        "mixed": _data().assign(measure=["SMD", "log OR"]),
    }
    part = bayes_pooling(inputs, {"mid": 0.2, "bayes": {"implementation": {"enabled": False}}}, seed=3)
    assert part.posteriors == {} and len(part.tables["bayes_diagnostics"]) == 0
    assert any("'MD' has no scale-free heterogeneity prior" in f for f in part.flags)
    assert any("mixed effect measures" in f for f in part.flags)
    assert "empty: k = 0 < meta.bayes.min_studies" in part.summary
    assert "<div class='flag'>" in render_section(part)


def test_disabled_runs_no_fit(clean):
    result = run_meta_stage_with_bayes(clean, {"outcomes": {"hope": ["hope"]}, "bayes": {"enabled": False}}, seed=1)
    assert not [n for n in result.tables if n.startswith("bayes_")] and result.posteriors == {}
    assert "bayes" not in result.record and result.record["settings"]["bayes"]["enabled"] is False


def test_missing_implementation_file_is_flagged_while_outcomes_still_pool(tmp_path):
    settings = {
        "mid": 0.2,
        "implementation_rates": str(tmp_path / "missing.csv"),
        "implementation": {"measures": ["dropout_pct"], "uses": ["pool with care"]},
        "bayes": {"implementation": {"enabled": True}},
    }
    part = bayes_pooling({"one": _data(1)}, settings, seed=3)
    assert any(f.startswith("implementation proportions not pooled") for f in part.flags)


# ---- the exact engine in the stage's tables: numbers against the pinned R references -------------------


def _close(ours: float, ref, what: str) -> None:
    """The references' tolerance (tests/validation/test_bayes_exact_vs_r.py): 1e-6 relative, or 1e-9 absolute
    near zero (a tau interval starting at 0)."""
    assert ref is not None, what
    assert ours == pytest.approx(ref, rel=1e-6, abs=1e-9), what


def _reference_data(case: dict) -> pd.DataFrame:
    k = len(case["y"])
    return pd.DataFrame(
        {
            "study": [f"S{i}" for i in range(k)],
            "year": [2001 + i for i in range(k)],
            "yi": case["y"],
            "sei": case["se"],
            "measure": "SMD",
        }
    )


@pytest.mark.parametrize(
    "main, main_key, other, other_key",
    [
        ("smd_k3_logt", "rhodes_mental_health_nonpharm", "smd_k3_hn", "half_normal_0.5"),
        ("smd_k2_hn", "half_normal_0.5", "smd_k2_logt", "rhodes_mental_health_nonpharm"),
    ],
)
def test_exact_tables_match_the_pinned_R_references(main, main_key, other, other_key):
    """pool_outcome_bayes with the exact engine (k = 3 and k = 2; the Rhodes log-t and the half-normal prior) gives
    in every table the numbers R's integrate() gives (tests/validation/data/bayes_exact_reference.json)."""
    ref, ref_other = REFERENCES[main], REFERENCES[other]
    assert ref["y"] == ref_other["y"] and ref["prior_mu"] == {"loc": 0, "scale": 1}
    part = pool_outcome_bayes(
        ExactSampler(),
        _reference_data(ref),
        prior_mu=Normal(0, 1),
        prior_key=main_key,
        sensitivity_keys=[other_key, main_key],
        mid=ref["mid"],
        seed=1,
        run={},
        cumulative=True,
        min_studies=2,
        context="reference",
    )
    est = part["estimates"].set_index("quantity")
    for name in ("mu", "tau", "mu_new"):
        r = ref["results"][name]
        for ours, theirs in (
            ("estimate", "mean"),
            ("se", "sd"),
            ("median", "median"),
            ("ci_low", "ci_low"),
            ("ci_high", "ci_high"),
            ("hpd_low", "hpd_low"),
            ("hpd_high", "hpd_high"),
        ):
            _close(est.at[name, ours], r[theirs], f"{main} {name} {ours}")
    for name in ("mu", "mu_new"):
        _close(est.at[f"P({name} > 0)", "estimate"], ref["results"][name]["p_gt_0"], f"P({name} > 0)")
        _close(est.at[f"P({name} > 0.2)", "estimate"], ref["results"][name]["p_gt_mid"], f"P({name} > 0.2)")
    effects = part["study_effects"]
    for i, row in effects.reset_index(drop=True).iterrows():
        r = ref["results"][f"theta{i + 1}"]
        for column, theirs in (
            ("theta_mean", "mean"),
            ("theta_sd", "sd"),
            ("theta_median", "median"),
            ("theta_low", "ci_low"),
            ("theta_high", "ci_high"),
            ("theta_hpd_low", "hpd_low"),
            ("theta_hpd_high", "hpd_high"),
        ):
            _close(row[column], r[theirs], f"{main} theta{i + 1} {column}")
    # the sensitivity row of the other prior: the other reference
    sens = part["sensitivity"].set_index("prior")
    for name in ("mu", "tau", "mu_new"):
        r = ref_other["results"][name]
        for ours, theirs in zip(
            ("mean", "sd", "median", "low", "high", "hpd_low", "hpd_high"),
            ("mean", "sd", "median", "ci_low", "ci_high", "hpd_low", "hpd_high"),
        ):
            _close(sens.at[other_key, f"{name}_{ours}"], r[theirs], f"{other} {name}_{ours}")
    _close(sens.at[other_key, "P(mu_new > 0.2)"], ref_other["results"]["mu_new"]["p_gt_mid"], "P(mu_new > 0.2)")
    # the marginal likelihood and both Bayes factors, per prior, as bayesmeta defines them
    factors = part["bayes_factors"].set_index("prior")
    assert list(factors.index) == [main_key, other_key] and factors["main_prior"].tolist() == [True, False]
    for key, case in ((main_key, ref), (other_key, ref_other)):
        bf = case["bayes_factors"]
        _close(factors.at[key, "log_marginal_likelihood"], case["log_marginal_likelihood"], f"{key} log p(y)")
        _close(factors.at[key, "bf_tau0"], bf["actual_tau0"], f"{key} BF tau=0")
        _close(factors.at[key, "bf_mu0"], bf["actual_mu0"], f"{key} BF mu=0")
        _close(factors.at[key, "bf_tau0_minimum"], bf["minimum_tau0"], f"{key} minimum BF tau=0")
        _close(factors.at[key, "bf_mu0_minimum"], bf["minimum_mu0"], f"{key} minimum BF mu=0")
    # the cumulative step with every study is the main fit; the table has no sampler columns
    cum = part["cumulative"]
    assert cum["mu_mean"].iloc[-1] == est.at["mu", "estimate"] and "gate" not in cum.columns
    assert (part["diagnostics"]["sampler_diagnostics"] == NOT_APPLICABLE).all()


def test_exact_posteriors_are_seeded_iid_draws_written_byte_identically(tmp_path):
    """The netCDF posterior comes from bayes_exact.draw, seeded from the fit's seed path (spawn_seed), and two
    runs write the same bytes; the draws are those of the exact posterior (a fixed seed: not a flaky test)."""
    from imrstats.core.seeds import label_code, spawn_seed

    data = _reference_data(REFERENCES["smd_k3_logt"])
    settings = {
        "mid": 0.2,
        "bayes": {"sensitivity_priors": [], "cumulative": False, "implementation": {"enabled": False}},
    }
    written = []
    for run in ("a", "b"):
        part = bayes_pooling({"x": data}, settings, seed=11)
        written.append(write_posteriors(part, tmp_path / run)["x"].read_bytes())
    assert written[0] == written[1]
    result = part.posteriors["x"]
    fit_seed = spawn_seed(spawn_seed(11, label_code("x")), 0, 0)
    assert result.seed == fit_seed and result.posterior["posterior"].attrs["draw_seed"] == spawn_seed(fit_seed, 3)
    from imrstats.meta.bayes_exact import draw

    direct = draw(result.exact, 4000, spawn_seed(fit_seed, 3))
    assert np.array_equal(result.posterior["posterior"]["mu"].values[0], direct["mu"])
    mu = direct["mu"]
    ref = REFERENCES["smd_k3_logt"]["results"]["mu"]
    assert abs(mu.mean() - ref["mean"]) < 5 * ref["sd"] / math.sqrt(mu.size)
    other = bayes_pooling({"x": data}, settings, seed=12).posteriors["x"]
    assert not np.array_equal(other.posterior["posterior"]["mu"].values, result.posterior["posterior"]["mu"].values)


def test_exact_fits_sample_nothing_until_a_posterior_is_asked_for(monkeypatch):
    """Tables need no draws: a fit draws only when its posterior is written or plotted."""
    from imrstats.meta import bayes_exact

    calls = []
    original = bayes_exact.draw
    monkeypatch.setattr(bayes_exact, "draw", lambda *a, **k: calls.append(1) or original(*a, **k))
    data = _reference_data(REFERENCES["smd_k3_logt"])
    part = pool_outcome_bayes(
        ExactSampler(),
        data,
        prior_mu=Normal(0, 1),
        prior_key="rhodes_mental_health_nonpharm",
        sensitivity_keys=["half_normal_0.5", "half_cauchy_0.5"],
        mid=0.2,
        seed=1,
        run={},
        cumulative=True,
        min_studies=2,
        context="x",
    )
    assert calls == [] and len(part["sensitivity"]) == 2
    part["fit"].result.posterior
    part["fit"].result.posterior
    assert calls == [1]
