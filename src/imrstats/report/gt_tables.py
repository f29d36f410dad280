"""HTML of the publication tables (`imrstats.report.manuscript.ManuscriptTable`) with great_tables: the title,
spanners over the arm and visit column groups, row groups, the certainty of the evidence with its GRADE symbols,
the lettered and general notes and the source of the layout.

Deterministic: every table has a fixed id (great_tables draws a random one otherwise), so the same table gives the
same bytes on every run. great_tables puts a style block scoped to the table id in each table (about 9 kB).
"""

from __future__ import annotations

import html as _html

from great_tables import GT, html, style
from great_tables import loc as _loc

from imrstats.report.manuscript import GRADE_SYMBOLS, ManuscriptTable, spanner_runs

TABLE_IDS = {"table1": "imr-table-sof", "table2": "imr-table-2", "table3": "imr-table-3"}


def _table_id(table: ManuscriptTable, table_id: str | None) -> str:
    return table_id or TABLE_IDS.get(table.key, f"imr-{table.key}")


def certainty_html(word: str, marks: str = "") -> str:
    """A certainty cell: the GRADE symbols, the word and the footnote letters as a superscript."""
    symbols = GRADE_SYMBOLS.get(word.lower(), "")
    out = (
        f'<span class="grade-symbols" aria-hidden="true">{symbols}</span> {_html.escape(word)}'
        if symbols
        else _html.escape(word)
    )
    return out + (f"<sup>{_html.escape(marks)}</sup>" if marks else "")


def _cell_html(text: str, marks: str = "") -> str:
    return _html.escape(str(text)) + (f"<sup>{_html.escape(marks)}</sup>" if marks else "")


def gt_table(table: ManuscriptTable, table_id: str | None = None) -> GT:
    """The `great_tables.GT` of ``table`` (fixed id: ``table_id`` or the table's default)."""
    tid = _table_id(table, table_id)
    ids = table.column_ids
    data = table.body[["group", "label", *ids]].copy().astype(str)
    html_cols: set[str] = set()
    for (i, cid), marks in sorted(table.marks.items()):
        data.loc[data.index[i], cid] = _cell_html(table.body.iloc[i][cid], marks)
        html_cols.add(cid)
    if "certainty" in ids and table.key == "table1":
        for i in range(len(data)):
            data.iloc[i, data.columns.get_loc("certainty")] = certainty_html(
                str(table.body.iloc[i]["certainty"]), table.marks.get((i, "certainty"), "")
            )
        html_cols.add("certainty")
    has_groups = any(g for g in data["group"])
    if not has_groups:
        data = data.drop(columns="group")
    gt = GT(data, rowname_col="label", groupname_col="group" if has_groups else None, id=tid, auto_align=False)
    gt = gt.tab_header(title=table.title).tab_stubhead(table.stub_label)
    gt = gt.cols_label(**{c.id: c.label for c in table.columns})
    depth = table.spanner_depth
    for d in range(depth - 1, -1, -1):  # innermost first, as great_tables stacks them
        for n, (label, first, last) in enumerate(spanner_runs(table.columns, d)):
            cols = ids[first : last + 1]
            gt = gt.tab_spanner(label, columns=cols, level=depth - d, id=f"{tid}-s{d}-{n}")
    for align in ("left", "center", "right"):
        cols = [c.id for c in table.columns if c.align == align]
        if cols:
            gt = gt.cols_align(align, columns=cols)
    if html_cols:
        gt = gt.fmt_markdown(columns=sorted(html_cols))
    gt = gt.tab_style(style.text(weight="bold"), _loc.row_groups())
    for note in table.notes:
        text = _html.escape(note.text)
        gt = gt.tab_source_note(html(f"<sup>{_html.escape(note.mark)}</sup> {text}" if note.mark else text))
    if table.source:
        gt = gt.tab_source_note(table.source)
    return gt.tab_options(
        table_font_size="13px", source_notes_font_size="11px", data_row_padding="3px", stub_border_style="hidden"
    )


def table_html(table: ManuscriptTable, table_id: str | None = None) -> str:
    """The table's HTML fragment (a ``<div id=...>`` with its scoped style block), byte-identical across runs."""
    return gt_table(table, table_id).as_raw_html()


def manuscript_tables_html(*tables: ManuscriptTable) -> str:
    """The HTML fragments of ``tables`` one after another (each with its fixed id)."""
    return "\n".join(table_html(t) for t in tables)
