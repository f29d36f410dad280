"""The evidence stage's report section: the trial in the pooled evidence, as HTML.

Reads only the stage result (its tables, record, figure names and flags) and computes nothing; the method
line under a table is the rows' own `method` (or, for the converted trial effects, `conversion`) column.
"""

from __future__ import annotations

import pandas as pd

from imrstats.evidence.grade import GRADE_COLUMNS
from imrstats.evidence.stage import FAVOURS
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.html import figure_html, flags_html, render_template, table_html

_SHOW_EFFECTS = [
    "outcome_label",
    "instrument",
    "analysis",
    "timepoint",
    "yi",
    "sei",
    "ci_low",
    "ci_high",
    "md",
    "md_se",
    "sd_divided_by",
    "hedges_j",
    "n_imr",
    "n_tau",
    "sd_source",
    "problem",
    "conversion",
]
_SHOW_POOLED = [
    "outcome_label",
    "instrument",
    "analysis",
    "timepoint",
    "framework",
    "k_without",
    "estimate_without",
    "ci_low_without",
    "ci_high_without",
    "tau_without",
    "k_with",
    "estimate_with",
    "ci_low_with",
    "ci_high_with",
    "tau_with",
    "prob_gt_0_with",
    "shift",
    "method",
]
_SHOW_SURPRISE = [
    "outcome_label",
    "analysis",
    "timepoint",
    "trial_g",
    "trial_se",
    "k_reference",
    "bayes_pct_true",
    "bayes_pct_observed",
    "bayes_p_two_sided",
    "freq_pct_true",
    "freq_pct_observed",
    "freq_p_two_sided",
    "freq_distribution",
    "reference_studies",
]
_SHOW_CUMULATIVE = [
    "outcome_label",
    "analysis",
    "timepoint",
    "added",
    "k",
    "estimate",
    "ci_low",
    "ci_high",
    "p",
    "tau2",
    "method",
]
_SHOW_DIAGNOSTICS = [
    "outcome_label",
    "analysis",
    "timepoint",
    "k",
    "engine",
    "source",
    "attempts",
    "max_rhat",
    "min_ess_bulk",
    "divergences",
    "sampler_diagnostics",
    "passed",
]


_SHOW_CERTAINTY = [
    "outcome_label",
    "outcome_name",
    "timepoint",
    "is_primary",
    "k",
    "n_participants",
    "pooled_smd",
    "pooled_ci_low",
    "pooled_ci_high",
    "certainty",
    "n_downgrades",
]
_SHOW_ROB_SENSITIVITY = [
    "outcome_label",
    "analysis",
    "timepoint",
    "k_main",
    "estimate_main",
    "ci_low_main",
    "ci_high_main",
    "k_low_rob",
    "estimate_low_rob",
    "ci_low_low_rob",
    "ci_high_low_rob",
    "studies_low_rob",
    "studies_left_out",
    "note",
    "method",
]


def _cols(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame[[c for c in columns if c in frame.columns]]


def _figure(name: str, meta: dict, test: str) -> str:
    if name.startswith("evidence_cumulative_"):
        return figure_html(
            name,
            f"{name.removeprefix('evidence_cumulative_')}: cumulative meta-analysis by year "
            f"({meta['method']}, {test}), ending in the trial (one final row per trial analysis)",
        )
    return figure_html(
        name,
        f"{name.removeprefix('evidence_predictive_')}: posterior predictive distribution of a new "
        "trial's effect from the published studies alone, with the trial's g and 95% CI per "
        "analysis",
    )


def render_evidence_section(result: StageResult) -> str:
    """The evidence section: how the trial was converted, pooled without and with it, how surprising it is,
    and the GRADE certainty of the pooled evidence with the risk of bias of the studies."""
    record = result.record
    if not record.get("enabled", True):
        return render_template("evidence/section.html.j2", enabled=False)
    ev = record["settings"]
    meta = ev["meta"]
    test = "Knapp-Hartung t(k − 1)" if meta["knha"] else "Wald z"
    tables = result.tables
    parts = []
    if "evidence_trial_effects" in tables:
        parts.append(
            table_html(
                _cols(tables["evidence_trial_effects"], _SHOW_EFFECTS),
                method_column="conversion",
                caption=f"The trial on the meta-analysis scale (g: Hedges' g, {FAVOURS}; md: IMR − "
                "TAU on the instrument's scale; 95% normal CI of g)",
            )
        )
    if "evidence_pooled" in tables:
        parts.append(
            table_html(
                _cols(tables["evidence_pooled"], _SHOW_POOLED),
                caption=f"Pooled effect without and with the trial, side by side ({FAVOURS}; 95% "
                "intervals; frequentist tau = sqrt(tau²); prob_gt_0: posterior P(mu > 0))",
            )
        )
    if "evidence_surprise" in tables:
        parts.append(
            table_html(
                _cols(tables["evidence_surprise"], _SHOW_SURPRISE),
                caption="How surprising is the trial: its percentile in the published-only predictive distribution",
                method="Bayesian: share of the posterior draws of mu_new below g (pct_true); E_post Phi((g − mu) / "
                "sqrt(tau² + v)) over the draws (pct_observed); each with its Monte Carlo SE (exact engine: i.i.d. "
                "exact draws); frequentist: column freq_distribution",
            )
        )
    parts += [_figure(name, meta, test) for name in sorted(result.figures) if name != "risk_of_bias"]
    if "evidence_cumulative" in tables:
        parts.append(
            table_html(
                _cols(tables["evidence_cumulative"], _SHOW_CUMULATIVE),
                caption="Cumulative meta-analysis ending in the trial",
            )
        )
    if "evidence_diagnostics" in tables:
        fits = tables["evidence_diagnostics"]
        exact = "max_rhat" not in fits.columns
        parts.append(
            table_html(
                _cols(fits, _SHOW_DIAGNOSTICS),
                caption="Bayesian fits: "
                + ("engine and source (attempts 0: the meta stage's fit, reused)" if exact else "sampler diagnostics"),
                method="exact, quadrature: sampler diagnostics (R-hat, ESS, divergences) not applicable"
                if exact
                else "rank-normalised split R-hat and bulk ESS (Vehtari et al. 2021); gate R-hat "
                "≤ 1.01, ESS ≥ 400, no divergences",
            )
        )
    return render_template(
        "evidence/section.html.j2",
        enabled=True,
        flags=flags_html(result.flags),
        ev=ev,
        meta=meta,
        year=record["year_used"],
        favours=FAVOURS,
        replacement=record["replacement"],
        test=test,
        parts=parts,
        notes=record.get("notes", []),
        grade=record.get("grading"),
        certainty=_cols(tables["evidence_summary_of_findings"], _SHOW_CERTAINTY)
        if "evidence_summary_of_findings" in tables
        else None,
        grade_rows=_cols(tables["evidence_grade"], GRADE_COLUMNS) if "evidence_grade" in tables else None,
        rob_sensitivity=_cols(tables["evidence_rob_sensitivity"], _SHOW_ROB_SENSITIVITY)
        if "evidence_rob_sensitivity" in tables
        else None,
        rob_figure="risk_of_bias" in result.figures,
    )
