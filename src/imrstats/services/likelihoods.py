"""Log-likelihoods, scores and maximisers for count regression models with a log-exposure offset.

Plain numpy on a design matrix ``X`` (count part), ``Z`` (zero part), a count vector ``y`` and an
offset (log days at risk). Parameter vectors follow pscl's layout: count coefficients, then
zero-part coefficients, then ``log(theta)`` where NB2 has ``Var(Y) = mu + mu^2 / theta``.

Formulas: NB2 and its zero-inflated and zero-truncated forms as in Cameron & Trivedi (2013),
*Regression Analysis of Count Data*, 2nd ed., ch. 3-4, and Zeileis, Kleiber & Jackman (2008),
"Regression models for count data in R", J. Stat. Softw. 27(8) (pscl's likelihoods).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import optimize, special

LOG_THETA_MAX = 20.0  # theta = e^20: NB2 indistinguishable from Poisson; treated as a boundary


def poisson_logpmf(y, mu):
    """log P(Y = y) for Poisson(mu)."""
    return special.xlogy(y, mu) - mu - special.gammaln(y + 1)


def nb2_logpmf(y, mu, theta):
    """log P(Y = y) for NB2 with mean mu and size theta (R's dnbinom(y, size = theta, mu = mu))."""
    return (
        special.gammaln(y + theta)
        - special.gammaln(theta)
        - special.gammaln(y + 1)
        + theta * (np.log(theta) - np.log(theta + mu))
        + special.xlogy(y, mu)
        - special.xlogy(y, theta + mu)
    )


def nb2_log_p0(mu, theta):
    """log P(Y = 0) for NB2."""
    return theta * (np.log(theta) - np.log(theta + mu))


def _nb2_dtheta(y, mu, theta):
    """d log f(y) / d theta for NB2 (the score used by MASS::theta.ml)."""
    return (
        special.digamma(y + theta)
        - special.digamma(theta)
        + np.log(theta)
        + 1
        - np.log(theta + mu)
        - (y + theta) / (theta + mu)
    )


def _dlogp0(mu, theta):
    """Derivatives of log P(Y = 0) for NB2 with respect to eta = log mu and to theta."""
    d_eta = -theta * mu / (theta + mu)
    d_theta = np.log(theta) - np.log(theta + mu) + 1 - theta / (theta + mu)
    return d_eta, d_theta


# --- NB2 -------------------------------------------------------------------------------------


def nb2_loglik(params, X, y, offset):
    """Total NB2 log-likelihood; params = (beta, log theta)."""
    beta, theta = params[:-1], np.exp(params[-1])
    mu = np.exp(X @ beta + offset)
    return float(np.sum(nb2_logpmf(y, mu, theta)))


def nb2_score(params, X, y, offset):
    """Gradient of `nb2_loglik`."""
    beta, theta = params[:-1], np.exp(params[-1])
    mu = np.exp(X @ beta + offset)
    g_beta = X.T @ (y - mu * (y + theta) / (mu + theta))
    g_logtheta = theta * np.sum(_nb2_dtheta(y, mu, theta))
    return np.append(g_beta, g_logtheta)


def nb2_theta_information(y, mu, theta):
    """Observed information for theta with mu fixed, as MASS::theta.ml computes SE(theta)."""
    return float(
        np.sum(
            -special.polygamma(1, y + theta)
            + special.polygamma(1, theta)
            - 1 / theta
            + 2 / (mu + theta)
            - (y + theta) / (mu + theta) ** 2
        )
    )


# --- zero-inflated NB2 -----------------------------------------------------------------------


def zinb_parameters(params, X, Z, offset):
    """(mu, pi, theta) of a ZINB fit: count mean exp(X b + offset), structural-zero probability
    expit(Z g) and dispersion exp(log theta), from the stacked parameters (b, g, log theta)."""
    kx, kz = X.shape[1], Z.shape[1]
    mu = np.exp(X @ params[:kx] + offset)
    pi = special.expit(Z @ params[kx : kx + kz])
    return mu, pi, np.exp(params[kx + kz])


def zinb_logpmf(y, mu, pi, theta):
    """log P(Y = y) under zero inflation with probability pi of a structural zero."""
    log_p0 = np.logaddexp(np.log(pi), np.log1p(-pi) + nb2_log_p0(mu, theta))
    return np.where(y == 0, log_p0, np.log1p(-pi) + nb2_logpmf(y, mu, theta))


def zinb_loglik(params, X, Z, y, offset):
    """Total ZINB log-likelihood; params = (beta, gamma, log theta), logit link for pi."""
    mu, pi, theta = zinb_parameters(params, X, Z, offset)
    return float(np.sum(zinb_logpmf(y, mu, pi, theta)))


def zinb_score(params, X, Z, y, offset):
    """Gradient of `zinb_loglik`."""
    mu, pi, theta = zinb_parameters(params, X, Z, offset)
    zero = y == 0
    log_f0 = nb2_log_p0(mu, theta)
    # share of P(Y=0) that comes from the NB2 zero, and from the structural zero
    w_nb = np.exp(np.log1p(-pi) + log_f0 - zinb_logpmf(np.zeros_like(y), mu, pi, theta))
    d_eta0, d_theta0 = _dlogp0(mu, theta)
    g_eta = np.where(zero, w_nb * d_eta0, y - mu * (y + theta) / (mu + theta))
    g_zeta = np.where(zero, (1 - w_nb) * (1 - pi) * -np.expm1(log_f0), -pi)
    g_theta = np.where(zero, w_nb * d_theta0, _nb2_dtheta(y, mu, theta))
    return np.concatenate([X.T @ g_eta, Z.T @ g_zeta, [theta * np.sum(g_theta)]])


# --- zero-truncated NB2 (the count part of the hurdle model) ---------------------------------


def truncnb2_logpmf(y, mu, theta):
    """log P(Y = y | Y > 0) for NB2, y >= 1."""
    return nb2_logpmf(y, mu, theta) - np.log(-np.expm1(nb2_log_p0(mu, theta)))


def truncnb2_loglik(params, X, y, offset):
    """Zero-truncated NB2 log-likelihood over positive counts; params = (beta, log theta)."""
    beta, theta = params[:-1], np.exp(params[-1])
    mu = np.exp(X @ beta + offset)
    return float(np.sum(truncnb2_logpmf(y, mu, theta)))


def truncnb2_score(params, X, y, offset):
    """Gradient of `truncnb2_loglik`."""
    beta, theta = params[:-1], np.exp(params[-1])
    mu = np.exp(X @ beta + offset)
    log_f0 = nb2_log_p0(mu, theta)
    odds0 = np.exp(log_f0 - np.log(-np.expm1(log_f0)))  # f0 / (1 - f0)
    d_eta0, d_theta0 = _dlogp0(mu, theta)
    g_eta = y - mu * (y + theta) / (mu + theta) + odds0 * d_eta0
    g_theta = _nb2_dtheta(y, mu, theta) + odds0 * d_theta0
    return np.append(X.T @ g_eta, theta * np.sum(g_theta))


# --- maximisation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MaxResult:
    """The maximiser's answer: the estimate, log-likelihood, Hessian and whether to trust it."""

    params: np.ndarray
    loglik: float
    hessian: np.ndarray
    converged: bool
    message: str


def numerical_hessian(score: Callable, params: np.ndarray) -> np.ndarray:
    """Hessian by central differences of the analytic score (symmetrised); step 1e-5 * (1 + |p|)."""
    k = params.size
    hess = np.empty((k, k))
    for j in range(k):
        step = 1e-5 * (1 + abs(params[j]))
        up, down = params.copy(), params.copy()
        up[j] += step
        down[j] -= step
        hess[:, j] = (score(up) - score(down)) / (2 * step)
    return (hess + hess.T) / 2


def maximize(
    loglik: Callable,
    score: Callable,
    start: np.ndarray,
    hessian: Callable | None = None,
    max_newton: int = 100,
    tol: float = 1e-10,
) -> MaxResult:
    """Maximise a smooth log-likelihood: BFGS from `start`, then Newton steps to a tight optimum.

    BFGS gets into the basin robustly; Newton with step halving then drives the Newton decrement
    g' H^-1 g below `tol`, so estimates are accurate to many more digits than R's optim defaults.
    Converged means: finite log-likelihood, negative definite Hessian and decrement below `tol`.
    """
    hessian = hessian or (lambda p: numerical_hessian(score, p))
    with np.errstate(all="ignore"):
        bfgs = optimize.minimize(
            lambda p: -loglik(p), start, jac=lambda p: -score(p), method="BFGS", options={"gtol": 1e-6, "maxiter": 2000}
        )
        params = bfgs.x if np.isfinite(bfgs.fun) else np.asarray(start, float)
        params, message = _newton(loglik, score, hessian, params, max_newton, tol)
        hess = hessian(params)
        value = loglik(params)
    negdef = bool(np.all(np.isfinite(hess))) and np.all(np.linalg.eigvalsh(-hess) > 0)
    converged = message == "converged" and negdef and np.isfinite(value)
    if message == "converged" and not negdef:
        message = "Hessian is not negative definite at the optimum (flat or boundary likelihood)"
    return MaxResult(params, value, hess, bool(converged), message)


def _newton(loglik, score, hessian, params, max_iter, tol):
    """Newton-Raphson with step halving; returns (params, 'converged' or why not)."""
    current = loglik(params)
    for _ in range(max_iter):
        grad, hess = score(params), hessian(params)
        try:
            step = np.linalg.solve(-hess, grad)
        except np.linalg.LinAlgError:
            return params, "singular Hessian during Newton steps"
        decrement = float(grad @ step)
        if not np.isfinite(decrement):
            return params, "non-finite score or Hessian during Newton steps"
        if abs(decrement) < tol:
            return params, "converged"
        if decrement < 0:  # not an ascent direction: fall back to a gradient step
            step = grad / max(1.0, float(np.max(np.abs(grad))))
        for _ in range(60):
            trial = params + step
            value = loglik(trial)
            if np.isfinite(value) and value >= current - 1e-12:
                break
            step = step / 2
        else:
            return params, "line search failed during Newton steps"
        if value - current < 1e-12 * (1 + abs(current)) and decrement > 1e-6:
            return trial, "stalled: the log-likelihood no longer increases (estimate at a boundary?)"
        params, current = trial, value
    return params, f"no convergence after {max_iter} Newton steps"
