"""The study's MMRM as the analysis of completed data in reference-based imputation (imrstats.trial.reference_mi,
``analysis="mmrm"``), for conditional mean imputation (jackknife and bootstrap) and Bayesian MI.

1. The identity: on completely observed data with no covariate beyond the baseline and a baseline slope per visit,
   every visit has the same regressors (intercept, arm, baseline), so the GLS estimate of the MMRM is OLS visit by
   visit whatever Sigma is (Zellner 1962): its contrasts and LS means equal the per-visit ANCOVA's exactly; its
   REML Sigma is the residual cross-products over n - 3, so the model-based variances equal the ANCOVA's and the
   Satterthwaite df is n - 3.
2. Where they differ (one common baseline slope): the numbers equal a direct fit of the project's MMRM
   (`imrstats.trial.mmrm.fit.fit_mmrm`) to the completed data written out as a long table, for the full data, a
   leave-one-out sample and a bootstrap sample with repeated participants; for Bayesian MI the variances and the
   complete-data df (the Satterthwaite df, averaged over the imputations) equal those of direct fits.
The MMRM analysis of the antidepressant data against R (nlme) is in tests/validation/test_rbmi_condmean_bootstrap.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from imrstats.errors import SettingsError
from imrstats.trial import reference_mi as rm
from imrstats.trial.design import StudyDesign
from imrstats.trial.mmrm.fit import fit_mmrm

SEPARATE = StudyDesign(visits=("v1", "v2", "v3"))  # IMR vs TAU, a baseline slope per visit
COMMON = dataclasses.replace(SEPARATE, baseline_slope="common")
BAYES = dict(seed=12, m=8, chains=4, burn_in=40, thin=2)  # a small, fast run: the identities hold draw by draw


def simulated_frame(n: int = 60, seed: int = 5) -> pd.DataFrame:
    """IMR / TAU alternating, baseline ~ N(20, 4^2), a baseline slope that changes over the visits (so a common
    slope is a different model); 6 participants per arm stop after v1, 4 per arm after v2; p041 misses only v2."""
    rng = np.random.default_rng(seed)
    arm = np.where(np.arange(n) % 2 == 0, "IMR", "TAU")
    base = rng.normal(20, 4, n)
    sigma = np.array([[9.0, 6.0, 5.0], [6.0, 12.0, 8.0], [5.0, 8.0, 14.0]])
    slope = np.array([0.3, 0.6, 0.9])
    mean = np.array([1.0, 2.0, 2.5]) + np.outer(arm == "IMR", [1.0, 2.0, 3.0]) + (base[:, None] - 20) * slope
    y = mean + rng.multivariate_normal(np.zeros(3), sigma, n)
    y[0:12, 1:] = np.nan
    y[24:32, 2] = np.nan
    y[41, 1] = np.nan
    frame = pd.DataFrame({"id": [f"p{i:03d}" for i in range(n)], "arm": arm, "baseline": base})
    for k, v in enumerate(SEPARATE.visits):
        frame[v] = y[:, k]
    return frame


@pytest.fixture(scope="module")
def frame():
    return simulated_frame()


@pytest.fixture(scope="module")
def ice(frame):
    return rm.ice_from_dropout(frame, SEPARATE, strategy="JR").table


def direct_fit(model: rm.ImputationModel, completed: np.ndarray, rows, design: StudyDesign):
    """The project's MMRM fitted to completed data written out as a long table, one participant per entry of
    ``rows`` (a repeated participant is a participant of its own)."""
    rows = np.asarray(rows)
    T = len(design.visits)
    long = pd.DataFrame(
        {
            "id": np.repeat([f"c{j:03d}" for j in range(len(rows))], T),
            "time": np.tile(design.visits, len(rows)),
            "arm": np.repeat(model.arms[rows], T),
            "baseline": np.repeat(model.Z[rows, 2], T),
            "y": completed[rows].ravel(),
        }
    )
    common = design.baseline_slope == "common"
    return fit_mmrm(
        long,
        "y",
        baseline=None if common else "baseline",
        covariates=("baseline",) if common else (),
        reference_arm=design.control,
        treatment_arm=design.intervention,
        times=design.visits,
    )


def twelve(fit) -> np.ndarray:
    """A direct fit's contrasts, control LS means, intervention LS means per visit (the estimates' order)."""
    means = fit.adjusted_means
    return np.concatenate(
        [
            fit.contrasts["estimate"].to_numpy(),
            means.loc[means["arm"] == "TAU", "estimate"].to_numpy(),
            means.loc[means["arm"] == "IMR", "estimate"].to_numpy(),
        ]
    )


# ---------------------------------------------------------------- 1. the identity


def test_separate_slopes_mmrm_equals_the_ancova_for_conditional_mean_imputation(frame, ice):
    for settings in ({}, {"inference": "bootstrap", "n_samples": 6, "seed": 4}):
        ancova = rm.reference_based_condmean(frame, ice, SEPARATE, **settings)
        mmrm = rm.reference_based_condmean(frame, ice, SEPARATE, analysis="mmrm", **settings)
        for column in ("estimate", "se", "ci_low", "ci_high", "p", "bootstrap_se"):
            if column in ancova.estimates:
                np.testing.assert_allclose(mmrm.estimates[column], ancova.estimates[column], rtol=1e-9, atol=1e-12)
        assert mmrm.analysis_model == "mmrm" and ancova.analysis_model == "ancova"
        assert "the study's MMRM on each completed data set (visit, arm by visit, a baseline slope per visit" in (
            mmrm.method
        )
    assert np.ptp(mmrm.bootstrap_estimates, axis=0).min() > 0  # the samples differ: the identity holds in each


def test_separate_slopes_mmrm_equals_the_ancova_for_bayesian_mi(frame, ice):
    ancova = rm.reference_based_bayes(frame, ice, SEPARATE, **BAYES)
    mmrm = rm.reference_based_bayes(frame, ice, SEPARATE, analysis="mmrm", **BAYES)
    np.testing.assert_allclose(mmrm.imputation_estimates, ancova.imputation_estimates, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mmrm.imputation_variances, ancova.imputation_variances, rtol=1e-7)
    np.testing.assert_allclose(mmrm.estimates["df_complete"], 60 - 3, rtol=1e-6)  # Satterthwaite = n - r
    for column in ("estimate", "se", "df", "ci_low", "ci_high", "p"):
        np.testing.assert_allclose(mmrm.estimates[column], ancova.estimates[column], rtol=1e-6, err_msg=column)
    assert "complete-data df the MMRM's Satterthwaite df, mean over the imputations" in mmrm.method
    assert mmrm.analysis_model == "mmrm"


# ---------------------------------------------------------------- 2. where they differ: a common slope


def test_common_slope_mmrm_differs_from_the_ancova_and_equals_a_direct_fit(frame, ice):
    mmrm = rm.reference_based_condmean(frame, ice, COMMON, analysis="mmrm")
    ancova = rm.reference_based_condmean(frame, ice, COMMON)
    gap = np.abs(mmrm.estimates["estimate"].to_numpy() - ancova.estimates["estimate"].to_numpy())
    assert gap[:3].max() > 0.05  # the contrasts move with one slope for every visit
    assert "one common baseline slope" in mmrm.method
    model = rm.fit_imputation_model(frame, ice, COMMON)
    full = direct_fit(model, model.impute(), np.arange(60), COMMON)
    np.testing.assert_allclose(mmrm.estimates["estimate"], twelve(full), rtol=1e-8, atol=1e-10)
    # a leave-one-out sample: the data completed at the fit without participant i, analysed without i
    betas, sigmas, converged = rm.jackknife_fits(model)
    assert converged.all()
    completed, _ = rm.jackknife_completed(model, betas, sigmas)
    for i in (0, 17, 41):
        loo = direct_fit(model, completed[1 + i], np.delete(np.arange(60), i), COMMON)
        np.testing.assert_allclose(mmrm.jackknife_estimates[i], twelve(loo), rtol=1e-7, atol=1e-9)


def test_common_slope_bootstrap_sample_with_repeats_equals_a_direct_fit(frame, ice):
    result = rm.reference_based_condmean(
        frame, ice, COMMON, analysis="mmrm", inference="bootstrap", n_samples=3, seed=8
    )
    model = rm.fit_imputation_model(frame, ice, COMMON)
    for b, sample in enumerate(result.bootstrap_indices):
        assert len(set(sample)) < 60  # repeats
        beta, sigma, _ = rm.bootstrap_fit(model, sample)
        completed = rm.conditional_mean_samples(model, beta[None], sigma[None])[1]
        np.testing.assert_allclose(
            result.bootstrap_estimates[b], twelve(direct_fit(model, completed, sample, COMMON)), rtol=1e-7, atol=1e-9
        )


def test_common_slope_bayesian_mi_pools_the_direct_fits_with_their_satterthwaite_df(frame, ice):
    result = rm.reference_based_bayes(frame, ice, COMMON, analysis="mmrm", **BAYES)
    model = rm.fit_imputation_model(frame, ice, COMMON)
    _, completed = rm.bayes_completed(model, **BAYES)
    fits = [direct_fit(model, completed[j], np.arange(60), COMMON) for j in range(BAYES["m"])]
    est = np.stack([twelve(f) for f in fits])
    var = np.stack(
        [np.concatenate([f.contrasts["se"], f.adjusted_means["se"].to_numpy()[[0, 2, 4, 1, 3, 5]]]) ** 2 for f in fits]
    )
    df = np.stack(
        [np.concatenate([f.contrasts["df"], f.adjusted_means["df"].to_numpy()[[0, 2, 4, 1, 3, 5]]]) for f in fits]
    )
    np.testing.assert_allclose(result.imputation_estimates, est, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(result.imputation_variances, var, rtol=1e-6)
    np.testing.assert_allclose(result.estimates["df_complete"], df.mean(axis=0), rtol=1e-5)
    assert np.ptp(df, axis=0).max() > 0  # the df vary between imputations: their mean is the complete-data df
    assert (result.estimates["df_complete"] < 60 - 3).all()
    ancova = rm.reference_based_bayes(frame, ice, COMMON, **BAYES)
    assert np.abs(result.estimates["estimate"] - ancova.estimates["estimate"]).max() > 0.05


def test_an_unknown_analysis_is_refused(frame, ice):
    for run in (rm.reference_based_condmean, lambda *a, **k: rm.reference_based_bayes(*a, **k, seed=1, m=3)):
        with pytest.raises(SettingsError) as err:
            run(frame, ice, SEPARATE, analysis="glm")
        assert err.value.keys == ["analysis"]
