"""A study spec: one YAML file that maps a trial team's own export to the canonical tables.

A trial statistician's export is rarely shaped like the canonical tables (ARCHITECTURE.md): an SPSS file,
one row per participant (``gaf_f_t0``, ``gaf_f_t1``, ...), arms coded 1/2 with value labels, their own names
for id, centre, sex and diagnosis, their own visits, instruments the registry does not hold, and -99 / 999
for a missing value. A study spec says, key by key (docs/study_spec.md; schema:
workflow/schemas/study.schema.yaml), which column is what, and `load_study` turns the export into the
canonical ``participants`` and ``assessments`` tables, the instrument registry extended by the spec's own
instruments, and an `imrstats.trial.design.StudyDesign` (arms, visits, labels, times). Every change made on
the way (a missing code blanked, a value recoded, a value label decoded, a row dropped, and why) is a row of
the study's log. The export is read, never changed, and nothing is written.

A spec that cannot be right is refused before any table is built, with one line per problem naming the key
and, where a file is involved, the file and the nearest column names (`SettingsError`); data that break the
spec (an arm code it does not map, a score outside the instrument's range, a visit it does not know) are an
`InputError` naming file, row, column, value and rule. `imrstats init DATAFILE` drafts a spec from a file
(`imrstats.data.spec_draft`).

The reader is independent of Snakemake: plain values and data frames in, data frames out.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import yaml

from imrstats.config import check_config_size, load_yaml_file
from imrstats.core.paths import SCHEMA_DIR
from imrstats.data.check import id_key, id_spelling
from imrstats.data.instruments import Instrument, extend_registry, load_registry, registry_from_mapping
from imrstats.errors import InputError, SettingsError

if TYPE_CHECKING:
    from imrstats.trial.design import StudyDesign

STUDY_SCHEMA = SCHEMA_DIR / "study.schema.yaml"
FORMAT_BY_SUFFIX = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".sav": "sav",
    ".zsav": "sav",
    ".dta": "dta",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
}
# covariates that are columns of the canonical participants table (ARCHITECTURE.md, "Canonical tables")
CANONICAL_COVARIATES = ("site", "sex", "age", "diagnosis")
RESERVED_NAMES = ("id", "arm", "sessions_attended")
CODED_COLUMNS = {
    "sex": ("female", "male"),
    "diagnosis": ("schizophrenia", "bipolar", "schizoaffective", "depression", "delusional", "other"),
}
ONE_SITE = "(one site)"  # the site of every participant when the spec names no site column
LOG_COLUMNS = ["file", "row", "column", "id", "old_value", "new_value", "rule"]
MAX_ROWS_NAMED = 5  # rows an error line names before it says how many more


# ---------------------------------------------------------------------------------------------
# Codes written one way


def code_text(value) -> str | None:
    """A code as text, one way for every source: a whole number (1, 1.0, "1.0") is "1", other numbers their
    shortest form, text trimmed; missing is None. Used to compare a spec's codes with a file's cells."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if np.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    match = re.fullmatch(r"([+-]?\d+)\.0+", text)
    return match.group(1) if match else text


def _codes_text(values: pd.Series) -> pd.Series:
    return pd.Series([code_text(v) for v in values], index=values.index, dtype=object)


# ---------------------------------------------------------------------------------------------
# Reading an export


@dataclass
class Export:
    """One data file as read: its cells as written (numbers as numbers, text as text; value labels not
    applied), and what the file says about them (SPSS / Stata value and variable labels, SPSS user-missing
    ranges)."""

    path: Path
    label: str  # the path as the spec writes it
    format: str
    layout: str
    frame: pd.DataFrame
    decimal: str = "."
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> {code text: label}
    variable_labels: dict[str, str] = field(default_factory=dict)
    declared_missing: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    id_column: str | None = None  # the spec's id column, for error messages

    @property
    def name(self) -> str:
        return self.path.name


def guess_format(path: str | Path) -> str:
    """The format of a data file from its extension (csv, parquet, sav, dta, xlsx); InputError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMAT_BY_SUFFIX:
        raise InputError(
            f"{path}: cannot tell the format from the extension '{suffix}'; accepted: "
            f"{', '.join(sorted(set(FORMAT_BY_SUFFIX.values())))} (or give data.format)"
        )
    return FORMAT_BY_SUFFIX[suffix]


def guess_separator(header: str) -> str:
    """The CSV delimiter a header line uses most: , ; tab or | (ties go to the comma)."""
    return max((",", ";", "\t", "|"), key=lambda d: (header.count(d), d == ","))


def read_export(
    path: str | Path,
    *,
    format: str | None = None,
    sep: str | None = None,
    decimal: str = ".",
    sheet: str | int | None = None,
    layout: str = "wide",
    label: str | None = None,
) -> Export:
    """Read one export, read-only. CSV is read as text (UTF-8, a BOM is fine; ``sep`` guessed from the header
    when not given), so a cell is seen as written; SPSS and Stata through pyreadstat with value labels kept
    apart (``value_labels``) and SPSS user-missing values kept as numbers with their ranges
    (``declared_missing``); Excel one sheet (``sheet``, default the first); Parquet as stored."""
    path = Path(path)
    fmt = format or guess_format(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: a folder where a data file is expected")
    value_labels: dict[str, dict[str, str]] = {}
    variable_labels: dict[str, str] = {}
    declared: dict[str, list[tuple[float, float]]] = {}
    try:
        if fmt == "csv":
            raw = path.read_bytes()
            if not raw.strip():
                raise InputError(f"{path}: the file is empty (no header row)")
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
            sep = sep or guess_separator(text.splitlines()[0])
            from io import StringIO

            frame = pd.read_csv(
                StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""], index_col=False
            )
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        elif fmt == "xlsx":
            frame = pd.read_excel(path, sheet_name=0 if sheet is None else sheet)
        elif fmt in ("sav", "dta"):
            import pyreadstat

            if fmt == "sav":
                frame, meta = pyreadstat.read_sav(str(path), apply_value_formats=False, user_missing=True)
                declared = {
                    str(col): [(float(r["lo"]), float(r["hi"])) for r in ranges]
                    for col, ranges in (meta.missing_ranges or {}).items()
                    if ranges
                }
            else:
                frame, meta = pyreadstat.read_dta(str(path), apply_value_formats=False)
            value_labels = {
                str(col): {code_text(k): str(v) for k, v in labels.items()}
                for col, labels in (meta.variable_value_labels or {}).items()
                if labels
            }
            variable_labels = {str(k): str(v) for k, v in (meta.column_names_to_labels or {}).items() if v}
        else:
            raise InputError(f"{path}: unsupported format '{fmt}'")
    except InputError:
        raise
    except Exception as exc:  # a corrupt or mislabelled file: say which and why
        raise InputError(f"{path}: cannot be read as {fmt}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return Export(path, label or str(path), fmt, layout, frame, decimal, value_labels, variable_labels, declared)


# ---------------------------------------------------------------------------------------------
# The spec: read, checked against the schema, checked for sense


@lru_cache(maxsize=1)
def study_schema() -> dict:
    """The study spec's JSON schema (workflow/schemas/study.schema.yaml)."""
    return yaml.safe_load(STUDY_SCHEMA.read_text())


def _string_keys(value):
    """Mapping keys as text (a YAML key 1: is the code "1"; 1.0 is "1")."""
    if isinstance(value, dict):
        return {code_text(k) if k is not None else "null": _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def _key_path(error) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_problems(error) -> list[tuple[str, str]]:
    """(key path, message) for one schema error; an unknown key is named by its own path."""
    kind, rule, got = error.validator, error.validator_value, error.instance
    path = _key_path(error)
    if kind in ("oneOf", "anyOf") and error.context:
        deeper = [e for e in error.context if e.validator != "type"]
        if deeper:
            seen, out = set(), []
            for sub in deeper:
                for problem in _schema_problems(sub):
                    if problem not in seen:
                        seen.add(problem)
                        out.append(problem)
            return out
        kinds = sorted(
            {
                t
                for e in error.context
                for t in ([e.validator_value] if isinstance(e.validator_value, str) else e.validator_value)
            }
        )
        return [(path, f"must be {' or '.join(kinds)}, got {got!r}")]
    if kind == "additionalProperties" and rule is False:
        known = sorted(error.schema.get("properties", {}))
        return [
            (
                f"{path}.{k}" if path != "(top level)" else k,
                f"unknown key; valid keys here: {', '.join(known)} (see docs/study_spec.md)",
            )
            for k in got
            if k not in known
        ]
    if kind == "required":
        return [(f"{path}.{k}" if path != "(top level)" else k, "missing") for k in rule if k not in got]
    if kind == "enum":
        return [(path, f"must be one of {', '.join(map(repr, rule))}, got {got!r}")]
    if kind == "type":
        types = [rule] if isinstance(rule, str) else rule
        return [(path, f"must be {' or '.join(types)}, got {got!r}")]
    if kind in ("minLength", "pattern"):
        return [(path, f"must not be empty or blank, got {got!r}")]
    if kind in ("minItems", "minProperties"):
        return [(path, f"must list at least {rule}, got {got!r}")]
    return [(path, error.message)]


def validate_spec(spec, source: str | None = None) -> dict:
    """A spec (a mapping, as read from YAML) checked against the schema and for sense (visits distinct,
    baseline first, times increasing; instruments known; each outcome's columns given for the layout).
    Returns the spec with mapping keys as text and visit names as text; `SettingsError` lists every problem,
    each naming its key path."""
    import jsonschema  # imrstats.config (imported above) has set up its fast import

    if not isinstance(spec, dict):
        raise SettingsError([("(top level)", "a study spec must be a mapping of keys to values")], source)
    check_config_size(spec, source)
    spec = _string_keys(spec)
    validator = jsonschema.Draft202012Validator(study_schema())
    errors = sorted(validator.iter_errors(spec), key=lambda e: [str(p) for p in e.absolute_path])
    problems = [p for e in errors for p in _schema_problems(e)]
    if problems:
        raise SettingsError(problems, source)
    for visit in spec["visits"]:
        visit["name"] = code_text(visit["name"])
    problems = spec_problems(spec)
    if problems:
        raise SettingsError(problems, source)
    return spec


def data_files(spec: dict) -> list[dict]:
    """data.files as a list of {path, format, sep, decimal, sheet, layout}, each filled from data's own keys."""
    data = spec["data"]
    entries = data["files"] if isinstance(data["files"], list) else [data["files"]]
    out = []
    for entry in entries:
        entry = {"path": entry} if isinstance(entry, str) else dict(entry)
        for key in ("format", "sep", "decimal", "sheet"):
            entry.setdefault(key, data.get(key))
        entry.setdefault("layout", data.get("layout", "wide"))
        entry["decimal"] = entry["decimal"] or "."
        out.append(entry)
    return out


def spec_files(spec_path: str | Path) -> list[Path]:
    """The export file(s) a study spec names, as paths (relative ones resolved against the spec's folder, as
    `load_study` reads them): what a workflow declares as the study's inputs."""
    spec_path = Path(spec_path)
    out = []
    for entry in data_files(read_spec(spec_path)):
        path = Path(entry["path"])
        out.append(path if path.is_absolute() else spec_path.parent / path)
    return out


def baseline_index(visits: list[dict]) -> int:
    """Position of the baseline visit: the one marked ``baseline: true``, else the first listed."""
    flagged = [i for i, v in enumerate(visits) if v.get("baseline")]
    return flagged[0] if flagged else 0


def outcome_instrument(key: str, entry: dict) -> str:
    """The instrument an outcome is scored on: its ``instrument`` key, else the outcome's own key."""
    return entry.get("instrument") or key


def spec_problems(spec: dict, registry: dict | None = None) -> list[tuple[str, str]]:
    """What the schema cannot say about a spec, each as (key path, message)."""
    problems: list[tuple[str, str]] = []
    visits = spec["visits"]
    names = [v["name"] for v in visits]
    first_seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first_seen:
            problems.append((f"visits[{i}].name", f"visit '{name}' is listed twice (also visits[{first_seen[name]}])"))
        first_seen.setdefault(name, i)
    flagged = [i for i, v in enumerate(visits) if v.get("baseline")]
    if len(flagged) > 1:
        problems.append(
            ("visits", f"{len(flagged)} visits are marked baseline ({', '.join(names[i] for i in flagged)}); mark one")
        )
    elif flagged and flagged[0] != 0:
        problems.append(
            (
                f"visits[{flagged[0]}].baseline",
                f"the baseline visit '{names[flagged[0]]}' is listed after '{names[0]}': list the visits in their "
                "order, the baseline first",
            )
        )
    timed = [i for i, v in enumerate(visits) if "time" in v]
    if timed and len(timed) != len(visits):
        untimed = [names[i] for i in range(len(visits)) if i not in timed]
        problems.append(("visits", f"times are given for some visits but not for {', '.join(untimed)}: all or none"))
    elif timed:
        for i in range(1, len(visits)):
            if visits[i]["time"] <= visits[i - 1]["time"]:
                problems.append(
                    (
                        f"visits[{i}].time",
                        f"visit '{names[i]}' at time {visits[i]['time']:g} is not after '{names[i - 1]}' at "
                        f"{visits[i - 1]['time']:g}: list the visits in their order",
                    )
                )
    values: dict[str, int] = {}
    for i, visit in enumerate(visits):
        if "value" in visit:
            text = code_text(visit["value"])
            if text in values:
                problems.append(
                    (f"visits[{i}].value", f"value {visit['value']!r} also names visit '{names[values[text]]}'")
                )
            values.setdefault(text, i)
    files = data_files(spec)
    long = any(f["layout"] == "long" for f in files)
    wide = any(f["layout"] == "wide" for f in files)
    if long and "visit_column" not in spec["data"]:
        problems.append(("data.visit_column", "required for a long file: the column naming each row's visit"))
    if "ignore_visits" in spec["data"] and not long:
        problems.append(("data.ignore_visits", "only for a long file (data.layout: long)"))
    arm = spec["arm"]
    if code_text(arm["intervention"]).casefold() == code_text(arm["control"]).casefold():
        problems.append(("arm.control", f"the same code as arm.intervention ({arm['control']!r})"))
    for code in arm.get("exclude", []):
        if code_text(code).casefold() in (
            code_text(arm["intervention"]).casefold(),
            code_text(arm["control"]).casefold(),
        ):
            problems.append(("arm.exclude", f"{code!r} is also the intervention or control code"))
    known = set(registry or load_registry()) | set(spec.get("instruments", {}))
    used: dict[str, str] = {}
    visit_names = set(names)
    baseline = names[baseline_index(visits)] if names else None
    for key, entry in spec["outcomes"].items():
        instrument = outcome_instrument(key, entry)
        where = f"outcomes.{key}"
        if instrument not in known:
            close = difflib.get_close_matches(instrument, sorted(known), n=3, cutoff=0.5)
            problems.append(
                (
                    f"{where}.instrument" if "instrument" in entry else where,
                    f"'{instrument}' is neither in the instrument registry (config/instruments.yaml) nor declared "
                    "under instruments" + (f"; nearest: {', '.join(close)}" if close else ""),
                )
            )
        if instrument in used:
            problems.append((where, f"instrument '{instrument}' is also outcome '{used[instrument]}'"))
        used.setdefault(instrument, key)
        for visit in entry.get("columns", {}):
            if visit not in visit_names:
                problems.append((f"{where}.columns.{visit}", f"'{visit}' is not a visit; visits: {', '.join(names)}"))
        if "columns" in entry and "column" in entry:
            problems.append((where, "give columns (wide file) or column (long file), not both"))
        if not entry.get("columns") and not entry.get("column"):
            need = "columns (one column per visit)" if wide and not long else "column (the score column)"
            problems.append((where, f"no score column given: add {need}"))
        if "column" in entry and not long:
            problems.append((f"{where}.column", "a long file's score column, but data.layout is wide: give columns"))
        if "baseline_column" in entry and baseline in entry.get("columns", {}):
            problems.append((f"{where}.baseline_column", f"the baseline is also columns.{baseline}: keep one"))
    for key, instrument in spec.get("instruments", {}).items():
        if instrument["min"] >= instrument["max"]:
            problems.append((f"instruments.{key}", f"min {instrument['min']} must be below max {instrument['max']}"))
    canonical_names: dict[str, int] = {}
    for i, covariate in enumerate(spec.get("covariates", [])):
        name = covariate_name(covariate)
        if name in RESERVED_NAMES:
            problems.append((f"covariates[{i}].as", f"'{name}' is a column of its own (id, arm, sessions_attended)"))
        if name in canonical_names:
            problems.append((f"covariates[{i}]", f"'{name}' is also covariates[{canonical_names[name]}]"))
        canonical_names.setdefault(name, i)
        if name == "site" and "site" in spec and covariate_column(covariate) != spec["site"]:
            problems.append((f"covariates[{i}]", f"site is column '{spec['site']}' (key site), not this column"))
    file_labels = {f["path"] for f in files} | {Path(f["path"]).name for f in files}
    for label in spec.get("missing_codes", {}).get("files", {}):
        if label not in file_labels:
            problems.append(
                (f"missing_codes.files.{label}", f"not a file of data.files ({', '.join(f['path'] for f in files)})")
            )
    return problems


def covariate_column(entry) -> str:
    return entry if isinstance(entry, str) else entry["column"]


def covariate_name(entry) -> str:
    """The canonical name of a covariate: its ``as``, else its column in lower snake case."""
    if isinstance(entry, dict) and entry.get("as"):
        return entry["as"]
    return re.sub(r"[^a-z0-9]+", "_", covariate_column(entry).strip().lower()).strip("_") or "covariate"


def read_spec(spec_path: str | Path) -> dict:
    """A study spec file, read safely (`imrstats.config.load_yaml_file`: size limit, no aliases) and
    validated (`validate_spec`)."""
    spec = load_yaml_file(spec_path, "study spec")
    if spec is None:
        raise SettingsError(
            [("(file)", "empty: a study spec needs data, id, arm, visits and outcomes")], str(spec_path)
        )
    return validate_spec(spec, str(spec_path))


def spec_instruments(spec: dict, source: str = "study spec") -> dict[str, Instrument]:
    """The instruments a spec declares (under ``instruments``), as registry entries; short name, integer,
    rater and source default to the name, false, "unspecified" and the spec."""
    raw = {}
    for key, entry in spec.get("instruments", {}).items():
        raw[key] = {
            "short": entry["name"],
            "integer": False,
            "rater": "unspecified",
            "source": f"declared in the study spec {Path(source).name}",
            **entry,
        }
    return registry_from_mapping(raw, f"{source}: instruments") if raw else {}


def study_registry(spec: dict, source: str = "study spec", registry: dict | None = None) -> dict[str, Instrument]:
    """The instrument registry (``registry``, default the package's) extended by the spec's own instruments;
    the package's files are not touched. check, clean and the trial stage take it as their ``registry``."""
    base = load_registry() if registry is None else registry
    try:
        return extend_registry(base, spec_instruments(spec, source), source)
    except InputError as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError([("instruments", str(exc).split(": ", 1)[-1])], source) from None


# ---------------------------------------------------------------------------------------------
# The study


@dataclass(frozen=True)
class Study:
    """A study as its spec maps it: the canonical tables, the registry and design to analyse them with, and
    the log of every change made on the way."""

    spec: dict  # the validated spec
    path: Path  # the spec file
    participants: pd.DataFrame  # id, arm, site, sex, age, diagnosis, sessions_attended (+ other covariates)
    assessments: pd.DataFrame  # id, timepoint, instrument, score (long)
    registry: dict[str, Instrument]  # the package's registry extended by the spec's instruments
    design: StudyDesign  # arms, visits, labels, times
    log: pd.DataFrame  # file, row, column, id, old_value, new_value, rule
    outcomes: tuple[str, ...]  # instrument keys of the spec's outcomes, in its order
    covariates: tuple[str, ...]  # participants columns the spec lists as covariates (what a model adjusts for)
    files: tuple[Path, ...]
    variable_labels: dict[str, str] = field(default_factory=dict)  # column -> label (SPSS / Stata)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """participants and assessments, each naming the spec as its source (for `check` messages)."""
        out = {"participants": self.participants.copy(), "assessments": self.assessments.copy()}
        for name, frame in out.items():
            frame.attrs["source"] = f"{self.path} ({name})"
        return out


class _Log:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, file, row, column, id, old, new, rule):
        def text(v):
            t = code_text(v)
            return "" if t is None else t

        self.rows.append(
            {
                "file": file or "",
                "row": None if row is None else int(row),
                "column": column,
                "id": "" if id is None else text(id),
                "old_value": text(old),
                "new_value": text(new),
                "rule": rule,
            }
        )

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=LOG_COLUMNS)
        frame["row"] = frame["row"].astype("Int64")
        return frame


def _cell(value) -> str:
    """A cell as an error line shows it: its Python repr (60.0, 'n/a'), never numpy's (np.float64(60.0))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _rows_text(rows) -> str:
    rows = [int(r) + 1 for r in rows]
    shown = ", ".join(map(str, rows[:MAX_ROWS_NAMED]))
    return shown + (f" and {len(rows) - MAX_ROWS_NAMED} more" if len(rows) > MAX_ROWS_NAMED else "")


def nearest_columns(name: str, columns) -> list[str]:
    """Up to three column names closest to ``name`` (difflib), one differing only in letter case first."""
    columns = [str(c) for c in columns]
    same = [c for c in columns if c.casefold() == name.casefold() and c != name]
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.5)
    folded = {c.casefold(): c for c in columns}
    close += [folded[c] for c in difflib.get_close_matches(name.casefold(), list(folded), n=3, cutoff=0.5)]
    out = []
    for c in same + close:
        if c not in out:
            out.append(c)
    return out[:3]


def _missing_column(key: str, column: str, exports: list[Export], every: bool = False) -> tuple[str, str]:
    files = ", ".join(e.label for e in exports)
    near = nearest_columns(column, [c for e in exports for c in e.frame.columns])
    where = f"file {files}" if len(exports) == 1 else (f"file(s) {files}" if every else f"any of the files {files}")
    return (
        key,
        f"column '{column}' is not in {where}" + (f"; nearest: {', '.join(near)}" if near else "; no similar column"),
    )


def _columns_problems(spec: dict, exports: list[Export]) -> list[tuple[str, str]]:
    """Every key naming a column no file holds (where it must be), with the nearest column names."""
    problems = []

    def holder(column):
        return [e for e in exports if column in e.frame.columns]

    for e in exports:
        if spec["id"] not in e.frame.columns:
            problems.append(_missing_column("id", spec["id"], [e], every=True))
        if (
            e.layout == "long"
            and spec["data"].get("visit_column")
            and spec["data"]["visit_column"] not in e.frame.columns
        ):
            problems.append(_missing_column("data.visit_column", spec["data"]["visit_column"], [e], every=True))
    single = [("arm.column", spec["arm"]["column"])]
    if "site" in spec:
        single.append(("site", spec["site"]))
    if "sessions_attended" in spec:
        single.append(("sessions_attended", spec["sessions_attended"]))
    for i, covariate in enumerate(spec.get("covariates", [])):
        single.append(
            (f"covariates[{i}]" + (".column" if isinstance(covariate, dict) else ""), covariate_column(covariate))
        )
    for key, entry in spec["outcomes"].items():
        for visit, column in entry.get("columns", {}).items():
            single.append((f"outcomes.{key}.columns.{visit}", column))
        if "baseline_column" in entry:
            single.append((f"outcomes.{key}.baseline_column", entry["baseline_column"]))
    for key, column in single:
        if not holder(column):
            problems.append(_missing_column(key, column, exports))
    long_files = [e for e in exports if e.layout == "long"]
    for key, entry in spec["outcomes"].items():
        if "column" in entry and not any(entry["column"] in e.frame.columns for e in long_files):
            problems.append(_missing_column(f"outcomes.{key}.column", entry["column"], long_files or exports))
    return problems


def _codes_for(spec: dict, export: Export, column: str) -> list:
    codes = spec.get("missing_codes", {})
    files = codes.get("files", {})
    return [
        *codes.get("all", []),
        *files.get(export.label, []),
        *(files.get(export.name, []) if export.name != export.label else []),
        *codes.get("columns", {}).get(column, []),
    ]


def _blank_missing_codes(spec: dict, export: Export, columns: list[str], log: _Log) -> None:
    """Blank, in the export's frame (a copy of the file), the missing codes of the spec and the SPSS
    user-missing values the file declares, on the mapped ``columns``; each blanked cell is a log row."""
    frame = export.frame
    ids = frame[spec["id"]] if spec["id"] in frame.columns else pd.Series([None] * len(frame))
    for column in dict.fromkeys(columns):
        if column not in frame.columns:
            continue
        values = frame[column]
        texts = _codes_text(values)
        if export.decimal == ",":  # -99,0 is the code -99
            texts = texts.map(lambda t: code_text(t.replace(",", ".")) if isinstance(t, str) else t)
        codes = {code_text(c): c for c in _codes_for(spec, export, column)}
        hit_spec = texts.isin(list(codes)).to_numpy()
        numeric = pd.to_numeric(values, errors="coerce") if pd.api.types.is_numeric_dtype(values) else None
        hit_file = np.zeros(len(frame), dtype=bool)
        if numeric is not None:
            for lo, hi in export.declared_missing.get(column, []):
                hit_file |= ((numeric >= lo) & (numeric <= hi)).fillna(False).to_numpy()
        hit = hit_spec | hit_file
        if not hit.any():
            continue
        for idx in np.flatnonzero(hit):
            source = "declared user-missing in the file" if hit_file[idx] else "missing_codes"
            log.add(
                export.label,
                idx + 1,
                column,
                ids.iloc[idx],
                values.iloc[idx],
                None,
                f"missing code {texts.iloc[idx]} set to missing ({source})",
            )
        frame[column] = values.where(~hit) if numeric is not None else values.astype(object).where(~hit, None)


def _numbers(export: Export, column: str, what: str) -> pd.Series:
    """A column as numbers (the file's decimal mark); a cell that is not a number is an InputError naming file,
    row, column, value and rule."""
    values = export.frame[column]
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_numeric(values, errors="coerce").astype(float)
    text = pd.Series([code_text(v) for v in values], index=values.index, dtype=object)
    blank = text.isna() | (text == "")
    both = pd.Series(False, index=values.index)
    if export.decimal == ",":  # 40,5 is 40.5; a cell with both marks (1.234,5) is refused, not guessed
        both = text.map(lambda t: isinstance(t, str) and "," in t and "." in t).astype(bool)
        text = text.map(lambda t: t.replace(",", ".") if isinstance(t, str) else t)
    parsed = pd.to_numeric(text.where(~blank), errors="coerce")
    parsed[both.to_numpy()] = np.nan
    bad = parsed.isna() & ~blank
    if bad.any():
        idx = int(np.flatnonzero(bad.to_numpy())[0])
        hint = (
            "; the file writes a decimal comma: set data.decimal: ','"
            if "," in str(values.iloc[idx]) and export.decimal == "."
            else "; list it under missing_codes if it stands for a missing value"
        )
        raise InputError(
            f"{export.label}, row {idx + 1}, column '{column}', value {_cell(values.iloc[idx])}: not a number "
            f"(rule: {what} is numeric){hint}; {int(bad.sum()) - 1} more such cells"
        )
    return parsed.astype(float)


def _decoded(export: Export, column: str) -> tuple[pd.Series, pd.Series]:
    """(codes as text, their value labels or None) of a column."""
    texts = _codes_text(export.frame[column])
    labels = export.value_labels.get(column, {})
    return texts, pd.Series([labels.get(t) if t is not None else None for t in texts], index=texts.index, dtype=object)


def _matches(spec_code, texts: pd.Series, labels: pd.Series) -> pd.Series:
    """Cells whose code or value label is ``spec_code`` (letter case ignored)."""
    want = code_text(spec_code).casefold()
    by_code = texts.map(lambda t: t is not None and t.casefold() == want)
    by_label = labels.map(lambda t: t is not None and str(t).casefold() == want)
    return (by_code | by_label).astype(bool)


def _per_participant(export: Export, column: str, keys: pd.Series, values: pd.Series, role: str) -> pd.Series:
    """One value per participant (by id key): a wide file's row, a long file's first non-missing value; a value
    that changes within a participant of a long file is an InputError naming id, rows and values."""
    frame = pd.DataFrame({"key": keys.to_numpy(), "value": values.to_numpy()})
    frame = frame[frame["key"].notna()]
    present = frame[frame["value"].map(lambda v: code_text(v) not in (None, ""))]
    distinct = present.groupby("key", sort=False)["value"].agg(lambda s: len(set(map(code_text, s))))
    varies = distinct[distinct > 1]
    if len(varies):
        key = varies.index[0]
        rows = np.flatnonzero((keys == key).fillna(False).to_numpy())
        seen = sorted(set(map(code_text, present.loc[present["key"] == key, "value"])))
        raise InputError(
            f"{export.label}, rows {_rows_text(rows)}, column '{column}', values {', '.join(seen)}: {role} changes "
            f"within participant {_cell(_id_at(export, rows[0]))} (rule: one {role} per "
            f"participant); {len(varies) - 1} more participants like this"
        )
    return present.groupby("key", sort=False)["value"].first()


def _id_at(export: Export, row: int):
    """The id written in a row of the export (for error messages)."""
    column = export.id_column if export.id_column in export.frame.columns else export.frame.columns[0]
    return export.frame[column].iloc[row]


def _recode(entry, texts: pd.Series, labels: pd.Series) -> tuple[pd.Series, list[tuple[str, str, int, str]]]:
    """A covariate's values after its recodes: a recode key matches a code or its value label (exactly, or as a
    pattern with * ? [..], e.g. F20* for every ICD-10 F20 code; letter case ignored); an unmatched value is its
    label, or its code. Returns the values and (old, new, count, rule) per change."""
    recode = entry.get("recode", {}) if isinstance(entry, dict) else {}
    exact = {k.casefold(): v for k, v in recode.items() if not re.search(r"[*?\[]", k)}
    patterns = [(k, v) for k, v in recode.items() if re.search(r"[*?\[]", k)]
    out, changes = [], {}
    for text, label in zip(texts, labels):
        if text is None or text == "":
            out.append(None)
            continue
        shown = label if label is not None else text
        new, rule = shown, None
        for candidate in (text, label):
            if candidate is not None and str(candidate).casefold() in exact:
                new, rule = exact[str(candidate).casefold()], f"recode {candidate}"
                break
        else:
            for pattern, value in patterns:
                if any(
                    c is not None and fnmatch.fnmatchcase(str(c).casefold(), pattern.casefold()) for c in (text, label)
                ):
                    new, rule = value, f"recode pattern {pattern}"
                    break
        if rule is None and label is not None:
            rule = "value label"
        if rule is not None:
            old = text if label is None else f"{text} ({label})"
            changes.setdefault((old, code_text(new) if new is not None else None, rule), 0)
            changes[(old, code_text(new) if new is not None else None, rule)] += 1
        out.append(None if new is None else code_text(new))
    return pd.Series(out, index=texts.index, dtype=object), [(o, n, c, r) for (o, n, r), c in changes.items()]


def load_study(spec_path: str | Path, *, registry: dict | None = None) -> Study:
    """Read a study spec and the export(s) it names; return the `Study`: the canonical participants and
    assessments tables, the registry extended by the spec's instruments, the design and the log of every change.
    Nothing is written and the inputs are never modified. A bad spec is a `SettingsError` (one line per problem:
    key, file, nearest columns); data that break it an `InputError` (file, row, column, value, rule)."""
    spec_path = Path(spec_path)
    source = str(spec_path)
    spec = read_spec(spec_path)
    registry = study_registry(spec, source, registry)
    exports = []
    for entry in data_files(spec):
        path = Path(entry["path"])
        path = path if path.is_absolute() else spec_path.parent / path
        if not path.exists():
            raise SettingsError([("data.files", f"file '{entry['path']}' not found (looked for {path})")], source)
        export = read_export(
            path,
            format=entry["format"],
            sep=entry["sep"],
            decimal=entry["decimal"],
            sheet=entry["sheet"],
            layout=entry["layout"],
            label=entry["path"],
        )
        export.id_column = spec["id"]
        exports.append(export)
    problems = _columns_problems(spec, exports)
    if problems:
        raise SettingsError(problems, source)
    return _StudyBuilder(spec, spec_path, exports, registry).build()


def _holder(exports: list[Export], column: str, long_only: bool = False) -> Export:
    """The first export holding ``column`` (every column was checked present by `_columns_problems`)."""
    for export in exports:
        if column in export.frame.columns and (not long_only or export.layout == "long"):
            return export
    raise InputError(f"no file holds column '{column}'")


class _StudyBuilder:
    """Builds a Study from the read exports, step by step: missing codes, ids, arms, participants, assessments."""

    def __init__(self, spec: dict, spec_path: Path, exports: list[Export], registry: dict):
        self.spec, self.path, self.exports, self.registry = spec, spec_path, exports, registry
        self.log = _Log()
        self.visits = spec["visits"]
        self.names = [v["name"] for v in self.visits]
        self.base_i = baseline_index(self.visits)
        self.keys: dict[int, pd.Series] = {}

    def build(self) -> Study:
        from imrstats.trial.design import StudyDesign

        for export in self.exports:
            _blank_missing_codes(self.spec, export, self.mapped_columns(export), self.log)
            self.keys[id(export)] = self.id_keys(export)
        intervention, control = self.arms()
        participants, covariates = self.participants()
        assessments, outcomes = self.assessments()
        self.log_unused_ids()
        arm_labels = {
            code: self.spec["arm"].get("labels", {}).get(role)
            for role, code in (("intervention", intervention), ("control", control))
        }
        design = StudyDesign(
            visits=tuple(n for i, n in enumerate(self.names) if i != self.base_i),
            baseline=self.names[self.base_i],
            intervention=intervention,
            control=control,
            arm_labels={k: v for k, v in arm_labels.items() if v},
            visit_labels={v["name"]: v["label"] for v in self.visits if v.get("label")},
            visit_times={v["name"]: float(v["time"]) for v in self.visits if "time" in v},
        )
        variable_labels = {}
        for export in self.exports:
            variable_labels.update(export.variable_labels)
        return Study(
            spec=self.spec,
            path=self.path,
            participants=participants,
            assessments=assessments,
            registry=self.registry,
            design=design,
            log=self.log.frame(),
            outcomes=tuple(outcomes),
            covariates=tuple(covariates),
            files=tuple(e.path for e in self.exports),
            variable_labels=variable_labels,
        )

    def mapped_columns(self, export: Export) -> list[str]:
        """The columns of ``export`` the spec maps (missing codes apply to these only)."""
        spec = self.spec
        columns = [spec["id"], spec["arm"]["column"], spec.get("site"), spec.get("sessions_attended")]
        columns += [covariate_column(c) for c in spec.get("covariates", [])]
        for entry in spec["outcomes"].values():
            columns += list(entry.get("columns", {}).values()) + [entry.get("column"), entry.get("baseline_column")]
        columns.append(spec["data"].get("visit_column"))
        return [c for c in dict.fromkeys(columns) if c and c in export.frame.columns]

    def id_keys(self, export: Export) -> pd.Series:
        """Each row's id key (`id_key` of `id_spelling`); rows without an id are dropped (logged)."""
        spelled = id_spelling(export.frame[self.spec["id"]])
        blank = (spelled.isna() | (spelled == "")).fillna(True).astype(bool)
        if blank.any():
            rows = np.flatnonzero(blank.to_numpy())
            self.log.add(
                export.label, None, self.spec["id"], None, None, None, f"rows dropped: no id ({_rows_text(rows)})"
            )
        return id_key(spelled.where(~blank))

    # -- arms and participants

    def arms(self) -> tuple[str, str]:
        """The participants (ids of the file holding the arm, in its order) and their arms, decoded; sets
        ``kept`` (id keys of the randomised participants kept), ``spelling`` and ``arm_of``."""
        arm, id_col = self.spec["arm"], self.spec["id"]
        export = self.arm_file = _holder(self.exports, arm["column"])
        keys = self.keys[id(export)]
        if export.layout == "wide":
            dup = (keys.notna() & keys.duplicated(keep=False)).to_numpy()
            if dup.any():
                rows = np.flatnonzero((keys == keys[dup].iloc[0]).fillna(False).to_numpy())
                raise InputError(
                    f"{export.label}, rows {_rows_text(rows)}, column '{id_col}', value "
                    f"{_cell(export.frame[id_col].iloc[rows[0]])}: the id repeats (rule: a wide file has one row per "
                    f"participant; ids are compared after trimming, numeric format and letter case); "
                    f"{int(keys[dup].nunique()) - 1} more repeated ids"
                )
        order = list(dict.fromkeys(keys.dropna()))
        self.spelling = {k: s for k, s in zip(keys, id_spelling(export.frame[id_col])) if pd.notna(k)}
        first_row = {k: i for i, k in reversed(list(enumerate(keys))) if pd.notna(k)}
        texts, labels = _decoded(export, arm["column"])
        label_of = {t: lab for t, lab in zip(texts, labels) if t is not None and lab}
        per = _per_participant(export, arm["column"], keys, texts, "arm")
        codes = pd.Series([per.get(k) for k in order], dtype=object)
        code_labels = codes.map(lambda t: label_of.get(t))
        is_int = _matches(arm["intervention"], codes, code_labels)
        is_ctl = _matches(arm["control"], codes, code_labels)
        is_excl = pd.Series(False, index=codes.index)
        for code in arm.get("exclude", []):
            is_excl |= _matches(code, codes, code_labels)
        no_arm = codes.map(lambda t: t in (None, "")).astype(bool)
        other = ~(is_int | is_ctl | is_excl | no_arm)
        if other.any():
            listed = ", ".join(
                f"{(f'{t} ({label_of[t]})' if t in label_of else t)!r} ({n} participant{'s' if n != 1 else ''}, "
                f"{int((texts == t).sum())} rows)"
                for t, n in codes[other].value_counts().items()
            )
            first = first_row[order[int(np.flatnonzero(other.to_numpy())[0])]]
            raise InputError(
                f"{export.label}, row {first + 1}, column '{arm['column']}': arm value(s) {listed} are neither "
                f"arm.intervention ({arm['intervention']!r}) nor arm.control ({arm['control']!r}) (rule: every arm "
                "value is mapped); map them, or list them under arm.exclude to drop those participants"
            )

        def decoded(mask: pd.Series, role: str) -> str:
            if not mask.any():
                present = ", ".join(sorted({f"{t} ({label_of[t]})" if t in label_of else t for t in codes.dropna()}))
                raise InputError(
                    f"{export.label}, column '{arm['column']}': no participant has arm.{role} {arm[role]!r} "
                    f"(rule: both arms are present; values present: {present})"
                )
            first = codes[mask].iloc[0]
            return label_of.get(first) or first

        intervention, control = decoded(is_int, "intervention"), decoded(is_ctl, "control")
        if intervention == control:
            raise InputError(
                f"{export.label}, column '{arm['column']}': intervention and control are the same arm {intervention!r}"
            )
        for mask, code in ((is_int, intervention), (is_ctl, control)):
            raw = sorted({str(t) for t in codes[mask]})
            if raw != [code]:
                self.log.add(
                    export.label,
                    None,
                    arm["column"],
                    None,
                    "/".join(raw),
                    code,
                    f"arm value {'/'.join(raw)} read as arm {code!r} ({int(mask.sum())} participants)",
                )
        for mask, why in ((no_arm, "no arm value (not randomised?)"), (is_excl, "arm listed under arm.exclude")):
            if mask.any():
                rows = [first_row[order[i]] for i in np.flatnonzero(mask.to_numpy())]
                self.log.add(
                    export.label,
                    None,
                    arm["column"],
                    None,
                    None,
                    None,
                    f"participants dropped: {why} ({int(mask.sum())} participants; rows {_rows_text(rows)})",
                )
        keep = (is_int | is_ctl).to_numpy()
        self.kept = [k for k, ok in zip(order, keep) if ok]
        self.kept_set = set(self.kept)
        self.arm_of = {k: (intervention if i else control) for k, i in zip(order, is_int) if k in self.kept_set}
        return intervention, control

    def participant_values(self, column: str, role: str, numeric: bool = False, entry=None) -> pd.Series:
        """One value per kept participant from ``column``: numbers, or codes decoded and recoded (logged)."""
        export = _holder(self.exports, column)
        if numeric:
            values = _numbers(export, column, role)
        else:
            texts, labels = _decoded(export, column)
            values, changes = _recode(entry if isinstance(entry, dict) else {}, texts, labels)
            for old, new, count, rule in changes:
                self.log.add(export.label, None, column, None, old, new, f"{rule}: {count} rows")
        per = _per_participant(export, column, self.keys[id(export)], values, role)
        return pd.Series([per.get(k) for k in self.kept], dtype=object)

    def participants(self) -> tuple[pd.DataFrame, list[str]]:
        """The canonical participants table and the covariates the spec lists (canonical names)."""
        spec = self.spec
        columns: dict[str, pd.Series] = {}
        covariates = []
        site_column = spec.get("site")
        for entry in spec.get("covariates", []):
            name, column = covariate_name(entry), covariate_column(entry)
            export = _holder(self.exports, column)
            numeric_source = (
                pd.api.types.is_numeric_dtype(export.frame[column])
                and column not in export.value_labels
                and not (isinstance(entry, dict) and entry.get("recode"))
            )
            numeric = name == "age" or (name not in CODED_COLUMNS and name != "site" and numeric_source)
            columns[name] = self.participant_values(column, name, numeric, entry)
            covariates.append(name)
            site_column = column if name == "site" else site_column
        if site_column and "site" not in columns:
            columns["site"] = self.participant_values(site_column, "site")
        if "site" not in columns:
            columns["site"] = pd.Series([ONE_SITE] * len(self.kept), dtype=object)
            self.log.add(
                None, None, "site", None, None, ONE_SITE, f"no site column in the spec: every participant in {ONE_SITE}"
            )
        for name, allowed in CODED_COLUMNS.items():
            if name in columns:
                columns[name] = self.canonical_case(name, columns[name], allowed)
        if spec.get("sessions_attended"):
            columns["sessions_attended"] = self.participant_values(
                spec["sessions_attended"], "sessions_attended", numeric=True
            )
        frame = pd.DataFrame(
            {"id": [self.spelling[k] for k in self.kept], "arm": [self.arm_of[k] for k in self.kept]}, dtype=object
        )
        empty = pd.Series([None] * len(self.kept), dtype=object)
        for name in ("site", "sex", "age", "diagnosis", "sessions_attended", *covariates):
            frame[name] = columns.get(name, empty).to_numpy()
        return _typed_participants(frame), covariates

    def canonical_case(self, name: str, values: pd.Series, allowed) -> pd.Series:
        """A code of a canonical column written in another case (Female) read as the code (female), logged."""
        lowered = {c.casefold(): c for c in allowed}
        after = values.map(lambda v: lowered.get(str(v).casefold(), v) if v is not None else None)
        changed = [(a, b) for a, b in zip(values, after) if a is not None and a != b]
        for (old, new), count in pd.Series(changed, dtype=object).value_counts().items() if changed else []:
            self.log.add(None, None, name, None, old, new, f"written in another case; read as the code ({count} rows)")
        return after

    # -- assessments

    def assessments(self) -> tuple[pd.DataFrame, list[str]]:
        """The long canonical assessments table (id, timepoint, instrument, score), participants in order, visits
        in the spec's order, outcomes in the spec's order; every score checked against its instrument's range."""
        rows: list[tuple] = []  # (id key, visit index, outcome index, score)
        long_visits = {
            id(e): _long_visits(self.spec, e, self.keys[id(e)], self.log) for e in self.exports if e.layout == "long"
        }
        outcomes = []
        for o, (key, entry) in enumerate(self.spec["outcomes"].items()):
            instrument = self.registry[outcome_instrument(key, entry)]
            outcomes.append(instrument.key)
            by_visit = dict(entry.get("columns", {}))
            if entry.get("baseline_column"):
                by_visit[self.names[self.base_i]] = entry["baseline_column"]
            for visit, column in by_visit.items():  # one column per visit: one value per participant
                export = _holder(self.exports, column)
                scores = _numbers(export, column, f"outcomes.{key}")
                kept = self.keys[id(export)].isin(self.kept_set).fillna(False).to_numpy(dtype=bool)
                _range_check(export, column, scores, instrument, kept)
                per = _per_participant(export, column, self.keys[id(export)], scores, f"outcomes.{key} ({visit})")
                v = self.names.index(visit)
                rows += [(k, v, o, per.get(k, np.nan)) for k in self.kept]
            if entry.get("column"):  # a long file: one row per participant and visit
                export = _holder(self.exports, entry["column"], long_only=True)
                scores = _numbers(export, entry["column"], f"outcomes.{key}")
                visit_of, ok = long_visits[id(export)]
                keys = self.keys[id(export)]
                use = ok & keys.isin(self.kept_set).fillna(False).astype(bool)
                if entry.get("baseline_column"):
                    use &= visit_of != self.base_i
                _range_check(export, entry["column"], scores, instrument, use.to_numpy(dtype=bool))
                rows += [(keys.iloc[i], int(visit_of.iloc[i]), o, scores.iloc[i]) for i in np.flatnonzero(use)]
        frame = pd.DataFrame(rows, columns=["key", "v", "o", "score"])
        position = {k: i for i, k in enumerate(self.kept)}
        frame = frame.assign(p=frame["key"].map(position)).sort_values(["p", "v", "o"], kind="stable")
        table = pd.DataFrame(
            {
                "id": [self.spelling[k] for k in frame["key"]],
                "timepoint": [self.names[v] for v in frame["v"]],
                "instrument": [outcomes[o] for o in frame["o"]],
                "score": frame["score"].astype(float).to_numpy(),
            }
        )
        return table.astype(
            {"id": "string", "timepoint": "string", "instrument": "string", "score": "float64"}
        ), outcomes

    def log_unused_ids(self) -> None:
        """Rows whose id is not a kept participant (no arm, an excluded arm, or absent from the file holding the
        arm) are not used: one log row per file says how many."""
        for export in self.exports:
            keys = self.keys[id(export)]
            unused = keys.notna() & ~keys.isin(self.kept_set).fillna(False).astype(bool)
            if unused.any():
                rows = np.flatnonzero(unused.to_numpy())
                self.log.add(
                    export.label,
                    None,
                    self.spec["id"],
                    None,
                    None,
                    None,
                    f"rows not used: {len(rows)} rows of {keys[unused].nunique()} ids that are not kept participants "
                    f"of {self.arm_file.label} (no arm, an excluded arm, or absent there); rows {_rows_text(rows)}",
                )


def _typed_participants(frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical types: text codes as strings, age a float, sessions_attended an integer where every value is
    whole; another covariate a float when every value is a number, else text."""
    out = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        values = frame[col]
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        all_numbers = values.map(lambda v: v is None or isinstance(v, (int, float, np.integer, np.floating))).all()
        if col == "age":
            out[col] = numbers
        elif col == "sessions_attended":
            whole = numbers.dropna().map(float.is_integer).all()
            out[col] = numbers.astype("Int64") if whole else numbers
        elif col not in ("id", "arm", "site", "sex", "diagnosis") and all_numbers:
            out[col] = numbers
        else:
            out[col] = pd.Series([code_text(v) for v in values], index=frame.index, dtype="string")
    return out


def _long_visits(spec: dict, export: Export, keys: pd.Series, log: _Log) -> tuple[pd.Series, pd.Series]:
    """For a long file: each row's visit (its position in the spec's visits; -1 for none) and which rows hold a
    visit and an id. A visit value the spec does not name is an InputError (unless listed under
    data.ignore_visits: those rows are dropped, logged); so is a participant with two rows at one visit."""
    column = spec["data"]["visit_column"]
    visits = spec["visits"]
    texts, labels = _decoded(export, column)
    visit_of = pd.Series(-1, index=texts.index, dtype=int)
    for i, visit in enumerate(visits):
        hit = _matches(visit.get("value", visit["name"]), texts, labels) & (visit_of < 0)
        visit_of[hit.to_numpy()] = i
    ignored = pd.Series(False, index=texts.index)
    for value in spec["data"].get("ignore_visits", []):
        ignored |= _matches(value, texts, labels) & (visit_of < 0)
    blank = texts.map(lambda t: t in (None, "")).astype(bool)
    unknown = (visit_of < 0) & ~ignored & ~blank
    if unknown.any():
        label_of = {t: lab for t, lab in zip(texts, labels) if t is not None and lab}
        counts = texts[unknown].map(lambda t: f"{t} ({label_of[t]})" if t in label_of else t).value_counts()
        listed = ", ".join(f"{v!r} ({n} rows)" for v, n in counts.items())
        first = int(np.flatnonzero(unknown.to_numpy())[0])
        named = ", ".join(f"{v['name']}={v.get('value', v['name'])!r}" for v in visits)
        raise InputError(
            f"{export.label}, row {first + 1}, column '{column}': visit value(s) {listed} name no visit of the spec "
            f"(rule: every visit value is mapped; visits: {named}); add them to visits, or list them under "
            "data.ignore_visits"
        )
    for mask, why in ((ignored, "visit listed under data.ignore_visits"), (blank, "no visit value")):
        if mask.any():
            rows = np.flatnonzero(mask.to_numpy())
            log.add(export.label, None, column, None, None, None, f"rows dropped: {why} ({_rows_text(rows)})")
    ok = ((visit_of >= 0) & keys.notna()).fillna(False).astype(bool)
    pairs = pd.DataFrame({"key": keys, "v": visit_of})[ok]
    dup = pairs.duplicated(keep=False)
    if dup.any():
        key, v = pairs[dup].iloc[0]
        rows = np.flatnonzero(((keys == key) & (visit_of == v)).fillna(False).to_numpy())
        raise InputError(
            f"{export.label}, rows {_rows_text(rows)}, columns '{spec['id']}' and '{column}': participant "
            f"{_cell(_id_at(export, rows[0]))} has {len(rows)} rows at visit '{visits[v]['name']}' (rule: one row "
            f"per participant and visit); {len(pairs[dup].drop_duplicates()) - 1} more such pairs"
        )
    return visit_of, ok


def _range_check(export: Export, column: str, scores: pd.Series, instrument: Instrument, used: np.ndarray) -> None:
    """A score (on a ``used`` row: a kept participant, a mapped visit) outside its instrument's valid range is an
    InputError naming file, row, column, value and rule."""
    relevant = used
    bad = (scores.notna() & ((scores < instrument.min) | (scores > instrument.max))).to_numpy() & relevant
    if not bad.any():
        return
    idx = int(np.flatnonzero(bad)[0])
    raise InputError(
        f"{export.label}, row {idx + 1}, column '{column}', value {_cell(export.frame[column].iloc[idx])}: outside "
        f"{instrument.key}'s valid range {instrument.range_text} (rule: scores lie in the instrument's range; "
        f"{instrument.source}); {int(bad.sum()) - 1} more values outside it; if it stands for a missing value, list "
        "it under missing_codes"
    )


# ---------------------------------------------------------------------------------------------
# The analysis settings a study implies


def study_settings(study: Study) -> dict:
    """The settings a study implies, laid over the shipped config and under the user's own keys
    (`imrstats.config.load_config` with ``data.study``): the trial's design (visits, baseline visit, arm codes
    and labels, visit labels), its outcomes and covariates, the instruments the spec declares, and the analysis
    lists of the trial stage narrowed to what the study has:

    - the primary outcome is the spec's first outcome, at the last visit;
    - every outcome gets the ITT, complete-case, likelihood MMRM, diagnostics and within-group analyses;
    - the primary outcome gets the tipping-point analysis, and, when the spec maps session attendance, the
      per-protocol and attendance analyses; subgroups are those of sex and diagnosis the spec maps;
    - the IMR trial's own extras (random-intercept model, subscale families) are off;
    - the trial is not set among the published IMR evidence (``evidence.enabled`` false): its outcomes and
      visits are not the published ones.

    Any of these the user sets in their config wins."""
    design = study.design
    outcomes = list(study.outcomes)
    primary = outcomes[0]
    sessions = (
        "sessions_attended" in study.participants.columns and study.participants["sessions_attended"].notna().any()
    )
    subgroups = [c for c in ("diagnosis", "sex") if c in study.covariates]
    trial = {
        "visits": list(design.visits),
        "baseline_visit": design.baseline,
        "arms": {"intervention": design.intervention, "control": design.control, "labels": dict(design.arm_labels)},
        "visit_labels": dict(design.visit_labels),
        "outcomes": outcomes,
        "primary": {"outcome": primary, "timepoint": design.visits[-1]},
        "covariates": list(study.covariates),
        "instruments": {key: dict(entry) for key, entry in (study.spec.get("instruments") or {}).items()},
        "per_protocol_outcomes": [primary] if sessions else [],
        "attendance_outcomes": [primary] if sessions else [],
        "subgroups": subgroups,
        "subgroup_outcomes": [primary] if subgroups else [],
        "subgroup_mi_outcomes": [primary] if subgroups else [],
        "subgroup_timepoint": None,
        "attendance_timepoint": None,
        "tipping_outcomes": [primary],
        "random_intercept_outcomes": [],
        "diagnostics_outcomes": outcomes,
        "within_group_outcomes": outcomes,
        "subscale_ancova_outcomes": [],
        "subscale_itt_outcomes": [],
        "auxiliary_baselines": [],
    }
    return {"trial": trial, "evidence": {"enabled": False}}
