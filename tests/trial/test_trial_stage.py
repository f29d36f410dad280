"""The trial stage on the synthetic default data: tables, flags, HTML, privacy, degenerate input."""

import json

import numpy as np
import pandas as pd
import pytest

from imrstats.errors import AnalysisError, SettingsError
from imrstats.pipeline.registry import with_section
from imrstats.pipeline.stage_result import to_json, write_stage
from imrstats.trial.stage import run_trial_outcome, run_trial_stage

FAST = {"outcomes": ["gaf_f", "psp", "hamd6"], "imputations": 20, "subgroup_mi_outcomes": ["gaf_f"]}


@pytest.fixture(scope="module")
def clean(default_clean_tables):
    return default_clean_tables


@pytest.fixture(scope="module")
def stage(clean):
    return with_section(run_trial_stage(clean, FAST, seed=5))


def test_stage_tables_and_no_flags(stage):
    # one flag only: the participants the reference-based estimand leaves out (missing baseline), as counted
    left_out = int(stage.tables["trial_estimand_results"]["n_excluded"].iloc[0])
    assert stage.flags == [
        f"gaf_f: estimand treatment_policy_jr: {left_out} participant(s) left out of the analysis for a missing "
        "arm, baseline value or covariate (the reference-based imputation model conditions on them; the ITT "
        "MI-MMRM imputes missing baselines instead)"
    ]
    expected = {
        "trial_itt_contrasts",
        "trial_itt_adjusted_means",
        "trial_likelihood_mmrm",
        "trial_descriptives",
        "trial_complete_case",
        "trial_table3",
        "trial_per_protocol",
        "trial_per_protocol_sessions",
        "trial_subgroup_interaction_cc",
        "trial_subgroup_descriptives",
        "trial_subgroup_interaction_mi",
        "trial_tipping_grid",
        "trial_tipping_points",
    }
    assert expected <= set(stage.tables)
    itt = stage.tables["trial_itt_contrasts"]
    assert len(itt) == 6 and set(itt["outcome"]) == set(FAST["outcomes"])
    assert itt["method"].str.contains("Barnard-Rubin").all() and itt["method"].str.contains("MICE").all()
    assert len(stage.tables["trial_table3"]) == 3
    assert set(stage.tables["trial_subgroup_interaction_cc"]["subgroup"]) == {"diagnosis", "sex"}


def test_primary_and_multiplicity(stage):
    itt = stage.tables["trial_itt_contrasts"]
    primary = itt.loc[itt["role"] == "primary"]
    assert primary[["outcome", "timepoint"]].values.tolist() == [["gaf_f", "post"]]
    assert primary["p_holm"].isna().all()
    sec = itt.loc[itt["outcome"] != "gaf_f"]
    assert (sec["p_holm"] >= sec["p"] - 1e-15).all() and (sec["p_bh"] >= sec["p"] - 1e-15).all()
    assert (sec["p_bh"] <= sec["p_holm"] + 1e-15).all()


def test_itt_covers_configured_truth(stage, default_config):
    truth = default_config["simulate"]["trial"]["true_effects"]["gaf_f"]
    itt = stage.tables["trial_itt_contrasts"].set_index(["outcome", "timepoint"])
    for tp, value in truth.items():
        assert itt.loc[("gaf_f", tp), "ci_low"] < value < itt.loc[("gaf_f", tp), "ci_high"]


def test_html_summary_and_figures(stage, tmp_path):
    assert stage.html.startswith("<h2>") and "<table" in stage.html
    assert "figures/trial_tipping_gaf_f.png" in stage.html and "figures/trial_itt_forest.png" in stage.html
    assert stage.html.count("Method:") >= 10
    assert "tipping point" in stage.summary and "GAF-F" in stage.summary
    written = write_stage(stage, tmp_path)
    assert (tmp_path / "figures" / "trial_tipping_gaf_f.png").stat().st_size > 1000
    record = json.loads(written["json"].read_text())
    assert record["outcomes"]["gaf_f"]["itt"]["contrasts"][0]["timepoint"] == "post"


def test_no_participant_id_leaks(stage, clean):
    ids = set(clean["participants"]["id"].astype(str))
    blobs = [stage.html, stage.summary, to_json(stage.record)]
    blobs += [frame.to_csv(index=False) for frame in stage.tables.values()]
    for blob in blobs:
        leaked = [i for i in ids if i in blob]
        assert not leaked, leaked[:3]


def test_missing_outcome_is_flagged_and_the_rest_runs(clean):
    broken = dict(clean)
    broken["assessments"] = clean["assessments"].loc[clean["assessments"]["instrument"] != "hamd6"]
    res = with_section(run_trial_stage(broken, {**FAST, "tipping_outcomes": [], "subgroup_outcomes": []}, seed=5))
    assert any(f.startswith("hamd6: not analysed") for f in res.flags)
    assert set(res.tables["trial_itt_contrasts"]["outcome"]) == {"gaf_f", "psp"}
    assert "<div class='flag'>" in res.html and "hamd6" in res.html


def test_degenerate_subgroup_is_flagged(clean):
    broken = dict(clean)
    p = clean["participants"].copy()
    p.loc[p["arm"] == "IMR", "sex"] = "female"
    broken["participants"] = p
    res = run_trial_stage(broken, {**FAST, "outcomes": ["gaf_f"], "tipping_outcomes": []}, seed=5)
    assert any("subgroup" in f and "sex" in f for f in res.flags)
    assert "trial_itt_contrasts" in res.tables and len(res.tables["trial_itt_contrasts"]) == 2


def test_settings_errors(clean):
    with pytest.raises(SettingsError, match="trial.imputation: unknown key"):
        run_trial_stage(clean, {"imputation": 5})
    with pytest.raises(SettingsError, match="trial.imputations: must be >= 2, got 1"):
        run_trial_stage(clean, {"imputations": 1})
    with pytest.raises(SettingsError, match="trial.outcomes: .'nope'. not in the instrument registry"):
        run_trial_stage(clean, {"outcomes": ["nope"]})
    with pytest.raises(AnalysisError, match="'participants'"):
        run_trial_stage({"assessments": clean["assessments"]}, {})


def test_single_outcome_for_cli(clean):
    res = run_trial_outcome(clean, "psp", {"subgroups": []}, seed=3, imputations=10)
    rec = res.record["outcomes"]["psp"]
    assert [c["timepoint"] for c in rec["itt"]["contrasts"]] == ["post", "fu12"]
    assert len(rec["itt"]["adjusted_means"]) == 4 and "Barnard-Rubin" in rec["itt"]["method"]
    assert {"riv", "fmi", "df"} <= set(rec["itt"]["contrasts"][0])
    assert "tipping_point" in rec
    itt = res.tables["trial_itt_contrasts"]
    assert itt["role"].tolist() == ["primary", "secondary"] and itt["p_holm"].isna().all()


def test_stage_is_deterministic(clean):
    a = run_trial_stage(clean, {**FAST, "outcomes": ["psp"], "tipping_outcomes": [], "subgroup_outcomes": []}, seed=9)
    b = run_trial_stage(clean, {**FAST, "outcomes": ["psp"], "tipping_outcomes": [], "subgroup_outcomes": []}, seed=9)
    pd.testing.assert_frame_equal(a.tables["trial_itt_contrasts"], b.tables["trial_itt_contrasts"])
    assert np.isfinite(a.tables["trial_itt_contrasts"]["estimate"]).all()
