"""Hostile inputs for the trial stage (intention to treat means everyone: missing covariates are imputed, not dropped).

A participant with a blank baseline covariate (age, sex, ...) used to be dropped from the ITT MI-MMRM without
a word: 143 of 160 analysed, the CONSORT box still saying everyone. Each case here asserts who was analysed
(the fitted model's n per arm), that nobody left silently, and what the console and CONSORT say.
"""

import numpy as np
import pandas as pd
import pytest

from conftest import VALIDATION_DATA
from imrstats.errors import AnalysisError
from imrstats.trial import analyses as trial
from imrstats.trial.consort import ITT_ANALYSED, ITT_COVARIATES, ITT_EXCLUDED, ITT_NOT_AVAILABLE, consort_counts

M = 5


@pytest.fixture(scope="module")
def frame():
    return pd.read_csv(VALIDATION_DATA / "trial_gaf_f.csv", dtype={"id": str})  # 99 IMR, 99 TAU, covariates complete


def _blank(frame, column, rows):
    out = frame.copy()
    out.loc[rows, column] = np.nan if column == "age" else None
    return out


def _arm_counts(frame):
    return {arm: int((frame["arm"] == arm).sum()) for arm in trial.ARMS}


def test_blank_age_everyone_is_analysed_and_counted(frame):
    """The issue's case: 17 blank ages. Old code: 181 of 198 analysed, nothing said."""
    bad = _blank(frame, "age", frame.index[::12][:17])
    res = trial.itt_mi_mmrm(bad, outcome="gaf_f", m=M, seed=1)
    assert res.n_participants == 198
    assert res.n_analysed_by_arm == _arm_counts(frame) == res.n_randomised_by_arm
    assert sum(res.n_covariates_imputed_by_arm.values()) == 17 and res.n_covariate_cells_imputed == {"age": 17}
    assert (res.contrasts["n_analysed"] == 198).all() and (res.contrasts["n_covariates_imputed"] == 17).all()
    assert "17 with imputed baseline covariate(s)" in res.summary()
    assert "age 17 by pmm" in res.method
    assert not any("EXCLUDED" in f for f in res.flags)


def test_blank_sex_imputed_as_observed_categories(frame):
    rows = frame.index[5:200:20]
    bad = _blank(frame, "sex", rows)
    imp = trial.impute_outcome(bad, m=M, seed=2)
    values = imp.covariate_values["sex"]
    assert set(np.unique(values)) <= {"female", "male"}
    assert (
        values[:, ~imp.covariate_missing["sex"]] == imp.frame["sex"].to_numpy()[~imp.covariate_missing["sex"]]
    ).all()
    res = trial.itt_mi_mmrm(bad, outcome="gaf_f", imputation=imp)
    assert res.n_participants == 198 and res.n_covariate_cells_imputed == {"sex": len(rows)}


def test_blank_age_and_sex_both(frame):
    bad = _blank(_blank(frame, "age", [0, 1, 2, 3]), "sex", [3, 4, 5])
    res = trial.itt_mi_mmrm(bad, outcome="gaf_f", m=M, seed=3)
    assert res.n_participants == 198
    assert res.n_covariate_cells_imputed == {"sex": 3, "age": 4}
    assert sum(res.n_covariates_imputed_by_arm.values()) == 6  # participant 3 lacks both: counted once


def test_exclude_is_loud_and_counted(frame):
    bad = _blank(frame, "age", frame.index[::12][:17])
    gone = {arm: int(((bad["arm"] == arm) & bad["age"].isna()).sum()) for arm in trial.ARMS}
    res = trial.itt_mi_mmrm(bad, outcome="gaf_f", m=M, seed=1, missing_covariates="exclude")
    assert res.n_analysed_by_arm == {arm: 99 - gone[arm] for arm in trial.ARMS}
    assert res.n_excluded_by_arm == gone and res.n_participants == 181
    assert any("17 randomised participant(s) EXCLUDED" in f for f in res.flags)
    assert (res.contrasts["n_analysed"] == 181).all() and (res.contrasts["n_excluded_missing_covariates"] == 17).all()
    flow = consort_counts(*_tables(bad), itt=res.to_dict()).set_index("stage")
    assert flow.loc[ITT_ANALYSED].to_dict() == res.n_analysed_by_arm
    assert flow.loc[ITT_EXCLUDED].to_dict() == gone


def test_one_arm_has_no_sex_at_all(frame):
    """Every IMR participant's sex is blank: imputed jointly (arm as a predictor), said so; exclude stops."""
    bad = _blank(frame, "sex", frame.index[frame["arm"] == "IMR"])
    res = trial.itt_mi_mmrm(bad, outcome="gaf_f", m=M, seed=4)
    assert res.n_analysed_by_arm == {"IMR": 99, "TAU": 99}
    assert any("imputed jointly" in f for f in res.flags) and "arm as a predictor" in res.method
    with pytest.raises(AnalysisError, match="no IMR participant"):
        trial.itt_mi_mmrm(bad, outcome="gaf_f", m=M, seed=4, missing_covariates="exclude")


def test_participant_with_no_outcome_at_all_stays_in_itt(frame):
    bad = frame.copy()
    bad.loc[[0, 1], ["baseline", "post", "fu12"]] = np.nan
    bad.loc[1, "age"] = np.nan  # nothing measured and no age: still randomised, still analysed
    res = trial.itt_mi_mmrm(bad, outcome="gaf_f", m=M, seed=5)
    assert res.n_participants == 198
    arms = bad.loc[[0, 1], "arm"]
    for arm in trial.ARMS:
        observed_none = (frame["arm"] == arm) & frame[["baseline", "post", "fu12"]].isna().any(axis=1)
        expected = int((observed_none | ((frame["arm"] == arm) & frame.index.isin([0, 1]))).sum())
        assert res.n_outcome_imputed_by_arm[arm] == expected, (arm, arms.tolist())


def test_arm_with_a_single_participant(frame):
    one = frame.loc[frame["arm"] == "TAU"].copy()
    imr = frame.loc[(frame["arm"] == "IMR") & frame[["baseline", "post", "fu12"]].notna().all(axis=1)].iloc[[0]]
    small = pd.concat([one, imr], ignore_index=True)
    small.loc[small["arm"] == "IMR", "age"] = np.nan  # the one IMR participant's age is blank
    res = trial.itt_mi_mmrm(small, outcome="gaf_f", m=M, seed=6)
    assert res.n_analysed_by_arm == {"IMR": 1, "TAU": 99}
    assert res.n_covariates_imputed_by_arm == {"IMR": 1, "TAU": 0}
    assert any("imputed jointly" in f for f in res.flags)
    assert np.isfinite(res.contrasts["estimate"]).all()


def test_covariate_constant_in_one_arm(frame):
    """All IMR participants are female; three IMR sexes blank: imputed as the one observed value."""
    bad = frame.copy()
    bad.loc[bad["arm"] == "IMR", "sex"] = "female"
    blank = bad.index[bad["arm"] == "IMR"][:3]
    bad.loc[blank, "sex"] = None
    imp = trial.impute_outcome(bad, m=M, seed=7)
    assert (imp.covariate_values["sex"][:, imp.frame["arm"].to_numpy() == "IMR"] == "female").all()
    res = trial.itt_mi_mmrm(bad, outcome="gaf_f", imputation=imp)
    assert res.n_participants == 198 and res.n_covariate_cells_imputed == {"sex": 3}


def test_nothing_missing_impute_and_exclude_agree_to_the_bit(frame):
    a = trial.itt_mi_mmrm(frame, outcome="gaf_f", m=M, seed=8)
    b = trial.itt_mi_mmrm(frame, outcome="gaf_f", m=M, seed=8, missing_covariates="exclude")
    pd.testing.assert_frame_equal(a.contrasts, b.contrasts)
    assert a.n_covariate_cells_imputed == {} and a.n_excluded_by_arm == {"IMR": 0, "TAU": 0}


def test_site_blank_gets_its_own_category_and_is_flagged(frame):
    bad = frame.copy()
    bad.loc[[0, 5, 9], "site"] = None
    res = trial.itt_mi_mmrm(bad, outcome="gaf_f", m=M, seed=9)
    assert res.n_participants == 198
    assert any("site: 3 missing value(s) analysed as a category of their own" in f for f in res.flags)


def test_covariate_blank_for_everyone_is_an_error(frame):
    bad = frame.assign(age=np.nan)
    with pytest.raises(AnalysisError, match="'age' is missing for every participant"):
        trial.impute_outcome(bad, m=M, seed=10)


def test_subgroup_on_an_imputed_covariate_keeps_everyone(frame):
    bad = _blank(frame, "sex", [2, 7, 30, 150])
    imp = trial.impute_outcome(bad, m=M, seed=11)
    out = trial.subgroup_interactions(bad, "sex", imputation=imp, outcome="gaf_f")
    assert np.isfinite(out["estimate"]).all() and len(out) == 2 * 3


def test_complete_case_and_per_protocol_say_who_they_leave_out(frame):
    bad = _blank(frame, "age", [0, 1])
    _, ancova = trial.complete_case(bad, outcome="gaf_f")
    for _, row in ancova.iterrows():
        assert row["n"] + row["n_excluded"] == row["n_randomised"] == 198
        assert "a missing covariate" in row["excluded_because"]
    groups, slopes = trial.per_protocol(bad, outcome="gaf_f")
    for _, row in slopes.iterrows():
        assert row["n"] + row["n_excluded"] == row["n_imr_randomised"] == 99


def test_consort_without_a_trial_result_does_not_claim_an_itt_analysis(frame):
    flow = consort_counts(*_tables(frame)).set_index("stage")
    assert ITT_ANALYSED not in flow.index and ITT_NOT_AVAILABLE in flow.index
    bad = _blank(frame, "age", [0, 1, 2])
    res = trial.itt_mi_mmrm(bad, outcome="gaf_f", m=M, seed=12)
    flow = consort_counts(*_tables(bad), itt=res.to_dict()).set_index("stage")
    assert flow.loc[ITT_ANALYSED].to_dict() == {"IMR": 99, "TAU": 99}
    assert flow.loc[ITT_COVARIATES].sum() == 3 and flow.loc[ITT_EXCLUDED].sum() == 0


def test_stage_console_says_covariates_were_imputed_or_excluded(default_clean_tables):
    from imrstats.trial.stage import run_trial_outcome

    tables = dict(default_clean_tables)
    part = tables["participants"].copy()
    part.loc[part.index[:6], "age"] = np.nan
    tables["participants"] = part
    settings = {"imputations": 3, "random_intercept_outcomes": [], "delta_grid_sd": [1.0]}
    res = run_trial_outcome(tables, "gaf_f", settings, seed=1)
    n = len(part)
    assert f"of {int((part['arm'] == 'IMR').sum())}" in res.summary
    assert "6 with imputed baseline covariate(s)" in res.summary
    assert res.record["outcomes"]["gaf_f"]["itt"]["n_participants"] == n
    res = run_trial_outcome(tables, "gaf_f", {**settings, "missing_covariates": "exclude"}, seed=1)
    assert "WARNING: gaf_f: 6 randomised participant(s) EXCLUDED" in res.summary
    assert res.record["outcomes"]["gaf_f"]["itt"]["n_participants"] == n - 6
    like = res.tables["trial_likelihood_mmrm"]
    assert (like["n_analysed"] + like["n_excluded"] == like["n_randomised"]).all()


def _tables(frame):
    """participants / assessments tables (long) from a wide gaf_f frame, for the CONSORT counts."""
    part = frame[["id", "arm", "site", "sex", "age", "diagnosis", "sessions_attended"]]
    long = frame.melt(id_vars="id", value_vars=["baseline", "post", "fu12"], var_name="timepoint", value_name="score")
    return part, long.assign(instrument="gaf_f")
