"""Mixed model for repeated measures (MMRM): GLS with an unstructured covariance, fitted by REML.

The model for participant i with observed post-baseline visits O_i is

    y_i = X_i beta + e_i,    e_i ~ N(0, Sigma[O_i, O_i]),

with Sigma an unrestricted T x T covariance matrix (one variance per visit, one covariance per pair of
visits). Participants with incomplete visit patterns contribute the likelihood of the visits they have
(the submatrix of Sigma for their observed times), so under MAR everyone with at least one observed
post-baseline value is used. This is the model of R's ``mmrm::mmrm(y ~ ... + us(time | id))`` and of
``nlme::gls(..., correlation = corSymm(form = ~ visit_index | id), weights = varIdent(form = ~ 1 | time))``.

Fixed effects (default): ``0 + time + arm:time + baseline:time + covariates``, i.e. a mean per visit,
an IMR - TAU difference per visit, a baseline slope per visit, and covariates shared across visits
(categorical ones treatment-coded against their first sorted level, numeric ones as is).

Estimation works on sufficient statistics per missingness pattern (sums of x x', x y, y y' over the
participants sharing a pattern), so a REML evaluation costs O(patterns x T^2 x p^2), independent of n.
Sigma is estimated by Newton-Raphson on its distinct elements with the analytic gradient and the
analytic observed REML information (Fisher scoring where the observed information is not positive
definite), with step-halving that keeps Sigma positive definite and never lets the REML log-likelihood
fall. Many fits of one design structure (one per completed data set) run as batched array operations
(`fit_mmrm_many`, `fit_mmrm_chains`), each fit taking exactly the steps it takes alone. References: Harville (1977) JASA 72:320 (REML); Jennrich & Schluchter (1986) Biometrics 42:805
(unstructured-covariance repeated measures, Newton-Raphson / scoring); Satterthwaite (1946) and the
contrast-wise form of Kuznetsova et al. (2017) J Stat Softw 82(13) (lmerTest) and Christensen (2018)
"Satterthwaite's method for degrees of freedom in linear mixed models", as used by R's mmrm.

Kenward-Roger inference (``df_method="kenward_roger"``): the small-sample adjusted cov(beta-hat) and the
scaled F with its denominator df of Kenward & Roger (1997) Biometrics 53:983, with W = the inverse
observed REML information. Sigma is linear in theta = vech(Sigma), so the second-derivative term R_hj of
the adjustment is zero and the result is that of SAS PROC MIXED ``DDFM=KR`` with ``TYPE=UN`` (where KR and
KR(LINEAR) coincide) and of R's ``mmrm(..., method = "Kenward-Roger", vcov = "Kenward-Roger-Linear")``
(mmrm's default "Kenward-Roger" differs slightly: its Cholesky parameterization of Sigma is not linear).
The improved approximation of Kenward & Roger (2009, CSDA 53:2583; SAS DDFM=KR2) is not implemented.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.errors import AnalysisError
from imrstats.results import Estimate, to_frame

DEFAULT_COVARIATES = ("site", "sex", "age", "diagnosis")
DF_METHODS = ("satterthwaite", "kenward_roger")
_MAX_ITER = 100
_STEP_TOL = 1e-10


# --------------------------------------------------------------------------------------------------
# Design
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MMRMDesign:
    """The fixed-effects design on a participant x visit grid, built once and refitted on new outcomes.

    ``X`` has shape (participants, visits, p); ``present`` marks grid cells that have a data row with
    complete covariates; ``row_cell`` maps each row of the data the design was built from to its grid
    cell (-1 for rows not used: other visits or missing covariates). ``grid_terms`` describes each
    column so that adjusted means can be formed (see `reference_grid`).
    """

    X: np.ndarray
    present: np.ndarray
    row_cell: np.ndarray
    ids: tuple
    times: tuple
    columns: tuple
    grid_terms: tuple
    numeric_values: dict
    reference_arm: str
    treatment_arm: str
    arm_of: np.ndarray
    n_dropped_covariates: int

    def outcome_grid(self, y) -> np.ndarray:
        """Place an outcome vector aligned with the design's data rows onto the participant x visit grid."""
        y = np.asarray(y, dtype=float)
        if y.shape != self.row_cell.shape:
            raise AnalysisError(
                f"outcome has {y.size} values but the design was built from {self.row_cell.size} rows; "
                "pass one value per row of the data frame the design was built from, in the same order"
            )
        grid = np.full(self.present.shape, np.nan)
        used = self.row_cell >= 0
        grid.flat[self.row_cell[used]] = y[used]
        return grid

    def fit(self, y, *, start: np.ndarray | None = None, df_method: str = "satterthwaite",
            level: float = 0.95) -> "MMRMResult":
        """Fit the MMRM to outcome ``y`` (one value per data row; NaN = missing), optionally warm-started
        from a covariance matrix ``start`` (e.g. the previous imputation's estimate)."""
        return fit_mmrm_grid(self, self.outcome_grid(y), start=start, df_method=df_method, level=level)


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _visit_order(data: pd.DataFrame, time: str, times) -> tuple:
    if times is not None:
        return tuple(times)
    column = data[time]
    if isinstance(column.dtype, pd.CategoricalDtype):
        return tuple(column.cat.categories)
    return tuple(sorted(column.dropna().unique(), key=str))


def _design_columns(rows, ti, times, time, arm, treatment_arm, is_treated, baseline, covariates):
    """Columns of 0 + time + arm:time + baseline:time + covariates for the analysed rows, their names,
    a description of each (for the reference grid) and the raw numeric covariates."""
    blocks, names, terms = [], [], []
    onehot_time = np.zeros((len(rows), len(times)))
    onehot_time[np.arange(len(rows)), ti] = 1.0
    for k, t in enumerate(times):
        blocks.append(onehot_time[:, k]); names.append(f"{time}[{t}]"); terms.append(("visit", k))
    for k, t in enumerate(times):
        blocks.append(onehot_time[:, k] * is_treated)
        names.append(f"{arm}[{treatment_arm}]:{time}[{t}]"); terms.append(("arm", k))
    numeric_values = {}
    if baseline:
        b = rows[baseline].to_numpy(dtype=float)
        numeric_values[baseline] = b
        for k, t in enumerate(times):
            blocks.append(onehot_time[:, k] * b)
            names.append(f"{baseline}:{time}[{t}]"); terms.append(("numeric_by_visit", baseline, k))
    for name in covariates:
        col = rows[name]
        if _is_categorical(col):
            levels = sorted(col.astype(str).unique())
            for level in levels[1:]:
                blocks.append((col.astype(str) == level).to_numpy(dtype=float))
                names.append(f"{name}[{level}]"); terms.append(("factor", name, len(levels)))
        else:
            values = col.to_numpy(dtype=float)
            numeric_values[name] = values
            blocks.append(values); names.append(name); terms.append(("numeric", name))
    x_rows = np.column_stack(blocks)
    return x_rows, names, terms, numeric_values


def build_mmrm_design(
    data: pd.DataFrame,
    *,
    id: str = "id",
    time: str = "time",
    arm: str = "arm",
    baseline: str | None = "baseline",
    covariates=DEFAULT_COVARIATES,
    reference_arm: str = "TAU",
    treatment_arm: str = "IMR",
    times=None,
) -> MMRMDesign:
    """Build the MMRM design from long data (one row per participant x post-baseline visit).

    Visits are ``times`` in the given order (default: the categories of a categorical ``time`` column,
    else the sorted distinct values); rows at other visits are ignored. Rows with a missing arm,
    baseline or covariate are dropped (counted in ``n_dropped_covariates``, reported in the notes).
    """
    covariates = tuple(covariates)
    needed = [id, time, arm] + ([baseline] if baseline else []) + list(covariates)
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise AnalysisError(f"MMRM data lack column(s) {missing}; columns present: {list(data.columns)}")
    times = _visit_order(data, time, times)
    if len(times) == 0:
        raise AnalysisError("MMRM needs at least one post-baseline visit; none found in column "
                            f"{time!r}")
    in_visits = data[time].isin(times).to_numpy()
    complete = data[needed].notna().all(axis=1).to_numpy()
    arms = data[arm].astype(object)
    bad_arm = in_visits & complete & ~arms.isin([reference_arm, treatment_arm]).to_numpy()
    if bad_arm.any():
        raise AnalysisError(
            f"column {arm!r} holds {sorted(set(arms[bad_arm].astype(str)))}; the MMRM compares exactly "
            f"two arms, {treatment_arm!r} and {reference_arm!r}: filter the data or set the arm names"
        )
    use = in_visits & complete
    rows = data.loc[use]
    if rows.duplicated([id, time]).any():
        dup = rows.loc[rows.duplicated([id, time], keep=False), [id, time]].head(3).to_dict("records")
        raise AnalysisError(f"more than one row per participant and visit, e.g. {dup}: aggregate first")
    ids = tuple(sorted(rows[id].unique(), key=str))
    id_index = {v: k for k, v in enumerate(ids)}
    t_index = {v: k for k, v in enumerate(times)}
    pi = rows[id].map(id_index).to_numpy(dtype=np.intp)
    ti = rows[time].map(t_index).to_numpy(dtype=np.intp)
    n, n_times = len(ids), len(times)

    is_treated = (rows[arm].astype(object) == treatment_arm).to_numpy(dtype=float)
    x_rows, names, terms, numeric_values = _design_columns(
        rows, ti, times, time, arm, treatment_arm, is_treated, baseline, covariates)

    X = np.zeros((n, n_times, x_rows.shape[1]))
    X[pi, ti] = x_rows
    present = np.zeros((n, n_times), dtype=bool)
    present[pi, ti] = True
    row_cell = np.full(len(data), -1, dtype=np.intp)
    row_cell[np.flatnonzero(use)] = pi * n_times + ti
    numeric_grid = {}
    for key, values in numeric_values.items():
        g = np.full((n, n_times), np.nan)
        g[pi, ti] = values
        numeric_grid[key] = g
    arm_of = np.zeros(n, dtype=bool)
    arm_of[pi] = is_treated.astype(bool)
    return MMRMDesign(
        X=X, present=present, row_cell=row_cell, ids=ids, times=times, columns=tuple(names),
        grid_terms=tuple(terms), numeric_values=numeric_grid, reference_arm=reference_arm,
        treatment_arm=treatment_arm, arm_of=arm_of,
        n_dropped_covariates=int((in_visits & ~complete).sum()),
    )


def reference_grid(design: MMRMDesign, observed: np.ndarray) -> tuple[np.ndarray, list]:
    """Rows L of the adjusted means (arm x visit), as emmeans' default reference grid defines them:
    numeric covariates (baseline, age) at their mean over the analysed rows, categorical covariates
    weighted equally over their levels (emmeans ``weights = "equal"``)."""
    means = {name: values[observed].mean() for name, values in design.numeric_values.items()}
    rows, labels = [], []
    for k, t in enumerate(design.times):
        for arm_name, treated in ((design.reference_arm, 0.0), (design.treatment_arm, 1.0)):
            L = np.zeros(len(design.columns))
            for j, term in enumerate(design.grid_terms):
                kind = term[0]
                if kind == "visit":
                    L[j] = float(term[1] == k)
                elif kind == "arm":    # ("arm", k): IMR at visit k; ("arm", None): an arm main effect
                    L[j] = treated * float(term[1] is None or term[1] == k)
                elif kind == "numeric_by_visit":
                    L[j] = float(term[2] == k) * means[term[1]]
                elif kind == "numeric":
                    L[j] = means[term[1]]
                elif kind == "factor":
                    L[j] = 1.0 / term[2]
            rows.append(L)
            labels.append((arm_name, t))
    return np.array(rows), labels


# --------------------------------------------------------------------------------------------------
# REML on pattern-wise sufficient statistics
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PatternStats:
    """Sums over participants sharing a visit pattern, zero-padded to T x T and flattened over
    (pattern, a, b) so that every contraction with a per-pattern T x T matrix is one matrix product.
    ``outer`` and ``pad`` depend on the masks only (cached so each REML evaluation skips rebuilding them)."""

    masks: np.ndarray   # (P, T) bool
    counts: np.ndarray  # (P,)
    xx: np.ndarray      # (P*T*T, p*p): sum_i x_ia x_ib'
    xy: np.ndarray      # (P*T*T, p):   sum_i x_ia y_ib
    yy: np.ndarray      # (P*T*T,):     sum_i y_ia y_ib
    n_obs: int
    outer: np.ndarray | None = None  # (P, T, T) bool: visit a and visit b both observed in the pattern
    pad: np.ndarray | None = None    # (P, T, T): identity on the unobserved visits, 0 elsewhere


def _mask_constants(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    T = masks.shape[1]
    return masks[:, :, None] & masks[:, None, :], np.eye(T) * ~masks[:, None, :]


def _pattern_stats(X: np.ndarray, y: np.ndarray, observed: np.ndarray) -> _PatternStats:
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
    xx = np.empty((P, T, T, p, p)); xy = np.empty((P, T, T, p)); yy = np.empty((P, T, T))
    for k, (Xk, yk) in enumerate(groups):
        xx[k] = np.einsum("nap,nbq->abpq", Xk, Xk, optimize=True)
        xy[k] = np.einsum("nap,nb->abp", Xk, yk, optimize=True)
        yy[k] = yk.T @ yk
    K = P * T * T
    outer, pad = _mask_constants(masks)
    return _PatternStats(masks, counts, xx.reshape(K, p * p), xy.reshape(K, p), yy.reshape(K), n_obs,
                         outer, pad)


def _vech_basis(T: int) -> tuple[np.ndarray, list]:
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
    return np.linalg.inv(padded) * outer, logdet


def _stats_inverses(st: _PatternStats, sigma: np.ndarray):
    constants = None if st.outer is None else (st.outer, st.pad)
    return _pattern_inverses(sigma, st.masks, constants)


def _reml(st: _PatternStats, sigma: np.ndarray, E: np.ndarray, derivatives: bool = True):
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
    loglik = -0.5 * ((st.n_obs - p) * math.log(2 * math.pi) + st.counts @ logdet
                     + 2.0 * np.log(np.diagonal(chol_xwx)).sum() + rwr)
    out = {"loglik": loglik, "beta": beta, "cov_beta": M}
    if not derivatives:
        return out
    xb = (st.xy @ beta).reshape(P, T, T)
    rr = (st.yy + st.xx @ np.outer(beta, beta).ravel()).reshape(P, T, T) - xb - xb.transpose(0, 2, 1)
    xr = st.xy - st.xx.reshape(K, p, p) @ beta                       # sum_i x_ia r_ib
    A = inv[:, None] @ E[None] @ inv[:, None]                        # W V_j W per pattern (P, m, T, T)
    B = A[:, :, None] @ E[None, None] @ inv[:, None, None]           # W V_i W V_j W (P, m, m, T, T)
    A_f = A.transpose(1, 0, 2, 3).reshape(m, K)
    B_f = B.transpose(1, 2, 0, 3, 4).reshape(m * m, K)
    E_f = E.reshape(m, T * T)
    q = (A_f @ st.xx).reshape(m, p, p)                               # X'W V_j W X
    xvr = A_f @ xr                                                   # X'W V_j W r
    tr_pv = (st.counts @ inv.reshape(P, T * T)) @ E_f.T - q.reshape(m, p * p) @ M.ravel()
    out["gradient"] = -0.5 * tr_pv + 0.5 * (A_f @ rr.ravel())
    tr_wvwv = np.dot(st.counts.reshape(1, P), A.reshape(P, -1)).reshape(m, T * T) @ E_f.T  # = tensordot(counts, A, 1)
    mq = M @ q
    tr_pvpv = (tr_wvwv - 2.0 * ((B_f @ st.xx) @ M.ravel()).reshape(m, m)
               + mq.reshape(m, -1) @ mq.transpose(0, 2, 1).reshape(m, -1).T)
    ypvpvpy = (B_f @ rr.ravel()).reshape(m, m) - xvr @ M @ xvr.T
    ypvpvpy = 0.5 * (ypvpvpy + ypvpvpy.T)
    out["observed_information"] = ypvpvpy - 0.5 * tr_pvpv
    out["expected_information"] = 0.5 * tr_pvpv
    out["dcov_beta"] = mq @ M                                        # d cov(beta)/d theta_j = M Q_j M
    return out


def _starting_sigma(X: np.ndarray, y: np.ndarray, observed: np.ndarray) -> np.ndarray:
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


def _newton_reml(st: _PatternStats, sigma: np.ndarray, E: np.ndarray, pairs: list):
    """Maximise the REML log-likelihood over Sigma (Newton-Raphson / scoring with step-halving)."""
    current = _reml(st, sigma, E)
    if current is None:
        raise AnalysisError("the starting covariance matrix is not positive definite: pass another start")
    rows, cols = zip(*pairs)
    for iteration in range(1, _MAX_ITER + 1):
        g = current["gradient"]
        info = current["observed_information"]
        if np.linalg.eigvalsh(info).min() <= 0:
            info = current["expected_information"]
        try:
            step = np.linalg.solve(info, g)
        except np.linalg.LinAlgError:
            return sigma, current, iteration, False, "the REML information matrix is singular"
        scale = np.sqrt(np.outer(np.diag(sigma), np.diag(sigma)))[rows, cols]
        if np.max(np.abs(step) / scale) < _STEP_TOL:
            # Newton converges quadratically: a step this small means Sigma is already exact to ~_STEP_TOL
            return sigma, current, iteration, True, ""
        t = 1.0
        while True:
            trial = sigma.copy()
            trial[rows, cols] += t * step
            trial[cols, rows] = trial[rows, cols]
            candidate = _reml(st, trial, E)
            floor = current["loglik"] - 1e-10 * abs(current["loglik"])  # round-off allowance
            if candidate is not None and candidate["loglik"] >= floor:
                break
            t /= 2.0
            if t < 1e-10:
                message = "step-halving failed to improve the REML log-likelihood"
                return sigma, current, iteration, False, message
        sigma, current = trial, candidate
    return sigma, current, _MAX_ITER, False, f"no convergence in {_MAX_ITER} Newton iterations"


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MMRMResult:
    """A fitted MMRM.

    Numbers are held as arrays (cheap to make, so 100 refits per outcome stay fast); the Estimate
    frames ``fixed_effects``, ``contrasts`` (IMR - TAU per visit) and ``adjusted_means`` (arm x visit)
    and the ``covariance`` frame are built on first access. ``converged`` is False (and ``notes``
    says why) when the REML maximisation did not converge.

    ``cov_beta`` is the covariance every SE uses: (X'WX)^-1 with ``df_method="satterthwaite"``, the
    Kenward-Roger adjusted Phi_A with ``"kenward_roger"``; ``cov_beta_model`` is always (X'WX)^-1 and
    ``dcov_beta`` its derivatives in theta (for `f_test`).
    """

    columns: tuple
    times: tuple
    theta_names: tuple
    beta: np.ndarray
    cov_beta: np.ndarray
    sigma: np.ndarray
    cov_theta: np.ndarray
    df_beta: np.ndarray
    means_L: np.ndarray
    means_labels: tuple
    means_df: np.ndarray
    contrast_L: np.ndarray
    contrast_labels: tuple
    contrast_df: np.ndarray
    reml_loglik: float
    converged: bool
    iterations: int
    n_participants: int
    n_observations: int
    method: str
    grid_method: str
    notes: str
    level: float
    df_method: str = "satterthwaite"
    cov_beta_model: np.ndarray | None = None
    dcov_beta: np.ndarray | None = None

    @property
    def contrast_estimate(self) -> np.ndarray:
        return self.contrast_L @ self.beta

    @property
    def contrast_se(self) -> np.ndarray:
        return np.sqrt(np.einsum("lp,pq,lq->l", self.contrast_L, self.cov_beta, self.contrast_L))

    @cached_property
    def fixed_effects(self) -> pd.DataFrame:
        L = np.eye(len(self.columns))
        return to_frame(self._estimates(L, list(self.columns), self.df_beta, self.method,
                                        [{"term": c} for c in self.columns]))

    @cached_property
    def contrasts(self) -> pd.DataFrame:
        return to_frame(self._estimates(self.contrast_L, list(self.contrast_labels), self.contrast_df,
                                        self.method, [{"timepoint": str(t)} for t in self.times]))

    @cached_property
    def adjusted_means(self) -> pd.DataFrame:
        labels = [f"adjusted mean {a} at {t}" for a, t in self.means_labels]
        extras = [{"arm": a, "timepoint": str(t)} for a, t in self.means_labels]
        return to_frame(self._estimates(self.means_L, labels, self.means_df,
                                        f"{self.method}; {self.grid_method}", extras))

    @cached_property
    def covariance(self) -> pd.DataFrame:
        names = [str(t) for t in self.times]
        return pd.DataFrame(self.sigma, index=names, columns=names)

    def f_test(self, L: np.ndarray, *, rhs: np.ndarray | None = None, quantity: str = "F test") -> Estimate:
        """Kenward-Roger F test of H0: L beta = rhs (`kenward_roger_f_test`); needs a fit made with
        ``df_method="kenward_roger"``."""
        if self.df_method != "kenward_roger":
            raise AnalysisError("the multi-row F test is the Kenward-Roger one: refit with df_method='kenward_roger'")
        est = kenward_roger_f_test(L, self.beta, self.cov_beta_model, self.cov_beta, self.dcov_beta,
                                   self.cov_theta, rhs=rhs, quantity=quantity)
        return dataclasses.replace(est, method=f"{self.method}; {est.method}", notes=self.notes)

    def _estimates(self, L, labels, df, method, extras) -> list[Estimate]:
        est = L @ self.beta
        se = np.sqrt(np.einsum("lp,pq,lq->l", L, self.cov_beta, L))
        crit = stats.t.ppf(0.5 + self.level / 2, df)
        tval = est / se
        pval = 2 * stats.t.sf(np.abs(tval), df)
        return [
            Estimate(quantity=labels[k], estimate=float(est[k]), se=float(se[k]),
                     ci_low=float(est[k] - crit[k] * se[k]), ci_high=float(est[k] + crit[k] * se[k]),
                     df=float(df[k]), statistic=float(tval[k]), p=float(pval[k]), method=method,
                     notes=self.notes, extra=extras[k])
            for k in range(len(labels))
        ]

    def to_dict(self) -> dict:
        def records(frame):
            return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]

        return {
            "fixed_effects": records(self.fixed_effects),
            "contrasts": records(self.contrasts),
            "adjusted_means": records(self.adjusted_means),
            "covariance": {"times": [str(t) for t in self.times], "matrix": self.sigma.tolist()},
            "reml_loglik": float(self.reml_loglik),
            "converged": bool(self.converged),
            "iterations": int(self.iterations),
            "n_participants": self.n_participants,
            "n_observations": self.n_observations,
            "method": self.method,
            "notes": self.notes,
        }


def _plain(value):
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def satterthwaite_df(L: np.ndarray, cov_beta: np.ndarray, dcov_beta: np.ndarray,
                     cov_theta: np.ndarray) -> np.ndarray:
    """Satterthwaite df for each row c of L: 2 (c'Vc)^2 / (g' A g), g_j = c' dV/dtheta_j c, A = the
    inverse observed REML information of theta (Kuznetsova et al. 2017; Christensen 2018; mmrm)."""
    var = np.einsum("lp,pq,lq->l", L, cov_beta, L)
    g = np.einsum("lp,jpq,lq->lj", L, dcov_beta, L)
    denom = np.einsum("lj,jk,lk->l", g, cov_theta, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2.0 * var**2 / denom, np.inf)


# --------------------------------------------------------------------------------------------------
# Kenward-Roger (1997) small-sample inference
# --------------------------------------------------------------------------------------------------


def kenward_roger_q_terms(X: np.ndarray, observed: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Q_hj = sum_i X_i' W_i V_h W_i V_j W_i X_i of Kenward & Roger (1997) for theta = vech(Sigma), with
    W_i = Sigma[O_i, O_i]^-1 and V_h = dSigma_i/dtheta_h, per fit: X (B, participants, visits, p) designs
    sharing the observed cells (participants, visits) and sigma (B, T, T) -> (B, m, m, p, p).

    Q depends on the design, the visit patterns and Sigma only (not on y), so it can be formed after the
    fit from what `MMRMResult` / `MMRMFits` keep."""
    X, sigma = np.asarray(X, dtype=float), np.asarray(sigma, dtype=float)
    st = _batch_pattern_stats(X, np.zeros(X.shape[:3]), observed)
    E, _ = _vech_basis(sigma.shape[1])
    (B, P, T), m, p = (len(sigma), *st.masks.shape), E.shape[0], X.shape[3]
    inv = np.linalg.inv(np.where(st.outer, sigma[:, None], 0.0) + st.pad) * st.outer     # (B, P, T, T)
    wvw = inv[:, :, None] @ E[None, None] @ inv[:, :, None]                                # (B, P, m, T, T)
    wvwvw = wvw[:, :, :, None] @ E[None, None, None] @ inv[:, :, None, None]              # (B, P, m, m, T, T)
    flat = wvwvw.transpose(0, 2, 3, 1, 4, 5).reshape(B, m * m, P * T * T)
    return (flat @ st.xx).reshape(B, m, m, p, p)


def kenward_roger_cov_beta(cov_beta: np.ndarray, dcov_beta: np.ndarray, q_terms: np.ndarray,
                           cov_theta: np.ndarray) -> np.ndarray:
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
    inv_dphi = np.linalg.solve(Phi[..., None, :, :], dcov_beta)                   # Phi^-1 dPhi_j
    cross = dcov_beta[..., :, None, :, :] @ inv_dphi[..., None, :, :, :]          # dPhi_h Phi^-1 dPhi_j
    adjusted = Phi + 2.0 * np.einsum("...hj,...hjab->...ab", W, phi_q_phi - cross)
    return 0.5 * (adjusted + np.swapaxes(adjusted, -1, -2))


def kenward_roger_df(L: np.ndarray, cov_beta: np.ndarray, dcov_beta: np.ndarray,
                     cov_theta: np.ndarray) -> np.ndarray:
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
    u = theta[None] @ dcov_beta                     # Theta Phi P_h Phi up to sign (squared away below)
    tr_u = np.trace(u, axis1=1, axis2=2)
    a1 = tr_u @ cov_theta @ tr_u
    a2 = float(np.einsum("hj,hab,jba->", cov_theta, u, u))
    if not a2 > 0:   # no uncertainty from Sigma reaches L beta: the Wald F is exact with infinite df
        return math.inf, 1.0
    b = (a1 + 6.0 * a2) / (2.0 * c)
    g = ((c + 1) * a1 - (c + 4) * a2) / ((c + 2) * a2)
    d = 3 * c + 2 * (1 - g)
    c1, c2, c3 = g / d, (c - g) / d, (c + 2 - g) / d
    e_star = 1.0 / (1.0 - a2 / c)
    v_star = (2.0 / c) * (1.0 + c1 * b) / ((1.0 - c2 * b) ** 2 * (1.0 - c3 * b))
    rho = v_star / (2.0 * e_star**2)
    if not (c * rho - 1.0 > 0 and e_star > 0):
        raise AnalysisError(f"the Kenward-Roger F approximation breaks down for this contrast (A1 = {a1:.4g}, "
                            f"A2 = {a2:.4g}): too little information on Sigma; use fewer rows or more data")
    m = 4.0 + (c + 2) / (c * rho - 1.0)
    return m, m / (e_star * (m - 2.0))


def kenward_roger_f_test(L: np.ndarray, beta: np.ndarray, cov_beta: np.ndarray, cov_beta_adj: np.ndarray,
                         dcov_beta: np.ndarray, cov_theta: np.ndarray, *, rhs: np.ndarray | None = None,
                         quantity: str = "Kenward-Roger F test") -> Estimate:
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
    return Estimate(quantity=quantity, estimate=f_scaled, se=math.nan, ci_low=math.nan, ci_high=math.nan,
                    df=float(m), statistic=f_scaled, p=float(stats.f.sf(f_scaled, c, m)),
                    method=f"Kenward-Roger F({c}, m) (Kenward & Roger 1997): adjusted cov(beta), scaled F",
                    extra={"num_df": c, "lambda": float(lam), "f_unscaled": f_unscaled})


def _check_estimable(design: MMRMDesign, observed: np.ndarray, X: np.ndarray | None = None) -> None:
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
                    f"no {arm_name} participant has an observed outcome at visit {t!r}: the IMR - TAU "
                    "difference there is not estimable; drop the visit (times=...) or check the data"
                )
    for a in range(len(design.times)):
        for b in range(a):
            if not (observed[:, a] & observed[:, b]).any():
                raise AnalysisError(
                    f"no participant is observed at both {design.times[b]!r} and {design.times[a]!r}: their "
                    "covariance is not estimable with an unstructured matrix; check the visit coding"
                )
    Xo = design.X[observed][None] if X is None else X[:, observed]
    ranks = np.atleast_1d(np.linalg.matrix_rank(Xo))   # per matrix: the same SVD and tolerance as one at a time
    if (ranks < Xo.shape[2]).any():
        raise AnalysisError(
            f"singular design: {Xo.shape[2]} fixed-effect columns but rank {int(ranks.min())} on the observed rows "
            f"(columns {list(design.columns)}); a covariate is constant or collinear: drop it"
        )
    if Xo.shape[1] <= Xo.shape[2]:
        raise AnalysisError(f"{Xo.shape[1]} observations cannot support {Xo.shape[2]} fixed effects")


def _check_df_method(df_method: str) -> None:
    if df_method not in DF_METHODS:
        raise AnalysisError(f"df_method {df_method!r} is not available; use 'satterthwaite' or 'kenward_roger' "
                            "(Kenward-Roger adjusted SE and df)")


def _information_inverse(fit: dict, converged: bool, message: str):
    """cov(theta) = inverse observed REML information (NaN if singular); a fit whose information is not
    positive definite at the solution is not converged."""
    try:
        cov_theta = np.linalg.inv(fit["observed_information"])
    except np.linalg.LinAlgError:
        cov_theta = np.full_like(fit["observed_information"], np.nan)
    if converged and np.linalg.eigvalsh(fit["observed_information"]).min() <= 0:
        converged, message = False, "REML information is not positive definite at the solution"
    return cov_theta, converged, message


def _fit_checked(X, y_grid, observed, start, E, pairs):
    """REML fit on an already checked design: (sigma, fit, iterations, converged, message, cov_theta)."""
    st = _pattern_stats(X, y_grid, observed)
    sigma0 = None if start is None else np.asarray(start, dtype=float)
    if sigma0 is None or _stats_inverses(st, sigma0)[0] is None:
        sigma0 = _starting_sigma(X, y_grid, observed)  # no usable warm start
    sigma, fit, iterations, converged, message = _newton_reml(st, sigma0, E, pairs)
    cov_theta, converged, message = _information_inverse(fit, converged, message)
    return sigma, fit, iterations, converged, message, cov_theta


def fit_mmrm_grid(design: MMRMDesign, y_grid: np.ndarray, *, start: np.ndarray | None = None,
                  df_method: str = "satterthwaite", level: float = 0.95) -> MMRMResult:
    """Fit the MMRM to an outcome on the design's participant x visit grid (NaN = missing)."""
    _check_df_method(df_method)
    observed = design.present & np.isfinite(y_grid)
    _check_estimable(design, observed)
    E, pairs = _vech_basis(len(design.times))
    sigma, fit, iterations, converged, message, cov_theta = _fit_checked(design.X, y_grid, observed, start, E, pairs)
    cov_beta_adj = None
    if df_method == "kenward_roger":
        q_terms = kenward_roger_q_terms(design.X[None], observed, sigma[None])[0]
        cov_beta_adj = kenward_roger_cov_beta(fit["cov_beta"], fit["dcov_beta"], q_terms, cov_theta)
    return _assemble(design, observed, sigma, fit, cov_theta, pairs, iterations, converged, message, level,
                     cov_beta_adj)


_KENWARD_ROGER_TEXT = ("Kenward-Roger SE and df (Kenward & Roger 1997 adjusted cov(beta), observed REML information; "
                       "Sigma linear in vech(Sigma), no second-derivative term: SAS DDFM=KR for TYPE=UN, "
                       "mmrm Kenward-Roger-Linear)")


def _assemble(design, observed, sigma, fit, cov_theta, pairs, iterations, converged, message, level,
              cov_beta_adj=None):
    """The `MMRMResult` of a fit; ``cov_beta_adj`` (Kenward-Roger Phi_A) switches SEs and df to KR."""
    T = len(design.times)
    method = (f"REML GLS, unstructured {T}x{T} covariance (Newton-Raphson); "
              + ("Satterthwaite df (observed REML information)" if cov_beta_adj is None else _KENWARD_ROGER_TEXT))
    notes = [] if converged else [f"NOT CONVERGED: {message}"]
    if design.n_dropped_covariates:
        notes.append(f"{design.n_dropped_covariates} row(s) dropped for a missing arm, baseline or covariate")
    cov_beta, dcov = fit["cov_beta"], fit["dcov_beta"]
    df_of = satterthwaite_df if cov_beta_adj is None else kenward_roger_df   # both from the unadjusted cov(beta)
    L_means, labels = reference_grid(design, observed)
    L_diff = L_means[1::2] - L_means[0::2]
    times = [str(t) for t in design.times]
    return MMRMResult(
        columns=design.columns, times=tuple(design.times),
        theta_names=tuple(f"cov({times[u]},{times[v]})" for u, v in pairs),
        beta=fit["beta"], cov_beta=cov_beta if cov_beta_adj is None else cov_beta_adj, sigma=sigma,
        cov_theta=cov_theta,
        df_beta=df_of(np.eye(len(design.columns)), cov_beta, dcov, cov_theta),
        means_L=L_means, means_labels=tuple(labels),
        means_df=df_of(L_means, cov_beta, dcov, cov_theta),
        contrast_L=L_diff,
        contrast_labels=tuple(f"{design.treatment_arm} - {design.reference_arm} at {t}" for t in times),
        contrast_df=df_of(L_diff, cov_beta, dcov, cov_theta),
        reml_loglik=float(fit["loglik"]), converged=converged, iterations=iterations,
        n_participants=int(observed.any(axis=1).sum()), n_observations=int(observed.sum()),
        method=method, notes="; ".join(notes), level=level,
        grid_method="emmeans default grid: numeric covariates at their mean over the analysed rows, "
                    "categorical covariates equally weighted",
        df_method="satterthwaite" if cov_beta_adj is None else "kenward_roger",
        cov_beta_model=cov_beta, dcov_beta=dcov,
    )


# --------------------------------------------------------------------------------------------------
# Many fits of one design structure (one per completed data set)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MMRMFits:
    """B fits of designs that share participants, visits, columns and observed cells (e.g. one per
    completed data set, whose imputed baseline differs): every number with a leading fit axis, and
    ``result(b)``, the full `MMRMResult` of fit b. ``converged[b]`` is False (``notes[b]`` says why)
    when fit b's REML maximisation did not converge."""

    designs: tuple
    observed: np.ndarray      # (n, T), the same for every fit
    sigma: np.ndarray         # (B, T, T)
    beta: np.ndarray          # (B, p)
    cov_beta: np.ndarray      # (B, p, p)
    dcov_beta: np.ndarray     # (B, m, p, p): d cov(beta) / d theta_j
    cov_theta: np.ndarray     # (B, m, m)
    reml_loglik: np.ndarray   # (B,)
    converged: np.ndarray     # (B,) bool
    iterations: np.ndarray    # (B,) int
    notes: tuple
    level: float = 0.95

    def result(self, b: int, df_method: str = "satterthwaite") -> MMRMResult:
        """The full `MMRMResult` of fit b, with Satterthwaite or Kenward-Roger SEs and df."""
        _check_df_method(df_method)
        fit = {"beta": self.beta[b], "cov_beta": self.cov_beta[b], "dcov_beta": self.dcov_beta[b],
               "loglik": self.reml_loglik[b]}
        _, pairs = _vech_basis(self.sigma.shape[1])
        adjusted = self.kenward_roger_cov_beta[b] if df_method == "kenward_roger" else None
        return _assemble(self.designs[b], self.observed, self.sigma[b], fit, self.cov_theta[b], pairs,
                         int(self.iterations[b]), bool(self.converged[b]), self.notes[b], self.level, adjusted)

    @cached_property
    def kenward_roger_cov_beta(self) -> np.ndarray:
        """(B, p, p) Kenward-Roger adjusted cov(beta-hat) of every fit (`kenward_roger_cov_beta`), formed
        after the fits from their designs and Sigmas in one batch (nothing is refitted)."""
        X = np.stack([d.X for d in self.designs])
        q_terms = kenward_roger_q_terms(X, self.observed, self.sigma)
        return kenward_roger_cov_beta(self.cov_beta, self.dcov_beta, q_terms, self.cov_theta)


def fit_mmrm_many(designs, y_grids: np.ndarray, *, starts: np.ndarray | None = None,
                  level: float = 0.95) -> MMRMFits:
    """Fit outcome ``y_grids[b]`` (participant x visit grid, NaN = missing) on ``designs[b]`` for every b;
    the designs share participants, visits, columns and present cells (only values may differ).

    ``starts=None``: one after another, each Newton run warm-started at the previous fit's Sigma (the
    first at the OLS residual covariance), as B calls of `fit_mmrm_grid` with ``start`` = the previous
    Sigma would do, with the estimability checks made once for all designs (one batched rank).
    ``starts`` (B, T, T): independent fits from those starts, run together as batched array operations;
    each fit takes the same Newton steps, step halvings and convergence decisions as
    ``fit_mmrm_grid(designs[b], y_grids[b], start=starts[b])`` (batched products may differ from
    one-at-a-time ones by floating-point rounding). Returns `MMRMFits`.
    """
    designs = tuple(designs)
    y_grids = np.asarray(y_grids, dtype=float)
    if len(designs) != len(y_grids) or not designs:
        raise AnalysisError(f"{len(designs)} designs for {len(y_grids)} outcome grids: pass one design per grid")
    first = designs[0]
    if any(d.present.shape != first.present.shape or d.columns != first.columns for d in designs):
        raise AnalysisError("fit_mmrm_many needs designs of one structure (participants, visits, columns)")
    observed = first.present & np.isfinite(y_grids)
    if not (observed == observed[:1]).all():
        raise AnalysisError("fit_mmrm_many: the outcome grids have different observed cells; fit them one at a "
                            "time with fit_mmrm_grid")
    observed = observed[0]
    X = np.stack([d.X for d in designs])
    _check_estimable(first, observed, X)
    E, pairs = _vech_basis(len(first.times))
    if starts is None:
        out, sigma = [], None
        for d, y in zip(designs, y_grids):
            out.append(_fit_checked(d.X, y, observed, sigma, E, pairs))
            sigma = out[-1][0]
        return _stack_fits(designs, observed, out, level)
    return _fit_batch(designs, X, y_grids, observed, np.asarray(starts, dtype=float), E, pairs, level)


def _stack_fits(designs, observed, out, level) -> MMRMFits:
    sigma, fits, iterations, converged, messages, cov_theta = zip(*out)
    return MMRMFits(designs=designs, observed=observed, sigma=np.stack(sigma),
                    beta=np.stack([f["beta"] for f in fits]), cov_beta=np.stack([f["cov_beta"] for f in fits]),
                    dcov_beta=np.stack([f["dcov_beta"] for f in fits]), cov_theta=np.stack(cov_theta),
                    reml_loglik=np.array([f["loglik"] for f in fits], dtype=float),
                    converged=np.array(converged, dtype=bool), iterations=np.array(iterations, dtype=int),
                    notes=tuple(messages), level=level)


@dataclass(frozen=True)
class _BatchStats:
    """`_PatternStats` of B fits sharing the visit patterns: xx, xy, yy with a leading fit axis."""

    masks: np.ndarray
    counts: np.ndarray
    xx: np.ndarray   # (B, K, p*p)
    xy: np.ndarray   # (B, K, p)
    yy: np.ndarray   # (B, K)
    n_obs: int
    outer: np.ndarray
    pad: np.ndarray

    def take(self, idx) -> "_BatchStats":
        return dataclasses.replace(self, xx=self.xx[idx], xy=self.xy[idx], yy=self.yy[idx])


def _batch_pattern_stats(X: np.ndarray, y: np.ndarray, observed: np.ndarray) -> _BatchStats:
    """`_pattern_stats` of designs X (B, n, T, p) and outcomes y (B, n, T) with common observed cells."""
    keep = observed.any(axis=1)
    obs = observed[keep]
    X, y = X[:, keep] * obs[None, :, :, None], np.where(obs, y[:, keep], 0.0)
    codes = obs @ (1 << np.arange(obs.shape[1]))
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    masks = obs[first]
    (B, _, T, p), P = X.shape, len(masks)
    xx = np.empty((B, P, T, T, p, p)); xy = np.empty((B, P, T, T, p)); yy = np.empty((B, P, T, T))
    for k in range(P):
        Xk, yk = X[:, inverse == k], y[:, inverse == k]
        Xt = Xk.reshape(B, -1, T * p).transpose(0, 2, 1)
        xx[:, k] = (Xt @ Xk.reshape(B, -1, T * p)).reshape(B, T, p, T, p).transpose(0, 1, 3, 2, 4)
        xy[:, k] = (Xt @ yk).reshape(B, T, p, T).transpose(0, 1, 3, 2)
        yy[:, k] = yk.transpose(0, 2, 1) @ yk
    K = P * T * T
    outer, pad = _mask_constants(masks)
    return _BatchStats(masks, np.bincount(inverse, minlength=P), xx.reshape(B, K, p * p), xy.reshape(B, K, p),
                       yy.reshape(B, K), int(obs.sum()), outer, pad)


def _reml_batch_unchecked(st: _BatchStats, sigma: np.ndarray, E: np.ndarray) -> dict:
    """`_reml` (with derivatives) of B fits at once; raises LinAlgError if any Sigma or X'WX is not PD."""
    B, P, T = len(sigma), *st.masks.shape
    p, m, K = st.xy.shape[2], E.shape[0], P * T * T
    padded = np.where(st.outer, sigma[:, None], 0.0) + st.pad
    chol = np.linalg.cholesky(padded)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=2, axis2=3)).sum(axis=2)
    inv = np.linalg.inv(padded) * st.outer                               # (B, P, T, T)
    inv_f = inv.reshape(B, 1, K)
    xwx = (inv_f @ st.xx).reshape(B, p, p)
    xwy = (inv_f @ st.xy)[:, 0]
    chol_xwx = np.linalg.cholesky(xwx)
    M = np.linalg.inv(xwx)
    beta = (M @ xwy[:, :, None])[:, :, 0]
    rwr = (inv_f @ st.yy[:, :, None])[:, 0, 0] - (xwy[:, None] @ beta[:, :, None])[:, 0, 0]
    loglik = -0.5 * ((st.n_obs - p) * math.log(2 * math.pi) + logdet @ st.counts
                     + 2.0 * np.log(np.diagonal(chol_xwx, axis1=1, axis2=2)).sum(axis=1) + rwr)
    xb = (st.xy @ beta[:, :, None]).reshape(B, P, T, T)
    bb = (beta[:, :, None] * beta[:, None, :]).reshape(B, p * p, 1)
    rr = (st.yy + (st.xx @ bb)[:, :, 0]).reshape(B, P, T, T) - xb - xb.transpose(0, 1, 3, 2)
    xr = st.xy - (st.xx.reshape(B, K, p, p) @ beta[:, None, :, None])[..., 0]
    A = inv[:, :, None] @ E[None, None] @ inv[:, :, None]               # (B, P, m, T, T)
    Bm = A[:, :, :, None] @ E[None, None, None] @ inv[:, :, None, None]  # (B, P, m, m, T, T)
    A_f = A.transpose(0, 2, 1, 3, 4).reshape(B, m, K)
    B_f = Bm.transpose(0, 2, 3, 1, 4, 5).reshape(B, m * m, K)
    E_f = E.reshape(m, T * T)
    q = (A_f @ st.xx).reshape(B, m, p, p)
    xvr = A_f @ xr
    Mf = M.reshape(B, p * p, 1)
    tr_pv = (np.einsum("p,bpk->bk", st.counts.astype(float), inv.reshape(B, P, T * T)) @ E_f.T
             - (q.reshape(B, m, p * p) @ Mf)[:, :, 0])
    gradient = -0.5 * tr_pv + 0.5 * (A_f @ rr.reshape(B, K, 1))[:, :, 0]
    tr_wvwv = np.einsum("p,bpmk->bmk", st.counts.astype(float), A.reshape(B, P, m, T * T)) @ E_f.T
    mq = M[:, None] @ q
    mq_f = mq.reshape(B, m, p * p)
    tr_pvpv = (tr_wvwv - 2.0 * ((B_f @ st.xx) @ Mf).reshape(B, m, m)
               + mq_f @ mq.transpose(0, 1, 3, 2).reshape(B, m, p * p).transpose(0, 2, 1))
    ypvpvpy = (B_f @ rr.reshape(B, K, 1)).reshape(B, m, m) - xvr @ M @ xvr.transpose(0, 2, 1)
    ypvpvpy = 0.5 * (ypvpvpy + ypvpvpy.transpose(0, 2, 1))
    return {"loglik": loglik, "beta": beta, "cov_beta": M, "gradient": gradient,
            "observed_information": ypvpvpy - 0.5 * tr_pvpv, "expected_information": 0.5 * tr_pvpv,
            "dcov_beta": mq @ M[:, None]}


def _reml_batch(st: _BatchStats, sigma: np.ndarray, E: np.ndarray) -> tuple[np.ndarray, dict]:
    """(ok, values): `_reml` of B fits; where Sigma or X'WX is not PD (``_reml`` gives None) ok is False
    and the values are NaN."""
    try:
        return np.ones(len(sigma), dtype=bool), _reml_batch_unchecked(st, sigma, E)
    except np.linalg.LinAlgError:
        pass
    ok = np.zeros(len(sigma), dtype=bool)
    for b in range(len(sigma)):
        try:
            _reml_batch_unchecked(st.take([b]), sigma[[b]], E)
            ok[b] = True
        except np.linalg.LinAlgError:
            pass
    good = _reml_batch_unchecked(st.take(ok), sigma[ok], E) if ok.any() else None
    if good is None:
        return ok, {}
    out = {}
    for key, value in good.items():
        out[key] = np.full((len(sigma),) + value.shape[1:], np.nan)
        out[key][ok] = value
    return ok, out


def _positive_definite_starts(st: _BatchStats, sigma: np.ndarray) -> np.ndarray:
    padded = np.where(st.outer, sigma[:, None], 0.0) + st.pad
    try:
        np.linalg.cholesky(padded)
        return np.ones(len(sigma), dtype=bool)
    except np.linalg.LinAlgError:
        pass
    ok = np.zeros(len(sigma), dtype=bool)
    for b in range(len(sigma)):
        try:
            np.linalg.cholesky(padded[b])
            ok[b] = True
        except np.linalg.LinAlgError:
            pass
    return ok


def _solve_batch(info: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(steps, solved): info_b^-1 g_b per fit; solved is False where info_b is singular."""
    try:
        return np.linalg.solve(info, g[:, :, None])[:, :, 0], np.ones(len(g), dtype=bool)
    except np.linalg.LinAlgError:
        pass
    steps, solved = np.full_like(g, np.nan), np.zeros(len(g), dtype=bool)
    for b in range(len(g)):
        try:
            steps[b], solved[b] = np.linalg.solve(info[b], g[b]), True
        except np.linalg.LinAlgError:
            pass
    return steps, solved


def _newton_reml_batch(st: _BatchStats, sigma: np.ndarray, E: np.ndarray, pairs: list):
    """`_newton_reml` for B independent fits in lock step: every fit takes its own Newton / scoring step,
    step halving and stopping decision exactly as `_newton_reml` would; finished fits leave the batch."""
    B = len(sigma)
    ok, current = _reml_batch(st, sigma, E)
    if not ok.all():
        raise AnalysisError("the starting covariance matrix is not positive definite: pass another start")
    sigma = sigma.copy()
    rows, cols = (np.array(v) for v in zip(*pairs))
    iterations = np.full(B, _MAX_ITER)
    converged = np.zeros(B, dtype=bool)
    messages = [f"no convergence in {_MAX_ITER} Newton iterations"] * B
    active = np.arange(B)
    for iteration in range(1, _MAX_ITER + 1):
        if not len(active):
            break
        g = current["gradient"][active]
        info = current["observed_information"][active]
        scoring = np.linalg.eigvalsh(info).min(axis=1) <= 0
        info = np.where(scoring[:, None, None], current["expected_information"][active], info)
        step, solved = _solve_batch(info, g)
        for b in active[~solved]:
            iterations[b], messages[b] = iteration, "the REML information matrix is singular"
        diag = np.diagonal(sigma[active], axis1=1, axis2=2)
        scale = np.sqrt(diag[:, :, None] * diag[:, None, :])[:, rows, cols]
        with np.errstate(invalid="ignore"):
            small = solved & (np.max(np.abs(step) / scale, axis=1) < _STEP_TOL)
        iterations[active[small]], converged[active[small]] = iteration, True
        for b in active[small]:
            messages[b] = ""
        go = np.flatnonzero(solved & ~small)
        active, step = active[go], step[go]
        t = np.ones(len(active))
        pending = np.arange(len(active))
        failed = np.zeros(len(active), dtype=bool)
        while len(pending):
            idx = active[pending]
            trial = sigma[idx].copy()
            trial[:, rows, cols] += t[pending, None] * step[pending]
            trial[:, cols, rows] = trial[:, rows, cols]
            ok, candidate = _reml_batch(st.take(idx), trial, E)
            floor = current["loglik"][idx] - 1e-10 * np.abs(current["loglik"][idx])  # round-off allowance
            accept = ok.copy()
            if ok.any():
                accept[ok] = candidate["loglik"][ok] >= floor[ok]
                sigma[idx[accept]] = trial[accept]
                for key, value in candidate.items():
                    current[key][idx[accept]] = value[accept]
            rest = pending[~accept]
            t[rest] /= 2.0
            gave_up = t[rest] < 1e-10
            for j in rest[gave_up]:
                failed[j] = True
                iterations[active[j]] = iteration
                messages[active[j]] = "step-halving failed to improve the REML log-likelihood"
            pending = rest[~gave_up]
        active = active[~failed]
    return sigma, current, iterations, converged, messages


def _fit_batch(designs, X, y_grids, observed, starts, E, pairs, level) -> MMRMFits:
    """Independent fits from given starts (see `fit_mmrm_many`), as batched array operations."""
    st = _batch_pattern_stats(X, y_grids, observed)
    starts = starts.copy()
    for b in np.flatnonzero(~_positive_definite_starts(st, starts)):
        starts[b] = _starting_sigma(X[b], y_grids[b], observed)  # no usable warm start
    sigma, fit, iterations, converged, messages = _newton_reml_batch(st, starts, E, pairs)
    info = fit["observed_information"]
    try:
        cov_theta = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov_theta = np.stack([_information_inverse({"observed_information": i}, False, "")[0] for i in info])
    not_pd = np.linalg.eigvalsh(info).min(axis=1) <= 0
    for b in np.flatnonzero(converged & not_pd):
        converged[b], messages[b] = False, "REML information is not positive definite at the solution"
    return MMRMFits(designs=tuple(designs), observed=observed, sigma=sigma, beta=fit["beta"],
                    cov_beta=fit["cov_beta"], dcov_beta=fit["dcov_beta"], cov_theta=cov_theta,
                    reml_loglik=fit["loglik"], converged=converged, iterations=iterations,
                    notes=tuple(messages), level=level)


def fit_mmrm_chains(designs, y_grids: np.ndarray, *, level: float = 0.95) -> list[MMRMFits]:
    """C chains of warm-started fits, ``fit_mmrm_many(designs[c], y_grids[c])`` for each c, run in lock
    step: at step i, fit i of every chain is made in one batch (`fit_mmrm_many` with starts), each started
    at its own chain's fit i - 1 (the first at the OLS residual covariance), so every fit has the start,
    Newton steps and stopping decisions it has when its chain is fitted alone. All C x m designs share
    one structure and observed cells (e.g. the completed data sets of several outcomes of one trial)."""
    designs = [tuple(chain) for chain in designs]
    y_grids = np.asarray(y_grids, dtype=float)
    C, m = len(designs), len(designs[0]) if designs else 0
    if not C or any(len(chain) != m for chain in designs) or y_grids.shape[:2] != (C, m):
        raise AnalysisError("fit_mmrm_chains needs C chains of m designs and a (C, m, participants, visits) grid")
    first = designs[0][0]
    if any(d.present.shape != first.present.shape or d.columns != first.columns or d.ids != first.ids
           or not np.array_equal(d.arm_of, first.arm_of) for chain in designs for d in chain):
        raise AnalysisError("fit_mmrm_chains needs designs of one structure (participants, arms, visits, columns)")
    observed = first.present & np.isfinite(y_grids)
    if not (observed == observed[:1, :1]).all():
        raise AnalysisError("fit_mmrm_chains: the outcome grids have different observed cells")
    observed = observed[0, 0]
    X = np.stack([[d.X for d in chain] for chain in designs])
    _check_estimable(first, observed, X.reshape((C * m,) + X.shape[2:]))
    E, pairs = _vech_basis(len(first.times))
    steps, sigma = [], None
    for i in range(m):
        Xi, yi = X[:, i], y_grids[:, i]
        if sigma is None:
            sigma = np.stack([_starting_sigma(Xi[c], yi[c], observed) for c in range(C)])
        steps.append(_fit_batch([chain[i] for chain in designs], Xi, yi, observed, sigma, E, pairs, level))
        sigma = steps[-1].sigma
    fields = ("sigma", "beta", "cov_beta", "dcov_beta", "cov_theta", "reml_loglik", "converged", "iterations")
    return [MMRMFits(designs=designs[c], observed=observed, level=level,
                     notes=tuple(step.notes[c] for step in steps),
                     **{f: np.stack([getattr(step, f)[c] for step in steps]) for f in fields})
            for c in range(C)]


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
    """Fit an MMRM (unstructured covariance, REML) to long data and report IMR - TAU per visit.

    ``data`` has one row per participant x post-baseline visit; rows with a missing ``outcome`` are
    allowed and dropped (participants with at least one observed visit are all used). Fixed effects:
    ``0 + time + arm:time + baseline:time + covariates``. Returns an `MMRMResult`; a fit that did not
    converge has ``converged=False`` and says so in its notes.
    """
    if outcome not in data.columns:
        raise AnalysisError(f"outcome column {outcome!r} not in data; columns: {list(data.columns)}")
    design = build_mmrm_design(data, id=id, time=time, arm=arm, baseline=baseline, covariates=covariates,
                               reference_arm=reference_arm, treatment_arm=treatment_arm, times=times)
    return design.fit(data[outcome].to_numpy(dtype=float), df_method=df_method, level=level)
