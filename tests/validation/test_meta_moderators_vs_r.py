"""imrstats.meta.moderators (meta-regression, permutation test, subgroup analysis) against R metafor 3.8.1.

Reference numbers: ``tests/validation/data/meta_moderators_reference.json``, written by
``tests/validation/r/meta_moderators.R`` (metafor 3.8-1, R 4.2.2) from ``meta_moderators_bcg.csv`` (metafor's
dat.bcg, Colditz et al. 1994, log risk ratios by escalc(measure = "RR")) and ``meta_moderators_published.csv``
(the curated imrs_client / imrs_clinician effects computed in Python by ``imrstats.meta.stage.outcome_inputs``,
``meta_moderators_make_data.py``); this suite never runs R.

Tolerance: 1e-6 relative with an absolute floor of 1e-9 (deterministic algorithms, replicated step by step).
ML / REML tau^2 is compared at the optimum: both sides fit with metafor's control threshold = 1e-12 and
maxiter = 1000 (metafor's default stops Fisher scoring when tau^2 changes by < 1e-5, which leaves tau^2 about
1e-7 from the optimum).

Permutation tests. Exact tests (every distinct permutation of the rows of X; a 7-study subset of dat.bcg, where
metafor's exact = TRUE is feasible) are deterministic and must agree exactly. An approximate test cannot be
compared draw for draw (numpy's generator is not R's): imrstats' seeded 1000-permutation p-values are compared
with metafor's 20000-permutation p-values within their Monte Carlo error: |p_py - p_R| <= 4 sqrt(p (1 - p) (1 /
1000 + 1 / 20000)) + 1 / 1000, p = p_R (binomial SE of a p-value from n permutations is sqrt(p (1 - p) / n), at
most 0.016 at n = 1000; 4 SE; 1 / 1000 for the observed arrangement both count among the permutations).

Deliberate departure: a model through the origin (mods = ~ ablat - 1) is not centred (metafor 3.8 centres yi for
tau^2 and QE in every model); its reference is the root of the REML score of the uncentred yi and QE by hand.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.meta.moderators import permutest, rma_mods, subgroups

DATA = Path(__file__).parent / "data"
REL, ABS = 1e-6, 1e-9
CONTROL = {"threshold": 1e-12, "maxiter": 1000}
REF = json.loads((DATA / "meta_moderators_reference.json").read_text())
BCG = pd.read_csv(DATA / "meta_moderators_bcg.csv")
PUBLISHED = pd.read_csv(DATA / "meta_moderators_published.csv")
PERMUTATION_SEED = 20240611


def _data(name: str) -> pd.DataFrame:
    if name == "bcg":
        return BCG
    if name == "bcg_trials_1_7":
        return BCG.iloc[:7].reset_index(drop=True)
    return PUBLISHED.loc[PUBLISHED["outcome_label"] == name].reset_index(drop=True)


def _close(ours, ref) -> bool:
    if ref is None:
        return ours is None or (isinstance(ours, float) and math.isnan(ours))
    return math.isclose(float(ours), float(ref), rel_tol=REL, abs_tol=ABS)


def _compare(ours: dict, ref: dict) -> None:
    bad = []
    for key, value in ref.items():
        mine = ours[key]
        values = value if isinstance(value, list) else [value]
        mines = list(np.atleast_1d(mine)) if isinstance(value, list) else [mine]
        if len(values) != len(mines) or not all(_close(m, r) for m, r in zip(mines, values)):
            bad.append((key, mines, values))
    assert not bad, f"{len(bad)} of {len(ref)} quantities differ from metafor: {bad[:4]}"


def _r_term(name: str) -> str:
    """metafor's coefficient names as imrstats names them: intrcpt -> intercept, allocrandom -> alloc[random]."""
    if name == "intrcpt":
        return "intercept"
    factor = re.fullmatch(r"factor\((\w+)\)(\w+)", name)
    if factor:
        return f"{factor.group(1)}[{factor.group(2)}]"
    level = re.fullmatch(r"alloc(\w+)", name)
    return f"alloc[{level.group(1)}]" if level else name


def _fit_id(fit: dict) -> str:
    return f"{fit['data']}-{fit['mods']}-{fit['method']}-{'knha' if fit['knha'] else 'z'}"


@pytest.mark.parametrize("ref", REF["fits"], ids=_fit_id)
def test_meta_regression_matches_metafor(ref):
    data = _data(ref["data"])
    res = rma_mods("yi", "vi", ref["mods"], data=data, method=ref["method"], knha=ref["knha"], control=CONTROL)
    assert list(res.terms) == [_r_term(t) for t in ref["terms"]]
    assert (res.k, res.p) == (ref["k"], ref["p"])
    ours = {
        "beta": res.beta,
        "se": res.se,
        "statistic": res.statistic,
        "p_value": res.pval,
        "ci_low": res.ci_low,
        "ci_high": res.ci_high,
        "tau2": res.tau2,
        "qe": res.qe,
        "qe_p": res.qe_p,
        "qm": res.qm,
        "qm_df": list(res.qm_df),
        "qm_p": res.qm_p,
        "i2": res.i2,
        "h2": res.h2,
        "r2": res.r2,
        "s2w": res.s2w,
    }
    wanted = {key: ref[key] for key in ours}
    if ref["method"] != "EE":
        ours["se_tau2"], wanted["se_tau2"] = res.se_tau2, ref["se_tau2"]
        ci = res.confint().set_index("quantity")
        ours["confint_tau2"] = [ci.loc["tau^2 (residual)", "ci_low"], ci.loc["tau^2 (residual)", "ci_high"]]
        ours["confint_i2"] = [ci.loc["I^2 (%) (residual)", "ci_low"], ci.loc["I^2 (%) (residual)", "ci_high"]]
        wanted["confint_tau2"], wanted["confint_i2"] = ref["confint_tau2"], ref["confint_i2"]
    _compare(ours, wanted)
    pred_ref = ref["predict"]
    pred = res.predict(np.asarray(pred_ref["newmods"], dtype=float))
    _compare(
        {
            "pred": pred["estimate"].tolist(),
            "se": pred["se"].tolist(),
            "ci_low": pred["ci_low"].tolist(),
            "ci_high": pred["ci_high"].tolist(),
            "pi_low": pred["pi_low"].tolist(),
            "pi_high": pred["pi_high"].tolist(),
        },
        {key: pred_ref[key] for key in ("pred", "se", "ci_low", "ci_high", "pi_low", "pi_high")},
    )


def test_predictions_by_moderator_values_match_metafor():
    """The brief's predictions (ablat = 10, 30, 50 with year at its mean) and the allocation levels, given as
    moderator values rather than model-matrix rows."""
    by_id = {_fit_id(f): f for f in REF["fits"]}
    res = rma_mods("yi", "vi", "ablat + year", data=BCG, control=CONTROL)
    pred = res.predict(pd.DataFrame({"ablat": [10, 30, 50], "year": BCG["year"].mean()}))
    ref = by_id["bcg-ablat + year-REML-z"]["predict"]
    _compare(
        {"pred": pred["estimate"].tolist(), "pi_high": pred["pi_high"].tolist()},
        {"pred": ref["pred"], "pi_high": ref["pi_high"]},
    )
    assert pred["ablat"].tolist() == [10, 30, 50]
    for mods in ("alloc", "factor(alloc) - 1"):
        res = rma_mods("yi", "vi", mods, data=BCG, knha=True, control=CONTROL)
        pred = res.predict({"alloc": ["alternate", "random", "systematic"]})
        ref = by_id[f"bcg-{mods}-REML-knha"]["predict"]
        _compare(
            {"pred": pred["estimate"].tolist(), "ci_low": pred["ci_low"].tolist()},
            {"pred": ref["pred"], "ci_low": ref["ci_low"]},
        )


def test_published_moderator_data_are_the_pipelines_effects():
    """The curated effects R fitted are those the meta stage computes today (so the comparison is of our numbers)."""
    from imrstats.data.published import load_published_outcomes
    from imrstats.meta.stage import outcome_inputs

    inputs = outcome_inputs(load_published_outcomes(None), None)
    for label in ("imrs_client", "imrs_clinician"):
        ours = inputs[label][["study", "year", "yi", "vi"]].reset_index(drop=True)
        pinned = _data(label)[["study", "year", "yi", "vi"]]
        pd.testing.assert_frame_equal(ours, pinned, check_dtype=False, rtol=1e-12)


@pytest.mark.parametrize("ref", REF["origin"], ids=lambda r: f"origin-{'knha' if r['knha'] else 'z'}")
def test_model_through_the_origin_is_not_centred(ref):
    res = rma_mods("yi", "vi", "ablat - 1", data=BCG, knha=ref["knha"], control=CONTROL)
    assert res.terms == ("ablat",) and math.isnan(res.r2)
    _compare(
        {"tau2": res.tau2, "beta": res.beta[0], "se": res.se[0], "qe": res.qe, "qe_p": res.qe_p},
        {key: ref[key] for key in ("tau2", "beta", "se", "qe", "qe_p")},
    )
    assert math.isclose(res.tau2, ref["tau2_rma_mv"], rel_tol=1e-4)  # metafor's rma.mv, to its optimiser's precision


@pytest.mark.parametrize("ref", REF["subgroups"], ids=lambda r: f"{r['method']}-{'knha' if r['knha'] else 'z'}")
def test_subgroups_match_metafor_and_revman_q_between(ref):
    out = subgroups("yi", "vi", "alloc", data=BCG, method=ref["method"], knha=ref["knha"], control=CONTROL)
    table = out.table.set_index("subgroup")
    assert list(table.index) == [g["group"] for g in ref["groups"]]
    for g in ref["groups"]:
        row = table.loc[g["group"]]
        assert row["k"] == g["k"]
        _compare(
            {
                key: row[key if key != "p_value" else "p"]
                for key in ("estimate", "se", "ci_low", "ci_high", "p_value", "tau2", "i2", "q")
            },
            {key: g[key] for key in ("estimate", "se", "ci_low", "ci_high", "p_value", "tau2", "i2", "q")},
        )
    qb, mt = out.q_between, out.moderator_test
    _compare(
        {
            "q_between": qb.estimate,
            "q_between_df": qb.df,
            "q_between_p": qb.p,
            "q_between_i2": qb.extra["i2"],
            "qm": mt.estimate,
            "qm_df": [mt.df, mt.extra["df2"]],
            "qm_p": mt.p,
            "tau2_common": mt.extra["tau2_common"],
        },
        {
            key: ref[key]
            for key in (
                "q_between",
                "q_between_df",
                "q_between_p",
                "q_between_i2",
                "qm",
                "qm_df",
                "qm_p",
                "tau2_common",
            )
        },
    )


EXACT = [r for r in REF["permutest"] if r["exact"]]
APPROXIMATE = [r for r in REF["permutest"] if not r["exact"]]


@pytest.mark.parametrize("ref", EXACT, ids=lambda r: f"exact-{r['mods']}-{'knha' if r['knha'] else 'z'}")
def test_exact_permutation_test_matches_metafor(ref):
    res = rma_mods("yi", "vi", ref["mods"], data=_data(ref["data"]), knha=ref["knha"], control=CONTROL)
    out = permutest(res, iterations=1000, seed=PERMUTATION_SEED, exact=True)
    assert out.exact and out.iterations == ref["iterations"] and out.failed == 0
    assert out.pval == pytest.approx(ref["p_value"], abs=1e-12)
    assert out.qm_p == pytest.approx(ref["qm_p"], abs=1e-12)


@pytest.mark.parametrize("ref", APPROXIMATE, ids=lambda r: f"approx-{r['mods']}-{'knha' if r['knha'] else 'z'}")
def test_approximate_permutation_test_within_monte_carlo_error(ref):
    res = rma_mods("yi", "vi", ref["mods"], data=_data(ref["data"]), knha=ref["knha"], control=CONTROL)
    n = 1000
    out = permutest(res, iterations=n, seed=PERMUTATION_SEED)
    assert not out.exact and out.iterations == n
    ours = list(out.pval) + [out.qm_p]
    theirs = list(ref["p_value"]) + [ref["qm_p"]]
    for mine, p in zip(ours, theirs):
        tolerance = 4 * math.sqrt(p * (1 - p) * (1 / n + 1 / ref["iterations"])) + 1 / n
        assert abs(mine - p) <= tolerance, (ours, theirs)
