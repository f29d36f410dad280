"""The service-use stage: count models of admissions, bed days, ER visits and outpatient contacts.

For each count outcome of the follow-up year: descriptives per arm, an overdispersion check (Pearson
chi-square / df and the Cameron-Trivedi test), a zero-excess check (observed zeros against the zeros each
model expects), four models with log days at risk as offset and covariates from config (Poisson, NB2,
zero-inflated NB2, hurdle NB2; arm effect IMR vs TAU as an incidence rate ratio, zero parts as odds
ratios, NB dispersion theta with its SE), AIC / BIC / Vuong comparison, the model picked by the configured
rule, and a 2 x 2 panel of hanging rootograms (one per model).

The statistics are in `imrstats.services.models` (validated against R's glm, MASS::glm.nb, pscl and AER);
this module only runs them per outcome, turns every failure into a flag, and lays out tables, figures
(drawn by `imrstats.services.figures`), a record and a terminal summary; the report section is rendered
from the result by `imrstats.services.section`. A model that cannot be fitted, or is flagged
(non-convergence, an estimate at the boundary), is shown as such and never chosen; an outcome whose
models all fail does not stop the others. Tables and record hold aggregates only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from imrstats.config import section_settings
from imrstats.errors import AnalysisError
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.format import format_number, format_p
from imrstats.results import ResultMixin, to_records
from imrstats.services import models as services
from imrstats.services.figures import rootogram_figure

MODELS = ("poisson", "nb2", "zinb", "hurdle_nb")
MODEL_LABELS = {
    "poisson": "Poisson",
    "nb2": "Negative binomial (NB2)",
    "zinb": "Zero-inflated NB2",
    "hurdle_nb": "Hurdle NB2",
}
OUTCOME_LABELS = {
    "admissions": "Hospital admissions",
    "bed_days": "Bed days (days in hospital)",
    "er_visits": "Emergency room visits",
    "outpatient_contacts": "Outpatient contacts",
}

# The stage's settings: the config's `services` section, defaults in workflow/schemas/config.schema.yaml
# (imrstats.config.section_settings).


# --- one outcome -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeAnalysis(ResultMixin):
    """Everything the stage reports for one count outcome (aggregates only)."""

    outcome: str
    descriptives: pd.DataFrame
    overdispersion: pd.DataFrame
    zeros: pd.DataFrame
    models: pd.DataFrame
    effects: pd.DataFrame
    coefficients: pd.DataFrame
    vuong: pd.DataFrame
    rootograms: dict[str, pd.DataFrame]
    comparison: services.ModelComparison | None
    fits: dict = field(repr=False, default_factory=dict)
    errors: dict = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    @property
    def chosen(self) -> str:
        return self.comparison.chosen if self.comparison is not None else "none"

    _json_skip = ("effects", "coefficients", "vuong", "rootograms")
    _json_rename = {"zeros": "zero_check"}

    def _json_extra(self) -> dict:
        return {"chosen": self.chosen}


def analyse_outcome(frame: pd.DataFrame, outcome: str, settings: dict) -> OutcomeAnalysis:
    """Descriptives, checks, the four models, their comparison and rootograms for one outcome.

    Model failures become flags (the other models still run); `settings` is the checked `services` section
    (`section_settings`).
    """
    observed = frame.dropna(subset=[outcome])
    descriptives = services.describe_counts(observed, outcome)
    descriptives.insert(3, "n_missing", int(frame[outcome].isna().sum()))
    out = services.fit_count_models(
        frame,
        outcome,
        settings["covariates"],
        robust=settings["robust_poisson"],
        zinb_zero_terms=settings["zinb_zero_terms"],
        hurdle_zero_terms=settings["hurdle_zero_terms"],
    )
    fits, errors = out["fits"], out["errors"]
    flags = _model_flags(outcome, fits, errors)
    overdispersion = _overdispersion(fits, outcome, settings["overdispersion_trafo"])
    zeros = services.zero_check(list(fits.values())) if fits else pd.DataFrame()
    if fits:
        zeros["converged"] = [fits[m].converged for m in zeros["model"]]
    comparison = None
    if fits:
        comparison = services.compare_models(list(fits.values()), settings["selection_rule"], settings["alpha"])
        if comparison.chosen == "none":
            flags.append(f"{outcome}: no model is reported: {comparison.reason}")
    chosen = comparison.chosen if comparison is not None else "none"
    vuong = comparison.vuong.assign(outcome=outcome) if comparison is not None else pd.DataFrame()
    bars = settings["rootogram_max_bars"]
    rootograms = {
        name: services.bin_rootogram_data(
            services.rootogram_data(fit, rootogram_top(int(fit.observed_counts.max()), bars)), bars
        )
        for name, fit in fits.items()
    }
    return OutcomeAnalysis(
        outcome,
        descriptives,
        overdispersion,
        zeros,
        model_table(outcome, fits, errors, chosen),
        _stack(fits, "effects", outcome),
        _stack(fits, "coefficients", outcome),
        vuong,
        rootograms,
        comparison,
        fits,
        errors,
        tuple(flags),
    )


def rootogram_top(max_count: int, max_bars: int) -> int:
    """The largest count a rootogram covers: the observed maximum, rounded up so that the grouped bars
    of `bin_rootogram_data` all have the same width (a short last group would understate expected)."""
    if max_count + 1 <= max_bars:
        return max_count
    width = math.ceil(max_count / (max_bars - 1))
    return width * math.ceil(max_count / width)


def _model_flags(outcome: str, fits: dict, errors: dict) -> list[str]:
    flags = []
    if errors and not fits:
        flags.append(f"{outcome}: no model could be fitted; descriptives only")
    for name in MODELS:
        if name in errors:
            flags.append(f"{outcome}, {MODEL_LABELS[name]}: not fitted: {errors[name]}")
        elif name in fits and not fits[name].converged:
            why = "; ".join(fits[name].warnings) or "did not converge"
            flags.append(f"{outcome}, {MODEL_LABELS[name]}: flagged, shown but never reported: {why}")
    return flags


def _overdispersion(fits: dict, outcome: str, trafo: int | None) -> pd.DataFrame:
    if "poisson" not in fits:
        return pd.DataFrame()
    table = services.overdispersion_test(fits["poisson"], trafo=trafo, alternative="greater")
    table.insert(0, "outcome", outcome)
    return table


def _stack(fits: dict, attribute: str, outcome: str) -> pd.DataFrame:
    frames = [getattr(fit, attribute).assign(outcome=outcome, model=name) for name, fit in fits.items()]
    if not frames:
        return pd.DataFrame()
    stacked = pd.concat(frames, ignore_index=True)
    return stacked[["outcome", "model", *[c for c in stacked.columns if c not in ("outcome", "model")]]]


def model_table(outcome: str, fits: dict, errors: dict, chosen: str) -> pd.DataFrame:
    """One row per model (fitted or not): arm IRR, zero-part OR, theta (SE), fit statistics, status.

    delta AIC / BIC are relative to the best model that converged cleanly (the eligible ones).
    """
    eligible = [f for f in fits.values() if f.converged] or list(fits.values())
    best_aic = min((f.aic for f in eligible), default=math.nan)
    best_bic = min((f.bic for f in eligible), default=math.nan)
    rows = []
    for name in MODELS:
        row = {"outcome": outcome, "model": name, "status": "not fitted"}
        if name in fits:
            fit = fits[name]
            status = "reported" if name == chosen else "fitted" if fit.converged else "flagged"
            row.update(
                status=status,
                **_arm_effects(fit),
                **_theta(fit),
                loglik=fit.loglik,
                n_params=fit.n_params,
                aic=fit.aic,
                bic=fit.bic,
                delta_aic=fit.aic - best_aic,
                delta_bic=fit.bic - best_bic,
                note="; ".join(fit.warnings),
                method=fit.method,
            )
        else:
            row["note"] = errors.get(name, "")
        rows.append(row)
    return pd.DataFrame(rows)


def _arm_effects(fit) -> dict:
    out = {}
    for prefix, part in (("irr", "count"), ("zero_or", "zero")):
        hit = fit.effects[fit.effects["part"] == part]
        if len(hit):
            row = hit.iloc[0]
            out.update(
                {
                    prefix: row["estimate"],
                    f"{prefix}_ci_low": row["ci_low"],
                    f"{prefix}_ci_high": row["ci_high"],
                    f"{prefix}_p": row["p"],
                }
            )
            if part == "zero":
                out["zero_part"] = row["quantity"]
    return out


def _theta(fit) -> dict:
    hit = fit.coefficients[fit.coefficients["quantity"] == "theta"]
    return {"theta": hit["estimate"].iloc[0], "theta_se": hit["se"].iloc[0]} if len(hit) else {}


# --- the stage -------------------------------------------------------------------------------


def run_services_stage(
    tables: dict[str, pd.DataFrame], settings: dict | None = None, *, seed: int | None = None
) -> StageResult:
    """Count models of service use per outcome; see the module docstring.

    `tables` are the cleaned canonical tables (participants and service_use are used); `settings` is the
    config's `services` section (only the keys that differ from the defaults are needed; defaults in
    workflow/schemas/config.schema.yaml). Nothing here is random, so `seed`
    is accepted for the common stage signature and unused. Raises AnalysisError when the analysis frame
    cannot be built at all (missing tables or columns, no positive days at risk, missing covariates);
    per-outcome and per-model problems become flags.
    """
    settings = section_settings("services", settings)
    absent = [name for name in ("participants", "service_use") if name not in tables]
    if absent:
        raise AnalysisError(
            f"the services stage needs the cleaned table(s) {absent}; run 'imrstats clean' "
            "on participants and service_use first"
        )
    outcomes = [o for o in settings["outcomes"] if o in tables["service_use"].columns]
    flags = [
        f"outcome '{o}' is not a column of service_use; it is left out"
        for o in settings["outcomes"]
        if o not in outcomes
    ]
    if not outcomes:
        raise AnalysisError(f"none of the configured outcomes {settings['outcomes']} is a column of service_use")
    frame = services.services_frame(tables["participants"], tables["service_use"], outcomes, settings["covariates"])
    if frame.empty:
        raise AnalysisError("no participant has a follow_up row in service_use: there is nothing to model")
    analyses = [analyse_outcome(frame, outcome, settings) for outcome in outcomes]
    for analysis in analyses:
        flags.extend(analysis.flags)
    result_tables = _stage_tables(analyses)
    figures = {f"rootogram_{a.outcome}": rootogram_figure(a) for a in analyses if a.rootograms}
    context = {
        "n": len(frame),
        "excluded": int(frame.attrs.get("excluded", 0)),
        "arms": frame["arm"].value_counts().reindex(list(services.ARM_LEVELS)).astype(int).to_dict(),
    }
    record = {
        "settings": settings,
        **context,
        "reported": to_records(result_tables["reported"]),
        "outcomes": {a.outcome: a.to_dict() for a in analyses},
    }
    return StageResult(
        "services", result_tables, figures, record, summary_text(analyses, settings, context, flags), flags=flags
    )


def _stage_tables(analyses: list[OutcomeAnalysis]) -> dict[str, pd.DataFrame]:
    def stacked(attribute):
        frames = [getattr(a, attribute) for a in analyses if not getattr(a, attribute).empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    roots = [data for a in analyses for data in a.rootograms.values()]
    return {
        "reported": reported_table(analyses),
        "descriptives": stacked("descriptives"),
        "overdispersion": stacked("overdispersion"),
        "zero_check": stacked("zeros"),
        "models": stacked("models"),
        "effects": stacked("effects"),
        "coefficients": stacked("coefficients"),
        "vuong": stacked("vuong"),
        "rootograms": pd.concat(roots, ignore_index=True) if roots else pd.DataFrame(),
    }


def reported_table(analyses: list[OutcomeAnalysis]) -> pd.DataFrame:
    """One row per outcome: the reported model, its arm effect(s), the rule and the reason."""
    rows = []
    for a in analyses:
        row = {"outcome": a.outcome, "model": a.chosen}
        if a.chosen != "none":
            chosen = a.models.set_index("model").loc[a.chosen]
            row.update(
                {
                    k: chosen.get(k, math.nan)
                    for k in (
                        "irr",
                        "irr_ci_low",
                        "irr_ci_high",
                        "irr_p",
                        "zero_part",
                        "zero_or",
                        "zero_or_ci_low",
                        "zero_or_ci_high",
                        "zero_or_p",
                        "method",
                    )
                }
            )
        row.update(
            rule=a.comparison.rule if a.comparison else "",
            reason=a.comparison.reason if a.comparison else "no model could be fitted",
        )
        rows.append(row)
    return pd.DataFrame(rows)


# --- text ------------------------------------------------------------------------------------


def estimate_with_ci(est, low, high, digits: int = 2) -> str:
    """ "1.23 (0.98 to 1.54)": an estimate and its interval as the summary and the report print it."""
    if est is None or pd.isna(est):
        return ""
    return f"{format_number(est, digits)} ({format_number(low, digits)} to {format_number(high, digits)})"


def summary_text(analyses: list[OutcomeAnalysis], settings: dict, context: dict, flags: list[str]) -> str:
    """The terminal summary: reported model and arm IRR per outcome, all models' IRRs, the flags."""
    covariates = ", ".join(settings["covariates"]) or "none"
    lines = [
        f"Service use, follow-up period: {context['n']} participants "
        f"(IMR {context['arms']['IMR']}, TAU {context['arms']['TAU']}); "
        f"{context['excluded']} without a follow-up row left out",
        f"Offset log(exposure days); covariates: {covariates}; arm effect IMR vs TAU as an incidence "
        "rate ratio (IRR < 1: fewer events per day at risk under IMR), Wald 95% CI",
        f"Reported model chosen by rule '{settings['selection_rule']}' (alpha {settings['alpha']}); "
        "flagged models are never chosen",
        "",
    ]
    lines.append(
        f"{'outcome':<21} {'reported':<10} {'IRR (95% CI)':<22} {'p':>7}  Pearson X2/df  zeros obs / Poisson exp"
    )
    for a in analyses:
        chosen = a.models.set_index("model").loc[a.chosen] if a.chosen != "none" else None
        irr = (
            estimate_with_ci(chosen["irr"], chosen["irr_ci_low"], chosen["irr_ci_high"]) if chosen is not None else "-"
        )
        p = format_p(chosen["irr_p"]) if chosen is not None else ""
        pearson = f"{a.overdispersion['estimate'].iloc[0]:.2f}" if not a.overdispersion.empty else "-"
        zeros = a.zeros.set_index("model") if not a.zeros.empty else None
        zero_text = (
            f"{zeros.loc['poisson', 'observed_zeros']:.0f} / {zeros.loc['poisson', 'expected_zeros']:.1f}"
            if zeros is not None and "poisson" in zeros.index
            else "-"
        )
        lines.append(f"{a.outcome:<21} {a.chosen:<10} {irr:<22} {p:>7}  {pearson:>13}  {zero_text}")
    lines += ["", "All models (IRR IMR vs TAU, 95% CI, p; * = reported, ! = flagged, - = not fitted):"]
    for a in analyses:
        parts = []
        for row in a.models.itertuples():
            mark = {"reported": "*", "flagged": "!", "not fitted": "-"}.get(row.status, "")
            fitted = (
                f"{estimate_with_ci(row.irr, row.irr_ci_low, row.irr_ci_high)} p={format_p(row.irr_p)}"
                if row.status != "not fitted"
                else "not fitted"
            )
            parts.append(f"{row.model}{mark} {fitted}")
        lines.append(f"  {a.outcome}: " + "; ".join(parts))
    if flags:
        lines += ["", f"Flags ({len(flags)}):", *[f"  - {f}" for f in flags]]
    return "\n".join(lines)
