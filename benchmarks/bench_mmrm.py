"""Time MMRM refits as the trial stage uses them: one design, 100 outcome vectors (imputations).

Run:  python benchmarks/bench_mmrm.py   (prints ms per fit; no assertion, timing is machine-bound)

Three variants on the shipped validation trial (198 participants x 2 visits):
  cold      - every refit starts from the OLS-residual covariance;
  warm      - every refit starts from the previous fit's covariance (what an MI loop should do);
  fit_mmrm  - the whole call from a data frame (design built each time), for comparison.
The 100 "imputations" are the complete-data outcome plus deterministic noise (seed 1).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from imrstats.trial.mmrm import build_mmrm_design, fit_mmrm

DATA = Path(__file__).resolve().parents[1] / "tests" / "validation" / "data" / "mmrm_complete.csv"
N_FITS = 100


class Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def per(self, n: int) -> str:
        wall = (time.perf_counter() - self.wall) / n * 1e3
        cpu = (time.process_time() - self.cpu) / n * 1e3
        return f"{wall:7.2f} ms wall / {cpu:7.2f} ms CPU"


def main() -> None:
    data = pd.read_csv(DATA)
    rng = np.random.default_rng(1)
    ys = [data["y"].to_numpy() + rng.normal(0, 2, len(data)) for _ in range(N_FITS)]
    design = build_mmrm_design(data, times=("post", "fu12"))
    design.fit(ys[0])  # warm numpy/scipy caches

    clock = Clock()
    fits = [design.fit(y) for y in ys]
    cold = clock.per(N_FITS)

    clock = Clock()
    sigma = None
    for y in ys:
        res = design.fit(y, start=sigma)
        sigma = res.sigma
        res.contrast_estimate, res.contrast_se, res.contrast_df
    warm = clock.per(N_FITS)

    clock = Clock()
    for y in ys[:20]:
        fit_mmrm(data.assign(y=y), "y", times=("post", "fu12")).contrasts
    whole = clock.per(20)

    iters = np.mean([f.iterations for f in fits])
    print("ms per fit (wall / CPU of this process; CPU is the fair number on a shared machine)")
    print(f"design refit, cold start  : {cold} (mean {iters:.1f} Newton iterations)")
    print(f"design refit, warm start  : {warm}")
    print(f"fit_mmrm + contrasts frame: {whole}")
    assert all(f.converged for f in fits)


if __name__ == "__main__":
    main()
