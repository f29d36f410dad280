"""Read input tables in any accepted format, and write results atomically.

Accepted inputs: CSV, Parquet, SPSS .sav and Stata .dta (through pyreadstat). Inputs are opened read-only
and never modified. CSV is read as text so that `check` sees the values exactly as written (a stray
"n/a" in a numeric column is reported, not silently turned into a missing value). A CSV file must be UTF-8
(a BOM is fine), use one of , ; or tab as its delimiter (the header decides), and have as many fields in
every row as in its header.
"""

from __future__ import annotations

import csv
import os
import tempfile
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pandas as pd

from imrstats.errors import InputError

TABLES = ("participants", "assessments", "service_use", "programme")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
FORMATS = (".csv", ".parquet", ".sav", ".dta", *EXCEL_SUFFIXES)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read one table; the frame's `attrs['source']` records the file it came from."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        if suffix == ".csv":
            frame = _read_csv(path)
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in (".sav", ".zsav"):
            frame = _read_spss(path)
        elif suffix in EXCEL_SUFFIXES:
            return read_excel_table(path)
        elif suffix == ".dta":
            frame = _read_stata(path)
        else:
            raise InputError(f"{path}: unsupported format '{suffix}' (accepted: {', '.join(FORMATS)})")
    except InputError:
        raise
    except Exception as exc:  # a corrupt or mislabelled file: say which and why
        raise InputError(f"{path}: cannot be read as {suffix[1:]}: {exc}") from None
    frame.attrs["source"] = str(path)
    frame.attrs["format"] = suffix[1:]
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(f"{path}: the file is empty (no header row)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    first = text.splitlines()[0]
    # the delimiter is whichever of , ; tab the header uses most (ties go to the comma)
    sep = max((",", ";", "\t"), key=lambda d: (first.count(d), d == ","))
    _check_field_counts(path, text, sep)
    frame = pd.read_csv(StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                        skipinitialspace=True, index_col=False)
    duplicated = [c for c in frame.columns if "." in c and c.rsplit(".", 1)[0] in frame.columns]
    if duplicated:
        raise InputError(f"{path}: duplicated column names in the header: {', '.join(c.rsplit('.', 1)[0] for c in duplicated)}")
    return frame


def _check_field_counts(path: Path, text: str, sep: str) -> None:
    """Refuse rows with more or fewer fields than the header: pandas would silently shift such a row
    (an extra field turns the first column into an index) or pad it with missing values."""
    reader = csv.reader(StringIO(text), delimiter=sep)
    header = next(reader)
    for row in reader:
        if row and len(row) != len(header):
            raise InputError(f"{path}, line {reader.line_num}: {len(row)} fields where the header has "
                             f"{len(header)} (delimiter {sep!r}); rule: every row has one value per column. "
                             f"Quote values that contain the delimiter, or fix the row")


def _read_spss(path: Path) -> pd.DataFrame:
    import pyreadstat

    # value labels become their text (e.g. arm 1 -> "IMR"); user-missing codes become missing
    frame, _ = pyreadstat.read_sav(str(path), apply_value_formats=True, formats_as_category=False)
    return frame


def _read_stata(path: Path) -> pd.DataFrame:
    import pyreadstat

    frame, _ = pyreadstat.read_dta(str(path), apply_value_formats=True, formats_as_category=False)
    return frame


def find_table_file(directory: str | Path, table: str) -> Path | None:
    """The file holding `table` in `directory` (participants.csv, participants.sav, ...), if any."""
    directory = Path(directory)
    found = [directory / f"{table}{ext}" for ext in FORMATS if (directory / f"{table}{ext}").exists()]
    if len(found) > 1:
        raise InputError(f"{directory}: several files for table '{table}': {', '.join(p.name for p in found)}; keep one")
    return found[0] if found else None


def read_tables(directory: str | Path, tables: tuple[str, ...] = TABLES) -> dict[str, pd.DataFrame]:
    """Every canonical table present in `directory` (a missing table is simply absent from the dict)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    out = {}
    for table in tables:
        path = find_table_file(directory, table)
        if path is not None:
            out[table] = read_table(path)
    if not out:
        raise InputError(f"{directory}: no input tables found (expected files named {', '.join(tables)} "
                         f"with one of {', '.join(FORMATS)})")
    return out


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it replaces `path`, on failure it is removed.

    A killed or failed run therefore never leaves a half-written result that a later run would trust."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())      # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Deterministic CSV: fixed float format, LF line endings, no index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n", float_format="%.10g")


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False, engine="pyarrow")


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def read_excel_table(path: str | Path, sheet: str | int | None = None) -> pd.DataFrame:
    """Read one canonical table from an Excel workbook (.xlsx / .xlsm), in the manner of `io.read_table`.

    The sheet is `sheet` if given, else the only sheet, else the sheet named after the file (e.g.
    `programme` in programme.xlsx). Cells keep their Excel types (numbers, dates) but text such as
    "n/a" is kept as text, so `check` reports it rather than it silently becoming missing; only empty
    cells are missing. The frame's attrs record the source file and sheet. Needs openpyxl.
    """
    path = Path(path)
    if path.suffix.lower() not in EXCEL_SUFFIXES:
        raise InputError(f"{path}: not an Excel workbook (accepted: {', '.join(EXCEL_SUFFIXES)})")
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise InputError(f"{path}: reading Excel needs the openpyxl package, which is not installed; "
                         "install it or save the sheet as CSV (UTF-8)") from None
    try:
        with pd.ExcelFile(path, engine="openpyxl") as book:
            sheets = book.sheet_names
            if sheet is None:
                sheet = sheets[0] if len(sheets) == 1 else path.stem if path.stem in sheets else None
            if sheet is None:
                raise InputError(f"{path}: several sheets ({', '.join(sheets)}) and none is named '{path.stem}'; "
                                 "name the sheet after the table or keep one sheet")
            frame = pd.read_excel(book, sheet_name=sheet, keep_default_na=False, na_values=[""])
    except InputError:
        raise
    except Exception as exc:  # a corrupt or mislabelled workbook: say which and why
        raise InputError(f"{path}: cannot be read as Excel: {exc}") from None
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed:")]
    if unnamed:
        raise InputError(f"{path}: sheet '{sheet}' has {len(unnamed)} column(s) without a header; "
                         "the first row must name every column")
    frame.attrs.update(source=str(path), format=path.suffix.lower()[1:], sheet=str(sheet))
    return frame
