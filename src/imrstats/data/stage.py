"""The data stage as callable steps: synthetic inputs, check, clean. The CLI and the Snakemake rules
call these; they read and write files, the statistics stay in the modules they call."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imrstats.core.io import TABLES, read_table, read_tables, write_csv, write_parquet
from imrstats.data.check import check_tables, problems_frame, table_name_for
from imrstats.data.clean import clean_tables
from imrstats.data.simulate import simulate_all
from imrstats.errors import InputError


def write_synthetic_inputs(config: dict, out_dir: str | Path) -> dict[str, Path]:
    """Generate the four canonical tables and write them as CSV, as a user's export would arrive."""
    out_dir = Path(out_dir)
    paths = {}
    for name, frame in simulate_all(config).items():
        paths[name] = out_dir / f"{name}.csv"
        write_csv(frame, paths[name])
    return paths


def read_inputs(paths: list[str | Path]) -> dict[str, pd.DataFrame]:
    """Read files (or one directory) into canonical tables keyed by table name (from the file name)."""
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and (paths[0].is_dir() or not paths[0].suffix):
        return read_tables(paths[0])  # a folder (or what was meant as one): says why it cannot be read
    tables = {}
    for path in paths:
        if path.is_dir():
            raise InputError(f"{path}: a folder among several paths; give one folder, or the table files")
        name = table_name_for(path)
        if name in tables:
            raise InputError(f"{path}: a second file for table '{name}' ({tables[name].attrs['source']} came first)")
        tables[name] = read_table(path)
    return tables


def run_check(paths: list[str | Path], config: dict, problems_csv: str | Path | None = None):
    """Check inputs; optionally write the problem list. Returns the problems."""
    tables = read_inputs(paths)
    problems = check_tables(
        tables,
        missing_codes=config["clean"]["missing_codes"],
        missing_codes_by_instrument=config["clean"].get("missing_codes_by_instrument"),
        allow_identifier_columns=config["privacy"]["allow_identifier_columns"],
    )
    if problems_csv:  # every problem (the console shortens long lists), formula-safe for a spreadsheet
        write_csv(problems_frame(problems), problems_csv)
    return problems


def run_clean(paths: list[str | Path], out_dir: str | Path, config: dict) -> dict[str, Path]:
    """Clean inputs into out_dir: one Parquet file per canonical table and cleaning_log.csv."""
    tables = read_inputs(paths)
    result = clean_tables(
        tables,
        missing_codes=config["clean"]["missing_codes"],
        prorate=config["clean"]["prorate"],
        allow_identifier_columns=config["privacy"]["allow_identifier_columns"],
        missing_codes_by_instrument=config["clean"].get("missing_codes_by_instrument"),
    )
    out_dir = Path(out_dir)
    written = {}
    for name, frame in result.tables.items():
        written[name] = out_dir / f"{name}.parquet"
        write_parquet(frame, written[name])
    written["cleaning_log"] = out_dir / "cleaning_log.csv"
    write_csv(result.log, written["cleaning_log"])
    return written


def read_clean(directory: str | Path) -> dict[str, pd.DataFrame]:
    """The cleaned canonical tables written by run_clean."""
    directory = Path(directory)
    return {p.stem: pd.read_parquet(p) for p in sorted(directory.glob("*.parquet"))}


__all__ = ["TABLES", "write_synthetic_inputs", "read_inputs", "run_check", "run_clean", "read_clean"]
