"""The stage list exists once (imrstats.pipeline.registry.PIPELINE): the workflow's rule files, the stage
registry and the report's front page follow it; a stage run for the workflow reads the files its rule declares."""

import json

import pytest

from conftest import PROJECT
from imrstats.core.io import write_text
from imrstats.data.published import PUBLISHED_DIR
from imrstats.pipeline.registry import PIPELINE, SECTIONS, STAGE_NAMES, STAGES, run_stage_on_files
from imrstats.report.index import PENDING_STAGES

SHARED_RULE_FILES = {"common", "data", "report"}  # settings and input functions; the data stage; the report


def test_every_stage_has_its_rule_file_and_every_rule_file_a_stage():
    rule_files = {path.stem for path in (PROJECT / "workflow" / "rules").glob("*.smk")}
    assert rule_files - SHARED_RULE_FILES == set(STAGE_NAMES)
    assert len(set(STAGE_NAMES)) == len(STAGE_NAMES) == len(PIPELINE)


def test_registry_and_report_follow_the_stage_list():
    assert set(STAGES) | {"evidence"} == set(STAGE_NAMES)
    assert set(STAGE_NAMES) <= set(SECTIONS)
    assert [name for name, _, _ in PENDING_STAGES] == list(STAGE_NAMES)
    assert all(stage.title and stage.what for stage in PIPELINE)


def test_the_snakefile_includes_the_rules_of_the_stage_list():
    snakefile = (PROJECT / "Snakefile").read_text()
    assert 'include: f"workflow/rules/{_stage}.smk"' in snakefile and "for _stage in STAGES:" in snakefile
    assert "STAGES = list(STAGE_NAMES)" in (PROJECT / "workflow" / "rules" / "common.smk").read_text()


def test_a_stage_reads_the_files_its_rule_declares(tmp_path, default_config):
    """The audit checks the CSVs given as its rule's inputs, not the configured ones."""
    cases = (PUBLISHED_DIR / "audit_cases.csv").read_text().splitlines()
    csv = tmp_path / "few_cases.csv"
    write_text("\n".join(cases[:4]) + "\n", csv)
    result = run_stage_on_files("audit", {"csv": [str(csv)]}, default_config)
    assert result.record["settings"]["inputs"] == [str(csv)]
    assert json.loads(json.dumps(result.record["settings"]))["inputs"] == [str(csv)]


def test_the_evidence_stage_reads_the_declared_trial_folder(tmp_path, default_config):
    from imrstats.errors import InputError

    missing = tmp_path / "elsewhere" / "result.json"
    with pytest.raises(InputError, match="elsewhere"):
        run_stage_on_files(
            "evidence",
            {"trial": str(missing), "published": str(PUBLISHED_DIR / "published_outcomes.csv")},
            default_config,
        )
