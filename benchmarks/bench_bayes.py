"""Wall time of the whole Bayesian meta-analysis stage on the default-sized workload, and the same
work in R (metafor REML; brms if installed) on the same input.

Workload (synthetic, deterministic): 11 outcomes with 3-10 studies each x 4 tau priors
(HalfNormal(0.5), HalfCauchy(0.5), Rhodes mental-health log-t, Turner mental-health log-normal),
plus a cumulative analysis by year of a 6-study outcome under HalfNormal(0.5); every fit 4 chains x
(1000 tune + 1000 draws), each gated on R-hat / ESS / divergences.

Run:  .venv/bin/python benchmarks/bench_bayes.py [--no-r]   (benchmarks/run_all.py reuses its functions)
Writes benchmarks/results/bayes.json and benchmarks/results/bayes_input.csv (the shared input).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SEED = 20241122


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
            rows.append({"outcome": f"outcome_{o + 1:02d}", "study": f"S{j + 1}", "year": int(years[j]),
                         "yi": round(float(yi[j]), 4), "sei": round(float(se[j]), 4)})
    return pd.DataFrame(rows)


def run_python(data: pd.DataFrame) -> dict:
    t0 = time.perf_counter()
    from imrstats import bayes

    import_s = time.perf_counter() - t0
    priors = {k: bayes.SHIPPED_TAU_PRIORS[k] for k in
              ("half_normal_0.5", "half_cauchy_0.5", "rhodes_mental_health_nonpharm",
               "turner_mental_health_nonpharm_vs_control")}
    sampler = bayes.BayesMeta(capacity=int(data.groupby("outcome").size().max()))
    t1, c1 = time.perf_counter(), time.process_time()
    sampler.compile()
    compile_s, compile_cpu = time.perf_counter() - t1, time.process_time() - c1
    t2 = time.perf_counter()
    tables = []
    for i, (outcome, d) in enumerate(data.groupby("outcome", sort=True)):
        tab = bayes.prior_sensitivity(sampler, d.yi, d.sei, d.study, priors=priors,
                                      prior_mu=bayes.Normal(0, 1), mid=0.2, seed=bayes.child_seed(SEED, i))
        tables.append(tab.assign(outcome=outcome))
    fits_s = time.perf_counter() - t2
    t3 = time.perf_counter()
    first = data.loc[data.outcome == "outcome_01"]
    cum = bayes.cumulative_bayes(sampler, first.yi, first.sei, first.year, first.study,
                                 prior_mu=bayes.Normal(0, 1), mid=0.2, seed=SEED)
    cum_s = time.perf_counter() - t3
    allfits = pd.concat(tables + [cum.assign(outcome="cumulative")], ignore_index=True)
    return {
        "import_s": import_s, "compile_s": compile_s, "compile_cpu_s": compile_cpu,
        "outcome_x_prior_fits": int(sum(len(t) for t in tables)), "outcome_x_prior_s": fits_s,
        "cumulative_fits": int(len(cum)), "cumulative_s": cum_s,
        "stage_total_s": import_s + compile_s + fits_s + cum_s,
        "gate_failures": int((~allfits["diagnostics_ok"].astype(bool)).sum()),
        "max_rhat": float(allfits["max_rhat"].max()), "min_ess_bulk": float(allfits["min_ess_bulk"].min()),
        "divergences": int(allfits["divergences"].sum()),
    }


def run_r(input_csv: Path, *, priors: tuple[str, ...] = (), timeout: float | None = None) -> dict:
    """Run benchmarks/r/bayes_brms.R on `input_csv` (optionally only the named brms priors) and parse its
    "TIMING key value" lines. Never raises: a missing Rscript, a timeout or a failing script is recorded."""
    if shutil.which("Rscript") is None:
        return {"status": "R not available (Rscript not found)"}
    script = HERE / "r" / "bayes_brms.R"
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(["Rscript", str(script), str(input_csv), *priors], capture_output=True,
                              text=True, timeout=timeout)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-r", action="store_true", help="skip the R comparison")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    data = synthetic_outcomes()
    input_csv = RESULTS / "bayes_input.csv"
    data.to_csv(input_csv, index=False)
    py = run_python(data)
    r = {"status": "skipped"} if args.no_r else run_r(input_csv)
    record = {"python": py, "r": r, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                "load_avg_1min": os.getloadavg()[0]}}
    (RESULTS / "bayes.json").write_text(json.dumps(record, indent=2))
    print(f"{'step':40s} {'seconds':>9s}")
    for key in ("import_s", "compile_s", "compile_cpu_s", "outcome_x_prior_s", "cumulative_s", "stage_total_s"):
        print(f"python {key:33s} {py[key]:9.1f}")
    print(f"python fits: {py['outcome_x_prior_fits']} outcome x prior + {py['cumulative_fits']} cumulative; "
          f"gate failures {py['gate_failures']}, divergences {py['divergences']}, "
          f"max R-hat {py['max_rhat']:.4f}, min bulk ESS {py['min_ess_bulk']:.0f}")
    for key, value in r.items():
        if key != "stderr_tail":
            print(f"R      {key:33s} {value}")
    print(f"load average (1 min) at the end: {record['machine']['load_avg_1min']:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
