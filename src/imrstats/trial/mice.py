"""Multiple imputation by chained equations (MICE), run as a batch of m chains in numpy.

The algorithm is R's ``mice`` (van Buuren & Groothuis-Oudshoorn 2011, J Stat Softw 45(3); van
Buuren 2018, *Flexible Imputation of Missing Data*, 2nd ed., algorithms 3.1-3.3) restricted to
continuous targets:

* start: every missing cell is a random draw (with replacement) from the observed values of its
  column (``mice.impute.sample``);
* one iteration visits the targets in the given order; each target is regressed on an intercept,
  the predictors (categorical ones as treatment dummies, levels sorted as R's ``factor``) and the
  current values of all other targets, using the rows where the target is observed;
* ``norm`` (``mice.impute.norm``, Bayesian linear regression): sigma*^2 = RSS / chi^2(n_obs - p),
  beta* = beta-hat + sigma* R^{-1} z with X = QR, z ~ N(0, I) (so Cov = sigma*^2 (X'X)^{-1}), and
  imputations X_mis beta* + sigma* e, e ~ N(0, 1);
* ``pmm`` (``mice.impute.pmm``, type-1 matching): the same draw; observed rows are predicted with
  beta-hat, missing rows with beta*, and each missing row takes the observed value of one donor
  drawn at random among the ``donors`` observed rows with the closest predictions.

As in mice 3.x (``estimice``, ``ls.meth = "qr"``), the ridge penalty ``ridge * diag(X'X)`` is used
only when X'X is numerically singular; the result counts how often that happened. As in mice's
``remove.lindep``, a fixed predictor column that is (nearly) constant among the rows where a
target is observed (variance <= 1e-4) or correlates >= 0.99 with that target is left out of that
target's model (listed in ``dropped_predictors``).

The m chains are independent, so each step is done for all m chains at once on (m, n, p) arrays:
a batched QR, a batched triangular inverse, and (pmm) a batched sort plus a binary search per chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from imrstats.errors import AnalysisError
from imrstats.results import Estimate, ResultMixin, summary_block, to_frame

__all__ = ["ImputationResult", "impute_chained"]

_METHODS = ("pmm", "norm")
_EPS_VAR = 1e-4  # mice:::remove.lindep eps
_MAX_COR = 0.99  # mice:::remove.lindep maxcor
_RCOND_SINGULAR = np.finfo(float).eps  # R's solve() refuses X'X below this reciprocal condition


@dataclass(frozen=True)
class ImputationResult(ResultMixin):
    """m completed versions of the target columns plus convergence diagnostics.

    ``imputed`` is an (m, n, k) array of the k target columns (observed cells copied, missing
    cells imputed), in the row order of ``data``. ``chain_mean`` and ``chain_var`` are
    (k, maxit, m) arrays of the mean and variance (divisor n - 1) of the imputed cells of each
    target after each iteration in each chain, as mice's ``chainMean``/``chainVar``.
    """

    data: pd.DataFrame
    targets: tuple[str, ...]
    imputed: np.ndarray
    missing: np.ndarray
    chain_mean: np.ndarray
    chain_var: np.ndarray
    method: str
    m: int
    maxit: int
    donors: int
    seed: int | None
    design_columns: dict = field(default_factory=dict)
    dropped_predictors: dict = field(default_factory=dict)
    ridge_fallbacks: int = 0
    target_methods: dict = field(default_factory=dict)  # targets imputed by another method than ``method``

    def completed(self, i: int) -> pd.DataFrame:
        """The i-th completed data set (0-based): ``data`` with the targets filled in."""
        if not 0 <= i < self.m:
            raise AnalysisError(f"imputation index {i} is outside 0..{self.m - 1}.")
        frame = self.data.copy()
        for j, name in enumerate(self.targets):
            frame[name] = self.imputed[i, :, j]
        return frame

    def iter_completed(self) -> Iterator[pd.DataFrame]:
        """Yield the m completed data sets one at a time (memory stays at one copy)."""
        for i in range(self.m):
            yield self.completed(i)

    def chain_frame(self) -> pd.DataFrame:
        """Long frame target, iteration (1-based), imputation (1-based), mean, var for trace plots."""
        k, maxit, m = self.chain_mean.shape
        idx = pd.MultiIndex.from_product(
            [list(self.targets), range(1, maxit + 1), range(1, m + 1)],
            names=["target", "iteration", "imputation"],
        )
        return pd.DataFrame(
            {"mean": self.chain_mean.reshape(-1), "var": self.chain_var.reshape(-1)}, index=idx
        ).reset_index()

    def method_string(self) -> str:
        name = {
            "pmm": f"predictive mean matching (type 1, {self.donors} donors)",
            "norm": "Bayesian linear regression",
        }[self.method]
        return f"MICE, {name}; m = {self.m}, maxit = {self.maxit}, seed = {self.seed}"

    def to_frame(self) -> pd.DataFrame:
        """Per target: the mean of the imputed cells after the last iteration, averaged over the m chains
        (NaN with maxit = 0), with the number of missing cells."""
        return to_frame(
            [
                Estimate(
                    f"final chain mean of {t}",
                    float(self.chain_mean[j, -1, :].mean()) if self.maxit else float("nan"),
                    method=self.method_string(),
                    extra={"target": t, "n_missing": int(self.missing[:, j].sum())},
                )
                for j, t in enumerate(self.targets)
            ]
        )

    def summary(self) -> str:
        """The imputation method and settings, the rows, the missing cells and the final chain means."""
        return summary_block(
            self.method_string(),
            [
                ("rows", int(self.missing.shape[0])),
                (
                    "missing cells",
                    ", ".join(f"{t} {int(self.missing[:, j].sum())}" for j, t in enumerate(self.targets)),
                ),
                ("ridge fallbacks", int(self.ridge_fallbacks)),
            ],
            self.to_frame(),
        )

    def _json_fields(self) -> dict:
        """The JSON record (`to_dict`): settings, missing counts and final chain means (no rows)."""
        return {
            "method": self.method_string(),
            "m": self.m,
            "maxit": self.maxit,
            "donors": self.donors,
            "seed": self.seed,
            "targets": list(self.targets),
            "n_rows": int(self.missing.shape[0]),
            "n_missing": {t: int(self.missing[:, j].sum()) for j, t in enumerate(self.targets)},
            "design_columns": {t: list(c) for t, c in self.design_columns.items()},
            "dropped_predictors": {t: list(c) for t, c in self.dropped_predictors.items()},
            "ridge_fallbacks": int(self.ridge_fallbacks),
            "target_methods": dict(self.target_methods),
            "final_chain_mean": {
                t: float(self.chain_mean[j, -1, :].mean()) if self.maxit else None for j, t in enumerate(self.targets)
            },
        }


def impute_chained(
    data: pd.DataFrame,
    *,
    targets: Sequence[str],
    predictors: Sequence[str],
    method: str = "pmm",
    m: int = 100,
    maxit: int = 5,
    donors: int = 5,
    seed: int | np.random.Generator,
    ridge: float = 1e-5,
    methods: Mapping[str, str] | None = None,
) -> ImputationResult:
    """Impute the missing cells of the continuous ``targets`` by chained equations, m times.

    Each target is imputed from an intercept, the complete ``predictors`` (categorical columns
    enter as dummies; include the trial arm so the imputation model is not narrower than the
    analysis model) and all other targets. ``method`` is ``"pmm"`` or ``"norm"`` (module
    docstring), ``maxit`` the number of iterations (mice's default 5), ``donors`` the pmm donor
    pool, ``seed`` an int or a numpy Generator (every random draw comes from it). Returns an
    `ImputationResult` holding the (m, n, k) completed target columns and chain diagnostics.
    ``methods`` sets the method of single targets (as R's ``mice(..., method = c(age = "pmm"))``), e.g.
    ``pmm`` for a 0/1-coded binary covariate, whose imputations are then observed codes only.
    """
    _check_settings(data, targets, predictors, method, m, maxit, donors, ridge)
    methods = dict(methods or {})
    for name, how in methods.items():
        if name not in targets or how not in _METHODS:
            raise AnalysisError(f"methods: {name!r}: {how!r} must name a target and one of {_METHODS}.")
    per_target = [methods.get(t, method) for t in targets]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    targets = list(targets)
    fixed, fixed_names = _fixed_design(data, [p for p in predictors if p not in targets])
    values = data[targets].to_numpy(dtype=float)
    missing = np.isnan(values)
    n, k = values.shape

    models = [_TargetModel.build(j, targets, values, missing, fixed, fixed_names) for j in range(k)]
    current = np.broadcast_to(values, (m, n, k)).copy()
    for mod in models:  # mice.impute.sample: random draws from the observed values
        if mod.n_mis:
            pick = rng.integers(mod.n_obs, size=(m, mod.n_mis))
            current[:, mod.mis_rows, mod.j] = mod.y_obs[pick]

    chain_mean = np.full((k, maxit, m), np.nan)
    chain_var = np.full((k, maxit, m), np.nan)
    ridge_fallbacks = 0
    for it in range(maxit):
        for mod in models:
            if not mod.n_mis:
                continue
            draws, n_ridge = mod.draw(current, per_target[mod.j], donors, ridge, rng)
            current[:, mod.mis_rows, mod.j] = draws
            ridge_fallbacks += n_ridge
        for mod in models:
            if mod.n_mis:
                cells = current[:, mod.mis_rows, mod.j]
                chain_mean[mod.j, it] = cells.mean(axis=1)
                if mod.n_mis > 1:
                    chain_var[mod.j, it] = cells.var(axis=1, ddof=1)

    return ImputationResult(
        data=data.copy(),
        targets=tuple(targets),
        imputed=current,
        missing=missing,
        chain_mean=chain_mean,
        chain_var=chain_var,
        method=method,
        m=m,
        maxit=maxit,
        donors=donors,
        seed=None if isinstance(seed, np.random.Generator) else int(seed),
        design_columns={targets[mod.j]: mod.columns for mod in models},
        dropped_predictors={targets[mod.j]: mod.dropped for mod in models},
        ridge_fallbacks=ridge_fallbacks,
        target_methods={t: how for t, how in zip(targets, per_target) if how != method},
    )


def _check_settings(data, targets, predictors, method, m, maxit, donors, ridge) -> None:
    if method not in _METHODS:
        raise AnalysisError(f"method must be one of {_METHODS}, got {method!r}.")
    if int(m) != m or m < 1:
        raise AnalysisError(f"m (number of imputations) must be a positive integer, got {m!r}.")
    if int(maxit) != maxit or maxit < 1:
        raise AnalysisError(f"maxit must be a positive integer, got {maxit!r}.")
    if int(donors) != donors or donors < 1:
        raise AnalysisError(f"donors must be a positive integer, got {donors!r}.")
    if not ridge > 0:
        raise AnalysisError(f"ridge must be positive, got {ridge!r}.")
    if len(targets) == 0:
        raise AnalysisError("no targets given: name the incomplete columns to impute.")
    if len(set(targets)) != len(targets):
        raise AnalysisError(f"targets contain duplicates: {list(targets)}.")
    absent = [c for c in list(targets) + list(predictors) if c not in data.columns]
    if absent:
        raise AnalysisError(f"columns {absent} are not in the data; columns are {list(data.columns)}.")
    for name in targets:
        if not pd.api.types.is_numeric_dtype(data[name]) or pd.api.types.is_bool_dtype(data[name]):
            raise AnalysisError(
                f"target {name!r} is not numeric ({data[name].dtype}); only continuous targets "
                "can be imputed by 'pmm' or 'norm'."
            )
    for name in predictors:
        if name not in targets and data[name].isna().any():
            raise AnalysisError(
                f"predictor {name!r} has {int(data[name].isna().sum())} missing values; add it "
                "to targets so it is imputed too, or leave it out of the predictors."
            )


def _fixed_design(data: pd.DataFrame, predictors: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Numeric predictors as they are, categorical ones as treatment dummies (first level dropped)."""
    blocks, names = [], []
    for name in predictors:
        col = data[name]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            blocks.append(col.to_numpy(dtype=float)[:, None])
            names.append(name)
        else:
            levels = sorted(col.astype(str).unique())
            codes = col.astype(str).to_numpy()
            for level in levels[1:]:
                blocks.append((codes == level).astype(float)[:, None])
                names.append(f"{name}[T.{level}]")
    if not blocks:
        return np.empty((len(data), 0)), []
    return np.hstack(blocks), names


@dataclass
class _TargetModel:
    """Everything about one target's conditional model that does not change between iterations."""

    j: int
    obs_rows: np.ndarray
    mis_rows: np.ndarray
    y_obs: np.ndarray
    fixed: np.ndarray  # (n, q_kept) fixed predictors kept for this target
    others: list[int]  # indices of the other targets used as predictors
    columns: list[str]
    dropped: list[str]

    @property
    def n_obs(self) -> int:
        return len(self.obs_rows)

    @property
    def n_mis(self) -> int:
        return len(self.mis_rows)

    @classmethod
    def build(cls, j, targets, values, missing, fixed, fixed_names) -> "_TargetModel":
        obs_rows = np.flatnonzero(~missing[:, j])
        mis_rows = np.flatnonzero(missing[:, j])
        name = targets[j]
        if len(obs_rows) < 2 and len(mis_rows):
            raise AnalysisError(
                f"target {name!r} has {len(obs_rows)} observed values; at least 2 are needed to impute it."
            )
        y_obs = values[obs_rows, j]
        if len(mis_rows) and y_obs.var(ddof=1) < _EPS_VAR:
            raise AnalysisError(
                f"target {name!r} is (nearly) constant among its observed values; there is nothing to model."
            )
        keep = np.ones(fixed.shape[1], dtype=bool)
        if len(mis_rows) and fixed.shape[1]:
            xo = fixed[obs_rows]
            keep = xo.var(axis=0, ddof=1) > _EPS_VAR
            with np.errstate(invalid="ignore", divide="ignore"):
                cor = np.array([np.corrcoef(xo[:, c], y_obs)[0, 1] for c in range(xo.shape[1])])
            keep &= ~(cor >= _MAX_COR)
        others = [i for i in range(len(targets)) if i != j]
        return cls(
            j=j,
            obs_rows=obs_rows,
            mis_rows=mis_rows,
            y_obs=y_obs,
            fixed=fixed[:, keep],
            others=others,
            columns=["(Intercept)"] + [c for c, kp in zip(fixed_names, keep) if kp] + [targets[i] for i in others],
            dropped=[c for c, kp in zip(fixed_names, keep) if not kp],
        )

    def design(self, current: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(m, len(rows), p) design: intercept, kept fixed predictors, current other targets."""
        m = current.shape[0]
        fixed = np.column_stack([np.ones(len(rows)), self.fixed[rows]])
        return np.concatenate(
            [np.broadcast_to(fixed, (m,) + fixed.shape), current[:, rows[:, None], self.others]],
            axis=2,
        )

    def draw(self, current, method, donors, ridge, rng) -> tuple[np.ndarray, int]:
        """One Gibbs step for this target in all m chains: (m, n_mis) imputations, ridge count."""
        x_obs = self.design(current, self.obs_rows)
        x_mis = self.design(current, self.mis_rows)
        beta_hat, beta_star, sigma_star, n_ridge = _bayes_regression_draw(x_obs, self.y_obs, ridge, rng)
        if method == "norm":
            mean = np.einsum("mnp,mp->mn", x_mis, beta_star)
            return mean + sigma_star[:, None] * rng.standard_normal(mean.shape), n_ridge
        yhat_obs = np.einsum("mnp,mp->mn", x_obs, beta_hat)
        yhat_mis = np.einsum("mnp,mp->mn", x_mis, beta_star)
        return self.y_obs[match_donors(yhat_obs, yhat_mis, donors, rng)], n_ridge


def _bayes_regression_draw(x_obs: np.ndarray, y_obs: np.ndarray, ridge: float, rng):
    """Batched ``mice:::.norm.draw``: beta-hat, beta*, sigma* for each of m designs (m, n_obs, p).

    sigma* = sqrt(RSS / chi^2_df), df = max(n_obs - p, 1); beta* = beta-hat + sigma* A z with
    A A' = (X'X)^{-1}. With X = QR, A = R^{-1}. Where X'X is numerically singular (reciprocal
    condition < machine eps, where R's solve() fails), mice's fallback is used instead:
    V = (X'X + ridge diag(X'X))^{-1}, A = chol(V).
    """
    m, n_obs, p = x_obs.shape
    q, r = np.linalg.qr(x_obs)
    sv = np.linalg.svd(r, compute_uv=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        singular = (sv[:, -1] / sv[:, 0]) ** 2 < _RCOND_SINGULAR
    singular |= ~np.isfinite(sv).all(axis=1)
    a = np.empty((m, p, p))
    beta_hat = np.empty((m, p))
    ok = ~singular
    if ok.any():
        r_inv = np.linalg.inv(r[ok])
        a[ok] = r_inv
        beta_hat[ok] = np.einsum("mij,mj->mi", r_inv, np.einsum("mnp,n->mp", q[ok], y_obs))
    if singular.any():
        xtx = np.einsum("mni,mnj->mij", x_obs[singular], x_obs[singular])
        diag = np.einsum("mii->mi", xtx)
        penalised = xtx + ridge * diag[:, :, None] * np.eye(p)
        v = np.linalg.inv(penalised)
        a[singular] = np.linalg.cholesky((v + np.swapaxes(v, 1, 2)) / 2)
        beta_hat[singular] = np.linalg.solve(penalised, np.einsum("mnp,n->mp", x_obs[singular], y_obs)[:, :, None])[
            :, :, 0
        ]
    resid = y_obs[None, :] - np.einsum("mnp,mp->mn", x_obs, beta_hat)
    df = max(n_obs - p, 1)
    sigma_star = np.sqrt((resid**2).sum(axis=1) / rng.chisquare(df, size=m))
    z = rng.standard_normal((m, p))
    beta_star = beta_hat + sigma_star[:, None] * np.einsum("mij,mj->mi", a, z)
    return beta_hat, beta_star, sigma_star, int(singular.sum())


def match_donors(yhat_obs: np.ndarray, yhat_mis: np.ndarray, donors: int, rng) -> np.ndarray:
    """Index (into the observed rows) of one donor per missing cell and chain, drawn uniformly
    among the ``donors`` observed rows whose prediction is closest (``mice:::matchindex``).

    As matchindex does, the observed predictions are sorted after a random shuffle (so ties are
    broken at random) and each missing prediction is located by binary search; its ``donors``
    nearest neighbours then lie in the window of ``donors`` sorted values on either side.
    """
    m, n_mis = yhat_mis.shape
    n_obs = yhat_obs.shape[1]
    k = min(donors, n_obs)
    order = np.lexsort((rng.random(yhat_obs.shape), yhat_obs), axis=-1)
    ysort = np.take_along_axis(yhat_obs, order, axis=1)
    pos = np.empty((m, n_mis), dtype=np.intp)
    for i in range(m):
        pos[i] = np.searchsorted(ysort[i], yhat_mis[i])
    window = pos[:, :, None] + np.arange(-k, k)  # (m, n_mis, 2k) sorted positions
    inside = (window >= 0) & (window < n_obs)
    window = np.clip(window, 0, n_obs - 1)
    rows = np.arange(m)[:, None, None]
    dist = np.where(inside, np.abs(ysort[rows, window] - yhat_mis[:, :, None]), np.inf)
    ranked = np.argsort(dist, axis=-1, kind="stable")[..., :k]
    pick = rng.integers(k, size=(m, n_mis))
    chosen = np.take_along_axis(window, np.take_along_axis(ranked, pick[..., None], -1), -1)[..., 0]
    return order[rows[:, :, 0], chosen]
