"""Unit tests for imrstats.trial.secondary (edge cases, errors, internal identities) and its part of the trial stage.

Numbers against R are in tests/validation/test_trial_extra_vs_r.py."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import VALIDATION_DATA
from imrstats.config import section_settings
from imrstats.errors import AnalysisError, SettingsError
from imrstats.pipeline.registry import with_section
from imrstats.pipeline.stage_result import to_json
from imrstats.trial import analyses as trial
from imrstats.trial import secondary as te
from imrstats.trial.design import covariate_dummies
from imrstats.trial.stage import run_trial_stage

DATA = VALIDATION_DATA


@pytest.fixture(scope="module")
def gaf():
    return pd.read_csv(DATA / "trial_extra_gaf_f.csv", dtype={"id": str})


# ---------------------------------------------------------------- diagnostics


def test_normalized_residuals_whiten_each_participant(gaf):
    """z_i'z_i = r_i' Sigma^-1 r_i for every participant: the normalization is a square root of Sigma^-1."""
    rows = te.observed_mmrm_rows(gaf, trial.DEFAULT_COVARIATES, "test")
    design, grid = te.observed_mmrm_design(rows, trial.DEFAULT_COVARIATES)
    fit = te.fit_mmrm_grid(design, grid)
    obs = design.present & np.isfinite(grid)
    r = grid - design.X @ fit.beta
    z = te.normalized_residuals(design, obs, r, fit.sigma)
    for i in np.flatnonzero(obs.all(axis=1))[:20]:
        assert z[i] @ z[i] == pytest.approx(r[i] @ np.linalg.solve(fit.sigma, r[i]), rel=1e-10)
    assert np.isnan(z[~obs]).all()


def test_cooks_refit_fast_path_equals_public_refits(gaf):
    """The sufficient-statistic deletion gives the same b_(i) as refitting the public MMRM without participant i."""
    rows = te.observed_mmrm_rows(gaf, trial.DEFAULT_COVARIATES, "test")
    design, grid = te.observed_mmrm_design(rows, trial.DEFAULT_COVARIATES)
    fit = te.fit_mmrm_grid(design, grid)
    D, failed = te.cooks_distance(design, grid, fit, refit=True)
    assert failed == 0
    V_inv, p = np.linalg.inv(fit.cov_beta), len(fit.beta)
    for i in (0, 7, 28):
        g = grid.copy()
        g[i] = np.nan
        d = fit.beta - te.fit_mmrm_grid(design, g).beta
        assert D[i] == pytest.approx(d @ V_inv @ d / p, rel=1e-7)


def test_cooks_fixed_covariance_is_close_to_refits(gaf):
    fixed = te.mmrm_diagnostics(gaf, outcome="gaf_f")
    refit = te.mmrm_diagnostics(gaf, outcome="gaf_f", cooks_refit=True)
    assert np.corrcoef(fixed.cooks, refit.cooks)[0, 1] > 0.99
    assert not np.allclose(fixed.cooks, refit.cooks, rtol=1e-6)  # they are different definitions


def test_cc_cooks_matches_delete_one_refits(gaf):
    """R's cooks.distance formula equals the definition (b - b_(i))' X'X (b - b_(i)) / (p s^2)."""
    d = te.cc_diagnostics(gaf, timepoint="post")
    cc = gaf.loc[gaf["post"].notna() & gaf["baseline"].notna()].reset_index(drop=True)
    Z, _ = covariate_dummies(cc, trial.DEFAULT_COVARIATES)
    X = np.column_stack([np.ones(len(cc)), (cc["arm"] == "IMR").to_numpy(float), cc["baseline"], Z])
    y = cc["post"].to_numpy(float)
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    s2 = ((y - X @ b) ** 2).sum() / (len(y) - X.shape[1])
    for i in (0, 5, 40):
        keep = np.arange(len(y)) != i
        bi = np.linalg.lstsq(X[keep], y[keep], rcond=None)[0]
        assert d.cooks[i] == pytest.approx((b - bi) @ X.T @ X @ (b - bi) / (X.shape[1] * s2), rel=1e-8)


def test_diagnostics_record_is_aggregate_and_json(gaf):
    d = te.mmrm_diagnostics(gaf, outcome="gaf_f")
    rec = d.to_dict()
    json.dumps(rec)
    assert set(rec) == {"outcome", "model", "timepoint", "n", "checks", "cooks_rows_above_4_over_n", "residuals"}
    assert [c["check"] for c in rec["checks"]] == [
        "cooks_distance",
        "shapiro_wilk",
        "spearman_abs_residual_fitted",
        "baseline_quadratic",
    ]


def test_diagnostics_errors(gaf):
    with pytest.raises(AnalysisError, match="timepoint must be one of"):
        te.cc_diagnostics(gaf, timepoint="baseline")
    one_visit = gaf.assign(fu12=np.nan)
    with pytest.raises(AnalysisError, match="observed fu12 value"):
        te.mmrm_diagnostics(one_visit, outcome="gaf_f")


# ---------------------------------------------------------------- within-group change


def test_within_group_difference_is_difference_of_changes(gaf):
    out = te.within_group_change(gaf, outcome="gaf_f").set_index("arm")
    assert out.loc["IMR - TAU", "estimate"] == pytest.approx(out.loc["IMR", "estimate"] - out.loc["TAU", "estimate"])
    assert out.loc["IMR", "n"] + out.loc["TAU", "n"] == out.loc["IMR - TAU", "n"]
    assert (out["ci_low"] < out["estimate"]).all() and "Satterthwaite" in out["method"].iloc[0]


def test_within_group_single_timepoint_is_a_clear_error(gaf):
    with pytest.raises(AnalysisError, match="no IMR participant has an observed post value"):
        te.within_group_change(gaf.assign(post=np.where(gaf["arm"] == "IMR", np.nan, gaf["post"])), outcome="x")


# ---------------------------------------------------------------- subscale ANCOVA


def test_subscale_ancova_f_is_t_squared_and_errors(gaf):
    row = te.subscale_ancova(gaf, outcome="gaf_f").iloc[0]
    assert row["F"] == pytest.approx(row["statistic"] ** 2) and row["n"] == row["n_imr"] + row["n_tau"]
    with pytest.raises(AnalysisError, match="no TAU participant has both post and fu12"):
        te.subscale_ancova(gaf.loc[(gaf["arm"] == "IMR") | gaf["post"].isna()], outcome="x")
    with pytest.raises(AnalysisError, match="timepoint 'fu6'"):
        te.subscale_ancova(gaf, timepoint="fu6")


# ---------------------------------------------------------------- attendance and CACE


def test_nobody_attended_gives_clear_messages(gaf):
    none = gaf.assign(sessions_attended=0.0)
    with pytest.raises(AnalysisError, match="attended 0 sessions; no variation in attendance"):
        te.attendance_dose_response(none, outcome="gaf_f")
    with pytest.raises(AnalysisError, match="no IMR participant attended more than 10 sessions"):
        te.cace_iv(none, outcome="gaf_f")


def test_attendance_split_needs_both_groups(gaf):
    few = gaf.assign(sessions_attended=np.where(gaf["arm"] == "IMR", gaf["sessions_attended"] % 10, 0))
    with pytest.raises(AnalysisError, match="at most 10 sessions; no contrast"):
        te.attendance_dose_response(few, outcome="gaf_f")


def test_cace_scales_itt_by_compliance_and_notes_assumptions(gaf):
    out = te.cace_iv(gaf, outcome="gaf_f").set_index("quantity")
    cace = out.iloc[0]
    assert "exclusion restriction" in cace["notes"] and "one-sided" in cace["notes"]
    assert abs(cace["estimate"]) > abs(out.iloc[1]["estimate"])  # ITT / compliance < 1
    contaminated = gaf.copy()
    contaminated.loc[contaminated["arm"] == "TAU", "sessions_attended"] = 3
    assert "3 TAU" not in cace["notes"]
    note = te.cace_iv(contaminated, outcome="gaf_f")["notes"].iloc[0]
    assert "TAU participant(s) recorded with sessions > 0" in note


def test_cace_with_full_compliance_equals_itt(gaf):
    full = gaf.assign(sessions_attended=np.where(gaf["arm"] == "IMR", 20, 0))
    out = te.cace_iv(full, outcome="gaf_f")
    assert out["estimate"].iloc[0] == pytest.approx(out["estimate"].iloc[1], rel=1e-10)
    assert out["estimate"].iloc[2] == pytest.approx(1.0)


# ---------------------------------------------------------------- the trial stage's secondary analyses

FAST = {
    "outcomes": ["gaf_f", "panss_total"],
    "imputations": 5,
    "subgroups": [],
    "tipping_outcomes": [],
    "subgroup_mi_outcomes": [],
    "subscale_itt_outcomes": ["imrs_client_recovery"],
    "subscale_ancova_outcomes": ["panss_pos", "psp_selfcare"],
    "attendance_outcomes": ["gaf_f"],
}


@pytest.fixture(scope="module")
def clean(default_clean_tables):
    return default_clean_tables


@pytest.fixture(scope="module")
def stage(clean):
    return with_section(run_trial_stage(clean, FAST, seed=3))


def test_stage_has_the_plan_extra_tables_figures_and_sections(stage):
    for name in (
        "trial_diagnostics",
        "trial_within_group_change",
        "trial_subscales",
        "trial_subscale_complete_case",
        "trial_attendance",
        "trial_cace",
    ):
        assert name in stage.tables, name
    diag = stage.tables["trial_diagnostics"]
    assert len(diag) == 2 * 3 * 4 and set(diag["model"]) == {"MMRM (observed data)", "complete-case ANCOVA"}
    sub = stage.tables["trial_subscales"]
    assert sub["outcome"].tolist() == ["panss_pos", "psp_selfcare", "imrs_client_recovery", "imrs_client_recovery"]
    assert (sub["p_holm"] >= sub["p"] - 1e-15).all() and (sub["p_holm"] >= sub["p_bh"] - 1e-15).all()
    assert sub["p_holm"].max() <= 1 and (sub["p_holm"] > sub["p"]).any()  # a family of 4, not of 1
    assert "trial_diagnostics_gaf_f" in stage.figures and "trial_attendance" in stage.figures
    for h in ("Model diagnostics", "Within-group change", "Post hoc subscale analyses", "complier-average causal"):
        assert h in stage.html
    assert "EXCLUSION RESTRICTION" in stage.html and "CACE" in stage.summary
    rec = json.loads(to_json(stage.record))
    assert {"diagnostics", "within_group_change", "subscales", "attendance", "cace"} <= set(rec)
    assert "imrs_client_recovery" in rec["subscale_outcomes"]


def test_failed_diagnostic_check_is_flagged_and_shown(stage):
    """panss_total's heteroscedasticity check fails on the default data (R agrees: p = 0.003)."""
    flag = [f for f in stage.flags if f.startswith("panss_total: diagnostic check(s) failed")]
    assert flag and "spearman_abs_residual_fitted" in flag[0]
    assert "<div class='flag'>" in stage.html and "panss_total: diagnostic check(s) failed" in stage.html
    assert "trial_diagnostics_panss_total" in stage.figures
    assert "trial_itt_contrasts" in stage.tables  # the run went on


def test_no_participant_id_leaks_from_the_plan_extra_outputs(stage, clean):
    ids = set(clean["participants"]["id"].astype(str))
    blobs = [stage.html, stage.summary, to_json(stage.record)] + [f.to_csv(index=False) for f in stage.tables.values()]
    for blob in blobs:
        assert not [i for i in ids if i in blob]


def test_degenerate_inputs_are_flagged_and_the_rest_runs(clean):
    broken = dict(clean)
    a = clean["assessments"]
    drop = (a["instrument"] == "panss_pos") | ((a["instrument"] == "gaf_f") & (a["timepoint"] == "fu12"))
    broken["assessments"] = a.loc[~drop]
    p = clean["participants"].copy()
    p["sessions_attended"] = p["sessions_attended"] * 0
    broken["participants"] = p
    res = with_section(
        run_trial_stage(broken, {**FAST, "subscale_itt_outcomes": [], "attendance_outcomes": ["panss_total"]}, seed=3)
    )
    text = "\n".join(res.flags)
    assert "panss_pos: subscale ANCOVA not reported: no assessments of instrument 'panss_pos'" in text
    assert "gaf_f: within group change not reported" in text and "fu12" in text
    assert "panss_total: cace not reported" in text and "no IMR participant attended more than 10" in text
    assert "panss_total: attendance not reported" in text and "no variation in attendance" in text
    assert res.tables["trial_subscales"]["outcome"].tolist() == ["psp_selfcare"]
    assert "panss_total" in set(res.tables["trial_within_group_change"]["outcome"])
    assert "<div class='flag'>" in res.html


def test_plan_extra_settings_are_checked():
    assert section_settings("trial", {})["diagnostics_figures"] == "flagged"
    with pytest.raises(SettingsError, match="trial.diagnostics_figures: must be one of all, flagged, none"):
        section_settings("trial", {"diagnostics_figures": "some"})
    with pytest.raises(SettingsError, match="trial.attendance_timepoint"):
        section_settings("trial", {"attendance_timepoint": "baseline"})
