"""REML for the unstructured-covariance MMRM, on sufficient statistics per missingness pattern.

The model for participant i with observed post-baseline visits O_i is y_i = X_i beta + e_i,
e_i ~ N(0, Sigma[O_i, O_i]), with Sigma an unrestricted T x T covariance matrix; theta = vech(Sigma),
its distinct elements (`vech_basis`). Estimation works on sums of x x', x y, y y' over the participants
sharing a visit pattern (`pattern_stats`; `batch_pattern_stats` for B fits sharing the patterns), so a
REML evaluation (`evaluate_reml`: log-likelihood, beta-hat, cov(beta-hat), the analytic gradient and the
observed and expected information) costs O(patterns x T^2 x p^2), independent of n. `newton_reml`
maximises it by Newton-Raphson (Fisher scoring where the observed information is not positive definite),
with step-halving that keeps Sigma positive definite and never lets the REML log-likelihood fall;
`fit_reml` runs it from a warm start or the OLS residual covariance (`starting_sigma`).
References: Harville (1977) JASA 72:320 (REML); Jennrich & Schluchter (1986) Biometrics 42:805
(unstructured-covariance repeated measures, Newton-Raphson / scoring).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from imrstats.errors import AnalysisError

MAX_ITER = 100  # Newton iterations before a fit is reported as not converged
STEP_TOL = 1e-10  # converged when every step is this small relative to sqrt(Sigma_uu Sigma_vv)


@dataclass(frozen=True)
class PatternStats:
    """Sums over participants sharing a visit pattern, zero-padded to T x T and flattened over
    (pattern, a, b) so that every contraction with a per-pattern T x T matrix is one matrix product.
    ``outer`` and ``pad`` depend on the masks only (cached so each REML evaluation skips rebuilding them)."""

    masks: np.ndarray  # (P, T) bool
    counts: np.ndarray  # (P,)
    xx: np.ndarray  # (P*T*T, p*p): sum_i x_ia x_ib'
    xy: np.ndarray  # (P*T*T, p):   sum_i x_ia y_ib
    yy: np.ndarray  # (P*T*T,):     sum_i y_ia y_ib
    n_obs: int
    outer: np.ndarray | None = None  # (P, T, T) bool: visit a and visit b both observed in the pattern
    pad: np.ndarray | None = None  # (P, T, T): identity on the unobserved visits, 0 elsewhere


def _mask_constants(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    T = masks.shape[1]
    return masks[:, :, None] & masks[:, None, :], np.eye(T) * ~masks[:, None, :]


def pattern_stats(X: np.ndarray, y: np.ndarray, observed: np.ndarray) -> PatternStats:
    """The `PatternStats` of design X (participants, visits, p) and outcome y (participants, visits) on the
    ``observed`` cells; participants with no observed visit are left out."""
    if observed.all():
        # one pattern holding every participant (e.g. a completed data set): the general path below
        # would multiply by 1.0 and copy; skipping that gives the same sums (same einsum, same rows)
        masks, counts = np.ones((1, observed.shape[1]), dtype=bool), np.array([observed.shape[0]])
        groups, n_obs = [(np.ascontiguousarray(X), np.ascontiguousarray(y))], observed.size
    else:
        keep = observed.any(axis=1)
        X, y, observed = X[keep], np.where(observed, y, 0.0)[keep], observed[keep]
        X = X * observed[:, :, None]
        codes = observed @ (1 << np.arange(observed.shape[1]))
        _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        masks = observed[first]
        groups = [(X[inverse == k], y[inverse == k]) for k in range(len(masks))]
        counts = np.bincount(inverse, minlength=len(masks))
        n_obs = int(observed.sum())
    P, T, p = len(masks), X.shape[1], X.shape[2]
    xx = np.empty((P, T, T, p, p))
    xy = np.empty((P, T, T, p))
    yy = np.empty((P, T, T))
    for k, (Xk, yk) in enumerate(groups):
        xx[k] = np.einsum("nap,nbq->abpq", Xk, Xk, optimize=True)
        xy[k] = np.einsum("nap,nb->abp", Xk, yk, optimize=True)
        yy[k] = yk.T @ yk
    K = P * T * T
    outer, pad = _mask_constants(masks)
    return PatternStats(masks, counts, xx.reshape(K, p * p), xy.reshape(K, p), yy.reshape(K), n_obs, outer, pad)


def vech_basis(T: int) -> tuple[np.ndarray, list]:
    """dSigma/dtheta_j for theta = the distinct elements of Sigma (lower triangle, row-major)."""
    pairs = [(u, v) for u in range(T) for v in range(u + 1)]
    E = np.zeros((len(pairs), T, T))
    for j, (u, v) in enumerate(pairs):
        E[j, u, v] = E[j, v, u] = 1.0
    return E, pairs


def _pattern_inverses(sigma: np.ndarray, masks: np.ndarray, constants=None):
    """Zero-padded inverse and log-determinant of Sigma[O, O] per pattern; None if not positive definite.

    Unobserved visits get an identity block, which changes neither the inverse of the observed block
    nor its determinant, so all patterns are handled by one batched Cholesky factorisation.
    ``constants``: the masks' (outer, pad) from `_mask_constants`, if already at hand."""
    outer, pad = _mask_constants(masks) if constants is None else constants
    padded = np.where(outer, sigma, 0.0) + pad
    try:
        chol = np.linalg.cholesky(padded)
    except np.linalg.LinAlgError:
        return None, None
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    try:
        # near a boundary (a correlation of 1) the factorisation can pass while the inverse fails in
        # floating point, depending on the machine's BLAS: that Sigma is not positive definite either
        return np.linalg.inv(padded) * outer, logdet
    except np.linalg.LinAlgError:
        return None, None


def _stats_inverses(st: PatternStats, sigma: np.ndarray):
    constants = None if st.outer is None else (st.outer, st.pad)
    return _pattern_inverses(sigma, st.masks, constants)


def evaluate_reml(st: PatternStats, sigma: np.ndarray, E: np.ndarray, derivatives: bool = True):
    """REML log-likelihood of Sigma, beta-hat, cov(beta-hat) and (optionally) the analytic gradient,
    observed information and expected information with respect to theta = vech(Sigma).

    l_R = -1/2 [(N-p) log(2 pi) + sum_i log|Sigma_i| + log|X'WX| + r'Wr]  (Harville 1977); with
    P = W - WX(X'WX)^-1X'W and V_j = dV/dtheta_j: dl/dtheta_j = -tr(PV_j)/2 + y'PV_jPy/2,
    -d2l/dtheta_i dtheta_j = y'PV_iPV_jPy - tr(PV_iPV_j)/2 (observed), E[...] = tr(PV_iPV_j)/2.
    Every trace and quadratic form is a contraction of per-pattern inverses with the sufficient sums.
    """
    inv, logdet = _stats_inverses(st, sigma)
    if inv is None:
        return None
    P, T = st.masks.shape
    p, m, K = st.xy.shape[1], E.shape[0], P * T * T
    inv_f = inv.reshape(K)
    xwx = (inv_f @ st.xx).reshape(p, p)
    xwy = inv_f @ st.xy
    try:
        chol_xwx = np.linalg.cholesky(xwx)
    except np.linalg.LinAlgError:
        return None
    M = np.linalg.inv(xwx)
    beta = M @ xwy
    rwr = inv_f @ st.yy - xwy @ beta
    loglik = -0.5 * (
        (st.n_obs - p) * math.log(2 * math.pi) + st.counts @ logdet + 2.0 * np.log(np.diagonal(chol_xwx)).sum() + rwr
    )
    out = {"loglik": loglik, "beta": beta, "cov_beta": M}
    if not derivatives:
        return out
    xb = (st.xy @ beta).reshape(P, T, T)
    rr = (st.yy + st.xx @ np.outer(beta, beta).ravel()).reshape(P, T, T) - xb - xb.transpose(0, 2, 1)
    xr = st.xy - st.xx.reshape(K, p, p) @ beta  # sum_i x_ia r_ib
    A = inv[:, None] @ E[None] @ inv[:, None]  # W V_j W per pattern (P, m, T, T)
    B = A[:, :, None] @ E[None, None] @ inv[:, None, None]  # W V_i W V_j W (P, m, m, T, T)
    A_f = A.transpose(1, 0, 2, 3).reshape(m, K)
    B_f = B.transpose(1, 2, 0, 3, 4).reshape(m * m, K)
    E_f = E.reshape(m, T * T)
    q = (A_f @ st.xx).reshape(m, p, p)  # X'W V_j W X
    xvr = A_f @ xr  # X'W V_j W r
    tr_pv = (st.counts @ inv.reshape(P, T * T)) @ E_f.T - q.reshape(m, p * p) @ M.ravel()
    out["gradient"] = -0.5 * tr_pv + 0.5 * (A_f @ rr.ravel())
    tr_wvwv = np.dot(st.counts.reshape(1, P), A.reshape(P, -1)).reshape(m, T * T) @ E_f.T  # = tensordot(counts, A, 1)
    mq = M @ q
    tr_pvpv = (
        tr_wvwv
        - 2.0 * ((B_f @ st.xx) @ M.ravel()).reshape(m, m)
        + mq.reshape(m, -1) @ mq.transpose(0, 2, 1).reshape(m, -1).T
    )
    ypvpvpy = (B_f @ rr.ravel()).reshape(m, m) - xvr @ M @ xvr.T
    ypvpvpy = 0.5 * (ypvpvpy + ypvpvpy.T)
    out["observed_information"] = ypvpvpy - 0.5 * tr_pvpv
    out["expected_information"] = 0.5 * tr_pvpv
    out["dcov_beta"] = mq @ M  # d cov(beta)/d theta_j = M Q_j M
    return out


def starting_sigma(X: np.ndarray, y: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Covariance of OLS residuals over available pairs; diagonal if that is not positive definite."""
    Xo, yo = X[observed], y[observed]
    beta, *_ = np.linalg.lstsq(Xo, yo, rcond=None)
    resid = np.where(observed, y - X @ beta, np.nan)
    T = y.shape[1]
    sigma = np.empty((T, T))
    for a in range(T):
        for b in range(a + 1):
            both = observed[:, a] & observed[:, b]
            value = (resid[both, a] * resid[both, b]).mean() if both.sum() > 1 else 0.0
            sigma[a, b] = sigma[b, a] = value
    var = np.diag(sigma).copy()
    var[~np.isfinite(var) | (var <= 0)] = max(float(np.nanmean(resid**2)), 1e-8)
    np.fill_diagonal(sigma, var)
    if np.linalg.eigvalsh(sigma).min() <= 1e-8 * var.max():
        sigma = np.diag(var)
    return sigma


def newton_reml(st: PatternStats, sigma: np.ndarray, E: np.ndarray, pairs: list):
    """Maximise the REML log-likelihood over Sigma (Newton-Raphson / scoring with step-halving)."""
    current = evaluate_reml(st, sigma, E)
    if current is None:
        raise AnalysisError("the starting covariance matrix is not positive definite: pass another start")
    rows, cols = zip(*pairs)
    for iteration in range(1, MAX_ITER + 1):
        g = current["gradient"]
        info = current["observed_information"]
        if np.linalg.eigvalsh(info).min() <= 0:
            info = current["expected_information"]
        try:
            step = np.linalg.solve(info, g)
        except np.linalg.LinAlgError:
            return sigma, current, iteration, False, "the REML information matrix is singular"
        scale = np.sqrt(np.outer(np.diag(sigma), np.diag(sigma)))[rows, cols]
        if np.max(np.abs(step) / scale) < STEP_TOL:
            # Newton converges quadratically: a step this small means Sigma is already exact to ~STEP_TOL
            return sigma, current, iteration, True, ""
        t = 1.0
        while True:
            trial = sigma.copy()
            trial[rows, cols] += t * step
            trial[cols, rows] = trial[rows, cols]
            candidate = evaluate_reml(st, trial, E)
            floor = current["loglik"] - 1e-10 * abs(current["loglik"])  # round-off allowance
            if candidate is not None and candidate["loglik"] >= floor:
                break
            t /= 2.0
            if t < 1e-10:
                message = "step-halving failed to improve the REML log-likelihood"
                return sigma, current, iteration, False, message
        sigma, current = trial, candidate
    return sigma, current, MAX_ITER, False, f"no convergence in {MAX_ITER} Newton iterations"


def invert_reml_information(fit: dict, converged: bool, message: str):
    """cov(theta) = inverse observed REML information (NaN if singular); a fit whose information is not
    positive definite at the solution is not converged."""
    try:
        cov_theta = np.linalg.inv(fit["observed_information"])
    except np.linalg.LinAlgError:
        cov_theta = np.full_like(fit["observed_information"], np.nan)
    if converged and np.linalg.eigvalsh(fit["observed_information"]).min() <= 0:
        converged, message = False, "REML information is not positive definite at the solution"
    return cov_theta, converged, message


def fit_reml(X, y_grid, observed, start, E, pairs):
    """REML fit on an already checked design: (sigma, fit, iterations, converged, message, cov_theta)."""
    st = pattern_stats(X, y_grid, observed)
    sigma0 = None if start is None else np.asarray(start, dtype=float)
    if sigma0 is None or _stats_inverses(st, sigma0)[0] is None:
        sigma0 = starting_sigma(X, y_grid, observed)  # no usable warm start
    sigma, fit, iterations, converged, message = newton_reml(st, sigma0, E, pairs)
    cov_theta, converged, message = invert_reml_information(fit, converged, message)
    return sigma, fit, iterations, converged, message, cov_theta


@dataclass(frozen=True)
class BatchPatternStats:
    """`PatternStats` of B fits sharing the visit patterns: xx, xy, yy with a leading fit axis."""

    masks: np.ndarray
    counts: np.ndarray
    xx: np.ndarray  # (B, K, p*p)
    xy: np.ndarray  # (B, K, p)
    yy: np.ndarray  # (B, K)
    n_obs: int
    outer: np.ndarray
    pad: np.ndarray

    def take(self, idx) -> "BatchPatternStats":
        return dataclasses.replace(self, xx=self.xx[idx], xy=self.xy[idx], yy=self.yy[idx])


def batch_pattern_stats(X: np.ndarray, y: np.ndarray, observed: np.ndarray) -> BatchPatternStats:
    """`pattern_stats` of designs X (B, n, T, p) and outcomes y (B, n, T) with common observed cells."""
    keep = observed.any(axis=1)
    obs = observed[keep]
    X, y = X[:, keep] * obs[None, :, :, None], np.where(obs, y[:, keep], 0.0)
    codes = obs @ (1 << np.arange(obs.shape[1]))
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    masks = obs[first]
    (B, _, T, p), P = X.shape, len(masks)
    xx = np.empty((B, P, T, T, p, p))
    xy = np.empty((B, P, T, T, p))
    yy = np.empty((B, P, T, T))
    for k in range(P):
        Xk, yk = X[:, inverse == k], y[:, inverse == k]
        Xt = Xk.reshape(B, -1, T * p).transpose(0, 2, 1)
        xx[:, k] = (Xt @ Xk.reshape(B, -1, T * p)).reshape(B, T, p, T, p).transpose(0, 1, 3, 2, 4)
        xy[:, k] = (Xt @ yk).reshape(B, T, p, T).transpose(0, 1, 3, 2)
        yy[:, k] = yk.transpose(0, 2, 1) @ yk
    K = P * T * T
    outer, pad = _mask_constants(masks)
    return BatchPatternStats(
        masks,
        np.bincount(inverse, minlength=P),
        xx.reshape(B, K, p * p),
        xy.reshape(B, K, p),
        yy.reshape(B, K),
        int(obs.sum()),
        outer,
        pad,
    )
