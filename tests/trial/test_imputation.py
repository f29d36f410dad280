"""Unit tests for imrstats.trial.mice (agreement with R mice is in
tests/validation/test_imputation_vs_r.py)."""

import json

import numpy as np
import pandas as pd
import pytest

from imrstats.errors import AnalysisError
from imrstats.trial.mice import impute_chained, match_donors
from imrstats.trial.rubin import pool_rubin

TARGETS = ["y0", "y1", "y2"]
PREDICTORS = ["arm", "site", "age"]


def simulate_trial(n=150, seed=0, arm_effect=2.0, mar=True, full=False):
    """Trial-like wide data: baseline y0, post y1, follow-up y2; MAR (or MCAR) dropout.
    ``full=True`` returns the same data before any value is deleted."""
    rng = np.random.default_rng(seed)
    arm = np.where(rng.permutation(n) < n // 2, "IMR", "TAU")
    site = rng.choice(["s1", "s2", "s3"], size=n)
    age = rng.normal(40, 10, n)
    imr = (arm == "IMR").astype(float)
    y0 = 50 + 0.05 * (age - 40) + rng.normal(0, 8, n)
    y1 = 10 + 0.8 * y0 + arm_effect * imr + rng.normal(0, 6, n)
    y2 = 5 + 0.5 * y1 + 0.4 * y0 + rng.normal(0, 6, n)
    if mar:
        p1 = 1 / (1 + np.exp(-(-1.0 - 0.08 * (y0 - 50) + 0.4 * (1 - imr))))
        p2 = 1 / (1 + np.exp(-(-1.0 - 0.06 * (y0 - 50))))
    else:
        p1 = p2 = np.full(n, 0.3)
    if full:
        return pd.DataFrame({"arm": arm, "site": site, "age": age, "y0": y0, "y1": y1, "y2": y2})
    y1m = np.where(rng.uniform(size=n) < p1, np.nan, y1)
    y2m = np.where(rng.uniform(size=n) < p2, np.nan, y2)
    y0m = np.where(rng.uniform(size=n) < 0.04, np.nan, y0)
    return pd.DataFrame({"arm": arm, "site": site, "age": age, "y0": y0m, "y1": y1m, "y2": y2m})


@pytest.fixture(scope="module")
def trial():
    return simulate_trial()


@pytest.fixture(scope="module", params=["pmm", "norm"])
def result(request, trial):
    return impute_chained(trial, targets=TARGETS, predictors=PREDICTORS, method=request.param, m=20, seed=11)


def test_completed_data_have_no_missing_values_and_observed_cells_are_untouched(result, trial):
    observed = trial[TARGETS].to_numpy()
    assert result.imputed.shape == (20, len(trial), 3)
    assert not np.isnan(result.imputed).any()
    mask = ~np.isnan(observed)
    for i in range(result.m):
        assert np.array_equal(result.imputed[i][mask], observed[mask])
    assert np.array_equal(result.missing, np.isnan(observed))


def test_imputations_differ_between_chains(result):
    cells = result.imputed[:, result.missing[:, 1], 1]
    assert np.all(cells.std(axis=0) > 0)  # every missing cell varies across the m imputations


def test_same_seed_reproduces_and_another_seed_differs(trial):
    kwargs = dict(targets=TARGETS, predictors=PREDICTORS, m=5)
    a = impute_chained(trial, seed=3, **kwargs)
    b = impute_chained(trial, seed=3, **kwargs)
    c = impute_chained(trial, seed=4, **kwargs)
    g = impute_chained(trial, seed=np.random.default_rng(3), **kwargs)
    assert np.array_equal(a.imputed, b.imputed)
    assert np.array_equal(a.chain_mean, b.chain_mean)
    assert not np.array_equal(a.imputed, c.imputed)
    assert np.array_equal(a.imputed, g.imputed) and g.seed is None


def test_pmm_only_imputes_observed_values(trial):
    res = impute_chained(trial, targets=TARGETS, predictors=PREDICTORS, method="pmm", m=10, seed=5)
    for j, name in enumerate(TARGETS):
        observed = set(trial[name].dropna())
        imputed = res.imputed[:, res.missing[:, j], j]
        assert set(np.unique(imputed)) <= observed


def test_norm_draws_new_values(trial):
    res = impute_chained(trial, targets=TARGETS, predictors=PREDICTORS, method="norm", m=3, seed=5)
    imputed = res.imputed[:, res.missing[:, 1], 1]
    assert not set(np.unique(imputed)) & set(trial["y1"].dropna())


def test_completed_frames_and_diagnostics(result, trial):
    frames = list(result.iter_completed())
    assert len(frames) == 20
    first = result.completed(0)
    assert first[TARGETS].notna().all().all()
    pd.testing.assert_frame_equal(first[PREDICTORS], trial[PREDICTORS])
    assert np.array_equal(first["y1"].to_numpy(), result.imputed[0, :, 1])
    with pytest.raises(AnalysisError, match="outside"):
        result.completed(20)
    chains = result.chain_frame()
    assert len(chains) == 3 * result.maxit * 20
    assert set(chains.columns) == {"target", "iteration", "imputation", "mean", "var"}
    # the chain mean of the last iteration is the mean of the imputed cells
    last = result.imputed[:, result.missing[:, 2], 2].mean(axis=1)
    assert np.allclose(result.chain_mean[2, -1], last)
    summary = result.to_dict()
    json.dumps(summary)
    assert summary["n_missing"]["y1"] == int(trial["y1"].isna().sum())
    assert result.design_columns["y2"] == ["(Intercept)", "arm[T.TAU]", "site[T.s2]", "site[T.s3]", "age", "y0", "y1"]


def test_mean_of_imputations_tracks_the_mar_truth():
    """Under MAR on y0 the complete-case mean of y1 is biased; MI must remove most of it."""
    data = simulate_trial(n=1000, seed=1)
    full_y1 = simulate_trial(n=1000, seed=1, full=True)["y1"]
    res = impute_chained(data, targets=TARGETS, predictors=PREDICTORS, method="norm", m=5, seed=2)
    mi_mean = res.imputed[:, :, 1].mean()
    assert abs(data["y1"].mean() - full_y1.mean()) > 1.0  # the missingness really is informative
    assert abs(mi_mean - full_y1.mean()) < 0.5


def test_predictor_constant_among_observed_rows_is_dropped(trial):
    data = trial.copy()
    data["flag"] = 0.0
    res = impute_chained(data, targets=TARGETS, predictors=PREDICTORS + ["flag"], m=2, seed=1)
    assert res.dropped_predictors["y1"] == ["flag"]
    assert "flag" not in res.design_columns["y1"]


def test_collinear_predictors_use_the_ridge_fallback(trial):
    data = trial.copy()
    data["age_copy"] = data["age"]
    res = impute_chained(data, targets=TARGETS, predictors=PREDICTORS + ["age_copy"], m=4, seed=1)
    assert res.ridge_fallbacks > 0
    assert not np.isnan(res.imputed).any()
    assert res.to_dict()["ridge_fallbacks"] == res.ridge_fallbacks


def test_match_donors_draws_uniformly_among_the_nearest():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(50, 80))
    mis = rng.normal(size=(50, 30))
    idx = match_donors(obs, mis, 5, rng)
    dist = np.abs(mis[:, :, None] - obs[:, None, :])
    rank = np.argsort(np.argsort(dist, axis=-1), axis=-1)
    chosen_rank = np.take_along_axis(rank, idx[..., None], -1)[..., 0]
    counts = np.bincount(chosen_rank.ravel(), minlength=6)
    assert counts[5] == 0  # only the 5 nearest are donors
    assert counts[:5].min() > 0.8 * 300 and counts[:5].max() < 1.2 * 300  # roughly uniform (1500 draws)
    # donors = 1 is the nearest neighbour; more donors than observed rows means all of them
    nearest = match_donors(obs, mis, 1, rng)
    assert np.array_equal(nearest, dist.argmin(axis=-1))
    assert match_donors(obs[:, :3], mis, 5, rng).max() <= 2


def test_ties_in_predictions_are_broken_at_random():
    rng = np.random.default_rng(0)
    obs = np.zeros((1, 10))
    picks = match_donors(obs, np.zeros((1, 2000)), 10, rng)
    assert set(np.unique(picks)) == set(range(10))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(method="cart"), "method"),
        (dict(m=0), "m \\(number"),
        (dict(maxit=0), "maxit"),
        (dict(donors=0), "donors"),
        (dict(targets=[]), "no targets"),
        (dict(targets=["y1", "y1"]), "duplicates"),
        (dict(targets=["y1", "nope"]), "not in the data"),
        (dict(targets=["arm"]), "not numeric"),
        (dict(predictors=["arm", "y0"], targets=["y1"]), "predictor 'y0' has"),
    ],
)
def test_bad_settings_raise(trial, kwargs, match):
    args = dict(targets=TARGETS, predictors=PREDICTORS, m=2, seed=1)
    args.update(kwargs)
    with pytest.raises(AnalysisError, match=match):
        impute_chained(trial, **args)


def test_target_without_enough_observed_values_raises(trial):
    data = trial.copy()
    data.loc[1:, "y2"] = np.nan
    with pytest.raises(AnalysisError, match="observed values"):
        impute_chained(data, targets=TARGETS, predictors=PREDICTORS, m=2, seed=1)


def _ols_arm_effect(x_fixed, y0, y1):
    """Batched OLS of y1 on [fixed, y0]: coefficient of column 1 (arm) and its variance."""
    m = y1.shape[0]
    x = np.concatenate([np.broadcast_to(x_fixed, (m,) + x_fixed.shape), y0[:, :, None]], axis=2)
    q, r = np.linalg.qr(x)
    r_inv = np.linalg.inv(r)
    beta = np.einsum("mij,mnj,mn->mi", r_inv, q, y1)
    resid = y1 - np.einsum("mnp,mp->mn", x, beta)
    dfres = x.shape[1] - x.shape[2]
    sigma2 = (resid**2).sum(axis=1) / dfres
    var = sigma2[:, None] * np.einsum("mij,mij->mi", r_inv, r_inv)
    return beta[:, 1], var[:, 1], dfres


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pmm", "norm"])
def test_multiple_imputation_intervals_cover_the_truth(method, request):
    """Proper imputation: the 95% MI interval for the arm effect on y1 (adjusted for y0) covers
    the true value 2.0 in about 95% of 200 MAR data sets. With 200 replicates the Monte Carlo SE
    of a 95% coverage is 1.5 points, so [0.90, 0.99] is about a +/-3 SE band (both tails)."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("simulation study: run with -m slow")
    covered = []
    for rep in range(200):
        data = simulate_trial(n=200, seed=10_000 + rep)
        res = impute_chained(data, targets=TARGETS, predictors=PREDICTORS, method=method, m=20, seed=rep)
        x_fixed = np.column_stack([np.ones(len(data)), data["arm"] == "IMR"]).astype(float)
        est, var, dfres = _ols_arm_effect(x_fixed, res.imputed[:, :, 0], res.imputed[:, :, 1])
        pooled = pool_rubin(est, var, dfres)
        covered.append(pooled.ci_low <= 2.0 <= pooled.ci_high)
    coverage = np.mean(covered)
    assert 0.90 <= coverage <= 0.99, coverage
