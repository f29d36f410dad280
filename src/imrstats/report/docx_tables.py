"""results/report/tables.docx: the Summary of Findings and Jensen et al. 2019, Tables 2 and 3 in a Word file laid out
as a journal expects (python-docx): the title above each table, header rows with merged cells for the spanners,
rules above and below the header and below the table only (no vertical rules), numbers right-aligned, row groups
as their own rows, the notes below in small type, and a landscape section for the wide Table 3.

Byte-identical across runs: the core properties are fixed (dates, author "imrstats", revision 1) and the zip is
rewritten with fixed entry timestamps (python-docx stamps the current time into the zip entries). Written
atomically: a temporary file in the same folder, then `os.replace`, so a failed run leaves no half-written file.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
from docx import Document
from docx.enum.section import WD_ORIENT, WD_SECTION
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt

from imrstats.report.manuscript import GRADE_SYMBOLS, ManuscriptTable, spanner_runs, summary_of_findings_display

FIXED_DATE = _dt.datetime(2000, 1, 1, 0, 0, 0)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644  # as an ordinary file (mkstemp makes its file private)
A4 = (Cm(21.0), Cm(29.7))
MARGIN = Cm(2.0)
MARGIN_WIDE = Cm(1.5)
FONT = "Times New Roman"
BODY_PT = {"table1": 9.0, "table2": 9.0, "table3": 7.0}
NOTE_PT = 7.5
STUB_CM = {"table1": 4.5, "table2": 5.0, "table3": 2.6}
ALIGN = {"left": WD_ALIGN_PARAGRAPH.LEFT, "center": WD_ALIGN_PARAGRAPH.CENTER, "right": WD_ALIGN_PARAGRAPH.RIGHT}


def _border(cell, **edges: str) -> None:
    """Set cell borders: edge name (top, bottom) -> "single" (thick) | "thin"."""
    tc_pr = cell._tc.get_or_add_tcPr()
    borders = tc_pr.find(qn("w:tcBorders"))
    if borders is None:
        borders = OxmlElement("w:tcBorders")
        tc_pr.append(borders)
    for edge, weight in edges.items():
        el = borders.find(qn(f"w:{edge}"))
        if el is None:
            el = OxmlElement(f"w:{edge}")
            borders.append(el)
        el.set(qn("w:val"), "single")
        el.set(qn("w:sz"), "8" if weight == "single" else "4")
        el.set(qn("w:space"), "0")
        el.set(qn("w:color"), "000000")


def _write(cell, text: str, *, size: float, align=WD_ALIGN_PARAGRAPH.LEFT, bold=False, italic=False, sup: str = ""):
    par = cell.paragraphs[0]
    par.alignment = align
    fmt = par.paragraph_format
    fmt.space_before = fmt.space_after = Pt(0)
    run = par.add_run(text)
    run.font.size, run.font.bold, run.font.italic = Pt(size), bold, italic
    if sup:
        s = par.add_run(sup)
        s.font.size, s.font.superscript = Pt(size), True


def _title(doc, title: str) -> None:
    par = doc.add_paragraph()
    par.paragraph_format.space_after = Pt(4)
    par.paragraph_format.keep_with_next = True
    words = title.split(" ", 2)
    head, rest = (" ".join(words[:2]), words[2] if len(words) > 2 else "") if words[0] == "Table" else ("", title)
    if head:
        r = par.add_run(head + " ")
        r.font.bold = True
    par.add_run(rest)


def _notes(doc, table: ManuscriptTable) -> None:
    entries = [(n.mark, n.text) for n in table.notes] + ([("", table.source)] if table.source else [])
    for mark, text in entries:
        par = doc.add_paragraph()
        par.paragraph_format.space_before = par.paragraph_format.space_after = Pt(0)
        if mark:
            m = par.add_run(mark)
            m.font.size, m.font.superscript = Pt(NOTE_PT), True
        r = par.add_run(text)
        r.font.size = Pt(NOTE_PT)
    doc.add_paragraph()


def _usable_width(section) -> int:
    return section.page_width - section.left_margin - section.right_margin


def add_table(doc, table: ManuscriptTable) -> None:
    """Append ``table`` to ``doc``: its title, the header rows (spanners merged over their columns), the body
    (row groups as their own rows) and its notes."""
    size = BODY_PT.get(table.key, 8.0)
    ids = table.column_ids
    depth = table.spanner_depth
    n_head = depth + 1
    groups = [g for g in table.groups() if g]
    n_rows = n_head + len(table.body) + len(groups)
    _title(doc, table.title)
    t = doc.add_table(rows=n_rows, cols=len(ids) + 1)
    t.autofit = False
    width = _usable_width(doc.sections[-1])
    stub = Cm(STUB_CM.get(table.key, 4.0))
    other = int((width - stub) / max(len(ids), 1))
    for row in t.rows:
        for j, cell in enumerate(row.cells):
            cell.width = stub if j == 0 else other
    # header: the stub head spans every header row; spanners merged over their runs; a column with fewer spanners
    # than the deepest has its label cell merged down from below its last spanner
    stub_cell = t.cell(0, 0).merge(t.cell(depth, 0)) if depth else t.cell(0, 0)
    stub_cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.BOTTOM
    _write(stub_cell, table.stub_label, size=size, bold=True)
    for d in range(depth):
        for label, first, last in spanner_runs(table.columns, d):
            cell = t.cell(d, first + 1).merge(t.cell(d, last + 1)) if last > first else t.cell(d, first + 1)
            _write(cell, label, size=size, align=WD_ALIGN_PARAGRAPH.CENTER, bold=True)
            _border(cell, bottom="thin")
    for j, col in enumerate(table.columns, start=1):
        top = len(col.spanners)
        cell = t.cell(top, j).merge(t.cell(depth, j)) if top < depth else t.cell(depth, j)
        cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.BOTTOM
        _write(cell, col.label, size=size, align=ALIGN.get(col.align, WD_ALIGN_PARAGRAPH.RIGHT), bold=True)
    # python-docx's Table.cell() walks the whole table on every call; fetch each row's cells once instead
    for cell in t.rows[0].cells:
        _border(cell, top="single")
    for cell in t.rows[depth].cells:
        _border(cell, bottom="single")
    r = n_head
    current = None
    for i, row in enumerate(table.body.itertuples(index=False)):
        rec = dict(zip(table.body.columns, row))
        if rec["group"] and rec["group"] != current:
            current = rec["group"]
            cell = t.cell(r, 0).merge(t.cell(r, len(ids)))
            _write(cell, str(current), size=size, italic=True)
            r += 1
        indent = "  " if groups else ""
        cells = t.rows[r].cells
        _write(cells[0], indent + str(rec["label"]), size=size)
        for j, col in enumerate(table.columns, start=1):
            text = str(rec[col.id])
            marks = table.marks.get((i, col.id), "")
            if table.key == "table1" and col.id == "certainty" and text.lower() in GRADE_SYMBOLS:
                text = f"{GRADE_SYMBOLS[text.lower()]} {text}"
            _write(cells[j], text, size=size, align=ALIGN.get(col.align, WD_ALIGN_PARAGRAPH.RIGHT), sup=marks)
        r += 1
    for cell in t.rows[n_rows - 1].cells:
        _border(cell, bottom="single")
    _notes(doc, table)


def _page(section, landscape: bool) -> None:
    width, height = A4
    section.orientation = WD_ORIENT.LANDSCAPE if landscape else WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = (height, width) if landscape else (width, height)
    margin = MARGIN_WIDE if landscape else MARGIN
    section.left_margin = section.right_margin = section.top_margin = section.bottom_margin = margin


def tables_document(*tables: ManuscriptTable):
    """A python-docx Document with ``tables`` in order; a table marked ``landscape`` gets a landscape section of its
    own (the document returns to portrait after it)."""
    doc = Document()
    normal = doc.styles["Normal"]
    normal.font.name = FONT
    normal.font.size = Pt(10)
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), FONT)
    _page(doc.sections[0], False)
    landscape = False
    first = True
    for table in tables:
        if table.landscape != landscape or (not first and table.landscape):
            _page(doc.add_section(WD_SECTION.NEW_PAGE), table.landscape)
            landscape = table.landscape
        add_table(doc, table)
        first = False
    props = doc.core_properties
    props.author = props.last_modified_by = "imrstats"
    props.title = "Summary of findings and trial tables"
    props.created = props.modified = props.last_printed = FIXED_DATE
    props.revision = 1
    return doc


def deterministic_zip(data: bytes) -> bytes:
    """The zip ``data`` rewritten with every entry's timestamp, attributes and compression fixed (same order)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 0
            entry.external_attr = 0
            dst.writestr(entry, src.read(info.filename))
    return out.getvalue()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def tables_docx_bytes(
    sof: ManuscriptTable | pd.DataFrame | None,
    table2: ManuscriptTable | None,
    table3: ManuscriptTable | None,
) -> bytes:
    """The bytes of the Word file (deterministic). ``sof``: the SoF `ManuscriptTable`
    (`summary_of_findings_display`) or the evidence_summary_of_findings frame itself. A table that the run did
    not produce (None: no pooled evidence, no trial data) is left out; with none at all the document says so."""
    if isinstance(sof, pd.DataFrame):
        sof = summary_of_findings_display(sof)
    tables = [t for t in (sof, table2, table3) if t is not None]
    doc = tables_document(*tables)
    if not tables:
        doc.add_paragraph(
            "This run produced no publication tables: no trial data (Tables 2 and 3) and no pooled evidence "
            "(summary of findings)."
        )
    buf = io.BytesIO()
    doc.save(buf)
    return deterministic_zip(buf.getvalue())


def write_tables_docx(
    path: str | Path,
    sof: ManuscriptTable | pd.DataFrame | None,
    table2: ManuscriptTable | None,
    table3: ManuscriptTable | None,
) -> Path:
    """Write results/report/tables.docx (or ``path``): Table 1 Summary of findings, Table 2 and Table 3 (landscape),
    those the run produced, byte-identical across runs, atomically. Returns the path."""
    return atomic_write_bytes(path, tables_docx_bytes(sof, table2, table3))
