"""Report HTML: the shared pieces every stage's section is built from (tables, figures, flag boxes) and
the Jinja2 environment that renders the section templates in `report/templates/`.

Presentation only: these functions format numbers and escape text; they compute nothing.
"""

from __future__ import annotations

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

_ENVIRONMENT = Environment(
    loader=PackageLoader("imrstats.report", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def render_template(name: str, **context) -> str:
    """Render `report/templates/<name>` with the context (autoescaped; undefined names are errors)."""
    return _ENVIRONMENT.get_template(name).render(**context)


def table_html(frame: pd.DataFrame, *, caption: str = "", method: str = "", digits: int = 3) -> str:
    """One report table: a caption, the table, and the method that made its numbers (escaped HTML)."""
    import html as _html

    shown = frame.copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0
                                        else f"{v:.{digits}f}")
    parts = []
    if caption:
        parts.append(f"<p class='caption'>{_html.escape(caption)}</p>")
    parts.append(shown.to_html(index=False, border=0, classes="tbl", na_rep="", escape=True))
    if method:
        parts.append(f"<p class='method'>Method: {_html.escape(method)}</p>")
    return "\n".join(parts)


def flags_html(flags: list[str], title: str = "Warnings") -> str:
    """The report's box of flags: a bold title with the count and one list item per flag (escaped HTML);
    empty when there is nothing to flag."""
    import html as _html

    if not flags:
        return ""
    items = "".join(f"<li>{_html.escape(f)}</li>" for f in flags)
    return f"<div class='flag'><b>{_html.escape(title)} ({len(flags)})</b><ul>{items}</ul></div>"


def figure_html(name: str, caption: str) -> str:
    import html as _html

    return (f"<figure><img src='figures/{_html.escape(name)}.png' alt='{_html.escape(caption)}'>"
            f"<figcaption>{_html.escape(caption)}</figcaption></figure>")
