"""Hostile inputs for the data layer (`imrstats check` / `imrstats clean`): ids, missing codes, encodings,
problem listing and folders (one person one id, missing codes per instrument, every problem listed).

Every case runs the command line in-process (`imrstats.cli.main`, stdout / stderr captured; a few also as a
subprocess of `.venv/bin/imrstats`) on tables cut from data/examples/small_csv (16 participants) and asserts:
the exit code (0 or 2); when the input cannot be used, ONE clear line on stderr naming the file and the
cause; no "Traceback" anywhere; every input file byte-identical afterwards (SHA-256 before and after); no
partial output (a refused clean writes nothing, no temporary file is left); and where a table is produced,
the right counts.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import subprocess
import traceback
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest

from conftest import EXAMPLES, PROJECT
from imrstats.cli import main
from imrstats.data.check import instrument_range
from imrstats.data.instruments import item_index, load_registry

N = 16  # participants kept from the small example (both arms, three sites)
IMRSTATS = PROJECT / ".venv" / "bin" / "imrstats"
REGISTRY = load_registry()
ITEMS = item_index(REGISTRY)


# ---------------------------------------------------------------------------------------------------
# helpers


def base_tables(n: int = N) -> dict[str, pd.DataFrame]:
    """participants, assessments and service_use of the first `n` example participants, as text."""
    read = {
        name: pd.read_csv(EXAMPLES / "small_csv" / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in ("participants", "assessments", "service_use")
    }
    ids = set(read["participants"]["id"].iloc[:n])
    return {name: frame[frame["id"].isin(ids)].reset_index(drop=True) for name, frame in read.items()}


def write_tables(folder: Path, tables: dict[str, pd.DataFrame], encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        text = frame.to_csv(index=False, lineterminator="\n")
        (folder / f"{name}.csv").write_bytes(text.encode(encoding))
    return folder


def hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every regular file under `folder` (links are recorded by their target text, not followed)."""
    out = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            if path.is_symlink():
                out[str(path)] = "link:" + os.readlink(path)
            else:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) with stdout / stderr captured; an exception escaping main fails the case."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException:  # noqa: BLE001 -- anything that escapes is what this suite hunts
            pytest.fail(f"imrstats {' '.join(argv[:1])} raised instead of reporting:\n{traceback.format_exc()}")
    return code, out.getvalue(), err.getvalue()


def run_subprocess(argv: list[str]) -> tuple[int, str, str]:
    if not IMRSTATS.exists():
        pytest.skip(f"{IMRSTATS} is not installed (make run creates it)")
    done = subprocess.run([str(IMRSTATS), *argv], capture_output=True, text=True, timeout=300, cwd=PROJECT)
    return done.returncode, done.stdout, done.stderr


def assert_no_traceback(*texts: str):
    for text in texts:
        assert "Traceback" not in text, text


def assert_one_clear_line(stderr: str, command: str, names: str, cause: str):
    """Exactly one line on stderr, `imrstats <command>: ...`, naming the file (or folder) and the cause."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"imrstats {command}: "), lines[0]
    assert names in lines[0], (names, lines[0])
    assert cause in lines[0], (cause, lines[0])


def assert_no_partial_output(folder: Path):
    """A refused run leaves nothing: the folder is absent or empty, and no temporary file anywhere."""
    if folder.exists():
        assert not any(folder.rglob("*")), sorted(folder.rglob("*"))
    assert not list(folder.parent.rglob(".*.tmp")), list(folder.parent.rglob(".*.tmp"))


def check_and_clean(inputs: Path, tmp_path: Path, *extra: str, expect_check: int = 0, expect_clean: int | None = 0):
    """Run check (with --problems and --json) and then clean; assert the common contract; return a record."""
    before = hashes(inputs)
    problems_csv, problems_json, out = tmp_path / "problems.csv", tmp_path / "problems.json", tmp_path / "clean"
    code, stdout, stderr = run_cli(
        [*extra, "check", str(inputs), "--problems", str(problems_csv), "--json", str(problems_json)]
    )
    assert_no_traceback(stdout, stderr)
    assert code == expect_check, (code, stdout, stderr)
    record = {"check": (code, stdout, stderr), "problems_csv": problems_csv, "out": out}
    if problems_json.exists():
        record["problems"] = json.loads(problems_json.read_text())
    if expect_clean is not None:
        code, cout, cerr = run_cli([*extra, "clean", "--in", str(inputs), "--out", str(out)])
        assert_no_traceback(cout, cerr)
        assert code == expect_clean, (code, cout, cerr)
        record["clean"] = (code, cout, cerr)
        if code == 0:
            record["tables"] = {p.stem: pd.read_parquet(p) for p in out.glob("*.parquet")}
            record["log"] = pd.read_csv(out / "cleaning_log.csv", dtype=str, keep_default_na=False)
        else:
            assert_no_partial_output(out)
    assert hashes(inputs) == before, "an input file was modified"
    return record


def config_file(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "my.yaml"
    path.write_text(text)
    return ["--config", str(path)]


def set_score(tables, pid: str, instrument: str, value: str, timepoint: str = "baseline"):
    a = tables["assessments"]
    hit = (a["id"] == pid) & (a["instrument"] == instrument) & (a["timepoint"] == timepoint)
    assert hit.sum() == 1, (pid, instrument, timepoint)
    a.loc[hit, "score"] = value


# ---------------------------------------------------------------------------------------------------
# one person, one id


def test_bom_in_the_header_is_read_and_cleaned(tmp_path):
    inputs = write_tables(tmp_path / "in", base_tables(), encoding="utf-8-sig")
    record = check_and_clean(inputs, tmp_path)
    assert (inputs / "participants.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    tables = record["tables"]
    assert len(tables["participants"]) == N and tables["participants"]["id"].iloc[0] == "P0001"
    assert tables["assessments"]["id"].nunique() == N


def test_ids_with_trailing_spaces_are_one_person_and_the_trim_is_counted(tmp_path):
    tables = base_tables()
    a = tables["assessments"]
    padded = a["id"] == "P0002"
    a.loc[padded, "id"] = "P0002  "
    inputs = write_tables(tmp_path / "in", tables)
    record = check_and_clean(inputs, tmp_path)
    assert record["check"][1].splitlines()[-1].startswith("0 errors")
    clean = record["tables"]
    assert sorted(clean["assessments"]["id"].unique()) == sorted(clean["participants"]["id"])
    log = record["log"]
    trimmed = log[(log["table"] == "assessments") & log["rule"].str.contains("trimmed of surrounding whitespace")]
    assert len(trimmed) == 1 and f"{int(padded.sum())} ids" in trimmed["rule"].item()
    assert trimmed["id"].item() == ""  # a count, never an id


def test_two_participants_differing_only_by_letter_case_are_an_error_naming_both_rows(tmp_path):
    tables = base_tables()
    p = tables["participants"]
    p.loc[1, "id"] = "AAR-0002"
    p.loc[5, "id"] = "aar-0002"
    inputs = write_tables(tmp_path / "in", tables)
    record = check_and_clean(inputs, tmp_path, expect_check=2, expect_clean=2)
    stdout = record["check"][1]
    line = next(line for line in stdout.splitlines() if "one id after normalisation" in line)
    assert line.startswith("ERROR: ") and "participants.csv, row 6, column 'id', value 'aar-0002'" in line
    assert "'AAR-0002' in row 2" in line and "unique:" in line
    assert not any(q["rule"].startswith("unique") and q["row"] == 2 for q in record["problems"])
    assert "input has errors; nothing was cleaned" in record["clean"][2]


def test_assessment_ids_in_another_case_match_their_participant_no_phantom(tmp_path):
    tables = base_tables()
    a, s = tables["assessments"], tables["service_use"]
    n_lower = int((a["id"] == "P0003").sum())
    a.loc[a["id"] == "P0003", "id"] = "p0003"
    s.loc[s["id"] == "P0004", "id"] = " p0004"
    inputs = write_tables(tmp_path / "in", tables)
    record = check_and_clean(inputs, tmp_path)
    warnings = [q for q in record["problems"] if q["rule"].startswith("id: matches participant")]
    assert {(Path(q["file"]).name, q["value"]) for q in warnings} == {
        ("assessments.csv", "p0003"),
        ("service_use.csv", "p0004"),
    }
    assert all(q["severity"] == "warning" for q in warnings)
    assert f"({n_lower} rows, the first is row" in next(q["rule"] for q in warnings if q["value"] == "p0003")
    clean = record["tables"]
    assert len(clean["participants"]) == N
    assert set(clean["assessments"]["id"]) == set(clean["participants"]["id"])  # N people, not N + 1
    assert set(clean["service_use"]["id"]) <= set(clean["participants"]["id"])
    log = record["log"]
    spelled = log[log["rule"].str.contains("participants table's spelling")]
    assert set(spelled["table"]) == {"assessments", "service_use"}
    assert f"{n_lower} ids" in spelled[spelled["table"] == "assessments"]["rule"].item()
    assert not log["id"].isin(["p0003", "p0004", " p0004"]).any()


def test_mixed_case_duplicate_assessment_across_spellings_is_an_error(tmp_path):
    tables = base_tables()
    a = tables["assessments"]
    row = a[(a["id"] == "P0001") & (a["instrument"] == "gaf_f") & (a["timepoint"] == "baseline")].copy()
    row["id"] = "p0001"
    tables["assessments"] = pd.concat([a, row], ignore_index=True)
    inputs = write_tables(tmp_path / "in", tables)
    record = check_and_clean(inputs, tmp_path, expect_check=2, expect_clean=2)
    hit = [q for q in record["problems"] if q["rule"].startswith("unique") and q["value"].startswith("p0001/")]
    assert len(hit) == 1 and hit[0]["row"] == len(a) + 1 and "repeats row" in hit[0]["rule"]


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_numeric_ids_from_spss_and_stata_match_the_csv_of_the_same_study(tmp_path, fmt):
    tables = base_tables()
    new_id = {old: 1001 + i for i, old in enumerate(tables["participants"]["id"])}
    part = tables["participants"].copy()
    part["id"] = part["id"].map(new_id).astype(float)  # read back as 1001.0, 1002.0, ...
    for col in ("age", "sessions_attended"):
        part[col] = pd.to_numeric(part[col])
    inputs = tmp_path / "in"
    inputs.mkdir()
    writer = pyreadstat.write_sav if fmt == "sav" else pyreadstat.write_dta
    writer(part, str(inputs / f"participants.{fmt}"))
    for name in ("assessments", "service_use"):
        frame = tables[name].copy()
        frame["id"] = frame["id"].map(new_id).astype(str)  # "1001" as a CSV writes it
        write_tables(inputs, {name: frame})
    record = check_and_clean(inputs, tmp_path)
    assert not [q for q in record["problems"] if q["rule"].startswith("cross-table")]
    clean = record["tables"]
    assert sorted(clean["participants"]["id"]) == [str(1001 + i) for i in range(N)]
    assert set(clean["assessments"]["id"]) == set(clean["participants"]["id"])
    log = record["log"]
    numeric = log[(log["table"] == "participants") & log["rule"].str.contains(r"\(1001\.0\)")]
    assert len(numeric) == 1 and f"{N} ids" in numeric["rule"].item()


# ---------------------------------------------------------------------------------------------------
# missing codes


def _assessments_sav(folder: Path, tables, declared: list):
    a = tables["assessments"].copy()
    a["score"] = pd.to_numeric(a["score"])
    pyreadstat.write_sav(a, str(folder / "assessments.sav"), missing_ranges={"score": declared})


def test_spss_code_9_declared_on_score_blanks_imrs_items_but_keeps_a_gaf_f_of_9(tmp_path):
    tables = base_tables()
    set_score(tables, "P0001", "imrs_client_item07", "9")  # 9 = "not answered": outside 1-5
    set_score(tables, "P0002", "gaf_f", "9")  # a real GAF-F of 9: inside 1-100
    set_score(tables, "P0003", "hamd6", "9")  # a real HAM-D6 of 9: inside 0-22
    inputs = tmp_path / "in"
    write_tables(inputs, {k: v for k, v in tables.items() if k != "assessments"})
    _assessments_sav(inputs, tables, [9])
    record = check_and_clean(inputs, tmp_path)
    kept = [q for q in record["problems"] if q["rule"].startswith("missing code: 9 ")]
    assert {(q["severity"], q["value"]) for q in kept} == {("warning", "9")}
    # one warning per instrument whose range holds 9, with the number of 9s it keeps
    a = tables["assessments"]
    nines = a[pd.to_numeric(a["score"]) == 9].groupby("instrument").size()
    expected = {
        k: int(n) for k, n in nines.items() if (r := instrument_range(k, REGISTRY, ITEMS)) and r[0] <= 9 <= r[1]
    }
    assert {"gaf_f", "hamd6"} <= expected.keys() and "imrs_client_item07" not in expected
    found = {q["rule"].split("inside ")[1].split("'s")[0]: q["rule"] for q in kept}
    assert found.keys() == expected.keys()
    for key, rule in found.items():
        assert f": {expected[key]} values kept as scores" in rule and "declared user-missing in the file" in rule
    clean = record["tables"]
    s = clean["assessments"].set_index(["id", "timepoint", "instrument"])["score"]
    assert s[("P0002", "baseline", "gaf_f")] == 9 and s[("P0003", "baseline", "hamd6")] == 9
    items = clean["assessment_items"].set_index(["id", "timepoint", "instrument"])["score"]
    assert pd.isna(items[("P0001", "baseline", "imrs_client_item07")])
    log = record["log"]
    blanked = log[log["rule"].str.startswith("missing-value code 9 set to missing; declared user-missing")]
    assert len(blanked) == 1 and blanked["instrument"].item() == "imrs_client_item07"
    kept_rows = log[log["rule"].str.startswith("missing code: 9 ")]
    assert set(kept_rows["instrument"]) == expected.keys()


def test_spss_minus_99_declared_outside_every_range_is_blanked_and_counted(tmp_path):
    tables = base_tables()
    a = tables["assessments"]
    n_missing = int((a["score"] == "").sum())
    a.loc[a["score"] == "", "score"] = "-99"
    inputs = tmp_path / "in"
    write_tables(inputs, {k: v for k, v in tables.items() if k != "assessments"})
    _assessments_sav(inputs, tables, [-99])
    record = check_and_clean(inputs, tmp_path)
    assert not [q for q in record["problems"] if q["rule"].startswith("missing code")]
    log = record["log"]
    assert int(log["rule"].str.startswith("missing-value code -99 set to missing").sum()) == n_missing > 0


def test_config_confirms_9_as_missing_for_imrs_client_items_only(tmp_path):
    tables = base_tables()
    set_score(tables, "P0001", "imrs_client_item07", "9")
    set_score(tables, "P0002", "gaf_f", "9")
    inputs = write_tables(tmp_path / "in", tables)
    # without the setting, 9 on an IMRS item is out of range: an error naming file, row, column, value
    code, stdout, stderr = run_cli(["check", str(inputs)])
    assert code == 2 and "range: imrs_client_item07 scores lie in 1-5" in stdout
    extra = config_file(tmp_path, "clean:\n  missing_codes_by_instrument:\n    imrs_client: [9]\n")
    record = check_and_clean(inputs, tmp_path, *extra)
    clean = record["tables"]
    s = clean["assessments"].set_index(["id", "timepoint", "instrument"])["score"]
    assert s[("P0002", "baseline", "gaf_f")] == 9
    items = clean["assessment_items"].set_index(["id", "timepoint", "instrument"])["score"]
    assert pd.isna(items[("P0001", "baseline", "imrs_client_item07")])
    rule = record["log"]["rule"]
    assert int(rule.eq("missing-value code 9 set to missing; clean.missing_codes_by_instrument").sum()) == 1


def test_table_wide_code_inside_a_range_is_kept_with_a_warning_unless_confirmed(tmp_path):
    tables = base_tables()
    set_score(tables, "P0002", "gaf_f", "99")
    set_score(tables, "P0005", "gaf_f", "99", timepoint="post")
    inputs = write_tables(tmp_path / "in", tables)
    extra = config_file(tmp_path, "clean:\n  missing_codes:\n    assessments: [99]\n")
    record = check_and_clean(inputs, tmp_path, *extra)
    kept = [q for q in record["problems"] if q["rule"].startswith("missing code: 99 ") and "gaf_f's" in q["rule"]]
    assert len(kept) == 1 and "clean.missing_codes.assessments" in kept[0]["rule"]
    assert "gaf_f's valid range 1-100: 2 values kept" in kept[0]["rule"]
    s = record["tables"]["assessments"].set_index(["id", "timepoint", "instrument"])["score"]
    assert s[("P0002", "baseline", "gaf_f")] == 99
    # confirmed for gaf_f: both blanked, each logged
    confirmed = tmp_path / "confirmed"
    confirmed.mkdir()
    extra = config_file(
        confirmed, "clean:\n  missing_codes:\n    assessments: [99]\n  missing_codes_by_instrument:\n    gaf_f: [99]\n"
    )
    record = check_and_clean(inputs, confirmed, *extra)
    assert not [q for q in record["problems"] if q["rule"].startswith("missing code") and "gaf_f's" in q["rule"]]
    log = record["log"]
    assert (
        int((log["rule"].str.startswith("missing-value code 99 set to missing") & (log["instrument"] == "gaf_f")).sum())
        == 2
    )


def test_unknown_instrument_in_missing_codes_by_instrument_is_one_line(tmp_path):
    inputs = write_tables(tmp_path / "in", base_tables())
    before = hashes(inputs)
    extra = config_file(tmp_path, "clean:\n  missing_codes_by_instrument:\n    gaf_x: [9]\n")
    code, stdout, stderr = run_cli([*extra, "check", str(inputs), "--problems", str(tmp_path / "p.csv")])
    assert code == 2
    assert_no_traceback(stdout, stderr)
    assert_one_clear_line(stderr, "check", "clean.missing_codes_by_instrument.gaf_x", "not an instrument")
    assert not (tmp_path / "p.csv").exists()
    assert hashes(inputs) == before


# ---------------------------------------------------------------------------------------------------
# the problem list


def test_every_problem_is_listed_in_the_problems_file_and_the_console_says_how_many_more(tmp_path):
    tables = base_tables()
    a = tables["assessments"]
    bad = a.index[:137]
    assert len(bad) == 137
    a.loc[bad, "score"] = "abc"
    inputs = write_tables(tmp_path / "in", tables)
    record = check_and_clean(inputs, tmp_path, expect_check=2, expect_clean=None)
    stdout = record["check"][1]
    listed = [line for line in stdout.splitlines() if "type: expected number" in line]
    assert len(listed) == 25
    assert f"... and 112 more rows: see {record['problems_csv']}" in stdout
    frame = pd.read_csv(record["problems_csv"], dtype=str, keep_default_na=False)
    assert int(frame["rule"].str.startswith("type: expected number").sum()) == 137
    assert sum(q["rule"].startswith("type: expected number") for q in record["problems"]) == 137
    assert stdout.splitlines()[-1].startswith("137 errors")


def test_problems_csv_neutralises_formulas_but_not_negative_numbers(tmp_path):
    tables = base_tables()
    evil = "=cmd|' /C calc'!A0"
    tables["assessments"].loc[0, "id"] = evil  # not a participant: a cross-table error echoing the id
    tables["assessments"].loc[1, "id"] = "@SUM(1+1)"
    tables["participants"].loc[0, "age"] = "-5"  # a range error whose value is a negative number
    inputs = write_tables(tmp_path / "in", tables)
    record = check_and_clean(inputs, tmp_path, expect_check=2, expect_clean=None)
    with open(record["problems_csv"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    values = {row["value"] for row in rows}
    assert "'" + evil in values and "'@SUM(1+1)" in values
    assert evil not in values and "@SUM(1+1)" not in values
    assert "-5" in values and "'-5" not in values
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row.values())
    # the JSON list is not a spreadsheet: it keeps the value exactly
    assert any(q["value"] == evil for q in record["problems"])


# ---------------------------------------------------------------------------------------------------
# files and folders


def test_empty_file_is_one_line(tmp_path):
    inputs = write_tables(tmp_path / "in", base_tables())
    (inputs / "participants.csv").write_bytes(b"")
    before = hashes(inputs)
    code, stdout, stderr = run_cli(["check", str(inputs), "--problems", str(tmp_path / "p.csv")])
    assert code == 2 and not (tmp_path / "p.csv").exists()
    assert_no_traceback(stdout, stderr)
    assert_one_clear_line(stderr, "check", str(inputs / "participants.csv"), "the file is empty")
    assert hashes(inputs) == before


def test_header_only_table_is_an_error_list(tmp_path):
    tables = base_tables()
    tables["service_use"] = tables["service_use"].iloc[:0]
    inputs = write_tables(tmp_path / "in", tables)
    record = check_and_clean(inputs, tmp_path, expect_check=2, expect_clean=2)
    assert any("service_use.csv" in q["file"] and "has no data rows" in q["rule"] for q in record["problems"])


def test_latin1_file_is_one_line(tmp_path):
    tables = base_tables()
    tables["participants"].loc[0, "site"] = "Ærø"
    inputs = tmp_path / "in"
    write_tables(inputs, {"assessments": tables["assessments"]})
    write_tables(inputs, {"participants": tables["participants"]}, encoding="latin-1")
    before = hashes(inputs)
    code, stdout, stderr = run_cli(["check", str(inputs)])
    assert code == 2
    assert_one_clear_line(stderr, "check", "participants.csv", "not UTF-8")
    assert hashes(inputs) == before


def test_symlink_loop_for_a_table_is_one_line(tmp_path):
    tables = base_tables()
    inputs = write_tables(tmp_path / "in", {k: v for k, v in tables.items() if k != "participants"})
    os.symlink("participants.csv", inputs / "participants.csv")  # points at itself
    before = hashes(inputs)
    code, stdout, stderr = run_cli(["check", str(inputs), "--json", str(tmp_path / "p.json")])
    assert code == 2 and not (tmp_path / "p.json").exists()
    assert_no_traceback(stdout, stderr)
    assert "0 errors" not in stdout
    assert_one_clear_line(stderr, "check", str(inputs / "participants.csv"), "symbolic link loop")
    code, stdout, stderr = run_cli(["clean", "--in", str(inputs), "--out", str(tmp_path / "out")])
    assert code == 2
    assert_one_clear_line(stderr, "clean", "participants.csv", "symbolic link loop")
    assert_no_partial_output(tmp_path / "out")
    assert hashes(inputs) == before


def test_input_folder_that_is_a_symlink_loop_is_one_line(tmp_path):
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    code, stdout, stderr = run_cli(["check", str(tmp_path / "loop")])
    assert code == 2
    assert_no_traceback(stdout, stderr)
    assert_one_clear_line(stderr, "check", str(tmp_path / "loop"), "symbolic link loop")


def test_folder_without_participants_is_an_error_not_zero_errors(tmp_path):
    tables = base_tables()
    inputs = write_tables(tmp_path / "in", {k: v for k, v in tables.items() if k != "participants"})
    record = check_and_clean(inputs, tmp_path, expect_check=2, expect_clean=2)
    stdout = record["check"][1]
    assert "0 errors" not in stdout
    hit = [q for q in record["problems"] if q["rule"].startswith("table missing")]
    assert len(hit) == 1 and hit[0]["severity"] == "error" and hit[0]["file"] == str(inputs)
    assert "no participants table" in hit[0]["rule"]
    assert sum(1 for line in stdout.splitlines() if "no participants table" in line) == 1


@pytest.mark.parametrize(
    "case, cause",
    [
        ("missing", "no such file or folder"),
        ("empty folder", "no input tables found"),
        ("a file for --in", "a file where a folder of input tables is expected"),
    ],
)
def test_a_missing_empty_or_wrong_kind_of_input_path_is_one_line(tmp_path, case, cause):
    target = tmp_path / "data"
    if case == "empty folder":
        target.mkdir()
    elif case == "a file for --in":
        target = write_tables(tmp_path / "in", base_tables()) / "participants.csv"
    commands = [["clean", "--in", str(target), "--out", str(tmp_path / "out")]]
    if case != "a file for --in":
        commands.insert(0, ["check", str(target)])
    for argv in commands:
        code, stdout, stderr = run_cli(argv)
        assert code == 2
        assert_no_traceback(stdout, stderr)
        assert_one_clear_line(stderr, argv[0], str(target), cause)
        assert_no_partial_output(tmp_path / "out")


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: a file without read permission is still readable")
def test_unreadable_file_is_one_line(tmp_path):
    inputs = write_tables(tmp_path / "in", base_tables())
    (inputs / "participants.csv").chmod(0)
    try:
        code, stdout, stderr = run_cli(["check", str(inputs)])
    finally:
        (inputs / "participants.csv").chmod(0o644)
    assert code == 2
    assert_one_clear_line(stderr, "check", "participants.csv", "ermission denied")


# ---------------------------------------------------------------------------------------------------
# the same contract through the installed command, as a user runs it


def test_subprocess_case_collision_is_exit_2_with_both_rows(tmp_path):
    tables = base_tables()
    tables["participants"].loc[1, "id"] = "AAR-0002"
    tables["participants"].loc[5, "id"] = "aar-0002 "
    inputs = write_tables(tmp_path / "in", tables)
    before = hashes(inputs)
    code, stdout, stderr = run_subprocess(["check", str(inputs)])
    assert code == 2 and "Traceback" not in stdout + stderr
    assert "value 'aar-0002 '" in stdout and "'AAR-0002' in row 2" in stdout
    assert hashes(inputs) == before


def test_subprocess_symlink_loop_is_one_line(tmp_path):
    inputs = write_tables(tmp_path / "in", {"assessments": base_tables()["assessments"]})
    os.symlink("participants.csv", inputs / "participants.csv")
    code, stdout, stderr = run_subprocess(["check", str(inputs)])
    assert code == 2 and "Traceback" not in stdout + stderr
    assert_one_clear_line(stderr, "check", "participants.csv", "symbolic link loop")


def test_subprocess_problems_csv_is_formula_safe(tmp_path):
    tables = base_tables()
    tables["assessments"].loc[0, "id"] = "=cmd|' /C calc'!A0"
    inputs = write_tables(tmp_path / "in", tables)
    out = tmp_path / "problems.csv"
    code, stdout, stderr = run_subprocess(["check", str(inputs), "--problems", str(out)])
    assert code == 2 and "Traceback" not in stdout + stderr
    text = out.read_text()
    assert "'=cmd|" in text and ",=cmd|" not in text and '"=cmd|' not in text
