"""Report HTML: the shared pieces every stage's section is built from (tables, figures, flag boxes) and
the Jinja2 environment that renders the section templates in `report/templates/`.

Presentation only: these functions format numbers (by `report.format`) and escape text; they compute nothing.
Templates may use the filters `number`, `p` and `ci` (the formatters of `report.format`) and the globals
`table`, `figure` and `flags` (the three helpers below), so a section template reads
`{{ table(frame, caption="...") }}`.
"""

from __future__ import annotations

import re

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from imrstats.report.format import format_ci, format_fixed, format_number, format_p, is_p_column, typographic
from imrstats.report.labels import column_label, level_text
from imrstats.results import IDENTIFIER_COLUMNS, identifiers_first

_ENVIRONMENT = Environment(
    loader=PackageLoader("imrstats.report", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENVIRONMENT.filters.update(number=format_number, p=format_p, ci=format_ci)


def render_template(template: str, /, **context) -> str:
    """Render `report/templates/<template>` with the context (autoescaped; undefined names are errors)."""
    return _ENVIRONMENT.get_template(template).render(**context)


# a minus sign, not a hyphen, in the numbers of a table
# a text column whose longest cell is longer than this is shown as numbered footnotes under its table
FOOTNOTE_CHARS = 60
# columns that name what a row is: shown in the table as they are, never moved to footnotes
_IDENTIFIERS = frozenset(IDENTIFIER_COLUMNS) | {"quantity", "characteristic", "parameter", "estimand", "group"}
# count columns: shown as whole numbers when every value is one
_COUNT = re.compile(r"^(n|k|m|k0|count|events|rows|effects|year|order|row|attempts|participants)$|^[nk]_|_n_|_n$")
# degrees of freedom: one decimal (whole numbers when every value is one, as complete-data df)
_DF = re.compile(r"^df(\d*|_.*)$|_df$")
# a section's own interval columns: "95% CI low", "CI high"
_HUMAN_CI = re.compile(r"^(?:(\d+(?:\.\d+)?)% )?CI (low|high)$")


def _missing(value) -> bool:
    return value is None or (not isinstance(value, (str, bytes)) and pd.api.types.is_scalar(value) and pd.isna(value))


def _number(value, digits: int) -> str:
    return "" if _missing(value) else typographic(format_number(value, digits, missing=""))


def _fixed(value, digits: int) -> str:
    """An interval's number: exactly ``digits`` decimals (`format_fixed`), a minus sign for the hyphen."""
    if isinstance(value, str):  # a cell a section wrote as text already: shown as it is
        return value
    return "" if _missing(value) else typographic(format_fixed(value, digits, missing=""))


def _whole(values: pd.Series) -> bool:
    """Every non-missing value is a whole number (and there is one)."""
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return len(numbers) > 0 and bool((numbers == numbers.round()).all()) and bool((numbers.abs() < 1e15).all())


def _formatter(series: pd.Series, column: str, digits: int):
    """How a column's cells read: yes / no for booleans; p-values by `format_p`; df to one decimal; counts and
    integer columns as whole numbers; other numbers with `digits` decimals; text as it is. Also whether the
    column holds numbers (right-aligned)."""
    name = str(column)
    if pd.api.types.is_bool_dtype(series):
        return (lambda v: "" if _missing(v) else ("yes" if v else "no")), False
    if not pd.api.types.is_numeric_dtype(series):
        return (lambda v: "" if _missing(v) else _text(v, name, digits)), False
    if is_p_column(name):
        return (lambda v: format_p(v)), True
    if _DF.search(name):
        one = 0 if _whole(series) else 1
        return (lambda v: _number(v, one)), True
    if pd.api.types.is_integer_dtype(series) or (_COUNT.search(name) and _whole(series)):
        return (lambda v: "" if _missing(v) else typographic(str(int(round(float(v)))))), True
    return (lambda v: _number(v, digits)), True


def _text(value, column: str, digits: int) -> str:
    """A cell of a text column: numbers in it (a mixed column) formatted, text as it is."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format_p(value) if is_p_column(column) else _number(value, digits)
    return str(value)


def _methods(frame: pd.DataFrame, method: str, method_column: str) -> tuple[pd.DataFrame, list[str]]:
    """The method text shown under a table. The caller's `method` wins; otherwise the rows' own
    `method_column`: one distinct text is shown once below the table (and its column dropped); several are
    listed once each, numbered, and the column holds each row's number."""
    if method or method_column not in frame.columns:
        return frame, [method] if method else []
    texts = [t for t in dict.fromkeys(frame[method_column].dropna().astype(str)) if t.strip()]
    if len(texts) <= 1:
        return frame.drop(columns=method_column), texts
    number = {t: f"[{i}]" for i, t in enumerate(texts, start=1)}
    shown = frame.assign(**{method_column: frame[method_column].map(lambda t: number.get(str(t), ""))})
    return shown, [f"{number[t]} {t}" for t in texts]


def _is_long_text(frame: pd.DataFrame, column, position: int) -> bool:
    """A text column (not the first, not an identifier) whose longest cell is longer than `FOOTNOTE_CHARS`."""
    series = frame.iloc[:, position]
    if position == 0 or str(column) in _IDENTIFIERS or pd.api.types.is_numeric_dtype(series):
        return False
    texts = [str(v) for v in series if not _missing(v)]
    return bool(texts) and max(map(len, texts)) > FOOTNOTE_CHARS


def _footnotes(frame: pd.DataFrame, start: int, arms) -> tuple[pd.DataFrame, list[str]]:
    """Long text columns as numbered footnotes: each distinct text once, numbered from `start` across the
    table's columns, the cells holding the numbers. A column whose every row holds the same text is dropped and
    its text listed once. Returns the frame shown and the footnote lines ("[3] Notes: ...")."""
    notes: list[str] = []
    number: dict[tuple[str, str], str] = {}
    shown = frame.copy()
    drop = []
    for position, column in enumerate(frame.columns):
        if not _is_long_text(frame, column, position):
            continue
        label = column_label(column, arms)
        cells = ["" if _missing(v) else str(v) for v in frame.iloc[:, position]]
        distinct = [t for t in dict.fromkeys(cells) if t.strip()]
        if len(distinct) == 1 and all(c == distinct[0] for c in cells):
            notes.append(f"{label}: {distinct[0]}")
            drop.append(position)
            continue
        for text in distinct:
            number[(label, text)] = f"[{start + len(number)}]"
            notes.append(f"{number[(label, text)]} {label}: {text}")
        shown.iloc[:, position] = [number.get((label, c), "") for c in cells]
    keep = [i for i in range(frame.shape[1]) if i not in drop]
    return shown.iloc[:, keep], notes


# the stems of intervals shown without a point: ci, pi, hpd and a posterior parameter's (HPD) interval
_PARAMETERS = ("mu", "mu_new", "tau", "theta")
_ALONE = frozenset({"ci", "pi", "hpd", *_PARAMETERS, *(p + "_hpd" for p in _PARAMETERS)})


def _intervals(columns: list[str], level: float) -> dict[str, tuple[str, str, str]]:
    """The interval families of a table's columns, each shown as one "estimate (low to high)" cell: the point
    column -> (low column, high column, kind). Kinds: "CI" (estimate[_s] with ci_low[_s] / ci_high[_s]; X with
    X_ci_low / X_ci_high; yi with ci_low / ci_high; a column followed by a section's "95% CI low" / "CI high"),
    "CrI" (a posterior's X_mean or X_median with X_low / X_high). An interval with no point (pi_low / pi_high,
    hpd_low / hpd_high, X_hpd_low / X_hpd_high, ci_low / ci_high alone) is keyed by its low column."""
    have = set(columns)
    found: dict[str, tuple[str, str, str]] = {}
    used: set[str] = set()

    def add(point, low, high, kind):
        if low in have and high in have and low not in used and high not in used and point not in used:
            found[point] = (low, high, kind)
            used.update({point, low, high})

    for c in columns:
        if c == "estimate" or c.startswith("estimate_"):
            add(c, "ci_low" + c.removeprefix("estimate"), "ci_high" + c.removeprefix("estimate"), "CI")
    for c in columns:
        if f"{c}_ci_low" in have:
            add(c, f"{c}_ci_low", f"{c}_ci_high", "CI")
    if "yi" in have:
        add("yi", "ci_low", "ci_high", "CI")
    for c in columns:  # a posterior summary: mean (or median) with its equal-tailed interval
        for centre in ("_mean", "_median"):
            if c.endswith(centre):
                add(c, c.removesuffix(centre) + "_low", c.removesuffix(centre) + "_high", "CrI")
    for i, c in enumerate(columns):  # a section's own "95% CI low" / "CI high" after its estimate
        m = _HUMAN_CI.match(c)
        if m and m.group(2) == "low" and i > 0:
            high = c.removesuffix("low") + "high"
            add(columns[i - 1], c, high, f"CI@{m.group(1) or ''}")
    for c in columns:  # intervals with no point estimate of their own
        if c.endswith("_low") and c.removesuffix("_low") in _ALONE:
            high = c.removesuffix("_low") + "_high"
            if high in have and c not in used and high not in used:
                found[c] = (c, high, "alone")
                used.update({c, high})
    return found


def _spreads(columns: list[str], taken: set[str]) -> dict[str, tuple[str, str]]:
    """Means shown with their SE or SD in one "46.42 (1.21)" cell: a column with the word "mean" and the column
    named the same with "se" or "sd" for it ("itt_post_mean_imr" + "itt_post_se_imr"; "mean_tau" + "sd_tau").
    Returns mean column -> (spread column, "SE" or "SD")."""
    have, found = set(columns), {}
    for c in columns:
        words = c.split("_")
        if "mean" not in words or c in taken:
            continue
        at = words.index("mean")
        for spread in ("se", "sd"):
            other = "_".join(words[:at] + [spread] + words[at + 1 :])
            if other in have and other not in taken and other not in found.values():
                found[c] = (other, spread.upper())
                break
    return found


def _spread_header(mean: str, kind: str, arms) -> str:
    """ "ITT post: mean (SE) (IMR)" -> "ITT post: mean (SE), IMR"; "Mean (TAU)" -> "Mean (SD), TAU"."""
    label = column_label(mean, arms)
    at = label.lower().find("mean")
    head = f"{label[: at + 4]} ({kind}){label[at + 4 :]}"
    return re.sub(r" \(([^()]*)\)$", r", \1", head) if head.count("(") > 1 else head


def _interval_header(point: str, low: str, kind: str, level: float, arms) -> str:
    """ "Estimate (95% CI)", "Estimate (95% CI), with", "mu: mean (95% CrI)", "95% PI", "mu: 95% HPD"."""
    if kind.startswith("CI@"):
        shown = level_text(float(kind[3:]) / 100) if kind[3:] else level_text(level)
        return f"{column_label(point, arms)} ({shown} CI)"
    if kind == "alone":
        stem = low.removesuffix("_low")
        what = {"ci": "CI", "pi": "PI", "hpd": "HPD interval"}.get(stem.rsplit("_", 1)[-1], "CrI")
        parameter = stem.removesuffix("_hpd") if stem in _PARAMETERS or stem.endswith("_hpd") else ""
        text = f"{level_text(level)} {what}"
        return f"{column_label(parameter + '_mean', arms).split(':')[0]}: {text}" if parameter else text
    full, base = column_label(point, arms), column_label("estimate", arms)
    if point.startswith("estimate_") and full.startswith(base):
        return f"{base} ({level_text(level)} {kind}){full[len(base) :]}"
    return f"{full} ({level_text(level)} {kind})"


def _interval_cell(point, low, high, digits: int) -> str:
    """ "0.25 (\u22120.05 to 0.51)"; the point alone when the interval is missing; "\u22120.05 to 0.51" for an
    interval with no point; blank when all are missing."""
    ends = "" if _missing(low) or _missing(high) else f"{_fixed(low, digits)} to {_fixed(high, digits)}"
    if point is None:
        return ends
    if _missing(point):
        return f"({ends})" if ends else ""
    return f"{_fixed(point, digits)} ({ends})" if ends else _fixed(point, digits)


def _spread_cell(mean, spread, digits: int) -> str:
    """ "46.420 (1.208)"; the mean alone when its spread is missing; blank when the mean is."""
    if _missing(mean):
        return ""
    return f"{_number(mean, digits)} ({_number(spread, digits)})" if not _missing(spread) else _number(mean, digits)


def _empty_columns(frame: pd.DataFrame) -> list[str]:
    """Columns with no value in any row (not the first column): left out of the table and named under it."""
    if len(frame) == 0:
        return []
    return [
        str(c)
        for i, c in enumerate(frame.columns)
        if i > 0 and all(_missing(v) or (isinstance(v, str) and not v.strip()) for v in frame.iloc[:, i])
    ]


def table_html(
    frame: pd.DataFrame,
    *,
    caption: str = "",
    method: str = "",
    digits: int = 3,
    method_column: str = "method",
    level: float = 0.95,
    arms=None,
) -> str:
    """One report table: a caption, the table, the method that made its numbers and the footnotes (escaped HTML).

    Columns are shown in the order of the table's CSV (`imrstats.results.identifiers_first`) under human labels
    (`report.labels.column_label`; `arms` are the data's arm labels, for names ending in an arm). An estimate and
    its interval are one cell, "0.25 (\u22120.05 to 0.51)", headed "Estimate (95% CI)" (`level` names the
    interval unless a column says its own). p-values read "< 0.001", "0.004", "0.03", "0.049"; df one decimal;
    counts whole numbers; other numbers `digits` decimals. The method comes from the rows' own `method` column
    unless `method` is given (for a table with no such column); each distinct text is listed once. Long text
    columns (notes, reasons, sources, ...) become numbered footnotes under the table. Nothing is dropped: every
    column is shown, merged or footnoted.
    """
    # the columns in the order of the table's CSV: identifiers, then the estimate columns, then extras
    shown, methods = _methods(identifiers_first(frame).reset_index(drop=True), method, method_column)
    numbered = sum(1 for m in methods if m.startswith("["))
    shown, notes = _footnotes(shown, numbered + 1, arms)
    empty = _empty_columns(shown)
    if empty:
        shown = shown.drop(columns=empty)
        notes.append("No value in any row (not shown): " + ", ".join(column_label(c, arms) for c in empty) + ".")
    names = [str(c) for c in shown.columns]
    shown = shown.set_axis(names, axis=1)
    intervals = _intervals(names, level)
    merged = {c for point, (low, high, _) in intervals.items() for c in (low, high) if c != point}
    spreads = _spreads(names, merged | set(intervals))
    merged |= {spread for spread, _ in spreads.values()}
    columns, cells = [], []
    for name in names:
        if name in intervals:
            low, high, kind = intervals[name]
            point = None if kind == "alone" else name
            title = ", ".join(c for c in (point, low, high) if c)
            columns.append(
                {"label": _interval_header(name, low, kind, level, arms), "title": title, "num": True, "id": False}
            )
            cells.append(
                [
                    _interval_cell(
                        None if point is None else shown.at[i, point], shown.at[i, low], shown.at[i, high], digits
                    )
                    for i in shown.index
                ]
            )
            continue
        if name in spreads:
            spread, kind = spreads[name]
            columns.append(
                {"label": _spread_header(name, kind, arms), "title": f"{name}, {spread}", "num": True, "id": False}
            )
            cells.append([_spread_cell(shown.at[i, name], shown.at[i, spread], digits) for i in shown.index])
            continue
        if name in merged:
            continue
        series = shown[name]
        fmt, numeric = _formatter(series, name, digits)
        label = column_label(name, arms)
        ident = not numeric and (name in _IDENTIFIERS or not columns)
        columns.append({"label": label, "title": name if label != name else "", "num": numeric, "id": ident})
        cells.append([fmt(v) for v in series])
    parts = [
        {"columns": [columns[i] for i in part], "rows": [[cells[i][r] for i in part] for r in range(len(shown))]}
        for part in _split(columns, cells)
    ]
    return render_template("table.html.j2", caption=caption, parts=parts, methods=methods, notes=notes)


# the width a table may take: the report's main column at a 1400 px window (about 1110 px beside the contents
# column), in the units of the estimate below, which reads about 8% wider than Chromium lays out DejaVu Sans (a
# margin for other fonts); a wider table is shown in parts, each repeating the identifier columns
MAX_TABLE_PX = 1120
_FONT_PX = 12.8  # the table's font: 0.8em of 16 px (tables.css)
_PAD_PX = 13  # a cell's padding and border


def _text_px(text: str, bold: bool = False) -> float:
    """The width of a line of text at the table's font, from typical sans-serif advance widths (em): digits
    0.56, narrow marks 0.3, capitals 0.68, lower case 0.52; bold 7% wider."""
    em = sum(
        0.56
        if ch.isdigit()
        else 0.3
        if ch in " .,:;()[]|'-/!"
        else 0.68
        if ch.isupper()
        else 0.52
        if ch.islower()
        else 0.6
        for ch in text
    )
    return em * _FONT_PX * (1.07 if bold else 1.0)


def _min_width(column: dict, values: list[str]) -> float:
    """A column's narrowest width as the browser lays it out (its min-content): numbers do not wrap, text and
    headers wrap at spaces only; header and text cells have a minimum width (tables.css)."""
    if column["num"]:
        body = max((_text_px(v) for v in values), default=0.0)
    else:
        body = max(max((_text_px(w) for v in values for w in v.split()), default=0.0), 4 * _FONT_PX)
    head = max(max((_text_px(w, bold=True) for w in column["label"].split()), default=0.0), 3 * _FONT_PX)
    return max(body, head) + _PAD_PX


def _split(columns: list[dict], cells: list[list[str]]) -> list[list[int]]:
    """The table's columns in parts that each fit `MAX_TABLE_PX`: one part when the table fits; else the leading
    identifier columns in every part and the other columns, in order, filled into parts. Every column is in a
    part; none is dropped."""
    widths = [_min_width(c, v) for c, v in zip(columns, cells)]
    if sum(widths) <= MAX_TABLE_PX:
        return [list(range(len(columns)))]
    lead = 0
    while lead < len(columns) - 1 and columns[lead]["id"]:
        lead += 1
    ids, budget = list(range(lead)), MAX_TABLE_PX - sum(widths[:lead])
    rest = list(range(lead, len(columns)))
    count = 1  # the fewest parts the greedy fill needs; then the columns spread evenly over that many
    used = 0.0
    for i in rest:
        if used and used + widths[i] > budget:
            count, used = count + 1, 0.0
        used += widths[i]
    target = max(sum(widths[i] for i in rest) / count, max(widths[i] for i in rest))
    parts, current, used = [], [], 0.0
    for i in rest:
        if current and (used + widths[i] > budget or (used + widths[i] / 2 > target and len(parts) < count - 1)):
            parts.append(ids + current)
            current, used = [], 0.0
        current.append(i)
        used += widths[i]
    parts.append(ids + current)
    return parts


def flags_html(flags: list[str], title: str = "Warnings") -> str:
    """The report's box of flags: a bold title with the count and one list item per flag (escaped HTML);
    empty when there is nothing to flag."""
    if not flags:
        return ""
    return render_template("flags.html.j2", flags=list(flags), title=title)


def figure_html(name: str, caption: str) -> str:
    """A figure written by the stage as figures/<name>.png, with its caption."""
    return render_template("figure.html.j2", name=name, caption=caption)


_ENVIRONMENT.globals.update(
    table=lambda *a, **k: Markup(table_html(*a, **k)),
    figure=lambda *a, **k: Markup(figure_html(*a, **k)),
    flags=lambda *a, **k: Markup(flags_html(*a, **k)),
)
