"""Full Snakemake runs of the pipeline, made once per test session and shared by every test module that reads
one: one run per distinct (config, cores) combination, all from one snapshot of the project.

    default config, --cores 2   fixture default_pipeline_run: the one run of the shipped config per session:
                                test_pipeline, test_snakemake_report, and test_report_browser
                                (report_run.finished_default_run)
    "small" config, --cores 2   fixture small_pipeline_run: test_determinism, test_pipeline's byte-identity
                                check, test_nothing_lost (the uninterrupted run its killed and resumed runs
                                are compared with)
    "small" config, --cores 1   fixture small_pipeline_run_one_core: the other side of the determinism checks

A plain module with a process-wide cache, not only fixtures: tests/report_run.py (imported by
test_report_browser.py) hands out the same default run through `finished_default_run(tmp_path_factory)`,
and the session fixtures in conftest.py read the same cache, so every route gives the same run. Under
pytest-xdist (the pipeline tier of `make test` runs on two workers) the workers share one snapshot and one
run per combination through a folder they all see (`shared_root`): the first worker to ask makes it under a
file lock, the others wait for it and read its outcome (the run's folder and its result files, pickled).
The simulation-study workflow (test_simstudy_workflow.py) is another Snakefile and config: nothing to share.

Shared runs are read-only. A test that changes a run (kills it, resumes it, adds files to it) works in a
directory of its own. `FinishedRun.files` holds the run's result files as they were when it finished, so
a test that compares whole runs (test_determinism, test_nothing_lost) sees them untouched by any test that
ran before it (test_report_browser writes a screenshot into the default run's report directory).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import PROJECT

SNAKEMAKE = Path(sys.executable).parent / "snakemake"

# the default config, smaller where that only costs time: m = 5 imputations instead of 100; six of the trial's
# eleven outcomes (the primary and those the evidence stage pools), diagnostics and within-group change for two
# of them, one subscale of each kind; two of the four service-use counts; two sensitivity priors instead of seven.
# Every stage still runs and writes every table it writes on the default config (fewer rows, fewer figures of a
# kind); the default run covers the rest. Snakemake merges a --configfile into the embedded config key by key (its
# --config would pass the numbers as text).
SMALL_CONFIG = """\
trial:
  imputations: 5
  outcomes: [gaf_f, psp, panss_total, hope, imrs_client, imrs_clinician]
  diagnostics_outcomes: [gaf_f, psp]
  within_group_outcomes: [gaf_f, psp]
  subscale_ancova_outcomes: [panss_pos]
  subscale_itt_outcomes: [imrs_client_recovery]
services:
  outcomes: [admissions, er_visits]
meta:
  bayes:
    sensitivity_priors: [half_normal_0.5, rhodes_mental_health_nonpharm]
"""


@dataclass(frozen=True)
class FinishedRun:
    """A completed pipeline run: the project snapshot that made it, its working directory (outputs under
    `results/`), and its result files (`result_files`) read right after it finished."""

    project: Path
    workdir: Path
    files: dict[str, bytes]

    @property
    def results(self) -> Path:
        return self.workdir / "results"


_PROJECT: list[Path] = []
_RUNS: dict[tuple[str, int], FinishedRun | str] = {}  # a failed run keeps its error: it is not tried again


def snapshot_project(dest: Path) -> Path:
    """A copy of the workflow, library, config and data: every run of one test uses the same code and config,
    even while the work tree changes under a long test."""
    for name in ("src", "workflow", "config", "data"):
        shutil.copytree(PROJECT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(PROJECT / "Snakefile", dest / "Snakefile")
    return dest


def shared_root(tmp_path_factory) -> Path:
    """Where the session's shared snapshot and runs live: the session's base temporary folder, or, under
    pytest-xdist (`make test` runs the pipeline tier on two workers), the folder all workers' base folders share,
    so that each run is made once per session, not once per worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def _made_once(root: Path, name: str):
    """Hold `name`'s lock in `root` (an exclusive file lock across the workers' processes) while it is made or read."""
    from filelock import FileLock

    with FileLock(str(root / f"{name}.lock")):
        yield root / name


def session_project(tmp_path_factory) -> Path:
    """The session's one snapshot of the project (taken at first use, by whichever worker asks first), from
    which every shared run is made."""
    if not _PROJECT:
        with _made_once(shared_root(tmp_path_factory), "project") as dest:
            if not (dest / ".complete").exists():
                if dest.exists():
                    shutil.rmtree(dest)
                snapshot_project(dest)
                (dest / ".complete").write_text("")
        _PROJECT.append(dest)
    return _PROJECT[0]


def snakemake_cmd(project: Path, workdir: Path, *extra: str, cores: int = 2, small: bool = True) -> list[str]:
    cmd = [str(SNAKEMAKE), "-s", str(project / "Snakefile"), "--directory", str(workdir), "--cores", str(cores)]
    if small:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "small.yaml").write_text(SMALL_CONFIG)
        cmd += ["--configfile", str(workdir / "small.yaml")]
    return [*cmd, "--config", "results_dir=results", *extra]


def snakemake_env(project: Path) -> dict:
    # the snapshot's library first on the path, ahead of the editable install of the work tree
    return {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(project / "src")}


def run_snakemake(
    project: Path, workdir: Path, *extra: str, cores: int = 2, small: bool = True, timeout: int = 3600
) -> subprocess.CompletedProcess:
    """`snakemake` on `project`'s Snakefile in `workdir` (results in workdir/results)."""
    return subprocess.run(
        snakemake_cmd(project, workdir, *extra, cores=cores, small=small),
        capture_output=True,
        text=True,
        env=snakemake_env(project),
        timeout=timeout,
    )


def result_files(results: Path) -> dict[str, bytes]:
    """Every result a later stage or a reader would use, by relative path; logs, benchmarks, Snakemake's
    directory timestamps and leftover temporary files are not results. provenance.json without its times.
    netCDF posteriors as bytes: `bayes.save_posterior` drops ArviZ's `created_at` stamps."""
    out = {}
    for path in sorted(results.rglob("*")):
        rel = path.relative_to(results)
        if not path.is_file() or rel.parts[0] in ("logs", "benchmarks") or path.name.startswith("."):
            continue
        data = path.read_bytes()
        if rel == Path("provenance.json"):
            record = json.loads(data)
            # times differ by nature; the git record says whether the (shared) work tree was touched meanwhile
            for key in ("started", "finished", "git"):
                record.pop(key, None)
            data = json.dumps(record, sort_keys=True).encode()
        out[str(rel)] = data
    return out


def finished_run(tmp_path_factory, *, cores: int = 2, small: bool = False) -> FinishedRun:
    """The session's completed run of the default config (or, with `small`, of SMALL_CONFIG) on `cores`
    cores; made at the first request, then shared. Raises AssertionError if the pipeline failed (once: every
    later request gets the same error without running it again)."""
    key = ("small" if small else "default", cores)
    if key not in _RUNS:
        project = session_project(tmp_path_factory)
        with _made_once(shared_root(tmp_path_factory), f"{key[0]}_run_cores{cores}") as workdir:
            record = workdir.parent / f"{workdir.name}.pickle"  # the outcome, for the other workers
            if not record.exists():
                if workdir.exists():
                    shutil.rmtree(workdir)
                workdir.mkdir()
                proc = run_snakemake(project, workdir, cores=cores, small=small)
                if proc.returncode == 0:
                    outcome = FinishedRun(project, workdir, result_files(workdir / "results"))
                else:
                    outcome = (
                        f"the {key[0]} pipeline on {cores} core(s) in {workdir} failed (exit {proc.returncode}):\n"
                        f"{proc.stderr[-4000:]}"
                    )
                record.write_bytes(pickle.dumps(outcome))
            _RUNS[key] = pickle.loads(record.read_bytes())
    run = _RUNS[key]
    if isinstance(run, str):
        raise AssertionError(run)
    return run
