"""The README's "Your own trial" commands, run as written (from a snapshot of the project, as a fresh clone
would run them): a spec drafted from the shipped real trial export, the export checked and analysed through the
confirmed spec, and the whole pipeline on a config holding only what the user changes. The numbers of the
likelihood MMRM on this data set are pinned against R in tests/validation/test_antidepressant_mmrm_vs_r.py;
here the same contrast must come out of the CLI's JSON and the pipeline's tables."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import PROJECT
from pipeline_runs import snapshot_project

BIN = Path(sys.executable).parent
REFERENCE = json.loads((PROJECT / "tests" / "validation" / "data" / "antidepressant_mmrm_reference.json").read_text())


def readme_commands() -> list[str]:
    """The commands of the README's "Your own trial" section (its bash block, comments dropped)."""
    text = (PROJECT / "README.md").read_text()
    section = text.split("## Your own trial", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_readme_lists_the_steps():
    commands = readme_commands()
    assert [c.split()[:2] for c in commands] == [
        [".venv/bin/imrstats", "init"],
        [".venv/bin/imrstats", "check"],
        [".venv/bin/imrstats", "trial"],
        [".venv/bin/imrstats", "trial"],
        ["printf", "'data:\\n"],
        [".venv/bin/snakemake", "--cores"],
    ]


@pytest.fixture(scope="module")
def own_trial(tmp_path_factory):
    project = snapshot_project(tmp_path_factory.mktemp("own_trial"))
    (project / "README.md").write_text((PROJECT / "README.md").read_text())
    runs = []
    for command in readme_commands():
        command = command.replace(".venv/bin/", f"{BIN}/")
        proc = subprocess.run(command, shell=True, cwd=project, capture_output=True, text=True, timeout=900)
        runs.append((command, proc))
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return project, runs


def test_init_drafts_a_spec_that_loads(own_trial):
    project, runs = own_trial
    stdout = runs[0][1].stdout
    assert "guesses to confirm" in stdout and "the draft loads: 172 participants" in stdout
    draft = (project / "my_draft.yaml").read_text()
    assert "# guess:" in draft and "layout: long" in draft and "id: PATIENT" in draft


def test_check_reads_the_export_through_the_spec(own_trial):
    _, runs = own_trial
    assert "172 participants" in runs[1][1].stdout
    assert runs[1][1].stdout.splitlines()[-1].startswith("0 errors")


def test_trial_cli_prints_the_users_labels_and_the_r_contrast(own_trial):
    project, runs = own_trial
    stdout = runs[2][1].stdout
    assert "Drug - Placebo" in stdout and "Week 6" in stdout
    assert not re.search(r"\b(IMR|TAU|fu12)\b", stdout)
    record = json.loads((project / "my_trial.json").read_text())
    assert record["settings"]["visits"] == ["week1", "week2", "week4", "week6"]
    assert record["settings"]["imputations"] == 100


def test_the_estimand_command_prints_its_attributes_and_the_jr_rows(own_trial):
    _, runs = own_trial
    stdout = runs[3][1].stdout
    assert "treatment_policy_jr" in stdout and "JR" in stdout
    assert "Drug - Placebo" in stdout and "Week 6" in stdout


def test_pipeline_on_the_study_gives_the_r_contrast_and_a_report_in_the_users_words(own_trial):
    project, _ = own_trial
    results = project / "results_my_trial"
    rows = pd.read_csv(results / "trial" / "tables" / "trial_likelihood_mmrm.csv").set_index("timepoint")
    want = REFERENCE["models"]["change_separate_slopes"]["contrast_drug_minus_placebo"]
    for visit, code in zip(["4", "5", "6", "7"], ["week1", "week2", "week4", "week6"]):
        assert rows.loc[code, "estimate"] == pytest.approx(want[visit]["estimate"], rel=1e-6)
        assert rows.loc[code, "se"] == pytest.approx(want[visit]["se"], rel=1e-6)
    section = (results / "trial" / "section.html").read_text()
    assert "Drug - Placebo" in section and "Week 6" in section
    assert not re.search(r"\b(IMR|TAU)\b", section)
    provenance = json.loads((results / "provenance.json").read_text())
    assert set(provenance["inputs"]) == {
        "data/examples/antidepressant/antidepressant.csv",
        "data/examples/antidepressant/study.yaml",
    }
    index = (results / "report" / "index.html").read_text()
    assert "mapped by the study spec" in index  # the service-use and implementation stages: why skipped
    assert shlex.split(readme_commands()[-1])[-1] == "my.yaml"


def test_an_spss_wide_export_goes_through_init_check_and_the_pipeline(tmp_path):
    """A wide SPSS file as a trial team exports it (arms 1/2 with value labels, Danish sex labels, ICD-10
    codes, -99 declared and undeclared, 999 for an unknown age, an instrument not in the registry):
    `imrstats init` drafts the spec, `imrstats check --study` passes, and the whole pipeline runs on a config
    naming the spec, with the user's arm labels in the trial's tables and report."""
    from exports import N, spss_wide

    project = snapshot_project(tmp_path / "project")
    spss_wide(project)
    imrstats = str(BIN / "imrstats")
    for args in (["init", "trial.sav", "--out", "study.yaml"], ["check", "--study", "study.yaml"]):
        proc = subprocess.run([imrstats, *args], cwd=project, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # m = 5 and no Bayesian pooling of the published evidence (not what this test is about)
    (project / "my.yaml").write_text(
        "data:\n  study: study.yaml\ntrial:\n  imputations: 5\nmeta:\n  bayes:\n    enabled: false\n"
    )
    cmd = [str(BIN / "snakemake"), "--cores", "2", "--configfile", "my.yaml"]
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    itt = pd.read_csv(project / "results" / "trial" / "tables" / "trial_itt_contrasts.csv")
    assert set(itt["outcome"]) == {"gaf_f", "cgi_s"} and set(itt["timepoint"]) == {"t1", "t2"}
    assert itt["quantity"].str.startswith("IMR - Usual care at").all()
    consort = pd.read_csv(project / "results" / "report" / "tables" / "data_consort_flow.csv")
    randomised = consort.iloc[0]
    assert "Usual care" in consort.to_string()
    assert sum(int(randomised[c]) for c in consort.columns if c in ("IMR", "Usual care")) == N
    log = pd.read_csv(project / "results" / "data" / "cleaning_log.csv")
    assert (log["table"] == "export trial.sav").sum() >= 6  # the -99 / 999 codes blanked while reading


def test_a_bad_spec_stops_the_pipeline_before_anything_is_written(tmp_path):
    """A spec naming a column the export lacks: Snakemake stops before planning any job, with one line naming the
    key, the file and the nearest column names, and exit code 2; no results folder is made."""
    project = snapshot_project(tmp_path / "project")
    spec = (project / "data" / "examples" / "antidepressant" / "study.yaml").read_text()
    (project / "data" / "examples" / "antidepressant" / "bad.yaml").write_text(
        spec.replace("id: PATIENT", "id: PATIENTS")
    )
    (project / "my.yaml").write_text("data:\n  study: data/examples/antidepressant/bad.yaml\n")
    cmd = [str(BIN / "snakemake"), "--cores", "1", "--configfile", "my.yaml"]
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("imrstats:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "id" in lines[0] and "antidepressant.csv" in lines[0] and "PATIENT" in lines[0], lines[0]
    assert not (project / "results").exists()
