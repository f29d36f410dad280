"""The meta-analysis stage: published IMR effects -> sign-aligned effect sizes -> frequentist pooling.

Reads the curated, cited tables in ``data/published/`` (``imrstats.data.published``), turns every row into an
effect size with its sampling variance (``effect_table``; conversions from ``imrstats.meta.effect_sizes``, each
with the assumption it rests on), picks one row per study and outcome by a stated preference order
(``select_outcome_rows``), and pools each outcome with ``imrstats.meta.random_effects.rma``: every tau^2 estimator side
by side (REML, DL, PM, ML and the equal-effects model), heterogeneity with the Q-profile CI for tau^2
(Viechtbauer 2007), the prediction interval (Riley et al. 2011), leave-one-out, Egger's test (k >= 3;
low power below k = 10, Sterne et al. 2011), the cumulative meta-analysis by publication year, and
sensitivity analyses (rows needing no assumption; an alternative timepoint preference; rows curated
as ``sensitivity`` added). Implementation outcomes (McGuire et al. 2014, Table 3 dropout and completion)
are turned into events out of the number of people offered IMR (``DENOMINATOR_RULE``), pooled as logit
proportions (metafor ``measure="PLO"``), again without the studies whose IMR N is assumed, and set beside
the review's own medians.

Knapp-Hartung is on by default: with k = 2 to 4 studies the Wald z interval is far too narrow
(IntHout et al. 2014, BMC Med Res Methodol 14:25), and the t(k - 1) interval with the KH variance
keeps its coverage. Every effect is signed so that a positive value favours IMR.

The Bayesian pooling plugs in through ``run_meta_stage(..., bayes=callable)`` (see ``BayesHook``).
"""

from __future__ import annotations

import math
from typing import Callable

import pandas as pd
from scipy import stats
from scipy.special import expit

from imrstats.config import section_settings
from imrstats.data.published import (
    DENOMINATOR_BASES,
    IMPLEMENTATION_MEASURES,
    load_implementation_rates,
    load_published_outcomes,
)
from imrstats.errors import AnalysisError, InputError, SettingsError
from imrstats.meta import effect_sizes as es
from imrstats.meta.inputs import convert_row
from imrstats.meta.random_effects import MetaResult, rma
from imrstats.meta.tables import stack_frames, with_leading_columns
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.format import format_number as fmt  # the report's one number formatter
from imrstats.results import Estimate, to_frame, to_records

FAVOURS = "positive favours IMR"
ESTIMATORS = ("REML", "DL", "PM", "ML", "EE")
ANALYSES = ("itt", "not_stated", "complete_case")

# The stage's settings: the config's `meta` section (with its `bayes` sub-section), defaults in
# workflow/schemas/config.schema.yaml (imrstats.config.section_settings).

# Summary numbers as McGuire et al. (2014) state them (Results, whitespace collapsed), for the comparison.
REVIEW_SOURCE = "McGuire et al. 2014, Psychiatric Services 65(2):171-179"
REVIEW_QUOTES = {
    "dropout_pct": (
        "Results, Implementation Outcomes: 'The median dropout rate across nine studies reporting "
        "(2, 6, 8, 14-17, 25, 41) was 24% and dropout rates were rather consistently within the "
        "20%-30% range (2, 6, 15, 17, 18, 41).' Summary: 'both median dropout (about 24%) and "
        "completion rates (63%) leave much room for improvement.'",
        24.0,
    ),
    "completion_pct": (
        "Results, Implementation Outcomes: 'seven studies (2, 14-16, 18, 26, 41) reported "
        "completion rates, with a median rate of 63%. Unlike dropout rate, completion rates "
        "varied substantially between studies (range = 15%-86%).'",
        63.0,
    ),
}
MEASURE_NAMES = {"dropout_pct": "dropout", "completion_pct": "completion (graduation)"}

BayesHook = Callable[[dict, dict, "int | None"], StageResult]
"""``bayes(pooling_inputs, settings, seed) -> StageResult``: ``pooling_inputs`` maps each outcome label
to the included effects (one row per study: study, year, yi, vi, sei, measure, ...), exactly what the
frequentist analysis pooled; its tables and figures are added with a ``bayes_`` prefix, its record under
``record["bayes"]``, its flags to the stage's flags (the section renders it after the frequentist part)."""


# ---------------------------------------------------------------------------------------------
# Effect sizes from curated rows


def _convert_row(row: pd.Series) -> tuple[float, float, str, str]:
    """(yi, vi, measure, the conversion's own assumption) for one curated row, signed to favour IMR: the one
    conversion ``imrstats meta`` shares (``imrstats.meta.inputs.convert_row``)."""
    return convert_row(row)


def effect_table(outcomes: pd.DataFrame, *, skip_invalid: bool = False, level: float = 0.95) -> pd.DataFrame:
    """Curated rows (``published_outcomes.csv`` as ``load_published_outcomes`` returns it) -> effect sizes.

    One row per input row: study, year, instrument, rater, timepoint, analysis, use, ``measure`` ("SMD":
    Hedges' g; "MD": raw mean difference; "log OR"), ``yi``, ``vi``, ``sei`` and a normal ``ci_low`` /
    ``ci_high``, ``conversion``, ``assumption`` (the curated assumption and the conversion's own, joined),
    ``needs_assumption`` (the curated ``assumption`` is not empty: what the sensitivity analysis drops),
    ``direction`` and ``source``; ``row`` is the CSV line. Every ``yi`` is signed so that positive favours
    IMR (``sign_favouring_imr``). A row that cannot be converted raises ``AnalysisError`` naming it, or
    with ``skip_invalid=True`` gets NaN effects and the reason in ``problem``.
    """
    needed = {"study", "year", "instrument", "conversion", "sign_favouring_imr", "assumption", "source"}
    missing = needed - set(outcomes.columns)
    if missing:
        raise InputError(f"effect_table needs the columns of published_outcomes.csv; missing {sorted(missing)}")
    z = float(stats.norm.isf((1 - level) / 2))
    rows = []
    for index, row in outcomes.iterrows():
        problem = ""
        try:
            yi, vi, measure, conv_assumption = _convert_row(row)
        except (AnalysisError, InputError, ValueError) as error:
            if not skip_invalid:
                raise AnalysisError(
                    f"{row['study']} ({row['instrument']}, {row.get('timepoint', '')}), line {int(index) + 2}: {error}"
                ) from error
            yi, vi, measure, conv_assumption, problem = math.nan, math.nan, "", "", str(error)
        curated = str(row["assumption"]).strip()
        sei = math.sqrt(vi) if vi > 0 else math.nan
        rows.append(
            {
                "row": int(index) + 2,
                "study": row["study"],
                "year": row["year"],
                "outcome": row.get("outcome", ""),
                "instrument": row["instrument"],
                "rater": row.get("rater", ""),
                "timepoint": row.get("timepoint", ""),
                "analysis": row.get("analysis", ""),
                "use": row.get("use", ""),
                "measure": measure,
                "yi": yi,
                "vi": vi,
                "sei": sei,
                "ci_low": yi - z * sei,
                "ci_high": yi + z * sei,
                "conversion": row["conversion"],
                "assumption": "; ".join(a for a in (curated, conv_assumption) if a),
                "needs_assumption": curated != "",
                "direction": _direction_text(row, measure),
                "source": row["source"],
                "problem": problem,
            }
        )
    return pd.DataFrame(rows)


def _direction_text(row: pd.Series, measure: str) -> str:
    if measure == "":
        return ""
    flipped = not pd.isna(row["sign_favouring_imr"]) and int(row["sign_favouring_imr"]) == -1
    return f"{FAVOURS} ({'sign reversed: lower is better' if flipped else 'IMR minus control'})"


# ---------------------------------------------------------------------------------------------
# Which rows one outcome pools


def select_outcome_rows(
    effects: pd.DataFrame, instruments: list[str], *, uses, timepoints, analyses, drop_assumptions: bool = False
) -> pd.DataFrame:
    """All candidate rows of one outcome (instrument in ``instruments``, use not ``context``) with
    ``included`` and ``reason``: one row per study, the first by timepoint, then instrument, then analysis
    preference; rows outside ``uses`` / ``timepoints``, failed conversions, rows needing assumptions (when
    ``drop_assumptions``) and rows whose measure differs from the pooled one (SMD if any) are excluded."""
    cand = effects.loc[effects["instrument"].isin(instruments) & (effects["use"] != "context")].copy()
    cand["included"] = False
    cand["reason"] = ""

    def exclude(mask, reason):
        cand.loc[mask & (cand["reason"] == ""), "reason"] = reason

    exclude(cand["problem"] != "", "conversion failed: " + cand["problem"])
    exclude(~cand["use"].isin(uses), "use '" + cand["use"] + "' is not in meta.uses")
    if drop_assumptions:
        exclude(cand["needs_assumption"], "needs an assumption (dropped in this sensitivity analysis)")
    exclude(~cand["timepoint"].isin(timepoints), "timepoint '" + cand["timepoint"] + "' not in the preference list")
    ok = cand["reason"] == ""
    measures = cand.loc[ok, "measure"]
    if len(measures):
        pooled = "SMD" if (measures == "SMD").any() else sorted(measures.unique())[0]
        exclude(cand["measure"] != pooled, "measure '" + cand["measure"] + f"' cannot be pooled with {pooled}")
    rank = pd.DataFrame(
        {
            "t": cand["timepoint"].map({t: i for i, t in enumerate(timepoints)}),
            "i": cand["instrument"].map({t: i for i, t in enumerate(instruments)}),
            "a": cand["analysis"].map({t: i for i, t in enumerate(analyses)}).fillna(len(analyses)),
            "r": cand["row"],
        }
    )
    order = rank.sort_values(["t", "i", "a", "r"]).index
    seen: set = set()
    for idx in order:
        if cand.at[idx, "reason"] != "":
            continue
        study = cand.at[idx, "study"]
        if study in seen:
            cand.at[idx, "reason"] = "another row of this study is preferred (timepoint / instrument / analysis order)"
        else:
            seen.add(study)
            cand.at[idx, "included"] = True
    return cand.sort_values(["included", "year", "study", "row"], ascending=[False, True, True, True])


def _included(selection: pd.DataFrame) -> pd.DataFrame:
    return selection.loc[selection["included"]].sort_values(["year", "study"], kind="stable").reset_index(drop=True)


def outcome_inputs(outcomes: pd.DataFrame, settings: dict | None = None) -> dict[str, pd.DataFrame]:
    """Per outcome label, the effects the main analysis pools (one row per study, in publication order):
    the input the Bayesian pooling takes, so both analyses pool the same numbers."""
    s = section_settings("meta", settings)
    effects = effect_table(outcomes, skip_invalid=True, level=s["level"])
    return {
        label: _included(
            select_outcome_rows(effects, list(keys), uses=s["uses"], timepoints=s["timepoints"], analyses=s["analyses"])
        )
        for label, keys in s["outcomes"].items()
    }


# ---------------------------------------------------------------------------------------------
# Pooling one outcome


def _labels(data: pd.DataFrame) -> list[str]:
    return [f"{s} ({int(y)})" if not str(s).endswith(str(y)) else str(s) for s, y in zip(data["study"], data["year"])]


def _fit(data: pd.DataFrame, method: str, knha: bool, level: float) -> MetaResult:
    return rma(
        data["yi"].to_numpy(float),
        data["vi"].to_numpy(float),
        method=method,
        knha=knha and method not in ("EE", "FE"),
        level=level,
        slab=_labels(data),
    )


def _pooled_row(fit: MetaResult, quantity: str) -> Estimate:
    pred = fit.predict()
    re = fit.method not in ("EE", "FE") and fit.k > 1
    method = fit.method_label + ("; PI = estimate +/- crit sqrt(se^2 + tau^2)" if re else "")
    return Estimate(
        quantity,
        fit.estimate,
        fit.se,
        fit.ci_low,
        fit.ci_high,
        fit.df,
        fit.statistic,
        fit.p,
        method,
        "; ".join(fit.notes),
        {
            "k": fit.k,
            "estimator": fit.method if fit.k > 1 else "none",
            "tau2": fit.tau2 if re else math.nan,
            "i2": fit.i2,
            "h2": fit.h2,
            "q": fit.q,
            "q_p": fit.q_p,
            "pi_low": pred.extra["pi_low"] if re else math.nan,
            "pi_high": pred.extra["pi_high"] if re else math.nan,
        },
    )


def _failed_row(quantity: str, method: str, error: Exception, k: int) -> Estimate:
    return Estimate(quantity, math.nan, method=method, notes=f"fit failed: {error}", extra={"k": k})


def pool_outcome(data: pd.DataFrame, *, method: str = "REML", knha: bool = True, level: float = 0.95) -> dict:
    """Everything the report shows for one outcome's included rows (one per study). Returns a dict of
    frames: ``estimators`` (REML, DL, PM, ML, EE side by side), ``heterogeneity`` (Q; tau^2, tau, I^2,
    H^2 with Q-profile CIs), ``leave_one_out``, ``egger`` (k >= 3), ``cumulative`` (by year), plus ``fit``
    (the main ``MetaResult``) and ``flags``. k = 1: that study's effect with a note, nothing pooled."""
    k = len(data)
    if k == 0:
        raise AnalysisError("no study reports this outcome under the settings' uses and timepoints")
    measure = data["measure"].iloc[0]
    flags: list[str] = []
    out: dict = {"k": k, "measure": measure, "flags": flags}
    if k == 1:
        fit = _fit(data, method, False, level)
        out["fit"] = fit
        out["estimators"] = to_frame([_pooled_row(fit, f"{measure} of the only study (no pooling)")])
        return out
    rows = []
    for m in ESTIMATORS:
        try:
            fit = _fit(data, m, knha, level)
            rows.append(_pooled_row(fit, f"pooled {measure}"))
            if m == method:
                out["fit"] = fit
        except AnalysisError as error:
            rows.append(_failed_row(f"pooled {measure}", m, error, k))
            flags.append(f"{m} fit failed: {error}")
    out["estimators"] = to_frame(rows)
    fit = out.get("fit")
    if fit is None:
        flags.append(f"the main estimator {method} failed; heterogeneity, leave-one-out and Egger are not shown")
        return out
    het = [
        Estimate(
            "Q (heterogeneity)",
            fit.q,
            df=float(fit.q_df),
            statistic=fit.q,
            p=fit.q_p,
            method="Cochran's Q, chi-square(k - 1)",
        )
    ]
    het_frame = to_frame(het)
    if fit.method not in ("EE", "FE"):
        het_frame = pd.concat([het_frame, fit.confint()], ignore_index=True)
    out["heterogeneity"] = het_frame
    if fit.knha and fit.s2w < 1 and fit.method not in ("EE", "FE"):
        flags.append(
            f"Knapp-Hartung variance factor {fit.s2w:.3f} < 1: the studies agree more closely than their "
            "variances imply, so the Knapp-Hartung interval is narrower than the Wald interval and "
            "overstates precision with so few studies (Jackson et al. 2017, Stat Med 36:3923); read the "
            "pooled CI and p with caution"
        )
    out["leave_one_out"] = fit.leave1out()
    out["cumulative"] = fit.cumulative(order=data["year"].astype(float).to_numpy())
    if k >= 3:
        try:
            egger = fit.regtest()
            egger["low_power"] = k < 10
            out["egger"] = egger
        except AnalysisError as error:
            out["egger"] = to_frame(
                [
                    Estimate(
                        "funnel asymmetry (slope on SE)",
                        math.nan,
                        method="Egger regression",
                        notes=f"not computed: {error}",
                    )
                ]
            )
    return out


# ---------------------------------------------------------------------------------------------
# Implementation outcomes (McGuire et al. 2014, Table 3)


DENOMINATOR_RULE = (
    "the denominator of a dropout or completion rate is the number of people offered IMR: the IMR group's N "
    "where Table 1 prints it (Salyers 2011: 144 of 498), the whole sample of a single-group pre-post study, and "
    "for a controlled study that prints only its total an assumed IMR group N, stated per row (equal allocation, "
    "or the group size the printed percentages allow); the control arm never counts. A rate the review gives "
    "for IMR and control combined (Hasson-Ohayon 2007, Table 3 footnote 1) is not an IMR rate and is not pooled"
)


def implementation_effects(
    rates: pd.DataFrame, *, measures=("dropout_pct", "completion_pct"), uses=("pool with care",)
) -> pd.DataFrame:
    """Table 3 percentages -> events / N -> logit proportions (metafor ``measure="PLO"``), one row per
    study x measure.

    N is the row's curated ``denominator``, the number of people offered IMR (``DENOMINATOR_RULE``;
    data/published/README.md gives the evidence per study); events = round(percent x N / 100).
    ``reconstructed_pct`` = 100 x events / N and ``consistent`` (it rounds to the printed percent) check
    the pair, as GRIM does for means (Brown & Heathers 2017). ``denominator_assumed`` marks an IMR N the
    review does not print. Rows without N, over all arms, or outside ``uses`` get ``included`` False and a
    ``reason``."""
    bad = set(measures) - set(IMPLEMENTATION_MEASURES)
    if bad:
        raise InputError(f"unknown implementation measures {sorted(bad)}")
    missing = {"denominator", "denominator_basis"} - set(rates.columns)
    if missing:
        raise InputError(
            f"implementation rates lack the columns {sorted(missing)}; every dropout and completion "
            "row needs its denominator (see data/published/README.md)"
        )
    rows = []
    for _, r in rates.loc[rates["measure"].isin(measures)].iterrows():
        n = float(r["denominator"]) if pd.notna(r["denominator"]) else math.nan
        basis = str(r["denominator_basis"]).strip()
        reason = ""
        if r["use"] not in uses:
            reason = f"use '{r['use']}' not in meta.implementation.uses"
        elif basis == "all_arms":
            reason = "rate over IMR and control combined: not an IMR rate"
        elif math.isnan(n) or pd.isna(r["value"]):
            reason = "no N for the denominator (or no single value)"
        events = round(float(r["value"]) * n / 100) if reason == "" else math.nan
        yi = vi = math.nan
        if reason == "":
            plo = es.plo(events, n)
            yi, vi = float(plo.yi), float(plo.vi)
        recon = 100 * events / n if reason == "" else math.nan
        rows.append(
            {
                "study": r["study"],
                "year": r["year"],
                "design": r["design"],
                "measure": r["measure"],
                "percent": float(r["value"]),
                "n": n,
                "denominator": DENOMINATOR_BASES.get(basis, basis),
                "denominator_basis": basis,
                "denominator_assumed": basis.startswith("assumed_"),
                "events": events,
                "reconstructed_pct": recon,
                "consistent": bool(reason == "" and math.floor(recon + 0.5) == float(r["value"])),
                "yi": yi,
                "vi": vi,
                "included": reason == "",
                "reason": reason,
                "assumption": "; ".join(
                    a
                    for a in (str(r["assumption"]).strip(), "events = round(percent x N / 100)" if reason == "" else "")
                    if a
                ),
                "source": r["source"],
            }
        )
    return pd.DataFrame(rows)


def pool_implementation(
    effects: pd.DataFrame, rates: pd.DataFrame, *, method: str = "REML", knha: bool = True, level: float = 0.95
) -> pd.DataFrame:
    """Random-effects pooled proportion per measure on the logit scale, back-transformed (inverse logit) to
    percent, beside the median of the pooled studies' percentages, the median of every Table 3 cell
    (including ``context`` rows) and the review's own stated median."""
    rows = []
    for measure in effects["measure"].unique():
        data = effects.loc[(effects["measure"] == measure) & effects["included"]].sort_values(["year", "study"])
        all_cells = rates.loc[rates["measure"] == measure, "value"].dropna()
        quote, review_median = REVIEW_QUOTES.get(measure, ("", math.nan))
        extra = {
            "measure": measure,
            "median_pooled_studies_pct": float(data["percent"].median()) if len(data) else math.nan,
            "median_all_table3_pct": float(all_cells.median()),
            "n_table3_cells": int(all_cells.size),
            "review_median_pct": review_median,
            "review_quote": quote,
            "review_source": REVIEW_SOURCE,
            "denominator_rule": DENOMINATOR_RULE,
        }
        rows.append(
            _pooled_proportion(
                data, f"pooled {MEASURE_NAMES.get(measure, measure)} (%)", extra, method=method, knha=knha, level=level
            )
        )
    return to_frame(rows)


def implementation_sensitivity(
    effects: pd.DataFrame, *, method: str = "REML", knha: bool = True, level: float = 0.95
) -> pd.DataFrame:
    """The pooled proportions again without the studies whose IMR group N is assumed (``denominator_assumed``:
    a controlled study that prints only its total), beside the main analysis: how much the result rests on
    denominators the review does not print. One row per measure x analysis (``analysis``, ``k``,
    ``studies`` in ``extra``)."""
    variants = (
        ("main: denominator = people offered IMR (printed or assumed)", lambda d: d),
        (
            "only printed denominators (studies with an assumed IMR N left out)",
            lambda d: d.loc[~d["denominator_assumed"].astype(bool)],
        ),
    )
    rows = []
    for measure in effects["measure"].unique():
        data = effects.loc[(effects["measure"] == measure) & effects["included"]].sort_values(["year", "study"])
        for analysis, pick in variants:
            part = pick(data)
            extra = {"measure": measure, "analysis": analysis, "studies": ", ".join(part["study"])}
            rows.append(
                _pooled_proportion(
                    part,
                    f"pooled {MEASURE_NAMES.get(measure, measure)} (%)",
                    extra,
                    method=method,
                    knha=knha,
                    level=level,
                )
            )
    return to_frame(rows)


def _pooled_proportion(
    data: pd.DataFrame, quantity: str, extra: dict, *, method: str, knha: bool, level: float
) -> Estimate:
    """One random-effects fit of logit proportions (rows with yi, vi, study), back-transformed to percent."""
    if len(data) == 0:
        return Estimate(quantity, math.nan, method="no study", notes="no study to pool", extra={**extra, "k": 0})
    try:
        fit = rma(data["yi"], data["vi"], method=method, knha=knha, level=level, slab=list(data["study"]))
    except AnalysisError as error:
        return Estimate(
            quantity, math.nan, method=method, notes=f"fit failed: {error}", extra={**extra, "k": len(data)}
        )
    pred = fit.predict()
    re = fit.k > 1 and fit.method not in ("EE", "FE")
    return Estimate(
        quantity,
        100 * expit(fit.estimate),
        math.nan,
        100 * expit(fit.ci_low),
        100 * expit(fit.ci_high),
        fit.df,
        fit.statistic,
        fit.p,
        f"logit proportion (metafor PLO), {fit.method_label}; back-transformed by inverse logit",
        "; ".join(fit.notes),
        {
            **extra,
            "k": fit.k,
            "logit_estimate": fit.estimate,
            "logit_se": fit.se,
            "pi_low": 100 * expit(pred.extra["pi_low"]) if re else math.nan,
            "pi_high": 100 * expit(pred.extra["pi_high"]) if re else math.nan,
            "tau2": fit.tau2 if re else math.nan,
            "i2": fit.i2,
            "q": fit.q,
            "q_p": fit.q_p,
        },
    )


# ---------------------------------------------------------------------------------------------
# Sensitivity analyses


def sensitivity_analyses(effects: pd.DataFrame, instruments: list[str], s: dict) -> pd.DataFrame:
    """The main pooled effect beside: rows needing no assumption only; the alternative timepoint
    preference (``sensitivity_timepoints``); rows curated as ``sensitivity`` added to ``uses``."""
    base = {"uses": s["uses"], "timepoints": s["timepoints"], "analyses": s["analyses"]}
    variants = [("main analysis", base), ("only rows needing no assumption", {**base, "drop_assumptions": True})]
    if s["sensitivity_timepoints"]:
        variants.append(
            (
                "timepoint preference: " + ", ".join(s["sensitivity_timepoints"]),
                {**base, "timepoints": s["sensitivity_timepoints"]},
            )
        )
    if "sensitivity" not in s["uses"]:
        variants.append(("rows curated as use = 'sensitivity' added", {**base, "uses": [*s["uses"], "sensitivity"]}))
    rows = []
    for name, kwargs in variants:
        data = _included(select_outcome_rows(effects, instruments, **kwargs))
        extra = {"analysis": name, "k": len(data), "studies": "; ".join(_labels(data))}
        if len(data) == 0:
            rows.append(Estimate("pooled effect", math.nan, method="none", notes="no study left", extra=extra))
            continue
        try:
            fit = _fit(data, s["method"], s["knha"], s["level"])
        except AnalysisError as error:
            rows.append(_failed_row("pooled effect", s["method"], error, len(data)))
            continue
        row = _pooled_row(
            fit,
            f"pooled {data['measure'].iloc[0]}"
            if fit.k > 1
            else f"{data['measure'].iloc[0]} of the only study (no pooling)",
        )
        rows.append(
            Estimate(
                **{
                    **row.__dict__,
                    "extra": {**extra, **{key: row.extra[key] for key in ("tau2", "i2", "pi_low", "pi_high")}},
                }
            )
        )
    return to_frame(rows)


# ---------------------------------------------------------------------------------------------
# Influence, trim-and-fill and several effects per study (multilevel sensitivity analysis)

MULTILEVEL_RULE = (
    "every row of the outcome the main analysis could choose from (use in meta.uses, timepoint in meta.timepoints, "
    "the pooled measure), several per study (timepoints, instruments, raters), one per study x instrument x "
    "timepoint (the preferred analysis); three-level model (effects within studies) with CR2 cluster-robust SEs "
    "by study and Satterthwaite df (Tipton and Pustejovsky 2015)"
)


def influence_tables(fit: MetaResult | None, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(influence, trimfill) of one pooled outcome's main fit: metafor's case-deletion diagnostics with the
    influential flag (``influence.influence``; ``method`` names the fit and the rule) and Duval and Tweedie's
    trim-and-fill (``influence.trimfill``: L0, the side from Egger's slope as metafor chooses it; rows k0, the
    pooled effect with the filled-in studies, the observed studies' pooled effect), both from the main model refitted
    at the optimum (``own_evidence.at_optimum``, as ``imrstats meta`` computes them). k < 3, or a step that cannot
    run: one row saying why (``notes``)."""
    from imrstats.meta.influence import INFLUENCE_RULE, influence, trimfill
    from imrstats.meta.own_evidence import at_optimum

    label = f"trim and fill (L0; Duval and Tweedie 2000); {fit.method_label}" if fit is not None else "trim and fill"
    if fit is None or k < 3:
        why = f"not computed: k = {k} (needs k >= 3)" if fit is None or k < 3 else ""
        return (
            pd.DataFrame([{"study": "", "note": why, "method": "metafor influence.rma.uni"}]),
            to_frame([Estimate("k0 (studies estimated missing)", math.nan, method=label, notes=why, extra={"k": k})]),
        )
    fit = at_optimum(fit)
    try:
        table = influence(fit).rename(columns={"slab": "study"})
        table["method"] = (
            f"metafor influence.rma.uni (Viechtbauer and Cheung 2010) of {fit.method_label}; {INFLUENCE_RULE}"
        )
    except AnalysisError as error:
        table = pd.DataFrame([{"study": "", "note": f"not computed: {error}", "method": "metafor influence.rma.uni"}])
    try:
        filled = trimfill(fit).to_frame()
    except AnalysisError as error:
        filled = to_frame(
            [
                Estimate(
                    "k0 (studies estimated missing)",
                    math.nan,
                    method=label,
                    notes=f"not computed: {error}",
                    extra={"k": k},
                )
            ]
        )
    return table, filled


def multilevel_rows(selection: pd.DataFrame, analyses) -> pd.DataFrame:
    """The rows a multilevel sensitivity analysis pools, from ``select_outcome_rows``' candidates: every row
    included or set aside only because another row of its study is preferred, one per study x instrument x
    timepoint (the first by ``analyses``: two analyses of one effect are one effect), in publication order;
    ``effect`` labels each within its study (instrument / timepoint)."""
    usable = selection.loc[
        selection["included"] | selection["reason"].str.startswith("another row of this study is preferred")
    ].copy()
    rank = usable["analysis"].map({a: i for i, a in enumerate(analyses)}).fillna(len(analyses))
    usable = usable.assign(_rank=rank).sort_values(["_rank", "row"], kind="stable")
    usable = usable.drop_duplicates(["study", "instrument", "timepoint"]).drop(columns="_rank")
    usable["effect"] = usable["instrument"].astype(str) + " / " + usable["timepoint"].astype(str)
    return usable.sort_values(["year", "study", "row"], kind="stable").reset_index(drop=True)


def multilevel_sensitivity(data: pd.DataFrame, s: dict, main: MetaResult | None = None) -> pd.DataFrame:
    """Every row of one outcome (``multilevel_rows``) pooled with the three-level model (``multilevel.rma_mv``,
    REML, or ML when meta.method is ML) and its CR2 tests (``multilevel.robust_cr2``), beside the main analysis
    (``main``: one row per study). Rows: the main analysis, the multilevel model (model-based SE, Wald z), and
    CR2 (the inference to read); ``k`` effects, ``n_studies``, the variance components, the CSV lines pooled. When
    no study gives several rows there is nothing to nest: one row says so (the main analysis already pools every
    row)."""
    from imrstats.meta.multilevel import multilevel_inputs, robust_cr2

    method = "ML" if s["method"] == "ML" else "REML"
    measure = data["measure"].iloc[0] if len(data) else ""
    rows_text = ", ".join(str(r) for r in data["row"])
    studies = data["study"].nunique()
    extra = {
        "k": len(data),
        "n_studies": studies,
        "studies": "; ".join(dict.fromkeys(_labels(data.drop_duplicates("study")))) if len(data) else "",
        "effects": "; ".join(f"{a}: {b}" for a, b in zip(data["study"], data["effect"])),
        "rows": rows_text,
    }
    out: list[Estimate] = []
    if main is not None:
        row = _pooled_row(main, f"pooled {measure}")
        out.append(
            Estimate(
                **{
                    **row.__dict__,
                    "extra": {
                        "analysis": "main analysis (one row per study)",
                        "k": main.k,
                        "n_studies": main.k,
                        "studies": "; ".join(main.slab),
                    },
                }
            )
        )
    if len(data) == 0 or studies == len(data):
        why = (
            "not fitted: no study gives more than one row of this outcome, so nothing is nested (the main analysis "
            "already pools every row)"
            if len(data)
            else "not fitted: no row to pool"
        )
        out.append(
            Estimate(
                f"pooled {measure}",
                math.nan,
                method=MULTILEVEL_RULE,
                notes=why,
                extra={"analysis": "multilevel", **extra},
            )
        )
        return to_frame(out)
    try:
        entered = multilevel_inputs(
            data.assign(yi=data["yi"].astype(float), vi=data["vi"].astype(float)),
            study="study",
            effect="effect",
            source="published_outcomes.csv",
        )
        model = entered.fit(method=method, level=s["level"])
        robust = robust_cr2(model)
    except AnalysisError as error:
        out.append(
            Estimate(
                f"pooled {measure}",
                math.nan,
                method=MULTILEVEL_RULE,
                notes=f"not fitted: {error}",
                extra={"analysis": "multilevel", **extra},
            )
        )
        return to_frame(out)
    components = {"sigma2_study": model.sigma2_study, "sigma2_effect": model.sigma2_effect}
    model_row = model.estimates()[0]
    robust_row = robust.estimates()[0]
    out.append(
        Estimate(
            f"pooled {measure}",
            model_row.estimate,
            model_row.se,
            model_row.ci_low,
            model_row.ci_high,
            math.nan,
            model_row.statistic,
            model_row.p,
            model.method_label,
            "; ".join(model.notes),
            {"analysis": "multilevel, model-based SE (Wald z)", **extra, **components},
        )
    )
    out.append(
        Estimate(
            f"pooled {measure}",
            robust_row.estimate,
            robust_row.se,
            robust_row.ci_low,
            robust_row.ci_high,
            robust_row.df,
            robust_row.statistic,
            robust_row.p,
            robust.method_label,
            "; ".join(robust.notes),
            {"analysis": "multilevel, CR2 cluster-robust (Satterthwaite df)", **extra, **components},
        )
    )
    return to_frame(out)


def multilevel_groups(s: dict) -> dict[str, tuple[list[str], str]]:
    """The groups of ``meta.multilevel_groups`` (outcome labels pooled together in one multilevel sensitivity
    analysis, e.g. client- and clinician-rated IMRS): group -> (its instrument keys, "" or why it is not fitted:
    a label that is not an outcome of ``meta.outcomes``, e.g. when the config pools fewer outcomes). A group
    named like an outcome label is a SettingsError."""
    out = {}
    for group, labels in s["multilevel_groups"].items():
        if group in s["outcomes"]:
            raise SettingsError(
                [
                    (
                        f"meta.multilevel_groups.{group}",
                        "is an outcome label of meta.outcomes; give the group its own name",
                    )
                ]
            )
        unknown = [label for label in labels if label not in s["outcomes"]]
        keys = list(dict.fromkeys(key for label in labels if label in s["outcomes"] for key in s["outcomes"][label]))
        why = (
            f"not fitted: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not among the outcomes of "
            f"meta.outcomes ({', '.join(s['outcomes'])})"
            if unknown
            else ""
        )
        out[group] = (keys, why)
    return out


# ---------------------------------------------------------------------------------------------
# The stage


EFFECT_COLUMNS = [
    "outcome_label",
    "study",
    "year",
    "instrument",
    "rater",
    "timepoint",
    "analysis",
    "use",
    "measure",
    "yi",
    "vi",
    "sei",
    "ci_low",
    "ci_high",
    "included",
    "reason",
    "conversion",
    "assumption",
    "needs_assumption",
    "direction",
    "row",
    "source",
]


def run_meta_stage(
    tables: dict[str, pd.DataFrame] | None,
    settings: dict | None,
    *,
    seed: int | None = None,
    bayes: BayesHook | None = None,
) -> StageResult:
    """The meta-analysis stage on the curated published data (``tables`` is not used: the stage reads
    ``data/published/`` or the paths in ``settings``). ``bayes`` is the Bayesian pooling's hook
    (``BayesHook``); without it only the frequentist analysis runs. ``seed`` is passed to the hook.
    The report section is rendered from the result by ``imrstats.meta.section``."""
    from imrstats.meta.figures import implementation_figures, outcome_figures

    s = section_settings("meta", settings)
    outcomes = load_published_outcomes(s["published_outcomes"])
    effects = effect_table(outcomes, skip_invalid=True, level=s["level"])
    flags: list[str] = []
    for _, r in effects.loc[(effects["problem"] != "") & (effects["use"] != "context")].iterrows():
        flags.append(
            f"{r['study']} {r['instrument']} ({r['timepoint']}, line {r['row']}): conversion failed, "
            f"row left out: {r['problem']}"
        )
    parts: dict[str, list] = {
        key: []
        for key in ("effects", "estimators", "heterogeneity", "leave_one_out", "egger", "cumulative", "sensitivity")
    }
    parts.update(influence=[], trimfill=[])
    groups = multilevel_groups(s) if s["multilevel"] else {}
    if s["multilevel"]:
        parts["multilevel"] = []
    extra_summary: list[str] = []
    figures: dict = {}
    record: dict = {"settings": s, "direction": FAVOURS, "outcomes": {}}
    summary = []
    pooling_inputs: dict[str, pd.DataFrame] = {}
    for label, keys in s["outcomes"].items():
        selection = select_outcome_rows(
            effects, list(keys), uses=s["uses"], timepoints=s["timepoints"], analyses=s["analyses"]
        )
        parts["effects"].append(with_leading_columns(selection, outcome_label=label))
        data = _included(selection)
        pooling_inputs[label] = data
        try:
            pooled = pool_outcome(data, method=s["method"], knha=s["knha"], level=s["level"])
        except AnalysisError as error:
            flags.append(f"{label}: {error}")
            record["outcomes"][label] = {"k": 0, "note": str(error)}
            summary.append(f"  {label}: not pooled ({error})")
            continue
        flags += [f"{label}: {f}" for f in pooled["flags"]]
        for key in ("estimators", "heterogeneity", "leave_one_out", "egger", "cumulative"):
            if key in pooled:
                parts[key].append(with_leading_columns(pooled[key], outcome_label=label, direction=FAVOURS))
        sensitivity = sensitivity_analyses(effects, list(keys), s) if pooled["k"] >= 1 else None
        parts["sensitivity"].append(with_leading_columns(sensitivity, outcome_label=label, direction=FAVOURS))
        figures.update(outcome_figures(label, data, pooled, mid=s.get("mid")))
        record["outcomes"][label] = _outcome_record(label, data, pooled, sensitivity)
        summary.append(_outcome_summary(label, pooled, sensitivity))
        influence_table, filled = influence_tables(pooled.get("fit"), pooled["k"])
        parts["influence"].append(with_leading_columns(influence_table, outcome_label=label, direction=FAVOURS))
        parts["trimfill"].append(with_leading_columns(filled, outcome_label=label, direction=FAVOURS))
        extra_summary.append(_trimfill_summary(label, filled))
        if s["multilevel"]:
            several = multilevel_sensitivity(multilevel_rows(selection, s["analyses"]), s, pooled.get("fit"))
            parts["multilevel"].append(with_leading_columns(several, outcome_label=label, direction=FAVOURS))
    for group, (keys, why) in groups.items():
        if why:
            several = to_frame(
                [
                    Estimate(
                        "pooled effect", math.nan, method=MULTILEVEL_RULE, notes=why, extra={"analysis": "multilevel"}
                    )
                ]
            )
        else:
            selection = select_outcome_rows(
                effects, keys, uses=s["uses"], timepoints=s["timepoints"], analyses=s["analyses"]
            )
            several = multilevel_sensitivity(multilevel_rows(selection, s["analyses"]), s)
        parts["multilevel"].append(with_leading_columns(several, outcome_label=group, direction=FAVOURS))
    impl_tables, impl_summary = _implementation_part(s, flags, record)
    if impl_tables:
        figures.update(
            implementation_figures(
                impl_tables["meta_implementation_rates"], impl_tables["meta_implementation_pooled"], s
            )
        )
    result_tables = {
        f"meta_{k}": (
            stack_frames(v)[[c for c in EFFECT_COLUMNS if c in stack_frames(v).columns]]
            if k == "effects"
            else stack_frames(v)
        )
        for k, v in parts.items()
    }
    result_tables.update(impl_tables)
    record["influence"] = to_records(result_tables["meta_influence"])
    record["trimfill"] = to_records(result_tables["meta_trimfill"])
    if s["multilevel"]:
        record["multilevel"] = {"rule": MULTILEVEL_RULE, "rows": to_records(result_tables["meta_multilevel"])}
        extra_summary += _multilevel_summary(result_tables["meta_multilevel"])
    text = (
        _summary_text(s, summary, impl_summary)
        + "\n\nSmall-study effects and dependent effects:\n"
        + "\n".join(extra_summary)
    )
    result = StageResult("meta", result_tables, figures, record, text, flags=flags)
    if bayes is not None:
        _merge_bayes(result, bayes(pooling_inputs, s, seed))
    return result


def _merge_bayes(result: StageResult, part: StageResult) -> None:
    """Add the Bayesian pooling's output to the stage: ``bayes_`` tables and figures, its record, summary and
    flags (prefixed "Bayesian pooling: ", so the section shows them with its part)."""
    result.tables.update({(n if n.startswith("bayes_") else f"bayes_{n}"): t for n, t in part.tables.items()})
    result.figures.update({(n if n.startswith("bayes_") else f"bayes_{n}"): f for n, f in part.figures.items()})
    result.record["bayes"] = part.record
    result.summary = result.summary.rstrip() + "\n\n" + part.summary
    result.flags.extend(f"Bayesian pooling: {f}" for f in part.flags)


def _outcome_record(label, data, pooled, sensitivity) -> dict:
    return {
        "k": pooled["k"],
        "measure": pooled["measure"],
        "studies": _labels(data),
        "estimators": to_records(pooled["estimators"]),
        "heterogeneity": to_records(pooled.get("heterogeneity")),
        "egger": to_records(pooled.get("egger")),
        "sensitivity": to_records(sensitivity),
    }


def _trimfill_summary(label: str, filled: pd.DataFrame) -> str:
    k0 = filled.iloc[0]
    if not math.isfinite(k0["estimate"]):
        return f"  {label}: trim and fill {k0['notes']}"
    adjusted = filled.iloc[1]
    return (
        f"  {label}: trim and fill (L0, {k0['side']} side): k0 = {int(k0['estimate'])}; pooled with the filled-in "
        f"studies {fmt(adjusted['estimate'])} [{fmt(adjusted['ci_low'])}, {fmt(adjusted['ci_high'])}]"
    )


def _multilevel_summary(table: pd.DataFrame) -> list[str]:
    lines = []
    for label, rows in table.groupby("outcome_label", sort=False):
        robust = rows.loc[rows["analysis"].str.startswith("multilevel, CR2")]
        if len(robust):
            r = robust.iloc[0]
            lines.append(
                f"  {label}: multilevel, every row ({int(r['k'])} effects in {int(r['n_studies'])} studies): "
                f"{fmt(r['estimate'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}] (CR2, df {fmt(r['df'], 1)})"
            )
        else:
            r = rows.loc[rows["analysis"] == "multilevel"].iloc[0]
            lines.append(f"  {label}: multilevel {r['notes']}")
    return lines


def _main_row(pooled: dict, method: str) -> pd.Series:
    est = pooled["estimators"]
    hit = est.loc[est["estimator"].isin([method, "none"])] if "estimator" in est.columns else est
    return (hit if len(hit) else est).iloc[0]


def _outcome_summary(label: str, pooled: dict, sensitivity: pd.DataFrame | None) -> str:
    r = _main_row(pooled, pooled["fit"].method if pooled.get("fit") else "")
    if pooled["k"] == 1:
        return (
            f"  {label}: k = 1, {pooled['measure']} {fmt(r['estimate'])} [{fmt(r['ci_low'])}, "
            f"{fmt(r['ci_high'])}] (single study, not pooled)"
        )
    line = (
        f"  {label}: k = {pooled['k']}, pooled {pooled['measure']} {fmt(r['estimate'])} "
        f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}], p = {fmt(r['p'], 3)}, PI [{fmt(r['pi_low'])}, "
        f"{fmt(r['pi_high'])}], I^2 = {fmt(r['i2'], 0)}%"
    )
    if sensitivity is not None and len(sensitivity) > 1:
        alt = sensitivity.iloc[1]
        line += f"; only rows without assumptions: k = {int(alt['k'])}" + (
            f", {fmt(alt['estimate'])}" if alt["k"] > 0 else ""
        )
    return line


def _summary_text(s: dict, lines: list[str], impl: list[str]) -> str:
    test = "Knapp-Hartung t(k-1)" if s["knha"] else "Wald z"
    head = [
        f"Meta-analysis of published IMR trials ({FAVOURS}); main model: random effects, tau^2 by "
        f"{s['method']}, {test}, {100 * s['level']:g}% CI; one row per study by timepoint preference "
        f"{', '.join(s['timepoints'])}; uses: {', '.join(s['uses'])}.",
        "",
    ]
    return "\n".join(head + lines + ["", "Implementation (McGuire et al. 2014, Table 3; logit scale):"] + impl)


def _implementation_part(s: dict, flags: list[str], record: dict):
    """Pooled dropout and completion (logit scale) beside the review's medians; tables and summary lines."""
    impl = s["implementation"]
    try:
        rates = load_implementation_rates(s["implementation_rates"])
        effects = implementation_effects(rates, measures=tuple(impl["measures"]), uses=tuple(impl["uses"]))
        pooled = pool_implementation(effects, rates, method=s["method"], knha=s["knha"], level=s["level"])
        sensitivity = implementation_sensitivity(effects, method=s["method"], knha=s["knha"], level=s["level"])
    except (AnalysisError, InputError) as error:
        flags.append(f"implementation outcomes not pooled: {error}")
        record["implementation"] = {"error": str(error)}
        return {}, [f"  not pooled: {error}"]
    for _, r in pooled.loc[pooled["estimate"].isna()].iterrows():
        flags.append(f"implementation {r['quantity']}: {r['notes']}")
    for _, r in effects.loc[effects["included"] & ~effects["consistent"]].iterrows():
        flags.append(
            f"implementation {r['study']} {r['measure']}: {r['percent']:g}% is not a whole-person fraction "
            f"of the denominator {r['n']:g}; pooled as {r['events']:g}/{r['n']:g} = "
            f"{r['reconstructed_pct']:.1f}%"
        )
    summary = [f"  Denominator rule: {DENOMINATOR_RULE}."]
    for _, r in pooled.iterrows():
        summary.append(
            f"  {r['quantity']}: k = {int(r['k'])}, {fmt(r['estimate'], 1)} [{fmt(r['ci_low'], 1)}, "
            f"{fmt(r['ci_high'], 1)}], PI [{fmt(r.get('pi_low', math.nan), 1)}, "
            f"{fmt(r.get('pi_high', math.nan), 1)}]; review median {fmt(r['review_median_pct'], 0)}% "
            f"(median of the {int(r['n_table3_cells'])} Table 3 cells: "
            f"{fmt(r['median_all_table3_pct'], 0)}%)"
        )
        alt = sensitivity.loc[
            (sensitivity["measure"] == r["measure"]) & sensitivity["analysis"].str.startswith("only printed")
        ]
        if len(alt):
            a = alt.iloc[0]
            summary.append(
                f"    only printed denominators: k = {int(a['k'])}, {fmt(a['estimate'], 1)} "
                f"[{fmt(a['ci_low'], 1)}, {fmt(a['ci_high'], 1)}]"
            )
    record["implementation"] = {
        "denominator_rule": DENOMINATOR_RULE,
        "pooled": to_records(pooled),
        "sensitivity": to_records(sensitivity),
        "rates": to_records(effects.drop(columns=["source"])),
    }
    tables = {
        "meta_implementation_pooled": pooled,
        "meta_implementation_sensitivity": sensitivity,
        "meta_implementation_rates": effects,
    }
    return tables, summary
