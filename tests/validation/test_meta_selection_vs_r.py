"""imrstats.meta.selection (selmodel_stepfun, selmodel_sensitivity) against R metafor 3.8.1's selmodel.

Reference numbers: data/meta_selection_reference.json, written by r/meta_selection.R from
data/meta_selection_data.csv (dat.bcg log risk ratios; dat.hackshaw1998 log odds ratios). Cases: BCG with
alternative "less" (steps 0.025 | 0.025, 0.10) and two-sided (0.05, 0.5), hackshaw with "greater" (0.025 |
0.025, 0.10); the Vevea & Woods (2005) fixed-weight sensitivity (four patterns) on both. This suite never runs R.

At the optimum: selmodel's default optimiser (optim BFGS on finite differences) stops up to ~1e-5 relative
short in the weights, and nlminb ~1e-6; the R script polishes the fit by Newton steps on metafor's own
log-likelihood and has selmodel recompute its SEs and tests there (the JSON keeps the score, ~1e-9, and the
default fit). Tolerance 1e-6 relative (absolute 1e-9 near 0). SEs are metafor's numerical (numDeriv) Hessian;
imrstats differentiates its analytic score numerically, and the two agree to the same 1e-6.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.meta.selection import selmodel_sensitivity, selmodel_stepfun, vevea_woods_2005

DATA = Path(__file__).parent / "data"
REL, ABS = 1e-6, 1e-9
REFERENCE = DATA / "meta_selection_reference.json"
PATTERNS = ["moderate one-tailed", "severe one-tailed", "moderate two-tailed", "severe two-tailed"]


def _load():
    if not REFERENCE.exists():
        return {"cases": [], "sensitivity": []}
    return json.loads(REFERENCE.read_text())


REF = _load()
SKIP = pytest.mark.skipif(
    not REF["cases"], reason="reference JSON not written yet (run tests/validation/r/meta_selection.R)"
)


def _data(name):
    table = pd.read_csv(DATA / "meta_selection_data.csv")
    table = table.loc[table["dataset"] == name]
    return table["yi"].to_numpy(), table["vi"].to_numpy()


def _vec(value) -> list[float]:
    if value is None:
        return [math.nan]
    if isinstance(value, list):
        return [math.nan if v is None else float(v) for v in value]
    return [float(value)]


def _compare(pairs: dict) -> None:
    bad = []
    for name, (ours, ref) in pairs.items():
        a = np.atleast_1d(np.asarray(ours, dtype=float)).ravel()
        b = np.asarray(_vec(ref), dtype=float)
        ok = a.shape == b.shape and all(
            math.isnan(y) and math.isnan(x) or (not math.isnan(y) and math.isclose(x, y, rel_tol=REL, abs_tol=ABS))
            for x, y in zip(a, b)
        )
        if not ok:
            bad.append((name, a.tolist(), b.tolist()))
    assert not bad, f"{len(bad)} of {len(pairs)} quantities differ from metafor: {bad}"


def _id(case) -> str:
    return f"{case['dataset']}-{case['alternative']}-{'/'.join(f'{s:g}' for s in case['steps'])}"


@SKIP
@pytest.mark.parametrize("case", REF["cases"], ids=[_id(c) for c in REF["cases"]])
def test_stepfun_matches_metafor(case):
    res = selmodel_stepfun(_data(case["dataset"]), case["steps"], alternative=case["alternative"])
    assert list(res.k_interval) == case["k_interval"]
    assert list(res.delta_fixed) == case["delta_fixed"]
    _compare(
        {
            "beta": (res.estimate, case["beta"]),
            "se": (res.se, case["se"]),
            "zval": (res.statistic, case["zval"]),
            "pval": (res.p, case["pval"]),
            "ci_lb": (res.ci_low, case["ci_lb"]),
            "ci_ub": (res.ci_high, case["ci_ub"]),
            "tau2": (res.tau2, case["tau2"]),
            "se_tau2": (res.se_tau2, case["se_tau2"]),
            "ci_lb_tau2": (res.tau2_ci_low, case["ci_lb_tau2"]),
            "ci_ub_tau2": (res.tau2_ci_high, case["ci_ub_tau2"]),
            "delta": (res.delta, case["delta"]),
            "se_delta": (res.se_delta, case["se_delta"]),
            "zval_delta": (res.z_delta, case["zval_delta"]),
            "pval_delta": (res.p_delta, case["pval_delta"]),
            "ci_lb_delta": (res.delta_ci_low, case["ci_lb_delta"]),
            "ci_ub_delta": (res.delta_ci_high, case["ci_ub_delta"]),
            "ll": (res.loglik, case["ll"]),
            "ll0": (res.loglik0, case["ll0"]),
            "LRT": (res.lrt, case["LRT"]),
            "LRTp": (res.lrt_p, case["LRTp"]),
            "LRT_tau2": (res.lrt_tau2, case["LRT_tau2"]),
            "LRTp_tau2": (res.lrt_tau2_p, case["LRTp_tau2"]),
            "unadjusted": (res.unadjusted_estimate, case["unadjusted"]["beta"]),
            "unadjusted_tau2": (res.unadjusted_tau2, case["unadjusted"]["tau2"]),
        }
    )
    assert res.lrt_df == case["LRTdf"]


@SKIP
def test_reference_is_at_the_optimum_and_default_optimiser_stops_short():
    """The reference's score is ~0; selmodel's default BFGS fit differs from it by more than 1e-7 somewhere
    (why the comparison is at the optimum) but by less than 1e-4."""
    gaps = []
    for case in REF["cases"] + REF["sensitivity"]:
        assert max(abs(s) for s in case["score"]) < 1e-6, (case["dataset"], case["score"])
    for case in REF["cases"]:
        default = case["default_optim"]
        ours = np.array([case["beta"], case["tau2"], *case["delta"]])
        theirs = np.array([default["beta"], default["tau2"], *default["delta"]])
        gaps.append(np.max(np.abs(theirs - ours) / np.abs(ours)))
    assert 1e-7 < max(gaps) < 1e-4


def _sens_id(case) -> str:
    return f"{case['dataset']}-{case['pattern']}"


@SKIP
@pytest.mark.parametrize("dataset, alternative", [("bcg", "less"), ("hackshaw1998", "greater")])
def test_sensitivity_matches_metafor(dataset, alternative):
    yi, vi = _data(dataset)
    table = selmodel_sensitivity(yi, vi, alternative=alternative)
    refs = [c for c in REF["sensitivity"] if c["dataset"] == dataset]
    assert [c["pattern"] for c in refs] == PATTERNS
    assert table["pattern"].tolist() == ["none", *PATTERNS]
    unadjusted = table.iloc[0]
    _compare(
        {
            "unadjusted beta": (unadjusted["estimate"], refs[0]["unadjusted"]["beta"]),
            "unadjusted se": (unadjusted["se"], refs[0]["unadjusted"]["se"]),
            "unadjusted tau2": (unadjusted["tau2"], refs[0]["unadjusted"]["tau2"]),
        }
    )
    for ref in refs:
        row = table.loc[table["pattern"] == ref["pattern"]].iloc[0]
        assert row["weights"] == ", ".join(f"{w:g}" for w in ref["weights"])
        _compare(
            {
                f"{ref['pattern']} beta": (row["estimate"], ref["beta"]),
                f"{ref['pattern']} se": (row["se"], ref["se"]),
                f"{ref['pattern']} ci_lb": (row["ci_low"], ref["ci_lb"]),
                f"{ref['pattern']} ci_ub": (row["ci_high"], ref["ci_ub"]),
                f"{ref['pattern']} tau2": (row["tau2"], ref["tau2"]),
                f"{ref['pattern']} change": (row["change"], ref["beta"] - ref["unadjusted"]["beta"]),
            }
        )
        assert "exploratory" in row["notes"]


@SKIP
def test_weight_table_is_the_one_r_used():
    """The Vevea & Woods (2005) weights in the library are the ones the R reference used."""
    table = vevea_woods_2005()
    ref = {c["pattern"]: c for c in REF["sensitivity"] if c["dataset"] == "bcg"}
    assert table["steps"].tolist() == ref[PATTERNS[0]]["steps"]
    for pattern in PATTERNS:
        assert table[pattern].tolist() == ref[pattern]["weights"]
