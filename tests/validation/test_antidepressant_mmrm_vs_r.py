"""The MAR MMRM on a real trial, rbmi's antidepressant data (HAMD-17 change from baseline at weeks 1, 2, 4 and
6; DRUG vs PLACEBO; 172 patients, 608 visits; data/examples/antidepressant/), against R nlme::gls
(corSymm + varIdent by visit, REML) refined to the exact REML maximum (tests/validation/r/antidepressant_mmrm.R;
nlme's own optimiser stops short by up to 7e-6 relative in the contrasts, so the reference is taken at the
optimum, and both sides are compared there). Four models: separate or common baseline slope, with the change
score or the raw total as the response (the treatment contrasts must agree, baseline being a covariate)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.trial.mmrm.fit import fit_mmrm

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "examples" / "antidepressant" / "antidepressant.csv"
REFERENCE = json.loads((Path(__file__).parent / "data" / "antidepressant_mmrm_reference.json").read_text())
VISITS = ["4", "5", "6", "7"]
RTOL = 1e-6


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(DATA, dtype={"PATIENT": str, "VISIT": str, "POOLINV": str})


@pytest.mark.parametrize("model", sorted(REFERENCE["models"]))
def test_mar_mmrm_matches_r_at_the_reml_optimum(data, model):
    ref = REFERENCE["models"][model]
    common = model.endswith("common_slope")
    fit = fit_mmrm(
        data,
        ref["response"],
        id="PATIENT",
        time="VISIT",
        arm="THERAPY",
        baseline=None if common else "BASVAL",
        covariates=("BASVAL",) if common else (),
        reference_arm="PLACEBO",
        treatment_arm="DRUG",
        times=VISITS,
    )
    assert fit.converged, fit.notes
    assert fit.n_participants == ref["n_patients"] == 172
    contrasts = fit.contrasts.set_index("timepoint")
    for visit in VISITS:
        want = ref["contrast_drug_minus_placebo"][visit]
        assert contrasts.loc[visit, "estimate"] == pytest.approx(want["estimate"], rel=RTOL), visit
        assert contrasts.loc[visit, "se"] == pytest.approx(want["se"], rel=RTOL), visit
    # emmeans' least-squares means: baseline at its mean over the analysed rows
    means = fit.adjusted_means.set_index(["timepoint", "arm"])
    for visit in VISITS:
        for arm in ("DRUG", "PLACEBO"):
            want = ref["lsmeans"][visit][arm]
            assert means.loc[(visit, arm), "estimate"] == pytest.approx(want["estimate"], rel=RTOL), (visit, arm)
            assert means.loc[(visit, arm), "se"] == pytest.approx(want["se"], rel=RTOL), (visit, arm)
    np.testing.assert_allclose(fit.sigma, np.array(ref["covariance"]), rtol=RTOL)
    assert fit.reml_loglik == pytest.approx(ref["reml_loglik"], rel=1e-9)


def test_change_and_raw_total_give_the_same_contrasts():
    for slope in ("separate_slopes", "common_slope"):
        change = REFERENCE["models"][f"change_{slope}"]["contrast_drug_minus_placebo"]
        raw = REFERENCE["models"][f"hamdtl17_{slope}"]["contrast_drug_minus_placebo"]
        for visit in VISITS:
            assert raw[visit]["estimate"] == pytest.approx(change[visit]["estimate"], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("slope", ["separate", "common"])
def test_study_spec_path_gives_the_r_contrasts(slope):
    """The same numbers through the door a trial statistician uses: the shipped study spec
    (data/examples/antidepressant/study.yaml) read, checked and cleaned, then the trial stage's likelihood
    (MAR) MMRM, with the baseline slope chosen in the settings."""
    from imrstats.config import load_config
    from imrstats.data.stage import clean_study
    from imrstats.data.study import load_study
    from imrstats.trial.stage import run_trial_stage

    spec = ROOT / "data" / "examples" / "antidepressant" / "study.yaml"
    config = load_config(
        overrides={
            "data": {"study": str(spec)},
            "trial": {"imputations": 2, "baseline_slope": slope, "tipping_outcomes": [], "diagnostics_outcomes": []},
        }
    )
    tables = clean_study(load_study(spec), config).tables
    result = run_trial_stage(tables, config["trial"], seed=1)
    rows = result.tables["trial_likelihood_mmrm"].set_index("timepoint")
    ref = REFERENCE["models"]["change_separate_slopes" if slope == "separate" else "change_common_slope"]
    for visit, code in zip(VISITS, ["week1", "week2", "week4", "week6"]):
        want = ref["contrast_drug_minus_placebo"][visit]
        assert rows.loc[code, "estimate"] == pytest.approx(want["estimate"], rel=RTOL), code
        assert rows.loc[code, "se"] == pytest.approx(want["se"], rel=RTOL), code
        assert rows.loc[code, "quantity"].startswith("Drug - Placebo at Week")
    assert set(rows["n_analysed"]) == {172}
