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


def _check_settings(config: dict) -> dict:
    """The keyword arguments of `check_tables` from the settings (the same for check and clean)."""
    return {
        "missing_codes": config["clean"]["missing_codes"],
        "missing_codes_by_instrument": config["clean"].get("missing_codes_by_instrument"),
        "allow_identifier_columns": config["privacy"]["allow_identifier_columns"],
    }


def _clean_settings(config: dict) -> dict:
    """The keyword arguments of `clean_tables` from the settings."""
    return {**_check_settings(config), "prorate": config["clean"]["prorate"]}


def run_check(paths: list[str | Path], config: dict, problems_csv: str | Path | None = None):
    """Check inputs; optionally write the problem list. Returns the problems."""
    problems = check_tables(read_inputs(paths), **_check_settings(config))
    if problems_csv:  # every problem (the console shortens long lists), formula-safe for a spreadsheet
        write_csv(problems_frame(problems), problems_csv)
    return problems


def run_clean(paths: list[str | Path], out_dir: str | Path, config: dict) -> dict[str, Path]:
    """Clean inputs into out_dir: one Parquet file per canonical table and cleaning_log.csv."""
    return write_clean(clean_tables(read_inputs(paths), **_clean_settings(config)), out_dir)


def write_clean(result, out_dir: str | Path) -> dict[str, Path]:
    """Write a `CleanResult` into out_dir: one Parquet file per canonical table and cleaning_log.csv."""
    out_dir = Path(out_dir)
    written = {}
    for name, frame in result.tables.items():
        written[name] = out_dir / f"{name}.parquet"
        write_parquet(frame, written[name])
    written["cleaning_log"] = out_dir / "cleaning_log.csv"
    write_csv(result.log, written["cleaning_log"])
    return written


def run_check_and_clean(
    paths: list[str | Path], problems_csv: str | Path, out_dir: str | Path, config: dict
) -> dict[str, Path]:
    """Check, then clean, in one step (the workflow's one data job): every problem is printed and written to
    ``problems_csv``; any error stops here (SystemExit naming the count) before anything is cleaned; else the
    cleaned tables and the cleaning log are written into ``out_dir`` as `run_clean` writes them."""
    from imrstats.data.check import has_errors

    tables = read_inputs(paths)
    problems = check_tables(tables, **_check_settings(config))
    write_csv(problems_frame(problems), problems_csv)  # every problem, formula-safe for a spreadsheet
    for problem in problems:
        print(problem)
    if has_errors(problems):
        raise SystemExit(
            f"input check failed: {sum(p.severity == 'error' for p in problems)} errors (listed in {problems_csv} "
            "and above); fix the inputs and rerun"
        )
    return write_clean(clean_tables(tables, **_clean_settings(config), problems=problems), out_dir)


def study_log_rows(study) -> pd.DataFrame:
    """A study's log (every change made reading the export: missing codes blanked, recodes, rows dropped) laid
    out as cleaning-log rows, its table named after the export file."""
    log = study.log
    out = pd.DataFrame(
        {
            "table": "export " + log["file"].astype(str),
            "row": log["row"],
            "id": log["id"],
            "timepoint": pd.NA,
            "instrument": pd.NA,
            "column": log["column"],
            "old_value": log["old_value"],
            "new_value": log["new_value"],
            "rule": log["rule"],
        }
    )
    return out


def clean_study(study, config: dict, problems: list | None = None):
    """A loaded study (`imrstats.data.study.load_study`) checked and cleaned with its own design and instruments:
    the `CleanResult` whose log starts with the study's own log rows. Errors in the check are an InputError
    (nothing is cleaned); ``problems``: the check already made on ``study.tables`` with these settings."""
    from imrstats.data.clean import CleanResult

    settings = {**_clean_settings(config), "design": study.design, "registry": study.registry}
    result = clean_tables(study.tables, **settings, problems=problems)
    log = pd.concat([study_log_rows(study), result.log], ignore_index=True) if len(study.log) else result.log
    return CleanResult(tables=result.tables, log=log)


def check_study(study, config: dict) -> list:
    """The problems `check` finds in a loaded study's canonical tables, with its design and instruments."""
    return check_tables(study.tables, **_check_settings(config), design=study.design, registry=study.registry)


def run_study_check_and_clean(
    spec: str | Path, problems_csv: str | Path, out_dir: str | Path, config: dict
) -> dict[str, Path]:
    """`run_check_and_clean` for a study spec (``data.study``): the export read through the spec, checked,
    then cleaned into ``out_dir``."""
    from imrstats.data.check import has_errors
    from imrstats.data.study import load_study

    study = load_study(spec)
    problems = check_study(study, config)
    write_csv(problems_frame(problems), problems_csv)
    for problem in problems:
        print(problem)
    if has_errors(problems):
        raise SystemExit(
            f"input check failed: {sum(p.severity == 'error' for p in problems)} errors (listed in {problems_csv} "
            "and above); fix the export or the study spec and rerun"
        )
    return write_clean(clean_study(study, config, problems=problems), out_dir)


def read_clean(directory: str | Path) -> dict[str, pd.DataFrame]:
    """The cleaned canonical tables written by run_clean."""
    directory = Path(directory)
    return {p.stem: pd.read_parquet(p) for p in sorted(directory.glob("*.parquet"))}


__all__ = [
    "TABLES",
    "write_synthetic_inputs",
    "read_inputs",
    "run_check",
    "run_clean",
    "run_check_and_clean",
    "run_study_check_and_clean",
    "check_study",
    "clean_study",
    "study_log_rows",
    "write_clean",
    "read_clean",
]
