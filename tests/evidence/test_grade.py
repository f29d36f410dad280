"""GRADE certainty and the Summary of Findings: each domain's rule at and around its thresholds, the certainty
mapping, the optimal information size, the tables' agreement with the stage's own frames, and the rules'
text in docs/grade.md."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imrstats.errors import SettingsError
from imrstats.evidence import grade as gr
from imrstats.evidence.stage import grade_target, run_evidence_stage
from imrstats.meta.random_effects import rma

from ..conftest import PROJECT

MID = 0.2


def studies(robs=None, indirect=None, weights=None, trial_last=False, n=100):
    """Study rows whose tau^2 = 0 random-effects shares are ``weights`` (vi = 1 / weight; equal by default)."""
    k = len(robs if robs is not None else indirect)
    w = np.ones(k) if weights is None else np.asarray(weights, float)
    return pd.DataFrame(
        {
            "study": [f"Study {chr(65 + i)} 20{10 + i}" for i in range(k)],
            "year": [2010 + i for i in range(k)],
            "yi": np.linspace(0.1, 0.3, k),
            "vi": 1.0 / w,
            "n": n,
            "is_trial": [trial_last and i == k - 1 for i in range(k)],
            "rob": list(robs) if robs is not None else ["low"] * k,
            "indirectness": list(indirect) if indirect is not None else ["no concerns"] * k,
        }
    )


# ---------------------------------------------------------------------------------------------
# Certainty and the optimal information size


@pytest.mark.parametrize(
    ("downgrades", "level"),
    [
        ([0, 0, 0, 0, 0], "high"),
        ([0, -1, 0, 0, 0], "moderate"),
        ([-1, -1, 0, 0, 0], "low"),
        ([0, 0, 0, -2, 0], "low"),
        ([-1, -1, 0, -1, 0], "very low"),
        ([-2, -2, -1, -2, -1], "very low"),
    ],
)
def test_certainty_is_four_plus_the_downgrades_floored_at_very_low(downgrades, level):
    assert gr.certainty(downgrades) == level


@pytest.mark.parametrize("mid", [0.2, 0.3, 0.5])
def test_optimal_information_size_recomputed_from_normal_quantiles(mid):
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.80)
    expected = math.ceil(2 * 2 * z**2 / mid**2)
    assert gr.optimal_information_size(mid) == expected
    assert gr.optimal_information_size(0.2) == 785  # 4 x 7.8489 / 0.04 = 784.9, the number docs/grade.md derives
    with pytest.raises(ValueError):
        gr.optimal_information_size(0.0)


def test_weight_shares_are_random_effects_weights():
    vi, tau2 = np.array([0.01, 0.04, 0.09]), 0.05
    w = 1 / (vi + tau2)
    np.testing.assert_allclose(gr.weight_shares(vi, tau2), w / w.sum())
    np.testing.assert_allclose(gr.weight_shares(vi, math.nan), (1 / vi) / (1 / vi).sum())


# ---------------------------------------------------------------------------------------------
# Risk of bias


@pytest.mark.parametrize(
    ("robs", "expected"),
    [
        (["high", "low"], -2),  # high 50%
        (["high", "low", "low"], -1),  # high 33%
        (["high", "low", "low", "low"], -1),  # high exactly 25%
        (["high", "low", "low", "low", "low"], 0),  # high 20%, with concerns 20%
        (["some concerns", "low"], -1),  # high + concerns exactly 50%
        (["some concerns", "low", "low"], 0),  # 33%
        (["high", "some concerns", "some concerns", "low", "low"], -1),  # high 20%, together 60%
        (["high", "some concerns", "low", "low", "low"], 0),  # high 20%, together 40%
        (["low", "low"], 0),
    ],
)
def test_risk_of_bias_thresholds_on_equal_weights(robs, expected):
    grade, reason = gr.rate_risk_of_bias(studies(robs), 0.0)
    assert grade == expected
    assert "of the random-effects weight" in reason


@pytest.mark.parametrize(
    ("high_share", "expected"), [(0.2499, 0), (0.2501, -1), (0.4999, -1), (0.5001, -2), (0.5, -2), (0.25, -1)]
)
def test_risk_of_bias_just_around_the_thresholds(high_share, expected):
    grade, reason = gr.rate_risk_of_bias(studies(["high", "low"], weights=[high_share, 1 - high_share]), 0.0)
    assert grade == expected
    assert f"High risk of bias: {100 * high_share:.1f}%" in reason


def test_risk_of_bias_uses_tau2_in_the_weights():
    # a precise high-risk study dominates with tau^2 = 0 (-2), but not with a large tau^2 (equal-ish weights)
    frame = studies(["high", "low", "low", "low"], weights=[100.0, 1.0, 1.0, 1.0])
    assert gr.rate_risk_of_bias(frame, 0.0)[0] == -2
    share = (1 / 10.01) / (1 / 10.01 + 3 / 11)  # 26.8%: still >= 25%
    assert gr.rate_risk_of_bias(frame, 10.0)[0] == -1
    assert gr.rate_risk_of_bias(frame, 10.0)[1].startswith(f"High risk of bias: {100 * share:.1f}%")
    assert gr.rate_risk_of_bias(studies(["high", "low", "low", "low", "low"], weights=[100, 1, 1, 1, 1]), 10.0)[0] == 0


def test_not_assessed_counts_as_some_concerns_and_is_said():
    frame = studies(["low", "low", None], trial_last=True)
    frame.loc[2, "study"] = "My trial"
    grade, reason = gr.rate_risk_of_bias(frame, 0.0)
    assert grade == 0  # 33% some concerns
    assert "not assessed, so counted as some concerns: My trial (the user's trial)" in reason
    frame2 = studies(["low", None], trial_last=True)
    assert gr.rate_risk_of_bias(frame2, 0.0)[0] == -1  # 50%


def test_study_judgements_take_the_table_the_settings_and_robins_levels():
    base = studies(["low"] * 3, trial_last=True).drop(columns=["rob", "indirectness"])
    overall = pd.DataFrame(
        {"study": [base["study"][0], base["study"][1]], "tool": ["RoB 2", "ROBINS-I"], "judgement": ["low", "serious"]}
    )
    ind = pd.DataFrame({"study": [base["study"][0]], "judgement": ["serious concerns"]})
    out = gr.study_judgements(base, overall, ind, trial_rob=None, trial_indirectness="no concerns")
    assert list(out["rob"][:2]) == ["low", "high"] and pd.isna(out["rob"].iloc[2])  # ROBINS-I serious: high
    assert list(out["rob_source"]) == ["RoB 2 overall", "ROBINS-I overall", gr.NOT_ASSESSED]
    assert out["indirectness"].iloc[0] == "serious concerns" and pd.isna(out["indirectness"].iloc[1])
    assert out["indirectness"].iloc[2] == "no concerns"
    out = gr.study_judgements(base, overall, ind, trial_rob="high", trial_indirectness="serious concerns")
    assert out["rob"].iloc[-1] == "high" and out["indirectness"].iloc[-1] == "serious concerns"
    with pytest.raises(ValueError, match="unknown overall"):
        gr.study_judgements(base, overall.assign(judgement=["low", "dubious"]), None)


# ---------------------------------------------------------------------------------------------
# Inconsistency


@pytest.mark.parametrize(
    ("i2", "pi", "expected"),
    [
        (49.9, (-0.1, 0.5), 0),
        (50.0, (-0.1, 0.5), -1),
        (0.0, (-0.2, 0.2), -1),  # the PI includes both -MID and +MID (inclusive)
        (0.0, (-0.199, 0.5), 0),
        (74.9, (-0.3, 0.5), -1),
        (75.0, (-0.3, 0.5), -2),
        (75.0, (-0.1, 0.5), -1),
        (90.0, (0.05, 0.6), -1),
    ],
)
def test_inconsistency_thresholds(i2, pi, expected):
    grade, reason = gr.rate_inconsistency(4, i2, pi[0], pi[1], MID)
    assert grade == expected
    assert f"I^2 = {i2:.1f}%" in reason and f"[{pi[0]:.2f}, {pi[1]:.2f}]" in reason


def test_inconsistency_rates_the_range_of_true_effects_not_the_prediction_interval():
    """k = 3, I^2 = 0, tau = 0: a wide Knapp-Hartung prediction interval is imprecision, not inconsistency."""
    grade, reason = gr.rate_inconsistency(3, 0.0, -0.47, 0.44, MID, estimate=-0.02, tau2=0.0)
    assert grade == 0
    assert "range of the true effects [-0.02, -0.02]" in reason and "[-0.47, 0.44] is reported, not rated" in reason
    # the same prediction interval without the range: the stricter reading downgrades
    assert gr.rate_inconsistency(3, 0.0, -0.47, 0.44, MID)[0] == -1
    # true effects spread over both thresholds: estimate 0 +/- 1.96 tau with tau just above / below MID / 1.96
    z = stats.norm.ppf(0.975)
    assert gr.rate_inconsistency(3, 40.0, -1, 1, MID, estimate=0.0, tau2=(MID / z * 1.001) ** 2)[0] == -1
    assert gr.rate_inconsistency(3, 40.0, -1, 1, MID, estimate=0.0, tau2=(MID / z * 0.999) ** 2)[0] == 0
    assert gr.rate_inconsistency(3, 80.0, -1, 1, MID, estimate=0.0, tau2=(MID / z * 1.001) ** 2)[0] == -2


def test_inconsistency_not_assessed_below_three_studies():
    grade, reason = gr.rate_inconsistency(2, 95.0, -2.0, 2.0, MID)
    assert grade == 0
    assert "cannot be assessed with k = 2 studies" in reason
    assert gr.rate_inconsistency(3, 95.0, -2.0, 2.0, MID)[0] == -2


# ---------------------------------------------------------------------------------------------
# Indirectness


@pytest.mark.parametrize(
    ("indirect", "weights", "expected"),
    [
        (["serious concerns", "no concerns"], None, -1),  # exactly 50%
        (["serious concerns", "no concerns", "no concerns"], None, 0),
        (["serious concerns", "no concerns"], [0.4999, 0.5001], 0),
        (["serious concerns", "no concerns"], [0.5001, 0.4999], -1),
        (["some concerns", "some concerns"], None, 0),  # some concerns do not count
    ],
)
def test_indirectness_thresholds(indirect, weights, expected):
    grade, reason = gr.rate_indirectness(studies(indirect=indirect, weights=weights), 0.0)
    assert grade == expected
    assert "serious concerns about indirectness hold" in reason


def test_indirectness_names_the_trial_and_the_unassessed():
    frame = studies(indirect=[None, "no concerns"], trial_last=True)
    grade, reason = gr.rate_indirectness(frame, 0.0)
    assert grade == 0
    assert "not assessed: Study A 2010 (50.0%)" in reason
    assert "the user's trial: no concerns" in reason


# ---------------------------------------------------------------------------------------------
# Imprecision

OIS = gr.optimal_information_size(MID)


@pytest.mark.parametrize(
    ("ci", "n", "expected"),
    [
        ((-0.2, 0.2), 10_000, -2),  # includes both MIDs (inclusive)
        ((-0.5, 0.6), 10, -2),  # and short of the OIS: still -2
        ((-0.199, 0.2), 10_000, -1),  # 0 and +MID
        ((-0.2, 0.199), 10_000, -1),  # 0 and -MID
        ((-0.1, 0.199), 10_000, 0),  # 0 but no MID: a precise null
        ((-0.1, 0.199), OIS - 1, -1),  # ... below the OIS
        ((-0.1, 0.199), OIS, 0),  # ... at the OIS
        ((0.01, 0.6), 10_000, 0),  # excludes 0
        ((0.0, 0.6), 10_000, -1),  # 0 on the boundary is included
        ((0.25, 0.6), OIS - 1, -1),  # excludes 0 and the MID, but too few participants
    ],
)
def test_imprecision_thresholds(ci, n, expected):
    grade, reason = gr.rate_imprecision(ci[0], ci[1], n, MID)
    assert grade == expected
    assert f"total N = {n} {'<' if n < OIS else '>='} OIS = {OIS}" in reason


def test_imprecision_counts_unknown_n():
    _, reason = gr.rate_imprecision(0.3, 0.6, 900, MID, n_unknown=2)
    assert "N unknown for 2 studies, not counted" in reason


# ---------------------------------------------------------------------------------------------
# Publication bias


@pytest.mark.parametrize(
    ("k", "p", "expected"), [(9, 0.001, 0), (10, 0.0999, -1), (10, 0.10, 0), (25, 0.5, 0), (12, math.nan, 0)]
)
def test_publication_bias(k, p, expected):
    grade, reason = gr.rate_publication_bias(k, p)
    assert grade == expected
    if k < 10:
        assert f"not informative with k = {k} studies" in reason and "13.3.5.4" in reason


# ---------------------------------------------------------------------------------------------
# One outcome, the Summary of Findings


def _pooled(frame: pd.DataFrame) -> dict:
    fit = rma(frame["yi"].to_numpy(), frame["vi"].to_numpy(), method="REML", knha=True)
    return {
        "k": fit.k,
        "ci_low": fit.ci_low,
        "ci_high": fit.ci_high,
        "tau2": fit.tau2,
        "i2": fit.i2,
        **fit.predict().extra,
    }


def test_grade_outcome_long_frame_and_summary_of_findings():
    frame = studies(["low", "high", "some concerns", None], weights=[10, 20, 30, 40], trial_last=True)
    frame["vi"] = frame["vi"] / 100
    pooled = _pooled(frame)
    grade = gr.grade_outcome("x", frame, pooled, mid=MID)
    assert list(grade.columns) == gr.GRADE_COLUMNS
    assert list(grade["domain"]) == list(gr.DOMAINS)
    assert list(grade["rule"]) == [gr.RULES[d] for d in gr.DOMAINS]
    assert set(grade["downgrade"]) <= {0, -1, -2}
    # each domain's row is that domain's function applied to the same inputs
    by = grade.set_index("domain")
    assert by.at["risk_of_bias", "downgrade"] == gr.rate_risk_of_bias(frame, pooled["tau2"])[0]
    assert by.at["imprecision", "reason"] == gr.rate_imprecision(pooled["ci_low"], pooled["ci_high"], 400, MID)[1]
    with pytest.raises(ValueError, match="k = 4"):
        gr.grade_outcome("x", frame.iloc[:3], pooled, mid=MID)

    numbers = pd.DataFrame([{c: 1.0 for c in gr.SOF_COLUMNS if c not in ("certainty", "n_downgrades", "footnotes")}])
    numbers["outcome_label"] = "x"
    sof = gr.summary_of_findings(grade, numbers)
    assert list(sof.columns) == gr.SOF_COLUMNS
    assert sof.at[0, "certainty"] == gr.certainty(grade["downgrade"])
    assert sof.at[0, "n_downgrades"] == -grade["downgrade"].sum()
    notes = [n for n in sof.at[0, "footnotes"].split(" | ") if n]
    downgraded = [d for d, g in zip(grade["domain"], grade["downgrade"]) if g != 0]
    assert downgraded, "the fixture should downgrade at least one domain"
    assert [n.split(":")[0] for n in notes] == [gr.DOMAIN_NAMES[d] for d in downgraded]  # only the downgrades
    none = gr.summary_of_findings(grade.assign(downgrade=0), numbers)
    assert none.at[0, "footnotes"] == "" and none.at[0, "certainty"] == "high"
    with pytest.raises(ValueError, match="no GRADE rows"):
        gr.summary_of_findings(grade, numbers.assign(outcome_label="y"))
    with pytest.raises(ValueError, match="lack columns"):
        gr.summary_of_findings(grade, numbers.drop(columns=["pi_low"]))


def test_docs_quote_every_rule_verbatim():
    text = (PROJECT / "docs" / "grade.md").read_text()
    for rule in [*gr.RULES.values(), gr.RULE_CERTAINTY]:
        assert rule in text
    assert f"**{gr.optimal_information_size(0.2)}**" in text


# ---------------------------------------------------------------------------------------------
# The stage: GRADE tables from its own fits


def _rob_frames():
    rows = []
    overall = {
        "Jensen 2019": "low",
        "Roosenschoon 2021": "low",
        "Levitt 2009": "some concerns",
        "Wong 2023": "high",
        "Hasson-Ohayon 2007": "some concerns",
    }
    for study, judgement in overall.items():
        for domain in ("randomisation", "deviations", "missing_data", "measurement", "reporting", "overall"):
            rows.append(
                {
                    "study": study,
                    "design": "RCT",
                    "tool": "RoB 2",
                    "domain": domain,
                    "judgement": judgement,
                    "support": "constructed for a test",
                    "quote": "",
                    "source": "",
                    "source_key": "",
                    "note": "",
                }
            )
    rob = pd.DataFrame(rows)
    ind = pd.DataFrame(
        {
            "study": list(overall),
            "population": "",
            "intervention": "",
            "comparator": "",
            "outcomes": "",
            "judgement": ["no concerns", "no concerns", "no concerns", "serious concerns", "some concerns"],
            "support": "",
            "quote": "",
            "source": "",
            "source_key": "",
            "note": "",
        }
    )
    return rob, ind


def _trial():
    from .test_evidence import fake_trial

    trial = fake_trial()
    itt = trial["trial_itt_contrasts"]
    t = stats.t.ppf(0.975, itt["df"])
    trial["trial_itt_contrasts"] = itt.assign(
        ci_low=itt["estimate"] - t * itt["se"],
        ci_high=itt["estimate"] + t * itt["se"],
        p=2 * stats.t.sf(abs(itt["estimate"] / itt["se"]), itt["df"]),
        n_analysed=[150, 160],
    )
    return trial


TWO = {"imrs_client": ["imrs_client"], "functioning": ["gaf_f", "sofas"]}


@pytest.fixture(scope="module")
def staged():
    rob, ind = _rob_frames()
    return run_evidence_stage(
        None,
        {
            "evidence": {"label": "Mine", "year": 2025, "trial_risk_of_bias": "low"},
            "meta": {"outcomes": TWO},
            "trial": {"primary": {"outcome": "gaf_f", "timepoint": "post"}},
        },
        trial=_trial(),
        risk_of_bias=rob,
        indirectness=ind,
        seed=5,
    )


def test_stage_sof_numbers_are_the_stage_frames_numbers(staged):
    t = staged.tables
    sof = t["evidence_summary_of_findings"]
    assert list(sof.columns) == gr.SOF_COLUMNS
    assert list(sof["outcome_label"]) == ["functioning", "imrs_client"]  # the primary outcome's label first
    assert list(sof["is_primary"]) == [True, False]
    assert (sof["timepoint"] == "fu12").all()  # primary visit post is not among evidence.timepoints
    assert sof["method"].str.contains("the trial's primary visit post is not among evidence.timepoints").all()
    pooled = t["evidence_pooled"]
    effects = t["evidence_trial_effects"].query("analysis == 'itt' and timepoint == 'fu12'").set_index("outcome_label")
    itt = _trial()["trial_itt_contrasts"].set_index("outcome")
    for _, row in sof.iterrows():
        label = row["outcome_label"]
        freq = pooled.query(
            "outcome_label == @label and analysis == 'itt' and timepoint == 'fu12' "
            "and framework == 'REML + Knapp-Hartung'"
        ).iloc[0]
        bayes = pooled.query(
            "outcome_label == @label and analysis == 'itt' and framework.str.startswith('Bayesian')"
        ).iloc[0]
        assert row["k"] == freq["k_with"]
        assert row["pooled_smd"] == freq["estimate_with"]
        assert (row["pooled_ci_low"], row["pooled_ci_high"]) == (freq["ci_low_with"], freq["ci_high_with"])
        assert row["tau"] == pytest.approx(freq["tau_with"], abs=1e-12)
        assert (row["bayes_mean"], row["prob_gt_0"]) == (bayes["estimate_with"], bayes["prob_gt_0_with"])
        assert 0 <= row["prob_gt_mid"] <= row["prob_gt_0"]
        assert row["trial_g"] == effects.at[label, "yi"]
        assert (row["trial_g_ci_low"], row["trial_g_ci_high"]) == (
            effects.at[label, "ci_low"],
            effects.at[label, "ci_high"],
        )
        inst = row["instrument"]
        assert (row["trial_md"], row["trial_p"], row["trial_n"]) == (
            itt.at[inst, "estimate"],
            itt.at[inst, "p"],
            itt.at[inst, "n_analysed"],
        )
        assert row["mid"] == MID
        grade = t["evidence_grade"].query("outcome_label == @label")
        assert row["certainty"] == gr.certainty(grade["downgrade"])
        assert row["footnotes"] == gr.footnotes(grade)


def test_stage_grades_from_the_with_trial_fit(staged):
    """The stage's risk-of-bias rating equals the rule applied by hand to the fit with the trial."""
    grade = staged.tables["evidence_grade"].set_index(["outcome_label", "domain"])
    rob, _ = _rob_frames()
    judged = rob.query("domain == 'overall'").set_index("study")["judgement"]
    from imrstats.data.published import load_published_outcomes
    from imrstats.meta.stage import outcome_inputs

    published = outcome_inputs(load_published_outcomes(None), {"outcomes": TWO})["imrs_client"]
    effect = staged.tables["evidence_trial_effects"].query("outcome_label == 'imrs_client' and analysis == 'itt'")
    yi = np.r_[published["yi"], effect["yi"]]
    vi = np.r_[published["vi"], effect["vi"]]
    fit = rma(yi, vi, method="REML", knha=True)
    share = gr.weight_shares(vi, fit.tau2)
    robs = [*(judged[s] for s in published["study"]), "low"]  # the trial: trial_risk_of_bias = low
    high = share[[r == "high" for r in robs]].sum()
    concerns = share[[r == "some concerns" for r in robs]].sum()
    expected = -2 if high >= 0.5 else (-1 if high >= 0.25 or high + concerns >= 0.5 else 0)
    assert grade.loc[("imrs_client", "risk_of_bias"), "downgrade"] == expected
    assert f"{100 * high:.1f}%" in grade.loc[("imrs_client", "risk_of_bias"), "reason"]
    # Wong 2023 (serious concerns) carries under half of the imrs_client weight
    wong = share[list(published["study"]).index("Wong 2023")]
    assert grade.loc[("imrs_client", "indirectness"), "downgrade"] == (-1 if wong >= 0.5 else 0)


def test_stage_rob_sensitivity_pools_the_low_risk_studies_and_the_trial(staged):
    sens = staged.tables["evidence_rob_sensitivity"].set_index("outcome_label")
    client = sens.loc["imrs_client"]
    assert client["studies_low_rob"] == "Jensen 2019; Roosenschoon 2021; Mine"
    from imrstats.data.published import load_published_outcomes
    from imrstats.meta.stage import outcome_inputs

    published = outcome_inputs(load_published_outcomes(None), {"outcomes": TWO})["imrs_client"]
    effect = staged.tables["evidence_trial_effects"].query("outcome_label == 'imrs_client' and analysis == 'itt'")
    keep = published["study"].isin(["Jensen 2019", "Roosenschoon 2021"])
    fit = rma(np.r_[published.loc[keep, "yi"], effect["yi"]], np.r_[published.loc[keep, "vi"], effect["vi"]], knha=True)
    assert client["k_low_rob"] == 3
    assert client["estimate_low_rob"] == pytest.approx(fit.estimate, rel=1e-12)
    assert client["ci_low_low_rob"] == pytest.approx(fit.ci_low, rel=1e-12)
    functioning = sens.loc["functioning"]  # Jensen 2019 (low) + the trial; Wong 2023 (high) left out
    assert functioning["k_low_rob"] == 2 and "Wong 2023 (high)" in functioning["studies_left_out"]


def test_stage_rob_sensitivity_not_estimable_below_two_studies():
    rob, ind = _rob_frames()
    rob.loc[rob["study"] == "Jensen 2019", "judgement"] = "high"
    res = run_evidence_stage(
        None,
        {"evidence": {"summary_outcomes": ["functioning"]}, "meta": {"outcomes": TWO, "bayes": {"enabled": False}}},
        trial=_trial(),
        risk_of_bias=rob,
        indirectness=ind,
    )
    sens = res.tables["evidence_rob_sensitivity"]
    assert list(sens["outcome_label"]) == ["functioning"]
    assert sens.at[0, "k_low_rob"] == 0 and math.isnan(sens.at[0, "estimate_low_rob"])
    assert sens.at[0, "note"].startswith("not estimable (k < 2)")
    assert list(res.tables["evidence_summary_of_findings"]["outcome_label"]) == ["functioning"]
    assert "imrs_client: compared, but not in the Summary of Findings" in res.summary
    # Bayesian pooling off: the Bayesian columns are empty, not invented
    assert res.tables["evidence_summary_of_findings"][["bayes_mean", "prob_gt_mid"]].isna().all().all()
    # the trial not assessed: counted as some concerns and said
    reason = res.tables["evidence_grade"].query("domain == 'risk_of_bias'")["reason"].iloc[0]
    assert "(the user's trial)" in reason and "not assessed" in reason


def test_complete_case_target_when_itt_is_not_analysed():
    rob, ind = _rob_frames()
    res = run_evidence_stage(
        None,
        {"evidence": {"analyses": ["complete_case"]}, "meta": {"outcomes": TWO, "bayes": {"enabled": False}}},
        trial=_trial(),
        risk_of_bias=rob,
        indirectness=ind,
    )
    sof = res.tables["evidence_summary_of_findings"].set_index("outcome_label")
    eff = res.tables["evidence_trial_effects"].set_index("outcome_label")
    for label in TWO:
        md, se, df = eff.at[label, "md"], eff.at[label, "md_se"], eff.at[label, "md_df"]
        half = stats.t.ppf(0.975, df) * se
        assert sof.at[label, "trial_md"] == md
        assert sof.at[label, "trial_md_ci_low"] == pytest.approx(md - half, rel=1e-12)
        assert sof.at[label, "trial_p"] == pytest.approx(2 * stats.t.sf(abs(md / se), df), rel=1e-12)
        assert sof.at[label, "trial_n"] == eff.at[label, "n_imr"] + eff.at[label, "n_tau"]
        assert "complete case analysis" in sof.at[label, "method"]
        assert "trial N: observed at the visit" in sof.at[label, "method"]


def test_summary_outcomes_must_be_meta_labels():
    with pytest.raises(SettingsError, match="evidence.summary_outcomes"):
        run_evidence_stage(
            None, {"evidence": {"summary_outcomes": ["nope"]}, "meta": {"outcomes": TWO}}, trial=_trial()
        )
    with pytest.raises(SettingsError, match="trial_risk_of_bias"):
        run_evidence_stage(None, {"evidence": {"trial_risk_of_bias": "medium"}}, trial=_trial())


def test_grade_target_prefers_itt_at_the_primary_visit():
    ev = {"analyses": ["complete_case", "itt"], "timepoints": ["fu12", "post"]}
    target = grade_target(ev, {"outcome": "gaf_f", "timepoint": "post"})
    assert (target["analysis"], target["timepoint"]) == ("itt", "post")
    target = grade_target(
        {"analyses": ["complete_case"], "timepoints": ["fu12"]}, {"outcome": "x", "timepoint": "post"}
    )
    assert (target["analysis"], target["timepoint"]) == ("complete_case", "fu12")
    assert "no itt" in target["why"] and "not among evidence.timepoints" in target["why"]


def test_section_shows_grade_rob_and_sensitivity(staged):
    from imrstats.pipeline.registry import render_section

    html = render_section(staged)
    assert "Certainty of the evidence (GRADE)" in html
    assert gr.RULE_IMPRECISION.split(".")[0] in html
    assert "restricted to studies at low overall risk of bias" in html
