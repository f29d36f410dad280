"""One finished run of the default pipeline per test session, shared by the report tests
(test_report_browser.py, test_snakemake_report.py), so the ~2-3 minute run is paid once.

A plain module, not a fixture: pytest would run a session fixture once per module that imports it,
while this module is imported once per process and caches the run directory."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT

_RUNS: dict[str, Path] = {}


def snakemake(workdir: Path, *extra: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """`snakemake` on the project's Snakefile in `workdir` (results in workdir/results)."""
    exe = Path(sys.executable).parent / "snakemake"
    cmd = [str(exe), "-s", str(PROJECT / "Snakefile"), "--directory", str(workdir), "--cores", "2",
           "--config", "results_dir=results", *extra]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def finished_default_run(tmp_path_factory) -> Path:
    """The working directory of a completed default run (its outputs are under `results/`)."""
    if "default" not in _RUNS:
        workdir = tmp_path_factory.mktemp("default_run")
        proc = snakemake(workdir)
        if proc.returncode != 0:
            raise AssertionError(f"the default pipeline failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        _RUNS["default"] = workdir
    return _RUNS["default"]
