"""Publication-bias selection models: the step-function model and the a priori weight sensitivity analysis.

``selmodel_stepfun`` fits the random-effects step-function selection model of Vevea & Hedges (1995,
Psychometrika 60(3):419-435) as metafor's ``selmodel(res, type = "stepfun", steps = ...)`` fits it: the
p-value of each study (one-sided by default: p = 1 - Phi(y_i / sqrt(v_i)) for ``alternative="greater"``)
falls into one of the intervals (0, s_1], (s_1, s_2], ..., (s_{m-1}, 1]; a study whose p-value is in
interval j is published with relative likelihood delta_j, delta_1 = 1. The likelihood of study i is

    delta_{j(i)} phi(y_i; mu, v_i + tau^2) / A_i,   A_i = sum_j delta_j P(y in interval j | mu, v_i + tau^2),

and mu, tau^2 and the free weights are estimated by maximum likelihood (metafor's parameterisation:
tau^2 >= 0, each weight in [0, 100], its ``delta.max``). The weights are relative to the first interval
(the most significant results). The likelihood-ratio test of selection compares the model with the
random-effects model fitted by ML (all weights 1), on as many df as weights estimated; standard errors
come from the Hessian of the log-likelihood in (mu, tau^2, delta) at the optimum, as in metafor.

``selmodel_sensitivity`` is the sensitivity analysis of Vevea & Woods (2005, Psychological Methods
10(4):428-443): mu and tau^2 re-estimated by ML with the weights fixed a priori (none estimated), under the
four illustrative weight functions of their Table 1 (moderate and severe one-tailed and two-tailed
selection over 14 one-sided p-value intervals; ``VEVEA_WOODS_2005``, the values as metafor's ``selmodel``
documentation reproduces them). Vevea & Woods call these "merely examples"; the analysis shows how far the
estimate would move under selection of that shape; it does not estimate the selection.

The optimum is found with L-BFGS-B on (mu, log tau^2, log delta) from the ML random-effects estimates,
then polished by Newton steps on the exact score (analytic) and a finite-difference Hessian, so the
numbers are the optimum itself rather than where an optimiser's tolerance stopped. Departures from
metafor, on purpose: tau^2 on the boundary is reported as exactly 0 and gets no SE (metafor reports the
tiny value where its optimiser stopped); a weight that runs to its bound of 100 gets no SE and a note (metafor
warns and reports an SE); missing values raise an error instead of being dropped; only intercept-only
models (no moderators).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import ndtr

from imrstats.errors import AnalysisError
from imrstats.meta.random_effects import MetaResult
from imrstats.results import Estimate, ResultMixin, summary_block, to_frame

ALTERNATIVES = ("greater", "less", "two.sided")
DELTA_MAX = 100.0  # metafor's delta.max for type = "stepfun"
_NEWTON_MAXITER = 100
_INV_SQRT_2PI = 1.0 / math.sqrt(2 * math.pi)

# Vevea & Woods (2005), Table 1: a priori selection weights per one-sided p-value interval (upper bounds in
# `steps`), for moderate and severe one-tailed selection (significant positive results favoured) and
# two-tailed selection (significant results in either direction favoured), as reproduced in metafor's
# documentation of selmodel.
VEVEA_WOODS_STEPS = (0.005, 0.01, 0.05, 0.10, 0.25, 0.35, 0.50, 0.65, 0.75, 0.90, 0.95, 0.99, 0.995, 1.0)
VEVEA_WOODS_WEIGHTS = {
    "moderate one-tailed": (1, 0.99, 0.95, 0.80, 0.75, 0.65, 0.60, 0.55, 0.50, 0.50, 0.50, 0.50, 0.50, 0.50),
    "severe one-tailed": (1, 0.99, 0.90, 0.75, 0.60, 0.50, 0.40, 0.35, 0.30, 0.25, 0.10, 0.10, 0.10, 0.10),
    "moderate two-tailed": (1, 0.99, 0.95, 0.90, 0.80, 0.75, 0.60, 0.60, 0.75, 0.80, 0.90, 0.95, 0.99, 1.00),
    "severe two-tailed": (1, 0.99, 0.90, 0.75, 0.60, 0.50, 0.25, 0.25, 0.50, 0.60, 0.75, 0.90, 0.99, 1.00),
}
VEVEA_WOODS_SOURCE = "Vevea & Woods 2005, Psychological Methods 10(4):428-443, Table 1"


def vevea_woods_2005() -> pd.DataFrame:
    """The a priori weight functions of Vevea & Woods (2005, Table 1): a ``steps`` column (upper bounds of
    the one-sided p-value intervals) and one column of weights per selection pattern."""
    return pd.DataFrame({"steps": VEVEA_WOODS_STEPS, **VEVEA_WOODS_WEIGHTS})


# ---------------------------------------------------------------------------------------------
# Inputs


def _check_data(yi, vi) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    if y.size != v.size:
        raise AnalysisError(f"yi and vi differ in length ({y.size} vs {v.size}).")
    if y.size == 0:
        raise AnalysisError("No studies (k = 0).")
    bad = ~(np.isfinite(y) & np.isfinite(v))
    if bad.any():
        raise AnalysisError(
            f"yi / vi missing or infinite for studies {', '.join(str(i + 1) for i in np.flatnonzero(bad))}."
        )
    if np.any(v <= 0):
        raise AnalysisError(
            "Sampling variances must be > 0; studies "
            f"{', '.join(str(i + 1) for i in np.flatnonzero(v <= 0))} have vi <= 0."
        )
    return y, v


def _check_steps(steps) -> np.ndarray:
    s = np.asarray(steps, dtype=float).ravel()
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise AnalysisError(f"steps must be p-value cut points in (0, 1]; got {list(steps)!r}.")
    if np.any(s <= 0) or np.any(s > 1):
        raise AnalysisError(f"steps must lie in (0, 1] (p-value cut points); got {s.tolist()}.")
    s = np.unique(s)  # sorted, as metafor's unique(sort(steps))
    if s[-1] != 1.0:
        s = np.append(s, 1.0)
    if s.size < 2:
        raise AnalysisError("steps needs at least one cut point below 1, e.g. steps=(0.025, 1).")
    return s


def _check_alternative(alternative: str) -> str:
    alt = str(alternative).lower().replace("two-sided", "two.sided").replace("two_sided", "two.sided")
    if alt not in ALTERNATIVES:
        raise AnalysisError(f"alternative must be one of {ALTERNATIVES}; got {alternative!r}.")
    return alt


def _pvalues(y, v, alternative: str) -> np.ndarray:
    z = y / np.sqrt(v)
    if alternative == "greater":
        return stats.norm.sf(z)
    if alternative == "less":
        return stats.norm.cdf(z)
    return 2 * stats.norm.sf(np.abs(z))


def _interval_labels(steps: np.ndarray) -> list[str]:
    lower = np.concatenate([[0.0], steps[:-1]])
    return [f"{lo:g} < p <= {hi:g}" for lo, hi in zip(lower, steps)]


# ---------------------------------------------------------------------------------------------
# The likelihood


@dataclass(frozen=True)
class _Data:
    y: np.ndarray
    v: np.ndarray
    steps: np.ndarray
    alternative: str
    group: np.ndarray  # interval of each study's p-value (0-based)
    counts: np.ndarray  # studies per interval
    pieces: tuple  # per interval: list of (lo, hi) arrays on the y scale


def _make_data(y, v, steps, alternative) -> _Data:
    p = _pvalues(y, v, alternative)
    group = np.array([int(np.flatnonzero(pi <= steps)[0]) for pi in p])
    counts = np.bincount(group, minlength=steps.size)
    sd = np.sqrt(v)
    m = steps.size
    pieces = []
    if alternative == "greater":
        bound = [sd * stats.norm.isf(s) for s in steps]  # p <= s  <=>  y >= bound
        for j in range(m):
            hi = np.full_like(y, np.inf) if j == 0 else bound[j - 1]
            pieces.append([(bound[j], hi)])
    elif alternative == "less":
        bound = [sd * stats.norm.ppf(s) for s in steps]  # p <= s  <=>  y <= bound
        for j in range(m):
            lo = np.full_like(y, -np.inf) if j == 0 else bound[j - 1]
            pieces.append([(lo, bound[j])])
    else:
        bound = [sd * stats.norm.isf(s / 2) for s in steps]  # p <= s  <=>  |y| >= bound
        for j in range(m):
            hi = np.full_like(y, np.inf) if j == 0 else bound[j - 1]
            pieces.append([(bound[j], hi), (-hi, -bound[j])])
    return _Data(y, v, steps, alternative, group, counts, tuple(pieces))


def _mass_and_derivatives(lo, hi, mu, s):
    """P(lo < Y <= hi) for Y ~ N(mu, s^2), its derivatives in mu and in tau^2 (s^2 = v + tau^2)."""
    a, b = (lo - mu) / s, (hi - mu) / s
    upper = a > 0  # both bounds in the upper tail: difference of survival functions keeps the precision
    mass = np.where(upper, ndtr(-a) - ndtr(-b), ndtr(b) - ndtr(a))
    pa, pb = np.exp(-0.5 * a * a) * _INV_SQRT_2PI, np.exp(-0.5 * b * b) * _INV_SQRT_2PI
    with np.errstate(invalid="ignore"):
        za = np.where(np.isfinite(a), a * pa, 0.0)
        zb = np.where(np.isfinite(b), b * pb, 0.0)
    d_mu = -(pb - pa) / s
    d_tau2 = -(zb - za) / (2 * s**2)
    return mass, d_mu, d_tau2


def _loglik(data: _Data, mu: float, tau2: float, delta: np.ndarray, gradient: bool = False):
    """The log-likelihood (metafor's .selmodel.ll.stepfun with prec = 1) and, with ``gradient``, its
    derivatives in (mu, tau^2, delta_1..delta_m)."""
    y, v = data.y, data.v
    s2 = v + tau2
    s = np.sqrt(s2)
    m = data.steps.size
    P = np.zeros((y.size, m))
    dP_mu = np.zeros_like(P)
    dP_tau2 = np.zeros_like(P)
    for j, pieces in enumerate(data.pieces):
        for lo, hi in pieces:
            mass, d_mu, d_tau2 = _mass_and_derivatives(lo, hi, mu, s)
            P[:, j] += mass
            dP_mu[:, j] += d_mu
            dP_tau2[:, j] += d_tau2
    A = P @ delta
    with np.errstate(divide="ignore"):
        ll = float(
            np.sum(np.log(delta[data.group]) - 0.5 * np.log(2 * math.pi * s2) - 0.5 * (y - mu) ** 2 / s2 - np.log(A))
        )
    if not gradient:
        return ll
    g_mu = float(np.sum((y - mu) / s2) - np.sum((dP_mu @ delta) / A))
    g_tau2 = float(np.sum(-0.5 / s2 + 0.5 * (y - mu) ** 2 / s2**2) - np.sum((dP_tau2 @ delta) / A))
    with np.errstate(divide="ignore", invalid="ignore"):
        g_delta = np.where(data.counts > 0, data.counts / delta, 0.0) - (P / A[:, None]).sum(axis=0)
    return ll, np.concatenate([[g_mu, g_tau2], g_delta])


# ---------------------------------------------------------------------------------------------
# Maximising it


@dataclass(frozen=True)
class _Optimum:
    mu: float
    tau2: float
    delta: np.ndarray
    loglik: float
    tau2_at_zero: bool
    at_bound: np.ndarray  # weights at DELTA_MAX
    iterations: int


def _maximise(
    data: _Data, delta_fixed: np.ndarray, delta_values: np.ndarray, tau2_fixed: float | None, start
) -> _Optimum:
    """ML over mu, tau^2 (unless ``tau2_fixed``) and the weights not fixed. Raises AnalysisError on failure."""
    m = data.steps.size
    free_d = ~delta_fixed
    scale = float(np.max(data.v))
    tau2_free = tau2_fixed is None
    mu0, tau20 = start

    def unpack(x):
        mu = x[0]
        i = 1
        if tau2_free:
            tau2 = math.exp(x[1])
            i = 2
        else:
            tau2 = tau2_fixed
        delta = delta_values.copy()
        delta[free_d] = np.exp(x[i:])
        return mu, tau2, delta

    def objective(x):
        mu, tau2, delta = unpack(x)
        ll, g = _loglik(data, mu, tau2, delta, gradient=True)
        if not math.isfinite(ll):
            return math.inf, np.zeros_like(x)
        grad = [g[0]]
        if tau2_free:
            grad.append(g[1] * tau2)
        grad.extend(g[2:][free_d] * delta[free_d])
        return -ll, -np.asarray(grad)

    x0 = [mu0]
    bounds = [(None, None)]
    if tau2_free:
        x0.append(math.log(max(tau20, 0.0) + 0.001 * scale))  # metafor starts at log(tau^2 + 0.001)
        bounds.append((math.log(scale * 1e-12), math.log(scale * 1e6)))
    x0.extend([0.0] * int(free_d.sum()))  # weights start at 1
    bounds.extend([(math.log(1e-10), math.log(DELTA_MAX))] * int(free_d.sum()))
    opt = optimize.minimize(
        objective,
        np.asarray(x0, dtype=float),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 5000},
    )
    mu, tau2, delta = unpack(opt.x)
    iterations = int(opt.nit)
    # boundaries: tau^2 = 0 is the optimum when the score there points below 0; weights at their bound
    tau2_at_zero = False
    if tau2_free and tau2 < scale * 1e-8:
        if _loglik(data, mu, 0.0, delta, gradient=True)[1][1] <= 0:
            tau2, tau2_at_zero = 0.0, True
    at_bound = free_d & (delta >= DELTA_MAX * (1 - 1e-6))
    delta[at_bound] = DELTA_MAX
    # Newton steps on the free interior parameters (mu, tau^2, weights), natural scale
    index = [0] + ([1] if tau2_free and not tau2_at_zero else []) + [2 + j for j in np.flatnonzero(free_d & ~at_bound)]
    index = np.array(index)

    def theta_of(mu, tau2, delta):
        return np.concatenate([[mu, tau2], delta])

    theta = theta_of(mu, tau2, delta)
    ll = _loglik(data, theta[0], theta[1], theta[2:])
    for _ in range(_NEWTON_MAXITER):
        g = _loglik(data, theta[0], theta[1], theta[2:], gradient=True)[1][index]
        H = _hessian(data, theta, index)
        try:
            step = -np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        if np.any(np.linalg.eigvalsh((H + H.T) / 2) >= 0):
            break
        t = 1.0
        while True:
            proposal = theta.copy()
            proposal[index] += t * step
            feasible = proposal[1] >= 0 and np.all(proposal[2:] > 0) and np.all(proposal[2:] <= DELTA_MAX)
            if feasible:
                new_ll = _loglik(data, proposal[0], proposal[1], proposal[2:])
                if new_ll >= ll - 1e-12 * abs(ll):
                    break
            t /= 2
            if t < 1e-10:
                proposal, new_ll = theta, ll
                break
        change = np.max(np.abs(proposal[index] - theta[index]) / np.maximum(np.abs(proposal[index]), 1e-8))
        theta, ll = proposal, new_ll
        iterations += 1
        if change < 1e-13:
            break
    g = _loglik(data, theta[0], theta[1], theta[2:], gradient=True)[1]
    scale_of = np.maximum(np.abs(theta), np.concatenate([[math.sqrt(scale)], [scale], np.ones(m)]))
    if not np.all(np.abs(g[index] * scale_of[index]) < 1e-7 * max(1.0, abs(ll))):
        raise AnalysisError(
            f"The selection model's likelihood maximisation did not converge (score {g[index].tolist()}); "
            "with few studies per p-value interval the weights may not be identifiable: use fewer cut points."
        )
    return _Optimum(theta[0], theta[1], theta[2:], ll, tau2_at_zero, at_bound, iterations)


def _hessian(data: _Data, theta: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Hessian of the log-likelihood in theta[index] by central differences of the analytic score,
    Richardson-extrapolated (error O(h^4))."""

    def score(t):
        return _loglik(data, t[0], t[1], t[2:], gradient=True)[1][index]

    n = index.size
    H = np.empty((n, n))
    for a, i in enumerate(index):
        h = 1e-4 * max(abs(theta[i]), 1e-2 if i != 1 else 1e-4)
        if i == 1:
            h = min(h, theta[1] / 4) if theta[1] > 0 else h
        cols = []
        for step in (h, h / 2):
            up, down = theta.copy(), theta.copy()
            up[i] += step
            down[i] -= step
            cols.append((score(up) - score(down)) / (2 * step))
        H[:, a] = (4 * cols[1] - cols[0]) / 3
    return (H + H.T) / 2


def _ml_random_effects(y, v, tau2_fixed: float | None = None) -> tuple[float, float, float]:
    """The ML random-effects model (no selection; equal effects with ``tau2_fixed=0``): mu, tau^2 and the
    log-likelihood at the optimum."""
    data = _make_data(y, v, np.array([1.0]), "greater")
    w = 1 / v
    mu0 = float(np.sum(w * y) / np.sum(w))
    tau20 = max(0.0, float(np.var(y, ddof=1)) - float(np.mean(v)))
    opt = _maximise(data, np.array([True]), np.array([1.0]), tau2_fixed, (mu0, tau20))
    return opt.mu, opt.tau2, opt.loglik


# ---------------------------------------------------------------------------------------------
# The result


@dataclass(frozen=True)
class SelectionResult(ResultMixin):
    """A fitted step-function selection model (metafor ``selmodel(type = "stepfun")``).

    ``estimate`` / ``se`` / ``statistic`` / ``p`` / ``ci_low`` / ``ci_high``: mu adjusted for selection (Wald
    z). ``tau2`` with ``se_tau2`` and a Wald CI truncated at 0. Per interval (``intervals``): ``k_interval``
    studies, ``delta`` (the weight; ``delta_fixed`` says which were fixed, the first always), its ``se_delta``,
    z test against 1 and CI truncated at 0. ``loglik`` (ML); ``lrt`` / ``lrt_df`` / ``lrt_p``: the test of
    selection against the ML random-effects model (``loglik0``; ``unadjusted_estimate``, ``unadjusted_tau2``);
    ``lrt_tau2`` / ``lrt_tau2_p``: the test of tau^2 = 0 within the selection model."""

    yi: tuple[float, ...]
    vi: tuple[float, ...]
    steps: tuple[float, ...]
    alternative: str
    level: float
    k: int
    intervals: tuple[str, ...]
    k_interval: tuple[int, ...]
    estimate: float
    se: float
    statistic: float
    p: float
    ci_low: float
    ci_high: float
    tau2: float
    se_tau2: float
    tau2_ci_low: float
    tau2_ci_high: float
    delta: tuple[float, ...]
    delta_fixed: tuple[bool, ...]
    se_delta: tuple[float, ...]
    z_delta: tuple[float, ...]
    p_delta: tuple[float, ...]
    delta_ci_low: tuple[float, ...]
    delta_ci_high: tuple[float, ...]
    loglik: float
    loglik0: float
    lrt: float
    lrt_df: int
    lrt_p: float
    lrt_tau2: float
    lrt_tau2_p: float
    unadjusted_estimate: float
    unadjusted_tau2: float
    iterations: int
    notes: tuple[str, ...] = field(default=())

    _json_skip = ("yi", "vi", "notes")

    def _json_extra(self) -> dict:
        return dict(notes=self.notes, method_label=self.method_label, estimates=self.estimates())

    @property
    def method_label(self) -> str:
        side = {"greater": "one-sided (positive effects)", "less": "one-sided (negative effects)"}.get(
            self.alternative, "two-sided"
        )
        return (
            f"step-function selection model (Vevea & Hedges 1995), {side} p-value cut points "
            f"{', '.join(f'{s:g}' for s in self.steps)}; random effects, ML (k = {self.k})"
        )

    def estimates(self) -> list[Estimate]:
        notes = "; ".join(self.notes)
        base = {"k": self.k}
        rows = [
            Estimate(
                "pooled effect (adjusted for selection)",
                self.estimate,
                self.se,
                self.ci_low,
                self.ci_high,
                math.nan,
                self.statistic,
                self.p,
                self.method_label,
                notes,
                {**base, "unadjusted": self.unadjusted_estimate},
            ),
            Estimate(
                "tau^2",
                self.tau2,
                self.se_tau2,
                self.tau2_ci_low,
                self.tau2_ci_high,
                statistic=self.lrt_tau2,
                p=self.lrt_tau2_p,
                method=(
                    "fixed at 0 (equal-effects input)"
                    if math.isnan(self.lrt_tau2)
                    else "ML within the selection model; p: likelihood-ratio test of tau^2 = 0, chi-square(1)"
                ),
                notes=notes,
                extra={**base, "unadjusted": self.unadjusted_tau2},
            ),
        ]
        for j, label in enumerate(self.intervals):
            rows.append(
                Estimate(
                    f"selection weight ({label})",
                    self.delta[j],
                    self.se_delta[j],
                    self.delta_ci_low[j],
                    self.delta_ci_high[j],
                    statistic=self.z_delta[j],
                    p=self.p_delta[j],
                    method="fixed" if self.delta_fixed[j] else "ML; z test against 1 (no selection)",
                    notes=notes,
                    extra={**base, "k_interval": self.k_interval[j]},
                )
            )
        if self.lrt_df > 0:
            rows.append(
                Estimate(
                    "likelihood-ratio test of selection",
                    self.lrt,
                    df=float(self.lrt_df),
                    statistic=self.lrt,
                    p=self.lrt_p,
                    method=f"2 (logLik selection model - logLik random-effects model, ML), chi-square({self.lrt_df})",
                    notes=notes,
                    extra=base,
                )
            )
        return rows

    def to_frame(self) -> pd.DataFrame:
        return to_frame(self.estimates())

    def summary(self) -> str:
        facts = [
            ("studies (k)", self.k),
            (
                "studies per p-value interval",
                ", ".join(f"{lab}: {n}" for lab, n in zip(self.intervals, self.k_interval)),
            ),
            ("log-likelihood (ML)", f"{self.loglik:.4f}"),
            ("unadjusted pooled effect (random effects, ML)", f"{self.unadjusted_estimate:.4f}"),
        ]
        return summary_block("Step-function selection model (Vevea & Hedges 1995)", facts, self.to_frame(), self.notes)


def _data_from(res_or_yi_vi) -> tuple[np.ndarray, np.ndarray, float | None, bool, list[str]]:
    """(yi, vi, level of an rma result or None, equal effects?, notes)."""
    notes: list[str] = []
    if isinstance(res_or_yi_vi, MetaResult):
        res = res_or_yi_vi
        equal = res.method in ("EE", "FE")
        if equal:
            notes.append(f"the input is an equal-effects ({res.method}) model: tau^2 is fixed at 0 (as metafor does)")
        elif res.method != "ML" and res.k > 1:
            notes.append(
                f"the input model used {res.method}; the selection model and its comparison model are fitted by ML "
                "(as metafor refits)"
            )
        y, v = _check_data(res.yi, res.vi)
        return y, v, res.level, equal, notes
    try:
        yi, vi = res_or_yi_vi
    except (TypeError, ValueError) as error:
        raise AnalysisError("Give a fitted rma() result or a pair (yi, vi).") from error
    y, v = _check_data(yi, vi)
    return y, v, None, False, notes


def selmodel_stepfun(
    res_or_yi_vi,
    steps: Sequence[float] = (0.025, 1),
    *,
    alternative: str = "greater",
    delta: Sequence[float | None] | None = None,
    level: float | None = None,
) -> SelectionResult:
    """The step-function selection model, as metafor's ``selmodel(res, type = "stepfun", steps = steps,
    alternative = alternative, delta = delta)``.

    ``res_or_yi_vi``: a fitted ``rma()`` result (its yi and vi; refitted by ML) or a pair ``(yi, vi)``.
    ``steps``: one-sided p-value cut points (1 is added if missing). ``alternative``: "greater" (default:
    positive effects are the ones favoured by selection, as for effects signed to favour the intervention),
    "less" or "two.sided". ``delta``: None (all weights but the first estimated), or one value per interval
    with None/NaN where the weight is estimated (a number fixes it; the first weight defaults to 1).
    ``level``: CI coverage (default: the rma result's level, else 0.95).
    """
    y, v, res_level, equal, notes = _data_from(res_or_yi_vi)
    tau2_fixed = 0.0 if equal else None
    level = level if level is not None else (res_level if res_level is not None else 0.95)
    if not 0 < level < 1:
        raise AnalysisError(f"level is a coverage probability in (0, 1), e.g. 0.95; got {level!r}.")
    steps_arr = _check_steps(steps)
    alternative = _check_alternative(alternative)
    m = steps_arr.size
    if delta is None:
        given = np.full(m, np.nan)
    else:
        given = np.array([np.nan if d is None else float(d) for d in delta])
        if given.size != m:
            raise AnalysisError(
                f"delta needs one value per p-value interval ({m}, steps {steps_arr.tolist()}); got {given.size}."
            )
        if np.any(given[np.isfinite(given)] < 0):
            raise AnalysisError(f"selection weights must be >= 0; got {given.tolist()}.")
    if math.isnan(given[0]):
        given[0] = 1.0
    fixed = np.isfinite(given)
    values = np.where(fixed, given, 1.0)
    k = y.size
    n_free = int((~fixed).sum())
    if k < (1 if equal else 2) + n_free:
        raise AnalysisError(
            f"k = {k} studies are too few to estimate mu{'' if equal else ', tau^2'} and {n_free} selection weight(s)."
        )
    data = _make_data(y, v, steps_arr, alternative)
    labels = _interval_labels(steps_arr)
    empty = [labels[j] for j in range(m) if data.counts[j] == 0 and not fixed[j]]
    if empty:
        raise AnalysisError(
            f"No study has its p-value in {', '.join(empty)}: the weight of an empty interval cannot be estimated "
            f"(studies per interval: {dict(zip(labels, data.counts.tolist()))}); choose other steps or fix that weight."
        )
    if np.any(values[fixed & (data.counts > 0)] == 0):
        raise AnalysisError("A fixed weight of 0 for an interval that holds studies makes their likelihood 0.")

    mu0, tau20, ll0 = _ml_random_effects(y, v, tau2_fixed)
    opt = _maximise(data, fixed, values, tau2_fixed, (mu0, tau20))
    delta_hat = opt.delta
    # standard errors from the Hessian in (mu, tau^2, free weights), natural scale
    index = [0]
    if not (equal or opt.tau2_at_zero):
        index.append(1)
    free_interior = np.flatnonzero(~fixed & ~opt.at_bound)
    index += [2 + j for j in free_interior]
    theta = np.concatenate([[opt.mu, opt.tau2], delta_hat])
    H = _hessian(data, theta, np.array(index))
    try:
        cov = np.linalg.inv(-H)
        if np.any(np.diag(cov) <= 0):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov = np.full_like(H, np.nan)
        notes.append("the Hessian at the optimum is not invertible: no standard errors")
    se_all = np.full(2 + m, np.nan)
    se_all[index] = np.sqrt(np.diag(cov))
    crit = float(stats.norm.isf((1 - level) / 2))
    se = se_all[0]
    z = opt.mu / se
    se_delta = se_all[2:]
    se_delta[fixed] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        z_delta = np.where(fixed, np.nan, (delta_hat - 1) / se_delta)
    p_delta = 2 * stats.norm.sf(np.abs(z_delta))
    d_low = np.where(fixed, np.nan, np.maximum(delta_hat - crit * se_delta, 0.0))
    d_high = np.where(fixed, np.nan, delta_hat + crit * se_delta)
    se_tau2 = se_all[1]
    if opt.tau2_at_zero:
        notes.append("tau^2 estimated at the boundary 0: no SE for it")
    for j in np.flatnonzero(opt.at_bound):
        notes.append(
            f"the weight for {labels[j]} ran to its bound {DELTA_MAX:g} (the likelihood keeps rising): treat the "
            "model with caution (metafor warns likewise); no SE for that weight"
        )
    # test of selection and of tau^2 = 0
    lrt = max(0.0, -2 * (ll0 - opt.loglik))
    lrt_p = float(stats.chi2.sf(lrt, n_free)) if n_free > 0 else math.nan
    if equal:
        lrt_tau2 = math.nan
    elif opt.tau2_at_zero:
        lrt_tau2 = 0.0
    else:
        null = _maximise(data, fixed, values, 0.0, (opt.mu, 0.0))
        lrt_tau2 = max(0.0, -2 * (null.loglik - opt.loglik))
    return SelectionResult(
        yi=tuple(y.tolist()),
        vi=tuple(v.tolist()),
        steps=tuple(steps_arr.tolist()),
        alternative=alternative,
        level=level,
        k=k,
        intervals=tuple(labels),
        k_interval=tuple(int(c) for c in data.counts),
        estimate=float(opt.mu),
        se=float(se),
        statistic=float(z),
        p=float(2 * stats.norm.sf(abs(z))),
        ci_low=float(opt.mu - crit * se),
        ci_high=float(opt.mu + crit * se),
        tau2=float(opt.tau2),
        se_tau2=float(se_tau2),
        tau2_ci_low=float(max(0.0, opt.tau2 - crit * se_tau2)) if math.isfinite(se_tau2) else math.nan,
        tau2_ci_high=float(opt.tau2 + crit * se_tau2) if math.isfinite(se_tau2) else math.nan,
        delta=tuple(float(d) for d in delta_hat),
        delta_fixed=tuple(bool(f) for f in fixed),
        se_delta=tuple(float(s) for s in se_delta),
        z_delta=tuple(float(s) for s in z_delta),
        p_delta=tuple(float(s) for s in p_delta),
        delta_ci_low=tuple(float(s) for s in d_low),
        delta_ci_high=tuple(float(s) for s in d_high),
        loglik=float(opt.loglik),
        loglik0=float(ll0),
        lrt=float(lrt),
        lrt_df=n_free,
        lrt_p=lrt_p,
        lrt_tau2=float(lrt_tau2),
        lrt_tau2_p=float(stats.chi2.sf(lrt_tau2, 1)),
        unadjusted_estimate=float(mu0),
        unadjusted_tau2=float(tau20),
        iterations=opt.iterations,
        notes=tuple(notes),
    )


def selmodel_sensitivity(
    yi: Sequence[float],
    vi: Sequence[float],
    weights_table: pd.DataFrame | Mapping[str, Sequence[float]] | None = None,
    *,
    alternative: str = "greater",
    level: float = 0.95,
) -> pd.DataFrame:
    """Vevea & Woods (2005) sensitivity analysis: the pooled effect under fixed, a priori selection weights.

    ``weights_table``: a ``steps`` column (upper bounds of the p-value intervals, ending at 1) and one
    column of weights per pattern (weights relative, >= 0); default ``vevea_woods_2005()`` (their Table 1:
    moderate / severe, one- / two-tailed). For each pattern, mu and tau^2 are re-estimated by ML with
    the weights fixed (metafor ``selmodel(res, type = "stepfun", steps = steps, delta = weights)``). Rows:
    the unadjusted ML random-effects estimate, then one per pattern, with ``tau2``, ``change`` (adjusted
    minus unadjusted) and the weights used. Exploratory: the patterns are illustrations, not estimates of
    the selection, and with few studies the adjusted estimates rest on little data."""
    y, v = _check_data(yi, vi)
    table = vevea_woods_2005() if weights_table is None else pd.DataFrame(dict(weights_table))
    if "steps" not in table.columns:
        raise AnalysisError("weights_table needs a 'steps' column (upper bounds of the p-value intervals).")
    patterns = [c for c in table.columns if c != "steps"]
    if not patterns:
        raise AnalysisError("weights_table has no weight columns besides 'steps'.")
    steps = table["steps"].to_numpy(dtype=float)
    if not (np.all(np.diff(steps) > 0) and steps[-1] == 1.0 and steps[0] > 0):
        raise AnalysisError(f"weights_table steps must increase strictly from above 0 to 1; got {steps.tolist()}.")
    k = y.size
    source = VEVEA_WOODS_SOURCE if weights_table is None else "weights given by the analyst"
    caution = (
        f"sensitivity analysis under fixed, a priori selection weights ({source}); it shows how far selection of "
        f"that shape would move the estimate and does not estimate the selection; exploratory with k = {k} studies"
    )
    # the unadjusted model as metafor's rma(method = "ML") reports it: SE from the weights 1 / (v + tau^2)
    mu0, tau20, _ = _ml_random_effects(y, v)
    se0 = 1.0 / math.sqrt(float(np.sum(1.0 / (v + tau20))))
    unadjusted = Estimate.from_wald(
        "pooled effect (unadjusted, random effects ML)",
        mu0,
        se0,
        level,
        "random effects, ML (no selection); SE from the inverse-variance weights, as rma(method = 'ML')",
        notes=caution,
        extra={"pattern": "none", "tau2": tau20, "change": 0.0, "k": k, "weights": ""},
    )
    rows = [unadjusted]
    for pattern in patterns:
        weights = table[pattern].to_numpy(dtype=float)
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise AnalysisError(
                f"weights_table column {pattern!r}: weights must be finite and >= 0; got {weights.tolist()}."
            )
        fit = selmodel_stepfun((y, v), steps, alternative=alternative, delta=weights, level=level)
        rows.append(
            Estimate(
                f"pooled effect under {pattern} selection",
                fit.estimate,
                fit.se,
                fit.ci_low,
                fit.ci_high,
                statistic=fit.statistic,
                p=fit.p,
                method=(
                    f"step-function selection model with fixed weights (Vevea & Woods 2005), {alternative} p-values; ML"
                ),
                notes="; ".join([caution, *fit.notes]),
                extra={
                    "pattern": pattern,
                    "tau2": fit.tau2,
                    "change": fit.estimate - mu0,
                    "k": k,
                    "weights": ", ".join(f"{w:g}" for w in weights),
                },
            )
        )
    return to_frame(rows)
