"""Make k_visit_trial.csv: a small synthetic trial with four post-baseline visits (week4, week8, week12, week16)
and arms Active / Placebo, for the K-visit MMRM check against nlme::gls (tests/validation/r/k_visit_mmrm.R,
tests/trial/test_design_k_visits.py). Long format, one row per participant x post-baseline visit: id, arm,
visit, baseline, y (empty = missing). Dropout is monotone for some participants and intermittent for others;
every baseline is observed. Synthetic data only: ids are generator ids.

Run from the repository root: .venv/bin/python tests/validation/data/k_visit_trial_make_data.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

VISITS = ("week4", "week8", "week12", "week16")
N = 96

rng = np.random.default_rng(20240611)
arm = np.repeat(["Active", "Placebo"], N // 2)
baseline = rng.normal(50.0, 10.0, N)
sd = np.array([6.0, 7.0, 8.0, 9.5])
corr = np.array(
    [
        [1.0, 0.6, 0.45, 0.3],
        [0.6, 1.0, 0.65, 0.5],
        [0.45, 0.65, 1.0, 0.7],
        [0.3, 0.5, 0.7, 1.0],
    ]
)
errors = rng.multivariate_normal(np.zeros(4), corr * np.outer(sd, sd), N)
slopes = np.array([0.7, 0.6, 0.55, 0.5])  # the baseline slope falls with time: separate and common slopes differ
effect = np.array([1.0, 2.5, 3.5, 4.0])
y = 20.0 + np.arange(4) + baseline[:, None] * slopes + (arm == "Active")[:, None] * effect + errors
# monotone dropout after each visit (more in Placebo), then a few intermittent misses
for i in range(N):
    for k in range(1, 4):
        if rng.random() < (0.08 if arm[i] == "Active" else 0.12):
            y[i, k:] = np.nan
            break
y[rng.random(y.shape) < 0.05] = np.nan
rows = [
    {"id": f"K{i + 1:03d}", "arm": arm[i], "visit": v, "baseline": round(baseline[i], 2), "y": round(y[i, k], 2)}
    for i in range(N)
    for k, v in enumerate(VISITS)
]
pd.DataFrame(rows).to_csv(Path(__file__).parent / "k_visit_trial.csv", index=False, float_format="%.10g")
