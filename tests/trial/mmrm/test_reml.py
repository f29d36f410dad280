"""Unit tests for imrstats.trial.mmrm.reml: the REML log-likelihood, its analytic gradient and information
against finite differences and dense GLS algebra, and the maximum Newton-Raphson finds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import VALIDATION_DATA
from imrstats.trial.mmrm import build_mmrm_design, fit_mmrm
from imrstats.trial.mmrm.reml import evaluate_reml, pattern_stats, vech_basis

DATA = VALIDATION_DATA
TIMES = ("post", "fu12")


@pytest.fixture(scope="module")
def trial() -> pd.DataFrame:
    return pd.read_csv(DATA / "mmrm_missing.csv")


@pytest.fixture(scope="module")
def fitted(trial):
    return fit_mmrm(trial, "y", times=TIMES)


def _stats(trial):
    design = build_mmrm_design(trial, times=TIMES)
    y = design.outcome_grid(trial["y"].to_numpy())
    observed = design.present & np.isfinite(y)
    return design, pattern_stats(design.X, y, observed), y, observed


def _sigma_from_theta(theta, pairs, T):
    sigma = np.zeros((T, T))
    for value, (u, v) in zip(theta, pairs):
        sigma[u, v] = sigma[v, u] = value
    return sigma


def test_gradient_and_information_match_finite_differences(trial):
    _, st, _, _ = _stats(trial)
    E, pairs = vech_basis(2)
    theta = np.array([60.0, 30.0, 90.0])  # deliberately away from the REML maximum
    at = evaluate_reml(st, _sigma_from_theta(theta, pairs, 2), E)

    def loglik(th):
        return evaluate_reml(st, _sigma_from_theta(th, pairs, 2), E, derivatives=False)["loglik"]

    def gradient(th):
        return evaluate_reml(st, _sigma_from_theta(th, pairs, 2), E)["gradient"]

    # h balances truncation, ~(h/theta)^2 ~ 1e-7 relative, against round-off in a log-likelihood of ~1e3
    h = 1e-2
    num_grad = np.array([(loglik(theta + h * e) - loglik(theta - h * e)) / (2 * h) for e in np.eye(3)])
    num_hess = np.array([(gradient(theta + h * e) - gradient(theta - h * e)) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(at["gradient"], num_grad, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(-at["observed_information"], num_hess, rtol=1e-6, atol=1e-9)

    def var_contrast(th):
        return evaluate_reml(st, _sigma_from_theta(th, pairs, 2), E)["cov_beta"][7, 7]

    num_dvar = [(var_contrast(theta + h * e) - var_contrast(theta - h * e)) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(at["dcov_beta"][:, 7, 7], num_dvar, rtol=1e-6)


def test_reml_and_beta_agree_with_dense_gls_algebra(trial, fitted):
    """Build the full block-diagonal V for the observed rows and redo REML/GLS by brute force."""
    design, _, y, observed = _stats(trial)
    rows = np.argwhere(observed)
    X = design.X[observed]
    yv = y[observed]
    same_participant = rows[:, 0][:, None] == rows[:, 0][None, :]
    V = np.where(same_participant, fitted.sigma[rows[:, 1][:, None], rows[:, 1][None, :]], 0.0)
    W = np.linalg.inv(V)
    xwx = X.T @ W @ X
    beta = np.linalg.solve(xwx, X.T @ W @ yv)
    r = yv - X @ beta
    n, p = X.shape
    loglik = -0.5 * ((n - p) * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + np.linalg.slogdet(xwx)[1] + r @ W @ r)
    np.testing.assert_allclose(fitted.beta, beta, rtol=1e-10)
    np.testing.assert_allclose(fitted.cov_beta, np.linalg.inv(xwx), rtol=1e-10)
    assert fitted.reml_loglik == pytest.approx(loglik, rel=1e-12)


def test_estimate_is_a_stationary_maximum(trial, fitted):
    _, st, _, _ = _stats(trial)
    E, _ = vech_basis(2)
    at = evaluate_reml(st, fitted.sigma, E)
    assert np.max(np.abs(at["gradient"])) < 1e-8
    assert np.linalg.eigvalsh(at["observed_information"]).min() > 0
    assert fitted.converged and fitted.notes == ""
