"""Simulation study of the trial analyses: how well does the ITT MI-MMRM recover a known IMR - TAU effect?

Each replicate is one synthetic trial from `imrstats.data.simulate` (the scenario's true effects, attrition and
size laid over the pipeline's `simulate.trial` section), cleaned by `imrstats.data.clean` and analysed by
`imrstats.trial.analyses.itt_mi_mmrm` (and, for comparison, the complete-case ANCOVA). `run_replicate` returns
the per-visit estimates next to the truth; `aggregate` turns many replicates into the performance
measures of Morris, White & Crowther (2019), "Using simulation studies to evaluate statistical methods",
Stat Med 38:2074-2102, Table 6, each with its Monte Carlo standard error (MCSE);
`imrstats.trial.simstudy_section.render_simstudy_report` renders them as one HTML page. Replicates are
independent: replicate r of scenario s draws from the seed ``derive_seed(seed, "simstudy.<s>.<r>")``, so any
subset can run in any order, on any machine, and give the same numbers (the Snakemake workflow
`workflow/simulation.smk` runs one job per replicate).

The truth of a replicate is the scenario's ``true_effects[outcome][timepoint]`` (0 where not given): the
generator shifts the arm means by -/+ half of it before scores are rounded and clipped to the instrument's
range, so for an instrument far from its bounds (GAF-F, PSP) the nominal truth is the estimand up to a
rounding error far below any MCSE here; near a floor or ceiling the clipping attenuates it (stated in
the report).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.config import deep_update
from imrstats.core.seeds import derive_seed
from imrstats.data.simulate import simulate_assessments, simulate_participants
from imrstats.errors import AnalysisError, InputError
from imrstats.results import Estimate, identifiers_first, to_frame, to_jsonable
from imrstats.trial.design import DEFAULT_DESIGN

# the simulator (imrstats.data.simulate) makes the IMR trial: IMR vs TAU, baseline, post and fu12
SIMULATED_DESIGN = DEFAULT_DESIGN

ESTIMATORS = {
    "mi_mmrm": "ITT MI-MMRM (MICE, MMRM per imputation, Rubin's rules)",
    "complete_case": "complete-case ANCOVA (OLS on participants with baseline and the visit observed)",
}
REPLICATE_COLUMNS = [
    "scenario",
    "rep",
    "estimator",
    "outcome",
    "timepoint",
    "truth",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "df",
    "p",
    "fmi",
    "n_not_converged",
    "error",
]
MORRIS = "Morris, White & Crowther 2019 (Stat Med 38:2074), Table 6"


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


def validate_study_config(config: dict, source: str = "simulation config") -> dict:
    """Check a simulation-study config against workflow/schemas/simulation.schema.yaml and the instrument
    registry; raise InputError naming every offending key. Returns the config unchanged."""
    import jsonschema
    import yaml

    from imrstats.core.paths import SCHEMA_DIR
    from imrstats.data.instruments import load_registry

    schema = yaml.safe_load((SCHEMA_DIR / "simulation.schema.yaml").read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    problems = [f"config key {'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors]
    if not problems:
        registry = load_registry()
        names = [s["name"] for s in config["scenarios"]]
        problems += [
            f"config key scenarios: name {n!r} is used twice" for n in sorted({n for n in names if names.count(n) > 1})
        ]
        problems += [
            f"config key outcomes: {k!r} is not an instrument in config/instruments.yaml"
            for k in config["outcomes"]
            if k not in registry
        ]
        for s in config["scenarios"]:
            problems += [
                f"config key scenarios.{s['name']}.true_effects.{k}: not an instrument in config/instruments.yaml"
                for k in (s.get("true_effects") or {})
                if k not in registry
            ]
    if problems:
        raise InputError(f"{source}: invalid simulation configuration\n  " + "\n  ".join(problems))
    return config


def resolve_study_config(study: dict, pipeline_config: dict) -> dict:
    """The study config with the data-generating model filled in: ``trial_model`` becomes the pipeline's
    ``simulate.trial`` section overlaid with the study's own ``trial_model`` overrides, and ``clean`` the
    pipeline's cleaning settings. Pure: takes both configs as dicts."""
    validate_study_config(study)
    out = copy.deepcopy(study)
    out["trial_model"] = deep_update(pipeline_config["simulate"]["trial"], study.get("trial_model") or {})
    out["clean"] = copy.deepcopy(pipeline_config.get("clean", {}))
    return out


def load_study_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Read config/simulation.yaml (or ``path``), apply ``overrides``, validate, and resolve it against
    the pipeline config it names (``base_config``; null = the embedded config/config.yaml)."""
    from imrstats.config import load_config, load_yaml_file
    from imrstats.core.paths import CONFIG_DIR

    path = Path(path) if path else CONFIG_DIR / "simulation.yaml"
    study = load_yaml_file(path, "simulation config")  # size limit, no aliases: one SettingsError naming the file
    if not isinstance(study, dict):
        raise InputError(f"{path}: a config must be a mapping of keys to values")
    study = deep_update(study, overrides or {})
    validate_study_config(study, source=str(path))
    return resolve_study_config(study, load_config(study.get("base_config")))


def scenario_by_name(config: dict, name: str) -> dict:
    for scenario in config["scenarios"]:
        if scenario["name"] == name:
            return scenario
    raise InputError(f"no scenario named {name!r}; scenarios: {[s['name'] for s in config['scenarios']]}")


def scenario_trial_model(trial_model: dict, scenario: dict) -> dict:
    """The `simulate.trial` settings of one scenario: its true effects replace the base ones (an instrument
    not listed has effect 0), its visit_missing and sites replace the base ones, and n_participants scales
    the base sites' sizes proportionally (largest remainder, so they sum to n exactly)."""
    cfg = copy.deepcopy(trial_model)
    cfg["true_effects"] = copy.deepcopy(scenario.get("true_effects") or {})
    if "visit_missing" in scenario:
        cfg["visit_missing"] = {**cfg["visit_missing"], **scenario["visit_missing"]}
    if "sites" in scenario:
        cfg["sites"] = dict(scenario["sites"])
    elif "n_participants" in scenario:
        cfg["sites"] = scale_sites(cfg["sites"], int(scenario["n_participants"]))
    cfg["n_participants"] = int(sum(cfg["sites"].values()))
    return cfg


def scale_sites(sites: dict[str, int], n: int) -> dict[str, int]:
    """Site sizes proportional to ``sites`` summing to ``n`` (Hamilton's largest-remainder rounding)."""
    total = sum(sites.values())
    if n < 2 * len(sites):
        raise InputError(f"n_participants = {n} is too small for {len(sites)} sites (at least 2 per site)")
    quota = {k: n * v / total for k, v in sites.items()}
    out = {k: int(math.floor(q)) for k, q in quota.items()}
    for k in sorted(quota, key=lambda k: (out[k] - quota[k], k))[: n - sum(out.values())]:
        out[k] += 1
    return out


def truth_of(scenario: dict, outcome: str, timepoint: str) -> float:
    return float(((scenario.get("true_effects") or {}).get(outcome) or {}).get(timepoint, 0.0))


# --------------------------------------------------------------------------------------------------
# One replicate
# --------------------------------------------------------------------------------------------------


def replicate_seed(seed: int, scenario: str, rep: int) -> int:
    """The seed of replicate ``rep`` of ``scenario``: independent of every other replicate and of order."""
    return derive_seed(int(seed), f"simstudy.{scenario}.{int(rep)}")


def run_replicate(config: dict, scenario: dict | str, rep: int, seed: int) -> dict:
    """Simulate one trial of ``scenario``, clean it and analyse every configured outcome.

    ``config`` is a resolved study config (`resolve_study_config`); ``seed`` the study's master seed.
    Returns a JSON-serialisable dict: scenario, rep, seed, n_participants, the observed share per visit,
    and ``rows`` (one per estimator x outcome x visit: truth, estimate, se, CI, df, p, fmi,
    n_not_converged, error). An analysis that fails is kept as a row with NaN numbers and its error
    message, so failures are counted by `aggregate` rather than silently dropped."""
    from imrstats.data.clean import clean_tables
    from imrstats.trial import analyses as trial

    design = SIMULATED_DESIGN
    if "trial_model" not in config:
        raise InputError("run_replicate needs a resolved study config (resolve_study_config / load_study_config)")
    scenario = scenario_by_name(config, scenario) if isinstance(scenario, str) else scenario
    name = scenario["name"]
    rep_seed = replicate_seed(seed, name, rep)
    model = scenario_trial_model(config["trial_model"], scenario)
    participants = simulate_participants(model, np.random.default_rng(derive_seed(rep_seed, "participants")))
    assessments = simulate_assessments(participants, model, np.random.default_rng(derive_seed(rep_seed, "assessments")))
    clean = config.get("clean", {})
    tables = clean_tables(
        {"participants": participants, "assessments": assessments},
        missing_codes=clean.get("missing_codes"),
        prorate=clean.get("prorate", True),
    ).tables
    level = 1 - float(config["alpha"])
    covariates = list(config["covariates"])
    rows, observed = [], {}
    for outcome in config["outcomes"]:
        frame = trial.outcome_frame(tables["participants"], tables["assessments"], outcome)
        observed[outcome] = {design.visit_code(c): float(frame[c].notna().mean()) for c in design.outcome_columns}
        for estimator in config["estimators"]:
            try:
                found = _analyse(
                    estimator, frame, outcome, covariates, config, level, derive_seed(rep_seed, f"impute.{outcome}")
                )
                error = ""
            except AnalysisError as err:
                found, error = {}, str(err)
            for tp in design.visits:
                row = found.get(tp, {})
                rows.append(
                    {
                        "scenario": name,
                        "rep": int(rep),
                        "estimator": estimator,
                        "outcome": outcome,
                        "timepoint": tp,
                        "truth": truth_of(scenario, outcome, tp),
                        **{k: _num(row.get(k)) for k in ("estimate", "se", "ci_low", "ci_high", "df", "p", "fmi")},
                        "n_not_converged": int(row.get("n_not_converged", 0) or 0),
                        "error": error,
                    }
                )
    return {
        "scenario": name,
        "rep": int(rep),
        "seed": int(rep_seed),
        "n_participants": len(participants),
        "observed_share": observed,
        "rows": rows,
    }


def _analyse(estimator: str, frame, outcome, covariates, config, level, seed) -> dict[str, dict]:
    """Per visit: the estimate row of one estimator as a dict."""
    from imrstats.trial import analyses as trial

    if estimator == "mi_mmrm":
        res = trial.itt_mi_mmrm(
            frame,
            outcome=outcome,
            covariates=covariates,
            m=int(config["imputations"]),
            method=config["imputation_method"],
            maxit=int(config["maxit"]),
            donors=int(config["donors"]),
            by_arm=bool(config["impute_by_arm"]),
            seed=seed,
            level=level,
        )
        table = res.contrasts
    elif estimator == "complete_case":
        table = trial.complete_case(frame, outcome=outcome, covariates=covariates, level=level)[1]
    else:
        raise InputError(f"unknown estimator {estimator!r}; known: {sorted(ESTIMATORS)}")
    return {r["timepoint"]: r for r in table.to_dict("records")}


def _num(value) -> float | None:
    """A float for JSON: None for missing or non-finite."""
    return None if value is None else to_jsonable(float(value))


# --------------------------------------------------------------------------------------------------
# Performance measures
# --------------------------------------------------------------------------------------------------


def replicate_rows(replicates: Iterable[dict] | pd.DataFrame) -> pd.DataFrame:
    """One row per replicate x estimator x outcome x visit, from `run_replicate` dicts (or a frame of rows)."""
    if isinstance(replicates, pd.DataFrame):
        frame = replicates.copy()
    else:
        frame = pd.DataFrame([row for rep in replicates for row in rep["rows"]])
    if frame.empty:
        raise AnalysisError("no replicate results to aggregate: run the replicates first")
    absent = [
        c
        for c in ("scenario", "rep", "outcome", "timepoint", "truth", "estimate", "se", "ci_low", "ci_high", "p")
        if c not in frame.columns
    ]
    if absent:
        raise AnalysisError(f"replicate rows lack column(s) {absent}; build them with run_replicate")
    for col, default in (
        ("estimator", "mi_mmrm"),
        ("error", ""),
        ("n_not_converged", 0),
        ("df", np.nan),
        ("fmi", np.nan),
    ):
        if col not in frame.columns:
            frame[col] = default
    for col in ("truth", "estimate", "se", "ci_low", "ci_high", "df", "p", "fmi"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    frame["error"] = frame["error"].fillna("").astype(str)
    keys = ["scenario", "estimator", "outcome", "timepoint", "rep"]
    if frame.duplicated(keys).any():
        raise AnalysisError("a replicate appears twice for the same scenario, estimator, outcome and visit")
    return frame[REPLICATE_COLUMNS].sort_values(keys, kind="stable").reset_index(drop=True)


def performance_measures(
    estimates: np.ndarray,
    ses: np.ndarray,
    ci_low: np.ndarray,
    ci_high: np.ndarray,
    p: np.ndarray,
    truth: float,
    alpha: float,
) -> dict[str, tuple[float, float]]:
    """Performance measure -> (estimate, Monte Carlo SE) over n replicates, Morris et al. 2019, Table 6:

    bias           mean(th_i) - th                  MCSE sqrt(sum (th_i - mean)^2 / (n (n - 1)))
    empirical_se   sqrt(sum (th_i - mean)^2 / (n-1)) MCSE EmpSE / sqrt(2 (n - 1))
    mse            mean((th_i - th)^2)              MCSE sqrt(sum ((th_i - th)^2 - MSE)^2 / (n (n - 1)))
    model_se       sqrt(mean(se_i^2))               MCSE sqrt(Var(se^2) / (4 n ModSE^2))
    rel_error_model_se_pct  100 (ModSE / EmpSE - 1) MCSE 100 (ModSE / EmpSE)
                                                      * sqrt(Var(se^2) / (4 n ModSE^4) + 1 / (2 (n - 1)))
    coverage       mean(ci_low_i <= th <= ci_high_i) MCSE sqrt(C (1 - C) / n)
    rejection      mean(p_i <= alpha)               MCSE sqrt(R (1 - R) / n)
                                                    (power if th != 0, type I error if th = 0)

    where Var(se^2) = sum (se_i^2 - mean(se^2))^2 / (n - 1). Needs n >= 2 replicates."""
    th = np.asarray(estimates, float)
    n = th.size
    if n < 2:
        raise AnalysisError(f"performance measures need at least 2 replicates with an estimate, got {n}")
    dev = th - th.mean()
    ss = float(np.sum(dev**2))
    emp_se = math.sqrt(ss / (n - 1))
    sq_err = (th - truth) ** 2
    mse = float(sq_err.mean())
    var = np.asarray(ses, float) ** 2
    mod_se = math.sqrt(float(var.mean()))
    var_var = float(np.sum((var - var.mean()) ** 2) / (n - 1))
    covered = ((np.asarray(ci_low, float) <= truth) & (truth <= np.asarray(ci_high, float))).astype(float)
    rejected = (np.asarray(p, float) <= alpha).astype(float)
    cov, rej = float(covered.mean()), float(rejected.mean())
    ratio = mod_se / emp_se if emp_se > 0 else math.nan
    return {
        "bias": (float(th.mean() - truth), math.sqrt(ss / (n * (n - 1)))),
        "empirical_se": (emp_se, emp_se / math.sqrt(2 * (n - 1))),
        "mse": (mse, math.sqrt(float(np.sum((sq_err - mse) ** 2) / (n * (n - 1))))),
        "model_se": (mod_se, math.sqrt(var_var / (4 * n * mod_se**2)) if mod_se > 0 else math.nan),
        "rel_error_model_se_pct": (
            100 * (ratio - 1),
            100 * ratio * math.sqrt(var_var / (4 * n * mod_se**4) + 1 / (2 * (n - 1))) if mod_se > 0 else math.nan,
        ),
        "coverage": (cov, math.sqrt(cov * (1 - cov) / n)),
        "rejection": (rej, math.sqrt(rej * (1 - rej) / n)),
    }


def aggregate(replicates: Iterable[dict] | pd.DataFrame, *, alpha: float = 0.05, level: float = 0.95) -> pd.DataFrame:
    """Performance of each estimator per scenario x outcome x visit, as `Estimate` rows (`to_frame`).

    ``quantity`` names the measure (bias, empirical_se, mse, model_se, rel_error_model_se_pct, coverage,
    and power, or type_i_error where the truth is 0), ``se`` is its Monte Carlo SE and the CI is
    estimate -/+ z * MCSE (``level``). Replicates whose analysis failed (an error, or a missing estimate,
    SE or CI) are left out and counted in ``n_failed``; ``n_flagged`` counts replicates in which some
    MMRM fit did not converge (they are kept). ``alpha`` is the level of the test (p <= alpha rejects)."""
    rows = replicate_rows(replicates)
    z = stats.norm.ppf(0.5 + level / 2)
    out = []
    for (scenario, estimator, outcome, timepoint), group in rows.groupby(
        ["scenario", "estimator", "outcome", "timepoint"], sort=False
    ):
        truths = group["truth"].unique()
        if len(truths) != 1:
            raise AnalysisError(
                f"{scenario} / {outcome} / {timepoint}: replicates disagree on the truth {sorted(truths)}"
            )
        truth = float(truths[0])
        ok = (group["error"] == "") & group[["estimate", "se", "ci_low", "ci_high", "p"]].notna().all(axis=1)
        good = group[ok]
        extra = {
            "scenario": scenario,
            "estimator": estimator,
            "outcome": outcome,
            "timepoint": timepoint,
            "truth": truth,
            "n_rep": int(ok.sum()),
            "n_failed": int((~ok).sum()),
            "n_flagged": int((good["n_not_converged"] > 0).sum()),
            "alpha": float(alpha),
        }
        try:
            measures = performance_measures(
                good["estimate"], good["se"], good["ci_low"], good["ci_high"], good["p"], truth, alpha
            )
            note = ""
        except AnalysisError as err:
            measures, note = {k: (math.nan, math.nan) for k in _MEASURE_ORDER}, str(err)
        for measure, (value, mcse) in measures.items():
            if measure == "rejection":
                measure = "type_i_error" if truth == 0 else "power"
            out.append(
                Estimate(
                    quantity=measure,
                    estimate=value,
                    se=mcse,
                    ci_low=value - z * mcse,
                    ci_high=value + z * mcse,
                    method=f"{MORRIS}; MCSE as se; Wald {level:.0%} CI",
                    notes=note,
                    extra=extra,
                )
            )
    return identifiers_first(to_frame(out))  # scenario, estimator, outcome, timepoint first


_MEASURE_ORDER = ["bias", "empirical_se", "mse", "model_se", "rel_error_model_se_pct", "coverage", "rejection"]


def performance_table(performance: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """One row per scenario x estimator x outcome x visit; each measure shown as 'estimate (MCSE)'."""
    keys = ["scenario", "estimator", "outcome", "timepoint", "truth", "n_rep", "n_failed", "n_flagged"]
    shown = performance.assign(
        measure=performance["quantity"].replace(
            {"power": "power / type I error", "type_i_error": "power / type I error"}
        ),
        cell=[
            ("" if pd.isna(e) else f"{e:.{digits}f} ({s:.{digits}f})")
            for e, s in zip(performance["estimate"], performance["se"])
        ],
    )
    wide = shown.pivot_table(index=keys, columns="measure", values="cell", aggfunc="first", sort=False)
    order = ["bias", "empirical_se", "model_se", "rel_error_model_se_pct", "mse", "coverage", "power / type I error"]
    return wide.reindex(columns=order).reset_index().rename_axis(None, axis=1)


# --------------------------------------------------------------------------------------------------
# Flags for the report (rendered by imrstats.trial.simstudy_section)
# --------------------------------------------------------------------------------------------------


def performance_flags(performance: pd.DataFrame, n_target: int) -> list[str]:
    """What the report must show: failed or non-converged replicates, missing replicates, notes per cell."""
    flags = []
    groups = performance.drop_duplicates(["scenario", "estimator", "outcome", "timepoint"])
    for r in groups.itertuples():
        where = f"{r.scenario} / {r.estimator} / {r.outcome} at {r.timepoint}"
        if r.n_failed:
            flags.append(f"{where}: {r.n_failed} of {r.n_rep + r.n_failed} replicates failed and are left out")
        if r.n_flagged:
            flags.append(f"{where}: {r.n_flagged} replicates had an MMRM fit that did not converge")
        if r.n_rep + r.n_failed != n_target:
            flags.append(f"{where}: {r.n_rep + r.n_failed} replicates found, {n_target} configured")
        if r.notes:
            flags.append(f"{where}: {r.notes}")
    return flags
