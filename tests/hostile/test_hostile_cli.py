"""Hostile inputs for every CLI command (nothing silent: the audit's number parsing, CLI errors as one line,
bounded YAML): the audit, `imrstats meta`, the config loader and the error line of every command.

The contract, for each case:

- the exit code: 0 when a number is produced, 2 for bad input (InputError / SettingsError / AnalysisError), 1 for
  an unexpected error;
- on failure ONE line on stderr, ``imrstats <command>: <file>: <cause>``, naming the file and the cause;
- no "Traceback" and no RuntimeWarning, neither in the output nor as a warning raised in the process;
- the inputs byte-identical (SHA-256 before and after);
- no partial output: the ``--json`` file (and any folder it would need) absent after a failure;
- where a number is produced, the right number (a decimal comma gives what the decimal point gives).

Most cases run in-process (`imrstats.cli.main` with captured stdout / stderr, as `run_cli` in
tests/pipeline/test_hostile_inputs.py); four run the installed `imrstats` in a subprocess, to see what a user
sees (warnings printed by Python itself included).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostile_configs import BOMB

from conftest import EXAMPLES, PROJECT
from imrstats.cli import main

IMRSTATS = PROJECT / ".venv" / "bin" / "imrstats"

GOOD_EFFECTS = "study,yi,vi\nA,0.2,0.04\nB,0.35,0.05\nC,0.1,0.03\n"
ARMS_HEADER = "study,instrument,n_imr,mean_imr,sd_imr,n_tau,mean_tau,sd_tau\n"
ARMS_DOT = (
    ARMS_HEADER + "A,gaf_f,40,45.2,12.1,41,43.5,11.8\nB,gaf_f,30,50.0,10.0,32,47.5,11.0\nC,gaf_f,25,48,9,25,44,10\n"
)
ARMS_COMMA = ARMS_HEADER + 'A,gaf_f,40,"45,2","12,1",41,"43,5","11,8"\nB,gaf_f,30,"50,0",10,32,"47,5",11\n'
ARMS_COMMA += "C,gaf_f,25,48,9,25,44,10\n"
AUDIT_HEADER = "study,instrument,observed,test,n1,mean1,sd1,n2,mean2,sd2,p\n"
AUDIT_DOT = AUDIT_HEADER + "Jensen 2019,gaf_f,true,,40,45.2,12.1,41,43.5,11.8,\n"
AUDIT_COMMA = AUDIT_HEADER + 'Jensen 2019,gaf_f,true,,40,"45,2","12,1",41,"43,5","11,8",\n'


# ------------------------------------------------------------------------------------------------- helpers


def sha(path: Path) -> dict[str, str]:
    """SHA-256 of a file, or of every file under a folder (name -> hash)."""
    path = Path(path)
    if path.is_dir():
        return {
            str(p.relative_to(path)): "folder" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*"))
        }
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()} if path.exists() else {}


@dataclass
class Run:
    code: int
    out: str
    err: str
    runtime_warnings: list[str]

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def run_cli(argv: list[str]) -> Run:
    """main(argv) with stdout / stderr captured and every warning recorded; an exception escaping main fails."""
    out, err = io.StringIO(), io.StringIO()
    with (
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        warnings.simplefilter("always")
        try:
            code = main([str(a) for a in argv])
        except BaseException:  # noqa: BLE001 -- anything that escapes is what this suite hunts
            pytest.fail(f"imrstats {argv[0]} raised instead of reporting:\n{traceback.format_exc()}")
    runtime = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, RuntimeWarning)]
    return Run(code, out.getvalue(), err.getvalue(), runtime)


def assert_clean_output(run: Run):
    for text in (run.out, run.err):
        assert "Traceback" not in text
        assert "RuntimeWarning" not in text and "Warning:" not in text
    assert not run.runtime_warnings, run.runtime_warnings


def assert_fails_clearly(run: Run, command: str, file, *causes: str, code: int = 2):
    """Exit `code`, one line on stderr: ``imrstats <command>: <file>...: <cause>``."""
    assert_clean_output(run)
    assert run.code == code, (run.code, run.err, run.out)
    assert len(run.lines) == 1, run.err
    line = run.lines[0]
    assert line.startswith(f"imrstats {command}: {file}"), line
    for cause in causes:
        assert cause in line, (cause, line)


def run_guarded(argv: list[str], inputs: list[Path], json_path: Path | None = None) -> Run:
    """run_cli with the inputs hashed before and after (byte-identical) and, on failure, no --json left."""
    before = {str(p): sha(p) for p in inputs}
    run = run_cli(argv + (["--json", json_path] if json_path is not None else []))
    assert {str(p): sha(p) for p in inputs} == before, "an input was modified"
    if json_path is not None and run.code != 0:
        assert not Path(json_path).exists(), "a failed run left its --json output"
        assert not any(Path(json_path).parent.glob(".*.tmp")), "a failed run left a temporary file"
    return run


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- imrstats meta


@pytest.mark.parametrize(
    "name, content, causes",
    [
        ("empty", b"", ["the file is empty"]),
        ("header_only", "study,yi,vi\n", ["no data rows"]),
        ("binary", bytes(range(256)) * 4, ["not UTF-8"]),
        ("utf16", GOOD_EFFECTS.encode("utf-16"), ["not UTF-8"]),
        ("overflow_effects", "study,yi,vi\nA,1e308,0.04\nB,0.35,0.05\nC,-1e308,0.03\n", ["'A', 'C'", "|yi|"]),
        ("huge_variance", "study,yi,vi\nA,0.2,1e308\nB,0.35,0.05\nC,0.1,0.03\n", ["'A'", "vi"]),
        ("overflow_means", ARMS_HEADER + "A,gaf_f,40,45,12,41,43,11\nB,gaf_f,30,1e308,12,30,-1e308,11\n", ["'B'"]),
        ("inf", "study,yi,vi\nA,inf,0.04\nB,0.35,0.05\n", ["row 1 (study 'A')", "column yi", "'inf'"]),
        ("nan", "study,yi,vi\nA,0.2,0.04\nB,nan,0.05\n", ["row 2 (study 'B')", "column yi", "'nan'"]),
        ("negative_se", "study,effect,se\nA,0.2,0.2\nB,0.35,-0.1\nC,0.1,0.17\n", ["study 'B'", "column se", "> 0"]),
        ("zero_vi", "study,yi,vi\nA,0.2,0.04\nB,0.35,0\n", ["study 'B'", "column vi"]),
        ("zero_n", ARMS_HEADER + "A,gaf_f,40,45,12,41,43,11\nB,gaf_f,0,45,12,41,43,11\n", ["study 'B'", "Arm sizes"]),
        ("duplicated_labels", "study,yi,vi\nA,0.2,0.04\nA,0.35,0.05\nC,0.1,0.03\n", ["rows 1 and 2", "'A'"]),
        ("blank_label", "study,yi,vi\nA,0.2,0.04\n,0.35,0.05\nC,0.1,0.03\n", ["row 2", "column study"]),
        ("ambiguous_thousands", ARMS_HEADER + 'A,gaf_f,"1,000",45,12,41,43,11\n', ["column n_imr", "'1,000'"]),
        ("text_in_number", "study,yi,vi\nA,0.2,0.04\nB,high,0.05\n", ["study 'B'", "column yi", "'high'"]),
        ("unknown_columns", "trial,estimate,variance\nA,0.2,0.04\n", ["none of the column sets", "trial"]),
        ("pipe_delimited", "study|yi|vi\nA|0.2|0.04\nB|0.35|0.05\n", ["none of the column sets"]),
        ("ragged_row", "study,yi,vi\nA,0.2,0.04\nB,0.35,0.05,9\n", ["line 3", "fields"]),
        ("long_line", "study,yi,vi\n" + "A" * 100_000 + ",oops,0.04\nB,0.2,0.05\n", ["row 1", "column yi", "..."]),
        ("huge_field", "study,yi,vi\n" + "A" * 1_000_000 + ",0.2,0.04\n", ["field larger than field limit"]),
    ],
)
def test_meta_refuses_hostile_tables(tmp_path, name, content, causes):
    path = write(tmp_path / f"{name}.csv", content)
    out = tmp_path / "meta.json"
    run = run_guarded(["meta", path], [path], out)
    assert_fails_clearly(run, "meta", path, *causes)
    assert len(run.lines[0]) < 1000, "an error line echoes a huge cell in full"


def test_meta_missing_file_and_folder(tmp_path):
    run = run_guarded(["meta", tmp_path / "nowhere.csv"], [], tmp_path / "meta.json")
    assert_fails_clearly(run, "meta", tmp_path / "nowhere.csv", "no such file")
    run = run_guarded(["meta", tmp_path], [], tmp_path / "meta.json")
    assert_fails_clearly(run, "meta", tmp_path, "folder")


def test_meta_decimal_comma_is_read_as_check_reads_it_and_said(tmp_path):
    """45,2 is 45.2: the pooled numbers are those of the same table written with decimal points, and each
    decimal comma is stated (the cells read that way)."""
    comma, dot = write(tmp_path / "comma.csv", ARMS_COMMA), write(tmp_path / "dot.csv", ARMS_DOT)
    run_comma = run_guarded(["meta", comma], [comma], tmp_path / "comma.json")
    run_dot = run_guarded(["meta", dot], [dot], tmp_path / "dot.json")
    for run in (run_comma, run_dot):
        assert_clean_output(run)
        assert run.code == 0 and run.err == ""
    notes = [line for line in run_comma.out.splitlines() if line.startswith("NOTE:")]
    assert len(notes) == 6 and "'45,2' has a decimal comma, read as 45.2" in notes[0]
    got, want = (json.loads((tmp_path / f"{k}.json").read_text())["result"] for k in ("comma", "dot"))
    assert got["estimate"] == want["estimate"] and got["se"] == want["se"] and got["tau2"] == want["tau2"]
    assert got["yi"] == want["yi"] and got["k"] == 3


def test_meta_semicolon_file_with_decimal_commas_gives_the_right_number(tmp_path):
    """A European export (; and decimal commas) pools to what the comma-separated file gives."""
    semi = write(tmp_path / "semi.csv", "study;yi;vi\nA;0,2;0,04\nB;0,35;0,05\nC;0,1;0,03\n")
    plain = write(tmp_path / "plain.csv", GOOD_EFFECTS)
    run_guarded(["meta", semi], [semi], tmp_path / "semi.json")
    run_guarded(["meta", plain], [plain], tmp_path / "plain.json")
    got, want = (json.loads((tmp_path / f"{k}.json").read_text())["result"] for k in ("semi", "plain"))
    assert got["estimate"] == want["estimate"] and got["slab"] == ["A", "B", "C"]


def test_rma_names_studies_by_label_not_position():
    from imrstats.errors import AnalysisError
    from imrstats.meta.random_effects import rma

    with pytest.raises(AnalysisError, match="studies 'Smith 2010' have vi <= 0") as info:
        rma([0.1, 0.2], [0.01, -0.02], slab=["Jones 2008", "Smith 2010"])
    assert "position" not in str(info.value)


@pytest.mark.parametrize(
    "where, cause",
    [
        ("missing_folder/out.json", "does not exist"),
        ("a_folder", "names a folder"),
        ("input_itself", "overwrite an input"),
        ("file_as_folder/out.json", "is a file, not a folder"),
    ],
)
def test_meta_json_output_that_cannot_be_written(tmp_path, where, cause):
    path = write(tmp_path / "effects.csv", GOOD_EFFECTS)
    (tmp_path / "a_folder").mkdir()
    write(tmp_path / "file_as_folder", "not a folder")
    target = {"input_itself": path}.get(where, tmp_path / where)
    before = sha(tmp_path)
    run = run_cli(["meta", path, "--json", target])
    assert_fails_clearly(run, "meta", target, "--json", cause)
    assert sha(tmp_path) == before  # nothing written, nothing created (not even the missing folder)
    assert not (tmp_path / "missing_folder").exists()


def test_meta_json_success_holds_the_printed_numbers(tmp_path):
    from imrstats.meta.random_effects import rma

    path = write(tmp_path / "effects.csv", GOOD_EFFECTS)
    run = run_guarded(["meta", path, "--method", "DL"], [path], tmp_path / "out.json")
    assert_clean_output(run)
    assert run.code == 0
    result = json.loads((tmp_path / "out.json").read_text())["result"]
    want = rma([0.2, 0.35, 0.1], [0.04, 0.05, 0.03], method="DL")
    assert result["estimate"] == pytest.approx(want.estimate, rel=1e-12) and result["slab"] == ["A", "B", "C"]


# ------------------------------------------------------------------------------------------ imrstats audit


@pytest.mark.parametrize(
    "name, content, causes",
    [
        ("empty", b"", ["the file is empty"]),
        ("header_only", AUDIT_HEADER, ["no data rows"]),
        ("binary", bytes(range(256)) * 4, ["not UTF-8"]),
        ("utf16", AUDIT_DOT.encode("utf-16"), ["not UTF-8"]),
        ("no_study_column", "x,y\n1,2\n", ["'study' column"]),
    ],
)
def test_audit_refuses_unreadable_files(tmp_path, name, content, causes):
    path = write(tmp_path / f"{name}.csv", content)
    run = run_guarded(["audit", path], [path], tmp_path / "audit.json")
    assert_fails_clearly(run, "audit", path, *causes)


def test_audit_missing_file(tmp_path):
    run = run_guarded(["audit", tmp_path / "gone.csv"], [], tmp_path / "audit.json")
    assert_fails_clearly(run, "audit", tmp_path / "gone.csv", "not found")


def test_audit_decimal_comma_is_no_false_accusation(tmp_path):
    """No false accusation: a printed mean 45,2 was 'outside the scale's range' with a 'largest possible SD 0'.
    Read as check reads it, it is 45.2: the findings are those of the same row printed with points."""
    comma, dot = write(tmp_path / "comma.csv", AUDIT_COMMA), write(tmp_path / "dot.csv", AUDIT_DOT)
    runs = {}
    for key, path in (("comma", comma), ("dot", dot)):
        runs[key] = run_guarded(["audit", path], [path], tmp_path / f"{key}.json")
        assert_clean_output(runs[key])
        assert runs[key].code == 0
    comma_record = json.loads((tmp_path / "comma.json").read_text())
    dot_record = json.loads((tmp_path / "dot.json").read_text())
    assert comma_record["counts"] == dot_record["counts"] and comma_record["counts"]["inconsistent"] == 0
    assert comma_record["by_rule"] == dot_record["by_rule"]
    assert "largest possible SD 0" not in runs["comma"].out
    flags = [line for line in runs["comma"].out.splitlines() if "decimal comma" in line]
    assert len(flags) == 4 and "column mean1: '45,2' has a decimal comma, read as 45.2" in flags[0]


def test_audit_impossible_p_is_its_own_finding(tmp_path):
    """p = 1.7 (and p = -0.2) is impossible whatever the test: an impossible_value finding, never compared with a
    recomputed p as if it were a rounding disagreement."""
    path = write(
        tmp_path / "p.csv",
        AUDIT_HEADER
        + "A 2020,gaf_f,true,welch_t,40,45.2,12.1,41,43.5,11.8,1.7\n"
        + "B 2020,gaf_f,true,welch_t,40,45.2,12.1,41,43.5,11.8,-0.2\n",
    )
    run = run_guarded(["audit", path], [path], tmp_path / "audit.json")
    assert_clean_output(run)
    assert run.code == 0
    record = json.loads((tmp_path / "audit.json").read_text())
    bad = record["inconsistent"]
    assert [(r["study"], r["rule"], r["reported"]) for r in bad] == [
        ("A 2020", "impossible_value", "p = 1.7"),
        ("B 2020", "impossible_value", "p = -0.2"),
    ]
    assert all(r["recomputed"] == "0 <= p <= 1" for r in bad)
    assert "welch_t_p" not in {r["rule"] for r in bad}
    said = [line for line in run.out.splitlines() if "impossible_value" in line and "p = 1.7" in line]
    assert len(said) == 2 and said[1].startswith("FLAG: ")  # the summary's list of inconsistencies, and a flag


@pytest.mark.parametrize(
    "row, column, value, rule",
    [
        ("A 2020,gaf_f,true,,0,45.2,12.1,41,43.5,11.8,", "n1", "0", "whole number >= 1"),
        ("A 2020,gaf_f,true,,40,45.2,12.1,-3,43.5,11.8,", "n2", "-3", "whole number >= 1"),
        ("A 2020,gaf_f,true,,40.5,45.2,12.1,41,43.5,11.8,", "n1", "40.5", "whole number >= 1"),
        (",gaf_f,true,,40,45.2,12.1,41,43.5,11.8,", "study", "", "needs a study label"),
        ('A 2020,gaf_f,true,,"1,000",45.2,12.1,41,43.5,11.8,', "n1", "1,000", "write 1000, not 1,000"),
    ],
)
def test_audit_flags_invalid_input_rows(tmp_path, row, column, value, rule):
    """n = 0 (or negative, or not whole), a blank study label, an ambiguous 1,000: flagged as invalid input
    naming file, row, column, value and rule; the row is not audited, the others still are."""
    path = write(tmp_path / "cases.csv", AUDIT_HEADER + row + "\n" + AUDIT_DOT.splitlines()[1] + "\n")
    run = run_guarded(["audit", path], [path], tmp_path / "audit.json")
    assert_clean_output(run)
    assert run.code == 0
    flags = [line for line in run.out.splitlines() if line.startswith("FLAG:") and "invalid input" in line]
    assert len(flags) == 1, run.out
    assert "cases.csv:2" in flags[0] and f"column {column}, value '{value}'" in flags[0] and rule in flags[0]
    record = json.loads((tmp_path / "audit.json").read_text())
    assert record["invalid_input_rows"] == ["cases.csv:2"]
    assert record["rows_audited"] == {"cases.csv": 2} and record["counts"]["consistent"] > 0  # row 3 audited


def test_audit_shipped_tables_are_unchanged_by_the_new_rules(tmp_path):
    """The curated published rows hold no decimal comma, no invalid row and no impossible value."""
    from imrstats.audit.stage import run_audit_stage

    result = run_audit_stage({}, None)
    assert result.record["invalid_input_rows"] == [] and result.record["decimal_commas"] == []
    assert not (result.tables["findings"]["rule"] == "impossible_value").any()


# ----------------------------------------------------------------------------------------------- --config


@pytest.mark.parametrize(
    "name, content, causes",
    [
        ("bomb.yaml", BOMB, ["alias *a", "refused"]),
        ("list.yaml", "- trial\n- meta\n", ["mapping"]),
        ("unknown_key.yaml", "trial:\n  imputationz: 5\n", ["trial.imputationz: unknown key"]),
        ("bad_value.yaml", "trial:\n  imputations: 1\n", ["trial.imputations: must be >= 2"]),
        ("broken.yaml", "trial: [\n", ["not valid YAML", "line 2"]),
        ("binary.yaml", bytes(range(256)), ["not UTF-8"]),
        ("deep.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n", ["nested too deeply"]),
        ("huge.yaml", "# " + "x" * 1_100_000 + "\n", ["bytes"]),
    ],
)
def test_config_files_that_are_not_settings(tmp_path, name, content, causes):
    config = write(tmp_path / name, content)
    data = write(tmp_path / "effects.csv", GOOD_EFFECTS)
    started = time.monotonic()
    run = run_guarded(["--config", config, "meta", data], [config, data], tmp_path / "meta.json")
    assert time.monotonic() - started < 30, "a hostile config took too long (alias expansion?)"
    assert_fails_clearly(run, "meta", config, *causes)


def test_config_missing_or_a_folder(tmp_path):
    data = write(tmp_path / "effects.csv", GOOD_EFFECTS)
    run = run_guarded(["audit", data, "--config", tmp_path / "none.yaml"], [data])
    assert_fails_clearly(run, "audit", tmp_path / "none.yaml", "not found")
    run = run_guarded(["audit", data, "--config", tmp_path], [data])
    assert_fails_clearly(run, "audit", tmp_path, "folder")


def test_alias_bomb_passed_as_overrides_is_refused_before_it_expands():
    """Snakemake parses --configfile itself (aliases and all) and hands the settings over: load_config must
    refuse the expanded size before copying or validating."""
    import yaml

    from imrstats.config import load_config
    from imrstats.errors import SettingsError

    bomb = yaml.safe_load(BOMB)  # shared lists: small in memory, 9^9 values once expanded
    started = time.monotonic()
    with pytest.raises(SettingsError, match="more than 100000 values once aliases are expanded"):
        load_config(overrides=bomb, source="snakemake config")
    assert time.monotonic() - started < 10
    loop: list = []
    loop.append(loop)
    with pytest.raises(SettingsError, match="contain themselves"):
        load_config(overrides={"trial": {"outcomes": loop}})


def test_option_out_of_range_names_the_command_line(tmp_path):
    path = write(tmp_path / "cases.csv", AUDIT_DOT)
    run = run_guarded(["audit", path, "--alpha", "7"], [path], tmp_path / "audit.json")
    assert_fails_clearly(run, "audit", "command line", "audit.alpha: must be < 1, got 7.0")


# ---------------------------------------------------------------- trial, services, implementation, simulate, clean


def test_stage_commands_on_missing_empty_or_wrong_inputs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    not_a_table = write(tmp_path / "effects.csv", GOOD_EFFECTS)
    binary = tmp_path / "binary"
    binary.mkdir()
    write(binary / "programme.csv", bytes(range(256)) * 2)
    cases = [
        (["trial", "--in", tmp_path / "nowhere", "--outcome", "gaf_f"], tmp_path / "nowhere", "no such file"),
        (["trial", "--in", not_a_table, "--outcome", "gaf_f"], not_a_table, "unknown table 'effects'"),
        (["services", "--in", empty], empty, "no input tables found"),
        (["implementation", "--in", binary], binary / "programme.csv", "not UTF-8"),
        (["clean", "--in", not_a_table, "--out", tmp_path / "cleaned"], not_a_table, "a file where a folder"),
        (["simulate", "--out", not_a_table], not_a_table, "File exists"),
    ]
    for argv, file, cause in cases:
        json_path = tmp_path / "out.json" if argv[0] in ("trial", "services", "implementation") else None
        run = run_guarded(argv, [not_a_table, binary], json_path)
        assert_fails_clearly(run, argv[0], file, cause)
    assert not (tmp_path / "cleaned").exists()


def test_trial_unknown_outcome_is_one_line(tmp_path):
    run = run_guarded(["trial", "--in", EXAMPLES / "small_csv", "--outcome", "nosuch"], [EXAMPLES / "small_csv"])
    assert_fails_clearly(run, "trial", "command line", "'nosuch'", "instrument registry")


def test_unexpected_error_is_one_line_with_a_debug_hint(tmp_path, monkeypatch):
    import imrstats.meta.random_effects as random_effects

    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(random_effects, "rma", broken)
    path = write(tmp_path / "effects.csv", GOOD_EFFECTS)
    run = run_guarded(["meta", path], [path], tmp_path / "meta.json")
    assert_fails_clearly(run, "meta", path, "unexpected error: ZeroDivisionError", "--debug", code=1)
    with pytest.raises(ZeroDivisionError), contextlib.redirect_stdout(io.StringIO()):
        main(["meta", str(path), "--debug"])


# ------------------------------------------------------------------------------ what a user sees (subprocess)


def run_installed(args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run(
        [str(IMRSTATS), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.skipif(not IMRSTATS.exists(), reason="the installed .venv/bin/imrstats is needed")
@pytest.mark.parametrize(
    "case",
    ["meta_empty", "meta_overflow", "audit_binary", "config_bomb"],
)
def test_installed_command_prints_one_line(tmp_path, case):
    data = write(tmp_path / "effects.csv", GOOD_EFFECTS)
    if case == "meta_empty":
        target = write(tmp_path / "empty.csv", b"")
        args, cause = ["meta", target], "the file is empty"
    elif case == "meta_overflow":
        target = write(
            tmp_path / "big.csv", ARMS_HEADER + "A,gaf_f,40,45,12,41,43,11\nB,gaf_f,30,1e308,12,30,-1e308,11\n"
        )
        args, cause = ["meta", target], "study 'B'"
    elif case == "audit_binary":
        target = write(tmp_path / "binary.csv", bytes(range(256)) * 4)
        args, cause = ["audit", target], "not UTF-8"
    else:
        target = write(tmp_path / "bomb.yaml", BOMB)
        args, cause = ["--config", target, "meta", data], "alias"
    before = sha(tmp_path)
    done = run_installed([*args, "--json", tmp_path / "out.json"], tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"imrstats {args[0] if args[0] != '--config' else 'meta'}: ")
    assert str(target) in lines[0] and cause in lines[0], lines
    assert "Traceback" not in done.stderr + done.stdout and "Warning" not in done.stderr + done.stdout
    assert sha(tmp_path) == before and not (tmp_path / "out.json").exists()
