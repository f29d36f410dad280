"""Determinism: two full pipeline runs (the small config) with the same inputs, config and seeds, one with
`--cores 1` and one with `--cores 2`, give byte-identical CSV tables, Parquet tables and JSON results.

Not compared: provenance.json's start and finish times (and its git record, which says whether the work
tree changed between the runs), Snakemake benchmark TSVs and logs (wall times). Figures, HTML and netCDF
posteriors are compared byte for byte too, in a test of their own.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def runs_on_one_and_two_cores(small_pipeline_run_one_core, small_pipeline_run):
    """The session's two runs of the small config (tests/pipeline_runs.py: the default, smaller where that only
    costs time): one copy of the code for both, --cores 1 and --cores 2, each in its own directory; their result
    files as they were when each run finished. Every stage runs in both, so every output is compared."""
    return {1: small_pipeline_run_one_core.files, 2: small_pipeline_run.files}


def _differing(a: dict[str, bytes], b: dict[str, bytes], suffixes: tuple[str, ...]) -> list[str]:
    return [rel for rel in a if rel.endswith(suffixes) and a[rel] != b.get(rel)]


def test_same_results_on_one_and_two_cores(runs_on_one_and_two_cores):
    one, two = runs_on_one_and_two_cores[1], runs_on_one_and_two_cores[2]
    assert sorted(one) == sorted(two)
    tables = [rel for rel in one if rel.endswith((".csv", ".parquet", ".json"))]
    assert len([rel for rel in tables if rel.endswith(".csv")]) >= 10 and "provenance.json" in tables
    assert not _differing(one, two, (".csv", ".parquet", ".json"))


def test_provenance_records_the_same_run(runs_on_one_and_two_cores):
    one = json.loads(runs_on_one_and_two_cores[1]["provenance.json"])
    two = json.loads(runs_on_one_and_two_cores[2]["provenance.json"])
    assert one["inputs"] == two["inputs"] and one["outputs"] == two["outputs"] and one["seeds"] == two["seeds"]


def test_reports_and_figures_are_identical_too(runs_on_one_and_two_cores):
    one, two = runs_on_one_and_two_cores[1], runs_on_one_and_two_cores[2]
    assert not _differing(one, two, (".html", ".png", ".txt", ".nc"))
