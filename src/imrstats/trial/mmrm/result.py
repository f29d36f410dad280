"""A fitted MMRM (`MMRMResult`) and its assembly from a REML fit (`assemble_result`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.errors import AnalysisError
from imrstats.results import Estimate, ResultMixin, confint_t, summary_block, to_frame
from imrstats.trial.mmrm.ddf import kenward_roger_df, kenward_roger_f_test, satterthwaite_df
from imrstats.trial.mmrm.design import reference_grid


@dataclass(frozen=True)
class MMRMResult(ResultMixin):
    """A fitted MMRM.

    Numbers are held as arrays (cheap to make, so 100 refits per outcome stay fast); the Estimate
    frames ``fixed_effects``, ``contrasts`` (treatment - reference per visit) and ``adjusted_means`` (arm x visit)
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
    means_texts: tuple = ()  # the adjusted means' printed quantities (default "adjusted mean <arm> at <visit>")

    @property
    def contrast_estimate(self) -> np.ndarray:
        return self.contrast_L @ self.beta

    @property
    def contrast_se(self) -> np.ndarray:
        return np.sqrt(np.einsum("lp,pq,lq->l", self.contrast_L, self.cov_beta, self.contrast_L))

    @cached_property
    def fixed_effects(self) -> pd.DataFrame:
        L = np.eye(len(self.columns))
        return to_frame(
            self._estimates(L, list(self.columns), self.df_beta, self.method, [{"term": c} for c in self.columns])
        )

    @cached_property
    def contrasts(self) -> pd.DataFrame:
        return to_frame(
            self._estimates(
                self.contrast_L,
                list(self.contrast_labels),
                self.contrast_df,
                self.method,
                [{"timepoint": str(t)} for t in self.times],
            )
        )

    @cached_property
    def adjusted_means(self) -> pd.DataFrame:
        labels = list(self.means_texts) or [f"adjusted mean {a} at {t}" for a, t in self.means_labels]
        extras = [{"arm": a, "timepoint": str(t)} for a, t in self.means_labels]
        return to_frame(
            self._estimates(self.means_L, labels, self.means_df, f"{self.method}; {self.grid_method}", extras)
        )

    @cached_property
    def covariance(self) -> pd.DataFrame:
        names = [str(t) for t in self.times]
        return pd.DataFrame(self.sigma, index=names, columns=names)

    def f_test(self, L: np.ndarray, *, rhs: np.ndarray | None = None, quantity: str = "F test") -> Estimate:
        """Kenward-Roger F test of H0: L beta = rhs (`kenward_roger_f_test`); needs a fit made with
        ``df_method="kenward_roger"``."""
        if self.df_method != "kenward_roger":
            raise AnalysisError("the multi-row F test is the Kenward-Roger one: refit with df_method='kenward_roger'")
        est = kenward_roger_f_test(
            L, self.beta, self.cov_beta_model, self.cov_beta, self.dcov_beta, self.cov_theta, rhs=rhs, quantity=quantity
        )
        return dataclasses.replace(est, method=f"{self.method}; {est.method}", notes=self.notes)

    def _estimates(self, L, labels, df, method, extras) -> list[Estimate]:
        est = L @ self.beta
        se = np.sqrt(np.einsum("lp,pq,lq->l", L, self.cov_beta, L))
        crit = stats.t.ppf(0.5 + self.level / 2, df)
        tval = est / se
        pval = 2 * stats.t.sf(np.abs(tval), df)
        return [
            Estimate(
                quantity=labels[k],
                estimate=float(est[k]),
                se=float(se[k]),
                ci_low=float(est[k] - crit[k] * se[k]),
                ci_high=float(est[k] + crit[k] * se[k]),
                df=float(df[k]),
                statistic=float(tval[k]),
                p=float(pval[k]),
                method=method,
                notes=self.notes,
                extra=extras[k],
            )
            for k in range(len(labels))
        ]

    def to_frame(self) -> pd.DataFrame:
        """The treatment - reference contrasts per visit, then the adjusted means per arm and visit."""
        return pd.concat([self.contrasts, self.adjusted_means], ignore_index=True)

    def confint(self, level: float | None = None) -> pd.DataFrame:
        """Fixed effects, contrasts and adjusted means with t CIs (this fit's df) at ``level`` (default: the
        fit's own)."""
        frame = pd.concat([self.fixed_effects, self.contrasts, self.adjusted_means], ignore_index=True)
        return confint_t(frame, self.level if level is None else level)

    def summary(self) -> str:
        """The model and df method, n, the fit state and the contrasts."""
        return summary_block(
            f"MMRM, unstructured covariance (REML; {self.df_method.replace('_', '-')} df)",
            [
                ("participants / observations", f"{self.n_participants} / {self.n_observations}"),
                ("converged", f"{bool(self.converged)} ({int(self.iterations)} iterations)"),
                ("REML log-likelihood", f"{float(self.reml_loglik):.4f}"),
            ],
            self.contrasts,
            [f"Method: {self.method}", self.notes],
        )

    def _json_fields(self) -> dict:
        """The JSON record (`to_dict`): the three estimate frames, the covariance and the fit state."""
        return {
            "fixed_effects": self.fixed_effects,
            "contrasts": self.contrasts,
            "adjusted_means": self.adjusted_means,
            "covariance": {"times": [str(t) for t in self.times], "matrix": self.sigma},
            "reml_loglik": self.reml_loglik,
            "converged": self.converged,
            "iterations": self.iterations,
            "n_participants": self.n_participants,
            "n_observations": self.n_observations,
            "method": self.method,
            "notes": self.notes,
        }


_KENWARD_ROGER_TEXT = (
    "Kenward-Roger SE and df (Kenward & Roger 1997 adjusted cov(beta), observed REML information; "
    "Sigma linear in vech(Sigma), no second-derivative term: SAS DDFM=KR for TYPE=UN, "
    "mmrm Kenward-Roger-Linear)"
)


def assemble_result(
    design, observed, sigma, fit, cov_theta, pairs, iterations, converged, message, level, cov_beta_adj=None
):
    """The `MMRMResult` of a fit; ``cov_beta_adj`` (Kenward-Roger Phi_A) switches SEs and df to KR."""
    T = len(design.times)
    method = f"REML GLS, unstructured {T}x{T} covariance (Newton-Raphson); " + (
        "Satterthwaite df (observed REML information)" if cov_beta_adj is None else _KENWARD_ROGER_TEXT
    )
    notes = [] if converged else [f"NOT CONVERGED: {message}"]
    if design.n_dropped_covariates:
        notes.append(f"{design.n_dropped_covariates} row(s) dropped for a missing arm, baseline or covariate")
    cov_beta, dcov = fit["cov_beta"], fit["dcov_beta"]
    df_of = satterthwaite_df if cov_beta_adj is None else kenward_roger_df  # both from the unadjusted cov(beta)
    L_means, labels = reference_grid(design, observed)
    L_diff = L_means[1::2] - L_means[0::2]
    times = [str(t) for t in design.times]
    return MMRMResult(
        columns=design.columns,
        times=tuple(design.times),
        theta_names=tuple(f"cov({times[u]},{times[v]})" for u, v in pairs),
        beta=fit["beta"],
        cov_beta=cov_beta if cov_beta_adj is None else cov_beta_adj,
        sigma=sigma,
        cov_theta=cov_theta,
        df_beta=df_of(np.eye(len(design.columns)), cov_beta, dcov, cov_theta),
        means_L=L_means,
        means_labels=tuple(labels),
        means_df=df_of(L_means, cov_beta, dcov, cov_theta),
        contrast_L=L_diff,
        contrast_labels=tuple(
            f"{design.arm_label(design.treatment_arm)} - {design.arm_label(design.reference_arm)} at "
            f"{design.time_label(t)}"
            for t in design.times
        ),
        means_texts=tuple(f"adjusted mean {design.arm_label(a)} at {design.time_label(t)}" for a, t in labels),
        contrast_df=df_of(L_diff, cov_beta, dcov, cov_theta),
        reml_loglik=float(fit["loglik"]),
        converged=converged,
        iterations=iterations,
        n_participants=int(observed.any(axis=1).sum()),
        n_observations=int(observed.sum()),
        method=method,
        notes="; ".join(notes),
        level=level,
        grid_method="emmeans default grid: numeric covariates at their mean over the analysed rows, "
        "categorical covariates equally weighted",
        df_method="satterthwaite" if cov_beta_adj is None else "kenward_roger",
        cov_beta_model=cov_beta,
        dcov_beta=dcov,
    )
