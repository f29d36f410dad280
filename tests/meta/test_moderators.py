"""Unit tests for imrstats.meta.moderators: the model matrix from a formula, degenerate input (constant or collinear
moderators, k <= p, missing values), one-study subgroups, the permutation test's determinism and exact switch,
the result shape and the bubble plot. (Numbers against metafor are in tests/validation/test_meta_moderators_vs_r.py.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imrstats.errors import AnalysisError, InputError, SettingsError
from imrstats.meta.figures import bubble_figure
from imrstats.meta.moderators import build_design, parse_formula, permutest, rma_mods, subgroups
from imrstats.meta.random_effects import rma
from imrstats.results import to_json

BCG = pd.read_csv(Path(__file__).parents[1] / "validation" / "data" / "meta_moderators_bcg.csv")


def test_formula_forms():
    assert parse_formula("~ ablat + year") == ([("ablat", False), ("year", False)], True)
    assert parse_formula("factor(alloc) - 1") == ([("alloc", True)], False)
    assert parse_formula("0 + alloc") == ([("alloc", False)], False)
    assert parse_formula("alloc + 1") == ([("alloc", False)], True)
    assert parse_formula("ablat + ablat") == ([("ablat", False)], True)
    for bad in ("ablat:year", "I(ablat^2)", "yi ~ ablat", "ablat - year", "", "1"):
        with pytest.raises(SettingsError, match="mods"):
            parse_formula(bad)


def test_design_coding_follows_r():
    d = build_design(BCG, "ablat + alloc")
    assert d.terms == ("intercept", "ablat", "alloc[random]", "alloc[systematic]")
    assert d.matrix[:, 2].tolist() == (BCG["alloc"] == "random").astype(float).tolist()
    # without an intercept the first categorical moderator gets every level, later ones treatment coding
    d = build_design(BCG.assign(big=BCG["year"] > 1960), "ablat + alloc + big - 1")
    assert d.terms == ("ablat", "alloc[alternate]", "alloc[random]", "alloc[systematic]", "big[True]")
    # a numeric column can be made categorical; a Categorical keeps its order; reference picks the first level
    assert build_design(BCG.iloc[:4], "factor(trial)").terms[1:] == ("trial[2]", "trial[3]", "trial[4]")
    assert build_design(BCG.iloc[8:11], "factor(trial)").terms == ("intercept", "trial[10]", "trial[11]")  # by value
    by_year = build_design(BCG.assign(year=BCG["year"].astype(float)).iloc[:3], "factor(year)")
    assert by_year.terms[1:] == ("year[1949]", "year[1960]")  # 1948.0 -> "1948", as R labels it
    no_intercept = rma_mods(BCG["yi"], BCG["vi"], BCG[["ablat"]], intercept=False)
    assert no_intercept.terms == ("ablat",) and math.isnan(no_intercept.r2)
    ordered = BCG.assign(alloc=pd.Categorical(BCG["alloc"], categories=["systematic", "random", "alternate"]))
    assert build_design(ordered, "alloc").terms[1:] == ("alloc[random]", "alloc[alternate]")
    assert build_design(BCG, "alloc", reference={"alloc": "random"}).terms[1:] == (
        "alloc[alternate]",
        "alloc[systematic]",
    )


def test_a_constant_moderator_is_an_error_naming_it():
    data = BCG.assign(dose=1.0, site="Madras")
    with pytest.raises(AnalysisError, match="moderator 'dose' is constant across the 13 studies"):
        rma_mods("yi", "vi", "ablat + dose", data=data)
    with pytest.raises(AnalysisError, match="moderator 'site' takes one value \\('Madras'\\)"):
        rma_mods("yi", "vi", "site", data=data)
    with pytest.raises(AnalysisError, match="'twice_ablat' is a linear combination"):
        rma_mods("yi", "vi", "ablat + twice_ablat", data=BCG.assign(twice_ablat=2 * BCG["ablat"]))


def test_too_few_studies_for_the_coefficients():
    small = BCG.iloc[:3]
    with pytest.raises(AnalysisError, match="k = 3 studies cannot estimate 3 coefficients .* and tau\\^2"):
        rma_mods("yi", "vi", "ablat + year", data=small)
    with pytest.raises(AnalysisError, match="k = 3 studies cannot estimate 3 coefficients"):
        rma_mods("yi", "vi", "ablat + year", data=small, method="EE")
    # k = p + 1 is the smallest random-effects meta-regression: QE on 1 df, with a note
    res = rma_mods("yi", "vi", "ablat + year", data=BCG.iloc[:4])
    assert res.qe_df == 1 and any("k - p = 1" in n for n in res.notes)


def test_missing_or_misaligned_moderators_are_input_errors():
    data = BCG.assign(ablat=BCG["ablat"].where(BCG["trial"] != 3))
    with pytest.raises(InputError, match="moderator 'ablat': missing in 'Rosenthal et al'"):
        rma_mods("yi", "vi", "ablat", data=data, slab="author")
    with pytest.raises(InputError, match="column\\(s\\) \\['latitude'\\] not in the data"):
        rma_mods("yi", "vi", "latitude", data=BCG)
    with pytest.raises(InputError, match="mods has 12 rows for 13 effects"):
        rma_mods(BCG["yi"], BCG["vi"], BCG[["ablat"]].iloc[:12])
    with pytest.raises(SettingsError, match="needs the data frame"):
        rma_mods(BCG["yi"], BCG["vi"], "ablat")
    with pytest.raises(SettingsError, match="control.tol"):
        rma_mods("yi", "vi", "ablat", data=BCG, control={"tol": 1e-8})


def test_data_frame_matrix_and_formula_give_one_model():
    by_formula = rma_mods("yi", "vi", "ablat + year", data=BCG)
    by_frame = rma_mods(BCG["yi"], BCG["vi"], BCG[["ablat", "year"]])
    by_matrix = rma_mods(BCG["yi"], BCG["vi"], BCG[["ablat", "year"]].to_numpy())
    assert by_frame.beta == pytest.approx(by_formula.beta, rel=1e-12)
    assert by_matrix.beta == pytest.approx(by_formula.beta, rel=1e-12)
    assert by_matrix.terms == ("intercept", "x1", "x2")


def test_qm_of_one_moderator_is_the_squared_test_and_reference_level_does_not_change_fit():
    res = rma_mods("yi", "vi", "ablat", data=BCG)
    assert res.qm == pytest.approx(res.statistic[1] ** 2, rel=1e-12) and res.qm_df[0] == 1
    kh = rma_mods("yi", "vi", "ablat", data=BCG, knha=True)
    assert kh.qm == pytest.approx(kh.statistic[1] ** 2, rel=1e-12)
    assert kh.qm_p == pytest.approx(kh.pval[1], rel=1e-10)  # F(1, df) = t(df)^2
    a = rma_mods("yi", "vi", "alloc", data=BCG)
    b = rma_mods("yi", "vi", "alloc", data=BCG, reference={"alloc": "systematic"})
    assert b.tau2 == pytest.approx(a.tau2, rel=1e-10) and b.qm == pytest.approx(a.qm, rel=1e-9)
    assert b.predict()["estimate"].to_numpy() == pytest.approx(a.predict()["estimate"].to_numpy(), rel=1e-9)


def test_pseudo_r2_is_the_relative_reduction_of_tau2():
    res = rma_mods("yi", "vi", "ablat", data=BCG, method="DL")
    null = rma(BCG["yi"], BCG["vi"], method="DL")
    assert res.tau2_null == pytest.approx(null.tau2, rel=1e-12)
    assert res.r2 == pytest.approx(100 * (null.tau2 - res.tau2) / null.tau2, rel=1e-12)
    # a moderator explaining nothing: tau^2 grows, R^2 truncated at 0
    noise = rma_mods("yi", "vi", "alloc", data=BCG)
    assert noise.tau2 > noise.tau2_null and noise.r2 == 0.0


def test_subgroup_with_one_study():
    data = BCG.iloc[[0, 1, 2, 3, 4, 6, 7]].assign(group=["a", "a", "a", "b", "b", "b", "single"])
    out = subgroups("yi", "vi", "group", data=data, slab="author")
    row = out.table.set_index("subgroup").loc["single"]
    assert row["k"] == 1 and math.isnan(row["tau2"]) and math.isnan(row["i2"])
    assert row["estimate"] == pytest.approx(data["yi"].iloc[-1]) and row["se"] == pytest.approx(
        math.sqrt(data["vi"].iloc[-1])
    )
    assert any("'single' has one study" in n for n in out.notes)
    est, se = out.table["estimate"].to_numpy(), out.table["se"].to_numpy()
    w = 1 / se**2
    q = float(np.sum(w * (est - np.sum(w * est) / np.sum(w)) ** 2))
    assert out.q_between.estimate == pytest.approx(q, rel=1e-12) and out.q_between.df == 2
    assert out.q_between.p == pytest.approx(stats.chi2.sf(q, 2), rel=1e-12)
    # the moderator test is the meta-regression on the subgroup
    mod = rma_mods("yi", "vi", "group", data=data)
    assert out.moderator_test.estimate == pytest.approx(mod.qm, rel=1e-12)


def test_subgroups_when_the_common_tau2_model_cannot_be_fitted():
    data = BCG.iloc[:3].assign(group=["a", "b", "c"])  # three one-study subgroups: k = p, no common tau^2
    out = subgroups("yi", "vi", "group", data=data)
    assert out.q_between.df == 2 and not math.isnan(out.q_between.estimate)
    assert math.isnan(out.moderator_test.estimate) and "not computed" in out.moderator_test.notes
    assert "not computed" in out.summary()
    with pytest.raises(AnalysisError, match="all 3 studies are in one subgroup"):
        subgroups("yi", "vi", "group", data=data.assign(group="a"))
    with pytest.raises(InputError, match="subgroup missing for 'Study 2'"):
        subgroups("yi", "vi", "group", data=data.assign(group=["a", None, "b"]))


def test_permutest_is_seeded_and_switches_to_exact():
    res = rma_mods("yi", "vi", "ablat", data=BCG, method="DL")
    first = permutest(res, iterations=200, seed=7)
    again = permutest(res, iterations=200, seed=7)
    other = permutest(res, iterations=200, seed=8)
    assert first == again and not first.exact and first.iterations == 200
    assert first.pval != other.pval or first.qm_p != other.qm_p
    assert 0 < first.qm_p <= 1 and first.mc_se[1] == pytest.approx(math.sqrt(first.pval[1] * (1 - first.pval[1]) / 200))
    # 6 studies, 2 levels with 3 each: 20 distinct permutations <= iterations -> every one, no seed used
    small = rma_mods("yi", "vi", "g", data=BCG.iloc[:6].assign(g=list("aabbab")), method="DL")
    exact = permutest(small, iterations=50, seed=1)
    assert exact.exact and exact.iterations == 20 and exact.seed is None
    assert exact.qm_p * 20 == pytest.approx(round(exact.qm_p * 20))  # a multiple of 1/20
    with pytest.raises(AnalysisError, match="exact permutation test needs 389188800 refits \\(k = 13\\)"):
        permutest(res, seed=1, exact=True)
    with pytest.raises(SettingsError, match="seed"):
        permutest(res, seed=None)


def test_result_rows_summary_and_json():
    res = rma_mods("yi", "vi", "ablat + alloc", data=BCG, slab="author", knha=True)
    frame = res.to_frame()
    assert frame["quantity"].tolist()[:4] == [
        "coefficient: intercept",
        "coefficient: ablat",
        "coefficient: alloc[random]",
        "coefficient: alloc[systematic]",
    ]
    assert frame.set_index("quantity").loc["QM (moderators)", "df2"] == 9
    text = res.summary()
    assert "QM = " in text and "F(3, 9)" in text and "Knapp-Hartung t(9)" in text
    record = json.loads(to_json(res))
    assert record["terms"] == list(res.terms) and record["qm_df"] == [3, 9.0]
    assert len(record["estimates"]) == 4 + 7
    pred = res.predict()
    assert pred["study"].tolist() == BCG["author"].tolist()
    assert (pred["pi_low"] < pred["ci_low"]).all()
    with pytest.raises(InputError, match="level\\(s\\) \\['quasi'\\] not among the fitted levels"):
        res.predict({"ablat": [20], "alloc": ["quasi"]})
    with pytest.raises(InputError, match="expected 3 value\\(s\\) per row"):
        res.predict(np.array([[1.0, 2.0]]))
    sub = subgroups("yi", "vi", "alloc", data=BCG)
    assert json.loads(to_json(sub))["q_between"]["df"] == 2
    assert set(sub.to_frame()["quantity"]) >= {"test for subgroup differences: Q-between", "pooled effect (subgroup)"}


def test_bubble_figure():
    res = rma_mods("yi", "vi", "ablat + year", data=BCG)
    fig = bubble_figure(res, "ablat", ylabel="log risk ratio")
    ax = fig.axes[0]
    assert len(ax.collections[-1].get_offsets()) == len(BCG)  # one bubble per study
    assert "year held at its mean" in ax.get_title()
    with pytest.raises(InputError, match="'alloc' is not a continuous moderator"):
        bubble_figure(rma_mods("yi", "vi", "ablat + alloc", data=BCG), "alloc")
