"""Unit tests for imrstats.trial.rubin: definitions, edge cases and errors (R agreement is in
tests/validation/test_rubin_vs_r.py)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imrstats.errors import AnalysisError
from imrstats.trial.rubin import barnard_rubin_df, pool_rubin, pool_rubin_many

Q = np.array([1.0, 1.4, 0.7, 1.1])
U = np.array([0.20, 0.25, 0.22, 0.18])


def test_rubin_quantities_follow_their_definitions():
    est = pool_rubin(Q, U, 50, quantity="arm")
    m = 4
    b = np.var(Q, ddof=1)
    ubar = U.mean()
    t = ubar + (1 + 1 / m) * b
    lam = (1 + 1 / m) * b / t
    # Barnard & Rubin (1999) in its original form: 1/df = 1/df_old + 1/df_obs
    df_old = (m - 1) / lam**2
    df_obs = (50 + 1) / (50 + 3) * 50 * (1 - lam)
    df = 1 / (1 / df_old + 1 / df_obs)
    assert est.quantity == "arm"
    assert est.estimate == pytest.approx(Q.mean(), rel=1e-12)
    assert est.se == pytest.approx(math.sqrt(t), rel=1e-12)
    assert est.df == pytest.approx(df, rel=1e-12)
    assert est.extra["riv"] == pytest.approx((1 + 1 / m) * b / ubar, rel=1e-12)
    assert est.extra["lambda"] == pytest.approx(lam, rel=1e-12)
    riv = est.extra["riv"]
    assert est.extra["fmi"] == pytest.approx((riv + 2 / (df + 3)) / (riv + 1), rel=1e-12)
    half = stats.t.ppf(0.975, df) * math.sqrt(t)
    assert (est.ci_low, est.ci_high) == pytest.approx((Q.mean() - half, Q.mean() + half), rel=1e-12)
    assert est.p == pytest.approx(2 * stats.t.sf(Q.mean() / math.sqrt(t), df), rel=1e-10)
    assert est.extra["m"] == 4 and est.extra["df_complete"] == 50
    assert "Barnard-Rubin" in est.method and "50" in est.method


def test_infinite_complete_data_df_gives_rubin_1987_df():
    est = pool_rubin(Q, U)
    lam = est.extra["lambda"]
    assert est.df == pytest.approx(3 / lam**2, rel=1e-12)
    # the small-sample df tends to the large-sample one as dfcom grows
    assert pool_rubin(Q, U, 1e12).df == pytest.approx(est.df, rel=1e-6)
    assert pool_rubin(Q, U, 30).df < est.df


def test_zero_between_variance():
    same = np.full(5, 2.0)
    u = np.full(5, 0.3)
    est = pool_rubin(same, u)
    assert est.df == math.inf and est.extra["riv"] == 0 and est.extra["fmi"] == 0
    assert est.ci_high - est.estimate == pytest.approx(stats.norm.ppf(0.975) * math.sqrt(0.3))
    finite = pool_rubin(same, u, 20)
    assert finite.df == pytest.approx(20 * 21 / 23)
    json.dumps(est.to_dict())  # inf df becomes null


def test_barnard_rubin_df_never_exceeds_observed_data_df():
    b = np.linspace(0.01, 2, 25)
    t = 0.5 + 1.1 * b
    df = barnard_rubin_df(10, b, t, 40)
    assert np.all(df <= 40 * 41 / 43 + 1e-12)
    assert np.all(np.diff(df) < 0)  # more missing information, fewer df


def test_vector_form_equals_scalar_form():
    rng = np.random.default_rng(3)
    est = rng.normal(size=(20, 3))
    var = rng.uniform(0.1, 0.5, size=(20, 3))
    frame = pool_rubin_many(pd.DataFrame(est, columns=["a", "b", "c"]), var, [30, 40, math.inf])
    assert list(frame["quantity"]) == ["a", "b", "c"]
    for j, dfc in enumerate([30, 40, math.inf]):
        one = pool_rubin(est[:, j], var[:, j], dfc)
        row = frame.iloc[j]
        for col in ["estimate", "se", "ci_low", "ci_high", "df", "p", "riv", "fmi", "lambda"]:
            assert row[col] == pytest.approx(one.to_dict()[col], rel=1e-12), col


@pytest.mark.parametrize(
    "q,u,dfc,match",
    [
        ([1.0], [0.1], math.inf, "at least 2"),
        ([1.0, 2.0], [0.1], math.inf, "shape"),
        ([1.0, np.nan], [0.1, 0.1], math.inf, "missing or infinite"),
        ([1.0, 2.0], [0.1, 0.0], math.inf, "zero or negative"),
        ([1.0, 2.0], [0.1, -0.2], math.inf, "zero or negative"),
        ([1.0, 2.0], [0.1, 0.2], 0, "df_complete"),
        ([1.0, 2.0], [0.1, 0.2], np.nan, "df_complete"),
    ],
)
def test_bad_input_raises(q, u, dfc, match):
    with pytest.raises(AnalysisError, match=match):
        pool_rubin(q, u, dfc)


def test_quantity_names_must_match_columns():
    with pytest.raises(AnalysisError, match="quantity names"):
        pool_rubin_many(np.ones((3, 2)) + np.eye(3, 2), np.ones((3, 2)), quantities=["a"])
