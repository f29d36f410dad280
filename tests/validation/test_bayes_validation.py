"""imrstats.meta.bayes against exact posteriors computed in R (tests/validation/r/bayes.R), and against two
published eight-schools posteriors (RStan's "Getting Started" table; ArviZ's `non_centered_eight` draws).

The references are not MCMC output: R integrates mu and theta out analytically and integrates over
log(tau) numerically (stats::integrate, rel.tol 1e-11), so they are exact up to ~1e-9. Our numbers
are Monte Carlo estimates, so every comparison allows 4 Monte Carlo standard errors taken from the
run itself (arviz MCSE of the mean / quantile / indicator), plus 1e-6 for the quadrature:

    |ours - exact| <= 4 * MCSE + 1e-6

For a correctly specified sampler a 4-MCSE miss has probability ~6e-5 per comparison; the seeds are
fixed, so the test is deterministic. A wrong prior density, a wrong Jacobian or a sampler bias of the
size that matters (>= ~0.5 posterior SD / sqrt(ESS) * 4) fails it.

Reference numbers printed by `Rscript tests/validation/r/bayes.R` (R 4.2.2, metafor), pinned here.

Published posteriors are Monte Carlo estimates themselves, so a comparison with one allows 4 combined
standard errors, sqrt(MCSE_ours^2 + MCSE_published^2), plus half a unit of the published rounding.
"""

import math
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

from imrstats.meta.bayes import HalfCauchy, HalfNormal, LogNormalTau2, LogTTau2, Normal, UniformTau, shared_sampler

DATA = Path(__file__).parent / "data"
QUAD_TOL = 1e-6
DRAWS = 4000

R_EIGHT_SCHOOLS_HC5 = {  # mu ~ N(0, 5), tau ~ HalfCauchy(5)
    "mu_mean": 4.39682069990776,
    "mu_sd": 3.31770447239192,
    "tau_mean": 3.59770570765116,
    "p_mu_gt_0": 0.907592137745584,
    "p_new_gt_0": 0.828316245961532,
    "theta_mean": [
        6.2118843029151,
        4.94017843934868,
        3.92700435940858,
        4.75709829974243,
        3.61547695292386,
        4.0426125998952,
        6.29672423169871,
        4.85425333438015,
    ],
    "mu_q025": -2.16839597238201,
    "mu_q975": 10.8523108354019,
}

# BDA3's prior (Gelman et al. 2013, sections 5.4-5.5): p(mu, tau) flat on tau > 0. We sample it as
# mu ~ N(0, 10000), tau ~ Uniform(0, 1000): R gives the exact posterior of both; they differ by < 3e-6
# (flat: mu mean 7.93237502600855, tau mean 6.57548354515133), far below Monte Carlo error.
R_EIGHT_SCHOOLS_FLAT = {  # mu ~ N(0, 1e4), tau ~ Uniform(0, 1000)
    "mu_mean": 7.93237284632263,
    "mu_sd": 5.17839326792791,
    "tau_mean": 6.57548293547377,
    "p_mu_gt_0": 0.944444123448901,
    "p_new_gt_0": 0.853100537415257,
    "theta_mean": [
        11.4002590871831,
        7.89455102656567,
        6.13074542796002,
        7.64467731551508,
        5.12642304480208,
        6.13853501533492,
        10.6669819369614,
        8.45681614369681,
    ],
    "mu_q025": -2.09022114237674,
    "mu_q975": 18.2181378894623,
}

# Published: the RStan "Getting Started" wiki, Example 1 "Eight Schools" (github.com/stan-dev/rstan/wiki/
# RStan-Getting-Started; the printed `print(fit)` table, NUTS, 4 chains x 500 post-warmup draws, run on
# 2018-09-20). Its Stan program puts no prior on mu and only <lower=0> on tau: BDA3's flat prior.
# (parameter: published mean, published se_mean) as printed, to two decimals.
PUBLISHED_RSTAN_FLAT = {
    "mu": (7.67, 0.15),
    "tau": (6.53, 0.20),
    "theta[1]": (11.11, 0.19),
    "theta[2]": (7.77, 0.14),
    "theta[3]": (6.16, 0.17),
    "theta[4]": (7.68, 0.15),
    "theta[5]": (5.10, 0.14),
    "theta[6]": (6.06, 0.15),
    "theta[7]": (10.65, 0.15),
    "theta[8]": (8.31, 0.18),
}
PUBLISHED_ROUNDING = 0.005

R_SMD = {  # synthetic SMDs, mu ~ N(0, 1), MID 0.2
    "half_normal_0.5": {
        "mu_mean": 0.243827056025241,
        "mu_sd": 0.0921190811161027,
        "tau_mean": 0.152297327659979,
        "p_mu_gt_0": 0.993473828459632,
        "p_new_gt_0": 0.918366967922852,
        "p_mu_gt_0.2": 0.695084895436556,
        "p_new_gt_0.2": 0.610575565149717,
        "theta_mean": [
            0.257419141045833,
            0.280179796974656,
            0.291676954469538,
            0.177770980088197,
            0.106906228002028,
            0.265333551269473,
            0.336068825954775,
        ],
        "mu_q025": 0.0693965767059952,
        "mu_q975": 0.436628693063459,
    },
    "half_cauchy_0.5": {
        "mu_mean": 0.243336874767737,
        "mu_sd": 0.0907904573561972,
        "tau_mean": 0.148103947593223,
        "p_mu_gt_0": 0.993962421137969,
        "p_new_gt_0": 0.921768827884844,
        "p_mu_gt_0.2": 0.69523078826721,
        "p_new_gt_0.2": 0.611616355212264,
        "theta_mean": [
            0.256805041947472,
            0.278769006245908,
            0.289487047208919,
            0.179037364486341,
            0.109226777192439,
            0.264503676530117,
            0.333663827458979,
        ],
        "mu_q025": 0.0717241307582431,
        "mu_q975": 0.432919121596618,
    },
    "rhodes_mh_nonpharm": {
        "mu_mean": 0.240069303887356,
        "mu_sd": 0.080613293588208,
        "tau_mean": 0.120115626143778,
        "p_mu_gt_0": 0.997239942451678,
        "p_new_gt_0": 0.945561812596501,
        "p_mu_gt_0.2": 0.696769897814117,
        "p_new_gt_0.2": 0.618398660794437,
        "theta_mean": [
            0.252793769785546,
            0.269200152876431,
            0.274616819221861,
            0.187762028451587,
            0.124604177181088,
            0.259001074125047,
            0.317558516848494,
        ],
        "mu_q025": 0.0869932286587803,
        "mu_q975": 0.406172638645231,
    },
    "turner_mh_nonpharm": {
        "mu_mean": 0.246757925483774,
        "mu_sd": 0.0939279930523629,
        "tau_mean": 0.168231013545983,
        "p_mu_gt_0": 0.993601669693791,
        "p_new_gt_0": 0.90777433594999,
        "p_mu_gt_0.2": 0.701169006904061,
        "p_new_gt_0.2": 0.605185402656751,
        "theta_mean": [
            0.262246940781484,
            0.288149300187234,
            0.300520671813454,
            0.171461714990503,
            0.0908366444788725,
            0.271292178578129,
            0.351921295482725,
        ],
        "mu_q025": 0.0666237757027479,
        "mu_q975": 0.439852533332685,
    },
}
SMD_PRIORS = {
    "half_normal_0.5": HalfNormal(0.5),
    "half_cauchy_0.5": HalfCauchy(0.5),
    "rhodes_mh_nonpharm": LogTTau2(-3.85, 1.93, 5.0),
    "turner_mh_nonpharm": LogNormalTau2(-2.34, 1.72),
}

R_WIDE = {"mu_mean": 0.246030070833038, "reml_mu": 0.243132741235308}  # mu ~ N(0, 1000), tau ~ HN(0.5)
R_WIDE_EQUAL_SE = {"mu_mean": 0.284285712219129, "reml_mu": 0.284285714285714}


@pytest.fixture(scope="module")
def sampler():
    return shared_sampler(capacity=8)


@pytest.fixture(scope="module")
def schools():
    return pd.read_csv(DATA / "bayes_eight_schools.csv")


@pytest.fixture(scope="module")
def smd():
    return pd.read_csv(DATA / "bayes_smd_synthetic.csv")


def _draws(result, name):
    return np.asarray(result.posterior["posterior"][name].values)


def _assert_close(what, ours, exact, mcse):
    assert abs(ours - exact) <= 4 * mcse + QUAD_TOL, (
        f"{what}: ours {ours:.6g} vs exact {exact:.6g}; |diff| = {abs(ours - exact):.3g} > 4 MCSE = {4 * mcse:.3g}"
    )


def _compare_to_exact(result, ref, thresholds):
    mu, tau, mu_new = (_draws(result, n) for n in ("mu", "tau", "mu_new"))
    _assert_close("mu mean", result.estimate("mu"), ref["mu_mean"], float(az.mcse(mu)))
    _assert_close("mu sd", float(mu.std(ddof=1)), ref["mu_sd"], float(az.mcse(mu, method="sd")))
    _assert_close("tau mean", result.estimate("tau"), ref["tau_mean"], float(az.mcse(tau)))
    for prob, key in ((0.025, "mu_q025"), (0.975, "mu_q975")):
        row = result.estimates.set_index("quantity").loc["mu"]
        ours = row["ci_low"] if prob < 0.5 else row["ci_high"]
        _assert_close(f"mu {prob} quantile", ours, ref[key], float(az.mcse(mu, method="quantile", prob=prob)))
    for c in thresholds:
        text = f"{c:g}"
        est = result.estimates.set_index("quantity")
        _assert_close(
            f"P(mu > {text})",
            est.at[f"P(mu > {text})", "estimate"],
            ref[f"p_mu_gt_{text}"],
            est.at[f"P(mu > {text})", "se"],
        )
        _assert_close(
            f"P(mu_new > {text})",
            est.at[f"P(mu_new > {text})", "estimate"],
            ref[f"p_new_gt_{text}"],
            est.at[f"P(mu_new > {text})", "se"],
        )
    theta = _draws(result, "theta")
    for i, exact in enumerate(ref["theta_mean"]):
        _assert_close(
            f"theta[{i}] mean", float(result.study_effects["theta_mean"].iloc[i]), exact, float(az.mcse(theta[:, :, i]))
        )
    assert float(mu_new.mean()) == pytest.approx(result.estimate("mu_new"))


def test_eight_schools_matches_exact_posterior(sampler, schools):
    """The default (marginal) parameterization; the non-centred one is checked on the same reference below."""
    result = sampler.fit(
        schools.y, schools.se, schools.school, prior_mu=Normal(0, 5), prior_tau=HalfCauchy(5), seed=2024, draws=DRAWS
    ).check_diagnostics()
    _compare_to_exact(result, R_EIGHT_SCHOOLS_HC5, thresholds=[0.0])


def test_non_centred_parameterization_matches_the_same_exact_posterior(schools, smd):
    sampler = shared_sampler(capacity=8, parameterization="non_centred")
    result = sampler.fit(
        schools.y, schools.se, schools.school, prior_mu=Normal(0, 5), prior_tau=HalfCauchy(5), seed=2024, draws=DRAWS
    ).check_diagnostics()
    assert "non-centred" in result.method
    _compare_to_exact(result, R_EIGHT_SCHOOLS_HC5, thresholds=[0.0])
    result = sampler.fit(
        smd.yi,
        smd.sei,
        smd.study,
        prior_mu=Normal(0, 1),
        prior_tau=SMD_PRIORS["half_normal_0.5"],
        mid=0.2,
        seed=7,
        draws=DRAWS,
    ).check_diagnostics()
    _compare_to_exact(result, R_SMD["half_normal_0.5"], thresholds=[0.0, 0.2])


@pytest.mark.parametrize("key", list(SMD_PRIORS))
def test_each_prior_family_matches_exact_posterior(sampler, smd, key):
    result = sampler.fit(
        smd.yi, smd.sei, smd.study, prior_mu=Normal(0, 1), prior_tau=SMD_PRIORS[key], mid=0.2, seed=7, draws=DRAWS
    ).check_diagnostics()
    _compare_to_exact(result, R_SMD[key], thresholds=[0.0, 0.2])


def test_wide_prior_mu_approaches_reml(sampler, smd):
    """Unequal SEs: E(mu | y) averages the GLS estimate over the tau posterior, so it differs from REML
    by a known amount (|exact - REML| = 0.0029 here, the prior's and tau uncertainty's influence);
    we must sit within that plus Monte Carlo error of REML, and within MC error of the exact value."""
    result = sampler.fit(
        smd.yi, smd.sei, smd.study, prior_mu=Normal(0, 1000), prior_tau=HalfNormal(0.5), seed=11, draws=DRAWS
    ).check_diagnostics()
    mcse = float(az.mcse(_draws(result, "mu")))
    ours = result.estimate("mu")
    _assert_close("wide-prior mu vs exact", ours, R_WIDE["mu_mean"], mcse)
    known_gap = abs(R_WIDE["mu_mean"] - R_WIDE["reml_mu"])
    assert abs(ours - R_WIDE["reml_mu"]) <= known_gap + 4 * mcse


def test_wide_prior_equal_se_recovers_reml(sampler, smd):
    """Equal SEs: the GLS estimate is the plain mean for every tau, so E(mu | y) = REML mu up to the
    N(0, 1000) prior's 2e-9 pull; only Monte Carlo error separates us from REML."""
    se = np.full(len(smd), 0.15)
    result = sampler.fit(
        smd.yi, se, smd.study, prior_mu=Normal(0, 1000), prior_tau=HalfNormal(0.5), seed=13, draws=DRAWS
    ).check_diagnostics()
    _assert_close(
        "equal-SE wide-prior mu vs REML",
        result.estimate("mu"),
        R_WIDE_EQUAL_SE["reml_mu"],
        float(az.mcse(_draws(result, "mu"))),
    )


def _assert_within_mc(what, ours, mcse_ours, published, mcse_published, rounding=0.0):
    tol = 4 * math.hypot(mcse_ours, mcse_published) + rounding
    assert abs(ours - published) <= tol, (
        f"{what}: ours {ours:.4g} (MCSE {mcse_ours:.3g}) vs published {published:.4g} (MCSE {mcse_published:.3g}); "
        f"|diff| = {abs(ours - published):.3g} > {tol:.3g}"
    )


@pytest.fixture(scope="module")
def flat_fit(sampler, schools):
    return sampler.fit(
        schools.y,
        schools.se,
        schools.school,
        prior_mu=Normal(0, 1e4),
        prior_tau=UniformTau(1000),
        seed=2024,
        draws=DRAWS,
    ).check_diagnostics()


def test_eight_schools_bda3_flat_prior_matches_exact_posterior(flat_fit):
    _compare_to_exact(flat_fit, R_EIGHT_SCHOOLS_FLAT, thresholds=[0.0])


def test_eight_schools_bda3_flat_prior_matches_published_rstan(flat_fit):
    """Every posterior mean RStan's Getting Started page prints (mu, tau, theta[1..8])."""
    theta = _draws(flat_fit, "theta")
    ours = {"mu": _draws(flat_fit, "mu"), "tau": _draws(flat_fit, "tau")}
    ours.update({f"theta[{i + 1}]": theta[:, :, i] for i in range(theta.shape[-1])})
    for name, (published, se_published) in PUBLISHED_RSTAN_FLAT.items():
        _assert_within_mc(
            f"{name} mean vs RStan Getting Started",
            float(ours[name].mean()),
            float(az.mcse(ours[name])),
            published,
            se_published,
            PUBLISHED_ROUNDING,
        )


def test_eight_schools_matches_published_arviz_posterior(sampler, schools):
    """ArviZ ships a published eight-schools posterior, `non_centered_eight` (PyMC 5.20 NUTS, 4 x 500
    draws; mu ~ N(0, 5), tau ~ HalfCauchy(5), as its prior group confirms): the means of mu, tau and
    every school's theta must agree with ours within the two runs' combined Monte Carlo error."""
    from arviz_base import load_arviz_data

    published = load_arviz_data("non_centered_eight")
    prior = published["prior"]
    assert float(prior["mu"].std()) == pytest.approx(5, rel=0.1)
    assert float(prior["tau"].median()) == pytest.approx(5, rel=0.15)  # HalfCauchy(5) median = 5
    assert list(published["observed_data"]["obs"].values) == list(schools.y)
    assert list(published["constant_data"]["sigma"].values) == list(schools.se)

    result = sampler.fit(
        schools.y, schools.se, schools.school, prior_mu=Normal(0, 5), prior_tau=HalfCauchy(5), seed=99, draws=DRAWS
    ).check_diagnostics()
    post = published["posterior"]
    theirs = {"mu": post["mu"].values, "tau": post["tau"].values}
    theirs.update({f"theta[{i + 1}]": post["theta"].values[:, :, i] for i in range(8)})
    theta = _draws(result, "theta")
    ours = {"mu": _draws(result, "mu"), "tau": _draws(result, "tau")}
    ours.update({f"theta[{i + 1}]": theta[:, :, i] for i in range(8)})
    for name in theirs:
        _assert_within_mc(
            f"{name} mean vs ArviZ non_centered_eight",
            float(ours[name].mean()),
            float(az.mcse(ours[name])),
            float(theirs[name].mean()),
            float(az.mcse(theirs[name])),
        )
    _assert_within_mc(
        "mu sd vs ArviZ non_centered_eight",
        float(ours["mu"].std(ddof=1)),
        float(az.mcse(ours["mu"], method="sd")),
        float(theirs["mu"].std(ddof=1)),
        float(az.mcse(theirs["mu"], method="sd")),
    )


def test_published_eight_schools_posteriors_agree_with_the_exact_references():
    """The references check each other: RStan's printed means against R's exact flat-prior posterior, and
    ArviZ's draws against the exact HalfCauchy(5) posterior, each within the published run's own MC error."""
    from arviz_base import load_arviz_data

    for name, exact in (("mu", R_EIGHT_SCHOOLS_FLAT["mu_mean"]), ("tau", R_EIGHT_SCHOOLS_FLAT["tau_mean"])):
        published, se = PUBLISHED_RSTAN_FLAT[name]
        _assert_within_mc(f"RStan {name}", published, se, exact, 0.0, PUBLISHED_ROUNDING)
    for i, exact in enumerate(R_EIGHT_SCHOOLS_FLAT["theta_mean"]):
        published, se = PUBLISHED_RSTAN_FLAT[f"theta[{i + 1}]"]
        _assert_within_mc(f"RStan theta[{i + 1}]", published, se, exact, 0.0, PUBLISHED_ROUNDING)
    post = load_arviz_data("non_centered_eight")["posterior"]
    for name, exact in (("mu", R_EIGHT_SCHOOLS_HC5["mu_mean"]), ("tau", R_EIGHT_SCHOOLS_HC5["tau_mean"])):
        draws = post[name].values
        _assert_within_mc(f"ArviZ {name}", float(draws.mean()), float(az.mcse(draws)), exact, 0.0)
