"""provenance.json and the report header name no absolute path of the machine that made them (outputs and
reports stay inside their folder), and record the stages skipped for want of their input tables."""

import json

from imrstats.config import load_config
from imrstats.core.provenance import build_provenance, relative_config, relative_path
from imrstats.report.index import data_summary, shown_path


def test_provenance_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "in").mkdir(parents=True)
    (work / "in" / "participants.csv").write_text("id,arm\nP1,IMR\n")
    (tmp_path / "rows.csv").write_text("study\nA\n")
    monkeypatch.chdir(work)
    config = load_config(overrides={"data": {"source": "directory", "input_dir": str(work / "in")}})
    config["meta"]["published_outcomes"] = str(tmp_path / "rows.csv")
    config["audit"]["inputs"] = [str(tmp_path / "rows.csv")]
    skipped = {"services": "no service_use table in the input folder"}
    record = build_provenance(config, [work / "in" / "participants.csv"], [], None, skipped=skipped)
    assert record["inputs"] == {"in/participants.csv": record["inputs"]["in/participants.csv"]}
    assert len(record["inputs"]["in/participants.csv"]) == 64
    assert record["config"]["data"]["input_dir"] == "in"
    assert record["config"]["meta"]["published_outcomes"] == "../rows.csv"
    assert record["config"]["audit"]["inputs"] == ["../rows.csv"]
    assert record["stages_skipped"] == skipped
    assert str(tmp_path) not in json.dumps(record, default=str)
    assert config["data"]["input_dir"] == str(work / "in")  # the settings themselves are not changed
    assert relative_path("results/x.csv") == "results/x.csv"
    assert relative_config({"results_dir": "results"}) == {"results_dir": "results"}


def test_the_report_shows_an_input_folder_relative_or_by_name(tmp_path, monkeypatch):
    (tmp_path / "work" / "data" / "in").mkdir(parents=True)
    (tmp_path / "secret" / "trial_export").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert shown_path(tmp_path / "work" / "data" / "in") == "data/in"
    assert shown_path("data/in") == "data/in"
    assert shown_path(tmp_path / "secret" / "trial_export") == "trial_export"
    assert shown_path("../secret/trial_export") == "trial_export"
    assert shown_path(None) == ""


def test_front_page_summary_of_a_registry_alone(default_tables):
    """An input folder holding only the programme registry: the summary has its table and no trial tables."""
    summary = data_summary({"programme": default_tables["programme"]})
    assert list(summary) == ["programme"]
    assert int(summary["programme"]["participants"].sum()) == len(default_tables["programme"])
