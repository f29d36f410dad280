"""The evidence stage and the trial's study design: the stage compares the trial with published IMR vs TAU
trials at ``evidence.timepoints``, so a design without those visits (or with other arms) is a settings
error naming the key and the design's visits, raised before any trial result is read; off, nothing is
checked. Fast: no trial fit, no pooling."""

from __future__ import annotations

import copy

import pytest

from imrstats.errors import SettingsError
from imrstats.evidence.stage import check_trial_design, evidence_settings, run_evidence_stage
from imrstats.pipeline.registry import run_evidence

STUDY_TRIAL = {
    "visits": ["week1", "week2", "week4", "week6"],
    "arms": {"intervention": "DRUG", "control": "PLACEBO", "labels": {"DRUG": "Drug", "PLACEBO": "Placebo"}},
    "primary": {"outcome": "hamd17", "timepoint": "week6"},
}


def test_other_visits_name_evidence_timepoints_and_the_design_visits(tmp_path):
    trial = {**STUDY_TRIAL, "arms": {"intervention": "IMR", "control": "TAU"}}
    with pytest.raises(SettingsError) as caught:
        run_evidence_stage(None, {"evidence": {}, "meta": {}, "trial": trial}, trial_dir=tmp_path / "nothing")
    assert caught.value.keys == ["evidence.timepoints"]
    assert "['fu12'] not among the trial's post-baseline visits ['week1', 'week2', 'week4', 'week6']" in str(
        caught.value
    )


def test_other_arms_are_refused_too():
    ev, _ = evidence_settings({"evidence": {"timepoints": ["post"]}})
    with pytest.raises(SettingsError) as caught:
        check_trial_design(ev, STUDY_TRIAL)
    assert caught.value.keys == ["evidence.timepoints", "evidence.enabled"]
    assert "['DRUG', 'PLACEBO']" in str(caught.value)


def test_off_checks_nothing(tmp_path):
    res = run_evidence_stage(
        None, {"evidence": {"enabled": False}, "meta": {}, "trial": STUDY_TRIAL}, trial_dir=tmp_path / "nothing"
    )
    assert res.record == {"enabled": False}


def test_the_imr_design_passes(default_config):
    for timepoints in (["post"], ["fu12"], ["post", "fu12"]):
        ev, _ = evidence_settings({"evidence": {"timepoints": timepoints}})
        assert check_trial_design(ev, default_config["trial"]) is None
    assert check_trial_design(evidence_settings(None)[0], {}) is None  # no trial section: the IMR trial's design


def test_the_pipeline_passes_the_trial_section(default_config, tmp_path):
    config = copy.deepcopy(default_config)
    config["trial"] = {**config["trial"], **STUDY_TRIAL}
    config["results_dir"] = str(tmp_path)
    with pytest.raises(SettingsError, match=r"evidence\.timepoints: \['fu12'\] not among"):
        run_evidence(config)
    config["evidence"] = {**config["evidence"], "enabled": False}
    assert run_evidence(config).record == {"enabled": False}
