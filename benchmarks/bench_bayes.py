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


def main() -> None:
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
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
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
