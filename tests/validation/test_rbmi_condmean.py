"""Reference-based conditional mean imputation with jackknife inference (Wolbers et al. 2022) on rbmi's
antidepressant data (data/examples/antidepressant/), against

1. the numbers printed in the rbmi vignette "rbmi: Inference with Conditional Mean Imputation" (Noci, Wolbers &
   Gower-Page), section 3 "Reference-based conditional mean imputation - frequentist inference": JR for every
   ICE, PLACEBO the reference, imputation model CHANGE ~ THERAPY * VISIT + BASVAL * VISIT (one unstructured
   Sigma), ANCOVA per visit on BASVAL, jackknife SE with normal CI and p (section 3.4 "Pool"), and the fraction
   of missing data per visit (section 3.2 "Impute");
2. an independent R implementation of the pieces (strategies MAR, JR, CR, CIR, LMCF; conditional means; the
   ANCOVA; the JR joint covariance) at the REML parameters, pinned by tests/validation/r/rbmi_condmean_pieces.R
   in tests/validation/data/rbmi_condmean_pieces_reference.json;
3. what the theory of the strategies says about the visit-7 estimate (Carpenter, Roger & Kenward 2013).

rbmi orders THERAPY as (DRUG, PLACEBO), so its ``trt`` is PLACEBO - DRUG, ``lsm_ref`` the DRUG arm and
``lsm_alt`` the PLACEBO arm; imrstats reports DRUG - PLACEBO (intervention - control): the contrast and its CI
are compared with their signs turned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.trial import reference_mi as rm
from imrstats.trial.design import StudyDesign

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "examples" / "antidepressant" / "antidepressant.csv"
PIECES = json.loads((Path(__file__).parent / "data" / "rbmi_condmean_pieces_reference.json").read_text())
VISITS = ("4", "5", "6", "7")
DESIGN = StudyDesign(visits=VISITS, intervention="DRUG", control="PLACEBO")

# rbmi vignette CondMean_Inference, section 3.4 "Pool" (method jackknife, 1 + 172 results, confidence level
# 0.95): parameter -> (est, se, lci, uci, pval); "<0.001" printed as None.
VIGNETTE = {
    "trt_4": (-0.092, 0.695, -1.453, 1.27, 0.895),
    "lsm_ref_4": (-1.616, 0.588, -2.767, -0.464, 0.006),
    "lsm_alt_4": (-1.708, 0.396, -2.484, -0.931, None),
    "trt_5": (1.305, 0.878, -0.416, 3.027, 0.137),
    "lsm_ref_5": (-4.133, 0.688, -5.481, -2.785, None),
    "lsm_alt_5": (-2.828, 0.604, -4.011, -1.645, None),
    "trt_6": (1.929, 0.862, 0.239, 3.619, 0.025),
    "lsm_ref_6": (-6.088, 0.671, -7.402, -4.773, None),
    "lsm_alt_6": (-4.159, 0.686, -5.503, -2.815, None),
    "trt_7": (2.126, 0.858, 0.444, 3.807, 0.013),
    "lsm_ref_7": (-6.965, 0.685, -8.307, -5.622, None),
    "lsm_alt_7": (-4.839, 0.762, -6.333, -3.346, None),
}
# rbmi vignette CondMean_Inference, section 3.2 "Impute": fraction of missing data (original dataset)
VIGNETTE_MISSING_PERCENT = {"4": 0, "5": 8, "6": 13, "7": 25}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    long = pd.read_csv(DATA, dtype={"PATIENT": str, "VISIT": str})
    return rm.trial_frame_from_long(
        long, id="PATIENT", visit="VISIT", arm="THERAPY", outcome="CHANGE", baseline="BASVAL", visits=VISITS
    )


@pytest.fixture(scope="module")
def ice(frame) -> rm.DerivedIce:
    return rm.ice_from_dropout(frame, DESIGN, strategy="JR")


@pytest.fixture(scope="module")
def jr(frame, ice) -> rm.CondMeanResult:
    return rm.reference_based_condmean(frame, ice.table, DESIGN)


def ours_as_rbmi(result: rm.CondMeanResult) -> dict:
    """Our rows in rbmi's parametrisation (trt = PLACEBO - DRUG; ref = DRUG, alt = PLACEBO)."""
    rows = result.estimates
    out = {}
    for visit in VISITS:
        c = rows.loc[rows["quantity"] == f"DRUG - PLACEBO at {visit}"].iloc[0]
        out[f"trt_{visit}"] = (-c["estimate"], c["se"], -c["ci_high"], -c["ci_low"], c["p"])
        for key, arm in (("ref", "DRUG"), ("alt", "PLACEBO")):
            m = rows.loc[rows["quantity"] == f"LS mean {arm} at {visit}"].iloc[0]
            out[f"lsm_{key}_{visit}"] = (m["estimate"], m["se"], m["ci_low"], m["ci_high"], m["p"])
    return out


def test_ice_derivation_is_the_vignettes(frame, ice):
    """The vignette's data_ice: the first missing visit of every patient with a missing value, except patient
    3618, whose only missing value (visit 5) is intermittent and imputed under MAR."""
    table = ice.table
    assert "3618" not in set(table["id"])
    assert len(table) == len(PIECES["ice"]) == 43
    assert dict(zip(table["id"], table["visit"])) == {r["id"]: r["visit"] for r in PIECES["ice"]}
    counts = ice.counts.set_index("arm")
    assert counts.loc["DRUG", "n_ice"] == 20 and counts.loc["PLACEBO", "n_ice"] == 23
    assert counts.loc["DRUG", "n_missing_mar"] == 1 and counts.loc["PLACEBO", "n_missing_mar"] == 0
    missing = frame[list(VISITS)].isna().mean()
    for visit, percent in VIGNETTE_MISSING_PERCENT.items():
        assert round(100 * missing[visit]) == percent


def test_jackknife_numbers_match_the_vignette(jr):
    """Every printed number to its printed decimals: |ours - printed| <= half a unit of the last printed place
    (0.0005). One printed bound sits 5e-5 beyond that: lsm_alt_7's lci, printed -6.333, is -6.33245 here. rbmi
    fits its 173 MMRMs with the mmrm package's optimiser, which stops within its tolerance of the REML maximum,
    while the engine here converges to the maximum (max |score| ~ 1e-12); the other 59 printed numbers, among
    them two within 6e-6 and 4e-5 of a rounding boundary, round to the printed values."""
    ours = ours_as_rbmi(jr)
    off = []
    for name, printed in VIGNETTE.items():
        for field, mine, value in zip(("est", "se", "lci", "uci", "pval"), ours[name], printed):
            if value is None:
                assert mine < 0.001, (name, field, mine)
                continue
            assert abs(mine - value) <= 0.0005 + 5e-5, (name, field, mine, value)
            if abs(mine - value) > 0.0005 + 1e-12:
                off.append((name, field))
    assert off == [("lsm_alt_7", "lci")]
    assert jr.n_fits == 173 and jr.n_participants == 172 and jr.strategies == {"JR": 43}


def test_study_spec_path_gives_the_same_numbers(jr):
    """The door a trial statistician uses: the shipped study spec read, checked and cleaned; the trial frame of
    HAM-D17 totals (outcome_frame); the same estimator on the change from baseline."""
    from imrstats.config import load_config
    from imrstats.data.stage import clean_study
    from imrstats.data.study import load_study
    from imrstats.trial.analyses import outcome_frame

    spec = ROOT / "data" / "examples" / "antidepressant" / "study.yaml"
    study = load_study(spec)
    tables = clean_study(study, load_config(overrides={"data": {"study": str(spec)}})).tables
    frame = outcome_frame(tables["participants"], tables["assessments"], "hamd17", design=study.design, columns=())
    derived = rm.ice_from_dropout(frame, study.design)
    result = rm.reference_based_condmean(frame, derived.table, study.design, change=True, outcome="hamd17")
    np.testing.assert_allclose(result.estimates["estimate"], jr.estimates["estimate"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.estimates["se"], jr.estimates["se"], rtol=1e-7)
    assert result.estimates["quantity"].iloc[3] == "Drug - Placebo at Week 6"


def model_with(frame, ice, strategy: str) -> rm.ImputationModel:
    return rm.fit_imputation_model(frame, ice.table.assign(strategy=strategy), DESIGN)


def test_parameters_match_r(frame, ice):
    model = model_with(frame, ice, "JR")
    np.testing.assert_allclose(model.sigma, np.array(PIECES["sigma"]), rtol=1e-6)
    # R's beta (treatment contrasts, intercept = PLACEBO at visit 4) mapped to the engine's cell means
    b = PIECES["beta"]
    for k, visit in enumerate(VISITS):
        at = "" if visit == "4" else f"VISIT{visit}"
        intercept = b["(Intercept)"] + (b[at] if at else 0.0)
        slope = b["BASVAL"] + (b[f"BASVAL:{at}"] if at else 0.0)
        drug = b["THERAPYDRUG"] + (b[f"{at}:THERAPYDRUG"] if at else 0.0)
        assert model.beta[k] == pytest.approx(intercept, rel=1e-6)
        assert model.beta[4 + k] == pytest.approx(drug, rel=1e-6)
        assert model.beta[8 + k] == pytest.approx(slope, rel=1e-6)


@pytest.mark.parametrize("strategy", ["MAR", "JR", "CR", "CIR", "LMCF"])
def test_strategy_means_imputations_and_ancova_match_r(frame, ice, strategy):
    ref = PIECES["results"][strategy]
    model = model_with(frame, ice, strategy)
    means = rm.imputation_means(model)
    for pid, vector in ref["strategy_means"].items():
        mine = means.loc[means["id"] == pid].set_index("visit")["mean"]
        for visit, value in mine.items():
            assert value == pytest.approx(vector[VISITS.index(visit)], rel=1e-6, abs=1e-9), (pid, visit)
    completed = model.impute()
    where = {pid: i for i, pid in enumerate(model.ids)}
    for row in ref["imputed"]:
        mine = completed[where[row["id"]], VISITS.index(row["visit"])]
        assert mine == pytest.approx(row["value"], rel=1e-6, abs=1e-9), row
    out = rm.ancova_by_visit(completed, model.Z)
    for k, visit in enumerate(VISITS):
        want = ref["ancova"][visit]
        assert out["contrast"][k] == pytest.approx(want["contrast_drug_minus_placebo"], rel=1e-6)
        assert out["lsmean_control"][k] == pytest.approx(want["lsmean_placebo"], rel=1e-6)
        assert out["lsmean_intervention"][k] == pytest.approx(want["lsmean_drug"], rel=1e-6)


def test_composed_covariance_matches_r():
    ref = PIECES["composed_covariance"]
    joint = rm.strategy_covariance("JR", np.array(ref["sigma_own"]), np.array(ref["sigma_ref"]), ref["n_pre_ice"])
    np.testing.assert_allclose(joint, np.array(ref["joint"]), rtol=1e-10)


def test_cr_and_cir_lie_between_mar_and_jr_at_the_last_visit(frame, ice):
    """With PLACEBO the reference and a drug benefit that grows over the visits (DRUG - PLACEBO below 0 and
    falling), the strategies remove the benefit of the DRUG patients with an ICE to different degrees (Carpenter,
    Roger & Kenward 2013), one Sigma K = Sigma_post,pre Sigma_pre^-1 for all:
    JR: mu_ref,post + K (y_pre - mu_own,pre): all benefit gone from the ICE on, the most conservative;
    CR: mu_ref,post + K (y_pre - mu_ref,pre) = JR + K (mu_own,pre - mu_ref,pre): the benefit accrued before the
    ICE, seen as a deviation of the observed values from the reference's mean, is carried forward through the
    correlation K (positive here), so CR's effect is further from 0 than JR's;
    CIR: JR + (mu_own - mu_ref) at the last pre-ICE visit: the benefit reached at the ICE is kept, not increased;
    MAR: the own arm's mean after the ICE: the benefit keeps growing. So, in DRUG - PLACEBO at visit 7,
    MAR < CIR < JR and MAR < CR < JR. In the PLACEBO arm own and reference means coincide: its patients'
    imputed values are the same under MAR, JR, CR and CIR (its LS mean is not: the ANCOVA's baseline slope is
    common to both arms)."""
    effect, placebo = {}, {}
    for strategy in ("MAR", "JR", "CR", "CIR"):
        model = model_with(frame, ice, strategy)
        completed = model.impute()
        out = rm.ancova_by_visit(completed, model.Z)
        effect[strategy], placebo[strategy] = out["contrast"][3], completed[model.arms == "PLACEBO"]
    assert effect["MAR"] < effect["CIR"] < effect["JR"] < 0
    assert effect["MAR"] < effect["CR"] < effect["JR"]
    assert effect["JR"] == pytest.approx(-2.126, abs=0.0005)  # the vignette's trt_7, sign turned
    for strategy in ("JR", "CR", "CIR"):
        np.testing.assert_allclose(placebo[strategy], placebo["MAR"], rtol=1e-12)
