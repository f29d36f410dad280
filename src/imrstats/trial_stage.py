"""The trial stage: every outcome of the instrument registry's trial list analysed as seed 003 planned
(ITT MI-MMRM, complete case, per protocol, subgroups), plus the MNAR tipping point and multiplicity.

`run_trial_stage` returns a `StageResult` (tables, figures, record, summary, HTML, flags); a failure in
one outcome or one sub-analysis becomes a flag and the rest of the stage still runs. `run_trial_outcome`
is the single-outcome version for ``imrstats trial --outcome KEY``. Statistics live in `imrstats.trial`.
"""

from __future__ import annotations

import copy
import html
import math

import numpy as np
import pandas as pd

from imrstats import trial
from imrstats.errors import AnalysisError
from imrstats.instruments import TRIAL_OUTCOMES, load_registry
from imrstats.simulate import derive_seed
from imrstats.stage import StageResult, figure_html, table_html

DEFAULT_SEED = 20190065
TABLE4_OUTCOMES = ["gaf_f", "psp", "panss_total", "imrs_clinician"]
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
    if out["primary"]["timepoint"] not in trial.TIMEPOINTS or out["subgroup_timepoint"] not in trial.TIMEPOINTS:
        raise AnalysisError(f"primary.timepoint and subgroup_timepoint must be one of {trial.TIMEPOINTS}")
    if out["imputation_method"] not in ("pmm", "norm"):
        raise AnalysisError("imputation_method must be 'pmm' or 'norm'")
    if not 0 < float(out["alpha"]) < 1:
        raise AnalysisError(f"alpha must be in (0, 1), got {out['alpha']!r}")
    if int(out["imputations"]) < 2:
        raise AnalysisError("imputations must be at least 2 (Rubin's rules); the protocol uses 100")
    return out


def _flags_html(flags: list[str]) -> str:
    if not flags:
        return ""
    items = "".join(f"<li>{html.escape(f)}</li>" for f in flags)
    return f"<div class='flag'><b>Warnings ({len(flags)})</b><ul>{items}</ul></div>"


def _p(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


# --------------------------------------------------------------------------------------------------
# One outcome
# --------------------------------------------------------------------------------------------------


def _analyse_outcome(tables, key: str, s: dict, seed: int, registry, flags: list[str]) -> dict:
    """Every analysis of one outcome; each failure is recorded as a flag and the others still run."""
    level = 1 - float(s["alpha"])
    covs = list(s["covariates"])
    out: dict = {"outcome": key}
    frame = trial.outcome_frame(tables["participants"], tables["assessments"], key, auxiliary=s["auxiliary_baselines"])
    out["frame_n"] = len(frame)

    def attempt(name, fn):
        try:
            out[name] = fn()
        except AnalysisError as err:
            flags.append(f"{key}: {name.replace('_', ' ')} not reported: {err}")

    attempt("complete_case", lambda: trial.complete_case(frame, outcome=key, covariates=covs, level=level))
    attempt("likelihood", lambda: trial.likelihood_mmrm(frame, covariates=covs, level=level))
    if "likelihood" in out and not out["likelihood"].converged:
        flags.append(f"{key}: the likelihood MMRM did not converge ({out['likelihood'].notes})")
    attempt("imputation", lambda: trial.impute_outcome(
        frame, covariates=covs, m=int(s["imputations"]), method=s["imputation_method"], maxit=int(s["maxit"]),
        donors=int(s["donors"]), by_arm=bool(s["impute_by_arm"]), seed=derive_seed(seed, f"trial.impute.{key}")))
    imp = out.get("imputation")
    if imp is not None:
        attempt("itt", lambda: trial.itt_mi_mmrm(frame, outcome=key, covariates=covs, imputation=imp, level=level))
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
                frame, sg, imputation=imp, outcome=key, covariates=covs, level=level))
    if key in s["tipping_outcomes"] and imp is not None:
        sd = float(np.nanstd(frame["baseline"], ddof=1))
        deltas = [round(float(d) * sd, 6) for d in s["delta_grid_sd"]]
        timepoint = s["primary"]["timepoint"]
        attempt("tipping", lambda: trial.delta_tipping_point(
            imp, deltas=deltas, timepoint=timepoint, outcome=key, covariates=covs,
            higher_is_better=registry[key].higher_is_better, level=level))
        if "tipping" in out:
            bad = int(out["tipping"].grid["n_not_converged"].sum())
            if bad:
                flags.append(f"{key}: {bad} MMRM refits of the delta grid did not converge")
    return out


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
    if flags:
        lines.append("")
        lines += [f"WARNING: {f}" for f in flags]
    return "\n".join(lines)


def _html(tables, figures, results, s, flags) -> str:
    m = s["imputations"]
    prim = s["primary"]
    parts = ["<h2>Trial: intention-to-treat and sensitivity analyses</h2>", _flags_html(flags),
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
         "REML GLS with unstructured covariance; Satterthwaite df; participants with an observed baseline"),
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


def _record(results, s, seed, tables) -> dict:
    rec = {"settings": s, "seed": seed, "outcomes": {}}
    for r in results:
        o = {}
        if "itt" in r:
            o["itt"] = r["itt"].to_dict()
        if "likelihood" in r:
            o["likelihood_mmrm"] = r["likelihood"].to_dict()["contrasts"]
        if "tipping" in r:
            o["tipping_point"] = r["tipping"].to_dict()
        rec["outcomes"][r["outcome"]] = o
    for name in ("trial_complete_case", "trial_descriptives", "trial_per_protocol", "trial_subgroup_interaction_cc",
                 "trial_subgroup_interaction_mi"):
        if name in tables:
            rec[name.removeprefix("trial_")] = tables[name].to_dict("records")
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
    unknown = [k for k in s["outcomes"] if k not in registry]
    if unknown:
        raise AnalysisError(f"outcome(s) {unknown} are not in the instrument registry")
    flags: list[str] = []
    results = []
    for key in s["outcomes"]:
        try:
            results.append(_analyse_outcome(tables, key, s, seed, registry, flags))
        except AnalysisError as err:
            flags.append(f"{key}: not analysed: {err}")
    out_tables = _build_tables(results, s, registry)
    figures = {}
    try:
        if "trial_itt_contrasts" in out_tables:
            sds = {r["outcome"]: float(np.nanstd(tables_baseline(r), ddof=1)) for r in results if "itt" in r}
            figures["trial_itt_forest"] = _forest_figure(out_tables["trial_itt_contrasts"], sds)
        for r in results:
            if "tipping" in r:
                figures[f"trial_tipping_{r['outcome']}"] = _tipping_figure(r["tipping"], registry[r["outcome"]].short)
    except Exception as err:  # a figure must never sink the numbers
        flags.append(f"a figure could not be drawn: {err}")
    return StageResult(stage="trial", tables=out_tables, figures=figures, record=_record(results, s, seed, out_tables),
                       summary=_summary(out_tables, results, s, flags, seed),
                       html=_html(out_tables, figures, results, s, flags), flags=flags)


def tables_baseline(result: dict) -> np.ndarray:
    """Observed baseline values of one outcome (for the SD that scales the forest plot)."""
    return result["imputation"].frame["baseline"].to_numpy(dtype=float)


def run_trial_outcome(tables: dict[str, pd.DataFrame], outcome: str, settings: dict | None = None, *,
                      seed: int | None = None, imputations: int | None = None) -> StageResult:
    """One outcome for ``imrstats trial --outcome KEY``: ITT MI-MMRM, likelihood MMRM, complete case, per
    protocol, complete-case subgroup tests and the tipping point at the primary timepoint."""
    s = dict(settings or {})
    s.update(outcomes=[outcome], primary={**(s.get("primary") or {}), "outcome": outcome},
             per_protocol_outcomes=[outcome], subgroup_outcomes=[outcome], subgroup_mi_outcomes=[],
             tipping_outcomes=[outcome])
    if imputations is not None:
        s["imputations"] = int(imputations)
    return run_trial_stage(tables, s, seed=seed)
