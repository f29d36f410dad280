"""The rest of Jensen et al. 2019's trial analysis plan: model diagnostics, within-group change, post hoc
subscale ANCOVA, attendance dose-response and the complier-average causal effect (CACE).

Data: the one-row-per-participant frame of `trial.outcome_frame` (arm, covariates, sessions attended and
the outcome at baseline, post and fu12). The study design (keyword ``design``, `trial.design.StudyDesign`)
names the arms and the post-baseline visits; "IMR", "TAU", "post" and "fu12" below are the default design's
intervention, control, first and last visit.

* **Diagnostics** (seed: "Outliers were identified through Cook's D ... and all outliers were included.
  Residuals were tested for normality, linearity, and homoscedasticity, including using Spearman's
  rank-order correlation"). For the complete-case ANCOVA per visit (the model of `trial.complete_case`)
  and for the likelihood MMRM on the observed data (the model of `trial.likelihood_mmrm`; the ITT model
  fitted without imputation, since residuals of imputed values say nothing about the data):
  Cook's distance per participant (kept in every analysis; those above 4/n are listed by their row
  number in the analysed data, never by identifier), Shapiro-Wilk on the residuals, Spearman's rank
  correlation of |residual| with the fitted value (heteroscedasticity), and a centred quadratic
  baseline term (linearity of the baseline covariate). Residuals: raw for the ANCOVA (R's
  ``residuals(lm)``), normalized for the MMRM (each participant's residual vector premultiplied by the
  inverse lower Cholesky factor of Sigma, R's ``residuals(gls, type = "normalized")``), which are
  independent N(0, 1) under the model.
* **Cook's distance for the MMRM**, D_i = (b - b_(i))' V(b)^-1 (b - b_(i)) / p with V(b) and p from the full
  fit (Cook 1977; Christensen, Pearson & Johnson 1992, Technometrics 34:38). By default b_(i) is the GLS
  estimate without participant i at the full fit's covariance (closed form, the default of SAS PROC MIXED
  ``INFLUENCE``; fast enough for every outcome); ``refit=True`` re-estimates Sigma by REML for every
  deletion (as R's predictmeans::CookD; ~5 ms per participant). Both are pinned against R.
  For OLS it is R's ``cooks.distance``: r_i^2 h_i / (p s^2 (1 - h_i)^2).
* **Within-group change** (seed: post hoc linear mixed model, post and fu12 as repeated measures,
  baseline as a fixed-effect covariate, unstructured covariance, "only focusing on time effect within
  groups"): one REML GLS of ``0 + time + arm:time + baseline (+ covariates)``, unstructured Sigma, on the
  observed data; per arm the fu12 - post change (shared covariates cancel), and the difference of the
  changes; Satterthwaite df.
* **Subscale ANCOVA** (Jensen et al. 2019, Table 4, post hoc): fu12 ~ arm + post (+ covariates) by OLS among
  participants with both values; the arm F of R's ``car::Anova(type = 3)`` is t^2 of the arm coefficient.
* **Attendance** within the IMR arm: one-way ANOVA of the outcome on sessions attended as a continuous
  variable (F = t^2 of the slope), the slope adjusted for baseline, and the > threshold vs 0-threshold
  sessions difference adjusted for baseline.
* **CACE**: two-stage least squares, outcome ~ complied + baseline + covariates with randomisation as the
  instrument for complied = "attended more than ``threshold`` sessions" (0 in TAU by design); SE as
  ``AER::ivreg``'s default (homoskedastic, sigma^2 from the structural residuals on n - p), t(n - p).
  It rests on the exclusion restriction (being randomised to IMR changes the outcome only through
  attending more than ``threshold`` sessions) and on one-sided non-compliance (Angrist, Imbens & Rubin
  1996, JASA 91:444).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.errors import AnalysisError
from imrstats.results import Estimate, ResultMixin, summary_block, to_frame
from imrstats.trial.design import (
    DEFAULT_COVARIATES,
    DEFAULT_DESIGN,
    StudyDesign,
    analysable_rows,
    and_join,
    covariate_dummies,
    long_format,
    mmrm_design,
)
from imrstats.trial.mmrm import MMRMDesign, MMRMResult, fit_mmrm_grid, satterthwaite_df
from imrstats.trial.mmrm.reml import evaluate_reml, newton_reml, pattern_stats, vech_basis
from imrstats.trial.ols import fit_ols


def _name(outcome: str) -> str:
    return outcome or "the outcome"


# --------------------------------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelDiagnostics(ResultMixin):
    """Residual and influence checks of one fitted model.

    ``checks``: one row per check (cooks_distance, shapiro_wilk, spearman_abs_residual_fitted,
    baseline_quadratic) with statistic, p, passed and the method. ``cooks_rows``: 1-based row numbers,
    in the analysed data, of the participants with Cook's D > 4/n. The arrays (``fitted``,
    ``residuals``, ``cooks``, ``baseline``) are row-level and only feed the figures: `to_dict` leaves
    them out."""

    outcome: str
    model: str
    timepoint: str
    n: int
    checks: pd.DataFrame
    cooks_rows: tuple
    fitted: np.ndarray = dataclasses.field(repr=False)
    residuals: np.ndarray = dataclasses.field(repr=False)
    cooks: np.ndarray = dataclasses.field(repr=False)
    baseline: np.ndarray = dataclasses.field(repr=False)
    residual_kind: str = ""

    @property
    def failed(self) -> list[str]:
        bad = self.checks.loc[self.checks["passed"] == False]  # noqa: E712 (None = not a pass/fail check)
        return [f"{r['check']} ({r['detail']})" for _, r in bad.iterrows()]

    _json_skip = ("fitted", "residuals", "cooks", "baseline")
    _json_rename = {"cooks_rows": "cooks_rows_above_4_over_n", "residual_kind": "residuals"}

    def to_frame(self) -> pd.DataFrame:
        """One Estimate row per check: its statistic (as estimate and statistic), p, pass/fail and method."""
        return to_frame(
            [
                Estimate(
                    r["check"],
                    r["statistic"],
                    statistic=r["statistic"],
                    p=r.get("p", float("nan")),
                    method=str(r.get("method", "")),
                    notes=str(r.get("detail", "")),
                    extra={
                        "outcome": self.outcome,
                        "model": self.model,
                        "timepoint": self.timepoint,
                        "passed": r.get("passed"),
                    },
                )
                for _, r in self.checks.iterrows()
            ]
        )

    def summary(self) -> str:
        """The model checked, n, the checks and which failed."""
        return summary_block(
            f"Residual and influence checks: {self.model}, {self.outcome or 'the outcome'} at {self.timepoint}",
            [
                ("n", self.n),
                ("residuals", self.residual_kind),
                ("rows with Cook's D > 4/n", ", ".join(str(int(i)) for i in self.cooks_rows) or "none"),
                ("failed", "; ".join(self.failed) or "none"),
            ],
            self.to_frame(),
        )


def _residual_checks(
    resid, fitted, cooks, quad: tuple[float, float, float], *, n, alpha, method_model, quad_method
) -> pd.DataFrame:
    """The four checks as tidy rows; ``quad`` = (t or F statistic, p, estimate) of the quadratic term."""
    rows = []
    cut = 4.0 / n
    above = np.flatnonzero(cooks > cut)
    finite = cooks[np.isfinite(cooks)]
    rows.append(
        {
            "check": "cooks_distance",
            "statistic": float(finite.max()) if len(finite) else math.nan,
            "p": math.nan,
            "threshold": cut,
            "n_above": int(len(above)),
            "passed": None,
            "detail": f"{len(above)} of {n} participants above 4/n = {cut:.4f} (max D = "
            f"{finite.max() if len(finite) else math.nan:.3f}); all kept in the analysis",
            "method": f"Cook's distance, {method_model}",
        }
    )
    if len(resid) >= 3:
        w, p = stats.shapiro(resid)
        rows.append(
            {
                "check": "shapiro_wilk",
                "statistic": float(w),
                "p": float(p),
                "threshold": alpha,
                "n_above": math.nan,
                "passed": bool(p >= alpha),
                "detail": f"W = {w:.4f}, p = {p:.3g}",
                "method": "Shapiro-Wilk test of the residuals (Royston 1995, AS R94; R shapiro.test)",
            }
        )
        rho, p = stats.spearmanr(np.abs(resid), fitted)
        rows.append(
            {
                "check": "spearman_abs_residual_fitted",
                "statistic": float(rho),
                "p": float(p),
                "threshold": alpha,
                "n_above": math.nan,
                "passed": bool(p >= alpha),
                "detail": f"rho = {rho:.3f}, p = {p:.3g}",
                "method": "Spearman rank correlation of |residual| with the fitted value, t approximation "
                "on n - 2 df (R cor.test(method = 'spearman', exact = FALSE))",
            }
        )
    stat, p, est = quad
    rows.append(
        {
            "check": "baseline_quadratic",
            "statistic": float(stat),
            "p": float(p),
            "threshold": alpha,
            "n_above": math.nan,
            "passed": bool(p >= alpha) if math.isfinite(p) else None,
            "detail": f"quadratic baseline coefficient {est:.4g}, p = {p:.3g}",
            "method": quad_method,
        }
    )
    return pd.DataFrame(rows)


def _cooks_ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Cook's distance, fitted, raw residuals) of an OLS fit; R's cooks.distance."""
    n, p = X.shape
    q, _ = np.linalg.qr(X)
    h = (q**2).sum(axis=1)
    fitted = q @ (q.T @ y)
    e = y - fitted
    s2 = float(e @ e) / (n - p)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = e**2 * h / (p * s2 * (1 - h) ** 2)
    return d, fitted, e


def cc_diagnostics(
    frame: pd.DataFrame,
    *,
    outcome: str = "",
    timepoint: str | None = None,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    alpha: float = 0.05,
    design: StudyDesign = DEFAULT_DESIGN,
) -> ModelDiagnostics:
    """Diagnostics of the complete-case ANCOVA y_t ~ arm + baseline + covariates (`trial.complete_case`) at
    ``timepoint`` (default the last visit of ``design``)."""
    timepoint = design.visits[-1] if timepoint is None else timepoint
    if timepoint not in design.visits:
        raise AnalysisError(f"timepoint must be one of {design.visits}, got {timepoint!r}")
    rows, _ = analysable_rows(frame, covariates, design)
    cc = rows.loc[rows[timepoint].notna() & rows["baseline"].notna()].reset_index(drop=True)
    Z, _ = covariate_dummies(cc, covariates)
    b = cc["baseline"].to_numpy(float)
    X = np.column_stack([np.ones(len(cc)), (cc["arm"] == design.intervention).to_numpy(float), b, Z])
    y = cc[timepoint].to_numpy(float)
    what = f"complete-case ANCOVA of {_name(outcome)} at {timepoint}"
    fit_ols(X, y, what)  # raises a clear error on too few or collinear cases
    cooks, fitted, e = _cooks_ols(X, y)
    Xq = np.column_stack([X, (b - b.mean()) ** 2])
    fq = fit_ols(Xq, y, f"{what} with a quadratic baseline term")
    t = fq.beta[-1] / math.sqrt(fq.cov[-1, -1])
    quad = (t**2, float(2 * stats.t.sf(abs(t), fq.df)), float(fq.beta[-1]))
    model = (
        f"OLS {timepoint} ~ arm + baseline + {' + '.join(covariates)}"
        if covariates
        else f"OLS {timepoint} ~ arm + baseline"
    )
    checks = _residual_checks(
        e,
        fitted,
        cooks,
        quad,
        n=len(cc),
        alpha=alpha,
        method_model=f"complete-case {model} (R cooks.distance)",
        quad_method="nested-model F test of a centred (baseline - mean)^2 term added to the "
        f"ANCOVA (F(1, {fq.df}); R anova(lm, lm + I((baseline - mean)^2)))",
    )
    checks.insert(0, "timepoint", timepoint)
    checks.insert(0, "model", "complete-case ANCOVA")
    checks.insert(0, "outcome", outcome)
    checks.insert(3, "n", len(cc))
    return ModelDiagnostics(
        outcome,
        "complete-case ANCOVA",
        timepoint,
        len(cc),
        checks,
        tuple(int(i) + 1 for i in np.flatnonzero(cooks > 4.0 / len(cc))),
        fitted,
        e,
        cooks,
        b,
        "raw OLS residuals",
    )


def observed_mmrm_rows(
    frame: pd.DataFrame, covariates: Sequence[str], what: str, design: StudyDesign = DEFAULT_DESIGN
) -> pd.DataFrame:
    """Participants with complete covariates, an observed baseline and at least one observed visit."""
    rows, _ = analysable_rows(frame, covariates, design)
    keep = rows["baseline"].notna() & rows[list(design.visits)].notna().any(axis=1)
    rows = rows.loc[keep].reset_index(drop=True)
    for tp in design.visits:
        for arm in design.arms:
            if not (rows[tp].notna() & (rows["arm"] == arm)).any():
                raise AnalysisError(
                    f"{what}: no {arm} participant has an observed {tp} value (with a baseline): "
                    f"the repeated-measures model needs {and_join(design.visits)} in each arm"
                )
    return rows


def normalized_residuals(design: MMRMDesign, observed: np.ndarray, resid: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Per participant L^-1 r_i with Sigma[O_i, O_i] = L L' (lower Cholesky), on the grid (NaN off-pattern)."""
    out = np.full(resid.shape, np.nan)
    codes = observed @ (1 << np.arange(observed.shape[1]))
    for code in np.unique(codes[observed.any(axis=1)]):
        sel = codes == code
        mask = observed[np.flatnonzero(sel)[0]]
        L = np.linalg.cholesky(sigma[np.ix_(mask, mask)])
        z = np.linalg.solve(L, resid[np.ix_(sel, mask)].T).T
        block = out[sel]
        block[:, mask] = z
        out[sel] = block
    return out


def cooks_distance(
    design: MMRMDesign, y_grid: np.ndarray, fit: MMRMResult, *, refit: bool = False
) -> tuple[np.ndarray, int]:
    """Participant-level Cook's distance of an MMRM, D_i = (b - b_(i))' V(b)^-1 (b - b_(i)) / p (V(b), p of the
    full fit), in the order of ``design.ids`` (NaN for participants without an observed visit, or whose
    removal leaves the model inestimable). Returns (D, number of refits that failed or did not converge).

    ``refit=False``: b_(i) is the GLS estimate without participant i at the full fit's Sigma (closed form;
    Christensen, Pearson & Johnson 1992, Technometrics 34:38; SAS PROC MIXED ``INFLUENCE`` without ``ITER``).
    ``refit=True``: b_(i) from a REML refit without participant i, Sigma re-estimated (warm-started at the full
    Sigma; as R's predictmeans::CookD)."""
    observed = design.present & np.isfinite(y_grid)
    T, p = len(design.times), design.X.shape[2]
    V_inv = np.linalg.inv(fit.cov_beta)
    y0 = np.where(observed, y_grid, 0.0)
    Xm = design.X * observed[:, :, None]
    D = np.full(len(design.ids), np.nan)
    used = np.flatnonzero(observed.any(axis=1))
    if not refit:
        W = np.zeros((len(design.ids), T, T))
        for i in used:
            mask = observed[i]
            W[i][np.ix_(mask, mask)] = np.linalg.inv(fit.sigma[np.ix_(mask, mask)])
        xwx_i = np.einsum("nap,nab,nbq->npq", Xm, W, Xm)
        xwy_i = np.einsum("nap,nab,nb->np", Xm, W, y0)
        b_del = np.linalg.solve(
            xwx_i.sum(axis=0)[None] - xwx_i[used], (xwy_i.sum(axis=0)[None] - xwy_i[used])[..., None]
        )[..., 0]
        delta = fit.beta[None] - b_del
        D[used] = np.einsum("np,pq,nq->n", delta, V_inv, delta) / p
        return D, 0
    st = pattern_stats(design.X, y_grid, observed)
    E, pairs = vech_basis(T)
    failed = 0
    for i in used:
        k = int(np.flatnonzero((st.masks == observed[i]).all(axis=1))[0])
        rows = slice(k * T * T, (k + 1) * T * T)
        xx, xy, yy = st.xx.copy(), st.xy.copy(), st.yy.copy()
        xx[rows] -= np.einsum("ap,bq->abpq", Xm[i], Xm[i]).reshape(T * T, p * p)
        xy[rows] -= np.einsum("ap,b->abp", Xm[i], y0[i]).reshape(T * T, p)
        yy[rows] -= np.outer(y0[i], y0[i]).reshape(T * T)
        counts = st.counts.copy()
        counts[k] -= 1
        st_i = dataclasses.replace(st, xx=xx, xy=xy, yy=yy, counts=counts, n_obs=st.n_obs - int(observed[i].sum()))
        try:
            _, current, _, converged, _ = newton_reml(st_i, fit.sigma, E, pairs)
        except (AnalysisError, np.linalg.LinAlgError):
            failed += 1
            continue
        failed += not converged
        d = fit.beta - current["beta"]
        D[i] = float(d @ V_inv @ d) / p
    return D, failed


def observed_mmrm_design(
    rows: pd.DataFrame,
    covariates: Sequence[str],
    *,
    shared_baseline: bool | None = None,
    quadratic: bool = False,
    design: StudyDesign = DEFAULT_DESIGN,
):
    """The observed-data MMRM design of ``rows`` and its outcome grid; one common baseline slope with
    ``shared_baseline`` (default: as ``design.baseline_slope`` says), else one per visit."""
    long = long_format(rows, covariates, rows["baseline"].to_numpy(float), design=design)
    covs = tuple(covariates)
    if quadratic:
        b = rows["baseline"].to_numpy(float)
        long["baseline_sq"] = np.repeat((b - b.mean()) ** 2, len(design.visits))
        covs = covs + ("baseline_sq",)
    common = design.baseline_slope == "common" if shared_baseline is None else shared_baseline
    built = mmrm_design(long, covs, dataclasses.replace(design, baseline_slope="common" if common else "separate"))
    y = rows[list(design.visits)].to_numpy(float).reshape(-1)
    return built, built.outcome_grid(y)


def mmrm_diagnostics(
    frame: pd.DataFrame,
    *,
    outcome: str = "",
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    alpha: float = 0.05,
    cooks_refit: bool = False,
    design: StudyDesign = DEFAULT_DESIGN,
) -> ModelDiagnostics:
    """Diagnostics of the likelihood MMRM on the observed data (the ITT model without imputation):
    normalized residuals, participant-level Cook's distance (`cooks_distance`; ``cooks_refit`` chooses
    REML refits over the fixed-covariance closed form), centred quadratic baseline term."""
    what = f"MMRM diagnostics of {_name(outcome)}"
    study = design
    rows = observed_mmrm_rows(frame, covariates, what, study)
    design, grid = observed_mmrm_design(rows, covariates, design=study)
    fit = fit_mmrm_grid(design, grid)
    observed = design.present & np.isfinite(grid)
    fitted = design.X @ fit.beta
    z = normalized_residuals(design, observed, grid - fitted, fit.sigma)
    cooks, n_failed = cooks_distance(design, grid, fit, refit=cooks_refit)
    qdesign, qgrid = observed_mmrm_design(rows, covariates, quadratic=True, design=study)
    qfit = fit_mmrm_grid(qdesign, qgrid)
    fe = qfit.fixed_effects.set_index("term").loc["baseline_sq"]
    quad = (float(fe["statistic"]), float(fe["p"]), float(fe["estimate"]))
    base = np.repeat(rows["baseline"].to_numpy(float)[:, None], len(study.visits), axis=1)[observed]
    visits = ", ".join(study.visit_label(v) for v in study.visits)
    slope = "" if study.baseline_slope == "separate" else "; one common baseline slope"
    model = f"REML GLS MMRM ({visits}; unstructured covariance{slope}) of the observed data"
    checks = _residual_checks(
        z[observed],
        fitted[observed],
        cooks,
        quad,
        n=len(design.ids),
        alpha=alpha,
        method_model=f"{model}, "
        + (
            "delete-one-participant REML refits"
            if cooks_refit
            else "delete-one-participant GLS at the full fit's covariance (Christensen et al. 1992)"
        )
        + ", D = (b - b_(i))' V^-1 (b - b_(i)) / p",
        quad_method="Wald t test (Satterthwaite df) of a centred (baseline - mean)^2 term added to the MMRM",
    )
    if not fit.converged or n_failed:
        checks.loc[checks["check"] == "cooks_distance", "detail"] += (
            f"; {n_failed} delete-one refit(s) did not converge" if n_failed else ""
        )
    all_visits = "+".join(study.visits)
    checks.insert(0, "timepoint", all_visits)
    checks.insert(0, "model", "MMRM (observed data)")
    checks.insert(0, "outcome", outcome)
    checks.insert(3, "n", len(design.ids))
    if not fit.converged:
        checks.loc[len(checks)] = {
            "outcome": outcome,
            "model": "MMRM (observed data)",
            "timepoint": all_visits,
            "n": len(design.ids),
            "check": "convergence",
            "statistic": math.nan,
            "p": math.nan,
            "threshold": math.nan,
            "n_above": math.nan,
            "passed": False,
            "detail": fit.notes,
            "method": fit.method,
        }
    return ModelDiagnostics(
        outcome,
        "MMRM (observed data)",
        all_visits,
        len(design.ids),
        checks,
        tuple(int(i) + 1 for i in np.flatnonzero(cooks > 4.0 / len(design.ids))),
        fitted[observed],
        z[observed],
        cooks,
        base,
        "normalized GLS residuals",
    )


# --------------------------------------------------------------------------------------------------
# Within-group change
# --------------------------------------------------------------------------------------------------


def within_group_change(
    frame: pd.DataFrame,
    *,
    outcome: str = "",
    covariates: Sequence[str] = (),
    level: float = 0.95,
    design: StudyDesign = DEFAULT_DESIGN,
) -> pd.DataFrame:
    """Per arm, last - first post-baseline visit (the default design's fu12 - post) from Jensen et al. 2019's
    post hoc mixed model over every visit (0 + time + arm:time + baseline + covariates, unstructured
    covariance, REML, observed data), and intervention change - control change; Satterthwaite df. Rows carry
    ``arm`` (the intervention, the control or 'intervention - control', as codes), n (with n per visit of the
    two) and the fit's convergence. Needs two post-baseline visits or more."""
    what = f"within-group change of {_name(outcome)}"
    if len(design.visits) < 2:
        raise AnalysisError(f"{what}: one post-baseline visit ({design.visits[0]}): no change between visits")
    study, first, last = design, design.visits[0], design.visits[-1]
    rows = observed_mmrm_rows(frame, covariates, what, study)
    design, grid = observed_mmrm_design(rows, covariates, shared_baseline=True, design=study)
    fit = fit_mmrm_grid(design, grid, level=level)
    col = {c: j for j, c in enumerate(design.columns)}
    treat_last, treat_first = (f"arm[{study.intervention}]:time[{t}]" for t in (last, first))
    L = np.zeros((3, len(design.columns)))
    L[:, col[f"time[{last}]"]], L[:, col[f"time[{first}]"]] = 1.0, -1.0  # control (reference arm)
    L[0, col[treat_last]], L[0, col[treat_first]] = 1.0, -1.0
    L[2] = 0.0
    L[2, col[treat_last]], L[2, col[treat_first]] = 1.0, -1.0
    observed = design.present & np.isfinite(grid)
    dcov = evaluate_reml(pattern_stats(design.X, grid, observed), fit.sigma, vech_basis(len(study.visits))[0])[
        "dcov_beta"
    ]
    df = satterthwaite_df(L, fit.cov_beta, dcov, fit.cov_theta)
    est = L @ fit.beta
    se = np.sqrt(np.einsum("lp,pq,lq->l", L, fit.cov_beta, L))
    arm_of = design.arm_of
    model = "0 + time + arm:time + baseline" + "".join(f" + {c}" for c in covariates)
    method = f"REML GLS ({model}; unstructured covariance), observed data; Satterthwaite df"
    out = []
    change = f"{study.visit_label(last)} - {study.visit_label(first)}"
    i, c = study.intervention, study.control
    for k, (arm, label) in enumerate(
        (
            (i, f"change {change}, {study.arm_label(i)}"),
            (c, f"change {change}, {study.arm_label(c)}"),
            (f"{i} - {c}", f"difference in change {change}, {study.contrast_label}"),
        )
    ):
        sel = np.ones(len(arm_of), bool) if k == 2 else (arm_of == (arm == i))
        extra = {
            "outcome": outcome,
            "arm": arm,
            "n": int(observed[sel].any(axis=1).sum()),
            f"n_{first}": int(observed[sel, 0].sum()),
            f"n_{last}": int(observed[sel, len(study.visits) - 1].sum()),
            "converged": bool(fit.converged),
        }
        out.append(Estimate.from_t(label, est[k], se[k], df[k], level, method, notes=fit.notes, extra=extra))
    return to_frame(out)


# --------------------------------------------------------------------------------------------------
# Subscale ANCOVA
# --------------------------------------------------------------------------------------------------


def subscale_ancova(
    frame: pd.DataFrame,
    *,
    outcome: str = "",
    timepoint: str | None = None,
    covariate_timepoint: str | None = None,
    covariates: Sequence[str] = (),
    level: float = 0.95,
    design: StudyDesign = DEFAULT_DESIGN,
) -> pd.DataFrame:
    """Jensen et al. 2019, Table 4 post hoc: OLS ``timepoint ~ arm + covariate_timepoint (+ covariates)`` among
    participants with both values (default: the last visit on the one before it, or on the baseline with one
    visit); intervention - control with its t CI and p, the type III F (= t^2) and n / mean / SD per arm."""
    timepoint = design.visits[-1] if timepoint is None else timepoint
    if covariate_timepoint is None:
        covariate_timepoint = design.visits[-2] if len(design.visits) > 1 else "baseline"
    for tp in (timepoint, covariate_timepoint):
        if tp not in design.outcome_columns:
            raise AnalysisError(f"timepoint {tp!r} is not one of {', '.join(design.outcome_columns)}")
    rows, _ = analysable_rows(frame, covariates, design)
    cc = rows.loc[rows[timepoint].notna() & rows[covariate_timepoint].notna()]
    for arm in design.arms:
        if not (cc["arm"] == arm).any():
            raise AnalysisError(
                f"subscale ANCOVA of {_name(outcome)}: no {arm} participant has both "
                f"{covariate_timepoint} and {timepoint} values"
            )
    Z, _ = covariate_dummies(cc, covariates)
    X = np.column_stack(
        [
            np.ones(len(cc)),
            (cc["arm"] == design.intervention).to_numpy(float),
            cc[covariate_timepoint].to_numpy(float),
            Z,
        ]
    )
    fit = fit_ols(X, cc[timepoint].to_numpy(float), f"subscale ANCOVA of {_name(outcome)} at {timepoint}")
    extra = {"outcome": outcome, "timepoint": timepoint, "covariate": covariate_timepoint, "n": int(len(cc))}
    for arm in design.arms:
        y = cc.loc[cc["arm"] == arm, timepoint]
        key = design.arm_key(arm)
        extra.update(
            {
                f"n_{key}": int(len(y)),
                f"mean_{key}": float(y.mean()),
                f"sd_{key}": float(y.std(ddof=1)) if len(y) > 1 else math.nan,
            }
        )
    formula = f"{timepoint} ~ arm + {covariate_timepoint}" + "".join(f" + {c}" for c in covariates)
    est = Estimate.from_t(
        f"{design.contrast_label} at {design.visit_label(design.visit_code(timepoint))}",
        fit.beta[1],
        math.sqrt(fit.cov[1, 1]),
        fit.df,
        level,
        f"complete-case ANCOVA (OLS) {formula}; t(n - p), type III F = t^2",
        extra=extra,
    )
    est = dataclasses.replace(est, extra={**extra, "F": est.statistic**2, "df1": 1, "df2": int(fit.df)})
    return to_frame([est])


# --------------------------------------------------------------------------------------------------
# Attendance: dose-response and CACE
# --------------------------------------------------------------------------------------------------


def _imr_attendance(
    frame: pd.DataFrame, timepoint: str, outcome: str, need_baseline: bool, design: StudyDesign = DEFAULT_DESIGN
) -> pd.DataFrame:
    """The intervention arm's rows with sessions attended and a ``timepoint`` value (and baseline)."""
    if timepoint not in design.visits:
        raise AnalysisError(f"timepoint must be one of {design.visits}, got {timepoint!r}")
    arm = design.arm_label(design.intervention)
    imr = frame.loc[frame["arm"] == design.intervention]
    if imr.empty:
        raise AnalysisError(f"no participant in the {arm} arm: attendance analyses need {arm} participants")
    ok = imr[timepoint].notna() & imr["sessions_attended"].notna()
    if need_baseline:
        ok &= imr["baseline"].notna()
    d = imr.loc[ok]
    if len(d) < 3:
        raise AnalysisError(
            f"attendance analysis of {_name(outcome)}: only {len(d)} {arm} participant(s) with "
            f"sessions attended and a {timepoint} value{' and a baseline' if need_baseline else ''}"
        )
    if (d["sessions_attended"] == d["sessions_attended"].iloc[0]).all():
        raise AnalysisError(
            f"attendance analysis of {_name(outcome)}: every analysed {arm} participant attended "
            f"{d['sessions_attended'].iloc[0]:g} sessions; no variation in attendance to relate "
            "the outcome to (was attendance recorded?)"
        )
    return d


def attendance_dose_response(
    frame: pd.DataFrame,
    *,
    outcome: str = "",
    threshold: int = 10,
    timepoint: str | None = None,
    level: float = 0.95,
    design: StudyDesign = DEFAULT_DESIGN,
) -> pd.DataFrame:
    """Within the intervention arm, observed cases at ``timepoint`` (default the last visit): (1) one-way ANOVA
    of the outcome on sessions attended as a continuous variable (F = t^2 of the OLS slope); (2) the slope
    adjusted for baseline; (3) > threshold minus 0-threshold sessions adjusted for baseline, with n / mean / SD
    of both groups."""
    timepoint = design.visits[-1] if timepoint is None else timepoint
    d0 = _imr_attendance(frame, timepoint, outcome, need_baseline=False, design=design)
    name, arm, at = _name(outcome), design.arm_label(design.intervention), design.visit_label(timepoint)
    s0, y0 = d0["sessions_attended"].to_numpy(float), d0[timepoint].to_numpy(float)
    f = fit_ols(np.column_stack([np.ones(len(d0)), s0]), y0, f"ANOVA of {name} on sessions")
    base = {"outcome": outcome, "timepoint": timepoint}
    rows = [
        Estimate.from_t(
            f"change per session attended at {at} (unadjusted)",
            f.beta[1],
            math.sqrt(f.cov[1, 1]),
            f.df,
            level,
            f"{arm} arm, observed cases; one-way ANOVA of {timepoint} on sessions attended as a continuous "
            "variable (OLS slope; F(1, n - 2) = t^2)",
            extra={**base, "n": len(d0), "adjusted_for": ""},
        )
    ]
    rows[0] = dataclasses.replace(
        rows[0], extra={**rows[0].extra, "F": rows[0].statistic ** 2, "df1": 1, "df2": int(f.df)}
    )
    d = _imr_attendance(frame, timepoint, outcome, need_baseline=True, design=design)
    s, y, b = d["sessions_attended"].to_numpy(float), d[timepoint].to_numpy(float), d["baseline"].to_numpy(float)
    f = fit_ols(np.column_stack([np.ones(len(d)), s, b]), y, f"regression of {name} on sessions and baseline")
    rows.append(
        Estimate.from_t(
            f"change per session attended at {at}, adjusted for baseline",
            f.beta[1],
            math.sqrt(f.cov[1, 1]),
            f.df,
            level,
            f"{arm} arm, observed cases; OLS {timepoint} ~ sessions + baseline; t(n - p)",
            extra={**base, "n": len(d), "adjusted_for": "baseline"},
        )
    )
    high = s > threshold
    if high.all() or not high.any():
        raise AnalysisError(
            f"attendance split of {name}: every analysed {arm} participant attended "
            f"{'more than' if high.all() else 'at most'} {threshold} sessions; no contrast"
        )
    f = fit_ols(np.column_stack([np.ones(len(d)), high.astype(float), b]), y, f"attendance split of {name}")
    extra = {**base, "n": len(d), "adjusted_for": "baseline", "threshold": threshold}
    for key, sel in (("low", ~high), ("high", high)):
        extra.update(
            {
                f"n_{key}": int(sel.sum()),
                f"mean_{key}": float(y[sel].mean()),
                f"sd_{key}": float(y[sel].std(ddof=1)) if sel.sum() > 1 else math.nan,
            }
        )
    rows.append(
        Estimate.from_t(
            f">{threshold} minus 0-{threshold} sessions at {at}, adjusted for baseline",
            f.beta[1],
            math.sqrt(f.cov[1, 1]),
            f.df,
            level,
            f"{arm} arm, observed cases; OLS {timepoint} ~ (sessions > {threshold}) + baseline; t(n - p)",
            extra=extra,
        )
    )
    return to_frame(rows)


def _tsls(y, X, Z):
    """2SLS with the homoskedastic SE of AER::ivreg: beta = (X'P_Z X)^-1 X'P_Z y, sigma^2 = |y - X b|^2 / (n - p)."""
    n, p = X.shape
    qz, _ = np.linalg.qr(Z)
    Xh = qz @ (qz.T @ X)
    if np.linalg.matrix_rank(Xh) < p:
        raise AnalysisError("the instrument does not move the treatment: the first stage is degenerate")
    A = np.linalg.inv(Xh.T @ Xh)
    beta = A @ (Xh.T @ y)
    e = y - X @ beta
    s2 = float(e @ e) / (n - p)
    return beta, s2 * A, n - p


def cace_iv(
    frame: pd.DataFrame,
    *,
    outcome: str = "",
    threshold: int = 10,
    timepoint: str | None = None,
    covariates: Sequence[str] = DEFAULT_COVARIATES,
    level: float = 0.95,
    design: StudyDesign = DEFAULT_DESIGN,
) -> pd.DataFrame:
    """Complier-average causal effect of attending more than ``threshold`` sessions, by 2SLS with the
    randomised arm as the instrument (module docstring); rows: the CACE, the ITT effect (reduced form)
    and the first stage (intervention - control difference in the proportion attending > threshold), all in
    the same sample (observed ``timepoint`` (default the last visit) and baseline, complete covariates)."""
    timepoint = design.visits[-1] if timepoint is None else timepoint
    if timepoint not in design.visits:
        raise AnalysisError(f"timepoint must be one of {design.visits}, got {timepoint!r}")
    rows, _ = analysable_rows(frame, covariates, design)
    d = rows.loc[rows[timepoint].notna() & rows["baseline"].notna() & rows["sessions_attended"].notna()]
    name = _name(outcome)
    for arm in design.arms:
        if not (d["arm"] == arm).any():
            raise AnalysisError(f"CACE of {name}: no {arm} participant with {timepoint}, baseline and sessions")
    label_i, label_c = (design.arm_label(a) for a in design.arms)
    key, at = design.arm_key(design.intervention), design.visit_label(timepoint)
    z = (d["arm"] == design.intervention).to_numpy(float)
    sessions = d["sessions_attended"].to_numpy(float)
    tau_attended = int(((z == 0) & (sessions > 0)).sum())
    complied = z * (sessions > threshold)
    if not complied.any():
        raise AnalysisError(
            f"CACE of {name}: no {label_i} participant attended more than {threshold} sessions; the "
            "complier effect is not identified (no one received the treatment)"
        )
    y = d[timepoint].to_numpy(float)
    Zc, _ = covariate_dummies(d, covariates)
    exog = np.column_stack([np.ones(len(d)), d["baseline"].to_numpy(float), Zc])
    beta, cov, df = _tsls(y, np.column_stack([complied, exog]), np.column_stack([z, exog]))
    rhs = " + ".join(["baseline", *covariates])
    assumption = (
        f"rests on the exclusion restriction (randomisation to {label_i} affects {timepoint} only through "
        f"attending > {threshold} sessions) and one-sided non-compliance ({label_c} cannot attend)"
    )
    notes = assumption + (
        f"; {tau_attended} {label_c} participant(s) recorded with sessions > 0 were coded as non-compliers"
        if tau_attended
        else ""
    )
    extra = {
        "outcome": outcome,
        "timepoint": timepoint,
        "threshold": threshold,
        "n": int(len(d)),
        f"n_{key}": int(z.sum()),
        f"n_compliers_{key}": int(complied.sum()),
        f"compliance_{key}": float(complied.sum() / z.sum()),
    }
    cace = Estimate.from_t(
        f"CACE of attending >{threshold} sessions at {at}",
        beta[0],
        math.sqrt(cov[0, 0]),
        df,
        level,
        f"2SLS (instrument: randomised arm), {timepoint} ~ complied + {rhs}; homoskedastic SE as AER::ivreg, t(n - p)",
        extra=extra,
    )
    fs = fit_ols(np.column_stack([z, exog]), complied, f"CACE first stage of {name}")
    first = Estimate.from_t(
        f"first stage: {label_i} - {label_c} in P(attended >{threshold})",
        fs.beta[0],
        math.sqrt(fs.cov[0, 0]),
        fs.df,
        level,
        f"OLS complied ~ arm + {rhs} (linear probability); F = t^2",
        extra={**extra, "F": (fs.beta[0] ** 2 / fs.cov[0, 0])},
    )
    rf = fit_ols(np.column_stack([z, exog]), y, f"CACE reduced form of {name}")
    itt = Estimate.from_t(
        f"ITT (reduced form): {label_i} - {label_c} at {at}",
        rf.beta[0],
        math.sqrt(rf.cov[0, 0]),
        rf.df,
        level,
        f"OLS {timepoint} ~ arm + {rhs}, same sample; CACE = ITT / first stage",
        extra=extra,
    )
    return to_frame([dataclasses.replace(cace, notes=notes), itt, first])
