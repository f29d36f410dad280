"""Determinism (issue 8, item 3): two full pipeline runs with the same inputs, config and seeds, one with
`--cores 1` and one with `--cores 2`, give byte-identical CSV tables, Parquet tables and JSON results.

Not compared: provenance.json's start and finish times (and its git record, which says whether the work
tree changed between the runs), Snakemake benchmark TSVs and logs (wall times). Figures, HTML and netCDF
posteriors are compared byte for byte too, in a test of their own.
"""

from __future__ import annotations

import json

import pytest

from test_nothing_lost import result_files, run_snakemake, snapshot_project

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def runs_on_one_and_two_cores(tmp_path_factory):
    project = snapshot_project(tmp_path_factory.mktemp("project"))   # one copy of the code for both runs
    out = {}
    for cores in (1, 2):
        workdir = tmp_path_factory.mktemp(f"cores{cores}")
        proc = run_snakemake(project, workdir, cores=cores, small=False)   # the embedded default config, as shipped
        assert proc.returncode == 0, proc.stderr[-4000:]
        out[cores] = result_files(workdir / "results")
    return out


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
