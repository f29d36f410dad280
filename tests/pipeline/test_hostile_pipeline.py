"""Hostile settings and input folders for the whole pipeline (outputs stay in their folder; a trial-only
folder gives a trial report): `snakemake` run as a user runs it, in a subprocess, on the session's snapshot of
the project (tests/pipeline_runs.py).

The contract, for each case:

- the exit code: 2 for a bad setting or input folder (refused before the DAG is built), 0 for a run that works;
- ONE clear line on stderr naming the key (``results_dir``, ``data.input_dir``, ...) or the file and the cause,
  and no Python traceback (no ``Traceback``, no ``File "..."`` frame of Snakemake's wrapper);
- the inputs byte-identical (SHA-256 before and after);
- nothing written outside the test's own folder (the parent of the results folder, ``/`` for a results folder
  that would be the root, the test's folder as a whole for a refused run) and no partial results.

Refusals are checked with ``snakemake -n`` (the settings check runs while the Snakefile is read, so a dry run
shows it in seconds); one real run, on a trial-only folder (the small example's participants and assessments,
Bayesian pooling off), shows the stages whose inputs are absent skipped with their reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hostile_configs import BOMB

from conftest import EXAMPLES
from pipeline_runs import SNAKEMAKE, snakemake_env

pytestmark = pytest.mark.pipeline

NO_BAYES = "meta: {bayes: {enabled: false}}\ntrial: {imputations: 5}\n"


def write_config(workdir: Path, config_text: str) -> Path:
    """The case's --configfile, beside the working directory (so it is no entry of the working directory)."""
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir.parent / f"{workdir.name}.yaml"
    configfile.write_bytes(config_text.encode())
    return configfile


def snakemake(project: Path, workdir: Path, config_text: str, *extra: str, dry: bool = True, timeout: int = 900):
    """`snakemake` on the snapshot's Snakefile in ``workdir``, with ``config_text`` as its --configfile."""
    configfile = write_config(workdir, config_text)
    cmd = [str(SNAKEMAKE), "-s", str(project / "Snakefile"), "--directory", str(workdir), "--cores", "2"]
    cmd += ["--configfile", str(configfile), *(["-n"] if dry else []), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=snakemake_env(project), timeout=timeout)


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (symbolic links not followed): its relative path and SHA-256 (or its kind)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "link -> " + os.readlink(path)
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "folder"
    return out


def trial_only(folder: Path) -> Path:
    """A trial team's export without service use or a programme registry: participants and assessments."""
    folder.mkdir(parents=True)
    for table in ("participants", "assessments"):
        shutil.copy(EXAMPLES / "small_csv" / f"{table}.csv", folder / f"{table}.csv")
    return folder


def assert_refused(proc: subprocess.CompletedProcess, key: str, *cause: str) -> str:
    """Exit code 2 and one clear line on stderr naming ``key`` and the cause; no traceback. Returns the line."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr and 'File "' not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr[-3000:]
    line = lines[0]
    assert line.startswith("imrstats: ") and f"{key}: " in line, line
    for text in cause:
        assert text in line, line
    return line


def refused_cleanly(project: Path, tmp_path: Path, workdir: Path, config_text: str, key: str, *cause: str, watch=()):
    """Run the case (dry), check the refusal, and that nothing under ``tmp_path`` (inputs included) nor in
    ``watch`` (folders outside it) changed: no partial result, nothing written anywhere."""
    write_config(workdir, config_text)
    before = tree(tmp_path)
    outside = {str(folder): sorted(os.listdir(folder)) for folder in watch}
    line = assert_refused(snakemake(project, workdir, config_text), key, *cause)
    assert tree(tmp_path) == before
    assert {str(folder): sorted(os.listdir(folder)) for folder in watch} == outside
    return line


# ---------------------------------------------------------------------------------------------------
# Case 5: outputs stay in their folder


def test_results_dir_root_is_refused(pipeline_project, tmp_path):
    line = refused_cleanly(
        pipeline_project, tmp_path, tmp_path / "work", "results_dir: /\n", "results_dir", "filesystem root", watch=["/"]
    )
    assert "'/'" in line


def test_results_dir_climbing_out_of_the_working_directory_is_refused(pipeline_project, tmp_path):
    workdir = tmp_path / "a" / "b" / "work"
    refused_cleanly(
        pipeline_project,
        tmp_path,
        workdir,
        "results_dir: ../../x\n",
        "results_dir",
        "'../../x'",
        "outside the working directory",
        "allow_results_outside",
    )
    assert not (tmp_path / "a" / "x").exists()


def test_results_dir_equal_to_the_input_folder_is_refused(pipeline_project, tmp_path):
    workdir = tmp_path / "work"
    trial_only(workdir / "in")
    config = f"data: {{source: directory, input_dir: in}}\nresults_dir: in\n{NO_BAYES}"
    refused_cleanly(
        pipeline_project, tmp_path, workdir, config, "results_dir", "is the folder of the inputs of data.input_dir"
    )


def test_results_dir_inside_the_input_folder_is_refused(pipeline_project, tmp_path):
    workdir = tmp_path / "work"
    trial_only(workdir / "in")
    config = f"data: {{source: directory, input_dir: in}}\nresults_dir: in/results\n{NO_BAYES}"
    refused_cleanly(
        pipeline_project,
        tmp_path,
        workdir,
        config,
        "results_dir",
        "lies inside the folder of the inputs of data.input_dir",
    )


def test_results_dir_containing_the_input_folder_is_refused(pipeline_project, tmp_path):
    workdir = tmp_path / "work"
    trial_only(workdir / "out" / "in")
    config = f"data: {{source: directory, input_dir: out/in}}\nresults_dir: out\n{NO_BAYES}"
    refused_cleanly(pipeline_project, tmp_path, workdir, config, "results_dir", "contains the folder of the inputs")


def test_results_dir_containing_the_published_data_is_refused(pipeline_project, tmp_path):
    """The meta stage's published rows are inputs too: a results folder around them is refused."""
    workdir = tmp_path / "work"
    (workdir / "mine" / "published").mkdir(parents=True)
    rows = pipeline_project / "data" / "published" / "published_outcomes.csv"
    shutil.copy(rows, workdir / "mine" / "published" / "published_outcomes.csv")
    config = "meta: {published_outcomes: mine/published/published_outcomes.csv}\nresults_dir: mine\n"
    refused_cleanly(
        pipeline_project, tmp_path, workdir, config, "results_dir", "meta.published_outcomes", "outputs would mix"
    )


def test_results_dir_symlink_to_root_is_refused(pipeline_project, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "results").symlink_to("/")
    line = refused_cleanly(
        pipeline_project, tmp_path, workdir, "results_dir: results\n", "results_dir", "filesystem root", watch=["/"]
    )
    assert "resolved: /)" in line


def test_results_dir_home_directory_is_refused(pipeline_project, tmp_path):
    home = Path.home()
    refused_cleanly(
        pipeline_project,
        tmp_path,
        tmp_path / "work",
        f"results_dir: {home}\n",
        "results_dir",
        "home directory",
    )


def test_results_dir_outside_is_accepted_only_under_an_allowed_folder(pipeline_project, tmp_path):
    """allow_results_outside lets results lie outside the working directory: refused without it, planned with."""
    workdir, scratch = tmp_path / "work", tmp_path / "scratch"
    scratch.mkdir()
    refused_cleanly(
        pipeline_project, tmp_path, workdir, f"results_dir: {scratch / 'out'}\n", "results_dir", "outside the working"
    )
    proc = snakemake(pipeline_project, workdir, f"results_dir: {scratch / 'out'}\nallow_results_outside: [{scratch}]\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(scratch / "out" / "report" / "index.html") in proc.stdout + proc.stderr
    assert not (scratch / "out").exists()  # a dry run writes nothing


# ---------------------------------------------------------------------------------------------------
# Case 6: the input folder


def test_missing_input_dir_is_refused(pipeline_project, tmp_path):
    config = f"data: {{source: directory, input_dir: nowhere}}\n{NO_BAYES}"
    refused_cleanly(
        pipeline_project, tmp_path, tmp_path / "work", config, "data.input_dir", "'nowhere'", "no such folder"
    )


def test_empty_input_dir_is_refused(pipeline_project, tmp_path):
    (tmp_path / "work" / "in").mkdir(parents=True)
    config = f"data: {{source: directory, input_dir: in}}\n{NO_BAYES}"
    refused_cleanly(pipeline_project, tmp_path, tmp_path / "work", config, "data.input_dir", "holds no input tables")


def test_input_dir_without_any_table_file_is_refused(pipeline_project, tmp_path):
    """A folder of other files (a README, a table under another name) holds no input table either."""
    folder = tmp_path / "work" / "in"
    folder.mkdir(parents=True)
    (folder / "README.txt").write_text("export of 2024-05-01\n")
    shutil.copy(EXAMPLES / "small_csv" / "participants.csv", folder / "Participants_export.csv")
    config = f"data: {{source: directory, input_dir: in}}\n{NO_BAYES}"
    refused_cleanly(pipeline_project, tmp_path, tmp_path / "work", config, "data.input_dir", "holds no input tables")


def test_input_dir_that_is_a_file_is_refused(pipeline_project, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copy(EXAMPLES / "small_csv" / "participants.csv", workdir / "participants.csv")
    config = f"data: {{source: directory, input_dir: participants.csv}}\n{NO_BAYES}"
    refused_cleanly(pipeline_project, tmp_path, workdir, config, "data.input_dir", "is a file")


def test_input_dir_with_two_files_for_one_table_is_refused(pipeline_project, tmp_path):
    folder = trial_only(tmp_path / "work" / "in")
    shutil.copy(EXAMPLES / "small_parquet" / "participants.parquet", folder / "participants.parquet")
    config = f"data: {{source: directory, input_dir: in}}\n{NO_BAYES}"
    refused_cleanly(
        pipeline_project,
        tmp_path,
        tmp_path / "work",
        config,
        "data.input_dir",
        "several files for table 'participants'",
    )


def test_programme_only_folder_plans_the_implementation_stage_alone(pipeline_project, tmp_path):
    """The stage list follows the tables found: a registry alone plans implementation (and the published-data
    stages), not the trial, services or evidence stages, and no trial table is expected from clean."""
    folder = tmp_path / "work" / "in"
    folder.mkdir(parents=True)
    shutil.copy(EXAMPLES / "small_csv" / "programme.csv", folder / "programme.csv")
    proc = snakemake(pipeline_project, tmp_path / "work", f"data: {{source: directory, input_dir: in}}\n{NO_BAYES}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = set(re.findall(r"^rule (\w+):", proc.stdout + proc.stderr, flags=re.M))
    assert jobs == {"clean", "meta", "implementation", "audit", "report", "all"}, jobs
    assert "results/data/programme.parquet" in proc.stdout and "participants.parquet" not in proc.stdout
    assert not (tmp_path / "work" / "results").exists()


def test_trial_only_folder_gives_a_trial_report(pipeline_project, tmp_path):
    """A real run: the trial, meta, evidence and audit stages run; services and implementation are skipped, and
    the report's front page and provenance.json say so and why. Exit 0, inputs untouched, results in their folder,
    no absolute path of this machine in the report or the provenance record."""
    workdir = tmp_path / "work"
    folder = trial_only(workdir / "in")
    config = f"data: {{source: directory, input_dir: in}}\n{NO_BAYES}"
    write_config(workdir, config)
    inputs = tree(folder)
    outside = sorted(os.listdir(tmp_path))
    proc = snakemake(pipeline_project, workdir, config, dry=False, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr
    assert "imrstats: stage services skipped: no service_use table in the input folder" in proc.stderr
    assert tree(folder) == inputs
    assert sorted(os.listdir(tmp_path)) == outside
    assert sorted(os.listdir(workdir)) == [".snakemake", "in", "results"]
    results = workdir / "results"
    assert not (results / "services").exists() and not (results / "implementation").exists()
    leftovers = [p for p in results.rglob(".*") if p.is_file() and p.name != ".snakemake_timestamp"]
    assert not leftovers  # no temporary file of an atomic write left behind
    page = (results / "report" / "index.html").read_text()
    text = re.sub(r"<[^>]+>", "", re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page))
    assert "Stages skipped" in text
    assert "Service use: skipped, no service_use table in the input folder" in text
    assert "Implementation: skipped, no programme table in the input folder" in text
    # one page per stage that ran, each holding its section; none for the skipped stages
    pages = sorted(p.name for p in (results / "report").glob("*.html"))
    assert pages == sorted(["index.html", "trial.html", "meta.html", "evidence.html", "audit.html"])
    for stage in ("trial", "meta", "evidence", "audit"):
        assert f"<section id='{stage}'>" in (results / "report" / f"{stage}.html").read_text()
    assert "Participant flow (CONSORT)" in text and "Data source: directory (in)" in text
    record = json.loads((results / "provenance.json").read_text())
    assert set(record["stages_skipped"]) == {"services", "implementation"}
    assert "programme" in record["stages_skipped"]["implementation"]
    assert set(record["inputs"]) == {"in/participants.csv", "in/assessments.csv"}
    expected = hashlib.sha256((folder / "participants.csv").read_bytes()).hexdigest()
    assert record["inputs"]["in/participants.csv"] == expected
    for where in (page, json.dumps(record)):
        assert str(tmp_path) not in where and str(pipeline_project) not in where


# ---------------------------------------------------------------------------------------------------
# Bad configs through snakemake --configfile


@pytest.mark.parametrize(
    ("config_text", "key", "cause"),
    [
        ("trial: {imputatons: 5}\n", "trial.imputatons", "unknown key"),
        ("trial: {imputations: five}\n", "trial.imputations", "must be an integer, got 'five'"),
        ("results_dir: 3\n", "results_dir", "must be a string, got 3"),
    ],
    ids=["unknown-key", "wrong-type", "results-dir-not-text"],
)
def test_bad_setting_is_one_line(pipeline_project, tmp_path, config_text, key, cause):
    refused_cleanly(pipeline_project, tmp_path, tmp_path / "work", config_text, key, cause)


def test_alias_bomb_configfile_is_refused_quickly(pipeline_project, tmp_path):
    """A YAML alias bomb handed to snakemake --configfile: refused by its size before it is expanded (the
    refusal takes seconds, not the machine's memory)."""
    refused_cleanly(pipeline_project, tmp_path, tmp_path / "work", BOMB, "(top level)", "once aliases are expanded")
