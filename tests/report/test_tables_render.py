"""The report's table renderer (report.html.table_html), its labels (report.labels) and the p-value format."""

from __future__ import annotations

import math
import re
from html import unescape

import numpy as np
import pandas as pd
import pytest

from imrstats.report import html as report_html
from imrstats.report.format import format_ci, format_fixed, format_number, format_p, is_p_column
from imrstats.report.html import FOOTNOTE_CHARS, table_html
from imrstats.report.labels import LABELS, column_label

MINUS = "\u2212"


def headers(html: str) -> list[str]:
    return [unescape(re.sub(r"<[^>]+>", "", h)) for h in re.findall(r"<th\b[^>]*>.*?</th>", html, re.S)]


def body_rows(html: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", html.split("<tbody>", 1)[1], re.S)
    return [[unescape(c) for c in re.findall(r"<td\b[^>]*>(.*?)</td>", r, re.S)] for r in rows]


def estimates(**extra) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "outcome": ["gaf_f", "psp"],
            "timepoint": ["post", "fu12"],
            "estimate": [0.25, -1.5],
            "se": [0.14, 0.9],
            "ci_low": [-0.05, -3.2],
            "ci_high": [0.51, 0.2],
            "df": [91.43, 60.0],
            "p": [0.0004, 0.049],
            **extra,
        }
    )


# ------------------------------------------------------------------------------------------------ p-values


@pytest.mark.parametrize(
    ("p", "shown"),
    [
        (0.0004, "< 0.001"),
        (0.00099, "< 0.001"),
        (0.001, "0.001"),
        (0.0042, "0.004"),
        (0.03, "0.03"),
        (0.0312, "0.03"),
        (0.049, "0.049"),
        (0.0499, "0.0499"),
        (0.052, "0.052"),
        (0.05, "0.05"),
        (0.27, "0.27"),
        (1.0, "1.00"),
    ],
)
def test_format_p_reads_as_papers_print_it(p, shown):
    assert format_p(p) == shown


def test_format_p_never_hides_the_side_of_005():
    for p in np.linspace(0.040, 0.060, 401):
        shown = format_p(p)
        assert shown != "0.05" or p == 0.05
        if shown[:1].isdigit():
            assert (float(shown) < 0.05) == (p < 0.05) or float(shown) == 0.05 == round(p, 4)


def test_format_p_missing_and_the_callers_reading():
    assert format_p(math.nan) == "" and format_p(None, missing="NA") == "NA"
    # callers write "p < 0.001" for the first form and "p = x" for the others (they test the first character)
    assert format_p(1e-9)[:1] == "<" and format_p(0.2)[:1] != "<"


def test_interval_ends_keep_their_decimals():
    """The ends of an interval are printed alike: a bound near zero reads 0.00, not 0.0018, and never -0.00;
    a lone small number keeps its significant figures."""
    assert format_ci(0.0018, 0.6) == "[0.00, 0.60]" and format_ci(-0.0004, 0.2) == "[0.00, 0.20]"
    assert format_fixed(-0.056, 1) == "-0.1" and format_fixed(float("nan")) == "NA"
    assert format_number(0.0018) == "0.0018"
    cell = table_html(pd.DataFrame({"estimate": [0.30], "ci_low": [0.0018], "ci_high": [0.6]}), digits=2)
    assert "0.30 (0.00 to 0.60)" in unescape(cell)


def test_a_cell_written_as_text_is_shown_as_it_is_not_parsed():
    frame = pd.DataFrame(
        {"quantity": ["bias", "limits"], "estimate": [0.5, ""], "ci_low": [0.1, ""], "ci_high": [0.9, ""]}
    )
    cells = unescape(table_html(frame, digits=2))
    assert "0.50 (0.10 to 0.90)" in cells  # the numeric row; the text row renders without an error


def test_p_columns():
    for name in ("p", "p_holm", "q_p", "irr_p", "freq_p_two_sided", "p raw", "p (IRR)"):
        assert is_p_column(name), name
    for name in ("P(mu > 0)", "prob_gt_0_with", "n_params", "zero_part", "pi_low"):
        assert not is_p_column(name), name


# ------------------------------------------------------------------------------------------------ labels


def test_labels_of_the_canonical_columns():
    assert column_label("estimate") == "Estimate" and column_label("se") == "SE" and column_label("df") == "df"
    assert column_label("fmi") == "Fraction of missing information"
    assert column_label("riv") == "Relative increase in variance"
    assert column_label("lambda") == "Proportion of variance due to missingness"
    assert column_label("df_complete") == "Complete-data df" and column_label("md_se") == "SE of mean difference"
    assert column_label("sd_divided_by") == "SD the difference is divided by"
    assert column_label("p_holm") == "p (Holm)" and column_label("i2") == "I²" and column_label("tau") == "tau"


def test_arm_labels_come_from_the_name_not_from_a_list():
    assert column_label("n_imr") == "n (IMR)" and column_label("n_tau") == "n (TAU)"
    assert column_label("itt_post_mean_imr") == "ITT post: mean (IMR)"
    assert column_label("cc_fu12_sd_tau") == "CC fu12: SD (TAU)"
    assert column_label("mean_placebo") == "Mean (Placebo)" and column_label("n_randomised_active") == (
        "n randomised (Active)"
    )
    assert column_label("n_drug", arms=["Drug", "Usual care"]) == "n (Drug)"
    assert "IMR" not in column_label("mean_active") and "TAU" not in column_label("n_placebo")
    # a parameter's summary is not an arm
    assert column_label("tau_mean") == "tau: mean" and column_label("mu_new_hpd_low") == "mu (new study): HPD low"


def test_generic_fallback_and_human_names():
    assert column_label("bed_days") == "Bed days" and column_label("gaf_ci_width") == "GAF CI width"
    assert column_label("n_something_new") == "n something new"
    assert column_label("model A vs model B") == "Model A vs model B"  # a section's own header: capitalised only
    assert column_label("LS mean IMR SE") == "LS mean IMR SE" and column_label("p (IRR)") == "p (IRR)"


def test_every_exact_label_is_a_label():
    assert all(label.strip() and "_" not in label for label in LABELS.values())


# ------------------------------------------------------------------------------------------------ table_html


def test_estimate_and_ci_in_one_cell_with_the_level():
    html = table_html(estimates())
    heads = headers(html)
    assert heads[:3] == ["Outcome", "Timepoint", "Estimate (95% CI)"]
    assert "CI low" not in heads and "CI high" not in heads
    assert body_rows(html)[0][2] == f"0.250 ({MINUS}0.050 to 0.510)"
    assert body_rows(table_html(estimates(), digits=2))[1][2] == f"{MINUS}1.50 ({MINUS}3.20 to 0.20)"
    assert "Estimate (90% CI)" in headers(table_html(estimates(), level=0.9))


def test_prefixed_and_suffixed_interval_families():
    frame = pd.DataFrame(
        {
            "study": ["A"],
            "estimate_with": [0.3],
            "ci_low_with": [0.1],
            "ci_high_with": [0.5],
            "irr": [1.2],
            "irr_ci_low": [0.9],
            "irr_ci_high": [1.6],
            "mu_mean": [0.2],
            "mu_low": [-0.1],
            "mu_high": [0.4],
            "pi_low": [-0.6],
            "pi_high": [0.9],
            "mu_new_low": [-0.7],
            "mu_new_high": [1.1],
        }
    )
    html = table_html(frame, digits=2)
    assert headers(html) == [
        "Study",
        "Estimate (95% CI), with",
        "IRR (95% CI)",
        "mu: mean (95% CrI)",
        "95% PI",
        "mu (new study): 95% CrI",
    ]
    assert body_rows(html)[0][1:] == [
        "0.30 (0.10 to 0.50)",
        "1.20 (0.90 to 1.60)",
        f"0.20 ({MINUS}0.10 to 0.40)",
        f"{MINUS}0.60 to 0.90",
        f"{MINUS}0.70 to 1.10",
    ]


def test_a_sections_own_ci_columns_merge_with_the_column_before():
    frame = pd.DataFrame({"quantity": ["diff"], "IMR - TAU": [1.0], "90% CI low": [0.5], "90% CI high": [1.5]})
    html = table_html(frame, digits=1)
    assert headers(html) == ["Quantity", "IMR - TAU (90% CI)"] and body_rows(html)[0][1] == "1.0 (0.5 to 1.5)"


def test_p_df_and_whole_numbers():
    frame = estimates(df_complete=[190.0, 190.0], n=[198.0, np.nan], n_imr=[99, 98], k=[4.0, 3.0])
    row = dict(zip(headers(table_html(frame)), body_rows(table_html(frame))[0]))
    assert row["p"] == "< 0.001" and body_rows(table_html(frame))[1][5] == "0.049"
    assert row["df"] == "91.4" and row["Complete-data df"] == "190"
    assert row["n"] == "198" and row["n (IMR)"] == "99" and row["k"] == "4"
    assert body_rows(table_html(frame))[1][headers(table_html(frame)).index("n")] == ""
    # a count column that does not hold whole numbers keeps its decimals
    assert "2.500" in table_html(pd.DataFrame({"q": ["a"], "n": [2.5]}))


def test_mean_and_its_se_in_one_cell():
    frame = pd.DataFrame({"outcome": ["x"], "itt_post_mean_imr": [46.42], "itt_post_se_imr": [1.208]})
    html = table_html(frame, digits=2)
    assert headers(html) == ["Outcome", "ITT post: mean (SE), IMR"] and body_rows(html)[0][1] == "46.42 (1.21)"


def test_long_text_columns_become_numbered_footnotes():
    long_a, long_b = "a" * (FOOTNOTE_CHARS + 5) + " first", "b" * (FOOTNOTE_CHARS + 5) + " second"
    frame = estimates(method=["MI-MMRM", "ANCOVA"], notes=[long_a, long_b], reason=["short", "short too"])
    html = table_html(frame)
    assert "Method: [1] MI-MMRM; [2] ANCOVA" in html
    assert [r[-3:] for r in body_rows(html)] == [["[1]", "[3]", "short"], ["[2]", "[4]", "short too"]]
    assert f"[3] Notes: {long_a}" in html and f"[4] Notes: {long_b}" in html
    # one long text for every row: shown once under the table, its column dropped
    same = table_html(estimates(notes=[long_a, long_a]))
    assert "Notes" not in headers(same) and same.count(long_a) == 1


def test_empty_columns_are_named_not_silently_dropped():
    html = table_html(estimates(threshold=[np.nan, np.nan]))
    assert "Threshold" not in headers(html) and "No value in any row (not shown): Threshold." in html


def test_html_in_cells_and_headers_is_escaped():
    frame = pd.DataFrame({"<b>x</b>": ["<script>alert(1)</script>"], "p": [0.2]})
    html = table_html(frame, caption="a < b & c")
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "a &lt; b &amp; c" in html


def test_numbers_right_and_text_left():
    html = table_html(estimates())
    first_row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", html, re.S).group(1)
    classes = re.findall(r"<td( class='t')?>", first_row)
    assert classes[:2] == [" class='t'", " class='t'"] and all(c == "" for c in classes[2:])


def test_booleans_and_mixed_text():
    html = table_html(pd.DataFrame({"check": ["a", "b"], "passed": [True, False]}))
    assert [r[1] for r in body_rows(html)] == ["yes", "no"]


def test_wide_tables_are_split_with_the_identifiers_repeated(monkeypatch):
    frame = pd.DataFrame({"outcome": ["gaf_f"], **{f"value_{i}": [123.456 + i] for i in range(40)}})
    html = table_html(frame)
    parts = html.count("<table")
    assert parts > 1 and html.count("class='part'") == parts
    shown = [h for h in headers(html) if h != "Outcome"]
    assert sorted(shown) == sorted(column_label(f"value_{i}") for i in range(40))  # every column once
    assert headers(html).count("Outcome") == parts
    monkeypatch.setattr(report_html, "MAX_TABLE_PX", 10**6)
    assert table_html(frame).count("<table") == 1


def test_a_table_that_fits_is_one_table():
    assert table_html(estimates()).count("<table") == 1


def test_deterministic_and_the_frame_untouched():
    frame = estimates(method=["MI-MMRM", "ANCOVA"], notes=["x" * 80, "y" * 80])
    before = frame.copy()
    assert table_html(frame) == table_html(frame.copy())
    pd.testing.assert_frame_equal(frame, before)


def test_empty_frame():
    html = table_html(pd.DataFrame(columns=["outcome", "estimate"]), caption="Nothing")
    assert "<table" in html and "Nothing" in html and body_rows(html) == []
