"""Unit tests for imrstats.meta.random_effects: degenerate input, k = 1, result shape, printout and the root finder.
(Numbers against metafor are in tests/validation/test_meta_vs_r.py.)"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import optimize

from imrstats.errors import AnalysisError
from imrstats.meta.random_effects import brent_zeroin, rma

YI = [0.34, 0.52, 0.39, 0.06, 0.83, -0.05, 0.20]
VI = [0.019, 0.035, 0.098, 0.018, 0.047, 0.025, 0.020]


@pytest.mark.parametrize(
    "yi, vi, message",
    [
        ([0.1, 0.2], [0.01, 0.0], "vi <= 0"),
        ([0.1, 0.2], [0.01, -0.02], "vi <= 0"),
        ([0.1, float("nan")], [0.01, 0.02], "missing"),
        ([0.1, 0.2], [0.01, float("inf")], "missing"),
        ([0.1, 0.2], [0.01], "differ in length"),
        ([], [], "k = 0"),
    ],
)
def test_bad_input_raises(yi, vi, message):
    with pytest.raises(AnalysisError, match=message):
        rma(yi, vi)


def test_bad_options_raise():
    with pytest.raises(AnalysisError, match="Unknown method"):
        rma(YI, VI, method="HS")
    with pytest.raises(AnalysisError, match="level"):
        rma(YI, VI, level=95)
    with pytest.raises(AnalysisError, match="labels"):
        rma(YI, VI, slab=["a"])


def test_single_study_is_its_own_estimate_with_a_note_and_no_heterogeneity():
    res = rma([0.4], [0.04], method="REML", knha=True)
    assert res.estimate == 0.4 and res.se == pytest.approx(0.2)
    assert res.ci_low == pytest.approx(0.4 - 1.959963984540054 * 0.2)
    assert all(math.isnan(x) for x in (res.tau2, res.i2, res.h2, res.q, res.q_p))
    assert any("k = 1" in n for n in res.notes) and any("Wald z" in n for n in res.notes)
    with pytest.raises(AnalysisError):
        res.confint()
    with pytest.raises(AnalysisError):
        res.leave1out()
    with pytest.raises(AnalysisError):
        res.regtest()


def test_equal_effects_is_inverse_variance_weighting():
    res = rma(YI, VI, method="EE")
    w = 1 / np.asarray(VI)
    assert res.estimate == pytest.approx(np.sum(w * YI) / np.sum(w), rel=1e-12)
    assert res.se == pytest.approx(1 / math.sqrt(np.sum(w)), rel=1e-12)
    assert rma(YI, VI, method="FE").estimate == res.estimate
    with pytest.raises(AnalysisError, match="no tau"):
        res.confint()


def test_knha_uses_t_with_k_minus_1_df():
    res = rma(YI, VI, method="DL", knha=True)
    assert res.df == len(YI) - 1 and "Knapp-Hartung t(6)" in res.method_label
    assert math.isnan(rma(YI, VI, method="DL").df)


def test_two_studies_random_effects_and_too_few_for_egger():
    res = rma([0.1, 0.6], [0.02, 0.03], method="REML")
    assert res.k == 2 and res.tau2 >= 0
    with pytest.raises(AnalysisError, match="at least 3"):
        res.regtest()


def test_egger_with_equal_standard_errors_is_refused():
    with pytest.raises(AnalysisError, match="same standard error"):
        rma([0.1, 0.3, 0.5], [0.02, 0.02, 0.02]).regtest()


def test_egger_small_k_caveat_is_reported():
    frame = rma(YI, VI).regtest()
    assert frame["notes"].str.contains("low power").all()


def test_paule_mandel_refuses_extreme_heterogeneity():
    with pytest.raises(AnalysisError, match="Paule-Mandel"):
        rma([0.0, 0.001, -0.001, 0.0, 1000.0], [1e-6] * 5, method="PM")


def test_result_frame_dict_and_summary():
    res = rma(YI, VI, method="REML", knha=True, slab=list("ABCDEFG"))
    frame = res.to_frame()
    assert frame["quantity"].tolist() == ["pooled effect", "tau^2", "tau", "I^2 (%)", "H^2", "Q (heterogeneity)"]
    assert frame.loc[0, "estimate"] == res.estimate and "REML" in frame.loc[0, "method"]
    json.dumps(res.to_dict())  # JSON-serialisable, NaN as null
    text = res.summary()
    for expected in (
        "Random-effects model (k = 7; tau^2 estimator: REML)",
        "I^2",
        "Q(df = 6)",
        "Knapp-Hartung t(6)",
        "Prediction interval",
    ):
        assert expected in text
    assert "omitted" in res.leave1out().columns and len(res.cumulative([2001, 1999, 2000, 2003, 2002, 2005, 2004])) == 7
    with pytest.raises(AnalysisError, match="one value per study"):
        res.cumulative([1, 2])


def test_cumulative_orders_by_key_and_ends_at_the_full_fit():
    res = rma(YI, VI, method="DL", slab=list("ABCDEFG"))
    frame = res.cumulative([2007, 2001, 2003, 2002, 2005, 2004, 2006])
    assert frame["added"].tolist() == list("BDCFEGA")
    assert frame["estimate"].iloc[-1] == pytest.approx(res.estimate, rel=1e-12)
    assert frame["estimate"].iloc[0] == pytest.approx(YI[1]) and math.isnan(frame["tau2"].iloc[0])


def test_brent_zeroin_finds_roots_like_brentq():
    f = lambda x: x**3 - 2 * x - 5  # noqa: E731  (Newton's classic example)
    root, converged = brent_zeroin(f, 2.0, 3.0, f(2.0), f(3.0), 1e-12, 100)
    assert converged and root == pytest.approx(optimize.brentq(f, 2, 3, xtol=1e-14), abs=1e-11)
    assert brent_zeroin(f, 2.0, 3.0, f(2.0), f(3.0), 1e-12, 1)[1] is False
