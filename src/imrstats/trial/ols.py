"""Ordinary least squares for the complete-case and per-protocol models (ANCOVA, ANOVA, regressions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imrstats.errors import AnalysisError


@dataclass(frozen=True)
class OLSFit:
    """An OLS fit: coefficients, their covariance s^2 (X'X)^-1, residual df n - p and residual sum of squares."""

    beta: np.ndarray
    cov: np.ndarray
    df: int
    rss: float


def fit_ols(X: np.ndarray, y: np.ndarray, what: str) -> OLSFit:
    """OLS of y on X (QR); ``what`` names the model in the error raised on too few or collinear cases."""
    n, p = X.shape
    rank = np.linalg.matrix_rank(X) if n else 0
    if n <= p or rank < p:
        raise AnalysisError(
            f"{what}: {n} complete cases for {p} parameters (rank {rank}); too few or collinear "
            "data for this model: drop a covariate or skip the analysis"
        )
    q, r = np.linalg.qr(X)
    beta = np.linalg.solve(r, q.T @ y)
    rss = float(((y - X @ beta) ** 2).sum())
    r_inv = np.linalg.inv(r)
    return OLSFit(beta, rss / (n - p) * (r_inv @ r_inv.T), n - p, rss)
