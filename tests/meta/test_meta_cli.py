"""`imrstats meta FILE` on any reviewer's table (imrstats.meta.inputs.read_effects, imrstats.meta.own_evidence):
each input shape, the table's own arm labels in the printout, parity with the pipeline's meta stage on the
curated published rows, bad rows named and counted, --plot. Numbers against metafor (dat.bcg, the risk
difference) are in tests/validation/test_meta_cli_vs_r.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conftest import PROJECT
from imrstats.cli import build_parser, main
from imrstats.config import load_config
from imrstats.data.published import load_published_outcomes
from imrstats.meta.effect_sizes import escalc, log_or_from_ci, smd_from_d_total_n
from imrstats.meta.inputs import SHAPE_FIELDS, read_effects
from imrstats.meta.random_effects import rma
from imrstats.meta.stage import effect_table, outcome_inputs, pool_outcome

PUBLISHED = PROJECT / "data" / "published" / "published_outcomes.csv"
BCG = PROJECT / "data" / "examples" / "meta" / "bcg.csv"
SMD_CSV = PROJECT / "tests" / "validation" / "data" / "meta_smd.csv"
IMR_ARMS = ["n_imr", "mean_imr", "sd_imr", "n_tau", "mean_tau", "sd_tau"]
GENERIC_ARMS = ["n1", "m1", "sd1", "n2", "m2", "sd2"]


def run(tmp_path, capsys, *args, code: int = 0):
    """main(["meta", ...]) with --json; returns (printed text, the JSON record)."""
    out = tmp_path / "meta.json"
    got = main(["meta", *map(str, args), "--json", str(out)])
    captured = capsys.readouterr()
    assert got == code, captured.err
    return captured.out, (json.loads(out.read_text()) if code == 0 else captured.err)


def generic_copy(tmp_path, name="generic.csv"):
    """meta_smd.csv with the generic arm names and no instrument column."""
    frame = pd.read_csv(SMD_CSV).drop(columns=["instrument", "source"])
    frame = frame.rename(columns=dict(zip(IMR_ARMS, GENERIC_ARMS)))
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


# ---- input shapes --------------------------------------------------------------------------------


def test_generic_arm_names_pool_as_the_imr_names_and_print_the_given_labels(tmp_path, capsys):
    imr_text, imr = run(tmp_path, capsys, SMD_CSV)
    path = generic_copy(tmp_path)
    text, got = run(tmp_path, capsys, path, "--arms", "Intervention,Control")
    assert got["result"]["yi"] == imr["result"]["yi"] and got["result"]["estimate"] == imr["result"]["estimate"]
    assert "standardized mean difference (Hedges' g), Intervention minus Control" in text
    assert "n Intervention / Control" in text and got["arms"] == ["Intervention", "Control"]
    assert "IMR" not in text and "TAU" not in text  # the labels follow --arms
    # default labels: group 1 / group 2 for generic names; IMR / TAU only when the table uses the IMR names
    text, _ = run(tmp_path, capsys, path)
    assert "group 1 minus group 2" in text and "IMR" not in text and "TAU" not in text
    assert "IMR minus TAU; positive favours IMR" in imr_text  # meta_smd.csv: IMR names, registry instrument


def test_two_by_two_counts_and_events_per_group_give_metafors_measures(tmp_path, capsys):
    bcg = pd.read_csv(BCG)
    events = pd.DataFrame(
        {"study": bcg["study"], "year": bcg["year"], "e1": bcg["ai"], "n1": bcg["ai"] + bcg["bi"]}
        | {"e2": bcg["ci"], "n2": bcg["ci"] + bcg["di"]}
    )
    events.to_csv(tmp_path / "events.csv", index=False)
    imr_names = bcg.rename(columns={"ai": "events_imr", "ci": "events_tau"})
    imr_names["n_imr"], imr_names["n_tau"] = bcg["ai"] + bcg["bi"], bcg["ci"] + bcg["di"]
    for measure in ("RR", "OR", "RD"):
        _, counts = run(tmp_path, capsys, BCG, "--measure", measure)
        _, per_group = run(tmp_path, capsys, tmp_path / "events.csv", "--measure", measure.lower())
        want = escalc(imr_names, measure)
        assert counts["result"]["yi"] == pytest.approx(want["yi"].tolist(), rel=1e-12)
        assert counts["result"]["vi"] == pytest.approx(want["vi"].tolist(), rel=1e-12)
        assert (
            per_group["result"]["yi"] == counts["result"]["yi"] and per_group["result"]["vi"] == counts["result"]["vi"]
        )
        assert counts["measure"] == {"RR": "log RR", "OR": "log OR", "RD": "RD"}[measure]
    assert main(["meta", str(BCG)]) == 2  # counts need a measure: said, not guessed
    assert "2x2 counts need a measure: RR (risk ratio), OR (odds ratio) or RD" in capsys.readouterr().err


def test_zero_cells_get_metafors_correction_and_say_so(tmp_path, capsys):
    path = tmp_path / "zero.csv"
    path.write_text("study,ai,bi,ci,di\nA,0,30,4,27\nB,3,37,7,31\nC,5,20,5,20\n")
    text, got = run(tmp_path, capsys, path, "--measure", "OR")
    assert got["result"]["yi"][0] == pytest.approx(math.log((0.5 * 27.5) / (30.5 * 4.5)), rel=1e-12)
    row = next(r for r in got["rows"] if r["study"] == "A")
    assert "1/2 added to every cell" in row["assumption"] and "1/2 added to every cell" in text


def test_reported_effects_with_se_or_ci(tmp_path, capsys):
    path = tmp_path / "reported.csv"
    path.write_text(
        "study,effect,se,ci_low,ci_high,ci_level\n"
        "A,0.30,0.10,,,\n"  # effect + SE
        "B,0.20,,-0.1290,0.5290,0.95\n"  # effect + 95% CI
        "C,0.10,,-0.0645,0.2645,90\n"  # a 90% CI written as a percent
        "D,0.40,,0.0080,0.7920,\n"  # no ci_level: 95% assumed, and said
    )
    text, got = run(tmp_path, capsys, path, "--measure", "SMD")
    z95, z90 = 1.959963984540054, 1.6448536269514722
    assert got["result"]["vi"] == pytest.approx(
        [0.01, (0.658 / (2 * z95)) ** 2, (0.329 / (2 * z90)) ** 2, (0.784 / (2 * z95)) ** 2], rel=1e-12
    )
    rows = {r["study"]: r for r in got["rows"]}
    assert rows["A"]["conversion"] == "effect + SE" and rows["B"]["conversion"] == "effect + CI"
    assert "95% CI assumed (no ci_level)" in rows["D"]["assumption"] and "90% CI" in rows["C"]["assumption"]
    assert "taken to be a SMD" in rows["A"]["assumption"]
    # effects only, no --measure: "effects as given"
    path.write_text("study,effect,se\nA,0.3,0.1\nB,0.2,0.15\n")
    text, _ = run(tmp_path, capsys, path)
    assert "effects as given (effect, se)" in text


def test_ratio_with_its_ci_is_pooled_on_the_log_scale(tmp_path, capsys):
    path = tmp_path / "or.csv"
    path.write_text("study,effect,ci_low,ci_high\nA,0.8,0.5,1.28\nB,0.6,0.4,0.9\nC,1.1,0.7,1.73\n")
    _, got = run(tmp_path, capsys, path, "--measure", "OR")
    want = [log_or_from_ci(e, lo, hi) for e, lo, hi in ((0.8, 0.5, 1.28), (0.6, 0.4, 0.9), (1.1, 0.7, 1.73))]
    assert got["result"]["yi"] == pytest.approx([w.yi for w in want], rel=1e-12)
    assert got["result"]["vi"] == pytest.approx([w.vi for w in want], rel=1e-12)
    assert got["back_transformed"]["estimate"] == pytest.approx(math.exp(got["result"]["estimate"]), rel=1e-12)
    # a ratio's SE is ambiguous: refused, named
    path.write_text("study,effect,se\nA,0.8,0.2\nB,0.6,0.2\n")
    _, err = run(tmp_path, capsys, path, "--measure", "RR", code=2)
    assert "2 of 2 rows cannot be used" in err and "column se" in err and "ratio's SE is ambiguous" in err


def test_curated_conversions_are_the_pipelines_one_path_with_generic_names(tmp_path, capsys):
    """d + N, p + n, eta^2 and arm summaries, named per row by a conversion column: the same effects as the
    stage's effect_table on the IMR-named rows, each row's assumption in the record."""
    rows = load_published_outcomes()
    picked = rows.loc[
        rows["conversion"].isin(["smd_from_arms", "d_total_n_equal_split", "d_from_p_two_sided", "d_from_eta_squared"])
        & (rows["instrument"] == "imrs_client")
    ]
    stage = effect_table(picked)
    generic = picked.rename(
        columns={"n_imr": "n1", "mean_imr": "m1", "sd_imr": "sd1", "n_tau": "n2", "mean_tau": "m2", "sd_tau": "sd2"}
        | {"sign_favouring_imr": "sign", "se_imr": "se1", "se_tau": "se2"}
    )
    generic["study"] = generic["study"] + " " + generic["timepoint"]  # one label per row
    path = tmp_path / "curated.csv"
    generic.drop(columns=["quote", "note"]).to_csv(path, index=False)
    _, got = run(tmp_path, capsys, path)
    assert got["result"]["yi"] == stage["yi"].tolist() and got["result"]["vi"] == stage["vi"].tolist()
    assert [r["assumption"] for r in got["rows"]] == stage["assumption"].tolist()
    assert [r["conversion"] for r in got["rows"]] == picked["conversion"].tolist()
    d_row = next(r for r in got["rows"] if r["conversion"] == "d_total_n_equal_split")
    src = picked.loc[picked["conversion"] == "d_total_n_equal_split"].iloc[0]
    assert (
        d_row["yi"] == smd_from_d_total_n(src["effect"], src["n_total"]).yi and "split equally" in d_row["assumption"]
    )


def test_mixed_generic_rows_pool_on_one_scale(tmp_path, capsys):
    path = tmp_path / "mixed.csv"
    path.write_text(
        "study,n1,m1,sd1,n2,m2,sd2,effect,se,yi,vi\nA,40,52,9,41,49,10,,,,\nB,,,,,,,0.25,0.2,,\nC,,,,,,,,,0.1,0.03\n"
    )
    _, got = run(tmp_path, capsys, path, "--no-knha")
    want = escalc(pd.DataFrame({"study": ["A"]} | dict(zip(IMR_ARMS, [[40], [52], [9], [41], [49], [10]]))), "SMD")
    assert got["result"]["yi"] == [float(want["yi"].iloc[0]), 0.25, 0.1]
    assert [r["conversion"] for r in got["rows"]] == ["arm summaries", "effect + SE", "as given (yi, vi)"]
    assert got["measure"] == "SMD" and got["settings"]["knha"] is False and got["result"]["knha"] is False


def test_outcome_selection_as_the_stage_on_a_users_table(tmp_path, capsys):
    """--outcome on a reviewer's table with instrument and timepoint columns: one row per study by the config's
    timepoint preference; the rows left aside printed with their reasons and counted."""
    path = tmp_path / "outcomes.csv"
    path.write_text(
        "study,year,instrument,timepoint,effect,se\n"
        "A,2001,hope,post,0.5,0.2\nA,2001,hope,fu12,0.3,0.2\nB,2003,hope,fu12,0.2,0.1\n"
        "B,2003,gaf_f,fu12,0.9,0.3\nC,2002,hope,week 10,0.1,0.1\n"
    )
    text, got = run(tmp_path, capsys, path, "--outcome", "hope")
    assert got["result"]["k"] == 2 and got["result"]["yi"] == [0.3, 0.2]  # fu12 preferred; publication order
    reasons = {(r["study"], r["timepoint"]): r["reason"] for r in got["rows"]}
    assert reasons[("A", "post")].startswith("another row of this study is preferred")
    assert reasons[("C", "week 10")] == "timepoint 'week 10' not in the preference list"
    assert reasons[("B", "fu12")] in ("", "another outcome")
    assert "Rows not pooled (2)" in text and "1 rows of other outcomes" in text
    assert main(["meta", str(path), "--outcome", "psp"]) == 2
    assert "no rows with instrument 'psp'" in capsys.readouterr().err


# ---- the curated published rows: no longer failing, and the pipeline's numbers ----------------------


@pytest.mark.parametrize("knha", [None, True, False])
def test_published_rows_give_the_pipelines_pooled_numbers_exactly(tmp_path, capsys, knha):
    """`imrstats meta published_outcomes.csv --outcome imrs_client` pools the rows the stage pools, with the
    stage's method and knha (config meta.knha unless --knha / --no-knha), to the last bit."""
    flag = [] if knha is None else ["--knha" if knha else "--no-knha"]
    text, got = run(tmp_path, capsys, PUBLISHED, "--outcome", "imrs_client", *flag)
    s = load_config(None)["meta"]
    data = outcome_inputs(load_published_outcomes(), s)["imrs_client"]
    stage = pool_outcome(data, method=s["method"], knha=s["knha"] if knha is None else knha, level=s["level"])
    fit = stage["fit"]
    assert sorted(r["study"] for r in got["rows"] if r["included"]) == sorted(data["study"])
    assert got["result"]["slab"] == list(fit.slab)  # the same labels, in the same (publication) order
    assert got["result"]["yi"] == list(fit.yi) and got["result"]["vi"] == list(fit.vi)
    for key in ("estimate", "se", "statistic", "p", "ci_low", "ci_high", "tau2", "se_tau2", "i2", "h2", "q", "q_p"):
        assert got["result"][key] == getattr(fit, key), key
    assert got["result"]["knha"] is (s["knha"] if knha is None else knha)
    assert got["prediction"]["pi_low"] == fit.predict().extra["pi_low"]
    assert got["prediction"]["pi_high"] == fit.predict().extra["pi_high"]
    for part, columns in (
        ("heterogeneity", ["estimate", "ci_low", "ci_high", "p"]),
        ("leave_one_out", ["estimate", "se", "ci_low", "ci_high", "p", "tau2", "i2"]),
        ("egger", ["estimate", "se", "statistic", "p"]),
    ):
        mine = pd.DataFrame(got[part])[columns].astype(float).to_numpy()
        assert np.array_equal(mine, stage[part][columns].astype(float).to_numpy(), equal_nan=True), part
    cumulative = pd.DataFrame(got["cumulative"]["rows"])
    assert got["cumulative"]["order"].startswith("by publication year")
    assert cumulative["added"].tolist() == stage["cumulative"]["added"].tolist()
    for column in ("estimate", "ci_low", "ci_high", "p"):
        assert cumulative[column].tolist() == stage["cumulative"][column].tolist()
    source = "config meta.knha" if knha is None else ("--knha" if knha else "--no-knha")
    assert f"Knapp-Hartung: {'on' if got['result']['knha'] else 'off'} ({source})" in text


def test_published_rows_no_longer_fail_and_say_what_was_left_aside(tmp_path, capsys):
    text, got = run(tmp_path, capsys, PUBLISHED, "--outcome", "imrs_client")
    assert got["input"]["rows_read"] == 47 and got["input"]["left_aside"] == ["40 rows of other outcomes"]
    assert "positive favours IMR" in text and "Rows not pooled (3)" in text
    assert "row 30 Jensen 2019 (imrs_client, fu12, itt): use 'sensitivity' is not in meta.uses" in text
    levitt = next(r for r in got["rows"] if r["study"] == "Levitt 2009" and r["included"])
    assert levitt["conversion"] == "d_total_n_equal_split" and "split equally" in levitt["assumption"]
    for outcome in ("functioning", "hope", "hospitalisation"):  # every configured outcome pools (k = 1 included)
        assert main(["meta", str(PUBLISHED), "--outcome", outcome]) == 0, capsys.readouterr().err
    capsys.readouterr()
    # without --outcome: one clear line (SMD, MD and log OR rows cannot be pooled together) pointing to --outcome
    assert main(["meta", str(PUBLISHED)]) == 2
    err = capsys.readouterr().err
    assert "12 of 47 rows cannot be used" in err and "cannot be pooled with SMD" in err and "--outcome" in err


# ---- rows that cannot be used ---------------------------------------------------------------------


BAD = (
    "study,n1,m1,sd1,n2,m2,sd2\n"
    "A,40,52,9,41,49,10\n"
    "B,30,50,-1,32,47,11\n"  # a negative SD
    "C,25,48,9,25,44,10\n"
    "D,20,47,,21,45,9\n"  # a blank SD
    "E,35,51,high,33,48,10\n"  # text in a number column
)


def test_bad_rows_are_named_and_counted_and_stop_the_run(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(BAD)
    assert main(["meta", str(path), "--json", str(tmp_path / "never.json")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"imrstats meta: {path}: 3 of 5 rows cannot be used")
    assert "row 2 (study 'B'), column sd1, value '-1': rule: an SD must be >= 0" in lines[0]
    assert "row 4 (study 'D'), column sd1, value '': blank" in lines[0]
    assert "row 5 (study 'E'), column sd1, value 'high': rule: not a finite number" in lines[0]
    assert "--skip-bad-rows" in lines[0] and not (tmp_path / "never.json").exists()


def test_skip_bad_rows_pools_the_rest_and_lists_each_row_left_out(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(BAD)
    text, got = run(tmp_path, capsys, path, "--skip-bad-rows")
    assert got["result"]["k"] == 2 and got["result"]["slab"] == ["A", "C"]
    assert len(got["input"]["skipped_bad_rows"]) == 3
    assert text.count(": cannot be used: row ") == 3 and "(3 of them left out by --skip-bad-rows" in text
    assert "row 5 E: cannot be used: row 5 (study 'E'), column sd1, value 'high': rule: not a finite number" in text
    reasons = {r["study"]: r["reason"] for r in got["rows"]}
    assert reasons["B"].startswith("cannot be used: row 2 (study 'B'), column sd1") and reasons["A"] == ""


def test_library_reader_records_every_row(tmp_path):
    frame = pd.read_csv(pd.io.common.StringIO(BAD), dtype=str)
    effects = read_effects(frame, skip_bad_rows=True, path="bad.csv")
    assert effects.k == 2 and effects.rows["problem"].ne("").sum() == 3 and len(effects.rows) == 5
    assert effects.rows.loc[effects.rows["study"] == "B", "problem_rule"].item() == "an SD must be >= 0"
    assert effects.order is None and effects.order_name == "in file order (no year column)"


# ---- plots, help ------------------------------------------------------------------------------------


def test_plot_writes_forest_and_funnel_pngs_deterministically(tmp_path, capsys):
    first, second = tmp_path / "plots", tmp_path / "again"
    text, got = run(tmp_path, capsys, BCG, "--measure", "RR", "--plot", first)
    run(tmp_path, capsys, BCG, "--measure", "RR", "--plot", second)
    for name in ("forest.png", "funnel.png"):
        data = (first / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
        assert data == (second / name).read_bytes()
        assert f"wrote {first / name}" in text
    assert got["plots"] == {"forest": str(first / "forest.png"), "funnel": str(first / "funnel.png")}
    (tmp_path / "a_file").write_text("x")
    assert main(["meta", str(BCG), "--measure", "RR", "--plot", str(tmp_path / "a_file")]) == 2
    assert "--plot names a file" in capsys.readouterr().err


def test_help_lists_every_input_shape_with_its_columns(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["meta", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for needed in SHAPE_FIELDS.values():
        assert ", ".join(needed) in text, needed
    for words in ("--arms", "--knha, --no-knha", "config meta.knha", "--skip-bad-rows", "--plot DIR", "RD"):
        assert words in text, words


def test_knapp_hartung_applies_to_random_effects_only(tmp_path, capsys):
    path = generic_copy(tmp_path)
    _, got = run(tmp_path, capsys, path, "--method", "EE")
    want = rma(got["result"]["yi"], got["result"]["vi"], method="EE")
    assert got["result"]["estimate"] == want.estimate and got["result"]["knha"] is False
