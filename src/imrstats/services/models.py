"""Service-use count models: admissions, bed days, ER visits and outpatient contacts by arm.

Jensen et al. 2019 analysed the register counts with Poisson regression and a negative
binomial model "when the data were zero-inflated". This module makes that plan explicit and
checkable: descriptives per arm, an overdispersion test, a zero-excess check, four models (Poisson,
NB2, zero-inflated NB2, hurdle NB2) with log days at risk as offset, model comparison by AIC / BIC /
Vuong with a stated rule, and rootograms. Numbers are validated against R (glm, MASS::glm.nb,
pscl::zeroinfl, pscl::hurdle, pscl::vuong, AER::dispersiontest, sandwich) in
tests/validation/test_services_vs_r.py.

The arm effect is IMR vs TAU (TAU is the reference): an incidence rate ratio (IRR) below 1 means
fewer events per day at risk under IMR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from imrstats.errors import AnalysisError
from imrstats.results import Estimate, ResultMixin, summary_block, to_frame
from imrstats.services import likelihoods as cm

COUNT_OUTCOMES = ("admissions", "bed_days", "er_visits", "outpatient_contacts")
DEFAULT_COVARIATES = ("site", "prior_admissions")
ARM_LEVELS = ("TAU", "IMR")  # reference first
BOUNDARY_SE = 100.0  # a coefficient SE above this on the log scale means an estimate at infinity


# --- analysis frame and design ---------------------------------------------------------------


def services_frame(
    participants: pd.DataFrame,
    service_use: pd.DataFrame,
    outcome: str | Sequence[str] = COUNT_OUTCOMES,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
) -> pd.DataFrame:
    """One row per participant: follow-up count(s), days at risk, log offset, arm and covariates.

    `prior_admissions` is the admissions count of the "pre" period (the year before randomisation).
    Participants without a follow-up row are left out (counted in ``frame.attrs["excluded"]``).
    """
    outcomes = [outcome] if isinstance(outcome, str) else list(outcome)
    _require_columns(service_use, ["id", "period", "exposure_days", *outcomes], "service_use")
    _require_columns(participants, ["id", "arm"], "participants")
    follow = service_use[service_use["period"] == "follow_up"]
    if follow["id"].duplicated().any():
        raise AnalysisError(
            "service_use has more than one follow_up row for some ids; "
            "aggregate to one row per participant and period first"
        )
    pre = service_use[service_use["period"] == "pre"].set_index("id")
    frame = participants.merge(follow[["id", "exposure_days", *outcomes]], on="id", how="inner")
    if "admissions" in pre.columns:
        frame["prior_admissions"] = frame["id"].map(pre["admissions"]).astype(float)
    _check_exposure(frame)
    frame["log_exposure"] = np.log(frame["exposure_days"].astype(float))
    unknown_arm = ~frame["arm"].isin(ARM_LEVELS)
    if unknown_arm.any():
        raise AnalysisError(
            f"{int(unknown_arm.sum())} participant(s) have an arm other than "
            f"{' or '.join(ARM_LEVELS)}; run 'imrstats check' and fix the arm codes"
        )
    frame["arm"] = pd.Categorical(frame["arm"], categories=list(ARM_LEVELS))
    missing = [c for c in covariates if c not in frame.columns or frame[c].isna().any()]
    if missing:
        raise AnalysisError(
            f"covariate(s) {missing} are missing for some participants (for "
            "prior_admissions: no 'pre' period row); supply them or drop them "
            "from the covariate list"
        )
    frame.attrs["excluded"] = int(len(participants) - len(frame))
    return frame.reset_index(drop=True)


def _require_columns(table, columns, name):
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise AnalysisError(f"{name} lacks column(s) {absent}; see the canonical tables in ARCHITECTURE.md")


def _check_exposure(frame):
    bad = frame["exposure_days"].isna() | (frame["exposure_days"] <= 0)
    if bad.any():
        raise AnalysisError(
            f"{int(bad.sum())} participant(s) have no positive follow-up exposure_days "
            f"(e.g. {list(frame.loc[bad, 'id'][:3])}); a count per day at risk needs "
            "at least one day: fix the register extract or drop them"
        )


def design_matrix(frame: pd.DataFrame, terms: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Intercept plus treatment-coded terms, named as R's model.matrix names them.

    `arm` is coded IMR vs TAU ("armIMR"); text columns get one dummy per non-reference level
    (levels sorted, first is the reference, as R's factor()); numeric columns enter as they are.
    """
    columns, names = [np.ones(len(frame))], ["(Intercept)"]
    for term in terms:
        for name, column in _term_columns(frame, term):
            columns.append(column)
            names.append(name)
    return np.column_stack(columns), names


def _term_columns(frame, term):
    values = frame[term]
    if not _is_categorical(values):
        return [(term, values.to_numpy(dtype=float))]
    levels = _levels(values)
    return [(f"{term}{level}", (values == level).to_numpy(dtype=float)) for level in levels[1:]]


def _is_categorical(values: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype)


def _levels(values: pd.Series) -> list:
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [c for c in values.cat.categories if (values == c).any()]
    return sorted(values.dropna().unique())


# --- input checks ----------------------------------------------------------------------------


def _count_vector(frame: pd.DataFrame, outcome: str, n_params: int) -> np.ndarray:
    if outcome not in frame.columns:
        raise AnalysisError(f"outcome '{outcome}' is not a column of the analysis frame")
    values = frame[outcome]
    if values.isna().any():
        raise AnalysisError(
            f"outcome '{outcome}' has {int(values.isna().sum())} missing values; "
            "register counts should be complete: fix or drop those rows first"
        )
    y = values.to_numpy(dtype=float)
    if np.any(y < 0) or np.any(y != np.round(y)):
        raise AnalysisError(f"outcome '{outcome}' must hold non-negative whole counts")
    if not np.any(y > 0):
        raise AnalysisError(
            f"outcome '{outcome}' is 0 for all {len(y)} participants: there is no "
            "event to model; report the descriptives only"
        )
    if len(y) <= n_params + 1:
        raise AnalysisError(f"outcome '{outcome}': {len(y)} rows for {n_params} parameters; use fewer covariates")
    return y


def _check_levels_have_events(frame, y, terms, outcome, part="count"):
    """Every level of a categorical term needs events, or its log rate is minus infinity."""
    for term in terms:
        if not _is_categorical(frame[term]):
            continue
        for level in _levels(frame[term]):
            if y[(frame[term] == level).to_numpy()].sum() == 0:
                raise AnalysisError(
                    f"{outcome}: no events at all where {term} = {level}, so its rate ratio in the "
                    f"{part} model is 0 (infinite on the log scale) and no finite estimate exists. "
                    "Report the descriptives (and an exact test) instead, or merge/drop that level"
                )


def _check_no_separation(frame, positive, terms, outcome):
    """A binary (zero vs positive) model needs zeros and positives in every level of each term."""
    for term in terms:
        if not _is_categorical(frame[term]):
            continue
        for level in _levels(frame[term]):
            share = positive[(frame[term] == level).to_numpy()].mean()
            if share in (0.0, 1.0):
                kind = "positive" if share == 1.0 else "zero"
                raise AnalysisError(
                    f"{outcome}: every count where {term} = {level} is {kind} (perfect separation), "
                    "so the zero part's odds ratio is infinite. Drop the term from the zero part "
                    "(zero_terms) or use the NB2 model"
                )


# --- the fitted-model result -----------------------------------------------------------------


@dataclass(frozen=True)
class CountModelFit(ResultMixin):
    """A fitted count model: coefficient rows, the arm effect(s), fit statistics and fit flags.

    `coefficients` holds one Estimate row per parameter (log scale; `part` is "count", "zero" or
    "dispersion"); `effects` holds the arm effect as an IRR (count part) and, for the zero-modified
    models, as an odds ratio (zero part). `n_params` counts every estimated parameter (theta too),
    as R's logLik df; `n_coef` counts regression coefficients only, as pscl::vuong does.
    The per-participant arrays (leading underscore) serve rootograms and the Vuong test and never
    reach `to_dict()`.
    """

    model: str
    outcome: str
    method: str
    coefficients: pd.DataFrame
    effects: pd.DataFrame
    loglik: float
    n_params: int
    n_coef: int
    nobs: int
    converged: bool
    warnings: tuple[str, ...] = ()
    theta: float = math.nan
    _y: np.ndarray = field(default=None, repr=False, compare=False)
    _mu: np.ndarray = field(default=None, repr=False, compare=False)
    _pi: np.ndarray = field(default=None, repr=False, compare=False)

    @property
    def observed_counts(self) -> np.ndarray:
        """The outcome counts the model was fitted to, one per participant."""
        return self._y

    @property
    def aic(self) -> float:
        return -2 * self.loglik + 2 * self.n_params

    @property
    def bic(self) -> float:
        return -2 * self.loglik + math.log(self.nobs) * self.n_params

    def predict_pmf(self, counts: Sequence[int]) -> np.ndarray:
        """P(Y_i = c) for every participant i (rows) and count c (columns)."""
        c = np.asarray(counts, dtype=float)[None, :]
        mu, theta, pi = self._mu[:, None], self.theta, None if self._pi is None else self._pi[:, None]
        if self.model == "poisson":
            return np.exp(cm.poisson_logpmf(c, mu))
        if self.model == "nb2":
            return np.exp(cm.nb2_logpmf(c, mu, theta))
        if self.model == "zinb":
            return np.exp(cm.zinb_logpmf(c, mu, pi, theta))
        positive = pi * np.exp(cm.truncnb2_logpmf(np.maximum(c, 1), mu, theta))
        return np.where(c == 0, 1 - pi, positive)

    def pointwise_loglik(self) -> np.ndarray:
        """log P(Y_i = y_i) under the fitted model."""
        y = self._y
        if self.model == "poisson":
            return cm.poisson_logpmf(y, self._mu)
        if self.model == "nb2":
            return cm.nb2_logpmf(y, self._mu, self.theta)
        if self.model == "zinb":
            return cm.zinb_logpmf(y, self._mu, self._pi, self.theta)
        positive = np.log(self._pi) + cm.truncnb2_logpmf(np.maximum(y, 1), self._mu, self.theta)
        return np.where(y == 0, np.log1p(-self._pi), positive)

    _json_skip = ("n_coef", "_y", "_mu", "_pi")

    def _json_extra(self) -> dict:
        return {"aic": self.aic, "bic": self.bic}

    def to_frame(self) -> pd.DataFrame:
        """Coefficient rows (log scale) then the arm effect(s) as ratios."""
        return pd.concat([self.coefficients, self.effects], ignore_index=True)

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Wald CIs at ``level`` for the regression coefficients (count and zero parts, log scale)."""
        rows = self.coefficients.loc[self.coefficients["part"].isin(["count", "zero"])]
        return to_frame(
            [
                Estimate.from_wald(
                    r["quantity"],
                    r["estimate"],
                    r["se"],
                    level,
                    r["method"],
                    notes=r["notes"],
                    extra={"part": r["part"], "term": r["term"]},
                )
                for _, r in rows.iterrows()
            ]
        )

    def summary(self) -> str:
        """The model, n, the fit statistics and state, the coefficients and the arm effect(s)."""
        return summary_block(
            f"{self.model} count model of {self.outcome}",
            [
                ("n", self.nobs),
                ("parameters", self.n_params),
                ("log-likelihood", f"{self.loglik:.4f}"),
                ("AIC / BIC", f"{self.aic:.4f} / {self.bic:.4f}"),
                ("converged", self.converged),
            ],
            self.to_frame(),
            [f"Method: {self.method}", *self.warnings],
        )


def _wald_rows(part, names, coef, se, method, level):
    """Coefficient rows on the log scale with Wald z tests and CIs."""
    return [
        Estimate.from_wald(f"{part}_{name}", b, s, level, method, extra={"part": part, "term": name})
        for name, b, s in zip(names, coef, se)
    ]


def _ratio_row(row: Estimate, label: str, method: str) -> Estimate:
    """Exponentiate a log-scale coefficient row (ratio and Wald CI; the SE is kept on the log scale)."""
    return Estimate(
        label,
        _exp(row.estimate),
        math.nan,
        _exp(row.ci_low),
        _exp(row.ci_high),
        math.nan,
        row.statistic,
        row.p,
        method,
        "Wald CI on the log scale, exponentiated; log_se is the SE of the log ratio",
        {"part": row.extra["part"], "term": row.extra["term"], "log_se": row.se},
    )


def _exp(value: float) -> float:
    """exp that returns inf (not an OverflowError) for estimates at the boundary."""
    with np.errstate(over="ignore"):
        return float(np.exp(value))


def _effect_rows(rows: list[Estimate], zero_label: str | None) -> pd.DataFrame:
    out = []
    for row in rows:
        if row.extra["term"] != "armIMR":
            continue
        if row.extra["part"] == "count":
            out.append(_ratio_row(row, "IRR IMR vs TAU (count part)" if zero_label else "IRR IMR vs TAU", row.method))
        elif row.extra["part"] == "zero" and zero_label:
            out.append(_ratio_row(row, zero_label, row.method))
    return to_frame(out)


def _dispersion_rows(theta, se_log_theta, method, level):
    """theta, log(theta) and alpha = 1/theta with delta-method SEs from SE(log theta)."""
    z_crit = stats.norm.ppf(0.5 + level / 2)
    log_t = math.log(theta)
    lo, hi = log_t - z_crit * se_log_theta, log_t + z_crit * se_log_theta
    extra = {"part": "dispersion"}
    with np.errstate(over="ignore", under="ignore"):  # theta at the boundary: infinite CI, no error
        t_lo, t_hi, a_lo, a_hi = (float(v) for v in np.exp([lo, hi, -hi, -lo]))
    return [
        Estimate("log_theta", log_t, se_log_theta, lo, hi, method=method, extra={**extra, "term": "log_theta"}),
        Estimate(
            "theta",
            theta,
            theta * se_log_theta,
            t_lo,
            t_hi,
            method=method,
            notes="NB2 size: Var = mu + mu^2/theta; CI from the log scale",
            extra={**extra, "term": "theta"},
        ),
        Estimate(
            "alpha",
            1 / theta,
            se_log_theta / theta,
            a_lo,
            a_hi,
            method=method,
            notes="alpha = 1/theta: Var = mu + alpha mu^2; CI from the log scale",
            extra={**extra, "term": "alpha"},
        ),
    ]


def _boundary_warnings(names, coef, se) -> list[str]:
    """Estimates running off to infinity show up as huge SEs; name them rather than report them."""
    bad = [n for n, b, s in zip(names, coef, se) if not np.isfinite(s) or s > BOUNDARY_SE]
    if not bad:
        return []
    return [
        f"estimate(s) at the boundary (SE > {BOUNDARY_SE:g} or undefined): {bad}; likely "
        "separation, a level without events or a zero-part probability at 0 or 1; "
        "do not interpret this model"
    ]


def _part_names(part: str, names: Sequence[str]) -> list[str]:
    """'zero:armIMR' rather than 'armIMR', so a warning says which part of the model is at fault."""
    return [f"{part}:{name}" for name in names]


# --- the four models -------------------------------------------------------------------------


def _inputs(frame, outcome, covariates):
    terms = ["arm", *covariates]
    _require_columns(frame, [*terms, "log_exposure"], "analysis frame")
    if frame["arm"].nunique() < 2:
        raise AnalysisError("the analysis frame holds only one arm; an arm effect needs IMR and TAU")
    X, names = design_matrix(frame, terms)
    _check_full_rank(X, names, "count part")
    y = _count_vector(frame, outcome, X.shape[1])
    return X, names, y, frame["log_exposure"].to_numpy(dtype=float), terms


def _check_full_rank(X: np.ndarray, names: Sequence[str], part: str) -> None:
    """Collinear columns (a covariate nested in arm, a constant covariate) have no unique estimate."""
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise AnalysisError(
            f"the {part} design ({', '.join(names)}) is rank deficient: some terms are "
            "collinear (e.g. a covariate constant or nested within arm); drop one of them"
        )


def _poisson_ml(X, y, offset):
    """Poisson ML by Newton-Raphson with the exact Hessian -X'diag(mu)X."""
    start = np.zeros(X.shape[1])
    start[0] = math.log(y.sum() / np.exp(offset).sum())
    return cm.maximize(
        lambda b: float(np.sum(cm.poisson_logpmf(y, np.exp(X @ b + offset)))),
        lambda b: X.T @ (y - np.exp(X @ b + offset)),
        start,
        hessian=lambda b: -(X.T * np.exp(X @ b + offset)) @ X,
    )


def fit_poisson(
    frame: pd.DataFrame,
    outcome: str,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    robust: bool = False,
    level: float = 0.95,
) -> CountModelFit:
    """Poisson log-linear model with offset log(days at risk); optional HC0 sandwich SEs.

    Model-based SEs from the Fisher information (X' W X)^-1 as R's glm(family = poisson);
    robust=True uses the sandwich (X'WX)^-1 X' diag((y - mu)^2) X (X'WX)^-1, which is
    sandwich::sandwich (HC0) in R and stays valid under overdispersion.
    """
    X, names, y, offset, terms = _inputs(frame, outcome, covariates)
    _check_levels_have_events(frame, y, terms, outcome)
    fit = _poisson_ml(X, y, offset)
    mu = np.exp(X @ fit.params + offset)
    bread = np.linalg.inv(-fit.hessian)
    vcov = bread @ ((X.T * (y - mu) ** 2) @ X) @ bread if robust else bread
    se = np.sqrt(np.diag(vcov))
    method = "Poisson GLM, log link, offset log(exposure days), ML (Newton); Wald z" + (
        "; robust HC0 sandwich SEs" if robust else "; model-based SEs"
    )
    rows = _wald_rows("count", names, fit.params, se, method, level)
    warn = _boundary_warnings(names, fit.params, se) + _not_converged(fit)
    return CountModelFit(
        "poisson",
        outcome,
        method,
        to_frame(rows),
        _effect_rows(rows, None),
        fit.loglik,
        len(names),
        len(names),
        len(y),
        fit.converged and not warn,
        tuple(warn),
        math.nan,
        y,
        mu,
        None,
    )


def _not_converged(fit: cm.MaxResult) -> list[str]:
    return [] if fit.converged else [f"optimiser did not converge: {fit.message}"]


def _nb2_start(X, y, offset):
    """Poisson estimates and a moment estimate of theta (Cameron-Trivedi auxiliary regression)."""
    pois = _poisson_ml(X, y, offset)
    mu = np.exp(X @ pois.params + offset)
    alpha = np.sum((y - mu) ** 2 - y) / np.sum(mu**2)
    return np.append(pois.params, -math.log(min(max(alpha, 0.01), 100.0)))


def fit_nb2(
    frame: pd.DataFrame, outcome: str, covariates: Sequence[str] = DEFAULT_COVARIATES, level: float = 0.95
) -> CountModelFit:
    """Negative binomial (NB2) regression with offset, joint ML of coefficients and theta.

    Reports as MASS::glm.nb does: coefficient SEs from the expected information X'WX with
    W = mu theta / (mu + theta) at the estimate, and SE(theta) = 1/sqrt(observed information for
    theta), Venables & Ripley (2002), MASS 4th ed., sec. 7.4. alpha = 1/theta (delta-method SE).
    """
    X, names, y, offset, terms = _inputs(frame, outcome, covariates)
    _check_levels_have_events(frame, y, terms, outcome)
    fit = cm.maximize(
        lambda p: cm.nb2_loglik(p, X, y, offset), lambda p: cm.nb2_score(p, X, y, offset), _nb2_start(X, y, offset)
    )
    beta, theta = fit.params[:-1], math.exp(fit.params[-1])
    mu = np.exp(X @ beta + offset)
    se = np.sqrt(np.diag(np.linalg.inv((X.T * (mu * theta / (mu + theta))) @ X)))
    info_theta = cm.nb2_theta_information(y, mu, theta)
    se_theta = 1 / math.sqrt(info_theta) if info_theta > 0 else math.nan
    method = (
        "NB2 GLM, log link, offset log(exposure days), joint ML of beta and theta; "
        "SEs as MASS::glm.nb (expected information); Wald z"
    )
    rows = _wald_rows("count", names, beta, se, method, level)
    rows += _dispersion_rows(theta, se_theta / theta, method, level)
    warn = _boundary_warnings(names, beta, se) + _theta_warnings(fit.params[-1]) + _not_converged(fit)
    return CountModelFit(
        "nb2",
        outcome,
        method,
        to_frame(rows),
        _effect_rows(rows, None),
        fit.loglik,
        len(names) + 1,
        len(names),
        len(y),
        fit.converged and not warn,
        tuple(warn),
        theta,
        y,
        mu,
        None,
    )


def _theta_warnings(log_theta: float) -> list[str]:
    if log_theta > 12:
        return [
            f"theta = {math.exp(log_theta):.3g} is at the boundary (no extra-Poisson "
            "variation): the negative binomial part collapses to Poisson; use the Poisson model"
        ]
    if log_theta < -8:
        return [
            f"theta = {math.exp(log_theta):.3g} is at the boundary (theta -> 0): the model cannot describe these counts"
        ]
    return []


def _logit_ml(Z, positive):
    """Logistic regression ML by Newton-Raphson (exact Hessian)."""

    def loglik(g):
        eta = Z @ g
        return float(np.sum(positive * eta - np.logaddexp(0, eta)))

    return cm.maximize(
        loglik,
        lambda g: Z.T @ (positive - special.expit(Z @ g)),
        np.zeros(Z.shape[1]),
        hessian=lambda g: -(Z.T * (special.expit(Z @ g) * special.expit(-(Z @ g)))) @ Z,
    )


def _truncnb2_ml(X, y, offset):
    """Zero-truncated NB2 on the positive counts, started as pscl does (OLS of log y - offset)."""
    start = np.linalg.lstsq(X, np.log(y) - offset, rcond=None)[0]
    return cm.maximize(
        lambda p: cm.truncnb2_loglik(p, X, y, offset),
        lambda p: cm.truncnb2_score(p, X, y, offset),
        np.append(start, 0.0),
    )


def _zero_design(frame, terms, zero_terms):
    zero_terms = list(terms if zero_terms is None else zero_terms)
    _require_columns(frame, zero_terms, "analysis frame")
    Z, znames = design_matrix(frame, zero_terms)
    _check_full_rank(Z, znames, "zero part")
    return Z, znames, zero_terms


def _require_zeros(y, outcome, model):
    if np.all(y > 0):
        raise AnalysisError(
            f"{outcome}: no participant has a zero count, so the zero part of the "
            f"{model} model cannot be estimated; use the NB2 model"
        )


def fit_zinb(
    frame: pd.DataFrame,
    outcome: str,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    zero_terms: Sequence[str] | None = ("arm",),
    level: float = 0.95,
) -> CountModelFit:
    """Zero-inflated NB2 (logit inflation), as pscl::zeroinfl(y ~ x + offset | z, dist = "negbin").

    P(Y=0) = pi + (1-pi) NB2(0), P(Y=y) = (1-pi) NB2(y) for y > 0, logit(pi) = Z gamma. Zero part
    terms: `zero_terms` (default arm only; () = intercept only; None = same terms as the count
    part). SEs from the inverse observed information (Hessian of the log-likelihood), as pscl.
    Two starting points (from NB2, and pscl's truncated-count/logit start); the better optimum wins.
    """
    X, names, y, offset, terms = _inputs(frame, outcome, covariates)
    _check_levels_have_events(frame, y, terms, outcome)
    _require_zeros(y, outcome, "zero-inflated")
    Z, znames, _ = _zero_design(frame, terms, zero_terms)
    fit = _best_fit(
        [
            cm.maximize(
                lambda p: cm.zinb_loglik(p, X, Z, y, offset), lambda p: cm.zinb_score(p, X, Z, y, offset), start
            )
            for start in _zinb_starts(X, Z, y, offset)
        ]
    )
    kx, kz = X.shape[1], Z.shape[1]
    se = _inverse_information_se(fit.hessian)
    method = (
        "zero-inflated NB2 (logit zero part), offset log(exposure days), ML; SEs from the "
        "observed information as pscl::zeroinfl; Wald z"
    )
    rows = (
        _wald_rows("count", names, fit.params[:kx], se[:kx], method, level)
        + _wald_rows("zero", znames, fit.params[kx : kx + kz], se[kx : kx + kz], method, level)
        + _dispersion_rows(math.exp(fit.params[-1]), se[-1], method, level)
    )
    warn = (
        _boundary_warnings(_part_names("count", names) + _part_names("zero", znames), fit.params[:-1], se[:-1])
        + _theta_warnings(fit.params[-1])
        + _not_converged(fit)
    )
    mu, pi, theta = cm.zinb_parameters(fit.params, X, Z, offset)
    return CountModelFit(
        "zinb",
        outcome,
        method,
        to_frame(rows),
        _effect_rows(rows, "OR IMR vs TAU of a structural zero (zero part)"),
        fit.loglik,
        kx + kz + 1,
        kx + kz,
        len(y),
        fit.converged and not warn,
        tuple(warn),
        theta,
        y,
        mu,
        pi,
    )


def _zinb_starts(X, Z, y, offset):
    nb2 = cm.maximize(
        lambda p: cm.nb2_loglik(p, X, y, offset), lambda p: cm.nb2_score(p, X, y, offset), _nb2_start(X, y, offset)
    )
    mu = np.exp(X @ nb2.params[:-1] + offset)
    excess = (np.sum(y == 0) - np.sum(np.exp(cm.nb2_log_p0(mu, math.exp(nb2.params[-1]))))) / len(y)
    gamma = np.zeros(Z.shape[1])
    gamma[0] = special.logit(min(max(excess, 0.05), 0.9))
    starts = [np.concatenate([nb2.params[:-1], gamma, nb2.params[-1:]])]
    positive = y > 0
    count = _truncnb2_ml(X[positive], y[positive], offset[positive])
    zero = _logit_ml(Z, (~positive).astype(float))
    if np.all(np.isfinite(count.params)) and np.all(np.isfinite(zero.params)):
        starts.append(np.concatenate([count.params[:-1], zero.params, count.params[-1:]]))
    return starts


def _best_fit(fits: list[cm.MaxResult]) -> cm.MaxResult:
    """The converged optimum with the highest log-likelihood (else the highest of all)."""
    ok = [f for f in fits if f.converged] or fits
    return max(ok, key=lambda f: f.loglik if np.isfinite(f.loglik) else -np.inf)


def _inverse_information_se(hessian: np.ndarray) -> np.ndarray:
    try:
        with np.errstate(invalid="ignore"):  # a negative variance (boundary) becomes nan and is flagged
            return np.sqrt(np.diag(np.linalg.inv(-hessian)))
    except np.linalg.LinAlgError:
        return np.full(hessian.shape[0], np.nan)


def fit_hurdle_nb(
    frame: pd.DataFrame,
    outcome: str,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    zero_terms: Sequence[str] | None = None,
    level: float = 0.95,
) -> CountModelFit:
    """Hurdle NB2, as pscl::hurdle(y ~ x + offset | z, dist = "negbin", zero.dist = "binomial").

    Zero part: logistic regression of P(Y > 0) on `zero_terms` (None = the count terms, pscl's
    default), so its odds ratio is for *any* event; like pscl with `| z`, the zero part takes no
    offset (add exposure as a covariate if follow-up lengths differ a lot). Count part: zero-truncated NB2 with
    offset on the positive counts. The likelihood separates, so the parts are fitted separately; SEs from
    the inverse observed information of each part (Mullahy 1986, J. Econometrics 33:341-365).
    """
    X, names, y, offset, terms = _inputs(frame, outcome, covariates)
    _require_zeros(y, outcome, "hurdle")
    Z, znames, zterms = _zero_design(frame, terms, zero_terms)
    positive = y > 0
    _check_no_separation(frame, positive, zterms, outcome)
    _check_positive_part(frame, y, terms, outcome, X.shape[1])
    zero = _logit_ml(Z, positive.astype(float))
    count = _truncnb2_ml(X[positive], y[positive], offset[positive])
    se_zero = _inverse_information_se(zero.hessian)
    se_count = _inverse_information_se(count.hessian)
    method = (
        "hurdle NB2: logit zero part for P(y > 0) (no offset), zero-truncated NB2 count part "
        "with offset log(exposure days), ML; SEs from the observed information as pscl::hurdle; Wald z"
    )
    rows = (
        _wald_rows("count", names, count.params[:-1], se_count[:-1], method, level)
        + _wald_rows("zero", znames, zero.params, se_zero, method, level)
        + _dispersion_rows(math.exp(count.params[-1]), se_count[-1], method, level)
    )
    warn = (
        _boundary_warnings(_part_names("count", names), count.params[:-1], se_count[:-1])
        + _boundary_warnings(_part_names("zero", znames), zero.params, se_zero)
        + _theta_warnings(count.params[-1])
        + _not_converged(count)
        + _not_converged(zero)
    )
    mu = np.exp(X @ count.params[:-1] + offset)
    return CountModelFit(
        "hurdle_nb",
        outcome,
        method,
        to_frame(rows),
        _effect_rows(rows, "OR IMR vs TAU of any event (zero hurdle part)"),
        count.loglik + zero.loglik,
        X.shape[1] + Z.shape[1] + 1,
        X.shape[1] + Z.shape[1],
        len(y),
        count.converged and zero.converged and not warn,
        tuple(warn),
        math.exp(count.params[-1]),
        y,
        mu,
        special.expit(Z @ zero.params),
    )


def _check_positive_part(frame, y, terms, outcome, n_params):
    """The truncated count part needs enough positives, some above 1, and every level present."""
    y_pos = y[y > 0]
    if len(y_pos) <= n_params + 1:
        raise AnalysisError(
            f"{outcome}: only {len(y_pos)} positive counts for {n_params + 1} count-part "
            "parameters of the hurdle model; use fewer covariates or the NB2 model"
        )
    if np.all(y_pos == 1):
        raise AnalysisError(
            f"{outcome}: every positive count is 1, so the truncated count part has "
            "no information on rates; analyse 'any event' with logistic regression"
        )
    for term in terms:
        if _is_categorical(frame[term]) and set(_levels(frame[term])) - set(frame.loc[y > 0, term]):
            raise AnalysisError(
                f"{outcome}: some level of {term} has no positive count, so its "
                "rate in the hurdle count part is not identified; merge that level"
            )


# --- descriptives and checks -----------------------------------------------------------------


def describe_counts(frame: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """Per arm and overall: n, mean, SD, variance/mean, share of zeros, max, events, rate per person-year.

    The variance-to-mean ratio is a first look at overdispersion (1 under a Poisson with equal
    exposure); the rate divides events by the summed days at risk, so shortened follow-up counts.
    """
    if outcome not in frame.columns:
        raise AnalysisError(f"outcome '{outcome}' is not a column of the analysis frame")
    groups = [(str(arm), part) for arm, part in frame.groupby("arm", observed=True)]
    rows = []
    for arm, part in [*groups, ("all", frame)]:
        y, days = part[outcome].astype(float), part["exposure_days"].astype(float)
        mean, sd = y.mean(), y.std(ddof=1)
        rows.append(
            {
                "outcome": outcome,
                "arm": arm,
                "n": int(len(y)),
                "mean": mean,
                "sd": sd,
                "variance_to_mean": sd**2 / mean if mean > 0 else math.nan,
                "share_zero": float((y == 0).mean()),
                "max": float(y.max()),
                "events": float(y.sum()),
                "person_years": float(days.sum() / 365.25),
                "rate_per_person_year": float(y.sum() / (days.sum() / 365.25)),
            }
        )
    return pd.DataFrame(rows)


def overdispersion_test(
    poisson_fit: CountModelFit, trafo: int | None = None, alternative: str = "greater"
) -> pd.DataFrame:
    """Pearson chi-square / df and the Cameron-Trivedi (1990) test, as AER::dispersiontest.

    Cameron & Trivedi (1990), J. Econometrics 46:347-364: with a_i = ((y_i - mu_i)^2 - y_i)/mu_i,
    trafo=None tests Var = c mu (z = sqrt(n) mean(a)/sd(a), estimate c = 1 + mean(a));
    trafo=1 or 2 regresses a_i on mu_i^(trafo-1) without intercept (alpha of Var = mu + alpha mu^trafo,
    OLS t statistic referred to N(0,1)). alternative: "greater" (overdispersion), "two.sided", "less".
    """
    if poisson_fit.model != "poisson":
        raise AnalysisError("overdispersion_test needs a Poisson fit (fit_poisson)")
    y, mu = poisson_fit._y, poisson_fit._mu
    n, k = len(y), poisson_fit.n_params
    chi2 = float(np.sum((y - mu) ** 2 / mu))
    rows = [
        Estimate(
            "Pearson chi2/df",
            chi2 / (n - k),
            df=n - k,
            statistic=chi2,
            p=float(stats.chi2.sf(chi2, n - k)),
            method="Pearson chi-square / residual df",
            notes="1 under a Poisson model; p is upper-tail chi-square(n - p)",
        )
    ]
    aux = ((y - mu) ** 2 - y) / mu
    if trafo is None:
        z, est, label = math.sqrt(n) * aux.mean() / aux.std(ddof=1), 1 + aux.mean(), "dispersion c"
    else:
        x = mu**trafo / mu
        est = float(x @ aux / (x @ x))
        resid = aux - est * x
        z, label = est / math.sqrt(resid @ resid / (n - 1) / (x @ x)), f"alpha (trafo={trafo})"
    p = {"greater": stats.norm.sf(z), "less": stats.norm.cdf(z), "two.sided": 2 * stats.norm.sf(abs(z))}[alternative]
    rows.append(
        Estimate(
            label,
            float(est),
            statistic=float(z),
            p=float(p),
            method=f"Cameron-Trivedi auxiliary regression test ({alternative}), as AER::dispersiontest",
            notes="H0: equidispersion (c = 1 / alpha = 0)",
        )
    )
    return to_frame(rows)


def zero_check(fits: Sequence[CountModelFit]) -> pd.DataFrame:
    """Observed zeros against the zeros each fitted model expects, sum_i P(Y_i = 0).

    A Poisson or NB2 model expecting far fewer zeros than observed points to excess zeros and to
    the zero-modified models (the hurdle model reproduces the observed count by construction).
    """
    rows = []
    for fit in fits:
        observed = float(np.sum(fit._y == 0))
        expected = float(np.sum(fit.predict_pmf([0])))
        rows.append(
            {
                "outcome": fit.outcome,
                "model": fit.model,
                "n": fit.nobs,
                "observed_zeros": observed,
                "expected_zeros": expected,
                "observed_minus_expected": observed - expected,
                "observed_to_expected": observed / expected if expected > 0 else math.nan,
            }
        )
    return pd.DataFrame(rows)


# --- model comparison ------------------------------------------------------------------------


def vuong_test(model_a: CountModelFit, model_b: CountModelFit, count_dispersion: bool = False) -> pd.DataFrame:
    """Vuong (1989) non-nested test, raw and AIC- / BIC-corrected, exactly as pscl::vuong.

    m_i = log P_a(y_i) - log P_b(y_i); z = sum(m_i - c) / (sqrt(n) sd(m_i)) with c = 0 (raw),
    (k_a - k_b)/n (AIC) or (k_a - k_b) log(n)/(2n) (BIC). k counts regression coefficients only,
    as pscl does (theta not counted); count_dispersion=True counts theta too. p is one-sided in the
    direction of z; z > 0 favours model a. Cases with non-finite log-probabilities are dropped.
    Caution: for nested pairs (NB2 inside ZINB) the null distribution is not N(0, 1) (Wilson 2015,
    Economics Letters 127:51-53); read it as a descriptive comparison there.
    """
    if model_a.nobs != model_b.nobs or np.any(model_a._y != model_b._y):
        raise AnalysisError("vuong_test needs two models fitted to the same counts")
    m = model_a.pointwise_loglik() - model_b.pointwise_loglik()
    good = np.isfinite(m)
    m, n = m[good], int(good.sum())
    k_a = model_a.n_params if count_dispersion else model_a.n_coef
    k_b = model_b.n_params if count_dispersion else model_b.n_coef
    corrections = {"raw": 0.0, "AIC-corrected": (k_a - k_b) / n, "BIC-corrected": (k_a - k_b) * math.log(n) / (2 * n)}
    method = f"Vuong non-nested test, {model_a.model} vs {model_b.model}, as pscl::vuong"
    notes = "" if n == len(good) else f"{len(good) - n} case(s) with non-finite log-probabilities dropped"
    rows = []
    for name, c in corrections.items():
        d = m - c
        z = float(d.sum() / (d.std(ddof=1) * math.sqrt(n)))
        rows.append(
            Estimate(
                f"Vuong z ({name})",
                z,
                statistic=z,
                p=float(stats.norm.sf(abs(z))),
                method=method,
                notes=notes,
                extra={
                    "model_a": model_a.model,
                    "model_b": model_b.model,
                    "favours": model_a.model if z > 0 else model_b.model,
                },
            )
        )
    return to_frame(rows)


@dataclass(frozen=True)
class ModelComparison(ResultMixin):
    """All fitted models side by side, the Vuong tests, and the reported model with the reason."""

    outcome: str
    rule: str
    table: pd.DataFrame
    vuong: pd.DataFrame
    chosen: str
    reason: str

    def to_frame(self) -> pd.DataFrame:
        """The Vuong tests between the fitted models as Estimate rows (the fit statistics are in `table`)."""
        return self.vuong.copy()

    def summary(self) -> str:
        """The selection rule, the chosen model and why, the models side by side and the Vuong tests."""
        text = summary_block(
            f"Count-model comparison for {self.outcome} (rule: {self.rule})",
            [("chosen", self.chosen), ("reason", self.reason)],
            self.vuong,
        )
        return text + "\n\n" + (self.table.to_string(index=False) if not self.table.empty else "(no models)")


SELECTION_RULES = ("aic", "bic", "vuong")


def compare_models(fits: Sequence[CountModelFit], rule: str = "aic", alpha: float = 0.05) -> ModelComparison:
    """Compare fitted models of one outcome and pick the one to report by a stated rule.

    Only converged models without warnings are eligible. Rules:
    - "aic" / "bic": the lowest AIC / BIC.
    - "vuong": start from Poisson; NB2 replaces it if the likelihood-ratio test of theta = infinity
      (alpha = 0, on the boundary: p = P(chi2_1 > LR) / 2) has p < `alpha`; then a zero-modified
      model (ZINB, hurdle NB) replaces the current choice if the AIC-corrected Vuong z favours it
      with one-sided p < `alpha` (the larger z if both do).
    """
    if rule not in SELECTION_RULES:
        raise AnalysisError(f"unknown model selection rule '{rule}'; use one of {SELECTION_RULES}")
    if not fits or len({f.outcome for f in fits}) != 1:
        raise AnalysisError("compare_models needs at least one fit, all of the same outcome")
    by_name = {f.model: f for f in fits}
    eligible = {name: f for name, f in by_name.items() if f.converged}
    vuong = _vuong_pairs(eligible)
    if not eligible:
        chosen, reason = "none", "no model converged cleanly; see each model's warnings"
    elif rule in ("aic", "bic"):
        chosen = min(eligible.values(), key=lambda f: getattr(f, rule)).model
        reason = f"lowest {rule.upper()} among converged models ({getattr(eligible[chosen], rule):.2f})"
    else:
        chosen, reason = _vuong_choice(eligible, vuong, alpha)
    skipped = sorted(set(by_name) - set(eligible))
    if skipped:
        reason += f"; not eligible (not converged or flagged): {skipped}"
    return ModelComparison(fits[0].outcome, rule, _comparison_table(fits), vuong, chosen, reason)


def _vuong_pairs(eligible: dict) -> pd.DataFrame:
    frames = [
        vuong_test(eligible[a], eligible[b])
        for a, b in [("nb2", "poisson"), ("zinb", "nb2"), ("hurdle_nb", "nb2"), ("zinb", "hurdle_nb")]
        if a in eligible and b in eligible
    ]
    return pd.concat(frames, ignore_index=True) if frames else to_frame([])


def _vuong_choice(eligible: dict, vuong: pd.DataFrame, alpha: float) -> tuple[str, str]:
    current = "poisson" if "poisson" in eligible else "nb2"
    reason = f"start from {current}"
    if current == "poisson" and "nb2" in eligible:
        lr = max(2 * (eligible["nb2"].loglik - eligible["poisson"].loglik), 0.0)
        p = 0.5 * stats.chi2.sf(lr, 1)
        if p < alpha:
            current, reason = "nb2", f"NB2 over Poisson: LR = {lr:.2f}, boundary p = {p:.3g}"
        else:
            reason = f"Poisson kept: LR for theta = {lr:.2f}, boundary p = {p:.3g}"
    if current not in eligible:
        return "none", "neither Poisson nor NB2 converged; the vuong rule needs one of them"
    best = None
    for zero_model in ("zinb", "hurdle_nb"):
        z, p = _aic_vuong(vuong, zero_model, current)
        if z > 0 and p < alpha and (best is None or z > best[1]):
            best = (zero_model, z, p)
    if best:
        return best[0], reason + f"; {best[0]} over {current}: AIC-corrected Vuong z = {best[1]:.2f}, p = {best[2]:.3g}"
    return current, reason + f"; no zero-modified model beats {current} by the AIC-corrected Vuong test at {alpha}"


def _aic_vuong(vuong: pd.DataFrame, model_a: str, model_b: str) -> tuple[float, float]:
    """(z, p) of the AIC-corrected Vuong test of model_a vs model_b, or (nan, nan) if not run."""
    if vuong.empty:
        return math.nan, math.nan
    hit = vuong[
        (vuong["model_a"] == model_a) & (vuong["model_b"] == model_b) & (vuong["quantity"] == "Vuong z (AIC-corrected)")
    ]
    return (float(hit["statistic"].iloc[0]), float(hit["p"].iloc[0])) if len(hit) else (math.nan, math.nan)


def _comparison_table(fits: Sequence[CountModelFit]) -> pd.DataFrame:
    rows = []
    min_aic = min(f.aic for f in fits)
    min_bic = min(f.bic for f in fits)
    for f in fits:
        irr = f.effects[f.effects["quantity"].str.startswith("IRR")]
        irr = irr.iloc[0] if len(irr) else None
        rows.append(
            {
                "outcome": f.outcome,
                "model": f.model,
                "converged": f.converged,
                "warnings": "; ".join(f.warnings),
                "n_params": f.n_params,
                "loglik": f.loglik,
                "aic": f.aic,
                "bic": f.bic,
                "delta_aic": f.aic - min_aic,
                "delta_bic": f.bic - min_bic,
                "irr_arm": irr["estimate"] if irr is not None else math.nan,
                "irr_ci_low": irr["ci_low"] if irr is not None else math.nan,
                "irr_ci_high": irr["ci_high"] if irr is not None else math.nan,
                "irr_p": irr["p"] if irr is not None else math.nan,
                "theta": f.theta,
            }
        )
    return pd.DataFrame(rows)


# --- rootograms ------------------------------------------------------------------------------


def rootogram_data(model: CountModelFit, max_count: int | None = None) -> pd.DataFrame:
    """Observed and expected frequencies per count 0..max_count, on the square-root scale too.

    Expected frequency of count c is sum_i P(Y_i = c) under the fitted model (Kleiber & Zeileis
    2016, "Visualizing count data regressions using rootograms", Am. Stat. 70:296-303). In the
    hanging rootogram a bar of height sqrt(observed) hangs from the curve sqrt(expected); its
    bottom (`hang_bottom`) sits at 0 where the model fits that count.
    """
    y = model._y
    top = int(y.max()) if max_count is None else int(max_count)
    if top < 0:
        raise AnalysisError("max_count must be a non-negative count")
    counts = np.arange(top + 1)
    expected = model.predict_pmf(counts).sum(axis=0)
    observed = np.array([np.sum(y == c) for c in counts], dtype=float)
    frame = pd.DataFrame(
        {
            "outcome": model.outcome,
            "model": model.model,
            "count": counts,
            "observed": observed,
            "expected": expected,
            "sqrt_observed": np.sqrt(observed),
            "sqrt_expected": np.sqrt(expected),
        }
    )
    frame["hang_bottom"] = frame["sqrt_expected"] - frame["sqrt_observed"]
    frame.attrs["observed_above_max"] = int(np.sum(y > top))
    return frame


def bin_rootogram_data(data: pd.DataFrame, max_bars: int) -> pd.DataFrame:
    """Group a long `rootogram_data` frame into at most `max_bars` bars, keeping 0 as its own bar.

    Counts 1..max are cut into equal-width bins (as the `breaks` of Kleiber & Zeileis 2016);
    observed and expected frequencies are summed within a bin before the square root is taken.
    Columns `count_low`, `count_high` and `width` say what each bar covers; `count` is its centre.
    """
    if max_bars < 2:
        raise AnalysisError("a rootogram needs at least 2 bars (zero and the positive counts)")
    top = int(data["count"].max())
    if top + 1 <= max_bars:
        return data.assign(count_low=data["count"], count_high=data["count"], width=1.0)
    width = math.ceil(top / (max_bars - 1))
    group = np.where(data["count"] == 0, 0, (data["count"] - 1) // width + 1)
    summed = data.groupby(group).agg(
        count_low=("count", "min"),
        count_high=("count", "max"),
        observed=("observed", "sum"),
        expected=("expected", "sum"),
    )
    frame = pd.DataFrame(
        {
            "outcome": data["outcome"].iloc[0],
            "model": data["model"].iloc[0],
            "count": (summed["count_low"] + summed["count_high"]) / 2,
            "observed": summed["observed"],
            "expected": summed["expected"],
            "sqrt_observed": np.sqrt(summed["observed"]),
            "sqrt_expected": np.sqrt(summed["expected"]),
            "count_low": summed["count_low"],
            "count_high": summed["count_high"],
            "width": (summed["count_high"] - summed["count_low"] + 1).astype(float),
        }
    )
    frame["hang_bottom"] = frame["sqrt_expected"] - frame["sqrt_observed"]
    frame.attrs.update(data.attrs)
    return frame.reset_index(drop=True)


def plot_rootogram(data: pd.DataFrame, title: str | None = None, ax=None):
    """Hanging rootogram from `rootogram_data` (or `bin_rootogram_data`): bars hang from the
    expected curve; returns the Figure."""
    import matplotlib

    if ax is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4)) if ax is None else (ax.figure, ax)
    binned = "width" in data.columns and bool((data["width"] > 1).any())
    # grouped counts are drawn one bar per group (equal widths) and labelled with their range
    x = np.arange(len(data)) if binned else data["count"]
    ax.bar(
        x,
        data["sqrt_observed"],
        bottom=data["hang_bottom"],
        width=0.8,
        color="0.75",
        edgecolor="0.4",
        label="observed (hanging)",
    )
    ax.plot(x, data["sqrt_expected"], color="C3", marker="o", ms=3, label="expected")
    ax.axhline(0, color="black", lw=0.8)
    if binned:
        labels = [f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}" for lo, hi in zip(data["count_low"], data["count_high"])]
        step = max(1, math.ceil(len(data) / 8))
        ax.set_xticks(x[::step], labels[::step], rotation=30, ha="right", fontsize=8)
    ax.set_xlabel(f"{data['outcome'].iloc[0]} (count{', grouped' if binned else ''})")
    ax.set_ylabel("sqrt(frequency)")
    ax.set_title(title or f"{data['outcome'].iloc[0]}: {data['model'].iloc[0]}")
    ax.legend(frameon=False)
    return fig


# --- one outcome, all models -----------------------------------------------------------------


def fit_count_models(
    frame: pd.DataFrame,
    outcome: str,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    robust: bool = False,
    zinb_zero_terms: Sequence[str] | None = ("arm",),
    hurdle_zero_terms: Sequence[str] | None = None,
) -> dict:
    """Fit Poisson, NB2, ZINB and hurdle NB to one outcome; a model that cannot be fitted on these
    data is recorded as its AnalysisError message under "errors" instead of stopping the others."""
    fitters = {
        "poisson": lambda: fit_poisson(frame, outcome, covariates, robust=robust),
        "nb2": lambda: fit_nb2(frame, outcome, covariates),
        "zinb": lambda: fit_zinb(frame, outcome, covariates, zero_terms=zinb_zero_terms),
        "hurdle_nb": lambda: fit_hurdle_nb(frame, outcome, covariates, zero_terms=hurdle_zero_terms),
    }
    fits, errors = {}, {}
    for name, fitter in fitters.items():
        try:
            fits[name] = fitter()
        except AnalysisError as err:
            errors[name] = str(err)
        except np.linalg.LinAlgError as err:  # a singular information matrix: no SEs, no estimate to report
            errors[name] = (
                f"{outcome}: numerical failure in the {name} model ({err}); the information "
                "matrix is singular, so no standard errors exist on these data"
            )
    return {"fits": fits, "errors": errors}
