"""Unit tests for imrstats.meta.multilevel: singular designs named clearly, one study with many effects, a study
with one effect, invariances of the fit and of CR2, and the inputs helper. (Numbers against metafor and
clubSandwich are in tests/validation/test_meta_multilevel_vs_r.py.)"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from imrstats.errors import AnalysisError, InputError
from imrstats.meta.multilevel import multilevel_inputs, rma_mv, robust_cr2
from imrstats.meta.random_effects import rma
from imrstats.results import to_json

# 6 studies: study A gives 4 effects, B 3, C 2, D, E and F one each (14 effects)
STUDY = ["A"] * 4 + ["B"] * 3 + ["C"] * 2 + ["D", "E", "F"]
YI = [0.42, 0.55, 0.18, 0.31, -0.05, 0.12, 0.08, 0.61, 0.74, 0.25, 0.40, 0.02]
VI = [0.030, 0.041, 0.035, 0.028, 0.050, 0.046, 0.052, 0.060, 0.058, 0.020, 0.045, 0.038]
MOD = [0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1]


def test_fit_with_single_effect_studies_and_its_printout():
    res = rma_mv(YI, VI, STUDY)
    assert (res.k, res.n_studies, res.n_effect_levels) == (12, 6, 12)
    assert res.sigma2_study > 0 and res.sigma2_effect >= 0
    frame = res.to_frame()
    assert frame["quantity"].tolist()[:3] == [
        "pooled effect",
        "sigma^2 (between studies)",
        "sigma^2 (between effects within studies)",
    ]
    assert "effects nested in studies" in res.summary()
    record = json.loads(to_json(res))
    assert record["k"] == 12 and record["estimates"][0]["quantity"] == "pooled effect"


def test_row_order_does_not_matter():
    """Shuffling the rows (studies interleaved) gives the same fit and the same CR2 inference."""
    order = np.random.default_rng(3).permutation(len(YI))
    a = rma_mv(YI, VI, STUDY, mods=MOD)
    b = rma_mv(np.take(YI, order), np.take(VI, order), np.take(STUDY, order), mods=np.take(MOD, order))
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-9)
    np.testing.assert_allclose(a.sigma2, b.sigma2, rtol=1e-7, atol=1e-12)
    ra, rb = robust_cr2(a), robust_cr2(b)
    np.testing.assert_allclose(ra.se, rb.se, rtol=1e-7)
    np.testing.assert_allclose(ra.df, rb.df, rtol=1e-7)


def test_slope_inference_invariant_to_shifting_and_scaling_the_moderator():
    """Moving a moderator's origin and unit changes the intercept, not the slope's test (model-based and CR2)."""
    x = np.array([2001, 2003, 2003, 2004, 2008, 2008, 2010, 2012, 2012, 2015, 2016, 2019], dtype=float)
    a = rma_mv(YI, VI, STUDY, mods=x)
    b = rma_mv(YI, VI, STUDY, mods=(x - 2000) / 10)
    assert math.isclose(a.beta[1] * 10, b.beta[1], rel_tol=1e-7)
    assert math.isclose(a.statistic[1], b.statistic[1], rel_tol=1e-7)
    np.testing.assert_allclose(a.sigma2, b.sigma2, rtol=1e-7)
    ra, rb = robust_cr2(a), robust_cr2(b)
    assert math.isclose(ra.statistic[1], rb.statistic[1], rel_tol=1e-7)
    assert math.isclose(ra.df[1], rb.df[1], rel_tol=1e-7)


def test_one_study_with_many_effects():
    """One study: sigma^2 between studies is fixed at 0 (as metafor) and the model is the two-level model of
    its effects, so the pooled effect and tau^2 equal rma's REML fit (Fisher scoring run to a 1e-12 change);
    CR2 by study is impossible and says so."""
    y, v = [0.1, 0.6, -0.2, 0.5, 0.9, 0.0, 0.3], VI[:7]
    res = rma_mv(y, v, ["only"] * 7)
    assert res.sigma2_study_fixed and res.sigma2_study == 0.0
    assert any("one study only" in note for note in res.notes)
    ref = rma(y, v, method="REML", threshold=1e-12, maxiter=1000)
    assert ref.tau2 > 0.05
    assert math.isclose(res.sigma2_effect, ref.tau2, rel_tol=1e-7)
    assert math.isclose(res.beta[0], ref.estimate, rel_tol=1e-7)
    assert math.isclose(res.se[0], ref.se, rel_tol=1e-7)
    with pytest.raises(AnalysisError, match="at least 2 studies"):
        robust_cr2(res)


def test_every_study_one_effect_is_named_as_unidentifiable():
    with pytest.raises(AnalysisError, match="cannot be told apart"):
        rma_mv(YI[:5], VI[:5], ["A", "B", "C", "D", "E"])
    with pytest.raises(AnalysisError, match="cannot be told apart"):  # one study, one effect label
        rma_mv(YI[:4], VI[:4], ["A"] * 4, effect=["same"] * 4)


def test_boundary_component_is_exactly_zero_with_a_note():
    """Effects within a study that agree better than their sampling error: sigma^2 within studies is 0."""
    y = [0.30, 0.31, 0.10, 0.11, 0.52, 0.50, 0.20, 0.21]
    v = [0.04] * 8
    res = rma_mv(y, v, ["A", "A", "B", "B", "C", "C", "D", "D"])
    assert res.sigma2_effect == 0.0
    assert any("within studies) estimated at the boundary 0" in note for note in res.notes)


def test_shared_effect_labels_share_a_random_effect():
    res = rma_mv(YI, VI, STUDY, effect=["x", "x", "y", "z", "x", "y", "z", "x", "y", "x", "x", "x"])
    assert res.n_effect_levels == 11  # A: x, y, z; B: x, y, z; C: x, y; D, E, F: x
    assert any(note.startswith("1 row(s) share a (study, effect) label") for note in res.notes)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"yi": [0.1, math.nan, 0.2], "vi": [0.01] * 3, "study": ["A", "A", "B"]}, "missing or infinite"),
        ({"yi": [0.1, 0.3, 0.2], "vi": [0.01, 0.0, 0.02], "study": ["A", "A", "B"]}, "vi <= 0"),
        ({"yi": [0.1, 0.3], "vi": [0.01, 0.02], "study": ["A"]}, "study has 1 entries"),
        ({"yi": [0.1, 0.3, 0.2], "vi": [0.01] * 3, "study": ["A", "A", "B"], "method": "DL"}, "Unknown method"),
        ({"yi": [0.1, 0.3], "vi": [0.01] * 2, "study": ["A", "A"], "mods": [0.0, 1.0]}, "need k > p"),
        ({"yi": YI, "vi": VI, "study": STUDY, "mods": np.column_stack([MOD, MOD])}, "not of full rank"),
        ({"yi": YI, "vi": VI, "study": STUDY, "mods": [1.0] * 12}, "not of full rank"),
    ],
)
def test_bad_input_raises(kwargs, message):
    with pytest.raises(AnalysisError, match=message):
        rma_mv(**kwargs)


def test_cr2_flags_small_df_and_few_clusters():
    rob = robust_cr2(rma_mv(YI, VI, STUDY, mods=MOD))
    assert rob.n_clusters == 6
    assert any("only 6 studies" in note for note in rob.notes)
    frame = rob.to_frame()
    assert frame["term"].tolist() == ["intercept", "mod"]
    assert (frame["df"] > 0).all() and (frame["df"] < 6).all()
    if (frame["df"] < 4).any():
        assert any("Tipton 2015" in note for note in rob.notes)


def test_inputs_helper_counts_and_keeps_every_row():
    table = pd.DataFrame(
        {
            "row": range(2, 14),
            "study": STUDY,
            "instrument": ["imrs_client", "imrs_clinician"] * 6,
            "timepoint": ["post"] * 6 + ["fu12"] * 6,
            "yi": YI,
            "vi": VI,
            "clinician": MOD,
        }
    )
    inputs = multilevel_inputs(table, effect=["instrument", "timepoint"], mods=["clinician"])
    assert (inputs.k, inputs.n_studies) == (12, 6)
    assert inputs.note.startswith("12 effects from 6 studies entered (A: 4, B: 3, C: 2, D: 1, E: 1, F: 1)")
    assert "3 studies contribute more than one effect; no row was dropped" in inputs.note
    assert inputs.effect[0] == "imrs_client / post"
    res = inputs.fit()
    assert res.notes[0] == inputs.note and res.coef_names == ("intercept", "clinician")
    default = multilevel_inputs(table)
    assert default.effect[:4] == ("effect 1", "effect 2", "effect 3", "effect 4") and default.effect[4] == "effect 1"


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("vi", -0.01, "line 4: column 'vi' = -0.01: vi must be a finite number > 0"),
        ("yi", None, "line 4: column 'yi' = None: yi must be a finite number"),
        ("study", None, "line 4: column 'study' = None: a study label is required"),
    ],
)
def test_inputs_helper_names_the_bad_row(column, value, message):
    table = pd.DataFrame({"row": range(2, 14), "study": STUDY, "yi": YI, "vi": VI})
    table[column] = table[column].astype(object)
    table.loc[2, column] = value
    with pytest.raises(InputError, match=message):
        multilevel_inputs(table, source="published_outcomes.csv")
    with pytest.raises(InputError, match="missing column"):
        multilevel_inputs(table, effect="rater")
