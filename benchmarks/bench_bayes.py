"""Wall time of the whole Bayesian meta-analysis stage on the default-sized workload, and the same
work in R (metafor REML; brms if installed) on the same input.

Workload (synthetic, deterministic): 11 outcomes with 3-10 studies each x 4 tau priors
(HalfNormal(0.5), HalfCauchy(0.5), Rhodes mental-health log-t, Turner mental-health log-normal),
plus a cumulative analysis by year of a 6-study outcome under HalfNormal(0.5); every fit 4 chains x
(1000 tune + 1000 draws), each gated on R-hat / ESS / divergences.

Part d (``--default-config``): the Bayesian stage itself on the default config, ``meta_bayes.bayes_pooling``
on the effects the meta stage pools (main prior, sensitivity priors, cumulative by year, implementation
proportions; gate retries included), timed in a fresh Python process; those effects are exported to
benchmarks/results/bayes_default_input.csv and brms runs the fits it can express on them.

Run:  .venv/bin/python benchmarks/bench_bayes.py [--no-r] [--default-config]
      (benchmarks/run_all.py reuses its functions)
Writes benchmarks/results/bayes.json and benchmarks/results/bayes_input.csv (the shared input); with
--default-config, bayes_default.json and bayes_default_input.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SEED = 20241122
DEFAULT_INPUT_CSV = RESULTS / "bayes_default_input.csv"
BRMS_TAU_PRIORS = ("half_normal_0.5", "half_cauchy_0.5")  # the shipped tau priors brms has a prior class for


def synthetic_outcomes(seed: int = SEED) -> pd.DataFrame:
    """11 outcomes, 3-10 studies each, SMD-like effects; years 2007-2023."""
    rng = np.random.default_rng(seed)
    rows = []
    for o in range(11):
        k = int(rng.integers(3, 11)) if o else 6
        mu, tau = rng.normal(0.2, 0.1), abs(rng.normal(0, 0.15))
        se = rng.uniform(0.1, 0.3, k)
        yi = rng.normal(mu, np.sqrt(tau**2 + se**2))
        years = np.sort(rng.integers(2007, 2024, k))
        for j in range(k):
            rows.append(
                {
                    "outcome": f"outcome_{o + 1:02d}",
                    "study": f"S{j + 1}",
                    "year": int(years[j]),
                    "yi": round(float(yi[j]), 4),
                    "sei": round(float(se[j]), 4),
                }
            )
    return pd.DataFrame(rows)


def run_python(data: pd.DataFrame) -> dict:
    t0 = time.perf_counter()
    from imrstats.core.seeds import spawn_seed
    from imrstats.meta import bayes

    import_s = time.perf_counter() - t0
    priors = {
        k: bayes.SHIPPED_TAU_PRIORS[k]
        for k in (
            "half_normal_0.5",
            "half_cauchy_0.5",
            "rhodes_mental_health_nonpharm",
            "turner_mental_health_nonpharm_vs_control",
        )
    }
    sampler = bayes.BayesMeta(capacity=int(data.groupby("outcome").size().max()))
    t1, c1 = time.perf_counter(), time.process_time()
    sampler.compile()
    compile_s, compile_cpu = time.perf_counter() - t1, time.process_time() - c1
    t2 = time.perf_counter()
    tables = []
    for i, (outcome, d) in enumerate(data.groupby("outcome", sort=True)):
        tab = bayes.prior_sensitivity(
            sampler, d.yi, d.sei, d.study, priors=priors, prior_mu=bayes.Normal(0, 1), mid=0.2, seed=spawn_seed(SEED, i)
        )
        tables.append(tab.assign(outcome=outcome))
    fits_s = time.perf_counter() - t2
    t3 = time.perf_counter()
    first = data.loc[data.outcome == "outcome_01"]
    cum = bayes.cumulative_bayes(
        sampler, first.yi, first.sei, first.year, first.study, prior_mu=bayes.Normal(0, 1), mid=0.2, seed=SEED
    )
    cum_s = time.perf_counter() - t3
    allfits = pd.concat(tables + [cum.assign(outcome="cumulative")], ignore_index=True)
    return {
        "import_s": import_s,
        "compile_s": compile_s,
        "compile_cpu_s": compile_cpu,
        "outcome_x_prior_fits": int(sum(len(t) for t in tables)),
        "outcome_x_prior_s": fits_s,
        "cumulative_fits": int(len(cum)),
        "cumulative_s": cum_s,
        "stage_total_s": import_s + compile_s + fits_s + cum_s,
        "gate_failures": int((~allfits["diagnostics_ok"].astype(bool)).sum()),
        "max_rhat": float(allfits["max_rhat"].max()),
        "min_ess_bulk": float(allfits["min_ess_bulk"].min()),
        "divergences": int(allfits["divergences"].sum()),
    }


def run_r(
    input_csv: Path, *, priors: tuple[str, ...] = (), options: dict | None = None, timeout: float | None = None
) -> dict:
    """Run benchmarks/r/bayes_brms.R on `input_csv` (optionally only the named brms priors; `options` become
    --key=value arguments, e.g. chains, warmup, draws, adapt-delta) and parse its "TIMING key value" lines.
    Never raises: a missing Rscript, a timeout or a failing script is recorded."""
    if shutil.which("Rscript") is None:
        return {"status": "R not available (Rscript not found)"}
    script = HERE / "r" / "bayes_brms.R"
    flags = [f"--{key}={value}" for key, value in (options or {}).items()]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            ["Rscript", str(script), *flags, str(input_csv), *priors], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s", "process_wall_s": time.perf_counter() - t0}
    out = {"process_wall_s": time.perf_counter() - t0, "returncode": proc.returncode}
    for line in proc.stdout.splitlines():
        if line.startswith("TIMING "):
            _, key, value = line.split()
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    out["status"] = "ok" if proc.returncode == 0 else "failed"
    if out.get("brms_status") == "not_installed":
        out["status"] = "brms not installed"
    if proc.returncode:
        out["stderr_tail"] = proc.stderr[-2000:]
    return out


# ---------------------------------------------------------------------------------------------- part d


def default_stage_inputs(config: dict | None = None) -> tuple[dict, dict, int]:
    """(pooling_inputs, settings, seed) exactly as the pipeline's meta stage hands them to
    ``meta_bayes.bayes_pooling``: ``registry.run_stage("meta")`` -> ``run_meta_stage_with_bayes`` (the checked
    ``meta`` section, ``bayes`` included) -> ``run_meta_stage`` (the included rows per outcome, which is
    ``meta_stage.outcome_inputs``) -> the hook, called with the meta settings and the stage seed
    ``stage_seed("meta", config)``."""
    from imrstats.config import load_config, section_settings, stage_seed
    from imrstats.data.published import load_published_outcomes
    from imrstats.meta.stage import outcome_inputs

    config = load_config() if config is None else config
    s = section_settings("meta", config["meta"])
    inputs = outcome_inputs(load_published_outcomes(s["published_outcomes"]), s)
    return inputs, s, stage_seed("meta", config)


def _cpu_now() -> float:
    """CPU seconds of this process (all threads: nutpie samples chains on threads) plus its reaped children
    (the C compiler PyTensor starts)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def default_stage_rows(inputs: dict, settings: dict, result) -> pd.DataFrame:
    """The effects the stage pooled, one row per study, with the priors brms can express per outcome:
    outcome, study, year, yi, sei, measure, mu_loc, mu_scale, tau_priors (';'-separated), cumulative."""
    from imrstats.meta.bayes_stage import implementation_inputs  # the very rows the stage pools

    b = settings["bayes"]
    pooled = {label for label in result.posteriors if label in inputs}
    smd_keys = [k for k in dict.fromkeys([b["tau_prior"], *b["sensitivity_priors"]]) if k in BRMS_TAU_PRIORS]
    log_or_keys = [k for k in dict.fromkeys([b["tau_prior_log_or"], *b["sensitivity_priors"]]) if k in BRMS_TAU_PRIORS]
    frames = []
    for label, data in inputs.items():
        if label not in pooled:
            continue
        keys = smd_keys if data["measure"].iloc[0] == "SMD" else log_or_keys
        frames.append(
            data[["study", "year", "yi", "sei", "measure"]].assign(
                outcome=label,
                mu_loc=b["prior_mu"]["loc"],
                mu_scale=b["prior_mu"]["scale"],
                tau_priors=";".join(keys),
                cumulative=bool(b["cumulative"]),
            )
        )
    impl = b["implementation"]
    tau = impl["tau_prior"]
    if impl["enabled"] and tau["family"] in ("half_normal", "half_cauchy") and not tau.get("location"):
        for measure, data in implementation_inputs(settings).items():
            if f"implementation_{measure}" in result.posteriors:
                frames.append(
                    data[["study", "year", "yi", "sei", "measure"]].assign(
                        outcome=f"implementation_{measure}",
                        mu_loc=impl["prior_mu"]["loc"],
                        mu_scale=impl["prior_mu"]["scale"],
                        tau_priors=f"{tau['family']}_{float(tau['scale']):g}",
                        cumulative=False,
                    )
                )
    columns = ["outcome", "study", "year", "yi", "sei", "measure", "mu_loc", "mu_scale", "tau_priors", "cumulative"]
    return pd.concat(frames, ignore_index=True)[columns]


def run_default_stage_here(input_csv: Path) -> dict:
    """Time the Bayesian stage on the default config in this process (run it in a fresh one: see
    ``run_default_stage``): import, pooling inputs, then ``bayes_pooling`` (compile, every fit with its gate
    retries, tables and figures). Writes the pooled effects to `input_csv` afterwards (not timed)."""
    t0, c0 = time.perf_counter(), _cpu_now()
    from imrstats.meta import bayes_stage as meta_bayes

    t1 = time.perf_counter()
    inputs, settings, seed = default_stage_inputs()
    t2, c2 = time.perf_counter(), _cpu_now()
    result = meta_bayes.bayes_pooling(inputs, settings, seed)
    t3, c3 = time.perf_counter(), _cpu_now()
    fits = result.tables["bayes_diagnostics"]
    b = settings["bayes"]
    sampler = meta_bayes.shared_sampler(
        result.record["sampler"]["capacity"], float(b["target_accept"]), b["parameterization"]
    )
    default_stage_rows(inputs, settings, result).to_csv(input_csv, index=False)
    by_analysis = fits["analysis"].value_counts().to_dict()
    return {
        "status": "ok",
        "seed": seed,
        "import_s": t1 - t0,
        "inputs_s": t2 - t1,
        "pooling_s": t3 - t2,
        "pooling_cpu_s": c3 - c2,
        "fits_incl_compile_s": result.seconds,
        "compile_s": sum(log["seconds"] for log in sampler.compile_log),
        "compiles": len(sampler.compile_log),
        "stage_total_s": t3 - t0,
        "stage_total_cpu_s": c3 - c0,
        "fits": int(len(fits)),
        "fits_by_analysis": {str(k): int(v) for k, v in by_analysis.items()},
        "distinct_priors": int(fits["prior"].nunique()),
        "retries": int((fits["attempts"] > 1).sum()),
        "gate_failures": int((~fits["passed"].astype(bool)).sum()),
        "sampler_runs": int(fits["attempts"].sum()),
        "divergences": int(fits["divergences"].sum()),
        "max_rhat": float(fits["max_rhat"].max()),
        "min_ess_bulk": float(fits["min_ess_bulk"].min()),
        "outcomes": sorted(result.posteriors),
        "flags": len(result.flags),
        "settings": {
            k: b[k]
            for k in (
                "chains",
                "draws",
                "tune",
                "target_accept",
                "parameterization",
                "prior_mu",
                "tau_prior",
                "sensitivity_priors",
                "cumulative",
                "min_studies",
            )
        },
    }


def run_default_stage(input_csv: Path = DEFAULT_INPUT_CSV, *, timeout: float | None = None) -> dict:
    """``run_default_stage_here`` in a fresh Python process (so import and compile are paid as the pipeline's
    meta rule pays them); parses its RESULT line and adds the process's wall seconds (interpreter start
    included). Never raises: a failure is recorded in ``status``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--default-stage-child", str(input_csv)]
    env = dict(os.environ, IMRSTATS_PROGRESS="0", MPLBACKEND="Agg")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s", "process_wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        return {
            "status": f"failed (exit {proc.returncode})",
            "process_wall_s": wall,
            "stderr_tail": proc.stderr[-2000:],
        }
    return {**json.loads(lines[-1][len("RESULT ") :]), "process_wall_s": wall}


def r_options_from_settings(settings: dict) -> dict:
    """brms run settings matching the stage's: chains, warmup = tune, draws, adapt_delta = target_accept; the
    cumulative step holding every study is skipped because the stage reuses the main fit there."""
    return {
        "chains": settings["chains"],
        "warmup": settings["tune"],
        "draws": settings["draws"],
        "adapt-delta": settings["target_accept"],
        "cores": 2,
        "cumulative-full-step": "no",
    }


def bench_default_stage(*, skip_r: bool = False, timeout: float | None = None) -> dict:
    """Part d: the stage in a fresh process, then metafor and brms on the exported input."""
    py = run_default_stage(DEFAULT_INPUT_CSV, timeout=timeout)
    out: dict = {"input_csv": str(DEFAULT_INPUT_CSV.relative_to(HERE.parent)), "python": py}
    if py.get("status") != "ok":
        out["r"] = {"status": "skipped (Python side failed)"}
        return out
    data = pd.read_csv(DEFAULT_INPUT_CSV)
    out["outcomes"] = int(data["outcome"].nunique())
    out["rows"] = int(len(data))
    out["python_rma_reml_s"] = time_python_rma(data)
    out["r"] = (
        {"status": "skipped"}
        if skip_r
        else run_r(DEFAULT_INPUT_CSV, options=r_options_from_settings(py["settings"]), timeout=timeout)
    )
    return out


def time_python_rma(data: pd.DataFrame) -> float:
    """imrstats.meta.random_effects.rma (REML) on every outcome: the like-for-like partner of metafor's timing."""
    from imrstats.meta.random_effects import rma

    t0 = time.perf_counter()
    for _, d in data.groupby("outcome", sort=True):
        rma(d["yi"].to_numpy(), d["sei"].to_numpy() ** 2, method="REML")
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- part e: exact


EXACT_JSON = RESULTS / "bayes_exact.json"
EXACT_WORKLOAD_CSV = RESULTS / "bayes_exact_workload.csv"
EXACT_R_OUT_CSV = RESULTS / "bayes_exact_r_values.csv"


def default_workload(config: dict | None = None) -> tuple[list[dict], dict, int]:
    """Every fit of the Bayesian work of the default config, as the meta stage plans it: per pooled SMD / log OR
    outcome (k >= min_studies) the main prior, each other sensitivity prior, the cumulative steps by year (k >=
    min_studies; the step holding every study is the main fit, reused), and the two implementation proportions
    (logit scale, their own priors). Returns (fits, bayes settings, seed); a fit: outcome, analysis, prior,
    step, y, se, labels, prior_mu (loc, scale), prior_tau, mid."""
    from imrstats.meta.bayes import SHIPPED_TAU_PRIORS, tau_prior_from_spec

    inputs, settings, seed = default_stage_inputs(config)
    b = settings["bayes"]
    mid = settings.get("mid")
    mu = (float(b["prior_mu"]["loc"]), float(b["prior_mu"]["scale"]))
    fits: list[dict] = []

    def base(label, data, prior_mu, mid_here):
        labels = [f"{s} ({y})" for s, y in zip(data["study"], data["year"])]
        return dict(
            outcome=label,
            y=data["yi"].to_numpy(float),
            se=data["sei"].to_numpy(float),
            years=data["year"].to_numpy(),
            labels=labels,
            prior_mu=prior_mu,
            mid=mid_here,
        )

    for label, data in inputs.items():
        if data is None or len(data) < b["min_studies"] or data["measure"].nunique() != 1:
            continue
        measure = data["measure"].iloc[0]
        if measure not in ("SMD", "log OR"):
            continue
        main = b["tau_prior"] if measure == "SMD" else b["tau_prior_log_or"]
        one = base(label, data.reset_index(drop=True), mu, mid if measure == "SMD" else None)
        for analysis, key in [("main", main)] + [
            ("prior sensitivity", k) for k in b["sensitivity_priors"] if k != main
        ]:
            fits.append(dict(one, analysis=analysis, prior=key, step="", prior_tau=SHIPPED_TAU_PRIORS[key].prior))
        if b["cumulative"]:
            order = np.argsort(one["years"], kind="stable")
            for year in np.unique(one["years"]):
                idx = order[one["years"][order] <= year]
                if idx.size < b["min_studies"] or idx.size == one["y"].size:
                    continue
                step = dict(one, y=one["y"][idx], se=one["se"][idx], labels=[one["labels"][i] for i in idx])
                fits.append(
                    dict(
                        step,
                        analysis="cumulative",
                        prior=main,
                        step=int(year),
                        prior_tau=SHIPPED_TAU_PRIORS[main].prior,
                    )
                )
    impl = b["implementation"]
    if impl["enabled"]:
        from imrstats.meta.bayes_stage import implementation_inputs

        spec = impl["tau_prior"]
        tau = tau_prior_from_spec(
            spec["family"], float(spec.get("location") or 0.0), float(spec["scale"]), float(spec.get("nu", 5.0))
        )
        impl_mu = (float(impl["prior_mu"]["loc"]), float(impl["prior_mu"]["scale"]))
        for measure, data in implementation_inputs(settings).items():
            if len(data) >= b["min_studies"]:
                one = base(f"implementation_{measure}", data, impl_mu, None)
                fits.append(dict(one, analysis="main", prior=tau.label(), step="", prior_tau=tau))
    return fits, b, seed


def _prior_columns(prior) -> dict:
    """The tau prior as plain columns for the R script."""
    from imrstats.meta.bayes import HalfCauchy, HalfNormal, LogNormalTau2, LogTTau2, UniformTau

    if isinstance(prior, HalfNormal):
        return dict(family="half_normal", location=0.0, scale=prior.scale, nu=np.nan)
    if isinstance(prior, HalfCauchy):
        return dict(family="half_cauchy", location=0.0, scale=prior.scale, nu=np.nan)
    if isinstance(prior, LogNormalTau2):
        return dict(family="lognormal_tau2", location=prior.mean, scale=prior.sd, nu=np.nan)
    if isinstance(prior, LogTTau2):
        return dict(family="log_t_tau2", location=prior.location, scale=prior.scale, nu=prior.nu)
    if isinstance(prior, UniformTau):
        return dict(family="uniform", location=0.0, scale=prior.upper, nu=np.nan)
    raise TypeError(type(prior).__name__)


def workload_frame(fits: list[dict]) -> pd.DataFrame:
    """One row per fit and study (fit_id, outcome, analysis, prior, step, tau prior columns, mu prior, mid, study,
    yi, sei): the input of benchmarks/r/bayes_exact_quadrature.R."""
    rows = []
    for i, f in enumerate(fits):
        head = dict(
            fit_id=i,
            outcome=f["outcome"],
            analysis=f["analysis"],
            prior=f["prior"],
            step=f["step"],
            **_prior_columns(f["prior_tau"]),
            mu_loc=f["prior_mu"][0],
            mu_scale=f["prior_mu"][1],
            mid=np.nan if f["mid"] is None else float(f["mid"]),
        )
        rows += [dict(head, study=lab, yi=y, sei=s) for lab, y, s in zip(f["labels"], f["y"], f["se"])]
    return pd.DataFrame(rows)


def brms_frame(fits: list[dict]) -> pd.DataFrame:
    """The same effects in bayes_brms.R's input format: per outcome the priors brms can express among those the
    workload fits (half-normal / half-Cauchy), cumulative for the outcomes with cumulative steps."""
    from imrstats.meta.bayes import HalfCauchy, HalfNormal

    frames = []
    for outcome in dict.fromkeys(f["outcome"] for f in fits):
        mine = [f for f in fits if f["outcome"] == outcome]
        full = next(f for f in mine if f["analysis"] == "main")
        keys = []
        for f in mine:
            if f["analysis"] == "cumulative":
                continue
            if isinstance(f["prior_tau"], HalfNormal):
                keys.append(f"half_normal_{f['prior_tau'].scale:g}")
            elif isinstance(f["prior_tau"], HalfCauchy):
                keys.append(f"half_cauchy_{f['prior_tau'].scale:g}")
        if not keys:
            continue
        frames.append(
            pd.DataFrame(
                dict(
                    outcome=outcome,
                    study=full["labels"],
                    year=full["years"],
                    yi=full["y"],
                    sei=full["se"],
                    measure="",
                    mu_loc=full["prior_mu"][0],
                    mu_scale=full["prior_mu"][1],
                    tau_priors=";".join(dict.fromkeys(keys)),
                    cumulative=any(f["analysis"] == "cumulative" for f in mine),
                )
            )
        )
    return pd.concat(frames, ignore_index=True)


def run_exact_here(draws: int | None = None, repeats: int = 5) -> dict:
    """Time the whole Bayesian work of the default config with the exact engine in this process: import, the
    inputs, then every fit (fit_exact: posterior summaries of mu, tau, mu_new and each theta_i, probabilities,
    shortest intervals, marginal likelihood and Bayes factors; to_frame) and the exact draws of every main fit
    (meta.bayes.exact_draws, as the stage writes them to netCDF). The fits are timed `repeats` times (the first
    pass includes any lazy set-up); the median pass is reported with the first. Writes the R script's input."""
    t0, c0 = time.perf_counter(), _cpu_now()
    from imrstats.meta import bayes_exact

    t1 = time.perf_counter()
    fits, b, seed = default_workload()
    t2 = time.perf_counter()
    n_draws = int(draws or b.get("exact_draws", 4000))
    passes, cpu_passes, values = [], [], []
    for r in range(repeats):
        w0, p0 = time.perf_counter(), _cpu_now()
        values = []
        for i, f in enumerate(fits):
            fit = bayes_exact.fit_exact(
                f["y"], f["se"], f["labels"], prior_mu=f["prior_mu"], prior_tau=f["prior_tau"], mid=f["mid"]
            )
            frame = fit.to_frame()
            _ = fit.bayes_factors
            if f["analysis"] == "main":
                bayes_exact.draw(fit, n_draws, int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
            row = frame.loc[frame["parameter"] == "mu"].iloc[0]
            tau_row = frame.loc[frame["parameter"] == "tau"].iloc[0]
            values.append(
                dict(
                    fit_id=i,
                    mu_mean=row["mean"],
                    mu_sd=row["sd"],
                    mu_q025=row["ci_low"],
                    mu_q975=row["ci_high"],
                    tau_mean=tau_row["mean"],
                    p_mu_gt_0=row["p_gt_0"],
                )
            )
        passes.append(time.perf_counter() - w0)
        cpu_passes.append(_cpu_now() - p0)
    t3 = time.perf_counter()
    workload_frame(fits).to_csv(EXACT_WORKLOAD_CSV, index=False)
    by_analysis = pd.Series([f["analysis"] for f in fits]).value_counts().to_dict()
    return {
        "status": "ok",
        "import_s": t1 - t0,
        "inputs_s": t2 - t1,
        "fits": len(fits),
        "fits_by_analysis": {str(k): int(v) for k, v in by_analysis.items()},
        "main_fits_with_draws": int(by_analysis.get("main", 0)),
        "draws_per_main_fit": n_draws,
        "first_pass_s": passes[0],
        "first_pass_cpu_s": cpu_passes[0],
        "median_pass_s": float(np.median(passes)),
        "median_pass_cpu_s": float(np.median(cpu_passes)),
        "per_fit_ms": 1e3 * float(np.median(passes)) / len(fits),
        "total_first_pass_incl_import_and_inputs_s": (t1 - t0) + (t2 - t1) + passes[0],
        "cpu_total_s": _cpu_now() - c0,
        "wall_total_s": t3 - t0,
        "values": values,
    }


def run_nuts_same_fits_here() -> dict:
    """The same fits with the NUTS path (imrstats.meta.bayes, one compiled model, the config's chains / tune /
    draws / target_accept / parameterization), compile included, each fit's gate checked (no retry)."""
    t0, c0 = time.perf_counter(), _cpu_now()
    from imrstats.meta.bayes import Normal, shared_sampler

    t1 = time.perf_counter()
    fits, b, seed = default_workload()
    t2 = time.perf_counter()
    k_max = max(len(f["y"]) for f in fits)
    sampler = shared_sampler(max(8, 8 * int(np.ceil(k_max / 8))), float(b["target_accept"]), b["parameterization"])
    sampler.compile()
    t3 = time.perf_counter()
    failed, values = 0, []
    for i, f in enumerate(fits):
        res = sampler.fit(
            f["y"],
            f["se"],
            f["labels"],
            prior_mu=Normal(*f["prior_mu"]),
            prior_tau=f["prior_tau"],
            mid=f["mid"],
            seed=int(np.random.SeedSequence([seed, i]).generate_state(1)[0]),
            draws=int(b["draws"]),
            tune=int(b["tune"]),
            chains=int(b["chains"]),
        )
        failed += not res.diagnostics.ok
        values.append(dict(fit_id=i, mu_mean=res.estimate("mu"), tau_mean=res.estimate("tau")))
    t4 = time.perf_counter()
    return {
        "status": "ok",
        "import_s": t1 - t0,
        "inputs_s": t2 - t1,
        "compile_s": t3 - t2,
        "fits_s": t4 - t3,
        "fits": len(fits),
        "gate_failures_no_retry": failed,
        "total_s": t4 - t0,
        "cpu_total_s": _cpu_now() - c0,
        "settings": {k: b[k] for k in ("chains", "draws", "tune", "target_accept", "parameterization")},
        "values": values,
    }


def _child(kind: str, timeout: float | None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), f"--{kind}-child"]
    env = dict(os.environ, IMRSTATS_PROGRESS="0", MPLBACKEND="Agg")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        return {"status": f"failed (exit {proc.returncode})", "stderr_tail": proc.stderr[-2000:]}
    return {**json.loads(lines[-1][len("RESULT ") :]), "process_wall_s": time.perf_counter() - t0}


def run_r_exact(timeout: float | None = None) -> dict:
    """benchmarks/r/bayes_exact_quadrature.R on the exported workload: R's own exact posterior (integrate over
    log tau, uniroot for quantiles) of every fit; parses its TIMING lines."""
    if shutil.which("Rscript") is None:
        return {"status": "R not available (Rscript not found)"}
    script = HERE / "r" / "bayes_exact_quadrature.R"
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            ["Rscript", str(script), str(EXACT_WORKLOAD_CSV), str(EXACT_R_OUT_CSV)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s"}
    out: dict = {"process_wall_s": time.perf_counter() - t0, "status": "ok" if proc.returncode == 0 else "failed"}
    for line in proc.stdout.splitlines():
        if line.startswith("TIMING "):
            _, key, value = line.split()
            out[key] = float(value)
    if proc.returncode:
        out["stderr_tail"] = proc.stderr[-2000:]
    return out


def _max_rel_diff(a: list[dict], b: pd.DataFrame | list[dict], cols) -> dict:
    a = pd.DataFrame(a).set_index("fit_id")
    b = (b if isinstance(b, pd.DataFrame) else pd.DataFrame(b)).set_index("fit_id").loc[a.index]
    return {c: float((abs(a[c] - b[c]) / abs(b[c]).clip(lower=1e-12)).max()) for c in cols if c in b.columns}


def bench_exact(*, skip_r: bool = False, skip_brms: bool = False, timeout: float | None = None) -> dict:
    """Part e: the whole Bayesian work of the default config, fit by fit, with the exact engine (fresh process),
    the NUTS path on the same fits (fresh process), R's own quadrature on the same fits, and brms on the fits it
    can express (bayes_brms.R, as part d)."""
    load = os.getloadavg()
    exact = _child("exact", timeout)
    out: dict = {"load_avg_start": list(load), "exact": exact}
    out["nuts"] = _child("nuts", timeout)
    if exact.get("status") == "ok" and out["nuts"].get("status") == "ok":
        out["exact_vs_nuts_mu_mean_abs_diff_max"] = float(
            max(abs(a["mu_mean"] - b["mu_mean"]) for a, b in zip(exact["values"], out["nuts"]["values"]))
        )
    if skip_r or exact.get("status") != "ok":
        out["r_exact"] = {"status": "skipped"}
        out["brms"] = {"status": "skipped"}
    else:
        out["r_exact"] = run_r_exact(timeout)
        if out["r_exact"].get("status") == "ok":
            r_values = pd.read_csv(EXACT_R_OUT_CSV)
            out["r_exact"]["max_rel_diff_vs_python_exact"] = _max_rel_diff(
                exact["values"], r_values, ["mu_mean", "mu_sd", "mu_q025", "mu_q975", "tau_mean", "p_mu_gt_0"]
            )
        if skip_brms:
            out["brms"] = {"status": "skipped"}
        else:
            fits, b, _ = default_workload()
            brms_csv = RESULTS / "bayes_exact_brms_input.csv"
            brms_frame(fits).to_csv(brms_csv, index=False)
            options = r_options_from_settings(b)
            out["brms"] = run_r(brms_csv, options=options, timeout=timeout)
    out["load_avg_end"] = list(os.getloadavg())
    out["summary"] = summarise_exact(out)
    return out


def summarise_exact(out: dict) -> dict:
    ex, nuts, r, brms = out["exact"], out["nuts"], out.get("r_exact", {}), out.get("brms", {})
    s = {
        "fits": ex.get("fits"),
        "exact_fits_s": ex.get("first_pass_s"),
        "exact_fits_median_s": ex.get("median_pass_s"),
        "exact_per_fit_ms": ex.get("per_fit_ms"),
        "exact_incl_import_inputs_s": ex.get("total_first_pass_incl_import_and_inputs_s"),
        "exact_process_wall_s": ex.get("process_wall_s"),
        "nuts_total_s": nuts.get("total_s"),
        "nuts_compile_s": nuts.get("compile_s"),
        "nuts_fits_s": nuts.get("fits_s"),
        "nuts_gate_failures": nuts.get("gate_failures_no_retry"),
        "r_exact_s": r.get("r_exact_fits_s"),
        "brms_s": brms.get("brms_total_s"),
        "brms_fits": brms.get("brms_fits"),
    }
    s.update(
        exact_fits_cpu_s=ex.get("first_pass_cpu_s"),
        nuts_cpu_total_s=nuts.get("cpu_total_s"),
        r_exact_cpu_s=r.get("r_exact_fits_cpu_s"),
        brms_status=brms.get("status"),
    )
    if s["brms_s"] is None:
        # brms could not run here: its figures of the last full run (part d, the same effects and settings)
        previous = _previous_brms()
        s.update(previous)
        s["brms_s"], s["brms_fits"] = previous.get("brms_previous_s"), previous.get("brms_previous_fits")
    first = s["exact_fits_s"]
    for name in ("nuts_total_s", "r_exact_s", "brms_s"):
        s[name.replace("_s", "") + "_over_exact"] = (s[name] / first) if s[name] and first else None
    cpu = s["exact_fits_cpu_s"]
    for name in ("nuts_cpu_total_s", "r_exact_cpu_s"):
        s[name.replace("_s", "") + "_over_exact_cpu"] = (s[name] / cpu) if s[name] and cpu else None
    if s["brms_fits"] and s["brms_s"] and ex.get("per_fit_ms"):
        s["brms_per_fit_over_exact_per_fit"] = (s["brms_s"] / s["brms_fits"]) / (ex["per_fit_ms"] / 1e3)
    return s


def _previous_brms() -> dict:
    """brms's part-d figures from results/latest.json (the last full run), with its date."""
    try:
        record = json.loads((RESULTS / "latest.json").read_text())
        d = record["summary"]["bayes_default"]
        return {
            "brms_previous_s": d["brms_measured_s"],
            "brms_previous_fits": d["brms_fits"],
            "brms_previous_date": record["machine"]["date"],
        }
    except (OSError, KeyError, ValueError, TypeError):
        return {}


def write_exact_markdown(record: dict) -> Path:
    """results/bayes_exact.md: run_all's table of part e, with the date, machine and load average."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_all", HERE / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    info = run_all.machine_info()
    head = [
        f"# Bayesian benchmark, exact engine (part e): {info['date']}",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['mem_gib']} GiB; load average at start "
        f"{' / '.join(f'{x:.2f}' for x in record['load_avg_start'])}, at end "
        f"{' / '.join(f'{x:.2f}' for x in record['load_avg_end'])} (1 / 5 / 15 min). Wall-clock seconds.",
        "",
    ]
    path = RESULTS / "bayes_exact.md"
    path.write_text("\n".join(head + run_all.markdown_bayes_exact(record)) + "\n")
    return path


def append_history(record: dict) -> None:
    """One line in results/history.jsonl, as run_all writes for its runs (parts: bayes_exact)."""
    import datetime as dt

    line = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": False,
        "parts": ["bayes_exact"],
        "load_avg_start": [round(x, 2) for x in record["load_avg_start"]],
        "summary": {"bayes_exact": record["summary"]},
    }
    with (RESULTS / "history.jsonl").open("a") as handle:
        handle.write(json.dumps(line, default=str) + "\n")


def main() -> None:
    if len(sys.argv) == 2 and sys.argv[1] == "--exact-child":
        print("RESULT " + json.dumps(run_exact_here()), flush=True)
        return
    if len(sys.argv) == 2 and sys.argv[1] == "--nuts-child":
        print("RESULT " + json.dumps(run_nuts_same_fits_here()), flush=True)
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--default-stage-child":
        print("RESULT " + json.dumps(run_default_stage_here(Path(sys.argv[2]))), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-r", action="store_true", help="skip the R comparison")
    parser.add_argument(
        "--default-config",
        action="store_true",
        help="part d instead: the Bayesian stage on the default config (writes bayes_default.json)",
    )
    parser.add_argument(
        "--exact",
        action="store_true",
        help="part e instead: the default config's Bayesian work with the exact engine vs NUTS, R quadrature and "
        "brms on the same fits (writes bayes_exact.json)",
    )
    parser.add_argument("--no-brms", action="store_true", help="with --exact: skip brms (R quadrature still runs)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if args.exact:
        record = bench_exact(skip_r=args.no_r, skip_brms=args.no_brms)
        EXACT_JSON.write_text(json.dumps(record, indent=2))
        write_exact_markdown(record)
        append_history(record)
        print(json.dumps(record["summary"], indent=2))
        return
    if args.default_config:
        record = bench_default_stage(skip_r=args.no_r)
        (RESULTS / "bayes_default.json").write_text(json.dumps(record, indent=2))
        print(json.dumps(record, indent=2))
        return
    data = synthetic_outcomes()
    input_csv = RESULTS / "bayes_input.csv"
    data.to_csv(input_csv, index=False)
    py = run_python(data)
    r = {"status": "skipped"} if args.no_r else run_r(input_csv)
    record = {
        "python": py,
        "r": r,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_1min": os.getloadavg()[0]},
    }
    (RESULTS / "bayes.json").write_text(json.dumps(record, indent=2))
    print(f"{'step':40s} {'seconds':>9s}")
    for key in ("import_s", "compile_s", "compile_cpu_s", "outcome_x_prior_s", "cumulative_s", "stage_total_s"):
        print(f"python {key:33s} {py[key]:9.1f}")
    print(
        f"python fits: {py['outcome_x_prior_fits']} outcome x prior + {py['cumulative_fits']} cumulative; "
        f"gate failures {py['gate_failures']}, divergences {py['divergences']}, "
        f"max R-hat {py['max_rhat']:.4f}, min bulk ESS {py['min_ess_bulk']:.0f}"
    )
    for key, value in r.items():
        if key != "stderr_tail":
            print(f"R      {key:33s} {value}")
    print(f"load average (1 min) at the end: {record['machine']['load_avg_1min']:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
