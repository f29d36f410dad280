"""Time the trial stage on the default synthetic data (11 outcomes, m = 100, tipping point for GAF-F).

Run:  .venv/bin/python benchmarks/bench_trial.py [--imputations M] [--repeats N]
Prints wall and CPU seconds of `run_trial_stage` (the data are simulated and cleaned first, untimed) per
repeat and their medians, the load average, and a breakdown for one outcome. Target: <= ~9 s (10x R's
~94 s) on an idle machine; on a shared machine CPU seconds are the fairer figure. No assertion: timing
is machine-bound.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from imrstats.config import load_config
from imrstats.data.clean import clean_tables
from imrstats.data.simulate import simulate_all
from imrstats.trial import analyses as trial
from imrstats.trial.stage import run_trial_stage


def clock(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--imputations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    cfg = load_config()
    tables = clean_tables(
        simulate_all(cfg), missing_codes=cfg["clean"]["missing_codes"], prorate=True, allow_identifier_columns=[]
    ).tables
    import matplotlib.figure  # noqa: F401  (import cost is not the stage's)

    walls, cpus = [], []
    for _ in range(args.repeats):
        res, wall, cpu = clock(lambda: run_trial_stage(tables, {"imputations": args.imputations}, seed=cfg["seed"]))
        walls.append(wall)
        cpus.append(cpu)
        print(
            f"run_trial_stage (11 outcomes, m = {args.imputations}): {wall:6.2f} s wall / {cpu:6.2f} s CPU; "
            f"flags: {len(res.flags)}; load average {os.getloadavg()[0]:.2f}"
        )
    if args.repeats > 1:
        print(
            f"  median of {args.repeats}: {statistics.median(walls):6.2f} s wall / {statistics.median(cpus):6.2f} s CPU"
        )
    frame = trial.outcome_frame(tables["participants"], tables["assessments"], "gaf_f")
    imp, wall, cpu = clock(lambda: trial.impute_outcome(frame, m=args.imputations, seed=1))
    print(f"  impute_outcome (gaf_f)       : {wall:6.2f} s wall / {cpu:6.2f} s CPU")
    _, wall, cpu = clock(lambda: trial.itt_mi_mmrm(frame, imputation=imp))
    print(
        f"  itt_mi_mmrm ({args.imputations} MMRM fits)   : {wall:6.2f} s wall / {cpu:6.2f} s CPU "
        "(one chain alone; the stage fits all outcomes' chains together, trial.prefit_itt)"
    )
    _, wall, cpu = clock(lambda: trial.delta_tipping_point(imp, deltas=[-12, -6, -3, 3, 6, 12]))
    print(f"  delta_tipping_point (6 + 1)  : {wall:6.2f} s wall / {cpu:6.2f} s CPU")


if __name__ == "__main__":
    main()
