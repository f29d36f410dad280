"""The audit stage (imrstats.audit.stage.run_audit_stage): default run, report section, privacy, bad input."""

import json

import pandas as pd
import pytest

from imrstats.audit import checks as audit
from imrstats.audit.stage import run_audit_stage
from imrstats.errors import AnalysisError, InputError, SettingsError
from imrstats.pipeline.registry import with_section
from imrstats.pipeline.stage_result import to_json, write_stage


@pytest.fixture(scope="module")
def clean_default(default_clean_tables):
    return default_clean_tables


@pytest.fixture(scope="module")
def default_run(clean_default):
    return with_section(run_audit_stage(clean_default, {}, seed=1))


def test_default_run_audits_both_shipped_files(default_run):
    findings = default_run.tables["findings"]
    assert list(findings.columns) == audit.FINDING_COLUMNS
    files = {row.split(":")[0] for row in findings["row"]}
    assert files == {"published_outcomes.csv", "audit_cases.csv"}
    assert set(findings["severity"]) == set(audit.SEVERITIES)
    counts = default_run.tables["counts"]
    assert counts[list(audit.SEVERITIES)].to_numpy().sum() == len(findings)


def test_every_inconsistent_finding_is_a_flag_and_in_the_html(default_run):
    findings = default_run.tables["findings"]
    bad = findings.loc[findings["severity"] == audit.INCONSISTENT]
    assert len(default_run.flags) == len(bad) > 0
    assert "<div class='flag'>" in default_run.html and "<h2>Audit of published numbers</h2>" in default_run.html
    assert "Method:" in default_run.html
    for needle in ("0.96", "0.45", "0.49", "5.48"):
        assert needle in default_run.html
    assert "Inconsistent:" in default_run.summary


def test_record_is_json_and_write_stage(default_run, tmp_path):
    record = json.loads(to_json(default_run.record))
    assert record["counts"]["inconsistent"] == len(default_run.flags)
    written = write_stage(default_run, tmp_path)
    assert pd.read_csv(written["table:findings"]).shape[0] == default_run.tables["findings"].shape[0]


def test_no_participant_id_leaks(default_run, clean_default):
    ids = set(clean_default["participants"]["id"].astype(str))
    text = (
        default_run.html
        + to_json(default_run.record)
        + default_run.summary
        + "".join(t.to_csv() for t in default_run.tables.values())
    )
    assert not [i for i in ids if f"'{i}'" in text or f'"{i}"' in text or f",{i}," in text]


def test_user_table_by_path_and_by_name(tmp_path):
    path = tmp_path / "mine.csv"
    pd.DataFrame({"study": ["A 2020"], "test": ["correlation"], "r": ["0.30"], "n": ["40"], "p": ["0.06"]}).to_csv(
        path, index=False
    )
    result = run_audit_stage({}, {"inputs": [str(path)]})
    assert result.tables["findings"]["row"].tolist() == ["mine.csv:2"]
    frame = audit.read_audit_table(path)
    named = run_audit_stage({"audit_user": frame}, {"inputs": []})
    assert named.tables["findings"]["row"].tolist() == ["audit_user:2"]


def test_bad_settings_and_input(tmp_path):
    with pytest.raises(SettingsError, match="audit.alhpa: unknown key"):
        run_audit_stage({}, {"alhpa": 0.05})
    with pytest.raises(SettingsError, match="audit.alpha: must be < 1, got 5"):
        run_audit_stage({}, {"alpha": 5})
    with pytest.raises(AnalysisError, match="nothing to audit"):
        run_audit_stage({}, {"inputs": []})
    with pytest.raises(InputError, match="not found"):
        run_audit_stage({}, {"inputs": [str(tmp_path / "missing.csv")]})


def test_a_broken_row_is_reported_and_the_rest_still_runs(tmp_path):
    path = tmp_path / "mixed.csv"
    pd.DataFrame(
        {
            "study": ["bad", "good"],
            "test": ["correlation", "correlation"],
            "r": ["high", "0.50"],
            "n": ["20", "20"],
            "p": ["0.02", "0.02"],
        }
    ).to_csv(path, index=False)
    findings = run_audit_stage({}, {"inputs": [str(path)]}).tables["findings"]
    assert findings["rule"].tolist() == ["input", "correlation_p"]
    assert findings["severity"].tolist() == [audit.UNCHECKABLE, audit.CONSISTENT]
