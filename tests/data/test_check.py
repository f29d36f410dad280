from pathlib import Path

import pandas as pd
import pytest

from conftest import EXAMPLES
from imrstats.cli import main
from imrstats.data.check import check_tables, has_errors
from imrstats.data.stage import read_inputs

CODES = {"assessments": [-99, -999, 999], "participants": [-99, -999]}


def _keys(problems):
    return {(Path(p.file).name, p.row, p.column, p.rule.split(":")[0], p.severity) for p in problems}


def test_dirty_example_problem_list():
    problems = check_tables(read_inputs([EXAMPLES / "dirty_csv"]), missing_codes=CODES)
    keys = _keys(problems)
    expected = {
        ("participants.csv", 2, "id", "unique", "error"),  # duplicated id
        ("participants.csv", 3, "arm", "code", "error"),  # 'Placebo'
        ("participants.csv", 4, "age", "range", "error"),  # 150
        ("participants.csv", 5, "sex", "code", "warning"),  # 'Female'
        ("participants.csv", 2, "sessions_attended", "consistency", "error"),  # TAU with sessions
        ("assessments.csv", 1, "score", "type", "error"),  # 'n/a'
        ("assessments.csv", 2, "score", "range", "error"),  # GAF-F 120
        ("assessments.csv", 6, "score", "range", "error"),  # IMRS item 6
        ("assessments.csv", 15320, "timepoint", "code", "error"),  # 'week6'
        ("assessments.csv", 15321, "instrument", "instrument", "error"),  # 'gaf_x'
        ("assessments.csv", 15322, "id+timepoint+instrument", "unique", "error"),
    }
    assert expected <= keys, expected - keys
    # the id 'P9999' and the rows of P0002 (whose id was overwritten) are not in participants
    assert any(p.rule.startswith("cross-table") and p.value == "P9999" for p in problems)
    # -99 is a configured missing code, so row 15323 is accepted
    assert not any(p.row == 15323 for p in problems)
    assert has_errors(problems)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "sav", "dta"])
def test_examples_in_every_format_are_clean(fmt):
    problems = check_tables(read_inputs([EXAMPLES / f"small_{fmt}"]), missing_codes=CODES)
    assert not has_errors(problems), [str(p) for p in problems]


def test_every_format_reads_the_same_participants():
    frames = {fmt: read_inputs([EXAMPLES / f"small_{fmt}"])["participants"] for fmt in ("csv", "parquet", "sav", "dta")}
    reference = frames["parquet"][["id", "arm", "sex"]].astype(str).reset_index(drop=True)
    for fmt, frame in frames.items():
        pd.testing.assert_frame_equal(
            frame[["id", "arm", "sex"]].astype(str).reset_index(drop=True), reference, obj=fmt
        )


def test_missing_column_and_identifier_column(tmp_path):
    part = pd.read_csv(EXAMPLES / "small_csv" / "participants.csv").drop(columns="arm")
    part["email"] = "someone@example.org"
    path = tmp_path / "participants.csv"
    part.to_csv(path, index=False)
    problems = check_tables(read_inputs([path]))
    rules = {(p.column, p.rule.split(":")[0]) for p in problems}
    assert ("arm", "required column missing (table 'participants' needs") in {
        (c, r.split(":")[0]) for c, r in rules
    } or any(p.column == "arm" and p.rule.startswith("required column missing") for p in problems)
    assert any(p.column == "email" and p.rule.startswith("privacy") for p in problems)


def test_cpr_number_in_a_value_is_refused(tmp_path):
    part = pd.read_csv(EXAMPLES / "small_csv" / "participants.csv", dtype=str)
    part.loc[0, "id"] = "010190-1234"
    path = tmp_path / "participants.csv"
    part.to_csv(path, index=False)
    problems = check_tables(read_inputs([path]))
    hit = [p for p in problems if p.rule.startswith("privacy")]
    assert hit and hit[0].value == "<redacted>" and hit[0].row == 1


def test_every_row_holding_an_identifier_value_is_named(tmp_path):
    """A value repeated in several rows is reported at each of them (values are matched once per distinct value)."""
    part = pd.read_csv(EXAMPLES / "small_csv" / "participants.csv", dtype=str)
    part["note"] = "ok"
    part.loc[[1, 4], "note"] = "0101901234"
    part.loc[2, "note"] = "Someone@Example.ORG"
    path = tmp_path / "participants.csv"
    part.to_csv(path, index=False)
    hits = [p for p in check_tables(read_inputs([path])) if p.rule.startswith("privacy: value")]
    assert [(p.column, p.row, p.value) for p in hits] == [("note", row, "<redacted>") for row in (2, 3, 5)]


def test_single_arm_is_an_error(tmp_path):
    part = pd.read_csv(EXAMPLES / "small_csv" / "participants.csv", dtype=str)
    part = part[part["arm"] == "IMR"]
    path = tmp_path / "participants.csv"
    part.to_csv(path, index=False)
    problems = check_tables(read_inputs([path]))
    assert any(p.rule.startswith("arm balance: no participant in arm TAU") for p in problems)


def test_empty_and_non_utf8_files_get_clear_errors(tmp_path, capsys):
    empty = tmp_path / "participants.csv"
    empty.write_text("")
    assert main(["check", str(empty)]) == 2
    assert "the file is empty" in capsys.readouterr().err
    latin = tmp_path / "assessments.csv"
    latin.write_bytes("id,timepoint,instrument,score\nP\xf8001,baseline,gaf_f,50\n".encode("latin-1"))
    assert main(["check", str(latin)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_cli_exit_codes(capsys):
    assert main(["check", str(EXAMPLES / "small_csv")]) == 0
    assert main(["check", str(EXAMPLES / "dirty_csv")]) == 2
    out = capsys.readouterr().out
    assert "ERROR: " in out and "errors," in out


def test_check_does_not_modify_inputs():
    before = {p: p.read_bytes() for p in (EXAMPLES / "dirty_csv").iterdir()}
    check_tables(read_inputs([EXAMPLES / "dirty_csv"]), missing_codes=CODES)
    assert before == {p: p.read_bytes() for p in (EXAMPLES / "dirty_csv").iterdir()}
