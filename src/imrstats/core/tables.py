"""The canonical input tables and where their files are: names, accepted formats, and finding a table's
file in a folder. Plain standard library, so the workflow's start-up (workflow/rules/common.smk) can plan
the run without importing pandas; reading the tables is `imrstats.core.io`'s job."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from imrstats.errors import InputError

TABLES = ("participants", "assessments", "service_use", "programme")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
FORMATS = (".csv", ".parquet", ".sav", ".dta", *EXCEL_SUFFIXES)


def find_table_file(directory: str | Path, table: str) -> Path | None:
    """The file holding `table` in `directory` (participants.csv, participants.sav, ...), if any."""
    directory = Path(directory)
    for ext in FORMATS:
        candidate = directory / f"{table}{ext}"
        if candidate.is_symlink() and not candidate.exists():
            raise InputError(f"{candidate}: {why_not_found(candidate)}")
    found = [directory / f"{table}{ext}" for ext in FORMATS if (directory / f"{table}{ext}").exists()]
    if len(found) > 1:
        raise InputError(
            f"{directory}: several files for table '{table}': {', '.join(p.name for p in found)}; keep one"
        )
    return found[0] if found else None


def why_not_found(path: str | Path) -> str:
    """Why `path` cannot be opened, in a few words: missing, a symbolic link loop, a dangling link."""
    path = Path(path)
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop (the link points back to itself); replace it by the file"
        if path.is_symlink():
            return f"a symbolic link to {os.readlink(path)!r}, which does not exist"
        if exc.errno == errno.EACCES:
            return "permission denied"
        return "no such file or folder"
    return "exists"
