"""`snakemake --configfile` with a file of only the keys it changes: a dry run (no job runs), so it is quick
but still needs Snakemake to parse the whole workflow, hence the pipeline tier."""

import subprocess
import sys

import pytest

from conftest import PROJECT

pytestmark = pytest.mark.pipeline


def test_snakemake_dry_run_takes_a_two_key_configfile(tmp_path):
    """snakemake --configfile with two keys: accepted (overlaid on config/config.yaml and the defaults), and the
    overlay reaches the rules (results_dir moves every output); a bad value stops it naming the key."""
    snakemake = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--directory", str(PROJECT)]
    two = tmp_path / "two_keys.yaml"
    # results outside the working directory (the project) only under a folder of allow_results_outside
    two.write_text(f"trial: {{imputations: 5}}\nresults_dir: {tmp_path / 'out'}\nallow_results_outside: [{tmp_path}]\n")
    run = subprocess.run([*snakemake, "--configfile", str(two)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert str(tmp_path / "out" / "report" / "index.html") in run.stdout + run.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("trial: {imputations: 1}\n")
    run = subprocess.run([*snakemake, "--configfile", str(bad)], capture_output=True, text=True, timeout=600)
    assert run.returncode != 0 and "trial.imputations: must be >= 2, got 1" in run.stdout + run.stderr
