"""The door a trial statistician uses for an estimand: ``imrstats trial --study data/examples/antidepressant/study.yaml
--estimand treatment_policy_jr --json PATH`` (the shipped spec, the default estimand: every monotone dropout an ICE
under jump to reference, PLACEBO the reference, conditional mean imputation with the jackknife, ANCOVA per visit)
against rbmi vignette CondMean_Inference, section 3.4 "Pool": the printed values pinned in
tests/validation/test_rbmi_condmean.py (``VIGNETTE``), reused here.

The spec's outcome is the HAM-D17 total with the baseline from BASVAL, as the study records it; the vignette
analyses CHANGE = total - BASVAL, with THERAPY in the order (DRUG, PLACEBO), so its ``trt`` is PLACEBO - DRUG,
``lsm_ref`` the DRUG arm and ``lsm_alt`` the PLACEBO arm. The ANCOVA's treatment contrast on the baseline is the same
for the total and for the change (and so are its jackknife SE, CI and p): they are compared with the contrast's
sign turned. Each arm's LS mean of the total is the change's plus the analysed participants' mean baseline: the LS
means are compared after that shift (their jackknife SEs differ: each leave-one-out sample has its own baseline
mean)."""

from __future__ import annotations

import contextlib
import io
import json

import pandas as pd
import pytest
from validation.test_rbmi_condmean import VIGNETTE

from conftest import EXAMPLES
from imrstats.cli import main

SPEC = EXAMPLES / "antidepressant" / "study.yaml"
DATA = EXAMPLES / "antidepressant" / "antidepressant.csv"
VISITS = {"week1": "4", "week2": "5", "week4": "6", "week6": "7"}  # the spec's visit codes -> rbmi's VISIT
HALF_UNIT = 0.0005 + 1e-12  # half a unit of the vignette's last printed decimal


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("estimand") / "jr.json"
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = main(["trial", "--study", str(SPEC), "--estimand", "treatment_policy_jr", "--json", str(out)])
    assert code == 0
    return text.getvalue(), json.loads(out.read_text())


def test_the_contrasts_are_the_vignettes(run):
    _, payload = run
    rows = {r["timepoint"]: r for r in payload["results"]}
    assert list(rows) == ["week1", "week2", "week4", "week6"]
    for visit, row in rows.items():
        printed = VIGNETTE[f"trt_{VISITS[visit]}"]  # PLACEBO - DRUG: est, se, lci, uci, p
        ours = (-row["contrast"], row["contrast_se"], -row["contrast_ci_high"], -row["contrast_ci_low"])
        for mine, value in zip(ours, printed[:4]):
            assert abs(mine - value) <= HALF_UNIT, (visit, mine, value)
        assert abs(row["contrast_p"] - printed[4]) <= HALF_UNIT
        assert row["n_analysed"] == 172 and row["n_excluded"] == 0
        assert (row["n_jr_drug"], row["n_jr_placebo"]) == (20, 23)


def test_the_ls_means_are_the_vignettes_after_the_baseline_shift(run):
    _, payload = run
    baseline = pd.read_csv(DATA).drop_duplicates("PATIENT")["BASVAL"]
    assert len(baseline) == 172
    shift = float(baseline.mean())
    for row in payload["results"]:
        visit = VISITS[row["timepoint"]]
        assert abs(row["lsmean_drug"] - shift - VIGNETTE[f"lsm_ref_{visit}"][0]) <= HALF_UNIT
        assert abs(row["lsmean_placebo"] - shift - VIGNETTE[f"lsm_alt_{visit}"][0]) <= HALF_UNIT


def test_the_printout_names_the_attributes_the_ices_and_each_visits_rows(run):
    text, payload = run
    for attribute in ("treatment:", "population:", "variable:", "intercurrent events:", "summary:"):
        assert f"  {attribute}" in text
    assert "treatment:           Drug vs Placebo" in text
    assert "Hamilton Depression Rating Scale, 17 items (HAM-D17) at Week 6" in text
    assert "Drug: JR 20, no ICE 64 (of 84 analysed); Placebo: JR 23, no ICE 65 (of 88 analysed)" in text
    lines = text.splitlines()
    week6 = next(i for i, line in enumerate(lines) if line.startswith("Week 6"))
    assert "Drug - Placebo" in lines[week6]
    assert lines[week6 + 1].split()[:3] == ["LS", "mean", "Drug"]
    assert lines[week6 + 2].split()[:3] == ["LS", "mean", "Placebo"]
    # the vignette's p of trt_7 is 0.013; printed as the report prints p-values (2 decimals from 0.01 on)
    assert lines[week6].split()[-1] == "0.01"  # (the unrounded p is checked against the vignette above)
    assert payload["estimand"]["attributes"]["treatment"] == "Drug vs Placebo"
    assert payload["flags"] == []
