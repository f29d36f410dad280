"""imrstats.audit.checks against R on identical input.

References: tests/validation/r/audit.R (R 4.2.2 Patched, base `stats` only) on
tests/validation/data/audit_samples.csv and audit_grimmer_cases.csv (made by audit_make_data.py); its printed
numbers are pinned below. Tolerance 1e-6 relative (deterministic). GRIM / GRIMMER are pinned against R's
exhaustive enumeration of every multiset of n integers in -6..20 (n = 3..6; the printed SDs <= 3.5 around means
5-9 keep every possible value inside that range), with the same rounding-interval definition: the lists of
cases R finds impossible must equal ours exactly.
"""

import pandas as pd
import pytest

from imrstats.audit import checks as audit

DATA = __import__("pathlib").Path(__file__).parent / "data"
REL = 1e-6

R = {
    "student_raw": [0.472099768202642, 52, 0.638830788451326],
    "welch_raw": [0.447723475924205, 37.0450505582609, 0.656960126151807],
    "summaries_raw": [47.6260869565217, 12.0755657646981, 23, 46.3129032258065, 8.37511161857894, 31],
    "cor_raw": [0.557085029386262, 17, 0.020176380685723],
    "chisq_2x2_FALSE": [2.3538961038961, 1, 0.124970321795506],
    "chisq_2x2_TRUE": [1.72075689935065, 1, 0.189595644553209],
    "chisq_2x3": [5.3084499132581, 2, 0.0703533444335603],
    "chisq_stat_bounds": [0.0498945216654683, 0.0501929910763884],
    "t4_gaf_f": [0.25065842807838, 0.277924795615552, 0.268817006462059, 0.295942800162258],
    "t4_psp": [0.191068692655124, 0.212428027169071, 0.169104561172864, 0.189687412304645],
    "t4_panss": [0.430566143331736, 0.453290852288396, 0.463551011975941, 0.485186222424524],
    "t4_imrs_bipolar": [0.0499096655581945, 0.0615026850828256, 0.0391821981824039, 0.0488932055868564],
    "cor_ferrara": [6.21269765764909e-09, 3.10600020751098e-08, 1.46209056134256e-08],
}

R_GRIM_INCONSISTENT = [
    "n3_001",
    "n3_009",
    "n3_017",
    "n3_025",
    "n3_033",
    "n3_041",
    "n3_049",
    "n3_057",
    "n3_065",
    "n3_073",
    "n4_001",
    "n4_009",
    "n4_017",
    "n4_025",
    "n4_033",
    "n4_041",
    "n4_049",
    "n4_057",
    "n4_065",
    "n4_073",
    "n5_001",
    "n5_009",
    "n5_017",
    "n5_025",
    "n5_033",
    "n5_041",
    "n5_049",
    "n5_057",
    "n5_065",
    "n5_073",
    "n6_001",
    "n6_009",
    "n6_017",
    "n6_025",
    "n6_033",
    "n6_041",
    "n6_049",
    "n6_057",
    "n6_065",
    "n6_073",
]
R_GRIMMER_INCONSISTENT = [
    "n3_000",
    "n3_001",
    "n3_003",
    "n3_004",
    "n3_005",
    "n3_007",
    "n3_008",
    "n3_009",
    "n3_011",
    "n3_012",
    "n3_013",
    "n3_015",
    "n3_016",
    "n3_017",
    "n3_019",
    "n3_020",
    "n3_021",
    "n3_023",
    "n3_024",
    "n3_025",
    "n3_027",
    "n3_028",
    "n3_029",
    "n3_031",
    "n3_032",
    "n3_033",
    "n3_035",
    "n3_036",
    "n3_037",
    "n3_039",
    "n3_040",
    "n3_041",
    "n3_043",
    "n3_044",
    "n3_045",
    "n3_047",
    "n3_048",
    "n3_049",
    "n3_051",
    "n3_052",
    "n3_053",
    "n3_055",
    "n3_056",
    "n3_057",
    "n3_059",
    "n3_060",
    "n3_061",
    "n3_063",
    "n3_064",
    "n3_065",
    "n3_067",
    "n3_068",
    "n3_069",
    "n3_071",
    "n3_072",
    "n3_073",
    "n3_075",
    "n3_076",
    "n3_077",
    "n3_079",
    "n4_000",
    "n4_001",
    "n4_003",
    "n4_004",
    "n4_005",
    "n4_007",
    "n4_008",
    "n4_009",
    "n4_011",
    "n4_012",
    "n4_013",
    "n4_015",
    "n4_016",
    "n4_017",
    "n4_019",
    "n4_020",
    "n4_021",
    "n4_023",
    "n4_024",
    "n4_025",
    "n4_027",
    "n4_028",
    "n4_029",
    "n4_031",
    "n4_032",
    "n4_033",
    "n4_035",
    "n4_036",
    "n4_037",
    "n4_039",
    "n4_040",
    "n4_041",
    "n4_043",
    "n4_044",
    "n4_045",
    "n4_047",
    "n4_048",
    "n4_049",
    "n4_051",
    "n4_052",
    "n4_053",
    "n4_055",
    "n4_056",
    "n4_057",
    "n4_059",
    "n4_060",
    "n4_061",
    "n4_063",
    "n4_064",
    "n4_065",
    "n4_068",
    "n4_069",
    "n4_071",
    "n4_072",
    "n4_073",
    "n4_075",
    "n4_076",
    "n4_077",
    "n4_079",
    "n5_000",
    "n5_001",
    "n5_003",
    "n5_004",
    "n5_005",
    "n5_007",
    "n5_008",
    "n5_009",
    "n5_011",
    "n5_012",
    "n5_013",
    "n5_015",
    "n5_016",
    "n5_017",
    "n5_019",
    "n5_020",
    "n5_023",
    "n5_024",
    "n5_025",
    "n5_027",
    "n5_028",
    "n5_032",
    "n5_033",
    "n5_035",
    "n5_036",
    "n5_037",
    "n5_039",
    "n5_040",
    "n5_041",
    "n5_043",
    "n5_044",
    "n5_045",
    "n5_047",
    "n5_048",
    "n5_049",
    "n5_051",
    "n5_052",
    "n5_053",
    "n5_055",
    "n5_056",
    "n5_057",
    "n5_059",
    "n5_060",
    "n5_061",
    "n5_063",
    "n5_064",
    "n5_065",
    "n5_067",
    "n5_068",
    "n5_069",
    "n5_071",
    "n5_072",
    "n5_073",
    "n5_075",
    "n5_077",
    "n5_079",
    "n6_001",
    "n6_003",
    "n6_004",
    "n6_005",
    "n6_007",
    "n6_009",
    "n6_011",
    "n6_012",
    "n6_013",
    "n6_015",
    "n6_016",
    "n6_017",
    "n6_019",
    "n6_020",
    "n6_021",
    "n6_023",
    "n6_024",
    "n6_025",
    "n6_027",
    "n6_028",
    "n6_029",
    "n6_031",
    "n6_032",
    "n6_033",
    "n6_035",
    "n6_036",
    "n6_037",
    "n6_039",
    "n6_040",
    "n6_041",
    "n6_043",
    "n6_044",
    "n6_045",
    "n6_047",
    "n6_048",
    "n6_049",
    "n6_051",
    "n6_052",
    "n6_053",
    "n6_055",
    "n6_056",
    "n6_057",
    "n6_059",
    "n6_060",
    "n6_061",
    "n6_063",
    "n6_064",
    "n6_065",
    "n6_067",
    "n6_068",
    "n6_069",
    "n6_071",
    "n6_072",
    "n6_073",
    "n6_075",
    "n6_076",
    "n6_077",
]


def _samples():
    frame = pd.read_csv(DATA / "audit_samples.csv")
    return {k: frame.loc[frame["sample"] == k, "value"].to_numpy() for k in "abxy"}


def test_summaries_match_r():
    s = _samples()
    got = [s["a"].mean(), s["a"].std(ddof=1), len(s["a"]), s["b"].mean(), s["b"].std(ddof=1), len(s["b"])]
    assert got == pytest.approx(R["summaries_raw"], rel=REL)


@pytest.mark.parametrize("test, key", [("student_t", "student_raw"), ("welch_t", "welch_raw")])
def test_two_sample_t_from_summaries_equals_t_test_on_raw_data(test, key):
    m1, s1, n1, m2, s2, n2 = R["summaries_raw"]
    (stat,) = [
        f
        for f in audit.recompute_t(m1, s1, int(n1), m2, s2, int(n2), test=test, p_reported="0.5")
        if f.rule.endswith("_p")
    ]
    assert stat.estimate.statistic == pytest.approx(R[key][0], rel=REL)
    assert stat.estimate.df == pytest.approx(R[key][1], rel=REL)
    assert stat.estimate.p == pytest.approx(R[key][2], rel=REL)


def test_correlation_p_equals_cor_test():
    r, n, p = R["cor_raw"]
    finding = audit.recompute_correlation_p(r, int(n), "0.02")
    assert finding.estimate.p == pytest.approx(p, rel=REL)
    assert finding.low == pytest.approx(p, rel=1e-4) and finding.high == pytest.approx(p, rel=1e-4)


@pytest.mark.parametrize(
    "counts, correction, key",
    [
        ("12,30;20,25", False, "chisq_2x2_FALSE"),
        ("12,30;20,25", True, "chisq_2x2_TRUE"),
        ("8,14,22;5,9,3", False, "chisq_2x3"),
    ],
)
def test_chisq_from_counts_equals_chisq_test(counts, correction, key):
    (finding,) = audit.recompute_chisq(counts, p_reported="0.1", correction=correction)
    assert finding.estimate.statistic == pytest.approx(R[key][0], rel=REL)
    assert finding.estimate.df == R[key][1]
    assert finding.estimate.p == pytest.approx(R[key][2], rel=REL)


def test_chisq_p_bounds_from_a_printed_statistic():
    (finding,) = audit.recompute_chisq(chisq_reported="3.84", df=1, p_reported="0.05")
    assert (finding.low, finding.high) == pytest.approx(tuple(R["chisq_stat_bounds"]), rel=REL)
    assert finding.severity == audit.CONSISTENT


@pytest.mark.parametrize(
    "key, row",
    [
        ("t4_gaf_f", ("47.3", "13.7", 19, "51.3", "12.8", 47)),
        ("t4_psp", ("48.5", "12.5", 19, "53.4", "14.4", 45)),
        ("t4_panss", ("61.8", "19.2", 12, "57.3", "17.4", 43)),
    ],
)
def test_p_bounds_over_the_rounding_box_equal_rs_corner_search(key, row):
    """Student: the bounds are exactly the extremes over the 16 corners. Welch: our bound also lets df move
    inside the box, so it encloses R's corner extremes and is at most 1e-3 wider."""
    student = audit.recompute_t(*row, p_reported="0.3", test="student_t")[0]
    assert (student.low, student.high) == pytest.approx(tuple(R[key][:2]), rel=REL)
    welch = audit.recompute_t(*row, p_reported="0.3", test="welch_t")[0]
    assert welch.low <= R[key][2] * (1 + REL) and welch.high >= R[key][3] * (1 - REL)
    assert welch.low == pytest.approx(R[key][2], abs=1e-3) and welch.high == pytest.approx(R[key][3], abs=1e-3)


def test_correlation_p_bounds_ferrara():
    finding = audit.recompute_correlation_p("0.96", 15, "0.001")
    assert (finding.low, finding.high) == pytest.approx(tuple(R["cor_ferrara"][:2]), rel=REL)
    assert finding.estimate.p == pytest.approx(R["cor_ferrara"][2], rel=REL)


def test_grim_and_grimmer_equal_exhaustive_enumeration_in_r():
    cases = pd.read_csv(DATA / "audit_grimmer_cases.csv", dtype=str)
    grim_bad = [c.case for c in cases.itertuples() if audit.grim(c.mean, int(c.n)).severity == audit.INCONSISTENT]
    grimmer_bad = [
        c.case for c in cases.itertuples() if audit.grimmer(c.mean, c.sd, int(c.n)).severity == audit.INCONSISTENT
    ]
    assert grim_bad == R_GRIM_INCONSISTENT
    assert grimmer_bad == R_GRIMMER_INCONSISTENT
    assert 0 < len(R_GRIMMER_INCONSISTENT) < len(cases)  # the set discriminates both ways
