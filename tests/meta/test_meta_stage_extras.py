"""The meta stage's influence, trim-and-fill and multilevel tables (meta_influence, meta_trimfill, meta_multilevel)
and their lines in the section.

The multilevel group of client- and clinician-rated IMRS pools exactly the rows of the multilevel validation's
data (tests/validation/data/meta_multilevel_imrs.csv) and gives R's numbers there (rma.mv + clubSandwich CR2,
meta_multilevel_reference.json; 1e-6 relative). Influence and trim-and-fill are the library's (pinned to metafor in
tests/validation/test_meta_influence_vs_r.py) on each pooled outcome's main model. With meta.multilevel off, or
any setting of the new keys, every other table is unchanged to the last bit.
"""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from conftest import PROJECT
from imrstats.config import section_settings
from imrstats.data.published import load_published_outcomes
from imrstats.errors import SettingsError
from imrstats.meta.influence import influence, trimfill
from imrstats.meta.random_effects import rma
from imrstats.meta.stage import multilevel_rows, outcome_inputs, run_meta_stage, select_outcome_rows
from imrstats.pipeline.registry import with_section

DATA = PROJECT / "tests" / "validation" / "data"
REL, ABS = 1e-6, 1e-9
NEW_TABLES = ("meta_influence", "meta_trimfill", "meta_multilevel")


def close(ours, theirs, what: str) -> None:
    ours_v = np.atleast_1d(np.asarray(ours, dtype=float))
    ref_v = np.atleast_1d(np.asarray([math.nan if v is None else v for v in np.atleast_1d(theirs)], dtype=float))
    ok = (np.isnan(ours_v) & np.isnan(ref_v)) | (np.abs(ours_v - ref_v) <= np.maximum(REL * np.abs(ref_v), ABS))
    assert ours_v.shape == ref_v.shape and ok.all(), f"{what}: imrstats {ours_v} vs R {ref_v}"


def _closed(result):
    for fig in result.figures.values():
        plt.close(fig)
    return result


@pytest.fixture(scope="module")
def stage():
    result = with_section(run_meta_stage({}, None))
    yield result
    _closed(result)


@pytest.fixture(scope="module")
def stage_without_multilevel():
    return _closed(run_meta_stage({}, {"multilevel": False}))


def test_the_imrs_group_pools_the_validated_rows_and_gives_rma_mv_and_cr2(stage):
    table = stage.tables["meta_multilevel"]
    imrs = table.loc[table["outcome_label"] == "imrs"].set_index("analysis")
    pinned = pd.read_csv(DATA / "meta_multilevel_imrs.csv")
    model = imrs.loc["multilevel, model-based SE (Wald z)"]
    robust = imrs.loc["multilevel, CR2 cluster-robust (Satterthwaite df)"]
    assert sorted(int(r) for r in model["rows"].split(", ")) == sorted(pinned["row"])  # the CSV lines pooled
    assert (int(model["k"]), int(model["n_studies"])) == (9, 5)
    ref = json.loads((DATA / "meta_multilevel_reference.json").read_text())
    case = next(c for c in ref["cases"] if c["dataset"] == "imrs" and c["method"] == "REML" and not c["mods"])
    close(model["estimate"], case["beta"], "beta")
    close(model["se"], case["se"], "model-based SE")
    close(model["p"], case["pval"], "model-based p")
    close([model["sigma2_study"], model["sigma2_effect"]], case["sigma2"], "sigma^2")
    for ours, theirs in (("se", "se"), ("df", "df"), ("p", "p"), ("ci_low", "ci_lb"), ("ci_high", "ci_ub")):
        close(robust[ours], case["cr2"][theirs], f"CR2 {ours}")
    assert "9 effects from 5 studies entered" in model["notes"] and "no row was dropped" in model["notes"]
    assert "CR2" in robust["method"] and "Satterthwaite" in robust["method"]


def test_each_outcome_pools_every_row_beside_its_main_analysis(stage):
    table = stage.tables["meta_multilevel"]
    estimators = stage.tables["meta_estimators"]
    for label in stage.record["settings"]["outcomes"]:
        rows = table.loc[table["outcome_label"] == label].set_index("analysis")
        main = rows.loc["main analysis (one row per study)"]
        want = estimators.loc[
            (estimators["outcome_label"] == label) & estimators["estimator"].isin(["REML", "none"])
        ].iloc[0]
        assert main["estimate"] == want["estimate"] and main["ci_low"] == want["ci_low"]
        if label == "hospitalisation":  # one study, one row: nothing to nest
            assert rows.loc["multilevel", "notes"].startswith("not fitted: no study gives more than one row")
            continue
        robust = rows.loc["multilevel, CR2 cluster-robust (Satterthwaite df)"]
        assert robust["k"] > main["k"] and robust["n_studies"] == main["k"]
        assert robust["df"] > 0 and "Jensen 2019" in robust["effects"]
    client = table.loc[(table["outcome_label"] == "imrs_client") & table["analysis"].str.startswith("multilevel")]
    assert set(client["k"]) == {5} and "Jensen 2019: imrs_client / post" in client["effects"].iloc[0]


def test_influence_and_trim_and_fill_of_each_pooled_outcome(stage):
    inputs = outcome_inputs(load_published_outcomes(None), None)
    s = section_settings("meta", None)
    infl, filled = stage.tables["meta_influence"], stage.tables["meta_trimfill"]
    for label, data in inputs.items():
        mine_i = infl.loc[infl["outcome_label"] == label].reset_index(drop=True)
        mine_t = filled.loc[filled["outcome_label"] == label].reset_index(drop=True)
        if len(data) < 3:
            assert mine_i["note"].iloc[0] == f"not computed: k = {len(data)} (needs k >= 3)"
            assert math.isnan(mine_t["estimate"].iloc[0]) and "needs k >= 3" in mine_t["notes"].iloc[0]
            continue
        fit = rma(
            data["yi"],
            data["vi"],
            method=s["method"],
            knha=s["knha"],
            threshold=1e-10,
            maxiter=1000,
            slab=list(data["study"]),
        )
        want = influence(fit)
        for column in ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "hat", "weight", "dfbetas"):
            close(mine_i[column], want[column], f"{label} {column}")
        assert mine_i["influential"].tolist() == want["influential"].tolist()
        assert "influence.rma.uni" in mine_i["method"].iloc[0]
        tf = trimfill(fit)
        assert mine_t["quantity"].tolist() == [
            "k0 (studies estimated missing)",
            "pooled effect (trim and fill)",
            "pooled effect (observed studies)",
        ]
        assert mine_t["estimate"].iloc[0] == tf.k0 and mine_t["side"].iloc[0] == tf.side
        close(mine_t["estimate"].iloc[1], tf.fit.estimate, f"{label} filled estimate")
    client = infl.loc[infl["outcome_label"] == "imrs_client"].set_index("study")
    assert bool(client.loc["Jensen 2019", "influential"])  # the 12-month complete-case effect below the others


def test_new_settings_change_no_other_table(stage, stage_without_multilevel):
    assert "meta_multilevel" not in stage_without_multilevel.tables
    assert "multilevel" not in stage_without_multilevel.record
    for name, table in stage.tables.items():
        if name == "meta_multilevel":
            continue
        pd.testing.assert_frame_equal(table, stage_without_multilevel.tables[name], check_exact=True)
    only = _closed(run_meta_stage({}, {"outcomes": {"hope": ["hope"]}}))  # the shipped group's outcomes are not pooled
    row = only.tables["meta_multilevel"].set_index("outcome_label").loc["imrs"]
    assert row["notes"].startswith("not fitted: imrs_client, imrs_clinician are not among the outcomes")
    with pytest.raises(SettingsError, match="meta.multilevel_groups.hope"):
        run_meta_stage({}, {"multilevel_groups": {"hope": ["hope", "imrs_client"]}})


def test_two_analyses_of_one_effect_enter_once():
    rows = pd.DataFrame(
        {
            "row": [2, 3, 4, 5],
            "study": ["A", "A", "A", "B"],
            "year": [2020, 2020, 2020, 2021],
            "instrument": ["x", "x", "x", "x"],
            "timepoint": ["post", "post", "fu12", "post"],
            "analysis": ["complete_case", "itt", "itt", "itt"],
            "use": ["pool"] * 4,
            "measure": ["SMD"] * 4,
            "problem": [""] * 4,
            "needs_assumption": [False] * 4,
            "yi": [0.1, 0.2, 0.3, 0.4],
            "vi": [0.1] * 4,
        }
    )
    selection = select_outcome_rows(
        rows, ["x"], uses=["pool"], timepoints=["fu12", "post"], analyses=["itt", "complete_case"]
    )
    chosen = multilevel_rows(selection, ["itt", "complete_case"])
    assert chosen["row"].tolist() == [3, 4, 5]  # A post: the ITT row, not the complete-case one
    assert chosen["effect"].tolist() == ["x / post", "x / fu12", "x / post"]


def test_section_shows_the_new_tables_and_lines(stage):
    html = stage.html
    assert "Several effects per study: multilevel sensitivity analysis" in html
    assert "Multilevel sensitivity analysis (imrs, every row: 9 effects in 5 studies" in html
    assert "imrs_client: influence diagnostics of the main fit" in html
    assert "imrs_client: trim-and-fill" in html
    assert "Influence diagnostics and trim-and-fill: not computed: k = 2 (needs k &gt;= 3)." in html
    assert "Satterthwaite df below 4: the CR2 interval is unreliable" in html
    assert "trim and fill (L0" in stage.summary and "multilevel, every row" in stage.summary
