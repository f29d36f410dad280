"""The simulation study's report: one self-contained HTML page (design, scenarios, the performance table with
its Monte Carlo SEs, flags, failed analyses), rendered through `report/templates/trial/simstudy.html.j2`
from the aggregated performance of `imrstats.trial.simstudy`."""

from __future__ import annotations

import math

import pandas as pd

from imrstats.report.html import render_template
from imrstats.trial.simstudy import (
    ESTIMATORS,
    MORRIS,
    SIMULATED_DESIGN,
    performance_flags,
    performance_table,
    scenario_trial_model,
    truth_of,
)

PERFORMANCE_METHOD = (
    f"{MORRIS}. bias = mean(estimate) - truth; empirical_se = SD of the estimates; "
    "model_se = sqrt(mean(se^2)); rel_error_model_se_pct = 100 (model_se / empirical_se - 1); "
    "mse = mean((estimate - truth)^2); coverage = share of CIs that contain the truth; "
    "power (truth != 0) or type I error (truth = 0) = share of p <= alpha."
)


def scenario_table(config: dict) -> pd.DataFrame:
    """The scenarios as run: size, attrition and true effects of the analysed outcomes."""
    rows = []
    for s in config["scenarios"]:
        model = scenario_trial_model(config["trial_model"], s) if "trial_model" in config else {}
        effects = "; ".join(
            f"{o} {tp} {truth_of(s, o, tp):g}" for o in config["outcomes"] for tp in SIMULATED_DESIGN.visits
        )
        missing = model.get("visit_missing", s.get("visit_missing", {}))
        rows.append(
            {
                "scenario": s["name"],
                "description": s.get("description", ""),
                "n_participants": model.get("n_participants", s.get("n_participants")),
                "visit_missing": ", ".join(f"{k} {v:g}" for k, v in missing.items()),
                f"true effects ({SIMULATED_DESIGN.contrast_label})": effects,
            }
        )
    return pd.DataFrame(rows)


def render_simstudy_report(performance: pd.DataFrame, config: dict, *, replicates: pd.DataFrame | None = None) -> str:
    """A self-contained HTML page: design (scenarios, replicates, analysis), the performance table with
    MCSEs, failures and non-convergence, and how the measures are defined."""
    n_target = int(config["replicates"])
    errors = None
    if replicates is not None and len(replicates):
        errors = replicates.loc[replicates["error"] != "", ["scenario", "rep", "estimator", "outcome", "error"]]
        errors = errors.drop_duplicates().head(50) if len(errors) else None
    return render_template(
        "trial/simstudy.html.j2",
        config=config,
        n_target=n_target,
        estimators="; ".join(ESTIMATORS[e] for e in config["estimators"]),
        alpha=float(config["alpha"]),
        scenarios=scenario_table(config),
        flag_list=performance_flags(performance, n_target),
        performance=performance_table(performance),
        performance_method=PERFORMANCE_METHOD,
        coverage_mcse=f"{math.sqrt(0.95 * 0.05 / max(n_target, 1)):.4f}",
        errors=errors,
    )
