"""Unit tests of imrstats.trial.lmm (random-intercept LMM): degenerate inputs, the boundary, non-convergence,
the between-within df rule and the result's JSON form. Numbers against R: tests/validation/test_trial_lmm_vs_r.py."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import VALIDATION_DATA
from imrstats.errors import AnalysisError
from imrstats.trial import lmm as trial_lmm
from imrstats.trial.lmm import random_intercept_lmm
from imrstats.trial.mmrm import build_mmrm_design

DATA = VALIDATION_DATA


@pytest.fixture(scope="module")
def frame():
    return pd.read_csv(DATA / "trial_gaf_f.csv", dtype={"id": str})


def test_one_visit_only_is_not_identifiable(frame):
    f = frame.assign(fu12=np.nan)
    with pytest.raises(AnalysisError, match="two visits"):
        random_intercept_lmm(f)


def test_no_observed_outcome_raises(frame):
    with pytest.raises(AnalysisError, match="no observed post-baseline value"):
        random_intercept_lmm(frame.assign(post=np.nan, fu12=np.nan))


@pytest.mark.parametrize("arm,visit,other", [("TAU", "fu12", "post"), ("IMR", "post", "fu12")])
def test_arm_without_observations_at_a_visit(frame, arm, visit, other):
    f = frame.copy()
    f.loc[f["arm"] == arm, visit] = np.nan
    r = random_intercept_lmm(f, outcome="gaf_f")
    c = r.contrasts.set_index("timepoint")
    assert np.isnan(c.loc[visit, "estimate"]) and np.isnan(c.loc[visit, "se"])
    assert f"no observed {arm} value at {visit}" in c.loc[visit, "notes"]
    assert c.loc[visit, "n_tau" if arm == "TAU" else "n_imr"] == 0
    assert r.converged and np.isfinite(c.loc[other, ["estimate", "se", "df", "p"]].astype(float)).all()
    assert f"arm[IMR]:time[{visit}]" not in set(r.fixed_effects["term"])


def _negatively_correlated(frame, seed=1):
    rng = np.random.default_rng(seed)
    n = len(frame)
    u = rng.normal(0, 5, n)
    return frame.assign(post=40 + u + rng.normal(0, 1, n), fu12=40 - u + rng.normal(0, 1, n))


def test_boundary_fit_is_flagged_and_reduces_to_ols(frame):
    f = _negatively_correlated(frame)
    r = random_intercept_lmm(f)
    assert r.converged and r.boundary
    assert r.random_intercept_variance < 1e-6 * r.residual_variance
    assert "boundary" in r.notes and r.contrasts["boundary"].all()
    # at tau^2 = 0 the REML fit is OLS with the same mean model: beta, sigma^2 = RSS / (N - p), its SEs
    long, _ = trial_lmm.observed_long_format(f, trial_lmm.DEFAULT_COVARIATES)
    design = build_mmrm_design(long, covariates=trial_lmm.DEFAULT_COVARIATES, times=("post", "fu12"))
    cells = np.flatnonzero(design.present.reshape(-1))
    X = design.X.reshape(-1, design.X.shape[2])[cells]
    y = design.outcome_grid(long["y"].to_numpy()).reshape(-1)[cells]
    beta, rss = np.linalg.lstsq(X, y, rcond=None)[:2]
    s2 = float(rss[0]) / (len(y) - X.shape[1])
    se = np.sqrt(s2 * np.diag(np.linalg.inv(X.T @ X)))
    j = [design.columns.index(f"arm[IMR]:time[{t}]") for t in ("post", "fu12")]
    assert r.residual_variance == pytest.approx(s2, rel=1e-6)
    assert list(r.contrasts["estimate"]) == pytest.approx(beta[j], rel=1e-6)
    assert list(r.contrasts["se"]) == pytest.approx(se[j], rel=1e-6)


def test_non_convergence_is_flagged_not_silent(frame, monkeypatch):
    monkeypatch.setattr(trial_lmm, "_MAXITER", 1)  # Brent's search stopped after one step: short of the maximum
    r = random_intercept_lmm(frame)
    assert not r.converged
    assert r.notes.startswith("NOT CONVERGED") and not r.contrasts["converged"].any()
    assert all(n.startswith("NOT CONVERGED") for n in r.contrasts["notes"])


def test_between_within_df_follows_nlme_rule():
    groups = np.array([0, 0, 1, 1, 2, 2, 3])
    within = np.array([1.0, 0, 1, 0, 1, 0, 1])  # varies inside a group
    between = np.array([3.0, 3, 1, 1, 2, 2, 5])  # constant inside every group
    ones = np.ones(7)
    # no intercept column: residual stratum N - n - 1 + 1 = 3, group stratum n - 1 = 3
    assert list(trial_lmm.between_within_df(np.column_stack([within, between]), groups)) == [3, 3]
    # with an intercept: residual N - n - 1 = 2, group n - 1 - 1 = 2, intercept max = 2
    assert list(trial_lmm.between_within_df(np.column_stack([ones, within, between]), groups)) == [2, 2, 2]


def test_level_and_ci(frame):
    r95 = random_intercept_lmm(frame)
    r90 = random_intercept_lmm(frame, level=0.90)
    c = r90.contrasts.iloc[0]
    crit = stats.t.ppf(0.95, c["df"])
    assert c["ci_high"] - c["estimate"] == pytest.approx(crit * c["se"], rel=1e-12)
    assert (r90.contrasts["ci_high"] < r95.contrasts["ci_high"]).all()
    with pytest.raises(AnalysisError, match="level"):
        random_intercept_lmm(frame, level=1.5)


def test_result_shape_and_json(frame):
    f = frame.copy()
    f.loc[f["arm"] == "TAU", "fu12"] = np.nan  # a NaN row must become null in JSON
    r = random_intercept_lmm(f, outcome="gaf_f")
    assert list(r.contrasts["timepoint"]) == ["post", "fu12"]
    assert r.contrasts["method"].str.contains("between-within df").all()
    assert 0 < r.icc < 1
    vc = r.variance_components.set_index("quantity")["estimate"]
    assert vc.iloc[0] == r.random_intercept_variance and vc.iloc[1] == r.residual_variance
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["contrasts"][1]["estimate"] is None and d["converged"] is True
    assert d["n_observations"] == r.n_observations


def test_missing_covariate_and_baseline_rows_are_excluded(frame):
    f = frame.copy()
    f.loc[0, "age"] = np.nan
    f.loc[1, "baseline"] = np.nan
    r = random_intercept_lmm(f)
    full = random_intercept_lmm(frame)
    assert r.n_participants <= full.n_participants
    assert "1 participant(s) without arm or complete covariates" in r.notes


LEAN = {
    "outcomes": ["gaf_f"],
    "imputations": 2,
    "per_protocol_outcomes": [],
    "subgroup_outcomes": [],
    "subgroup_mi_outcomes": [],
    "tipping_outcomes": [],
    "diagnostics_outcomes": [],
    "within_group_outcomes": [],
    "subscale_ancova_outcomes": [],
    "subscale_itt_outcomes": [],
    "attendance_outcomes": [],
}


def test_trial_stage_reports_the_model_and_can_turn_it_off(default_clean_tables):
    from imrstats.pipeline.registry import with_section
    from imrstats.pipeline.stage_result import to_json
    from imrstats.trial import analyses as trial
    from imrstats.trial.stage import run_trial_stage

    res = with_section(run_trial_stage(default_clean_tables, LEAN, seed=5))
    table = res.tables["trial_random_intercept_lmm"]
    direct = random_intercept_lmm(
        trial.outcome_frame(default_clean_tables["participants"], default_clean_tables["assessments"], "gaf_f"),
        outcome="gaf_f",
    )
    assert list(table["timepoint"]) == ["post", "fu12"] and table["converged"].all()
    assert list(table["estimate"]) == list(direct.contrasts["estimate"])
    assert (table["random_intercept_variance"] == direct.random_intercept_variance).all()
    assert "random-intercept LMM" in res.html
    assert res.record["outcomes"]["gaf_f"]["random_intercept_lmm"]["converged"] is True
    json.loads(to_json(res.record))
    off = run_trial_stage(default_clean_tables, {**LEAN, "random_intercept_outcomes": []}, seed=5)
    assert "trial_random_intercept_lmm" not in off.tables
    assert "random_intercept_lmm" not in off.record["outcomes"]["gaf_f"]
