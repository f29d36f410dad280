"""Conditional mean imputation with bootstrap inference (Wolbers et al. 2022; rbmi's
``method_condmean(type = "bootstrap")`` and ``pool()``), and the MMRM as the analysis of conditional-mean-completed
data, on rbmi's antidepressant data (data/examples/antidepressant/; JR for every ICE of monotone dropout, PLACEBO
the reference, CHANGE ~ BASVAL * VISIT + THERAPY * VISIT as the imputation model, ANCOVA on BASVAL per visit).

rbmi's vignettes print no bootstrap result on these data (quickstart, CondMean_Inference and advanced print the
Bayesian and the jackknife ones; the bootstrap is only named), so the bootstrap is checked against

1. an independent R implementation (tests/validation/r/rbmi_condmean_bootstrap.R, pinned in
   tests/validation/data/rbmi_condmean_bootstrap_reference.json): four bootstrap samples drawn in R (stratified
   by arm), each refitted by nlme::gls refined to the exact REML maximum, completed under JR and analysed by lm;
   our estimates for the same samples to 1e-6 relative, and the pooled numbers (percentile: R's type-6 quantiles
   and the p found by uniroot; normal: sd, qnorm, pnorm) for levels 0.95 and 0.5;
2. the jackknife: the point estimate is the full-data one (the jackknife's, which reproduces rbmi's vignette
   CondMean_Inference, section 3.4 "Pool", in tests/validation/test_rbmi_condmean.py), and with B = 1000 samples the
   bootstrap SE (normal interval) is the jackknife SE within a Monte Carlo tolerance derived in
   `test_with_many_samples_the_bootstrap_se_is_the_jackknife_se`.

The MMRM analysis of the completed data is checked against R's gls on the same completed data (one common baseline
slope, where it differs from the ANCOVA), and with a slope per visit against the ANCOVA (R checks the identity too)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.trial import reference_mi as rm
from imrstats.trial.design import StudyDesign

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "examples" / "antidepressant" / "antidepressant.csv"
REF = json.loads((Path(__file__).parent / "data" / "rbmi_condmean_bootstrap_reference.json").read_text())
VISITS = ("4", "5", "6", "7")
DESIGN = StudyDesign(visits=VISITS, intervention="DRUG", control="PLACEBO")
COMMON = dataclasses.replace(DESIGN, baseline_slope="common")
NAMES = [f"{q}_{v}" for q in ("contrast", "lsmean_placebo", "lsmean_drug") for v in VISITS]  # our row order


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    long = pd.read_csv(DATA, dtype={"PATIENT": str, "VISIT": str})
    return rm.trial_frame_from_long(
        long, id="PATIENT", visit="VISIT", arm="THERAPY", outcome="CHANGE", baseline="BASVAL", visits=VISITS
    )


@pytest.fixture(scope="module")
def ice(frame) -> pd.DataFrame:
    return rm.ice_from_dropout(frame, DESIGN, strategy="JR").table


@pytest.fixture(scope="module")
def model(frame, ice) -> rm.ImputationModel:
    return rm.fit_imputation_model(frame, ice, DESIGN)


@pytest.fixture(scope="module")
def r_samples_estimates(model) -> np.ndarray:
    """Our estimates (1 + 4, 12) for the full data and R's four bootstrap samples."""
    where = {pid: i for i, pid in enumerate(model.ids)}
    samples = np.array([[where[p] for p in s] for s in REF["samples"]])
    fits = [rm.bootstrap_fit(model, s) for s in samples]
    assert all(why == "" for *_, why in fits)
    completed = rm.conditional_mean_samples(model, np.stack([f[0] for f in fits]), np.stack([f[1] for f in fits]))
    weights = np.concatenate([np.ones((1, len(model.ids))), rm.sample_weights(samples, len(model.ids))])
    return rm.analyse_completed(model, completed, weights)


def test_bootstrap_samples_equal_an_independent_r_implementation(r_samples_estimates):
    expected = np.array([[row[k] for k in NAMES] for row in REF["estimates"]])
    assert len(REF["samples"]) == 4 and all(len(s) == 172 for s in REF["samples"])
    np.testing.assert_allclose(r_samples_estimates, expected, rtol=1e-6, atol=1e-9)
    assert np.ptp(expected[1:], axis=0).min() > 0.01  # four different samples, each a different estimate


@pytest.mark.parametrize("level", ["0.95", "0.5"])
@pytest.mark.parametrize("ci", ["percentile", "normal"])
def test_pooling_equals_r(r_samples_estimates, level, ci):
    pooled = rm.bootstrap_pool(r_samples_estimates[0], r_samples_estimates[1:], float(level), ci)
    expected = REF["pool"][f"level_{level}"]
    for j, name in enumerate(NAMES):
        ref = expected[name][ci]
        for key in ("estimate", "ci_low", "ci_high", "p") + (("se",) if ci == "normal" else ()):
            assert pooled[key][j] == pytest.approx(ref[key], rel=1e-6, abs=1e-9), (name, key)
        if ci == "percentile":
            assert np.isnan(pooled["se"][j])
    if ci == "percentile":  # some p by root finding (mixed signs), some at the all-of-one-sign bound 0
        p = pooled["p"]
        assert (p == 0).any() and ((p > 0) & (p < 1)).any()


def test_the_point_estimate_is_the_full_data_one_as_the_jackknifes(frame, ice, r_samples_estimates):
    jack = rm.reference_based_condmean(frame, ice, DESIGN).estimates
    boot = rm.reference_based_condmean(
        frame, ice, DESIGN, inference="bootstrap", n_samples=5, seed=1, bootstrap_ci="normal"
    ).estimates
    np.testing.assert_allclose(boot["estimate"], jack["estimate"], rtol=1e-12)
    np.testing.assert_allclose(boot["estimate"], r_samples_estimates[0], rtol=1e-12)
    np.testing.assert_allclose(boot["estimate"], [REF["estimates"][0][k] for k in NAMES], rtol=1e-6)


def test_with_many_samples_the_bootstrap_se_is_the_jackknife_se(frame, ice):
    """B = 1000 (normal interval) against the jackknife, quantity by quantity: |SE_boot / SE_jack - 1| <= 4 m_j +
    1 / n_min, where

    - m_j = sqrt((kurt_j - 1) / (4 B)) is the Monte Carlo relative SE of an SD estimated from B draws (delta method:
      var(s^2) = (mu_4 - sigma^4) / B), kurt_j the sample kurtosis of the B estimates of quantity j (about 0.022
      here); 4 of them: for 12 quantities P(any |Z| > 4) < 1e-3;
    - 1 / n_min (n_min = 84, the smaller arm) allows for the O(1/n) difference between the jackknife and the ideal
      (B -> infinity) bootstrap variance: for an arm mean the jackknife gives s^2 / n_a, the bootstrap drawn within
      the arm (n_a - 1) / n_a of it, and both estimate the estimator's variance to O(1/n).

    So the tolerance is about 10% relative; the differences found are at most 4.6% (seeds 1, 2)."""
    jack = rm.reference_based_condmean(frame, ice, DESIGN)
    boot = rm.reference_based_condmean(
        frame, ice, DESIGN, inference="bootstrap", n_samples=1000, seed=2, bootstrap_ci="normal"
    )
    assert boot.n_failed == 0 and boot.bootstrap_estimates.shape == (1000, 12)
    theta = boot.bootstrap_estimates
    centred = theta - theta.mean(axis=0)
    kurt = (centred**4).mean(axis=0) / (centred**2).mean(axis=0) ** 2
    mc = np.sqrt((kurt - 1) / (4 * len(theta)))
    n_min = int(min(boot.ice_counts["n_participants"]))
    ratio = boot.estimates["se"].to_numpy() / jack.estimates["se"].to_numpy()
    tolerance = 4 * mc + 1 / n_min
    assert n_min == 84 and (mc < 0.03).all()
    assert (np.abs(ratio - 1) <= tolerance).all(), (ratio, tolerance)
    # the percentile interval of the same samples: about estimate -/+ 1.96 SE, as the estimates are near normal
    pct = rm.bootstrap_pool(boot.estimates["estimate"].to_numpy(), theta, 0.95, "percentile")
    width = (pct["ci_high"] - pct["ci_low"]) / (2 * 1.959964 * jack.estimates["se"].to_numpy())
    assert (np.abs(width - 1) < 0.15).all()


# ---------------------------------------------------------------- the MMRM as the analysis of the completed data


def test_common_slope_mmrm_analysis_equals_r(frame, ice):
    expected = REF["mmrm_analysis"]["common_slope"]
    result = rm.reference_based_condmean(frame, ice, COMMON, analysis="mmrm")
    np.testing.assert_allclose(result.estimates["estimate"], [expected["estimate"][k] for k in NAMES], rtol=1e-6)
    model = rm.fit_imputation_model(frame, ice, COMMON)
    est, var, df = rm.mmrm_inference(model, model.impute()[None])
    np.testing.assert_allclose(est[0], [expected["estimate"][k] for k in NAMES], rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(var[0]), [expected["se"][k] for k in NAMES], rtol=1e-6)
    ancova = np.array([expected["ancova"][k] for k in NAMES])
    assert np.abs(est[0] - ancova).max() > 0.02  # one slope for every visit: not the ANCOVA
    assert (df[0] > 150).all() and (df[0] < 172).all()


def test_separate_slopes_mmrm_analysis_is_the_ancova_as_r_finds(model):
    expected = REF["mmrm_analysis"]["separate_slopes"]
    est, var, df = rm.mmrm_inference(model, model.impute()[None])
    np.testing.assert_allclose(est[0], [expected["estimate"][k] for k in NAMES], rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(var[0]), [expected["se"][k] for k in NAMES], rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(var[0, :4]), expected["ancova_se_contrast"], rtol=1e-6)
    np.testing.assert_allclose(df[0], 172 - 3, rtol=1e-6)
    np.testing.assert_allclose(est[0], rm.analyse_completed(model, model.impute()[None])[0], rtol=1e-9)
