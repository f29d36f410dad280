"""Unit tests for imrstats.meta.selection: the step-function selection model's degenerate cases named clearly,
its symmetries, and the Vevea & Woods sensitivity table. (Numbers against metafor's selmodel are in
tests/validation/test_meta_selection_vs_r.py.)"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from imrstats.errors import AnalysisError
from imrstats.meta.random_effects import rma
from imrstats.meta.selection import (
    VEVEA_WOODS_SOURCE,
    selmodel_sensitivity,
    selmodel_stepfun,
    vevea_woods_2005,
)
from imrstats.results import to_json

# 16 synthetic standardised mean differences: positive, some significant at one-sided p < .025
YI = [0.62, 0.15, 0.48, 0.05, 0.81, 0.30, 0.22, -0.10, 0.55, 0.40, 0.12, 0.70, 0.35, 0.02, 0.26, 0.90]
VI = [0.040, 0.060, 0.030, 0.080, 0.050, 0.045, 0.070, 0.090, 0.035, 0.055, 0.065, 0.060, 0.040, 0.075, 0.050, 0.085]


def test_fit_its_rows_and_json():
    res = selmodel_stepfun((YI, VI), (0.025, 1))
    assert res.k == 16 and sum(res.k_interval) == 16 and res.k_interval[0] > 0
    assert res.delta[0] == 1.0 and res.delta_fixed == (True, False)
    assert res.lrt_df == 1 and 0 <= res.lrt_p <= 1
    frame = res.to_frame()
    assert frame["quantity"].tolist() == [
        "pooled effect (adjusted for selection)",
        "tau^2",
        "selection weight (0 < p <= 0.025)",
        "selection weight (0.025 < p <= 1)",
        "likelihood-ratio test of selection",
    ]
    assert "Vevea & Hedges 1995" in res.summary()
    assert json.loads(to_json(res))["estimates"][0]["unadjusted"] == pytest.approx(res.unadjusted_estimate)


def test_weights_fixed_at_one_give_the_ml_random_effects_model():
    fit = selmodel_stepfun((YI, VI), (0.025, 0.5, 1), delta=[1, 1, 1])
    ref = rma(YI, VI, method="ML", threshold=1e-12, maxiter=1000)
    assert math.isclose(fit.estimate, ref.estimate, rel_tol=1e-8)
    assert math.isclose(fit.tau2, ref.tau2, rel_tol=1e-6)
    assert fit.lrt_df == 0 and fit.lrt == pytest.approx(0.0, abs=1e-9) and math.isnan(fit.lrt_p)
    assert math.isclose(fit.loglik, fit.loglik0, rel_tol=1e-10)


def test_only_relative_weights_matter():
    """Multiplying every fixed weight by the same constant leaves mu and tau^2 unchanged."""
    weights = vevea_woods_2005()
    steps, w = weights["steps"], weights["severe one-tailed"].to_numpy()
    a = selmodel_stepfun((YI, VI), steps, delta=w)
    b = selmodel_stepfun((YI, VI), steps, delta=3 * w)
    assert math.isclose(a.estimate, b.estimate, rel_tol=1e-8)
    assert math.isclose(a.tau2, b.tau2, rel_tol=1e-6, abs_tol=1e-12)


def test_less_is_greater_mirrored():
    """alternative='less' on y is alternative='greater' on -y, with mu's sign reversed."""
    neg = [-y for y in YI]
    a = selmodel_stepfun((YI, VI), (0.05, 0.5, 1), alternative="greater")
    b = selmodel_stepfun((neg, VI), (0.05, 0.5, 1), alternative="less")
    assert math.isclose(a.estimate, -b.estimate, rel_tol=1e-7)
    np.testing.assert_allclose(a.delta, b.delta, rtol=1e-6)
    assert a.k_interval == b.k_interval


def test_selection_against_small_effects_pulls_the_estimate_down():
    """Severe one-tailed selection (non-significant results published less) lowers the adjusted estimate, and
    more than moderate selection does."""
    table = selmodel_sensitivity(YI, VI)
    change = dict(zip(table["pattern"], table["change"]))
    assert change["none"] == 0.0
    assert change["severe one-tailed"] < change["moderate one-tailed"] < 0
    assert all("exploratory with k = 16 studies" in note for note in table["notes"])
    assert all(VEVEA_WOODS_SOURCE in note for note in table["notes"])


def test_empty_interval_with_a_free_weight_is_named():
    with pytest.raises(AnalysisError, match=r"No study has its p-value in 0.5 < p <= 0.6"):
        selmodel_stepfun((YI, VI), (0.5, 0.6, 1))
    # a fixed weight for an empty interval is fine (Vevea & Woods' 14 intervals are rarely all filled)
    res = selmodel_stepfun((YI, VI), (0.5, 0.6, 1), delta=[1, 0.5, None])
    assert res.k_interval[1] == 0 and res.delta_fixed == (True, True, False)


def test_weight_running_to_its_bound_is_flagged():
    """No study is significant in the selected direction: the weight of the other interval runs to metafor's
    bound of 100; the result says so and gives that weight no SE."""
    y = [-0.3, -0.5, 0.1, -0.2, -0.6, -0.1, 0.05, -0.4]
    v = [0.04, 0.05, 0.06, 0.03, 0.05, 0.04, 0.07, 0.05]
    res = selmodel_stepfun((y, v), (0.025, 1), delta=[1, None])
    assert res.k_interval == (0, 8) and res.delta[1] == 100.0
    assert math.isnan(res.se_delta[1]) and math.isfinite(res.se)
    assert any("ran to its bound 100" in note for note in res.notes)
    assert res.tau2 == 0.0 and any("tau^2 estimated at the boundary 0" in note for note in res.notes)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (((YI[:3], VI[:3]), (0.025, 0.5, 1)), {}, "too few"),
        (((YI, VI), (0.0, 1)), {}, r"steps must lie in \(0, 1\]"),
        (((YI, VI), (0.025, 1.2)), {}, r"steps must lie in \(0, 1\]"),
        (((YI, VI), (0.025, 1)), {"alternative": "upper"}, "alternative must be one of"),
        (((YI, VI), (0.025, 1)), {"delta": [1, 1, 1]}, "one value per p-value interval"),
        (((YI, VI), (0.025, 1)), {"delta": [1, -0.5]}, "must be >= 0"),
        (((YI, VI[:-1]), (0.025, 1)), {}, "differ in length"),
        (((YI[:-1] + [math.nan], VI), (0.025, 1)), {}, "missing or infinite"),
        (("not data", (0.025, 1)), {}, "rma"),
    ],
)
def test_bad_input_raises(args, kwargs, message):
    with pytest.raises(AnalysisError, match=message):
        selmodel_stepfun(*args, **kwargs)


def test_steps_get_their_upper_end_and_a_rma_result_is_refitted_by_ml():
    res = rma(YI, VI, method="REML")
    a = selmodel_stepfun(res, (0.025,))
    assert a.steps == (0.025, 1.0)
    assert any("fitted by ML" in note for note in a.notes)
    b = selmodel_stepfun((YI, VI), (0.025, 1))
    assert math.isclose(a.estimate, b.estimate, rel_tol=1e-12)


def test_equal_effects_input_keeps_tau2_at_zero():
    ee = rma(YI, VI, method="EE")
    res = selmodel_stepfun(ee, (0.025, 1), delta=[1, 1])
    assert res.tau2 == 0.0 and math.isnan(res.se_tau2) and math.isnan(res.lrt_tau2)
    assert math.isclose(res.estimate, ee.estimate, rel_tol=1e-9)
    assert math.isclose(res.se, ee.se, rel_tol=1e-6)
    assert any("equal-effects (EE) model: tau^2 is fixed at 0" in note for note in res.notes)
    free = selmodel_stepfun(ee, (0.025, 1))
    assert free.tau2 == 0.0 and free.lrt_df == 1


def test_sensitivity_with_the_analysts_own_weights_and_bad_tables():
    own = pd.DataFrame({"steps": [0.05, 1.0], "mild": [1.0, 0.8]})
    table = selmodel_sensitivity(YI, VI, own)
    assert table["pattern"].tolist() == ["none", "mild"]
    assert table["weights"].tolist() == ["", "1, 0.8"]
    assert "weights given by the analyst" in table["notes"].iloc[1]
    with pytest.raises(AnalysisError, match="'steps' column"):
        selmodel_sensitivity(YI, VI, pd.DataFrame({"mild": [1.0, 0.8]}))
    with pytest.raises(AnalysisError, match="increase strictly"):
        selmodel_sensitivity(YI, VI, pd.DataFrame({"steps": [0.5, 0.05], "mild": [1.0, 0.8]}))
    with pytest.raises(AnalysisError, match="finite and >= 0"):
        selmodel_sensitivity(YI, VI, pd.DataFrame({"steps": [0.05, 1.0], "mild": [1.0, -0.8]}))


def test_vevea_woods_table_shape():
    table = vevea_woods_2005()
    assert table.shape == (14, 5) and table["steps"].iloc[-1] == 1.0
    assert (table.drop(columns="steps").iloc[0] == 1).all()
    # two-tailed patterns are symmetric around p = .5 on the one-sided scale: interval i mirrors interval 15 - i
    for pattern in ("moderate two-tailed", "severe two-tailed"):
        assert table[pattern].tolist() == table[pattern].tolist()[::-1]
