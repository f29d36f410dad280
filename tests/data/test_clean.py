import numpy as np
import pandas as pd
import pytest

from conftest import EXAMPLES
from imrstats.data.clean import clean_tables, score_scale
from imrstats.data.instruments import get_instrument
from imrstats.data.stage import read_inputs, run_clean
from imrstats.errors import InputError

CODES = {"assessments": [-99, -999, 999], "participants": [-99, -999]}


def test_prorating_rule():
    keys = ("a", "b", "c", "d", "e")
    items = pd.DataFrame(
        {
            "a": [1, 1, 1, np.nan],
            "b": [2, np.nan, np.nan, np.nan],
            "c": [3, 3, 3, 3],
            "d": [4, 4, np.nan, np.nan],
            "e": [5, 5, 5, 5],
        }
    )
    score, missing = score_scale(items, keys, max_missing=2, prorate=True)
    assert score.iloc[0] == 15  # complete: the sum
    assert score.iloc[1] == np.floor(13 / 4 * 5 + 0.5)  # one missing: mean x 5, rounded half up = 16
    assert score.iloc[2] == np.floor(9 / 3 * 5 + 0.5)  # two missing: 15
    assert np.isnan(score.iloc[3])  # three missing > 2 allowed
    assert list(missing) == [0, 1, 2, 3]
    no_prorate, _ = score_scale(items, keys, max_missing=2, prorate=False)
    assert no_prorate.notna().tolist() == [True, False, False, False]


def test_items_scored_to_totals_and_subscales():
    tables = read_inputs([EXAMPLES / "small_csv"])
    result = clean_tables(tables, missing_codes=CODES)
    scales = result.tables["assessments"]
    items = result.tables["assessment_items"]
    inst = get_instrument("imrs_client")
    wide = items.pivot_table(index=["id", "timepoint"], columns="instrument", values="score")
    complete = wide[list(i.key for i in inst.items)].dropna()
    pid, tp = complete.index[0]
    total = scales.query("id == @pid and timepoint == @tp and instrument == 'imrs_client'")["score"].item()
    assert total == complete.loc[(pid, tp)].sum()
    rec = scales.query("id == @pid and timepoint == @tp and instrument == 'imrs_client_recovery'")["score"].item()
    assert rec == complete.loc[(pid, tp), list(get_instrument("imrs_client_recovery").item_keys_in_parent)].sum()
    assert result.log["rule"].str.startswith("scored from 15 items").any()


def test_missing_codes_are_logged_and_spss_user_missing_read_as_missing():
    tables = read_inputs([EXAMPLES / "dirty_csv"])
    with pytest.raises(InputError, match="input has errors; nothing was cleaned"):
        clean_tables(tables, missing_codes=CODES)
    # a clean table with a -99 code
    part = read_inputs([EXAMPLES / "small_csv"])
    assess = part["assessments"].copy()
    assess.loc[0, "score"] = "-99"
    part["assessments"] = assess
    result = clean_tables(part, missing_codes=CODES)
    logged = result.log[result.log["rule"].str.startswith("missing-value code -99")]
    assert len(logged) == 1 and logged["row"].iloc[0] == 1 and logged["old_value"].iloc[0] == "-99"
    sav = clean_tables(read_inputs([EXAMPLES / "small_sav"]), missing_codes=CODES).tables["assessments"]
    csv = clean_tables(read_inputs([EXAMPLES / "small_csv"]), missing_codes=CODES).tables["assessments"]
    pd.testing.assert_series_equal(sav["score"].reset_index(drop=True), csv["score"].reset_index(drop=True))


def test_code_case_is_repaired_and_logged(tmp_path):
    tables = read_inputs([EXAMPLES / "small_csv"])
    part = tables["participants"].copy()
    part.loc[0, "sex"] = "Female"
    tables["participants"] = part
    result = clean_tables(tables, missing_codes=CODES)
    assert result.tables["participants"]["sex"].iloc[0] == "female"
    row = result.log[result.log["column"] == "sex"]
    assert row[["old_value", "new_value"]].values.tolist() == [["Female", "female"]]


def test_clean_writes_tables_and_never_touches_inputs(tmp_path):
    before = {p: p.read_bytes() for p in (EXAMPLES / "small_csv").iterdir()}
    written = run_clean(
        [EXAMPLES / "small_csv"],
        tmp_path,
        {"clean": {"missing_codes": CODES, "prorate": True}, "privacy": {"allow_identifier_columns": []}},
    )
    assert before == {p: p.read_bytes() for p in (EXAMPLES / "small_csv").iterdir()}
    assert set(written) == {
        "participants",
        "assessments",
        "service_use",
        "programme",
        "assessment_items",
        "cleaning_log",
    }
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
    typed = pd.read_parquet(written["programme"])
    assert str(typed["m01"].dtype) == "boolean" and str(typed["sessions"].dtype) == "Int64"
