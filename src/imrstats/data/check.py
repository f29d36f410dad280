"""Validate input tables: schema, codes, ranges, unique ids, arm balance, cross-table consistency.

Every problem is collected (never stop at the first) as a `Problem` naming file, row, column, value and
rule. Rows are numbered from 1 for the first data row (in a CSV file that is line 2, after the header).
The tables are read, never changed.

Reading rules that guard against silent misreadings: text dates must be ISO 8601 (YYYY-MM-DD; 03/04/2019
is refused, not guessed); a decimal comma is accepted only where it is unambiguous (40,5 is read as 40.5,
with a warning, and clean logs it), while 1,000 could be a thousands separator and is refused.

Ids: one person, one id. Ids are compared after a normalisation (`id_spelling`, `id_key`): surrounding
whitespace is trimmed; a whole number stored as a number (an SPSS or Stata numeric id read as 1001.0, or the
text "1001.0") is the id "1001"; then Unicode NFKC and case folding, so "AAR-0002" and "aar-0002" are one id.
Leading zeros and inner spaces are kept ("0012" is not "12"). Two participants whose ids differ only by
that normalisation are an error naming both rows; an assessment or service-use id that matches a
participant only after it is a warning, and `clean` writes the participants table's spelling everywhere.

Missing-value codes: `clean.missing_codes` (per table) and the user-missing codes an SPSS file declares on
a column are read as missing. On the long `score` column of assessments a code applies only where it lies
outside the row's instrument's valid range (instrument registry), or where the config confirms it for that
instrument (`clean.missing_codes_by_instrument`); a code inside the range is kept as a score, with a
warning naming instrument, code and how many values it would blank.

Every problem is returned (and written by `--problems` / `--json`); the console lists up to
`MAX_PER_RULE` rows per rule and says how many more there are (`console_lines`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from imrstats.core.io import declared_missing_mask, spreadsheet_safe
from imrstats.core.paths import SCHEMA_DIR
from imrstats.data.instruments import item_index, load_registry
from imrstats.errors import SettingsError

MAX_PER_RULE = 25  # rows the console lists per (file, column, rule); --problems and --json list them all
ID_NORMALISATION = "surrounding whitespace, numeric format 1001.0 = 1001, letter case"
INTEGRAL_FLOAT_TEXT = r"^([+-]?\d+)\.0+$"
IDENTIFIER_NAME = re.compile(
    r"^(name|first_?name|last_?name|surname|full_?name|cpr|cpr_?nr|cpr_?number|ssn|national_?id|personnummer|"
    r"phone|phone_?number|telephone|mobile|e_?mail|address|street|birth_?date|date_?of_?birth|dob)$"
)
CPR_VALUE = re.compile(r"^\d{6}-?\d{4}$")
EMAIL_VALUE = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None
    column: str | None
    value: str | None
    rule: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file + (f", row {self.row}" if self.row is not None else "")
        what = f", column '{self.column}'" if self.column else ""
        val = f", value {self.value!r}" if self.value is not None else ""
        return f"{self.severity.upper()}: {where}{what}{val}: {self.rule}"


def load_table_schemas() -> dict:
    return yaml.safe_load((SCHEMA_DIR / "tables.schema.yaml").read_text())


def table_schemas(design=None) -> dict:
    """The canonical tables' rules (`load_table_schemas`), with a study's own arm codes and visits when a
    design (`imrstats.trial.design.StudyDesign`) is given: participants' ``arm`` takes the design's
    intervention and control codes, assessments' ``timepoint`` its baseline and visits. Without a design, the
    IMR trial's codes (IMR, TAU; baseline, post, fu12) as the schema file states them."""
    schemas = load_table_schemas()
    if design is None:
        return schemas
    schemas["participants"]["columns"]["arm"]["codes"] = [str(a) for a in design.arms]
    schemas["assessments"]["columns"]["timepoint"]["codes"] = [str(v) for v in design.all_visits]
    return schemas


def design_arms(design=None) -> tuple[str, str]:
    """(intervention, control) codes of a design; the IMR trial's (IMR, TAU) without one."""
    return ("IMR", "TAU") if design is None else (str(design.intervention), str(design.control))


def problems_frame(problems: list[Problem], *, spreadsheet: bool = True) -> pd.DataFrame:
    """Every problem as a table (severity, file, row, column, value, rule). For a CSV a person opens in a
    spreadsheet (`spreadsheet`, the default), a text cell that would run as a formula (=, +, -, @, tab, CR)
    gets a leading single quote; a plain negative number (-99) is left as it is."""
    cols = ["severity", "file", "row", "column", "value", "rule"]
    frame = pd.DataFrame([asdict(p) for p in problems], columns=["file", "row", "column", "value", "rule", "severity"])[
        cols
    ]
    frame["row"] = frame["row"].astype("Int64")
    return spreadsheet_safe(frame) if spreadsheet else frame


def _rule_group(problem: Problem) -> tuple:
    return (problem.file, problem.column, problem.rule.split(":")[0], problem.severity)


def console_lines(problems: list[Problem], problems_file: str | None = None, limit: int = MAX_PER_RULE) -> list[str]:
    """The problem list for a console: up to `limit` rows per (file, column, rule), then one line saying how
    many more rows break that rule and where they are all listed."""
    totals: dict[tuple, int] = {}
    for problem in problems:
        totals[_rule_group(problem)] = totals.get(_rule_group(problem), 0) + 1
    where = f"see {problems_file}" if problems_file else "rerun with --problems FILE.csv to list every row"
    shown: dict[tuple, int] = {}
    lines = []
    for problem in problems:
        group = _rule_group(problem)
        shown[group] = shown.get(group, 0) + 1
        if shown[group] <= limit:
            lines.append(str(problem))
        if shown[group] == limit and totals[group] > limit:
            file, column, rule, severity = group
            what = f", column '{column}'" if column else ""
            lines.append(
                f"{severity.upper()}: {file}{what}: {rule}: ... and {totals[group] - limit} more rows: {where}"
            )
    return lines


class _Collector:
    """Collects every problem, in the order found (none is dropped: the console shortens, not the list)."""

    def __init__(self):
        self.problems: list[Problem] = []

    def add(self, file, row, column, value, rule, severity="error"):
        value = None if value is None else str(value)
        self.problems.append(Problem(file, None if row is None else int(row), column, value, rule, severity))


def id_spelling(values: pd.Series) -> pd.Series:
    """Ids as text, the one way every table writes them: surrounding whitespace trimmed, and a whole number
    stored as a number (SPSS / Stata / Excel numeric ids: 1001.0) or written "1001.0" given as "1001".
    A non-whole number keeps its shortest form (1001.5). Letter case is kept (see `id_key`)."""

    def as_text(v):
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return pd.NA
        if isinstance(v, (bool, np.bool_)):
            return str(v)
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            v = float(v)
            return str(int(v)) if v.is_integer() else repr(v)
        return str(v)

    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        text = values.astype("string")  # text already (the common case): no per-cell conversion
    else:
        text = values.map(as_text).astype("string")
    text = text.str.strip()
    return text.str.replace(INTEGRAL_FLOAT_TEXT, r"\1", regex=True)


def id_key(spelling: pd.Series) -> pd.Series:
    """The key ids are compared by: `id_spelling`, then Unicode NFKC and case folding ("AAR-0002" is
    "aar-0002")."""
    return spelling.astype("string").str.normalize("NFKC").str.casefold()


def instrument_range(key, registry: dict, items: dict) -> tuple[float, float] | None:
    """The valid range of an instrument or item key from the registry (None for an unknown key)."""
    if key in registry:
        return registry[key].min, registry[key].max
    if key in items:
        return items[key][1].min, items[key][1].max
    return None


def _instrument_codes(key, by_instrument: dict, items: dict) -> list:
    """The codes the config confirms as missing for an instrument key: its own, and for an item those
    of the scale it belongs to (`imrs_client: [9]` covers the IMRS-client items)."""
    codes = list(by_instrument.get(key, []))
    if key in items:
        codes += list(by_instrument.get(items[key][0], []))
    return codes


@dataclass(frozen=True)
class KeptCode:
    """A missing-value code found inside an instrument's valid range and kept as a score."""

    instrument: str
    code: float
    count: int
    source: str  # "declared user-missing in the file" or "clean.missing_codes.<table>"
    range: tuple[float, float]

    @property
    def text(self) -> str:
        lo, hi = self.range
        return (
            f"missing code: {self.code:g} ({self.source}) lies inside {self.instrument}'s valid range {lo:g}-{hi:g}: "
            f"{self.count} values kept as scores, not blanked; to blank them, confirm the code in "
            f"clean.missing_codes_by_instrument.{self.instrument}"
        )


def missing_code_mask(
    name: str,
    frame: pd.DataFrame,
    col: str,
    kind: str,
    codes: list,
    by_instrument: dict | None = None,
    registry: dict | None = None,
) -> tuple[pd.Series, list[KeptCode], pd.Series]:
    """The cells of `col` that hold a missing-value code to be read as missing, the codes kept because they
    lie inside an instrument's valid range, and the numbers read (for the log).

    Codes: `codes` (clean.missing_codes of the table; numeric columns only), the user-missing codes the
    file declares on the column (SPSS; any column), and, on the `score` column of assessments, the
    per-instrument codes of `by_instrument`. On that column a table-wide or declared code applies to a row
    only where it lies outside the row's instrument's range; a per-instrument code always applies. The ranges
    come from `registry` (default: the package's instrument registry)."""
    values = frame[col]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numeric = pd.to_numeric(values, errors="coerce")
    else:
        numeric = pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
    numeric = pd.Series(numeric, index=values.index).astype(float)
    configured = (
        numeric.isin(codes) if codes and kind in ("number", "integer") else pd.Series(False, index=values.index)
    )
    declared = declared_missing_mask(numeric, (frame.attrs.get("declared_missing") or {}).get(col, []))
    candidate = (configured | declared).fillna(False).astype(bool)
    kept: list[KeptCode] = []
    if not (name == "assessments" and col == "score" and "instrument" in frame.columns):
        return candidate, kept, numeric
    by_instrument = by_instrument or {}
    registry = load_registry() if registry is None else registry
    items = item_index(registry)
    instrument = frame["instrument"].astype("string").str.strip()
    blank = pd.Series(False, index=values.index)
    for key in instrument.dropna().unique():
        rows = (instrument == key).fillna(False).astype(bool)
        confirmed = rows & numeric.isin(_instrument_codes(key, by_instrument, items))
        bounds = instrument_range(key, registry, items)
        if bounds is None:
            blank |= rows & candidate
            continue
        inside = rows & candidate & (numeric >= bounds[0]) & (numeric <= bounds[1])
        blank |= (rows & candidate & ~inside) | confirmed
        for code, count in numeric[inside & ~confirmed].value_counts(sort=False).sort_index().items():
            here = inside & ~confirmed & (numeric == code)
            source = "declared user-missing in the file" if declared[here].any() else f"clean.missing_codes.{name}"
            kept.append(KeptCode(str(key), float(code), int(count), source, bounds))
    blank |= instrument.isna() & candidate
    return blank.fillna(False).astype(bool), kept, numeric


def _missing_mask(values: pd.Series) -> pd.Series:
    """Missing as written: empty or NaN (missing-value codes: `missing_code_mask`)."""
    mask = values.isna()
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        text = values.astype("string").str.strip()
        mask |= text.isna() | (text == "")
    return mask.fillna(True).astype(bool)


def decimal_comma_mask(values: pd.Series) -> pd.Series:
    """Cells written with a decimal comma (40,5), read as 40.5. A value that could as well carry a
    thousands separator (1,000 or 12,345) is not in the mask, so it fails to parse: it is ambiguous."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return pd.Series(False, index=values.index)
    text = values.astype("string").str.strip()
    decimal = text.str.fullmatch(r"[+-]?\d*,\d+")
    thousands = text.str.fullmatch(r"[+-]?[1-9]\d{0,2},\d{3}")
    return (decimal & ~thousands).fillna(False).astype(bool)


def parse_column(values: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    """Parse a column into its type; return (parsed values, mask of cells that failed to parse)."""
    if kind == "string":
        parsed = values.astype("string").str.strip()
        return parsed, pd.Series(False, index=values.index)
    if kind in ("number", "integer"):
        if pd.api.types.is_bool_dtype(values):
            return values.astype(float), pd.Series(False, index=values.index)
        if pd.api.types.is_numeric_dtype(values):
            parsed = pd.to_numeric(values, errors="coerce")
        else:
            text = values.astype("string").str.strip()
            comma = decimal_comma_mask(values)
            parsed = pd.to_numeric(text.where(~comma, text.str.replace(",", ".", regex=False)), errors="coerce")
        bad = parsed.isna() & values.notna()
        if kind == "integer":
            bad |= parsed.notna() & (np.abs(parsed - np.round(parsed)) > 1e-9)
        return parsed.astype(float), bad
    if kind == "boolean":
        if pd.api.types.is_bool_dtype(values):
            return values.astype(float), pd.Series(False, index=values.index)
        mapping = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "yes": 1.0, "no": 0.0, "1.0": 1.0, "0.0": 0.0}
        text = values.astype("string").str.strip().str.lower()
        parsed = text.map(mapping).astype(float)
        return parsed, parsed.isna() & values.notna()
    if kind == "date":
        # text dates must be ISO 8601 (YYYY-MM-DD): 03/04/2019 is March or April depending on who wrote it
        parsed = (
            pd.to_datetime(values, errors="coerce")
            if pd.api.types.is_datetime64_any_dtype(values)
            else pd.to_datetime(values.astype("string").str.strip(), errors="coerce", format="ISO8601")
        )
        return parsed, parsed.isna() & values.notna()
    raise ValueError(f"unknown column type {kind}")


def check_table(
    name: str,
    frame: pd.DataFrame,
    schema: dict,
    out: _Collector,
    *,
    codes: list,
    allow_identifiers=(),
    by_instrument: dict | None = None,
    registry: dict | None = None,
) -> dict[str, pd.Series]:
    """Column-level rules for one table; returns the parsed columns for the cross-table checks."""
    file = frame.attrs.get("source", name)
    columns = schema["columns"]
    for col in frame.columns:
        norm = re.sub(r"[^a-z0-9]+", "_", str(col).strip().lower()).strip("_")
        if IDENTIFIER_NAME.match(norm) and col not in allow_identifiers:
            out.add(
                file,
                None,
                col,
                None,
                "privacy: column looks like a direct identifier (name, national id, "
                "phone, email, address or exact birth date); remove it or list it in "
                "privacy.allow_identifier_columns",
            )
        elif col not in columns:
            out.add(file, None, col, None, "unknown column: not part of the canonical table; it is ignored", "warning")
            # ignored by clean, but an input holding national ids or emails is refused all the same
            _check_identifier_values(file, col, frame[col].astype("string").str.strip(), out, allow_identifiers)
    for col, rule in columns.items():
        if col not in frame.columns and rule.get("required"):
            out.add(file, None, col, None, f"required column missing (table '{name}' needs: {', '.join(columns)})")
    if frame.empty:
        out.add(file, None, None, None, f"table '{name}' has no data rows")
    parsed: dict[str, pd.Series] = {}
    for col, rule in columns.items():
        if col not in frame.columns:
            continue
        values = frame[col]
        coded, kept, _ = missing_code_mask(name, frame, col, rule["type"], codes, by_instrument, registry)
        missing = _missing_mask(values) | coded
        for k in kept:
            out.add(file, None, col, f"{k.code:g}", k.text, "warning")
        values_present = values.where(~missing)
        series, bad = parse_column(values_present, rule["type"])
        if col == "id":
            series = id_spelling(values_present)
        for idx in np.flatnonzero(bad.to_numpy()):
            hint = (
                "; a comma is read as a decimal point only where that is unambiguous (40,5): write 1000, not 1,000"
                if "," in str(values.iloc[idx]) and rule["type"] != "date"
                else ""
            )
            hint = hint or ("; write dates as YYYY-MM-DD" if rule["type"] == "date" else "")
            out.add(file, idx + 1, col, values.iloc[idx], f"type: expected {rule['type']}{hint}")
        if rule["type"] in ("number", "integer"):
            for idx in np.flatnonzero((decimal_comma_mask(values_present) & ~bad).to_numpy()):
                out.add(
                    file,
                    idx + 1,
                    col,
                    values.iloc[idx],
                    "decimal comma: read as a decimal point; clean logs it",
                    "warning",
                )
        if not rule.get("nullable", True):
            for idx in np.flatnonzero(missing.to_numpy()):
                out.add(file, idx + 1, col, values.iloc[idx], "missing: a value is required")
        if "codes" in rule:
            allowed = set(rule["codes"])
            lowered = {str(c).lower() for c in allowed}
            for idx in np.flatnonzero((~missing & ~series.isin(allowed)).to_numpy()):
                if str(series.iloc[idx]).lower() in lowered:
                    out.add(
                        file,
                        idx + 1,
                        col,
                        values.iloc[idx],
                        "code: written in another case; clean reads it as the code",
                        "warning",
                    )
                else:
                    out.add(
                        file,
                        idx + 1,
                        col,
                        values.iloc[idx],
                        f"code: allowed values are {', '.join(map(str, rule['codes']))}",
                    )
        if rule["type"] in ("number", "integer"):
            for bound, op in (("min", np.less), ("max", np.greater)):
                if bound in rule:
                    hit = (~missing & ~bad & op(series, rule[bound])).to_numpy()
                    for idx in np.flatnonzero(hit):
                        out.add(
                            file,
                            idx + 1,
                            col,
                            values.iloc[idx],
                            f"range: must be between {rule.get('min')} and {rule.get('max')}",
                        )
        if rule["type"] == "string" and not missing.all():
            _check_identifier_values(file, col, series, out, allow_identifiers)
        parsed[col] = series.where(~missing & ~bad)
    key = [c for c in schema.get("key", []) if c in parsed]
    if key and len(key) == len(schema["key"]):
        _check_unique(file, frame, parsed, key, out)
    return parsed


def _check_unique(file, frame, parsed, key, out):
    """Repeated keys; ids compared after normalisation, so `AAR-0002` and `aar-0002` are one id, an error
    naming both rows."""
    keys = pd.DataFrame({c: (id_key(parsed[c]) if c == "id" else parsed[c]) for c in key}).reset_index(drop=True)
    keys = keys.astype(object).where(keys.notna(), "\0missing")  # one spelling of missing, for the lookup
    dup = keys.duplicated(keep="first").to_numpy()
    if not dup.any():
        return
    first: dict[tuple, int] = {}
    for idx, row in enumerate(keys.itertuples(index=False, name=None)):
        first.setdefault(row, idx)
    for idx in np.flatnonzero(dup):
        earlier = first[tuple(keys.iloc[idx])]
        value = "/".join(str(frame[c].iloc[idx]) for c in key)
        this_id, that_id = (parsed["id"].iloc[idx], parsed["id"].iloc[earlier]) if "id" in key else (None, None)
        if "id" in key and not (pd.isna(this_id) or pd.isna(that_id)) and this_id != that_id:
            rule = (
                f"unique: id {this_id!r} here and {that_id!r} in row {earlier + 1} are one id after normalisation "
                f"({ID_NORMALISATION})"
                + (f", so ({', '.join(key)}) repeats row {earlier + 1}" if len(key) > 1 else "")
                + "; one person, one id: correct one of the two rows"
            )
        else:
            rule = f"unique: ({', '.join(key)}) must identify one row; this repeats row {earlier + 1}"
        out.add(file, idx + 1, "+".join(key), value, rule)


def _check_identifier_values(file, col, series, out, allow_identifiers):
    if col in allow_identifiers:
        return
    text = series.dropna().astype(str)
    # each distinct value is matched once: a column of a large export repeats a few values many times
    looks = {value for value in text.unique() if CPR_VALUE.match(value) or EMAIL_VALUE.match(value)}
    for idx in text.index[text.isin(looks)] if looks else []:
        out.add(
            file,
            int(np.flatnonzero(series.index == idx)[0]) + 1,
            col,
            "<redacted>",
            "privacy: value looks like a national id number or an email address",
        )


def check_assessment_scores(frame: pd.DataFrame, parsed: dict, out: _Collector, registry: dict | None = None):
    file = frame.attrs.get("source", "assessments")
    registry = load_registry() if registry is None else registry
    items = item_index(registry)
    if "instrument" not in parsed or "score" not in parsed:
        return
    instrument = parsed["instrument"]
    score = parsed["score"]
    for idx, (key, value) in enumerate(zip(instrument, score)):
        if pd.isna(key):
            continue
        if key in registry:
            lo, hi, integer = registry[key].min, registry[key].max, registry[key].integer
        elif key in items:
            lo, hi, integer = items[key][1].min, items[key][1].max, True
        else:
            out.add(
                file, idx + 1, "instrument", key, "instrument: not in the instrument registry (config/instruments.yaml)"
            )
            continue
        if pd.isna(value):
            continue
        if value < lo or value > hi:
            out.add(file, idx + 1, "score", frame["score"].iloc[idx], f"range: {key} scores lie in {lo:g}-{hi:g}")
        elif integer and key in items and abs(value - round(value)) > 1e-9:
            out.add(file, idx + 1, "score", frame["score"].iloc[idx], f"type: {key} is an item rated in whole numbers")
    _check_observed_scores(file, instrument, score, out)


def _check_observed_scores(file, instrument: pd.Series, score: pd.Series, out: _Collector):
    """All-missing outcomes: an error when the table holds no observed score at all, a warning per
    instrument without one (it cannot be analysed; the trial stage would refuse it)."""
    if len(score) and not score.notna().any():
        out.add(file, None, "score", None, "completeness: no observed score in the table; every outcome is missing")
        return
    observed = score.notna().groupby(instrument.fillna("")).any()
    for key, seen in observed.items():
        if key and not seen:
            out.add(file, None, "score", key, f"completeness: instrument '{key}' has no observed score", "warning")


def check_cross_tables(tables: dict[str, pd.DataFrame], parsed: dict[str, dict], out: _Collector, design=None):
    part = parsed.get("participants")
    if part is None or "id" not in part:
        return
    pfile = tables["participants"].attrs.get("source", "participants")
    pkeys = id_key(part["id"]).reset_index(drop=True)
    spelling_of: dict = {}
    for idx, (k, spelled) in enumerate(zip(pkeys, part["id"].reset_index(drop=True))):
        if pd.notna(k):
            spelling_of.setdefault(k, (spelled, idx + 1))
    ids = set(spelling_of)
    for name in ("assessments", "service_use"):
        if name in parsed and "id" in parsed[name]:
            file = tables[name].attrs.get("source", name)
            col = parsed[name]["id"].reset_index(drop=True)
            keys = id_key(col)
            unknown = col[col.notna() & ~keys.isin(ids)]
            for value, rows in unknown.groupby(unknown, sort=False).groups.items():
                first = int(rows[0]) + 1
                out.add(
                    file,
                    first,
                    "id",
                    value,
                    f"cross-table: id not found in participants ({len(rows)} rows, the first is row {first})",
                )
            known = (col.notna() & keys.isin(ids)).fillna(False).astype(bool)
            canonical = keys.map(lambda k: spelling_of[k][0] if k in spelling_of else None)
            differs = pd.Series([a != b for a, b in zip(col.astype(object), canonical)], index=col.index)
            other = col[known & differs]
            for value, rows in other.groupby(other, sort=False).groups.items():
                first = int(rows[0]) + 1
                spelled, prow = spelling_of[id_key(pd.Series([value])).iloc[0]]
                out.add(
                    file,
                    first,
                    "id",
                    value,
                    f"id: matches participant {spelled!r} ({Path(pfile).name} row {prow}) only after normalisation "
                    f"({ID_NORMALISATION}); matched, and clean writes it as {spelled!r} "
                    f"({len(rows)} rows, the first is row {first})",
                    "warning",
                )
    if "arm" in part:
        counts = part["arm"].value_counts()
        intervention, control = design_arms(design)
        for arm in (intervention, control):
            if counts.get(arm, 0) == 0:
                out.add(
                    pfile,
                    None,
                    "arm",
                    None,
                    f"arm balance: no participant in arm {arm}; a two-arm analysis is impossible",
                )
        n1, n2 = counts.get(intervention, 0), counts.get(control, 0)
        if n1 and n2:
            p = stats.binomtest(int(n1), int(n1 + n2), 0.5).pvalue
            if p < 0.001:
                out.add(
                    pfile,
                    None,
                    "arm",
                    f"{intervention} {n1} / {control} {n2}",
                    f"arm balance: allocation far from 1:1 (binomial p = {p:.2g}); check the arm codes",
                    "warning",
                )
        if "sessions_attended" in part:
            tau_attended = ((part["arm"] == control) & (part["sessions_attended"] > 0)).fillna(False).astype(bool)
            for idx in np.flatnonzero(tau_attended.to_numpy()):
                out.add(
                    pfile,
                    idx + 1,
                    "sessions_attended",
                    part["sessions_attended"].iloc[idx],
                    f"consistency: a {control} participant cannot have attended {intervention} sessions",
                )
    if "site" in part:
        for site, count in part["site"].value_counts().items():
            if count == 1:
                out.add(
                    pfile, None, "site", site, "site: only one participant; site effects cannot be estimated", "warning"
                )
    if "assessments" in parsed and {"id", "timepoint"} <= parsed["assessments"].keys():
        a = parsed["assessments"]
        baseline = "baseline" if design is None else str(design.baseline)
        with_baseline = set(id_key(a["id"])[(a["timepoint"] == baseline).fillna(False).astype(bool)].dropna())
        lacking = sorted(ids - with_baseline)
        if lacking:
            out.add(
                tables["assessments"].attrs.get("source", "assessments"),
                None,
                "timepoint",
                None,
                f"completeness: {len(lacking)} participants have no baseline assessment",
                "warning",
            )


def check_service_use(frame, parsed, out):
    file = frame.attrs.get("source", "service_use")
    if {"bed_days", "exposure_days"} <= parsed.keys():
        over = (parsed["bed_days"] > parsed["exposure_days"]).to_numpy()
        for idx in np.flatnonzero(over):
            out.add(
                file, idx + 1, "bed_days", frame["bed_days"].iloc[idx], "consistency: more bed days than days at risk"
            )
    if {"bed_days", "admissions"} <= parsed.keys():
        odd = ((parsed["admissions"] == 0) & (parsed["bed_days"] > 0)).to_numpy()
        for idx in np.flatnonzero(odd):
            out.add(
                file,
                idx + 1,
                "bed_days",
                frame["bed_days"].iloc[idx],
                "consistency: bed days without an admission (an admission begun the year before?)",
                "warning",
            )


def check_programme(frame, parsed, out, today: date | None = None):
    file = frame.attrs.get("source", "programme")
    today = pd.Timestamp(today or date.today())
    for col in ("start_date", "stop_date", "first_contact_date"):
        if col in parsed:
            for idx in np.flatnonzero((parsed[col] > today).to_numpy()):
                out.add(file, idx + 1, col, frame[col].iloc[idx], "date: lies in the future")
    if {"start_date", "stop_date"} <= parsed.keys():
        for idx in np.flatnonzero((parsed["stop_date"] < parsed["start_date"]).to_numpy()):
            out.add(file, idx + 1, "stop_date", frame["stop_date"].iloc[idx], "date: stop date before start date")
    if {"first_contact_date", "start_date"} <= parsed.keys():
        for idx in np.flatnonzero((parsed["first_contact_date"] > parsed["start_date"]).to_numpy()):
            out.add(
                file,
                idx + 1,
                "first_contact_date",
                frame["first_contact_date"].iloc[idx],
                "date: first contact after the start of IMR",
            )
    if {"birth_year", "start_date"} <= parsed.keys():
        age = parsed["start_date"].dt.year - parsed["birth_year"]
        for idx in np.flatnonzero(((age < 10) | (age > 100)).to_numpy()):
            out.add(
                file, idx + 1, "birth_year", frame["birth_year"].iloc[idx], "range: age at start must be 10-100 years"
            )


def check_tables(
    tables: dict[str, pd.DataFrame],
    *,
    missing_codes: dict | None = None,
    missing_codes_by_instrument: dict | None = None,
    allow_identifier_columns=(),
    today: date | None = None,
    design=None,
    registry: dict | None = None,
) -> list[Problem]:
    """All problems in the given canonical tables (any subset of participants, assessments, service_use,
    programme), errors and warnings, in file order. Tables read from a folder (`attrs['folder']`) must
    include participants when they hold assessments or service use (an error otherwise); given as single
    files, its absence is a warning.

    ``design`` (an `imrstats.trial.design.StudyDesign`, e.g. a study spec's) sets the arm codes and visits
    the tables may hold (`table_schemas`); ``registry`` the instruments scores are checked against (e.g. the
    registry extended by a study spec's instruments). Without them, the IMR trial's codes and the package's
    registry."""
    schemas = table_schemas(design)
    registry = load_registry() if registry is None else registry
    missing_codes = missing_codes or {}
    by_instrument = check_codes_by_instrument(missing_codes_by_instrument, registry)
    out = _Collector()
    _check_participants_present(tables, out)
    parsed = {}
    for name, frame in tables.items():
        if name not in schemas:
            out.add(
                frame.attrs.get("source", name),
                None,
                None,
                None,
                f"unknown table '{name}' (expected one of {', '.join(schemas)})",
            )
            continue
        parsed[name] = check_table(
            name,
            frame,
            schemas[name],
            out,
            codes=list(missing_codes.get(name, [])),
            allow_identifiers=tuple(allow_identifier_columns),
            by_instrument=by_instrument,
            registry=registry,
        )
    if "assessments" in parsed:
        check_assessment_scores(tables["assessments"], parsed["assessments"], out, registry)
    if "service_use" in parsed:
        check_service_use(tables["service_use"], parsed["service_use"], out)
    if "programme" in parsed:
        check_programme(tables["programme"], parsed["programme"], out, today)
    check_cross_tables(tables, parsed, out, design)
    return out.problems


def check_codes_by_instrument(by_instrument: dict | None, registry: dict | None = None) -> dict:
    """clean.missing_codes_by_instrument, its keys checked against the instrument registry (instruments,
    subscales and items; `registry`, default the package's)."""
    by_instrument = dict(by_instrument or {})
    registry = load_registry() if registry is None else registry
    items = item_index(registry)
    unknown = [k for k in by_instrument if k not in registry and k not in items]
    if unknown:
        raise SettingsError(
            [
                (
                    f"clean.missing_codes_by_instrument.{k}",
                    f"'{k}' is not an instrument or item in config/instruments.yaml",
                )
                for k in unknown
            ]
        )
    return by_instrument


def _check_participants_present(tables: dict[str, pd.DataFrame], out: _Collector):
    if "participants" in tables or not {"assessments", "service_use"} & tables.keys():
        return
    present = [n for n in ("assessments", "service_use") if n in tables]
    folders = {frame.attrs.get("folder") for frame in tables.values()} - {None}
    files = ", ".join(Path(tables[n].attrs.get("source", n)).name for n in present)
    if folders:
        out.add(
            sorted(folders)[0],
            None,
            None,
            None,
            f"table missing: the folder has no participants table (participants.csv, .parquet, .sav, .dta or "
            f".xlsx); the ids of {files} cannot be checked and no analysis can run",
        )
    else:
        first = tables[present[0]]
        out.add(
            first.attrs.get("source", present[0]),
            None,
            "id",
            None,
            "table missing: no participants table given; ids are not checked against participants",
            "warning",
        )


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def table_name_for(path: str | Path) -> str:
    """The canonical table a file holds, from its name (participants.csv -> participants)."""
    stem = Path(path).stem.lower()
    for name in ("participants", "assessments", "service_use", "programme"):
        if stem == name or stem.startswith(name + "_") or stem.startswith(name + "-"):
            return name
    return stem
