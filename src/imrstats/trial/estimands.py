"""Estimands (ICH E9(R1) addendum, 2019) from the settings to the tables: the trial section's ``estimands``
(name -> the five attributes, the intercurrent events with the rule that finds them and the strategy that handles
them, the method) checked and filled in, each estimand's ICE table derived from a trial frame, the reference-based
analysis run (`imrstats.trial.reference_mi`: conditional mean imputation with jackknife or bootstrap inference,
Wolbers et al. 2022, or Bayesian multiple imputation, Carpenter, Roger & Kenward 2013; each completed data set
analysed by the ANCOVA per visit or by the study's MMRM), and its rows laid out for the stage's tables
``trial_estimands`` (one row per estimand and outcome: attributes, strategies, counts per arm, method) and
``trial_estimand_results`` (one row per estimand, outcome and visit: the contrast and each arm's LS mean with SE,
CI and p, the method, the strategies and the counts per arm). An estimand may add a user's delta table to the
imputed values (``delta_file``; `reference_mi.read_delta`) and a two-dimensional tipping point at the primary visit
(``tipping``; `reference_mi.tipping_point_2d`), tabled as ``trial_estimand_tipping_grid`` and
``trial_estimand_tipping_points``.

The defaults of an estimand's keys live in the config schema (``$defs/estimand``, ``$defs/intercurrent_event``);
`resolve_estimands` fills them in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from imrstats.errors import AnalysisError, InputError, SettingsError
from imrstats.results import ResultMixin
from imrstats.trial.design import StudyDesign
from imrstats.trial.estimand_settings import (  # noqa: F401  (the settings part, re-exported)
    ANALYSIS_NAMES,
    BOOTSTRAP_CIS,
    ESTIMAND_ANALYSES,
    ESTIMAND_METHODS,
    HANDLING,
    ICE_RULES,
    ICE_STRATEGIES,
    METHOD_NAMES,
    EstimandSpec,
    IceSpec,
    estimand_outcomes,
    estimand_problems,
    resolve_estimands,
)


@dataclass(frozen=True)
class IceDerivation:
    """An estimand's ICE table on one trial frame (``table``: id, visit, strategy, arm; one row per participant,
    never tabled or written), what each event's rule found (``events``: per event its text, strategies and the
    participants found and kept per arm), the participants found by more than one rule (the earliest ICE kept,
    then the first listed; per arm), participants a rule could not classify (per arm), and the SHA-256 of each
    ICE file read."""

    table: pd.DataFrame
    events: list
    n_multiple: dict
    unclassified: dict
    files: dict


def read_ice_file(event: IceSpec, frame: pd.DataFrame, design: StudyDesign) -> tuple[pd.DataFrame, str]:
    """The ICE table of a ``rule: table`` event, read from ``event.file`` (any format `imrstats.core.io.read_table`
    reads; path relative to the working directory): columns ``id``, ``visit`` (a visit code or its label) and
    optionally ``strategy`` (else ``event.strategy`` for every row); ids matched to the trial frame's as the
    canonical tables match them (trimmed, ``1001.0`` as ``1001``, letter case folded). A bad row is one
    `InputError` naming the file, row, column, value and rule (`reference_mi.validate_ice`). Returns the checked
    table and the file's SHA-256."""
    from imrstats.core.io import read_table
    from imrstats.data.check import id_key, id_spelling
    from imrstats.trial.reference_mi import validate_ice

    path = Path(str(event.file))
    raw = read_table(path)
    columns = {str(c).strip().lower(): c for c in raw.columns}
    absent = [c for c in ("id", "visit") if c not in columns]
    if absent:
        raise InputError(
            f"{path}: column(s) {absent} not found; rule: an ICE table has columns id, visit and optionally "
            f"strategy; columns present: {[str(c) for c in raw.columns]}"
        )
    has_strategy = "strategy" in columns
    if has_strategy and event.strategy_given:
        raise SettingsError(
            [(f"{event.key}.strategy", f"{path} has a strategy column (one per participant): leave strategy out")]
        )
    spelled = id_spelling(raw[columns["id"]])
    frame_ids = frame["id"].astype(str)
    lookup = dict(zip(id_key(id_spelling(frame_ids)), frame_ids))
    ids = [lookup.get(k, s) if pd.notna(k) else s for k, s in zip(id_key(spelled), spelled)]
    codes = {design.visit_label(v): v for v in design.visits}
    visits = raw[columns["visit"]].astype("string").str.strip()
    visits = visits.map(lambda v: v if pd.isna(v) or v in design.visits else codes.get(v, v))
    strategy = raw[columns["strategy"]].astype("string").str.strip().str.upper() if has_strategy else event.strategy
    table = pd.DataFrame({"id": ids, "visit": visits, "strategy": strategy})
    checked = validate_ice(table, frame, design, source=str(path))
    return checked, hashlib.sha256(path.read_bytes()).hexdigest()


def _per_arm(values, design: StudyDesign) -> dict:
    values = pd.Series(values, dtype=object)
    return {arm: int((values == arm).sum()) for arm in design.arms}


def derive_ice(frame: pd.DataFrame, design: StudyDesign, spec: EstimandSpec) -> IceDerivation:
    """The ICE table of estimand ``spec`` on a trial frame (`imrstats.trial.analyses.outcome_frame`): each event's
    rule (`reference_mi.ice_from_dropout`, `ice_from_attendance`, or `read_ice_file`) with its strategy; a
    participant found by several rules keeps the earliest ICE (ties: the first event listed), counted per arm."""
    from imrstats.trial.reference_mi import ice_from_attendance, ice_from_dropout, validate_ice

    parts, events, files = [], [], {}
    unclassified = {arm: 0 for arm in design.arms}
    for j, ev in enumerate(spec.events):
        if ev.rule == "dropout":
            derived = ice_from_dropout(frame, design, strategy=ev.strategy)
            table, text = derived.table, derived.rule
        elif ev.rule == "sessions_below":
            visit = ev.visit or design.visits[0]
            offered = frame.loc[frame["arm"] == design.intervention]
            if "sessions_attended" not in frame.columns or offered["sessions_attended"].isna().all():
                raise AnalysisError(
                    f"rule sessions_below ({ev.key}) needs sessions_attended, not recorded in the "
                    f"{design.arm_label(design.intervention)} arm"
                )
            derived = ice_from_attendance(
                frame, design, min_sessions=int(ev.min_sessions), visit=visit, strategy=ev.strategy
            )
            table = derived.table
            text = (
                f"ICE at {design.visit_label(visit)} for fewer than {ev.min_sessions} sessions attended "
                f"({design.arm_label(design.intervention)} arm)"
            )
            for arm, n in zip(derived.counts["arm"], derived.counts["n_unclassified"]):
                unclassified[arm] += int(n)
        elif ev.rule == "table":
            table, files[str(ev.file)] = read_ice_file(ev, frame, design)
            text = f"the participants and visits listed in {Path(str(ev.file)).name}"
        else:  # the schema allows no other
            raise SettingsError([(f"{ev.key}.rule", f"must be one of {', '.join(ICE_RULES)}, got {ev.rule!r}")])
        strategies = [s for s in ICE_STRATEGIES if (table["strategy"] == s).any()] or [ev.strategy]
        events.append(
            {
                "event": ev.event,
                "rule": ev.rule,
                "rule_text": text,
                "strategies": strategies,
                "handling_given": ev.handling,
                "n_found": _per_arm(table["arm"], design),
            }
        )
        parts.append(table.assign(order=j))
    combined = pd.concat(parts, ignore_index=True)
    position = {v: k for k, v in enumerate(design.visits)}
    combined["position"] = combined["visit"].map(position)
    combined = combined.sort_values(["id", "position", "order"], kind="stable")
    several = combined.loc[combined["id"].duplicated(keep=False)].drop_duplicates("id")
    kept = combined.drop_duplicates("id", keep="first")
    for j, event in enumerate(events):
        event["n_applied"] = _per_arm(kept.loc[kept["order"] == j, "arm"], design)
    table = validate_ice(
        kept[["id", "visit", "strategy"]], frame, design, source=f"the ICE table of estimand {spec.name}"
    )
    return IceDerivation(
        table=table,
        events=events,
        n_multiple=_per_arm(several["arm"], design),
        unclassified=unclassified,
        files=files,
    )


# --------------------------------------------------------------------------------------------------
# One estimand on one outcome
# --------------------------------------------------------------------------------------------------


def estimand_delta(spec: EstimandSpec, frame: pd.DataFrame, design: StudyDesign) -> tuple[pd.DataFrame, str] | None:
    """The checked delta table of ``spec.delta_file`` (`reference_mi.read_delta`: a bad row is one `InputError`
    naming the file, row, column, value and rule) and the file's SHA-256; None when the estimand has none."""
    from imrstats.trial.reference_mi import read_delta

    if not spec.delta_file:
        return None
    path = Path(str(spec.delta_file))
    return read_delta(path, frame, design), hashlib.sha256(path.read_bytes()).hexdigest()


def handling_text(strategies, given: str | None, reference_label: str) -> str:
    """The handling of an ICE in words: the text given, or the usual one of each strategy (`HANDLING`)."""
    if given:
        return given
    return "; ".join(HANDLING[s].format(reference=reference_label) for s in strategies)


@dataclass(frozen=True)
class EstimandResult(ResultMixin):
    """One estimand on one outcome: its attributes as run (``attributes``: treatment, population, variable,
    intercurrent_events, summary), what its ICE rules found (``events``, ``n_multiple_ice``, ``unclassified``,
    ``ice_files``: path -> SHA-256), the reference-based analysis (``analysis``: a `CondMeanResult` or
    `BayesMIResult` of `imrstats.trial.reference_mi`; its estimates, ICE counts per arm and method), the delta
    table added to the imputed values (``delta_files``: path -> SHA-256), the two-dimensional tipping point
    (``tipping``: a `reference_mi.TippingGrid`, or None), the number of randomised participants per arm in the trial
    frame and ``flags`` (a sampler that did not converge, participants a rule could not classify, a tipping grid
    that could not be computed)."""

    name: str
    outcome: str
    instrument: str
    method_key: str
    reference_arm: str
    attributes: dict
    events: list
    n_multiple_ice: dict
    unclassified: dict
    ice_files: dict
    n_randomised: dict
    analysis: object
    delta_files: dict = field(default_factory=dict)
    tipping: object = None
    flags: tuple = field(default=())

    @property
    def strategies(self) -> list[str]:
        return [s for s in ICE_STRATEGIES if s in self.analysis.strategies]

    def _json_extra(self) -> dict:
        return {"converged": bool(getattr(self.analysis, "converged", True))}


def attributes(
    spec: EstimandSpec, outcome: str, design: StudyDesign, *, instrument, primary_visit: str, events: list
) -> dict:
    """The five ICH E9(R1) attributes of ``spec`` on ``outcome`` as text, the null ones filled in from the design:
    treatment (intervention vs control), variable (the instrument at the primary visit), the intercurrent events
    with their handling and strategy."""
    reference = design.arm_label(spec.reference or design.control)
    variable = spec.variable or (
        f"{instrument.name} ({instrument.short}) at {design.visit_label(primary_visit)}, as recorded (the baseline "
        "a covariate)"
    )
    treatment = spec.treatment or (f"{design.arm_label(design.intervention)} vs {design.arm_label(design.control)}")
    ices = []
    for e in events:
        strategy = ", ".join(f"{s} ({_strategy_name(s)})" for s in e["strategies"])
        handling = handling_text(e["strategies"], e["handling_given"], reference)
        ices.append(f"{e['event']} [{e['rule_text']}]: {handling}; strategy {strategy}")
    return {
        "treatment": treatment,
        "population": spec.population,
        "variable": variable,
        "intercurrent_events": " | ".join(ices),
        "summary": spec.summary,
    }


def _strategy_name(strategy: str) -> str:
    from imrstats.trial.reference_mi import STRATEGY_NAMES

    return STRATEGY_NAMES[strategy]


def run_estimand(
    frame: pd.DataFrame,
    design: StudyDesign,
    spec: EstimandSpec,
    outcome: str,
    *,
    instrument,
    primary_visit: str,
    covariates=(),
    level: float = 0.95,
    seed: int = 0,
    m: int = 150,
    ice: IceDerivation | None = None,
    delta: tuple | None = None,
) -> EstimandResult:
    """Estimand ``spec`` on ``outcome``'s trial frame: its ICE table (`derive_ice`, or ``ice`` derived ahead), then
    `reference_mi.reference_based_condmean` (``condmean_jackknife``; ``condmean_bootstrap``: ``spec.bootstrap_samples``
    samples seeded by ``seed``, ``spec.bootstrap_ci`` interval) or `reference_mi.reference_based_bayes` (``bayes``:
    ``m`` imputations seeded by ``seed``), reference arm ``spec.reference`` (default the control arm), the analysis
    ``spec.analysis`` of each completed data set (ANCOVA per visit on arm, baseline and ``covariates``, or the
    study's MMRM with them); the outcome as the frame holds it (not the change); the
    deltas of ``spec.delta_file`` added to the imputed values (`estimand_delta`, or ``delta`` read ahead); the
    two-dimensional tipping point of ``spec.tipping`` at ``primary_visit`` (a failure there is a flag).
    ``instrument``: the outcome's registry entry (for the variable's text). Raises `AnalysisError` when the
    analysis cannot give a number."""
    from imrstats.trial.reference_mi import reference_based_bayes, reference_based_condmean

    if spec.analysis not in ESTIMAND_ANALYSES:
        raise SettingsError([(f"{spec.key}.analysis", f"must be one of {', '.join(ESTIMAND_ANALYSES)}")])
    ice = derive_ice(frame, design, spec) if ice is None else ice
    reference = spec.reference or design.control
    common = dict(covariates=list(covariates), reference=reference, level=level, outcome=outcome)
    delta = estimand_delta(spec, frame, design) if delta is None else delta
    delta_files = {}
    if delta is not None:
        common["delta"], delta_files[str(spec.delta_file)] = delta
    if spec.method == "condmean_jackknife":
        analysis = reference_based_condmean(frame, ice.table, design, analysis=spec.analysis, **common)
    elif spec.method == "condmean_bootstrap":
        analysis = reference_based_condmean(
            frame,
            ice.table,
            design,
            analysis=spec.analysis,
            inference="bootstrap",
            n_samples=int(spec.bootstrap_samples),
            seed=int(seed),
            bootstrap_ci=spec.bootstrap_ci,
            **common,
        )
    elif spec.method == "bayes":
        analysis = reference_based_bayes(
            frame, ice.table, design, seed=int(seed), m=int(m), analysis=spec.analysis, **common
        )
    else:
        raise SettingsError([(f"{spec.key}.method", f"must be one of {', '.join(ESTIMAND_METHODS)}")])
    flags = [f"estimand {spec.name}: {f}" for f in getattr(analysis, "flags", ())]
    left_out = int(getattr(analysis, "n_excluded", 0) or 0)
    if left_out:  # counted in the table (n_excluded); said where the reader looks first too
        flags.append(
            f"estimand {spec.name}: {left_out} participant(s) left out of the analysis for a missing arm, baseline "
            "value or covariate (the reference-based imputation model conditions on them; the ITT MI-MMRM imputes "
            "missing baselines instead)"
        )
    for arm, n in ice.unclassified.items():
        if n:
            flags.append(
                f"estimand {spec.name}: {n} participant(s) of the {design.arm_label(arm)} arm could not be classified "
                "by an ICE rule (attendance not recorded): analysed without an ICE"
            )
    tipping = None
    if spec.tipping is not None:
        tipping, problem = _tipping(frame, design, spec, ice, primary_visit, common, level, seed, m)
        flags += [f"estimand {spec.name}: {f}" for f in ([problem] if problem else getattr(tipping, "flags", ()))]
    return EstimandResult(
        name=spec.name,
        outcome=outcome,
        instrument=instrument.short,
        method_key=spec.method,
        reference_arm=reference,
        attributes=attributes(
            spec, outcome, design, instrument=instrument, primary_visit=primary_visit, events=ice.events
        ),
        events=ice.events,
        n_multiple_ice=ice.n_multiple,
        unclassified=ice.unclassified,
        ice_files=ice.files,
        n_randomised=_per_arm(frame["arm"], design),
        analysis=analysis,
        delta_files=delta_files,
        tipping=tipping,
        flags=tuple(flags),
    )


def _tipping(frame, design: StudyDesign, spec: EstimandSpec, ice: IceDerivation, visit, common, level, seed, m):
    """(the estimand's two-dimensional tipping point at ``visit``, None) or (None, why it could not be computed)."""
    from imrstats.trial.reference_mi import tipping_point_2d

    try:
        grid = tipping_point_2d(
            frame,
            ice.table,
            design,
            deltas_intervention=spec.tipping["deltas_intervention"],
            deltas_control=spec.tipping["deltas_control"],
            method=spec.method,
            visit=visit,
            cumulative=bool(spec.tipping["cumulative"]),
            alpha=1.0 - float(level),
            covariates=common["covariates"],
            reference=common["reference"],
            outcome=common["outcome"],
            seed=int(seed),
            m=int(m),
            n_samples=int(spec.bootstrap_samples),
            bootstrap_ci=spec.bootstrap_ci,
        )
    except AnalysisError as err:
        return None, f"tipping point not reported: {err}"
    return grid, None


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------


def count_columns(result: EstimandResult, design: StudyDesign) -> dict:
    """Per arm (``<a>`` its `StudyDesign.arm_key`): randomised (in the trial frame), analysed, excluded (missing
    baseline or covariate); among the analysed: with an ICE, under each strategy of the estimand, without an ICE,
    and the missing values imputed under MAR (intermittent: no ICE, or before it) and at or after an ICE; among
    the randomised (the ICE rules run on every one of them): unclassified by a rule (no ICE) and found by more
    than one rule (the earliest ICE kept)."""
    counts = result.analysis.ice_counts.set_index("arm")
    out = {}
    for arm in design.arms:
        a, c = design.arm_key(arm), counts.loc[arm]
        out[f"n_randomised_{a}"] = int(result.n_randomised[arm])
        out[f"n_analysed_{a}"] = int(c["n_participants"])
        out[f"n_excluded_{a}"] = int(result.n_randomised[arm] - c["n_participants"])
        out[f"n_ice_{a}"] = int(c["n_ice"])
        for s in result.strategies:
            out[f"n_{s.lower()}_{a}"] = int(c[f"n_{s.lower()}"])
        out[f"n_no_ice_{a}"] = int(c["n_no_ice"])
        out[f"n_unclassified_{a}"] = int(result.unclassified.get(arm, 0))
        out[f"n_several_ices_{a}"] = int(result.n_multiple_ice.get(arm, 0))
        out[f"n_missing_mar_{a}"] = int(c["n_missing_mar"])
        out[f"n_missing_after_ice_{a}"] = int(c["n_missing_after_ice"])
    return out


def _notes(result: EstimandResult) -> str:
    notes = [result.analysis.notes] if result.analysis.notes else []
    several = sum(result.n_multiple_ice.values())
    if several:
        notes.append(f"{several} participant(s) found by more than one ICE rule: the earliest ICE kept")
    if sum(result.unclassified.values()):
        notes.append(f"{sum(result.unclassified.values())} participant(s) unclassified by an ICE rule (no ICE)")
    notes += [f"ICE table {Path(path).name}: SHA-256 {sha}" for path, sha in result.ice_files.items()]
    notes += [f"delta table {Path(path).name}: SHA-256 {sha}" for path, sha in result.delta_files.items()]
    return "; ".join(notes)


def estimand_row(result: EstimandResult, design: StudyDesign) -> dict:
    """The ``trial_estimands`` row of one estimand on one outcome."""
    reference = design.arm_label(result.reference_arm)
    return {
        "estimand": result.name,
        "outcome": result.outcome,
        "instrument": result.instrument,
        **result.attributes,
        "strategies": ", ".join(result.strategies) or "none (all MAR)",
        "reference": reference,
        "analysis": ANALYSIS_NAMES[getattr(result.analysis, "analysis_model", "ancova")],
        **count_columns(result, design),
        "method": result.analysis.method,
        "notes": _notes(result),
    }


def result_rows(result: EstimandResult, design: StudyDesign) -> list[dict]:
    """The ``trial_estimand_results`` rows of one estimand on one outcome: per visit the contrast (intervention -
    control) and each arm's LS mean, each with estimate, SE, CI and p (and the Monte Carlo SE of the estimate for
    Bayesian MI; the SD of the bootstrap estimates, ``<quantity>_bootstrap_se``, with the bootstrap), the
    participants analysed, the strategies with the counts per arm, the method and notes."""
    est = result.analysis.estimates
    arm = est["arm"] if "arm" in est.columns else pd.Series([None] * len(est), index=est.index)
    bayes = "mcse_estimate" in est.columns
    bootstrap = "bootstrap_se" in est.columns
    counts = count_columns(result, design)
    rows = []
    for visit in design.visits:
        row = {"estimand": result.name, "outcome": result.outcome, "instrument": result.instrument}
        row["timepoint"] = visit
        picks = [("contrast", arm.isna())] + [
            (f"lsmean_{design.arm_key(a)}", arm == a) for a in (design.intervention, design.control)
        ]
        for prefix, mask in picks:
            found = est.loc[(est["timepoint"] == visit) & mask.to_numpy()]
            if len(found) != 1:
                raise AnalysisError(f"estimand {result.name}: {len(found)} rows for {prefix} at {visit}")
            r = found.iloc[0]
            row[prefix] = float(r["estimate"])
            for stat in ("se", "ci_low", "ci_high", "p"):
                row[f"{prefix}_{stat}"] = float(r[stat])
            if bayes:
                row[f"{prefix}_mcse"] = float(r["mcse_estimate"])
            if bootstrap:
                row[f"{prefix}_bootstrap_se"] = float(r["bootstrap_se"])
        row["n_analysed"] = int(result.analysis.n_participants)
        row["n_excluded"] = int(result.analysis.n_excluded)
        row["strategies"] = ", ".join(result.strategies) or "none (all MAR)"
        row["reference"] = design.arm_label(result.reference_arm)
        row.update({k: v for k, v in counts.items() if k.startswith(("n_ice_", "n_no_ice_")) or _is_strategy(k)})
        row["method"] = result.analysis.method
        row["notes"] = _notes(result)
        rows.append(row)
    return rows


def _is_strategy(column: str) -> bool:
    return any(column.startswith(f"n_{s.lower()}_") for s in ICE_STRATEGIES)


def estimand_tables(results: list[EstimandResult], design: StudyDesign) -> dict[str, pd.DataFrame]:
    """``trial_estimands`` and ``trial_estimand_results`` of the estimands run (empty: no table); a strategy
    count absent from one estimand is 0 there."""
    if not results:
        return {}
    tables = {
        "trial_estimands": pd.DataFrame([estimand_row(r, design) for r in results]),
        "trial_estimand_results": pd.DataFrame([row for r in results for row in result_rows(r, design)]),
    }
    for name, frame in tables.items():
        counts = [c for c in frame.columns if _is_strategy(c)]
        frame[counts] = frame[counts].fillna(0).astype(int)
        tables[name] = frame[[*[c for c in frame.columns if c not in ("method", "notes")], "method", "notes"]]
    tipping = [r for r in results if r.tipping is not None]
    if tipping:
        tables["trial_estimand_tipping_grid"] = pd.concat(
            [r.tipping.to_frame().assign(estimand=r.name) for r in tipping], ignore_index=True
        )
        tables["trial_estimand_tipping_points"] = pd.concat(
            [
                r.tipping.tipping_points.assign(
                    estimand=r.name, outcome=r.outcome, timepoint=r.tipping.timepoint, method=r.tipping.method
                )
                for r in tipping
            ],
            ignore_index=True,
        )
    return tables


# --------------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------------


def ice_count_text(result: EstimandResult, design: StudyDesign) -> str:
    """ICEs per arm and strategy, e.g. "Drug: JR 20, no ICE 64 (of 84 analysed); Placebo: ..."."""
    counts = result.analysis.ice_counts.set_index("arm")
    parts = []
    for arm in design.arms:
        c = counts.loc[arm]
        by = [f"{s} {int(c[f'n_{s.lower()}'])}" for s in result.strategies]
        parts.append(
            f"{design.arm_label(arm)}: {', '.join([*by, f'no ICE {int(c["n_no_ice"])}'])} "
            f"(of {int(c['n_participants'])} analysed)"
        )
    return "; ".join(parts)


def estimand_text(result: EstimandResult, design: StudyDesign, *, rows: bool = True) -> list[str]:
    """The printout of one estimand on one outcome: the five attributes, the ICE counts per arm and strategy, and
    (``rows``) per visit the contrast and each arm's LS mean with SE, CI and p; then the method and notes."""
    from imrstats.report.format import format_ci, format_number, format_p

    a = result.attributes
    analysed = ", ".join(
        f"{design.arm_label(arm)} {n} of {result.n_randomised[arm]}"
        for arm, n in zip(result.analysis.ice_counts["arm"], result.analysis.ice_counts["n_participants"])
    )
    lines = [
        f"Estimand {result.name} ({result.instrument}; ICH E9(R1) attributes):",
        f"  treatment:           {a['treatment']}",
        f"  population:          {a['population']} (analysed: {analysed})",
        f"  variable:            {a['variable']}",
        f"  intercurrent events: {a['intercurrent_events']}",
        f"  summary:             {a['summary']}",
        f"ICEs per arm and strategy (reference arm {design.arm_label(result.reference_arm)}): "
        f"{ice_count_text(result, design)}",
    ]
    counts = result.analysis.ice_counts.set_index("arm")
    intermittent = ", ".join(f"{design.arm_label(arm)} {int(counts.loc[arm, 'n_missing_mar'])}" for arm in design.arms)
    lines.append(f"Missing values imputed under MAR (no ICE, or before it): {intermittent}")
    if rows:
        width = max(8, *(len(design.visit_label(v)) + 2 for v in design.visits))
        labels = [("contrast", design.contrast_label)] + [
            (f"lsmean_{design.arm_key(x)}", f"LS mean {design.arm_label(x)}") for x in design.arms
        ]
        qwidth = max(len(label) for _, label in labels) + 2
        ci = f"{result.analysis.level:.0%} CI"
        lines.append(f"{'visit':<{width}}{'':<{qwidth}}{'estimate':>9}{'SE':>8}  {ci:<18}{'p':>8}")
        for row in result_rows(result, design):
            for k, (prefix, label) in enumerate(labels):
                visit = design.visit_label(row["timepoint"]) if k == 0 else ""
                lines.append(
                    f"{visit:<{width}}{label:<{qwidth}}{format_number(row[prefix]):>9}"
                    f"{format_number(row[f'{prefix}_se']):>8}  "
                    f"{format_ci(row[f'{prefix}_ci_low'], row[f'{prefix}_ci_high']):<18}"
                    f"{format_p(row[f'{prefix}_p'], missing='NA'):>8}"
                )
    lines.append(f"Method: {result.analysis.method}")
    notes = _notes(result)
    if notes:
        lines.append(f"Notes: {notes}")
    if result.tipping is not None:
        lines += ["", *result.tipping.summary().splitlines()]
    return lines
