"""Frequentist meta-analysis: equal- and random-effects models, as R's metafor ``rma.uni`` fits them.

``rma(yi, vi, method=...)`` pools effect sizes (from ``imrstats.meta.effect_sizes``) and returns a
``MetaResult`` that answers ``predict()``, ``confint()``, ``leave1out()``, ``regtest()``,
``cumulative()`` and ``summary()``, like metafor's fitted object (Viechtbauer 2010, J Stat Softw 36(3)).

The algorithms follow metafor 3.8 step by step, so that the numbers agree to rounding error:
tau^2 by DerSimonian-Laird (1986), Paule-Mandel (1982; root of the generalised Q, Brent's zeroin with
metafor's tolerance), ML and REML (Fisher scoring from the Hedges starting value, step halving,
threshold 1e-5, at most 100 iterations, with metafor's check against tau^2 = 0); truncation at 0;
Knapp & Hartung (2003) with t(k - p); I^2 and H^2 from the "typical" within-study variance
(Higgins & Thompson 2002, eq. 9); the Q-profile CI for tau^2 (Viechtbauer 2007, Stat Med 26:37-52);
Egger's regression test as metafor's ``regtest(model="rma", predictor="sei")`` (Egger et al. 1997).

Departures from metafor, on purpose: missing values and non-positive sampling variances raise an
``AnalysisError`` instead of being dropped or tolerated; in a model through the origin (``fit_design`` with no
intercept and continuous moderators only) y is not centred for tau^2 and QE (metafor 3.8 centres it, see
``_centred``); with k = 1 the heterogeneity statistics are NaN
(metafor reports Q = 0, I^2 = 0, H^2 = 1), and the result carries a note saying no pooling happened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.errors import AnalysisError
from imrstats.results import Estimate, ResultMixin, to_frame, to_jsonable

METHODS = ("REML", "ML", "DL", "PM", "EE", "FE")
_EQUAL = ("EE", "FE")
_THRESHOLD = 1e-5  # metafor control: Fisher scoring stops when tau^2 changes by less than this
_MAXITER = 100  # metafor control: maximum Fisher scoring / PM root-finding iterations
_TOL = np.finfo(float).eps ** 0.25  # metafor control: uniroot tolerance and log-likelihood check
_METHOD_NAMES = {
    "REML": "restricted maximum likelihood, Fisher scoring",
    "ML": "maximum likelihood, Fisher scoring",
    "DL": "DerSimonian-Laird",
    "PM": "Paule-Mandel",
}


# ---------------------------------------------------------------------------------------------
# Numerical building blocks


def brent_zeroin(
    f: Callable[[float], float],
    lower: float,
    upper: float,
    f_lower: float,
    f_upper: float,
    tol: float,
    maxiter: int,
) -> tuple[float, bool]:
    """Root of ``f`` in [lower, upper] by Brent's (1973, ch. 4) zeroin: bisection safeguarding secant and
    inverse quadratic interpolation. This is the algorithm behind R's ``uniroot`` (same steps, same
    stopping rule |c - b| / 2 <= 2 eps |b| + tol / 2), so roots agree with metafor's beyond ``tol``.
    Returns (root, converged)."""
    a, b, fa, fb = lower, upper, f_lower, f_upper
    if fa == 0.0:
        return a, True
    if fb == 0.0:
        return b, True
    c, fc = a, fa
    eps = np.finfo(float).eps
    for _ in range(maxiter + 1):
        previous_step = b - a
        if abs(fc) < abs(fb):  # keep b the best approximation
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * eps * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0.0:
            return b, True
        if abs(previous_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:  # two distinct points: secant
                t1 = fb / fa
                p, q = cb * t1, 1.0 - t1
            else:  # inverse quadratic interpolation
                q, t1, t2 = fa / fc, fb / fc, fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < 0.75 * cb * q - abs(tol_act * q) / 2 and p < abs(previous_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b, False


def _projection(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """P = W - W X (X'WX)^-1 X'W, the weighted residual-maker of metafor (W = diag(w))."""
    WX = w[:, None] * X
    P = -(WX @ np.linalg.inv(X.T @ WX) @ WX.T)
    P.flat[:: P.shape[0] + 1] += w  # + W on the diagonal
    return P


def _generalised_q(tau2: float, y: np.ndarray, vi: np.ndarray, X: np.ndarray) -> float:
    """Q(tau^2) = y' P(tau^2) y with weights 1/(vi + tau^2): the generalised Q statistic."""
    return float(y @ _projection(X, 1.0 / (vi + tau2)) @ y)


def _loglik(tau2: float, y: np.ndarray, vi: np.ndarray, X: np.ndarray, reml: bool) -> float:
    """(Restricted) log-likelihood at tau^2 as metafor's tau^2 = 0 check computes it."""
    w = 1.0 / (vi + tau2)
    XtWX = X.T @ (w[:, None] * X)
    beta = np.linalg.solve(XtWX, X.T @ (w * y))
    rss = float(np.sum(w * (y - X @ beta) ** 2))
    k, p = X.shape
    if not reml:
        return -0.5 * k * math.log(2 * math.pi) - 0.5 * float(np.sum(np.log(vi + tau2))) - 0.5 * rss
    logdet = np.linalg.slogdet(XtWX)[1]
    return -0.5 * (k - p) * math.log(2 * math.pi) - 0.5 * float(np.sum(np.log(vi + tau2))) - 0.5 * logdet - 0.5 * rss


def _centred(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """y minus its mean when the constant lies in the column space of X (an intercept, or a full set of category
    indicators), else y as it is. metafor centres y for the tau^2 step and Cochran's Q, which changes nothing when
    P annihilates the constant (P X = 0) and steadies the arithmetic; metafor 3.8 centres in every model, which for
    a model through the origin (no intercept, continuous moderators only) gives a QE and tau^2 that are not those
    of the model fitted: imrstats does not centre there (a deliberate departure)."""
    if np.any(np.all(X == 1.0, axis=0)):  # an intercept column: the common case, decided at once
        return y - y.mean()
    ones = np.ones(y.size)
    coef = np.linalg.lstsq(X, ones, rcond=None)[0]
    if float(np.max(np.abs(X @ coef - ones))) <= 1e-8:
        return y - y.mean()
    return y


def _mad(y: np.ndarray) -> float:
    """Median absolute deviation scaled by 1.4826, as R's ``mad``."""
    return 1.4826 * float(np.median(np.abs(y - np.median(y))))


# ---------------------------------------------------------------------------------------------
# tau^2 estimators


@dataclass(frozen=True)
class _Tau2:
    tau2: float
    se: float
    iterations: int
    notes: tuple[str, ...] = ()


def _tau2_dl(y, vi, X) -> _Tau2:
    k, p = X.shape
    P = _projection(X, 1.0 / vi)
    trP = float(np.trace(P))
    tau2 = max(0.0, (float(y @ P @ y) - (k - p)) / trP)
    se = math.sqrt((2 * (k - p) + 4 * tau2 * trP + 2 * tau2**2 * float(np.sum(P * P))) / trP**2)
    return _Tau2(tau2, se, 0)


def _tau2_pm(y, vi, X, maxiter: int = _MAXITER) -> _Tau2:
    k, p = X.shape
    target = k - p
    tau2_max = max(100.0, 10 * _mad(y) ** 2)

    def excess(t):
        return _generalised_q(t, y, vi, X) - target

    at_zero = excess(0.0)
    if at_zero < 0:
        tau2, iterations = 0.0, 0
    else:
        at_max = excess(tau2_max)
        if at_max > 0:
            raise AnalysisError(
                f"Paule-Mandel: Q(tau^2) still exceeds k - p at tau^2 = {tau2_max:g}; the data are extremely "
                "heterogeneous: check for a data-entry error or use method='REML'."
            )
        tau2, converged = brent_zeroin(excess, 0.0, tau2_max, at_zero, at_max, _TOL, maxiter)
        if not converged:
            raise AnalysisError(
                f"Paule-Mandel root search did not converge in {maxiter} iterations; use method='REML'."
            )
        iterations = -1
    tau2 = max(0.0, tau2)
    w = 1.0 / (vi + tau2)
    se = math.sqrt(2 * k**2 / (k - p) / float(np.sum(w)) ** 2)
    return _Tau2(tau2, se, iterations)


def _tau2_fisher(y, vi, X, reml: bool, threshold: float = _THRESHOLD, maxiter: int = _MAXITER) -> _Tau2:
    """ML / REML by Fisher scoring exactly as metafor: start from the Hedges (HE) estimate (truncated at
    0), step (y'PPy - tr P) / tr PP for REML or (y'PPy - sum w) / sum w^2 for ML, halve a step that would
    go below 0, stop when tau^2 changes by < ``threshold`` (metafor's 1e-5), fail after ``maxiter`` (100)
    iterations."""
    k, p = X.shape
    hat = np.eye(k) - X @ np.linalg.inv(X.T @ X) @ X.T
    tau2 = max(0.0, (float(y @ hat @ y) - float(np.sum(np.diag(hat) * vi))) / (k - p))
    change, iterations = threshold + 1, 0
    while change > threshold:
        iterations += 1
        previous = tau2
        w = 1.0 / (vi + tau2)
        P = _projection(X, w)
        PP = P @ P
        if reml:
            step = (float(y @ PP @ y) - float(np.trace(P))) / float(np.trace(PP))
        else:
            step = (float(y @ PP @ y) - float(np.sum(w))) / float(np.sum(w**2))
        if math.isnan(step):
            step = 0.0
        while tau2 + step < 0:
            step /= 2
        tau2 = tau2 + step
        change = abs(previous - tau2)
        if iterations > maxiter:
            raise AnalysisError(
                f"Fisher scoring for {'REML' if reml else 'ML'} did not converge in {maxiter} iterations; "
                "try method='PM' or 'DL', and check the data for outliers."
            )
    notes: tuple[str, ...] = ()
    if _loglik(0.0, y, vi, X, reml) - _loglik(tau2, y, vi, X, reml) > _TOL and tau2 > threshold:
        notes = ("Fisher scoring may have stopped at a local maximum: tau^2 set to 0 (as metafor does).",)
        tau2 = 0.0
    tau2 = max(0.0, tau2)
    w = 1.0 / (vi + tau2)
    if reml:
        P = _projection(X, w)
        se = math.sqrt(2 / float(np.sum(P * P)))
    else:
        se = math.sqrt(2 / float(np.sum(w**2)))
    return _Tau2(tau2, se, iterations, notes)


def _estimate_tau2(y, vi, X, method: str, threshold: float = _THRESHOLD, maxiter: int = _MAXITER) -> _Tau2:
    k, p = X.shape
    if method in _EQUAL:
        return _Tau2(0.0, math.nan, 0)
    if k < p + 1:
        raise AnalysisError(f"{method} needs at least {p + 1} studies to estimate tau^2; got k = {k}.")
    yc = _centred(y, X)
    if method == "DL":
        return _tau2_dl(yc, vi, X)
    if method == "PM":
        return _tau2_pm(yc, vi, X, maxiter)
    return _tau2_fisher(yc, vi, X, reml=(method == "REML"), threshold=threshold, maxiter=maxiter)


# ---------------------------------------------------------------------------------------------
# The model fit (intercept-only or with predictors, the latter only for Egger's test)


@dataclass(frozen=True)
class _Fit:
    beta: np.ndarray
    se: np.ndarray
    statistic: np.ndarray
    p: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    df: float
    tau2: float
    se_tau2: float
    q: float
    q_df: int
    q_p: float
    i2: float
    h2: float
    vt: float
    s2w: float
    iterations: int
    notes: tuple[str, ...]


def _fit(
    y: np.ndarray,
    vi: np.ndarray,
    X: np.ndarray,
    method: str,
    knha: bool,
    level: float,
    threshold: float = _THRESHOLD,
    maxiter: int = _MAXITER,
) -> _Fit:
    k, p = X.shape
    if np.linalg.matrix_rank(X) < p:
        raise AnalysisError("The model matrix is not of full rank (a predictor is constant).")
    t = _estimate_tau2(y, vi, X, method, threshold, maxiter)
    notes = list(t.notes)
    w = 1.0 / (vi + t.tau2)
    vb = np.linalg.inv(X.T @ (w[:, None] * X))
    beta = vb @ X.T @ (w * y)
    s2w = 1.0
    if knha:
        if method in _EQUAL:
            notes.append("Knapp-Hartung is not meant for equal-effects models (metafor warns likewise).")
        rss = float(np.sum(w * (y - X @ beta) ** 2))
        s2w = 0.0 if rss <= np.finfo(float).eps else rss / (k - p)
        vb = s2w * vb
    se = np.sqrt(np.diag(vb))
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = beta / se
    alpha = 1 - level
    if knha:
        df = float(k - p)
        pval = 2 * stats.t.sf(np.abs(statistic), df) if df > 0 else np.full(p, math.nan)
        crit = stats.t.isf(alpha / 2, df) if df > 0 else math.nan
    else:
        df = math.nan
        pval = 2 * stats.norm.sf(np.abs(statistic))
        crit = stats.norm.isf(alpha / 2)
    q, q_p, i2, h2, vt = _heterogeneity(y, vi, X, t.tau2, method)
    return _Fit(
        beta,
        se,
        statistic,
        pval,
        beta - crit * se,
        beta + crit * se,
        df,
        t.tau2,
        t.se,
        q,
        k - p,
        q_p,
        i2,
        h2,
        vt,
        s2w,
        t.iterations,
        tuple(notes),
    )


def _heterogeneity(y, vi, X, tau2: float, method: str) -> tuple[float, float, float, float, float]:
    """Cochran's Q (weights 1/vi), its p-value, I^2 (%), H^2 and the typical within-study variance
    vt = (k - p) / tr(P) (Higgins & Thompson 2002; metafor ``i2def = "1"``)."""
    k, p = X.shape
    if k <= p:
        return 0.0, 1.0, 0.0, 1.0, 0.0
    P = _projection(X, 1.0 / vi)
    yc = _centred(y, X)
    q = max(0.0, float(yc @ P @ yc))
    q_p = float(stats.chi2.sf(q, k - p))
    vt = (k - p) / float(np.trace(P))
    if method in _EQUAL:
        i2 = max(0.0, 100 * (q - (k - p)) / q) if q > 0 else math.nan
        h2 = q / (k - p)
    else:
        i2 = 100 * tau2 / (vt + tau2)
        h2 = tau2 / vt + 1
    return q, q_p, i2, h2, vt


# Effects and variances beyond these magnitudes cannot be weighted in double precision (w = 1 / vi, w^2 and
# w * yi^2 overflow or underflow to 0); no real effect size or sampling variance comes near them.
MAX_ABS_YI, VI_RANGE = 1e50, (1e-50, 1e50)


def _named(labels: Sequence[str] | None, mask: np.ndarray) -> str:
    """The studies where ``mask`` holds, by label (``Study i`` counted from 1 when no labels are given)."""
    idx = np.flatnonzero(mask)
    names = [labels[i] if labels is not None else f"Study {i + 1}" for i in idx]
    return ", ".join(repr(str(n)) for n in names)


def _check_inputs(
    yi, vi, method: str, level: float, labels: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    method = str(method).upper()
    if method not in METHODS:
        raise AnalysisError(f"Unknown method {method!r}; use one of {METHODS}.")
    if not 0 < level < 1:
        raise AnalysisError(f"level is a coverage probability in (0, 1), e.g. 0.95; got {level!r}.")
    y = np.asarray(yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    if y.size != v.size:
        raise AnalysisError(f"yi and vi differ in length ({y.size} vs {v.size}).")
    if y.size == 0:
        raise AnalysisError("No studies to pool (k = 0).")
    if labels is not None and len(labels) != y.size:
        labels = None  # rma names the mismatch itself
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(v))):
        bad = ~(np.isfinite(y) & np.isfinite(v))
        raise AnalysisError(f"yi / vi missing or infinite in studies {_named(labels, bad)}; fix or drop them first.")
    if np.any(v <= 0):
        raise AnalysisError(
            f"Sampling variances must be > 0; studies {_named(labels, v <= 0)} have vi <= 0 (check SDs and ns)."
        )
    huge = (np.abs(y) > MAX_ABS_YI) | (v < VI_RANGE[0]) | (v > VI_RANGE[1])
    if np.any(huge):
        raise AnalysisError(
            f"studies {_named(labels, huge)}: yi / vi outside what can be pooled in double precision "
            f"(|yi| <= {MAX_ABS_YI:g}, {VI_RANGE[0]:g} <= vi <= {VI_RANGE[1]:g}); check the effect and its variance."
        )
    return y, v, method


# ---------------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True)
class MetaResult(ResultMixin):
    """A fitted intercept-only meta-analysis: the pooled effect, heterogeneity and what made them.

    ``i2`` is in percent (as metafor prints it). ``df`` is k - 1 under Knapp-Hartung and NaN for a
    normal (z) test. ``s2w`` is the Knapp-Hartung variance factor (1 without it).
    """

    yi: tuple[float, ...]
    vi: tuple[float, ...]
    slab: tuple[str, ...]
    method: str
    knha: bool
    level: float
    k: int
    estimate: float
    se: float
    statistic: float
    p: float
    ci_low: float
    ci_high: float
    df: float
    tau2: float
    se_tau2: float
    i2: float
    h2: float
    q: float
    q_df: int
    q_p: float
    vt: float
    s2w: float
    iterations: int
    notes: tuple[str, ...] = field(default=())
    threshold: float = _THRESHOLD  # metafor control: the tau^2 convergence threshold the fit used
    maxiter: int = _MAXITER  # metafor control: the iteration limit the fit used

    # -- descriptions --------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        if self.k == 1:
            return "Single study (no pooling)"
        if self.method in _EQUAL:
            return "Equal-effects model" if self.method == "EE" else "Fixed-effects model"
        return "Random-effects model"

    @property
    def test_name(self) -> str:
        if self.knha and self.k > 1:
            return f"Knapp-Hartung t({self.k - 1})"
        return "Wald z"

    @property
    def method_label(self) -> str:
        """E.g. 'random effects, tau^2 by REML; Knapp-Hartung t(k-1) (k = 7)'."""
        if self.k == 1:
            return "single study; Wald z"
        if self.method in _EQUAL:
            model = "equal effects (inverse variance)" if self.method == "EE" else "fixed effects (inverse variance)"
        else:
            model = f"random effects, tau^2 by {self.method} ({_METHOD_NAMES[self.method]})"
        return f"{model}; {self.test_name}"

    # -- result rows ---------------------------------------------------------------------------
    def estimates(self) -> list[Estimate]:
        """Rows: pooled effect, tau^2, tau, I^2 (%), H^2 and Cochran's Q."""
        notes = "; ".join(self.notes)
        re = self.method not in _EQUAL and self.k > 1
        rows = [
            Estimate(
                "pooled effect",
                self.estimate,
                self.se,
                self.ci_low,
                self.ci_high,
                self.df,
                self.statistic,
                self.p,
                self.method_label,
                notes,
                {"k": self.k},
            ),
            Estimate(
                "tau^2",
                self.tau2 if re else math.nan,
                self.se_tau2 if re else math.nan,
                method=f"{self.method} estimator" if re else "not estimated",
                notes=notes,
                extra={"k": self.k},
            ),
            Estimate(
                "tau",
                math.sqrt(self.tau2) if re else math.nan,
                method=f"{self.method} estimator" if re else "not estimated",
                notes=notes,
                extra={"k": self.k},
            ),
            Estimate(
                "I^2 (%)",
                self.i2,
                method="100 tau^2 / (tau^2 + typical within-study variance)" if re else "100 (Q - df) / Q",
                notes=notes,
                extra={"k": self.k},
            ),
            Estimate(
                "H^2",
                self.h2,
                method="tau^2 / typical within-study variance + 1" if re else "Q / df",
                notes=notes,
                extra={"k": self.k},
            ),
            Estimate(
                "Q (heterogeneity)",
                self.q,
                df=float(self.q_df) if self.k > 1 else math.nan,
                statistic=self.q,
                p=self.q_p,
                method="Cochran's Q, chi-square(k - 1)",
                notes=notes,
                extra={"k": self.k},
            ),
        ]
        return rows

    def to_frame(self) -> pd.DataFrame:
        return to_frame(self.estimates())

    _json_skip = ("yi", "vi", "slab", "notes", "threshold", "maxiter")  # moved after the scalars by _json_extra

    def _json_extra(self) -> dict:
        extra = dict(
            yi=self.yi,
            vi=self.vi,
            slab=self.slab,
            notes=self.notes,
            model=self.model_name,
            method_label=self.method_label,
            estimates=self.estimates(),
        )
        if self.control != {"threshold": _THRESHOLD, "maxiter": _MAXITER}:
            extra["control"] = self.control
        return extra

    @property
    def control(self) -> dict:
        """metafor's ``control`` entries this fit used: ``threshold`` (tau^2 convergence) and ``maxiter``;
        refits (leave-one-out, Egger's test, influence, trim-and-fill) use the same."""
        return {"threshold": self.threshold, "maxiter": self.maxiter}

    # -- follow-ups ----------------------------------------------------------------------------
    def predict(self) -> Estimate:
        """Pooled effect with its CI and the prediction interval for a new study's true effect:
        estimate +/- crit sqrt(se^2 + tau^2), crit from t(k-1) under Knapp-Hartung, else normal
        (metafor ``predict.rma``, default ``pi.type``; Riley et al. 2011, BMJ 342:d549)."""
        crit = self._critical_value()
        half = crit * math.sqrt(self.se**2 + (0.0 if math.isnan(self.tau2) else self.tau2))
        return Estimate(
            "pooled effect (prediction interval)",
            self.estimate,
            self.se,
            self.ci_low,
            self.ci_high,
            self.df,
            self.statistic,
            self.p,
            self.method_label + "; PI = estimate +/- crit sqrt(se^2 + tau^2)",
            "; ".join(self.notes),
            {"pi_low": self.estimate - half, "pi_high": self.estimate + half},
        )

    def weights(self) -> np.ndarray:
        """The studies' weights in percent in the pooled effect (``study_weights`` at the fit's tau^2; equal
        effects: tau^2 = 0), in ``slab`` order, as metafor ``weights(fit)``."""
        return study_weights(self.vi, 0.0 if self.method in _EQUAL else self.tau2)

    def confint(self) -> pd.DataFrame:
        """Q-profile confidence intervals for tau^2, tau, I^2 (%) and H^2 (Viechtbauer 2007), as
        metafor's ``confint.rma.uni`` (search range [0, max(100, 10 tau^2)], uniroot tolerance)."""
        return _q_profile(self)

    def leave1out(self) -> pd.DataFrame:
        """Refit with each study left out in turn (metafor ``leave1out``): one row per omitted study."""
        if self.k == 1:
            raise AnalysisError("Leave-one-out needs at least 2 studies.")
        rows = []
        for i, label in enumerate(self.slab):
            keep = np.arange(self.k) != i
            rows.append(self._refit_row(keep, f"pooled effect omitting {label}", {"omitted": label}))
        return to_frame(rows)

    def cumulative(self, order: Sequence | None = None) -> pd.DataFrame:
        """Cumulative meta-analysis (metafor ``cumul``): studies added one at a time in ascending
        ``order`` (e.g. publication year; ties keep the input order). Row i pools the first i studies;
        the first row is a single study (heterogeneity NaN)."""
        keys = np.arange(self.k) if order is None else np.asarray(order)
        if keys.shape != (self.k,):
            raise AnalysisError(f"order needs one value per study ({self.k}); got {keys.shape}.")
        sequence = np.argsort(keys, kind="stable")
        rows = []
        for i in range(self.k):
            keep = sequence[: i + 1]
            rows.append(
                self._refit_row(
                    keep,
                    f"cumulative pooled effect up to {self.slab[sequence[i]]}",
                    {"added": self.slab[sequence[i]], "order": to_jsonable(keys[sequence[i]])},
                )
            )
        return to_frame(rows)

    def regtest(self) -> pd.DataFrame:
        """Egger's regression test for funnel-plot asymmetry, as metafor ``regtest(model="rma",
        predictor="sei")``: the same model (method, Knapp-Hartung) with the standard error as predictor.
        Rows: the slope on the SE (its z or t test is Egger's test) and the limit estimate (intercept,
        the effect as SE -> 0). With k < 10 the test has little power (Sterne et al. 2011, BMJ 343:d4002)."""
        if self.k < 3:
            raise AnalysisError(f"Egger's test needs at least 3 studies; got k = {self.k}.")
        y, v = np.asarray(self.yi), np.asarray(self.vi)
        X = np.column_stack([np.ones(self.k), np.sqrt(v)])
        if np.ptp(X[:, 1]) == 0:
            raise AnalysisError("All studies have the same standard error, so Egger's predictor is constant.")
        fit = _fit(y, v, X, self.method, self.knha, self.level, self.threshold, self.maxiter)
        caveat = f"k = {self.k}: Egger's test has low power with fewer than 10 studies; interpret with caution"
        notes = "; ".join(([caveat] if self.k < 10 else []) + list(fit.notes))
        label = f"Egger regression (predictor: SE), {self.method_label}"
        return to_frame(
            [
                Estimate(
                    "funnel asymmetry (slope on SE)",
                    fit.beta[1],
                    fit.se[1],
                    fit.ci_low[1],
                    fit.ci_high[1],
                    fit.df,
                    fit.statistic[1],
                    fit.p[1],
                    label,
                    notes,
                    {"k": self.k},
                ),
                Estimate(
                    "limit estimate (SE -> 0)",
                    fit.beta[0],
                    fit.se[0],
                    fit.ci_low[0],
                    fit.ci_high[0],
                    fit.df,
                    fit.statistic[0],
                    fit.p[0],
                    label,
                    notes,
                    {"k": self.k},
                ),
            ]
        )

    def summary(self) -> str:
        """A metafor-like printout naming the model, the tau^2 estimator, k, heterogeneity and the test."""
        return _summary_text(self)

    # -- helpers -------------------------------------------------------------------------------
    def _critical_value(self) -> float:
        alpha = 1 - self.level
        if self.knha and self.k > 1:
            return float(stats.t.isf(alpha / 2, self.df))
        return float(stats.norm.isf(alpha / 2))

    def _refit_row(self, keep: np.ndarray, quantity: str, extra: dict) -> Estimate:
        y, v = np.asarray(self.yi)[keep], np.asarray(self.vi)[keep]
        slab = [self.slab[j] for j in np.atleast_1d(np.arange(self.k)[keep])]
        try:
            sub = rma(y, v, method=self.method, knha=self.knha, level=self.level, slab=slab, **self.control)
        except AnalysisError as error:
            return Estimate(
                quantity,
                math.nan,
                method=self.method_label,
                notes=f"fit failed: {error}",
                extra={
                    **extra,
                    "k": int(y.size),
                    "q": math.nan,
                    "q_p": math.nan,
                    "tau2": math.nan,
                    "i2": math.nan,
                    "h2": math.nan,
                },
            )
        return Estimate(
            quantity,
            sub.estimate,
            sub.se,
            sub.ci_low,
            sub.ci_high,
            sub.df,
            sub.statistic,
            sub.p,
            sub.method_label,
            "; ".join(sub.notes),
            {**extra, "k": sub.k, "q": sub.q, "q_p": sub.q_p, "tau2": sub.tau2, "i2": sub.i2, "h2": sub.h2},
        )


def study_weights(vi: Sequence[float], tau2: float = 0.0) -> np.ndarray:
    """Each study's weight in percent in an inverse-variance pooled effect: w_i = 1 / (vi_i + tau^2), normalised
    to sum to 100 (metafor ``weights.rma.uni``); ``tau2`` = 0 (or NaN: no between-study variance estimated) gives
    the equal-effects weights 1 / vi_i."""
    v = np.asarray(vi, dtype=float)
    tau2 = 0.0 if tau2 is None or math.isnan(float(tau2)) else float(tau2)
    if v.size == 0 or not np.all(np.isfinite(v)) or np.any(v + tau2 <= 0):
        raise AnalysisError(f"weights need finite, positive variances vi + tau^2; got vi = {v.tolist()}, tau2 = {tau2}")
    w = 1.0 / (v + tau2)
    return 100.0 * w / w.sum()


def rma(
    yi: Sequence[float],
    vi: Sequence[float],
    *,
    method: str = "REML",
    knha: bool = False,
    level: float = 0.95,
    slab: Sequence[str] | None = None,
    threshold: float = _THRESHOLD,
    maxiter: int = _MAXITER,
) -> MetaResult:
    """Pool effect sizes ``yi`` with sampling variances ``vi`` (metafor ``rma.uni`` without moderators).

    ``method``: "REML" (default), "ML", "DL", "PM" (random effects) or "EE"/"FE" (equal/fixed effects:
    the same inverse-variance numbers, named as the analyst prefers). ``knha=True`` uses the
    Knapp-Hartung variance factor and t(k-1) tests and intervals. ``slab`` labels the studies.
    ``threshold`` and ``maxiter`` are metafor's ``control`` entries of those names (defaults 1e-5 and 100:
    Fisher scoring stops when tau^2 changes by less than ``threshold``); the result keeps them for its refits.
    k = 1 gives that study's own estimate with a note; heterogeneity is NaN.
    """
    if not (isinstance(threshold, (int, float)) and threshold > 0 and math.isfinite(threshold)):
        raise AnalysisError(f"threshold (metafor control) must be a positive number; got {threshold!r}.")
    if not (isinstance(maxiter, (int, np.integer)) and not isinstance(maxiter, bool) and maxiter >= 1):
        raise AnalysisError(f"maxiter (metafor control) must be an integer >= 1; got {maxiter!r}.")
    control = {"threshold": float(threshold), "maxiter": int(maxiter)}
    given = tuple(str(s) for s in slab) if slab is not None else None
    y, v, method = _check_inputs(yi, vi, method, level, given)
    k = y.size
    labels = given if given is not None else tuple(f"Study {i + 1}" for i in range(k))
    if len(labels) != k:
        raise AnalysisError(f"slab has {len(labels)} labels for {k} studies.")
    if k == 1:
        return replace(_single_study(y, v, method, knha, level, labels), **control)
    fit = _fit(y, v, np.ones((k, 1)), method, knha, level, control["threshold"], control["maxiter"])
    re = method not in _EQUAL
    return MetaResult(
        yi=tuple(y.tolist()),
        vi=tuple(v.tolist()),
        slab=labels,
        method=method,
        knha=knha,
        level=level,
        k=k,
        estimate=float(fit.beta[0]),
        se=float(fit.se[0]),
        statistic=float(fit.statistic[0]),
        p=float(fit.p[0]),
        ci_low=float(fit.ci_low[0]),
        ci_high=float(fit.ci_high[0]),
        df=fit.df,
        tau2=fit.tau2 if re else 0.0,
        se_tau2=fit.se_tau2,
        i2=fit.i2,
        h2=fit.h2,
        q=fit.q,
        q_df=fit.q_df,
        q_p=fit.q_p,
        vt=fit.vt,
        s2w=fit.s2w,
        iterations=fit.iterations,
        notes=fit.notes,
        **control,
    )


def _single_study(y, v, method, knha, level, labels) -> MetaResult:
    se = math.sqrt(v[0])
    z = y[0] / se
    crit = float(stats.norm.isf((1 - level) / 2))
    notes = ["k = 1: the result is that study's own estimate; no pooling and no heterogeneity can be estimated"]
    if knha:
        notes.append("Knapp-Hartung needs k >= 2: Wald z used instead (as metafor does)")
    return MetaResult(
        yi=(float(y[0]),),
        vi=(float(v[0]),),
        slab=labels,
        method=method,
        knha=knha,
        level=level,
        k=1,
        estimate=float(y[0]),
        se=se,
        statistic=z,
        p=float(2 * stats.norm.sf(abs(z))),
        ci_low=float(y[0] - crit * se),
        ci_high=float(y[0] + crit * se),
        df=math.nan,
        tau2=math.nan,
        se_tau2=math.nan,
        i2=math.nan,
        h2=math.nan,
        q=math.nan,
        q_df=0,
        q_p=math.nan,
        vt=math.nan,
        s2w=1.0,
        iterations=0,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------
# The building blocks for models with moderators (imrstats.meta.moderators)


def check_effects(
    yi, vi, method: str, level: float, labels: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """The checks ``rma`` makes on its input, for other fitters: the method (upper-cased) is one of
    ``METHODS``, 0 < level < 1, yi and vi are finite, of one length and k >= 1, and vi > 0. Returns (yi, vi,
    method) as float arrays and the method's canonical name; a failed check raises ``AnalysisError`` naming
    the studies (by ``labels`` when given)."""
    return _check_inputs(yi, vi, method, level, labels)


def fit_design(
    yi: np.ndarray,
    vi: np.ndarray,
    X: np.ndarray,
    *,
    method: str = "REML",
    knha: bool = False,
    level: float = 0.95,
    threshold: float = _THRESHOLD,
    maxiter: int = _MAXITER,
):
    """metafor's ``rma.uni`` fit for a given model matrix ``X`` (k x p, full column rank; the intercept, if
    any, is a column of ones): tau^2 by ``method`` with the same algorithms as ``rma`` (``threshold`` and
    ``maxiter`` are metafor's ``control`` entries of those names, defaults 1e-5 and 100), the weighted
    least-squares coefficients with their (Knapp-Hartung scaled) standard errors, z or t(k - p) tests and
    CIs, the residual heterogeneity QE on k - p df, and I^2 / H^2 from the typical within-study variance
    (k - p) / tr(P) (metafor's default ``i2def``). Inputs are taken as checked (``check_effects``).

    Returns a frozen record with ``beta``, ``se``, ``statistic``, ``p``, ``ci_low``, ``ci_high`` (arrays of
    length p), ``df`` (k - p under Knapp-Hartung, else NaN), ``tau2``, ``se_tau2``, ``q`` / ``q_df`` / ``q_p``
    (QE), ``i2``, ``h2``, ``vt``, ``s2w`` (the Knapp-Hartung variance factor), ``iterations`` and ``notes``.
    The coefficients' covariance matrix is ``s2w (X' W X)^-1`` with W = diag(1 / (vi + tau^2))."""
    y, v, X = np.asarray(yi, dtype=float), np.asarray(vi, dtype=float), np.asarray(X, dtype=float)
    return _fit(y, v, X, str(method).upper(), knha, level, threshold, maxiter)


def estimate_tau2(
    yi: np.ndarray,
    vi: np.ndarray,
    X: np.ndarray,
    *,
    method: str = "REML",
    threshold: float = _THRESHOLD,
    maxiter: int = _MAXITER,
) -> tuple[float, float, int, tuple[str, ...]]:
    """tau^2 alone, as ``fit_design`` estimates it for the model matrix ``X`` (for refits that need only the
    coefficients' test statistics, e.g. permutation tests): (tau^2, its SE, iterations, notes); 0 for EE/FE."""
    y, v, X = np.asarray(yi, dtype=float), np.asarray(vi, dtype=float), np.asarray(X, dtype=float)
    t = _estimate_tau2(y, v, X, str(method).upper(), threshold, maxiter)
    return t.tau2, t.se, t.iterations, t.notes


def generalised_q(tau2: float, yi: np.ndarray, vi: np.ndarray, X: np.ndarray) -> float:
    """The generalised Q statistic y' P(tau^2) y with weights 1 / (vi + tau^2) and residuals from ``X``
    (DerSimonian & Kacker 2007): Cochran's Q at tau^2 = 0."""
    return _generalised_q(tau2, np.asarray(yi, dtype=float), np.asarray(vi, dtype=float), np.asarray(X, dtype=float))


# ---------------------------------------------------------------------------------------------
# Q-profile confidence interval for tau^2


def _q_profile(res: MetaResult) -> pd.DataFrame:
    if res.k == 1:
        raise AnalysisError("A CI for tau^2 needs at least 2 studies.")
    if res.method in _EQUAL:
        raise AnalysisError("An equal-effects model has no tau^2; fit a random-effects model for its CI.")
    tau2_lb, tau2_ub, notes = q_profile_tau2(res.yi, res.vi, np.ones((res.k, 1)), res.tau2, res.level)
    vt = res.vt
    df = res.k - 1
    method = f"Q-profile (Viechtbauer 2007), chi-square({df}) quantiles"
    note = "; ".join(notes)
    return to_frame(
        [
            Estimate("tau^2", res.tau2, ci_low=tau2_lb, ci_high=tau2_ub, method=method, notes=note),
            Estimate(
                "tau",
                math.sqrt(res.tau2),
                ci_low=math.sqrt(tau2_lb),
                ci_high=math.sqrt(tau2_ub),
                method=method,
                notes=note,
            ),
            Estimate(
                "I^2 (%)",
                res.i2,
                ci_low=100 * tau2_lb / (vt + tau2_lb),
                ci_high=100 * tau2_ub / (vt + tau2_ub),
                method=method,
                notes=note,
            ),
            Estimate("H^2", res.h2, ci_low=tau2_lb / vt + 1, ci_high=tau2_ub / vt + 1, method=method, notes=note),
        ]
    )


def q_profile_tau2(
    yi: Sequence[float], vi: Sequence[float], X: np.ndarray, tau2: float, level: float
) -> tuple[float, float, tuple[str, ...]]:
    """Q-profile confidence bounds for tau^2 in the model with design matrix ``X`` (k x p): the tau^2 values
    where the generalised Q statistic (weights 1 / (vi + tau^2), residuals from ``X``) equals the chi-square(k - p)
    quantiles (Viechtbauer 2007, Stat Med 26:37-52), as metafor's ``confint.rma.uni`` with its default search
    range [0, max(100, 10 tau^2)] and uniroot tolerance. Returns (lower, upper, notes); a null set (Q(0) below
    the lower quantile) gives (0, 0) with a note, a bound beyond the search range that range's end."""
    y, v = np.asarray(yi, dtype=float), np.asarray(vi, dtype=float)
    X = np.asarray(X, dtype=float)
    df = X.shape[0] - X.shape[1]
    if df < 1:
        raise AnalysisError(f"A CI for tau^2 needs more studies than coefficients; k - p = {df}.")
    alpha = 1 - level
    crit_upper = float(stats.chi2.isf(alpha / 2, df))  # Q(tau^2_lower) = crit_upper
    crit_lower = float(stats.chi2.ppf(alpha / 2, df))  # Q(tau^2_upper) = crit_lower
    lo, hi = 0.0, max(100.0, 10 * tau2)
    q_lo, q_hi = _generalised_q(lo, y, v, X), _generalised_q(hi, y, v, X)
    notes: list[str] = []

    def root(objective: float) -> float:
        value, converged = brent_zeroin(
            lambda t: _generalised_q(t, y, v, X) - objective, lo, hi, q_lo - objective, q_hi - objective, _TOL, 1000
        )
        if not converged:
            raise AnalysisError("Q-profile root search did not converge.")
        return value

    if q_lo < crit_lower:
        tau2_lb = tau2_ub = lo
        notes.append(
            "Q-profile CI is the null set: Q(0) is below the lower critical value, so both bounds "
            "are reported as 0 (metafor prints them as '<0')"
        )
    else:
        if q_hi > crit_lower:
            tau2_ub = hi
            notes.append(f"upper bound > {hi:g} (search limit)")
        else:
            tau2_ub = root(crit_lower)
    if q_hi > crit_upper:
        tau2_lb = tau2_ub = hi
        notes.append(f"both bounds > {hi:g} (search limit)")
    elif q_lo < crit_upper:
        tau2_lb = lo
    else:
        tau2_lb = root(crit_upper)
    return tau2_lb, tau2_ub, tuple(notes)


# ---------------------------------------------------------------------------------------------
# Printout


def _p_text(p: float) -> str:
    if math.isnan(p):
        return "NA"
    return "< .0001" if p < 1e-4 else f"= {p:.4f}"


def _summary_text(res: MetaResult) -> str:
    lines = [
        f"{res.model_name} (k = {res.k}"
        + (f"; tau^2 estimator: {res.method})" if res.method not in _EQUAL and res.k > 1 else ")"),
        "",
    ]
    if res.k > 1:
        if res.method not in _EQUAL:
            lines += [
                f"tau^2 (estimated amount of total heterogeneity): {res.tau2:.4f} (SE = {res.se_tau2:.4f})",
                f"tau (square root of estimated tau^2 value):      {math.sqrt(res.tau2):.4f}",
            ]
        lines += [
            f"I^2 (total heterogeneity / total variability):   {res.i2:.2f}%",
            f"H^2 (total variability / sampling variability):  {res.h2:.2f}",
            "",
            "Test for Heterogeneity:",
            f"Q(df = {res.q_df}) = {res.q:.4f}, p-val {_p_text(res.q_p)}",
            "",
        ]
    stat = "tval" if res.knha and res.k > 1 else "zval"
    pct = f"{100 * res.level:g}%"
    lines += [
        f"Model Results ({res.test_name}" + (f", df = {res.df:g}" if not math.isnan(res.df) else "") + f"; {pct} CI):",
        "",
        f"{'estimate':>10} {'se':>8} {stat:>8} {'pval':>8} {'ci.lb':>8} {'ci.ub':>8}",
        f"{res.estimate:>10.4f} {res.se:>8.4f} {res.statistic:>8.4f} {_p_text(res.p).replace('= ', ''):>8} "
        f"{res.ci_low:>8.4f} {res.ci_high:>8.4f}",
    ]
    if res.k > 1 and res.method not in _EQUAL:
        pred = res.predict()
        lines += ["", f"Prediction interval ({pct}): [{pred.extra['pi_low']:.4f}, {pred.extra['pi_high']:.4f}]"]
    lines += ["", f"Method: {res.method_label}."]
    lines += [f"Note: {note}." for note in res.notes]
    return "\n".join(lines)
