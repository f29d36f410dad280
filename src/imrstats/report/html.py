"""Report HTML: the shared pieces every stage's section is built from (tables, figures, flag boxes) and
the Jinja2 environment that renders the section templates in `report/templates/`.

Presentation only: these functions format numbers (by `report.format`) and escape text; they compute nothing.
Templates may use the filters `number`, `p` and `ci` (the formatters of `report.format`) and the globals
`table`, `figure` and `flags` (the three helpers below), so a section template reads
`{{ table(frame, caption="...") }}`.
"""

from __future__ import annotations

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from imrstats.report.format import format_ci, format_number, format_p, is_p_column

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


def _cell(value, column, digits: int) -> str:
    """One table cell as text: p-values by `format_p`, other floats by `format_number`, missing as blank."""
    if value is None or (not isinstance(value, (str, bytes)) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    if isinstance(value, float):  # numpy float64 is a float too
        return format_p(value) if is_p_column(column) else format_number(value, digits, missing="")
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


def table_html(
    frame: pd.DataFrame, *, caption: str = "", method: str = "", digits: int = 3, method_column: str = "method"
) -> str:
    """One report table: a caption, the table, and the method that made its numbers (escaped HTML).

    The method comes from the rows' own `method` column unless `method` is given (for a table with no such
    column); each distinct text is listed once. Floats show `digits` decimals, p-value columns as "< 0.001".
    """
    shown, methods = _methods(frame, method, method_column)
    columns = [str(c) for c in shown.columns]
    rows = [[_cell(v, c, digits) for v, c in zip(row, shown.columns)] for row in shown.itertuples(index=False)]
    return render_template("table.html.j2", caption=caption, columns=columns, rows=rows, methods=methods)


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
