"""imrstats.audit.checks: every rule on constructed cases with known answers, and on the cases from the source papers.

Known answers are worked by hand in the comments (integer sums, sums of squares, interval ends); the source-paper cases
are the rows of data/published/audit_cases.csv and published_outcomes.csv that the docs (docs/audit.md) cite.
"""

import functools
import json
import math

import pandas as pd
import pytest
from scipy import stats

from imrstats.audit import checks as audit
from imrstats.audit.checks import CONSISTENT, INCONSISTENT, UNCHECKABLE
from imrstats.data.published import PUBLISHED_DIR
from imrstats.errors import AnalysisError, InputError

# ------------------------------------------------------------------------------------------ numbers as printed


@pytest.mark.parametrize(
    "text, value, decimals, relation",
    [
        ("0.45", 0.45, 2, "="),
        (".001", 0.001, 3, "="),
        ("< .001", 0.001, 3, "<"),
        ("p < 0.05", 0.05, 2, "<"),
        ("13.0", 13.0, 1, "="),
        ("− 4.7", -4.7, 1, "="),
        ("3,928.50", 3928.5, 2, "="),
        ("62", 62.0, 0, "="),
    ],
)
def test_printed_numbers_keep_their_decimals(text, value, decimals, relation):
    rep = audit.as_reported(text)
    assert (rep.value, rep.decimals, rep.relation) == (pytest.approx(value), decimals, relation)


def test_rounding_interval_and_types():
    rep = audit.as_reported("0.45")
    assert (rep.low, rep.high) == pytest.approx((0.445, 0.455))
    assert audit.as_reported(7).decimals is None  # an int (an n) is exact
    assert audit.as_reported(2.5).decimals == 1  # a float: its shortest repr
    assert audit.as_reported("") is None and audit.as_reported(float("nan")) is None
    with pytest.raises(InputError, match="not a number"):
        audit.as_reported("NS")


# ------------------------------------------------------------------------------------------------------ GRIM


def test_grim_known_answers():
    # Brown & Heathers' example: 5.19 with n = 28 is impossible (145/28 = 5.179, 146/28 = 5.214)
    assert audit.grim(5.19, 28, 2).severity == INCONSISTENT
    assert audit.grim("5.18", 28).severity == CONSISTENT  # 145 / 28 = 5.1786
    # 5.48 at n = 53: 290/53 = 5.4717, 291/53 = 5.4906, nothing rounds to 5.48
    found = audit.grim("5.48", 53)
    assert found.severity == INCONSISTENT and "5.472" in found.recomputed and "5.491" in found.recomputed


def test_grim_has_no_power_when_n_reaches_ten_to_the_decimals():
    assert audit.grim("45.4", 62).severity == UNCHECKABLE
    assert audit.grim("45.43", 99).severity != UNCHECKABLE


def test_grim_items_are_the_granularity():
    # per-item mean of 3 items, n = 5: granularity 15; 3.47 needs a sum in [51.975, 52.125] -> 52 -> 3.4667
    assert audit.grim("3.47", 5, items=3).severity == CONSISTENT
    # 3.45: [51.675, 51.825] holds no integer
    assert audit.grim("3.45", 5, items=3).severity == INCONSISTENT


def test_grim_bad_input():
    with pytest.raises(AnalysisError, match="decimals"):
        audit.grim(audit.Reported(3.0, None), 5)
    with pytest.raises(InputError, match="whole number"):
        audit.grim("3.2", 4.5)


# --------------------------------------------------------------------------------------------------- GRIMMER


def test_grimmer_known_answers():
    # n = 3, values 1, 2, 3: mean 2.00, SD 1.00 is possible
    assert audit.grimmer("2.00", "1.00", 3).severity == CONSISTENT
    # mean 2.00, SD 1.10, n = 3: sum 6, Q = 2 SD^2 + 12 in [14.38, 14.44]: no integer
    assert audit.grimmer("2.00", "1.10", 3).severity == INCONSISTENT
    # parity: n = 3, sum 21, SD 3.16 -> Q in [166.9, 167.03], Q = 167 odd like the sum, yet no three integers
    # have sum 21 and sum of squares 167 (d1^2 + d2^2 + d1 d2 = 10 has no integer solution): exhaustive search
    assert audit.grimmer("7.00", "3.16", 3).severity == INCONSISTENT
    # parity alone: mean 0.58, SD 0.75, n = 62: sum 36 (even), Q in [54.76, 55.68] -> 55, odd: impossible
    assert audit.grimmer("0.58", "0.75", 62).severity == INCONSISTENT


def test_grimmer_failing_grim_and_no_power():
    assert "fails GRIM" in audit.grimmer("5.48", "4.31", 53).detail
    assert audit.grimmer("45.4", "12.1", 62).severity == UNCHECKABLE


def test_grimmer_needs_two_values():
    with pytest.raises(AnalysisError, match="n >= 2"):
        audit.grimmer("3.0", "0.0", 1)


# ------------------------------------------------------------------------------------------------------ range


def test_range_mean_and_sd():
    # IMRS 15-75: a mean of 80 cannot occur; SD bound at mean 45, n = 10: sqrt(10/9 * 30 * 30) = 31.62
    out = audit.check_range("80.0", None, 10, scale_min=15, scale_max=75)
    assert out[0].severity == INCONSISTENT
    ok, too_big = (audit.check_range("45.0", sd, 10, scale_min=15, scale_max=75)[1] for sd in ("31.6", "31.7"))
    assert ok.severity == CONSISTENT and ok.high == pytest.approx(math.sqrt(10 / 9 * 900))
    assert too_big.severity == INCONSISTENT
    # near the floor the bound shrinks: mean 16.0 on 15-75 with n = 50: sqrt(50/49 * 1 * 59) = 7.76
    assert audit.check_range("16.0", "8.0", 50, scale_min=15, scale_max=75)[1].severity == INCONSISTENT


def test_range_sd_without_n_uses_the_loosest_bound():
    # bound sqrt(2) * 30 = 42.43: "42.4" (>= 42.35) is possible, "42.5" (>= 42.45) is not
    (finding,) = audit.check_range(None, "42.4", None, scale_min=15, scale_max=75)
    assert finding.severity == CONSISTENT and "n unknown" in finding.recomputed
    assert audit.check_range(None, "42.5", None, scale_min=15, scale_max=75)[0].severity == INCONSISTENT


def test_range_rejects_an_empty_scale():
    with pytest.raises(AnalysisError, match="empty"):
        audit.check_range("3", None, 5, scale_min=5, scale_max=5)


# ------------------------------------------------------------------------------------------- recomputed tests


def test_student_t_known_answer_and_disagreement():
    # means 10 and 12, SD 2 and 2, n = 10 each: t = -2 / sqrt(0.8) = -2.236, df 18
    t = -2 / math.sqrt(0.8)
    p = 2 * stats.t.sf(abs(t), 18)
    out = audit.recompute_t(10, 2, 10, 12, 2, 10, t_reported="-2.24", p_reported=f"{p:.3f}", test="student_t")
    assert [f.severity for f in out] == [CONSISTENT, CONSISTENT]
    assert out[1].estimate.statistic == pytest.approx(t) and out[1].estimate.df == 18
    bad = audit.recompute_t(10, 2, 10, 12, 2, 10, p_reported="0.30", test="student_t")[0]
    assert bad.severity == INCONSISTENT and "changes the significance" in bad.detail


def test_welch_df_range_contains_the_point():
    out = audit.recompute_t("50.4", "13.4", 66, "50.2", "11.8", 62, p_reported="0.93")[0]
    assert out.severity == CONSISTENT
    lo, hi = audit.welch_df_range(audit.as_reported("13.4"), audit.as_reported("11.8"), 66, 62)
    assert lo <= out.estimate.df <= hi <= 66 + 62 - 2


def test_z_from_se_and_nothing_printed():
    # Jensen Table 3 GAF-F ITT: 0.8 / sqrt(1.38^2 + 1.40^2) = 0.4069, p = 0.684
    (found,) = audit.recompute_t("50.6", "1.38", 99, "49.8", "1.40", 99, test="z_from_se")
    assert found.severity == UNCHECKABLE
    assert found.estimate.p == pytest.approx(2 * stats.norm.sf(0.8 / math.hypot(1.38, 1.40)))


def test_t_test_bad_input():
    with pytest.raises(AnalysisError, match="n >= 2"):
        audit.recompute_t(1, 1, 1, 2, 1, 5)
    with pytest.raises(AnalysisError, match="unknown two-sample test"):
        audit.recompute_t(1, 1, 5, 2, 1, 5, test="anova")
    with pytest.raises(AnalysisError, match="zero"):
        audit.recompute_t("1.0", "0", 5, "2.0", "0", 5, test="z_from_se")


def test_correlation_p_reported_as_equality_is_named_as_a_slip():
    # Ferrara implementation study: r = 0.96, n = 15 -> t = 12.4, p ~ 1.5e-8: '= 0.001' can only be '< 0.001'
    found = audit.recompute_correlation_p("0.96", 15, "0.001")
    assert found.severity == INCONSISTENT and found.rule == "correlation_p_reported_as_equality"
    assert "p < 0.001" in found.detail and "same" in found.detail
    assert audit.recompute_correlation_p("0.96", 15, "< 0.001").severity == CONSISTENT
    # r = 0.50, n = 20: t = 2.449, p = 0.0248 -> '0.02' agrees, '0.04' does not
    assert audit.recompute_correlation_p("0.50", 20, "0.02").severity == CONSISTENT
    assert audit.recompute_correlation_p("0.50", 20, "0.04").rule == "correlation_p"


def test_correlation_bad_input():
    assert audit.recompute_correlation_p("1.2", 20, "0.01").severity == INCONSISTENT
    with pytest.raises(AnalysisError, match="n >= 3"):
        audit.recompute_correlation_p("0.5", 2, "0.5")


def test_chisq_known_answer_and_errors():
    # [[10, 10], [10, 10]]: X^2 = 0, p = 1
    out = audit.recompute_chisq("10,10;10,10", chisq_reported="0.00", p_reported="1.00")
    assert [f.rule for f in out] == ["chisq_statistic", "chisq_p"] and all(f.severity == CONSISTENT for f in out)
    assert audit.recompute_chisq("10,10;10,10", chisq_reported="1.50")[0].severity == INCONSISTENT
    out = audit.recompute_chisq("10,10;10,10", df=2, p_reported="1.0")
    assert out[0].rule == "chisq_df" and out[0].severity == INCONSISTENT
    with pytest.raises(AnalysisError, match="sums to zero"):
        audit.recompute_chisq("0,0;3,4", p_reported="0.5")
    with pytest.raises(InputError, match="equal length"):
        audit.recompute_chisq("1,2;3", p_reported="0.5")


def test_statistic_p_with_unknown_df_is_bounded():
    # t = 2.00, df unknown: p in [2 P(Z > 2.005), 2 P(T_1 > 1.995)] = [0.045, 0.296]
    assert audit.check_statistic_p("2.00", "0.20", kind="t").severity == CONSISTENT
    assert audit.check_statistic_p("2.00", "0.01", kind="t").severity == INCONSISTENT
    assert audit.check_statistic_p("4.00", "0.05", kind="F").severity == UNCHECKABLE
    assert audit.check_statistic_p("4.00", "0.05", kind="F", df=1, df2=100).severity == CONSISTENT  # p = 0.048


def test_mann_whitney_bound():
    # n 116 / 71: E(U) = 4118, SD = 359.2; U = 3928.5 -> p <= 0.599: 0.50 possible (ties), 0.70 not
    assert audit.recompute_mann_whitney_p("3928.50", 116, 71, "0.50").severity == CONSISTENT
    assert audit.recompute_mann_whitney_p("3928.50", 116, 71, "0.70").severity == INCONSISTENT
    assert audit.recompute_mann_whitney_p("9000", 116, 71, "0.50").severity == INCONSISTENT  # U > n1 n2 = 8236


# --------------------------------------------------------------------------------------------- estimate, CI, p


def test_ci_p_consistent_case():
    # 2.0 (95% CI 0.04 to 3.96): SE = 1.0, z = 2, p = 0.0455
    out = audit.check_ci_p_consistency("2.0", "0.04", "3.96", "0.046")
    assert [f.severity for f in out] == [CONSISTENT] * 3


def test_ci_sign_flip_and_p_disagreement_jensen2019_gaf_f():
    out = {f.rule: f for f in audit.check_ci_p_consistency("0.8", "-4.7", "3.0", "0.45")}
    assert out["ci_contains_estimate"].severity == CONSISTENT
    assert out["ci_centred"].severity == INCONSISTENT and "opposite signs" in out["ci_centred"].detail
    assert out["ci_p"].severity == INCONSISTENT
    assert 0.66 < out["ci_p"].low < out["ci_p"].high < 0.71  # SE = 7.7 / 3.92 = 1.96, p ~ 0.68


def test_ci_not_containing_its_estimate_jensen2019_service_use():
    out = {f.rule: f for f in audit.check_ci_p_consistency("0.49", "0.67", "1.48", "1.0")}
    assert out["ci_contains_estimate"].severity == INCONSISTENT
    assert out["ci_p"].severity == INCONSISTENT and "disagree on significance" in out["ci_p"].detail


def test_ci_ratio_scale():
    # OR 1.22 (0.44 to 3.42), p = 0.71 (Roosenschoon 2021): consistent on the log scale
    out = audit.check_ci_p_consistency("1.22", "0.44", "3.42", "0.71", scale="ratio")
    assert all(f.severity == CONSISTENT for f in out)
    with pytest.raises(AnalysisError, match="positive"):
        audit.check_ci_p_consistency("1.2", "-0.1", "3.4", scale="ratio")


def test_ci_order_and_level_errors():
    assert audit.check_ci_p_consistency("1", "3", "0")[0].rule == "ci_order"
    with pytest.raises(AnalysisError, match="level"):
        audit.check_ci_p_consistency("1", "0", "2", level=95)


def test_repeated_p():
    assert audit.check_repeated_p(["0.45", "0.67"], ["text", "table"]).severity == INCONSISTENT
    assert audit.check_repeated_p(["0.45", "0.449"], ["text", "table"]).severity == CONSISTENT


def test_finding_severity_is_checked_and_json_serialisable():
    with pytest.raises(ValueError, match="severity"):
        audit.Finding("x", "bad", "")
    found = audit.recompute_correlation_p("0.50", 20, "0.02")
    json.dumps(found.to_dict())


# -------------------------------------------------------------------------------------- tables and source-paper cases


@functools.lru_cache(maxsize=1)
def _cases() -> pd.DataFrame:
    frame = audit.read_audit_table(PUBLISHED_DIR / "audit_cases.csv")
    return audit.audit_table(frame, name="audit_cases.csv")


def _find(findings, case_line, rule):
    hit = findings.loc[(findings["row"] == f"audit_cases.csv:{case_line}") & (findings["rule"] == rule)]
    assert len(hit) == 1, (case_line, rule, findings.loc[findings["row"] == f"audit_cases.csv:{case_line}"])
    return hit.iloc[0]


def _line(case: str) -> int:
    frame = audit.read_audit_table(PUBLISHED_DIR / "audit_cases.csv")
    return int(frame.index[frame["case"] == case][0]) + 2


def test_audit_cases_file_has_sources_and_quotes():
    frame = audit.read_audit_table(PUBLISHED_DIR / "audit_cases.csv")
    assert (frame["source"].str.strip() != "").all() and (frame["quote"].str.strip() != "").all()
    assert frame["case"].is_unique


def test_ferrara2023_correlation_is_a_threshold_slip():
    row = _find(_cases(), _line("ferrara_imrs_correlation"), "correlation_p_reported_as_equality")
    assert row["severity"] == INCONSISTENT


def test_jensen2019_gaf_f_text_versus_table_3():
    findings = _cases()
    text = _line("jensen_gaff_itt_text")
    assert _find(findings, text, "t_statistic_p")["severity"] == INCONSISTENT  # t = -0.42 cannot give 0.45
    assert _find(findings, text, "ci_centred")["severity"] == INCONSISTENT
    assert _find(findings, text, "ci_p")["severity"] == INCONSISTENT
    repeated = findings.loc[findings["rule"] == "repeated_p"].iloc[0]
    assert repeated["severity"] == INCONSISTENT and "0.45" in repeated["reported"] and "0.67" in repeated["reported"]
    table = _find(findings, _line("jensen_gaff_itt_table3"), "two_sample_test_not_named")
    assert table["severity"] == UNCHECKABLE and "reproduces" in table["detail"]  # Table 3's 0.67 fits a z


@pytest.mark.parametrize("case", ["jensen_admissions", "jensen_bed_days", "jensen_er_visits"])
def test_jensen2019_service_use_ci_excludes_its_estimate(case):
    findings = _cases()
    assert _find(findings, _line(case), "ci_contains_estimate")["severity"] == INCONSISTENT


@pytest.mark.parametrize("inst", ["gaf_f", "psp", "panss_total", "imrs_clinician"])
def test_jensen2019_table_4_attendance_p_values_recompute(inst):
    assert _find(_cases(), _line(f"jensen_t4_attendance_{inst}"), "student_t_p")["severity"] == CONSISTENT


def test_jensen2019_table_4_bipolar_imrs_p_fits_student_not_welch():
    row = _find(_cases(), _line("jensen_t4_bipolar_imrs_clinician"), "two_sample_test_not_named")
    assert "student_t on these summaries reproduces" in row["detail"]


def test_jensen2019_post_hoc_grimmer_flags():
    findings = _cases()
    rows = findings.loc[
        (findings["row"] == f"audit_cases.csv:{_line('jensen_t4_posthoc_psp_aggressive')}")
        & (findings["rule"] == "grimmer")
    ]
    assert list(rows["severity"]) == [INCONSISTENT, CONSISTENT]  # 0.58 / 0.75 / 62 no; 0.50 / 0.68 / 60 yes


def test_published_outcomes_hamd6_grim():
    frame = audit.read_audit_table(PUBLISHED_DIR / "published_outcomes.csv")
    findings = audit.audit_table(frame)
    bad = findings.loc[findings["severity"] == INCONSISTENT]
    assert list(zip(bad["instrument"], bad["rule"])) == [("hamd6", "grim")]
    assert "5.48" in bad["reported"].iloc[0] and "integer totals" in bad["detail"].iloc[0]
    covered = set(findings["row"].astype(int))
    assert covered == set(range(2, len(frame) + 2))  # every row gets at least one finding


def test_audit_table_errors_and_bad_rows():
    with pytest.raises(InputError, match="study"):
        audit.audit_table(pd.DataFrame({"x": [1]}))
    with pytest.raises(InputError, match="none of the columns"):
        audit.audit_table(pd.DataFrame({"study": ["a"], "foo": ["1"]}))
    frame = pd.DataFrame(
        {
            "study": ["a", "b"],
            "test": ["anova", "correlation"],
            "r": ["0.5", "0.50"],
            "n": ["20", "20"],
            "p": ["0.02", "0.02"],
        }
    )
    findings = audit.audit_table(frame)
    assert findings.iloc[0]["rule"] == "input" and "unknown test" in findings.iloc[0]["detail"]
    assert findings.iloc[1]["severity"] == CONSISTENT


def test_audit_table_reads_floats_and_aliases():
    frame = pd.DataFrame(
        {"study": ["x"], "instrument": ["imrs_client"], "n_imr": [10], "mean_imr": [80.0], "sd_imr": [5.0]}
    )
    findings = audit.audit_table(frame)
    assert findings.loc[findings["rule"] == "range_mean", "severity"].iloc[0] == INCONSISTENT
