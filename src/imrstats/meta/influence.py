"""Influence diagnostics and small-study / publication-bias tools for an intercept-only meta-analysis.

Each function takes a fitted ``MetaResult`` (``imrstats.meta.random_effects.rma``) and mirrors a metafor
function (Viechtbauer 2010, J Stat Softw 36(3); metafor 3.8), step by step, so the numbers agree to rounding:

- ``influence(res)``: metafor ``influence.rma.uni`` (Viechtbauer & Cheung 2010, Res Synth Methods 1:112-125):
  externally studentized residuals, DFFITS, Cook's distance, covariance ratio, tau^2 and Q with the study left
  out, hat values, weights (%), DFBETAS and metafor's "influential" flag (``INFLUENCE_RULE``).
- ``baujat(res)``: the data of metafor ``baujat`` (Baujat et al. 2002, Stat Med 21:2641-2652).
- ``ranktest(res)``: Begg & Mazumdar's (1994, Biometrics 50:1088-1101) rank correlation test, metafor
  ``ranktest``: Kendall's tau between the standardized effects and the sampling variances, with R's exact
  p-value (no ties) or its normal approximation (ties).
- ``trimfill(res, side, estimator)``: Duval & Tweedie's (2000, Biometrics 56:455-463; JASA 95:89-98)
  trim-and-fill, metafor ``trimfill.rma.uni`` (L0, R0 and Q0 estimators).

Every refit (a study left out, the truncated data, the filled-in data) uses the model of ``res``: its tau^2
estimator, Knapp-Hartung choice, level and metafor ``control`` (``res.control``), as metafor passes
``x$control`` on. Departures from metafor, on purpose, are named in each function's docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.errors import AnalysisError, SettingsError
from imrstats.meta.random_effects import MetaResult, rma
from imrstats.results import Estimate, ResultMixin, to_frame

_EPS = float(np.finfo(float).eps)
_EQUAL = ("EE", "FE")

INFLUENCE_RULE = (
    "influential (metafor influence.rma.uni, p = 1 coefficient): |DFFITS| > 3 sqrt(p / (k - p)), or "
    "pchisq(Cook's distance, df = 1) > 0.5, or hat > 3 p / k, or |DFBETAS| > 1 "
    "(the studentized residual and the covariance ratio are not part of the rule)"
)

INFLUENCE_COLUMNS = [
    "slab",
    "rstudent",
    "dffits",
    "cook_d",
    "cov_r",
    "tau2_del",
    "qe_del",
    "hat",
    "weight",
    "dfbetas",
    "estimate_del",
    "influential",
    "influential_by",
    "note",
]


def _check_result(res: MetaResult, what: str) -> None:
    if not isinstance(res, MetaResult):
        raise AnalysisError(
            f"{what} needs a fitted model from imrstats.meta.random_effects.rma; got {type(res).__name__}."
        )
    if res.k < 2:
        raise AnalysisError(f"{what} needs at least 2 studies; got k = {res.k}.")


def _refit(res: MetaResult, yi, vi, slab) -> MetaResult:
    """The model of ``res`` (estimator, Knapp-Hartung, level, control) fitted to other data."""
    return rma(yi, vi, method=res.method, knha=res.knha, level=res.level, slab=slab, **res.control)


@dataclass(frozen=True)
class _Deleted:
    """The model refitted without one study: metafor's conventions for a single remaining study (tau^2 = 0,
    QE = 0, s2w = 1, a Wald z test) are applied, so k = 2 gives numbers as metafor does."""

    estimate: float
    vb: float
    tau2: float
    q: float
    s2w: float
    note: str = ""


def _leave_one_out(res: MetaResult) -> list[_Deleted]:
    y, v = np.asarray(res.yi), np.asarray(res.vi)
    out = []
    for i in range(res.k):
        keep = np.arange(res.k) != i
        try:
            sub = _refit(res, y[keep], v[keep], [res.slab[j] for j in np.flatnonzero(keep)])
        except AnalysisError as error:  # metafor skips a failed refit (NA); the reason is kept here
            out.append(_Deleted(*([math.nan] * 5), note=f"refit without this study failed: {error}"))
            continue
        single = sub.k == 1
        out.append(
            _Deleted(
                estimate=sub.estimate,
                vb=sub.se**2,
                tau2=0.0 if single or res.method in _EQUAL else sub.tau2,
                q=0.0 if single else sub.q,
                s2w=1.0 if single else sub.s2w,
            )
        )
    return out


def _weights(res: MetaResult) -> np.ndarray:
    tau2 = 0.0 if res.method in _EQUAL else res.tau2
    return 1.0 / (np.asarray(res.vi) + tau2)


def influence(res: MetaResult) -> pd.DataFrame:
    """Case-deletion diagnostics of an intercept-only model, as metafor ``influence.rma.uni`` (Viechtbauer &
    Cheung 2010): one row per study, in the model's order.

    Columns: ``slab``; ``rstudent`` (externally studentized residual: (y_i - mu_(-i)) / sqrt(s2w_(-i) (v_i +
    tau^2_(-i)) + Var mu_(-i)), residuals below 100 machine epsilon set to 0); ``dffits`` ((mu - mu_(-i)) /
    sqrt(s2w_(-i) h_i (tau^2_(-i) + v_i))); ``cook_d`` ((mu - mu_(-i))^2 / Var mu); ``cov_r`` (Var mu_(-i) /
    Var mu); ``tau2_del`` and ``qe_del`` (tau^2 and Cochran's Q of the model without the study); ``hat`` (w_i /
    sum w, w = 1 / (v_i + tau^2)); ``weight`` (100 w_i / sum w, percent); ``dfbetas`` ((mu - mu_(-i)) /
    sqrt(s2w_(-i) / sum_j 1 / (v_j + tau^2_(-i)))); ``estimate_del`` (mu_(-i)); ``influential`` (bool) and
    ``influential_by`` (which parts of the rule fired); ``note`` (why a refit failed, else empty). Variances
    include the Knapp-Hartung factor s2w when ``res.knha``.

    The rule (``INFLUENCE_RULE``): a study is influential when |DFFITS| > 3 sqrt(p / (k - p)), or the
    chi-square(1) distribution function at its Cook's distance exceeds 0.5, or its hat value exceeds 3 p / k,
    or |DFBETAS| > 1 (p = 1 here).

    Leaving one study out of k = 2 leaves one study: as metafor, its model has tau^2 = 0, Q = 0 and a Wald
    variance. A refit that fails gives NaN in that row (metafor: NA) with the reason in ``note``.
    Departure from metafor: when the Knapp-Hartung factor of the full model is 0 (all studies agree exactly)
    Cook's distance is undefined and an ``AnalysisError`` says so (metafor stops in a Cholesky error).
    """
    _check_result(res, "influence diagnostics")
    if not res.se > 0:
        raise AnalysisError(
            "The pooled effect has variance 0 (Knapp-Hartung factor 0: all studies agree exactly), so Cook's "
            "distance and the covariance ratio are undefined; refit without Knapp-Hartung."
        )
    y, v = np.asarray(res.yi), np.asarray(res.vi)
    k, p = res.k, 1
    w = _weights(res)
    hat = w / w.sum()
    hat[hat > 1 - 10 * _EPS] = 1.0  # as metafor (and lm.influence)
    weight = 100 * w / w.sum()
    vb = res.se**2
    deleted = _leave_one_out(res)
    rows = []
    for i, d in enumerate(deleted):
        diff = res.estimate - d.estimate
        resid = y[i] - d.estimate
        if abs(resid) < 100 * _EPS:  # as metafor
            resid = 0.0
        vb_del_full = 1.0 / float(np.sum(1.0 / (v + d.tau2)))  # Var mu with tau^2_(-i), all k studies
        rstudent = _ratio(resid, math.sqrt(v[i] * d.s2w + d.vb + d.tau2 * d.s2w))
        dffits = _ratio(diff, math.sqrt(d.s2w * hat[i] * (d.tau2 + v[i])))
        dfbetas = _ratio(diff, math.sqrt(d.s2w * vb_del_full))
        cook = diff**2 / vb
        rows.append(
            {
                "slab": res.slab[i],
                "rstudent": rstudent,
                "dffits": dffits,
                "cook_d": cook,
                "cov_r": d.vb / vb,
                "tau2_del": d.tau2,
                "qe_del": d.q,
                "hat": float(hat[i]),
                "weight": float(weight[i]),
                "dfbetas": dfbetas,
                "estimate_del": d.estimate,
                "note": d.note,
            }
        )
    frame = pd.DataFrame(rows)
    fired = pd.DataFrame(
        {
            f"|DFFITS| > {3 * math.sqrt(p / (k - p)):.4g}": frame["dffits"].abs() > 3 * math.sqrt(p / (k - p)),
            "pchisq(Cook's distance, 1) > 0.5": pd.Series(stats.chi2.cdf(frame["cook_d"], p)) > 0.5,
            f"hat > {3 * p / k:.4g}": frame["hat"] > 3 * p / k,
            "|DFBETAS| > 1": frame["dfbetas"].abs() > 1,
        }
    ).fillna(False)
    frame["influential"] = fired.any(axis=1).astype(bool)
    frame["influential_by"] = ["; ".join(c for c in fired.columns if row[c]) for _, row in fired.iterrows()]
    frame = frame[INFLUENCE_COLUMNS]
    frame.attrs["rule"] = INFLUENCE_RULE
    return frame


def _ratio(a: float, b: float) -> float:
    """a / b with IEEE semantics (x / 0 = +-inf, 0 / 0 = NaN), as R divides."""
    if b == 0.0:
        if a == 0.0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a)
    return a / b


def baujat(res: MetaResult) -> pd.DataFrame:
    """The data of a Baujat plot (Baujat et al. 2002), as metafor ``baujat.rma``: per study ``x``, its
    contribution to the heterogeneity, (y_i - mu)^2 / (v_i + tau^2) (with tau^2 = 0 this is its share of
    Cochran's Q), and ``y``, its influence on the pooled effect, (mu_(-i) - mu)^2 / Var mu_(-i) (the
    variance of the refit without it, Knapp-Hartung scaled when ``res.knha``). Columns: slab, x, y, note
    (why a refit failed; then y is NaN, as metafor's NA)."""
    _check_result(res, "A Baujat plot")
    y, v = np.asarray(res.yi), np.asarray(res.vi)
    tau2 = 0.0 if res.method in _EQUAL else res.tau2
    deleted = _leave_one_out(res)
    return pd.DataFrame(
        {
            "slab": list(res.slab),
            "x": (y - res.estimate) ** 2 / (tau2 + v),
            "y": [_ratio((d.estimate - res.estimate) ** 2, d.vb) for d in deleted],
            "note": [d.note for d in deleted],
        }
    )


# ---------------------------------------------------------------------------------------------
# Begg and Mazumdar's rank correlation test


def kendall_exact_cdf(q: int, n: int) -> float:
    """P(T <= q) for T the number of concordant pairs of n untied observations under independence (R's
    ``pkendall``: the Mahonian distribution of inversions), computed as probabilities so it never overflows."""
    top = n * (n - 1) // 2
    if q < 0:
        return 0.0
    if q >= top:
        return 1.0
    probs = np.array([1.0])
    for m in range(2, n + 1):  # add the m-th element: it creates 0..m-1 new inversions, each equally likely
        padded = np.concatenate([np.cumsum(probs), np.zeros(m - 1) + probs.sum()])
        shifted = np.concatenate([np.zeros(m), np.cumsum(probs)])[: padded.size]
        probs = (padded - shifted) / m
    return float(min(1.0, np.sum(probs[: q + 1])))


def _kendall_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, bool]:
    """R's ``cor.test(x, y, method = "kendall", exact = TRUE)``: (tau-b, statistic, p, exact). Without ties
    the exact p-value of T (the number of concordant pairs); with ties the normal approximation of S with the
    tie-corrected variance and no continuity correction (R warns that it cannot compute an exact p)."""
    n = x.size
    sx = np.sign(x[:, None] - x[None, :])
    sy = np.sign(y[:, None] - y[None, :])
    upper = np.triu_indices(n, 1)
    s = float(np.sum(sx[upper] * sy[upper]))
    denom = math.sqrt(float(np.sum(sx[upper] ** 2))) * math.sqrt(float(np.sum(sy[upper] ** 2)))
    if denom == 0:
        return math.nan, math.nan, math.nan, False
    tau = s / denom
    ties = min(np.unique(x).size, np.unique(y).size) < n
    if not ties:
        q = int(np.round((tau + 1) * n * (n - 1) / 4))
        if q > n * (n - 1) / 4:
            p = 1 - kendall_exact_cdf(q - 1, n)
        else:
            p = kendall_exact_cdf(q, n)
        return tau, float(q), min(2 * p, 1.0), True

    def groups(z):
        _, counts = np.unique(z, return_counts=True)
        return counts[counts > 1].astype(float)

    tx, ty = groups(x), groups(y)
    t0 = n * (n - 1) / 2
    t1, t2 = float(np.sum(tx * (tx - 1))) / 2, float(np.sum(ty * (ty - 1))) / 2
    s_adj = tau * math.sqrt((t0 - t1) * (t0 - t2))
    v0 = n * (n - 1) * (2 * n + 5)
    vt = float(np.sum(tx * (tx - 1) * (2 * tx + 5)))
    vu = float(np.sum(ty * (ty - 1) * (2 * ty + 5)))
    v1 = float(np.sum(tx * (tx - 1))) * float(np.sum(ty * (ty - 1)))
    v2 = float(np.sum(tx * (tx - 1) * (tx - 2))) * float(np.sum(ty * (ty - 1) * (ty - 2)))
    var_s = (v0 - vt - vu) / 18 + v1 / (2 * n * (n - 1)) + (v2 / (9 * n * (n - 1) * (n - 2)) if n > 2 else 0.0)
    z = s_adj / math.sqrt(var_s)
    p = 2 * min(stats.norm.cdf(z), stats.norm.sf(z))
    return tau, z, float(p), False


def ranktest(res: MetaResult) -> pd.DataFrame:
    """Begg & Mazumdar's (1994) rank correlation test for funnel-plot asymmetry, as metafor ``ranktest``:
    Kendall's tau between the standardized deviates (y_i - mu_EE) / sqrt(v_i - 1 / sum w) (mu_EE the
    inverse-variance mean, w = 1 / v, whatever the model's estimator) and the sampling variances v_i, with the
    p-value of R's ``cor.test(..., method = "kendall", exact = TRUE)``: exact (the distribution of the number of
    concordant pairs) without ties; with ties (e.g. equal variances) the normal approximation with the
    tie-corrected variance, as R falls back to. One row: estimate = tau (tau-b), statistic = T (exact) or z,
    p (two-sided). Low power with few studies (Sterne et al. 2011, BMJ 343:d4002).

    Departure: metafor 3.8's exact p-value is NaN beyond about 170 studies (n! overflows); here the exact
    distribution is computed as probabilities and stays finite. All studies tied on both variables give NaN,
    as R's NA.
    """
    _check_result(res, "The rank correlation test")
    y, v = np.asarray(res.yi), np.asarray(res.vi)
    w = 1.0 / v
    theta = float(np.sum(w * y) / np.sum(w))
    vb = 1.0 / float(np.sum(w))
    y_star = (y - theta) / np.sqrt(v - vb)
    tau, statistic, p, exact = _kendall_test(y_star, v)
    how = "exact distribution of T (no ties)" if exact else "normal approximation of S, tie-corrected (ties present)"
    notes = []
    if res.k < 10:
        notes.append(f"k = {res.k}: the rank correlation test has low power with fewer than 10 studies")
    if math.isnan(tau):
        notes.append("all studies tie on the standardized effect or the variance: Kendall's tau is undefined")
    return to_frame(
        [
            Estimate(
                "Kendall's tau (Begg and Mazumdar rank correlation)",
                tau,
                statistic=statistic,
                p=p,
                method=f"Begg and Mazumdar rank correlation test; {how}",
                notes="; ".join(notes),
                extra={"k": res.k, "exact": exact},
            )
        ]
    )


# ---------------------------------------------------------------------------------------------
# Trim and fill


@dataclass(frozen=True)
class TrimFillResult(ResultMixin):
    """Duval & Tweedie's trim-and-fill: ``k0`` studies estimated missing on ``side`` (SE ``se_k0``; for R0
    ``p_k0`` = P(R0 >= k0) under symmetry, NaN otherwise), the data with the filled-in studies (``data``:
    slab, yi, vi, sei, filled) and ``fit``, the model refitted to them (``original`` when k0 = 0)."""

    original: MetaResult
    fit: MetaResult
    k0: int
    se_k0: float
    side: str
    estimator: str
    p_k0: float
    iterations: int
    filled: tuple[bool, ...]

    @property
    def data(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "slab": list(self.fit.slab),
                "yi": list(self.fit.yi),
                "vi": list(self.fit.vi),
                "sei": np.sqrt(self.fit.vi),
                "filled": list(self.filled),
            }
        )

    def estimates(self) -> list[Estimate]:
        """Rows: k0 (estimated missing studies), the pooled effect with the filled-in studies, and the
        original pooled effect for comparison."""
        label = f"trim and fill ({self.estimator}, {self.side} side; Duval and Tweedie 2000)"
        note = "" if self.k0 > 0 else "no study estimated missing: the filled model is the original one"
        extra = {"k0": self.k0, "side": self.side, "estimator": self.estimator}
        return [
            Estimate(
                "k0 (studies estimated missing)",
                float(self.k0),
                self.se_k0,
                p=self.p_k0,
                method=label,
                notes=note,
                extra={**extra, "k": self.original.k},
            ),
            Estimate(
                "pooled effect (trim and fill)",
                self.fit.estimate,
                self.fit.se,
                self.fit.ci_low,
                self.fit.ci_high,
                self.fit.df,
                self.fit.statistic,
                self.fit.p,
                f"{self.fit.method_label}; {label}",
                note,
                {**extra, "k": self.fit.k, "tau2": self.fit.tau2, "i2": self.fit.i2},
            ),
            Estimate(
                "pooled effect (observed studies)",
                self.original.estimate,
                self.original.se,
                self.original.ci_low,
                self.original.ci_high,
                self.original.df,
                self.original.statistic,
                self.original.p,
                self.original.method_label,
                "",
                {**extra, "k": self.original.k, "tau2": self.original.tau2, "i2": self.original.i2},
            ),
        ]

    def to_frame(self) -> pd.DataFrame:
        return to_frame(self.estimates())

    def _json_fields(self) -> dict:
        return {
            "k0": self.k0,
            "se_k0": self.se_k0,
            "side": self.side,
            "estimator": self.estimator,
            "p_k0": self.p_k0,
            "iterations": self.iterations,
            "data": self.data.to_dict(orient="list"),
            "fit": self.fit.to_dict(),
            "estimates": self.estimates(),
        }

    def summary(self) -> str:
        lines = [
            f"Estimated number of missing studies on the {self.side} side: {self.k0} (SE = {self.se_k0:.4f}; "
            f"estimator {self.estimator})",
        ]
        if self.estimator == "R0":
            lines.append(f"Test of H0: no missing studies: p = {self.p_k0:.4f}")
        lines += ["", self.fit.summary()]
        return "\n".join(lines)


ESTIMATORS = ("L0", "R0", "Q0")
SIDES = ("left", "right")


def trimfill(res: MetaResult, side: str | None = None, estimator: str = "L0", *, maxiter: int = 100) -> TrimFillResult:
    """Duval & Tweedie's (2000) trim-and-fill, as metafor ``trimfill.rma.uni``.

    ``side``: where studies are missing; None chooses as metafor: "right" when the slope of Egger's regression
    (the model of ``res`` with the standard error as predictor) is negative, else "left". ``estimator``: "L0"
    (default), "R0" or "Q0". The effects (flipped when the side is right) are sorted; repeatedly the k - k0
    smallest are pooled with the model of ``res``, the signed ranks of |y_i - mu| give k0 (L0 = (4 S_r -
    k(k + 1)) / (2k - 1); R0 = the rightmost run of positive ranks minus 1; Q0 = k - 1/2 - sqrt(2k^2 - 4 S_r +
    1/4)), rounded (half to even, as R) and truncated at 0, until k0 repeats (at most ``maxiter`` rounds). The
    k0 most extreme studies are mirrored about the truncated pooled effect (same variances) and the model is
    refitted to all k + k0. SE of k0 as metafor (from Var S_r; R0: sqrt(2 max(0, k0) + 2)); for R0, p_k0 =
    0.5^(k0 + 1).

    Departures from metafor, on purpose: the refitted model keeps the Knapp-Hartung choice and level of ``res``
    (metafor refits with a Wald z test and a 95% CI unless they are passed again); every internal fit uses
    ``res.control`` (as metafor 4 and later; metafor 3.8 uses its default control unless ``control`` is
    passed); a centred effect within 100 machine epsilon of 0 counts as 0, so identical studies give k0 = 0;
    R0 with no study left of the truncated estimate raises an ``AnalysisError`` (metafor stops in an error).
    """
    _check_result(res, "Trim and fill")
    if estimator not in ESTIMATORS:
        raise SettingsError([("estimator", f"must be one of {', '.join(ESTIMATORS)}; got {estimator!r}")])
    if side is not None and side not in SIDES:
        raise SettingsError([("side", f"must be 'left', 'right' or None (chosen from the data); got {side!r}")])
    if not (isinstance(maxiter, int) and maxiter >= 1):
        raise SettingsError([("maxiter", f"must be an integer >= 1; got {maxiter!r}")])
    y0, v0 = np.asarray(res.yi), np.asarray(res.vi)
    k = res.k
    if side is None:
        side = _choose_side(res)
    yi = -y0 if side == "right" else y0.copy()
    order = np.argsort(yi, kind="stable")
    yi, vi = yi[order], v0[order]
    k0, k0_previous, iterations = 0, -1, 0
    beta, se_k0 = math.nan, math.nan
    while k0 != k0_previous:
        k0_previous = k0
        iterations += 1
        if iterations > maxiter:
            raise AnalysisError(f"Trim and fill did not converge in {maxiter} iterations (k0 keeps changing).")
        if k - k0 < 1:
            raise AnalysisError(f"Trim and fill: k0 = {k0} of k = {k} studies would leave no study to pool.")
        beta = _refit(res, yi[: k - k0], vi[: k - k0], None).estimate
        yc = yi - beta
        yc = np.where(np.abs(yc) < 100 * _EPS * max(1.0, abs(beta)), 0.0, yc)
        ranks = stats.rankdata(np.abs(yc), method="ordinal")  # R's rank(ties.method = "first")
        signed = np.sign(yc) * ranks
        if estimator == "R0":
            negative = -signed[signed < 0]
            if negative.size == 0:
                if np.any(signed > 0):
                    raise AnalysisError(
                        "Trim and fill (R0): every study lies on one side of the truncated pooled effect, so the "
                        "rightmost run is undefined; use estimator='L0'."
                    )
                k0_raw = -1.0
            else:
                k0_raw = (k - float(negative.max())) - 1
            se_raw = math.sqrt(2 * max(0.0, k0_raw) + 2)
        else:
            sr = float(signed[signed > 0].sum())
            if estimator == "L0":
                k0_raw = (4 * sr - k * (k + 1)) / (2 * k - 1)
            else:
                radicand = 2 * k**2 - 4 * sr + 0.25
                if radicand < 0:
                    raise AnalysisError(
                        "Trim and fill (Q0): 2k^2 - 4 S_r + 1/4 < 0 (nearly every study lies on one side of the "
                        "truncated pooled effect), so Q0 is undefined; use estimator='L0'."
                    )
                k0_raw = k - 0.5 - math.sqrt(radicand)
            var_sr = (
                k * (k + 1) * (2 * k + 1)
                + 10 * k0_raw**3
                + 27 * k0_raw**2
                + 17 * k0_raw
                - 18 * k * k0_raw**2
                - 18 * k * k0_raw
                + 6 * k**2 * k0_raw
            ) / 24
            root = math.sqrt(var_sr) if var_sr >= 0 else math.nan
            if estimator == "L0":
                se_raw = 4 * root / (2 * k - 1)
            else:
                denominator = (k - 0.5) ** 2 - k0_raw * (2 * k - k0_raw - 1)
                se_raw = 2 * root / math.sqrt(denominator) if denominator > 0 else math.nan
        k0 = max(0, int(round(k0_raw)))
        se_k0 = se_raw if math.isnan(se_raw) else max(0.0, se_raw)
    if k0 > 0:
        if k0 >= k:
            raise AnalysisError(f"Trim and fill estimated k0 = {k0} missing studies, as many as observed (k = {k}).")
        mirrored = 2 * beta - yi[k - k0 :]  # the k0 most extreme, mirrored about the truncated estimate
        filled_y = -mirrored if side == "right" else mirrored
        y_fill = np.concatenate([y0, filled_y])
        v_fill = np.concatenate([v0, vi[k - k0 :]])
        slab = list(res.slab) + [f"Filled {j + 1}" for j in range(k0)]
        fit = _refit(res, y_fill, v_fill, slab)
        filled = (False,) * k + (True,) * k0
    else:
        fit, filled = res, (False,) * k
    p_k0 = 0.5 ** (k0 + 1) if estimator == "R0" else math.nan
    return TrimFillResult(res, fit, k0, se_k0, side, estimator, p_k0, iterations, filled)


def _choose_side(res: MetaResult) -> str:
    """metafor's choice: the sign of the slope on the standard error in the model of ``res`` (Egger's test)."""
    if res.k < 3:
        raise AnalysisError(
            f"Trim and fill chooses the side from Egger's regression, which needs k >= 3 (k = {res.k}); "
            "pass side='left' or side='right'."
        )
    if np.ptp(np.sqrt(res.vi)) == 0:
        raise AnalysisError(
            "Trim and fill chooses the side from Egger's regression, but all studies have the same standard error; "
            "pass side='left' or side='right'."
        )
    egger = res.regtest().set_index("quantity")
    slope = float(egger.at["funnel asymmetry (slope on SE)", "estimate"])
    return "right" if slope < 0 else "left"
