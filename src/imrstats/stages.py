"""Run an analysis stage by name on cleaned tables: the one entry point the CLI and the rules share."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd

from .clean import clean_tables
from .data_stage import read_clean, read_inputs
from .simulate import derive_seed
from .stage import StageResult

# stage name -> (module, function); each function is run_<stage>_stage(tables, settings, *, seed)
STAGES = {
    "trial": ("imrstats.trial_stage", "run_trial_stage"),
    "services": ("imrstats.services_stage", "run_services_stage"),
    "implementation": ("imrstats.implementation_stage", "run_implementation_stage"),
    "meta": ("imrstats.meta_bayes", "run_meta_stage_with_bayes"),
    "audit": ("imrstats.audit", "run_audit_stage"),
}


def run_stage(name: str, tables: dict[str, pd.DataFrame], config: dict) -> StageResult:
    module, function = STAGES[name]
    fn = getattr(importlib.import_module(module), function)
    return fn(tables, config.get(name, {}), seed=derive_seed(int(config["seed"]), f"stage.{name}"))


def run_stage_on_clean_dir(name: str, data_dir: str | Path, config: dict) -> StageResult:
    return run_stage(name, read_clean(data_dir), config)


def run_stage_on_inputs(name: str, paths: list[str | Path], config: dict) -> StageResult:
    """For the CLI: check and clean a user's raw tables in memory, then run the stage."""
    cleaned = clean_tables(read_inputs(paths), missing_codes=config["clean"]["missing_codes"],
                           prorate=config["clean"]["prorate"],
                           allow_identifier_columns=config["privacy"]["allow_identifier_columns"])
    return run_stage(name, cleaned.tables, config)
