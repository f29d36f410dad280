"""One benchmark run, Python and R side by side on this machine: the numbers behind the README's speed targets.

Measures, in this order (one at a time, never overlapping, so both languages see the same machine):
  a. pipeline   the whole default pipeline (`snakemake --cores 2`) cold in a fresh temporary directory, then a
                warm no-op rerun; each rule's wall time, CPU time and peak memory (max_rss) from Snakemake's
                benchmark TSVs;
  b. trial      `imrstats.trial.stage.run_trial_stage` on the default synthetic trial (if built) vs
                benchmarks/r/trial_mice_nlme.R (mice pmm m = 100 + nlme::gls MMRM per imputation + pool.scalar)
                on the same cleaned data, exported to benchmarks/results/trial_input.csv;
  c. bayes      the Bayesian stage workload of benchmarks/bench_bayes.py (11 outcomes x 4 tau priors +
                cumulative) vs brms (2 expressible priors + cumulative; compile + refits) and metafor
                (REML on every outcome) vs imrstats.meta.random_effects.rma;
  d. bayes_default  the Bayesian stage itself on the default config (`meta_bayes.bayes_pooling` on the effects the
                meta stage pools: main prior, sensitivity priors, cumulative by year, implementation proportions,
                gate retries included) in a fresh Python process, vs brms (the priors it can express, same chains /
                draws / adapt_delta, + cumulative) and metafor on the same effects (results/bayes_default_input.csv);
  e. bayes_exact the same Bayesian work of the default config fit by fit (every outcome x prior, cumulative,
                implementation proportions) with the exact engine (`imrstats.meta.bayes_exact`, fresh process),
                side by side with the NUTS path on the same fits (fresh process, compile included), R's own exact
                quadrature (benchmarks/r/bayes_exact_quadrature.R, stats::integrate) and brms on the fits it can
                express (bench_bayes.bench_exact).
Each R run is a subprocess with a timeout; a missing Rscript or package is recorded, and the run goes on.

Writes benchmarks/results/latest.json and latest.md (date, machine, load average), copies the table into
benchmarks/README.md ("Latest figures"), and appends one line to benchmarks/results/history.jsonl. A --quick run
writes latest_quick.json / latest_quick.md instead and leaves the README alone; a run of chosen parts (--only)
writes latest_only.* (latest_quick_only.* with --quick) and leaves latest.* and the README alone.

Run:  .venv/bin/python benchmarks/run_all.py            # full run (about 10 minutes on 2 idle cores)
      .venv/bin/python benchmarks/run_all.py --quick    # smoke run: data-stage pipeline, 2 outcomes, small m
Options: --skip-pipeline, --skip-r, --only {pipeline,trial,bayes,bayes_default,bayes_exact} (repeatable; --quick
         skips bayes_default and bayes_exact unless named), --r-timeout SECONDS,
         --rebuild results/latest.json (rewrite summary + table of a saved run, no timing).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PYTHON_BIN = Path(sys.executable).parent
QUICK_OUTCOMES = ("gaf_f", "psp")
QUICK_M = 5


# ---------------------------------------------------------------------------------------------- machine


def machine_info() -> dict:
    """Date, CPU count and model, load average and software versions, taken at the start of the run."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "mem_gib": mem_gib,
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "r": r_version(),
    }


def r_version() -> str | None:
    if shutil.which("Rscript") is None:
        return None
    proc = subprocess.run(["Rscript", "-e", "cat(R.version.string)"], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() or None


# ---------------------------------------------------------------------------------------------- a. pipeline


def read_benchmark_tsvs(directory: Path) -> list[dict]:
    """One row per rule from Snakemake's `benchmark:` TSVs (s = wall seconds, max_rss in MB, cpu_time in s)."""
    rows = []
    for tsv in sorted(directory.glob("*.tsv")):
        with tsv.open() as handle:
            for rec in csv.DictReader(handle, delimiter="\t"):

                def num(key):
                    try:
                        return float(rec[key])
                    except (KeyError, TypeError, ValueError):
                        return None

                rows.append(
                    {
                        "rule": tsv.stem,
                        "wall_s": num("s"),
                        "cpu_s": num("cpu_time"),
                        "max_rss_mb": num("max_rss"),
                        "mean_load": num("mean_load"),
                    }
                )
    return rows


def run_snakemake(workdir: Path, results_dir: Path, targets: list[str], timeout: float) -> dict:
    env = dict(os.environ, PATH=f"{PYTHON_BIN}:{os.environ.get('PATH', '')}", MPLBACKEND="Agg")
    cmd = [
        str(PYTHON_BIN / "snakemake"),
        *targets,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        "--config",
        f"results_dir={results_dir}",
    ]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s", "wall_s": time.perf_counter() - t0}
    out = {"status": "ok" if proc.returncode == 0 else "failed", "wall_s": time.perf_counter() - t0}
    if proc.returncode:
        out["stderr_tail"] = proc.stderr[-3000:]
    return out


def bench_pipeline(quick: bool, timeout: float) -> dict:
    """Cold run into a fresh directory, then a warm (no-op) rerun; per-rule times from the benchmark TSVs."""
    with tempfile.TemporaryDirectory(prefix="imrstats_bench_") as tmp:
        workdir = Path(tmp)
        results_dir = workdir / "results"
        targets = [str(results_dir / "data" / "cleaning_log.csv")] if quick else []
        cold = run_snakemake(workdir, results_dir, targets, timeout)
        rules = read_benchmark_tsvs(results_dir / "benchmarks")
        warm = (
            run_snakemake(workdir, results_dir, targets, timeout) if cold["status"] == "ok" else {"status": "skipped"}
        )
    rss = [r["max_rss_mb"] for r in rules if r["max_rss_mb"] is not None]
    return {
        "target": "data stage only (--quick)" if quick else "default target (all)",
        "cold": cold,
        "warm": warm,
        "rules": rules,
        "sum_rule_wall_s": sum(r["wall_s"] or 0 for r in rules),
        "peak_max_rss_mb": max(rss) if rss else None,
    }


# ---------------------------------------------------------------------------------------------- b. trial


def default_clean_tables() -> tuple[dict, dict]:
    """The default config's synthetic tables, cleaned exactly as the pipeline's `clean` rule does."""
    from imrstats.config import load_config
    from imrstats.data.clean import clean_tables
    from imrstats.data.simulate import simulate_all

    config = load_config()
    cleaned = clean_tables(
        simulate_all(config),
        missing_codes=config["clean"]["missing_codes"],
        prorate=config["clean"]["prorate"],
        allow_identifier_columns=config["privacy"]["allow_identifier_columns"],
    )
    return cleaned.tables, config


def export_trial_csv(tables: dict, outcomes, path: Path) -> None:
    """Wide per outcome (outcome, id, arm, site, sex, age, diagnosis, baseline, post, fu12): the R script's input.
    Every participant has a row for every outcome; a visit without a score is NA."""
    import pandas as pd

    people = tables["participants"][["id", "arm", "site", "sex", "age", "diagnosis"]]
    scores = tables["assessments"]
    frames = []
    for outcome in outcomes:
        wide = (
            scores[scores["instrument"] == outcome]
            .pivot_table(index="id", columns="timepoint", values="score", aggfunc="first", dropna=False)
            .reindex(columns=["baseline", "post", "fu12"])
        )
        frame = people.merge(wide, left_on="id", right_index=True, how="left")
        frames.append(frame.assign(outcome=outcome))
    out = pd.concat(frames, ignore_index=True)
    out[["outcome", "id", "arm", "site", "sex", "age", "diagnosis", "baseline", "post", "fu12"]].to_csv(
        path, index=False, na_rep="NA"
    )


def bench_trial_python(tables: dict, config: dict, quick: bool) -> dict:
    t0 = time.perf_counter()
    try:
        from imrstats.trial.stage import run_trial_stage
    except ImportError as exc:
        return {"status": f"not built ({exc})"}
    import_s = time.perf_counter() - t0
    settings = dict(config.get("trial") or {})
    if quick:
        settings.update(outcomes=list(QUICK_OUTCOMES), imputations=QUICK_M)
    t1, c1 = time.perf_counter(), time.process_time()
    try:
        result = run_trial_stage(tables, settings, seed=config["seed"])
    except Exception as exc:  # a benchmark records a failing stage and goes on
        return {"status": f"failed: {type(exc).__name__}: {exc}", "import_s": import_s}
    return {
        "status": "ok",
        "import_s": import_s,
        "stage_s": time.perf_counter() - t1,
        "stage_cpu_s": time.process_time() - c1,
        "settings": settings,
        "flags": len(result.flags),
        "effective_settings": (result.record or {}).get("settings"),
    }


def run_rscript(args: list[str], timeout: float) -> tuple[dict, str]:
    """Run an R script; return (status record, stdout). Never raises."""
    if shutil.which("Rscript") is None:
        return {"status": "R not available (Rscript not found)"}, ""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(["Rscript", *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s", "process_wall_s": time.perf_counter() - t0}, ""
    rec = {"status": "ok" if proc.returncode == 0 else "failed", "process_wall_s": time.perf_counter() - t0}
    if proc.returncode:
        tail = proc.stderr[-2000:]
        rec["status"] = "R package missing" if "there is no package called" in tail else "failed"
        rec["stderr_tail"] = tail
    return rec, proc.stdout


def bench_trial_r(input_csv: Path, outcomes, m: int, seed: int, timeout: float) -> dict:
    rec, stdout = run_rscript(
        [str(HERE / "r" / "trial_mice_nlme.R"), str(input_csv), str(m), str(seed), *outcomes], timeout
    )
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            rec.update(json.loads(line[len("RESULT ") :]))
    if rec["status"] == "ok" and "total_s" not in rec:
        rec["status"] = "failed: no RESULT line"
    return rec


# ---------------------------------------------------------------------------------------------- c. bayes


def load_bench_bayes():
    spec = importlib.util.spec_from_file_location("bench_bayes", HERE / "bench_bayes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_python_rma(data) -> float:
    """imrstats.meta.random_effects.rma (REML) on every outcome: the like-for-like partner of metafor's timing."""
    from imrstats.meta.random_effects import rma

    t0 = time.perf_counter()
    for _, d in data.groupby("outcome", sort=True):
        rma(d["yi"].to_numpy(), d["sei"].to_numpy() ** 2, method="REML")
    return time.perf_counter() - t0


def bench_bayes(quick: bool, skip_r: bool, timeout: float) -> dict:
    bench = load_bench_bayes()
    data = bench.synthetic_outcomes()
    if quick:
        data = data[data["outcome"].isin(["outcome_01", "outcome_02"])]
    input_csv = RESULTS / ("bayes_input_quick.csv" if quick else "bayes_input.csv")
    data.to_csv(input_csv, index=False)
    out = {"outcomes": int(data["outcome"].nunique()), "python_rma_reml_s": time_python_rma(data)}
    try:
        out["python"] = bench.run_python(data)
    except Exception as exc:
        out["python"] = {"status": f"failed: {type(exc).__name__}: {exc}"}
    priors = ("half_normal_0.5",) if quick else ()
    out["r"] = {"status": "skipped"} if skip_r else bench.run_r(input_csv, priors=priors, timeout=timeout)
    return out


# ---------------------------------------------------------------------------------------------- d. bayes_default


def bench_bayes_default(skip_r: bool, timeout: float) -> dict:
    """Part d: bench_bayes.bench_default_stage (the stage in a fresh process; metafor and brms on its input)."""
    try:
        return load_bench_bayes().bench_default_stage(skip_r=skip_r, timeout=timeout)
    except Exception as exc:  # a benchmark records a failing part and goes on
        return {"python": {"status": f"failed: {type(exc).__name__}: {exc}"}, "r": {"status": "skipped"}}


def summarise_bayes_default(part: dict) -> dict:
    """Part d's headline: Python's stage seconds, brms measured and extrapolated to Python's fit count as
    part c does (one Stan compile per distinct prior Python uses, a refit for every other fit; per-refit time
    averaged over brms's refits, weighted by their number)."""
    py, r = part["python"], part["r"]
    firsts = [v for k, v in r.items() if k.startswith("brms_first_fit_")]
    refit_s = sum(v for k, v in r.items() if k.startswith("brms_refits_"))
    refit_n = sum(v for k, v in r.items() if k.startswith("brms_refit_count_"))
    per_refit = refit_s / refit_n if refit_n else None
    n_py, n_programs = py.get("fits"), py.get("distinct_priors")
    extrap = None
    if firsts and per_refit is not None and n_py and n_programs:
        extrap = n_programs * (sum(firsts) / len(firsts)) + (n_py - n_programs) * per_refit
    py_s = py.get("stage_total_s")
    return {
        "python_stage_s": py_s,
        "python_stage_cpu_s": py.get("stage_total_cpu_s"),
        "python_process_wall_s": py.get("process_wall_s"),
        "python_compile_s": py.get("compile_s"),
        "python_fits": n_py,
        "python_distinct_priors": n_programs,
        "python_retries": py.get("retries"),
        "python_gate_failures": py.get("gate_failures"),
        "python_sampler_runs": py.get("sampler_runs"),
        "brms_measured_s": r.get("brms_total_s"),
        "brms_fits": int(r["brms_fits"]) if isinstance(r.get("brms_fits"), float) else None,
        "brms_compiles": int(r["brms_priors"]) if isinstance(r.get("brms_priors"), float) else None,
        "brms_cumulative_fits": int(r.get("brms_cumulative_fits", 0)) if r.get("status") == "ok" else None,
        "brms_first_fit_mean_s": sum(firsts) / len(firsts) if firsts else None,
        "brms_per_refit_s": per_refit,
        "brms_fits_with_divergences": (
            int(r["brms_fits_with_divergences"]) if isinstance(r.get("brms_fits_with_divergences"), float) else None
        ),
        "brms_full_workload_extrapolated_s": extrap,
        "brms_measured_over_python": ratio(r.get("brms_total_s"), py_s),
        "brms_extrapolated_over_python": ratio(extrap, py_s),
        "metafor_s": r.get("metafor_all_outcomes_s"),
        "python_rma_s": part.get("python_rma_reml_s"),
        "metafor_over_python_rma": ratio(r.get("metafor_all_outcomes_s"), part.get("python_rma_reml_s")),
        "python_status": py.get("status"),
        "r_status": r.get("status"),
    }


def markdown_bayes_default(record: dict) -> list[str]:
    b, part = record["summary"]["bayes_default"], record["bayes_default"]
    py = part["python"]
    fits = py.get("fits_by_analysis") or {}
    split = ", ".join(f"{v} {k}" for k, v in fits.items())
    return [
        f"## d. Bayesian stage on the default config: {fmt(part.get('outcomes'))} pooled outcomes "
        f"(incl. implementation proportions), {fmt(part.get('rows'))} effects",
        "",
        "| implementation | fits | seconds | status |",
        "| --- | ---: | ---: | --- |",
        f"| Python `meta_bayes.bayes_pooling`, fresh process (import + inputs + compile + every fit incl. gate "
        f"retries + tables / figures) | {fmt(b['python_fits'])} | {fmt(b['python_stage_s'])} | "
        f"{b['python_status']} |",
        f"| compile (included above) / the process's wall incl. interpreter start / stage CPU seconds | | "
        f"{fmt(b['python_compile_s'])} / {fmt(b['python_process_wall_s'])} / {fmt(b['python_stage_cpu_s'])} | |",
        f"| fits: {split}; gate retries / failures | {fmt(b['python_sampler_runs'])} sampler runs | "
        f"{fmt(b['python_retries'])} / {fmt(b['python_gate_failures'])} | |",
        f"| brms measured (half-normal / half-Cauchy 0.5 per outcome, the implementation prior, "
        f"{fmt(b['brms_cumulative_fits'])} cumulative; {fmt(b['brms_compiles'])} Stan compiles) | "
        f"{fmt(b['brms_fits'])} | {fmt(b['brms_measured_s'])} | {b['r_status']} |",
        f"| brms first fit (incl. Stan compile, mean) / per refit | | {fmt(b['brms_first_fit_mean_s'])} / "
        f"{fmt(b['brms_per_refit_s'], 2)} | |",
        f"| brms fits with divergent transitions (brms has no gate or retry) | "
        f"{fmt(b['brms_fits_with_divergences'])} | | |",
        f"| brms extrapolated to Python's fits ({fmt(b['python_distinct_priors'])} compiles + refits) | "
        f"{fmt(b['python_fits'])} | {fmt(b['brms_full_workload_extrapolated_s'])} | extrapolated |",
        f"| **brms / Python**: measured (fewer fits) / extrapolated (same fits) | | "
        f"{fmt(b['brms_measured_over_python'])}x / {fmt(b['brms_extrapolated_over_python'])}x | |",
        f"| metafor REML, every outcome / imrstats.meta.random_effects.rma | | {fmt(b['metafor_s'], 3)} / "
        f"{fmt(b['python_rma_s'], 3)} | |",
        "",
    ]


def markdown_bayes_exact(part: dict) -> list[str]:
    """Part e's table (also written on its own by `bench_bayes.py --exact` into results/bayes_exact.md)."""
    s, ex, nuts = part["summary"], part["exact"], part["nuts"]
    r, brms = part.get("r_exact", {}), part.get("brms", {})
    split = ", ".join(f"{v} {k}" for k, v in (ex.get("fits_by_analysis") or {}).items())
    diff = r.get("max_rel_diff_vs_python_exact") or {}
    worst = max(diff.values()) if diff else None
    draws = fmt(ex.get("draws_per_main_fit"))
    r_fits = int(r["r_exact_fits"]) if r.get("r_exact_fits") else None
    brms_fits = int(s["brms_fits"]) if s.get("brms_fits") else None
    if brms.get("status") == "ok" or not s.get("brms_previous_date"):
        brms_what, brms_status = "the half-normal / half-Cauchy fits it can express", str(brms.get("status"))
    else:
        brms_what = f"part d of the run of {s['brms_previous_date'][:10]}, the fits it can express"
        reason = (
            "Boost headers missing for Stan" if "Boost not found" in brms.get("stderr_tail", "") else brms.get("status")
        )
        brms_status = f"not rerun here ({reason})"
    worst_text = "-" if worst is None else f"{worst:.1e}"
    return [
        f"## e. Bayesian work of the default config, exact engine vs NUTS vs R: {fmt(s.get('fits'))} fits ({split})",
        "",
        "| implementation (same fits) | fits | seconds | vs exact | status |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| **exact engine** `bayes_exact.fit_exact` (summaries, shortest intervals, Bayes factors; {draws} exact "
        f"draws per main fit), first pass / median of 5 | {fmt(s.get('fits'))} | "
        f"{fmt(s.get('exact_fits_s'), 3)} / {fmt(s.get('exact_fits_median_s'), 3)} | 1x | {ex.get('status')} |",
        f"| exact, per fit (ms) / incl. import + stage inputs / the fresh process's wall | | "
        f"{fmt(s.get('exact_per_fit_ms'), 1)} ms / {fmt(s.get('exact_incl_import_inputs_s'))} / "
        f"{fmt(s.get('exact_process_wall_s'))} | | |",
        f"| NUTS path (PyMC model + nutpie; import + compile + fits, no gate retries) | {fmt(nuts.get('fits'))} | "
        f"{fmt(s.get('nuts_total_s'))} | {fmt(s.get('nuts_total_over_exact'), 0)}x | {nuts.get('status')} |",
        f"| NUTS compile / fits; gate failures without retry | | {fmt(s.get('nuts_compile_s'))} / "
        f"{fmt(s.get('nuts_fits_s'))}; {fmt(s.get('nuts_gate_failures'))} | | |",
        f"| R exact quadrature (`stats::integrate`, bayes_exact_quadrature.R; fewer summaries) | "
        f"{fmt(r_fits)} | {fmt(s.get('r_exact_s'))} | {fmt(s.get('r_exact_over_exact'), 0)}x | "
        f"{r.get('status')}; max rel. diff vs Python exact {worst_text} |",
        f"| CPU seconds: exact fits / NUTS process (threads + compiler) / R quadrature | | "
        f"{fmt(s.get('exact_fits_cpu_s'), 3)} / {fmt(s.get('nuts_cpu_total_s'))} / {fmt(s.get('r_exact_cpu_s'))} | "
        f"1x / {fmt(s.get('nuts_cpu_total_over_exact_cpu'), 0)}x / {fmt(s.get('r_exact_cpu_over_exact_cpu'), 0)}x | |",
        f"| brms ({brms_what}; Stan compiles included) | {fmt(brms_fits)} | {fmt(s.get('brms_s'))} | "
        f"{fmt(s.get('brms_over_exact'), 0)}x (per fit {fmt(s.get('brms_per_fit_over_exact_per_fit'), 0)}x) | "
        f"{brms_status} |",
        "",
    ]


# ---------------------------------------------------------------------------------------------- report


def ratio(r_seconds, py_seconds):
    if isinstance(r_seconds, (int, float)) and isinstance(py_seconds, (int, float)) and py_seconds > 0:
        return r_seconds / py_seconds
    return None


def fmt(x, digits: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def summarise(record: dict) -> dict:
    """The headline comparisons (seconds and R / Python ratios) from the raw records."""
    s: dict = {}
    trial = record.get("trial")
    if trial:
        py, r = trial["python"], trial["r"]
        py_total = (py.get("import_s", 0) + py["stage_s"]) if py.get("status") == "ok" else None
        s["trial"] = {
            "python_stage_s": py.get("stage_s"),
            "python_total_s": py_total,
            "r_total_s": r.get("total_s"),
            "r_per_outcome_s": r.get("per_outcome_mean_s"),
            "python_stage_cpu_s": py.get("stage_cpu_s"),
            "r_total_cpu_s": r.get("total_cpu_s"),
            "r_over_python_cpu": ratio(r.get("total_cpu_s"), py.get("stage_cpu_s")),
            "r_over_python": ratio(r.get("total_s"), py_total),
            "python_status": py.get("status"),
            "r_status": r.get("status"),
        }
    bayes = record.get("bayes")
    if bayes:
        py, r = bayes["python"], bayes["r"]
        n_brms = int(r["brms_fits"]) if isinstance(r.get("brms_fits"), float) else None
        per_refit = [v for k, v in r.items() if k.startswith("brms_per_refit_")]
        firsts = [v for k, v in r.items() if k.startswith("brms_first_fit_")]
        n_py = (py.get("outcome_x_prior_fits", 0) + py.get("cumulative_fits", 0)) if "stage_total_s" in py else None
        # brms for Python's whole workload: one compile per prior (4 Stan programs) + a refit for every other fit
        extrap = None
        if per_refit and firsts and n_py:
            n_priors = 4
            extrap = n_priors * (sum(firsts) / len(firsts)) + (n_py - n_priors) * (sum(per_refit) / len(per_refit))
        s["bayes"] = {
            "python_stage_s": py.get("stage_total_s"),
            "python_fits": n_py,
            "brms_measured_s": r.get("brms_total_s"),
            "brms_fits": n_brms,
            "brms_first_fit_s": firsts[0] if firsts else None,
            "brms_per_refit_s": (sum(per_refit) / len(per_refit)) if per_refit else None,
            "brms_full_workload_extrapolated_s": extrap,
            "brms_measured_over_python": ratio(r.get("brms_total_s"), py.get("stage_total_s")),
            "brms_extrapolated_over_python": ratio(extrap, py.get("stage_total_s")),
            "metafor_s": r.get("metafor_all_outcomes_s"),
            "python_rma_s": bayes.get("python_rma_reml_s"),
            "metafor_over_python_rma": ratio(r.get("metafor_all_outcomes_s"), bayes.get("python_rma_reml_s")),
            "python_status": py.get("status", "ok"),
            "r_status": r.get("status"),
        }
    if record.get("bayes_default"):
        s["bayes_default"] = summarise_bayes_default(record["bayes_default"])
    if record.get("bayes_exact"):
        s["bayes_exact"] = record["bayes_exact"].get("summary", {})
    return s


def markdown(record: dict) -> str:
    m, s = record["machine"], record["summary"]
    lines = [
        f"# Benchmark run {m['date']}{' (--quick)' if record['quick'] else ''}",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_gib']} GiB; load average at start "
        f"{' / '.join(fmt(x, 2) for x in m['load_avg_start'])} (1 / 5 / 15 min), at end "
        f"{' / '.join(fmt(x, 2) for x in record['load_avg_end'])}; Python {m['python']}; "
        f"{m['r'] or 'R not available'}.",
        "Wall-clock seconds. A load average above the CPU count means other work shared the machine: "
        "rerun when it is quiet.",
        "",
    ]
    if "pipeline" in record:
        p = record["pipeline"]
        lines += [
            "## a. Pipeline (`snakemake --cores 2`, " + p["target"] + ")",
            "",
            "| run | wall s | status |",
            "| --- | ---: | --- |",
            f"| cold (fresh directory) | {fmt(p['cold'].get('wall_s'))} | {p['cold']['status']} |",
            f"| warm (no-op rerun) | {fmt(p['warm'].get('wall_s'))} | {p['warm']['status']} |",
            "",
            "| rule | wall s | CPU s | max RSS MB |",
            "| --- | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {r['rule']} | {fmt(r['wall_s'])} | {fmt(r['cpu_s'])} | {fmt(r['max_rss_mb'], 0)} |" for r in p["rules"]
        ]
        lines += [f"| **sum / peak** | {fmt(p['sum_rule_wall_s'])} | | {fmt(p['peak_max_rss_mb'], 0)} |", ""]
    if "trial" in s:
        t, tr = s["trial"], record["trial"]
        n_out = len(tr["outcomes"])
        lines += [
            f"## b. Trial stage: {n_out} outcomes, m = {tr['m']} imputations",
            "",
            "| implementation | seconds | per outcome | status |",
            "| --- | ---: | ---: | --- |",
            f"| Python `run_trial_stage` (whole stage; + import) | {fmt(t['python_stage_s'])} "
            f"(+ {fmt(tr['python'].get('import_s'))}) | "
            f"{fmt(t['python_stage_s'] / n_out if t['python_stage_s'] else None, 2)} | {t['python_status']} |",
            f"| R mice pmm + nlme::gls + pool.scalar (ITT only; incl. package load) | {fmt(t['r_total_s'])} | "
            f"{fmt(t['r_per_outcome_s'], 2)} | {t['r_status']} |",
            f"| **R / Python** (target >= 10) | {fmt(t['r_over_python'])}x | | |",
            f"| CPU seconds, Python stage / R (fairer on a loaded machine) | {fmt(t['python_stage_cpu_s'])} / "
            f"{fmt(t['r_total_cpu_s'])} = {fmt(t['r_over_python_cpu'])}x | | |",
            "",
        ]
    if "bayes" in s:
        b = s["bayes"]
        lines += [
            f"## c. Bayesian stage: {record['bayes']['outcomes']} outcomes",
            "",
            "| implementation | fits | seconds | status |",
            "| --- | ---: | ---: | --- |",
            f"| Python (PyMC model + nutpie: import + compile + all fits; 4 priors + cumulative) | "
            f"{fmt(b['python_fits'])} | {fmt(b['python_stage_s'])} | {b['python_status']} |",
            f"| brms measured (priors brms can express + cumulative; compile included) | {fmt(b['brms_fits'])} | "
            f"{fmt(b['brms_measured_s'])} | {b['r_status']} |",
            f"| brms first fit (incl. Stan compile) / per refit | | {fmt(b['brms_first_fit_s'])} / "
            f"{fmt(b['brms_per_refit_s'], 2)} | |",
            f"| brms extrapolated to Python's workload (4 compiles + refits) | {fmt(b['python_fits'])} | "
            f"{fmt(b['brms_full_workload_extrapolated_s'])} | extrapolated |",
            f"| **brms / Python**: measured (fewer fits) / extrapolated (same fits) | | "
            f"{fmt(b['brms_measured_over_python'])}x / {fmt(b['brms_extrapolated_over_python'])}x | |",
            f"| metafor REML, every outcome / imrstats.meta.random_effects.rma | | {fmt(b['metafor_s'], 3)} / "
            f"{fmt(b['python_rma_s'], 3)} | |",
            "",
        ]
    if "bayes_default" in s:
        lines += markdown_bayes_default(record)
    if s.get("bayes_exact"):
        lines += markdown_bayes_exact(record["bayes_exact"])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main


def rebuild_from_json(path: Path) -> str:
    """Recompute the summary and Markdown table of a saved run (after a change of the table's layout)."""
    record = json.loads(path.read_text())
    record["summary"] = summarise(record)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    table = markdown(record)
    path.with_suffix(".md").write_text(table)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: data-stage pipeline, 2 outcomes, m = 5")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-r", action="store_true", help="Python side only")
    parser.add_argument(
        "--only", action="append", choices=["pipeline", "trial", "bayes", "bayes_default", "bayes_exact"]
    )
    parser.add_argument("--r-timeout", type=float, default=1800.0, help="seconds per R subprocess")
    parser.add_argument(
        "--rebuild", metavar="JSON", type=Path, help="only rewrite the summary and Markdown of a saved run (no timing)"
    )
    args = parser.parse_args()
    if args.rebuild:
        table = rebuild_from_json(args.rebuild)
        if args.rebuild.name == "latest.json":
            update_readme(table)
        print(table)
        return
    default_parts = ["pipeline", "trial", "bayes"] + ([] if args.quick else ["bayes_default", "bayes_exact"])
    parts = set(args.only or default_parts) - ({"pipeline"} if args.skip_pipeline else set())
    RESULTS.mkdir(exist_ok=True)
    os.environ.setdefault("PYTENSOR_FLAGS", f"compiledir={ROOT / '.pytensor'}")
    record: dict = {"quick": args.quick, "machine": machine_info()}
    print(f"start {record['machine']['date']}, load {record['machine']['load_avg_start']}", flush=True)

    if "pipeline" in parts:
        record["pipeline"] = bench_pipeline(args.quick, timeout=args.r_timeout)
        print(f"pipeline cold {fmt(record['pipeline']['cold'].get('wall_s'))} s", flush=True)
    if "trial" in parts:
        from imrstats.data.instruments import TRIAL_OUTCOMES

        outcomes = list(QUICK_OUTCOMES if args.quick else TRIAL_OUTCOMES)
        m = QUICK_M if args.quick else 100
        tables, config = default_clean_tables()
        input_csv = RESULTS / ("trial_input_quick.csv" if args.quick else "trial_input.csv")
        export_trial_csv(tables, outcomes, input_csv)
        py = bench_trial_python(tables, config, args.quick)
        print(f"trial python: {py.get('status')} {fmt(py.get('stage_s'))} s", flush=True)
        r = (
            {"status": "skipped"}
            if args.skip_r
            else bench_trial_r(input_csv, outcomes, m, config["seed"], args.r_timeout)
        )
        print(f"trial R: {r.get('status')} {fmt(r.get('total_s'))} s", flush=True)
        record["trial"] = {
            "outcomes": outcomes,
            "m": m,
            "input_csv": str(input_csv.relative_to(ROOT)),
            "python": py,
            "r": r,
        }
    if "bayes" in parts:
        record["bayes"] = bench_bayes(args.quick, args.skip_r, args.r_timeout)
        print(
            f"bayes python {fmt(record['bayes']['python'].get('stage_total_s'))} s, "
            f"R {record['bayes']['r'].get('status')}",
            flush=True,
        )
    if "bayes_default" in parts:
        record["bayes_default"] = bench_bayes_default(args.skip_r, args.r_timeout)
        print(
            f"bayes_default python {fmt(record['bayes_default']['python'].get('stage_total_s'))} s, "
            f"R {record['bayes_default']['r'].get('status')}",
            flush=True,
        )
    if "bayes_exact" in parts:
        try:
            record["bayes_exact"] = load_bench_bayes().bench_exact(skip_r=args.skip_r, timeout=args.r_timeout)
        except Exception as exc:  # a benchmark records a failing part and goes on
            record["bayes_exact"] = {"exact": {"status": f"failed: {type(exc).__name__}: {exc}"}, "summary": {}}
        print(f"bayes_exact {json.dumps(record['bayes_exact'].get('summary'), default=str)}", flush=True)

    record["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    record["summary"] = summarise(record)
    # a run of chosen parts (--only) must not overwrite the full run's record and README figures
    stem = "latest" + ("_quick" if args.quick else "") + ("_only" if args.only else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    table = markdown(record)
    (RESULTS / f"{stem}.md").write_text(table)
    with (RESULTS / "history.jsonl").open("a") as handle:
        handle.write(
            json.dumps(
                {
                    "date": record["machine"]["date"],
                    "quick": args.quick,
                    "parts": sorted(parts),
                    "load_avg_start": record["machine"]["load_avg_start"],
                    "summary": record["summary"],
                },
                default=str,
            )
            + "\n"
        )
    if stem == "latest":
        update_readme(table)
    print(table)


def update_readme(table: str) -> None:
    """Copy the latest table into benchmarks/README.md between its `latest` markers (demoting its headings)."""
    readme = HERE / "README.md"
    start, end = "<!-- latest:start -->", "<!-- latest:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        return
    body = "\n".join("#" + line if line.startswith("#") else line for line in table.splitlines())
    head, rest = text.split(start, 1)
    readme.write_text(f"{head}{start}\n{body}\n{end}{rest.split(end, 1)[1]}")


if __name__ == "__main__":
    main()
