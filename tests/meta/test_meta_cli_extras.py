"""`imrstats meta` options beyond the pooled estimate, each against the numbers the library's validation suites pin
to R (metafor 3.8.1, clubSandwich 0.5.8): the reference JSON files under tests/validation/data/ are reused, not
retyped. The input is data/examples/meta/bcg.csv (metafor's dat.bcg; log risk ratios), and for several effects per
study the multilevel validation's CSV files.

- always (k >= 3): Begg and Mazumdar's rank test and trim-and-fill (meta_influence_reference.json);
- --influence: metafor's influence table with the influential flag, and the Baujat data (same file);
- --mods (with --permutations): meta-regression and the permutation test (meta_moderators_reference.json);
- --subgroup: per-subgroup pooling, RevMan's Q-between and the moderator QM (same file);
- --cluster: the three-level model with CR2 SEs and Satterthwaite df (meta_multilevel_reference.json);
- --selection (with --steps): the step-function model and the Vevea and Woods table (meta_selection_reference.json);
- bad option values: one error line, exit 2; --plot writes each option's figure; --help names the options.

Tolerance 1e-6 relative (absolute 1e-9 near 0), as the validation suites. The references sit at the optimum of
each iterative fit. The CLI's main REML fit (and the influence and trim-and-fill refits built on it) keeps metafor's
default control as the pipeline's meta stage does; for the intercept-only model that is within 1e-6 of the optimum
(tests/validation/test_meta_cli_vs_r.py), and DL (no iteration) is checked beside it. The meta-regression and
subgroup models are fitted to the optimum (own_evidence.OPTIMUM_CONTROL).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import PROJECT
from imrstats.cli import build_parser, main
from imrstats.config import load_config, step_seed

BCG = PROJECT / "data" / "examples" / "meta" / "bcg.csv"
DATA = PROJECT / "tests" / "validation" / "data"
REL, ABS = 1e-6, 1e-9


def reference(name: str) -> dict:
    return json.loads((DATA / name).read_text())


INFLUENCE = reference("meta_influence_reference.json")
MODERATORS = reference("meta_moderators_reference.json")
MULTILEVEL = reference("meta_multilevel_reference.json")
SELECTION = reference("meta_selection_reference.json")


def close(ours, theirs, what: str) -> None:
    """Every value within 1e-6 relative (1e-9 absolute), None in a reference matching NaN / None."""
    ours_v = np.atleast_1d(np.asarray([math.nan if v is None else v for v in np.atleast_1d(ours)], dtype=float))
    ref_v = np.atleast_1d(np.asarray([math.nan if v is None else v for v in np.atleast_1d(theirs)], dtype=float))
    assert ours_v.shape == ref_v.shape, f"{what}: {ours_v.shape} vs {ref_v.shape}"
    both_nan = np.isnan(ours_v) & np.isnan(ref_v)
    ok = both_nan | (np.abs(ours_v - ref_v) <= np.maximum(REL * np.abs(ref_v), ABS))
    assert ok.all(), f"{what}: imrstats {ours_v[~ok]} vs R {ref_v[~ok]}"


def run(tmp_path, capsys, *args, code: int = 0, name: str = "meta.json"):
    """main(["meta", ...]) with --json; returns (printed text, the JSON record) or (stdout, stderr) on failure."""
    out = tmp_path / name
    got = main(["meta", *map(str, args), "--json", str(out)])
    captured = capsys.readouterr()
    assert got == code, captured.err
    return captured.out, (json.loads(out.read_text()) if code == 0 else captured.err)


def influence_case(method: str, knha: bool) -> dict:
    return next(c for c in INFLUENCE["cases"] if c["dataset"] == "bcg" and c["method"] == method and c["knha"] is knha)


TEST_FLAGS = {True: [], False: ["--no-knha"]}  # config meta.knha is on


# ---- always: the rank test and trim-and-fill ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["REML", "DL"])
@pytest.mark.parametrize("knha", [True, False])
def test_rank_test_and_trim_and_fill_as_metafor(tmp_path, capsys, method, knha):
    text, got = run(tmp_path, capsys, BCG, "--measure", "RR", "--method", method, *TEST_FLAGS[knha])
    case = influence_case(method, knha)
    rank = got["ranktest"][0]
    close(rank["estimate"], case["ranktest"]["tau"], "Kendall's tau")
    close(rank["p"], case["ranktest"]["p"], "rank test p")
    assert rank["exact"] is True  # no ties in dat.bcg: R's exact p-value
    ref = next(t for t in case["trimfill"] if t["estimator"] == "L0" and t["side_arg"] == "auto")
    tf = got["trimfill"]
    assert (tf["k0"], tf["side"], tf["estimator"]) == (ref["k0"], ref["side"], "L0") == (1, "right", "L0")
    close(tf["se_k0"], ref["se_k0"], "SE of k0")
    close(tf["data"]["yi"], ref["yi"], "filled-in yi")
    close(tf["data"]["vi"], ref["vi"], "filled-in vi")
    assert tf["data"]["filled"] == ref["fill"]
    for field in ("estimate", "se", "tau2", "q", "ci_low", "ci_high", "statistic", "p"):
        close(tf["fit"][field], ref["fit"][field], f"trim and fill {field}")
    assert "k0 = 1 (SE" in text and "Begg and Mazumdar" in text


def test_trim_and_fill_and_rank_test_need_three_studies(tmp_path, capsys):
    two = tmp_path / "two.csv"
    pd.read_csv(BCG).head(2).to_csv(two, index=False)
    text, got = run(tmp_path, capsys, two, "--measure", "RR")
    assert got["ranktest"] == [] and got["trimfill"] is None
    assert "Trim and fill" not in text and "rank correlation" not in text


# ---- --influence --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["REML", "DL"])
@pytest.mark.parametrize("knha", [True, False])
def test_influence_table_and_baujat_as_metafor(tmp_path, capsys, method, knha):
    text, got = run(tmp_path, capsys, BCG, "--measure", "RR", "--method", method, *TEST_FLAGS[knha], "--influence")
    case = influence_case(method, knha)
    rows = pd.DataFrame(got["influence"]["rows"])
    assert rows["slab"].tolist() == pd.DataFrame(got["rows"])["label"].tolist()
    for column in ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "qe_del", "hat", "weight", "dfbetas"):
        close(rows[column].tolist(), case["influence"][column], f"influence {column}")
    assert rows["influential"].tolist() == case["influence"]["influential"]
    baujat = pd.DataFrame(got["influence"]["baujat"])
    close(baujat["x"].tolist(), case["baujat"]["x"], "Baujat x")
    close(baujat["y"].tolist(), case["baujat"]["y"], "Baujat y")
    assert "DFFITS" in got["influence"]["rule"] and "Influence diagnostics" in text
    assert f"{sum(case['influence']['influential'])} of 13 studies influential" in text


def test_influential_study_is_marked(tmp_path, capsys):
    """dat.bcg has no influential trial under REML; one planted outlier with a small variance is, by metafor's
    rule, and the printout marks it."""
    frame = pd.read_csv(BCG)
    frame.loc[len(frame)] = ["Planted", 1990, 400, 600, 50, 950, 30, "random"]
    path = tmp_path / "planted.csv"
    frame.to_csv(path, index=False)
    text, got = run(tmp_path, capsys, path, "--measure", "RR", "--influence")
    rows = pd.DataFrame(got["influence"]["rows"])
    assert rows.set_index("slab").loc["Planted (1990)", "influential"]
    table = text.split("Influence diagnostics", 1)[1]
    line = next(x for x in table.splitlines() if x.strip().startswith("Planted (1990)"))
    assert line.rstrip().endswith("*")
    assert "1 of 14 studies influential" in table


# ---- --mods, --permutations ------------------------------------------------------------------------------


def moderator_fit(mods: str, knha: bool) -> dict:
    return next(
        f
        for f in MODERATORS["fits"]
        if f["data"] == "bcg" and f["mods"] == mods and f["method"] == "REML" and f["knha"] is knha
    )


@pytest.mark.parametrize("mods", ["ablat + year", "alloc", "ablat + alloc"])
@pytest.mark.parametrize("knha", [True, False])
def test_meta_regression_as_metafor(tmp_path, capsys, mods, knha):
    text, got = run(tmp_path, capsys, BCG, "--measure", "RR", *TEST_FLAGS[knha], "--mods", mods)
    ref = moderator_fit(mods, knha)
    model = got["meta_regression"]["model"]
    assert model["knha"] is knha and model["k"] == 13 and len(model["terms"]) == ref["p"]
    for ours, theirs in (
        ("beta", "beta"),
        ("se", "se"),
        ("statistic", "statistic"),
        ("pval", "p_value"),
        ("ci_low", "ci_low"),
        ("ci_high", "ci_high"),
        ("tau2", "tau2"),
        ("se_tau2", "se_tau2"),
        ("qe", "qe"),
        ("qe_p", "qe_p"),
        ("qm", "qm"),
        ("qm_p", "qm_p"),
        ("i2", "i2"),
        ("h2", "h2"),
        ("r2", "r2"),
        ("s2w", "s2w"),
    ):
        close(model[ours], ref[theirs], f"{mods}: {ours}")
    close(model["qm_df"], ref["qm_df"], "QM df")
    ci = {r["quantity"]: r for r in got["meta_regression"]["confint"]}
    close([ci["tau^2 (residual)"]["ci_low"], ci["tau^2 (residual)"]["ci_high"]], ref["confint_tau2"], "tau^2 CI")
    close([ci["I^2 (%) (residual)"]["ci_low"], ci["I^2 (%) (residual)"]["ci_high"]], ref["confint_i2"], "I^2 CI")
    assert f"moderators: {mods}" in text
    assert ("Mixed-effects meta-regression (random effects with moderators); Knapp-Hartung t(" in text) is knha


@pytest.mark.parametrize("knha", [True, False])
def test_exact_permutation_test_as_metafor(tmp_path, capsys, knha):
    """The first 7 trials with one moderator: 2520 distinct permutations, fewer than asked, so the test is exact
    (as metafor's) and agrees to the last digit."""
    seven = tmp_path / "bcg7.csv"
    pd.read_csv(BCG).head(7).to_csv(seven, index=False)
    _, got = run(
        tmp_path, capsys, seven, "--measure", "RR", *TEST_FLAGS[knha], "--mods", "ablat", "--permutations", "3000"
    )
    ref = next(
        p
        for p in MODERATORS["permutest"]
        if p["data"] == "bcg_trials_1_7" and p["mods"] == "ablat" and p["knha"] is knha
    )
    perm = got["meta_regression"]["permutation"]
    assert perm["exact"] is True and perm["iterations"] == ref["iterations"] == 2520
    close(perm["pval"], ref["p_value"], "permutation p")
    close(perm["qm_p"], ref["qm_p"], "permutation QM p")


def test_approximate_permutation_test_is_seeded_from_config(tmp_path, capsys):
    """1000 permutations of dat.bcg (ablat + year): within Monte Carlo error of metafor's 20000 (the validation
    suite's bound), seeded from config seed, and the same seed gives the same p-values."""
    args = [BCG, "--measure", "RR", "--no-knha", "--mods", "ablat + year", "--permutations", "1000"]
    text, got = run(tmp_path, capsys, *args)
    _, again = run(tmp_path, capsys, *args, name="again.json")
    seed = step_seed("cli.meta.permutest", load_config(None))
    perm = got["meta_regression"]["permutation"]
    assert perm["seed"] == got["settings"]["permutation_seed"] == seed and f"seed: {seed}" in text
    assert perm["exact"] is False and perm["iterations"] == 1000
    assert again["meta_regression"]["permutation"]["pval"] == perm["pval"]
    ref = next(p for p in MODERATORS["permutest"] if p["data"] == "bcg" and not p["knha"])
    for ours, theirs in zip([*perm["pval"], perm["qm_p"]], [*ref["p_value"], ref["qm_p"]]):
        bound = 4 * math.sqrt(theirs * (1 - theirs) * (1 / 1000 + 1 / 20000)) + 1 / 1000
        assert abs(ours - theirs) <= bound, (ours, theirs, bound)
    config = tmp_path / "seed.yaml"
    config.write_text("seed: 99\n")
    _, other = run(tmp_path, capsys, *args, "--config", config, name="other.json")
    assert other["meta_regression"]["permutation"]["seed"] == step_seed("cli.meta.permutest", load_config(config))
    assert other["meta_regression"]["permutation"]["seed"] != seed


# ---- --subgroup -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["REML", "DL"])
@pytest.mark.parametrize("knha", [True, False])
def test_subgroups_as_metafor_and_revman(tmp_path, capsys, method, knha):
    text, got = run(
        tmp_path, capsys, BCG, "--measure", "RR", "--method", method, *TEST_FLAGS[knha], "--subgroup", "alloc"
    )
    ref = next(s for s in MODERATORS["subgroups"] if s["method"] == method and s["knha"] is knha)
    table = pd.DataFrame(got["subgroups"]["table"]).set_index("subgroup")
    assert list(table.index) == [g["group"] for g in ref["groups"]]
    for g in ref["groups"]:
        row = table.loc[g["group"]]
        assert row["k"] == g["k"]
        for ours, theirs in (("estimate",) * 2, ("se",) * 2, ("ci_low",) * 2, ("ci_high",) * 2, ("p", "p_value")):
            close(row[ours], g[theirs], f"{g['group']}: {ours}")
        for key in ("tau2", "i2", "q"):
            close(row[key], g[key], f"{g['group']}: {key}")
    qb, qm = got["subgroups"]["q_between"], got["subgroups"]["moderator_test"]
    close(
        [qb["estimate"], qb["df"], qb["p"], qb["i2"]],
        [ref[k] for k in ("q_between", "q_between_df", "q_between_p", "q_between_i2")],
        "Q-between",
    )
    close([qm["estimate"], qm["p"], qm["tau2_common"]], [ref["qm"], ref["qm_p"], ref["tau2_common"]], "QM")
    assert "Q-between (RevMan" in text and "QM (mixed-effects" in text


# ---- --cluster ------------------------------------------------------------------------------------------------


def multilevel_csv(tmp_path, name: str) -> Path:
    """The multilevel validation's CSV as a reviewer would give it: its 'effect' column (the effect's label within
    its study) is dropped, since imrstats meta reads a column named effect as a reported effect size."""
    path = tmp_path / name
    pd.read_csv(DATA / name).drop(columns=["effect"], errors="ignore").to_csv(path, index=False)
    return path


def multilevel_case(dataset: str, method: str, mods: list[str]) -> dict:
    return next(
        c for c in MULTILEVEL["cases"] if c["dataset"] == dataset and c["method"] == method and c["mods"] == mods
    )


@pytest.mark.parametrize(
    "dataset, cluster, method, mods",
    [
        ("konstantopoulos2011", "district", "REML", []),
        ("konstantopoulos2011", "district", "ML", []),
        ("konstantopoulos2011", "district", "REML", ["year"]),
        ("imrs", "study", "REML", []),
        ("imrs", "study", "ML", ["clinician"]),
    ],
)
def test_several_effects_per_study_pool_as_rma_mv_with_cr2(tmp_path, capsys, dataset, cluster, method, mods):
    case = multilevel_case(dataset, method, mods)
    path = multilevel_csv(tmp_path, case["csv"])
    extra = ["--mods", " + ".join(mods)] if mods else []
    text, got = run(tmp_path, capsys, path, "--cluster", cluster, "--method", method, *extra)
    part = got["multilevel"]
    model, robust = part["model"], part["robust"]
    assert (model["k"], model["n_studies"]) == (case["k"], case["n_levels"][0])
    close(model["beta"], case["beta"], "beta")
    close(model["se"], case["se"], "model-based SE")
    close([model["sigma2_study"], model["sigma2_effect"]], case["sigma2"], "sigma^2")
    close(model["q_e"], case["QE"], "Q_E")
    close(model["loglik"], case["logLik"], "log-likelihood")
    for ours, theirs in (
        ("se", "se"),
        ("statistic", "tstat"),
        ("df", "df"),
        ("p", "p"),
        ("ci_low", "ci_lb"),
        ("ci_high", "ci_ub"),
    ):
        close(robust[ours], case["cr2"][theirs], f"CR2 {ours}")
    n = pd.read_csv(path)[cluster].nunique()
    assert f"{case['k']} effects from {n} studies entered" in part["note"] and part["note"] in text
    assert "no row was dropped" in part["note"] and got["settings"]["knha"] is False
    assert "result" not in got and "leave_one_out" not in got  # the parts that assume one effect per study


def test_several_rows_per_study_without_cluster_is_an_error_naming_both_ways_out(tmp_path, capsys):
    _, err = run(tmp_path, capsys, multilevel_csv(tmp_path, "meta_multilevel_imrs.csv"), code=2)
    assert err.count("\n") == 1 and err.startswith("imrstats meta: ")
    assert "the same study twice" in err and "--cluster COLUMN" in err and "one row per study" in err


# ---- --selection ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [None, "0.025,0.1,1"])
def test_selection_model_and_sensitivity_as_metafor(tmp_path, capsys, steps):
    extra = ["--steps", steps] if steps else []
    text, got = run(tmp_path, capsys, BCG, "--measure", "RR", "--selection", *extra)
    want = [0.025, 1] if steps is None else [0.025, 0.1, 1]
    case = next(c for c in SELECTION["cases"] if c["dataset"] == "bcg" and c["steps"] == want)
    part = got["selection"]
    assert part["alternative"] == case["alternative"] == "less"  # the side of the pooled log risk ratio
    assert part["exploratory"] is False and part["steps"] == want
    model = part["model"]
    assert model["k_interval"] == case["k_interval"]
    for ours, theirs in (
        ("estimate", "beta"),
        ("se", "se"),
        ("p", "pval"),
        ("ci_low", "ci_lb"),
        ("ci_high", "ci_ub"),
        ("tau2", "tau2"),
        ("se_tau2", "se_tau2"),
        ("delta", "delta"),
        ("se_delta", "se_delta"),
        ("p_delta", "pval_delta"),
        ("loglik", "ll"),
        ("lrt", "LRT"),
        ("lrt_p", "LRTp"),
    ):
        close(model[ours], case[theirs], f"selection {ours}")
    assert model["lrt_df"] == case["LRTdf"]
    sensitivity = pd.DataFrame(part["sensitivity"]).set_index("pattern")
    for ref in (s for s in SELECTION["sensitivity"] if s["dataset"] == "bcg"):
        row = sensitivity.loc[ref["pattern"]]
        close([row["estimate"], row["se"], row["tau2"]], [ref["beta"], ref["se"], ref["tau2"]], ref["pattern"])
        close(row["change"], ref["beta"] - ref["unadjusted"]["beta"], f"{ref['pattern']}: change")
    assert "likelihood-ratio test of selection" in text and "Vevea and Woods (2005)" in text
    assert "EXPLORATORY" not in text


def test_selection_below_ten_studies_is_labelled_exploratory(tmp_path, capsys):
    eight = tmp_path / "bcg8.csv"
    pd.read_csv(BCG).head(8).to_csv(eight, index=False)
    text, got = run(tmp_path, capsys, eight, "--measure", "RR", "--selection", "--selection-alternative", "two.sided")
    assert got["selection"]["exploratory"] is True and got["selection"]["alternative"] == "two.sided"
    assert text.count("EXPLORATORY (k = 8 < 10)") == 2  # the model and the sensitivity table


# ---- bad option values -----------------------------------------------------------------------------------------


def constant_alloc(tmp_path):
    path = tmp_path / "random_only.csv"
    frame = pd.read_csv(BCG)
    frame.loc[frame["alloc"] == "random"].to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "args, words",
    [
        (["--mods", "latitude"], ["--mods: no column 'latitude'", "ablat"]),
        (["--mods", "ablat * year"], ["--mods", "interactions"]),
        (["--subgroup", "arm"], ["--subgroup: no column 'arm'"]),
        (["--permutations", "100"], ["--permutations", "give --mods"]),
        (["--mods", "ablat", "--permutations", "1"], ["--permutations", ">= 2"]),
        (["--steps", "0.05,1"], ["--steps", "give --selection"]),
        (["--selection", "--steps", "0.5,0.1"], ["--steps", "increase strictly"]),
        (["--selection", "--steps", "a,b"], ["--steps", "separated by commas"]),
        (["--cluster", "ai"], ["--cluster ai: every value occurs once"]),
        (["--cluster", "alloc", "--influence"], ["--cluster", "--influence"]),
        (["--cluster", "alloc", "--method", "DL"], ["--method", "REML or ML"]),
    ],
)
def test_bad_option_values_are_one_line_and_exit_2(tmp_path, capsys, args, words):
    _, err = run(tmp_path, capsys, BCG, "--measure", "RR", *args, code=2)
    assert err.count("\n") == 1 and err.startswith("imrstats meta: "), err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "meta.json").exists()


def test_a_subgroup_column_with_one_level_is_an_error(tmp_path, capsys):
    _, err = run(tmp_path, capsys, constant_alloc(tmp_path), "--measure", "RR", "--subgroup", "alloc", code=2)
    assert err.count("\n") == 1 and "--subgroup alloc: all 7 pooled studies have the value 'random'" in err
    _, err = run(tmp_path, capsys, constant_alloc(tmp_path), "--measure", "RR", "--mods", "alloc", code=2)
    assert err.count("\n") == 1 and "moderator 'alloc' takes one value" in err


def test_a_blank_moderator_names_its_row(tmp_path, capsys):
    frame = pd.read_csv(BCG)
    frame.loc[2, "ablat"] = None
    path = tmp_path / "blank.csv"
    frame.to_csv(path, index=False)
    _, err = run(tmp_path, capsys, path, "--measure", "RR", "--mods", "ablat", code=2)
    assert "row 3 (study 'Rosenthal et al'), column ablat, value '': blank" in err
    frame["ablat"] = frame["ablat"].astype(object)
    frame.loc[2, "ablat"] = "4O"
    frame.to_csv(path, index=False)
    _, err = run(tmp_path, capsys, path, "--measure", "RR", "--mods", "ablat", code=2)
    assert "value '4O': not a number while 12 other rows are numbers" in err


# ---- plots and help ---------------------------------------------------------------------------------------------


def test_plot_writes_each_options_figure_deterministically(tmp_path, capsys):
    args = [BCG, "--measure", "RR", "--influence", "--mods", "ablat", "--subgroup", "alloc"]
    first, second = tmp_path / "plots", tmp_path / "again"
    text, got = run(tmp_path, capsys, *args, "--plot", first)
    run(tmp_path, capsys, *args, "--plot", second, name="again.json")
    names = ["forest", "funnel", "baujat", "bubble", "forest_subgroups"]
    assert sorted(got["plots"]) == sorted(names)
    for name in names:
        data = (first / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data == (second / f"{name}.png").read_bytes(), name
        assert f"wrote {first / name}.png" in text
    _, two = run(
        tmp_path, capsys, BCG, "--measure", "RR", "--mods", "ablat + year", "--plot", tmp_path / "p2", name="two.json"
    )
    assert "bubble" not in two["plots"]  # two continuous moderators: no bubble plot
    _, ml = run(
        tmp_path,
        capsys,
        multilevel_csv(tmp_path, "meta_multilevel_imrs.csv"),
        "--cluster",
        "study",
        "--plot",
        tmp_path / "p3",
        name="ml.json",
    )
    assert sorted(ml["plots"]) == ["forest"]


def test_help_names_every_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["meta", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in (
        "--influence",
        "--mods FORMULA",
        "--permutations N",
        "--subgroup COLUMN",
        "--cluster COLUMN",
        "--selection",
        "--steps P1,P2,...",
        "--selection-alternative",
        "CR2",
        "Satterthwaite",
        "trim-and-fill",
    ):
        assert words in text, words


def test_readme_documents_the_options():
    readme = (PROJECT / "README.md").read_text()
    section = readme.split("## Your own evidence", 1)[1].split("\n## ", 1)[0]
    for option in ("--influence", "--mods", "--permutations", "--subgroup", "--cluster", "--selection", "--steps"):
        assert option in section, option
    assert Path(PROJECT / "tests" / "meta" / "test_meta_cli_extras.py").name in section
