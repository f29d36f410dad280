"""imrstats.meta.bayes_models: the PyMC models beyond the normal-normal family, checked against independent
references.

Meta-regression: given tau, the posterior of (beta0, beta1) is normal (weighted least squares with the normal
prior as two pseudo-observations); over tau it is a one-dimensional integral, done here with scipy's adaptive
quadrature on a marginal likelihood written as a multivariate normal density (not the WLS algebra the model
uses). NUTS must agree with both within 4 Monte Carlo standard errors of its own run (arviz MCSE of the mean /
SD) plus 1e-6 for the quadrature; the seeds are fixed, so each test is deterministic, and a wrong likelihood,
prior or centring of the moderator moves the posterior by many MCSE.

metafor (tests/validation/r/meta_regression.R, pinned below): the BCG log risk ratios on absolute latitude,
REML. A Bayesian posterior mean is not a REML estimate, so that check is loose (see `test_bcg_near_metafor_reml`).

Robust t: with nu = 10^4 the t is a normal to ~1e-4 in kurtosis, so the posterior must match the exact
normal-normal engine within MC error; with nu = 4 an outlying study must pull mu less and be shrunk less than
under the normal model (directional, by more than 4 MCSE).
"""

import math
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from imrstats.errors import AnalysisError, InputError
from imrstats.meta import bayes_exact
from imrstats.meta.bayes import HalfCauchy, HalfNormal, Normal
from imrstats.meta.bayes_models import (
    ENGINE,
    RobustT,
    run_bayes_sensitivity_models,
    shared_model,
)

DATA = Path(__file__).parents[1] / "validation" / "data"
BCG = pd.read_csv(DATA / "meta_regression_bcg.csv")
EIGHT_Y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
EIGHT_SE = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]
QUAD_TOL = 1e-6

# Rscript tests/validation/r/meta_regression.R (R 4.2.2, metafor 3.8-1): rma(yi, vi, mods = ~ ablat, REML)
METAFOR_BCG = {
    "b1": -0.0291016609280148,
    "b1_se": 0.00719555475708091,
    "tau2": 0.0763546947056598,
    "b0_centred": -0.722322052063134,  # intercept with ablat centred at its mean (33.4615384615385)
    "b0_centred_se": 0.107656399981086,
    "mean_ablat": 33.4615384615385,
}


@pytest.fixture(scope="module")
def regression():
    return shared_model("meta_regression", 16)


@pytest.fixture(scope="module")
def robust():
    return shared_model("robust_t", 16)


def _mcse(result, name, what="mean"):
    return float(az.mcse(result.draws[name], method=what))


def _posterior_beta_given_tau(tau, y, v, x, m, s):
    """(mean, covariance) of (beta0, beta1) | tau, y: WLS with the prior N(m, diag(s^2))."""
    X = np.column_stack([np.ones_like(x), x])
    w = 1.0 / (v + tau**2)
    precision = X.T @ (w[:, None] * X) + np.diag(1.0 / s**2)
    cov = np.linalg.inv(precision)
    return cov @ (X.T @ (w * y) + m / s**2), cov


def _exact_regression(y, v, x, m, s, logprior_tau):
    """Posterior means and SDs of beta0, beta1, tau by quadrature over tau:
    p(tau | y) ∝ p(tau) N(y; X m, D + X S X')."""
    X = np.column_stack([np.ones_like(x), x])
    S = np.diag(s**2)

    def log_post(tau):
        return logprior_tau(tau) + stats.multivariate_normal.logpdf(y, X @ m, np.diag(v + tau**2) + X @ S @ X.T)

    grid = np.exp(np.linspace(-12, 3, 4001))
    peak = max(log_post(t) for t in grid[::40])

    def moment(f):
        return integrate.quad(
            lambda t: f(t) * math.exp(log_post(t) - peak), 0, np.inf, epsabs=0, epsrel=1e-11, limit=400
        )[0]

    z = moment(lambda t: 1.0)
    out = {"tau_mean": moment(lambda t: t) / z}
    out["tau_sd"] = math.sqrt(moment(lambda t: t * t) / z - out["tau_mean"] ** 2)
    for j, name in enumerate(("beta0", "beta1")):
        mean = moment(lambda t: _posterior_beta_given_tau(t, y, v, x, m, s)[0][j]) / z
        second = moment(lambda t: (lambda b, c: c[j, j] + b[j] ** 2)(*_posterior_beta_given_tau(t, y, v, x, m, s))) / z
        out[f"{name}_mean"], out[f"{name}_sd"] = mean, math.sqrt(second - mean**2)
    return out


# ---------------------------------------------------------------------------------------------- meta-regression


def test_regression_at_fixed_tau_matches_weighted_least_squares(regression):
    """tau ~ HalfNormal(1e-4): tau^2 <= ~1e-7, negligible against v_i >= 0.004, so the posterior of beta is the
    analytic WLS-with-prior normal at tau = 0 (to ~1e-5 relative)."""
    x = BCG["ablat"].to_numpy(float)
    y, v = BCG["yi"].to_numpy(float), BCG["vi"].to_numpy(float)
    xc = x - x.mean()
    m, s = np.array([0.0, 0.0]), np.array([1.0, 0.1])
    mean, cov = _posterior_beta_given_tau(0.0, y, v, xc, m, s)
    fit = regression.fit(
        y, np.sqrt(v), x, prior_beta0=Normal(0, 1), prior_beta1=Normal(0, 0.1), prior_tau=HalfNormal(1e-4), seed=11
    ).check_diagnostics()
    assert fit.settings["centre"] == pytest.approx(METAFOR_BCG["mean_ablat"], rel=1e-12)
    for j, name in enumerate(("beta0", "beta1")):
        sd = math.sqrt(cov[j, j])
        assert abs(fit.estimate(name) - mean[j]) <= 4 * _mcse(fit, name) + QUAD_TOL * abs(mean[j])
        post_sd = float(fit.to_frame().set_index("quantity").at[name, "se"])
        assert abs(post_sd - sd) <= 4 * _mcse(fit, name, "sd") + QUAD_TOL * sd


def test_regression_with_tau_prior_matches_quadrature(regression):
    """BCG log RR on absolute latitude, beta ~ N(0, 10^2) each (vague), tau ~ HalfNormal(0.5): NUTS against the
    quadrature over tau for beta0, beta1 and tau (means and SDs)."""
    x = BCG["ablat"].to_numpy(float)
    y, v = BCG["yi"].to_numpy(float), BCG["vi"].to_numpy(float)
    ref = _exact_regression(
        y, v, x - x.mean(), np.zeros(2), np.array([10.0, 10.0]), lambda t: stats.halfnorm.logpdf(t, scale=0.5)
    )
    fit = regression.fit(
        y,
        np.sqrt(v),
        x,
        prior_beta0=Normal(0, 10),
        prior_beta1=Normal(0, 10),
        prior_tau=HalfNormal(0.5),
        seed=12,
        moderator="ablat",
        draws=2000,
    ).check_diagnostics()
    est = fit.to_frame().set_index("quantity")
    for name in ("beta0", "beta1", "tau"):
        assert abs(est.at[name, "estimate"] - ref[f"{name}_mean"]) <= 4 * _mcse(fit, name) + QUAD_TOL * abs(
            ref[f"{name}_mean"]
        ), name
        assert abs(est.at[name, "se"] - ref[f"{name}_sd"]) <= 4 * _mcse(fit, name, "sd") + QUAD_TOL * ref[f"{name}_sd"]
    # P(beta1 > 0) is tiny for the BCG data (latitude gradient); its row is there, se = MCSE
    assert est.at["P(beta1 > 0)", "estimate"] < 0.01
    assert est["method"].str.startswith(ENGINE).all()
    assert "ablat = 33.4615" in est.at["beta0", "notes"]


def test_bcg_near_metafor_reml(regression):
    """Loose check against metafor's REML meta-regression: with vague beta priors the posterior of beta given tau
    is metafor's GLS estimate at that tau, but the posterior averages over tau (posterior mean of tau^2 0.119 vs
    REML 0.076) instead of plugging REML in. The exact posterior means (quadrature above) differ from REML by 0.03
    of metafor's SE for the slope and 0.01 for the intercept; NUTS adds ~0.03 SE of Monte Carlo error. Tolerance:
    a quarter of metafor's SE per coefficient (slope 0.0018; intercept at mean latitude 0.027): loose against
    both gaps, tight enough to catch a wrong sign, centring or weighting. Posterior SDs: at least metafor's SE
    and below 1.35 times it (exactly 1.16 and 1.16: tau's uncertainty is propagated, REML plugs it in)."""
    x = BCG["ablat"].to_numpy(float)
    y, v = BCG["yi"].to_numpy(float), BCG["vi"].to_numpy(float)
    fit = regression.fit(
        y,
        np.sqrt(v),
        x,
        prior_beta0=Normal(0, 10),
        prior_beta1=Normal(0, 10),
        prior_tau=HalfNormal(0.5),
        seed=12,
        moderator="ablat",
        draws=2000,
    ).check_diagnostics()
    est = fit.to_frame().set_index("quantity")
    assert abs(est.at["beta1", "estimate"] - METAFOR_BCG["b1"]) < 0.25 * METAFOR_BCG["b1_se"]
    assert abs(est.at["beta0", "estimate"] - METAFOR_BCG["b0_centred"]) < 0.25 * METAFOR_BCG["b0_centred_se"]
    assert METAFOR_BCG["b1_se"] <= est.at["beta1", "se"] < 1.35 * METAFOR_BCG["b1_se"]
    assert METAFOR_BCG["b0_centred_se"] <= est.at["beta0", "se"] < 1.35 * METAFOR_BCG["b0_centred_se"]


def test_regression_seeded_draws_are_byte_identical(regression):
    args = (BCG["yi"][:6], np.sqrt(BCG["vi"][:6]), BCG["ablat"][:6])
    a = regression.fit(*args, seed=5, draws=200, tune=200)
    b = regression.fit(*args, seed=5, draws=200, tune=200)
    c = regression.fit(*args, seed=6, draws=200, tune=200)
    assert all(a.draws[k].tobytes() == b.draws[k].tobytes() for k in a.draws)
    assert not np.array_equal(a.draws["beta1"], c.draws["beta1"])
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())


def test_regression_gate_names_the_failure(regression):
    """4 chains x 100 draws cannot reach bulk ESS 400: the gate must say so rather than report the numbers."""
    fit = regression.fit(BCG["yi"], np.sqrt(BCG["vi"]), BCG["ablat"], seed=3, draws=100, tune=100)
    assert not fit.diagnostics.ok
    with pytest.raises(AnalysisError, match="bulk ESS"):
        fit.check_diagnostics()
    assert "gate FAILED" in fit.summary()


@pytest.mark.parametrize(
    "x, error, match",
    [
        ([1.0, 1.0, 1.0], AnalysisError, "constant"),
        ([1.0, np.nan, 2.0], InputError, "missing or infinite"),
        ([1.0, 2.0], InputError, "2 values for 3 effects"),
    ],
)
def test_regression_rejects_bad_moderators(regression, x, error, match):
    with pytest.raises(error, match=match):
        regression.fit([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], x)


def test_regression_rejects_bad_centre(regression):
    with pytest.raises(InputError, match="centre"):
        regression.fit([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], [1, 2, 3], centre="median")


# ---------------------------------------------------------------------------------------------- robust t


def test_robust_t_with_huge_nu_is_the_normal_model(robust):
    """nu = 10^4: the eight schools under the t model against the exact normal-normal posterior."""
    exact = bayes_exact.fit_exact(EIGHT_Y, EIGHT_SE, prior_mu=(0, 5), prior_tau=HalfCauchy(5), mid=5).to_frame()
    exact = exact.loc[exact["parameter"].isin(["mu", "tau", "mu_new"])].set_index("parameter")
    fit = robust.fit(
        EIGHT_Y, EIGHT_SE, nu=1e4, prior_mu=Normal(0, 5), prior_tau=HalfCauchy(5), mid=5, seed=21, draws=2000
    ).check_diagnostics()
    est = fit.to_frame().set_index("quantity")
    for name in ("mu", "tau", "mu_new"):
        assert abs(est.at[name, "estimate"] - exact.at[name, "mean"]) <= 4 * _mcse(fit, name) + QUAD_TOL, name
        assert abs(est.at[name, "se"] - exact.at[name, "sd"]) <= 4 * _mcse(fit, name, "sd") + QUAD_TOL, name
    p = est.at["P(mu > 5)", "estimate"]
    assert abs(p - exact.at["mu", "p_gt_mid"]) <= 4 * est.at["P(mu > 5)", "se"] + QUAD_TOL


def test_robust_t_pools_an_outlier_more_robustly(robust):
    """Five studies near 0.3 and one at 2.0 with a small SE: under t(4) study effects mu sits nearer the five
    and the outlier's theta nearer its own estimate than under the normal model (both by > 4 MCSE)."""
    y = [0.25, 0.35, 0.30, 0.20, 0.40, 2.0]
    se = [0.12, 0.15, 0.10, 0.14, 0.13, 0.10]
    labels = [f"s{i}" for i in range(6)]
    normal = bayes_exact.fit_exact(y, se, labels, prior_mu=(0, 1), prior_tau=HalfNormal(0.5)).to_frame()
    normal_mu = float(normal.loc[normal["parameter"] == "mu", "mean"].iloc[0])
    normal_out = float(normal.loc[(normal["parameter"] == "theta") & (normal["study"] == "s5"), "mean"].iloc[0])
    fit = robust.fit(y, se, labels, nu=4, prior_mu=Normal(0, 1), prior_tau=HalfNormal(0.5), seed=22, draws=2000)
    fit.check_diagnostics()
    mu, out = fit.estimate("mu"), fit.estimate("theta[s5]")
    assert normal_mu - mu > 4 * _mcse(fit, "mu")  # mu pulled less towards 2.0
    assert abs(mu - 0.3) < abs(normal_mu - 0.3)
    assert out - normal_out > 4 * _mcse(fit, "theta[s5]")  # the outlier shrunk less
    assert 2.0 - out < 2.0 - normal_out


def test_robust_t_seeded_and_rows(robust):
    a = robust.fit(
        EIGHT_Y[:4], EIGHT_SE[:4], prior_mu=Normal(0, 5), prior_tau=HalfCauchy(5), mid=5, seed=7, draws=200, tune=200
    )
    b = robust.fit(
        EIGHT_Y[:4], EIGHT_SE[:4], prior_mu=Normal(0, 5), prior_tau=HalfCauchy(5), mid=5, seed=7, draws=200, tune=200
    )
    assert all(a.draws[k].tobytes() == b.draws[k].tobytes() for k in a.draws)
    q = list(a.to_frame()["quantity"])
    assert q[:3] == ["mu", "tau", "mu_new"] and "theta[study_4]" in q
    assert {"P(mu > 0)", "P(mu > 5)", "P(mu_new > 0)", "P(mu_new > 5)"} <= set(q)
    assert a.to_frame()["method"].str.startswith(ENGINE).all()
    assert "Student-t(nu = 4 fixed" in a.summary()


@pytest.mark.parametrize("nu", [0.0, -1.0, math.inf, math.nan])
def test_robust_t_rejects_bad_nu(robust, nu):
    with pytest.raises(InputError, match="nu"):
        robust.fit([0.1, 0.2], [0.1, 0.1], nu=nu)


def test_robust_t_rejects_unknown_nu_prior():
    with pytest.raises(InputError, match="nu_prior"):
        RobustT(nu_prior="exponential")
    with pytest.raises(InputError, match="kind"):
        shared_model("mixture")


@pytest.mark.slow
def test_robust_t_with_a_prior_on_nu():
    """nu ~ Gamma(2, 0.1) is sampled (its own compiled structure) and reported; the gate passes on the eight schools."""
    fit = RobustT(16, nu_prior="gamma_2_0.1").fit(
        EIGHT_Y, EIGHT_SE, prior_mu=Normal(0, 5), prior_tau=HalfCauchy(5), seed=8, draws=2000, tune=2000
    )
    fit.check_diagnostics()
    assert fit.estimate("nu") > 2
    assert "Gamma(2, 0.1)" in fit.method


# ---------------------------------------------------------------------------------------------- pipeline hook


def _effects():
    rng = np.random.default_rng(4)
    k = 9
    big = pd.DataFrame(
        {
            "study": [f"S{i}" for i in range(k)],
            "year": np.arange(2001, 2001 + k),
            "measure": "SMD",
            "yi": np.round(rng.normal(0.3, 0.2, k), 3),
            "sei": np.round(rng.uniform(0.1, 0.25, k), 3),
        }
    )
    small = big.iloc[:2].assign(study=["A", "B"])
    raw = big.iloc[:3].assign(measure="MD")
    return {"big": big, "small": small, "raw": raw}


def test_sensitivity_models_off_by_default():
    out = run_bayes_sensitivity_models(_effects(), {}, seed=1)
    assert out["tables"] == {} and out["flags"] == []


def test_sensitivity_models_run_when_enabled(regression, robust):
    settings = {
        "bayes": {"robust_t": {"enabled": True, "nu": 4}, "meta_regression": {"enabled": True, "moderator": "year"}}
    }
    out = run_bayes_sensitivity_models(_effects(), settings, seed=9)
    rt, mr = out["tables"]["bayes_robust_t"], out["tables"]["bayes_meta_regression"]
    assert set(rt["outcome"]) == {"big", "small"}  # the raw MD outcome has no shipped tau prior
    assert set(mr["outcome"]) == {"big"}  # k = 2 < meta_regression.min_studies = 3
    assert any("raw" in n and "no shipped tau prior" in n for n in out["notes"])
    assert any("small" in n and "min_studies" in n for n in out["notes"])
    assert (rt["prior"] == "rhodes_mental_health_nonpharm").all()
    assert {"P(beta1 > 0)", "beta1"} <= set(mr["quantity"]) and (mr["gate"] == "passed").all()
    assert {"P(mu > 0.2)", "mu_new"} <= set(rt["quantity"])
    again = run_bayes_sensitivity_models(_effects(), settings, seed=9)
    pd.testing.assert_frame_equal(again["tables"]["bayes_meta_regression"], mr)


def test_sensitivity_models_name_a_missing_moderator():
    settings = {"bayes": {"meta_regression": {"enabled": True, "moderator": "dose"}}}
    with pytest.raises(InputError, match="dose"):
        run_bayes_sensitivity_models(_effects(), settings, seed=1)


def test_sensitivity_settings_are_checked():
    from imrstats.errors import SettingsError

    with pytest.raises((SettingsError, InputError)):
        run_bayes_sensitivity_models(_effects(), {"bayes": {"robust_t": {"enabled": True, "nu": -1}}}, seed=1)


def test_meta_stage_runs_the_enabled_models_and_shows_them(robust):
    """The meta stage's Bayesian pooling calls the hook: an enabled robust-t model gives its table, its record
    and its part of the report section; the exact pooling beside it is unchanged."""
    from imrstats.meta.bayes_stage import bayes_pooling
    from imrstats.pipeline.registry import render_section

    effects = {"big": _effects()["big"]}
    off = bayes_pooling(effects, {"mid": 0.2, "bayes": {"implementation": {"enabled": False}}}, seed=5)
    settings = {"mid": 0.2, "bayes": {"implementation": {"enabled": False}, "robust_t": {"enabled": True, "nu": 4}}}
    on = bayes_pooling(effects, settings, seed=5)
    assert "bayes_robust_t" not in off.tables and off.record["sensitivity_models"]["robust_t"]["enabled"] is False
    robust_rows = on.tables["bayes_robust_t"]
    assert set(robust_rows["outcome"]) == {"big"} and (robust_rows["gate"] == "passed").all()
    pd.testing.assert_frame_equal(on.tables["bayes_pooled"], off.tables["bayes_pooled"])
    html = render_section(on)
    assert "Robust model: t-distributed study effects" in html and "NUTS (PyMC/nutpie)" in html
    assert "Robust model" not in render_section(off)
