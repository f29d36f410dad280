"""Unit tests of bayes_exact: normalisation, quadrature accuracy (N vs 2N nodes, and against
scipy.integrate.quad with an independently written likelihood), limits at tau -> 0, k = 1, exact draws,
the flat mu prior, bounded and user-given tau priors, Bayes factors, and rejected inputs."""

import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from imrstats.errors import AnalysisError, InputError
from imrstats.meta import bayes_exact as be
from imrstats.meta.bayes import SHIPPED_TAU_PRIORS, HalfCauchy, HalfNormal, LogTTau2, UniformTau

RHODES_MENTAL_HEALTH_NONPHARM = SHIPPED_TAU_PRIORS["rhodes_mental_health_nonpharm"].prior

EIGHT_Y = [28, 8, -3, 7, -1, 1, 18, 12]
EIGHT_SE = [15, 10, 16, 11, 9, 11, 10, 18]
SMD_Y, SMD_SE = [0.25, 0.10, 0.40], [0.12, 0.18, 0.22]
HOMOG_Y, HOMOG_SE = [0.20, 0.21, 0.19, 0.20], [0.1] * 4
NUMBERS = ["mean", "sd", "median", "ci_low", "ci_high", "hpd_low", "hpd_high", "p_gt_0", "p_gt_mid"]


def eight_schools(**kw):
    return be.fit_exact(EIGHT_Y, EIGHT_SE, prior_mu=(0, 5), prior_tau=HalfCauchy(5), mid=5, **kw)


def numbers(fit):
    return fit.to_frame()[NUMBERS].to_numpy(float)


def assert_close(a, b, rel, abs_=1e-14):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    ok = np.isnan(a) | (np.abs(a - b) <= rel * np.abs(b) + abs_)
    assert ok.all(), f"max relative difference {np.nanmax(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)):.3g}"


# --- pinned by the project (tests/validation/test_bayes_validation.py, R quadrature) -------------------
# Its R script (tests/validation/r/bayes.R) states "exact up to ~1e-9" and integrates at rel.tol 1e-11;
# our own R reference (rel.tol 1e-12, test_bayes_exact_vs_r.py) is the tight check.
PIN_TOL = 1e-7


def test_eight_schools_matches_project_pins():
    fit = eight_schools()
    f = fit.to_frame().set_index(["parameter", "study"], drop=False)
    mu, tau, new = (fit.to_frame().iloc[i] for i in range(3))
    assert mu["mean"] == pytest.approx(4.39682069990776, rel=PIN_TOL)
    assert mu["sd"] == pytest.approx(3.31770447239192, rel=PIN_TOL)
    assert tau["mean"] == pytest.approx(3.59770570765116, rel=PIN_TOL)
    assert mu["p_gt_0"] == pytest.approx(0.907592137745584, rel=PIN_TOL)
    assert new["p_gt_0"] == pytest.approx(0.828316245961532, rel=PIN_TOL)
    assert mu["ci_low"] == pytest.approx(-2.16839597238201, rel=PIN_TOL)
    assert mu["ci_high"] == pytest.approx(10.8523108354019, rel=PIN_TOL)
    theta = [
        6.2118843029151,
        4.94017843934868,
        3.92700435940858,
        4.75709829974243,
        3.61547695292386,
        4.0426125998952,
        6.29672423169871,
        4.85425333438015,
    ]
    assert_close(f.loc["theta", "mean"].to_numpy(float), theta, PIN_TOL)


def test_eight_schools_flat_mu_uniform_tau_matches_project_pin():
    # the project's R reference for BDA3's prior: flat on mu, tau ~ U(0, 1000) (its comment: "flat: mu mean
    # 7.93237502600855, tau mean 6.57548354515133")
    fit = be.fit_exact(EIGHT_Y, EIGHT_SE, prior_mu=None, prior_tau=UniformTau(1000))
    assert fit.values[0, 0] == pytest.approx(7.93237502600855, rel=PIN_TOL)
    assert fit.values[1, 0] == pytest.approx(6.57548354515133, rel=PIN_TOL)


# --- normalisation and quadrature accuracy --------------------------------------------------------------


@pytest.mark.parametrize("prior", [HalfNormal(0.5), HalfCauchy(0.5), RHODES_MENTAL_HEALTH_NONPHARM, UniformTau(2)])
def test_normalised(prior):
    fit = be.fit_exact(SMD_Y, SMD_SE, prior_mu=(0, 1), prior_tau=prior)
    assert fit.weights.sum() == pytest.approx(1.0, abs=1e-14)
    assert fit.tau_posterior.cum[-1] == pytest.approx(1.0, abs=1e-15)
    top = math.log(getattr(prior, "upper", 1e150))
    breaks = [b for b in [-700, -100, -30, -10, -4, -2, -1, 0, 1, 3, 10, 50] if b < top] + [top]
    tau_mass = sum(
        integrate.quad(
            lambda u: fit.pdf("tau", math.exp(u))[0] * math.exp(u), a, b, epsabs=1e-15, epsrel=1e-13, limit=200
        )[0]
        for a, b in zip(breaks[:-1], breaks[1:])
    )
    assert tau_mass == pytest.approx(1.0, abs=1e-11)
    mu_mass = integrate.quad(lambda x: fit.pdf("mu", x)[0], -np.inf, np.inf, epsabs=0, epsrel=1e-12)[0]
    assert mu_mass == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize(
    "data, prior_mu, prior",
    [
        ((EIGHT_Y, EIGHT_SE), (0, 5), HalfCauchy(5)),
        ((SMD_Y, SMD_SE), (0, 1), RHODES_MENTAL_HEALTH_NONPHARM),
        ((HOMOG_Y, HOMOG_SE), (0, 1), HalfNormal(0.5)),
        (([0.3, 0.05], [0.15, 0.2]), (0, 1), HalfCauchy(0.5)),
        (([0.3], [0.15]), (0, 1), HalfNormal(0.5)),
        ((EIGHT_Y, EIGHT_SE), None, UniformTau(1000)),
    ],
)
def test_doubling_the_nodes_changes_nothing(data, prior_mu, prior):
    """N vs 2N (every panel bisected) vs 4N: the stated accuracy (1e-9 relative) with a wide margin."""
    fit = be.fit_exact(*data, prior_mu=prior_mu, prior_tau=prior, mid=0.1)
    for refine in (1, 2):
        finer = be.fit_exact(*data, prior_mu=prior_mu, prior_tau=prior, mid=0.1, refine=refine)
        assert finer.quadrature["nodes"] == 2**refine * fit.quadrature["nodes"]
        assert_close(numbers(fit), numbers(finer), rel=1e-11, abs_=1e-13)
        assert_close(fit.bf_values, finer.bf_values, rel=1e-11)
        if math.isfinite(fit.log_marginal_likelihood):
            assert fit.log_marginal_likelihood == pytest.approx(finer.log_marginal_likelihood, rel=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_doubling_the_nodes_on_random_configurations(seed):
    """Random k (1-100), standard errors over two decades at scales 1e-2..1e2, true tau from 0 to 10 x se,
    priors at scales 1e-3..1e3 x se (half-normal, half-Cauchy, log-t and log-normal on tau^2, uniform), mu
    priors normal (wide, or centred and narrow) or flat: N vs 2N nodes agree to 1e-9 relative (1e-13 absolute
    for values near zero, e.g. tail probabilities)."""
    rng = np.random.default_rng(seed)
    k = int(rng.choice([1, 2, 3, 5, 10, 30, 100]))
    se = np.exp(rng.uniform(math.log(0.01), 0.0, k)) * 10 ** rng.uniform(-2, 2)
    y = rng.normal(0, np.sqrt(se**2 + (rng.choice([0, 0.1, 1, 10]) * se.mean()) ** 2))
    s = se.mean() * 10 ** rng.uniform(-3, 3)
    prior = [
        HalfNormal(s),
        HalfCauchy(s),
        LogTTau2(2 * math.log(s), 2.0),
        UniformTau(3 * s),
        lambda t: stats.norm.logpdf(2 * np.log(t), 2 * math.log(s), 1.5) - np.log(t),
    ][seed % 5]
    prior_mu = [(0, 10 * se.mean()), None, (y.mean(), se.mean())][seed % 3]
    if prior_mu is None and k < 3 and seed % 5 != 3:
        prior_mu = (0, 1.0)
    fit = be.fit_exact(y, se, prior_mu=prior_mu, prior_tau=prior, mid=0.0)
    finer = be.fit_exact(y, se, prior_mu=prior_mu, prior_tau=prior, mid=0.0, refine=1)
    assert_close(numbers(fit), numbers(finer), rel=1e-9, abs_=1e-13)
    assert_close(fit.bf_values, finer.bf_values, rel=1e-9, abs_=1e-300)


@pytest.mark.parametrize("seed", range(0, 40, 3))
def test_compressed_mixture_nodes_change_nothing(seed, monkeypatch):
    """The mixtures run on a Gauss rule in tau^2 for the quadrature nodes with tau < 0.01 min(se); without
    that compression every number agrees to 1e-10 relative (1e-13 absolute)."""
    rng = np.random.default_rng(seed)
    k = int(rng.choice([2, 3, 10, 30, 100]))
    se = np.exp(rng.uniform(math.log(0.01), 0.0, k)) * 10 ** rng.uniform(-2, 2)
    y = rng.normal(0, np.sqrt(se**2 + (rng.choice([0, 0.1, 1, 10]) * se.mean()) ** 2))
    prior = [HalfNormal(se.mean()), HalfCauchy(se.mean()), RHODES_MENTAL_HEALTH_NONPHARM][seed % 3]
    fit = be.fit_exact(y, se, prior_mu=(0, 10 * se.mean()), prior_tau=prior, mid=0.0)
    monkeypatch.setattr(be, "SMALL_TAU_NODES", 10**9)
    full = be.fit_exact(y, se, prior_mu=(0, 10 * se.mean()), prior_tau=prior, mid=0.0)
    assert full.tau_nodes.size >= fit.tau_nodes.size
    assert_close(numbers(fit), numbers(full), rel=1e-10, abs_=1e-13)


def test_against_scipy_quad_with_an_independent_likelihood():
    """p(y | tau) as the multivariate normal density of y (covariance diag(se^2 + tau^2) + s0^2), integrated
    with scipy.integrate.quad on the tau scale."""
    y, se, m0, s0 = np.array(EIGHT_Y, float), np.array(EIGHT_SE, float), 0.0, 5.0
    prior = HalfCauchy(5)

    def joint(t):
        cov = np.diag(se**2 + t**2) + s0**2
        return math.exp(stats.multivariate_normal.logpdf(y, np.full(y.size, m0), cov) + prior.logpdf_tau(t))

    def quad(f):
        return sum(
            integrate.quad(f, a, b, epsabs=0, epsrel=1e-13, limit=500)[0]
            for a, b in [(0, 2), (2, 10), (10, 50), (50, np.inf)]
        )

    def mu_given_tau(t):
        prec = np.sum(1 / (se**2 + t**2)) + 1 / s0**2
        return (np.sum(y / (se**2 + t**2)) + m0 / s0**2) / prec, 1 / prec

    z = quad(joint)
    fit = eight_schools()
    assert fit.log_marginal_likelihood == pytest.approx(math.log(z), rel=1e-11)
    assert fit.values[1, 0] == pytest.approx(quad(lambda t: t * joint(t)) / z, rel=1e-10)
    assert fit.values[0, 0] == pytest.approx(quad(lambda t: mu_given_tau(t)[0] * joint(t)) / z, rel=1e-10)
    p_mu = quad(lambda t: stats.norm.sf(0, *[mu_given_tau(t)[0], math.sqrt(mu_given_tau(t)[1])]) * joint(t)) / z
    assert fit.values[0, 7] == pytest.approx(p_mu, rel=1e-10)
    median_tau = fit.values[1, 2]
    assert quad(lambda t: joint(t) * (t <= median_tau)) / z == pytest.approx(0.5, abs=1e-9)
    mass_below = sum(integrate.quad(joint, a, b, epsabs=0, epsrel=1e-13)[0] for a, b in [(0, 1), (1, median_tau)])
    assert mass_below / z == pytest.approx(0.5, abs=1e-11)


def test_quantiles_equal_brentq_on_the_cdfs():
    fit = be.fit_exact(SMD_Y, SMD_SE, prior_mu=(0, 1), prior_tau=RHODES_MENTAL_HEALTH_NONPHARM, mid=0.2)
    frame = fit.to_frame()
    for i, row in frame.iterrows():
        param, study = row["parameter"], row["study"]
        for col, p in [("ci_low", 0.025), ("median", 0.5), ("ci_high", 0.975)]:
            lo, hi = (1e-300, 50.0) if param == "tau" else (-50.0, 50.0)
            root = optimize.brentq(lambda x: fit.cdf(param, x, study)[0] - p, lo, hi, xtol=1e-15, rtol=1e-15)
            assert row[col] == pytest.approx(root, rel=1e-12, abs=1e-14), (param, study, col)


def test_shortest_intervals_are_shortest():
    fit = eight_schools()
    for i, row in fit.to_frame().iterrows():
        param, study = row["parameter"], row["study"]
        a, b = row["hpd_low"], row["hpd_high"]
        mass = fit.cdf(param, b, study)[0] - (0.0 if param == "tau" and a == 0 else fit.cdf(param, a, study)[0])
        assert mass == pytest.approx(0.95, abs=1e-12)
        assert b - a <= row["ci_high"] - row["ci_low"] + 1e-12
        if not (param == "tau" and a == 0):
            assert fit.pdf(param, a, study)[0] == pytest.approx(fit.pdf(param, b, study)[0], rel=1e-8)
        # no other 95% interval is shorter: scan the lower tail probability
        for p in np.linspace(0.0005, 0.0495, 25):
            lo = optimize.brentq(lambda x: fit.cdf(param, x, study)[0] - p, -1e3 if param != "tau" else 1e-300, 1e3)
            hi = optimize.brentq(lambda x: fit.cdf(param, x, study)[0] - p - 0.95, lo, 1e3)
            assert hi - lo >= b - a - 1e-9


# --- limits and special cases ---------------------------------------------------------------------------


def test_conditionals_at_tau_zero_are_the_common_effect_limits():
    y, se = np.array(SMD_Y), np.array(SMD_SE)
    means, variances = be.conditional_moments(np.array([0.0, 1e-9]), y, se, 0.0, 1.0)
    assert np.all(np.isfinite(means)) and np.all(variances > 0)
    assert np.all(means[2:, 0] == means[0, 0])  # theta_i = mu at tau = 0
    assert np.allclose(variances[2:, 0], variances[0, 0], rtol=1e-15)
    assert variances[1, 0] == variances[0, 0]  # mu_new = mu at tau = 0
    assert_close(means[:, 1], means[:, 0], rel=1e-15, abs_=1e-17)
    prec = np.sum(1 / se**2) + 1.0
    assert means[0, 0] == pytest.approx(np.sum(y / se**2) / prec, rel=1e-15)
    assert variances[0, 0] == pytest.approx(1 / prec, rel=1e-15)


def test_homogeneous_data_tau_piled_at_zero():
    fit = be.fit_exact(HOMOG_Y, HOMOG_SE, prior_mu=(0, 1), prior_tau=HalfNormal(0.5), mid=0.2)
    tau = fit.to_frame().iloc[1]
    assert tau["hpd_low"] == 0.0 and tau["hpd_high"] < tau["ci_high"]
    assert fit.ml_marginal["tau"] == 0.0 and fit.bf_values[1, 0] == 1.0
    assert fit.bf_values[0, 0] > 1  # data favour tau = 0
    grid = np.array([1e-12, 1e-6, 1e-3, 0.01, 0.05])
    assert np.all(np.diff(fit.pdf("tau", grid)) < 0)  # density falls from tau = 0
    identical = be.fit_exact([0.2] * 4, HOMOG_SE, prior_mu=(0, 1), prior_tau=HalfNormal(0.5))
    assert np.all(np.isfinite(identical.values[:, :7]))


def test_log_t_prior_pole_at_zero():
    fit = be.fit_exact(HOMOG_Y, HOMOG_SE, prior_mu=(0, 1), prior_tau=RHODES_MENTAL_HEALTH_NONPHARM)
    assert fit.pdf("tau", 1e-200)[0] > fit.pdf("tau", 1e-10)[0] > fit.pdf("tau", 1e-3)[0]
    assert fit.to_frame().iloc[1]["hpd_low"] == 0.0
    assert fit.quadrature["truncation"]["posterior"] < 1e-12
    # far below the standard errors p(y | tau) = p(y | 0), so the posterior CDF is the prior's times
    # p(y | 0) / p(y) = BF(tau = 0): real (polynomially small) mass down to tau = 1e-100 and below
    prior = RHODES_MENTAL_HEALTH_NONPHARM
    for t in (1e-100, 1e-20, 1e-8):
        prior_cdf = stats.t.cdf(2 * math.log(t), prior.nu, prior.location, prior.scale)
        assert fit.cdf("tau", t)[0] == pytest.approx(prior_cdf * fit.bf_values[0, 0], rel=1e-8)


def test_k1_flat_mu_prior_gives_the_tau_prior_back():
    fit = be.fit_exact([0.3], [0.15], prior_mu=None, prior_tau=HalfNormal(0.5))
    tau = fit.to_frame().iloc[1]
    assert tau["mean"] == pytest.approx(0.5 * math.sqrt(2 / math.pi), rel=1e-12)
    assert tau["median"] == pytest.approx(stats.halfnorm.ppf(0.5, scale=0.5), rel=1e-12)
    assert tau["ci_high"] == pytest.approx(stats.halfnorm.ppf(0.975, scale=0.5), rel=1e-12)
    assert fit.values[0, 0] == pytest.approx(0.3, rel=1e-13)  # mu | tau ~ N(y, se^2 + tau^2)
    p = integrate.quad(
        lambda t: stats.norm.cdf(0.3 / math.hypot(0.15, t)) * stats.halfnorm.pdf(t, scale=0.5),
        0,
        np.inf,
        epsabs=0,
        epsrel=1e-13,
    )[0]
    assert fit.values[0, 7] == pytest.approx(p, rel=1e-11)


def test_k1_half_cauchy_infinite_second_moment_is_reported_as_nan():
    fit = be.fit_exact([0.3], [0.15], prior_mu=(0, 1), prior_tau=HalfCauchy(0.5))
    frame = fit.to_frame().set_index("parameter")
    assert math.isfinite(frame.loc["tau", "mean"]) and math.isnan(frame.loc["tau", "sd"])
    assert math.isnan(frame.loc["mu_new", "sd"]) and math.isfinite(frame.loc["mu", "sd"])
    assert any("E[tau^2]" in note for note in fit.notes)
    assert np.isfinite(frame[["median", "ci_low", "ci_high", "hpd_low", "hpd_high"]].to_numpy(float)).all()


def test_k1_flat_mu_theta_posterior_is_the_likelihood():
    """k = 1, flat mu: theta | tau, y ~ N(y, se^2) whatever tau, so theta's posterior is N(y, se^2) even
    though E[tau] is infinite under the half-Cauchy prior (then mu's SD is NaN, theta's is se)."""
    fit = be.fit_exact([0.3], [0.15], prior_mu=None, prior_tau=HalfCauchy(0.5), mid=0.2)
    theta = fit.to_frame().iloc[3]
    assert theta["mean"] == pytest.approx(0.3, rel=1e-13) and theta["sd"] == pytest.approx(0.15, rel=1e-12)
    assert theta["ci_high"] == pytest.approx(stats.norm.ppf(0.975, 0.3, 0.15), rel=1e-12)
    assert theta["p_gt_mid"] == pytest.approx(stats.norm.sf(0.2, 0.3, 0.15), rel=1e-12)
    assert math.isnan(fit.values[0, 1]) and math.isnan(fit.values[1, 0])


def test_k2_and_k3():
    for y, se in [([0.30, 0.05], [0.15, 0.20]), (SMD_Y, SMD_SE)]:
        for prior in (HalfNormal(0.5), HalfCauchy(0.5), RHODES_MENTAL_HEALTH_NONPHARM, UniformTau(2)):
            fit = be.fit_exact(y, se, prior_mu=(0, 1), prior_tau=prior, mid=0.2)
            assert np.isfinite(fit.values[:, :7]).all() and np.isfinite(fit.values[[0, 2, 3], 7:]).all()
            assert np.isfinite(fit.bf_values).all() and math.isfinite(fit.log_marginal_likelihood)


def test_flat_mu_prior_leaves_marginal_likelihood_undefined():
    fit = be.fit_exact(EIGHT_Y, EIGHT_SE, prior_mu=None, prior_tau=HalfCauchy(5))
    assert math.isnan(fit.log_marginal_likelihood)
    assert np.isnan(fit.bf_values[0]).all() and math.isnan(fit.bf_values[1, 0])
    assert math.isfinite(fit.bf_values[1, 1])  # minimum BF(mu=0) needs a proper tau prior only
    assert any("improper effect prior" in note for note in fit.notes)
    assert be.fit_exact(EIGHT_Y, EIGHT_SE, prior_mu=(0, math.inf), prior_tau=HalfCauchy(5)).values[
        0, 0
    ] == pytest.approx(fit.values[0, 0], rel=1e-14)


def test_improper_posterior_raises():
    with pytest.raises(AnalysisError, match="improper"):
        be.fit_exact([0.3], [0.15], prior_mu=None, prior_tau=lambda t: np.zeros_like(t))  # flat tau, flat mu, k = 1


# --- priors ---------------------------------------------------------------------------------------------


def test_uniform_prior_bound_is_respected_and_found_without_the_attribute():
    fit = be.fit_exact(SMD_Y, SMD_SE, prior_mu=(0, 1), prior_tau=UniformTau(0.3), mid=0.2)
    assert fit.quadrature["u_range"][1] == pytest.approx(math.log(0.3), abs=1e-15)
    assert fit.to_frame().iloc[1]["ci_high"] < 0.3 and fit.tau_nodes.max() < 0.3
    assert fit.cdf("tau", 0.3)[0] == pytest.approx(1.0, abs=1e-15)
    assert be.draw(fit, 20000, 1)["tau"].max() < 0.3
    unif = UniformTau(0.3)
    callable_prior = be.fit_exact(SMD_Y, SMD_SE, prior_mu=(0, 1), prior_tau=lambda t: unif.logpdf_tau(t), mid=0.2)
    assert_close(numbers(callable_prior), numbers(fit), rel=1e-10, abs_=1e-12)
    given = be.fit_exact(SMD_Y, SMD_SE, prior_mu=(0, 1), prior_tau=lambda t: np.zeros_like(t), tau_max=0.3, mid=0.2)
    assert_close(numbers(given), numbers(fit), rel=1e-10, abs_=1e-12)
    assert given.log_marginal_likelihood == pytest.approx(fit.log_marginal_likelihood, rel=1e-11)


def test_user_callable_prior_unnormalised():
    hn = HalfNormal(0.5)
    ref = be.fit_exact(SMD_Y, SMD_SE, prior_mu=(0, 1), prior_tau=hn, mid=0.2)
    user = be.fit_exact(SMD_Y, SMD_SE, prior_mu=(0, 1), prior_tau=lambda t: -2 * np.asarray(t) ** 2 + 7.0, mid=0.2)
    assert_close(numbers(user), numbers(ref), rel=1e-11, abs_=1e-13)
    assert user.log_marginal_likelihood == pytest.approx(ref.log_marginal_likelihood, rel=1e-11)
    assert_close(user.bf_values, ref.bf_values, rel=1e-10)


def test_prior_mu_as_object():
    class Normal:
        loc, scale = 0.0, 5.0

    a = eight_schools()
    b = be.fit_exact(EIGHT_Y, EIGHT_SE, prior_mu=Normal(), prior_tau=HalfCauchy(5), mid=5)
    assert np.array_equal(numbers(a), numbers(b), equal_nan=True)


# --- Bayes factors --------------------------------------------------------------------------------------


def test_bayes_factor_mu0_is_the_savage_dickey_ratio():
    fit = eight_schools()
    assert fit.bf_values[0, 1] == pytest.approx(fit.pdf("mu", 0.0)[0] / stats.norm.pdf(0, 0, 5), rel=1e-10)


def test_bayes_factor_tau0_and_minimum_rows():
    y, se = np.array(SMD_Y), np.array(SMD_SE)
    fit = be.fit_exact(y, se, prior_mu=(0, 1), prior_tau=HalfNormal(0.5))
    cov0 = np.diag(se**2) + 1.0
    p0 = stats.multivariate_normal.pdf(y, np.zeros(3), cov0)
    assert fit.bf_values[0, 0] == pytest.approx(p0 / fit.marginal_likelihood, rel=1e-11)
    best = optimize.minimize_scalar(
        lambda t: -stats.multivariate_normal.logpdf(y, np.zeros(3), np.diag(se**2 + t**2) + 1),
        bounds=(0, 2),
        method="bounded",
        options={"xatol": 1e-12},
    )
    pmax = max(p0, math.exp(-best.fun))
    assert fit.bf_values[1, 0] == pytest.approx(p0 / pmax, rel=1e-10)
    assert fit.bf_values[1, 0] <= 1 and fit.bf_values[1, 1] <= 1


def test_minimum_bayes_factor_tau0_with_an_interior_maximum():
    """Heterogeneous data: p(y | tau) (mu integrated over N(0, 1)) peaks at tau > 0; compare with a direct
    maximisation of the multivariate normal density of y."""
    y, se = np.array([0.8, -0.3, 0.5, 0.1, 0.9]), np.full(5, 0.1)
    fit = be.fit_exact(y, se, prior_mu=(0, 1), prior_tau=HalfNormal(0.5))

    def neg_loglik(t):
        return -stats.multivariate_normal.logpdf(y, np.zeros(5), np.diag(se**2 + t**2) + 1.0)

    best = optimize.minimize_scalar(neg_loglik, bounds=(0.01, 3), method="bounded", options={"xatol": 1e-12})
    assert fit.ml_marginal["tau"] == pytest.approx(best.x, rel=1e-7)
    assert fit.bf_values[1, 0] == pytest.approx(math.exp(best.fun - neg_loglik(0.0)), rel=1e-11)
    assert fit.bf_values[1, 0] < 1e-10


# --- draws ----------------------------------------------------------------------------------------------


def test_draws_reproducible_and_byte_identical_across_processes():
    fit = eight_schools()
    a, b = be.draw(fit, 1000, 42), be.draw(fit, 1000, 42)
    for key in a:
        assert a[key].tobytes() == b[key].tobytes()
    assert not np.array_equal(a["mu"], be.draw(fit, 1000, 43)["mu"])
    digest = hashlib.sha256(b"".join(a[key].tobytes() for key in sorted(a))).hexdigest()
    code = (
        "import hashlib; from imrstats.meta import bayes_exact as be; from imrstats.meta.bayes import HalfCauchy\n"
        "fit = be.fit_exact([28,8,-3,7,-1,1,18,12], [15,10,16,11,9,11,10,18], prior_mu=(0,5), "
        "prior_tau=HalfCauchy(5), mid=5)\n"
        "d = be.draw(fit, 1000, 42)\n"
        "print(hashlib.sha256(b''.join(d[k].tobytes() for k in sorted(d))).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == digest


def test_draws_match_the_posterior_within_monte_carlo_error():
    fit = eight_schools()
    n = 200_000
    d = be.draw(fit, n, 2024)
    assert d["theta"].shape == (n, 8)
    frame = fit.to_frame()
    for i, (key, col) in enumerate([("mu", None), ("tau", None), ("mu_new", None)] + [("theta", j) for j in range(8)]):
        x = d[key] if col is None else d[key][:, col]
        mean, sd = frame.iloc[i]["mean"], frame.iloc[i]["sd"]
        assert abs(x.mean() - mean) < 4.5 * sd / math.sqrt(n), key
        assert x.std() == pytest.approx(sd, rel=0.02)
    # the tau draws follow the tau CDF (Kolmogorov-Smirnov, 0.1% level)
    tau = np.sort(d["tau"])
    ecdf_gap = np.max(np.abs(fit.cdf("tau", tau) - np.arange(1, n + 1) / n))
    assert ecdf_gap < 1.95 / math.sqrt(n)
    # P(mu > 0) and P(mu_new > mid)
    assert abs((d["mu"] > 0).mean() - frame.iloc[0]["p_gt_0"]) < 4.5 * math.sqrt(0.1 * 0.9 / n)
    p = frame.iloc[2]["p_gt_mid"]
    assert abs((d["mu_new"] > 5).mean() - p) < 4.5 * math.sqrt(p * (1 - p) / n)


# --- inputs and output ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "y, se, match",
    [
        ([0.1, 0.2], [0.1, -0.1], "se must be finite and > 0"),
        ([0.1, 0.2], [0.1, 0.0], "se must be finite and > 0"),
        ([0.1, float("nan")], [0.1, 0.1], "missing or infinite"),
        ([0.1, 0.2], [0.1, float("nan")], "se must be finite"),
        ([0.1, 0.2, 0.3], [0.1, 0.1], "one standard error per effect"),
        ([], [], "empty"),
    ],
)
def test_bad_inputs_rejected(y, se, match):
    with pytest.raises(InputError, match=match):
        be.fit_exact(y, se, prior_mu=(0, 1), prior_tau=HalfNormal(0.5))


def test_bad_settings_rejected():
    with pytest.raises(InputError):
        be.fit_exact(SMD_Y, SMD_SE, prior_mu=(0, -1), prior_tau=HalfNormal(0.5))
    with pytest.raises(InputError):
        be.fit_exact(SMD_Y, SMD_SE, prior_mu=(0, 1), prior_tau=HalfNormal(0.5), ci=1.5)
    with pytest.raises(InputError):
        be.fit_exact(SMD_Y, SMD_SE, prior_mu=(0, 1), prior_tau="half-normal")
    with pytest.raises(InputError):
        be.fit_exact(SMD_Y, SMD_SE, labels=["a", "a", "b"], prior_mu=(0, 1), prior_tau=HalfNormal(0.5))
    with pytest.raises(InputError):
        be.draw(eight_schools(), 0, 1)


def test_frame_and_summary():
    fit = be.fit_exact(SMD_Y, SMD_SE, labels=["A", "B", "C"], prior_mu=(0, 1), prior_tau=HalfNormal(0.5), mid=0.2)
    frame = fit.to_frame()
    assert list(frame.columns) == be.SUMMARY_COLUMNS
    assert list(frame["parameter"]) == ["mu", "tau", "mu_new", "theta", "theta", "theta"]
    assert list(frame["study"])[:3] == [None, None, None] and list(frame["study"])[3:] == ["A", "B", "C"]
    assert frame["method"].str.contains("exact, quadrature").all()
    assert math.isnan(frame.iloc[1]["p_gt_0"])
    text = fit.summary()
    for piece in [
        "exact, quadrature",
        "k = 3",
        "Normal(0, 1^2)",
        "HalfNormal(0.5)",
        "Bayes factors",
        "BF(tau=0)",
        "BF(mu=0)",
        "marginal likelihood",
    ]:
        assert piece in text
    with pytest.raises(dataclasses_frozen_error()):
        fit.ci = 0.9


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


@pytest.mark.parametrize(
    ("prior", "says"),
    [
        (HalfNormal(0.5), "tau ~ HalfNormal(0.5)"),
        (LogTTau2(-3.85, 1.93), "log(tau^2) ~ t5(-3.85, 1.93)"),
        (lambda tau: stats.halfnorm.logpdf(tau, scale=0.5), "tau ~ user log density"),
    ],
)
def test_the_method_names_the_tau_prior_once(prior, says):
    fit = be.fit_exact(SMD_Y, SMD_SE, prior_mu=(0, 1), prior_tau=prior)
    assert says in fit.method and "tau ~ tau" not in fit.method and "tau ~ log" not in fit.method
    assert says in fit.summary()
