"""The trial stage: every outcome of the instrument registry's trial list analysed as seed 003 planned
(ITT MI-MMRM, complete case, per protocol, subgroups), plus the MNAR tipping point and multiplicity, and
(issue 10, `imrstats.trial.secondary`) model diagnostics, within-group change, the post hoc subscale family,
attendance dose-response and the complier-average causal effect.

`run_trial_stage` returns a `StageResult` (tables, figures, record, summary, HTML, flags); a failure in
one outcome or one sub-analysis becomes a flag and the rest of the stage still runs. `run_trial_outcome`
is the single-outcome version for ``imrstats trial --outcome KEY``. Statistics live in `imrstats.trial.analyses`.
"""

from __future__ import annotations

import copy
import html
import math

import numpy as np
import pandas as pd

from imrstats.trial import analyses as trial

from imrstats.trial import secondary as trial_extra

from imrstats.trial import lmm as trial_lmm
from imrstats.errors import AnalysisError
from imrstats.trial.mmrm import DF_METHODS
from imrstats.data.instruments import TRIAL_OUTCOMES, load_registry
from imrstats.core.progress import progress
from imrstats.data.simulate import derive_seed
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.html import figure_html, flags_html, table_html

DEFAULT_SEED = 20190065
TABLE4_OUTCOMES = ["gaf_f", "psp", "panss_total", "imrs_clinician"]
# seed Table 4 post hoc rows (ANCOVA at fu12 with post as covariate) and the IMRS three-factor subscales
SUBSCALE_ANCOVA_OUTCOMES = ["panss_pos", "panss_neg", "panss_gen", "psp_activities", "psp_relations", "psp_selfcare",
                            "psp_aggressive"]
SUBSCALE_ITT_OUTCOMES = ["imrs_client_recovery", "imrs_client_management", "imrs_client_biology",
                         "imrs_clinician_recovery", "imrs_clinician_management", "imrs_clinician_biology"]
DEFAULT_SETTINGS = {
    "outcomes": list(TRIAL_OUTCOMES),
    "primary": {"outcome": "gaf_f", "timepoint": "post"},
    "covariates": ["site", "sex", "age", "diagnosis"],
    "auxiliary_baselines": [],
    "imputations": 100,
    "imputation_method": "pmm",
    "impute_by_arm": True,
    "maxit": 5,
    "donors": 5,
    "per_protocol_threshold": 10,
    "per_protocol_outcomes": TABLE4_OUTCOMES,
    "subgroups": ["diagnosis", "sex"],
    "subgroup_timepoint": "fu12",
    "subgroup_outcomes": TABLE4_OUTCOMES,
    "subgroup_mi_outcomes": ["gaf_f"],
    "delta_grid_sd": [-1.0, -0.5, -0.25, 0.25, 0.5, 1.0],
    "tipping_outcomes": ["gaf_f"],
    "alpha": 0.05,
    "df_method": "satterthwaite",   # MMRM SEs and df: "satterthwaite" or "kenward_roger" (mmrm.DF_METHODS)
    # issue 10: diagnostics, within-group change, post hoc subscales, attendance dose-response and CACE
    "diagnostics_outcomes": list(TRIAL_OUTCOMES),
    "cooks_refit": False,
    "diagnostics_figures": "flagged",
    "within_group_outcomes": list(TRIAL_OUTCOMES),
    "within_group_covariates": [],
    "subscale_ancova_outcomes": SUBSCALE_ANCOVA_OUTCOMES,
    "subscale_itt_outcomes": SUBSCALE_ITT_OUTCOMES,
    "attendance_outcomes": TABLE4_OUTCOMES,
    "attendance_timepoint": "fu12",
    # issue 3: random-intercept LMM (statsmodels MixedLM), a secondary model of the covariance structure
    "random_intercept_outcomes": TABLE4_OUTCOMES,
}


def trial_settings(settings: dict | None) -> dict:
    """Defaults overlaid with ``settings``; unknown keys and bad values raise AnalysisError."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise AnalysisError(f"unknown trial setting(s) {unknown}; known: {sorted(DEFAULT_SETTINGS)}")
    out = copy.deepcopy(DEFAULT_SETTINGS)
    out.update(copy.deepcopy(settings))
    out["primary"] = {**DEFAULT_SETTINGS["primary"], **(settings.get("primary") or {})}
    if any(out[k] not in trial.TIMEPOINTS for k in ("subgroup_timepoint", "attendance_timepoint")) or \
            out["primary"]["timepoint"] not in trial.TIMEPOINTS:
        raise AnalysisError(f"primary.timepoint, subgroup_timepoint and attendance_timepoint must be one of "
                            f"{trial.TIMEPOINTS}")
    if out["diagnostics_figures"] not in ("all", "flagged", "none"):
        raise AnalysisError("diagnostics_figures must be 'all', 'flagged' (the primary outcome and outcomes with a "
                            f"failed check) or 'none', got {out['diagnostics_figures']!r}")
    if out["df_method"] not in DF_METHODS:
        raise AnalysisError(f"df_method must be one of {DF_METHODS}, got {out['df_method']!r}")
    if out["imputation_method"] not in ("pmm", "norm"):
        raise AnalysisError("imputation_method must be 'pmm' or 'norm'")
    if not 0 < float(out["alpha"]) < 1:
        raise AnalysisError(f"alpha must be in (0, 1), got {out['alpha']!r}")
    if int(out["imputations"]) < 2:
        raise AnalysisError("imputations must be at least 2 (Rubin's rules); the protocol uses 100")
    return out


def _p(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


# --------------------------------------------------------------------------------------------------
# One outcome
# --------------------------------------------------------------------------------------------------


def _instrument_rows(assessments: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The assessment rows of each instrument (in their original order), split once per stage so that each
    outcome's frame is built from its own rows instead of filtering the whole table again."""
    return dict(tuple(assessments.groupby(assessments["instrument"].astype(str).to_numpy(), sort=False)))


def _assessments_of(tables, keys, by_instrument: dict | None) -> pd.DataFrame:
    """The rows of instruments ``keys`` (what `trial.outcome_frame` reads of them), or the whole table when
    one is absent, so that outcome_frame's error names the instruments present."""
    keys = list(dict.fromkeys(keys))
    if by_instrument is None or any(k not in by_instrument for k in keys):
        return tables["assessments"]
    return by_instrument[keys[0]] if len(keys) == 1 else pd.concat([by_instrument[k] for k in keys])


def _outcome_frame(tables, key: str, s: dict, by_instrument: dict | None) -> pd.DataFrame:
    return trial.outcome_frame(tables["participants"],
                               _assessments_of(tables, [key, *s["auxiliary_baselines"]], by_instrument), key,
                               auxiliary=s["auxiliary_baselines"])


def _impute(frame: pd.DataFrame, key: str, s: dict, seed: int) -> trial.OutcomeImputation:
    return trial.impute_outcome(
        frame, covariates=list(s["covariates"]), m=int(s["imputations"]), method=s["imputation_method"],
        maxit=int(s["maxit"]), donors=int(s["donors"]), by_arm=bool(s["impute_by_arm"]),
        seed=derive_seed(seed, f"trial.impute.{key}"))


def _prepare_outcomes(tables, keys, s: dict, seed: int, by_instrument: dict | None) -> dict:
    """Frame and imputation of every outcome ahead of its analyses (errors kept to be reported in place),
    then all outcomes' plain ITT MMRM fits in one batch (`trial.prefit_itt`); the numbers are those each
    outcome's own calls make: the imputation seed is per outcome and every fit has its own chain's start."""
    prepared = {}
    for key in dict.fromkeys(keys):
        item = prepared[key] = {}
        try:
            item["frame"] = _outcome_frame(tables, key, s, by_instrument)
            item["imputation"] = _impute(item["frame"], key, s, seed)
        except AnalysisError as err:
            item["error"] = err
    trial.prefit_itt([p["imputation"] for p in prepared.values() if "imputation" in p], covariates=s["covariates"])
    return prepared


def _analyse_outcome(tables, key: str, s: dict, seed: int, registry, flags: list[str],
                     by_instrument: dict | None = None, prepared: dict | None = None) -> dict:
    """Every analysis of one outcome; each failure is recorded as a flag and the others still run.
    ``prepared``: the outcome's frame and imputation made ahead (`_prepare_outcomes`), used once."""
    level = 1 - float(s["alpha"])
    covs = list(s["covariates"])
    out: dict = {"outcome": key}
    ready = (prepared or {}).pop(key, {})
    if "frame" in ready:
        frame = ready["frame"]
    elif "error" in ready:
        raise ready["error"]
    else:
        frame = _outcome_frame(tables, key, s, by_instrument)
    out["frame_n"] = len(frame)

    def imputation():
        if "imputation" in ready:
            return ready["imputation"]
        if "error" in ready:
            raise ready["error"]
        return _impute(frame, key, s, seed)

    def attempt(name, fn):
        try:
            out[name] = fn()
        except AnalysisError as err:
            flags.append(f"{key}: {name.replace('_', ' ')} not reported: {err}")

    attempt("complete_case", lambda: trial.complete_case(frame, outcome=key, covariates=covs, level=level))
    dfm = s["df_method"]
    attempt("likelihood", lambda: trial.likelihood_mmrm(frame, covariates=covs, level=level, df_method=dfm))
    if "likelihood" in out and not out["likelihood"].converged:
        flags.append(f"{key}: the likelihood MMRM did not converge ({out['likelihood'].notes})")
    if key in s["random_intercept_outcomes"]:
        attempt("random_intercept", lambda: trial_lmm.random_intercept_lmm(frame, outcome=key, covariates=covs,
                                                                           level=level))
        ri = out.get("random_intercept")
        if ri is not None and (not ri.converged or ri.boundary):
            flags.append(f"{key}: the random-intercept LMM " + ("did not converge" if not ri.converged else
                         "has its random-intercept variance at the boundary 0") + f" ({ri.notes})")
    attempt("imputation", imputation)
    imp = out.get("imputation")
    if imp is not None:
        attempt("itt", lambda: trial.itt_mi_mmrm(frame, outcome=key, covariates=covs, imputation=imp, level=level,
                                                 df_method=dfm))
        if "itt" in out:
            flags.extend(out["itt"].flags)
    if key in s["per_protocol_outcomes"]:
        attempt("per_protocol", lambda: trial.per_protocol(frame, outcome=key, threshold=int(s["per_protocol_threshold"]),
                                                           level=level))
    for sg in s["subgroups"] if key in s["subgroup_outcomes"] else []:
        attempt(f"subgroup_cc_{sg}", lambda: trial.subgroup_interaction_cc(
            frame, sg, outcome=key, timepoint=s["subgroup_timepoint"], covariates=covs))
        if key in s["subgroup_mi_outcomes"] and imp is not None:
            attempt(f"subgroup_mi_{sg}", lambda: trial.subgroup_interactions(
                frame, sg, imputation=imp, outcome=key, covariates=covs, level=level, df_method=dfm))
    _analyse_extra(frame, key, s, out, attempt, flags)
    if key in s["tipping_outcomes"] and imp is not None:
        sd = float(np.nanstd(frame["baseline"], ddof=1))
        deltas = [round(float(d) * sd, 6) for d in s["delta_grid_sd"]]
        timepoint = s["primary"]["timepoint"]
        attempt("tipping", lambda: trial.delta_tipping_point(
            imp, deltas=deltas, timepoint=timepoint, outcome=key, covariates=covs,
            higher_is_better=registry[key].higher_is_better, level=level, df_method=dfm))
        if "tipping" in out:
            bad = int(out["tipping"].grid["n_not_converged"].sum())
            if bad:
                flags.append(f"{key}: {bad} MMRM refits of the delta grid did not converge")
    return out


_DIAGNOSTIC_MODELS = (("diagnostics_mmrm", None), ("diagnostics_cc_post", "post"), ("diagnostics_cc_fu12", "fu12"))


def _analyse_extra(frame: pd.DataFrame, key: str, s: dict, out: dict, attempt, flags: list[str]) -> None:
    """Issue 10 analyses of one outcome (diagnostics, within-group change, attendance, CACE); each failure
    is a flag via ``attempt`` and the rest still runs. Failed diagnostic checks are flagged, never dropped."""
    level, alpha, covs = 1 - float(s["alpha"]), float(s["alpha"]), list(s["covariates"])
    if key in s["diagnostics_outcomes"]:
        for name, tp in _DIAGNOSTIC_MODELS:
            attempt(name, (lambda: trial_extra.mmrm_diagnostics(frame, outcome=key, covariates=covs, alpha=alpha,
                                                                cooks_refit=bool(s["cooks_refit"]))) if tp is None
                    else (lambda tp=tp: trial_extra.cc_diagnostics(frame, outcome=key, timepoint=tp, covariates=covs,
                                                                   alpha=alpha)))
        failed = [f"{out[n].model} {out[n].timepoint}: {f}" for n, _ in _DIAGNOSTIC_MODELS if n in out
                  for f in out[n].failed]
        if failed:
            flags.append(f"{key}: diagnostic check(s) failed at alpha = {alpha:g} (results kept, read them with "
                         f"this in mind): " + "; ".join(failed))
        big = [f"{out[n].model} {out[n].timepoint}" for n, _ in _DIAGNOSTIC_MODELS
               if n in out and np.nanmax(out[n].cooks) > 1]
        if big:
            flags.append(f"{key}: a participant has Cook's distance > 1 in {', '.join(big)} (kept in the analysis)")
    if key in s["within_group_outcomes"]:
        attempt("within_group_change", lambda: trial_extra.within_group_change(
            frame, outcome=key, covariates=list(s["within_group_covariates"]), level=level))
        if "within_group_change" in out and not out["within_group_change"]["converged"].all():
            flags.append(f"{key}: the within-group change model did not converge "
                         f"({out['within_group_change']['notes'].iloc[0]})")
    if key in s["attendance_outcomes"]:
        tp, threshold = s["attendance_timepoint"], int(s["per_protocol_threshold"])
        attempt("attendance", lambda: trial_extra.attendance_dose_response(frame, outcome=key, threshold=threshold,
                                                                           timepoint=tp, level=level))
        attempt("cace", lambda: trial_extra.cace_iv(frame, outcome=key, threshold=threshold, timepoint=tp,
                                                    covariates=covs, level=level))
        imr = frame.loc[(frame["arm"] == "IMR"), ["sessions_attended", tp]].dropna()
        if len(imr) and "attendance" in out:
            out["attendance_points"] = imr.to_numpy(dtype=float)   # for the figure only, never tabled


def _analyse_subscales(tables, s: dict, seed: int, registry, flags: list[str],
                       by_instrument: dict | None = None, prepared: dict | None = None) -> list[dict]:
    """Seed Table 4 post hoc subscale ANCOVAs and the IMRS three-factor subscales analysed like the totals."""
    level = 1 - float(s["alpha"])
    out = []
    for key in s["subscale_ancova_outcomes"]:
        try:
            frame = trial.outcome_frame(tables["participants"], _assessments_of(tables, [key], by_instrument), key)
            out.append({"outcome": key, "ancova": trial_extra.subscale_ancova(frame, outcome=key, level=level)})
        except AnalysisError as err:
            flags.append(f"{key}: subscale ANCOVA not reported: {err}")
    for key in s["subscale_itt_outcomes"]:
        try:
            out.append(_analyse_outcome(tables, key, s, seed, registry, flags, by_instrument, prepared))
        except AnalysisError as err:
            flags.append(f"{key}: subscale not analysed: {err}")
    return out


def _extra_tables(results, sub_results, s, registry) -> dict[str, pd.DataFrame]:
    diag = []
    for r in results:
        for name, _ in _DIAGNOSTIC_MODELS:
            if name in r:
                c = r[name].checks.copy()
                c["rows_above_4_over_n"] = np.where(c["check"] == "cooks_distance",
                                                    ", ".join(str(i) for i in r[name].cooks_rows), "")
                diag.append(c)
    out = {"trial_diagnostics": pd.concat(diag, ignore_index=True) if diag else pd.DataFrame(),
           "trial_within_group_change": _stack(results, "within_group_change"),
           "trial_attendance": _stack(results, "attendance"),
           "trial_cace": _stack(results, "cace")}
    anc = _stack(sub_results, "ancova")
    itt = _stack(sub_results, "itt", lambda r: r.contrasts)
    parts = []
    if not anc.empty:
        parts.append(anc.assign(analysis=f"complete-case ANCOVA {anc['timepoint'].iloc[0]} ~ arm + post"))
    if not itt.empty:
        parts.append(itt.assign(analysis="ITT MI-MMRM (as the total)"))
    fam = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not fam.empty:
        fam.insert(1, "instrument", fam["outcome"].map(lambda k: registry[k].short))
        fam.insert(2, "subscale_of", fam["outcome"].map(lambda k: registry[k].subscale_of or ""))
        fam["direction"] = fam["outcome"].map(lambda k: registry[k].direction_text)
        fam["p_holm"] = trial.adjust_pvalues(fam["p"], "holm")   # one family: every post hoc subscale test
        fam["p_bh"] = trial.adjust_pvalues(fam["p"], "bh")
    out["trial_subscales"] = fam
    out["trial_subscale_complete_case"] = _stack(sub_results, "complete_case", lambda r: r[1])
    return {k: v for k, v in out.items() if not v.empty}


def _draw_diagnostics(key: str, diags: list, s: dict) -> bool:
    """Figures are costly (12 panels): ``flagged`` draws the primary outcome and any outcome with a failed check."""
    if s["diagnostics_figures"] == "none":
        return False
    return (s["diagnostics_figures"] == "all" or key == s["primary"]["outcome"]
            or any(d.failed or np.nanmax(d.cooks) > 1 for d in diags))


def _diagnostics_figure(diags: list, label: str):
    """Per model (row): normal Q-Q of the residuals, residuals vs fitted, Cook's distance, residuals vs baseline."""
    from matplotlib.figure import Figure
    from scipy import stats

    fig = Figure(figsize=(12, 2.7 * len(diags)))
    axes = fig.subplots(len(diags), 4, squeeze=False)
    for row, d in zip(axes, diags):
        c = d.checks.set_index("check")
        z = (d.residuals - d.residuals.mean()) / d.residuals.std(ddof=1)
        osm, osr = stats.probplot(z, dist="norm", fit=False)
        row[0].plot(osm, osr, ".", ms=3)
        lim = [min(osm.min(), osr.min()), max(osm.max(), osr.max())]
        row[0].plot(lim, lim, color="black", lw=0.8)
        row[0].set_title(f"{label}, {d.model} {d.timepoint}\nnormal Q-Q; Shapiro-Wilk p = "
                         f"{c.loc['shapiro_wilk', 'p']:.3g}", fontsize=8)
        row[1].plot(d.fitted, d.residuals, ".", ms=3)
        row[1].axhline(0, color="black", lw=0.8)
        row[1].set_title(f"{d.residual_kind.split()[0]} residual vs fitted\nSpearman(|residual|, fitted) p = "
                         f"{c.loc['spearman_abs_residual_fitted', 'p']:.3g}", fontsize=8)
        n = len(d.cooks)
        row[2].vlines(np.arange(1, n + 1), 0, np.nan_to_num(d.cooks), lw=0.8)
        row[2].axhline(4 / n, color="tab:red", ls="--", lw=0.8)
        row[2].set_title(f"Cook's distance by row\n{len(d.cooks_rows)} above 4/n (dashed), all kept", fontsize=8)
        row[3].plot(d.baseline, d.residuals, ".", ms=3)
        row[3].axhline(0, color="black", lw=0.8)
        row[3].set_title(f"residual vs baseline\nquadratic term p = {c.loc['baseline_quadratic', 'p']:.3g}", fontsize=8)
        for ax, xl in zip(row, ("normal quantile", "fitted", "row in analysed data", "baseline")):
            ax.set_xlabel(xl, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.locator_params(nbins=4)   # few tick labels: text layout is most of the drawing time
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.13 / len(diags), top=1 - 0.16 / len(diags),
                        wspace=0.25, hspace=0.75)   # fixed layout: tight_layout would cost a full draw
    return fig


def _attendance_figure(results, registry, s):
    from matplotlib.figure import Figure

    panels = [r for r in results if "attendance_points" in r]
    fig = Figure(figsize=(3.4 * len(panels), 3.2))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, r in zip(axes, panels):
        x, y = r["attendance_points"][:, 0], r["attendance_points"][:, 1]
        ax.scatter(x, y, s=8, alpha=0.7)
        if np.ptp(x) > 0:
            slope, icpt = np.polyfit(x, y, 1)
            grid = np.linspace(x.min(), x.max(), 50)
            ax.plot(grid, icpt + slope * grid, color="tab:orange", label="OLS (unadjusted)")
        ax.axvline(int(s["per_protocol_threshold"]) + 0.5, color="tab:red", ls="--", lw=0.8,
                   label=f">{s['per_protocol_threshold']} sessions")
        ax.set_xlabel("sessions attended (IMR arm)", fontsize=8)
        ax.set_ylabel(f"{registry[r['outcome']].short} at {s['attendance_timepoint']}", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _extra_html(tables, figures, s) -> str:
    thr, tp = s["per_protocol_threshold"], s["attendance_timepoint"]
    drop = ["notes", "m", "qbar", "ubar", "b", "t"]
    parts = []

    def table(name, caption, method, keep_method=False):
        if name in tables:
            f = tables[name]
            f = f.drop(columns=[c for c in drop + ([] if keep_method else ["method"]) if c in f.columns])
            parts.append(table_html(f, caption=caption, method=method))

    parts.append("<h3>Model diagnostics</h3>")
    parts.append(_p("As the protocol planned, outliers were identified by Cook's distance and kept in every analysis; "
                    "participants above 4/n are listed by their row number in the analysed data (never by identifier). "
                    "Residuals are tested for normality (Shapiro-Wilk), for heteroscedasticity (Spearman's rank "
                    "correlation of |residual| with the fitted value) and the baseline covariate for linearity (a "
                    "centred quadratic term). Models: the likelihood MMRM on the observed data (the ITT model "
                    "without imputation; normalized residuals) and the complete-case ANCOVA at each visit (raw "
                    f"residuals). A check with p < {s['alpha']} fails and is listed in the warning box above."))
    table("trial_diagnostics", "Diagnostics per outcome and model (passed: p >= alpha; Cook's rows are "
          "row numbers in the analysed data)",
          "Cook's distance (OLS: R cooks.distance; MMRM: delete-one-participant GLS, "
          + ("REML refits" if s["cooks_refit"] else "covariance fixed at the full fit, Christensen et al. 1992")
          + "); Shapiro-Wilk (AS R94); Spearman t approximation; quadratic baseline term (ANCOVA: nested F; MMRM: "
            "Wald t, Satterthwaite df)", keep_method=True)
    if s["diagnostics_figures"] == "flagged":
        parts.append(_p("Figures are drawn for the primary outcome and for every outcome with a failed check "
                        "(setting diagnostics_figures: all draws every outcome)."))
    for key in figures:
        if key.startswith("trial_diagnostics_"):
            parts.append(figure_html(key, f"Diagnostics, {key.removeprefix('trial_diagnostics_')}: Q-Q, residuals vs "
                                          "fitted, Cook's distance (dashed: 4/n), residuals vs baseline"))
    parts.append("<h3>Within-group change from post-intervention to 12-month follow-up (post hoc)</h3>")
    parts.append(_p("The protocol's post hoc mixed model: post-intervention and 12-month follow-up as repeated measures, "
                    "baseline as a fixed-effect covariate, unstructured covariance (REML), observed data; the time "
                    "effect within each arm (fu12 minus post) and the difference between the arms' changes."))
    table("trial_within_group_change", "Change fu12 - post per arm (positive = the score rose)",
          "REML GLS 0 + time + arm:time + baseline" + "".join(f" + {c}" for c in s["within_group_covariates"])
          + ", unstructured covariance, observed data; Satterthwaite df")
    parts.append("<h3>Post hoc subscale analyses</h3>")
    parts.append(_p("PANSS positive, negative and general psychopathology subscales and the four PSP domains: "
                    "complete-case ANCOVA at 12-month follow-up with the post-intervention value as covariate "
                    "(seed Table 4). IMRS three-factor subscales (Recovery, Management, Biology) of both versions: "
                    "the ITT MI-MMRM of the totals. These post hoc tests form one multiplicity family of their own "
                    "(Holm and Benjamini-Hochberg over every row)."))
    table("trial_subscales", "Post hoc subscales: IMR - TAU (p_holm / p_bh within this family)",
          "ANCOVA: OLS fu12 ~ arm + post, t(n - p), type III F = t^2 (R car::Anova); IMRS subscales: MI-MMRM, "
          "Rubin's rules, Barnard-Rubin df", keep_method=False)
    table("trial_subscale_complete_case", "IMRS subscales: complete-case ANCOVA per visit",
          "OLS y_visit ~ arm + baseline + covariates; t(n - p)")
    parts.append("<h3>Attendance: dose-response and complier-average causal effect</h3>")
    parts.append(_p(f"Within the IMR arm (observed cases): one-way ANOVA of the {tp} outcome on sessions attended as a "
                    f"continuous variable, the slope adjusted for baseline, and > {thr} vs 0-{thr} sessions adjusted "
                    "for baseline. These compare self-selected groups and are not randomised comparisons."))
    table("trial_attendance", f"Attendance dose-response at {tp} (IMR arm)",
          "OLS within the IMR arm; one-way ANOVA F = t^2 of the slope; t(n - p)")
    if "trial_attendance" in figures:
        parts.append(figure_html("trial_attendance", f"Outcome at {tp} against sessions attended, IMR arm"))
    parts.append(_p(f"Complier-average causal effect (CACE) of attending more than {thr} sessions, with randomisation as "
                    "the instrument (two-stage least squares). It RESTS ON THE EXCLUSION RESTRICTION: being randomised "
                    f"to IMR changes the outcome only through attending more than {thr} sessions (no effect of fewer "
                    "sessions or of allocation itself), and on one-sided non-compliance (TAU cannot attend). The ITT "
                    "(reduced form) and first stage (IMR - TAU difference in the proportion attending) are shown in "
                    "the same sample; CACE = ITT / first stage."))
    table("trial_cace", "CACE by instrumental variables (assumes the exclusion restriction)",
          f"2SLS {tp} ~ complied + baseline + {' + '.join(s['covariates'])}, instrument: randomised arm; "
          "homoskedastic SE as AER::ivreg, t(n - p)", keep_method=False)
    return "\n".join(p for p in parts if p)


def _extra_summary(tables) -> list[str]:
    lines = []
    d = tables.get("trial_diagnostics")
    if d is not None:
        tested = d.loc[d["passed"].notna()]
        failed = tested.loc[tested["passed"] == False]  # noqa: E712
        lines += ["", f"Diagnostics: {len(failed)} of {len(tested)} residual checks failed (see warnings); "
                      f"Cook's D > 4/n kept (seed), max D = {d.loc[d['check'] == 'cooks_distance', 'statistic'].max():.3f}"]
    w = tables.get("trial_within_group_change")
    if w is not None:
        lines += ["", "Within-group change fu12 - post (post hoc mixed model):"]
        for key, g in w.groupby("outcome", sort=False):
            lines.append(f"  {key:<16}" + "  ".join(f"{r['arm']} {_fmt(r['estimate'])} (p {_fmt(r['p'], 3)})"
                                                  for _, r in g.iterrows()))
    sub = tables.get("trial_subscales")
    if sub is not None:
        lines += ["", "Post hoc subscales (own multiplicity family):"]
        for _, r in sub.iterrows():
            lines.append(f"  {r['instrument']:<28}{r['timepoint']:<6}{_fmt(r['estimate']):>8}  p {_fmt(r['p'], 3)}  "
                         f"p_holm {_fmt(r['p_holm'], 3)}")
    c = tables.get("trial_cace")
    if c is not None:
        lines += ["", "CACE of attending more sessions than the threshold (2SLS; rests on the exclusion restriction):"]
        for _, r in c.loc[c["quantity"].str.startswith("CACE")].iterrows():
            lines.append(f"  {r['outcome']:<16}{_fmt(r['estimate']):>8}  [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]  "
                         f"p {_fmt(r['p'], 3)}  (compliance in IMR {r['compliance_imr']:.2f})")
    return lines


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------


def _stack(results: list[dict], name: str, pick=lambda v: v) -> pd.DataFrame:
    frames = [pick(r[name]) for r in results if name in r]
    frames = [f for f in frames if f is not None and len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _itt_table(results, s, registry) -> pd.DataFrame:
    itt = _stack(results, "itt", lambda r: r.contrasts)
    if itt.empty:
        return itt
    itt.insert(1, "instrument", itt["outcome"].map(lambda k: registry[k].short))
    itt["direction"] = itt["outcome"].map(lambda k: registry[k].direction_text)
    primary = s["primary"]
    itt["role"] = np.where((itt["outcome"] == primary["outcome"]) & (itt["timepoint"] == primary["timepoint"]),
                           "primary", "secondary")
    itt["p_holm"] = np.nan
    itt["p_bh"] = np.nan
    for tp in trial.TIMEPOINTS:   # one family per timepoint: the secondary outcomes
        sec = (itt["timepoint"] == tp) & (itt["outcome"] != primary["outcome"])
        itt.loc[sec, "p_holm"] = trial.adjust_pvalues(itt.loc[sec, "p"], "holm")
        itt.loc[sec, "p_bh"] = trial.adjust_pvalues(itt.loc[sec, "p"], "bh")
    return itt


def _table3(results, registry) -> pd.DataFrame:
    """The seed's Table 3: ITT adjusted means (SE) at fu12 and p, complete-case n / mean / SD per arm."""
    rows = []
    for r in results:
        row = {"outcome": r["outcome"], "instrument": registry[r["outcome"]].short}
        if "itt" in r:
            means = r["itt"].adjusted_means
            for tp in trial.TIMEPOINTS:
                for arm in trial.ARMS:
                    m = means.loc[(means["timepoint"] == tp) & (means["arm"] == arm)].iloc[0]
                    row[f"itt_{tp}_mean_{arm.lower()}"], row[f"itt_{tp}_se_{arm.lower()}"] = m["estimate"], m["se"]
                c = r["itt"].contrasts.set_index("timepoint").loc[tp]
                row[f"itt_{tp}_diff"], row[f"itt_{tp}_p"] = c["estimate"], c["p"]
        if "complete_case" in r:
            desc, ancova = r["complete_case"]
            for tp in trial.TIMEPOINTS:
                for arm in trial.ARMS:
                    d = desc.loc[(desc["timepoint"] == tp) & (desc["arm"] == arm)].iloc[0]
                    for stat in ("n", "mean", "sd"):
                        row[f"cc_{tp}_{stat}_{arm.lower()}"] = d[stat]
                row[f"cc_{tp}_p"] = ancova.set_index("timepoint").loc[tp, "p"]
        rows.append(row)
    return pd.DataFrame(rows)


def _subgroup_tables(results) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    desc, tests, mi = [], [], []
    for r in results:
        for name, value in r.items():
            if name.startswith("subgroup_cc_"):
                desc.append(value[0]); tests.append(value[1])
            elif name.startswith("subgroup_mi_"):
                mi.append(value)
    cat = lambda fs: pd.concat(fs, ignore_index=True) if fs else pd.DataFrame()  # noqa: E731
    return cat(desc), pd.DataFrame(tests), cat(mi)


def _build_tables(results, s, registry) -> dict[str, pd.DataFrame]:
    tables = {
        "trial_itt_contrasts": _itt_table(results, s, registry),
        "trial_itt_adjusted_means": _stack(results, "itt", lambda r: r.adjusted_means),
        "trial_likelihood_mmrm": pd.concat(
            [r["likelihood"].contrasts.assign(outcome=r["outcome"], converged=r["likelihood"].converged)
             for r in results if "likelihood" in r] or [pd.DataFrame()], ignore_index=True),
        "trial_random_intercept_lmm": _stack(results, "random_intercept", lambda r: r.contrasts.assign(
            random_intercept_variance=r.random_intercept_variance, residual_variance=r.residual_variance)),
        "trial_descriptives": _stack(results, "complete_case", lambda r: r[0]),
        "trial_complete_case": _stack(results, "complete_case", lambda r: r[1]),
        "trial_table3": _table3(results, registry),
        "trial_per_protocol": _stack(results, "per_protocol", lambda r: r[0]),
        "trial_per_protocol_sessions": _stack(results, "per_protocol", lambda r: r[1]),
    }
    desc, tests, mi = _subgroup_tables(results)
    tables.update(trial_subgroup_descriptives=desc, trial_subgroup_interaction_cc=tests, trial_subgroup_interaction_mi=mi)
    tables["trial_tipping_grid"] = _stack(results, "tipping", lambda r: r.grid.assign(outcome=r.outcome,
                                                                                       timepoint=r.timepoint))
    tables["trial_tipping_points"] = _stack(results, "tipping", lambda r: r.points)
    return {k: v for k, v in tables.items() if not v.empty}


# --------------------------------------------------------------------------------------------------
# Figures, HTML, summary
# --------------------------------------------------------------------------------------------------


def _tipping_figure(tp: trial.TippingPoint, label: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    g = tp.grid
    ax.fill_between(g["delta"], g["ci_low"], g["ci_high"], alpha=0.25, color="tab:blue", label="95% CI (Rubin)")
    ax.plot(g["delta"], g["estimate"], "o-", color="tab:blue", label="pooled IMR - TAU")
    ax.axhline(0, color="black", lw=0.8)
    for _, p in tp.points.iterrows():
        if p["reached"]:
            ax.axvline(p["tipping_delta"], color="tab:red", ls="--", lw=1)
            ax.annotate(f" tipping point {p['tipping_delta']:+.2f}", (p["tipping_delta"], ax.get_ylim()[0]),
                        color="tab:red", fontsize=8, ha="left", va="bottom")
    ax.set_xlabel(f"delta added to the IMR arm's imputed values ({label} points)")
    ax.set_ylabel(f"IMR - TAU at {tp.timepoint}")
    ax.set_title(f"{label}: delta-adjusted MI (MNAR) sensitivity")
    ax.legend(fontsize=8, loc="best")
    return fig


def _forest_figure(itt: pd.DataFrame, sds: dict):
    """ITT effects in baseline-SD units, signed so that positive favours IMR."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 0.35 * len(itt) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(itt))[::-1]
    sign = np.where(itt["direction"] == "higher is better", 1.0, -1.0)
    sd = itt["outcome"].map(sds).to_numpy(dtype=float)
    est, lo, hi = (sign * itt[c].to_numpy() / sd for c in ("estimate", "ci_low", "ci_high"))
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    colours = np.where(itt["timepoint"] == "post", "tab:blue", "tab:orange")
    ax.hlines(y, lo, hi, colors=colours)
    for tp, colour in (("post", "tab:blue"), ("fu12", "tab:orange")):
        sel = colours == colour
        ax.scatter(est[sel], y[sel], color=colour, zorder=3, label=tp)
    ax.legend(fontsize=8, loc="best")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [f"{i} ({t})" for i, t in zip(itt["instrument"], itt["timepoint"])], fontsize=8)
    ax.set_xlabel("IMR - TAU in baseline SD units (positive favours IMR); ITT MI-MMRM, 95% CI")
    return fig


def _fmt(v, digits=2) -> str:
    return "NA" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _summary(tables, results, s, flags, seed) -> str:
    lines = [f"Trial stage: ITT MMRM with multiple imputation (m = {s['imputations']}, {s['imputation_method']}, "
             f"{'within arm' if s['impute_by_arm'] else 'arm as predictor'}), seed {seed}",
             "IMR - TAU on each instrument's own scale; pooled by Rubin's rules, Barnard-Rubin df.", ""]
    itt = tables.get("trial_itt_contrasts")
    if itt is not None:
        lines.append(f"{'outcome':<16}{'visit':<6}{'diff':>8}  {'95% CI':<18}{'df':>6}{'p':>8}{'fmi':>6}{'p_holm':>8}")
        for _, r in itt.iterrows():
            ci = f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
            tag = " *primary" if r["role"] == "primary" else ""
            lines.append(f"{r['instrument']:<16}{r['timepoint']:<6}{_fmt(r['estimate']):>8}  {ci:<18}"
                         f"{_fmt(r['df'], 0):>6}{_fmt(r['p'], 3):>8}{_fmt(r['fmi']):>6}{_fmt(r['p_holm'], 3):>8}{tag}")
    for r in results:
        if "tipping" in r:
            lines.append("")
            lines.append(f"MNAR tipping point ({r['outcome']} at {r['tipping'].timepoint}):")
            lines += [f"  {p}" for p in r["tipping"].points["statement"]]
    cc = tables.get("trial_subgroup_interaction_cc")
    if cc is not None:
        lines.append("")
        lines.append("Subgroup interactions (complete case, F test): " + "; ".join(
            f"{t['outcome']} x {t['subgroup']} p = {t['p']:.3f}" for _, t in cc.iterrows()))
    lines += _extra_summary(tables)
    if flags:
        lines.append("")
        lines += [f"WARNING: {f}" for f in flags]
    return "\n".join(lines)


def _html(tables, figures, results, s, flags) -> str:
    m = s["imputations"]
    prim = s["primary"]
    parts = ["<h2>Trial: intention-to-treat and sensitivity analyses</h2>", flags_html(flags),
             _p(f"Every randomised participant with complete baseline covariates is analysed (intention to treat). "
                f"Missing outcome values (baseline, post-intervention, 12-month follow-up) are imputed {m} times by "
                f"chained equations ({s['imputation_method']}, "
                f"{'separately within each arm' if s['impute_by_arm'] else 'with arm as a predictor'}; predictors "
                f"{', '.join(s['covariates'])} and the outcome's other visits). Each completed data set is "
                "analysed by a mixed model for repeated measures (post and 12-month follow-up; visit, arm x visit, "
                "baseline x visit and the covariates as fixed effects; unstructured covariance; REML) and the "
                "results are pooled by Rubin's rules with Barnard-Rubin degrees of freedom "
                "(complete-data df = participants minus the fixed effects acting at that visit). "
                "Differences are IMR minus TAU on the instrument's own scale; whether higher is better is given "
                f"per instrument. The primary outcome is {prim['outcome']} at {prim['timepoint']}; the other "
                "outcome x visit results are secondary and carry Holm and Benjamini-Hochberg adjusted p-values "
                "(one family per visit).")]
    specs = [
        ("trial_itt_contrasts", "ITT: IMR - TAU per outcome and visit (pooled over imputations)",
         "MI-MMRM; Rubin's rules, Barnard-Rubin df; riv = relative increase in variance, fmi = fraction of "
         "missing information; p_holm / p_bh: Holm / Benjamini-Hochberg over the secondary outcomes at that visit"),
        ("trial_table3", "Table 3 equivalent: ITT adjusted means (SE) and complete-case n / mean / SD per arm",
         "ITT: MI-MMRM adjusted means (emmeans-style grid, Rubin); complete case: observed n, mean, SD "
         "(n - 1); cc p: complete-case ANCOVA of the visit on arm, baseline and covariates (OLS, t test)"),
        ("trial_complete_case", "Complete-case ANCOVA per visit (assumes missing completely at random given covariates)",
         "OLS y_visit ~ arm + baseline + covariates among participants with both values; t(n - p)"),
        ("trial_likelihood_mmrm", "Likelihood-based MMRM on the observed data (MAR, no imputation)",
         "REML GLS with unstructured covariance; "
         + ("Satterthwaite df" if s["df_method"] == "satterthwaite" else "Kenward-Roger adjusted SE and df")
         + "; participants with an observed baseline"),
        ("trial_random_intercept_lmm", "Secondary model: random-intercept LMM on the observed data (sensitivity to "
                                       "the covariance structure)",
         "the likelihood MMRM's mean model with a random intercept per participant (compound symmetry) instead of an "
         "unstructured covariance; REML (statsmodels MixedLM); nlme between-within df; a secondary model, not a "
         "substitute for the MMRM"),
        ("trial_per_protocol", f"Per protocol (IMR arm): 0-{s['per_protocol_threshold']} vs "
                               f">{s['per_protocol_threshold']} sessions",
         "observed cases in the IMR arm; one-way ANOVA (F = t^2 of the pooled-variance t test)"),
        ("trial_per_protocol_sessions", "Per protocol (IMR arm): attendance as a continuous variable",
         "OLS of the observed outcome on the number of sessions attended, IMR arm"),
        ("trial_subgroup_interaction_cc", f"Subgroup interactions at {s['subgroup_timepoint']} (complete case)",
         "ANCOVA nested-model F test of arm x subgroup (y ~ baseline + covariates + arm * subgroup)"),
        ("trial_subgroup_descriptives", "Within-subgroup observed means by arm (seed Table 4 style)",
         "observed n, mean, SD; p from the within-level two-sample t test (pooled variance)"),
        ("trial_subgroup_interaction_mi", "Subgroup interactions in the ITT MI-MMRM",
         "MMRM with arm x subgroup x visit columns per completed data set; Rubin's rules, Barnard-Rubin df"),
        ("trial_tipping_grid", "MNAR sensitivity: delta-adjusted MI over the grid",
         "delta added to the IMR arm's imputed post and fu12 values, MMRM refitted, pooled by Rubin's rules"),
        ("trial_tipping_points", "Tipping points",
         "first grid point where the 95% CI's relation to 0 changes, refined by linear interpolation, checked by a refit"),
    ]
    drop = ["method", "notes", "m", "qbar", "ubar", "b", "t", "quantity"]
    for name, caption, method in specs:
        if name in tables:
            frame = tables[name].drop(columns=[c for c in drop if c in tables[name].columns])
            parts.append(table_html(frame, caption=caption, method=method))
        if name == "trial_itt_contrasts" and "trial_itt_forest" in figures:
            parts.append(figure_html("trial_itt_forest", "ITT effects in baseline-SD units (positive favours IMR)"))
        if name == "trial_tipping_points":
            for key in figures:
                if key.startswith("trial_tipping_"):
                    parts.append(figure_html(key, f"Tipping-point analysis, {key.removeprefix('trial_tipping_')}"))
    return "\n".join(p for p in parts if p)


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


def _record(results, s, seed, tables, sub_results=()) -> dict:
    rec = {"settings": s, "seed": seed, "outcomes": {}}
    for r in results:
        o = {}
        if "itt" in r:
            o["itt"] = r["itt"].to_dict()
        if "likelihood" in r:
            o["likelihood_mmrm"] = r["likelihood"].to_dict()["contrasts"]
        if "random_intercept" in r:
            o["random_intercept_lmm"] = r["random_intercept"].to_dict()
        if "tipping" in r:
            o["tipping_point"] = r["tipping"].to_dict()
        rec["outcomes"][r["outcome"]] = o
    for name in ("trial_complete_case", "trial_descriptives", "trial_per_protocol", "trial_subgroup_interaction_cc",
                 "trial_subgroup_interaction_mi", "trial_within_group_change", "trial_subscales",
                 "trial_subscale_complete_case", "trial_attendance", "trial_cace"):
        if name in tables:
            rec[name.removeprefix("trial_")] = tables[name].to_dict("records")
    rec["diagnostics"] = [r[n].to_dict() for r in results for n, _ in _DIAGNOSTIC_MODELS if n in r]
    rec["subscale_outcomes"] = {r["outcome"]: r["itt"].to_dict() for r in sub_results if "itt" in r}
    return rec


def run_trial_stage(tables: dict[str, pd.DataFrame], settings: dict | None = None, *,
                    seed: int | None = None) -> StageResult:
    """Run every configured outcome; see the module docstring. ``seed`` (default: settings-independent
    DEFAULT_SEED) seeds each outcome's imputation through `derive_seed(seed, "trial.impute.<outcome>")`."""
    s = trial_settings(settings)
    seed = DEFAULT_SEED if seed is None else int(seed)
    for name in ("participants", "assessments"):
        if name not in tables:
            raise AnalysisError(f"the trial stage needs the cleaned '{name}' table; tables given: {sorted(tables)}")
    registry = load_registry()
    listed = ("outcomes", "subscale_ancova_outcomes", "subscale_itt_outcomes")
    unknown = sorted({k for name in listed for k in s[name] if k not in registry})
    if unknown:
        raise AnalysisError(f"outcome(s) {unknown} are not in the instrument registry")
    flags: list[str] = []
    results = []
    bar = progress(s["outcomes"], desc=f"trial: outcomes (m = {s['imputations']} imputations each)", unit="outcome")
    by_instrument = _instrument_rows(tables["assessments"]) if "instrument" in tables["assessments"] else None
    prepared = _prepare_outcomes(tables, list(s["outcomes"]) + list(s["subscale_itt_outcomes"]), s, seed,
                                 by_instrument)
    for key in bar:
        try:
            results.append(_analyse_outcome(tables, key, s, seed, registry, flags, by_instrument, prepared))
        except AnalysisError as err:
            flags.append(f"{key}: not analysed: {err}")
    sub_results = _analyse_subscales(tables, s, seed, registry, flags, by_instrument, prepared)
    out_tables = _build_tables(results, s, registry)
    out_tables.update(_extra_tables(results, sub_results, s, registry))
    figures = {}
    try:
        if "trial_itt_contrasts" in out_tables:
            sds = {r["outcome"]: float(np.nanstd(tables_baseline(r), ddof=1)) for r in results if "itt" in r}
            figures["trial_itt_forest"] = _forest_figure(out_tables["trial_itt_contrasts"], sds)
        for r in results:
            if "tipping" in r:
                figures[f"trial_tipping_{r['outcome']}"] = _tipping_figure(r["tipping"], registry[r["outcome"]].short)
        for r in results:
            diags = [r[n] for n, _ in _DIAGNOSTIC_MODELS if n in r]
            if diags and _draw_diagnostics(r["outcome"], diags, s):
                figures[f"trial_diagnostics_{r['outcome']}"] = _diagnostics_figure(diags, registry[r["outcome"]].short)
        if any("attendance_points" in r for r in results):
            figures["trial_attendance"] = _attendance_figure(results, registry, s)
    except Exception as err:  # a figure must never sink the numbers
        flags.append(f"a figure could not be drawn: {err}")
    return StageResult(stage="trial", tables=out_tables, figures=figures,
                       record=_record(results, s, seed, out_tables, sub_results),
                       summary=_summary(out_tables, results, s, flags, seed),
                       html=_html(out_tables, figures, results, s, flags) + "\n" + _extra_html(out_tables, figures, s),
                       flags=flags)


def tables_baseline(result: dict) -> np.ndarray:
    """Observed baseline values of one outcome (for the SD that scales the forest plot)."""
    return result["imputation"].frame["baseline"].to_numpy(dtype=float)


def run_trial_outcome(tables: dict[str, pd.DataFrame], outcome: str, settings: dict | None = None, *,
                      seed: int | None = None, imputations: int | None = None,
                      df_method: str | None = None) -> StageResult:
    """One outcome for ``imrstats trial --outcome KEY``: ITT MI-MMRM, likelihood MMRM, complete case, per
    protocol, complete-case subgroup tests, the tipping point at the primary timepoint, and the issue-10
    analyses of that outcome (diagnostics, within-group change, attendance and CACE; no subscale family), and the
    random-intercept secondary model unless the settings turn it off (``random_intercept_outcomes: []``)."""
    s = dict(settings or {})
    s.update(outcomes=[outcome], primary={**(s.get("primary") or {}), "outcome": outcome},
             per_protocol_outcomes=[outcome], subgroup_outcomes=[outcome], subgroup_mi_outcomes=[],
             tipping_outcomes=[outcome], diagnostics_outcomes=[outcome], within_group_outcomes=[outcome],
             attendance_outcomes=[outcome], subscale_ancova_outcomes=[], subscale_itt_outcomes=[],
             random_intercept_outcomes=[outcome] if s.get("random_intercept_outcomes", True) else [])
    if imputations is not None:
        s["imputations"] = int(imputations)
    if df_method is not None:
        s["df_method"] = df_method
    return run_trial_stage(tables, s, seed=seed)
