"""imrstats.meta.influence (influence, baujat, ranktest, trimfill) and MetaResult.regtest against R metafor 3.8-1.

Reference numbers: ``tests/validation/data/meta_influence_reference.json``, written by
``tests/validation/r/meta_influence.R`` (metafor's influence.rma.uni, baujat, ranktest, regtest(model = "rma",
predictor = "sei") and trimfill.rma.uni) from the CSV files beside it: dat.bcg's log risk ratios
(``escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg)``), its first 3 and 2 trials, the client-rated
IMR Scale effects the meta stage pools with the sensitivity rows added (yi / vi computed by imrstats:
``meta_influence_make_data.py``), dat.hackshaw1998 (7 studies filled in) and 8 BCG trials with tied variances (the
rank test's tie-corrected normal approximation). Each data set with REML and DL, Wald z
and Knapp-Hartung; trim and fill with the L0, R0 and Q0 estimators, the side chosen from the data and forced.
This suite never runs R.

Tolerance: 1e-6 relative, absolute floor 1e-9 for quantities at or near 0. REML tau^2 (and every quantity built on
it, including the refits without a study and on the truncated or filled-in data) is compared at the optimum: R ran
with control = list(threshold = 1e-12, maxiter = 1000) and so does imrstats here (``rma(..., threshold=1e-12,
maxiter=1000)``; refits inherit the model's control). Trim and fill in R was given the model's test and level through
``...``, as imrstats refits the filled-in data with the model's own test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.errors import AnalysisError
from imrstats.meta.influence import baujat, influence, ranktest, trimfill
from imrstats.meta.random_effects import rma

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "meta_influence_reference.json").read_text())
REL, ABS = 1e-6, 1e-9
CONTROL = {"threshold": 1e-12, "maxiter": 1000}


def _datasets() -> dict[str, pd.DataFrame]:
    bcg = pd.read_csv(DATA / "meta_influence_bcg.csv")
    bcg = pd.DataFrame({"yi": bcg["yi"], "vi": bcg["vi"], "slab": [f"Trial {t}" for t in bcg["trial"]]})
    imrs = pd.read_csv(DATA / "meta_influence_imrs_client.csv")
    hack = pd.read_csv(DATA / "meta_influence_hackshaw.csv")
    return {
        "bcg": bcg,
        "imrs_client": pd.DataFrame({"yi": imrs["yi"], "vi": imrs["vi"], "slab": imrs["study"]}),
        "bcg_k3": bcg.iloc[:3].reset_index(drop=True),
        "bcg_k2": bcg.iloc[:2].reset_index(drop=True),
        "hackshaw": pd.DataFrame(
            {"yi": hack["yi"], "vi": hack["vi"], "slab": [f"{a} {y}" for a, y in zip(hack["author"], hack["year"])]}
        ),
        "ties": pd.read_csv(DATA / "meta_influence_ties.csv"),
    }


DATASETS = _datasets()
CASES = REF["cases"]
IDS = [f"{c['dataset']}-{c['method']}-{'knha' if c['knha'] else 'z'}" for c in CASES]


def _close(actual, expected, what: str) -> None:
    actual = np.atleast_1d(np.asarray(actual, dtype=float))
    expected = np.atleast_1d(np.asarray([math.nan if e is None else e for e in np.atleast_1d(expected)], dtype=float))
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs R {expected.shape}"
    both_nan = np.isnan(actual) & np.isnan(expected)
    ok = both_nan | (np.abs(actual - expected) <= np.maximum(REL * np.abs(expected), ABS))
    assert ok.all(), f"{what}: imrstats {actual[~ok]} vs metafor {expected[~ok]}"


def _fit(case):
    d = DATASETS[case["dataset"]]
    return rma(d["yi"], d["vi"], method=case["method"], knha=case["knha"], slab=list(d["slab"]), **CONTROL)


def test_reference_was_made_with_the_stated_control():
    assert REF["control"] == {"threshold": 1e-12, "maxiter": 1000}
    assert len(CASES) == 24 and {c["dataset"] for c in CASES} == set(DATASETS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_model(case):
    res = _fit(case)
    ref = case["rma"]
    assert res.k == ref["k"] == case["k"]
    for field in ("estimate", "se", "tau2", "q", "ci_low", "ci_high", "statistic", "p"):
        _close(getattr(res, field), ref[field], f"rma {field}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_influence(case):
    res = _fit(case)
    frame = influence(res)
    ref = case["influence"]
    assert list(frame["slab"]) == list(DATASETS[case["dataset"]]["slab"])
    for column in ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "qe_del", "hat", "weight", "dfbetas"):
        _close(frame[column], ref[column], f"influence {column}")
    assert list(frame["influential"]) == list(ref["influential"])
    assert (frame["influential_by"] != "").tolist() == list(ref["influential"])
    assert (frame["note"] == "").all()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_baujat(case):
    frame = baujat(_fit(case))
    _close(frame["x"], case["baujat"]["x"], "baujat x")
    _close(frame["y"], case["baujat"]["y"], "baujat y")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_ranktest(case):
    row = ranktest(_fit(case)).iloc[0]
    _close(row["estimate"], case["ranktest"]["tau"], "Kendall's tau")
    _close(row["p"], case["ranktest"]["p"], "rank test p")
    assert bool(row["exact"]) is (case["dataset"] != "ties")  # R's exact p without ties, the normal one with


@pytest.mark.parametrize(
    "case", [c for c in CASES if "regtest" in c], ids=[i for c, i in zip(CASES, IDS) if "regtest" in c]
)
def test_regtest_is_metafor_default(case):
    """MetaResult.regtest is metafor's regtest() default: model = "rma", predictor = "sei", the model's own
    estimator, test and control."""
    eg = _fit(case).regtest().set_index("quantity")
    ref = case["regtest"]
    slope = eg.loc["funnel asymmetry (slope on SE)"]
    limit = eg.loc["limit estimate (SE -> 0)"]
    _close(slope["statistic"], ref["statistic"], "Egger statistic")
    _close(slope["p"], ref["p"], "Egger p")
    _close(slope["estimate"], ref["slope"], "Egger slope")
    _close(slope["se"], ref["slope_se"], "Egger slope SE")
    _close(limit["estimate"], ref["limit"], "limit estimate")
    _close(limit["ci_low"], ref["limit_ci_low"], "limit CI low")
    _close(limit["ci_high"], ref["limit_ci_high"], "limit CI high")


TRIMFILL = [(c, t) for c in CASES for t in c["trimfill"]]
TRIMFILL_IDS = [f"{i}-{t['estimator']}-{t['side_arg']}" for c, i in zip(CASES, IDS) for t in c["trimfill"]]


@pytest.mark.parametrize(("case", "tf_ref"), TRIMFILL, ids=TRIMFILL_IDS)
def test_trimfill(case, tf_ref):
    res = _fit(case)
    side = None if tf_ref["side_arg"] == "auto" else tf_ref["side_arg"]
    if not tf_ref["ok"]:  # metafor stops (k = 2: Egger's regression to choose the side has no df)
        with pytest.raises(AnalysisError, match="side"):
            trimfill(res, side=side, estimator=tf_ref["estimator"])
        return
    tf = trimfill(res, side=side, estimator=tf_ref["estimator"])
    assert tf.side == tf_ref["side"]
    assert tf.k0 == tf_ref["k0"]
    _close(tf.se_k0, tf_ref["se_k0"], "SE of k0")
    _close(tf.p_k0, tf_ref["p_k0"], "p of k0")
    data = tf.data
    assert data["filled"].tolist() == list(tf_ref["fill"])
    _close(data["yi"], tf_ref["yi"], "filled-in yi")
    _close(data["vi"], tf_ref["vi"], "filled-in vi")
    for field in ("estimate", "se", "tau2", "q", "ci_low", "ci_high", "statistic", "p"):
        _close(getattr(tf.fit, field), tf_ref["fit"][field], f"trimfill fit {field}")
    assert tf.fit.k == tf_ref["fit"]["k"]


def test_some_reference_cases_fill_in_studies():
    """The reference exercises the filled-in branch: several studies (hackshaw) and both sides."""
    filled = {(c["dataset"], t["side"], t["k0"]) for c, t in TRIMFILL if t["ok"] and t["k0"] > 0}
    assert ("hackshaw", "left", 7) in filled and ("bcg", "right", 1) in filled
    assert any(k0 == 8 for _, _, k0 in filled)
