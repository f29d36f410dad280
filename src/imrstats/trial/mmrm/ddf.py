"""Denominator degrees of freedom and small-sample inference for MMRM contrasts.

Satterthwaite (1946) in the contrast-wise form of Kuznetsova et al. (2017) J Stat Softw 82(13) (lmerTest)
and Christensen (2018) "Satterthwaite's method for degrees of freedom in linear mixed models", as used
by R's mmrm.

Kenward-Roger inference (``df_method="kenward_roger"``): the small-sample adjusted cov(beta-hat) and the
scaled F with its denominator df of Kenward & Roger (1997) Biometrics 53:983, with W = the inverse
observed REML information. Sigma is linear in theta = vech(Sigma), so the second-derivative term R_hj of
the adjustment is zero and the result is that of SAS PROC MIXED ``DDFM=KR`` with ``TYPE=UN`` (where KR and
KR(LINEAR) coincide) and of R's ``mmrm(..., method = "Kenward-Roger", vcov = "Kenward-Roger-Linear")``
(mmrm's default "Kenward-Roger" differs slightly: its Cholesky parameterization of Sigma is not linear).
The improved approximation of Kenward & Roger (2009, CSDA 53:2583; SAS DDFM=KR2) is not implemented.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from imrstats.errors import AnalysisError
from imrstats.results import Estimate
from imrstats.trial.mmrm.reml import batch_pattern_stats, vech_basis

DF_METHODS = ("satterthwaite", "kenward_roger")


def check_df_method(df_method: str) -> None:
    if df_method not in DF_METHODS:
        raise AnalysisError(
            f"df_method {df_method!r} is not available; use 'satterthwaite' or 'kenward_roger' "
            "(Kenward-Roger adjusted SE and df)"
        )


def satterthwaite_df(L: np.ndarray, cov_beta: np.ndarray, dcov_beta: np.ndarray, cov_theta: np.ndarray) -> np.ndarray:
    """Satterthwaite df for each row c of L: 2 (c'Vc)^2 / (g' A g), g_j = c' dV/dtheta_j c, A = the
    inverse observed REML information of theta (Kuznetsova et al. 2017; Christensen 2018; mmrm)."""
    var = np.einsum("lp,pq,lq->l", L, cov_beta, L)
    g = np.einsum("lp,jpq,lq->lj", L, dcov_beta, L)
    denom = np.einsum("lj,jk,lk->l", g, cov_theta, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2.0 * var**2 / denom, np.inf)


def kenward_roger_q_terms(X: np.ndarray, observed: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Q_hj = sum_i X_i' W_i V_h W_i V_j W_i X_i of Kenward & Roger (1997) for theta = vech(Sigma), with
    W_i = Sigma[O_i, O_i]^-1 and V_h = dSigma_i/dtheta_h, per fit: X (B, participants, visits, p) designs
    sharing the observed cells (participants, visits) and sigma (B, T, T) -> (B, m, m, p, p).

    Q depends on the design, the visit patterns and Sigma only (not on y), so it can be formed after the
    fit from what `MMRMResult` / `MMRMFits` keep."""
    X, sigma = np.asarray(X, dtype=float), np.asarray(sigma, dtype=float)
    st = batch_pattern_stats(X, np.zeros(X.shape[:3]), observed)
    E, _ = vech_basis(sigma.shape[1])
    (B, P, T), m, p = (len(sigma), *st.masks.shape), E.shape[0], X.shape[3]
    inv = np.linalg.inv(np.where(st.outer, sigma[:, None], 0.0) + st.pad) * st.outer  # (B, P, T, T)
    wvw = inv[:, :, None] @ E[None, None] @ inv[:, :, None]  # (B, P, m, T, T)
    wvwvw = wvw[:, :, :, None] @ E[None, None, None] @ inv[:, :, None, None]  # (B, P, m, m, T, T)
    flat = wvwvw.transpose(0, 2, 3, 1, 4, 5).reshape(B, m * m, P * T * T)
    return (flat @ st.xx).reshape(B, m, m, p, p)


def kenward_roger_cov_beta(
    cov_beta: np.ndarray, dcov_beta: np.ndarray, q_terms: np.ndarray, cov_theta: np.ndarray
) -> np.ndarray:
    """Kenward-Roger adjusted cov(beta-hat) (Kenward & Roger 1997, Biometrics 53:983; notation of R mmrm's
    "Kenward-Roger" vignette):

        Phi_A = Phi + 2 Phi [sum_hj W_hj (Q_hj - P_h Phi P_j - R_hj / 4)] Phi,

    Phi = (X' Omega^-1 X)^-1 (``cov_beta``), P_h = X' dOmega^-1/dtheta_h X = -X'Omega^-1 V_h Omega^-1 X, so
    Phi P_h Phi = -dPhi/dtheta_h (``dcov_beta``) and Phi P_h Phi P_j Phi = dPhi_h Phi^-1 dPhi_j; ``q_terms``:
    `kenward_roger_q_terms`; W = cov(theta-hat) (``cov_theta``); R_hj = X'Omega^-1 d2Omega/dtheta_h dtheta_j
    Omega^-1 X = 0 because Sigma is linear in theta = vech(Sigma).
    Leading axes broadcast (one matrix per fit)."""
    Phi = np.asarray(cov_beta, dtype=float)
    W = np.asarray(cov_theta, dtype=float)
    phi_q_phi = Phi[..., None, None, :, :] @ q_terms @ Phi[..., None, None, :, :]
    inv_dphi = np.linalg.solve(Phi[..., None, :, :], dcov_beta)  # Phi^-1 dPhi_j
    cross = dcov_beta[..., :, None, :, :] @ inv_dphi[..., None, :, :, :]  # dPhi_h Phi^-1 dPhi_j
    adjusted = Phi + 2.0 * np.einsum("...hj,...hjab->...ab", W, phi_q_phi - cross)
    return 0.5 * (adjusted + np.swapaxes(adjusted, -1, -2))


def kenward_roger_df(L: np.ndarray, cov_beta: np.ndarray, dcov_beta: np.ndarray, cov_theta: np.ndarray) -> np.ndarray:
    """Kenward-Roger denominator df of each single row of L. With one numerator df KR's m (see
    `kenward_roger_f_test`) reduces to 2 / A2, A2 = g'Wg / (l' Phi l)^2 with g_h = l' dPhi/dtheta_h l and
    Phi the unadjusted cov(beta): the Satterthwaite df of l'beta, and the F scale factor lambda is 1
    (as in SAS DDFM=KR, R's pbkrtest and mmrm, which all use the unadjusted Phi here and the adjusted
    Phi_A only in the test statistic)."""
    return satterthwaite_df(L, cov_beta, dcov_beta, cov_theta)


def _kenward_roger_m_lambda(L, cov_beta, dcov_beta, cov_theta) -> tuple[float, float]:
    """Kenward & Roger (1997): denominator df m and scale lambda of the approximate F for H0: L beta = L beta0,
    from A1 = sum_hj W_hj tr(Theta Phi P_h Phi) tr(Theta Phi P_j Phi), A2 = sum_hj W_hj tr(Theta Phi P_h Phi
    Theta Phi P_j Phi), Theta = L'(L Phi L')^-1 L, Phi unadjusted."""
    c = L.shape[0]
    theta = L.T @ np.linalg.solve(L @ cov_beta @ L.T, L)
    u = theta[None] @ dcov_beta  # Theta Phi P_h Phi up to sign (squared away below)
    tr_u = np.trace(u, axis1=1, axis2=2)
    a1 = tr_u @ cov_theta @ tr_u
    a2 = float(np.einsum("hj,hab,jba->", cov_theta, u, u))
    if not a2 > 0:  # no uncertainty from Sigma reaches L beta: the Wald F is exact with infinite df
        return math.inf, 1.0
    b = (a1 + 6.0 * a2) / (2.0 * c)
    g = ((c + 1) * a1 - (c + 4) * a2) / ((c + 2) * a2)
    d = 3 * c + 2 * (1 - g)
    c1, c2, c3 = g / d, (c - g) / d, (c + 2 - g) / d
    e_star = 1.0 / (1.0 - a2 / c)
    v_star = (2.0 / c) * (1.0 + c1 * b) / ((1.0 - c2 * b) ** 2 * (1.0 - c3 * b))
    rho = v_star / (2.0 * e_star**2)
    if not (c * rho - 1.0 > 0 and e_star > 0):
        raise AnalysisError(
            f"the Kenward-Roger F approximation breaks down for this contrast (A1 = {a1:.4g}, "
            f"A2 = {a2:.4g}): too little information on Sigma; use fewer rows or more data"
        )
    m = 4.0 + (c + 2) / (c * rho - 1.0)
    return m, m / (e_star * (m - 2.0))


def kenward_roger_f_test(
    L: np.ndarray,
    beta: np.ndarray,
    cov_beta: np.ndarray,
    cov_beta_adj: np.ndarray,
    dcov_beta: np.ndarray,
    cov_theta: np.ndarray,
    *,
    rhs: np.ndarray | None = None,
    quantity: str = "Kenward-Roger F test",
) -> Estimate:
    """Kenward-Roger F test of H0: L beta = rhs (default 0) with c = rank(L) = rows of L numerator df:
    F = (L b - rhs)' (L Phi_A L')^-1 (L b - rhs) / c, scaled F* = lambda F ~ F(c, m) (Kenward & Roger 1997;
    A1, A2 with the unadjusted Phi, W = ``cov_theta``). Returns an `Estimate` with estimate =
    statistic = F*, df = m, p, and extra num_df, lambda and the unscaled F."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[1] != len(beta):
        raise AnalysisError(f"L has {L.shape[1]} columns but the model has {len(beta)} fixed effects")
    c = L.shape[0]
    if np.linalg.matrix_rank(L) < c:
        raise AnalysisError(f"the {c} rows of L are linearly dependent: drop the redundant rows")
    diff = L @ beta - (np.zeros(c) if rhs is None else np.asarray(rhs, dtype=float))
    f_unscaled = float(diff @ np.linalg.solve(L @ cov_beta_adj @ L.T, diff)) / c
    m, lam = _kenward_roger_m_lambda(L, cov_beta, dcov_beta, cov_theta)
    f_scaled = lam * f_unscaled
    return Estimate(
        quantity=quantity,
        estimate=f_scaled,
        se=math.nan,
        ci_low=math.nan,
        ci_high=math.nan,
        df=float(m),
        statistic=f_scaled,
        p=float(stats.f.sf(f_scaled, c, m)),
        method=f"Kenward-Roger F({c}, m) (Kenward & Roger 1997): adjusted cov(beta), scaled F",
        extra={"num_df": c, "lambda": float(lam), "f_unscaled": f_unscaled},
    )
