"""Clean checked input tables into the canonical, typed tables, logging every change.

What `clean` does, in order (each change is one row of the cleaning log):
1. types each column by the table schema (workflow/schemas/tables.schema.yaml); text is trimmed and a
   code written in another case ("Female") is read as the code ("female"); a number written with a
   decimal comma ("40,5") is read as 40.5 (logged; "1,000" is ambiguous and refused by check);
   ids are written one way in every table (`check.id_spelling`: trimmed, a whole number stored as 1001.0
   written 1001); an assessment or service-use id that matches a participant only after normalisation
   (letter case, Unicode form; `check.id_key`) is written in the participants table's spelling. Each kind
   of id change is one count row of the log (never an id);
2. replaces missing-value codes by missing, each logged: configured ones (`clean.missing_codes`, e.g. -99,
   999), the user-missing codes an SPSS file declares, and per instrument
   `clean.missing_codes_by_instrument`. On assessments' score a table-wide or declared code inside the
   row's instrument's valid range is kept as a score unless confirmed for that instrument (a count row
   of the log says how many were kept);
3. scores item-level scales into totals and subscales with the instrument registry. Prorating rule: a
   total (or subscale) with at most `prorate_max_missing` missing items (registry) is the mean of the
   answered items times the number of items, rounded half up to a whole number; with more missing items
   it is missing. A total reported in the input is kept; if its items give another value, the log says so.
Inputs are never modified: the function works on copies and returns new frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from imrstats.core.io import declared_missing_mask
from imrstats.data.check import (
    check_codes_by_instrument,
    check_tables,
    decimal_comma_mask,
    has_errors,
    id_key,
    id_spelling,
    missing_code_mask,
    parse_column,
    table_schemas,
)
from imrstats.data.instruments import Instrument, load_registry
from imrstats.errors import InputError

LOG_COLUMNS = ["table", "row", "id", "timepoint", "instrument", "column", "old_value", "new_value", "rule"]


@dataclass(frozen=True)
class CleanResult:
    tables: dict[str, pd.DataFrame]  # participants, assessments (scale level), assessment_items, ...
    log: pd.DataFrame  # one row per changed or derived value


def _log_row(table, row=None, id=None, timepoint=None, instrument=None, column=None, old=None, new=None, rule=""):
    def fmt(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)

    return {
        "table": table,
        "row": row,
        "id": id,
        "timepoint": timepoint,
        "instrument": instrument,
        "column": column,
        "old_value": fmt(old),
        "new_value": fmt(new),
        "rule": rule,
    }


def canonical_ids(name: str, frame: pd.DataFrame, spelling_of: dict | None, log: list) -> pd.Series | None:
    """The table's ids as the canonical tables write them, with one count row in the log per kind of change
    (whitespace, numeric format, the participants table's spelling); no id is written to the log."""
    if "id" not in frame.columns:
        return None
    raw = frame["id"]
    spelled = id_spelling(raw)
    canonical = spelled
    if spelling_of is not None and name in ("assessments", "service_use"):
        mapped = id_key(spelled).map(lambda k: spelling_of.get(k, pd.NA) if pd.notna(k) else pd.NA)
        canonical = mapped.astype("string").fillna(spelled)
    numeric = pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw)
    as_text = raw.astype("string")
    stripped = as_text.str.strip()

    def count(mask) -> int:
        return int(pd.Series(mask).fillna(False).astype(bool).sum())

    changes = [
        (0 if numeric else count(as_text != stripped), "trimmed of surrounding whitespace"),
        (
            count(stripped != spelled),
            "stored as a whole number with a decimal part (1001.0) written as the whole number (1001)",
        ),
        (
            count(spelled != canonical),
            "written in the participants table's spelling: they matched a participant only after normalisation "
            "(letter case or Unicode form)",
        ),
    ]
    for n, what in changes:
        if n:
            log.append(_log_row(name, column="id", rule=f"id normalised: {n} ids {what}"))
    return canonical


def type_table(
    name: str,
    frame: pd.DataFrame,
    schema: dict,
    codes: list,
    log: list,
    *,
    by_instrument: dict | None = None,
    spelling_of: dict | None = None,
    registry: dict | None = None,
) -> pd.DataFrame:
    """Typed copy of one table with ids written one way, missing codes applied and code case normalised
    (every change logged). ``registry``: the instruments whose ranges decide a missing code on a score
    (default: the package's registry)."""
    out = {}
    canonical = canonical_ids(name, frame, spelling_of, log)
    ids = canonical if canonical is not None else pd.Series([None] * len(frame))
    extra = {}
    if name == "assessments":
        extra = {"timepoint": frame.get("timepoint"), "instrument": frame.get("instrument")}
    for col, rule in schema["columns"].items():
        if col not in frame.columns:
            continue
        raw = frame[col]
        values = raw
        is_code, kept, numeric = missing_code_mask(name, frame, col, rule["type"], codes, by_instrument, registry)
        declared = declared_missing_mask(numeric, (frame.attrs.get("declared_missing") or {}).get(col, []))
        for k in kept:
            log.append(_log_row(name, instrument=k.instrument, column=col, old=k.code, new=k.code, rule=k.text))
        if is_code.any():
            is_code = is_code.to_numpy()
            for idx in np.flatnonzero(is_code):
                source = (
                    "; declared user-missing in the file"
                    if declared.iloc[idx]
                    else ""
                    if numeric.iloc[idx] in codes
                    else "; clean.missing_codes_by_instrument"
                )
                log.append(
                    _log_row(
                        name,
                        idx + 1,
                        ids.iloc[idx],
                        *(
                            str(extra[k].iloc[idx]) if extra.get(k) is not None else None
                            for k in ("timepoint", "instrument")
                        ),
                        col,
                        raw.iloc[idx],
                        None,
                        f"missing-value code {numeric.iloc[idx]:g} set to missing{source}",
                    )
                )
            values = raw.where(~is_code)
        parsed, bad = parse_column(values, rule["type"])
        if rule["type"] in ("number", "integer"):
            for idx in np.flatnonzero((decimal_comma_mask(values) & ~bad).to_numpy()):
                log.append(
                    _log_row(
                        name,
                        idx + 1,
                        ids.iloc[idx],
                        *(
                            str(extra[k].iloc[idx]) if extra.get(k) is not None else None
                            for k in ("timepoint", "instrument")
                        ),
                        col,
                        raw.iloc[idx],
                        parsed.iloc[idx],
                        "decimal comma read as a decimal point",
                    )
                )
        if bad.any():
            idx = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{frame.attrs.get('source', name)}, row {idx + 1}, column '{col}', value "
                f"{raw.iloc[idx]!r}: not a {rule['type']}; run `imrstats check` for the full problem list"
            )
        if "codes" in rule:
            lookup = {str(c).lower(): c for c in rule["codes"]}
            normalised = parsed.map(lambda v: lookup.get(str(v).lower(), v) if pd.notna(v) else v)
            for idx in np.flatnonzero((normalised != parsed).fillna(False).to_numpy()):
                log.append(
                    _log_row(
                        name,
                        idx + 1,
                        ids.iloc[idx],
                        None,
                        None,
                        col,
                        parsed.iloc[idx],
                        normalised.iloc[idx],
                        "code written in another case; read as the code",
                    )
                )
            parsed = normalised
        if col == "id" and canonical is not None:
            parsed = canonical.where(parsed.notna())
        out[col] = _final_dtype(parsed, rule["type"])
    return pd.DataFrame(out)


def _final_dtype(series: pd.Series, kind: str) -> pd.Series:
    if kind == "integer":
        return series.astype("Int64")
    if kind == "number":
        return series.astype("float64")
    if kind == "boolean":
        return series.astype("boolean")
    if kind == "date":
        return pd.to_datetime(series).dt.normalize()
    return series.astype("string")


def round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(x, dtype=float) + 0.5)


def score_scale(
    items: pd.DataFrame, item_keys: tuple[str, ...], max_missing: int, prorate: bool
) -> tuple[pd.Series, pd.Series]:
    """Totals of `item_keys` per row of a wide item frame; returns (score, number of missing items).

    A row with all items is their sum; with 1..max_missing missing (and prorate on) it is the prorated,
    rounded total; otherwise missing."""
    block = items.reindex(columns=list(item_keys))
    n_missing = block.isna().sum(axis=1)
    k = len(item_keys)
    full = block.sum(axis=1, min_count=k)
    prorated = pd.Series(round_half_up(block.mean(axis=1) * k), index=block.index)
    allowed = max_missing if prorate else 0
    score = full.where(n_missing == 0, prorated.where((n_missing > 0) & (n_missing <= allowed) & (n_missing < k)))
    return score, n_missing


def score_items(
    assessments: pd.DataFrame, registry: dict[str, Instrument], prorate: bool, log: list
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split item rows from scale rows and score totals / subscales from the items.

    Returns (scale-level assessments, item rows)."""
    item_owner = {it.key: inst.key for inst in registry.values() for it in inst.items}
    is_item = assessments["instrument"].isin(item_owner)
    items_long = assessments[is_item].copy()
    scales = assessments[~is_item].copy()
    if items_long.empty:
        return scales.reset_index(drop=True), items_long.reset_index(drop=True)
    wide = items_long.pivot_table(
        index=["id", "timepoint"], columns="instrument", values="score", aggfunc="first", dropna=False
    )
    # (id, timepoint, instrument) -> reported score; check_tables refuses a key given twice
    reported = dict(zip(zip(scales["id"], scales["timepoint"], scales["instrument"]), scales["score"]))
    if len(reported) < len(scales):
        raise InputError("assessments: an (id, timepoint, instrument) key twice after cleaning; run `imrstats check`")
    parents = sorted({item_owner[k] for k in items_long["instrument"].unique()})
    new_rows = []
    for parent in parents:
        inst = registry[parent]
        targets = [(parent, tuple(it.key for it in inst.items), inst.prorate_max_missing)]
        targets += [(s, registry[s].item_keys_in_parent, registry[s].prorate_max_missing) for s in inst.subscales]
        present = wide.columns.intersection([it.key for it in inst.items])
        rows_with_items = wide[present].notna().any(axis=1)
        sub = wide[rows_with_items]
        for key, keys, max_missing in targets:
            score, n_missing = score_scale(sub, keys, max_missing, prorate)
            for (pid, tp), value, miss in zip(sub.index, score, n_missing):
                rep = reported.get((pid, tp, key), None)
                if rep is not None and pd.notna(rep):
                    if pd.notna(value) and value != rep:
                        log.append(
                            _log_row(
                                "assessments",
                                None,
                                pid,
                                tp,
                                key,
                                "score",
                                rep,
                                rep,
                                f"reported total kept; its items give {value:g}",
                            )
                        )
                    continue
                if pd.isna(value):
                    allowed = max_missing if prorate else 0
                    rule = f"not scored: {miss} of {len(keys)} items missing (at most {allowed} allowed)"
                elif miss:
                    rule = f"scored from items, prorated over {miss} missing of {len(keys)}"
                else:
                    rule = f"scored from {len(keys)} items"
                log.append(_log_row("assessments", None, pid, tp, key, "score", None, value, rule))
                new_rows.append((pid, tp, key, value))
    derived = pd.DataFrame(new_rows, columns=["id", "timepoint", "instrument", "score"])
    scales = pd.concat([scales, derived], ignore_index=True)
    return scales, items_long.reset_index(drop=True)


def clean_tables(
    tables: dict[str, pd.DataFrame],
    *,
    missing_codes: dict | None = None,
    prorate: bool = True,
    allow_identifier_columns=(),
    missing_codes_by_instrument: dict | None = None,
    design=None,
    registry: dict | None = None,
    problems: list | None = None,
) -> CleanResult:
    """Typed canonical tables and the cleaning log. Refuses input that `check` finds errors in.

    ``design`` (an `imrstats.trial.design.StudyDesign`, e.g. a study spec's) sets the arm codes and visits
    the tables may hold and the order of visits in the cleaned assessments; ``registry`` the instruments
    (e.g. extended by a study spec's). Without them, the IMR trial's codes and the package's registry.
    ``problems``: what `check_tables` found on these same tables with these same settings, when the caller
    has just checked them (the workflow's one data job); None checks them here."""
    missing_codes = missing_codes or {}
    registry = load_registry() if registry is None else registry
    by_instrument = check_codes_by_instrument(missing_codes_by_instrument, registry)
    if problems is None:
        problems = check_tables(
            tables,
            missing_codes=missing_codes,
            missing_codes_by_instrument=by_instrument,
            allow_identifier_columns=allow_identifier_columns,
            design=design,
            registry=registry,
        )
    if has_errors(problems):
        errors = [str(p) for p in problems if p.severity == "error"]
        raise InputError(
            "input has errors; nothing was cleaned:\n  "
            + "\n  ".join(errors[:20])
            + (f"\n  ... and {len(errors) - 20} more (run `imrstats check`)" if len(errors) > 20 else "")
        )
    schemas = table_schemas(design)
    log: list[dict] = []
    out: dict[str, pd.DataFrame] = {}
    spelling_of = None
    if "participants" in tables and "id" in tables["participants"].columns:
        spelled = id_spelling(tables["participants"]["id"])
        spelling_of = {k: v for k, v in zip(id_key(spelled), spelled) if pd.notna(k)}
    for name, frame in tables.items():
        out[name] = type_table(
            name,
            frame,
            schemas[name],
            list(missing_codes.get(name, [])),
            log,
            by_instrument=by_instrument,
            spelling_of=spelling_of,
            registry=registry,
        )
    if "assessments" in out:
        scales, items = score_items(out["assessments"], registry, prorate, log)
        visits = ("baseline", "post", "fu12") if design is None else tuple(str(v) for v in design.all_visits)
        order = {visit: i for i, visit in enumerate(visits)}
        scales = (
            scales.assign(_t=scales["timepoint"].map(order))
            .sort_values(["id", "_t", "instrument"])
            .drop(columns="_t")
            .reset_index(drop=True)
        )
        out["assessments"] = scales.astype(
            {"id": "string", "timepoint": "string", "instrument": "string", "score": "float64"}
        )
        out["assessment_items"] = items
    log_frame = pd.DataFrame(log, columns=LOG_COLUMNS)
    log_frame["row"] = log_frame["row"].astype("Int64")
    return CleanResult(out, log_frame)
