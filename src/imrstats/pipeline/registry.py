"""Run an analysis stage by name on cleaned tables: the one entry point the CLI and the rules share."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd

from imrstats.config import stage_seed
from imrstats.data.clean import clean_tables
from imrstats.data.stage import read_clean, read_inputs
from imrstats.pipeline.plan import PIPELINE, STAGE_NAMES, Stage, plan_stages  # noqa: F401  (the stage list)
from imrstats.pipeline.stage_result import StageResult

# stage name -> (module, function); each function is run_<stage>_stage(tables, settings, *, seed)
STAGES = {
    "trial": ("imrstats.trial.stage", "run_trial_stage"),
    "services": ("imrstats.services.stage", "run_services_stage"),
    "implementation": ("imrstats.implementation.stage", "run_implementation_stage"),
    "meta": ("imrstats.meta.bayes_stage", "run_meta_stage_with_bayes"),
    "audit": ("imrstats.audit.stage", "run_audit_stage"),
}

# stage name -> (module, function) rendering its report section from the StageResult alone; the one place a
# stage's HTML is made (a stage function computes tables, figures, record, summary and flags, never HTML)
SECTIONS = {
    "trial": ("imrstats.trial.section", "render_trial_section"),
    "services": ("imrstats.services.section", "render_services_section"),
    "implementation": ("imrstats.implementation.section", "render_implementation_section"),
    "audit": ("imrstats.audit.section", "render_audit_section"),
    "meta": ("imrstats.meta.section", "render_meta_section"),
    "meta_bayes": ("imrstats.meta.bayes_section", "render_bayes_section"),  # bayes_pooling's own result
    "evidence": ("imrstats.evidence.section", "render_evidence_section"),
}


def render_section(result: StageResult) -> str:
    """The report section of a stage's result (its `html` unchanged for a stage without a section renderer)."""
    if result.stage not in SECTIONS:
        return result.html
    module, function = SECTIONS[result.stage]
    return getattr(importlib.import_module(module), function)(result)


def with_section(result: StageResult) -> StageResult:
    """Fill `result.html` with the stage's rendered report section; returns the same result."""
    result.html = render_section(result)
    return result


def run_stage(name: str, tables: dict[str, pd.DataFrame], config: dict) -> StageResult:
    if name == "evidence":
        return with_section(run_evidence(config))
    module, function = STAGES[name]
    fn = getattr(importlib.import_module(module), function)
    return with_section(fn(tables, config.get(name, {}), seed=stage_seed(name, config)))


def run_evidence(
    config: dict,
    trial_dir: str | Path | None = None,
    published: pd.DataFrame | None = None,
    meta_dir: str | Path | None = None,
    risk_of_bias: pd.DataFrame | None = None,
    indirectness: pd.DataFrame | None = None,
) -> StageResult:
    """The trial joins the published evidence: needs the trial stage's results (``trial_dir``: the trial
    stage's folder, its result.json and tables/; default ``<results_dir>/trial``) and the meta settings
    (``published``: the curated published rows, default those of ``meta.published_outcomes``). ``meta_dir``
    (the meta stage's output folder): its published-only Bayesian fits are taken from there instead of
    refitted; without it they are fitted with the meta stage's seed path, so they reproduce its draws. The
    trial section's study design must suit the comparison (`imrstats.evidence.stage.check_trial_design`)."""
    from imrstats.evidence.stage import run_evidence_stage

    trial_dir = Path(config["results_dir"]) / "trial" if trial_dir is None else trial_dir
    return run_evidence_stage(
        {},
        {"evidence": config["evidence"], "meta": config["meta"], "trial": config.get("trial") or {}},
        seed=stage_seed("meta", config),
        trial_dir=trial_dir,
        published=published,
        meta_dir=meta_dir,
        risk_of_bias=risk_of_bias,
        indirectness=indirectness,
    )


def run_stage_on_clean_dir(name: str, data_dir: str | Path, config: dict) -> StageResult:
    return run_stage(name, read_clean(data_dir), config)


def run_stage_on_files(name: str, inputs: dict[str, str | list[str]], config: dict) -> StageResult:
    """For the workflow: run a stage on exactly the files its rule declares. ``inputs`` are the rule's named
    inputs: ``tables`` (the cleaned tables; the folder holding them is read), ``trial`` (the trial stage's
    result.json; its folder holds tables/ too), ``published`` (the curated published rows the evidence stage
    compares with), ``risk_of_bias`` and ``indirectness`` (the published studies' judgements GRADE uses),
    ``meta`` (the meta stage's result.json; its folder holds posteriors/, whose published-only fits the evidence
    stage reuses), ``outcomes`` and ``rates`` (the meta stage's published data), ``csv`` (the audit's CSVs). A
    stage that declares no cleaned tables gets none."""
    if name == "evidence":
        from imrstats.data.published import load_indirectness, load_published_outcomes, load_risk_of_bias

        return with_section(
            run_evidence(
                config,
                trial_dir=Path(inputs["trial"]).parent,
                published=load_published_outcomes(inputs["published"]),
                meta_dir=Path(inputs["meta"]).parent if "meta" in inputs else None,
                risk_of_bias=load_risk_of_bias(inputs["risk_of_bias"]) if "risk_of_bias" in inputs else None,
                indirectness=load_indirectness(inputs["indirectness"]) if "indirectness" in inputs else None,
            )
        )
    files = {
        "meta": {"published_outcomes": "outcomes", "implementation_rates": "rates"},
        "audit": {"inputs": "csv"},
    }.get(name, {})
    section = {**config.get(name, {}), **{key: inputs[arg] for key, arg in files.items()}}
    tables = inputs.get("tables")
    tables = [tables] if isinstance(tables, str) else tables
    clean = read_clean(Path(tables[0]).parent) if tables else {}
    return run_stage(name, clean, {**config, name: section})


def clean_inputs(paths: list[str | Path], config: dict) -> dict[str, pd.DataFrame]:
    """A user's raw tables, checked and cleaned in memory (nothing is written)."""
    return clean_tables(
        read_inputs(paths),
        missing_codes=config["clean"]["missing_codes"],
        prorate=config["clean"]["prorate"],
        allow_identifier_columns=config["privacy"]["allow_identifier_columns"],
        missing_codes_by_instrument=config["clean"].get("missing_codes_by_instrument"),
    ).tables


def run_stage_on_inputs(name: str, paths: list[str | Path], config: dict) -> StageResult:
    """For the CLI: check and clean a user's raw tables in memory, then run the stage."""
    return run_stage(name, clean_inputs(paths, config), config)
