"""A reviewer's own evidence: one table of effects (``imrstats.meta.inputs.read_effects``) pooled with everything
the meta stage reports for an outcome, as ``imrstats meta FILE`` prints and writes it.

``pool_effects`` fits the random-effects (or equal-effects) model with ``random_effects.rma`` and adds what the
stage's ``pool_outcome`` adds for its main estimator, computed the same way: Cochran's Q, the Q-profile CIs of
tau^2, tau, I^2 and H^2 (Viechtbauer 2007), the prediction interval (Riley et al. 2011), leave-one-out, the
cumulative meta-analysis (by year when the table has one, else in file order) and Egger's regression test
(k >= 3; low power below k = 10, Sterne et al. 2011), Begg and Mazumdar's rank test and Duval and Tweedie's
trim-and-fill (k >= 3; ``imrstats.meta.influence``). The optional parts each add one entry: ``influence_parts``
(--influence: metafor's influence table and the Baujat data), ``meta_regression`` (--mods, --permutations:
``imrstats.meta.moderators``), ``subgroup_analysis`` (--subgroup) and ``selection_analysis`` (--selection:
``imrstats.meta.selection``); several effects per study go to ``pool_multilevel`` instead (--cluster: the
three-level model with CR2 tests, ``imrstats.meta.multilevel``). ``summary_text`` is the printout (labels from the
table's arm labels, never "IMR" unless the table uses the IMR names), ``record`` the --json record, and
``plot_figures`` / ``write_plots`` the figures (``imrstats.meta.figures``) as deterministic PNGs.

Knapp-Hartung applies to random-effects fits of k >= 2 only, as in the stage. The main fit keeps metafor's default
control, as the stage; the meta-regression, subgroup models and the diagnostics' refits are fitted to the optimum
(``OPTIMUM_CONTROL``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from imrstats.errors import AnalysisError, InputError, SettingsError
from imrstats.meta import random_effects
from imrstats.meta.inputs import EffectInputs
from imrstats.results import Estimate, to_frame, to_records

EQUAL = ("EE", "FE")
MEASURE_NAMES = {
    "SMD": "standardized mean difference (Hedges' g)",
    "MD": "mean difference",
    "log RR": "log risk ratio",
    "log OR": "log odds ratio",
    "RD": "risk difference",
    "as reported": "effects as reported",
}
RATIO_NAMES = {"log RR": "risk ratio", "log OR": "odds ratio"}


def pool_effects(inputs: EffectInputs, *, method: str = "REML", knha: bool = True, level: float = 0.95) -> dict:
    """The pooled analysis of ``inputs``: ``fit`` (``MetaResult``), ``prediction``, ``heterogeneity`` (Q; tau^2,
    tau, I^2, H^2 with Q-profile CIs), ``leave_one_out``, ``cumulative`` (``order_name`` says how ordered),
    ``egger`` (k >= 3, with ``low_power``) and ``flags``; as the stage's ``pool_outcome`` computes them for its
    main estimator (``knha`` only for random effects and k >= 2). k = 1: that study's estimate, nothing pooled."""
    k = inputs.k
    use_knha = bool(knha) and method not in EQUAL and k > 1
    fit = random_effects.rma(inputs.yi, inputs.vi, method=method, knha=use_knha, level=level, slab=inputs.labels)
    flags: list[str] = []
    out: dict = {
        "fit": fit,
        "prediction": fit.predict(),
        "flags": flags,
        "order_name": inputs.order_name,
        "knha_requested": bool(knha),
    }
    if k == 1:
        flags.append("k = 1: the result is that study's own estimate; nothing is pooled")
        return out
    het = to_frame(
        [
            Estimate(
                "Q (heterogeneity)",
                fit.q,
                df=float(fit.q_df),
                statistic=fit.q,
                p=fit.q_p,
                method="Cochran's Q, chi-square(k - 1)",
            )
        ]
    )
    if fit.method not in EQUAL:
        het = pd.concat([het, fit.confint()], ignore_index=True)
    out["heterogeneity"] = het
    if fit.knha and fit.s2w < 1 and fit.method not in EQUAL:
        flags.append(
            f"Knapp-Hartung variance factor {fit.s2w:.3f} < 1: the studies agree more closely than their variances "
            "imply, so the Knapp-Hartung interval is narrower than the Wald interval and overstates precision with "
            "so few studies (Jackson et al. 2017, Stat Med 36:3923); read the pooled CI and p with caution"
        )
    out["leave_one_out"] = fit.leave1out()
    out["cumulative"] = fit.cumulative(order=inputs.order)
    if k >= 3:
        try:
            egger = fit.regtest()
            egger["low_power"] = k < 10
        except AnalysisError as error:
            egger = to_frame(
                [
                    Estimate(
                        "funnel asymmetry (slope on SE)",
                        math.nan,
                        method="Egger regression",
                        notes=f"not computed: {error}",
                    )
                ]
            )
        out["egger"] = egger
        small_study_parts(fit, out)
    # Optional parts (imrstats meta --influence, --mods, --subgroup, --selection) are added by the functions
    # below, each one more entry of ``out``; several effects per study go to ``pool_multilevel`` instead.
    return out


# ---------------------------------------------------------------------------------------------
# Small-study effects, influence, moderators, subgroups, several effects per study, selection

SELECTION_ALTERNATIVES = ("greater", "less", "two.sided")
DEFAULT_STEPS = (0.025, 1.0)
EXPLORATORY_K = 10  # fewer studies: the selection model and its sensitivity table are exploratory
# The meta-regression and subgroup models (and their permutation refits) and the diagnostics' refits (influence,
# trim-and-fill) are fitted to the optimum: metafor's default control stops Fisher scoring when tau^2 changes by
# < 1e-5, which leaves a meta-regression's tau^2 about 1e-5 (relative) short of it (dat.bcg, ablat + year:
# 2.4e-5) and a trim-and-fill refit about 1e-6. The main fit keeps metafor's default, as the pipeline's meta stage
# does (within 1e-6 of the optimum for the intercept-only model; printed digits agree).
OPTIMUM_CONTROL = {"threshold": 1e-10, "maxiter": 1000}


def at_optimum(fit: random_effects.MetaResult) -> random_effects.MetaResult:
    """The model of ``fit`` (estimator, Knapp-Hartung, level, labels) refitted with ``OPTIMUM_CONTROL``: the
    model the influence diagnostics and trim-and-fill refit from, so their refits sit at the optimum too."""
    return random_effects.rma(
        fit.yi, fit.vi, method=fit.method, knha=fit.knha, level=fit.level, slab=list(fit.slab), **OPTIMUM_CONTROL
    )


def small_study_parts(fit: random_effects.MetaResult, out: dict) -> None:
    """Begg and Mazumdar's rank test (``influence.ranktest``) and Duval and Tweedie's trim-and-fill
    (``influence.trimfill``: L0, the side chosen from Egger's slope as metafor chooses it) of the fitted model
    (trim-and-fill refits at the optimum, ``at_optimum``), as ``out["ranktest"]`` and ``out["trimfill"]`` (k >= 3);
    a trim-and-fill that cannot run leaves its reason in ``out["trimfill_note"]``."""
    from imrstats.meta.influence import ranktest, trimfill

    out["ranktest"] = ranktest(fit)
    try:
        out["trimfill"] = trimfill(at_optimum(fit))
    except AnalysisError as error:
        out["trimfill_note"] = f"not computed: {error}"


def influence_parts(pooled: dict) -> None:
    """``imrstats meta --influence``: metafor's case-deletion diagnostics (``influence.influence``, with the
    influential flag and the rule that sets it) and the Baujat plot's data (``influence.baujat``) of the main
    model refitted at the optimum (``at_optimum``), as ``pooled["influence"]`` and ``pooled["baujat"]`` (k >= 2;
    otherwise, or when they cannot be computed, the reason in ``pooled["influence_note"]``)."""
    from imrstats.meta.influence import baujat, influence

    fit = pooled["fit"]
    if fit.k < 2:
        pooled["influence_note"] = f"not computed: k = {fit.k} (influence diagnostics need at least 2 studies)"
        return
    try:
        optimum = at_optimum(fit)
        pooled["influence"] = influence(optimum)
        pooled["baujat"] = baujat(optimum)
    except AnalysisError as error:
        pooled["influence_note"] = f"not computed: {error}"


def study_columns(inputs: EffectInputs, frame: pd.DataFrame, columns, *, option: str, path) -> pd.DataFrame:
    """The named columns of the table for the pooled rows (aligned with ``inputs.pooled``). A column whose every
    pooled value is a number (read as ``imrstats check`` reads numbers) is numeric, one with none a label
    column; anything else is an InputError, as is a missing column or a blank value (file, row, column, value,
    rule)."""
    from imrstats.meta.inputs import parse_numbers, row_name

    header = ", ".join(map(str, frame.columns))
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: {option}: no column {missing[0]!r} in the table (its columns: {header}); rule: "
            f"{option} names columns of the table"
        )
    positions = inputs.pooled["row"].to_numpy(int) - 1
    part = frame.iloc[positions][list(columns)].reset_index(drop=True)
    text = part.astype("string").apply(lambda c: c.str.strip())
    numbers, _, unread = parse_numbers(text, columns=list(columns))
    out = {}
    for column in columns:
        blank = text[column].isna() | (text[column] == "")
        if blank.any():
            i = int(blank.to_numpy().argmax())
            r = inputs.pooled.iloc[i]
            raise InputError(
                f"{path}: {row_name(r['study'], int(r['row']))}, column {column}, value '': blank; rule: every "
                f"pooled study needs a value of {option}'s column {column}"
            )
        bad = [i for i, (c, _, _) in unread.items() if c == column]
        if not bad:
            out[column] = numbers[column].astype(float)
        elif len(bad) == len(text):
            out[column] = text[column].astype(str)
        else:
            i = min(bad)
            r = inputs.pooled.iloc[i]
            raise InputError(
                f"{path}: {row_name(r['study'], int(r['row']))}, column {column}, value '{text[column].iloc[i]}': "
                f"not a number while {len(text) - len(bad)} other rows are numbers; rule: a column of {option} is "
                f"all numbers (continuous) or all labels (categorical; factor({column}) for numbered categories)"
            )
    return pd.DataFrame(out)


def meta_regression(
    inputs: EffectInputs,
    frame: pd.DataFrame,
    formula: str,
    *,
    method: str,
    knha: bool,
    level: float,
    permutations: int | None = None,
    seed: int | None = None,
    path="the table",
) -> dict:
    """``imrstats meta --mods "ablat + year"``: the mixed-effects meta-regression (``moderators.rma_mods``: the
    run's estimator and Knapp-Hartung choice; coefficients, QM, residual heterogeneity QE with the Q-profile CI of
    the residual tau^2, pseudo-R^2; fitted to the optimum, ``OPTIMUM_CONTROL``) and, with ``permutations``,
    metafor's permutation test (``permutest``, seeded with ``seed``; exact when there are no more distinct
    permutations than that). Returns {"model", "confint",
    "permutation"?, "formula", "notes"}. A formula naming no column, a blank or mixed column: InputError; a
    formula that cannot be read: SettingsError naming --mods."""
    from imrstats.meta.moderators import parse_formula, permutest, rma_mods

    try:
        terms, _ = parse_formula(formula)
    except SettingsError as error:
        raise SettingsError([("--mods", text) for _, text in error.problems]) from None
    data = study_columns(inputs, frame, [c for c, _ in terms], option="--mods", path=path)
    use_knha = bool(knha) and method not in EQUAL
    model = rma_mods(
        inputs.yi,
        inputs.vi,
        formula,
        data=data,
        method=method,
        knha=use_knha,
        level=level,
        slab=inputs.labels,
        control=OPTIMUM_CONTROL,
    )
    out: dict = {"model": model, "formula": model.formula}
    if method not in EQUAL:
        out["confint"] = model.confint()
    if permutations is not None:
        out["permutation"] = permutest(model, iterations=int(permutations), seed=int(seed))
    return out


def subgroup_analysis(
    inputs: EffectInputs, frame: pd.DataFrame, column: str, *, method: str, knha: bool, level: float, path="the table"
) -> dict:
    """``imrstats meta --subgroup COLUMN``: each subgroup pooled on its own (its own tau^2) and the test for
    subgroup differences both ways (``moderators.subgroups``: RevMan's Q-between of the subgroup estimates, and
    the mixed-effects moderator QM with one common tau^2; fitted to the optimum, ``OPTIMUM_CONTROL``). A column
    with one level among the pooled studies, or a blank value, is an InputError naming it. Returns {"result",
    "column", "groups" (study -> subgroup)}."""
    from imrstats.meta.moderators import subgroups

    groups = study_columns(inputs, frame, [column], option="--subgroup", path=path)[column]
    labels = groups.map(lambda v: f"{v:g}" if isinstance(v, float) else str(v))
    levels = list(dict.fromkeys(labels))
    if len(levels) < 2:
        raise InputError(
            f"{path}: --subgroup {column}: all {len(labels)} pooled studies have the value {levels[0]!r}; rule: a "
            "subgroup column needs at least two levels among the pooled studies"
        )
    use_knha = bool(knha) and method not in EQUAL
    result = subgroups(
        inputs.yi,
        inputs.vi,
        labels,
        method=method,
        knha=use_knha,
        level=level,
        slab=inputs.labels,
        control=OPTIMUM_CONTROL,
    )
    return {"result": result, "column": column, "groups": list(labels)}


def parse_steps(text: str | None) -> tuple[float, ...]:
    """``--steps "0.025,0.1,1"`` -> the p-value cut points of the step-function selection model: numbers in (0, 1],
    strictly increasing; 1 is added when missing. None: (0.025, 1). Anything else is a SettingsError."""
    if text is None:
        return DEFAULT_STEPS
    parts = [p.strip() for p in str(text).split(",")]
    try:
        steps = [float(p) for p in parts]
    except ValueError:
        raise SettingsError(
            [("--steps", f"{text!r}: give one-sided p-value cut points separated by commas, e.g. 0.025,0.1,1")]
        ) from None
    if any(not (0 < s <= 1) or not math.isfinite(s) for s in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
        raise SettingsError(
            [("--steps", f"{text!r}: cut points must lie in (0, 1] and increase strictly, e.g. 0.025,0.1,1")]
        )
    if steps[-1] != 1.0:
        steps.append(1.0)
    if len(steps) < 2:
        raise SettingsError([("--steps", f"{text!r}: give at least one cut point below 1, e.g. 0.025")])
    return tuple(steps)


def selection_analysis(fit: random_effects.MetaResult, *, steps=DEFAULT_STEPS, alternative: str | None = None) -> dict:
    """``imrstats meta --selection``: the step-function selection model (Vevea and Hedges 1995,
    ``selection.selmodel_stepfun``: ML, the weights of the p-value intervals of ``steps`` estimated, the
    likelihood-ratio test against the random-effects model) and the Vevea and Woods (2005) sensitivity table
    (``selection.selmodel_sensitivity``: four a priori weight patterns). ``alternative``: the side of the
    one-sided p-values ("greater", "less", "two.sided"); None: the side of the pooled estimate (selection
    favours results significant in the direction observed). Exploratory with fewer than 10 studies. A model
    that cannot be fitted leaves its reason ("model_note", "sensitivity_note") instead of stopping the run."""
    from imrstats.meta.selection import selmodel_sensitivity, selmodel_stepfun

    chosen = alternative or ("less" if fit.estimate < 0 else "greater")
    how = (
        f"--selection-alternative {chosen}"
        if alternative
        else f"{chosen}: the side of the pooled estimate ({fit.estimate:.4f})"
    )
    out: dict = {
        "alternative": chosen,
        "alternative_source": how,
        "steps": tuple(steps),
        "exploratory": fit.k < EXPLORATORY_K,
    }
    try:
        out["model"] = selmodel_stepfun(fit, steps, alternative=chosen)
    except AnalysisError as error:
        out["model_note"] = f"not computed: {error}"
    try:
        out["sensitivity"] = selmodel_sensitivity(fit.yi, fit.vi, alternative=chosen, level=fit.level)
    except AnalysisError as error:
        out["sensitivity_note"] = f"not computed: {error}"
    return out


def pool_multilevel(
    inputs: EffectInputs,
    frame: pd.DataFrame,
    cluster: str,
    *,
    method: str = "REML",
    level: float = 0.95,
    mods: str | None = None,
    path="the table",
) -> dict:
    """``imrstats meta --cluster COLUMN``: several effects per study (outcomes, raters, timepoints) pooled with
    the three-level model (``multilevel.rma_mv``, effects nested in the studies that COLUMN names; REML or ML) and
    cluster-robust CR2 tests with Satterthwaite df by study (``multilevel.robust_cr2``), the inference reported;
    with ``mods`` a multilevel meta-regression on them. Every pooled row enters; ``note`` names how many studies
    and effects. A column whose every value occurs once (nothing nested), a blank value, or an estimator other
    than REML / ML is an error. Returns {"model", "robust", "note", "cluster", "clusters" (per row), "flags"}."""
    from imrstats.meta.multilevel import multilevel_inputs, robust_cr2

    if method not in ("REML", "ML"):
        raise SettingsError(
            [
                (
                    "--method",
                    f"{method}: the multilevel model (--cluster) estimates its variance components by REML or ML",
                )
            ]
        )
    clusters = study_columns(inputs, frame, [cluster], option="--cluster", path=path)[cluster]
    clusters = clusters.map(lambda v: f"{v:g}" if isinstance(v, float) else str(v))
    if not clusters.duplicated().any():
        raise InputError(
            f"{path}: --cluster {cluster}: every value occurs once ({len(clusters)} rows, {len(clusters)} studies): "
            "nothing is nested; rule: --cluster names the study of rows that share one (pool without --cluster)"
        )
    table = pd.DataFrame({"row": inputs.pooled["row"], "study": clusters, "yi": inputs.yi, "vi": inputs.vi})
    columns: list[str] = []
    if mods is not None:
        from imrstats.meta.moderators import build_design, parse_formula

        try:
            terms, intercept = parse_formula(mods)
        except SettingsError as error:
            raise SettingsError([("--mods", text) for _, text in error.problems]) from None
        if not intercept:
            raise SettingsError(
                [("--mods", f"{mods!r}: the multilevel model (--cluster) always has an intercept; drop '- 1'")]
            )
        data = study_columns(inputs, frame, [c for c, _ in terms], option="--mods", path=path)
        design = build_design(data, mods, labels=inputs.labels)
        columns = list(design.terms[1:])
        for j, name in enumerate(columns, start=1):
            table[name] = design.matrix[:, j]
    entered = multilevel_inputs(table, study="study", mods=columns or None, source=str(path))
    model = entered.fit(method=method, level=level)
    robust = robust_cr2(model)
    flags = [f"multilevel model: {n}" for n in model.notes[1:]] + [f"CR2: {n}" for n in robust.notes]
    return {
        "model": model,
        "robust": robust,
        "note": entered.note,
        "cluster": cluster,
        "clusters": list(clusters),
        "mods": mods,
        "flags": flags,
    }


# ---------------------------------------------------------------------------------------------
# What a positive effect means, in the table's own labels


def effect_description(inputs: EffectInputs) -> str:
    """E.g. "standardized mean difference (Hedges' g), Vaccinated minus Control; positive favours Vaccinated"."""
    a1, a2 = inputs.arms
    measure = inputs.measure
    if measure == "as given":
        names = {"as given (yi, vi)": "yi, vi", "effect + SE": "effect, se", "effect + CI": "effect, CI"}
        given = "; ".join(names.get(c, c) for c in sorted(set(inputs.pooled["conversion"])))
        return f"effects as given ({given}); {inputs.direction}"
    name = MEASURE_NAMES.get(measure, measure)
    between = f"{a1} over {a2}" if measure in RATIO_NAMES else f"{a1} minus {a2}"
    return f"{name}, {between}; {inputs.direction}"


def axis_label(inputs: EffectInputs) -> str:
    """The plots' x-axis: the measure and what a positive value means."""
    name = MEASURE_NAMES.get(inputs.measure, inputs.measure)
    a1, a2 = inputs.arms
    if inputs.direction.startswith("positive favours"):
        return f"{name} (positive favours {a1})"
    return f"{name} ({a1} {'over' if inputs.measure in RATIO_NAMES else 'minus'} {a2})"


# ---------------------------------------------------------------------------------------------
# The printout


def _num(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "NA"
    return f"{x:.{digits}f}"


def _p(p) -> str:
    if p is None or not math.isfinite(p):
        return "NA"
    return "< .0001" if p < 1e-4 else f"{p:.4f}"


def _p_eq(p) -> str:
    text = _p(p)
    return text if text.startswith("<") else f"= {text}"


def _ci(low, high) -> str:
    return f"[{_num(low)}, {_num(high)}]"


def _n(value) -> str:
    return "-" if not math.isfinite(value) else f"{value:g}"


def rows_lines(inputs: EffectInputs, *, path) -> list[str]:
    """The printout's first part: the rows read and chosen, how each pooled effect was made, every row left
    aside with its reason."""
    a1, a2 = inputs.arms
    lines = [
        f"{path}: {len(inputs.rows)} rows read; {inputs.selection}",
        f"Effect size: {effect_description(inputs)}; k = {inputs.k}",
    ]
    if inputs.excluded_summary:
        lines.append("Left aside: " + "; ".join(inputs.excluded_summary))
    lines += ["", f"Studies pooled ({inputs.k}), each with how its effect was made:"]
    width = max(12, *(len(s) for s in inputs.labels))
    how_width = max(10, *(len(str(c)) for c in inputs.pooled["conversion"]))
    lines.append(
        f"  {'row':>4}  {'study':<{width}}  {'how':<{how_width}}  {'effect':>8}  {'SE':>7}  "
        f"{'n ' + a1 + ' / ' + a2:>14}  assumption"
    )
    for r in inputs.pooled.itertuples():
        lines.append(
            f"  {r.row:>4}  {r.label:<{width}}  {r.conversion:<{how_width}}  {_num(r.yi):>8}  {_num(r.sei):>7}  "
            f"{_n(r.n1) + ' / ' + _n(r.n2):>14}  {r.assumption or '-'}"
        )
    left = inputs.rows.loc[~inputs.rows["included"] & (inputs.rows["reason"] != "another outcome")]
    if len(left):
        lines += ["", f"Rows not pooled ({len(left)}), each with its reason:"]
        for r in left.itertuples():
            where = ", ".join(x for x in (r.instrument, r.timepoint, r.analysis) if x)
            lines.append(f"  row {r.row} {r.study}{' (' + where + ')' if where else ''}: {r.reason}")
    if inputs.skipped:
        lines.append(f"  ({len(inputs.skipped)} of them left out by --skip-bad-rows: 'cannot be used')")
    return lines


def summary_text(inputs: EffectInputs, pooled: dict, *, path, knha_source: str) -> str:
    """The human summary ``imrstats meta`` prints: the rows read and chosen, how each effect was made, the
    model, heterogeneity with Q-profile CIs, leave-one-out, cumulative, Egger, the rank test and trim-and-fill,
    the optional parts (influence, meta-regression, subgroups, selection model) and the flags; with several
    effects per study (``pool_multilevel``) the multilevel model instead."""
    if "multilevel" in pooled:
        return multilevel_text(inputs, pooled, path=path)
    fit = pooled["fit"]
    a1, a2 = inputs.arms
    lines = rows_lines(inputs, path=path)
    kh = f"Knapp-Hartung: {'on' if fit.knha else 'off'} ({knha_source}"
    if pooled.get("knha_requested") and not fit.knha:
        kh += " asks for it; it applies to random-effects fits of k >= 2 only"
    lines += ["", kh + ")", "", fit.summary()]
    ratio = RATIO_NAMES.get(inputs.measure)
    if ratio:
        pred = pooled["prediction"].extra
        what = f"Pooled {ratio} ({a1} / {a2}; exp of the pooled log {ratio})" if fit.k > 1 else f"The study's {ratio}"
        line = f"{what}: {math.exp(fit.estimate):.4f} "
        line += f"[{math.exp(fit.ci_low):.4f}, {math.exp(fit.ci_high):.4f}]"
        if fit.k > 1 and fit.method not in EQUAL:
            line += f"; prediction interval [{math.exp(pred['pi_low']):.4f}, {math.exp(pred['pi_high']):.4f}]"
        lines += ["", line]
    if "heterogeneity" in pooled:
        level = f"{100 * fit.level:g}%"
        het = pooled["heterogeneity"]
        lines += ["", f"Heterogeneity ({level} Q-profile CIs, Viechtbauer 2007):"]
        for r in het.itertuples():
            if r.quantity.startswith("Q"):
                lines.append(f"  Q(df = {r.df:g}) = {_num(r.estimate)}, p {_p_eq(r.p)} (Cochran's Q)")
            else:
                lines.append(f"  {r.quantity:<8} {_num(r.estimate):>8}  [{_num(r.ci_low)}, {_num(r.ci_high)}]")
        notes = [n for n in het.get("notes", pd.Series(dtype=str)).dropna().unique() if n]
        lines += [f"  ({n})" for n in notes]
    if "leave_one_out" in pooled:
        lines += ["", f"Leave-one-out ({fit.method_label}):"]
        loo = pooled["leave_one_out"]
        width = max(12, *(len(str(s)) for s in loo["omitted"]))
        lines.append(f"  {'omitted':<{width}}  {'estimate':>8}  {'CI':<20}  {'p':>7}  {'tau^2':>7}  {'I^2 (%)':>7}")
        for r in loo.itertuples():
            lines.append(
                f"  {r.omitted:<{width}}  {_num(r.estimate):>8}  {_ci(r.ci_low, r.ci_high):<20}"
                f"  {_p(r.p):>7}  {_num(r.tau2):>7}  {_num(r.i2, 1):>7}"
            )
    if "cumulative" in pooled:
        lines += ["", f"Cumulative meta-analysis, studies added {pooled['order_name']}:"]
        cum = pooled["cumulative"]
        width = max(12, *(len(str(s)) for s in cum["added"]))
        lines.append(f"  {'+ study':<{width + 2}}  {'k':>3}  {'estimate':>8}  {'CI':<20}  {'p':>7}")
        for r in cum.itertuples():
            lines.append(
                f"  + {r.added:<{width}}  {int(r.k):>3}  {_num(r.estimate):>8}  "
                f"{_ci(r.ci_low, r.ci_high):<20}  {_p(r.p):>7}"
            )
    if "egger" in pooled:
        egger = pooled["egger"]
        lines += ["", "Egger's regression test for funnel-plot asymmetry (the SE as predictor, same model):"]
        for r in egger.itertuples():
            stat = "t" if fit.knha else "z"
            if not math.isfinite(r.estimate):
                lines.append(f"  {r.quantity}: {r.notes}")
                continue
            lines.append(
                f"  {r.quantity:<32} {_num(r.estimate):>8}  SE {_num(r.se)}  {stat} = {_num(r.statistic, 3)}, "
                f"p {_p_eq(r.p)}"
            )
        if fit.k < 10:
            lines.append(f"  k = {fit.k} < 10: Egger's test has low power (Sterne et al. 2011); read it with caution")
    elif fit.k > 1:
        lines += ["", f"Egger's test: not computed (k = {fit.k}; it needs k >= 3)"]
    lines += small_study_lines(inputs, pooled)
    lines += influence_lines(pooled)
    if "meta_regression" in pooled:
        lines += meta_regression_lines(pooled["meta_regression"])
    if "subgroups" in pooled:
        lines += ["", f"Subgroups by column {pooled['subgroups']['column']}:", pooled["subgroups"]["result"].summary()]
    if "selection" in pooled:
        lines += selection_lines(pooled["selection"], fit.k)
    lines += [""] + [f"FLAG: {flag}" for flag in pooled["flags"]]
    return "\n".join(lines).rstrip()


def _ratio_text(inputs: EffectInputs, estimate: float, low: float, high: float) -> str:
    """'; risk ratio 0.52 [0.33, 0.77]' for a ratio measure, else ''."""
    ratio = RATIO_NAMES.get(inputs.measure)
    if not ratio or not all(math.isfinite(x) for x in (estimate, low, high)):
        return ""
    return f"; {ratio} {math.exp(estimate):.4f} [{math.exp(low):.4f}, {math.exp(high):.4f}]"


def small_study_lines(inputs: EffectInputs, pooled: dict) -> list[str]:
    """The rank test and trim-and-fill (k >= 3)."""
    lines: list[str] = []
    if "ranktest" in pooled:
        r = pooled["ranktest"].iloc[0]
        lines += [
            "",
            "Begg and Mazumdar's rank correlation test (Kendall's tau between standardized effects and variances):",
            f"  tau = {_num(r['estimate'])}, p {_p_eq(r['p'])} ({str(r['method']).split('; ', 1)[-1]})",
        ]
        if r["notes"]:
            lines.append(f"  ({r['notes']})")
    if "trimfill" in pooled:
        tf = pooled["trimfill"]
        side = "right" if tf.side == "right" else "left"
        lines += [
            "",
            f"Trim and fill (Duval and Tweedie 2000; estimator {tf.estimator}; studies sought missing on the {side} "
            "side, chosen from the sign of Egger's slope as metafor chooses it):",
            f"  k0 = {tf.k0} (SE {_num(tf.se_k0)}) studies estimated missing",
        ]
        for what, f in (("with the filled-in studies", tf.fit), ("observed studies only", tf.original)):
            lines.append(
                f"  pooled effect, {what} (k = {f.k}): {_num(f.estimate)} {_ci(f.ci_low, f.ci_high)}, p {_p_eq(f.p)}"
                + _ratio_text(inputs, f.estimate, f.ci_low, f.ci_high)
            )
        lines.append(
            "  (a sensitivity analysis: it assumes the funnel's asymmetry is publication bias; not a corrected "
            "estimate)"
        )
    elif "trimfill_note" in pooled:
        lines += ["", f"Trim and fill: {pooled['trimfill_note']}"]
    return lines


def influence_lines(pooled: dict) -> list[str]:
    """The influence table (--influence), metafor's columns, * marking an influential study."""
    if "influence_note" in pooled:
        return ["", f"Influence diagnostics: {pooled['influence_note']}"]
    if "influence" not in pooled:
        return []
    from imrstats.meta.influence import INFLUENCE_RULE

    table = pooled["influence"]
    width = max(12, *(len(str(s)) for s in table["slab"]))
    names = ("rstudent", "dffits", "cook.d", "cov.r", "tau2.del", "QE.del", "hat", "weight", "dfbetas")
    lines = [
        "",
        "Influence diagnostics (metafor influence.rma.uni; Viechtbauer and Cheung 2010); * = influential:",
        f"  {'study':<{width}}" + "".join(f"{n:>10}" for n in names) + "  inf",
    ]
    for r in table.itertuples():
        values = (r.rstudent, r.dffits, r.cook_d, r.cov_r, r.tau2_del, r.qe_del, r.hat, r.weight, r.dfbetas)
        lines.append(
            f"  {str(r.slab):<{width}}" + "".join(f"{_num(v):>10}" for v in values) + ("    *" if r.influential else "")
        )
        if r.note:
            lines.append(f"    ({r.note})")
    n = int(table["influential"].sum())
    lines.append(f"  {n} of {len(table)} studies influential; rule: {INFLUENCE_RULE}")
    return lines


def meta_regression_lines(part: dict) -> list[str]:
    """The meta-regression (--mods) with the residual tau^2's Q-profile CI and the permutation test."""
    model = part["model"]
    lines = ["", model.summary()]
    if "confint" in part:
        ci = part["confint"].set_index("quantity")
        tau2 = _ci(ci.at["tau^2 (residual)", "ci_low"], ci.at["tau^2 (residual)", "ci_high"])
        i2 = _ci(ci.at["I^2 (%) (residual)", "ci_low"], ci.at["I^2 (%) (residual)", "ci_high"])
        lines.append(
            f"Residual tau^2 {_num(model.tau2)} {tau2}, I^2 {_num(model.i2, 1)}% {i2} (Q-profile CIs, Viechtbauer 2007)"
        )
    if "permutation" in part:
        lines += ["", part["permutation"].summary()]
    return lines


def selection_lines(part: dict, k: int) -> list[str]:
    """The step-function selection model and the Vevea and Woods sensitivity table (--selection)."""
    label = f"EXPLORATORY (k = {k} < {EXPLORATORY_K}): " if part["exploratory"] else ""
    lines = [
        "",
        f"{label}Selection models for publication bias; one-sided p-values {part['alternative_source']}",
    ]
    if "model" in part:
        lines.append(part["model"].summary())
    else:
        lines.append(f"Step-function selection model: {part['model_note']}")
    if "sensitivity" in part:
        sens = part["sensitivity"]
        lines += [
            "",
            f"{label}Vevea and Woods (2005) sensitivity analysis: the pooled effect under a priori selection weights "
            "(illustrations of selection of that shape, not estimates of it):",
        ]
        for r in sens.itertuples():
            lines.append(
                f"  {r.pattern:<22} {_num(r.estimate):>8} {_ci(r.ci_low, r.ci_high):<20} tau^2 {_num(r.tau2)}"
                f"  change {_num(r.change)}"
            )
    else:
        lines.append(f"Vevea and Woods sensitivity analysis: {part['sensitivity_note']}")
    return lines


def multilevel_text(inputs: EffectInputs, pooled: dict, *, path) -> str:
    """The printout with several effects per study (--cluster): the rows, then the multilevel model and its
    CR2 tests, and what is not computed (the parts that assume one effect per study)."""
    part = pooled["multilevel"]
    model, robust = part["model"], part["robust"]
    lines = rows_lines(inputs, path=path)
    lines += [
        "",
        f"Several effects per study (--cluster {part['cluster']}): {part['note']}.",
        "The inference reported is cluster-robust (CR2 by study, Satterthwaite df; Tipton and Pustejovsky 2015): "
        "valid when the working model's assumptions (e.g. independent sampling errors within a study) are wrong. "
        "Knapp-Hartung does not apply.",
        "",
        model.summary(),
        "",
        robust.summary(),
    ]
    est = robust.estimates()[0]
    if len(robust.coef_names) == 1:
        lines += [
            "",
            f"Pooled effect (CR2): {_num(est.estimate)} {_ci(est.ci_low, est.ci_high)}, t({est.df:.2f}), "
            f"p {_p_eq(est.p)}" + _ratio_text(inputs, est.estimate, est.ci_low, est.ci_high),
        ]
    lines += [
        "",
        "Not computed with --cluster (they assume one effect per study): Q-profile CIs, leave-one-out, cumulative "
        "analysis, Egger's and the rank test, trim-and-fill, influence, subgroups, selection models.",
    ]
    lines += [""] + [f"FLAG: {flag}" for flag in pooled["flags"]]
    return "\n".join(lines).rstrip()


# ---------------------------------------------------------------------------------------------
# The --json record and the plots


ROW_FIELDS = [
    "row",
    "study",
    "label",
    "year",
    "instrument",
    "timepoint",
    "analysis",
    "use",
    "shape",
    "conversion",
    "measure",
    "yi",
    "vi",
    "sei",
    "n1",
    "n2",
    "direction",
    "assumption",
    "included",
    "reason",
    "problem",
]


def input_record(inputs: EffectInputs, *, path) -> dict:
    """The --json record's input part: the rows read, chosen and left aside, each row's conversion and
    assumption, the measure, the arm labels and the direction."""
    rows = inputs.rows[[c for c in ROW_FIELDS if c in inputs.rows.columns]]
    return {
        "input": {
            "file": str(path),
            "rows_read": len(inputs.rows),
            "k": inputs.k,
            "selection": inputs.selection,
            "left_aside": list(inputs.excluded_summary),
            "skipped_bad_rows": list(inputs.skipped),
        },
        "effect_size": effect_description(inputs),
        "measure": inputs.measure,
        "arms": list(inputs.arms),
        "direction": inputs.direction,
        "notes": list(inputs.notes),
        "rows": to_records(rows),
    }


def record(inputs: EffectInputs, pooled: dict, *, path, settings: dict) -> dict:
    """The --json record: the input (rows read, chosen, left aside; per row how its effect was made and its
    assumption), the settings, the pooled result and prediction interval, heterogeneity with Q-profile CIs,
    leave-one-out, cumulative, Egger, the rank test, trim-and-fill, the optional parts (influence,
    meta_regression, subgroups, selection) and the flags; with several effects per study (--cluster) the
    multilevel model in ``multilevel`` instead of the one-effect-per-study parts."""
    if "multilevel" in pooled:
        part = pooled["multilevel"]
        return {
            **input_record(inputs, path=path),
            "settings": settings,
            "multilevel": {
                "cluster": part["cluster"],
                "clusters": part["clusters"],
                "mods": part["mods"],
                "note": part["note"],
                "model": part["model"].to_dict(),
                "robust": part["robust"].to_dict(),
                "not_computed": "Q-profile CIs, leave-one-out, cumulative, Egger, rank test, trim-and-fill, "
                "influence, subgroups, selection models: they assume one effect per study",
            },
            "flags": list(pooled["flags"]),
        }
    fit = pooled["fit"]
    out = {
        **input_record(inputs, path=path),
        "settings": settings,
        "result": fit.to_dict(),
        "prediction": pooled["prediction"].to_dict(),
        "heterogeneity": to_records(pooled.get("heterogeneity")),
        "leave_one_out": to_records(pooled.get("leave_one_out")),
        "cumulative": {"order": pooled["order_name"], "rows": to_records(pooled.get("cumulative"))},
        "egger": to_records(pooled.get("egger")),
        "ranktest": to_records(pooled.get("ranktest")),
        "trimfill": pooled["trimfill"].to_dict() if "trimfill" in pooled else pooled.get("trimfill_note"),
        "flags": list(pooled["flags"]),
    }
    if "influence" in pooled or "influence_note" in pooled:
        from imrstats.meta.influence import INFLUENCE_RULE

        out["influence"] = {
            "rule": INFLUENCE_RULE,
            "rows": to_records(pooled.get("influence")),
            "baujat": to_records(pooled.get("baujat")),
            "note": pooled.get("influence_note", ""),
        }
    if "meta_regression" in pooled:
        part = pooled["meta_regression"]
        out["meta_regression"] = {
            "formula": part["formula"],
            "model": part["model"].to_dict(),
            "confint": to_records(part.get("confint")),
            "permutation": part["permutation"].to_dict() if "permutation" in part else None,
        }
    if "subgroups" in pooled:
        part = pooled["subgroups"]
        out["subgroups"] = {"column": part["column"], "groups": part["groups"], **part["result"].to_dict()}
    if "selection" in pooled:
        part = pooled["selection"]
        out["selection"] = {
            "alternative": part["alternative"],
            "alternative_source": part["alternative_source"],
            "steps": list(part["steps"]),
            "exploratory": part["exploratory"],
            "model": part["model"].to_dict() if "model" in part else part["model_note"],
            "sensitivity": to_records(part["sensitivity"]) if "sensitivity" in part else part["sensitivity_note"],
        }
    ratio = RATIO_NAMES.get(inputs.measure)
    if ratio:
        pred = pooled["prediction"].extra
        re = fit.k > 1 and fit.method not in EQUAL
        out["back_transformed"] = {
            "quantity": f"pooled {ratio} (exp)",
            "estimate": math.exp(fit.estimate),
            "ci_low": math.exp(fit.ci_low),
            "ci_high": math.exp(fit.ci_high),
            "pi_low": math.exp(pred["pi_low"]) if re else None,
            "pi_high": math.exp(pred["pi_high"]) if re else None,
        }
    return out


def plot_figures(inputs: EffectInputs, pooled: dict, *, title: str) -> dict:
    """The figures of ``imrstats meta --plot`` (``imrstats.meta.figures``): "forest" (study CIs, weights, the
    pooled diamond and the dashed prediction interval); "funnel" (k >= 3: the contour-enhanced funnel plot with
    the trim-and-fill studies as open circles; k = 2: the plain funnel plot); "baujat" (--influence);
    "bubble" (--mods with one continuous moderator); "forest_subgroups" (--subgroup: the studies grouped by
    subgroup with each subgroup's diamond). With several effects per study (--cluster): "forest" grouped by
    study with the multilevel pooled effect (CR2 CI), and no funnel plot (it assumes independent effects)."""
    from imrstats.meta.figures import (
        baujat_figure,
        bubble_figure,
        contour_funnel_figure,
        forest_figure,
        funnel_figure,
        grouped_forest_figure,
    )

    xlabel = axis_label(inputs)
    if "multilevel" in pooled:
        part = pooled["multilevel"]
        data = pd.DataFrame({"label": inputs.labels, "group": part["clusters"], "yi": inputs.yi, "vi": inputs.vi})
        est = part["robust"].estimates()[0]
        overall = (
            {
                "label": "Multilevel pooled effect (CR2)",
                "estimate": est.estimate,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
            }
            if len(part["robust"].coef_names) == 1
            else None
        )
        model = part["model"]
        return {
            "forest": grouped_forest_figure(
                data,
                overall=overall,
                level=model.level,
                title=f"{title}: {model.k} effects in {model.n_studies} studies; three-level model, CR2 CI",
                xlabel=xlabel,
                group_name=part["cluster"],
            )
        }
    fit = pooled["fit"]
    figures = {"forest": forest_figure(inputs.pooled, fit, title=f"{title}: {fit.method_label}", xlabel=xlabel)}
    if "trimfill" in pooled:
        figures["funnel"] = contour_funnel_figure(fit, trimfill=pooled["trimfill"], xlabel=xlabel)
    elif fit.k >= 3:
        figures["funnel"] = contour_funnel_figure(fit, xlabel=xlabel)
    elif fit.k == 2:
        figures["funnel"] = funnel_figure(inputs.pooled, fit, title=f"{title}: funnel plot", xlabel=xlabel)
    if "baujat" in pooled:
        figures["baujat"] = baujat_figure(
            pooled["baujat"], equal_effects=fit.method in EQUAL, title=f"{title}: Baujat plot ({fit.method_label})"
        )
    if "meta_regression" in pooled:
        model = pooled["meta_regression"]["model"]
        continuous = [m.name for m in model.moderators if m.kind == "continuous"]
        if len(continuous) == 1:
            figures["bubble"] = bubble_figure(model, continuous[0], ylabel=xlabel)
    if "subgroups" in pooled:
        part = pooled["subgroups"]
        table = part["result"].table
        groups = pd.DataFrame(
            {
                "group": table["subgroup"],
                "estimate": table["estimate"],
                "ci_low": table["ci_low"],
                "ci_high": table["ci_high"],
                "text": [
                    f"k = {k}" + ("" if pd.isna(t) else f", tau^2 = {t:.3f}") for k, t in zip(table["k"], table["tau2"])
                ],
            }
        )
        pred = pooled["prediction"].extra
        re = fit.k > 1 and fit.method not in EQUAL
        overall = {
            "label": "All studies",
            "estimate": fit.estimate,
            "ci_low": fit.ci_low,
            "ci_high": fit.ci_high,
            "pi_low": pred["pi_low"] if re else None,
            "pi_high": pred["pi_high"] if re else None,
        }
        qb, qm = part["result"].q_between, part["result"].moderator_test
        tests = f"Q-between p {_p_eq(qb.p)}" + (f"; QM p {_p_eq(qm.p)}" if math.isfinite(qm.estimate) else "")
        figures["forest_subgroups"] = grouped_forest_figure(
            pd.DataFrame({"label": inputs.labels, "group": part["groups"], "yi": inputs.yi, "vi": inputs.vi}),
            groups=groups,
            overall=overall,
            level=fit.level,
            title=f"{title}: by {part['column']} ({fit.method}{', Knapp-Hartung' if fit.knha else ''})\n"
            f"subgroup differences: {tests}",
            xlabel=xlabel,
            group_name=part["column"],
        )
    return figures


def write_plots(figures: dict, folder, *, stem: str = "") -> dict[str, Path]:
    """Write each figure as ``<name>[_<stem>].png`` in ``folder`` (created when missing): deterministic PNG bytes
    (``imrstats.report.figures.png_bytes``), written atomically. Returns name -> path."""
    from imrstats.core.io import atomic_path
    from imrstats.report.figures import png_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, fig in figures.items():
        path = folder / f"{name}{'_' + stem if stem else ''}.png"
        data = png_bytes(fig)
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
        written[name] = path
    return written
