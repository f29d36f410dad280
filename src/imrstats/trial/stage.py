"""The trial stage: every outcome of the instrument registry's trial list analysed as Jensen et al. 2019 planned
(ITT MI-MMRM, complete case, per protocol, subgroups), plus the MNAR tipping point and multiplicity, and
(`imrstats.trial.secondary`) model diagnostics, within-group change, the post hoc subscale family,
attendance dose-response and the complier-average causal effect, and the estimands of
``trial.sensitivity_estimands`` (ICH E9(R1); `imrstats.trial.estimands`: reference-based imputation under each
intercurrent event's strategy) beside the primary MAR analysis.

`run_trial_stage` returns a `StageResult` (tables, figures, record, summary, flags; its report section is
rendered by `imrstats.trial.section`, its figures drawn by `imrstats.trial.figures`); a failure in
one outcome or one sub-analysis becomes a flag and the rest of the stage still runs. `run_trial_outcome`
is the single-outcome version for ``imrstats trial --outcome KEY``, `run_trial_estimand` one estimand alone for
``imrstats trial --estimand NAME``. Statistics live in `imrstats.trial.analyses`.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from imrstats.config import section_settings, stage_seed, trial_instruments
from imrstats.core.progress import progress
from imrstats.core.seeds import derive_seed
from imrstats.errors import AnalysisError, SettingsError
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.format import format_ci, format_number, format_p
from imrstats.trial import analyses as trial
from imrstats.trial import estimands as trial_estimands
from imrstats.trial import lmm as trial_lmm
from imrstats.trial import secondary as trial_extra
from imrstats.trial.design import StudyDesign
from imrstats.trial.figures import trial_figures

# The stage's settings: the config's `trial` section, defaults in workflow/schemas/config.schema.yaml
# (imrstats.config.section_settings). The study design (arms, visits, labels, baseline slope) is read from the
# same section (`StudyDesign.from_settings`); every analysis below takes it.


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


def _participant_columns(tables, s: dict) -> list[str]:
    """The participants' columns the analyses read: covariates, subgroups and sessions attended (when recorded)."""
    cols = [*s["covariates"], *s["subgroups"], *s["within_group_covariates"]]
    if "sessions_attended" in tables["participants"].columns:
        cols.append("sessions_attended")
    return list(dict.fromkeys(cols))


def _outcome_frame(tables, key: str, s: dict, by_instrument: dict | None, design: StudyDesign) -> pd.DataFrame:
    return trial.outcome_frame(
        tables["participants"],
        _assessments_of(tables, [key, *s["auxiliary_baselines"]], by_instrument),
        key,
        auxiliary=s["auxiliary_baselines"],
        design=design,
        columns=_participant_columns(tables, s),
    )


def _diagnostic_models(design: StudyDesign) -> tuple:
    """(result key, visit) of the models whose residuals are checked: the observed-data MMRM (None: every
    visit), then the complete-case ANCOVA at each visit."""
    return (("diagnostics_mmrm", None), *((f"diagnostics_cc_{v}", v) for v in design.visits))


def _impute(frame: pd.DataFrame, key: str, s: dict, seed: int, design: StudyDesign) -> trial.OutcomeImputation:
    return trial.impute_outcome(
        frame,
        covariates=list(s["covariates"]),
        m=int(s["imputations"]),
        method=s["imputation_method"],
        maxit=int(s["maxit"]),
        donors=int(s["donors"]),
        by_arm=bool(s["impute_by_arm"]),
        seed=derive_seed(seed, f"trial.impute.{key}"),
        missing_covariates=s["missing_covariates"],
        design=design,
    )


def _prepare_outcomes(tables, keys, s: dict, seed: int, by_instrument: dict | None, design: StudyDesign) -> dict:
    """Frame and imputation of every outcome ahead of its analyses (errors kept to be reported in place),
    then all outcomes' plain ITT MMRM fits in one batch (`trial.prefit_itt`); the numbers are those each
    outcome's own calls make: the imputation seed is per outcome and every fit has its own chain's start."""
    prepared = {}
    for key in dict.fromkeys(keys):
        item = prepared[key] = {}
        try:
            item["frame"] = _outcome_frame(tables, key, s, by_instrument, design)
            item["imputation"] = _impute(item["frame"], key, s, seed, design)
        except AnalysisError as err:
            item["error"] = err
    trial.prefit_itt([p["imputation"] for p in prepared.values() if "imputation" in p], covariates=s["covariates"])
    return prepared


def _analyse_outcome(
    tables,
    key: str,
    s: dict,
    seed: int,
    registry,
    flags: list[str],
    by_instrument: dict | None = None,
    prepared: dict | None = None,
    design: StudyDesign | None = None,
) -> dict:
    """Every analysis of one outcome; each failure is recorded as a flag and the others still run.
    ``prepared``: the outcome's frame and imputation made ahead (`_prepare_outcomes`), used once."""
    design = StudyDesign.from_settings(s) if design is None else design
    level = 1 - float(s["alpha"])
    covs = list(s["covariates"])
    out: dict = {"outcome": key}
    ready = (prepared or {}).pop(key, {})
    if "frame" in ready:
        frame = ready["frame"]
    elif "error" in ready:
        raise ready["error"]
    else:
        frame = _outcome_frame(tables, key, s, by_instrument, design)
    out["frame_n"] = len(frame)
    sessions = "sessions_attended" in tables["participants"].columns

    def imputation():
        if "imputation" in ready:
            return ready["imputation"]
        if "error" in ready:
            raise ready["error"]
        return _impute(frame, key, s, seed, design)

    def attempt(name, fn):
        try:
            out[name] = fn()
        except AnalysisError as err:
            flags.append(f"{key}: {name.replace('_', ' ')} not reported: {err}")

    attempt(
        "complete_case",
        lambda: trial.complete_case(frame, outcome=key, covariates=covs, level=level, design=design),
    )
    dfm = s["df_method"]
    attempt(
        "likelihood",
        lambda: trial.likelihood_mmrm(frame, covariates=covs, level=level, df_method=dfm, design=design),
    )
    if "likelihood" in out:
        out["likelihood_n"] = trial.count_exclusions(frame, covs, ("baseline", design.visits), design)
    if "likelihood" in out and not out["likelihood"].converged:
        flags.append(f"{key}: the likelihood MMRM did not converge ({out['likelihood'].notes})")
    if key in s["random_intercept_outcomes"]:
        attempt(
            "random_intercept",
            lambda: trial_lmm.random_intercept_lmm(frame, outcome=key, covariates=covs, level=level, design=design),
        )
        ri = out.get("random_intercept")
        if ri is not None and (not ri.converged or ri.boundary):
            flags.append(
                f"{key}: the random-intercept LMM "
                + ("did not converge" if not ri.converged else "has its random-intercept variance at the boundary 0")
                + f" ({ri.notes})"
            )
    attempt("imputation", imputation)
    imp = out.get("imputation")
    if imp is not None:
        attempt(
            "itt",
            lambda: trial.itt_mi_mmrm(
                frame, outcome=key, covariates=covs, imputation=imp, level=level, df_method=dfm, design=design
            ),
        )
        if "itt" in out:
            flags.extend(out["itt"].flags)
    if key in s["per_protocol_outcomes"] and sessions:
        attempt(
            "per_protocol",
            lambda: trial.per_protocol(
                frame, outcome=key, threshold=int(s["per_protocol_threshold"]), level=level, design=design
            ),
        )
    for sg in s["subgroups"] if key in s["subgroup_outcomes"] else []:
        attempt(
            f"subgroup_cc_{sg}",
            lambda: trial.subgroup_interaction_cc(
                frame, sg, outcome=key, timepoint=s["subgroup_timepoint"], covariates=covs, design=design
            ),
        )
        if key in s["subgroup_mi_outcomes"] and imp is not None:
            attempt(
                f"subgroup_mi_{sg}",
                lambda: trial.subgroup_interactions(
                    frame, sg, imputation=imp, outcome=key, covariates=covs, level=level, df_method=dfm
                ),
            )
    _analyse_extra(frame, key, s, out, attempt, flags, design, sessions)
    if key in s["tipping_outcomes"] and imp is not None:
        sd = float(np.nanstd(frame["baseline"], ddof=1))
        deltas = [round(float(d) * sd, 6) for d in s["delta_grid_sd"]]
        timepoint = s["primary"]["timepoint"]
        attempt(
            "tipping",
            lambda: trial.delta_tipping_point(
                imp,
                deltas=deltas,
                timepoint=timepoint,
                outcome=key,
                covariates=covs,
                higher_is_better=registry[key].higher_is_better,
                level=level,
                df_method=dfm,
            ),
        )
        if "tipping" in out:
            bad = int(out["tipping"].grid["n_not_converged"].sum())
            if bad:
                flags.append(f"{key}: {bad} MMRM refits of the delta grid did not converge")
    return out


def _analyse_extra(
    frame: pd.DataFrame,
    key: str,
    s: dict,
    out: dict,
    attempt,
    flags: list[str],
    design: StudyDesign,
    sessions: bool = True,
) -> None:
    """The rest of the analysis plan for one outcome (diagnostics, within-group change, attendance, CACE); each failure
    is a flag via ``attempt`` and the rest still runs. Failed diagnostic checks are flagged, never dropped.
    ``sessions``: whether sessions attended are recorded (the attendance analyses need them)."""
    level, alpha, covs = 1 - float(s["alpha"]), float(s["alpha"]), list(s["covariates"])
    models = _diagnostic_models(design)
    if key in s["diagnostics_outcomes"]:
        for name, tp in models:
            attempt(
                name,
                (
                    lambda: trial_extra.mmrm_diagnostics(
                        frame,
                        outcome=key,
                        covariates=covs,
                        alpha=alpha,
                        cooks_refit=bool(s["cooks_refit"]),
                        design=design,
                    )
                )
                if tp is None
                else (
                    lambda tp=tp: trial_extra.cc_diagnostics(
                        frame, outcome=key, timepoint=tp, covariates=covs, alpha=alpha, design=design
                    )
                ),
            )
        failed = [f"{out[n].model} {out[n].timepoint}: {f}" for n, _ in models if n in out for f in out[n].failed]
        if failed:
            flags.append(
                f"{key}: diagnostic check(s) failed at alpha = {alpha:g} (results kept, read them with "
                f"this in mind): " + "; ".join(failed)
            )
        big = [f"{out[n].model} {out[n].timepoint}" for n, _ in models if n in out and np.nanmax(out[n].cooks) > 1]
        if big:
            flags.append(f"{key}: a participant has Cook's distance > 1 in {', '.join(big)} (kept in the analysis)")
    if key in s["within_group_outcomes"]:
        attempt(
            "within_group_change",
            lambda: trial_extra.within_group_change(
                frame, outcome=key, covariates=list(s["within_group_covariates"]), level=level, design=design
            ),
        )
        if "within_group_change" in out and not out["within_group_change"]["converged"].all():
            flags.append(
                f"{key}: the within-group change model did not converge ({out['within_group_change']['notes'].iloc[0]})"
            )
    if key in s["attendance_outcomes"] and sessions:
        tp, threshold = s["attendance_timepoint"], int(s["per_protocol_threshold"])
        attempt(
            "attendance",
            lambda: trial_extra.attendance_dose_response(
                frame, outcome=key, threshold=threshold, timepoint=tp, level=level, design=design
            ),
        )
        attempt(
            "cace",
            lambda: trial_extra.cace_iv(
                frame, outcome=key, threshold=threshold, timepoint=tp, covariates=covs, level=level, design=design
            ),
        )
        imr = frame.loc[(frame["arm"] == design.intervention), ["sessions_attended", tp]].dropna()
        if len(imr) and "attendance" in out:
            out["attendance_points"] = imr.to_numpy(dtype=float)  # for the figure only, never tabled


def _analyse_subscales(
    tables,
    s: dict,
    seed: int,
    registry,
    flags: list[str],
    by_instrument: dict | None = None,
    prepared: dict | None = None,
    design: StudyDesign | None = None,
) -> list[dict]:
    """Jensen et al. 2019, Table 4 post hoc subscale ANCOVAs and the IMRS three-factor subscales analysed like the
    totals."""
    design = StudyDesign.from_settings(s) if design is None else design
    level = 1 - float(s["alpha"])
    out = []
    for key in s["subscale_ancova_outcomes"]:
        try:
            frame = trial.outcome_frame(
                tables["participants"],
                _assessments_of(tables, [key], by_instrument),
                key,
                design=design,
                columns=_participant_columns(tables, s),
            )
            out.append(
                {"outcome": key, "ancova": trial_extra.subscale_ancova(frame, outcome=key, level=level, design=design)}
            )
        except AnalysisError as err:
            flags.append(f"{key}: subscale ANCOVA not reported: {err}")
    for key in s["subscale_itt_outcomes"]:
        try:
            out.append(_analyse_outcome(tables, key, s, seed, registry, flags, by_instrument, prepared, design))
        except AnalysisError as err:
            flags.append(f"{key}: subscale not analysed: {err}")
    return out


def _extra_tables(results, sub_results, s, registry, design: StudyDesign) -> dict[str, pd.DataFrame]:
    diag = []
    for r in results:
        for name, _ in _diagnostic_models(design):
            if name in r:
                c = r[name].checks.copy()
                c["rows_above_4_over_n"] = np.where(
                    c["check"] == "cooks_distance", ", ".join(str(i) for i in r[name].cooks_rows), ""
                )
                diag.append(c)
    out = {
        "trial_diagnostics": pd.concat(diag, ignore_index=True) if diag else pd.DataFrame(),
        "trial_within_group_change": _stack(results, "within_group_change"),
        "trial_attendance": _stack(results, "attendance"),
        "trial_cace": _stack(results, "cace"),
    }
    anc = _stack(sub_results, "ancova")
    itt = _stack(sub_results, "itt", lambda r: r.contrasts)
    parts = []
    if not anc.empty:
        parts.append(
            anc.assign(analysis=f"complete-case ANCOVA {anc['timepoint'].iloc[0]} ~ arm + {anc['covariate'].iloc[0]}")
        )
    if not itt.empty:
        parts.append(itt.assign(analysis="ITT MI-MMRM (as the total)"))
    fam = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not fam.empty:
        fam.insert(1, "instrument", fam["outcome"].map(lambda k: registry[k].short))
        fam.insert(2, "subscale_of", fam["outcome"].map(lambda k: registry[k].subscale_of or ""))
        fam["direction"] = fam["outcome"].map(lambda k: registry[k].direction_text)
        fam["p_holm"] = trial.adjust_pvalues(fam["p"], "holm")  # one family: every post hoc subscale test
        fam["p_bh"] = trial.adjust_pvalues(fam["p"], "bh")
    out["trial_subscales"] = fam
    out["trial_subscale_complete_case"] = _stack(sub_results, "complete_case", lambda r: r[1])
    return {k: v for k, v in out.items() if not v.empty}


def _extra_summary(tables, design: StudyDesign) -> list[str]:
    lines = []
    d = tables.get("trial_diagnostics")
    if d is not None:
        tested = d.loc[d["passed"].notna()]
        failed = tested.loc[tested["passed"] == False]  # noqa: E712
        max_cooks = d.loc[d["check"] == "cooks_distance", "statistic"].max()
        lines += [
            "",
            f"Diagnostics: {len(failed)} of {len(tested)} residual checks failed (see warnings); "
            f"Cook's D > 4/n kept in the analysis, max D = {max_cooks:.3f}",
        ]
    w = tables.get("trial_within_group_change")
    if w is not None:
        change = f"{design.visit_label(design.visits[-1])} - {design.visit_label(design.visits[0])}"
        lines += ["", f"Within-group change {change} (post hoc mixed model):"]
        for key, g in w.groupby("outcome", sort=False):
            lines.append(
                f"  {key:<16}"
                + "  ".join(
                    f"{_arm_text(r['arm'], design)} {format_number(r['estimate'])} (p {format_p(r['p'], missing='NA')})"
                    for _, r in g.iterrows()
                )
            )
    sub = tables.get("trial_subscales")
    if sub is not None:
        lines += ["", "Post hoc subscales (own multiplicity family):"]
        for _, r in sub.iterrows():
            lines.append(
                f"  {r['instrument']:<28}{r['timepoint']:<6}{format_number(r['estimate']):>8}  "
                f"p {format_p(r['p'], missing='NA')}  "
                f"p_holm {format_p(r['p_holm'], missing='NA')}"
            )
    c = tables.get("trial_cace")
    if c is not None:
        lines += ["", "CACE of attending more sessions than the threshold (2SLS; rests on the exclusion restriction):"]
        for _, r in c.loc[c["quantity"].str.startswith("CACE")].iterrows():
            lines.append(
                f"  {r['outcome']:<16}{format_number(r['estimate']):>8}  "
                f"{format_ci(r['ci_low'], r['ci_high'])}  "
                f"p {format_p(r['p'], missing='NA')}  (compliance in {design.arm_label(design.intervention)} "
                f"{r[f'compliance_{design.arm_key(design.intervention)}']:.2f})"
            )
    return lines


def _arm_text(arm: str, design: StudyDesign) -> str:
    """An ``arm`` column's value as printed: an arm's label, or the contrast label for the difference row."""
    if arm == f"{design.intervention} - {design.control}":
        return design.contrast_label
    return design.arm_label(arm)


# --------------------------------------------------------------------------------------------------
# Estimands
# --------------------------------------------------------------------------------------------------


def _prepare_estimands(tables, s: dict, design: StudyDesign, by_instrument: dict | None, flags: list[str]) -> list:
    """Each (estimand of ``trial.sensitivity_estimands``, outcome) to run, with the outcome's trial frame and the
    estimand's ICE table (and delta table) read ahead of the stage's long work, so that a bad ICE or delta file
    stops the run at once (an `InputError` naming file, row, column, value and rule). An outcome whose frame cannot
    be built, or whose ICE rule cannot be applied (e.g. no attendance recorded), is a flag."""
    specs = trial_estimands.resolve_estimands(s)
    work, frames = [], {}
    for name in s["sensitivity_estimands"]:
        spec = specs[name]
        for key in trial_estimands.estimand_outcomes(spec, s):
            try:
                if key not in frames:
                    frames[key] = _outcome_frame(tables, key, s, by_instrument, design)
                ice = trial_estimands.derive_ice(frames[key], design, spec)
                delta = trial_estimands.estimand_delta(spec, frames[key], design)
            except AnalysisError as err:
                flags.append(f"{key}: estimand {name} not reported: {err}")
                continue
            work.append({"spec": spec, "outcome": key, "frame": frames[key], "ice": ice, "delta": delta})
    return work


def _run_estimands(work: list, s: dict, design: StudyDesign, seed: int, registry, flags: list[str]) -> list:
    """The estimands prepared by `_prepare_estimands`, one at a time; a failure (an imputation model or a
    leave-one-out refit that does not converge, a degenerate design) is a flag and the others still run. A
    sampler that did not converge (method bayes) is flagged beside its numbers."""
    out = []
    for item in work:
        spec, key = item["spec"], item["outcome"]
        try:
            result = trial_estimands.run_estimand(
                item["frame"],
                design,
                spec,
                key,
                instrument=registry[key],
                primary_visit=s["primary"]["timepoint"],
                covariates=list(s["covariates"]),
                level=1 - float(s["alpha"]),
                seed=derive_seed(seed, f"trial.estimand.{spec.name}.{key}"),
                m=int(s["imputations_bayes"]),
                ice=item["ice"],
                delta=item["delta"],
            )
        except (AnalysisError, np.linalg.LinAlgError) as err:  # a singular fit is a failure too, never a crash
            flags.append(f"{key}: estimand {spec.name} not reported: {err}")
            continue
        flags.extend(f"{key}: {f}" for f in result.flags)
        out.append(result)
    return out


def _estimand_figures(estimand_results: list, figures: dict, flags: list[str]) -> None:
    """The heat map of each estimand's two-dimensional tipping point (`imrstats.trial.figures.tipping_2d_figure`),
    as ``trial_estimand_tipping_<estimand>_<outcome>``; a figure that cannot be drawn is a flag."""
    from imrstats.trial.figures import tipping_2d_figure

    for result in estimand_results:
        if result.tipping is None:
            continue
        name = re.sub(r"[^0-9A-Za-z_]+", "_", f"trial_estimand_tipping_{result.name}_{result.outcome}")
        try:
            figures[name] = tipping_2d_figure(result.tipping, label=result.instrument)
        except Exception as err:  # a figure must never sink the numbers
            flags.append(f"a figure could not be drawn: {err}")


def _primary_means_lines(tables, s: dict, design: StudyDesign) -> list[str]:
    """The primary outcome's ITT (MAR) adjusted means per arm and visit, for the summary."""
    means = tables.get("trial_itt_adjusted_means")
    if means is None:
        return []
    mine = means.loc[means["outcome"] == s["primary"]["outcome"]]
    if mine.empty:
        return []
    level = f"{1 - float(s['alpha']):.0%}"
    lines = ["", f"ITT adjusted means ({s['primary']['outcome']}, MAR; SE, {level} CI):"]
    for visit in design.visits:
        parts = []
        for arm in design.arms:
            r = mine.loc[(mine["timepoint"] == visit) & (mine["arm"] == arm)]
            if len(r):
                r = r.iloc[0]
                parts.append(
                    f"{design.arm_label(arm)} {format_number(r['estimate'])} (SE {format_number(r['se'])}, "
                    f"{format_ci(r['ci_low'], r['ci_high'])})"
                )
        lines.append(f"  {design.visit_label(visit):<10}" + "  ".join(parts))
    return lines


def _estimand_lines(estimand_results: list, design: StudyDesign) -> list[str]:
    lines = []
    for result in estimand_results:
        lines += ["", *trial_estimands.estimand_text(result, design)]
    return lines


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------


def _stack(results: list[dict], name: str, pick=lambda v: v) -> pd.DataFrame:
    frames = [pick(r[name]) for r in results if name in r]
    frames = [f for f in frames if f is not None and len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _itt_table(results, s, registry, design: StudyDesign) -> pd.DataFrame:
    itt = _stack(results, "itt", lambda r: r.contrasts)
    if itt.empty:
        return itt
    itt.insert(1, "instrument", itt["outcome"].map(lambda k: registry[k].short))
    itt["direction"] = itt["outcome"].map(lambda k: registry[k].direction_text)
    primary = s["primary"]
    itt["role"] = np.where(
        (itt["outcome"] == primary["outcome"]) & (itt["timepoint"] == primary["timepoint"]), "primary", "secondary"
    )
    itt["p_holm"] = np.nan
    itt["p_bh"] = np.nan
    for tp in design.visits:  # one family per timepoint: the secondary outcomes
        sec = (itt["timepoint"] == tp) & (itt["outcome"] != primary["outcome"])
        itt.loc[sec, "p_holm"] = trial.adjust_pvalues(itt.loc[sec, "p"], "holm")
        itt.loc[sec, "p_bh"] = trial.adjust_pvalues(itt.loc[sec, "p"], "bh")
    return itt


def _table3(results, registry, design: StudyDesign) -> pd.DataFrame:
    """Jensen et al. 2019, Table 3: ITT adjusted means (SE) per visit and p, complete-case n / mean / SD per arm."""
    rows = []
    for r in results:
        row = {"outcome": r["outcome"], "instrument": registry[r["outcome"]].short}
        if "itt" in r:
            means = r["itt"].adjusted_means
            for tp in design.visits:
                for arm in design.arms:
                    m = means.loc[(means["timepoint"] == tp) & (means["arm"] == arm)].iloc[0]
                    a = design.arm_key(arm)
                    row[f"itt_{tp}_mean_{a}"], row[f"itt_{tp}_se_{a}"] = m["estimate"], m["se"]
                c = r["itt"].contrasts.set_index("timepoint").loc[tp]
                row[f"itt_{tp}_diff"], row[f"itt_{tp}_p"] = c["estimate"], c["p"]
        if "complete_case" in r:
            desc, ancova = r["complete_case"]
            for tp in design.visits:
                for arm in design.arms:
                    d = desc.loc[(desc["timepoint"] == tp) & (desc["arm"] == arm)].iloc[0]
                    for stat in ("n", "mean", "sd"):
                        row[f"cc_{tp}_{stat}_{design.arm_key(arm)}"] = d[stat]
                row[f"cc_{tp}_p"] = ancova.set_index("timepoint").loc[tp, "p"]
        rows.append(row)
    return pd.DataFrame(rows)


def _subgroup_tables(results) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    desc, tests, mi = [], [], []
    for r in results:
        for name, value in r.items():
            if name.startswith("subgroup_cc_"):
                desc.append(value[0])
                tests.append(value[1])
            elif name.startswith("subgroup_mi_"):
                mi.append(value)
    cat = lambda fs: pd.concat(fs, ignore_index=True) if fs else pd.DataFrame()  # noqa: E731
    return cat(desc), pd.DataFrame(tests), cat(mi)


def _build_tables(results, s, registry, design: StudyDesign) -> dict[str, pd.DataFrame]:
    tables = {
        "trial_itt_contrasts": _itt_table(results, s, registry, design),
        "trial_itt_adjusted_means": _stack(results, "itt", lambda r: r.adjusted_means),
        "trial_likelihood_mmrm": pd.concat(
            [
                r["likelihood"].contrasts.assign(
                    outcome=r["outcome"],
                    converged=r["likelihood"].converged,
                    n_analysed=r["likelihood"].n_participants,
                    **r["likelihood_n"],
                )
                for r in results
                if "likelihood" in r
            ]
            or [pd.DataFrame()],
            ignore_index=True,
        ),
        "trial_random_intercept_lmm": _stack(
            results,
            "random_intercept",
            lambda r: r.contrasts.assign(
                random_intercept_variance=r.random_intercept_variance, residual_variance=r.residual_variance
            ),
        ),
        "trial_descriptives": _stack(results, "complete_case", lambda r: r[0]),
        "trial_complete_case": _stack(results, "complete_case", lambda r: r[1]),
        "trial_table3": _table3(results, registry, design),
        "trial_per_protocol": _stack(results, "per_protocol", lambda r: r[0]),
        "trial_per_protocol_sessions": _stack(results, "per_protocol", lambda r: r[1]),
    }
    desc, tests, mi = _subgroup_tables(results)
    tables.update(
        trial_subgroup_descriptives=desc, trial_subgroup_interaction_cc=tests, trial_subgroup_interaction_mi=mi
    )
    tables["trial_tipping_grid"] = _stack(
        results, "tipping", lambda r: r.grid.assign(outcome=r.outcome, timepoint=r.timepoint)
    )
    tables["trial_tipping_points"] = _stack(results, "tipping", lambda r: r.points)
    return {k: v for k, v in tables.items() if not v.empty}


# --------------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------------


def _population_lines(results) -> list[str]:
    """Who the ITT numbers describe, per outcome (one line when every outcome has the same population):
    analysed of randomised per arm, excluded for a missing covariate, imputed covariates."""
    texts = {r["outcome"]: r["itt"].population_text() for r in results if "itt" in r}
    if not texts:
        return []
    if len(set(texts.values())) == 1:
        return ["", f"ITT analysed (every outcome): {next(iter(texts.values()))}"]
    return ["", "ITT analysed:"] + [f"  {key:<16}{text}" for key, text in texts.items()]


def _summary(tables, results, s, flags, seed, design: StudyDesign, estimand_results=()) -> str:
    lines = [
        f"Trial stage: ITT MMRM with multiple imputation (m = {s['imputations']}, {s['imputation_method']}, "
        f"{'within arm' if s['impute_by_arm'] else 'arm as predictor'}), seed {seed}",
        f"{design.contrast_label} on each instrument's own scale; pooled by Rubin's rules, Barnard-Rubin df.",
        "",
    ]
    width = max(6, *(len(design.visit_label(v)) + 1 for v in design.visits))
    itt = tables.get("trial_itt_contrasts")
    if itt is not None:
        lines.append(
            f"{'outcome':<16}{'visit':<{width}}{'diff':>8}  {'95% CI':<18}{'df':>6}{'p':>8}{'fmi':>6}{'p_holm':>8}"
        )
        for _, r in itt.iterrows():
            ci = format_ci(r["ci_low"], r["ci_high"])
            tag = " *primary" if r["role"] == "primary" else ""
            lines.append(
                f"{r['instrument']:<16}{design.visit_label(r['timepoint']):<{width}}{format_number(r['estimate']):>8}  "
                f"{ci:<18}"
                f"{format_number(r['df'], 0):>6}{format_p(r['p'], missing='NA'):>8}"
                f"{format_number(r['fmi']):>6}{format_p(r['p_holm'], missing='NA'):>8}{tag}"
            )
    lines += _primary_means_lines(tables, s, design)
    lines += _population_lines(results)
    for r in results:
        if "tipping" in r:
            lines.append("")
            lines.append(f"MNAR tipping point ({r['outcome']} at {design.visit_label(r['tipping'].timepoint)}):")
            lines += [f"  {p}" for p in r["tipping"].points["statement"]]
    cc = tables.get("trial_subgroup_interaction_cc")
    if cc is not None:
        lines.append("")
        lines.append(
            "Subgroup interactions (complete case, F test): "
            + "; ".join(f"{t['outcome']} x {t['subgroup']} p = {t['p']:.3f}" for _, t in cc.iterrows())
        )
    lines += _extra_summary(tables, design)
    lines += _estimand_lines(list(estimand_results), design)
    if flags:
        lines.append("")
        lines += [f"WARNING: {f}" for f in flags]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


def _record(results, s, seed, tables, sub_results=(), design: StudyDesign | None = None, estimand_results=()) -> dict:
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
    for name in (
        "trial_complete_case",
        "trial_descriptives",
        "trial_per_protocol",
        "trial_subgroup_interaction_cc",
        "trial_subgroup_interaction_mi",
        "trial_within_group_change",
        "trial_subscales",
        "trial_subscale_complete_case",
        "trial_attendance",
        "trial_cace",
    ):
        if name in tables:
            rec[name.removeprefix("trial_")] = tables[name].to_dict("records")
    models = _diagnostic_models(StudyDesign.from_settings(s) if design is None else design)
    rec["diagnostics"] = [r[n].to_dict() for r in results for n, _ in models if n in r]
    rec["subscale_outcomes"] = {r["outcome"]: r["itt"].to_dict() for r in sub_results if "itt" in r}
    if estimand_results:
        rec["estimands"] = [r.to_dict() for r in estimand_results]
    return rec


def run_trial_stage(
    tables: dict[str, pd.DataFrame], settings: dict | None = None, *, seed: int | None = None
) -> StageResult:
    """Run every configured outcome; see the module docstring. ``settings`` is the config's ``trial`` section
    (only the keys that differ from the defaults are needed). ``seed`` (the pipeline passes the config's
    `stage_seed("trial")`, which is also the default) seeds each outcome's imputation through
    `derive_seed(seed, "trial.impute.<outcome>")`."""
    s = section_settings("trial", settings)
    design = StudyDesign.from_settings(s)
    s = design.resolve_settings(s)  # visit settings left null: the last visit
    seed = stage_seed("trial") if seed is None else int(seed)
    for name in ("participants", "assessments"):
        if name not in tables:
            raise AnalysisError(f"the trial stage needs the cleaned '{name}' table; tables given: {sorted(tables)}")
    registry = trial_instruments(s)  # every listed outcome is a registry key or in trial.instruments (checked)
    flags: list[str] = []
    if "sessions_attended" not in tables["participants"].columns and (
        s["per_protocol_outcomes"] or s["attendance_outcomes"]
    ):
        flags.append(
            "the participants table has no sessions_attended column: the per-protocol, attendance and CACE "
            "analyses are not run"
        )
    results = []
    bar = progress(s["outcomes"], desc=f"trial: outcomes (m = {s['imputations']} imputations each)", unit="outcome")
    by_instrument = _instrument_rows(tables["assessments"]) if "instrument" in tables["assessments"] else None
    estimand_work = _prepare_estimands(tables, s, design, by_instrument, flags)
    prepared = _prepare_outcomes(
        tables, list(s["outcomes"]) + list(s["subscale_itt_outcomes"]), s, seed, by_instrument, design
    )
    for key in bar:
        try:
            results.append(_analyse_outcome(tables, key, s, seed, registry, flags, by_instrument, prepared, design))
        except AnalysisError as err:
            flags.append(f"{key}: not analysed: {err}")
    sub_results = _analyse_subscales(tables, s, seed, registry, flags, by_instrument, prepared, design)
    out_tables = _build_tables(results, s, registry, design)
    out_tables.update(_extra_tables(results, sub_results, s, registry, design))
    figures = {}
    try:
        diagnostic_keys = tuple(n for n, _ in _diagnostic_models(design))
        trial_figures(results, out_tables, s, registry, diagnostic_keys, into=figures, design=design)
    except Exception as err:  # a figure must never sink the numbers
        flags.append(f"a figure could not be drawn: {err}")
    estimand_results = _run_estimands(estimand_work, s, design, seed, registry, flags)
    out_tables.update(trial_estimands.estimand_tables(estimand_results, design))
    _estimand_figures(estimand_results, figures, flags)
    return StageResult(
        stage="trial",
        tables=out_tables,
        figures=figures,
        record=_record(results, s, seed, out_tables, sub_results, design, estimand_results),
        summary=_summary(out_tables, results, s, flags, seed, design, estimand_results),
        flags=flags,
    )


def run_trial_outcome(
    tables: dict[str, pd.DataFrame],
    outcome: str,
    settings: dict | None = None,
    *,
    seed: int | None = None,
    imputations: int | None = None,
    df_method: str | None = None,
) -> StageResult:
    """One outcome for ``imrstats trial --outcome KEY``: ITT MI-MMRM, likelihood MMRM, complete case, per
    protocol, complete-case subgroup tests, the tipping point at the primary timepoint, and the secondary
    analyses of that outcome (diagnostics, within-group change, attendance and CACE; no subscale family), and the
    random-intercept secondary model unless the settings turn it off (``random_intercept_outcomes: []``)."""
    s = dict(settings or {})
    s.update(
        outcomes=[outcome],
        primary={**(s.get("primary") or {}), "outcome": outcome},
        per_protocol_outcomes=[outcome],
        subgroup_outcomes=[outcome],
        subgroup_mi_outcomes=[],
        tipping_outcomes=[outcome],
        diagnostics_outcomes=[outcome],
        within_group_outcomes=[outcome],
        attendance_outcomes=[outcome],
        subscale_ancova_outcomes=[],
        subscale_itt_outcomes=[],
        random_intercept_outcomes=[outcome] if s.get("random_intercept_outcomes", True) else [],
    )
    if s.get("estimands"):  # the estimands on this outcome only (it is the primary one now)
        s["estimands"] = {
            name: {**e, "outcomes": [o for o in (e or {}).get("outcomes") or [] if o == outcome]}
            if isinstance(e, dict)
            else e
            for name, e in s["estimands"].items()
        }
    if imputations is not None:
        s["imputations"] = int(imputations)
    if df_method is not None:
        s["df_method"] = df_method
    return run_trial_stage(tables, s, seed=seed)


def _estimand_inputs(tables, name: str, settings: dict | None, outcome: str | None):
    """(settings, design, estimand spec, outcome key, registry, trial frame) of estimand ``name`` on ``outcome``."""
    s = section_settings("trial", settings)
    design = StudyDesign.from_settings(s)
    s = design.resolve_settings(s)
    specs = trial_estimands.resolve_estimands(s)
    if name not in specs:
        raise SettingsError(
            [(f"trial.estimands.{name}", f"not defined; the estimands defined: {', '.join(sorted(specs)) or 'none'}")]
        )
    for table in ("participants", "assessments"):
        if table not in tables:
            raise AnalysisError(f"an estimand needs the cleaned '{table}' table; tables given: {sorted(tables)}")
    key = outcome or s["primary"]["outcome"]
    registry = trial_instruments(s)
    if key not in registry:
        raise SettingsError([("outcome", f"{key!r} is not in the instrument registry or trial.instruments")])
    by_instrument = _instrument_rows(tables["assessments"]) if "instrument" in tables["assessments"] else None
    frame = _outcome_frame(tables, key, s, by_instrument, design)
    return s, design, specs[name], key, registry, frame


def estimand_delta_template(
    tables: dict[str, pd.DataFrame], name: str, settings: dict | None = None, *, outcome: str | None = None
) -> pd.DataFrame:
    """The delta table of estimand ``name`` on ``outcome`` (default the primary outcome) for a user to fill in
    (`reference_mi.delta_template`: one row per participant and visit, with the ICE, strategy and whether the value
    is missing; delta 0), for ``imrstats trial --estimand NAME --delta-template PATH``; then name the filled-in
    file in the estimand's ``delta_file``. It lists participants by id: a file for the user, never a report."""
    from imrstats.trial.reference_mi import delta_template

    s, design, spec, key, registry, frame = _estimand_inputs(tables, name, settings, outcome)
    ice = trial_estimands.derive_ice(frame, design, spec)
    return delta_template(frame, ice.table, design)


def run_trial_estimand(
    tables: dict[str, pd.DataFrame],
    name: str,
    settings: dict | None = None,
    *,
    outcome: str | None = None,
    seed: int | None = None,
) -> StageResult:
    """Estimand ``name`` of ``trial.estimands`` alone (``imrstats trial --estimand NAME``), on ``outcome`` (default
    the primary outcome): its ICE table, the reference-based analysis, the tables ``trial_estimands`` and
    ``trial_estimand_results``, and a summary naming the five attributes, the ICEs per arm and strategy, then per
    visit the contrast and each arm's LS mean with SE, CI and p. An analysis that cannot give a number raises
    `AnalysisError`; a name not defined raises `SettingsError`."""
    seed = stage_seed("trial") if seed is None else int(seed)
    s, design, spec, key, registry, frame = _estimand_inputs(tables, name, settings, outcome)
    result = trial_estimands.run_estimand(
        frame,
        design,
        spec,
        key,
        instrument=registry[key],
        primary_visit=s["primary"]["timepoint"],
        covariates=list(s["covariates"]),
        level=1 - float(s["alpha"]),
        seed=derive_seed(seed, f"trial.estimand.{name}.{key}"),
        m=int(s["imputations_bayes"]),
    )
    out_tables = trial_estimands.estimand_tables([result], design)
    flags = [f"{key}: {f}" for f in result.flags]
    return StageResult(
        stage="trial",
        tables=out_tables,
        figures={},
        record={
            "settings": s,
            "seed": seed,
            "estimand": result.to_dict(),
            "results": out_tables["trial_estimand_results"].to_dict("records"),
        },
        summary="\n".join(trial_estimands.estimand_text(result, design)),
        flags=flags,
    )
