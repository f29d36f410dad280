"""Validate input tables: schema, codes, ranges, unique ids, arm balance, cross-table consistency.

Every problem is collected (never stop at the first) as a `Problem` naming file, row, column, value and
rule. Rows are numbered from 1 for the first data row (in a CSV file that is line 2, after the header).
The tables are read, never changed.

Reading rules that guard against silent misreadings: text dates must be ISO 8601 (YYYY-MM-DD; 03/04/2019
is refused, not guessed); a decimal comma is accepted only where it is unambiguous (40,5 is read as 40.5,
with a warning, and clean logs it), while 1,000 could be a thousands separator and is refused.
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

from imrstats.data.instruments import item_index, load_registry
from imrstats.core.paths import SCHEMA_DIR

MAX_PER_RULE = 25   # problems listed per (table, column, rule) before they are summarised in one line
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


def problems_frame(problems: list[Problem]) -> pd.DataFrame:
    cols = ["severity", "file", "row", "column", "value", "rule"]
    return pd.DataFrame([asdict(p) for p in problems], columns=["file", "row", "column", "value", "rule", "severity"])[cols]


class _Collector:
    def __init__(self):
        self.problems: list[Problem] = []
        self._counts: dict[tuple, int] = {}

    def add(self, file, row, column, value, rule, severity="error"):
        key = (file, column, rule.split(":")[0], severity)
        self._counts[key] = self._counts.get(key, 0) + 1
        if self._counts[key] <= MAX_PER_RULE:
            value = None if value is None else str(value)
            self.problems.append(Problem(file, None if row is None else int(row), column, value, rule, severity))

    def summarise(self):
        for (file, column, rule, severity), count in self._counts.items():
            if count > MAX_PER_RULE:
                self.problems.append(Problem(file, None, column, None,
                                             f"{rule}: {count - MAX_PER_RULE} more rows break this rule", severity))


def _missing_mask(values: pd.Series, codes: list) -> pd.Series:
    """Missing: empty, NaN, or equal to a configured missing-value code (those are valid input)."""
    mask = values.isna()
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        text = values.astype("string").str.strip()
        mask |= text.isna() | (text == "")
        if codes:
            numeric = pd.to_numeric(text, errors="coerce")
            mask |= numeric.isin(codes)
    elif codes and pd.api.types.is_numeric_dtype(values):
        mask |= values.isin(codes)
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


def _parse(values: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
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
        parsed = pd.to_datetime(values, errors="coerce") if pd.api.types.is_datetime64_any_dtype(values) else \
            pd.to_datetime(values.astype("string").str.strip(), errors="coerce", format="ISO8601")
        return parsed, parsed.isna() & values.notna()
    raise ValueError(f"unknown column type {kind}")


def check_table(name: str, frame: pd.DataFrame, schema: dict, out: _Collector, *, codes: list,
                allow_identifiers=()) -> dict[str, pd.Series]:
    """Column-level rules for one table; returns the parsed columns for the cross-table checks."""
    file = frame.attrs.get("source", name)
    columns = schema["columns"]
    for col in frame.columns:
        norm = re.sub(r"[^a-z0-9]+", "_", str(col).strip().lower()).strip("_")
        if IDENTIFIER_NAME.match(norm) and col not in allow_identifiers:
            out.add(file, None, col, None, "privacy: column looks like a direct identifier (name, national id, "
                    "phone, email, address or exact birth date); remove it or list it in "
                    "privacy.allow_identifier_columns")
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
        missing = _missing_mask(values, codes if rule["type"] in ("number", "integer") else [])
        values_present = values.where(~missing)
        series, bad = _parse(values_present, rule["type"])
        for idx in np.flatnonzero(bad.to_numpy()):
            hint = ("; a comma is read as a decimal point only where that is unambiguous (40,5): write "
                    "1000, not 1,000" if "," in str(values.iloc[idx]) and rule["type"] != "date" else "")
            hint = hint or ("; write dates as YYYY-MM-DD" if rule["type"] == "date" else "")
            out.add(file, idx + 1, col, values.iloc[idx], f"type: expected {rule['type']}{hint}")
        if rule["type"] in ("number", "integer"):
            for idx in np.flatnonzero((decimal_comma_mask(values_present) & ~bad).to_numpy()):
                out.add(file, idx + 1, col, values.iloc[idx], "decimal comma: read as a decimal point; clean "
                        "logs it", "warning")
        if not rule.get("nullable", True):
            for idx in np.flatnonzero(missing.to_numpy()):
                out.add(file, idx + 1, col, values.iloc[idx], "missing: a value is required")
        if "codes" in rule:
            allowed = set(rule["codes"])
            lowered = {str(c).lower() for c in allowed}
            for idx in np.flatnonzero((~missing & ~series.isin(allowed)).to_numpy()):
                if str(series.iloc[idx]).lower() in lowered:
                    out.add(file, idx + 1, col, values.iloc[idx], "code: written in another case; clean reads it "
                            "as the code", "warning")
                else:
                    out.add(file, idx + 1, col, values.iloc[idx], f"code: allowed values are {', '.join(map(str, rule['codes']))}")
        if rule["type"] in ("number", "integer"):
            for bound, op in (("min", np.less), ("max", np.greater)):
                if bound in rule:
                    hit = (~missing & ~bad & op(series, rule[bound])).to_numpy()
                    for idx in np.flatnonzero(hit):
                        out.add(file, idx + 1, col, values.iloc[idx], f"range: must be between {rule.get('min')} and {rule.get('max')}")
        if rule["type"] == "string" and not missing.all():
            _check_identifier_values(file, col, series, out, allow_identifiers)
        parsed[col] = series.where(~missing & ~bad)
    key = [c for c in schema.get("key", []) if c in parsed]
    if key and len(key) == len(schema["key"]):
        dup = pd.DataFrame({c: parsed[c] for c in key}).duplicated(keep="first").to_numpy()
        for idx in np.flatnonzero(dup):
            value = "/".join(str(frame[c].iloc[idx]) for c in key)
            out.add(file, idx + 1, "+".join(key), value, f"unique: ({', '.join(key)}) must identify one row; this repeats an earlier row")
    return parsed


def _check_identifier_values(file, col, series, out, allow_identifiers):
    if col in allow_identifiers:
        return
    text = series.dropna().astype(str)
    for idx, value in text.items():
        if CPR_VALUE.match(value) or EMAIL_VALUE.match(value):
            out.add(file, int(np.flatnonzero(series.index == idx)[0]) + 1, col, "<redacted>",
                    "privacy: value looks like a national id number or an email address")


def check_assessment_scores(frame: pd.DataFrame, parsed: dict, out: _Collector):
    file = frame.attrs.get("source", "assessments")
    registry = load_registry()
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
            out.add(file, idx + 1, "instrument", key, "instrument: not in the instrument registry (config/instruments.yaml)")
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


def check_cross_tables(tables: dict[str, pd.DataFrame], parsed: dict[str, dict], out: _Collector):
    part = parsed.get("participants")
    if part is None or "id" not in part:
        return
    pfile = tables["participants"].attrs.get("source", "participants")
    ids = set(part["id"].dropna())
    for name in ("assessments", "service_use"):
        if name in parsed and "id" in parsed[name]:
            file = tables[name].attrs.get("source", name)
            col = parsed[name]["id"].reset_index(drop=True)
            unknown = col[col.notna() & ~col.isin(ids)]
            for value, rows in unknown.groupby(unknown, sort=False).groups.items():
                first = int(rows[0]) + 1
                out.add(file, first, "id", value, f"cross-table: id not found in participants ({len(rows)} rows, "
                        f"the first is row {first})")
    if "arm" in part:
        counts = part["arm"].value_counts()
        for arm in ("IMR", "TAU"):
            if counts.get(arm, 0) == 0:
                out.add(pfile, None, "arm", None, f"arm balance: no participant in arm {arm}; a two-arm analysis is impossible")
        n1, n2 = counts.get("IMR", 0), counts.get("TAU", 0)
        if n1 and n2:
            p = stats.binomtest(int(n1), int(n1 + n2), 0.5).pvalue
            if p < 0.001:
                out.add(pfile, None, "arm", f"IMR {n1} / TAU {n2}",
                        f"arm balance: allocation far from 1:1 (binomial p = {p:.2g}); check the arm codes", "warning")
        if "sessions_attended" in part:
            tau_attended = ((part["arm"] == "TAU") & (part["sessions_attended"] > 0)).fillna(False).astype(bool)
            for idx in np.flatnonzero(tau_attended.to_numpy()):
                out.add(pfile, idx + 1, "sessions_attended", part["sessions_attended"].iloc[idx],
                        "consistency: a TAU participant cannot have attended IMR sessions")
    if "site" in part:
        for site, count in part["site"].value_counts().items():
            if count == 1:
                out.add(pfile, None, "site", site, "site: only one participant; site effects cannot be estimated", "warning")
    if "assessments" in parsed and {"id", "timepoint"} <= parsed["assessments"].keys():
        a = parsed["assessments"]
        with_baseline = set(a["id"][(a["timepoint"] == "baseline").fillna(False).astype(bool)].dropna())
        lacking = sorted(ids - with_baseline)
        if lacking:
            out.add(tables["assessments"].attrs.get("source", "assessments"), None, "timepoint", None,
                    f"completeness: {len(lacking)} participants have no baseline assessment", "warning")


def check_service_use(frame, parsed, out):
    file = frame.attrs.get("source", "service_use")
    if {"bed_days", "exposure_days"} <= parsed.keys():
        over = (parsed["bed_days"] > parsed["exposure_days"]).to_numpy()
        for idx in np.flatnonzero(over):
            out.add(file, idx + 1, "bed_days", frame["bed_days"].iloc[idx], "consistency: more bed days than days at risk")
    if {"bed_days", "admissions"} <= parsed.keys():
        odd = ((parsed["admissions"] == 0) & (parsed["bed_days"] > 0)).to_numpy()
        for idx in np.flatnonzero(odd):
            out.add(file, idx + 1, "bed_days", frame["bed_days"].iloc[idx],
                    "consistency: bed days without an admission (an admission begun the year before?)", "warning")


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
            out.add(file, idx + 1, "first_contact_date", frame["first_contact_date"].iloc[idx],
                    "date: first contact after the start of IMR")
    if {"birth_year", "start_date"} <= parsed.keys():
        age = parsed["start_date"].dt.year - parsed["birth_year"]
        for idx in np.flatnonzero(((age < 10) | (age > 100)).to_numpy()):
            out.add(file, idx + 1, "birth_year", frame["birth_year"].iloc[idx], "range: age at start must be 10-100 years")


def check_tables(tables: dict[str, pd.DataFrame], *, missing_codes: dict | None = None,
                 allow_identifier_columns=(), today: date | None = None) -> list[Problem]:
    """All problems in the given canonical tables (any subset of participants, assessments, service_use,
    programme), errors and warnings, in file order."""
    schemas = load_table_schemas()
    missing_codes = missing_codes or {}
    out = _Collector()
    parsed = {}
    for name, frame in tables.items():
        if name not in schemas:
            out.add(frame.attrs.get("source", name), None, None, None,
                    f"unknown table '{name}' (expected one of {', '.join(schemas)})")
            continue
        parsed[name] = check_table(name, frame, schemas[name], out, codes=list(missing_codes.get(name, [])),
                                   allow_identifiers=tuple(allow_identifier_columns))
    if "assessments" in parsed:
        check_assessment_scores(tables["assessments"], parsed["assessments"], out)
    if "service_use" in parsed:
        check_service_use(tables["service_use"], parsed["service_use"], out)
    if "programme" in parsed:
        check_programme(tables["programme"], parsed["programme"], out, today)
    check_cross_tables(tables, parsed, out)
    out.summarise()
    return out.problems


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def table_name_for(path: str | Path) -> str:
    """The canonical table a file holds, from its name (participants.csv -> participants)."""
    stem = Path(path).stem.lower()
    for name in ("participants", "assessments", "service_use", "programme"):
        if stem == name or stem.startswith(name + "_") or stem.startswith(name + "-"):
            return name
    return stem
