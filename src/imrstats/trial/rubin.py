"""Rubin's rules: combine m complete-data analyses of multiply imputed data into one inference.

Definitions follow Rubin (1987, p. 76) and, for the degrees of freedom, Barnard & Rubin (1999,
Biometrika 86:948-955), exactly as R's ``mice`` computes them (``pool.vector()``, ``pool.scalar()``
and ``barnard.rubin()`` in mice 3.x), so that a pooled row here and ``summary(pool(fit))`` in R
agree to rounding error on the same inputs:

    Q-bar  = mean of the m estimates
    U-bar  = mean of the m complete-data variances (squared standard errors)
    B      = sample variance of the m estimates (divisor m - 1)
    T      = U-bar + (1 + 1/m) B                       total variance
    riv    = (1 + 1/m) B / U-bar                       relative increase in variance
    lambda = (1 + 1/m) B / T                           proportion of variance due to missingness
    df_old = (m - 1) / lambda^2                        Rubin (1987)
    df     = (m - 1) tmp / ((dfcom + 3)(m - 1) + lambda^2 tmp),  tmp = (1 - lambda)(dfcom + 1) dfcom
             (Barnard-Rubin; df_old when dfcom is infinite)
    fmi    = (riv + 2 / (df + 3)) / (riv + 1)          fraction of missing information (mice's form)

The interval is Q-bar +/- t(df, 0.975) sqrt(T) and the p-value is two-sided from t(df), as in
``summary.mipo``. An infinite df means the normal distribution.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.errors import AnalysisError
from imrstats.results import Estimate, to_frame

__all__ = ["barnard_rubin_df", "pool_rubin", "pool_rubin_many"]


def barnard_rubin_df(m: int, b, t, df_complete=math.inf, *, lambda_floor: float = 0.0):
    """Barnard & Rubin (1999) small-sample degrees of freedom, as ``mice:::barnard.rubin``.

    ``b`` and ``t`` (between and total variance) may be arrays; ``df_complete`` is the
    complete-data residual df (``math.inf`` for a large-sample analysis, which gives
    Rubin's (1987) df_old = (m - 1) / lambda^2). A zero B gives lambda = 0 and thus an
    infinite df_old, or dfcom (dfcom + 1) / (dfcom + 3) for finite dfcom, as in mice >= 3.19.
    Before 3.19 (commit e94f3e16, 2025) mice first raised lambda to at least 1e-4;
    ``lambda_floor=1e-4`` reproduces those versions (both agree whenever lambda >= 1e-4).
    """
    b = np.asarray(b, dtype=float)
    t = np.asarray(t, dtype=float)
    lam = np.maximum((1.0 + 1.0 / m) * b / t, lambda_floor)
    with np.errstate(divide="ignore"):
        df_old = (m - 1) / lam**2
    dfcom = np.broadcast_to(np.asarray(df_complete, dtype=float), lam.shape)
    finite = np.isfinite(dfcom)
    safe_dfcom = np.where(finite, dfcom, 1.0)
    tmp = (1.0 - lam) * (1.0 + safe_dfcom) * safe_dfcom
    df_br = (m - 1) * tmp / ((safe_dfcom + 3.0) * (m - 1) + lam**2 * tmp)
    return np.where(finite, df_br, df_old)


def _check_inputs(estimates: np.ndarray, variances: np.ndarray, df_complete) -> None:
    if estimates.shape != variances.shape:
        raise AnalysisError(
            f"estimates have shape {estimates.shape} but variances {variances.shape}; "
            "pass one estimate and one squared standard error per imputation."
        )
    if estimates.shape[0] < 2:
        raise AnalysisError(
            f"Rubin's rules need at least 2 imputations, got m = {estimates.shape[0]}; "
            "impute more data sets (the trial protocol uses m = 100)."
        )
    if not (np.all(np.isfinite(estimates)) and np.all(np.isfinite(variances))):
        raise AnalysisError(
            "an estimate or variance is missing or infinite in at least one imputation; "
            "check that the analysis model converged on every completed data set."
        )
    if np.any(variances <= 0):
        raise AnalysisError("a complete-data variance is zero or negative; pass squared standard errors (> 0).")
    dfc = np.asarray(df_complete, dtype=float)
    if np.any(np.isnan(dfc)) or np.any(dfc <= 0):
        raise AnalysisError(f"df_complete must be positive (or inf for a large-sample analysis), got {df_complete!r}.")


def _pooled_columns(estimates: np.ndarray, variances: np.ndarray, df_complete) -> dict:
    """All of Rubin's quantities for each column of (m, p) arrays, as arrays of length p."""
    m = estimates.shape[0]
    qbar = estimates.mean(axis=0)
    ubar = variances.mean(axis=0)
    b = estimates.var(axis=0, ddof=1)
    # identical estimates vary by exactly zero (their floating-point mean can miss them by an ulp)
    b = np.where(np.ptp(estimates, axis=0) == 0, 0.0, b)
    t = ubar + (1.0 + 1.0 / m) * b
    df = barnard_rubin_df(m, b, t, df_complete)
    riv = (1.0 + 1.0 / m) * b / ubar
    lam = (1.0 + 1.0 / m) * b / t
    fmi = (riv + 2.0 / (df + 3.0)) / (riv + 1.0)
    se = np.sqrt(t)
    tcrit = stats.t.ppf(0.975, df)
    statistic = qbar / se
    p = 2.0 * stats.t.sf(np.abs(statistic), df)
    return dict(
        qbar=qbar,
        ubar=ubar,
        b=b,
        t=t,
        df=df,
        riv=riv,
        lam=lam,
        fmi=fmi,
        se=se,
        ci_low=qbar - tcrit * se,
        ci_high=qbar + tcrit * se,
        statistic=statistic,
        p=p,
        m=m,
    )


def _method_string(df_complete, method_note: str) -> str:
    dfc = np.asarray(df_complete, dtype=float)
    dfc_text = f"{float(dfc):g}" if dfc.size == 1 else "per parameter"
    text = f"Rubin's rules; Barnard-Rubin df (complete-data df = {dfc_text}); t(df) 95% CI"
    return f"{text}; {method_note}" if method_note else text


def pool_rubin(
    estimates: Sequence[float],
    variances: Sequence[float],
    df_complete: float = math.inf,
    *,
    quantity: str = "",
    method_note: str = "",
) -> Estimate:
    """Pool one scalar over m imputations by Rubin's rules with Barnard-Rubin df.

    ``estimates`` and ``variances`` hold the m complete-data estimates and their squared
    standard errors; ``df_complete`` is the complete-data residual df of the analysis model
    (``math.inf`` for a large-sample model). Returns an `Estimate` whose ``se`` is sqrt(T) and
    whose ``extra`` holds m, qbar, ubar, b, t, riv, lambda, fmi and df_complete (definitions in
    the module docstring; identical to ``mice::pool.scalar(Q, U, n = dfcom + k, k = k)``).
    """
    est = np.asarray(estimates, dtype=float).reshape(-1, 1)
    var = np.asarray(variances, dtype=float).reshape(-1, 1)
    _check_inputs(est, var, df_complete)
    return _estimates_from_columns(est, var, df_complete, [quantity], method_note)[0]


def pool_rubin_many(
    estimates,
    variances,
    df_complete=math.inf,
    *,
    quantities: Sequence[str] | None = None,
    method_note: str = "",
) -> pd.DataFrame:
    """Pool p parameters at once: ``estimates`` and ``variances`` are (m, p) arrays or frames.

    Column names of a DataFrame (or ``quantities``) name the rows. ``df_complete`` is a scalar or
    one value per parameter. Returns the frame of `Estimate` rows (canonical columns, then m,
    qbar, ubar, b, t, riv, lambda, fmi, df_complete), one per parameter, as ``mice::pool()``.
    """
    if quantities is None:
        quantities = list(estimates.columns) if isinstance(estimates, pd.DataFrame) else None
    est = np.asarray(estimates, dtype=float)
    var = np.asarray(variances, dtype=float)
    if est.ndim == 1:
        est, var = est.reshape(-1, 1), var.reshape(-1, 1)
    _check_inputs(est, var, df_complete)
    if quantities is None:
        quantities = [f"param{j}" for j in range(est.shape[1])]
    if len(quantities) != est.shape[1]:
        raise AnalysisError(f"{len(quantities)} quantity names for {est.shape[1]} parameters.")
    return to_frame(_estimates_from_columns(est, var, df_complete, list(quantities), method_note))


def _estimates_from_columns(est, var, df_complete, quantities, method_note) -> list[Estimate]:
    cols = _pooled_columns(est, var, df_complete)
    dfcom = np.broadcast_to(np.asarray(df_complete, dtype=float), cols["qbar"].shape)
    method = _method_string(df_complete, method_note)
    out = []
    for j, name in enumerate(quantities):
        extra = {
            "m": int(cols["m"]),
            "qbar": float(cols["qbar"][j]),
            "ubar": float(cols["ubar"][j]),
            "b": float(cols["b"][j]),
            "t": float(cols["t"][j]),
            "riv": float(cols["riv"][j]),
            "lambda": float(cols["lam"][j]),
            "fmi": float(cols["fmi"][j]),
            "df_complete": float(dfcom[j]),
        }
        out.append(
            Estimate(
                quantity=name,
                estimate=float(cols["qbar"][j]),
                se=float(cols["se"][j]),
                ci_low=float(cols["ci_low"][j]),
                ci_high=float(cols["ci_high"][j]),
                df=float(cols["df"][j]),
                statistic=float(cols["statistic"][j]),
                p=float(cols["p"][j]),
                method=method,
                extra=extra,
            )
        )
    return out
