"""The simulation-study workflow (workflow/simulation.smk) run as a user runs it: end to end on a small study
(2 replicates x 2 scenarios, m = 5), and a dry run of the SLURM profile's job grouping."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import PROJECT
from imrstats.trial.simstudy import aggregate

pytestmark = pytest.mark.pipeline

SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SIM_SMK = PROJECT / "workflow" / "simulation.smk"


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "-s", str(SIM_SMK), "--directory", str(workdir), *args]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=workdir)


def test_simulation_workflow_end_to_end(tmp_path):
    small = {
        "replicates": 2,
        "imputations": 5,
        "scenarios": [
            {"name": "null_effect", "true_effects": {"gaf_f": {"post": 0.0, "fu12": 0.0}}},
            {"name": "effect", "true_effects": {"gaf_f": {"post": 3.0, "fu12": 2.0}}, "n_participants": 120},
        ],
    }
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(small))
    proc = snakemake(tmp_path, "--configfile", "small.yaml", "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = tmp_path / "results" / "simstudy"
    assert sorted(p.name for p in (out / "replicates" / "effect").glob("*.json")) == ["rep0.json", "rep1.json"]
    perf = pd.read_csv(out / "performance.csv")
    groups = perf.groupby(["scenario", "estimator", "timepoint"])
    assert groups.ngroups == 2 * 2 * 2 and set(perf["n_rep"]) == {2} and set(perf["n_failed"]) == {0}
    assert set(perf.loc[perf["scenario"] == "null_effect", "quantity"]) >= {"type_i_error", "coverage", "bias"}
    assert set(perf.loc[perf["scenario"] == "effect", "quantity"]) >= {"power"}
    # the aggregate equals aggregate() on the replicate rows the workflow wrote
    rows = pd.read_csv(out / "replicates.csv", keep_default_na=False, na_values={"fmi": [""]})
    again = aggregate(rows)
    assert np.allclose(again["estimate"].to_numpy(float), perf["estimate"].to_numpy(float), equal_nan=True)
    page = (out / "report.html").read_text()
    assert "Performance" in page and "null_effect" in page and "P0001" not in page


@pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="snakemake-executor-plugin-slurm is not installed (pyproject pins it; pip install -e .)",
)
@pytest.mark.parametrize("how", ["--profile", "--workflow-profile"])
def test_slurm_profile_dry_run_groups_replicates(tmp_path, how):
    """400 replicate jobs (4 scenarios x 100) become 8 SLURM submissions of 50 replicates, plus the
    aggregation: the profile's group-components keeps the scheduler from being flooded."""
    proc = snakemake(
        tmp_path,
        "--configfile",
        str(PROJECT / "config" / "simulation.yaml"),
        how,
        str(PROJECT / "workflow" / "profiles" / "slurm"),
        "-n",
        "--config",
        "replicates=100",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    stats = dict(re.findall(r"^(simstudy_\w+|all|total)\s+(\d+)$", log, flags=re.M))
    assert stats == {"simstudy_replicate": "400", "simstudy_aggregate": "1", "all": "1", "total": "402"}
    group_jobs = re.findall(r"Group job simstudy ", log)
    assert len(group_jobs) == 8
    ungrouped = re.findall(r"^rule (\w+):", log, flags=re.M)  # top-level (not indented) jobs
    assert sorted(ungrouped) == ["all", "simstudy_aggregate"]
