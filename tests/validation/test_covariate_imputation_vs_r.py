"""Missing baseline covariates imputed in the ITT imputation model, against R mice 3.15.0 (Monte Carlo).

Data: ``data/mi_trial_covariates.csv``, made by `make_covariate_data` below: ``data/mi_trial.csv`` (198 rows,
scores missing MAR; see test_imputation_vs_r.py) with age (21 cells, 10%) and sex (16 cells, 8%) deleted
completely at random. Imputation: `imrstats.trial.analyses.impute_outcome` as the trial stage runs it
(``missing_covariates="impute"``, within each arm, pmm, m = 100, maxit = 5): baseline, post, fu12 and age by
pmm, sex (two categories) by pmm on its 0/1 indicator, site and diagnosis as predictors. Analysis:
lm(y_fu12 ~ arm + y_baseline + site + sex + age + diagnosis) on each completed data set (so the imputed
covariates enter it), pooled by Rubin's rules. Pinned rows: arm (IMR - TAU), sex (male - female) and age.

Reference: ``r/mice_covariates.R`` (run from the repository root) imputes each arm with R mice, the same
methods, predictors and visit order (y_baseline, y_post, y_fu12, sex, age), stacks the i-th completed data
sets of the arms and fits and pools the same lm; its printed rows, one per seed and term, are in
``data/mice_covariates_r.csv``. The test never runs R.

Tolerance (Monte Carlo, as test_imputation_vs_r.py): each statistic is averaged over our K = 4 seeds and over
R's seeds; if both draw from the same distribution the difference of the means has SD
sd_R * sqrt(1/K + 1/n_R), sd_R the spread over R's seeds (R's Monte Carlo error of one m = 100 run). We
allow 4 times that (a false alarm about 1 in 15,000 per statistic).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.trial.analyses import impute_outcome
from imrstats.trial.rubin import pool_rubin

HERE = Path(__file__).parent
DATA = HERE / "data" / "mi_trial_covariates.csv"
R_ROWS = HERE / "data" / "mice_covariates_r.csv"
STATS = ["estimate", "se", "df", "riv", "fmi"]
TERMS = {"armIMR": 1, "sexmale": 4, "age": 5}  # column of the lm design below
K_SEEDS = 4


def make_covariate_data() -> pd.DataFrame:
    """mi_trial.csv with age (10%) and sex (8%) missing completely at random (seed 17)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mi_trial_data", HERE / "test_imputation_vs_r.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    d = module.make_trial_data()
    rng = np.random.default_rng(17)
    d.loc[rng.uniform(size=len(d)) < 0.10, "age"] = np.nan
    d.loc[rng.uniform(size=len(d)) < 0.08, "sex"] = np.nan
    return d


def _trial_frame(data: pd.DataFrame) -> pd.DataFrame:
    frame = data.rename(columns={"y_baseline": "baseline", "y_post": "post", "y_fu12": "fu12"})
    frame.insert(0, "id", [f"P{i:03d}" for i in range(len(frame))])
    frame["sex"] = [None if pd.isna(v) else str(v) for v in frame["sex"]]
    return frame


def pooled_rows(frame: pd.DataFrame, seed: int) -> dict[str, list[float]]:
    """Impute as the trial stage does, fit the lm to each completed data set, pool each pinned term."""
    imp = impute_outcome(frame, covariates=["site", "sex", "age", "diagnosis"], m=100, seed=seed)
    rows = imp.frame
    n = len(rows)
    y = imp.column("fu12")
    base = imp.column("baseline")
    male = (imp.covariate_values["sex"] == "male").astype(float)
    age = imp.covariate_values["age"].astype(float)
    ones = np.ones((imp.m, n))
    fixed = lambda v: np.broadcast_to(np.asarray(v, dtype=float), (imp.m, n))  # noqa: E731
    x = np.stack(
        [
            ones,
            fixed(rows["arm"] == "IMR"),
            fixed(rows["site"] == "CMHC2"),
            fixed(rows["site"] == "CMHC3"),
            male,
            age,
            fixed(rows["diagnosis"] == "schizophrenia"),
            base,
        ],
        axis=2,
    )
    q, r = np.linalg.qr(x)
    r_inv = np.linalg.inv(r)
    beta = np.einsum("mij,mnj,mn->mi", r_inv, q, y)
    dfres = n - x.shape[2]
    sigma2 = ((y - np.einsum("mnp,mp->mn", x, beta)) ** 2).sum(axis=1) / dfres
    var = sigma2[:, None] * np.einsum("mij,mij->mi", r_inv, r_inv)
    out = {}
    for term, j in TERMS.items():
        est = pool_rubin(beta[:, j], var[:, j], dfres, quantity=term)
        out[term] = [est.estimate, est.se, est.df, est.extra["riv"], est.extra["fmi"]]
    return out


def test_shipped_csv_is_the_generated_data():
    pd.testing.assert_frame_equal(pd.read_csv(DATA), make_covariate_data(), check_exact=False, rtol=1e-12)


@pytest.fixture(scope="module")
def ours():
    frame = _trial_frame(pd.read_csv(DATA))
    runs = [pooled_rows(frame, seed) for seed in range(K_SEEDS)]
    return {term: pd.DataFrame([run[term] for run in runs], columns=STATS) for term in TERMS}


def test_every_participant_is_in_every_completed_data_set():
    frame = _trial_frame(pd.read_csv(DATA))
    imp = impute_outcome(frame, m=3, seed=1)
    assert len(imp.frame) == 198 and imp.n_dropped == 0
    assert imp.covariate_missing["age"].sum() == 21 and imp.covariate_missing["sex"].sum() == 16
    assert not np.isnan(imp.covariate_values["age"].astype(float)).any()
    assert set(np.unique(imp.covariate_values["sex"])) == {"female", "male"}


@pytest.mark.parametrize("term", list(TERMS))
@pytest.mark.parametrize("stat", STATS)
def test_pooled_rows_match_mice_within_monte_carlo_error(ours, term, stat):
    ref = pd.read_csv(R_ROWS)
    ref = ref.loc[ref["term"] == term]
    assert len(ref) >= 10
    mine = ours[term]
    tol = 4 * ref[stat].std(ddof=1) * np.sqrt(1 / len(mine) + 1 / len(ref))
    diff = mine[stat].mean() - ref[stat].mean()
    assert abs(diff) <= tol, f"{term} {stat}: ours {mine[stat].mean():.4g}, R {ref[stat].mean():.4g}, tol {tol:.3g}"
