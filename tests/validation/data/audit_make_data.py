"""Deterministic inputs for tests/validation/r/audit.R (run once: python audit_make_data.py).

audit_samples.csv: two raw samples (for t.test), a paired x / y (for cor.test);
audit_grimmer_cases.csv: printed (mean, SD, n) triples at 2 decimals, for the brute-force GRIM / GRIMMER check.
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
rng = np.random.default_rng(20261124)
a = np.round(rng.normal(50, 12, 23), 1)
b = np.round(rng.normal(44, 7, 31), 1)
x = np.round(rng.normal(0, 1, 17), 3)
y = np.round(0.6 * x + rng.normal(0, 0.8, 17), 3)
rows = (
    [{"sample": "a", "value": v} for v in a]
    + [{"sample": "b", "value": v} for v in b]
    + [{"sample": "x", "value": v} for v in x]
    + [{"sample": "y", "value": v} for v in y]
)
pd.DataFrame(rows).to_csv(HERE / "audit_samples.csv", index=False)

cases = []
for n in (3, 4, 5, 6):
    for i in range(80):
        if i % 2 == 0:  # a real sample of n integers: mean and SD as printed (consistent by construction)
            sample = rng.integers(0, 15, n)
            mean, sd = sample.mean(), sample.std(ddof=1)
            if i % 4 == 0:  # the SD misprinted by 0.01 to 0.05 (may or may not stay possible)
                sd += rng.choice([-1, 1]) * rng.integers(1, 6) / 100
        else:  # a GRIM-possible mean (integer sum) with an arbitrary SD, or an impossible mean
            mean = rng.integers(5 * n, 9 * n) / n + (0.01 if i % 8 == 1 else 0.0)
            sd = rng.uniform(0.3, 3.5)
        cases.append({"case": f"n{n}_{i:03d}", "n": n, "mean": f"{mean:.2f}", "sd": f"{max(sd, 0):.2f}"})
pd.DataFrame(cases).to_csv(HERE / "audit_grimmer_cases.csv", index=False)
