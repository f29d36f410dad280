"""Random-intercept linear mixed model: a secondary, likelihood-based sensitivity analysis of the MMRM's
covariance structure: an acceptable secondary model, not a substitute for the unstructured-covariance MMRM
of `imrstats.trial.mmrm`.

For one trial outcome, on the observed data (no imputation; valid under MAR given the model, like
`trial.likelihood_mmrm`): participants with an observed baseline and complete covariates contribute their
observed post and fu12 values. The mean model is the MMRM's (`mmrm.build_mmrm_design`):

    y_ij = time_j + IMR_i x (arm:time)_j + baseline_i x (baseline:time)_j + covariates_i' gamma + u_i + e_ij,
    u_i ~ N(0, tau^2),  e_ij ~ N(0, sigma^2),

i.e. compound symmetry (one variance, one covariance shared by both visits) instead of an unrestricted 2 x 2
covariance. Fitted by REML (Harville 1977; Pinheiro & Bates 2000, sec. 2.2): sigma^2 and beta profiled out in
closed form, the REML log-likelihood is a function of the variance ratio gamma = tau^2 / sigma^2 alone, and
with V_i / sigma^2 = I + gamma J (Sherman-Morrison) every piece is a sum over participants; its maximum is
found by a grid over rho = gamma / (1 + gamma) in [0, 1) and Brent's bounded search in the bracketing cell
(`fit_random_intercept_reml`), so the fit reaches the maximum to the precision of the likelihood itself
(lme4's tight fit within ~3e-8). R's equivalent: ``nlme::lme(y ~ 0 + time + time:arm + time:baseline + covariates,
random = ~ 1 | id, method = "REML")`` with ``emmeans`` contrasts (tests/validation/r/trial_lmm.R).

Choices:

* **Fixed-effect covariance.** ``(X' V^-1 X)^-1`` at the REML variance components (V_i = sigma^2 I +
  tau^2 J), the GLS covariance that nlme's ``vcov`` reports (Pinheiro & Bates 2000, sec. 2.2.3), computed in
  closed form from the variance components (not the inverse of the joint observed Hessian of the fixed effects
  and the variance parameters, which statsmodels' ``bse_fe`` reports and which differs by up to 0.3% on GAF-F).
* **Degrees of freedom.** nlme's between-within ("containment") df (Pinheiro & Bates 2000, sec. 2.4.2;
  ``nlme:::getFixDF``), which emmeans uses for lme fits: a column that varies within some participant is a
  within-participant term with N - n - (number of within columns) df (+ 1 when the model has no intercept
  column, as here), the others have n - (number of between columns). The IMR - TAU contrast at a visit is a
  within term. Satterthwaite df are not computed.
* **Boundary.** A random-intercept variance below 1e-6 of the total variance is reported as at the
  boundary 0 (the model then reduces to ordinary least squares with this mean model); the fit is flagged,
  not dropped. A fit whose profile score at the solution is not 0 (or, at the boundary, points outward) is
  kept with ``converged = False`` and a NOT CONVERGED note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import optimize

from imrstats.errors import AnalysisError
from imrstats.results import Estimate, ResultMixin, confint_t, summary_block, to_frame
from imrstats.trial.design import (
    DEFAULT_COVARIATES,
    DEFAULT_DESIGN,
    StudyDesign,
    analysable_rows,
    long_format,
    mmrm_design,
)

BOUNDARY_FRACTION = 1e-6
_MAXITER = 500  # Brent's bounded search on the profile (it needs ~30 evaluations)
_GRID = 64  # cells of the bracketing grid over rho = gamma / (1 + gamma)


@dataclass(frozen=True)
class RandomInterceptResult(ResultMixin):
    """A fitted random-intercept LMM of one outcome: IMR - TAU per visit (``contrasts``), all fixed effects,
    the variance components and the fit's state (``converged``, ``boundary``; ``notes`` says why)."""

    outcome: str
    contrasts: pd.DataFrame
    fixed_effects: pd.DataFrame
    random_intercept_variance: float
    residual_variance: float
    reml_loglik: float
    converged: bool
    boundary: bool
    n_participants: int
    n_observations: int
    method: str
    notes: str

    @property
    def icc(self) -> float:
        """Intra-participant correlation tau^2 / (tau^2 + sigma^2): the correlation of a participant's visits."""
        return self.random_intercept_variance / (self.random_intercept_variance + self.residual_variance)

    @property
    def variance_components(self) -> pd.DataFrame:
        rows = [
            Estimate("random-intercept variance (tau^2)", self.random_intercept_variance, method=self.method),
            Estimate("residual variance (sigma^2)", self.residual_variance, method=self.method),
            Estimate("intra-participant correlation", self.icc, method=self.method),
        ]
        return to_frame(rows).assign(outcome=self.outcome)

    def _json_extra(self) -> dict:
        return {"icc": self.icc}

    def to_frame(self) -> pd.DataFrame:
        """The IMR - TAU contrasts per visit, then the variance components."""
        return pd.concat([self.contrasts, self.variance_components], ignore_index=True)

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """t-based CIs (Satterthwaite df) at ``level`` for the contrasts and the fixed effects."""
        return confint_t(pd.concat([self.contrasts, self.fixed_effects], ignore_index=True), level)

    def summary(self) -> str:
        """The model, n, the fit state, the variance components and the contrasts."""
        return summary_block(
            f"Random-intercept LMM of {self.outcome or 'the outcome'}",
            [
                ("participants / observations", f"{self.n_participants} / {self.n_observations}"),
                ("converged", self.converged),
                ("boundary", self.boundary),
                ("REML log-likelihood", f"{self.reml_loglik:.4f}"),
                (
                    "tau^2 / sigma^2 / ICC",
                    f"{self.random_intercept_variance:.4f} / {self.residual_variance:.4f} / {self.icc:.4f}",
                ),
            ],
            self.contrasts,
            [f"Method: {self.method}", self.notes],
        )


def random_intercept_lmm(
    frame: pd.DataFrame,
    *,
    outcome: str = "",
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    level: float = 0.95,
    design: StudyDesign = DEFAULT_DESIGN,
) -> RandomInterceptResult:
    """Fit the random-intercept LMM (see the module docstring) to one outcome frame (`trial.outcome_frame`)
    and return intervention - control per visit of ``design`` with SE, CI at ``level``, nlme between-within df
    and t test; the baseline slope per visit or common, as ``design.baseline_slope`` says (the MMRM's mean model).

    Raises AnalysisError when nothing is estimable: no observed post-baseline value, one visit only (tau^2
    and sigma^2 are then not separately identifiable) or a collinear design. A visit at which one arm has no
    observation keeps its row with NaN numbers and a note; the other visit is still estimated."""
    if not 0 < level < 1:
        raise AnalysisError(f"level must be in (0, 1), got {level!r}")
    long, n_dropped = observed_long_format(frame, covariates, design)
    times = tuple(t for t in design.visits if (long["time"] == t).any())
    notes = [f"{n_dropped} participant(s) without arm or complete covariates not analysed"] if n_dropped else []
    if len(times) < 2 or not long["id"].duplicated().any():
        raise AnalysisError(
            "the random-intercept model needs participants observed at two visits: with one "
            f"observation per participant (visits observed: {list(times)}) the random-intercept and "
            "residual variances are not separately identifiable; report the complete-case ANCOVA"
        )
    X, names, y, groups = _observed_design(long, covariates, times, design)
    fit = fit_random_intercept_reml(y, X, groups)
    notes += fit["notes"]
    tau2, sigma2 = fit["tau2"], fit["sigma2"]
    boundary = tau2 < BOUNDARY_FRACTION * (tau2 + sigma2)
    if boundary:
        notes.append(
            "random-intercept variance at the boundary 0 (singular fit): the model reduces to OLS with "
            "this mean model; the visits' correlation is estimated as 0"
        )
    cov = _gls_covariance(X, groups, tau2, sigma2)
    df = between_within_df(X, groups)
    method = (
        "REML random-intercept LMM (profile REML, Brent; 0 + time + arm:time + "
        + ("baseline:time" if design.baseline_slope == "separate" else "baseline")
        + "".join(f" + {c}" for c in covariates)
        + "), observed data; GLS covariance; nlme between-within df"
    )
    note = "; ".join(notes)
    fixed = [
        Estimate.from_t(
            names[j], fit["beta"][j], math.sqrt(cov[j, j]), df[j], level, method, notes=note, extra={"term": names[j]}
        )
        for j in range(len(names))
    ]
    contrasts = [
        _contrast_row(
            t,
            long,
            names,
            fit,
            cov,
            df,
            level,
            method,
            note,
            {"outcome": outcome, "converged": bool(fit["converged"]), "boundary": bool(boundary)},
            design,
        )
        for t in design.visits
    ]
    return RandomInterceptResult(
        outcome=outcome,
        contrasts=to_frame(contrasts),
        fixed_effects=to_frame(fixed),
        random_intercept_variance=tau2,
        residual_variance=sigma2,
        reml_loglik=fit["llf"],
        converged=fit["converged"],
        boundary=bool(boundary),
        n_participants=int(len(np.unique(groups))),
        n_observations=int(len(y)),
        method=method,
        notes=note,
    )


def observed_long_format(
    frame: pd.DataFrame, covariates: Sequence[str], design: StudyDesign = DEFAULT_DESIGN
) -> tuple[pd.DataFrame, int]:
    """Long rows (participant x visit) with an observed outcome, for participants with an observed baseline."""
    rows, n_dropped = analysable_rows(frame, covariates, design)
    rows = rows.loc[rows["baseline"].notna()].reset_index(drop=True)
    long = long_format(rows, covariates, rows["baseline"].to_numpy(dtype=float), design=design)
    long["y"] = rows[list(design.visits)].to_numpy(dtype=float).reshape(-1)
    long = long.loc[long["y"].notna()].reset_index(drop=True)
    if long.empty:
        raise AnalysisError(
            "no observed post-baseline value in a participant with an observed baseline: the "
            "random-intercept model has no data"
        )
    return long, n_dropped


def _observed_design(long: pd.DataFrame, covariates: Sequence[str], times: tuple, study: StudyDesign = DEFAULT_DESIGN):
    """The MMRM's fixed-effects columns (`trial.design.mmrm_design`) on the observed rows, the outcome and the
    participant index. A visit where one arm has no observation loses its arm:time column (0, or equal to
    time[t]): that contrast is not estimable, the rest of the model is."""
    design = mmrm_design(long, covariates, study, times=times)
    cells = np.flatnonzero(design.present.reshape(-1))
    X_all = design.X.reshape(-1, design.X.shape[2])[cells]
    y = design.outcome_grid(long["y"].to_numpy()).reshape(-1)[cells]
    groups = np.repeat(np.arange(len(design.ids)), len(times))[cells]
    one_arm = {
        f"arm[{study.intervention}]:time[{t}]"
        for t in times
        if long.loc[long["time"] == t, "arm"].nunique() < len(study.arms)
    }
    keep = (np.abs(X_all).sum(axis=0) > 0) & np.array([c not in one_arm for c in design.columns])
    X, names = X_all[:, keep], [c for c, k in zip(design.columns, keep) if k]
    if np.linalg.matrix_rank(X) < X.shape[1] or len(y) - X.shape[1] < 1:
        raise AnalysisError(
            f"the random-intercept model's design is collinear or too small ({len(y)} observations, "
            f"{X.shape[1]} fixed effects): drop a covariate or skip this analysis"
        )
    return X, names, y, groups


def _contrast_row(t, long, names, fit, cov, df, level, method, note, extra, design=DEFAULT_DESIGN) -> Estimate:
    """Intervention - control at visit t (the arm[<intervention>]:time[t] coefficient), or a NaN row saying why
    it is not estimable."""
    at = long["time"] == t
    extra = {
        **extra,
        "timepoint": t,
        **{f"n_{design.arm_key(a)}": int((at & (long["arm"] == a)).sum()) for a in design.arms},
    }
    name = f"arm[{design.intervention}]:time[{t}]"
    quantity = f"{design.contrast_label} at {design.visit_label(t)}"
    if name in names:
        j = names.index(name)
        return Estimate.from_t(
            quantity, fit["beta"][j], math.sqrt(cov[j, j]), df[j], level, method, notes=note, extra=extra
        )
    absent = [a for a in design.arms if not (at & (long["arm"] == a)).any()]
    return Estimate(
        quantity,
        math.nan,
        method=method,
        extra=extra,
        notes=f"not estimable: no observed {' or '.join(absent)} value at {t}" + (f"; {note}" if note else ""),
    )


def _profile_m2ll(gamma: float, pieces: dict) -> tuple[float, np.ndarray, float]:
    """-2 x the REML log-likelihood profiled over beta and sigma^2 at gamma = tau^2 / sigma^2, with its beta and
    sigma^2. W_i = (V_i / sigma^2)^-1 = I - c_i J, c_i = gamma / (1 + n_i gamma); the constant is nlme's and
    statsmodels' ((N - p) log 2 pi; no log|X'X| term)."""
    n, sx, sy = pieces["n"], pieces["sx"], pieces["sy"]
    N, p = pieces["N"], pieces["p"]
    c = gamma / (1.0 + n * gamma)
    A = pieces["XtX"] - (sx * c[:, None]).T @ sx  # X' W X
    b = pieces["Xty"] - (sx * c[:, None]).T @ sy  # X' W y
    chol = np.linalg.cholesky(A)
    beta = np.linalg.solve(A, b)
    quad = pieces["yty"] - float(np.sum(c * sy * sy)) - float(beta @ b)  # (y - X beta)' W (y - X beta)
    sigma2 = quad / (N - p)
    m2ll = (
        (N - p) * math.log(2 * math.pi * sigma2)
        + float(np.sum(np.log1p(n * gamma)))
        + 2.0 * float(np.sum(np.log(np.diag(chol))))
        + (N - p)
    )
    return m2ll, beta, sigma2


def _profile_score(gamma: float, pieces: dict) -> float:
    """d(-2 x profile REML log-likelihood) / d gamma, analytic: (N - p) q'/q + sum_i n_i / (1 + n_i gamma)
    - tr(A^-1 sum_i s_i s_i' / (1 + n_i gamma)^2), where q is the weighted residual sum of squares at the GLS
    beta, q' = -sum_i (1' r_i)^2 / (1 + n_i gamma)^2, A = X' W X and s_i = X_i' 1 (W_i 1 = 1 / (1 + n_i gamma))."""
    n, sx, sy = pieces["n"], pieces["sx"], pieces["sy"]
    c = gamma / (1.0 + n * gamma)
    A = pieces["XtX"] - (sx * c[:, None]).T @ sx
    b = pieces["Xty"] - (sx * c[:, None]).T @ sy
    beta = np.linalg.solve(A, b)
    quad = pieces["yty"] - float(np.sum(c * sy * sy)) - float(beta @ b)
    d = 1.0 / (1.0 + n * gamma) ** 2
    dquad = -float(np.sum(d * (sy - sx @ beta) ** 2))
    dlogdet_a = -float(np.sum(np.linalg.solve(A, (sx * d[:, None]).T @ sx).diagonal()))
    return (pieces["N"] - pieces["p"]) * dquad / quad + float(np.sum(n / (1.0 + n * gamma))) + dlogdet_a


def fit_random_intercept_reml(y: np.ndarray, X: np.ndarray, groups: np.ndarray) -> dict:
    """REML fit of y = X beta + u_group + e (u ~ N(0, tau^2), e ~ N(0, sigma^2)), profiled over beta and
    sigma^2: the maximum in gamma = tau^2 / sigma^2 is the root of the analytic profile score (`_profile_score`),
    bracketed on a grid over rho = gamma / (1 + gamma) in [0, 1) and found by Brent's root finder to machine
    precision (a search on the likelihood's value alone stops ~1e-7 short: the surface is that flat); gamma = 0
    (the boundary) when the score is already non-negative there. The solution is kept only if the likelihood
    there is the grid's best; otherwise ``converged`` is False with a NOT CONVERGED note.
    Returns beta, tau2, sigma2, llf (the REML log-likelihood), converged, notes."""
    _, index, counts = np.unique(groups, return_inverse=True, return_counts=True)
    sx = np.zeros((len(counts), X.shape[1]))
    np.add.at(sx, index, X)
    sy = np.zeros(len(counts))
    np.add.at(sy, index, y)
    N, p = X.shape
    if N <= p:
        raise AnalysisError(f"the random-intercept model has {N} observations for {p} fixed effects")
    pieces = {"n": counts.astype(float), "sx": sx, "sy": sy, "N": N, "p": p, "XtX": X.T @ X, "Xty": X.T @ y}
    pieces["yty"] = float(y @ y)

    def m2ll(rho: float) -> float:
        try:
            return _profile_m2ll(rho / (1.0 - rho), pieces)[0]
        except np.linalg.LinAlgError:
            return math.inf

    def score(rho: float) -> float:  # the sign of d(-2ll)/d rho is that of d(-2ll)/d gamma
        return _profile_score(rho / (1.0 - rho), pieces)

    grid = np.linspace(0.0, 1.0 - 1e-9, _GRID + 1)
    values = np.array([m2ll(r) for r in grid])
    if not np.isfinite(values).any():
        raise AnalysisError("the random-intercept model's design is singular (X' V^-1 X not invertible)")
    i = int(np.nanargmin(values))
    notes: list[str] = []
    converged = True
    if i == 0 and score(0.0) >= 0:
        rho = 0.0  # the likelihood falls away from the boundary: the maximum is at tau^2 = 0
    else:
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, _GRID)]
        if not score(lo) < 0 < score(hi):
            lo, hi = (lo, grid[i]) if score(grid[i]) > 0 else (grid[i], hi)
        try:
            rho = float(optimize.brentq(score, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=_MAXITER))
        except (ValueError, RuntimeError) as err:
            rho, converged = float(grid[i]), False
            notes.append(f"NOT CONVERGED: the REML profile score has no root found near the grid's best ({err})")
        if converged and m2ll(rho) > values[i] + 1e-9 * abs(values[i]):
            rho, converged = float(grid[i]), False
            notes.append("NOT CONVERGED: the root of the REML profile score is not the likelihood's maximum")
    gamma = rho / (1.0 - rho)
    total, beta, sigma2 = _profile_m2ll(gamma, pieces)
    converged = converged and sigma2 > 0 and math.isfinite(total)
    return {
        "beta": beta,
        "tau2": gamma * sigma2,
        "sigma2": sigma2,
        "llf": -0.5 * total,
        "converged": converged,
        "notes": notes,
    }


def _gls_covariance(X: np.ndarray, groups: np.ndarray, tau2: float, sigma2: float) -> np.ndarray:
    """(X' V^-1 X)^-1 for V_i = sigma^2 I + tau^2 J: V_i^-1 = (I - c_i J) / sigma^2, c_i = tau^2 / (sigma^2 +
    n_i tau^2) (Sherman-Morrison), so X' V^-1 X = (X'X - sum_i c_i s_i s_i') / sigma^2 with s_i = X_i' 1."""
    _, index, counts = np.unique(groups, return_inverse=True, return_counts=True)
    sums = np.zeros((len(counts), X.shape[1]))
    np.add.at(sums, index, X)
    c = tau2 / (sigma2 + counts * tau2)
    info = (X.T @ X - (sums * c[:, None]).T @ sums) / sigma2
    return np.linalg.inv(info)


def between_within_df(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """nlme's between-within df per column (``nlme:::getFixDF`` for one grouping level): a column that varies
    within some group is estimated in the residual stratum (N - n - its column count, + 1 without an
    intercept column), the others in the group stratum (n - its column count, - 1 with an intercept)."""
    order = np.argsort(groups, kind="stable")
    g, Xs = groups[order], X[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    varies = (np.maximum.reduceat(Xs, starts) != np.minimum.reduceat(Xs, starts)).any(axis=0)
    constant = (X == X[0]).all(axis=0)
    within, between = varies & ~constant, ~varies & ~constant
    n_obs, n_groups = len(groups), len(starts)
    df_between, df_within = n_groups - between.sum(), n_obs - n_groups - within.sum()
    if constant.any():
        df_between -= 1
    else:
        df_within += 1
    return np.where(within, df_within, np.where(between, df_between, max(df_between, df_within))).astype(float)
