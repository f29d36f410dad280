"""End-to-end: the Snakemake pipeline on the default config, in a temporary directory; twice, to show that
the same inputs, config and seed give byte-identical tables.

The default run is the session's one run of the shipped config (tests/pipeline_runs.py); the byte-identity check
compares the session's two runs of the small config (--cores 2 and --cores 1, two directories, one snapshot of the
project: the same runs test_determinism.py compares in full)."""

import json
from pathlib import Path

import pytest

from conftest import PROJECT
from pipeline_runs import run_snakemake

pytestmark = pytest.mark.pipeline


def run_pipeline(project: Path, workdir: Path, *extra: str):
    """`snakemake --cores 2` on `project`'s Snakefile with the embedded default config, in `workdir`."""
    return run_snakemake(project, workdir, *extra, cores=2, small=False, timeout=1200)


@pytest.fixture(scope="module")
def two_runs(small_pipeline_run, small_pipeline_run_one_core):
    """The results directories of the session's two small-config runs: --cores 2, then --cores 1 (another directory)."""
    return [small_pipeline_run.results, small_pipeline_run_one_core.results]


def _tables(results: Path):
    return sorted(
        p.relative_to(results)
        for p in results.rglob("*")
        if p.suffix in (".csv", ".parquet") and "benchmarks" not in p.parts
    )


def test_pipeline_outputs(default_pipeline_run):
    results = default_pipeline_run.results
    for rel in (
        "report/index.html",
        "provenance.json",
        "data/cleaning_log.csv",
        "checks/problems.csv",
        "data/assessments.parquet",
        "report/tables/data_outcomes_observed.csv",
    ):
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


def test_the_small_config_is_smaller_not_narrower(default_pipeline_run, small_pipeline_run):
    """The small config of the determinism and kill tests (pipeline_runs.SMALL_CONFIG) writes every table, record,
    page and posterior the default run writes, and only figures the default run writes too (fewer of a kind)."""
    default, small = default_pipeline_run.files, small_pipeline_run.files

    def results(files):
        return {rel for rel in files if not rel.endswith(".png")}

    def figures(files):
        return {rel for rel in files if rel.endswith(".png")}

    assert results(small) == results(default)
    assert figures(small) <= figures(default) and len(figures(small)) > 0.8 * len(figures(default))


def test_report_holds_no_participant_ids(default_pipeline_run):
    results = default_pipeline_run.results
    import pandas as pd

    ids = set(pd.read_csv(results / "input" / "participants.csv")["id"]) | set(
        pd.read_csv(results / "input" / "programme.csv")["id"]
    )
    import re

    # embedded figures are base64 text, where an id-like string can occur by chance: search the rest
    # every page of the report: the front page and one per stage
    pages = "".join(p.read_text() for p in (results / "report").glob("*.html"))
    assert len(list((results / "report").glob("*.html"))) > 1
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", pages)
    tables = "".join(p.read_text() for p in (results / "report" / "tables").glob("*.csv"))
    assert not [i for i in ids if i in text or i in tables]


def test_noop_rerun_and_dry_run(default_pipeline_run):
    workdir = default_pipeline_run.workdir
    proc = run_pipeline(default_pipeline_run.project, workdir, "-n")
    assert proc.returncode == 0 and "Nothing to be done" in (proc.stdout + proc.stderr)


def test_bad_input_stops_the_pipeline(tmp_path, pipeline_project):
    import shutil

    inputs = tmp_path / "inputs"
    shutil.copytree(PROJECT / "data" / "examples" / "dirty_csv", inputs)
    shutil.copy(PROJECT / "data" / "examples" / "small_csv" / "service_use.csv", inputs)
    shutil.copy(PROJECT / "data" / "examples" / "small_csv" / "programme.csv", inputs)
    # the meta stage reads only the published data, so it runs beside the failing check, and Snakemake waits
    # for it before it exits: without its Bayesian half (~30 s of sampling) the failed run ends in seconds
    (tmp_path / "no_bayes.yaml").write_text("meta:\n  bayes:\n    enabled: false\n")
    proc = run_pipeline(
        pipeline_project,
        tmp_path,
        "data={'source': 'directory', 'input_dir': '%s'}" % inputs,
        "--configfile",
        str(tmp_path / "no_bayes.yaml"),
    )
    assert proc.returncode != 0
    assert "input check failed" in proc.stderr
    assert not (tmp_path / "results" / "data" / "assessments.parquet").exists()
