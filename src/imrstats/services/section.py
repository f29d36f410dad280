"""The service-use stage's report section, rendered from its `StageResult` alone (the stacked per-outcome
tables, the figure names, the checked settings and context in the record, the flags) through
`report/templates/services/`.

The method under each table is the rows' own `method` column (each model's estimation method, the
overdispersion and Vuong tests); the descriptives and the zero-excess check, which have none, name theirs here.
"""

from __future__ import annotations

import math

import pandas as pd

from imrstats.pipeline.stage_result import StageResult
from imrstats.report.format import format_number, format_p
from imrstats.report.html import render_template
from imrstats.services.stage import MODEL_LABELS, MODELS, OUTCOME_LABELS, estimate_with_ci

DESCRIPTIVE_METHOD = (
    "mean and SD (n - 1) of the follow-up counts; variance/mean (1 under Poisson with equal "
    "exposure); share of zeros; max; events per person-year = events / (sum of exposure days "
    "/ 365.25)"
)
ZERO_METHOD = (
    "observed zeros against sum_i P(Y_i = 0) under each fitted model (hurdle NB reproduces the "
    "observed count by construction)"
)
RULE_TEXT = {
    "aic": "the lowest AIC among models that converged cleanly.",
    "bic": "the lowest BIC among models that converged cleanly.",
    "vuong": "NB2 replaces Poisson if the boundary likelihood-ratio test of theta = infinity is "
    "significant; then a zero-inflated or hurdle NB2 replaces it if the AIC-corrected "
    "Vuong test favours it significantly (one-sided).",
}


def _of(tables: dict, name: str, outcome: str) -> pd.DataFrame:
    frame = tables.get(name)
    if frame is None or frame.empty or "outcome" not in frame.columns:
        return pd.DataFrame()
    return frame.loc[frame["outcome"] == outcome].reset_index(drop=True)


def display_models(models: pd.DataFrame) -> pd.DataFrame:
    """The four models of one outcome as the report shows them (estimates with their CIs in one cell)."""
    rows = []
    for r in models.to_dict("records"):
        fitted = r["status"] != "not fitted"
        theta = r.get("theta", math.nan)
        rows.append(
            {
                "model": MODEL_LABELS[r["model"]],
                "status": r["status"],
                "IRR IMR vs TAU (95% CI)": estimate_with_ci(r.get("irr"), r.get("irr_ci_low"), r.get("irr_ci_high")),
                "p (IRR)": format_p(r.get("irr_p")),
                "zero-part OR (95% CI)": estimate_with_ci(
                    r.get("zero_or"), r.get("zero_or_ci_low"), r.get("zero_or_ci_high")
                ),
                "p (OR)": format_p(r.get("zero_or_p")),
                "theta (SE)": (
                    f"{format_number(theta, 3)} ({format_number(r['theta_se'], 3)})"
                    if fitted and not pd.isna(theta)
                    else ""
                ),
                "AIC": r.get("aic", math.nan),
                "dAIC": r.get("delta_aic", math.nan),
                "BIC": r.get("bic", math.nan),
                "dBIC": r.get("delta_bic", math.nan),
                "note": r.get("note", ""),
                "method": r.get("method", ""),
            }
        )
    return pd.DataFrame(rows)


def display_vuong(vuong: pd.DataFrame) -> pd.DataFrame:
    """One row per model pair: raw, AIC- and BIC-corrected z and one-sided p."""
    rows = []
    for (a, b), part in vuong.groupby(["model_a", "model_b"], sort=False):
        row = {"model A vs model B": f"{a} vs {b}"}
        for r in part.itertuples():
            kind = r.quantity.removeprefix("Vuong z (").removesuffix(")")
            row[f"z {kind}"] = r.statistic
            row[f"p {kind}"] = r.p
        row["favours (AIC-corrected)"] = part.loc[part["quantity"] == "Vuong z (AIC-corrected)", "favours"].iloc[0]
        row["method"] = part["method"].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


def display_reported(reported: pd.DataFrame) -> pd.DataFrame:
    """The reported model per outcome, its arm IRR (95% CI), p, why it was chosen and how it was fitted."""
    column = lambda c: reported[c] if c in reported.columns else pd.Series([math.nan] * len(reported))  # noqa: E731
    return pd.DataFrame(
        {
            "outcome": reported["outcome"],
            "reported model": reported["model"],
            "IRR IMR vs TAU (95% CI)": [
                estimate_with_ci(*v) for v in zip(column("irr"), column("irr_ci_low"), column("irr_ci_high"))
            ],
            "p": [format_p(v) for v in column("irr_p")],
            "reason": reported["reason"],
            "method": list(column("method")),
        }
    )


def _outcome(result: StageResult, outcome: str, reason: str, chosen: str, settings: dict) -> dict:
    tables = result.tables
    descriptives = _of(tables, "descriptives", outcome).drop(columns=["outcome"], errors="ignore")
    if not descriptives.empty:
        descriptives = descriptives.astype({"max": "Int64", "events": "Int64"})
    overdispersion = _of(tables, "overdispersion", outcome)
    if not overdispersion.empty:
        overdispersion = overdispersion[["quantity", "estimate", "df", "statistic", "p", "notes", "method"]]
    zeros = _of(tables, "zero_check", outcome)
    if not zeros.empty:
        zeros = zeros.drop(columns=["outcome"]).round(
            {"expected_zeros": 1, "observed_minus_expected": 1, "observed_to_expected": 2}
        )
        zeros["observed_minus_expected"] += 0.0  # no "-0.0" from rounding a tiny negative difference
    vuong = _of(tables, "vuong", outcome)
    label = OUTCOME_LABELS.get(outcome, outcome)
    figure = f"rootogram_{outcome}"
    return {
        "outcome": outcome,
        "label": label,
        "reason": reason,
        "chosen": chosen,
        "flags": [f for f in result.flags if f.startswith((f"{outcome}:", f"{outcome},"))],
        "descriptives": descriptives,
        "overdispersion": overdispersion,
        "zeros": zeros,
        "models": display_models(_of(tables, "models", outcome)),
        "vuong": display_vuong(vuong) if not vuong.empty else vuong,
        "figure": figure if figure in result.figures else "",
        "figure_caption": f"{label}: hanging rootograms of the four models (Kleiber & Zeileis 2016); expected "
        "frequency = sum of each participant's fitted probability; counts grouped into at "
        f"most {settings['rootogram_max_bars']} bars",
    }


def render_services_section(result: StageResult) -> str:
    """The report section: the reported models first, then per outcome every table and the rootograms."""
    rec = result.record
    settings = rec["settings"]
    reported = result.tables["reported"]
    outcomes = [_outcome(result, r["outcome"], r["reason"], r["model"], settings) for r in reported.to_dict("records")]
    outcome_flags = {f for o in outcomes for f in o["flags"]}
    stage_flags = [f for f in result.flags if f not in outcome_flags]
    return render_template(
        "services/section.html.j2",
        n=rec["n"],
        arms=rec["arms"],
        excluded=rec["excluded"],
        settings=settings,
        rule_text=RULE_TEXT[settings["selection_rule"]],
        stage_flags=stage_flags,
        n_outcome_flags=len(result.flags) - len(stage_flags),
        reported=display_reported(reported),
        outcomes=outcomes,
        models=MODELS,
        descriptive_method=DESCRIPTIVE_METHOD,
        zero_method=ZERO_METHOD,
    )
