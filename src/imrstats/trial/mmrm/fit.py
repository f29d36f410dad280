"""Fit a mixed model for repeated measures (MMRM): GLS with an unstructured covariance, by REML.

The model for participant i with observed post-baseline visits O_i is

    y_i = X_i beta + e_i,    e_i ~ N(0, Sigma[O_i, O_i]),

with Sigma an unrestricted T x T covariance matrix (one variance per visit, one covariance per pair of
visits). Participants with incomplete visit patterns contribute the likelihood of the visits they have
(the submatrix of Sigma for their observed times), so under MAR everyone with at least one observed
post-baseline value is used. This is the model of R's ``mmrm::mmrm(y ~ ... + us(time | id))`` and of
``nlme::gls(..., correlation = corSymm(form = ~ visit_index | id), weights = varIdent(form = ~ 1 | time))``.

`fit_mmrm` fits long data; `fit_mmrm_grid` fits an outcome on a built design's grid after the
estimability checks (`check_estimable`). The design is in `design`, the REML maximisation in `reml`,
the df methods in `ddf`, the result in `result`, many fits at once in `batch`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imrstats.errors import AnalysisError
from imrstats.trial.mmrm.ddf import check_df_method, kenward_roger_cov_beta, kenward_roger_q_terms
from imrstats.trial.mmrm.design import DEFAULT_COVARIATES, MMRMDesign, build_mmrm_design
from imrstats.trial.mmrm.reml import fit_reml, vech_basis
from imrstats.trial.mmrm.result import MMRMResult, assemble_result


def check_estimable(design: MMRMDesign, observed: np.ndarray, X: np.ndarray | None = None) -> None:
    """Raise AnalysisError unless every fixed effect and covariance element is estimable on the observed
    cells. ``X``: a stack (B, participants, visits, p) of designs with ``design``'s structure (e.g. one per
    completed data set), each rank-checked as ``design.X`` would be, in one batched SVD."""
    n_part = int(observed.any(axis=1).sum())
    if n_part < 2:
        raise AnalysisError(f"MMRM needs at least two participants with an observed outcome; found {n_part}")
    for k, t in enumerate(design.times):
        for arm_name, treated in ((design.treatment_arm, True), (design.reference_arm, False)):
            if not (observed[:, k] & (design.arm_of == treated)).any():
                raise AnalysisError(
                    f"no {arm_name} participant has an observed outcome at visit {t!r}: the "
                    f"{design.treatment_arm} - {design.reference_arm} difference there is not estimable; drop the "
                    "visit (times=...) or check the data"
                )
    for a in range(len(design.times)):
        for b in range(a):
            if not (observed[:, a] & observed[:, b]).any():
                raise AnalysisError(
                    f"no participant is observed at both {design.times[b]!r} and {design.times[a]!r}: their "
                    "covariance is not estimable with an unstructured matrix; check the visit coding"
                )
    Xo = design.X[observed][None] if X is None else X[:, observed]
    ranks = np.atleast_1d(np.linalg.matrix_rank(Xo))  # per matrix: the same SVD and tolerance as one at a time
    if (ranks < Xo.shape[2]).any():
        raise AnalysisError(
            f"singular design: {Xo.shape[2]} fixed-effect columns but rank {int(ranks.min())} on the observed rows "
            f"(columns {list(design.columns)}); a covariate is constant or collinear: drop it"
        )
    if Xo.shape[1] <= Xo.shape[2]:
        raise AnalysisError(f"{Xo.shape[1]} observations cannot support {Xo.shape[2]} fixed effects")


def fit_mmrm_grid(
    design: MMRMDesign,
    y_grid: np.ndarray,
    *,
    start: np.ndarray | None = None,
    df_method: str = "satterthwaite",
    level: float = 0.95,
) -> MMRMResult:
    """Fit the MMRM to an outcome on the design's participant x visit grid (NaN = missing)."""
    check_df_method(df_method)
    observed = design.present & np.isfinite(y_grid)
    check_estimable(design, observed)
    E, pairs = vech_basis(len(design.times))
    sigma, fit, iterations, converged, message, cov_theta = fit_reml(design.X, y_grid, observed, start, E, pairs)
    cov_beta_adj = None
    if df_method == "kenward_roger":
        q_terms = kenward_roger_q_terms(design.X[None], observed, sigma[None])[0]
        cov_beta_adj = kenward_roger_cov_beta(fit["cov_beta"], fit["dcov_beta"], q_terms, cov_theta)
    return assemble_result(
        design, observed, sigma, fit, cov_theta, pairs, iterations, converged, message, level, cov_beta_adj
    )


def fit_mmrm(
    data: pd.DataFrame,
    outcome: str,
    *,
    id: str = "id",
    time: str = "time",
    arm: str = "arm",
    baseline: str | None = "baseline",
    covariates=DEFAULT_COVARIATES,
    reference_arm: str = "TAU",
    treatment_arm: str = "IMR",
    times=None,
    df_method: str = "satterthwaite",
    level: float = 0.95,
) -> MMRMResult:
    """Fit an MMRM (unstructured covariance, REML) to long data and report treatment - reference per visit.

    ``data`` has one row per participant x post-baseline visit; rows with a missing ``outcome`` are
    allowed and dropped (participants with at least one observed visit are all used). Fixed effects:
    ``0 + time + arm:time + baseline:time + covariates``. Returns an `MMRMResult`; a fit that did not
    converge has ``converged=False`` and says so in its notes.
    """
    if outcome not in data.columns:
        raise AnalysisError(f"outcome column {outcome!r} not in data; columns: {list(data.columns)}")
    design = build_mmrm_design(
        data,
        id=id,
        time=time,
        arm=arm,
        baseline=baseline,
        covariates=covariates,
        reference_arm=reference_arm,
        treatment_arm=treatment_arm,
        times=times,
    )
    return design.fit(data[outcome].to_numpy(dtype=float), df_method=df_method, level=level)
