"""Bayesian multiple imputation for reference-based strategies (rbmi's method_bayes) against rbmi's published
output and against exact posteriors.

1. rbmi vignette quickstart, section 6 Pool (printed ``as.data.frame(poolObj)``; values in
   data/rbmi_quickstart_bayes_reference.json): Bayesian MI, m = 150, JR for every ICE (first missing visit of the
   final run; patient 3618's intermittent value MAR), reference PLACEBO, imputation model
   CHANGE ~ THERAPY * VISIT + BASVAL * VISIT, ANCOVA per visit on BASVAL, Rubin's rules.
   Tolerance: both runs are random. Ours states its Monte Carlo SE (MCSE) for every number; rbmi's printed numbers
   carry an MCSE it does not print, which we take equal to ours (the same m = 150 near-independent posterior draws
   of the same model and prior). Their difference then has SD sqrt(MCSE_ours^2 + MCSE_rbmi^2) = sqrt(2) MCSE, and
   we require |ours - rbmi| <= 4 sqrt(2) MCSE. At visit 4 no value is missing: every completed data set is the
   same, so the numbers there are deterministic and must match to 1e-6.
2. The sampler itself: (a) with no ICE (MAR) on the antidepressant data, the posterior means of beta and Sigma over
   many draws are close to the REML fit and the posterior SDs of beta close to the REML SEs; (b) on a simulated
   complete data set the draws of Sigma follow the exact inverse-Wishart posterior and those of beta the exact
   matrix-t; (c) on simulated two-visit data with dropout the draws follow the exact posterior, which factorises
   (visit 1; visit 2 given visit 1) into two conjugate regressions.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imrstats.trial.design import StudyDesign
from imrstats.trial.reference_mi import (
    fit_imputation_model,
    ice_from_dropout,
    reference_based_bayes,
    rhat_ess_draws,
    sample_mmrm_posterior,
    trial_frame_from_long,
)

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]
VISITS = ("4", "5", "6", "7")
DESIGN = StudyDesign(visits=VISITS, intervention="DRUG", control="PLACEBO")


@pytest.fixture(scope="module")
def frame():
    data = pd.read_csv(ROOT / "data/examples/antidepressant/antidepressant.csv", dtype={"PATIENT": str, "VISIT": str})
    return trial_frame_from_long(
        data, id="PATIENT", visit="VISIT", arm="THERAPY", outcome="HAMDTL17", baseline="BASVAL", visits=VISITS
    )


@pytest.fixture(scope="module")
def quickstart(frame):
    ice = ice_from_dropout(frame, DESIGN, strategy="JR").table
    # a fixed seed: rbmi's Stan draws and ours come from different generators, so only agreement within MC error
    return reference_based_bayes(frame, ice, DESIGN, seed=1821, m=150, change=True)


def rbmi_rows() -> dict:
    ref = json.loads((DATA / "rbmi_quickstart_bayes_reference.json").read_text())
    return {row["parameter"]: row for row in ref["rows"]}


def ours_as_rbmi(estimates: pd.DataFrame, visit: str) -> dict:
    """Our rows for a visit in rbmi's naming: ref = DRUG (THERAPY's first level), alt = PLACEBO, trt = alt - ref
    (so trt is minus our DRUG - PLACEBO contrast and its CI limits swap and change sign)."""
    at = estimates[estimates["timepoint"] == visit]
    contrast = at[at["arm"].isna()].iloc[0]
    out = {
        f"trt_{visit}": {
            "est": -contrast["estimate"],
            "se": contrast["se"],
            "lci": -contrast["ci_high"],
            "uci": -contrast["ci_low"],
            "pval": contrast["p"],
            "mcse": {
                "est": contrast["mcse_estimate"],
                "se": contrast["mcse_se"],
                "lci": contrast["mcse_ci_high"],
                "uci": contrast["mcse_ci_low"],
                "pval": contrast["mcse_p"],
            },
        }
    }
    for name, arm in (("ref", "DRUG"), ("alt", "PLACEBO")):
        row = at[at["arm"] == arm].iloc[0]
        out[f"lsm_{name}_{visit}"] = {
            "est": row["estimate"],
            "se": row["se"],
            "lci": row["ci_low"],
            "uci": row["ci_high"],
            "pval": row["p"],
            "mcse": {
                "est": row["mcse_estimate"],
                "se": row["mcse_se"],
                "lci": row["mcse_ci_low"],
                "uci": row["mcse_ci_high"],
                "pval": row["mcse_p"],
            },
        }
    return out


def test_quickstart_setup_matches_the_vignette(quickstart):
    # rbmi vignette quickstart, section 4 Impute: missing 0% / 8% / 13% / 25% at visits 4-7; every ICE JR
    assert quickstart.n_participants == 172 and quickstart.n_excluded == 0
    assert quickstart.strategies == {"JR": 43}
    imputed = quickstart.imputed.groupby("timepoint")["n_imputed"].sum()
    assert [round(100 * imputed[v] / 172) for v in VISITS] == [0, 8, 13, 25]
    assert quickstart.m == 150 and quickstart.converged, quickstart.flags


def test_quickstart_visit_4_is_deterministic_and_matches(quickstart):
    """No value is missing at visit 4: all 150 completed data sets agree there, B = 0, and our pooled numbers
    must equal rbmi's printed ones (rbmi vignette quickstart, section 6 Pool: trt_4 -0.09180645, se 0.6826279,
    CI -1.43949684 to 1.2558839, p 0.8931772; lsm_ref_4 -1.61581996; lsm_alt_4 -1.70762640)."""
    rbmi = rbmi_rows()
    ours = ours_as_rbmi(quickstart.estimates, "4")
    for name, row in ours.items():
        for key in ("est", "se", "lci", "uci", "pval"):
            assert row[key] == pytest.approx(rbmi[name][key], rel=1e-6), (name, key)
            assert row["mcse"][key] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("visit", ["5", "6", "7"])
def test_quickstart_pooled_results_within_monte_carlo_error(quickstart, visit):
    """rbmi vignette quickstart, section 6 Pool, printed values (e.g. trt_7 2.15599480, se 1.1134511, CI -0.04442256
    to 4.3564122, p 0.05474508; lsm_ref_7 -6.96537194; lsm_alt_7 -4.80937714): every estimate, SE, CI limit and
    p-value within 4 sqrt(2) x our stated MCSE (ours and rbmi's MC errors combined, rbmi's taken equal to ours)."""
    rbmi = rbmi_rows()
    for name, row in ours_as_rbmi(quickstart.estimates, visit).items():
        for key in ("est", "se", "lci", "uci", "pval"):
            mcse = row["mcse"][key]
            assert 0 < mcse < 0.1, (name, key, mcse)
            tol = 4 * np.sqrt(2) * mcse + 5e-9
            assert abs(row[key] - rbmi[name][key]) <= tol, (name, key, row[key], rbmi[name][key], tol)


def test_quickstart_monte_carlo_error_is_the_between_imputation_spread(quickstart):
    # the MCSE of each pooled estimate is sqrt(B / m_eff), m_eff the ESS of the 150 per-imputation estimates (<= m)
    est = quickstart.estimates
    varying = est["b"] > 0
    m_eff = est.loc[varying, "ess_imputations"]
    assert (m_eff <= 150).all() and (m_eff > 75).all()
    assert np.allclose(est.loc[varying, "mcse_estimate"], np.sqrt(est.loc[varying, "b"] / m_eff), rtol=1e-12)


def test_posterior_means_close_to_reml_without_ices(frame):
    """MAR, no ICE: over 12,000 draws the posterior mean of beta and Sigma is close to the REML fit. They are not
    equal: a posterior mean differs from the REML maximum by O(1/n) (the posterior of Sigma is skewed; averaging
    the GLS beta over it shifts beta). For complete data with one regression per visit they would coincide exactly
    for Sigma (the inverse-Wishart prior with J + 2 df centred at the REML Sigma gives posterior mean
    (S_REML + S_res) / (n - k + 1) = S_REML); with the dropout here we allow 4 MCSE plus |REML Sigma| / n for Sigma
    and 4 MCSE plus posterior SD / sqrt(n) for beta (n = 172), and posterior SDs of beta within 5% of the REML SEs."""
    model = fit_imputation_model(frame, pd.DataFrame(columns=["id", "visit", "strategy"]), DESIGN, change=True)
    post = sample_mmrm_posterior(
        model.X,
        model.y,
        model.fit_observed,
        n_draws=12_000,
        seed=20240611,
        prior_scale=model.sigma,
        start_beta=model.beta,
        chains=4,
        burn_in=200,
        thin=1,
    )
    assert post.converged, post.flags
    n = len(model.ids)
    beta = post.beta.reshape(4, 3000, -1).transpose(2, 0, 1)
    _, ess = rhat_ess_draws(beta)
    mean, sd = post.beta.mean(axis=0), post.beta.std(axis=0, ddof=1)
    mcse = sd / np.sqrt(ess)
    assert np.all(np.abs(mean - model.beta) <= 4 * mcse + sd / np.sqrt(n))
    se_reml = np.sqrt(np.diag(reml_cov_beta(model)))
    assert np.allclose(sd / se_reml, 1.0, atol=0.05)
    rows, cols = np.tril_indices(len(VISITS))
    sig = post.sigma[:, rows, cols]
    _, ess_s = rhat_ess_draws(sig.reshape(4, 3000, -1).transpose(2, 0, 1))
    mcse_s = sig.std(axis=0, ddof=1) / np.sqrt(ess_s)
    reml = model.sigma[rows, cols]
    assert np.all(np.abs(sig.mean(axis=0) - reml) <= 4 * mcse_s + np.abs(reml) / n)


def reml_cov_beta(model) -> np.ndarray:
    """(sum_i X_iO' Sigma_OO^-1 X_iO)^-1 at the REML Sigma over the fitted cells (the REML fit's cov(beta))."""
    info = 0.0
    for X, obs in zip(model.X, model.fit_observed):
        Xo = X[obs]
        info = info + Xo.T @ np.linalg.solve(model.sigma[np.ix_(obs, obs)], Xo)
    return np.linalg.inv(info)


def visitwise_design(x: np.ndarray, J: int) -> np.ndarray:
    """X_i = I_J (x) x_i': one regression on the same covariates per visit (participants, J, J * k)."""
    n, k = x.shape
    X = np.zeros((n, J, J * k))
    for j in range(J):
        X[:, j, j * k : (j + 1) * k] = x
    return X


def test_complete_data_draws_follow_the_exact_inverse_wishart_posterior():
    """Complete data, one regression per visit on the same k covariates (a multivariate regression Y = x B + E),
    flat prior on B and Sigma ~ IW(nu0, S0): the exact posterior is Sigma | Y ~ IW(nu0 + n - k, S0 + S_res) and
    vec(B) | Y a matrix t with mean the OLS fit and covariance E[Sigma | Y] (x) (x'x)^-1. The Gibbs draws must match:
    means within 4 MCSE, and the distribution of a' Sigma^-1 a / a' S_post^-1 a, which is chi-square(nu0 + n - k),
    by a Kolmogorov-Smirnov test on near-independent (thinned) draws."""
    rng = np.random.default_rng(11)
    n, J, k = 40, 3, 3
    x = np.column_stack([np.ones(n), rng.integers(0, 2, n), rng.normal(20, 4, n)])
    true = np.array([[4.0, 2.0, 1.5], [2.0, 5.0, 2.5], [1.5, 2.5, 6.0]])
    Y = x @ rng.normal(0, 1, (k, J)) + rng.multivariate_normal(np.zeros(J), true, n)
    S0 = np.array([[3.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 3.0]])
    nu0 = J + 2
    B_ols = np.linalg.solve(x.T @ x, x.T @ Y)
    S_post = S0 + (Y - x @ B_ols).T @ (Y - x @ B_ols)
    nu_post = nu0 + n - k
    post = sample_mmrm_posterior(
        visitwise_design(x, J),
        Y,
        np.ones((n, J), dtype=bool),
        n_draws=16_000,
        seed=5,
        prior_scale=S0,
        start_beta=B_ols.T.ravel(),
        chains=4,
        burn_in=100,
        thin=1,
    )
    assert post.converged, post.flags
    exact_mean = S_post / (nu_post - J - 1)
    rows, cols = np.tril_indices(J)
    sig = post.sigma[:, rows, cols]
    _, ess = rhat_ess_draws(sig.reshape(4, 4000, -1).transpose(2, 0, 1))
    mcse = sig.std(axis=0, ddof=1) / np.sqrt(ess)
    assert np.all(np.abs(sig.mean(axis=0) - exact_mean[rows, cols]) <= 4 * mcse)
    # exact variance of a diagonal element of an IW(nu, S): 2 s_jj^2 / ((nu - J - 1)^2 (nu - J - 3))
    var_exact = 2 * np.diag(S_post) ** 2 / ((nu_post - J - 1) ** 2 * (nu_post - J - 3))
    var_draws = post.sigma[:, np.arange(J), np.arange(J)].var(axis=0, ddof=1)
    assert np.allclose(var_draws / var_exact, 1.0, atol=0.15)
    thinned = post.sigma[::4]
    for a in (np.array([1.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0]), np.array([1.0, -1.0, 0.5])):
        q = np.linalg.solve(thinned, np.broadcast_to(a, (len(thinned), J))[..., None])[..., 0] @ a
        ratio = q / (a @ np.linalg.solve(S_post, a))
        assert stats.kstest(ratio, stats.chi2(nu_post).cdf).pvalue > 1e-3
    # beta: mean the OLS fit, covariance E[Sigma | Y] (x) (x'x)^-1 (visit-major order of the columns)
    beta_exact = B_ols.T.ravel()
    cov_exact = np.kron(exact_mean, np.linalg.inv(x.T @ x))
    _, ess_b = rhat_ess_draws(post.beta.reshape(4, 4000, -1).transpose(2, 0, 1))
    sd = post.beta.std(axis=0, ddof=1)
    assert np.all(np.abs(post.beta.mean(axis=0) - beta_exact) <= 4 * sd / np.sqrt(ess_b))
    assert np.allclose(sd / np.sqrt(np.diag(cov_exact)), 1.0, atol=4 * np.sqrt(0.5 / ess_b.min()) + 0.01)


def exact_two_visit_posterior(rng, x, y, nu0, S0, size):
    """Exact posterior draws for two visits with dropout at visit 2 (MAR), flat prior on beta and Sigma ~ IW(nu0,
    S0). The inverse-Wishart partition (Sigma_11 ~ IW(nu0 - 1, S0_11), independent of B = Sigma_21 / Sigma_11 and
    Sigma_22.1 ~ IW(nu0, S0_22.1), B | Sigma_22.1 ~ N(S0_21 / S0_11, Sigma_22.1 / S0_11)) and the factorised
    likelihood make the posterior two independent conjugate regressions: y1 on x (everyone) and y2 on (x, y1)
    (completers), with gamma = beta2 - B beta1 flat."""
    n, k = x.shape
    done = ~np.isnan(y[:, 1])
    # visit 1
    xtx_inv = np.linalg.inv(x.T @ x)
    b1 = xtx_inv @ x.T @ y[:, 0]
    rss1 = float(((y[:, 0] - x @ b1) ** 2).sum())
    s11 = stats.invgamma((nu0 - 1 + n - k) / 2, scale=(S0[0, 0] + rss1) / 2).rvs(size, random_state=rng)
    beta1 = b1 + np.sqrt(s11)[:, None] * rng.standard_normal((size, k)) @ np.linalg.cholesky(xtx_inv).T
    # visit 2 given visit 1, completers
    Z = np.column_stack([x[done], y[done, 0]])
    n2 = len(Z)
    prior_prec = np.zeros((k + 1, k + 1))
    prior_prec[k, k] = S0[0, 0]
    lam = Z.T @ Z + prior_prec
    rhs = Z.T @ y[done, 1]
    rhs[k] += S0[1, 0]  # S0_11 * (S0_21 / S0_11)
    theta = np.linalg.solve(lam, rhs)
    Q = float(y[done, 1] @ y[done, 1] + S0[1, 0] ** 2 / S0[0, 0] - theta @ lam @ theta)
    s22_1 = S0[1, 1] - S0[1, 0] ** 2 / S0[0, 0]
    s221 = stats.invgamma(nu0 / 2 + (n2 - k) / 2, scale=(s22_1 + Q) / 2).rvs(size, random_state=rng)
    draws = (
        theta + np.sqrt(s221)[:, None] * rng.standard_normal((size, k + 1)) @ np.linalg.cholesky(np.linalg.inv(lam)).T
    )
    gamma, B = draws[:, :k], draws[:, k]
    beta2 = gamma + B[:, None] * beta1
    sigma = np.empty((size, 2, 2))
    sigma[:, 0, 0] = s11
    sigma[:, 0, 1] = sigma[:, 1, 0] = B * s11
    sigma[:, 1, 1] = s221 + B**2 * s11
    return np.column_stack([beta1, beta2]), sigma


def test_dropout_draws_follow_the_exact_two_visit_posterior():
    """Two visits, 35% dropout at visit 2 depending on visit 1 (MAR): the data-augmentation Gibbs draws must match
    exact independent draws (`exact_two_visit_posterior`, 400,000 of them) in mean (within 4 MCSE) and SD (within
    4 MCSE of an SD), and in distribution (Kolmogorov-Smirnov on thinned draws) for the visit-2 variance and
    treatment effect, the two most affected by the missing data."""
    rng = np.random.default_rng(2024)
    n, k = 80, 3
    x = np.column_stack([np.ones(n), rng.integers(0, 2, n), rng.normal(20, 4, n)])
    e = rng.multivariate_normal([0, 0], [[4.0, 3.0], [3.0, 6.0]], n)
    y = np.column_stack([x @ [1.0, -1.0, 0.3], x @ [0.5, -2.0, 0.4]]) + e
    drop = rng.random(n) < 1 / (1 + np.exp(-(y[:, 0] - np.median(y[:, 0]))))  # larger visit-1 values drop out more
    y[drop & (rng.random(n) < 0.7), 1] = np.nan
    observed = ~np.isnan(y)
    assert 0.2 < (~observed[:, 1]).mean() < 0.5
    S0 = np.array([[3.0, 1.0], [1.0, 4.0]])
    nu0 = 4.0
    post = sample_mmrm_posterior(
        visitwise_design(x, 2),
        y,
        observed,
        n_draws=20_000,
        seed=3,
        prior_scale=S0,
        start_beta=np.zeros(2 * k),
        chains=4,
        burn_in=200,
        thin=1,
    )
    assert post.converged, post.flags
    exact_beta, exact_sigma = exact_two_visit_posterior(np.random.default_rng(99), x, y, nu0, S0, 400_000)
    gibbs = np.column_stack([post.beta, post.sigma[:, 0, 0], post.sigma[:, 1, 0], post.sigma[:, 1, 1]])
    exact = np.column_stack([exact_beta, exact_sigma[:, 0, 0], exact_sigma[:, 1, 0], exact_sigma[:, 1, 1]])
    _, ess = rhat_ess_draws(gibbs.reshape(4, 5000, -1).transpose(2, 0, 1))
    sd = gibbs.std(axis=0, ddof=1)
    assert np.all(np.abs(gibbs.mean(axis=0) - exact.mean(axis=0)) <= 4 * sd / np.sqrt(ess))
    assert np.all(np.abs(sd / exact.std(axis=0) - 1) <= 4 * np.sqrt(0.5 / ess) + 0.01)
    step = int(np.ceil(len(gibbs) / ess.min()))  # near-independent draws for the KS test
    for j in (k + 1, 2 * k + 2):  # visit-2 treatment effect, visit-2 variance
        assert stats.ks_2samp(gibbs[::step, j], exact[:, j]).pvalue > 1e-3
