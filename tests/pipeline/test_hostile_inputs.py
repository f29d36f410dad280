"""Hostile inputs: `imrstats check` and `imrstats clean` on malformed tables.

Every case starts from the small example CSVs (data/examples/small_csv/, cut to a few participants so a
case runs in a fraction of a second), applies one or more mutations (bad cells, missing or duplicated
columns, duplicated ids, unknown codes, a single arm, a one-participant site, future dates, huge values,
all-missing scores, empty files, ...) and writes the tables as raw bytes in some delimiter, encoding and
line ending. For each case the contract is:

- `check` exits 0 or 2 and never lets a Python traceback out;
- every ERROR names its file and rule, and a rule about a cell also names row, column and value;
- the input bytes are unchanged after check and clean;
- when clean succeeds, every value that differs from the input as written (or is derived) has a row in
  cleaning_log.csv: no silent change of a number.

The last test prints how many cases were generated and how they ended. More examples:
`IMRSTATS_HOSTILE_EXAMPLES=2000 pytest tests/test_hostile_inputs.py` (add IMRSTATS_HOSTILE_SHRINK=1 to
shrink a failing case to a minimal one; slow).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import tempfile
import traceback
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLES
from imrstats.cli import main
from imrstats.data.instruments import item_index, load_registry

N_PARTICIPANTS = 16  # per arm-mixed slice of the example; enough for two arms and three sites
MAX_EXAMPLES = int(os.environ.get("IMRSTATS_HOSTILE_EXAMPLES", "30"))
# shrinking a failure of a ~1 s case can take many minutes: off unless IMRSTATS_HOSTILE_SHRINK=1
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + (
    [Phase.shrink] if os.environ.get("IMRSTATS_HOSTILE_SHRINK") else []
)
settings.register_profile(
    "hostile",
    max_examples=MAX_EXAMPLES,
    deadline=None,
    phases=PHASES,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

OUTCOMES: Counter = Counter()  # how each case ended, printed by the last test
CELL_RULES = {
    "type",
    "range",
    "code",
    "missing",
    "date",
    "consistency",
    "privacy",
    "unique",
    "instrument",
    "cross-table",
}
TABLE_NAMES = ("participants", "assessments", "service_use", "programme")


# ---------------------------------------------------------------------------------------------------
# the base tables: header + rows of text, exactly as in the example files


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def base_tables() -> dict[str, tuple[list[str], list[list[str]]]]:
    src = EXAMPLES / "small_csv"
    part_header, part_rows = _read_rows(src / "participants.csv")
    part_rows = part_rows[:N_PARTICIPANTS]
    ids = {r[0] for r in part_rows}
    tables = {"participants": (part_header, part_rows)}
    for name in ("assessments", "service_use"):
        header, rows = _read_rows(src / f"{name}.csv")
        tables[name] = (header, [r for r in rows if r[0] in ids])
    tables["programme"] = _read_rows(src / "programme.csv")
    return tables


BASE = base_tables()
REGISTRY = load_registry()
ITEMS = item_index(REGISTRY)


# ---------------------------------------------------------------------------------------------------
# mutations: each takes the tables (deep-copied) and returns a short label for the outcome counter

HOSTILE_VALUES = [
    "",
    " ",
    "abc",
    "n/a",
    "NA",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e308",
    "-1e308",
    "1e999",
    "99999999999999999999",
    "-5",
    "0",
    "0.5",
    "3.5",
    "40,5",
    "1,000",
    "-99",
    "999",
    "IMR",
    " imr ",
    "TAU",
    "Placebo",
    "fu6",
    "POST",
    "baseline",
    "2999-01-01",
    "2019-13-45",
    "03/04/2020",
    "1800-01-01",
    "0101901234",
    "010190-1234",
    "a@b.dk",
    "True",
    "false",
    "yes",
    "Søren Ærø",
    "=1+1",
    '"quoted"',
    "line\nbreak",
    "x;y",
    "tab\there",
    "\x00",
]
CELLS = st.one_of(
    st.sampled_from(HOSTILE_VALUES), st.text(st.characters(codec="latin-1", exclude_characters="\x00\r"), max_size=6)
)


def _copy(tables):
    return {k: (list(h), [list(r) for r in rows]) for k, (h, rows) in tables.items()}


def set_cell(tables, table, row, col, value):
    header, rows = tables[table]
    if rows:
        rows[row % len(rows)][col % len(header)] = value
    return f"cell:{table}"


def drop_column(tables, table, col):
    header, rows = tables[table]
    j = col % len(header)
    del header[j]
    for r in rows:
        del r[j]
    return "drop_column"


def duplicate_column(tables, table, col):
    header, rows = tables[table]
    j = col % len(header)
    header.append(header[j])
    for r in rows:
        r.append(r[j])
    return "duplicate_column"


def add_identifier_column(tables, table, kind):
    header, rows = tables[table]
    name, value = {
        "name": ("name", "Jens Hansen"),
        "cpr": ("cpr", "0101901234"),
        "email": ("email", "x@y.dk"),
        "phone": ("phone", "+45 12345678"),
        "birth": ("birth_date", "1990-01-01"),
        "hidden_cpr": ("note", "010190-1234"),
    }[kind]
    header.append(name)
    for r in rows:
        r.append(value)
    return "identifier_column"


def duplicate_row(tables, table, row):
    header, rows = tables[table]
    if rows:
        rows.insert(row % len(rows), list(rows[row % len(rows)]))
    return "duplicate_row"


def drop_rows(tables, table):
    tables[table][1].clear()
    return "header_only"


def set_column(tables, table, col_name, value):
    header, rows = tables[table]
    if col_name in header:
        j = header.index(col_name)
        for r in rows:
            r[j] = value
    return f"column:{col_name}"


def single_arm(tables):
    header, rows = tables["participants"]
    a, s = header.index("arm"), header.index("sessions_attended")
    for r in rows:
        r[a], r[s] = "IMR", r[s] if r[a] == "IMR" else "3"
    return "single_arm"


def one_participant_site(tables, row):
    header, rows = tables["participants"]
    rows[row % len(rows)][header.index("site")] = "Solitary"
    return "one_participant_site"


def future_date(tables, row, col):
    header, rows = tables["programme"]
    j = header.index(["start_date", "stop_date", "first_contact_date"][col % 3])
    rows[row % len(rows)][j] = "2999-06-01"
    return "future_date"


def drop_table(tables, table):
    del tables[table]
    return "missing_table"


TABLE = st.sampled_from(TABLE_NAMES)
IDX = st.integers(0, 10_000)
MUTATION = st.one_of(
    st.tuples(st.just(set_cell), TABLE, IDX, IDX, CELLS),
    st.tuples(st.just(set_cell), st.just("assessments"), IDX, st.just(3), CELLS),
    st.tuples(st.just(drop_column), TABLE, IDX),
    st.tuples(st.just(duplicate_column), TABLE, IDX),
    st.tuples(
        st.just(add_identifier_column), TABLE, st.sampled_from(["name", "cpr", "email", "phone", "birth", "hidden_cpr"])
    ),
    st.tuples(st.just(duplicate_row), TABLE, IDX),
    st.tuples(st.just(drop_rows), TABLE),
    st.tuples(st.just(set_column), st.just("assessments"), st.just("score"), st.sampled_from(["", "-99", "1e999"])),
    st.tuples(st.just(set_column), st.just("participants"), st.sampled_from(["arm", "site", "sex"]), CELLS),
    st.tuples(st.just(set_column), st.just("assessments"), st.just("timepoint"), st.sampled_from(["fu6", "POST", ""])),
    st.tuples(st.just(single_arm)),
    st.tuples(st.just(one_participant_site), IDX),
    st.tuples(st.just(future_date), IDX, IDX),
    st.tuples(st.just(drop_table), TABLE),
)
# valid but unusual cells: missing-value codes, codes in another case, decimal commas, padding; these reach
# clean, whose log must then account for every value it changed
BENIGN = st.one_of(
    st.tuples(
        st.just(set_cell),
        st.just("assessments"),
        IDX,
        st.just(3),
        st.sampled_from(["-99", "999", "-999", " 40 ", "40,0", "", "4e1"]),
    ),
    st.tuples(
        st.just(set_cell), st.just("participants"), IDX, st.just(3), st.sampled_from(["Female", "MALE", " male", ""])
    ),
    st.tuples(
        st.just(set_cell), st.just("participants"), IDX, st.just(4), st.sampled_from(["40,5", "-99", "", "30.25"])
    ),
    st.tuples(st.just(set_cell), st.just("service_use"), IDX, st.just(5), st.sampled_from(["-99", "", "0"])),
    st.tuples(st.just(set_cell), st.just("programme"), IDX, st.just(7), st.sampled_from(["TRUE", "false", "1", "no"])),
)
ENCODING = st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"])
DIALECT = st.tuples(st.sampled_from([",", ",", ";", "\t"]), st.sampled_from(["\n", "\r\n"]))


# ---------------------------------------------------------------------------------------------------
# writing a case, running the CLI, checking the contract


def write_case(directory: Path, tables, encodings: dict, dialects: dict, raw: dict) -> dict[Path, str]:
    """Write each table as bytes; return {path: sha256} of everything written."""
    for name, (header, rows) in tables.items():
        path = directory / f"{name}.csv"
        if name in raw:
            path.write_bytes(raw[name])
            continue
        delimiter, newline = dialects.get(name, (",", "\n"))
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerows([header, *rows])
        path.write_bytes(buffer.getvalue().encode(encodings.get(name, "utf-8"), errors="replace"))
    return hashes(directory)


def hashes(directory: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) with stdout / stderr captured; an exception escaping main is a failure of the contract."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException:  # noqa: BLE001 -- anything that escapes is what this suite hunts
            pytest.fail(f"imrstats {' '.join(argv[:1])} raised instead of reporting:\n{traceback.format_exc()}")
    return code, out.getvalue(), err.getvalue()


def assert_problem_list_is_clear(problems: list[dict], directory: Path):
    for p in problems:
        if p["severity"] != "error":
            continue
        # a table's problem names its file; a missing participants table names the folder
        assert p["file"] and (
            Path(p["file"]).name in {f"{t}.csv" for t in TABLE_NAMES} or p["file"] == str(directory)
        ), p
        assert p["rule"] and ":" in p["rule"] or p["rule"].startswith(("required", "table")), p
        kind = p["rule"].split(":")[0]
        summary = "more rows break this rule" in p["rule"]
        if kind in CELL_RULES and p["row"] is not None and not summary:
            assert p["column"] and p["value"] is not None, p


def run_case(tables, encodings=None, dialects=None, raw=None) -> tuple[str, str]:
    """Run check (and clean when check passes) on one case; assert the contract; return the outcome and
    the messages (problem rules, or the one-line error)."""
    encodings, dialects, raw = encodings or {}, dialects or {}, raw or {}
    with tempfile.TemporaryDirectory() as tmp:
        inputs, out = Path(tmp, "in"), Path(tmp, "out")
        inputs.mkdir()
        before = write_case(inputs, tables, encodings, dialects, raw)
        report = Path(tmp, "problems.json")
        code, stdout, stderr = run_cli(["check", str(inputs), "--json", str(report)])
        assert code in (0, 2), (code, stderr)
        assert "Traceback" not in stderr + stdout
        messages = stderr
        if report.exists():
            problems = json.loads(report.read_text())
            assert_problem_list_is_clear(problems, inputs)
            messages = "\n".join(f"{p['severity']}: {p['rule']}" for p in problems)
        elif code == 2:  # the file could not even be read: the one-line message names the file
            assert stderr.startswith("imrstats check: ") and str(inputs) in stderr, stderr
        else:
            pytest.fail("check passed without writing its problem list")
        outcome = (
            "check: unreadable input" if not report.exists() else "check: error list" if code == 2 else "check: passed"
        )
        if code == 0:
            code, stdout, stderr = run_cli(["clean", "--in", str(inputs), "--out", str(out)])
            assert code in (0, 2) and "Traceback" not in stderr + stdout
            if code == 0:
                assert_changes_are_logged(tables, out)
                outcome = "check passed, clean ok"
            else:
                outcome = "check passed, clean refused"
        assert hashes(inputs) == before, "an input file was modified"
    return outcome, messages


# ---------------------------------------------------------------------------------------------------
# no silent change: compare the cleaned tables with the input as written


def _as_written(text: str, kind: str):
    """The value a reader takes from the cell without any repair; None when it has no plain reading."""
    text = text.strip()
    if text == "":
        return math.nan
    if kind in ("number", "integer"):
        try:
            return float(text)
        except ValueError:
            return None
    if kind == "boolean":
        # the spellings the schema's boolean type reads (imrstats.data.check.parse_column): a reading, not a repair
        return {
            "true": True,
            "false": False,
            "1": True,
            "0": False,
            "yes": True,
            "no": False,
            "1.0": True,
            "0.0": False,
        }.get(text.lower())
    if kind == "date":
        try:
            return pd.Timestamp.fromisoformat(text).normalize()
        except ValueError:
            return None
    return text


def _same(a, b) -> bool:
    if a is None:
        return False
    a_na = a is pd.NA or a is pd.NaT or (isinstance(a, float) and math.isnan(a))
    b_na = b is pd.NA or b is pd.NaT or b is None or (isinstance(b, float) and math.isnan(b))
    if a_na or b_na:
        return a_na and b_na
    if isinstance(a, float):
        return math.isclose(a, float(b), rel_tol=1e-12, abs_tol=0.0)
    return a == b


def assert_changes_are_logged(tables, out: Path):
    from imrstats.data.check import load_table_schemas

    schemas = load_table_schemas()
    log = pd.read_csv(out / "cleaning_log.csv", dtype=str, keep_default_na=False)
    logged_cells = {(r.table, r.row, r.column) for r in log.itertuples()}
    logged_scores = {(r.id, r.timepoint, r.instrument) for r in log.itertuples() if r.table == "assessments"}
    for name in ("participants", "service_use", "programme"):
        if name not in tables:
            continue
        header, rows = tables[name]
        cleaned = pd.read_parquet(out / f"{name}.parquet")
        assert len(cleaned) == len(rows), f"{name}: rows were added or dropped"
        for col, rule in schemas[name]["columns"].items():
            j = header.index(col)
            for i, row in enumerate(rows):
                value = cleaned[col].iloc[i]
                if not _same(_as_written(row[j], rule["type"]), value.item() if hasattr(value, "item") else value):
                    assert (name, str(i + 1), col) in logged_cells, (
                        f"{name} row {i + 1} column {col}: {row[j]!r} became {value!r} without a log row"
                    )
    if "assessments" in tables:
        header, rows = tables["assessments"]
        written = {(r[0].strip(), r[1].strip(), r[2].strip()): _as_written(r[3], "number") for r in rows}
        for frame in ("assessments", "assessment_items"):
            cleaned = pd.read_parquet(out / f"{frame}.parquet")
            for pid, tp, inst, score in cleaned[["id", "timepoint", "instrument", "score"]].itertuples(index=False):
                if (pid, tp, inst) in written and _same(written[(pid, tp, inst)], score):
                    continue
                assert (pid, tp, inst) in logged_scores, (
                    f"{frame} {pid}/{tp}/{inst}: score {score!r} differs from the input without a log row"
                )


# ---------------------------------------------------------------------------------------------------
# the tests


def test_unmodified_examples_pass_check_and_clean():
    assert run_case(_copy(BASE))[0] == "check passed, clean ok"
    OUTCOMES["named: unmodified"] += 1


UNREADABLE, ERRORS, CLEAN = "check: unreadable input", "check: error list", "check passed, clean ok"
# each named case: how the table is damaged, how it must end, and a phrase its messages must hold
NAMED = {
    "empty file": dict(raw={"participants": b""}, expect=UNREADABLE, says="the file is empty"),
    "whitespace-only file": dict(raw={"assessments": b" \r\n\r\n"}, expect=UNREADABLE, says="the file is empty"),
    "header only": dict(mutate=lambda t: drop_rows(t, "service_use"), expect=ERRORS, says="has no data rows"),
    "semicolon delimiter": dict(dialects={"participants": (";", "\n")}, expect=CLEAN),
    "tab delimiter": dict(dialects={"service_use": ("\t", "\n")}, expect=CLEAN),
    "CRLF line endings": dict(dialects={"assessments": (",", "\r\n")}, expect=CLEAN),
    "UTF-8 with BOM": dict(encodings={"participants": "utf-8-sig"}, expect=CLEAN),
    "latin-1 with a non-ASCII site": dict(
        encodings={"participants": "latin-1"},
        expect=UNREADABLE,
        says="not UTF-8",
        mutate=lambda t: set_cell(t, "participants", 0, 2, "Ærø"),
    ),
    "UTF-16": dict(encodings={"programme": "utf-16"}, expect=UNREADABLE, says="not UTF-8"),
    "duplicated header name": dict(
        mutate=lambda t: duplicate_column(t, "participants", 1), expect=UNREADABLE, says="duplicated column names"
    ),
    "missing required column": dict(
        mutate=lambda t: drop_column(t, "assessments", 3), expect=ERRORS, says="required column missing"
    ),
    "duplicated id": dict(mutate=lambda t: duplicate_row(t, "participants", 3), expect=ERRORS, says="unique:"),
    "duplicated assessment key": dict(
        mutate=lambda t: duplicate_row(t, "assessments", 5), expect=ERRORS, says="unique:"
    ),
    "unknown arm code": dict(
        mutate=lambda t: set_cell(t, "participants", 2, 1, "Placebo"),
        expect=ERRORS,
        says="code: allowed values are IMR, TAU",
    ),
    "unknown timepoint code": dict(
        mutate=lambda t: set_cell(t, "assessments", 2, 1, "fu6"),
        expect=ERRORS,
        says="code: allowed values are baseline",
    ),
    "code in another case": dict(
        mutate=lambda t: set_cell(t, "participants", 2, 1, "imr"), expect=CLEAN, says="code: written in another case"
    ),
    "non-numeric score": dict(
        mutate=lambda t: set_cell(t, "assessments", 4, 3, "abc"), expect=ERRORS, says="type: expected number"
    ),
    "out-of-range score": dict(mutate=lambda t: set_cell(t, "assessments", 4, 3, "1000"), expect=ERRORS, says="range:"),
    "huge score 1e308": dict(mutate=lambda t: set_cell(t, "assessments", 4, 3, "1e308"), expect=ERRORS, says="range:"),
    "score inf": dict(mutate=lambda t: set_cell(t, "assessments", 4, 3, "inf"), expect=ERRORS, says="range:"),
    "score 1e999": dict(mutate=lambda t: set_cell(t, "assessments", 4, 3, "1e999"), expect=ERRORS, says="range:"),
    "score nan written out": dict(
        mutate=lambda t: set_cell(t, "assessments", 4, 3, "nan"), expect=ERRORS, says="type: expected number"
    ),
    "missing-value code": dict(mutate=lambda t: set_cell(t, "assessments", 4, 3, "-99"), expect=CLEAN),
    "huge age": dict(
        mutate=lambda t: set_cell(t, "participants", 1, 4, "99999999999999999999"), expect=ERRORS, says="range:"
    ),
    "thousands separator in a count": dict(
        dialects={"service_use": (";", "\n")},
        expect=ERRORS,
        mutate=lambda t: set_cell(t, "service_use", 1, 6, "1,000"),
        says="write 1000, not 1,000",
    ),
    "decimal comma": dict(
        dialects={"participants": (";", "\n")},
        expect=CLEAN,
        says="decimal comma",
        mutate=lambda t: set_cell(t, "participants", 1, 4, "40,5"),
    ),
    "day-first date": dict(
        mutate=lambda t: set_cell(t, "programme", 1, 4, "03/04/2019"), expect=ERRORS, says="write dates as YYYY-MM-DD"
    ),
    "all-missing scores": dict(
        mutate=lambda t: set_column(t, "assessments", "score", ""),
        expect=ERRORS,
        says="completeness: no observed score",
    ),
    "one instrument never observed": dict(
        mutate=lambda t: [
            set_cell(t, "assessments", i, 3, "") for i, r in enumerate(t["assessments"][1]) if r[2] == "gaf_f"
        ],
        expect=CLEAN,
        says="instrument 'gaf_f' has no observed score",
    ),
    "single arm": dict(mutate=single_arm, expect=ERRORS, says="arm balance: no participant in arm TAU"),
    "one-participant site": dict(
        mutate=lambda t: one_participant_site(t, 0), expect=CLEAN, says="site: only one participant"
    ),
    "future start date": dict(mutate=lambda t: future_date(t, 2, 0), expect=ERRORS, says="date: lies in the future"),
    "name column": dict(
        mutate=lambda t: add_identifier_column(t, "programme", "name"),
        expect=ERRORS,
        says="privacy: column looks like a direct identifier",
    ),
    "CPR number column": dict(
        mutate=lambda t: add_identifier_column(t, "participants", "cpr"),
        expect=ERRORS,
        says="privacy: column looks like a direct identifier",
    ),
    "exact birth date column": dict(
        mutate=lambda t: add_identifier_column(t, "programme", "birth"),
        expect=ERRORS,
        says="privacy: column looks like a direct identifier",
    ),
    "CPR number in a value": dict(
        mutate=lambda t: add_identifier_column(t, "participants", "hidden_cpr"),
        expect=ERRORS,
        says="privacy: value looks like a national id",
    ),
    "missing table": dict(
        mutate=lambda t: drop_table(t, "participants"), expect=ERRORS, says="the folder has no participants table"
    ),
    "missing programme table": dict(mutate=lambda t: drop_table(t, "programme"), expect=CLEAN),
    "NUL byte in a cell": dict(mutate=lambda t: set_cell(t, "participants", 1, 2, "a\x00b"), expect=CLEAN),
    "ragged row": dict(
        raw={
            "service_use": b"id,period,exposure_days,admissions,bed_days,er_visits,outpatient_contacts\n"
            b"P0001,pre,365,0,0,0,1,EXTRA\n"
        },
        expect=UNREADABLE,
        says="line 2: 8 fields where the header has 7",
    ),
    "short row": dict(
        raw={
            "service_use": b"id,period,exposure_days,admissions,bed_days,er_visits,outpatient_contacts\n"
            b"P0001,pre,365,0,0\n"
        },
        expect=UNREADABLE,
        says="line 2: 5 fields where the header has 7",
    ),
}


@pytest.mark.parametrize("case", list(NAMED))
def test_named_hostile_case(case):
    spec = NAMED[case]
    tables = _copy(BASE)
    if "mutate" in spec:
        spec["mutate"](tables)
    outcome, messages = run_case(tables, spec.get("encodings"), spec.get("dialects"), spec.get("raw"))
    OUTCOMES[f"named: {outcome}"] += 1
    assert outcome == spec["expect"], messages
    assert spec.get("says", "") in messages, messages


def _row_table(func, args) -> str | None:
    """The table whose rows a row mutation indexes (None for the others)."""
    if func in (set_cell, duplicate_row):
        return args[0]
    return {one_participant_site: "participants", future_date: "programme"}.get(func)


@settings(settings.get_profile("hostile"))
@given(
    mutations=st.lists(st.one_of(BENIGN, MUTATION), min_size=1, max_size=3),
    encodings=st.dictionaries(TABLE, ENCODING, max_size=2),
    dialects=st.dictionaries(TABLE, DIALECT, max_size=2),
)
def test_generated_hostile_cases(mutations, encodings, dialects):
    tables = _copy(BASE)
    for func, *args in mutations:
        if any(isinstance(a, str) and a in TABLE_NAMES and a not in tables for a in args):
            continue  # the table was dropped by an earlier mutation
        if func in (single_arm, one_participant_site) and "participants" not in tables:
            continue
        if func is future_date and "programme" not in tables:
            continue
        if func is drop_table and len(tables) == 1:
            continue
        if _row_table(func, args) is not None and not tables[_row_table(func, args)][1]:
            continue  # a mutation of one row, on a table an earlier mutation emptied
        func(tables, *args)
    outcome, _ = run_case(tables, encodings, dialects)
    OUTCOMES[f"generated: {outcome}"] += 1


def test_zz_report_case_counts(capsys):
    """Prints the number of cases and how they ended (runs last in this module)."""
    total = sum(OUTCOMES.values())
    if not total:
        pytest.skip("no case ran in this session (the counts need the other tests of this module)")
    with capsys.disabled():
        print(f"\nhostile inputs: {total} cases")
        for outcome, count in sorted(OUTCOMES.items()):
            print(f"  {count:5d}  {outcome}")
    assert total > 0 and all(count > 0 for count in OUTCOMES.values())
