"""Unit tests for imrstats.meta.effect_sizes: hand-computed cases, sign alignment, zero cells, bad input.
(metafor agreement for SMD, MD, RR, OR and PLO is in tests/validation/test_meta_vs_r.py.)"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from imrstats.errors import AnalysisError, InputError
from imrstats.meta.effect_sizes import (
    escalc,
    hedges_correction,
    log_or,
    log_or_from_ci,
    log_or_from_smd,
    log_rr,
    md,
    plo,
    smd,
    smd_from_d_total_n,
    smd_from_eta_squared,
    smd_from_f,
    smd_from_log_or,
    smd_from_p,
    smd_from_t,
)


def _exact_c(m: float) -> float:
    return math.gamma(m / 2) / (math.sqrt(m / 2) * math.gamma((m - 1) / 2))


def _g_and_v(d: float, n1: float, n2: float) -> tuple[float, float]:
    g = _exact_c(n1 + n2 - 2) * d
    return g, 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))


def test_hedges_correction_is_the_gamma_ratio_and_close_to_the_approximation():
    assert hedges_correction(10) == pytest.approx(_exact_c(10), rel=1e-12)
    assert hedges_correction(58) == pytest.approx(1 - 3 / (4 * 58 - 1), abs=1e-4)
    assert hedges_correction(10_000) == pytest.approx(1.0, abs=1e-4)  # large m: no overflow


def test_smd_hand_case_and_sign_alignment():
    # d = (12 - 10) / 4 = 0.5 with equal SDs 4 and n = 20 per arm
    yi, vi = smd(12, 4, 20, 10, 4, 20)
    g, v = _g_and_v(0.5, 20, 20)
    assert (yi, vi) == (pytest.approx(g, rel=1e-12), pytest.approx(v, rel=1e-12))
    flipped = smd(12, 4, 20, 10, 4, 20, higher_is_better=False)
    assert flipped.yi == pytest.approx(-yi) and flipped.vi == pytest.approx(vi)
    raw = smd(12, 4, 20, 10, 4, 20, correct=False)
    assert raw.yi == pytest.approx(0.5) and raw.vi == pytest.approx(0.1 + 0.25 / 80)


def test_md_hand_case():
    yi, vi = md(12, 4, 20, 10, 3, 10, higher_is_better=False)
    assert yi == pytest.approx(-2) and vi == pytest.approx(16 / 20 + 9 / 10)


def test_binary_measures_hand_case_and_zero_cell_correction():
    rr, v_rr = log_rr(10, 50, 20, 50)
    assert rr == pytest.approx(math.log(0.2 / 0.4)) and v_rr == pytest.approx(1 / 10 - 1 / 50 + 1 / 20 - 1 / 50)
    lor, v_or = log_or(10, 50, 20, 50)
    assert lor == pytest.approx(math.log((10 * 30) / (40 * 20))) and v_or == pytest.approx(
        1 / 10 + 1 / 40 + 1 / 20 + 1 / 30
    )
    # a zero cell adds 1/2 to all four cells of that study only
    lor0, v0 = log_or(0, 10, 3, 10)
    assert lor0 == pytest.approx(math.log((0.5 * 7.5) / (10.5 * 3.5))) and v0 == pytest.approx(
        1 / 0.5 + 1 / 10.5 + 1 / 3.5 + 1 / 7.5
    )
    with pytest.raises(AnalysisError, match="zero cell"):
        log_or(0, 10, 3, 10, to="none")
    # an adverse event (lower is better): sign reversed so that positive favours IMR
    assert log_rr(10, 50, 20, 50, higher_is_better=False).yi == pytest.approx(-rr)


def test_plo_hand_case_and_all_events():
    yi, vi = plo(5, 20)
    assert yi == pytest.approx(math.log(5 / 15)) and vi == pytest.approx(1 / 5 + 1 / 15)
    yi_all, vi_all = plo(12, 12)
    assert yi_all == pytest.approx(math.log(12.5 / 0.5)) and vi_all == pytest.approx(1 / 12.5 + 1 / 0.5)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: smd(1, 1, 2, 0, 1, 1), "at least 4"),
        (lambda: smd(1, -1, 20, 0, 1, 20), ">= 0"),
        (lambda: smd(1, 0, 20, 0, 0, 20), "Pooled SD is 0"),
        (lambda: smd(float("nan"), 1, 20, 0, 1, 20), "missing"),
        (lambda: md(1, 1, 0, 0, 1, 20), "positive"),
        (lambda: log_rr(11, 10, 1, 10), "between 0"),
        (lambda: plo(3, 0), "0 <= events"),
        (lambda: log_or(1, 10, 1, 10, to="sometimes"), "to must be"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(AnalysisError, match=message):
        call()


def test_escalc_frame_adds_yi_vi_direction_per_row():
    df = pd.DataFrame(
        {
            "study": ["a", "b"],
            "n_imr": [20, 30],
            "mean_imr": [12.0, 40.0],
            "sd_imr": [4.0, 9.0],
            "n_tau": [20, 28],
            "mean_tau": [10.0, 45.0],
            "sd_tau": [4.0, 10.0],
            "higher": [True, False],
        }
    )
    out = escalc(df, "smd", higher_is_better="higher")
    first = smd(12, 4, 20, 10, 4, 20)
    second = smd(40, 9, 30, 45, 10, 28, higher_is_better=False)
    assert out["yi"].tolist() == pytest.approx([first.yi, second.yi])
    assert out["vi"].tolist() == pytest.approx([first.vi, second.vi])
    assert out["yi"].gt(0).all()  # both favour IMR once aligned
    assert out["direction"].str.startswith("positive favours IMR").all()
    assert "sign reversed" in out["direction"].iloc[1] and list(df.columns) == list(out.columns[: len(df.columns)])


def test_escalc_input_errors():
    with pytest.raises(InputError, match="lacks"):
        escalc(pd.DataFrame({"n_imr": [1]}), "SMD")
    with pytest.raises(InputError, match="Unknown measure"):
        escalc(pd.DataFrame({"n_imr": [1]}), "HR")
    df = pd.DataFrame({"events": [3], "n": [10]})
    assert escalc(df, "PLO")["direction"].iloc[0].startswith("logit proportion")


# -- conversions (each pinned on a case computed by hand) ---------------------------------------


def test_d_with_total_n_assumes_equal_split():
    res = smd_from_d_total_n(0.5, 60)
    g, v = _g_and_v(0.5, 30, 30)
    assert (res.yi, res.vi) == (pytest.approx(g), pytest.approx(v))
    assert "split equally" in res.assumption


def test_t_f_eta_squared_agree_on_one_case():
    # t = 2 with 30 + 30: d = 2 sqrt(1/30 + 1/30) = 0.516398, F = 4, eta^2 = 4 / (4 + 58)
    g, v = _g_and_v(2 * math.sqrt(2 / 30), 30, 30)
    for res in (smd_from_t(2, 30, 30), smd_from_f(4, 30, 30, sign=1), smd_from_eta_squared(4 / 62, 30, 30, sign=1)):
        assert (res.yi, res.vi) == (pytest.approx(g, rel=1e-12), pytest.approx(v, rel=1e-12))
    assert smd_from_f(4, 30, 30, sign=-1).yi == pytest.approx(-g)
    with pytest.raises(AnalysisError, match="sign"):
        smd_from_f(4, 30, 30, sign=0)


def test_p_value_conversion():
    # two-sided p = 0.05 with df = 58: t = 2.001717 (t table), d = t sqrt(2/30)
    res = smd_from_p(0.05, 30, 30, sign=1)
    g, v = _g_and_v(2.0017174841452 * math.sqrt(2 / 30), 30, 30)
    assert (res.yi, res.vi) == (pytest.approx(g, rel=1e-9), pytest.approx(v, rel=1e-9))
    with pytest.raises(AnalysisError):
        smd_from_p(0, 30, 30, sign=1)


def test_odds_ratio_with_ci_and_chinn_conversion():
    # OR 2 (95% CI 1.2 to 3.333): se = (ln 3.333 - ln 1.2) / (2 * 1.959964)
    lor = log_or_from_ci(2.0, 1.2, 3.333)
    se = (math.log(3.333) - math.log(1.2)) / (2 * 1.959963984540054)
    assert lor.yi == pytest.approx(math.log(2)) and lor.vi == pytest.approx(se**2)
    d = smd_from_log_or(lor.yi, lor.vi)
    assert d.yi == pytest.approx(math.log(2) * math.sqrt(3) / math.pi) and d.vi == pytest.approx(se**2 * 3 / math.pi**2)
    back = log_or_from_smd(d.yi, d.vi)
    assert (back.yi, back.vi) == (pytest.approx(lor.yi), pytest.approx(lor.vi))
    with pytest.raises(AnalysisError, match="CI low"):
        log_or_from_ci(2.0, 2.5, 3.0)
