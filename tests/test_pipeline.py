"""End-to-end: the Snakemake pipeline on the default config, in a temporary directory; twice, to show that
the same inputs, config and seed give byte-identical tables."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT

pytestmark = pytest.mark.pipeline


def run_pipeline(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    snakemake = Path(sys.executable).parent / "snakemake"
    cmd = [str(snakemake), "-s", str(PROJECT / "Snakefile"), "--directory", str(workdir), "--cores", "2",
           "--config", "results_dir=results", *extra]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The session's shared default run (tests/report_run.py) and one more, in another directory."""
    from report_run import finished_default_run

    first = finished_default_run(tmp_path_factory)
    workdir = tmp_path_factory.mktemp("b")
    proc = run_pipeline(workdir)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [first / "results", workdir / "results"]


def _tables(results: Path):
    return sorted(p.relative_to(results) for p in results.rglob("*")
                  if p.suffix in (".csv", ".parquet") and "benchmarks" not in p.parts)


def test_pipeline_outputs(two_runs):
    results = two_runs[0]
    for rel in ("report/index.html", "provenance.json", "data/cleaning_log.csv", "checks/problems.csv",
                "data/assessments.parquet", "report/tables/data_outcomes_observed.csv"):
        assert (results / rel).exists(), rel
    provenance = json.loads((results / "provenance.json").read_text())
    assert set(provenance) >= {"inputs", "outputs", "config", "seeds", "packages", "git", "started", "finished"}
    assert all(len(h) == 64 for h in provenance["inputs"].values()) and len(provenance["inputs"]) == 4
    assert provenance["seeds"]["master"] == provenance["config"]["seed"]
    assert provenance["packages"]["pymc"] == "6.4.0"


def test_same_seed_gives_byte_identical_tables(two_runs):
    a, b = two_runs
    assert _tables(a) == _tables(b) and len(_tables(a)) >= 10
    differing = [str(rel) for rel in _tables(a) if (a / rel).read_bytes() != (b / rel).read_bytes()]
    assert not differing


def test_report_holds_no_participant_ids(two_runs):
    results = two_runs[0]
    import pandas as pd

    ids = set(pd.read_csv(results / "input" / "participants.csv")["id"]) | \
        set(pd.read_csv(results / "input" / "programme.csv")["id"])
    import re

    # embedded figures are base64 text, where an id-like string can occur by chance: search the rest
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", (results / "report" / "index.html").read_text())
    tables = "".join(p.read_text() for p in (results / "report" / "tables").glob("*.csv"))
    assert not [i for i in ids if i in text or i in tables]


def test_noop_rerun_and_dry_run(two_runs):
    workdir = two_runs[0].parent
    proc = run_pipeline(workdir, "-n")
    assert proc.returncode == 0 and "Nothing to be done" in (proc.stdout + proc.stderr)


def test_bad_input_stops_the_pipeline(tmp_path):
    import shutil

    inputs = tmp_path / "inputs"
    shutil.copytree(PROJECT / "data" / "examples" / "dirty_csv", inputs)
    shutil.copy(PROJECT / "data" / "examples" / "small_csv" / "service_use.csv", inputs)
    shutil.copy(PROJECT / "data" / "examples" / "small_csv" / "programme.csv", inputs)
    proc = run_pipeline(tmp_path, "data={'source': 'directory', 'input_dir': '%s'}" % inputs)
    assert proc.returncode != 0
    assert "input check failed" in proc.stderr
    assert not (tmp_path / "results" / "data" / "assessments.parquet").exists()
