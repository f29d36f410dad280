"""Dependent effect sizes: the three-level random-effects model and cluster-robust (CR2) inference.

When one study reports several effects (outcomes, raters, timepoints), the effects share the study's
participants and the study's true effect, so they are not independent. ``rma_mv`` fits the multilevel
(three-level) model of Konstantopoulos (2011, Research Synthesis Methods 2(1):61-76) as metafor's
``rma.mv(yi, vi, mods = ~ ..., random = ~ 1 | study/effect)`` fits it:

    y_ij = x_ij' beta + u_i + w_ij + e_ij,   u_i ~ N(0, sigma^2_study),  w_ij ~ N(0, sigma^2_effect),
    e_ij ~ N(0, v_ij)  (the known sampling variances)

with the variance components by REML (default) or ML, maximised on the log scale with scipy (as metafor
maximises on the log scale with ``nlminb``) and then polished by Newton steps on the exact score and
Hessian so that the numbers sit at the optimum itself, not where an optimiser's tolerance stopped. The
fixed effects have model-based standard errors, Wald z tests and normal CIs (metafor's default
``test = "z"``), with Cochran's Q_E for residual heterogeneity and Q_M for the moderators.

The model-based SEs are right only if the working model is right (in particular, it assumes the sampling
errors of effects from one study are independent, which they rarely are). ``robust_cr2`` adds
cluster-robust inference by study: the CR2 bias-reduced sandwich of Bell & McCaffrey (2002, Survey
Methodology 28(2):169-181) with the small-sample Satterthwaite degrees of freedom of Tipton (2015,
Psychological Methods 20(3):375-393) and Tipton & Pustejovsky (2015, J Educ Behav Stat 40(6):604-634), as
R's clubSandwich computes it with
``coef_test(fit, vcov = "CR2", cluster = study)`` (working model = the fitted marginal variance), so
the tests stay valid when the working model is wrong. With few studies, or with Satterthwaite df below
4, these tests are themselves unreliable (Tipton 2015) and the result says so.

``multilevel_inputs`` turns a table with several rows per study into the inputs, and names how many
studies and effects entered.

Departures from metafor, on purpose: missing values raise an error instead of being dropped; a data set in
which every study contributes one effect raises an ``AnalysisError`` (the two variance components cannot
be told apart there; metafor fits and reports an arbitrary split); a variance component at the boundary is
reported as exactly 0 (metafor reports the tiny value where its optimiser stopped); the CR2 adjustment's
inverse square root drops eigenvalues below 1e-12 x the largest (clubSandwich: below 1e-12 absolute), which
matters only for a degenerate cluster. The marginal variance is held as a dense k x k matrix: fine for the
hundreds of effects of a meta-analysis, not for tens of thousands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import linalg, optimize, stats

from imrstats.errors import AnalysisError, InputError
from imrstats.results import Estimate, ResultMixin, summary_block, to_frame

METHODS = ("REML", "ML")
_COMPONENTS = ("sigma^2 (between studies)", "sigma^2 (between effects within studies)")
_NEWTON_MAXITER = 100
_SCORE_TOL = 1e-9  # |d loglik / d log sigma^2| at the reported optimum
_DF_CAUTION = 4.0  # Tipton (2015): Satterthwaite df below 4 -> the CR2 test is unreliable


# ---------------------------------------------------------------------------------------------
# Inputs


def _as_labels(values, name: str, k: int) -> list[str]:
    if isinstance(values, pd.Series):
        values = values.tolist()
    labels = list(values)
    if len(labels) != k:
        raise AnalysisError(f"{name} has {len(labels)} entries for {k} effects.")
    missing = [i for i, value in enumerate(labels) if value is None or (isinstance(value, float) and math.isnan(value))]
    if missing:
        raise AnalysisError(f"{name} is missing for effects {', '.join(str(i + 1) for i in missing)}.")
    return [str(value) for value in labels]


def _moderator_matrix(mods, k: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """The design matrix [1, mods] and its column names (``intercept`` first, as metafor's ``intrcpt``)."""
    if mods is None:
        return np.ones((k, 1)), ("intercept",)
    if isinstance(mods, pd.Series):
        frame = mods.to_frame(name=mods.name if mods.name is not None else "mod")
    elif isinstance(mods, pd.DataFrame):
        frame = mods
    else:
        array = np.asarray(mods, dtype=float)
        if array.ndim == 1:
            array = array[:, None]
        names = ["mod"] if array.shape[1] == 1 else [f"mod{j + 1}" for j in range(array.shape[1])]
        frame = pd.DataFrame(array, columns=names)
    if len(frame) != k:
        raise AnalysisError(f"mods has {len(frame)} rows for {k} effects.")
    try:
        values = frame.to_numpy(dtype=float)
    except (TypeError, ValueError) as error:
        raise AnalysisError(f"mods must be numeric (code categories as 0/1 columns): {error}") from error
    if not np.all(np.isfinite(values)):
        rows = np.flatnonzero(~np.all(np.isfinite(values), axis=1))
        raise AnalysisError(f"mods missing or infinite for effects {', '.join(str(i + 1) for i in rows)}.")
    X = np.column_stack([np.ones(k), values])
    names = ("intercept",) + tuple(str(c) for c in frame.columns)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise AnalysisError(
            f"The model matrix ({', '.join(names)}) is not of full rank: a moderator is constant or a combination "
            "of the others."
        )
    return X, names


@dataclass(frozen=True)
class _Design:
    y: np.ndarray
    v: np.ndarray
    X: np.ndarray  # centred and scaled moderators (the likelihood is invariant; P is computed stably)
    T: np.ndarray  # coefficients on the caller's scale: beta = T beta_scaled, vb = T vb_scaled T'
    study_codes: np.ndarray  # integer code per effect, studies in order of first appearance
    study_levels: tuple[str, ...]
    effect_codes: np.ndarray  # integer code per distinct (study, effect) pair
    n_effect_levels: int
    D: tuple[np.ndarray, ...]  # Z Z' for the estimated components
    free: tuple[bool, bool]  # which of (study, effect) is estimated


def _design(y, v, X, study: list[str], effect: list[str]) -> tuple[_Design, list[str]]:
    notes: list[str] = []
    study_levels = tuple(dict.fromkeys(study))
    study_codes = np.array([study_levels.index(s) for s in study])
    pairs = list(zip(study, effect))
    pair_levels = list(dict.fromkeys(pairs))
    effect_codes = np.array([pair_levels.index(p) for p in pairs])
    n_s, n_e, k = len(study_levels), len(pair_levels), len(study)
    if n_e == n_s:
        raise AnalysisError(
            f"Every study contributes a single effect ({n_s} studies, {n_e} effects): the between-study and "
            "within-study variances cannot be told apart. Use the two-level model (imrstats.meta.random_effects.rma)."
        )
    if n_e < k:
        notes.append(
            f"{k - n_e} row(s) share a (study, effect) label with another row and so share that effect's random "
            "effect (as rma.mv does for repeated levels)"
        )
    study_free = n_s > 1
    if not study_free:
        notes.append(
            "one study only: sigma^2 between studies cannot be estimated and is fixed at 0 (metafor does the same); "
            "the model describes effects within that one study and generalises to no other study"
        )
    Zs = (study_codes[:, None] == np.arange(n_s)[None, :]).astype(float)
    Ze = (effect_codes[:, None] == np.arange(n_e)[None, :]).astype(float)
    D = tuple(m for m, f in ((Zs @ Zs.T, study_free), (Ze @ Ze.T, True)) if f)
    p = X.shape[1]
    T = np.eye(p)
    if p > 1:
        centre, spread = X[:, 1:].mean(axis=0), X[:, 1:].std(axis=0)
        T[0, 1:] = -centre / spread
        T[1:, 1:] = np.diag(1.0 / spread)
    return _Design(y, v, X @ T, T, study_codes, study_levels, effect_codes, n_e, D, (study_free, True)), notes


# ---------------------------------------------------------------------------------------------
# The likelihood, its score and Hessian in the variance components


@dataclass(frozen=True)
class _Eval:
    loglik: float
    beta: np.ndarray
    vb: np.ndarray
    M: np.ndarray
    Q: np.ndarray  # P (REML) or M^-1 (ML): the matrix in the trace terms
    P: np.ndarray
    Py: np.ndarray


def _evaluate(d: _Design, sigma2: np.ndarray, reml: bool) -> _Eval:
    """(Restricted) log-likelihood at ``sigma2`` with metafor's constants (REML includes + 1/2 log|X'X|)."""
    M = np.diag(d.v)
    for s, Dm in zip(sigma2, d.D):
        M = M + s * Dm
    chol = linalg.cho_factor(M, lower=True)
    Minv = linalg.cho_solve(chol, np.eye(M.shape[0]))
    logdet_M = 2.0 * float(np.sum(np.log(np.diag(chol[0]))))
    MiX = Minv @ d.X
    XtMiX = d.X.T @ MiX
    vb = np.linalg.inv(XtMiX)
    beta = vb @ (MiX.T @ d.y)
    resid = d.y - d.X @ beta
    Py = Minv @ resid
    rss = float(resid @ Py)
    P = Minv - MiX @ vb @ MiX.T
    k, p = d.X.shape
    if reml:
        ll = (
            -0.5 * (k - p) * math.log(2 * math.pi)
            + 0.5 * np.linalg.slogdet(d.X.T @ d.X)[1]
            - 0.5 * logdet_M
            - 0.5 * np.linalg.slogdet(XtMiX)[1]
            - 0.5 * rss
        )
        Q = P
    else:
        ll = -0.5 * k * math.log(2 * math.pi) - 0.5 * logdet_M - 0.5 * rss
        Q = Minv
    return _Eval(float(ll), beta, vb, M, Q, P, Py)


def _score(d: _Design, e: _Eval) -> np.ndarray:
    """d loglik / d sigma^2_c = -1/2 tr(Q D_c) + 1/2 (Py)' D_c (Py)."""
    return np.array([-0.5 * float(np.sum(e.Q * Dm)) + 0.5 * float(e.Py @ Dm @ e.Py) for Dm in d.D])


def _hessian(d: _Design, e: _Eval) -> np.ndarray:
    """d^2 loglik / d sigma^2_a d sigma^2_b = 1/2 tr(Q D_a Q D_b) - (Py)' D_a P D_b (Py)."""
    m = len(d.D)
    QD = [e.Q @ Dm for Dm in d.D]
    DPy = [Dm @ e.Py for Dm in d.D]
    H = np.empty((m, m))
    for a in range(m):
        for b in range(a, m):
            H[a, b] = H[b, a] = 0.5 * float(np.sum(QD[a] * QD[b].T)) - float(DPy[a] @ e.P @ DPy[b])
    return H


def _start(d: _Design) -> float:
    """metafor's starting value for each component: max(0.001 m, var(FE residuals) - 1 / mean(1/v)) / m."""
    w = 1.0 / d.v
    beta = np.linalg.solve(d.X.T @ (w[:, None] * d.X), d.X.T @ (w * d.y))
    m = len(d.D)
    total = max(0.001 * m, float(np.var(d.y - d.X @ beta, ddof=1)) - 1.0 / float(np.mean(w)))
    return total / m


def _maximise(d: _Design, reml: bool) -> tuple[np.ndarray, int, list[str]]:
    """The variance components at the (restricted) ML optimum: L-BFGS-B on log sigma^2 from metafor's start,
    then Newton steps on sigma^2 with the exact score and Hessian; a component whose optimum is on the
    boundary (the score at 0 points below 0) is set to exactly 0. Raises AnalysisError if it fails."""
    m = len(d.D)
    start = _start(d)
    scale = max(start, float(np.max(d.v)))
    log_lower, log_upper = math.log(scale * 1e-12), math.log(scale * 1e6)

    def objective(theta):
        sigma2 = np.exp(theta)
        try:
            e = _evaluate(d, sigma2, reml)
        except (np.linalg.LinAlgError, linalg.LinAlgError):
            return math.inf, np.zeros(m)
        return -e.loglik, -(sigma2 * _score(d, e))

    opt = optimize.minimize(
        objective,
        np.full(m, math.log(start)),
        jac=True,
        method="L-BFGS-B",
        bounds=[(log_lower, log_upper)] * m,
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000},
    )
    sigma2 = np.exp(opt.x)
    iterations = int(opt.nit)
    # components on (or drifting towards) the boundary: 0 is the optimum if the score there is <= 0
    at_zero = np.zeros(m, dtype=bool)
    for c in range(m):
        if sigma2[c] < scale * 1e-8:
            trial = sigma2.copy()
            trial[c] = 0.0
            if _score(d, _evaluate(d, trial, reml))[c] <= 0:
                sigma2, at_zero[c] = trial, True
    free = ~at_zero
    current = _evaluate(d, sigma2, reml)
    for _ in range(_NEWTON_MAXITER):
        if not free.any():
            break
        g = _score(d, current)[free]
        H = _hessian(d, current)[np.ix_(free, free)]
        try:
            step = -np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        if np.any(np.linalg.eigvalsh(H) >= 0):  # not concave here: a gradient step instead
            step = g * np.maximum(sigma2[free], scale * 1e-6)
        t = 1.0
        while True:
            proposal = sigma2.copy()
            proposal[free] = sigma2[free] + t * step
            if np.all(proposal >= 0):
                trial = _evaluate(d, proposal, reml)
                if trial.loglik >= current.loglik - 1e-12 * abs(current.loglik):
                    break
            t /= 2
            if t < 1e-10:
                proposal, trial = sigma2, current
                break
        change = np.max(np.abs(proposal - sigma2) / np.maximum(np.abs(proposal), scale * 1e-12))
        sigma2, current = proposal, trial
        iterations += 1
        if change < 1e-13:
            break
    g = _score(d, current)
    ok_free = np.all(
        np.abs(g[free] * np.maximum(sigma2[free], scale * 1e-12)) < _SCORE_TOL * max(1.0, abs(current.loglik))
    )
    ok_zero = np.all(g[at_zero] <= 1e-8 * max(1.0, abs(current.loglik)) / scale)
    if not (ok_free and ok_zero):
        raise AnalysisError(
            f"{'REML' if reml else 'ML'} estimation of the variance components did not converge (score {g.tolist()} "
            f"at sigma^2 = {sigma2.tolist()}); check the data for outliers or fewer effects per study."
        )
    notes = []
    labels = [name for name, f in zip(_COMPONENTS, d.free) if f]
    for c in np.flatnonzero(at_zero):
        notes.append(f"{labels[c]} estimated at the boundary 0")
    return sigma2, iterations, notes


# ---------------------------------------------------------------------------------------------
# The fitted model


@dataclass(frozen=True)
class MultilevelResult(ResultMixin):
    """A fitted three-level meta-analysis (metafor ``rma.mv(..., random = ~ 1 | study/effect)``).

    Per coefficient (``coef_names``, ``intercept`` first): ``beta``, model-based ``se``, Wald ``statistic``
    (z), ``p``, ``ci_low`` / ``ci_high``. ``sigma2_study`` / ``sigma2_effect``: the variance components
    (``sigma2_study_fixed`` when a single study forces it to 0). ``q_e`` (df k - p) is the test for
    residual heterogeneity; ``q_m`` (df p - 1) the Wald test of the moderators (NaN without moderators).
    ``loglik`` is the REML or ML log-likelihood (metafor's constants), with ``aic``, ``bic`` and ``aicc``.
    """

    yi: tuple[float, ...]
    vi: tuple[float, ...]
    study: tuple[str, ...]
    effect: tuple[str, ...]
    X: tuple[tuple[float, ...], ...]
    coef_names: tuple[str, ...]
    method: str
    level: float
    k: int
    n_studies: int
    n_effect_levels: int
    beta: tuple[float, ...]
    se: tuple[float, ...]
    statistic: tuple[float, ...]
    p: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    vb: tuple[tuple[float, ...], ...]
    sigma2_study: float
    sigma2_effect: float
    sigma2_study_fixed: bool
    q_e: float
    q_e_df: int
    q_e_p: float
    q_m: float
    q_m_df: int
    q_m_p: float
    loglik: float
    aic: float
    bic: float
    aicc: float
    iterations: int
    notes: tuple[str, ...] = field(default=())

    _json_skip = ("yi", "vi", "study", "effect", "X", "vb", "notes")

    def _json_extra(self) -> dict:
        return dict(notes=self.notes, method_label=self.method_label, estimates=self.estimates())

    @property
    def method_label(self) -> str:
        return (
            f"three-level random effects (effects within studies), variance components by {self.method}; "
            f"model-based SEs, Wald z ({self.k} effects in {self.n_studies} studies)"
        )

    @property
    def sigma2(self) -> tuple[float, float]:
        return (self.sigma2_study, self.sigma2_effect)

    def estimates(self) -> list[Estimate]:
        """Rows: one per coefficient, the two variance components, Q_E and (with moderators) Q_M."""
        notes = "; ".join(self.notes)
        extra = {"k": self.k, "n_studies": self.n_studies}
        rows = [
            Estimate(
                "pooled effect" if name == "intercept" and len(self.coef_names) == 1 else name,
                self.beta[j],
                self.se[j],
                self.ci_low[j],
                self.ci_high[j],
                math.nan,
                self.statistic[j],
                self.p[j],
                self.method_label,
                notes,
                {**extra, "term": name},
            )
            for j, name in enumerate(self.coef_names)
        ]
        levels = (self.n_studies, self.n_effect_levels)
        for name, value, n, fixed in zip(_COMPONENTS, self.sigma2, levels, (self.sigma2_study_fixed, False)):
            rows.append(
                Estimate(
                    name,
                    value,
                    method="fixed at 0 (single level)" if fixed else f"{self.method} estimate",
                    notes=notes,
                    extra={**extra, "levels": n},
                )
            )
        rows.append(
            Estimate(
                "Q_E (residual heterogeneity)",
                self.q_e,
                df=float(self.q_e_df),
                statistic=self.q_e,
                p=self.q_e_p,
                method=f"Cochran's Q with sampling variances only, chi-square({self.q_e_df})",
                notes=notes,
                extra=extra,
            )
        )
        if len(self.coef_names) > 1:
            rows.append(
                Estimate(
                    "Q_M (test of moderators)",
                    self.q_m,
                    df=float(self.q_m_df),
                    statistic=self.q_m,
                    p=self.q_m_p,
                    method=f"Wald chi-square({self.q_m_df}) on the coefficients other than the intercept",
                    notes=notes,
                    extra=extra,
                )
            )
        return rows

    def to_frame(self) -> pd.DataFrame:
        return to_frame(self.estimates())

    def robust(self) -> "RobustResult":
        """Cluster-robust CR2 tests by study (``robust_cr2``)."""
        return robust_cr2(self)

    def summary(self) -> str:
        facts = [
            ("effects (k)", self.k),
            ("studies", self.n_studies),
            ("distinct effects within studies", self.n_effect_levels),
            (f"log-likelihood ({self.method})", f"{self.loglik:.4f}"),
            ("Q_E", f"{self.q_e:.4f} (df = {self.q_e_df}, p = {self.q_e_p:.4g})"),
        ]
        return summary_block(
            f"Multilevel meta-analysis ({self.method}): effects nested in studies", facts, self.to_frame(), self.notes
        )


def rma_mv(
    yi: Sequence[float],
    vi: Sequence[float],
    study: Sequence,
    effect: Sequence | None = None,
    mods=None,
    method: str = "REML",
    level: float = 0.95,
) -> MultilevelResult:
    """Three-level meta-analysis of dependent effects, as metafor's
    ``rma.mv(yi, vi, mods = ~ mods, random = ~ 1 | study/effect, method = method)``.

    ``study`` labels the study of each effect; ``effect`` labels the effect within its study (rows with
    the same study and effect label share the effect-level random effect; ``None``: every row is its own
    effect). ``mods``: None (intercept only), a numeric vector, 2-D array or data frame of moderators
    (an intercept is always added; categories as 0/1 columns). ``method``: "REML" (default) or "ML".
    Missing values raise ``AnalysisError``; so does a data set where every study gives one effect.
    """
    method = str(method).upper()
    if method not in METHODS:
        raise AnalysisError(f"Unknown method {method!r} for rma_mv; use one of {METHODS}.")
    if not 0 < level < 1:
        raise AnalysisError(f"level is a coverage probability in (0, 1), e.g. 0.95; got {level!r}.")
    y = np.asarray(yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    k = y.size
    if v.size != k:
        raise AnalysisError(f"yi and vi differ in length ({k} vs {v.size}).")
    if k == 0:
        raise AnalysisError("No effects to pool (k = 0).")
    bad = ~(np.isfinite(y) & np.isfinite(v))
    if bad.any():
        raise AnalysisError(
            f"yi / vi missing or infinite for effects {', '.join(str(i + 1) for i in np.flatnonzero(bad))}."
        )
    if np.any(v <= 0):
        raise AnalysisError(
            "Sampling variances must be > 0; effects "
            f"{', '.join(str(i + 1) for i in np.flatnonzero(v <= 0))} have vi <= 0."
        )
    studies = _as_labels(study, "study", k)
    effects = _as_labels(effect, "effect", k) if effect is not None else [str(i) for i in range(k)]
    X, names = _moderator_matrix(mods, k)
    p = X.shape[1]
    if k <= p:
        raise AnalysisError(f"{k} effects cannot estimate {p} coefficients and the variance components (need k > p).")
    d, notes = _design(y, v, X, studies, effects)
    reml = method == "REML"
    sigma2, iterations, fit_notes = _maximise(d, reml)
    notes += fit_notes
    e = _evaluate(d, sigma2, reml)
    beta = d.T @ e.beta
    vb = d.T @ e.vb @ d.T.T
    se = np.sqrt(np.diag(vb))
    z = beta / se
    crit = float(stats.norm.isf((1 - level) / 2))
    pvals = 2 * stats.norm.sf(np.abs(z))
    # Q_E: weighted residual sum of squares of the equal-effects model (sampling variances only)
    w = 1.0 / v
    beta_fe = np.linalg.solve(d.X.T @ (w[:, None] * d.X), d.X.T @ (w * y))
    q_e = float(np.sum(w * (y - d.X @ beta_fe) ** 2))
    if p > 1:
        idx = np.arange(1, p)
        q_m = float(beta[idx] @ np.linalg.solve(vb[np.ix_(idx, idx)], beta[idx]))
        q_m_p = float(stats.chi2.sf(q_m, p - 1))
    else:
        q_m, q_m_p = math.nan, math.nan
    full = np.zeros(2)
    full[np.array(d.free)] = sigma2
    parms = p + len(d.D)
    n = k - p if reml else k
    ll = e.loglik
    if n > parms + 1:
        aicc = -2 * ll + 2 * parms * max(n, parms + 2) / (max(n, parms + 2) - parms - 1)
    else:
        aicc = math.nan
    return MultilevelResult(
        yi=tuple(y.tolist()),
        vi=tuple(v.tolist()),
        study=tuple(studies),
        effect=tuple(effects),
        X=tuple(tuple(row) for row in X.tolist()),
        coef_names=names,
        method=method,
        level=level,
        k=k,
        n_studies=len(d.study_levels),
        n_effect_levels=d.n_effect_levels,
        beta=tuple(beta.tolist()),
        se=tuple(se.tolist()),
        statistic=tuple(z.tolist()),
        p=tuple(pvals.tolist()),
        ci_low=tuple((beta - crit * se).tolist()),
        ci_high=tuple((beta + crit * se).tolist()),
        vb=tuple(tuple(row) for row in vb.tolist()),
        sigma2_study=float(full[0]),
        sigma2_effect=float(full[1]),
        sigma2_study_fixed=not d.free[0],
        q_e=q_e,
        q_e_df=k - p,
        q_e_p=float(stats.chi2.sf(q_e, k - p)),
        q_m=q_m,
        q_m_df=p - 1,
        q_m_p=q_m_p,
        loglik=ll,
        aic=-2 * ll + 2 * parms,
        bic=-2 * ll + parms * math.log(n),
        aicc=aicc,
        iterations=iterations,
        notes=tuple(notes),
    )


def _refit_design(res: MultilevelResult) -> tuple[_Design, _Eval]:
    d, _ = _design(np.asarray(res.yi), np.asarray(res.vi), np.asarray(res.X), list(res.study), list(res.effect))
    sigma2 = np.array([s for s, f in zip(res.sigma2, d.free) if f])
    return d, _evaluate(d, sigma2, res.method == "REML")


# ---------------------------------------------------------------------------------------------
# Cluster-robust inference: CR2 with Satterthwaite degrees of freedom


@dataclass(frozen=True)
class RobustResult(ResultMixin):
    """CR2 cluster-robust tests of a ``MultilevelResult``'s coefficients (clubSandwich ``coef_test`` with
    ``vcov = "CR2"`` and Satterthwaite df; ``conf_int`` for the CIs). Per coefficient: ``beta``, CR2
    ``se``, ``statistic`` (t), Satterthwaite ``df``, ``p``, ``ci_low`` / ``ci_high`` (t(df) quantiles);
    ``vcov`` is the CR2 covariance matrix; ``n_clusters`` the number of studies."""

    coef_names: tuple[str, ...]
    level: float
    n_clusters: int
    k: int
    beta: tuple[float, ...]
    se: tuple[float, ...]
    statistic: tuple[float, ...]
    df: tuple[float, ...]
    p: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    vcov: tuple[tuple[float, ...], ...]
    model_method: str
    notes: tuple[str, ...] = field(default=())

    _json_skip = ("notes",)

    def _json_extra(self) -> dict:
        return dict(notes=self.notes, method_label=self.method_label, estimates=self.estimates())

    @property
    def method_label(self) -> str:
        return (
            f"CR2 cluster-robust SE by study ({self.n_clusters} clusters), Satterthwaite t df "
            f"(Tipton & Pustejovsky 2015); working model: three-level {self.model_method} fit"
        )

    def estimates(self) -> list[Estimate]:
        notes = "; ".join(self.notes)
        return [
            Estimate(
                "pooled effect" if name == "intercept" and len(self.coef_names) == 1 else name,
                self.beta[j],
                self.se[j],
                self.ci_low[j],
                self.ci_high[j],
                self.df[j],
                self.statistic[j],
                self.p[j],
                self.method_label,
                notes,
                {"term": name, "k": self.k, "n_studies": self.n_clusters},
            )
            for j, name in enumerate(self.coef_names)
        ]

    def to_frame(self) -> pd.DataFrame:
        return to_frame(self.estimates())

    def summary(self) -> str:
        return summary_block(
            "Cluster-robust (CR2) tests with Satterthwaite degrees of freedom",
            [("effects (k)", self.k), ("clusters (studies)", self.n_clusters)],
            self.to_frame(),
            self.notes,
        )


def _inverse_sqrt_psd(G: np.ndarray) -> np.ndarray:
    """G^(-1/2) of a symmetric positive semi-definite matrix; directions with eigenvalue <= 1e-12 x the
    largest are left out (a generalised inverse square root, as the CR2 adjustment needs when a cluster's
    effects pin a coefficient exactly)."""
    values, vectors = np.linalg.eigh((G + G.T) / 2)
    cutoff = 1e-12 * max(float(values.max()), 0.0)
    inv_sqrt = np.where(values > cutoff, 1.0 / np.sqrt(np.clip(values, cutoff, None)), 0.0)
    return (vectors * inv_sqrt) @ vectors.T


def robust_cr2(res: MultilevelResult) -> RobustResult:
    """CR2 cluster-robust SEs, t tests with Satterthwaite df and CIs for the coefficients of ``res``,
    clustered by study (clubSandwich's ``coef_test(fit, vcov = "CR2", cluster = study)`` for an
    ``rma.mv`` fit with its default inverse-variance weights).

    With B = (X' M^-1 X)^-1 the model-based covariance, and for study j its rows X_j, the fitted marginal
    variance M_j = T_j' T_j (Cholesky) and residuals r_j = y_j - X_j beta:
    the adjustment A_j = T_j' [T_j (M_j - X_j B X_j') T_j']^(-1/2) T_j makes the sandwich exactly unbiased
    when the working model is true (A_j (M_j - X_j B X_j') A_j = M_j; Bell & McCaffrey 2002);
    V_CR2 = B [sum_j X_j' M_j^-1 A_j r_j r_j' A_j M_j^-1 X_j] B. The Satterthwaite df of coefficient c
    match the first two moments of its variance estimate under the working model (Tipton & Pustejovsky
    2015): with g_j = c' B X_j' M_j^-1 A_j T_j' and h_j = c' B X_j' M_j^-1 A_j X_j L (L L' = B), the
    J x J matrix Omega = diag(|g_j|^2) - [h_j . h_l] gives df = tr(Omega)^2 / sum(Omega^2).
    """
    if res.n_studies < 2:
        raise AnalysisError("Cluster-robust variance estimation needs at least 2 studies (clusters); there is 1.")
    d, e = _refit_design(res)
    # computed with the centred and scaled moderators (better conditioned); the contrasts for the caller's
    # coefficients are the rows of T (beta = T beta_scaled), and every quantity maps back exactly
    X, y, Tm = d.X, d.y, d.T
    B = e.vb
    resid = y - X @ e.beta
    p = X.shape[1]
    L = np.linalg.cholesky(B)
    J = len(d.study_levels)
    meat = np.zeros((p, p))
    g_rows: list[np.ndarray] = []  # per cluster: T B X_j' M_j^-1 A_j T_j'  (p x n_j)
    h_rows = np.empty((J, p, p))  # per cluster: T B X_j' M_j^-1 A_j X_j L  (p x p)
    for j in range(J):
        rows = np.flatnonzero(d.study_codes == j)
        Xj, Mj = X[rows], e.M[np.ix_(rows, rows)]
        U = np.linalg.cholesky(Mj).T  # upper: U' U = M_j
        G = U @ (Mj - Xj @ B @ Xj.T) @ U.T
        A = U.T @ _inverse_sqrt_psd(G) @ U
        E = np.linalg.solve(Mj, Xj).T @ A  # X_j' M_j^-1 A_j   (p x n_j)
        u = E @ resid[rows]
        meat += np.outer(u, u)
        TBE = Tm @ B @ E
        g_rows.append(TBE @ U.T)
        h_rows[j] = TBE @ Xj @ L
    V = Tm @ B @ meat @ B @ Tm.T
    se = np.sqrt(np.diag(V))
    beta = Tm @ e.beta
    t = beta / se
    df = np.empty(p)
    for c in range(p):
        h = h_rows[:, c, :]  # J x p
        omega = -h @ h.T
        omega[np.diag_indices(J)] += np.array([float(np.sum(g[c] ** 2)) for g in g_rows])
        df[c] = float(np.trace(omega)) ** 2 / float(np.sum(omega**2))
    pvals = 2 * stats.t.sf(np.abs(t), df)
    crit = stats.t.isf((1 - res.level) / 2, df)
    notes = []
    small = [name for name, value in zip(res.coef_names, df) if value < _DF_CAUTION]
    if small:
        notes.append(
            f"Satterthwaite df below {_DF_CAUTION:g} for {', '.join(small)}: the CR2 test may be unreliable "
            "(Tipton 2015); report it with caution"
        )
    if J < 10:
        notes.append(f"only {J} studies: cluster-robust inference with few clusters is imprecise")
    return RobustResult(
        coef_names=res.coef_names,
        level=res.level,
        n_clusters=J,
        k=res.k,
        beta=tuple(beta.tolist()),
        se=tuple(se.tolist()),
        statistic=tuple(t.tolist()),
        df=tuple(df.tolist()),
        p=tuple(pvals.tolist()),
        ci_low=tuple((beta - crit * se).tolist()),
        ci_high=tuple((beta + crit * se).tolist()),
        vcov=tuple(tuple(row) for row in V.tolist()),
        model_method=res.method,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------
# From a long table (several rows per study) to the model's inputs


@dataclass(frozen=True)
class MultilevelInputs:
    """What ``multilevel_inputs`` hands to ``rma_mv``: one entry per row of the table, in its order, and a
    ``note`` naming how many studies and effects entered (and that none was dropped)."""

    yi: tuple[float, ...]
    vi: tuple[float, ...]
    study: tuple[str, ...]
    effect: tuple[str, ...]
    mods: pd.DataFrame | None
    frame: pd.DataFrame
    n_studies: int
    k: int
    note: str

    def fit(self, method: str = "REML", level: float = 0.95) -> MultilevelResult:
        """``rma_mv`` on these inputs."""
        res = rma_mv(self.yi, self.vi, self.study, self.effect, self.mods, method=method, level=level)
        return _with_note(res, self.note)


def _with_note(res: MultilevelResult, note: str) -> MultilevelResult:
    return replace(res, notes=(note,) + res.notes)


def multilevel_inputs(
    table: pd.DataFrame,
    *,
    study: str = "study",
    effect: str | Sequence[str] | None = None,
    yi: str = "yi",
    vi: str = "vi",
    mods: Sequence[str] | None = None,
    source: str = "effects table",
) -> MultilevelInputs:
    """Inputs for ``rma_mv`` from a table with one row per effect and possibly several rows per study
    (outcomes, timepoints, raters), e.g. the rows of ``imrstats.meta.stage.effect_table`` the analyst chose.

    ``effect`` names the column(s) that label an effect within its study (joined with " / "; None: every
    row is its own effect); ``mods`` names numeric moderator columns. Every row enters: a row with a
    missing or non-positive ``vi``, a missing ``yi``, study or moderator raises ``InputError`` naming the row
    (its ``row`` column, the CSV line, when the table has one), the column, the value and the rule. Choose
    the rows before calling; nothing is dropped here. The ``note`` says how many effects from how many
    studies entered and how they spread over the studies."""
    effect_cols = [] if effect is None else ([effect] if isinstance(effect, str) else list(effect))
    needed = [study, yi, vi, *effect_cols, *(mods or [])]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}; multilevel_inputs needs {needed}.")
    if len(table) == 0:
        raise InputError(f"{source}: no rows: nothing to pool.")

    def where(i: int) -> str:
        if "row" in table.columns:
            return f"{source}, line {table['row'].iloc[i]}"
        return f"{source}, row {i + 1}"

    for col, rule, ok in (
        (study, "a study label is required", lambda s: s.notna() & (s.astype(str).str.strip() != "")),
        (yi, "yi must be a finite number", lambda s: np.isfinite(pd.to_numeric(s, errors="coerce"))),
        (
            vi,
            "vi must be a finite number > 0",
            lambda s: np.isfinite(pd.to_numeric(s, errors="coerce")) & pd.to_numeric(s, errors="coerce").gt(0),
        ),
    ):
        good = np.asarray(ok(table[col]), dtype=bool)
        if not good.all():
            i = int(np.flatnonzero(~good)[0])
            raise InputError(f"{where(i)}: column '{col}' = {table[col].iloc[i]!r}: {rule}.")
    for col in mods or []:
        values = pd.to_numeric(table[col], errors="coerce")
        good = np.isfinite(values.to_numpy(dtype=float))
        if not good.all():
            i = int(np.flatnonzero(~good)[0])
            raise InputError(
                f"{where(i)}: column '{col}' = {table[col].iloc[i]!r}: a moderator must be a finite number."
            )
    for col in effect_cols:
        good = table[col].notna().to_numpy()
        if not good.all():
            i = int(np.flatnonzero(~good)[0])
            raise InputError(f"{where(i)}: column '{col}' is empty: every effect needs its label.")
    studies = table[study].astype(str).tolist()
    if effect_cols:
        labels = [" / ".join(str(v) for v in values) for values in table[effect_cols].itertuples(index=False)]
    else:
        position: dict[str, int] = {}
        labels = []
        for s in studies:
            position[s] = position.get(s, 0) + 1
            labels.append(f"effect {position[s]}")
    counts = pd.Series(studies).value_counts(sort=False)
    k, n = len(studies), len(counts)
    several = counts[counts > 1]
    spread = ", ".join(f"{s}: {c}" for s, c in counts.items())
    note = (
        f"{k} effects from {n} studies entered ({spread}); {len(several)} studies contribute more than one effect; "
        "no row was dropped"
    )
    mod_frame = table[list(mods)].apply(pd.to_numeric).reset_index(drop=True) if mods else None
    keep = list(dict.fromkeys(["row", study, *effect_cols, yi, vi, *(mods or [])]))
    keep = [c for c in keep if c in table.columns]
    return MultilevelInputs(
        yi=tuple(pd.to_numeric(table[yi]).astype(float).tolist()),
        vi=tuple(pd.to_numeric(table[vi]).astype(float).tolist()),
        study=tuple(studies),
        effect=tuple(labels),
        mods=mod_frame,
        frame=table[keep].reset_index(drop=True),
        n_studies=n,
        k=k,
        note=note,
    )
