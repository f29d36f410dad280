"""The service-use stage (issue 4): count models of admissions, bed days, ER visits and outpatient contacts.

For each count outcome of the follow-up year: descriptives per arm, an overdispersion check (Pearson
chi-square / df and the Cameron-Trivedi test), a zero-excess check (observed zeros against the zeros each
model expects), four models with log days at risk as offset and covariates from config (Poisson, NB2,
zero-inflated NB2, hurdle NB2; arm effect IMR vs TAU as an incidence rate ratio, zero parts as odds
ratios, NB dispersion theta with its SE), AIC / BIC / Vuong comparison, the model picked by the configured
rule, and a 2 x 2 panel of hanging rootograms (one per model).

The statistics are in `imrstats.services.models` (validated against R's glm, MASS::glm.nb, pscl and AER);
this module only runs them per outcome, turns every failure into a flag, and lays out tables, figures,
a record, a terminal summary and the report section. A model that cannot be fitted, or is flagged
(non-convergence, an estimate at the boundary), is shown as such and never chosen; an outcome whose
models all fail does not stop the others. Tables and record hold aggregates only.
"""

from __future__ import annotations

import html
import math
import textwrap
from dataclasses import dataclass, field

import pandas as pd

from imrstats.services import models as services
from imrstats.errors import AnalysisError, InputError
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.html import figure_html, flags_html, table_html

MODELS = ("poisson", "nb2", "zinb", "hurdle_nb")
MODEL_LABELS = {"poisson": "Poisson", "nb2": "Negative binomial (NB2)", "zinb": "Zero-inflated NB2",
                "hurdle_nb": "Hurdle NB2"}
OUTCOME_LABELS = {"admissions": "Hospital admissions", "bed_days": "Bed days (days in hospital)",
                  "er_visits": "Emergency room visits", "outpatient_contacts": "Outpatient contacts"}

DEFAULT_SETTINGS = {
    "outcomes": list(services.COUNT_OUTCOMES),
    "covariates": list(services.DEFAULT_COVARIATES),
    "selection_rule": "aic",
    "alpha": 0.05,
    "robust_poisson": False,
    "zinb_zero_terms": ["arm"],
    "hurdle_zero_terms": None,
    "overdispersion_trafo": 2,
    "rootogram_max_bars": 30,
}


# --- settings --------------------------------------------------------------------------------

def resolve_settings(settings: dict | None) -> dict:
    """The stage's config section merged over the defaults, checked; InputError names the bad key."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise InputError(f"services: unknown setting(s) {unknown}; valid keys: {sorted(DEFAULT_SETTINGS)}")
    out = {**DEFAULT_SETTINGS, **settings}
    problems = []
    for key in ("outcomes", "covariates", "zinb_zero_terms", "hurdle_zero_terms"):
        value = out[key]
        if value is None and key.endswith("zero_terms"):
            continue
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            problems.append(f"services.{key} must be a list of column names")
        elif len(set(value)) != len(value):
            problems.append(f"services.{key} lists a name twice")
        else:
            out[key] = list(value)
    if isinstance(out["outcomes"], list) and not out["outcomes"]:
        problems.append("services.outcomes is empty: name at least one count column of service_use")
    if out["selection_rule"] not in services.SELECTION_RULES:
        problems.append(f"services.selection_rule must be one of {list(services.SELECTION_RULES)}")
    if not isinstance(out["alpha"], (int, float)) or not 0 < out["alpha"] < 1:
        problems.append("services.alpha must be a number between 0 and 1")
    if not isinstance(out["robust_poisson"], bool):
        problems.append("services.robust_poisson must be true or false")
    if out["overdispersion_trafo"] not in (None, 1, 2):
        problems.append("services.overdispersion_trafo must be null (Var = c mu), 1 or 2 (Var = mu + alpha mu^2)")
    bars = out["rootogram_max_bars"]
    if isinstance(bars, bool) or not isinstance(bars, int) or bars < 2:
        problems.append("services.rootogram_max_bars must be an integer >= 2")
    if problems:
        raise InputError("services: invalid setting(s)\n  " + "\n  ".join(problems))
    return out


# --- one outcome -----------------------------------------------------------------------------

@dataclass(frozen=True)
class OutcomeAnalysis:
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

    def to_dict(self) -> dict:
        records = services._records
        return {"outcome": self.outcome, "chosen": self.chosen,
                "descriptives": records(self.descriptives), "overdispersion": records(self.overdispersion),
                "zero_check": records(self.zeros), "models": records(self.models),
                "comparison": None if self.comparison is None else self.comparison.to_dict(),
                "fits": {name: fit.to_dict() for name, fit in self.fits.items()},
                "errors": dict(self.errors), "flags": list(self.flags)}


def analyse_outcome(frame: pd.DataFrame, outcome: str, settings: dict) -> OutcomeAnalysis:
    """Descriptives, checks, the four models, their comparison and rootograms for one outcome.

    Model failures become flags (the other models still run); `settings` are `resolve_settings` output.
    """
    observed = frame.dropna(subset=[outcome])
    descriptives = services.describe_counts(observed, outcome)
    descriptives.insert(3, "n_missing", int(frame[outcome].isna().sum()))
    out = services.fit_count_models(frame, outcome, settings["covariates"], robust=settings["robust_poisson"],
                                    zinb_zero_terms=settings["zinb_zero_terms"],
                                    hurdle_zero_terms=settings["hurdle_zero_terms"])
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
    rootograms = {name: services.bin_rootogram_data(
                      services.rootogram_data(fit, rootogram_top(int(fit._y.max()), bars)), bars)
                  for name, fit in fits.items()}
    return OutcomeAnalysis(outcome, descriptives, overdispersion, zeros, model_table(outcome, fits, errors, chosen),
                           _stack(fits, "effects", outcome), _stack(fits, "coefficients", outcome), vuong,
                           rootograms, comparison, fits, errors, tuple(flags))


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
            row.update(status=status, **_arm_effects(fit), **_theta(fit), loglik=fit.loglik,
                       n_params=fit.n_params, aic=fit.aic, bic=fit.bic, delta_aic=fit.aic - best_aic,
                       delta_bic=fit.bic - best_bic, note="; ".join(fit.warnings), method=fit.method)
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
            out.update({prefix: row["estimate"], f"{prefix}_ci_low": row["ci_low"],
                        f"{prefix}_ci_high": row["ci_high"], f"{prefix}_p": row["p"]})
            if part == "zero":
                out["zero_part"] = row["quantity"]
    return out


def _theta(fit) -> dict:
    hit = fit.coefficients[fit.coefficients["quantity"] == "theta"]
    return {"theta": hit["estimate"].iloc[0], "theta_se": hit["se"].iloc[0]} if len(hit) else {}


# --- the stage -------------------------------------------------------------------------------

def run_services_stage(tables: dict[str, pd.DataFrame], settings: dict | None = None, *,
                       seed: int | None = None) -> StageResult:
    """Count models of service use per outcome; see the module docstring.

    `tables` are the cleaned canonical tables (participants and service_use are used); `settings` is the
    config's `services` section (keys and defaults: DEFAULT_SETTINGS). Nothing here is random, so `seed`
    is accepted for the common stage signature and unused. Raises AnalysisError when the analysis frame
    cannot be built at all (missing tables or columns, no positive days at risk, missing covariates);
    per-outcome and per-model problems become flags.
    """
    settings = resolve_settings(settings)
    absent = [name for name in ("participants", "service_use") if name not in tables]
    if absent:
        raise AnalysisError(f"the services stage needs the cleaned table(s) {absent}; run 'imrstats clean' "
                            "on participants and service_use first")
    outcomes = [o for o in settings["outcomes"] if o in tables["service_use"].columns]
    flags = [f"outcome '{o}' is not a column of service_use; it is left out"
             for o in settings["outcomes"] if o not in outcomes]
    if not outcomes:
        raise AnalysisError(f"none of the configured outcomes {settings['outcomes']} is a column of service_use")
    frame = services.services_frame(tables["participants"], tables["service_use"], outcomes,
                                    settings["covariates"])
    if frame.empty:
        raise AnalysisError("no participant has a follow_up row in service_use: there is nothing to model")
    analyses = [analyse_outcome(frame, outcome, settings) for outcome in outcomes]
    for analysis in analyses:
        flags.extend(analysis.flags)
    result_tables = _stage_tables(analyses)
    figures = {f"rootogram_{a.outcome}": rootogram_figure(a) for a in analyses if a.rootograms}
    context = {"n": len(frame), "excluded": int(frame.attrs.get("excluded", 0)),
               "arms": frame["arm"].value_counts().reindex(list(services.ARM_LEVELS)).astype(int).to_dict()}
    record = {"settings": settings, **context, "reported": services._records(result_tables["reported"]),
              "outcomes": {a.outcome: a.to_dict() for a in analyses}}
    return StageResult("services", result_tables, figures, record,
                       summary_text(analyses, settings, context, flags),
                       section_html(analyses, settings, context, flags, figures), flags)


def _stage_tables(analyses: list[OutcomeAnalysis]) -> dict[str, pd.DataFrame]:
    def stacked(attribute):
        frames = [getattr(a, attribute) for a in analyses if not getattr(a, attribute).empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    roots = [data for a in analyses for data in a.rootograms.values()]
    return {"reported": reported_table(analyses), "descriptives": stacked("descriptives"),
            "overdispersion": stacked("overdispersion"), "zero_check": stacked("zeros"),
            "models": stacked("models"), "effects": stacked("effects"), "coefficients": stacked("coefficients"),
            "vuong": stacked("vuong"),
            "rootograms": pd.concat(roots, ignore_index=True) if roots else pd.DataFrame()}


def reported_table(analyses: list[OutcomeAnalysis]) -> pd.DataFrame:
    """One row per outcome: the reported model, its arm effect(s), the rule and the reason."""
    rows = []
    for a in analyses:
        row = {"outcome": a.outcome, "model": a.chosen}
        if a.chosen != "none":
            chosen = a.models.set_index("model").loc[a.chosen]
            row.update({k: chosen.get(k, math.nan) for k in ("irr", "irr_ci_low", "irr_ci_high", "irr_p",
                                                             "zero_part", "zero_or", "zero_or_ci_low",
                                                             "zero_or_ci_high", "zero_or_p", "method")})
        row.update(rule=a.comparison.rule if a.comparison else "",
                   reason=a.comparison.reason if a.comparison else "no model could be fitted")
        rows.append(row)
    return pd.DataFrame(rows)


# --- figures ---------------------------------------------------------------------------------

def rootogram_figure(analysis: OutcomeAnalysis):
    """2 x 2 hanging rootograms, one per model; a model that was not fitted shows why."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 7), layout="constrained")
    for ax, name in zip(fig.subplots(2, 2).flat, MODELS):
        status = {"reported": " (reported)", "flagged": " (flagged)"}.get(
            analysis.models.set_index("model").loc[name, "status"], "")
        if name in analysis.rootograms:
            data = analysis.rootograms[name]
            services.plot_rootogram(data, title=MODEL_LABELS[name] + status, ax=ax)
            above = data.attrs.get("observed_above_max", 0)
            if above:
                ax.annotate(f"{above} count(s) above the axis", (0.98, 0.02), xycoords="axes fraction", ha="right")
        else:
            ax.set_axis_off()
            ax.set_title(MODEL_LABELS[name] + " (not fitted)")
            reason = textwrap.shorten(analysis.errors.get(name, ""), 240, placeholder=" ...")
            ax.text(0.5, 0.5, textwrap.fill(reason, 50), ha="center", va="center", fontsize=8,
                    transform=ax.transAxes)
    fig.suptitle(f"{OUTCOME_LABELS.get(analysis.outcome, analysis.outcome)}: hanging rootograms "
                 "(bars = observed frequency hanging from the expected curve; square-root scale)")
    return fig


# --- text ------------------------------------------------------------------------------------

def _ci(est, low, high, digits=2) -> str:
    if est is None or pd.isna(est):
        return ""
    return f"{est:.{digits}f} ({low:.{digits}f} to {high:.{digits}f})"


def _p(p) -> str:
    if p is None or pd.isna(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def summary_text(analyses: list[OutcomeAnalysis], settings: dict, context: dict, flags: list[str]) -> str:
    """The terminal summary: reported model and arm IRR per outcome, all models' IRRs, the flags."""
    covariates = ", ".join(settings["covariates"]) or "none"
    lines = [f"Service use, follow-up period: {context['n']} participants "
             f"(IMR {context['arms']['IMR']}, TAU {context['arms']['TAU']}); "
             f"{context['excluded']} without a follow-up row left out",
             f"Offset log(exposure days); covariates: {covariates}; arm effect IMR vs TAU as an incidence "
             "rate ratio (IRR < 1: fewer events per day at risk under IMR), Wald 95% CI",
             f"Reported model chosen by rule '{settings['selection_rule']}' (alpha {settings['alpha']}); "
             "flagged models are never chosen", ""]
    lines.append(f"{'outcome':<21} {'reported':<10} {'IRR (95% CI)':<22} {'p':>7}  "
                 "Pearson X2/df  zeros obs / Poisson exp")
    for a in analyses:
        chosen = a.models.set_index("model").loc[a.chosen] if a.chosen != "none" else None
        irr = _ci(chosen["irr"], chosen["irr_ci_low"], chosen["irr_ci_high"]) if chosen is not None else "-"
        p = _p(chosen["irr_p"]) if chosen is not None else ""
        pearson = f"{a.overdispersion['estimate'].iloc[0]:.2f}" if not a.overdispersion.empty else "-"
        zeros = a.zeros.set_index("model") if not a.zeros.empty else None
        zero_text = (f"{zeros.loc['poisson', 'observed_zeros']:.0f} / {zeros.loc['poisson', 'expected_zeros']:.1f}"
                     if zeros is not None and "poisson" in zeros.index else "-")
        lines.append(f"{a.outcome:<21} {a.chosen:<10} {irr:<22} {p:>7}  {pearson:>13}  {zero_text}")
    lines += ["", "All models (IRR IMR vs TAU, 95% CI, p; * = reported, ! = flagged, - = not fitted):"]
    for a in analyses:
        parts = []
        for row in a.models.itertuples():
            mark = {"reported": "*", "flagged": "!", "not fitted": "-"}.get(row.status, "")
            parts.append(f"{row.model}{mark} " + (f"{_ci(row.irr, row.irr_ci_low, row.irr_ci_high)} p={_p(row.irr_p)}"
                                                 if row.status != "not fitted" else "not fitted"))
        lines.append(f"  {a.outcome}: " + "; ".join(parts))
    if flags:
        lines += ["", f"Flags ({len(flags)}):", *[f"  - {f}" for f in flags]]
    return "\n".join(lines)


def _display_models(models: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in models.to_dict("records"):
        fitted = r["status"] != "not fitted"
        rows.append({"model": MODEL_LABELS[r["model"]], "status": r["status"],
                     "IRR IMR vs TAU (95% CI)": _ci(r.get("irr"), r.get("irr_ci_low"), r.get("irr_ci_high")),
                     "p (IRR)": _p(r.get("irr_p")),
                     "zero-part OR (95% CI)": _ci(r.get("zero_or"), r.get("zero_or_ci_low"), r.get("zero_or_ci_high")),
                     "p (OR)": _p(r.get("zero_or_p")),
                     "theta (SE)": (f"{r['theta']:.3f} ({r['theta_se']:.3f})"
                                    if fitted and not pd.isna(r.get("theta", math.nan)) else ""),
                     "AIC": r.get("aic", math.nan), "dAIC": r.get("delta_aic", math.nan),
                     "BIC": r.get("bic", math.nan), "dBIC": r.get("delta_bic", math.nan),
                     "note": r.get("note", "")})
    return pd.DataFrame(rows)


def _display_vuong(vuong: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (a, b), part in vuong.groupby(["model_a", "model_b"], sort=False):
        row = {"model A vs model B": f"{a} vs {b}"}
        for r in part.itertuples():
            kind = r.quantity.removeprefix("Vuong z (").removesuffix(")")
            row[f"z {kind}"] = r.statistic
            row[f"p {kind}"] = r.p
        row["favours (AIC-corrected)"] = part.loc[part["quantity"] == "Vuong z (AIC-corrected)", "favours"].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


DESCRIPTIVE_METHOD = ("mean and SD (n - 1) of the follow-up counts; variance/mean (1 under Poisson with equal "
                      "exposure); share of zeros; max; events per person-year = events / (sum of exposure days "
                      "/ 365.25)")
ZERO_METHOD = ("observed zeros against sum_i P(Y_i = 0) under each fitted model (hurdle NB reproduces the "
               "observed count by construction)")


def section_html(analyses: list[OutcomeAnalysis], settings: dict, context: dict, flags: list[str],
                 figures: dict) -> str:
    """The report section: the reported models first, then per outcome every table and the rootograms."""
    esc = html.escape
    stage_flags = [f for f in flags if not any(f in a.flags for a in analyses)]
    parts = [
        "<h2>Service use: count models</h2>",
        f"<p>Counts of the follow-up period for {context['n']} participants (IMR {context['arms']['IMR']}, "
        f"TAU {context['arms']['TAU']}; {context['excluded']} without a follow-up row left out). Every model "
        "has log(exposure days) as offset, so effects are ratios of rates per day at risk, and adjusts for "
        f"{esc(', '.join(settings['covariates']) or 'no covariates')}. The arm effect is IMR vs TAU: an "
        "incidence rate ratio (IRR) below 1 means fewer events per day at risk under IMR. Four models are "
        "fitted to each outcome: Poisson, negative binomial (NB2, Var = mu + mu^2/theta), zero-inflated NB2 "
        "(zero part: odds ratio IMR vs TAU of a structural zero) and hurdle NB2 (zero part: odds ratio IMR "
        "vs TAU of any event).</p>",
        f"<p>The reported model is chosen by the rule <b>{esc(settings['selection_rule'])}</b> (alpha "
        f"{settings['alpha']}): {esc(_rule_text(settings['selection_rule']))} A model that did not converge or "
        "has an estimate at the boundary is shown, flagged, and never reported.</p>",
        flags_html(stage_flags, "Checks that failed"),
        (f"<p class='flag-note'>{len(flags) - len(stage_flags)} model-level flag(s) are shown under their "
         "outcome below.</p>" if len(flags) > len(stage_flags) else ""),
        "<h3>Reported models</h3>",
        table_html(_display_reported(analyses), caption="Arm effect of the reported model per outcome",
                   method="the model chosen by the rule above; Wald 95% CI on the log scale, exponentiated; "
                          "each model's estimation method is stated under its outcome"),
    ]
    for a in analyses:
        parts += _outcome_html(a, settings, figures)
    return "\n".join(p for p in parts if p) + "\n"


def _rule_text(rule: str) -> str:
    return {"aic": "the lowest AIC among models that converged cleanly.",
            "bic": "the lowest BIC among models that converged cleanly.",
            "vuong": "NB2 replaces Poisson if the boundary likelihood-ratio test of theta = infinity is "
                     "significant; then a zero-inflated or hurdle NB2 replaces it if the AIC-corrected "
                     "Vuong test favours it significantly (one-sided)."}[rule]


def _display_reported(analyses) -> pd.DataFrame:
    table = reported_table(analyses)
    return pd.DataFrame({
        "outcome": table["outcome"], "reported model": table["model"],
        "IRR IMR vs TAU (95% CI)": [_ci(*v) for v in zip(*(table.get(c, [math.nan] * len(table))
                                                         for c in ("irr", "irr_ci_low", "irr_ci_high")))],
        "p": [_p(v) for v in table.get("irr_p", [math.nan] * len(table))],
        "reason": table["reason"]})


def _outcome_html(a: OutcomeAnalysis, settings: dict, figures: dict) -> list[str]:
    esc = html.escape
    label = OUTCOME_LABELS.get(a.outcome, a.outcome)
    parts = [f"<h3>{esc(label)} (<code>{esc(a.outcome)}</code>)</h3>", flags_html(list(a.flags), "Checks that failed"),
             table_html(a.descriptives.drop(columns=["outcome"]).astype({"max": "Int64", "events": "Int64"}),
                        caption="Follow-up counts per arm", method=DESCRIPTIVE_METHOD)]
    if not a.overdispersion.empty:
        parts.append(table_html(a.overdispersion[["quantity", "estimate", "df", "statistic", "p", "notes"]],
                                caption="Overdispersion check on the Poisson fit",
                                method="Pearson chi-square / residual df; " + a.overdispersion["method"].iloc[1]))
    if not a.zeros.empty:
        zeros = a.zeros.drop(columns=["outcome"]).round({"expected_zeros": 1, "observed_minus_expected": 1,
                                                          "observed_to_expected": 2})
        zeros["observed_minus_expected"] += 0.0  # no "-0.0" from rounding a tiny negative difference
        parts.append(table_html(zeros, caption="Zero-excess check", method=ZERO_METHOD, digits=2))
    methods = " | ".join(f"{MODEL_LABELS[m]}: {a.fits[m].method}" for m in MODELS if m in a.fits)
    parts.append(table_html(_display_models(a.models), caption="All four models (arm effects, dispersion, fit)",
                            method=methods + ". dAIC / dBIC relative to the best model that converged cleanly.",
                            digits=1))
    if not a.vuong.empty:
        parts.append(table_html(_display_vuong(a.vuong), caption="Vuong non-nested tests (z > 0 favours model A)",
                                method=a.vuong["method"].iloc[0].split(",")[0] + " as pscl::vuong (raw, AIC- and "
                                "BIC-corrected; one-sided p in the direction of z; for nested pairs read it "
                                "as descriptive)"))
    reason = a.comparison.reason if a.comparison else "no model could be fitted"
    parts.append(f"<p><b>Reported model: {esc(a.chosen)}</b> ({esc(reason)}).</p>")
    name = f"rootogram_{a.outcome}"
    if name in figures:
        parts.append(figure_html(name, f"{label}: hanging rootograms of the four models (Kleiber & Zeileis "
                                       "2016); expected frequency = sum of each participant's fitted probability; "
                                       f"counts grouped into at most {settings['rootogram_max_bars']} bars"))
    else:
        parts.append("<p>No rootogram: no model could be fitted to this outcome.</p>")
    return parts
