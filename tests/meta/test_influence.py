"""imrstats.meta.influence: edge cases and closed forms (the numbers are pinned to metafor in
tests/validation/test_meta_influence_vs_r.py)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

from imrstats.errors import AnalysisError, SettingsError
from imrstats.meta.influence import (
    INFLUENCE_COLUMNS,
    TrimFillResult,
    baujat,
    influence,
    kendall_exact_cdf,
    ranktest,
    trimfill,
)
from imrstats.meta.random_effects import rma

Y5 = [0.36, 1.22, -0.23, 0.30, 0.45]
V5 = [0.039, 0.116, 0.044, 0.023, 0.019]


def test_columns_and_sums():
    res = rma(Y5, V5, slab=list("abcde"))
    frame = influence(res)
    assert list(frame.columns) == INFLUENCE_COLUMNS
    assert list(frame["slab"]) == list("abcde")
    assert frame["hat"].sum() == pytest.approx(1.0, abs=1e-12)
    assert frame["weight"].sum() == pytest.approx(100.0, abs=1e-10)
    assert "DFFITS" in frame.attrs["rule"] and "hat > 3 p / k" in frame.attrs["rule"]


def test_flag_follows_the_stated_rule():
    res = rma(Y5, V5, method="DL")
    frame = influence(res)
    k = res.k
    rule = (
        (frame["dffits"].abs() > 3 * math.sqrt(1 / (k - 1)))
        | (stats.chi2.cdf(frame["cook_d"], 1) > 0.5)
        | (frame["hat"] > 3 / k)
        | (frame["dfbetas"].abs() > 1)
    )
    assert frame["influential"].tolist() == rule.tolist()
    assert rule.any()  # this data set has an influential study (the outlying 1.22)
    assert frame.loc[frame["influential"], "influential_by"].str.len().gt(0).all()


def test_k2_leaves_a_single_study_as_metafor():
    """Leaving one of two studies out leaves the other: tau^2 = 0, Q = 0, Wald variance, so the studentized
    residual is (y_i - y_j) / sqrt(v_i + v_j) and the covariance ratio v_j / Var(mu)."""
    y, v = np.array([-0.89, -1.59]), np.array([0.33, 0.19])
    for knha in (False, True):
        res = rma(y, v, knha=knha)
        frame = influence(res)
        assert frame["tau2_del"].tolist() == [0.0, 0.0] and frame["qe_del"].tolist() == [0.0, 0.0]
        assert frame["estimate_del"].tolist() == [y[1], y[0]]
        expected = (y - y[::-1]) / np.sqrt(v + v[::-1])
        np.testing.assert_allclose(frame["rstudent"], expected, rtol=1e-12)
        np.testing.assert_allclose(frame["cov_r"], v[::-1] / res.se**2, rtol=1e-12)
    with pytest.raises(AnalysisError, match="side"):
        trimfill(rma(y, v))  # metafor stops too: Egger's regression has no df
    assert trimfill(rma(y, v), side="left").k0 >= 0
    row = ranktest(rma(y, v)).iloc[0]
    assert abs(row["estimate"]) == 1.0 and row["p"] == 1.0


def test_k3():
    res = rma(Y5[:3], V5[:3])
    frame = influence(res)
    assert len(frame) == 3 and frame[["rstudent", "dffits", "cook_d", "cov_r"]].notna().all().all()
    assert frame["influential"].any()  # k = 3: DFFITS cut-off 3 sqrt(1/2), hat cut-off 3/k = 1 (never reached)
    assert not frame["influential_by"].str.contains("hat").any()
    tf = trimfill(res)
    assert tf.side in ("left", "right") and tf.fit.k == 3 + tf.k0
    assert len(baujat(res)) == 3


def test_study_with_negligible_weight():
    """A study with vi = 1e40 has hat value ~0: it does not move the pooled effect, nothing is infinite, and it is
    not flagged (metafor divides by sqrt(hat) in DFFITS)."""
    y, v = [*Y5, 5.0], [*V5, 1e40]
    res = rma(y, v, threshold=1e-12, maxiter=1000)  # REML at its optimum, so the two fits can be compared
    frame = influence(res)
    last = frame.iloc[-1]
    assert last["hat"] < 1e-40 and last["weight"] < 1e-38
    assert last["estimate_del"] == pytest.approx(res.estimate, rel=1e-12)
    assert np.isfinite(frame[["rstudent", "dffits", "cook_d", "cov_r", "dfbetas"]].to_numpy()).all()
    assert abs(last["dffits"]) < 1e-6 and last["cook_d"] < 1e-12 and not last["influential"]
    assert last["rstudent"] == pytest.approx((5.0 - res.estimate) / 1e20, rel=1e-6)
    np.testing.assert_allclose(
        frame["tau2_del"].iloc[:-1],
        influence(rma(Y5, V5, threshold=1e-12, maxiter=1000))["tau2_del"],
        rtol=1e-9,
        atol=1e-10,
    )


def test_all_studies_identical():
    y, v = [0.3] * 5, [0.04] * 5
    res = rma(y, v)
    assert res.tau2 == 0.0
    frame = influence(res)
    np.testing.assert_allclose(frame["rstudent"], 0.0, atol=1e-12)
    np.testing.assert_allclose(frame["dffits"], 0.0, atol=1e-10)
    np.testing.assert_allclose(frame["cook_d"], 0.0, atol=1e-20)
    np.testing.assert_allclose(frame["cov_r"], 5 / 4, rtol=1e-12)
    np.testing.assert_allclose(frame["hat"], 0.2, rtol=1e-12)
    assert not frame["influential"].any()
    for estimator in ("L0", "R0", "Q0"):
        for side in ("left", "right"):
            tf = trimfill(res, side=side, estimator=estimator)
            assert tf.k0 == 0 and tf.fit is res
    row = ranktest(res).iloc[0]
    assert math.isnan(row["estimate"]) and "undefined" in row["notes"]
    with pytest.raises(AnalysisError, match="Knapp-Hartung"):
        influence(rma(y, v, knha=True))  # Var(mu) = 0: Cook's distance undefined (metafor stops)
    with pytest.raises(AnalysisError, match="same standard error"):
        trimfill(res)


def test_equal_effects_model():
    res = rma(Y5, V5, method="EE")
    frame = influence(res)
    assert (frame["tau2_del"] == 0).all()
    assert baujat(res)["x"].sum() == pytest.approx(res.q, rel=1e-12)  # the contributions add up to Q


def test_bad_arguments():
    res = rma(Y5, V5)
    with pytest.raises(SettingsError, match="estimator"):
        trimfill(res, estimator="X0")
    with pytest.raises(SettingsError, match="side"):
        trimfill(res, side="up")
    single = rma([0.2], [0.04])
    for fn in (influence, baujat, ranktest, trimfill):
        with pytest.raises(AnalysisError, match="at least 2"):
            fn(single)
    with pytest.raises(AnalysisError, match="threshold"):
        rma(Y5, V5, threshold=0)
    with pytest.raises(AnalysisError, match="maxiter"):
        rma(Y5, V5, maxiter=0)


def test_control_is_kept_and_passed_on():
    tight = rma(Y5, V5, threshold=1e-12, maxiter=1000)
    assert tight.control == {"threshold": 1e-12, "maxiter": 1000}
    assert tight.to_dict()["control"] == tight.control
    assert "control" not in rma(Y5, V5).to_dict()
    loose = rma(Y5, V5, threshold=1e-2)
    assert influence(tight)["tau2_del"].tolist() != influence(loose)["tau2_del"].tolist()


def test_trimfill_result_shape():
    y = [0.10, 0.25, 0.32, 0.41, 0.55, 0.62, 0.80, 0.95]
    v = [0.010, 0.020, 0.030, 0.050, 0.080, 0.100, 0.150, 0.200]  # small studies show larger effects
    tf = trimfill(rma(y, v), estimator="L0")
    assert isinstance(tf, TrimFillResult) and tf.side == "left" and tf.k0 > 0
    data = tf.data
    assert list(data.columns) == ["slab", "yi", "vi", "sei", "filled"]
    assert data["filled"].sum() == tf.k0 and data["slab"].iloc[-1] == f"Filled {tf.k0}"
    assert tf.fit.estimate < tf.original.estimate  # mirrored small studies pull the estimate down
    frame = tf.to_frame()
    assert frame["quantity"].tolist() == [
        "k0 (studies estimated missing)",
        "pooled effect (trim and fill)",
        "pooled effect (observed studies)",
    ]
    json.dumps(tf.to_dict())
    assert f"{tf.k0} (SE" in tf.summary()
    assert math.isnan(tf.p_k0)
    assert trimfill(rma(y, v), estimator="R0").p_k0 == 0.5 ** (trimfill(rma(y, v), estimator="R0").k0 + 1)


def test_kendall_exact_distribution_by_enumeration():
    """The exact null distribution of concordant pairs against all 5! permutations."""
    n = 5
    counts = np.zeros(n * (n - 1) // 2 + 1)
    for perm in itertools.permutations(range(n)):
        concordant = sum(perm[i] < perm[j] for i in range(n) for j in range(i + 1, n))
        counts[concordant] += 1
    cdf = np.cumsum(counts) / counts.sum()
    for q in range(-1, len(cdf) + 1):
        expected = 0.0 if q < 0 else (1.0 if q >= len(cdf) else cdf[q])
        assert kendall_exact_cdf(q, n) == pytest.approx(expected, abs=1e-14)


def test_rank_test_exact_matches_scipy_without_ties():
    rng = np.random.default_rng(3)
    y, v = rng.normal(size=12), rng.uniform(0.01, 0.2, size=12)
    row = ranktest(rma(y, v)).iloc[0]
    w = 1 / v
    y_star = (y - np.sum(w * y) / np.sum(w)) / np.sqrt(v - 1 / np.sum(w))
    ref = stats.kendalltau(y_star, v, method="exact")
    assert row["exact"] and row["estimate"] == pytest.approx(ref.statistic, rel=1e-12)
    assert row["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert "low power" not in row["notes"]


def test_figures():
    from imrstats.meta.figures import baujat_figure, contour_funnel_figure

    y = [0.10, 0.25, 0.32, 0.41, 0.55, 0.62, 0.80, 0.95]
    v = [0.010, 0.020, 0.030, 0.050, 0.080, 0.100, 0.150, 0.200]
    res = rma(y, v)
    tf = trimfill(res)
    fig = contour_funnel_figure(res, trimfill=tf, xlabel="Hedges' g")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:4] == ["p > 0.10", "0.05 < p \u2264 0.10", "0.01 < p \u2264 0.05", "p \u2264 0.01"]
    assert "filled-in (trim and fill)" in labels
    assert ax.get_ylim()[0] > ax.get_ylim()[1] == 0  # standard error axis inverted, 0 on top
    with pytest.raises(AnalysisError, match="percentages"):
        contour_funnel_figure(res, levels=(0.9, 95, 120))
    fig = baujat_figure(baujat(res))
    assert len(fig.axes[0].texts) == res.k
