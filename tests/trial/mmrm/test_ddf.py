"""Unit tests for the Kenward-Roger inference of imrstats.trial.mmrm: its algebra against dense matrices, its
identities (1-df KR df = Satterthwaite df of the unadjusted cov(beta), lambda = 1, F = t^2), invariance
to the parameterization of the fixed effects, the batched path, the trial plumbing and the errors.
Numbers against SAS and R (pbkrtest) live in tests/validation/test_mmrm_kr_vs_r.py."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from conftest import VALIDATION_DATA
from imrstats.errors import AnalysisError
from imrstats.trial import analyses as trial
from imrstats.trial import mmrm
from imrstats.trial.mmrm import fit_mmrm
from imrstats.trial.mmrm.reml import vech_basis

DATA = VALIDATION_DATA
TIMES = ("post", "fu12")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(DATA / "mmrm_missing.csv")


@pytest.fixture(scope="module")
def design_grid(data):
    design = mmrm.build_mmrm_design(data, times=TIMES)
    return design, design.outcome_grid(data["y"].to_numpy())


@pytest.fixture(scope="module")
def kr(data):
    return fit_mmrm(data, "y", times=TIMES, df_method="kenward_roger")


@pytest.fixture(scope="module")
def sat(data):
    return fit_mmrm(data, "y", times=TIMES)


def test_kr_changes_only_the_ses(kr, sat):
    """Same fit; cov_beta_model is the Satterthwaite fit's cov(beta), bit for bit; KR df = Satterthwaite df."""
    assert kr.df_method == "kenward_roger" and sat.df_method == "satterthwaite"
    assert np.array_equal(kr.beta, sat.beta) and np.array_equal(kr.sigma, sat.sigma)
    assert np.array_equal(kr.cov_beta_model, sat.cov_beta) and np.array_equal(sat.cov_beta_model, sat.cov_beta)
    np.testing.assert_allclose(kr.contrast_df, sat.contrast_df, rtol=1e-13)
    np.testing.assert_allclose(kr.means_df, sat.means_df, rtol=1e-13)
    assert (kr.contrasts["se"].to_numpy() > sat.contrasts["se"].to_numpy()).all()  # the KR inflation
    assert "Kenward-Roger" in kr.method and "Kenward-Roger" not in sat.method
    assert (kr.contrasts["method"] == kr.method).all()
    json.dumps(kr.to_dict())


def test_q_terms_equal_dense_sums(design_grid, kr):
    """Q_hj = sum_i X_i' W_i E_h W_i E_j W_i X_i summed participant by participant."""
    design, grid = design_grid
    observed = design.present & np.isfinite(grid)
    E, _ = vech_basis(len(TIMES))
    m, p = E.shape[0], design.X.shape[2]
    dense = np.zeros((m, m, p, p))
    for i in np.flatnonzero(observed.any(axis=1)):
        o = observed[i]
        Xi, Wi = design.X[i][o], np.linalg.inv(kr.sigma[np.ix_(o, o)])
        for h in range(m):
            for j in range(m):
                dense[h, j] += Xi.T @ Wi @ E[h][np.ix_(o, o)] @ Wi @ E[j][np.ix_(o, o)] @ Wi @ Xi
    q_terms = mmrm.kenward_roger_q_terms(design.X[None], observed, kr.sigma[None])[0]
    np.testing.assert_allclose(q_terms, dense, rtol=1e-10, atol=1e-12 * np.abs(dense).max())


def test_kr_is_invariant_to_reparameterizing_the_fixed_effects(data, design_grid, kr):
    """X -> X A gives beta -> A^-1 beta and Phi_A -> A^-1 Phi_A A^-T (KR's adjustment is coordinate-free)."""
    design, grid = design_grid
    p = design.X.shape[2]
    A = np.eye(p) + 0.3 * np.random.default_rng(1).standard_normal((p, p))
    moved = mmrm.fit_mmrm_grid(dataclasses.replace(design, X=design.X @ A), grid, df_method="kenward_roger")
    A_inv = np.linalg.inv(A)
    np.testing.assert_allclose(moved.cov_beta, A_inv @ kr.cov_beta @ A_inv.T, rtol=1e-7, atol=1e-9)
    L = kr.contrast_L @ A  # the same contrasts in the new coordinates
    np.testing.assert_allclose(
        mmrm.kenward_roger_df(L, moved.cov_beta_model, moved.dcov_beta, moved.cov_theta), kr.contrast_df, rtol=1e-7
    )


def test_single_row_f_test_is_the_squared_t(kr):
    for k in range(len(TIMES)):
        test = kr.f_test(kr.contrast_L[[k]])
        row = kr.contrasts.iloc[k]
        assert test.extra["num_df"] == 1
        np.testing.assert_allclose(test.extra["lambda"], 1.0, rtol=1e-10)
        np.testing.assert_allclose(test.df, row["df"], rtol=1e-10)
        np.testing.assert_allclose(test.statistic, row["statistic"] ** 2, rtol=1e-10)
        np.testing.assert_allclose(test.p, row["p"], rtol=1e-8)


def test_f_test_against_a_null_value(kr):
    at_estimate = kr.f_test(kr.contrast_L, rhs=kr.contrast_L @ kr.beta)
    assert at_estimate.statistic == pytest.approx(0.0, abs=1e-20) and at_estimate.p == pytest.approx(1.0)


def test_f_test_errors(kr, sat):
    with pytest.raises(AnalysisError, match="kenward_roger"):
        sat.f_test(sat.contrast_L)
    with pytest.raises(AnalysisError, match="linearly dependent"):
        kr.f_test(np.vstack([kr.contrast_L, kr.contrast_L.sum(axis=0)]))
    with pytest.raises(AnalysisError, match="columns"):
        kr.f_test(np.ones((1, 3)))


def test_no_covariance_uncertainty_gives_the_wald_test(kr):
    test = mmrm.kenward_roger_f_test(
        kr.contrast_L, kr.beta, kr.cov_beta_model, kr.cov_beta, kr.dcov_beta, np.zeros_like(kr.cov_theta)
    )
    assert test.df == np.inf and test.extra["lambda"] == 1.0


def test_unknown_df_method_raises(data):
    with pytest.raises(AnalysisError, match="kenward_roger"):
        fit_mmrm(data, "y", times=TIMES, df_method="KR")


def test_batched_fits_give_the_single_fit_kr(design_grid):
    design, grid = design_grid
    rng = np.random.default_rng(3)
    grids = np.stack([grid + rng.normal(0, 2, grid.shape) for _ in range(4)])
    fits = mmrm.fit_mmrm_many([design] * 4, grids, starts=np.repeat(np.eye(2)[None] * 50.0, 4, axis=0))
    assert fits.kenward_roger_cov_beta.shape == fits.cov_beta.shape
    for b in range(4):
        alone = mmrm.fit_mmrm_grid(design, grids[b], start=np.eye(2) * 50.0, df_method="kenward_roger")
        res = fits.result(b, "kenward_roger")
        np.testing.assert_allclose(res.cov_beta, alone.cov_beta, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(res.contrasts["se"], alone.contrasts["se"], rtol=1e-10)
        np.testing.assert_allclose(res.contrasts["df"], alone.contrasts["df"], rtol=1e-10)
    with pytest.raises(AnalysisError, match="df_method"):
        fits.result(0, "kr")


def test_trial_itt_pools_the_kr_variances():
    frame = pd.read_csv(DATA / "trial_gaf_f.csv", dtype={"id": str})
    imp = trial.impute_outcome(frame, m=5, seed=11)
    sat = trial.itt_mi_mmrm(frame, outcome="gaf_f", imputation=imp)
    kr = trial.itt_mi_mmrm(frame, outcome="gaf_f", imputation=imp, df_method="kenward_roger")
    np.testing.assert_allclose(kr.contrasts["estimate"], sat.contrasts["estimate"], rtol=1e-13)
    assert (kr.contrasts["se"].to_numpy() > sat.contrasts["se"].to_numpy()).all()
    assert "Kenward-Roger" in kr.method and "Kenward-Roger" not in sat.method
    # the pooled within-imputation variance is the mean of the per-fit KR variances
    _, designs, grids = trial.completed_designs(imp, trial.DEFAULT_COVARIATES, [0.0])
    fits = mmrm.fit_mmrm_many(designs, grids[0])  # the ITT's warm-started chain
    L = fits.result(0).contrast_L
    within = np.mean([L @ fits.kenward_roger_cov_beta[b] @ L.T for b in range(5)], axis=0)
    np.testing.assert_allclose(kr.contrasts["ubar"], np.diag(within), rtol=1e-8)


def test_trial_stage_setting_reaches_the_fits(default_clean_tables):
    from imrstats.config import section_settings
    from imrstats.errors import SettingsError
    from imrstats.trial.stage import run_trial_outcome

    assert section_settings("trial")["df_method"] == "satterthwaite"
    with pytest.raises(SettingsError, match="trial.df_method"):
        section_settings("trial", {"df_method": "kenward-roger"})
    res = run_trial_outcome(
        default_clean_tables, "psp", {"subgroups": [], "df_method": "kenward_roger"}, seed=3, imputations=10
    )
    rec = res.record["outcomes"]["psp"]
    assert "Kenward-Roger" in rec["itt"]["method"]
    assert all("Kenward-Roger" in row["method"] for row in rec["likelihood_mmrm"])
    assert "Kenward-Roger" in rec["tipping_point"]["method"]
