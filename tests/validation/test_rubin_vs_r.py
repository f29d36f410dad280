"""Rubin's rules against R mice 3.15.0 on identical, fixed inputs (deterministic: 1e-10 relative).

References come from ``tests/validation/r/mice_rubin.R`` (run from the repository root; its
printout is pinned below):

* ``mice::pool.scalar(Q, U, n, k)`` on the (Q, U) sets of ``data/mi_rubin_scalar.csv``; the
  complete-data df is n - k;
* ``mice::pool(as.mira(fits))`` and ``summary(..., conf.int = TRUE)`` for ``lm(y ~ x1 + g)``
  fitted to the five completed data sets of ``data/mi_rubin_completed.csv``.

Set "d" has identical estimates (B = 0). mice 3.15 raises lambda to at least 1e-4 before the
Barnard-Rubin df; mice >= 3.19 (and imrstats) does not. Its df is therefore checked through
``barnard_rubin_df(..., lambda_floor=1e-4)`` against R 3.15 and, for the default, against the
closed form dfcom (dfcom + 1) / (dfcom + 3) that the formula gives at lambda = 0.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.trial.rubin import barnard_rubin_df, pool_rubin, pool_rubin_many

DATA = Path(__file__).parent / "data"
REL = 1e-10

# printed by tests/validation/r/mice_rubin.R (mice 3.15.0, R 4.2.2)
R_POOL_SCALAR = [
    (
        "a",
        math.inf,
        1,
        dict(
            qbar=1.22056971428571,
            ubar=0.362547714285714,
            b=0.188041762561571,
            t=0.577452585784653,
            df=43.3202935343585,
            riv=0.592763002029515,
            fmi=0.399268830652918,
        ),
    ),
    (
        "a",
        60,
        4,
        dict(
            qbar=1.22056971428571,
            ubar=0.362547714285714,
            b=0.188041762561571,
            t=0.577452585784653,
            df=19.0389018744473,
            riv=0.592763002029515,
            fmi=0.429135800034455,
        ),
    ),
    (
        "a",
        12,
        2,
        dict(
            qbar=1.22056971428571,
            ubar=0.362547714285714,
            b=0.188041762561571,
            t=0.577452585784653,
            df=4.73217102267579,
            riv=0.592763002029515,
            fmi=0.53455697226773,
        ),
    ),
    (
        "b",
        math.inf,
        1,
        dict(
            qbar=1.2056875,
            ubar=0.298962,
            b=0.0122315748245,
            t=0.31730936223675,
            df=299.101438333667,
            riv=0.0613702150666305,
            fmi=0.0640591821565897,
        ),
    ),
    (
        "b",
        60,
        4,
        dict(
            qbar=1.2056875,
            ubar=0.298962,
            b=0.0122315748245,
            t=0.31730936223675,
            df=43.551340336041,
            riv=0.0613702150666305,
            fmi=0.0983007915290279,
        ),
    ),
    (
        "b",
        12,
        2,
        dict(
            qbar=1.2056875,
            ubar=0.298962,
            b=0.0122315748245,
            t=0.31730936223675,
            df=7.76530097633266,
            riv=0.0613702150666305,
            fmi=0.232861532091753,
        ),
    ),
    (
        "c",
        math.inf,
        1,
        dict(
            qbar=1.37307609,
            ubar=0.42421051,
            b=4.5587091396056,
            t=5.02850674100165,
            df=118.08282999065,
            riv=10.8538004657208,
            fmi=0.917032315139464,
        ),
    ),
    (
        "c",
        60,
        4,
        dict(
            qbar=1.37307609,
            ubar=0.42421051,
            b=4.5587091396056,
            t=5.02850674100165,
            df=4.39423622719493,
            riv=10.8538004657208,
            fmi=0.938456948265777,
        ),
    ),
    (
        "c",
        12,
        2,
        dict(
            qbar=1.37307609,
            ubar=0.42421051,
            b=4.5587091396056,
            t=5.02850674100165,
            df=0.709535715716152,
            riv=10.8538004657208,
            fmi=0.961122260168086,
        ),
    ),
    ("d", math.inf, 1, dict(qbar=1.3, ubar=0.4260312, b=0, t=0.4260312, df=400000000, riv=0, fmi=4.9999999625e-09)),
    ("d", 60, 4, dict(qbar=1.3, ubar=0.4260312, b=0, t=0.4260312, df=54.0962774297436, riv=0, fmi=0.0350285533494014)),
    ("d", 12, 2, dict(qbar=1.3, ubar=0.4260312, b=0, t=0.4260312, df=8.46069212873403, riv=0, fmi=0.174509530273973)),
]
R_POOL_LM = {
    "(Intercept)": dict(
        estimate=-1.29406393965454,
        ubar=1.17838316458485,
        b=0.190849868991649,
        t=1.40740300737483,
        dfcom=36,
        df=24.0444719569775,
        riv=0.194350912057255,
        lambda_=0.162725133874171,
        fmi=0.224643507984619,
        se=1.18634017354839,
        statistic=-1.09080343775592,
        p=0.286170243829416,
        lo=-3.74231008854406,
        hi=1.15418220923498,
    ),
    "x1": dict(
        estimate=0.794514684615228,
        ubar=0.0130862770090407,
        b=0.00276189235846119,
        t=0.0164005478391942,
        dfcom=36,
        df=21.320135168668,
        riv=0.253263080696193,
        lambda_=0.202082934219609,
        fmi=0.267700749272574,
        se=0.128064623683491,
        statistic=6.2040137374616,
        p=3.4900113640524e-06,
        lo=0.528433010726524,
        hi=1.06059635850393,
    ),
    "gb": dict(
        estimate=2.5721023293695,
        ubar=0.438154311086933,
        b=0.0406354847686311,
        t=0.48691689280929,
        dfcom=36,
        df=28.534674887802,
        riv=0.111290886540387,
        lambda_=0.100145594540825,
        fmi=0.157216384625757,
        se=0.697794305515092,
        statistic=3.68604660290377,
        p=0.000948296371476778,
        lo=1.14394114099428,
        hi=4.00026351774473,
    ),
    "gc": dict(
        estimate=-0.289812656577011,
        ubar=0.436599084743206,
        b=0.243807614059244,
        t=0.7291682216143,
        dfcom=36,
        df=11.21738403315,
        riv=0.670109368285032,
        lambda_=0.401236817785856,
        fmi=0.485466543988375,
        se=0.853913474313586,
        statistic=-0.339393469355868,
        p=0.740582561213034,
        lo=-2.16482933774679,
        hi=1.58520402459277,
    ),
}


def make_rubin_inputs():
    """The fixed inputs saved as data/mi_rubin_scalar.csv and data/mi_rubin_completed.csv."""
    rng = np.random.default_rng(19990948)
    rows = []
    for name, m, spread in [("a", 7, 0.6), ("b", 2, 0.3), ("c", 100, 2.0), ("d", 5, 0.0)]:
        q = np.round(1.3 + spread * rng.standard_normal(m), 6) if spread else np.full(m, 1.3)
        u = np.round(rng.uniform(0.2, 0.6, m), 6)
        rows += [{"set": name, "imputation": i + 1, "Q": q[i], "U": u[i]} for i in range(m)]
    n = 40
    x1 = np.round(rng.normal(10, 3, n), 3)
    g = rng.choice(["a", "b", "c"], n)
    base = 2 + 0.5 * x1 + np.select([g == "b", g == "c"], [1.0, -0.7], 0.0) + rng.normal(0, 1.5, n)
    miss = rng.uniform(size=n) < 0.3
    frames = []
    for i in range(5):
        y = base.copy()
        y[miss] = base[miss] + rng.normal(0, 1.5, miss.sum())
        frames.append(pd.DataFrame({"imputation": i + 1, "y": np.round(y, 4), "x1": x1, "g": g}))
    return pd.DataFrame(rows), pd.concat(frames, ignore_index=True)


def test_shipped_csvs_are_the_generated_inputs():
    scalar, completed = make_rubin_inputs()
    pd.testing.assert_frame_equal(pd.read_csv(DATA / "mi_rubin_scalar.csv"), scalar, rtol=1e-12)
    pd.testing.assert_frame_equal(pd.read_csv(DATA / "mi_rubin_completed.csv"), completed, rtol=1e-12)


def _scalar_inputs(name):
    frame = pd.read_csv(DATA / "mi_rubin_scalar.csv")
    part = frame[frame["set"] == name].sort_values("imputation")
    return part["Q"].to_numpy(), part["U"].to_numpy()


def _close(ours, theirs):
    if theirs == 0:
        return ours == pytest.approx(0.0, abs=1e-15)
    return ours == pytest.approx(theirs, rel=REL)


@pytest.mark.parametrize("name,n,k,ref", [r for r in R_POOL_SCALAR if r[0] != "d"])
def test_pool_scalar_matches_mice(name, n, k, ref):
    q, u = _scalar_inputs(name)
    est = pool_rubin(q, u, n - k, quantity=name)
    ours = dict(
        qbar=est.estimate,
        ubar=est.extra["ubar"],
        b=est.extra["b"],
        t=est.se**2,
        df=est.df,
        riv=est.extra["riv"],
        fmi=est.extra["fmi"],
    )
    for key, value in ref.items():
        assert _close(ours[key], value), key


@pytest.mark.parametrize("name,n,k,ref", [r for r in R_POOL_SCALAR if r[0] == "d"])
def test_pool_scalar_zero_between_variance(name, n, k, ref):
    q, u = _scalar_inputs(name)
    est = pool_rubin(q, u, n - k)
    for key, ours in dict(
        qbar=est.estimate, ubar=est.extra["ubar"], b=est.extra["b"], t=est.se**2, riv=est.extra["riv"]
    ).items():
        assert _close(ours, ref[key]), key
    # mice 3.15 floors lambda at 1e-4 ...
    m = len(q)
    floored = float(barnard_rubin_df(m, est.extra["b"], est.se**2, n - k, lambda_floor=1e-4))
    assert floored == pytest.approx(ref["df"], rel=REL)
    # ... the unfloored formula (mice >= 3.19, our default) at lambda = 0
    dfcom = n - k
    expected = math.inf if math.isinf(dfcom) else dfcom * (dfcom + 1) / (dfcom + 3)
    assert est.df == pytest.approx(expected, rel=REL)
    assert est.extra["fmi"] == pytest.approx(2 / (expected + 3), abs=1e-15)


def _lm_fits(frame):
    """Coefficients and their variances of lm(y ~ x1 + g) (treatment dummies) per imputation."""
    estimates, variances = [], []
    for _, part in frame.groupby("imputation", sort=True):
        x = np.column_stack([np.ones(len(part)), part["x1"], part["g"] == "b", part["g"] == "c"]).astype(float)
        y = part["y"].to_numpy()
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        dfres = len(y) - x.shape[1]
        sigma2 = ((y - x @ beta) ** 2).sum() / dfres
        estimates.append(beta)
        variances.append(sigma2 * np.diag(np.linalg.inv(x.T @ x)))
    return np.array(estimates), np.array(variances), dfres


def test_pool_of_lm_fits_matches_mice_pool():
    frame = pd.read_csv(DATA / "mi_rubin_completed.csv")
    est, var, dfres = _lm_fits(frame)
    assert dfres == 36
    pooled = pool_rubin_many(est, var, dfres, quantities=list(R_POOL_LM))
    for _, row in pooled.iterrows():
        ref = R_POOL_LM[row["quantity"]]
        ours = dict(
            estimate=row["estimate"],
            ubar=row["ubar"],
            b=row["b"],
            t=row["t"],
            dfcom=row["df_complete"],
            df=row["df"],
            riv=row["riv"],
            lambda_=row["lambda"],
            fmi=row["fmi"],
            se=row["se"],
            statistic=row["statistic"],
            p=row["p"],
            lo=row["ci_low"],
            hi=row["ci_high"],
        )
        for key, value in ref.items():
            assert _close(ours[key], value), (row["quantity"], key)
