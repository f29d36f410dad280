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
import re
import tempfile
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pandas as pd

from imrstats.core.tables import EXCEL_SUFFIXES, FORMATS, TABLES, find_table_file, why_not_found  # noqa: F401
from imrstats.errors import InputError


def read_table(path: str | Path) -> pd.DataFrame:
    """Read one table; the frame's `attrs['source']` records the file it came from."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise InputError(f"{path}: {why_not_found(path)}")
    if path.is_dir():
        raise InputError(f"{path}: a folder where a table file is expected")
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
    frame = pd.read_csv(
        StringIO(text),
        sep=sep,
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        skipinitialspace=True,
        index_col=False,
    )
    duplicated = [c for c in frame.columns if "." in c and c.rsplit(".", 1)[0] in frame.columns]
    if duplicated:
        raise InputError(
            f"{path}: duplicated column names in the header: {', '.join(c.rsplit('.', 1)[0] for c in duplicated)}"
        )
    return frame


def _check_field_counts(path: Path, text: str, sep: str) -> None:
    """Refuse rows with more or fewer fields than the header: pandas would silently shift such a row
    (an extra field turns the first column into an index) or pad it with missing values."""
    reader = csv.reader(StringIO(text), delimiter=sep)
    header = next(reader)
    for row in reader:
        if row and len(row) != len(header):
            raise InputError(
                f"{path}, line {reader.line_num}: {len(row)} fields where the header has "
                f"{len(header)} (delimiter {sep!r}); rule: every row has one value per column. "
                f"Quote values that contain the delimiter, or fix the row"
            )


def _read_spss(path: Path) -> pd.DataFrame:
    """An SPSS file with value labels applied (arm 1 -> "IMR") and user-missing values kept as written.

    The user-missing codes the file declares are recorded in ``attrs['declared_missing']`` ({column:
    [(low, high), ...]}); `check` and `clean` read a declared code as missing (and `clean` logs each), except
    on a long `score` column, where a code that lies inside an instrument's valid range is kept as a score
    unless the config confirms it for that instrument (a 9 declared "not answered" for IMRS items must not
    erase a GAF-F of 9). A labelled value that is declared user-missing keeps its number, not its label."""
    import pyreadstat

    frame, meta = pyreadstat.read_sav(str(path), apply_value_formats=False, user_missing=True)
    declared = {
        str(col): [(float(r["lo"]), float(r["hi"])) for r in ranges]
        for col, ranges in (meta.missing_ranges or {}).items()
        if col in frame.columns and ranges
    }
    for col, labels in (meta.variable_value_labels or {}).items():
        if col not in frame.columns or not labels:
            continue
        values = frame[col]
        numeric = pd.to_numeric(values, errors="coerce")
        user_missing = declared_missing_mask(numeric, declared.get(col, []))
        labelled = values.isin(list(labels)) & ~user_missing
        if labelled.any():
            frame[col] = values.astype(object).where(~labelled, values.map(labels))
    frame.attrs["declared_missing"] = declared
    return frame


def declared_missing_mask(numeric: pd.Series, ranges: list[tuple[float, float]]) -> pd.Series:
    """Cells whose number lies in one of the declared user-missing ranges (a single code is low == high)."""
    mask = pd.Series(False, index=numeric.index)
    for low, high in ranges:
        mask |= (numeric >= low) & (numeric <= high)
    return mask.fillna(False).astype(bool)


def _read_stata(path: Path) -> pd.DataFrame:
    import pyreadstat

    frame, _ = pyreadstat.read_dta(str(path), apply_value_formats=True, formats_as_category=False)
    return frame


def read_tables(directory: str | Path, tables: tuple[str, ...] = TABLES) -> dict[str, pd.DataFrame]:
    """Every canonical table present in `directory` (a missing table is simply absent from the dict)."""
    directory = Path(directory)
    if not directory.exists():
        raise InputError(f"{directory}: {why_not_found(directory)}")
    if not directory.is_dir():
        raise InputError(f"{directory}: a file where a folder of input tables is expected")
    out = {}
    for table in tables:
        path = find_table_file(directory, table)
        if path is not None:
            out[table] = read_table(path)
            out[table].attrs["folder"] = str(directory)  # read as a folder: check expects participants in it
    if not out:
        raise InputError(
            f"{directory}: no input tables found (expected files named {', '.join(tables)} "
            f"with one of {', '.join(FORMATS)})"
        )
    return out


# cells a spreadsheet would run as a formula (OWASP, CSV injection): = + - @ tab CR, and their full-width forms
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
PLAIN_NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot run as a spreadsheet formula: a cell that begins (after any spaces)
    with = + - @ tab or CR gets a leading single quote (OWASP CSV-injection guidance), except a plain
    negative number (-99, -1.5e3), which a spreadsheet reads as a number. Numeric columns are left as they are."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col]):
            continue
        out[col] = out[col].map(_formula_safe_cell)
    return out


def _formula_safe_cell(value):
    if not isinstance(value, str):
        return value
    head = value.lstrip(" ")
    if head.startswith(FORMULA_START) and not PLAIN_NEGATIVE_NUMBER.fullmatch(value.strip()):
        return "'" + value
    return value


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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
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
        raise InputError(
            f"{path}: reading Excel needs the openpyxl package, which is not installed; "
            "install it or save the sheet as CSV (UTF-8)"
        ) from None
    try:
        with pd.ExcelFile(path, engine="openpyxl") as book:
            sheets = book.sheet_names
            if sheet is None:
                sheet = sheets[0] if len(sheets) == 1 else path.stem if path.stem in sheets else None
            if sheet is None:
                raise InputError(
                    f"{path}: several sheets ({', '.join(sheets)}) and none is named '{path.stem}'; "
                    "name the sheet after the table or keep one sheet"
                )
            frame = pd.read_excel(book, sheet_name=sheet, keep_default_na=False, na_values=[""])
    except InputError:
        raise
    except Exception as exc:  # a corrupt or mislabelled workbook: say which and why
        raise InputError(f"{path}: cannot be read as Excel: {exc}") from None
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed:")]
    if unnamed:
        raise InputError(
            f"{path}: sheet '{sheet}' has {len(unnamed)} column(s) without a header; "
            "the first row must name every column"
        )
    frame.attrs.update(source=str(path), format=path.suffix.lower()[1:], sheet=str(sheet))
    return frame
