"""The delta adjustment of reference-based conditional mean imputation (rbmi's delta_template and
analyse(delta = ); Cro et al. 2020) on rbmi's antidepressant data (data/examples/antidepressant/), against an
independent R implementation, tests/validation/r/rbmi_delta.R, pinned in
tests/validation/data/rbmi_delta_reference.json: at the REML parameters, the data completed under JR and under MAR,
deltas a on DRUG's and c on PLACEBO's missing values at and after the ICE (the same at every visit, or times the
number of visits since the ICE), the DRUG - PLACEBO ANCOVA contrast per visit; and every non-zero cell of rbmi's
delta/dlag rule with delta = (5, 6, 7, 8), dlag = (1, 2, 3, 4). Deterministic: 1e-6 relative."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.trial import reference_mi as rm
from imrstats.trial.design import StudyDesign

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = json.loads((Path(__file__).parent / "data" / "rbmi_delta_reference.json").read_text())
VISITS = ("4", "5", "6", "7")
DESIGN = StudyDesign(visits=VISITS, intervention="DRUG", control="PLACEBO")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    long = pd.read_csv(ROOT / "data/examples/antidepressant/antidepressant.csv", dtype={"PATIENT": str, "VISIT": str})
    return rm.trial_frame_from_long(
        long, id="PATIENT", visit="VISIT", arm="THERAPY", outcome="CHANGE", baseline="BASVAL", visits=VISITS
    )


def ice_under(frame, strategy: str) -> pd.DataFrame:
    return rm.ice_from_dropout(frame, DESIGN, strategy=strategy).table


@pytest.mark.parametrize("strategy", ["JR", "MAR"])
@pytest.mark.parametrize("cumulative", [False, True])
def test_delta_adjusted_contrasts_match_r(frame, strategy, cumulative):
    ice = ice_under(frame, strategy)
    model = rm.fit_imputation_model(frame, ice, DESIGN)
    completed = model.impute()
    T = len(VISITS)
    unit = rm.delta_shift(
        rm.delta_template(frame, ice, DESIGN, delta=np.ones(T), dlag=np.ones(T) if cumulative else np.eye(T)[0]),
        model,
    )
    drug = (model.arms == "DRUG")[:, None]
    rows = [r for r in REFERENCE["results"] if r["strategy"] == strategy and r["cumulative"] == cumulative]
    assert len(rows) == 5
    for r in rows:
        shift = unit * np.where(drug, r["delta_drug"], r["delta_placebo"])
        ours = rm.ancova_by_visit(completed + shift, model.Z)["contrast"]
        np.testing.assert_allclose(ours, [r["contrast"][v] for v in VISITS], rtol=1e-6, atol=1e-9)


def test_shifted_cells_and_the_lagged_rule_match_r(frame):
    ice = ice_under(frame, "JR")
    template = rm.delta_template(frame, ice, DESIGN)
    shifted = template.loc[template["is_missing"] & template["is_post_ice"]]
    assert shifted.groupby("arm").size().to_dict() == REFERENCE["n_shifted"]
    lag = REFERENCE["lagged_template"]
    lagged = rm.delta_template(frame, ice, DESIGN, delta=lag["delta"], dlag=lag["dlag"])
    ours = lagged.loc[lagged["delta"] != 0.0, ["id", "visit", "delta"]].reset_index(drop=True)
    theirs = pd.DataFrame(lag["cells"]).sort_values(["id", "visit"], kind="stable").reset_index(drop=True)
    assert list(ours["id"]) == list(theirs["id"]) and list(ours["visit"]) == list(theirs["visit"])
    np.testing.assert_array_equal(ours["delta"].to_numpy(), theirs["delta"].to_numpy(dtype=float))
