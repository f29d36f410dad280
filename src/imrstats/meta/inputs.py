"""One reader for every table a meta-analysis pools: a data frame -> effect sizes ``yi``, sampling variances ``vi``,
study labels, and a record per input row of how its effect was made and the assumption it rests on.

The shapes a row may take (``SHAPES``; columns named generically, or by the IMR names of ``data/published/``):

- arm summaries ``n1, m1, sd1, n2, m2, sd2`` (``n_imr, mean_imr, sd_imr, n_tau, mean_tau, sd_tau``): Hedges' g
  (measure SMD, the default) or the raw mean difference (MD), as ``effect_sizes.smd`` / ``md``;
- 2x2 counts ``ai, bi, ci, di`` (events / non-events per group), or events and group sizes ``e1, n1, e2, n2``
  (``events_imr, n_imr, events_tau, n_tau``): log risk ratio (RR), log odds ratio (OR) or risk difference (RD),
  metafor's continuity correction (1/2 added to every cell of a study with a zero cell);
- an effect and its sampling variance ``yi, vi``, taken as given;
- a reported effect with its standard error ``effect, se``, or with its confidence interval
  ``effect, ci_low, ci_high`` (``ci_level``, 0.95 when absent): SE = CI width / (2 z); for a ratio measure the
  effect and CI are ratios as printed and are pooled on the log scale;
- a curated row naming its conversion (column ``conversion``: ``smd_from_arms``, ``md_from_arm_means_se``,
  ``log_or_from_ci``, ``d_from_p_two_sided``, ``d_total_n_equal_split``, ``d_from_eta_squared``, ``none``; see
  data/published/README.md): ``convert_row``, the one conversion the meta stage (``stage.effect_table``) and
  this reader share.

Direction: a ``sign`` (or ``sign_favouring_imr``) column of +1 / -1 signs every row (-1 reverses it, so a
positive effect favours group 1); without it, effects computed from arm summaries or counts take the direction
of a known instrument (``instrument`` column, the instrument registry); anything else keeps the sign it is
computed or reported with (group 1 minus group 2), and the record says so.

``read_effects`` never drops a row silently: a row that cannot be used is named (row, study, column, value,
rule) in the record's ``problem``; the rows an analysis would pool must all be usable (``InputError`` listing
them and their count), unless ``skip_bad_rows`` leaves them out, each with its reason. With ``outcome``, the
rows are chosen as the meta stage chooses them (``stage.select_outcome_rows``: one row per study by the
settings' use, timepoint, instrument and analysis preferences), every excluded row with its reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.errors import AnalysisError, InputError
from imrstats.meta import effect_sizes as es

# canonical field -> the column names that give it (generic first, then the IMR names of data/published/)
FIELDS: dict[str, tuple[str, ...]] = {
    "n1": ("n1", "n_imr"),
    "m1": ("m1", "mean1", "mean_imr"),
    "sd1": ("sd1", "sd_imr"),
    "se1": ("se1", "se_imr"),
    "n2": ("n2", "n_tau"),
    "m2": ("m2", "mean2", "mean_tau"),
    "sd2": ("sd2", "sd_tau"),
    "se2": ("se2", "se_tau"),
    "e1": ("e1", "events_imr"),
    "e2": ("e2", "events_tau"),
    "ai": ("ai",),
    "bi": ("bi",),
    "ci": ("ci",),
    "di": ("di",),
    "yi": ("yi",),
    "vi": ("vi",),
    "effect": ("effect",),
    "se": ("se",),
    "ci_low": ("ci_low",),
    "ci_high": ("ci_high",),
    "ci_level": ("ci_level",),
    "p": ("p",),
    "n_total": ("n_total",),
    "sign": ("sign", "sign_favouring_imr"),
}
IMR_NAMES = frozenset(name for names in FIELDS.values() for name in names if "imr" in name or "tau" in name)
NUMBER_COLUMNS = tuple(name for names in FIELDS.values() for name in names)
TEXT_COLUMNS = (
    "study",
    "outcome",
    "instrument",
    "rater",
    "timepoint",
    "analysis",
    "use",
    "conversion",
    "assumption",
    "source",
)

# shape -> the fields it needs, in the order they are named
SHAPE_FIELDS: dict[str, tuple[str, ...]] = {
    "yi_vi": ("yi", "vi"),
    "counts_2x2": ("ai", "bi", "ci", "di"),
    "counts_events": ("e1", "n1", "e2", "n2"),
    "arms": ("n1", "m1", "sd1", "n2", "m2", "sd2"),
    "effect_se": ("effect", "se"),
    "effect_ci": ("effect", "ci_low", "ci_high"),
}
SHAPE_NAMES = {
    "yi_vi": "effect and variance as given (yi, vi)",
    "counts_2x2": "2x2 counts (ai, bi, ci, di)",
    "counts_events": "events / n per group (e1, n1, e2, n2)",
    "arms": "arm summaries (n, mean, SD per group)",
    "effect_se": "reported effect + SE",
    "effect_ci": "reported effect + CI",
}
SHAPE_HOW = {  # a row's ``conversion`` in the record when its shape, not a conversion column, made its effect
    "yi_vi": "as given (yi, vi)",
    "counts_2x2": "2x2 counts",
    "counts_events": "events / n",
    "arms": "arm summaries",
    "effect_se": "effect + SE",
    "effect_ci": "effect + CI",
}
# For --help and the README: each input shape with its columns.
SHAPES = (
    ("arm summaries", "n1, m1, sd1, n2, m2, sd2 (or n_imr, mean_imr, sd_imr, n_tau, mean_tau, sd_tau)", "SMD or MD"),
    (
        "2x2 counts",
        "ai, bi, ci, di, or events / n per group e1, n1, e2, n2 (events_imr, n_imr, events_tau, n_tau)",
        "RR, OR or RD",
    ),
    ("effect and variance", "yi, vi (on the pooled scale)", "as given"),
    (
        "reported effect",
        "effect + se, or effect + ci_low, ci_high [+ ci_level, default 0.95]; for RR / OR the "
        "effect and CI are ratios as printed",
        "the measure's scale",
    ),
    (
        "curated rows",
        "a conversion column per row (d + N, p + n, OR + CI, eta^2, ...; data/published/README.md), "
        "as the pipeline's meta stage converts them",
        "per row",
    ),
)
# optional columns: study (labels), year (cumulative order, labels), sign (+1 / -1), instrument / outcome
# (--outcome), use / timepoint / analysis (the pipeline's row selection), assumption (a curated assumption)

MEASURES = ("SMD", "MD", "RR", "OR", "RD")
MEASURE_LABELS = {"SMD": "SMD", "MD": "MD", "RR": "log RR", "OR": "log OR", "RD": "RD"}  # as the stage names them
RATIO_MEASURES = ("RR", "OR")
CONVERSION_FIELDS: dict[str, tuple[str, ...]] = {
    "smd_from_arms": ("m1", "sd1", "n1", "m2", "sd2", "n2"),
    "md_from_arm_means_se": ("m1", "m2", "se1", "se2"),
    "log_or_from_ci": ("effect", "ci_low", "ci_high"),
    "d_from_p_two_sided": ("p", "n1", "n2"),
    "d_total_n_equal_split": ("effect", "n_total"),
    "d_from_eta_squared": ("effect", "n_total"),
    "none": ("effect", "se"),
}

# A cell rule: (test on the value, the rule as an error line states it)
_RULES = {
    "n1": (lambda x: x > 0, "Arm sizes must be > 0"),
    "n2": (lambda x: x > 0, "Arm sizes must be > 0"),
    "n_total": (lambda x: x > 0, "a total N must be > 0"),
    "sd1": (lambda x: x >= 0, "an SD must be >= 0"),
    "sd2": (lambda x: x >= 0, "an SD must be >= 0"),
    "se1": (lambda x: x > 0, "a standard error must be > 0"),
    "se2": (lambda x: x > 0, "a standard error must be > 0"),
    "se": (lambda x: x > 0, "a standard error must be > 0"),
    "vi": (lambda x: x > 0, "a sampling variance must be > 0"),
    "ai": (lambda x: x >= 0, "a count must be >= 0"),
    "bi": (lambda x: x >= 0, "a count must be >= 0"),
    "ci": (lambda x: x >= 0, "a count must be >= 0"),
    "di": (lambda x: x >= 0, "a count must be >= 0"),
    "e1": (lambda x: x >= 0, "a count must be >= 0"),
    "e2": (lambda x: x >= 0, "a count must be >= 0"),
    "p": (lambda x: 0 < x <= 1, "a two-sided p-value must be in (0, 1]"),
    "sign": (lambda x: x in (1, -1), "sign is +1 (as computed) or -1 (reversed)"),
    "ci_level": (lambda x: 0 < x < 1 or 1 < x < 100, "ci_level is the CI's coverage, e.g. 0.95 or 95"),
}


def _shown(value, limit: int = 80) -> str:
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RowProblem(AnalysisError):
    """A row that cannot be used: ``column``, ``value`` and ``rule`` name why (the message says it in words)."""

    def __init__(self, message: str, column: str = "", value="", rule: str = ""):
        super().__init__(message)
        self.column, self.value, self.rule = column, value, rule or message


# ---------------------------------------------------------------------------------------------
# The columns a table gives


def column_map(columns: Sequence[str], path="the table") -> dict[str, str]:
    """Field -> the table's column for it (``FIELDS``). Two columns for one field (n1 and n_imr) are an
    InputError naming both."""
    present = {str(c) for c in columns}
    out = {}
    for name, aliases in FIELDS.items():
        found = [a for a in aliases if a in present]
        if len(found) > 1:
            raise InputError(f"{path}: columns {' and '.join(found)} both give {name}: keep one of them")
        if found:
            out[name] = found[0]
    return out


def _field(row: Mapping, name: str):
    """(column, value) of a field in a row (a Series or a dict), via its accepted column names."""
    for alias in FIELDS[name]:
        if alias in row:
            return alias, row[alias]
    return None, math.nan


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------
# The one conversion of a curated row (the meta stage's effect_table and read_effects)


class Converted(NamedTuple):
    """A row's effect ``yi``, its sampling variance ``vi``, the ``measure`` and the conversion's own assumption."""

    yi: float
    vi: float
    measure: str
    assumption: str


def convert_row(row: Mapping, *, level: float = 0.95) -> Converted:
    """(yi, vi, measure, the conversion's own assumption) for one row naming its ``conversion`` (the curated
    rows of data/published/), signed by ``sign_favouring_imr`` (or ``sign``) so that positive favours group 1
    (IMR). Columns by their generic or IMR names (``FIELDS``); ``level`` is the coverage of a CI the row
    reports (``log_or_from_ci``). Raises AnalysisError (``RowProblem`` for an empty cell) naming the cause."""
    conversion = str(row["conversion"]).strip()
    sign_column, sign = _field(row, "sign")
    if _missing(sign):
        name = sign_column or "sign_favouring_imr"
        group = "IMR" if name == "sign_favouring_imr" else "group 1"
        raise RowProblem(
            f"{name} is empty: the direction favouring {group} is unknown", name, "", "the direction is needed"
        )
    hib = bool(int(sign) == 1)

    def num(name):
        column, value = _field(row, name)
        if _missing(value):
            column = column or FIELDS[name][-1]
            raise RowProblem(
                f"conversion '{conversion}' needs '{column}', which is empty",
                column,
                "",
                f"conversion '{conversion}' needs a value",
            )
        return float(value)

    if conversion == "smd_from_arms":
        out = es.smd(num("m1"), num("sd1"), num("n1"), num("m2"), num("sd2"), num("n2"), higher_is_better=hib)
        return Converted(float(out.yi), float(out.vi), "SMD", "")
    if conversion == "md_from_arm_means_se":
        yi = (1.0 if hib else -1.0) * (num("m1") - num("m2"))
        return Converted(yi, num("se1") ** 2 + num("se2") ** 2, "MD", "arm SEs independent")
    if conversion == "log_or_from_ci":
        c = es.log_or_from_ci(num("effect"), num("ci_low"), num("ci_high"), level=level, higher_is_better=hib)
        return Converted(c.yi, c.vi, "log OR", c.assumption)
    if conversion == "d_from_p_two_sided":
        c = es.smd_from_p(num("p"), num("n1"), num("n2"), sign=1, higher_is_better=hib)
        return Converted(c.yi, c.vi, "SMD", c.assumption)
    if conversion == "d_total_n_equal_split":
        c = es.smd_from_d_total_n(num("effect"), num("n_total"), higher_is_better=hib)
        return Converted(c.yi, c.vi, "SMD", c.assumption)
    if conversion == "d_from_eta_squared":
        half = num("n_total") / 2
        c = es.smd_from_eta_squared(num("effect"), half, half, sign=1, higher_is_better=hib)
        return Converted(c.yi, c.vi, "SMD", f"total N split equally ({half:g} per arm); {c.assumption}")
    if conversion == "none":
        return Converted(
            (1.0 if hib else -1.0) * num("effect"), num("se") ** 2, "as reported", "effect and SE as reported"
        )
    raise RowProblem(f"unknown conversion '{conversion}'", "conversion", conversion, "an unknown conversion")


# ---------------------------------------------------------------------------------------------
# Reading a table


def parse_numbers(frame: pd.DataFrame, columns: Sequence[str] = NUMBER_COLUMNS):
    """The number columns of a table as floats, read as ``imrstats check`` reads them (``data.check.parse_column``:
    a decimal comma 40,5 is 40.5, an ambiguous 1,000 is refused). Returns (frame copy, decimal-comma notes as
    (row index, column, text, value), unread cells as {row index: (column, text, rule)} (the first per row))."""
    from imrstats.data.check import decimal_comma_mask, parse_column

    out = frame.copy()
    commas, unread = [], {}
    for column in [c for c in out.columns if c in columns]:
        values = out[column]
        parsed, bad = parse_column(values, "number")
        bad = bad | (parsed.notna() & ~np.isfinite(parsed.fillna(0.0)))
        for i in np.flatnonzero(bad.to_numpy()):
            text = values.iloc[i]
            rule = "not a finite number" + (
                " (a comma is read as a decimal point only where that is unambiguous (40,5): write 1000, not 1,000)"
                if "," in str(text)
                else ""
            )
            unread.setdefault(int(i), (column, text, rule))
        for i in np.flatnonzero(decimal_comma_mask(values).to_numpy()):
            commas.append((int(i), column, str(values.iloc[i]), float(parsed.iloc[i])))
        out[column] = parsed.where(~bad)
    return out, commas, unread


def row_name(study: str | None, row: int) -> str:
    """How a row is named in a message: row 1 = the first data row, and its study label."""
    return f"row {row}" + (f" (study {_shown(repr(study))})" if study else "")


def _label(study: str, year: float) -> str:
    """The meta stage's label: 'study (year)' unless the study label already ends with its year."""
    if isinstance(year, float) and math.isnan(year):
        return study
    y = str(int(year)) if float(year).is_integer() else str(year)
    return study if study.endswith(y) else f"{study} ({y})"


def _shape_of(filled: set[str]) -> str | None:
    if {"yi", "vi"} <= filled:
        return "yi_vi"
    if {"ai", "bi", "ci", "di"} <= filled:
        return "counts_2x2"
    if {"e1", "n1", "e2", "n2"} <= filled and not {"m1", "m2"} & filled:
        return "counts_events"
    if set(SHAPE_FIELDS["arms"]) <= filled:
        return "arms"
    if {"effect", "se"} <= filled:
        return "effect_se"
    if {"effect", "ci_low", "ci_high"} <= filled:
        return "effect_ci"
    return None


def file_measure(frame: pd.DataFrame, measure: str | None, path="the table") -> str:
    """The measure rows computed from arm summaries or counts give: ``measure`` (SMD, MD, RR, OR, RD) when given,
    else SMD when the table has arm summaries, else 'as given' (reported effects only). Counts need a measure."""
    fields = column_map(frame.columns, path)
    if measure is not None:
        key = str(measure).upper()
        if key not in MEASURES:
            raise InputError(f"{path}: unknown measure {measure!r}; use one of {', '.join(MEASURES)}")
        return key
    if set(SHAPE_FIELDS["counts_2x2"]) <= set(fields) or (
        set(SHAPE_FIELDS["counts_events"]) <= set(fields) and not {"m1", "m2"} & set(fields)
    ):
        raise InputError(
            f"{path}: 2x2 counts need a measure: RR (risk ratio), OR (odds ratio) or RD (risk difference) "
            "(imrstats meta --measure)"
        )
    return "SMD" if set(SHAPE_FIELDS["arms"]) <= set(fields) else "as given"


def effect_rows(
    frame: pd.DataFrame, *, measure: str | None = None, level: float = 0.95, path="the table", registry=None
) -> pd.DataFrame:
    """Every row of a table -> its effect size, or the reason it has none. One record per input row: ``row``
    (1 = first data row), study, ``label``, year, outcome, instrument, rater, timepoint, analysis, use, ``shape``,
    ``conversion`` (how the effect was made), ``measure``, ``yi``, ``vi``, ``sei``, ``ci_low`` / ``ci_high`` (normal,
    ``level``), ``n1`` / ``n2`` (group sizes when known), ``direction``, ``assumption`` (a curated assumption and the
    conversion's own), ``needs_assumption``, ``problem`` (empty when usable; else row, column, value and rule)
    with ``problem_column``, ``problem_value``, ``problem_rule``; and ``notes`` in ``attrs["notes"]`` (decimal
    commas read). ``measure`` is that of ``file_measure``; ``registry`` maps instrument keys to instruments
    (``higher_is_better``; default: the project's registry when the table has an instrument column)."""
    if frame.empty:
        raise InputError(f"{path}: no data rows (only a header)")
    fields = column_map(frame.columns, path)
    if not any(set(needed) <= set(fields) for needed in SHAPE_FIELDS.values()) and "conversion" not in frame:
        raise InputError(f"{path}: {_none_of_the_sets(frame)}")
    kind = file_measure(frame, measure, path)
    numbers, commas, unread = parse_numbers(frame)
    text = {c: frame[c].astype("string").str.strip().fillna("") if c in frame else None for c in TEXT_COLUMNS}
    has_study = text["study"] is not None
    years = _years(frame)
    if registry is None and text["instrument"] is not None:
        from imrstats.data.instruments import load_registry

        registry = load_registry()
    z = float(stats.norm.isf((1 - level) / 2))
    records = []
    for i in range(len(frame)):
        study = str(text["study"].iloc[i]) if has_study else None
        record = {
            "row": i + 1,
            "study": study if has_study else f"row {i + 1}",
            "year": years[i],
            **{c: (str(text[c].iloc[i]) if text[c] is not None else "") for c in TEXT_COLUMNS[1:7]},
            "shape": "",
            "conversion": str(text["conversion"].iloc[i]) if text["conversion"] is not None else "",
            "measure": "",
            "yi": math.nan,
            "vi": math.nan,
            "n1": math.nan,
            "n2": math.nan,
            "direction": "",
            "assumption": "",
            "needs_assumption": False,
            "problem": "",
            "problem_column": "",
            "problem_value": "",
            "problem_rule": "",
        }
        record["label"] = _label(record["study"], years[i]) if has_study else record["study"]
        curated = str(text["assumption"].iloc[i]) if text["assumption"] is not None else ""
        try:
            if i in unread:
                column, value, rule = unread[i]
                raise RowProblem(rule, column, value, rule)
            if has_study and study == "":
                raise RowProblem("blank", "study", "", "blank; rule: every study needs a label")
            row = numbers.iloc[i]
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a non-finite result is the problem
                out = _one_row(row, record, kind, level, registry, fields)
            record.update(out)
            if not (math.isfinite(record["yi"]) and math.isfinite(record["vi"])) or record["vi"] <= 0:
                raise RowProblem(
                    "the effect or its variance is not a finite number > 0: the values are too large to compute "
                    "with; check the row",
                    "",
                    "",
                )
        except (RowProblem, AnalysisError, InputError, ValueError) as error:
            column = getattr(error, "column", "") or ""
            value = getattr(error, "value", "")
            rule = getattr(error, "rule", "") or str(error)
            where = row_name(study, i + 1) + (f", column {column}" if column else "")
            shown_value = f", value '{_shown(value)}'" if column else ""
            record.update(
                yi=math.nan,
                vi=math.nan,
                problem=f"{where}{shown_value}: {rule if rule.startswith('blank') else 'rule: ' + rule}",
                problem_column=column,
                problem_value=_shown(value),
                problem_rule=rule,
            )
        record["assumption"] = "; ".join(a for a in (curated, record["assumption"]) if a)
        record["needs_assumption"] = curated != ""
        records.append(record)
    table = pd.DataFrame(records)
    table["sei"] = np.sqrt(table["vi"].where(table["vi"] > 0))
    table["ci_low"] = table["yi"] - z * table["sei"]
    table["ci_high"] = table["yi"] + z * table["sei"]
    table.attrs["notes"] = [
        f"{row_name(text['study'].iloc[i] if has_study else None, i + 1)}, column {column}: '{raw}' has a decimal "
        f"comma, read as {value:g}"
        for i, column, raw, value in commas
    ]
    table.attrs["measure"] = kind
    return table


def _years(frame: pd.DataFrame) -> list[float]:
    """The year of each row as a number (NaN when blank or not a number; the year only orders and labels)."""
    if "year" not in frame:
        return [math.nan] * len(frame)
    values = pd.to_numeric(frame["year"].astype("string").str.strip(), errors="coerce")
    return [float(v) if pd.notna(v) and math.isfinite(v) else math.nan for v in values]


def _none_of_the_sets(frame: pd.DataFrame) -> str:
    header = _shown(", ".join(map(str, frame.columns)), 200)
    sets = "; ".join(f"{SHAPE_NAMES[s]}: {', '.join(SHAPE_FIELDS[s])}" for s in SHAPE_FIELDS)
    return (
        f"none of the column sets imrstats meta reads ({sets}; or a conversion column; IMR names n_imr, mean_imr, "
        f"... also accepted); the header has {header}"
    )


def _check_cells(row: pd.Series, names: Sequence[str]) -> None:
    for name in names:
        column, value = _field(row, name)
        if name in _RULES and column is not None and not _missing(value):
            test, rule = _RULES[name]
            if not test(float(value)):
                raise RowProblem(rule, column, _number_text(value), rule)


def _number_text(value) -> str:
    value = float(value)
    return f"{value:g}"


def _direction(row: pd.Series, record: dict, registry, computed: bool) -> tuple[bool, str]:
    """(higher is better for group 1, how the direction was decided) for one row."""
    column, sign = _field(row, "sign")
    if column is not None:
        if _missing(sign):
            raise RowProblem(
                "blank", column, "", f"blank; rule: every row needs its {column} (+1 or -1) when the table has one"
            )
        return float(sign) == 1, f"{column} {int(float(sign)):+d}"
    key = record.get("instrument", "")
    if computed and registry and key in registry:
        inst = registry[key]
        return inst.higher_is_better, f"instrument registry: {key}, {inst.direction_text}"
    return True, "as given" if not computed else "as computed (no sign column or registry instrument)"


def _one_row(row: pd.Series, record: dict, kind: str, level: float, registry, fields: dict) -> dict:
    """The effect of one row (after its cells were read): by its conversion, or by the shape its cells fill."""
    out: dict = {}
    level_row = level
    level_column, level_value = _field(row, "ci_level")
    conversion = record["conversion"]
    if conversion:
        needed = CONVERSION_FIELDS.get(conversion, ())
        _check_cells(row, (*needed, "sign", "ci_level"))
        if level_column is not None and not _missing(level_value):
            level_row = _coverage(level_value)
        c = convert_row(row, level=level_row)
        sign_column, sign = _field(row, "sign")
        out.update(
            shape="curated conversion",
            conversion=conversion,
            measure=c.measure,
            yi=c.yi,
            vi=c.vi,
            assumption=c.assumption,
            direction=f"{sign_column} {int(float(sign)):+d}",
        )
        for g in ("n1", "n2"):
            if not _missing(_field(row, g)[1]):
                out[g] = float(_field(row, g)[1])
        return out
    filled = {name for name in FIELDS if _field(row, name)[0] is not None and not _missing(_field(row, name)[1])}
    shape = _shape_of(filled)
    if shape is None:
        raise _incomplete(row, filled, fields)
    _check_cells(row, (*SHAPE_FIELDS[shape], "sign", "ci_level"))
    value = {name: float(_field(row, name)[1]) for name in filled}
    computed = shape in ("arms", "counts_2x2", "counts_events")
    hib, direction = _direction(row, record, registry, computed)
    sign = 1.0 if hib else -1.0
    out.update(shape=SHAPE_NAMES[shape], conversion=SHAPE_HOW[shape], direction=direction)
    if shape == "arms":
        if kind not in ("SMD", "MD"):
            raise RowProblem(
                f"arm means and SDs give an SMD or MD, not {kind}",
                fields["m1"],
                _number_text(value["m1"]),
                f"arm means and SDs give an SMD or MD, not a {kind} (choose the measure: --measure SMD or MD)",
            )
        n1, n2, sd1, sd2 = value["n1"], value["n2"], value["sd1"], value["sd2"]
        if kind == "SMD" and n1 + n2 - 2 <= 1:
            raise RowProblem("", fields["n1"], _number_text(n1), "each comparison needs at least 4 people for an SMD")
        if sd1 == 0 and sd2 == 0:
            raise RowProblem("", fields["sd1"], "0", "both SDs are 0: the effect is undefined (check the table)")
        f = es.smd if kind == "SMD" else es.md
        e = f(value["m1"], sd1, n1, value["m2"], sd2, n2, higher_is_better=hib)
        out.update(measure=kind, yi=float(e.yi), vi=float(e.vi), n1=n1, n2=n2)
        return out
    if shape in ("counts_2x2", "counts_events"):
        if kind not in RATIO_MEASURES + ("RD",):
            raise RowProblem(
                "",
                fields["ai" if shape == "counts_2x2" else "e1"],
                "",
                f"counts give RR, OR or RD, not {kind} (choose the measure: --measure RR, OR or RD)",
            )
        if shape == "counts_2x2":
            e1, n1, e2, n2 = value["ai"], value["ai"] + value["bi"], value["ci"], value["ci"] + value["di"]
            for name, n in (("bi", n1), ("di", n2)):
                if n <= 0:
                    raise RowProblem("", fields[name], "0", "Arm sizes must be > 0 (no one in this group)")
        else:
            e1, n1, e2, n2 = value["e1"], value["n1"], value["e2"], value["n2"]
            for name, e, n in (("e1", e1, n1), ("e2", e2, n2)):
                if e > n:
                    raise RowProblem("", fields[name], _number_text(e), "events must not exceed the group size")
        f = {"RR": es.log_rr, "OR": es.log_or, "RD": es.rd}[kind]
        e = f(e1, n1, e2, n2, higher_is_better=hib)
        zero = min(e1, n1 - e1, e2, n2 - e2) == 0
        out.update(
            measure=MEASURE_LABELS[kind],
            yi=float(e.yi),
            vi=float(e.vi),
            n1=n1,
            n2=n2,
            assumption="1/2 added to every cell (a zero cell; metafor's default continuity correction)" if zero else "",
        )
        return out
    measure = MEASURE_LABELS.get(kind, kind)
    scale = "" if kind == "as given" else f"; taken to be a {measure} (the measure pooled)"
    if shape == "yi_vi":
        out.update(measure=measure, yi=sign * value["yi"], vi=value["vi"], assumption=scale.lstrip("; "))
        return out
    if shape == "effect_se":
        if kind in RATIO_MEASURES:
            raise RowProblem(
                "",
                fields["se"],
                _number_text(value["se"]),
                "a ratio's SE is ambiguous: give the ratio with its CI (effect, ci_low, ci_high), or the log "
                "ratio and its variance (yi, vi)",
            )
        out.update(measure=measure, yi=sign * value["effect"], vi=value["se"] ** 2)
        out["assumption"] = "effect and SE as reported" + scale
        return out
    # effect + CI
    if level_column is not None and not _missing(level_value):
        level_row, level_text = _coverage(level_value), ""
    else:
        level_text = f"; {100 * level:g}% CI assumed (no ci_level)"
    lo, hi, est = value["ci_low"], value["ci_high"], value["effect"]
    if not lo < hi:
        raise RowProblem("", fields["ci_high"], _number_text(hi), "ci_high must exceed ci_low")
    if not lo <= est <= hi:
        raise RowProblem("", fields["effect"], _number_text(est), "the effect must lie inside its CI")
    crit = float(stats.norm.isf((1 - level_row) / 2))
    if kind in RATIO_MEASURES:
        if lo <= 0:
            raise RowProblem("", fields["ci_low"], _number_text(lo), f"a {kind} and its CI are ratios > 0")
        yi, se = math.log(est), (math.log(hi) - math.log(lo)) / (2 * crit)
        text = f"{100 * level_row:g}% Wald CI symmetric on the log scale{level_text}"
    else:
        yi, se = est, (hi - lo) / (2 * crit)
        text = f"SE = width of the {100 * level_row:g}% CI / (2 x {crit:.4f}): a normal CI{level_text}{scale}"
    out.update(measure=measure, yi=sign * yi, vi=se**2, assumption=text)
    return out


def _coverage(value) -> float:
    value = float(value)
    return value / 100 if value > 1 else value


def _incomplete(row: pd.Series, filled: set[str], fields: dict) -> RowProblem:
    """The problem of a row that fills no shape: the shape it comes closest to, and its first blank column."""
    best, best_count = None, -1
    for shape, needed in SHAPE_FIELDS.items():
        if not set(needed) <= set(fields):
            continue
        count = len(set(needed) & filled)
        if count > best_count:
            best, best_count = shape, count
    if best is None:
        return RowProblem("", "", "", "no complete set of columns")
    blank = next(name for name in SHAPE_FIELDS[best] if name not in filled)
    columns = ", ".join(fields[name] for name in SHAPE_FIELDS[best])
    return RowProblem("", fields[blank], "", f"blank; rule: {SHAPE_NAMES[best]} need {columns}")


# ---------------------------------------------------------------------------------------------
# What one analysis pools


@dataclass(frozen=True)
class EffectInputs:
    """The effects one analysis pools and how they were chosen.

    ``rows``: every input row (``effect_rows``' record) with ``included`` and ``reason``; ``pooled``: the
    included rows in pooling order (publication order under ``outcome``, else file order); ``order`` the
    cumulative analysis's keys (years) or None (file order) and ``order_name`` which; ``measure`` the pooled
    measure; ``arms`` the two group labels; ``direction`` what a positive effect means; ``selection`` what
    chose the rows; ``notes`` decimal commas read and the like."""

    rows: pd.DataFrame
    pooled: pd.DataFrame
    measure: str
    arms: tuple[str, str]
    direction: str
    selection: str
    order: np.ndarray | None
    order_name: str
    notes: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    excluded_summary: tuple[str, ...] = field(default=())

    @property
    def yi(self) -> np.ndarray:
        return self.pooled["yi"].to_numpy(float)

    @property
    def vi(self) -> np.ndarray:
        return self.pooled["vi"].to_numpy(float)

    @property
    def labels(self) -> list[str]:
        return list(self.pooled["label"])

    @property
    def k(self) -> int:
        return len(self.pooled)

    @property
    def uses_imr_names(self) -> bool:
        return bool(self.rows.attrs.get("imr_names", False))


def default_arms(columns: Sequence[str]) -> tuple[str, str]:
    """The group labels a printout uses: IMR and TAU when the table uses the IMR column names, else group 1/2."""
    return ("IMR", "TAU") if IMR_NAMES & {str(c) for c in columns} else ("group 1", "group 2")


def parse_arms(text: str | None, columns: Sequence[str]) -> tuple[str, str]:
    """``"Intervention,Control"`` -> two labels (``default_arms`` when None); anything else is an InputError."""
    if text is None:
        return default_arms(columns)
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise InputError(f"--arms {text!r}: give two different labels separated by a comma, e.g. 'IMR,Usual care'")
    return parts[0], parts[1]


def read_effects(
    frame: pd.DataFrame,
    *,
    measure: str | None = None,
    arms: tuple[str, str] | None = None,
    outcome: str | None = None,
    settings: dict | None = None,
    skip_bad_rows: bool = False,
    path="the table",
    registry=None,
    several_per_study: bool = False,
) -> EffectInputs:
    """The effects a table gives one meta-analysis (see the module docstring for the shapes).

    ``outcome``: an outcome label of ``settings["outcomes"]`` (its instrument keys, preferred first) or a value of
    the table's ``instrument`` or ``outcome`` column; rows are then chosen as the meta stage chooses them
    (``stage.select_outcome_rows`` with the settings' ``uses``, ``timepoints``, ``analyses``; a column the table
    lacks does not restrict) and pooled in publication order. Without it every row is pooled, in file order;
    one study label twice is an InputError. ``settings``: the config's ``meta`` section (defaults when None).
    A row that cannot be used among those to pool is an InputError naming each (the first three) and their
    count, unless ``skip_bad_rows`` (then each is left out with its reason). ``several_per_study`` (the
    multilevel analysis, ``imrstats meta --cluster``): a study label may occur on several rows (each such
    row is labelled with its row number, "Jensen 2019, row 4"), instead of the one-effect-per-study error."""
    from imrstats.config import section_settings

    s = section_settings("meta", settings)
    rows = effect_rows(frame, measure=measure, level=s["level"], path=path, registry=registry)
    rows.attrs["imr_names"] = bool(IMR_NAMES & {str(c) for c in frame.columns})
    kind = rows.attrs["measure"]
    arms = tuple(arms) if arms is not None else default_arms(frame.columns)
    rows["included"] = False
    rows["reason"] = ""
    summary: list[str] = []
    if outcome is not None:
        candidates, instruments, summary, selection = _outcome_rows(frame, rows, outcome, s, path)
    else:
        candidates = pd.Series(True, index=rows.index)
        instruments, selection = None, "every row of the table (no --outcome), in file order"
    bad = rows.loc[candidates & (rows["problem"] != "")]
    skipped = tuple(f"{path}: {p}" for p in bad["problem"])
    if len(bad) and not skip_bad_rows:
        listed = "; ".join(bad["problem"].head(3))
        more = f" (the first 3 of {len(bad)})" if len(bad) > 3 else ""
        raise InputError(
            f"{path}: {len(bad)} of {int(candidates.sum())} rows cannot be used{more}: {listed}; fix them, or skip "
            "them (imrstats meta --skip-bad-rows: each left-out row is listed)"
        )
    if instruments is not None:
        pooled = _select(rows, candidates, instruments, s, frame)
    else:
        rows.loc[rows["problem"] != "", "reason"] = "cannot be used: " + rows["problem"]
        usable = rows["problem"] == ""
        measures = rows.loc[usable, "measure"]
        if len(measures) and measures.nunique() > 1:
            pooled_measure = "SMD" if (measures == "SMD").any() else sorted(measures.unique())[0]
            other = usable & (rows["measure"] != pooled_measure)
            problems = [
                f"{row_name(r.study, r.row)}: rule: its measure '{r.measure}' cannot be pooled with {pooled_measure}"
                for r in rows.loc[other].itertuples()
            ]
            if not skip_bad_rows:
                raise InputError(
                    f"{path}: {len(problems)} of {len(rows)} rows cannot be used: {'; '.join(problems[:3])}; pool one "
                    "measure at a time (--measure, --outcome), or skip them (imrstats meta --skip-bad-rows)"
                )
            rows.loc[other, "reason"] = [p.split(": rule: ", 1)[1] for p in problems]
            skipped += tuple(f"{path}: {p}" for p in problems)
            usable &= ~other
        if several_per_study:
            _label_each_row(rows, usable)
        else:
            _unique_labels(rows.loc[usable], path)
        rows.loc[usable, "included"] = True
        pooled = rows.loc[usable].reset_index(drop=True)
    if pooled.empty:
        reasons = rows.loc[candidates, "reason"].value_counts()
        why = "; ".join(f"{n} x {reason}" for reason, n in reasons.head(3).items())
        raise InputError(f"{path}: no row left to pool ({why or 'no candidate rows'})")
    pooled_measure = str(pooled["measure"].iloc[0])
    years = pooled["year"].to_numpy(float)
    if "year" in frame.columns and np.all(np.isfinite(years)):
        order, order_name = years, "by publication year (column year; ties keep the pooling order)"
    else:
        why = "no year column" if "year" not in frame.columns else "a pooled row has no numeric year"
        order, order_name = None, f"in file order ({why})"
    return EffectInputs(
        rows=rows,
        pooled=pooled,
        measure=pooled_measure if pooled_measure != "as given" else kind,
        arms=(str(arms[0]), str(arms[1])),
        direction=_direction_text(pooled, arms),
        selection=selection,
        order=order,
        order_name=order_name,
        notes=tuple(f"{path}: {n}" for n in rows.attrs["notes"]),
        skipped=skipped,
        excluded_summary=tuple(summary),
    )


def _unique_labels(rows: pd.DataFrame, path) -> None:
    """One effect per study label (the study and, when the table has one, its year: 'Rosenthal (1960)' and
    'Rosenthal (1961)' are two studies)."""
    twice = rows["label"].duplicated(keep=False)
    if twice.any():
        label = rows.loc[twice, "label"].iloc[0]
        numbers = " and ".join(str(r) for r in rows.loc[rows["label"] == label, "row"])
        raise InputError(
            f"{path}: rows {numbers}, column study, value {_shown(repr(label))}: the same study twice; rule: one "
            "effect per study: keep one row per study (pool one outcome at a time with --outcome, or give each "
            "comparison its own label), or give --cluster COLUMN to pool several effects per study with the "
            "multilevel model (no row is dropped silently)"
        )


def _label_each_row(rows: pd.DataFrame, usable: pd.Series) -> None:
    """Several rows of one study (``several_per_study``): each such row's label gets its row number."""
    labels = rows.loc[usable, "label"]
    twice = labels.duplicated(keep=False)
    index = labels.index[twice.to_numpy()]
    rows.loc[index, "label"] = [
        f"{label}, row {row}" for label, row in zip(rows.loc[index, "label"], rows.loc[index, "row"])
    ]


def _outcome_rows(frame: pd.DataFrame, rows: pd.DataFrame, outcome: str, s: dict, path):
    """The candidate rows of one outcome (not ``context``), the instrument keys that rank them, lines counting
    the rows left aside, and what chose them."""
    has_instrument, has_outcome = "instrument" in frame.columns, "outcome" in frame.columns
    if not (has_instrument or has_outcome):
        raise InputError(f"{path}: --outcome needs an 'instrument' (or 'outcome') column in the table")
    if outcome in s["outcomes"] and has_instrument:
        instruments = list(s["outcomes"][outcome])
        matched = rows["instrument"].isin(instruments)
        how = f"outcome {outcome} = instruments {', '.join(instruments)} (config meta.outcomes)"
    elif has_instrument and (rows["instrument"] == outcome).any():
        instruments, matched = [outcome], rows["instrument"] == outcome
        how = f"instrument {outcome}"
    elif has_outcome and (rows["outcome"] == outcome).any():
        matched = rows["outcome"] == outcome
        instruments = list(dict.fromkeys(rows.loc[matched, "instrument"]))
        how = f"outcome column = {outcome}"
    else:
        extra = f" (nor outcome '{outcome}')" if has_outcome else ""
        raise InputError(f"{path}: no rows with instrument '{outcome}'{extra}")
    context = matched & (rows["use"] == "context")
    rows.loc[~matched, "reason"] = "another outcome"
    rows.loc[context, "reason"] = "use 'context': reported for context, never pooled"
    summary = [f"{int((~matched).sum())} rows of other outcomes"]
    if context.any():
        summary.append(f"{int(context.sum())} rows with use 'context' (never pooled)")
    missing = [c for c in ("use", "timepoint", "analysis") if c not in frame.columns]
    selection = (
        f"{how}: one row per study as the meta stage chooses (use in {', '.join(s['uses'])}; timepoint preference "
        f"{', '.join(s['timepoints'])}; then instrument, then analysis {', '.join(s['analyses'])}; config meta)"
        + (f"; the table has no {', '.join(missing)} column, which then does not restrict" if missing else "")
        + "; pooled in publication order"
    )
    return matched & ~context, instruments, summary, selection


def _select(rows: pd.DataFrame, candidates: pd.Series, instruments: list[str], s: dict, frame) -> pd.DataFrame:
    """``stage.select_outcome_rows`` on the candidate rows; marks ``included`` / ``reason`` in ``rows``; returns
    the included rows sorted as the stage pools them (year, then study)."""
    from imrstats.meta.stage import select_outcome_rows

    work = rows.loc[candidates].copy()
    uses = list(s["uses"]) + ([""] if "use" not in frame.columns else [])
    timepoints = list(s["timepoints"]) + ([""] if "timepoint" not in frame.columns else [])
    chosen = select_outcome_rows(work, instruments, uses=uses, timepoints=timepoints, analyses=s["analyses"])
    failed = chosen["reason"].str.startswith("conversion failed: ")
    chosen.loc[failed, "reason"] = "cannot be used: " + chosen.loc[failed, "problem"]
    rows.loc[chosen.index, "included"] = chosen["included"]
    rows.loc[chosen.index, "reason"] = chosen["reason"]
    included = rows.loc[rows["included"]]
    return included.sort_values(["year", "study"], kind="stable").reset_index(drop=True)


def _direction_text(pooled: pd.DataFrame, arms) -> str:
    a1 = arms[0]
    signed = pooled["direction"].str.startswith(("sign", "instrument registry"))
    if signed.all():
        return f"positive favours {a1}"
    if not signed.any():
        return "the sign as computed or reported (no sign column or registry instrument gives a direction)"
    return (
        f"positive favours {a1} where a sign column or the instrument registry gives the direction "
        f"({int(signed.sum())} of {len(pooled)} rows); the other rows' sign as computed or reported"
    )
