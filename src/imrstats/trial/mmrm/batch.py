"""Many MMRM fits of one design structure (one per completed data set), as batched array operations.

`fit_mmrm_many` fits B outcomes on designs sharing participants, visits, columns and observed cells,
either as a warm-started chain or independently from given starts in lock step; `fit_mmrm_chains` runs
C such chains together. Each fit takes exactly the Newton steps, step halvings and stopping decisions it
takes alone (`reml.newton_reml`); batched products may differ from one-at-a-time ones by rounding.
Results come as `MMRMFits`, whose ``result(b)`` is the full `MMRMResult` of fit b.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from imrstats.errors import AnalysisError
from imrstats.trial.mmrm.ddf import check_df_method, kenward_roger_cov_beta, kenward_roger_q_terms
from imrstats.trial.mmrm.fit import check_estimable
from imrstats.trial.mmrm.reml import (
    MAX_ITER,
    STEP_TOL,
    BatchPatternStats,
    batch_pattern_stats,
    fit_reml,
    invert_reml_information,
    starting_sigma,
    vech_basis,
)
from imrstats.trial.mmrm.result import MMRMResult, assemble_result


@dataclass(frozen=True)
class MMRMFits:
    """B fits of designs that share participants, visits, columns and observed cells (e.g. one per
    completed data set, whose imputed baseline differs): every number with a leading fit axis, and
    ``result(b)``, the full `MMRMResult` of fit b. ``converged[b]`` is False (``notes[b]`` says why)
    when fit b's REML maximisation did not converge."""

    designs: tuple
    observed: np.ndarray  # (n, T), the same for every fit
    sigma: np.ndarray  # (B, T, T)
    beta: np.ndarray  # (B, p)
    cov_beta: np.ndarray  # (B, p, p)
    dcov_beta: np.ndarray  # (B, m, p, p): d cov(beta) / d theta_j
    cov_theta: np.ndarray  # (B, m, m)
    reml_loglik: np.ndarray  # (B,)
    converged: np.ndarray  # (B,) bool
    iterations: np.ndarray  # (B,) int
    notes: tuple
    level: float = 0.95

    def result(self, b: int, df_method: str = "satterthwaite") -> MMRMResult:
        """The full `MMRMResult` of fit b, with Satterthwaite or Kenward-Roger SEs and df."""
        check_df_method(df_method)
        fit = {
            "beta": self.beta[b],
            "cov_beta": self.cov_beta[b],
            "dcov_beta": self.dcov_beta[b],
            "loglik": self.reml_loglik[b],
        }
        _, pairs = vech_basis(self.sigma.shape[1])
        adjusted = self.kenward_roger_cov_beta[b] if df_method == "kenward_roger" else None
        return assemble_result(
            self.designs[b],
            self.observed,
            self.sigma[b],
            fit,
            self.cov_theta[b],
            pairs,
            int(self.iterations[b]),
            bool(self.converged[b]),
            self.notes[b],
            self.level,
            adjusted,
        )

    @cached_property
    def kenward_roger_cov_beta(self) -> np.ndarray:
        """(B, p, p) Kenward-Roger adjusted cov(beta-hat) of every fit (`kenward_roger_cov_beta`), formed
        after the fits from their designs and Sigmas in one batch (nothing is refitted)."""
        X = np.stack([d.X for d in self.designs])
        q_terms = kenward_roger_q_terms(X, self.observed, self.sigma)
        return kenward_roger_cov_beta(self.cov_beta, self.dcov_beta, q_terms, self.cov_theta)


def fit_mmrm_many(designs, y_grids: np.ndarray, *, starts: np.ndarray | None = None, level: float = 0.95) -> MMRMFits:
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
        raise AnalysisError(
            "fit_mmrm_many: the outcome grids have different observed cells; fit them one at a time with fit_mmrm_grid"
        )
    observed = observed[0]
    X = np.stack([d.X for d in designs])
    check_estimable(first, observed, X)
    E, pairs = vech_basis(len(first.times))
    if starts is None:
        out, sigma = [], None
        for d, y in zip(designs, y_grids):
            out.append(fit_reml(d.X, y, observed, sigma, E, pairs))
            sigma = out[-1][0]
        return _stack_fits(designs, observed, out, level)
    return _fit_batch(designs, X, y_grids, observed, np.asarray(starts, dtype=float), E, pairs, level)


def _stack_fits(designs, observed, out, level) -> MMRMFits:
    sigma, fits, iterations, converged, messages, cov_theta = zip(*out)
    return MMRMFits(
        designs=designs,
        observed=observed,
        sigma=np.stack(sigma),
        beta=np.stack([f["beta"] for f in fits]),
        cov_beta=np.stack([f["cov_beta"] for f in fits]),
        dcov_beta=np.stack([f["dcov_beta"] for f in fits]),
        cov_theta=np.stack(cov_theta),
        reml_loglik=np.array([f["loglik"] for f in fits], dtype=float),
        converged=np.array(converged, dtype=bool),
        iterations=np.array(iterations, dtype=int),
        notes=tuple(messages),
        level=level,
    )


def _reml_batch_unchecked(st: BatchPatternStats, sigma: np.ndarray, E: np.ndarray) -> dict:
    """`evaluate_reml` (with derivatives) of B fits at once; raises LinAlgError if any Sigma or X'WX is not PD."""
    B, P, T = len(sigma), *st.masks.shape
    p, m, K = st.xy.shape[2], E.shape[0], P * T * T
    padded = np.where(st.outer, sigma[:, None], 0.0) + st.pad
    chol = np.linalg.cholesky(padded)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=2, axis2=3)).sum(axis=2)
    inv = np.linalg.inv(padded) * st.outer  # (B, P, T, T)
    inv_f = inv.reshape(B, 1, K)
    xwx = (inv_f @ st.xx).reshape(B, p, p)
    xwy = (inv_f @ st.xy)[:, 0]
    chol_xwx = np.linalg.cholesky(xwx)
    M = np.linalg.inv(xwx)
    beta = (M @ xwy[:, :, None])[:, :, 0]
    rwr = (inv_f @ st.yy[:, :, None])[:, 0, 0] - (xwy[:, None] @ beta[:, :, None])[:, 0, 0]
    loglik = -0.5 * (
        (st.n_obs - p) * math.log(2 * math.pi)
        + logdet @ st.counts
        + 2.0 * np.log(np.diagonal(chol_xwx, axis1=1, axis2=2)).sum(axis=1)
        + rwr
    )
    xb = (st.xy @ beta[:, :, None]).reshape(B, P, T, T)
    bb = (beta[:, :, None] * beta[:, None, :]).reshape(B, p * p, 1)
    rr = (st.yy + (st.xx @ bb)[:, :, 0]).reshape(B, P, T, T) - xb - xb.transpose(0, 1, 3, 2)
    xr = st.xy - (st.xx.reshape(B, K, p, p) @ beta[:, None, :, None])[..., 0]
    A = inv[:, :, None] @ E[None, None] @ inv[:, :, None]  # (B, P, m, T, T)
    Bm = A[:, :, :, None] @ E[None, None, None] @ inv[:, :, None, None]  # (B, P, m, m, T, T)
    A_f = A.transpose(0, 2, 1, 3, 4).reshape(B, m, K)
    B_f = Bm.transpose(0, 2, 3, 1, 4, 5).reshape(B, m * m, K)
    E_f = E.reshape(m, T * T)
    q = (A_f @ st.xx).reshape(B, m, p, p)
    xvr = A_f @ xr
    Mf = M.reshape(B, p * p, 1)
    tr_pv = (
        np.einsum("p,bpk->bk", st.counts.astype(float), inv.reshape(B, P, T * T)) @ E_f.T
        - (q.reshape(B, m, p * p) @ Mf)[:, :, 0]
    )
    gradient = -0.5 * tr_pv + 0.5 * (A_f @ rr.reshape(B, K, 1))[:, :, 0]
    tr_wvwv = np.einsum("p,bpmk->bmk", st.counts.astype(float), A.reshape(B, P, m, T * T)) @ E_f.T
    mq = M[:, None] @ q
    mq_f = mq.reshape(B, m, p * p)
    tr_pvpv = (
        tr_wvwv
        - 2.0 * ((B_f @ st.xx) @ Mf).reshape(B, m, m)
        + mq_f @ mq.transpose(0, 1, 3, 2).reshape(B, m, p * p).transpose(0, 2, 1)
    )
    ypvpvpy = (B_f @ rr.reshape(B, K, 1)).reshape(B, m, m) - xvr @ M @ xvr.transpose(0, 2, 1)
    ypvpvpy = 0.5 * (ypvpvpy + ypvpvpy.transpose(0, 2, 1))
    return {
        "loglik": loglik,
        "beta": beta,
        "cov_beta": M,
        "gradient": gradient,
        "observed_information": ypvpvpy - 0.5 * tr_pvpv,
        "expected_information": 0.5 * tr_pvpv,
        "dcov_beta": mq @ M[:, None],
    }


def _reml_batch(st: BatchPatternStats, sigma: np.ndarray, E: np.ndarray) -> tuple[np.ndarray, dict]:
    """(ok, values): `evaluate_reml` of B fits; where Sigma or X'WX is not PD (``evaluate_reml`` gives None) ok is False
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


def _positive_definite_starts(st: BatchPatternStats, sigma: np.ndarray) -> np.ndarray:
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


def _newton_reml_batch(st: BatchPatternStats, sigma: np.ndarray, E: np.ndarray, pairs: list):
    """`newton_reml` for B independent fits in lock step: every fit takes its own Newton / scoring step,
    step halving and stopping decision exactly as `newton_reml` would; finished fits leave the batch."""
    B = len(sigma)
    ok, current = _reml_batch(st, sigma, E)
    if not ok.all():
        raise AnalysisError("the starting covariance matrix is not positive definite: pass another start")
    sigma = sigma.copy()
    rows, cols = (np.array(v) for v in zip(*pairs))
    iterations = np.full(B, MAX_ITER)
    converged = np.zeros(B, dtype=bool)
    messages = [f"no convergence in {MAX_ITER} Newton iterations"] * B
    active = np.arange(B)
    for iteration in range(1, MAX_ITER + 1):
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
            small = solved & (np.max(np.abs(step) / scale, axis=1) < STEP_TOL)
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
    st = batch_pattern_stats(X, y_grids, observed)
    starts = starts.copy()
    for b in np.flatnonzero(~_positive_definite_starts(st, starts)):
        starts[b] = starting_sigma(X[b], y_grids[b], observed)  # no usable warm start
    sigma, fit, iterations, converged, messages = _newton_reml_batch(st, starts, E, pairs)
    info = fit["observed_information"]
    try:
        cov_theta = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov_theta = np.stack([invert_reml_information({"observed_information": i}, False, "")[0] for i in info])
    not_pd = np.linalg.eigvalsh(info).min(axis=1) <= 0
    for b in np.flatnonzero(converged & not_pd):
        converged[b], messages[b] = False, "REML information is not positive definite at the solution"
    return MMRMFits(
        designs=tuple(designs),
        observed=observed,
        sigma=sigma,
        beta=fit["beta"],
        cov_beta=fit["cov_beta"],
        dcov_beta=fit["dcov_beta"],
        cov_theta=cov_theta,
        reml_loglik=fit["loglik"],
        converged=converged,
        iterations=iterations,
        notes=tuple(messages),
        level=level,
    )


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
    if any(
        d.present.shape != first.present.shape
        or d.columns != first.columns
        or d.ids != first.ids
        or not np.array_equal(d.arm_of, first.arm_of)
        for chain in designs
        for d in chain
    ):
        raise AnalysisError("fit_mmrm_chains needs designs of one structure (participants, arms, visits, columns)")
    observed = first.present & np.isfinite(y_grids)
    if not (observed == observed[:1, :1]).all():
        raise AnalysisError("fit_mmrm_chains: the outcome grids have different observed cells")
    observed = observed[0, 0]
    X = np.stack([[d.X for d in chain] for chain in designs])
    check_estimable(first, observed, X.reshape((C * m,) + X.shape[2:]))
    E, pairs = vech_basis(len(first.times))
    steps, sigma = [], None
    for i in range(m):
        Xi, yi = X[:, i], y_grids[:, i]
        if sigma is None:
            sigma = np.stack([starting_sigma(Xi[c], yi[c], observed) for c in range(C)])
        steps.append(_fit_batch([chain[i] for chain in designs], Xi, yi, observed, sigma, E, pairs, level))
        sigma = steps[-1].sigma
    fields = ("sigma", "beta", "cov_beta", "dcov_beta", "cov_theta", "reml_loglik", "converged", "iterations")
    return [
        MMRMFits(
            designs=designs[c],
            observed=observed,
            level=level,
            notes=tuple(step.notes[c] for step in steps),
            **{f: np.stack([getattr(step, f)[c] for step in steps]) for f in fields},
        )
        for c in range(C)
    ]
