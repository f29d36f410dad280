"""Nothing lost: a run killed mid-way leaves no half-written result that a later run
would trust, and `snakemake --rerun-incomplete` finishes it with the same bytes as an uninterrupted run.

Two layers make that true: every output is written to a temporary file beside its target and renamed into
place (`imrstats.core.io.atomic_path`), so a final name never holds a truncated file; and Snakemake marks the
outputs of a running job as incomplete, so a later run refuses to trust them unless asked to rerun the job.

The killed runs start where a cold run stands when its two longest stages start: a copy of the session's finished
small run without the outputs of trial, meta and the stages downstream of them (evidence, report). Snakemake runs
trial and meta side by side; the signal comes while both compute. After SIGKILL, `--rerun-incomplete` redoes the
four stages and must give the uninterrupted run's bytes; after SIGINT, the next run plans exactly those four.
(The stages upstream of them were done once, in the run copied.)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from base64 import urlsafe_b64decode
from pathlib import Path

import pytest

from imrstats.core.io import atomic_path, write_csv
from pipeline_runs import FinishedRun, result_files, run_snakemake, snakemake_cmd, snakemake_env

# the jobs killed: the two longest stages, run side by side on two cores; and every stage not yet done then
KILL_RULES = ("trial", "meta")
TO_DO = (*KILL_RULES, "evidence", "report")
KILL_DELAY = 1.5  # seconds after the first rule's log appears: the jobs are computing, not starting


# Every run here uses the small config (pipeline_runs.SMALL_CONFIG: the default, smaller where that only costs
# time) and the session's one snapshot of the project (pipeline_runs.py).


def incomplete_outputs(workdir: Path) -> list[str]:
    """The outputs Snakemake has marked incomplete (its records are the output paths, URL-safe base64)."""
    marks = workdir / ".snakemake" / "incomplete"
    if not marks.is_dir():
        return []
    found = []
    for path in marks.rglob("*"):
        if path.is_file() and path.name != "migration_underway":
            parts = [p.lstrip("@") for p in path.relative_to(marks).parts]
            found.append(urlsafe_b64decode("".join(parts)).decode())
    return sorted(found)


def _default_signals() -> None:
    """In the child before exec: SIGINT and SIGTERM handled by default (a disposition of "ignore" is inherited
    across exec, and Python keeps an inherited "ignore" for SIGINT instead of raising KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def run_until_the_kill_rules(run: FinishedRun, workdir: Path) -> Path:
    """A copy of a finished run's working directory as a run leaves it when KILL_RULES start: the results of the
    stages before them and Snakemake's records of those (with their modification times, which Snakemake
    compares); no output of the stages in TO_DO, no provenance record, no logs (a log appearing marks a job
    started)."""
    shutil.copytree(run.workdir, workdir, symlinks=True)
    for folder in (*TO_DO, "logs"):
        shutil.rmtree(workdir / "results" / folder)
    (workdir / "results" / "provenance.json").unlink()
    return workdir


def start_and_kill(project: Path, workdir: Path, sig: signal.Signals) -> str:
    """Start the pipeline in `workdir` and send `sig` to Snakemake's whole process group (as a terminal's Ctrl-C
    or an OOM killer would) while KILL_RULES run; return the rule whose log appeared first."""
    proc = subprocess.Popen(
        snakemake_cmd(project, workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=snakemake_env(project),
        start_new_session=True,
        # as from a terminal: the signals' default handling, whatever this test process inherited or set
        preexec_fn=_default_signals,
    )
    logs = workdir / "results" / "logs"
    try:
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline:
            running = [r for r in KILL_RULES if (logs / f"{r}.log").exists()]
            if running:
                time.sleep(KILL_DELAY)
                os.killpg(proc.pid, sig)
                proc.wait(timeout=300)
                if proc.returncode == 0:
                    pytest.fail(f"the pipeline finished (status 0) although {sig.name} was sent while {running[0]} ran")
                return running[0]
            if proc.poll() is not None:
                pytest.fail(f"the pipeline ended (status {proc.returncode}) before any of {KILL_RULES} started")
            time.sleep(0.05)
        pytest.fail("no rule to kill started within 20 minutes")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)


# ---------------------------------------------------------------------------------------------------
# unit tests of the atomic write


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half a tab")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_path_keeps_the_old_result_when_the_block_fails(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old, complete\n")
    with pytest.raises(KeyError):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half")
            raise KeyError("interrupted")
    assert target.read_text() == "old, complete\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_sigkill_during_a_write_never_leaves_a_partial_file_under_the_final_name(tmp_path):
    """A process killed (SIGKILL: no cleanup at all) in the middle of writing: the target does not exist;
    only a hidden temporary file is left, which no reader or rule looks at."""
    target = tmp_path / "result.csv"
    code = (
        "import os, signal, sys\n"
        "from imrstats.core.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    with open(tmp, 'w') as handle:\n"
        "        handle.write('estimate,se\\n0.5,')\n"
        "        handle.flush()\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    leftovers = list(tmp_path.iterdir())
    assert all(p.name.startswith(".result.csv.") and p.name.endswith(".tmp") for p in leftovers)


def test_write_csv_replaces_a_result_whole(tmp_path):
    import pandas as pd

    target = tmp_path / "t.csv"
    write_csv(pd.DataFrame({"a": [1, 2]}), target)
    write_csv(pd.DataFrame({"a": [3]}), target)
    assert target.read_text() == "a\n3\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


# ---------------------------------------------------------------------------------------------------
# the pipeline killed mid-way


@pytest.fixture(scope="module")
def project(small_pipeline_run) -> Path:
    """The project snapshot that made the uninterrupted run: the killed runs use the same code and config."""
    return small_pipeline_run.project


@pytest.fixture(scope="module")
def uninterrupted(small_pipeline_run) -> dict[str, bytes]:
    """The result files of the session's uninterrupted small run (--cores 2), as they were when it finished."""
    return small_pipeline_run.files


@pytest.mark.pipeline
def test_sigkilled_pipeline_is_finished_by_rerun_incomplete(tmp_path, project, small_pipeline_run, uninterrupted):
    """SIGKILL: nothing in Snakemake or the jobs runs any cleanup; the lock and the incomplete marks stay."""
    workdir = run_until_the_kill_rules(small_pipeline_run, tmp_path / "killed")
    rule = start_and_kill(project, workdir, signal.SIGKILL)
    marked = incomplete_outputs(workdir)
    unmarked = [r for r in KILL_RULES if not any(m.startswith(f"results/{r}/") for m in marked)]
    assert not unmarked, f"rules {unmarked} were killed but Snakemake marked none of their outputs incomplete: {marked}"
    assert_no_torn_results(workdir, uninterrupted, rule)
    assert_not_trusted(project, workdir, marked, rule)
    # the killed Snakemake could not release its lock: --unlock (safe now: nothing runs) then rerun
    proc = run_snakemake(project, workdir, "--unlock")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_rerun_incomplete_finishes(project, workdir, uninterrupted)
    print(f"\nSIGKILL during rule {rule}; marked incomplete: {marked}")


@pytest.mark.pipeline
def test_interrupted_pipeline_cleans_up_and_plans_its_jobs_again(tmp_path, project, small_pipeline_run, uninterrupted):
    """SIGINT (Ctrl-C): Snakemake stops the jobs, removes their outputs and releases the lock; the next run plans
    exactly the stages not yet done (a dry run, without --unlock or --rerun-incomplete). That such a rerun gives
    the uninterrupted run's bytes is shown after SIGKILL above, the harder case: its rerun starts from a stale lock
    and outputs marked incomplete."""
    workdir = run_until_the_kill_rules(small_pipeline_run, tmp_path / "interrupted")
    rule = start_and_kill(project, workdir, signal.SIGINT)
    assert_no_torn_results(workdir, uninterrupted, rule)
    left = [m for m in incomplete_outputs(workdir) if (workdir / m).exists()]
    assert not left, f"after SIGINT during {rule}, outputs of the stopped jobs are still there: {left}"
    dry = run_snakemake(project, workdir, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout.split("Job stats:", 1)[-1], flags=re.M))
    assert stats == {**dict.fromkeys((*TO_DO, "all"), "1"), "total": str(len(TO_DO) + 1)}, dry.stdout[-3000:]


def assert_no_torn_results(workdir: Path, expected: dict[str, bytes], rule: str):
    """Whatever exists under a final name is whole: the same bytes as the uninterrupted run's file."""
    partial = result_files(workdir / "results")
    torn = [
        rel for rel, data in partial.items() if rel in expected and data != expected[rel] and rel != "provenance.json"
    ]
    assert not torn, f"half-written results after killing {rule}: {torn}"


def assert_not_trusted(project: Path, workdir: Path, marked: list[str], rule: str):
    """A later run does not take the killed job's outputs as done: without --rerun-incomplete it refuses
    (when an output marked incomplete exists) or plans the job again (when none does)."""
    present = [m for m in marked if (workdir / m).exists()]
    dry = run_snakemake(project, workdir, "-n")
    text = dry.stdout + dry.stderr
    if present:
        assert dry.returncode != 0 and "incomplete" in text.lower(), text[-3000:]
    else:
        assert dry.returncode == 0 and f"rule {rule}:" in text, text[-3000:]


def assert_rerun_incomplete_finishes(project: Path, workdir: Path, expected: dict[str, bytes]):
    proc = run_snakemake(project, workdir, "--rerun-incomplete")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert incomplete_outputs(workdir) == []
    finished = result_files(workdir / "results")
    assert sorted(finished) == sorted(expected)
    differing = [rel for rel in expected if finished[rel] != expected[rel]]
    assert not differing, f"after --rerun-incomplete these differ from the uninterrupted run: {differing}"
