"""The trial stage's report section: rendered from its `StageResult` alone (tables, figure names, the checked
settings in the record, flags) through the templates in `report/templates/trial/`.

The method text under each table is the rows' own `method` column; a table without one (the Table 3
layout, subgroup descriptives, the tipping-point grid) names its method here. The estimands (ICH E9(R1)) are shown
in the user's arm and visit labels, their results beside the primary MAR analysis's.
"""

from __future__ import annotations

import pandas as pd

from imrstats.pipeline.stage_result import StageResult
from imrstats.report.html import render_template
from imrstats.trial.design import StudyDesign, and_join
from imrstats.trial.estimands import ICE_STRATEGIES

# bookkeeping columns of the pooled rows, not shown in the report (they stay in the CSV)
_HIDDEN = ["notes", "m", "qbar", "ubar", "b", "t", "quantity"]


def _shown(tables: dict, name: str, caption: str, method: str = "", figures: list | None = None) -> dict | None:
    if name not in tables:
        return None
    frame = tables[name]
    return {
        "frame": frame.drop(columns=[c for c in _HIDDEN if c in frame.columns]),
        "caption": caption,
        "method": method,
        "figures": figures or [],
    }


def _main_tables(tables: dict, figures, s: dict, d: StudyDesign) -> list[dict]:
    thr = s["per_protocol_threshold"]
    contrast, arm = d.contrast_label, d.arm_label(d.intervention)
    tipping = [
        (k, f"Tipping-point analysis, {k.removeprefix('trial_tipping_')}")
        for k in figures
        if k.startswith("trial_tipping_")
    ]
    forest = (
        [("trial_itt_forest", f"ITT effects in baseline-SD units (positive favours {arm})")]
        if "trial_itt_forest" in figures
        else []
    )
    specs = [
        _shown(
            tables,
            "trial_itt_contrasts",
            f"ITT: {contrast} per outcome and visit (pooled over imputations); riv = "
            "relative increase in variance, fmi = fraction of missing information; p_holm / p_bh: Holm / "
            "Benjamini-Hochberg over the secondary outcomes at that visit",
            figures=forest,
        ),
        _shown(
            tables,
            "trial_table3",
            "Table 3 equivalent: ITT adjusted means (SE) and complete-case n / mean / SD per arm",
            "ITT: MI-MMRM adjusted means (emmeans-style grid, Rubin); complete case: observed n, mean, "
            "SD (n - 1); cc p: complete-case ANCOVA of the visit on arm, baseline and covariates (OLS, t test)",
        ),
        _shown(
            tables,
            "trial_complete_case",
            "Complete-case ANCOVA per visit (assumes missing completely at random given covariates)",
        ),
        _shown(
            tables,
            "trial_likelihood_mmrm",
            "Likelihood-based MMRM on the observed data (MAR, no imputation; participants with an observed baseline)",
        ),
        _shown(
            tables,
            "trial_random_intercept_lmm",
            "Secondary model: random-intercept LMM on the observed data "
            "(sensitivity to the covariance structure: compound symmetry instead of an unstructured covariance; "
            "a secondary model, not a substitute for the MMRM)",
        ),
        _shown(tables, "trial_per_protocol", f"Per protocol ({arm} arm): 0-{thr} vs >{thr} sessions"),
        _shown(tables, "trial_per_protocol_sessions", f"Per protocol ({arm} arm): attendance as a continuous variable"),
        _shown(
            tables,
            "trial_subgroup_interaction_cc",
            f"Subgroup interactions at {d.visit_label(s['subgroup_timepoint'])} (complete case)",
        ),
        _shown(
            tables,
            "trial_subgroup_descriptives",
            "Within-subgroup observed means by arm (Jensen et al. 2019, Table 4 style)",
            "observed n, mean, SD; p from the within-level two-sample t test (pooled variance)",
        ),
        _shown(tables, "trial_subgroup_interaction_mi", "Subgroup interactions in the ITT MI-MMRM"),
        _shown(
            tables,
            "trial_tipping_grid",
            "MNAR sensitivity: delta-adjusted MI over the grid",
            f"delta added to the {arm} arm's imputed {and_join([d.visit_label(v) for v in d.visits])} values, "
            "MMRM refitted, pooled by Rubin's rules",
        ),
        _shown(
            tables,
            "trial_tipping_points",
            "Tipping points",
            "first grid point where the 95% CI's relation to 0 "
            "changes, refined by linear interpolation, checked by a refit",
            figures=tipping,
        ),
    ]
    return [t for t in specs if t is not None]


def _secondary_tables(tables: dict, s: dict, d: StudyDesign) -> dict[str, dict]:
    tp = d.visit_label(s["attendance_timepoint"])
    arm, first, last = d.arm_label(d.intervention), d.visit_label(d.visits[0]), d.visit_label(d.visits[-1])
    specs = {
        "trial_diagnostics": _shown(
            tables,
            "trial_diagnostics",
            "Diagnostics per outcome and model (passed: p >= alpha; Cook's rows are row numbers in the analysed data)",
        ),
        "trial_within_group_change": _shown(
            tables, "trial_within_group_change", f"Change {last} - {first} per arm (positive = the score rose)"
        ),
        "trial_subscales": _shown(
            tables, "trial_subscales", f"Post hoc subscales: {d.contrast_label} (p_holm / p_bh within this family)"
        ),
        "trial_subscale_complete_case": _shown(
            tables, "trial_subscale_complete_case", "IMRS subscales: complete-case ANCOVA per visit"
        ),
        "trial_attendance": _shown(tables, "trial_attendance", f"Attendance dose-response at {tp} ({arm} arm)"),
        "trial_cace": _shown(
            tables, "trial_cace", "CACE by instrumental variables (assumes the exclusion restriction)"
        ),
    }
    return {k: v for k, v in specs.items() if v is not None}


def _ice_counts_text(row, d: StudyDesign) -> str:
    """A ``trial_estimands`` row's counts per arm as text: "Drug: JR 20, no ICE 64 (84 of 84 analysed)"."""
    parts = []
    for arm in d.arms:
        a = d.arm_key(arm)
        by = [
            f"{s} {int(row[f'n_{s.lower()}_{a}'])}"
            for s in ICE_STRATEGIES
            if f"n_{s.lower()}_{a}" in row.index and pd.notna(row[f"n_{s.lower()}_{a}"])
        ]
        parts.append(
            f"{d.arm_label(arm)}: {', '.join([*by, f'no ICE {int(row[f"n_no_ice_{a}"])}'])} "
            f"({int(row[f'n_analysed_{a}'])} of {int(row[f'n_randomised_{a}'])} analysed)"
        )
    return "; ".join(parts)


def _estimand_tables(tables: dict, d: StudyDesign, level: float, figures: list) -> dict | None:
    """The Estimands table (attributes, intercurrent events with their strategies and counts per arm) and the
    estimands' results beside the ITT MAR analysis's (contrast and each arm's LS mean per visit), in the arms' and
    visits' labels; the method of each row is its own ``method`` column."""
    if "trial_estimands" not in tables:
        return None
    est = tables["trial_estimands"]
    attributes = pd.DataFrame(
        {
            "estimand": est["estimand"],
            "outcome": est["instrument"],
            "treatment": est["treatment"],
            "population": est["population"],
            "variable": est["variable"],
            "intercurrent events: rule, handling, strategy": est["intercurrent_events"],
            "population-level summary": est["summary"],
            "ICEs per arm and strategy": [_ice_counts_text(r, d) for _, r in est.iterrows()],
            "reference arm": est["reference"],
            "notes": est["notes"],
            "method": est["method"],
        }
    )
    contrast = d.contrast_label
    arms = [(arm, d.arm_key(arm), d.arm_label(arm)) for arm in d.arms]
    rows = []
    results = tables.get("trial_estimand_results", pd.DataFrame())
    itt = tables.get("trial_itt_contrasts", pd.DataFrame())
    means = tables.get("trial_itt_adjusted_means", pd.DataFrame())
    for outcome in dict.fromkeys(results.get("outcome", pd.Series(dtype=object))):
        for visit in d.visits:
            c = itt.loc[(itt["outcome"] == outcome) & (itt["timepoint"] == visit)] if len(itt) else itt
            if len(c):
                c = c.iloc[0]
                row = {
                    "analysis": "MAR: ITT MI-MMRM (primary analysis)",
                    "outcome": c["instrument"],
                    "visit": d.visit_label(visit),
                    contrast: c["estimate"],
                    "SE": c["se"],
                    "CI low": c["ci_low"],
                    "CI high": c["ci_high"],
                    "p": c["p"],
                }
                for arm, _, label in arms:
                    m = means.loc[(means["outcome"] == outcome) & (means["timepoint"] == visit) & (means["arm"] == arm)]
                    row[f"LS mean {label}"] = m["estimate"].iloc[0] if len(m) else None
                    row[f"LS mean {label} SE"] = m["se"].iloc[0] if len(m) else None
                row["method"] = c["method"]
                rows.append(row)
            mine = results.loc[(results["outcome"] == outcome) & (results["timepoint"] == visit)]
            for _, r in mine.iterrows():
                row = {
                    "analysis": f"{r['estimand']} ({r['strategies']}, reference {r['reference']})",
                    "outcome": r["instrument"],
                    "visit": d.visit_label(visit),
                    contrast: r["contrast"],
                    "SE": r["contrast_se"],
                    "CI low": r["contrast_ci_low"],
                    "CI high": r["contrast_ci_high"],
                    "p": r["contrast_p"],
                }
                for _, key, label in arms:
                    row[f"LS mean {label}"] = r[f"lsmean_{key}"]
                    row[f"LS mean {label} SE"] = r[f"lsmean_{key}_se"]
                row["method"] = r["method"]
                rows.append(row)
    points = tables.get("trial_estimand_tipping_points")
    tipping = None
    if points is not None:
        varied = {"intervention": d.arm_label(d.intervention), "control": d.arm_label(d.control)}
        tipping = pd.DataFrame(
            {
                "estimand": points["estimand"],
                "outcome": points["outcome"],
                "visit": points["timepoint"].map(d.visit_label),
                "delta varied in": points["varied"].map(lambda v: varied.get(v, v)),
                f"delta {d.arm_label(d.intervention)}": points["delta_intervention"],
                f"delta {d.arm_label(d.control)}": points["delta_control"],
                contrast: points["estimate"],
                "SE": points["se"],
                "p": points["p"],
                "from": points["from_conclusion"],
                "to": points["to_conclusion"],
                "method": points["method"],
            }
        )
    return {
        "tipping": tipping,
        "tipping_figures": [
            (name, f"Two-dimensional tipping point, {name.removeprefix('trial_estimand_tipping_')}")
            for name in figures
            if name.startswith("trial_estimand_tipping_")
        ],
        "attributes": attributes,
        "results": pd.DataFrame(rows),
        "contrast": contrast,
        "level": f"{level:.0%}",
    }


def render_trial_section(result: StageResult) -> str:
    """The trial section of the report: ITT and sensitivity analyses, then the secondary analyses."""
    s = result.record["settings"]
    d = StudyDesign.from_settings(s)
    figures = list(result.figures)
    diagnostics = [
        (
            k,
            f"Diagnostics, {k.removeprefix('trial_diagnostics_')}: Q-Q, residuals vs fitted, Cook's "
            "distance (dashed: 4/n), residuals vs baseline",
        )
        for k in figures
        if k.startswith("trial_diagnostics_")
    ]
    return render_template(
        "trial/section.html.j2",
        s=s,
        flag_list=result.flags,
        main=_main_tables(result.tables, figures, s, d),
        secondary=_secondary_tables(result.tables, s, d),
        diagnostics_figures=diagnostics,
        attendance_figure="trial_attendance" in figures,
        design=_design_text(d, s),
        estimands=_estimand_tables(result.tables, d, 1 - float(s["alpha"]), figures),
    )


def _design_text(d: StudyDesign, s: dict) -> dict:
    """The study design as the section's prose names it (arms and visits by their labels)."""
    previous = d.visits[-2] if len(d.visits) > 1 else d.baseline
    return {
        "intervention": d.arm_label(d.intervention),
        "control": d.arm_label(d.control),
        "contrast": d.contrast_label,
        "all_visits": ", ".join(d.visit_text(v) for v in d.all_visits),
        "visits": d.visits_text,
        "slope": d.slope_text,
        "first": d.visit_text(d.visits[0]),
        "last": d.visit_text(d.visits[-1]),
        "previous": d.visit_text(previous),
        "first_code": d.visit_label(d.visits[0]),
        "last_code": d.visit_label(d.visits[-1]),
        "several_visits": len(d.visits) > 1,
        "attendance_visit": d.visit_label(s["attendance_timepoint"]),
        "primary_visit": d.visit_label(s["primary"]["timepoint"]),
    }
