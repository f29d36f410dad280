"""Run an analysis stage by name on cleaned tables: the one entry point the CLI and the rules share."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd

from imrstats.data.clean import clean_tables
from imrstats.data.stage import read_clean, read_inputs
from imrstats.data.simulate import derive_seed
from imrstats.pipeline.stage_result import StageResult

# stage name -> (module, function); each function is run_<stage>_stage(tables, settings, *, seed)
STAGES = {
    "trial": ("imrstats.trial.stage", "run_trial_stage"),
    "services": ("imrstats.services.stage", "run_services_stage"),
    "implementation": ("imrstats.implementation.stage", "run_implementation_stage"),
    "meta": ("imrstats.meta.bayes_stage", "run_meta_stage_with_bayes"),
    "audit": ("imrstats.audit.checks", "run_audit_stage"),
}


def run_stage(name: str, tables: dict[str, pd.DataFrame], config: dict) -> StageResult:
    if name == "evidence":
        return run_evidence(config)
    module, function = STAGES[name]
    fn = getattr(importlib.import_module(module), function)
    return fn(tables, config.get(name, {}), seed=derive_seed(int(config["seed"]), f"stage.{name}"))


def run_evidence(config: dict) -> StageResult:
    """The trial joins the published evidence: needs the trial stage's results and the meta settings. The
    published-only Bayesian fits use the meta stage's seed path, so they reproduce the meta report's draws."""
    from imrstats.evidence.stage import run_evidence_stage

    return run_evidence_stage({}, {"evidence": config["evidence"], "meta": config["meta"]},
                              seed=derive_seed(int(config["seed"]), "stage.meta"),
                              trial_dir=Path(config["results_dir"]) / "trial")


def run_stage_on_clean_dir(name: str, data_dir: str | Path, config: dict) -> StageResult:
    return run_stage(name, read_clean(data_dir), config)


def clean_inputs(paths: list[str | Path], config: dict) -> dict[str, pd.DataFrame]:
    """A user's raw tables, checked and cleaned in memory (nothing is written)."""
    return clean_tables(read_inputs(paths), missing_codes=config["clean"]["missing_codes"],
                        prorate=config["clean"]["prorate"],
                        allow_identifier_columns=config["privacy"]["allow_identifier_columns"]).tables


def run_stage_on_inputs(name: str, paths: list[str | Path], config: dict) -> StageResult:
    """For the CLI: check and clean a user's raw tables in memory, then run the stage."""
    return run_stage(name, clean_inputs(paths, config), config)
