"""Bayesian multiple imputation for reference-based strategies (part 2 of imrstats.trial.reference_mi): the
pieces (convergence diagnostics, inverse-Wishart and conditional normal draws, ANCOVA with SEs, Monte Carlo
errors) and the pipeline's bookkeeping (seeds, flags, ICE counts). Numbers against rbmi's published output and
exact posteriors are in tests/validation/test_rbmi_bayes.py."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imrstats.errors import AnalysisError, SettingsError
from imrstats.trial.design import StudyDesign
from imrstats.trial.ols import fit_ols
from imrstats.trial.reference_mi import (
    ancova_by_visit,
    ancova_inference,
    conditional_draws,
    conditional_means,
    draw_inverse_wishart,
    ice_from_dropout,
    reference_based_bayes,
    rhat_ess_draws,
    rubin_mc_error,
    trial_frame_from_long,
)
from imrstats.trial.rubin import pool_rubin_many

ROOT = Path(__file__).resolve().parents[2]
VISITS = ("4", "5", "6", "7")
DESIGN = StudyDesign(visits=VISITS, intervention="DRUG", control="PLACEBO")


@pytest.fixture(scope="module")
def frame():
    data = pd.read_csv(ROOT / "data/examples/antidepressant/antidepressant.csv", dtype={"PATIENT": str, "VISIT": str})
    return trial_frame_from_long(
        data, id="PATIENT", visit="VISIT", arm="THERAPY", outcome="CHANGE", baseline="BASVAL", visits=VISITS
    )


@pytest.fixture(scope="module")
def ice(frame):
    return ice_from_dropout(frame, DESIGN, strategy="JR").table


def ar1_chains(rng, phi, chains=4, n=201):
    x = np.zeros((len(phi), chains, n))
    e = rng.standard_normal(x.shape)
    for t in range(1, n):
        x[:, :, t] = np.asarray(phi)[:, None] * x[:, :, t - 1] + e[:, :, t]
    return x


def test_rhat_and_bulk_ess_equal_arviz():
    import arviz as az

    x = ar1_chains(np.random.default_rng(3), [0.0, 0.5, 0.9, 0.97])
    x[3, 0] += 0.8  # one chain off: R-hat must notice
    rhat, ess = rhat_ess_draws(x)
    for k in range(len(x)):
        assert rhat[k] == pytest.approx(float(az.rhat(x[k])), rel=1e-10)
        assert ess[k] == pytest.approx(float(az.ess(x[k], method="bulk")), rel=1e-10)
    assert rhat[3] > 1.1 and ess[0] > 5 * ess[2]


def test_rhat_of_a_constant_parameter_is_nan_and_its_ess_the_draw_count():
    rhat, ess = rhat_ess_draws(np.ones((1, 2, 10)))
    assert np.isnan(rhat[0]) and ess[0] == 20
    with pytest.raises(AnalysisError, match="parameters, chains"):
        rhat_ess_draws(np.ones((2, 10)))


def test_inverse_wishart_draws_have_the_inverse_wishart_distribution():
    S = np.array([[2.0, 0.8, 0.3], [0.8, 1.5, 0.2], [0.3, 0.2, 1.0]])
    nu = 9.0
    draws = draw_inverse_wishart(np.random.default_rng(1), nu, np.broadcast_to(S, (100_000, 3, 3)))
    assert np.allclose(draws, np.swapaxes(draws, 1, 2))
    se = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - S / (nu - 3 - 1)) < 4 * se)
    # the margin of a diagonal element: inverse-gamma((nu - J + 1) / 2, s_jj / 2)
    assert stats.kstest(draws[:, 1, 1], stats.invgamma((nu - 2) / 2, scale=S[1, 1] / 2).cdf).pvalue > 1e-3
    # and every draw's inverse a Wishart(nu, S^-1): a' Sigma^-1 a / a' S^-1 a ~ chi-square(nu)
    a = np.array([1.0, -1.0, 2.0])
    q = np.linalg.solve(draws[:20_000], np.broadcast_to(a, (20_000, 3))[..., None])[..., 0] @ a
    assert stats.kstest(q / (a @ np.linalg.solve(S, a)), stats.chi2(nu).cdf).pvalue > 1e-3


def test_conditional_draws_follow_the_conditional_normal():
    """Monotone, intermittent, all-missing and complete participants: the draws keep the observed values and their
    missing values have the conditional normal's mean (= `conditional_means`) and covariance."""
    sigma = np.array([[4.0, 2.0, 1.0, 0.5], [2.0, 5.0, 2.0, 1.0], [1.0, 2.0, 6.0, 3.0], [0.5, 1.0, 3.0, 7.0]])
    mu = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, -2.0, -3.0], [5.0, 5.0, 5.0, 5.0], [1.0, 1.0, 1.0, 1.0]])
    y = np.array(
        [[1.5, 2.5, np.nan, np.nan], [0.5, np.nan, -1.0, np.nan], [np.nan] * 4, [1.0, 2.0, 3.0, 4.0]],
    )
    B = 60_000
    out = conditional_draws(
        np.random.default_rng(8), np.broadcast_to(mu, (B, 4, 4)), np.broadcast_to(sigma, (B, 4, 4)), y
    )
    observed = ~np.isnan(y)
    assert np.array_equal(out[:, observed], np.broadcast_to(y[observed], (B, observed.sum())))
    expected = conditional_means(mu, sigma, y)
    for i in range(3):
        o, m = observed[i], ~observed[i]
        draws = out[:, i, m]
        cond_cov = sigma[np.ix_(m, m)] - sigma[np.ix_(m, o)] @ np.linalg.solve(sigma[np.ix_(o, o)], sigma[np.ix_(o, m)])
        se = np.sqrt(np.diag(cond_cov) / B)
        assert np.all(np.abs(draws.mean(axis=0) - expected[i, m]) < 4 * se)
        assert np.allclose(
            np.cov(draws.T), cond_cov, atol=0.02 * np.sqrt(np.outer(np.diag(cond_cov), np.diag(cond_cov))).max()
        )


def test_ancova_inference_equals_ols_and_the_condmean_ancova():
    rng = np.random.default_rng(4)
    n, T = 30, 3
    Z = np.column_stack([np.ones(n), rng.integers(0, 2, n), rng.normal(10, 2, n), rng.integers(0, 2, n)])
    y = rng.normal(size=(5, n, T)) + Z[:, 2, None]
    est, var, df = ancova_inference(y, Z)
    assert df == n - 4 and est.shape == var.shape == (5, 3 * T)
    point = ancova_by_visit(y, Z)
    assert np.allclose(
        est, np.concatenate([point["contrast"], point["lsmean_control"], point["lsmean_intervention"]], 1)
    )
    for b in range(5):
        for t in range(T):
            fit = fit_ols(Z, y[b, :, t], "check")
            assert var[b, t] == pytest.approx(fit.cov[1, 1], rel=1e-10)
            for j, arm in ((1, 0.0), (2, 1.0)):
                L = Z.mean(axis=0)
                L[1] = arm
                assert est[b, j * T + t] == pytest.approx(L @ fit.beta, rel=1e-10)
                assert var[b, j * T + t] == pytest.approx(L @ fit.cov @ L, rel=1e-10)
    with pytest.raises(AnalysisError, match="collinear"):
        ancova_inference(y, np.column_stack([Z, Z[:, 2] * 2]))


def test_monte_carlo_errors_are_sqrt_b_over_m_and_the_jackknife_over_imputations():
    rng = np.random.default_rng(6)
    m, K = 7, 2
    est = rng.normal(size=(m, K))
    var = rng.uniform(0.5, 1.5, size=(m, K))
    mc = rubin_mc_error(est, var, 40.0, 0.95)
    assert np.allclose(mc["estimate"], np.sqrt(est.var(axis=0, ddof=1) / m))
    loo = [pool_rubin_many(np.delete(est, j, 0), np.delete(var, j, 0), 40.0) for j in range(m)]
    for key, column in (("se", "se"), ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("p", "p")):
        theta = np.array([frame[column].to_numpy() for frame in loo])
        jack = np.sqrt((m - 1) / m * ((theta - theta.mean(axis=0)) ** 2).sum(axis=0))
        assert np.allclose(mc[key], jack, rtol=1e-10), key
    halved = rubin_mc_error(est, var, 40.0, 0.95, ess=np.full(K, m / 2))
    assert np.allclose(halved["estimate"], mc["estimate"] * np.sqrt(2))
    assert np.allclose(halved["p"], mc["p"] * np.sqrt(2))


def test_bayes_mi_is_seeded(frame, ice):
    a = reference_based_bayes(frame, ice, DESIGN, seed=5, m=12)
    b = reference_based_bayes(frame, ice, DESIGN, seed=5, m=12)
    c = reference_based_bayes(frame, ice, DESIGN, seed=6, m=12)
    assert np.array_equal(a.imputation_estimates, b.imputation_estimates)
    assert a.estimates["estimate"].tolist() == b.estimates["estimate"].tolist()
    assert not np.allclose(a.imputation_estimates[:, 1:4], c.imputation_estimates[:, 1:4])
    assert a.posterior.beta.shape == (12, 12) and a.posterior.sigma.shape == (12, 4, 4)
    assert list(a.posterior.chain) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_bayes_mi_result_shape_and_counts(frame, ice):
    res = reference_based_bayes(frame, ice, DESIGN, seed=5, m=12, outcome="hamd17")
    est = res.estimates
    assert len(est) == 12 and est["outcome"].eq("hamd17").all()
    assert est["quantity"].iloc[0] == "DRUG - PLACEBO at 4" and est["quantity"].iloc[4] == "LS mean PLACEBO at 4"
    assert est["arm"].iloc[:4].isna().all() and (est["arm"].iloc[4:8] == "PLACEBO").all()
    assert (est["m"] == 12).all() and (est["df_complete"] == 172 - 3).all() and (est["n_analysed"] == 172).all()
    for column in ("mcse_estimate", "mcse_se", "mcse_ci_low", "mcse_ci_high", "mcse_p", "ess_imputations"):
        assert est[column].notna().all(), column
    assert res.strategies == {"JR": 43} and res.ice_counts["n_jr"].sum() == 43
    # every missing cell is imputed (688 cells, 608 observed; 3618's visit-5 value under MAR), none observed post-ICE
    assert res.imputed["n_imputed"].sum() == 172 * 4 - 608
    assert res.imputed["n_observed_left_out_of_fit"].sum() == 0
    assert res.to_dict()["posterior"]["converged"] in (True, False)
    assert "Gibbs sampler with data augmentation" in res.method and "JR (jump to reference)" in res.method
    assert "Reference-based Bayesian multiple imputation" in res.summary()


def test_observed_values_after_an_ice_leave_the_fit_but_stay_in_the_analysis(frame, ice):
    """A JR ICE placed before a participant's last observed visit: those observed values are left out of the
    imputation model (and counted) but are not imputed: the completed data keep them."""
    moved = ice.copy()
    extra = frame.loc[frame[list(VISITS)].notna().all(axis=1), "id"].iloc[:3]
    moved = pd.concat([moved, pd.DataFrame({"id": extra, "visit": "6", "strategy": "JR"})], ignore_index=True)
    res = reference_based_bayes(frame, moved[["id", "visit", "strategy"]], DESIGN, seed=5, m=6)
    assert res.imputed["n_observed_left_out_of_fit"].sum() == 6
    assert res.imputed["n_imputed"].sum() == 172 * 4 - 608
    assert res.posterior.n_observations == 608 - 6


def test_a_sampler_that_did_not_converge_is_flagged_loudly(frame, ice):
    res = reference_based_bayes(frame, ice, DESIGN, seed=5, m=8, chains=2, burn_in=0, thin=1, outcome="hamd17")
    assert not res.converged and not res.posterior.converged
    assert any("MCMC NOT CONVERGED" in f and "bulk ESS" in f for f in res.flags)
    assert res.flags[0].startswith("hamd17: ")
    assert res.estimates["notes"].str.contains("MCMC NOT CONVERGED").all()
    assert "MCMC NOT CONVERGED" in res.summary()


def test_bad_settings_are_refused(frame, ice):
    with pytest.raises(SettingsError, match="m: must be >= 3"):
        reference_based_bayes(frame, ice, DESIGN, seed=5, m=2)
    with pytest.raises(AnalysisError, match=r"chains \(1\) >= 2"):
        reference_based_bayes(frame, ice, DESIGN, seed=5, m=10, chains=1)
