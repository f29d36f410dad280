"""imrstats.meta.multilevel (rma_mv, robust_cr2) against R metafor 3.8.1 (rma.mv) and clubSandwich 0.5.8.

Reference numbers: data/meta_multilevel_reference.json, written by r/meta_multilevel.R from
data/meta_multilevel_konstantopoulos.csv (metafor's dat.konstantopoulos2011: 56 schools in 11 districts;
``rma.mv(yi, vi, random = ~ 1 | district/school)``, with and without the moderator year) and
data/meta_multilevel_imrs.csv (the curated IMRS effects, several per study, with the project's own conversion;
written by data/meta_multilevel_make_data.py; with and without the moderator clinician-rated), REML and ML.
CR2: clubSandwich ``coef_test(fit, vcov = "CR2", cluster = study)`` (Satterthwaite df) and ``conf_int``.
This suite never runs R.

The comparison is at the optimum: R's nlminb stops ~1e-7 (relative) short of it in sigma^2 and fails with
tighter tolerances, so the R script polishes its fit by Newton steps on numDeriv's gradient of metafor's own
log-likelihood and takes every number from rma.mv refitted at that optimum (the JSON keeps the score there and
the default fit). Tolerance: 1e-6 relative; absolute 1e-9 for quantities at or near 0 (a variance component
on the boundary, which metafor's default fit leaves at ~1e-11 and imrstats reports as 0).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.meta.multilevel import multilevel_inputs, rma_mv, robust_cr2

DATA = Path(__file__).parent / "data"
REL, ABS = 1e-6, 1e-9
REFERENCE = DATA / "meta_multilevel_reference.json"


def _cases():
    if not REFERENCE.exists():
        return []
    return json.loads(REFERENCE.read_text())["cases"]


CASES = _cases()


def _vec(value) -> list[float]:
    if value is None:
        return [math.nan]
    if isinstance(value, list):
        return [math.nan if v is None else float(v) for v in value]
    return [float(value)]


def _close(ours: float, ref: float) -> bool:
    if math.isnan(ref):
        return math.isnan(ours)
    return math.isclose(ours, ref, rel_tol=REL, abs_tol=ABS)


def _compare(pairs: dict) -> None:
    bad = []
    for name, (ours, ref) in pairs.items():
        ours_v, ref_v = np.atleast_1d(np.asarray(ours, dtype=float)).ravel(), np.asarray(_vec(ref), dtype=float)
        if ours_v.shape != ref_v.shape or not all(_close(a, b) for a, b in zip(ours_v, ref_v)):
            bad.append((name, ours_v.tolist(), ref_v.tolist()))
    assert not bad, f"{len(bad)} of {len(pairs)} quantities differ from R: {bad}"


def _fit(case):
    table = pd.read_csv(DATA / case["csv"])
    mods = table[case["mods"]] if case["mods"] else None
    return rma_mv(
        table["yi"], table["vi"], table[case["study"]], table[case["effect"]], mods=mods, method=case["method"]
    )


def _id(case) -> str:
    return f"{case['dataset']}-{case['method']}-{'+'.join(case['mods']) or 'intercept'}"


@pytest.mark.skipif(not CASES, reason="reference JSON not written yet (run tests/validation/r/meta_multilevel.R)")
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_rma_mv_matches_metafor(case):
    res = _fit(case)
    assert res.k == case["k"]
    assert (res.n_studies, res.n_effect_levels) == tuple(case["n_levels"])
    _compare(
        {
            "beta": (res.beta, case["beta"]),
            "se": (res.se, case["se"]),
            "zval": (res.statistic, case["zval"]),
            "pval": (res.p, case["pval"]),
            "ci_lb": (res.ci_low, case["ci_lb"]),
            "ci_ub": (res.ci_high, case["ci_ub"]),
            "sigma2": (res.sigma2, case["sigma2"]),
            "QE": (res.q_e, case["QE"]),
            "QEp": (res.q_e_p, case["QEp"]),
            "QM": (res.q_m, case["QM"]),
            "QMp": (res.q_m_p, case["QMp"]),
            "logLik": (res.loglik, case["logLik"]),
            "AIC": (res.aic, case["AIC"]),
            "BIC": (res.bic, case["BIC"]),
            "AICc": (res.aicc, case["AICc"]),
        }
    )


@pytest.mark.skipif(not CASES, reason="reference JSON not written yet (run tests/validation/r/meta_multilevel.R)")
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_cr2_matches_clubsandwich(case):
    rob = robust_cr2(_fit(case))
    cr2 = case["cr2"]
    _compare(
        {
            "beta": (rob.beta, cr2["beta"]),
            "se": (rob.se, cr2["se"]),
            "tstat": (rob.statistic, cr2["tstat"]),
            "df": (rob.df, cr2["df"]),
            "p": (rob.p, cr2["p"]),
            "ci_lb": (rob.ci_low, cr2["ci_lb"]),
            "ci_ub": (rob.ci_high, cr2["ci_ub"]),
            "vcov": (np.asarray(rob.vcov).ravel(), np.asarray(cr2["vcov"], dtype=float).ravel().tolist()),
        }
    )


@pytest.mark.skipif(not CASES, reason="reference JSON not written yet (run tests/validation/r/meta_multilevel.R)")
def test_reference_is_at_the_optimum():
    """The R reference is the optimum itself (score ~ 0 at interior components; negative at a boundary one).
    R's default nlminb fit stops short of it by up to 1e-5 relative in sigma^2 (the IMRS ML model with the
    rater moderator: 0.0063161202 vs 0.0063160570), which is why the comparison is at the optimum; it is
    still within 1e-4."""
    for case in CASES:
        scale = max(abs(case["logLik"]), 1.0)
        for s2, score, at_zero in zip(case["sigma2"], case["score"], case["score_at_zero"]):
            if s2 > 0:
                assert abs(score) * s2 < 1e-6 * scale, (_id(case), case["score"])
            else:
                assert at_zero is not None and at_zero < 0, (_id(case), case["score_at_zero"])
        default = case["default_control"]["sigma2"]
        assert all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-9) for a, b in zip(default, case["sigma2"]))


@pytest.mark.skipif(not CASES, reason="reference JSON not written yet (run tests/validation/r/meta_multilevel.R)")
def test_project_inputs_helper_gives_the_same_fit():
    """multilevel_inputs on the curated IMRS rows reproduces the R case and names every study and effect."""
    table = pd.read_csv(DATA / "meta_multilevel_imrs.csv")
    inputs = multilevel_inputs(table, effect="effect", mods=["clinician"])
    assert inputs.k == 9 and inputs.n_studies == 5
    assert "9 effects from 5 studies entered" in inputs.note and "no row was dropped" in inputs.note
    assert "Jensen 2019: 4" in inputs.note and "Levitt 2009: 2" in inputs.note
    res = inputs.fit(method="REML")
    case = next(c for c in CASES if c["dataset"] == "imrs" and c["method"] == "REML" and c["mods"] == ["clinician"])
    _compare({"beta": (res.beta, case["beta"]), "sigma2": (res.sigma2, case["sigma2"])})
    assert res.notes[0] == inputs.note
