"""Draft a study spec from a trial team's export (`imrstats init DATAFILE`).

The draft is a starting point, not a decision: every key the file does not state outright is a guess, written
with a YAML comment ``# guess: ... because ...`` for the user to confirm. The guesses:

- layout: long when a visit column is found and ids repeat, else wide;
- id: a column named like id / pid / subject / patient / participant (unique per row in a wide file);
- arm: a column named like arm / group / treat / randomi* / therapy / allocation with 2-3 distinct values;
  value labels (SPSS / Stata) or words (IMR, intervention, drug, active vs control, TAU, usual, placebo) decide
  which is the intervention, else the first code (1 before 2; 1 before 0);
- visits: wide column names ending in a visit (``_t0/_t1``, ``_bl/_w4/_w8``, ``_baseline/_post/_fu12``,
  ``_v1.._v6``, ``_m6``), in order of their time (weeks, months) or number; in a long file the visit column's
  values; a baseline held in its own column (BASVAL) when one is constant within each participant and tracks
  an outcome;
- outcomes: matched to a registry instrument by name when every observed value lies in its range, else declared
  as a new instrument with the observed range (direction unknown: marked);
- covariates: sex, age, diagnosis, site by name, with recodes (ICD-10 F20* -> schizophrenia, ...; sex by the
  labels' first letter, or 1 = male, 2 = female when unlabelled, marked);
- missing codes: -99, 999, -9 and the like when present and outside the column's plausible range.

`draft_spec` returns the YAML text; `write_draft` writes it (never over an existing file unless ``force``). The
draft loads with `imrstats.data.study.load_study` on the same file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from imrstats.data.check import id_key, id_spelling
from imrstats.data.instruments import load_registry
from imrstats.data.study import CODED_COLUMNS, code_text, guess_format, guess_separator, read_export
from imrstats.errors import InputError

ID_NAME = re.compile(
    r"^(id|pid|sid|subj|subject|subjid|subject_?id|usubjid|patient|patient_?(id|no|nr|number)|pt_?(id|no)|"
    r"participant|participant_?id|record_?id|case_?id|person_?id|study_?id|randno|rand_?(id|no))$"
)
ARM_NAME = re.compile(r"(^|_)(arm|group|grp|treat\w*|trt\w*|tx|randomi\w*|therapy|allocation|alloc|condition)($|_)")
VISIT_NAME = re.compile(r"^(a?visit\w*|avisitn?|visitnum|timepoint|time_?point|tp|time|week|wave|occasion|event\w*)$")
BASELINE_NAME = re.compile(r"^(basval|base|baseline|bl|base_?val\w*|\w+_(bl|base|baseline))$")
TIME_LIKE = re.compile(r"(day|date|time|reldays|weeks?$)")
SITE_NAME = re.compile(
    r"^(site|centre|center|clinic|hospital|unit|team|region|location|poolinv|pooled_?inv\w*|inv|invid)$"
)
SEX_NAME = re.compile(r"^(sex|gender|kon|koen|male|female)$")
AGE_NAME = re.compile(r"^(age|alder|age_?(years|yrs|at_\w+|bl|baseline))$")
DIAGNOSIS_NAME = re.compile(r"^(diag\w*|icd\w*|dx\w*)$")
SESSIONS_NAME = re.compile(r"^(sessions\w*|n_?sessions|sessions_?attended|attended|attendance|sess)$")
# a column name's visit suffix, after _ . or -: t0, bl, baseline, pre, post, fu12, w4, wk4, week4, m6, 6m, v1, visit1
VISIT_SUFFIX = re.compile(
    r"^(?P<stem>.+?)[_.\-](?P<visit>t\d+|bl|baseline|base|pre|post|fu\d*|followup\d*|w\d+|wk\d+|week\d+|m\d+|mo\d+|"
    r"month\d+|\d+m|\d+w|y\d+|v\d+|visit\d+)$",
    re.IGNORECASE,
)
MISSING_CODE_CANDIDATES = (-99, -98, -97, -96, -999, -9999, -9, -8, -7, 99, 98, 97, 999, 998, 9999, 888, 777)
INTERVENTION_WORDS = re.compile(r"imr|interv|treat|active|drug|experiment|program|exp\b", re.IGNORECASE)
CONTROL_WORDS = re.compile(r"control|tau|usual|placebo|standard|wait|cau|sham|pbo|ctrl", re.IGNORECASE)
ICD10_DIAGNOSIS = (
    ("F20*", "schizophrenia"),
    ("F21*", "schizophrenia"),
    ("F22*", "delusional"),
    ("F25*", "schizoaffective"),
    ("F31*", "bipolar"),
    ("F32*", "depression"),
    ("F33*", "depression"),
    ("*", "other"),
)
YAML_WORDS = {"yes", "no", "true", "false", "on", "off", "null", "y", "n", "~"}


def snake(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(text).strip().lower()).strip("_")


def yaml_scalar(value) -> str:
    """A value as a YAML scalar: numbers as numbers, plain identifiers as they are, other text double-quoted."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", text) and text.lower() not in YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


@dataclass
class Column:
    """What the draft knows of one column."""

    name: str
    numeric: bool
    numbers: pd.Series  # the cells as numbers (NaN where not a number or missing)
    texts: pd.Series  # the cells as code text
    labels: dict[str, str]  # value labels
    label: str = ""  # variable label
    declared: pd.Series | None = None  # cells the file declares user-missing (SPSS)


@dataclass
class Draft:
    """The drafted keys and the guesses behind them (`draft_spec` renders it as YAML)."""

    lines: list[str] = field(default_factory=list)
    guesses: int = 0

    def add(self, line: str, guess: str | None = None) -> None:
        if guess:
            self.guesses += 1
            line = f"{line}  # guess: {guess}"
        self.lines.append(line)


def _profile(export) -> dict[str, Column]:
    out = {}
    for name in export.frame.columns:
        values = export.frame[name]
        texts = pd.Series([code_text(v) for v in values], index=values.index, dtype=object)
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = pd.to_numeric(values, errors="coerce").astype(float)
        else:
            t = texts.map(lambda v: v.replace(",", ".") if isinstance(v, str) and export.decimal == "," else v)
            numbers = pd.to_numeric(t, errors="coerce").astype(float)
        present = texts.map(lambda v: v not in (None, ""))
        numeric = bool(present.any()) and bool(numbers[present].notna().all())
        declared = pd.Series(False, index=values.index)
        for lo, hi in export.declared_missing.get(name, []):
            declared |= ((numbers >= lo) & (numbers <= hi)).fillna(False)
        out[name] = Column(
            name,
            numeric,
            numbers,
            texts,
            export.value_labels.get(name, {}),
            export.variable_labels.get(name, ""),
            declared.astype(bool),
        )
    return out


def _decimal_comma(export) -> bool:
    """A CSV file whose numbers are written with a decimal comma (12,5) and no thousands form (1,000)."""
    if export.format != "csv":
        return False
    cells = export.frame.astype("string").stack()
    comma = cells.str.fullmatch(r"[+-]?\d+,\d+")
    return bool(comma.sum()) and not bool(cells.str.fullmatch(r"[+-]?\d{1,3}(,\d{3})+").sum() == comma.sum())


def _distinct(col: Column) -> list[str]:
    return sorted({t for t in col.texts if t not in (None, "")}, key=_sort_key)


def _sort_key(text: str):
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _constant_within(col: Column, keys: pd.Series) -> bool:
    frame = pd.DataFrame({"k": keys, "v": col.texts}).dropna()
    frame = frame[frame["v"] != ""]
    return bool((frame.groupby("k")["v"].nunique() <= 1).all())


def _visit_time(token: str) -> tuple[int, float, str | None]:
    """(rank, time, unit) of a visit token: the baseline first, then by time (weeks; months as 52/12 weeks) or
    number, 'post' before the follow-ups."""
    t = token.lower()
    if t in ("bl", "baseline", "base", "pre"):
        return (0, 0.0, "baseline")
    for pattern, unit, factor in (
        (r"(?:w|wk|week)(\d+)|(\d+)w", "weeks", 1.0),
        (r"(?:m|mo|month)(\d+)|(\d+)m", "months", 52 / 12),
        (r"y(\d+)", "years", 52.0),
    ):
        m = re.fullmatch(pattern, t)
        if m:
            number = float(next(g for g in m.groups() if g is not None))
            return (1, number * factor, unit)
    m = re.fullmatch(r"(?:t|v|visit)(\d+)", t)
    if m:
        return (1, float(m.group(1)), None)
    if t == "post":
        return (2, 0.0, None)
    m = re.fullmatch(r"(?:fu|followup)(\d*)", t)
    if m:
        return (3, float(m.group(1) or 0), None)
    return (4, 0.0, None)


def _match_instrument(stem: str, observed: tuple[float, float] | None, registry):
    """The registry instrument a column stem names (by key or short name, letters and digits only), when every
    observed value lies in its range."""

    def norm(text):
        return re.sub(r"[^a-z0-9]", "", str(text).lower())

    wanted = norm(stem)
    for suffix in ("total", "tot", "score", "sum", "tl"):
        if wanted.endswith(suffix) and len(wanted) > len(suffix) + 2:
            wanted = wanted[: -len(suffix)]
            break
    for key, inst in registry.items():
        if wanted in (norm(key), norm(inst.short)):
            if observed is None or (inst.min <= observed[0] and observed[1] <= inst.max):
                return inst
    return None


def _codes_in(col: Column, plausible: tuple[float, float] | None) -> list:
    """Missing-value codes present in a numeric column and outside its plausible range (the instrument's, else
    that of the column's other values)."""
    present = set(col.numbers[~col.declared].dropna().unique())
    candidates = [c for c in MISSING_CODE_CANDIDATES if c in present]
    if not candidates:
        return []
    others = col.numbers[~col.numbers.isin(candidates)].dropna()
    if plausible is None:
        if others.empty:
            return []
        plausible = (float(others.min()), float(others.max()))
    return sorted(c for c in candidates if c < plausible[0] or c > plausible[1])


def _arm_guess(col: Column) -> tuple[str, str, list[str], str]:
    """(intervention, control, other values, why) for an arm column, in the values the spec will name: value
    labels when the file has them, else the codes."""
    values = _distinct(col)
    shown = [col.labels.get(v, v) for v in values]
    counts = {s: int((col.texts.map(lambda t: col.labels.get(t, t)) == s).sum()) for s in shown}
    interv = [s for s in shown if INTERVENTION_WORDS.search(str(s)) and not CONTROL_WORDS.search(str(s))]
    ctrl = [s for s in shown if CONTROL_WORDS.search(str(s))]
    if len(shown) == 2 and len(ctrl) == 1 and not interv:
        interv = [s for s in shown if s != ctrl[0]]
    if len(shown) == 2 and len(interv) == 1 and not ctrl:
        ctrl = [s for s in shown if s != interv[0]]
    if len(interv) == 1 and len(ctrl) == 1:
        what = "label" if col.labels else "value"
        why = f"the {what}s name the control ({ctrl[0]}) and the intervention ({interv[0]})"
        rest = [s for s in shown if s not in (interv[0], ctrl[0])]
        return interv[0], ctrl[0], rest, f"{why}; CONFIRM"
    ordered = sorted(shown, key=lambda s: -counts[s])[:2] if len(shown) > 2 else shown
    ordered = sorted(ordered, key=_sort_key)
    if [str(s) for s in ordered] == ["0", "1"]:
        ordered = ordered[::-1]
    rest = [s for s in shown if s not in ordered]
    why = f"{ordered[0]} is taken as the intervention and {ordered[1]} as control only by their order; CONFIRM"
    return ordered[0], ordered[1], rest, why


def _sex_recode(col: Column) -> tuple[dict, str]:
    recode, how = {}, []
    for value in _distinct(col):
        shown = col.labels.get(value, value)
        first = str(shown).strip().lower()[:1]
        if first in ("f", "w", "k"):
            recode[shown] = "female"
        elif first == "m":
            recode[shown] = "male"
        elif value in ("1", "2", "0") and not col.labels:
            recode[value] = {"1": "male", "2": "female", "0": "female"}[value]
            how.append(value)
    why = (
        f"codes {', '.join(how)} have no labels: 1 = male, 2 = female (0 = female) is only a convention; CONFIRM"
        if how
        else "by the first letter of each value (F/W/K female, M male)"
    )
    return recode, why


def _diagnosis_recode(col: Column) -> tuple[dict, str]:
    values = [col.labels.get(v, v) for v in _distinct(col)]
    if values and sum(bool(re.match(r"^F\d\d", str(v), re.IGNORECASE)) for v in values) >= len(values) / 2:
        return (
            dict(ICD10_DIAGNOSIS),
            (
                "the values look like ICD-10 codes: F20/F21 schizophrenia, F22 delusional, F25 schizoaffective, "
                "F31 bipolar, F32/F33 depression, the rest other"
            ),
        )
    recode = {}
    for v in values:
        low = str(v).lower()
        for word, code in (
            ("schizoaff", "schizoaffective"),
            ("schizo", "schizophrenia"),
            ("bipolar", "bipolar"),
            ("depress", "depression"),
            ("delusion", "delusional"),
        ):
            if word in low:
                recode[str(v)] = code
                break
        else:
            if low not in CODED_COLUMNS["diagnosis"]:
                recode[str(v)] = "other"
    return recode, "by the words of each value; anything else is other"


def draft_spec(datafile: str | Path, spec_path: str | Path | None = None, *, registry=None) -> Draft:
    """A drafted study spec for ``datafile`` (its path written relative to ``spec_path``'s folder), as a
    `Draft` whose ``lines`` are the YAML text and ``guesses`` the number of guesses to confirm."""
    datafile = Path(datafile)
    registry = registry or load_registry()
    fmt = guess_format(datafile)
    sep = None
    if fmt == "csv":
        head = datafile.read_bytes()[:65536].decode("utf-8-sig", errors="replace").splitlines()
        sep = guess_separator(head[0]) if head else ","
    export = read_export(datafile, format=fmt, sep=sep)
    if export.frame.empty:
        raise InputError(f"{datafile}: no data rows: nothing to draft a spec from")
    if _decimal_comma(export):
        export.decimal = ","
    cols = _profile(export)
    names = list(cols)
    snake_of = {n: snake(n) for n in names}
    d = Draft()
    target = Path(spec_path) if spec_path else datafile.parent / "study.yaml"
    relative = os.path.relpath(datafile.resolve(), target.resolve().parent)
    if relative.startswith(".."):  # the data lie outside the spec's folder: name them in full
        relative = str(datafile.resolve())
    d.add(f"# imrstats study spec drafted by `imrstats init` from {datafile.name} (docs/study_spec.md, key by key).")
    d.add("# A line whose comment begins 'guess:' holds a guess: confirm or correct it, then run")
    d.add("# `imrstats check --study SPEC` and `imrstats trial --study SPEC` (paths are relative to this file).")

    # id
    def unique(n):
        keys = id_key(id_spelling(export.frame[n]))
        return keys.notna().all() and not keys.duplicated().any()

    named_ids = [n for n in names if ID_NAME.match(snake_of[n])]
    id_col = next((n for n in named_ids if unique(n)), None)
    id_why = "named like an id and unique in every row"
    if id_col is None and named_ids:
        id_col, id_why = named_ids[0], "named like an id (it repeats: one row per visit)"
    if id_col is None:
        id_col = next((n for n in names if unique(n)), names[0])
        id_why = "the first column unique in every row (no column is named like an id)"
    keys = id_key(id_spelling(export.frame[id_col]))
    repeats = bool(keys.duplicated().any())

    # layout and visit column
    visit_col = None
    if repeats:
        for n in names:
            if n != id_col and VISIT_NAME.match(snake_of[n]) and 2 <= len(_distinct(cols[n])) <= 24:
                visit_col = n
                break
    layout = "long" if visit_col else "wide"
    used = {id_col} | ({visit_col} if visit_col else set())

    # arm
    arm_col, arm_col_why = None, "named like an arm column, with {} values"
    for n in names:
        if n in used or not ARM_NAME.search(snake_of[n]):
            continue
        if 2 <= len(_distinct(cols[n])) <= 3 and (layout == "wide" or _constant_within(cols[n], keys)):
            arm_col = n
            break
    if arm_col is None:
        candidates = [n for n in names if n not in used and len(_distinct(cols[n])) == 2]
        if not candidates:
            raise InputError(
                f"{datafile}: no column looks like the arm (named like arm/group/treat/randomi*/therapy with 2-3 "
                "values); write the spec's arm key by hand (docs/study_spec.md)"
            )
        arm_col, arm_col_why = candidates[0], "no column is named like an arm: the first with {} values; CONFIRM"
    used.add(arm_col)

    # covariates by name
    def find(pattern):
        for n in names:
            if n not in used and pattern.match(snake_of[n]) and (layout == "wide" or _constant_within(cols[n], keys)):
                return n
        return None

    site_col = find(SITE_NAME)
    used |= {site_col} - {None}
    sex_col = find(SEX_NAME)
    used |= {sex_col} - {None}
    age_col = find(AGE_NAME)
    used |= {age_col} - {None}
    diag_col = find(DIAGNOSIS_NAME)
    used |= {diag_col} - {None}
    sessions_col = find(SESSIONS_NAME)
    used |= {sessions_col} - {None}

    # outcomes and visits
    outcome_columns: dict[str, dict[str, str]] = {}  # stem -> {visit token: column}
    visit_tokens: list[str] = []
    baseline_col = None
    if layout == "wide":
        for n in names:
            m = VISIT_SUFFIX.match(n)
            if n in used or not m or not cols[n].numeric:
                continue
            outcome_columns.setdefault(m.group("stem"), {})[m.group("visit").lower()] = n
        outcome_columns = {s: v for s, v in outcome_columns.items() if len(v) >= 2}
        if not outcome_columns:
            raise InputError(
                f"{datafile}: no outcome columns with a visit in their name (gaf_t0, gaf_t1, ...: a stem, then _ and "
                "a visit such as t0, bl, w4, m6, post, fu12, v1); write the spec's visits and outcomes by hand"
            )
        visit_tokens = sorted({t for v in outcome_columns.values() for t in v}, key=_visit_time)
    else:
        for n in names:
            if n in used or not cols[n].numeric or not BASELINE_NAME.match(snake_of[n]):
                continue
            if _constant_within(cols[n], keys):
                baseline_col = n
                break
        used |= {baseline_col} - {None}
        for n in names:
            if n in used or not cols[n].numeric or TIME_LIKE.search(snake_of[n]):
                continue
            if not _constant_within(cols[n], keys):
                outcome_columns[n] = {}
        if not outcome_columns:
            raise InputError(f"{datafile}: no numeric column varies within participants: no outcome to draft")

    # missing codes and observed ranges
    def observed(columns: list[str], codes_by_column: dict) -> tuple[float, float] | None:
        values = pd.concat(
            [cols[c].numbers[~cols[c].numbers.isin(codes_by_column.get(c, [])) & ~cols[c].declared] for c in columns]
        ).dropna()
        return (float(values.min()), float(values.max())) if len(values) else None

    codes_by_column: dict[str, list] = {}
    outcome_instrument: dict[str, object] = {}
    for stem, by_visit in outcome_columns.items():
        columns = list(by_visit.values()) or [stem]
        raw_range = observed(columns, {})
        inst = _match_instrument(stem, raw_range, registry)
        first_try = None if inst is None else (inst.min, inst.max)
        for c in columns:
            codes = _codes_in(cols[c], first_try)
            if codes:
                codes_by_column[c] = codes
        if inst is None:
            inst = _match_instrument(stem, observed(columns, codes_by_column), registry)
        outcome_instrument[stem] = inst
    for c in (age_col, sessions_col, baseline_col):
        if c and cols[c].numeric:
            codes = _codes_in(cols[c], (0, 120) if c == age_col else None)
            if codes:
                codes_by_column[c] = codes
    for c in (sex_col, diag_col):  # a numeric code among text codes (F, M, -99)
        if c:
            present = {t for t in _distinct(cols[c]) if t not in cols[c].labels}
            codes = [code for code in MISSING_CODE_CANDIDATES if code_text(code) in present]
            text = [t for t in present if not re.fullmatch(r"[+-]?\d+(\.\d+)?", t)]
            if codes and text:
                codes_by_column[c] = codes

    # baseline column of a long file: which outcome it belongs to
    baseline_of = None
    if baseline_col:
        best = None
        base = cols[baseline_col].numbers
        for stem in outcome_columns:
            y = cols[stem].numbers
            ok = base.notna() & y.notna()
            if ok.sum() < 3 or base[ok].std() == 0 or y[ok].std() == 0:
                continue
            r = float(np.corrcoef(base[ok], y[ok])[0, 1])
            level = abs(float(base[ok].mean() - y[ok].mean())) / (float(base[ok].std()) + 1e-9)
            score = r - 0.1 * level
            if best is None or score > best[0]:
                best = (score, stem)
        baseline_of = best[1] if best else None
        if baseline_of is None:
            baseline_col = None

    # ----- render
    d.add("")
    d.add(f"study: {yaml_scalar(datafile.stem)}")
    d.add("data:")
    d.add(f"  files: {yaml_scalar(relative)}")
    d.add(f"  format: {fmt}")
    if fmt == "csv":
        d.add(f"  sep: {yaml_scalar(sep)}", "the header's most frequent delimiter")
        if export.decimal == ",":
            d.add('  decimal: ","', "numbers are written with a decimal comma (12,5)")
    d.add(
        f"  layout: {layout}",
        f"ids repeat and '{visit_col}' names the visit" if layout == "long" else "one row per participant",
    )
    visits: list[dict] = []
    if layout == "long":
        d.add(f"  visit_column: {yaml_scalar(visit_col)}", "named like a visit column")
        values = _distinct(cols[visit_col])
        vlabels = cols[visit_col].labels
        if baseline_col:
            visits.append(
                {"name": "baseline", "baseline": True, "label": "Baseline", "why": f"held in column {baseline_col}"}
            )
        for i, v in enumerate(values):
            label = vlabels.get(v)
            name = (
                snake(label)
                if label
                else (snake(v) if not re.fullmatch(r"[+-]?\d+(\.\d+)?", v) else f"{snake(visit_col)}_{snake(v)}")
            )
            entry = {"name": name, "value": v, "label": label or f"{visit_col} {v}"}
            if not baseline_col and i == 0:
                entry["baseline"] = True
                entry["why"] = "the first visit value in order"
            visits.append(entry)
    else:
        for i, token in enumerate(visit_tokens):
            rank, time, unit = _visit_time(token)
            entry = {"name": token, "label": token}
            if i == 0:
                entry["baseline"] = True
                entry["why"] = "the first visit in order" + (
                    " (named like a baseline)" if rank == 0 or time == 0 else ""
                )
            visits.append(entry)
        units = {_visit_time(t)[2] for t in visit_tokens} - {"baseline"}
        if units and None not in units and all(_visit_time(t)[2] is not None for t in visit_tokens):
            unit = "weeks" if len(units) > 1 or "weeks" in units else units.pop()
            factor = {"weeks": 1.0, "months": 12 / 52, "years": 1 / 52}[unit]
            for entry, token in zip(visits, visit_tokens):
                entry["time"] = round(_visit_time(token)[1] * factor, 4)
                entry["unit"] = unit

    if id_col:
        d.add(f"id: {yaml_scalar(id_col)}", id_why)
    intervention, control, rest, arm_why = _arm_guess(cols[arm_col])
    d.add("arm:")
    d.add(f"  column: {yaml_scalar(arm_col)}", arm_col_why.format(len(_distinct(cols[arm_col]))))
    d.add(f"  intervention: {yaml_scalar(intervention)}", arm_why)
    d.add(f"  control: {yaml_scalar(control)}")
    d.add(f"  labels: {{intervention: {yaml_scalar(str(intervention))}, control: {yaml_scalar(str(control))}}}")
    if rest:
        d.add(
            f"  exclude: [{', '.join(yaml_scalar(r) for r in rest)}]",
            "a third arm value; its participants are dropped (logged)",
        )
    if site_col:
        d.add(f"site: {yaml_scalar(site_col)}", "named like a site / centre column")
    if sessions_col:
        d.add(f"sessions_attended: {yaml_scalar(sessions_col)}", "named like a count of sessions attended")
    covariates = [
        (c, n) for c, n in ((site_col, "site"), (sex_col, "sex"), (age_col, "age"), (diag_col, "diagnosis")) if c
    ]
    if covariates:
        d.add("covariates:", "the model adjusts for these; remove any the analysis plan does not name")
        for column, name in covariates:
            d.add(f"  - column: {yaml_scalar(column)}")
            d.add(f"    as: {name}", f"named like {name}")
            recode, why = ({}, "")
            if name == "sex":
                recode, why = _sex_recode(cols[column])
            elif name == "diagnosis":
                recode, why = _diagnosis_recode(cols[column])
            if recode:
                d.add("    recode:", why)
                for old, new in recode.items():
                    d.add(f"      {yaml_scalar(old)}: {yaml_scalar(new)}")
    else:
        d.add("covariates: []", "no column named like sex, age, diagnosis or site")
    d.add("visits:")
    for entry in visits:
        parts = [f"name: {yaml_scalar(entry['name'])}"]
        if entry.get("baseline"):
            parts.append("baseline: true")
        if "value" in entry:
            parts.append(f"value: {yaml_scalar(_as_number(entry['value']))}")
        if "time" in entry:
            parts.append(f"time: {yaml_scalar(entry['time'])}")
        parts.append(f"label: {yaml_scalar(entry['label'])}")
        why = entry.get("why")
        if "unit" in entry and entry.get("baseline"):
            why = (why + "; " if why else "") + f"times in {entry['unit']}"
        d.add("  - {" + ", ".join(parts) + "}", why)
    d.add("outcomes:")
    declared = {}
    for stem, by_visit in outcome_columns.items():
        inst = outcome_instrument[stem]
        columns = list(by_visit.values()) or [stem]
        key = inst.key if inst is not None else _new_key(stem, registry, declared)
        if inst is not None:
            d.add(
                f"  {key}:",
                f"'{stem}' names the registry instrument {inst.short}, and every value lies in {inst.range_text}",
            )
        else:
            d.add(f"  {key}:", f"'{stem}' is not a registry instrument: declared under instruments; CONFIRM")
            declared[key] = (
                stem,
                observed(columns + ([baseline_col] if baseline_of == stem else []), codes_by_column),
                columns,
            )
        if layout == "wide":
            d.add("    columns:")
            for token, column in sorted(by_visit.items(), key=lambda kv: _visit_time(kv[0])):
                d.add(f"      {yaml_scalar(token)}: {yaml_scalar(column)}")
        else:
            d.add(f"    column: {yaml_scalar(stem)}")
            if baseline_of == stem:
                d.add(
                    f"    baseline_column: {yaml_scalar(baseline_col)}",
                    f"constant within each participant and tracks {stem}",
                )
    if declared:
        d.add("instruments:")
        for key, (stem, rng, columns) in declared.items():
            lo, hi = rng if rng else (0.0, 1.0)
            whole = all(cols[c].numbers.dropna().map(float.is_integer).all() for c in columns)
            d.add(f"  {key}:")
            label = cols[columns[0]].label
            d.add(f"    name: {yaml_scalar(label or stem)}")
            d.add(f"    min: {yaml_scalar(np.floor(lo))}", "the smallest value observed; give the scale's own minimum")
            d.add(f"    max: {yaml_scalar(np.ceil(hi))}", "the largest value observed; give the scale's own maximum")
            d.add("    higher_is_better: true", "unknown from the data; CONFIRM the direction")
            d.add(f"    integer: {'true' if whole else 'false'}", "every observed value is whole" if whole else None)
    if codes_by_column:
        d.add("missing_codes:")
        d.add("  columns:")
        for column, codes in codes_by_column.items():
            d.add(
                f"    {yaml_scalar(column)}: [{', '.join(yaml_scalar(c) for c in codes)}]",
                "present and outside the column's plausible range",
            )
    declared_missing = {c: r for c, r in export.declared_missing.items() if c in cols}
    if declared_missing:
        d.add(f"# the file declares user-missing values on {len(declared_missing)} columns; they are read as missing")
    return d


def _as_number(text):
    try:
        number = float(text)
    except (TypeError, ValueError):
        return text
    return int(number) if number.is_integer() else number


def _new_key(stem: str, registry, taken) -> str:
    key = snake(stem) or "outcome"
    if not key[0].isalpha():
        key = "x_" + key
    while key in registry or key in taken:
        key += "_study"
    return key


def write_draft(datafile: str | Path, out: str | Path | None = None, *, force: bool = False) -> tuple[Path, Draft]:
    """Draft a spec for ``datafile`` and write it to ``out`` (default: study.yaml beside the data file). An
    existing file is never overwritten unless ``force``; the data file itself never."""
    from imrstats.core.io import write_text

    datafile = Path(datafile)
    if not datafile.exists():
        raise InputError(f"{datafile}: file not found")
    target = Path(out) if out else datafile.parent / "study.yaml"
    if target.exists() and target.resolve() == datafile.resolve():
        raise InputError(f"{target}: --out names the data file itself; write the spec elsewhere")
    if target.is_dir():
        raise InputError(f"{target}: --out names a folder; give the path of the spec file to write")
    if target.exists() and not force:
        raise InputError(f"{target}: a spec already exists; give another --out, or --force to overwrite it")
    if not target.parent.exists():
        raise InputError(f"{target}: the folder {target.parent} does not exist (create it first)")
    draft = draft_spec(datafile, target)
    write_text("\n".join(draft.lines) + "\n", target)
    return target, draft
