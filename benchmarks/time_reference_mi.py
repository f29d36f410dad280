"""Timing (not a test): reference-based imputation on rbmi's antidepressant data (172 patients, 4 visits; JR for
every intercurrent event at the first visit of the final monotone missing run, PLACEBO the reference, ANCOVA
per visit), as the rbmi vignettes run it:

  a. conditional mean imputation with the jackknife (`reference_based_condmean`: 1 + 172 MMRM fits);
  b. Bayesian multiple imputation, m = 150 (`reference_based_bayes`: the Gibbs sampler's draws, the imputations,
     the 150 analyses and Rubin's rules).

One process, after a warm-up run of each (imports and first-call costs excluded); the fastest of --repeat runs.
Writes benchmarks/results/reference_mi.md.

    .venv/bin/python benchmarks/time_reference_mi.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "examples" / "antidepressant" / "antidepressant.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import pandas as pd

    from imrstats.trial import reference_mi as rm
    from imrstats.trial.design import StudyDesign

    visits = ("4", "5", "6", "7")
    design = StudyDesign(visits=visits, intervention="DRUG", control="PLACEBO")
    long = pd.read_csv(DATA, dtype={"PATIENT": str, "VISIT": str})
    frame = rm.trial_frame_from_long(
        long, id="PATIENT", visit="VISIT", arm="THERAPY", outcome="CHANGE", baseline="BASVAL", visits=visits
    )
    ice = rm.ice_from_dropout(frame, design, strategy="JR").table

    def condmean():
        return rm.reference_based_condmean(frame, ice, design, change=True)

    def bayes():
        return rm.reference_based_bayes(frame, ice, design, seed=1821, m=150, change=True)

    rows = []
    for name, fn, budget in (
        ("conditional mean + jackknife (173 fits)", condmean, 2.0),
        ("Bayesian MI, m = 150", bayes, 5.0),
    ):
        fn()  # warm-up
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        rows.append((name, min(times), budget))
        print(f"{name}: {min(times):.2f} s (fastest of {args.repeat}; budget {budget:g} s)")
    load = os.getloadavg()[0]
    lines = [
        "# Reference-based imputation on the antidepressant data (benchmarks/time_reference_mi.py)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.2f} at the end; one BLAS thread.",
        "",
        "| method | seconds (fastest) | budget |",
        "| --- | --- | --- |",
        *[f"| {name} | {seconds:.2f} | {budget:g} s |" for name, seconds, budget in rows],
        "",
    ]
    (ROOT / "benchmarks" / "results" / "reference_mi.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
