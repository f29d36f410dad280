"""Bayesian pooling for the meta-analysis stage: the same effects, with priors, posteriors and their checks.

Pools exactly the effects the frequentist analysis pooled (``meta_stage.outcome_inputs``) with the
normal-normal hierarchical model. Engine (``meta.bayes.engine``): ``exact`` (default) computes every fit's
posterior by quadrature over tau (``imrstats.meta.bayes_exact``, the method of R's bayesmeta, Roever 2020),
with the marginal likelihood and Bayes factors, and exact i.i.d. draws only where draws are written or
plotted; ``nuts`` samples the same model with NUTS (``imrstats.meta.bayes``; study effects integrated out
for sampling; nutpie) behind the gate below. Per outcome:
the posterior of mu and tau, the shrunken study effects, the predictive effect of a new trial,
P(effect > 0) and P(effect > MID); a prior-sensitivity table across the shipped heterogeneity priors;
a cumulative Bayesian analysis by publication year. The implementation proportions (McGuire et al.
2014, Table 3) are pooled on the logit scale with the same model.

Default tau prior for SMD outcomes: the empirical log-t prior of Rhodes, Turner and Higgins 2015
(J Clin Epidemiol 68:52-60, Table 3: "mental health outcome, non-pharmacological"), because it was
derived from Cochrane meta-analyses of exactly this kind of outcome and comparison; the half-normal and
half-Cauchy are shown beside it in the sensitivity table. Log odds ratios get the Turner et al. 2015
(Stat Med 34:984-998) prior built for them. Raw mean differences have no scale-free prior: flagged, not pooled.

With ``nuts``, every fit goes through one gate (R-hat <= 1.01, bulk ESS >= 400 per parameter, zero divergences;
Vehtari et al. 2021). A failing fit is refitted once with twice the tuning and draws and a higher
target_accept. If a main fit fails again, ``AnalysisError`` names outcome, prior, parameter and criterion
and the stage fails. A prior-sensitivity or cumulative fit that fails again does the same with
``on_secondary_gate_failure: fail``; with the default ``flag`` its numbers are blanked and a flag names it
(on k = 2-3 SMD data single divergences in 8000 draws recur even at target_accept 0.999, so with ~40 fits a
strict rule would stop the default pipeline for one sensitivity row). One compiled model
(``bayes.shared_sampler``) serves every fit.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from imrstats.config import section_settings, stage_seed
from imrstats.core.progress import progress
from imrstats.core.seeds import label_code, spawn_seed
from imrstats.errors import AnalysisError, InputError
from imrstats.meta.bayes import (
    ESS_BULK_MIN,
    RHAT_MAX,
    SHIPPED_TAU_PRIORS,
    BayesResult,
    Normal,
    TauPrior,
    save_posterior,
    shared_sampler,
    summary_row,
    tau_prior_from_spec,
)
from imrstats.meta.bayes_models import run_bayes_sensitivity_models
from imrstats.meta.figures import bayes_figures, slug
from imrstats.meta.tables import stack_frames, with_leading_columns
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.format import format_number as fmt  # the report's one number formatter
from imrstats.results import to_records

FAVOURS = "positive favours IMR"
# The settings: the config's `meta.bayes` section, defaults in workflow/schemas/config.schema.yaml
# (imrstats.config.section_settings); the seed: the config's `stage_seed("meta")` unless given.


@dataclass
class BayesStageResult(StageResult):
    """A StageResult plus the main posteriors (name -> BayesResult) for ``write_posteriors``."""

    posteriors: dict = field(default_factory=dict)
    seconds: float = 0.0  # wall time of all fits (not written to tables: they stay byte-identical)


# ---------------------------------------------------------------------------------------------
# Settings


def normal_prior_from_spec(spec, where: str) -> Normal:
    if not isinstance(spec, dict) or set(spec) - {"loc", "scale"}:
        raise InputError(f"{where} must be a mapping with keys loc and scale, got {spec!r}")
    try:
        return Normal(float(spec.get("loc", 0.0)), float(spec.get("scale", 1.0)))
    except (TypeError, ValueError) as error:
        raise InputError(f"{where}: {error}") from error


def _implementation_tau_prior(spec) -> TauPrior:
    if not isinstance(spec, dict) or "family" not in spec or set(spec) - {"family", "location", "scale", "nu"}:
        raise InputError(
            "meta.bayes.implementation.tau_prior must be a mapping with family, scale "
            f"(and location, nu for the log(tau^2) families), got {spec!r}"
        )
    return tau_prior_from_spec(
        spec["family"],
        float(spec.get("location", 0.0) or 0.0),
        float(spec.get("scale", 1.0)),
        float(spec.get("nu", 5.0)),
    )


# ---------------------------------------------------------------------------------------------
# One gated fit


def retry_target_accept(target_accept: float) -> float:
    """The retry's target acceptance: a tenth of the distance to 1 (0.99 -> 0.999), so steps get smaller.
    On k = 2 SMD data with a half-Cauchy prior, 0.995 still left divergences that 0.999 removed."""
    return 1.0 - (1.0 - float(target_accept)) / 10.0


@dataclass(frozen=True)
class GatedFit:
    """A gated fit: how many attempts it took, why it was retried, and (only when failures are flagged
    rather than raised) why it failed; a failed fit's numbers must not be reported."""

    result: BayesResult
    attempts: int
    retry_reason: str = ""
    failure: str = ""

    @property
    def passed(self) -> bool:
        return self.failure == ""


def gated_fit(
    sampler,
    yi,
    sei,
    labels,
    *,
    prior_mu: Normal,
    prior_tau: TauPrior,
    mid: float | None,
    seed: int,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    context: str,
    on_failure: str = "fail",
) -> GatedFit:
    """Fit, check the gate (R-hat, bulk ESS, divergences); on failure refit once with 2x tune, 2x draws and
    ``retry_target_accept``. If that fails too: ``on_failure="fail"`` raises ``AnalysisError`` naming
    ``context`` (outcome, prior, step), the parameter and the criterion; ``"flag"`` returns the fit with
    ``failure`` set to that message (the caller blanks its numbers and flags it). With the exact engine
    (``ExactSampler``) there is nothing to gate: one fit, ``draws``, ``tune`` and ``chains`` have no effect."""
    first = sampler.fit(
        yi,
        sei,
        labels,
        prior_mu=prior_mu,
        prior_tau=prior_tau,
        mid=mid,
        seed=seed,
        draws=draws,
        tune=tune,
        chains=chains,
    )
    if first.diagnostics is None or first.diagnostics.ok:  # None: an exact fit, nothing to gate
        return GatedFit(first, 1)
    reason = "; ".join(first.diagnostics.problems())
    retry = copy.copy(sampler)  # shares the compiled model; only the step-size target differs
    retry.target_accept = retry_target_accept(sampler.target_accept)
    second = retry.fit(
        yi,
        sei,
        labels,
        prior_mu=prior_mu,
        prior_tau=prior_tau,
        mid=mid,
        seed=spawn_seed(seed, 1),
        draws=2 * draws,
        tune=2 * tune,
        chains=chains,
    )
    if second.diagnostics.ok:
        return GatedFit(second, 2, reason)
    message = (
        f"{context}: the sampler gate failed (R-hat <= {RHAT_MAX}, bulk ESS >= {ESS_BULK_MIN:.0f}, "
        f"no divergences). First run ({chains} x {draws} draws, tune {tune}, target_accept "
        f"{sampler.target_accept:g}): {reason}. Retry ({chains} x {2 * draws} draws, tune {2 * tune}, target_accept "
        f"{retry.target_accept:g}): {'; '.join(second.diagnostics.problems())}. These numbers are not reported: "
        "raise meta.bayes.draws / tune / target_accept, or review the prior."
    )
    if on_failure == "flag":
        return GatedFit(second, 2, reason, failure=message)
    raise AnalysisError(f"Bayesian pooling, {message}")


def diagnostic_row(fit: GatedFit, **ids) -> dict:
    d = fit.result.diagnostics
    if d is None:  # an exact fit: no sampler, so no R-hat, ESS or divergences
        return exact_fit_row(fit.result, **ids)
    return {
        **ids,
        "k": fit.result.k,
        "attempts": fit.attempts,
        "retry_reason": fit.retry_reason,
        "max_rhat": d.max_rhat,
        "max_rhat_parameter": d.max_rhat_parameter,
        "min_ess_bulk": d.min_ess_bulk,
        "min_ess_parameter": d.min_ess_parameter,
        "divergences": d.divergences,
        "chains": d.chains,
        "draws": d.draws,
        "tune": d.tune,
        "target_accept": d.target_accept,
        "passed": fit.passed,
    }


# ---------------------------------------------------------------------------------------------
# The exact engine (meta.bayes.engine = exact): bayes_exact.fit_exact behind the sampler interface


EXACT_ENGINE = "exact, quadrature (Roever 2020 bayesmeta method)"
NUTS_ENGINE = "NUTS (PyMC via nutpie)"
NOT_APPLICABLE = "exact: not applicable"
EXACT_SUMMARIES = ("mean", "sd", "median", "low", "high", "hpd_low", "hpd_high")
BF_DEFINITION = (
    "p(y): the marginal likelihood (mu and tau integrated over their priors); BF(tau = 0) = p(y | tau = 0) / p(y) "
    "and BF(mu = 0) = p(y | mu = 0) / p(y), > 1 favours the point hypothesis; 'minimum': the same numerator over "
    "max_tau p(y | tau) or max_mu p(y | mu) (bayesmeta's bayesfactor, Roever 2020, J Stat Softw 93(6))"
)


def engine_name(b: dict) -> str:
    """The engine's name for tables, summaries and the CLI (``meta.bayes.engine``)."""
    return EXACT_ENGINE if b.get("engine", "exact") == "exact" else NUTS_ENGINE


class ExactResult:
    """One exact fit (``bayes_exact.ExactFit``, kept as ``exact``) in the shape the stage reads from a
    ``BayesResult``: ``estimates`` (mu, tau, mu_new with mean = estimate, SD = se, median, equal-tailed ci_*,
    shortest hpd_*; P(mu > 0), P(mu > MID), P(mu_new > 0), P(mu_new > MID)), ``study_effects``, ``k``, ``seed``,
    ``method``, the prior labels, ``diagnostics = None`` (nothing is sampled, so there is nothing to gate) and
    ``posterior``: ``n_draws`` exact i.i.d. draws (``bayes_exact.draw``, seed ``spawn_seed(seed, 3)``) as a
    DataTree with the sampler's groups and dims (posterior: chain = 1 x draw; theta over study), made on first
    use only (tables need no draws)."""

    def __init__(self, fit, *, prior_mu: Normal, prior_tau: TauPrior, seed: int, n_draws: int):
        self.exact = fit
        self.k = fit.k
        self.seed = int(seed)
        self.n_draws = int(n_draws)
        self.prior_mu = prior_mu.label()
        self.prior_tau = prior_tau.label()
        self.diagnostics = None
        level = f"{100 * fit.ci:g}%"
        self.method = (
            f"Bayesian normal-normal random-effects model, {EXACT_ENGINE}: posterior of tau by adaptive "
            "Gauss-Legendre quadrature on log(tau); mu, mu_new and theta as normal mixtures over tau; "
            f"mu ~ {self.prior_mu}, {self.prior_tau}; posterior mean, SD, median, {level} equal-tailed and "
            "shortest intervals"
        )
        self.estimates = _exact_estimates(fit, self.method)
        self.study_effects = _exact_study_effects(fit, self.method)
        self._posterior = None

    def draws(self) -> dict[str, np.ndarray]:
        from imrstats.meta import bayes_exact

        return bayes_exact.draw(self.exact, self.n_draws, spawn_seed(self.seed, 3))

    @property
    def posterior(self):
        if self._posterior is None:
            self._posterior = _exact_tree(self)
        return self._posterior

    def estimate(self, quantity: str) -> float:
        row = self.estimates.loc[self.estimates["quantity"] == quantity]
        if row.empty:
            raise KeyError(f"no quantity {quantity!r}; have {list(self.estimates['quantity'])}")
        return float(row["estimate"].iloc[0])


# columns of ExactFit.values (rows mu, tau, mu_new, theta_1..k), bayes_exact.SUMMARY_COLUMNS without the labels
_MEAN, _SD, _MEDIAN, _LOW, _HIGH, _HPD_LOW, _HPD_HIGH, _P0, _PMID = range(9)


def _exact_estimates(fit, method: str) -> pd.DataFrame:
    """Rows mu, tau, mu_new (estimate = mean, se = SD, equal-tailed ci_*, median, shortest hpd_*) and the
    probabilities, as ``results.to_frame`` lays out Estimate rows (built from the arrays: 40 fits stay cheap)."""
    v = fit.values
    note = "; ".join(fit.notes)
    rows = []
    for i, name in enumerate(("mu", "tau", "mu_new")):
        notes = ["predictive effect of a new trial"] if name == "mu_new" else []
        if note and np.isnan(v[i, :_HPD_LOW]).any():
            notes.append(note)
        rows.append(
            (name, *v[i, [_MEAN, _SD, _LOW, _HIGH]], method, "; ".join(notes), *v[i, [_MEDIAN, _HPD_LOW, _HPD_HIGH]])
        )
    thresholds = [("0", _P0, "")] + (
        [] if fit.mid is None else [(f"{fit.mid:g}", _PMID, "threshold is the minimal important difference")]
    )
    p_method = method.split("; posterior mean")[0] + "; exact posterior probability"
    for i, name in ((0, "mu"), (2, "mu_new")):
        for text, column, notes in thresholds:
            rows.append(
                (
                    f"P({name} > {text})",
                    v[i, column],
                    math.nan,
                    math.nan,
                    math.nan,
                    p_method,
                    notes,
                    math.nan,
                    math.nan,
                    math.nan,
                )
            )
    frame = pd.DataFrame(
        rows,
        columns=["quantity", "estimate", "se", "ci_low", "ci_high", "method", "notes", "median", "hpd_low", "hpd_high"],
    )
    for column in ("df", "statistic", "p"):
        frame[column] = math.nan
    return frame[
        [
            "quantity",
            "estimate",
            "se",
            "ci_low",
            "ci_high",
            "df",
            "statistic",
            "p",
            "method",
            "notes",
            "median",
            "hpd_low",
            "hpd_high",
        ]
    ]


def _exact_study_effects(fit, method: str) -> pd.DataFrame:
    theta = fit.values[3:]
    columns = {
        "theta_mean": _MEAN,
        "theta_sd": _SD,
        "theta_median": _MEDIAN,
        "theta_low": _LOW,
        "theta_high": _HIGH,
        "theta_hpd_low": _HPD_LOW,
        "theta_hpd_high": _HPD_HIGH,
    }
    return pd.DataFrame(
        {
            "study": list(fit.labels),
            "yi": fit.y,
            "sei": fit.se,
            **{name: theta[:, j].astype(float) for name, j in columns.items()},
            "method": method,
        }
    )


def _exact_tree(result: ExactResult):
    """The exact draws as an xarray DataTree shaped like the sampler's (posterior: mu, tau, mu_new over
    (chain, draw), theta over (chain, draw, study); observed_data y and constant_data se over study), with no
    wall-clock attribute, so a seed writes the same bytes."""
    import xarray as xr

    d = result.draws()
    n, study = result.n_draws, np.asarray(result.exact.labels, dtype=str)
    coords = {"chain": np.arange(1), "draw": np.arange(n)}
    posterior = xr.Dataset(
        {
            "mu": (("chain", "draw"), d["mu"][None, :]),
            "tau": (("chain", "draw"), d["tau"][None, :]),
            "theta": (("chain", "draw", "study"), d["theta"][None, :, :]),
            "mu_new": (("chain", "draw"), d["mu_new"][None, :]),
        },
        coords={**coords, "study": study},
        attrs={
            "model": "normal-normal random-effects meta-analysis",
            "engine": EXACT_ENGINE,
            "sampler": "none: exact i.i.d. draws (tau by inverse CDF of its quadrature posterior, then the "
            "normal conditionals; imrstats.meta.bayes_exact.draw)",
            "prior_mu": result.prior_mu,
            "prior_tau": result.prior_tau,
            "seed": result.seed,
            "draw_seed": spawn_seed(result.seed, 3),
            "interval": "equal-tailed",
        },
    )
    return xr.DataTree.from_dict(
        {
            "posterior": posterior,
            "observed_data": xr.Dataset({"y": ("study", result.exact.y)}, coords={"study": study}),
            "constant_data": xr.Dataset({"se": ("study", result.exact.se)}, coords={"study": study}),
        }
    )


class ExactSampler:
    """The exact engine behind the interface ``gated_fit`` calls (``fit(yi, sei, labels, *, prior_mu, prior_tau,
    mid, seed, ...)``): NUTS's draws, tune and chains are accepted and have no effect; ``n_draws`` exact draws
    are made when a posterior is written or plotted. ``fits`` counts the fits."""

    engine = "exact"
    target_accept = math.nan

    def __init__(self, n_draws: int = 4000):
        self.n_draws = int(n_draws)
        self.fits = 0

    def fit(self, yi, sei, labels=None, *, prior_mu: Normal, prior_tau: TauPrior, mid=None, seed: int, ci=0.95, **_):
        from imrstats.meta import bayes_exact

        fit = bayes_exact.fit_exact(
            yi, sei, labels, prior_mu=(prior_mu.loc, prior_mu.scale), prior_tau=prior_tau, mid=mid, ci=ci
        )
        self.fits += 1
        return ExactResult(fit, prior_mu=prior_mu, prior_tau=prior_tau, seed=seed, n_draws=self.n_draws)


def stage_sampler(b: dict, k_max: int):
    """The engine ``meta.bayes.engine`` names: ``ExactSampler`` (exact) or the shared compiled NUTS model."""
    if b.get("engine", "exact") == "exact":
        return ExactSampler(b.get("exact_draws", 4000))
    return shared_sampler(
        capacity=max(8, 8 * math.ceil(k_max / 8)),
        target_accept=float(b["target_accept"]),
        parameterization=b["parameterization"],
    )


def exact_summary_row(result: ExactResult) -> dict:
    """One flat row of an exact fit for the sensitivity and cumulative tables: mean, SD, median, equal-tailed
    (low, high) and shortest (hpd_low, hpd_high) intervals of mu, tau and mu_new, and the probabilities."""
    v = result.exact.values
    order = (_MEAN, _SD, _MEDIAN, _LOW, _HIGH, _HPD_LOW, _HPD_HIGH)
    row = {}
    for i, name in enumerate(("mu", "tau", "mu_new")):
        row.update({f"{name}_{s}": float(v[i, j]) for s, j in zip(EXACT_SUMMARIES, order)})
    probabilities = result.estimates.loc[result.estimates["quantity"].str.startswith("P(")]
    row.update(zip(probabilities["quantity"], probabilities["estimate"].astype(float)))
    return row


def exact_fit_row(result: ExactResult, **ids) -> dict:
    """A row of the fits table for an exact fit: the quadrature, and 'exact: not applicable' for the sampler."""
    q = result.exact.quadrature
    return {
        **ids,
        "k": result.k,
        "engine": EXACT_ENGINE,
        "quadrature_panels": q["panels"],
        "quadrature_nodes": q["nodes"],
        "mixture_nodes": q["mixture_nodes"],
        "sampler_diagnostics": NOT_APPLICABLE,
        "attempts": 1,
        "passed": True,
    }


def bayes_factor_row(result: ExactResult) -> dict:
    """The marginal likelihood and bayesmeta's Bayes factors of an exact fit (``BF_DEFINITION``)."""
    f = result.exact
    bf = f.bf_values
    return {
        "k": f.k,
        "prior_mu": result.prior_mu,
        "prior_tau": result.prior_tau,
        "log_marginal_likelihood": float(f.log_marginal_likelihood),
        "marginal_likelihood": float(f.marginal_likelihood),
        "bf_tau0": float(bf[0, 0]),
        "bf_mu0": float(bf[0, 1]),
        "bf_tau0_minimum": float(bf[1, 0]),
        "bf_mu0_minimum": float(bf[1, 1]),
        "tau_max_likelihood": float(f.ml_marginal["tau"]),
        "mu_max_likelihood": float(f.ml_marginal["mu"]),
        "notes": "; ".join(n for n in f.notes if "Bayes factor" in n or "marginal likelihood" in n),
        "method": f"{EXACT_ENGINE}; {BF_DEFINITION}",
    }


def _exact_proportion_rows(result: ExactResult) -> pd.DataFrame:
    """Percent rows of an exact logit-scale fit: exact median and equal-tailed interval back-transformed
    (quantiles commute with expit); the SD of 100 expit(.) by 300-point Gauss-Hermite on each mixture component
    (40 points leave ~1e-5 where a component's SD is ~9 on the logit scale, as mu_new's can be; 300 agree with
    adaptive quadrature of the exact density to ~1e-14, tested)."""
    f = result.exact
    frame = f.to_frame()
    x, w = np.polynomial.hermite.hermgauss(300)
    rows = []
    for row, name, quantity in ((0, "mu", "pooled proportion (%)"), (1, "mu_new", "proportion in a new study (%)")):
        r = frame.loc[frame["parameter"] == name].iloc[0]
        values = 100 * expit(f.cond_mean[row][:, None] + math.sqrt(2) * f.cond_sd[row][:, None] * x)
        m1 = f.weights @ (values @ w) / math.sqrt(math.pi)
        m2 = f.weights @ ((values**2) @ w) / math.sqrt(math.pi)
        rows.append(
            {
                "quantity": quantity,
                "estimate": float(100 * expit(r["median"])),
                "se": float(math.sqrt(max(m2 - m1**2, 0.0))),
                "ci_low": float(100 * expit(r["ci_low"])),
                "ci_high": float(100 * expit(r["ci_high"])),
                "method": result.method.split("; posterior mean")[0] + f"; posterior median, SD and "
                f"{100 * f.ci:g}% equal-tailed interval of 100 expit(.)",
                "notes": "back-transformed from the logit scale",
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# One outcome: main fit, prior sensitivity, cumulative by year


def _study_labels(data: pd.DataFrame) -> list[str]:
    return [f"{s} ({int(y)})" if not str(s).endswith(str(y)) else str(s) for s, y in zip(data["study"], data["year"])]


def _method_text(fit: GatedFit) -> str:
    method = fit.result.method
    if fit.attempts > 1:
        method += (
            f"; refitted once after the first run failed the gate ({fit.retry_reason}) with 2x tuning and "
            f"draws and target_accept {fit.result.diagnostics.target_accept:g}"
        )
    return method


def _table_row(fit: GatedFit) -> dict:
    """summary_row of a fit; a fit that failed the gate keeps only its diagnostics, never its numbers.
    An exact fit: its exact summaries (no gate, no sampler columns)."""
    if isinstance(fit.result, ExactResult):
        return exact_summary_row(fit.result)
    row = summary_row(fit.result)
    if not fit.passed:
        row = {
            k: (math.nan if isinstance(v, float) and k not in ("max_rhat", "min_ess_bulk") else v)
            for k, v in row.items()
        }
    return {**row, "attempts": fit.attempts, "gate": "passed" if fit.passed else "FAILED after retry: not reported"}


def pool_outcome_bayes(
    sampler,
    data: pd.DataFrame,
    *,
    prior_mu: Normal,
    prior_key: str,
    sensitivity_keys: list[str],
    mid: float | None,
    seed: int,
    run: dict,
    cumulative: bool,
    min_studies: int,
    context: str,
    prior_tau: TauPrior | None = None,
    on_secondary_failure: str = "fail",
) -> dict:
    """Main fit, prior sensitivity and cumulative analysis of one outcome's included rows (one per study,
    columns study, year, yi, sei). Returns frames ``estimates``, ``study_effects``, ``sensitivity``,
    ``cumulative``, ``diagnostics``, the main ``GatedFit`` (``fit``) and ``flags``. The main fit always
    raises when it fails the gate; sensitivity and cumulative fits follow ``on_secondary_failure``
    ("fail" or "flag"). The sensitivity row of the main prior and the cumulative step with every study
    reuse the main fit, so the tables agree."""
    y = data["yi"].to_numpy(float)
    se = data["sei"].to_numpy(float)
    labels = _study_labels(data)
    main_prior = prior_tau if prior_tau is not None else SHIPPED_TAU_PRIORS[prior_key].prior
    fit_args = dict(prior_mu=prior_mu, mid=mid, **run)
    main = gated_fit(
        sampler,
        y,
        se,
        labels,
        prior_tau=main_prior,
        seed=spawn_seed(seed, 0, 0),
        context=f"{context}, prior {prior_key}, all {len(y)} studies",
        **fit_args,
    )
    diagnostics = [diagnostic_row(main, analysis="main", prior=prior_key, year=None)]
    flags: list[str] = []
    method = _method_text(main)
    estimates = main.result.estimates.loc[~main.result.estimates["quantity"].str.startswith("theta[")].copy()
    estimates["method"] = estimates["method"].map(lambda m: m.replace(main.result.method, method))
    study_effects = main.result.study_effects.copy()
    study_effects["method"] = method

    def secondary(yy, ss, ll, prior, seed_path, what):
        fit = gated_fit(
            sampler,
            yy,
            ss,
            ll,
            prior_tau=prior,
            seed=spawn_seed(seed, *seed_path),
            context=f"{context}, {what}",
            on_failure=on_secondary_failure,
            **fit_args,
        )
        if not fit.passed:
            flags.append(fit.failure)
        return fit

    exact = isinstance(main.result, ExactResult)
    bf_rows = [{"prior": prior_key, "main_prior": True, **bayes_factor_row(main.result)}] if exact else []
    sens_rows = []
    for j, key in enumerate(sensitivity_keys):
        named = SHIPPED_TAU_PRIORS[key]
        if key == prior_key and prior_tau is None:
            fit = main
        else:
            fit = secondary(y, se, labels, named.prior, (1, j), f"sensitivity prior {key}")
            diagnostics.append(diagnostic_row(fit, analysis="prior sensitivity", prior=key, year=None))
            if exact:
                bf_rows.append({"prior": key, "main_prior": False, **bayes_factor_row(fit.result)})
        sens_rows.append(
            {
                "prior": key,
                "main_prior": key == prior_key,
                "prior_tau": named.prior.label(),
                "prior_mu": prior_mu.label(),
                "k": fit.result.k,
                **_table_row(fit),
                "citation": named.citation,
                "note": named.note,
                "method": _method_text(fit),
            }
        )

    cum_rows = []
    if cumulative:
        years = data["year"].astype(float).to_numpy()
        for step, year in enumerate(np.unique(years)):
            included = np.flatnonzero(years <= year)
            if included.size < min_studies:
                continue
            if included.size == len(y):
                fit = main
            else:
                fit = secondary(
                    y[included],
                    se[included],
                    [labels[i] for i in included],
                    main_prior,
                    (2, step),
                    f"prior {prior_key}, cumulative up to {int(year)}",
                )
                diagnostics.append(diagnostic_row(fit, analysis="cumulative", prior=prior_key, year=int(year)))
            cum_rows.append(
                {
                    "year": int(year),
                    "k": int(included.size),
                    "added": "; ".join(labels[i] for i in included if years[i] == year),
                    "prior": prior_key,
                    **_table_row(fit),
                    "method": _method_text(fit),
                }
            )
    return {
        "fit": main,
        "estimates": estimates,
        "study_effects": study_effects,
        "sensitivity": pd.DataFrame(sens_rows),
        "cumulative": pd.DataFrame(cum_rows),
        "diagnostics": pd.DataFrame(diagnostics).astype({"year": "Int64"}),
        "bayes_factors": pd.DataFrame(bf_rows),
        "flags": flags,
    }


def proportion_rows(result: BayesResult, ci: float = 0.95) -> pd.DataFrame:
    """Back-transform a logit-scale fit to percent: posterior median and equal-tailed interval of
    100 expit(mu) and 100 expit(mu_new) (quantiles commute with the monotone expit; the mean does not).
    An exact fit: its exact quantiles back-transformed, the SD by Gauss-Hermite over its normal mixture."""
    if isinstance(result, ExactResult):
        return _exact_proportion_rows(result)
    post = result.posterior["posterior"]
    rows = []
    for name, quantity in (("mu", "pooled proportion (%)"), ("mu_new", "proportion in a new study (%)")):
        pct = 100 * expit(np.asarray(post[name].values, dtype=float).ravel())
        rows.append(
            {
                "quantity": quantity,
                "estimate": float(np.median(pct)),
                "se": float(pct.std(ddof=1)),
                "ci_low": float(np.quantile(pct, (1 - ci) / 2)),
                "ci_high": float(np.quantile(pct, (1 + ci) / 2)),
                "method": result.method.split("; posterior mean")[0] + "; posterior median, SD and "
                f"{100 * ci:g}% equal-tailed interval of 100 expit(draws)",
                "notes": "back-transformed from the logit scale",
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# The stage part (the meta stage's Bayesian hook)


def implementation_inputs(settings: dict) -> dict[str, pd.DataFrame]:
    """The implementation rows the frequentist stage pools (logit proportions), per measure."""
    from imrstats.data.published import load_implementation_rates
    from imrstats.meta.stage import implementation_effects

    impl = settings.get("implementation") or {}
    rates = load_implementation_rates(settings.get("implementation_rates"))
    effects = implementation_effects(
        rates,
        measures=tuple(impl.get("measures", ("dropout_pct", "completion_pct"))),
        uses=tuple(impl.get("uses", ("pool with care",))),
    )
    out = {}
    for measure in effects["measure"].unique():
        data = effects.loc[(effects["measure"] == measure) & effects["included"]]
        data = data.sort_values(["year", "study"], kind="stable").reset_index(drop=True)
        out[measure] = data.assign(sei=np.sqrt(data["vi"].astype(float)), measure="logit proportion")
    return out


def _plan(pooling_inputs: dict, b: dict, mid) -> tuple[list[dict], list[str], list[str]]:
    """Which outcomes are pooled with which prior; the rest get a note (too few studies) or a flag."""
    plan, notes, flags = [], [], []
    for label, data in pooling_inputs.items():
        k = 0 if data is None else len(data)
        if k < b["min_studies"]:
            notes.append(f"{label}: k = {k} < meta.bayes.min_studies = {b['min_studies']}; not pooled")
            continue
        measures = set(data["measure"])
        measure = data["measure"].iloc[0]
        if len(measures) > 1:
            flags.append(f"{label}: mixed effect measures {sorted(measures)}; not pooled")
        elif measure == "SMD":
            plan.append(dict(label=label, data=data, measure=measure, prior=b["tau_prior"], mid=mid))
        elif measure == "log OR":
            plan.append(dict(label=label, data=data, measure=measure, prior=b["tau_prior_log_or"], mid=None))
        else:
            flags.append(
                f"{label}: effect measure '{measure}' has no scale-free heterogeneity prior "
                "(only SMD and log OR are supported); not pooled"
            )
    return plan, notes, flags


def bayes_pooling(
    pooling_inputs: dict[str, pd.DataFrame], settings: dict | None, seed: int | None = None
) -> BayesStageResult:
    """The meta stage's Bayesian hook: pool each outcome in ``pooling_inputs`` (label -> included rows with
    study, year, measure, yi, sei) and the implementation proportions; ``settings`` is the meta section
    (``mid``, ``implementation``, ``implementation_rates`` and the ``bayes`` sub-section). Returns a
    ``BayesStageResult`` (tables, figures, record, summary, flags, posteriors; its section is
    ``meta.bayes_section``). A fit that fails the sampler gate after its retry raises ``AnalysisError``."""
    s = section_settings("meta", settings)
    b = s["bayes"]
    if not b["enabled"]:
        return BayesStageResult(
            "meta_bayes", record={"enabled": False}, summary="Bayesian pooling: off (meta.bayes.enabled = false)"
        )
    seed = stage_seed("meta") if seed is None else int(seed)
    mid = s.get("mid")
    mid = None if mid is None else float(mid)
    prior_mu = normal_prior_from_spec(b["prior_mu"], "meta.bayes.prior_mu")
    run = dict(draws=b["draws"], tune=b["tune"], chains=b["chains"])
    plan, notes, flags = _plan(pooling_inputs, b, mid)
    impl_inputs: dict[str, pd.DataFrame] = {}
    if b["implementation"]["enabled"]:
        try:
            impl_inputs = implementation_inputs(s)
        except (AnalysisError, InputError, OSError) as error:
            flags.append(f"implementation proportions not pooled: {error}")
    k_max = max([len(p["data"]) for p in plan] + [len(d) for d in impl_inputs.values()] + [1])
    sampler = stage_sampler(b, k_max)
    start = time.perf_counter()
    pooled, posteriors = {}, {}
    for p in progress(plan, desc="meta: Bayesian pooling (outcome x priors x cumulative)", unit="outcome"):
        try:
            pooled[p["label"]] = pool_outcome_bayes(
                sampler,
                p["data"],
                prior_mu=prior_mu,
                prior_key=p["prior"],
                sensitivity_keys=b["sensitivity_priors"],
                mid=p["mid"],
                seed=spawn_seed(seed, label_code(p["label"])),
                run=run,
                cumulative=b["cumulative"],
                min_studies=b["min_studies"],
                context=f"outcome {p['label']}",
                on_secondary_failure=b["on_secondary_gate_failure"],
            )
        except InputError as error:
            flags.append(f"{p['label']}: not pooled: {error}")
            continue
        posteriors[p["label"]] = pooled[p["label"]]["fit"].result
        flags.extend(pooled[p["label"]]["flags"])
    impl_prior_mu = normal_prior_from_spec(b["implementation"]["prior_mu"], "meta.bayes.implementation.prior_mu")
    impl_tau = _implementation_tau_prior(b["implementation"]["tau_prior"])
    impl_pooled = {}
    for measure, data in impl_inputs.items():
        if len(data) < b["min_studies"]:
            notes.append(f"implementation {measure}: k = {len(data)} < meta.bayes.min_studies; not pooled")
            continue
        name = f"implementation_{measure}"
        impl_pooled[measure] = pool_outcome_bayes(
            sampler,
            data,
            prior_mu=impl_prior_mu,
            prior_key=impl_tau.label(),
            prior_tau=impl_tau,
            sensitivity_keys=[],
            mid=None,
            seed=spawn_seed(seed, label_code(name)),
            run=run,
            cumulative=False,
            min_studies=b["min_studies"],
            context=f"implementation {measure} (logit scale)",
        )
        posteriors[name] = impl_pooled[measure]["fit"].result
    seconds = time.perf_counter() - start
    tables = _tables(plan, pooled, impl_pooled, b, prior_mu, impl_prior_mu, impl_tau)
    figures = bayes_figures(plan, pooled, impl_pooled, prior_mu, impl_prior_mu, impl_tau)
    # the models beyond the normal-normal family (robust t study effects, meta-regression), in PyMC; both off
    # by default (meta.bayes.robust_t / meta_regression), when the hook returns at once without importing PyMC
    beyond = run_bayes_sensitivity_models(pooling_inputs, s, spawn_seed(seed, label_code("sensitivity_models")))
    tables.update(beyond["tables"])
    notes.extend(beyond["notes"])
    flags.extend(beyond["flags"])
    record = _record(b, seed, mid, tables, notes, sampler)
    record["sensitivity_models"] = {
        "robust_t": b["robust_t"],
        "meta_regression": b["meta_regression"],
        "compiles": beyond["compile_log"],
    }
    summary = _summary(b, plan, pooled, impl_pooled, tables, notes, flags, prior_mu, mid)
    return BayesStageResult(
        "meta_bayes", tables, figures, record, summary, flags=flags, posteriors=posteriors, seconds=seconds
    )


def _priors_table(plan, b, prior_mu, impl_prior_mu, impl_tau, with_impl: bool) -> pd.DataFrame:
    rows = [
        {
            "parameter": "mu",
            "key": "prior_mu",
            "role": "all effect outcomes",
            "prior": prior_mu.label(),
            "citation": "weakly informative: |SMD| or |log OR| > 2 has prior probability 0.05",
            "note": "",
        }
    ]
    used_main = {p["prior"] for p in plan}
    keys = list(dict.fromkeys([b["tau_prior"], b["tau_prior_log_or"], *b["sensitivity_priors"]]))
    for key in keys:
        roles = []
        if key == b["tau_prior"]:
            roles.append("main, SMD outcomes")
        if key == b["tau_prior_log_or"]:
            roles.append("main, log OR outcomes")
        if key in b["sensitivity_priors"]:
            roles.append("sensitivity")
        if key not in used_main and key not in b["sensitivity_priors"]:
            continue
        named = SHIPPED_TAU_PRIORS[key]
        rows.append(
            {
                "parameter": "tau",
                "key": key,
                "role": ", ".join(roles),
                "prior": named.prior.label(),
                "citation": named.citation,
                "note": named.note,
            }
        )
    if with_impl:
        rows += [
            {
                "parameter": "mu (logit)",
                "key": "implementation.prior_mu",
                "role": "implementation proportions",
                "prior": impl_prior_mu.label(),
                "citation": "weakly informative on the logit scale",
                "note": "",
            },
            {
                "parameter": "tau (logit)",
                "key": "implementation.tau_prior",
                "role": "implementation proportions",
                "prior": impl_tau.label(),
                "citation": "weakly informative",
                "note": "",
            },
        ]
    return pd.DataFrame(rows)


def _tables(plan, pooled, impl_pooled, b, prior_mu, impl_prior_mu, impl_tau) -> dict[str, pd.DataFrame]:
    by_label = {p["label"]: p for p in plan}
    est, eff, sens, cum, diag, bfs = [], [], [], [], [], []
    for label, part in pooled.items():
        p, k = by_label[label], part["fit"].result.k
        ids = dict(outcome_label=label, measure=p["measure"], prior=p["prior"], k=k)
        est.append(with_leading_columns(part["estimates"], **ids, direction=FAVOURS))
        bfs.append(with_leading_columns(part["bayes_factors"], outcome_label=label, measure=p["measure"]))
        eff.append(with_leading_columns(part["study_effects"], **ids, direction=FAVOURS))
        sens.append(
            with_leading_columns(part["sensitivity"], outcome_label=label, measure=p["measure"], direction=FAVOURS)
        )
        cum.append(
            with_leading_columns(part["cumulative"], outcome_label=label, measure=p["measure"], direction=FAVOURS)
        )
        diag.append(with_leading_columns(part["diagnostics"], outcome_label=label))
    for measure, part in impl_pooled.items():
        ids = dict(
            outcome_label=f"implementation: {measure}",
            measure="logit proportion",
            prior=impl_tau.label(),
            k=part["fit"].result.k,
        )
        logit = part["estimates"].assign(
            notes=lambda f: np.where(
                f["quantity"].str.startswith("P("), "logit scale: P(mu > 0) is P(proportion > 50%)", f["notes"]
            )
        )
        est.append(
            with_leading_columns(
                pd.concat([logit, proportion_rows(part["fit"].result)], ignore_index=True),
                **ids,
                direction="a proportion, not an IMR-vs-control effect",
            )
        )
        eff.append(with_leading_columns(part["study_effects"], **ids, direction="logit proportion"))
        diag.append(with_leading_columns(part["diagnostics"], outcome_label=f"implementation: {measure}"))
        bfs.append(
            with_leading_columns(
                part["bayes_factors"], outcome_label=f"implementation: {measure}", measure="logit proportion"
            )
        )
    factors = {"bayes_factors": stack_frames(bfs)} if any(len(f) for f in bfs) else {}
    return {
        "bayes_priors": _priors_table(plan, b, prior_mu, impl_prior_mu, impl_tau, bool(impl_pooled)),
        "bayes_pooled": stack_frames(est),
        "bayes_study_effects": stack_frames(eff),
        "bayes_sensitivity": stack_frames(sens),
        "bayes_cumulative": stack_frames(cum),
        "bayes_diagnostics": stack_frames(diag),
        **factors,
    }


def _record(b, seed, mid, tables, notes, sampler) -> dict:
    return {
        "enabled": True,
        "settings": b,
        "seed": seed,
        "mid": mid,
        "direction": FAVOURS,
        "engine": engine_name(b),
        **(
            {
                "gate": NOT_APPLICABLE,
                "sampler": {"draws": sampler.n_draws, "kind": "exact i.i.d. draws (posteriors/ only)"},
                "bayes_factors_definition": BF_DEFINITION,
            }
            if isinstance(sampler, ExactSampler)
            else {
                "gate": {
                    "max_rhat": RHAT_MAX,
                    "min_ess_bulk": ESS_BULK_MIN,
                    "max_divergences": 0,
                    "retry": "once, with 2x tune and draws and target_accept "
                    f"{retry_target_accept(b['target_accept']):g}",
                },
                "sampler": {"capacity": sampler.capacity, "compiles": len(sampler.compile_log)},
            }
        ),
        "notes": notes,
        **{name.removeprefix("bayes_"): to_records(frame) for name, frame in tables.items()},
    }


# ---------------------------------------------------------------------------------------------
# Summary text


def cumulative_sentence(table: pd.DataFrame) -> str:
    """'P(mu > 0): 2009 (k = 2) 0.97 -> 2019 (k = 3, + Jensen 2019) 0.88': how the evidence moved by year."""
    steps = [
        f"{int(r['year'])} (k = {int(r['k'])}{'' if i == 0 else ', + ' + r['added']}) "
        f"{fmt(r['P(mu > 0)']) if r['P(mu > 0)'] == r['P(mu > 0)'] else 'not reported (gate failed)'}"
        for i, (_, r) in enumerate(table.iterrows())
    ]
    return "P(mu > 0): " + " -> ".join(steps)


def _summary(b, plan, pooled, impl_pooled, tables, notes, flags, prior_mu, mid) -> str:
    fits = tables["bayes_diagnostics"]
    retried = int((fits["attempts"] > 1).sum()) if len(fits) else 0
    form = "theta integrated out" if b["parameterization"] == "marginal" else "non-centred"
    priors = (
        f"mu ~ {prior_mu.label()}; tau prior {b['tau_prior']} for SMDs, {b['tau_prior_log_or']} for log ORs; "
        "posterior mean [95% interval]"
    )
    if b.get("engine", "exact") == "exact":
        head = (
            f"Bayesian pooling (normal-normal; {EXACT_ENGINE}, {len(fits)} fits; {priors}). Sampler "
            f"diagnostics: {NOT_APPLICABLE}."
        )
    else:
        head = (
            f"Bayesian pooling (normal-normal, {form}; NUTS via nutpie, {b['chains']} x {b['draws']} draws; "
            f"{priors}). Gate R-hat <= 1.01, bulk ESS >= 400, 0 divergences: "
            f"{int(fits['passed'].astype(bool).sum()) if len(fits) else 0} of {len(fits)} fits passed, "
            f"{retried} needed one retry."
        )
    lines = [head, ""]
    for label, part in pooled.items():
        est = part["estimates"].set_index("quantity")
        line = (
            f"  {label}: k = {part['fit'].result.k}, mu {fmt(est.at['mu', 'estimate'])} "
            f"[{fmt(est.at['mu', 'ci_low'])}, {fmt(est.at['mu', 'ci_high'])}], tau median "
            f"{fmt(est.at['tau', 'median'])}, new trial [{fmt(est.at['mu_new', 'ci_low'])}, "
            f"{fmt(est.at['mu_new', 'ci_high'])}], P(mu > 0) = {fmt(est.at['P(mu > 0)', 'estimate'])}"
        )
        if mid and f"P(mu > {mid:g})" in est.index:
            line += f", P(mu > {mid:g}) = {fmt(est.at[f'P(mu > {mid:g})', 'estimate'])}"
        lines.append(line)
        if len(part["bayes_factors"]):
            bf = part["bayes_factors"].iloc[0]
            lines.append(
                f"    Bayes factors (main prior; > 1 favours the point hypothesis): BF(tau = 0) = "
                f"{fmt(bf['bf_tau0'])}, BF(mu = 0) = {fmt(bf['bf_mu0'])}; log p(y) = "
                f"{fmt(bf['log_marginal_likelihood'])}"
            )
        sens = part["sensitivity"]
        if len(sens) > 1:
            lines.append(
                f"    across {len(sens)} tau priors: mu {fmt(sens['mu_mean'].min())} to "
                f"{fmt(sens['mu_mean'].max())}, P(mu > 0) {fmt(sens['P(mu > 0)'].min())} to "
                f"{fmt(sens['P(mu > 0)'].max())}"
            )
        if len(part["cumulative"]) >= 2:
            lines.append("    cumulative " + cumulative_sentence(part["cumulative"]))
    for measure, part in impl_pooled.items():
        pct = proportion_rows(part["fit"].result).set_index("quantity")
        q = "pooled proportion (%)"
        lines.append(
            f"  implementation {measure}: k = {part['fit'].result.k}, {fmt(pct.at[q, 'estimate'], 1)}% "
            f"[{fmt(pct.at[q, 'ci_low'], 1)}, {fmt(pct.at[q, 'ci_high'], 1)}] (posterior median, logit "
            "scale back-transformed)"
        )
    lines += [f"  not pooled: {n}" for n in notes]
    lines += [f"  FLAG: {f}" for f in flags]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Entry points for the pipeline


def run_meta_stage_with_bayes(
    tables: dict[str, pd.DataFrame] | None, settings: dict | None, *, seed: int | None = None
) -> BayesStageResult:
    """The whole meta stage: the frequentist analysis (``meta_stage.run_meta_stage``) with this module as its
    Bayesian hook. ``settings`` is the meta section; its ``bayes`` sub-section configures the pooling. The
    result carries the main posteriors (``posteriors``) for ``write_posteriors``."""
    from imrstats.meta.stage import run_meta_stage

    settings = section_settings("meta", settings)
    b = settings["bayes"]
    captured: dict = {}

    def hook(pooling_inputs, meta_settings, hook_seed):
        part = bayes_pooling(pooling_inputs, meta_settings, hook_seed)
        captured["part"] = part
        return part

    result = run_meta_stage(tables, settings, seed=seed, bayes=hook if b["enabled"] else None)
    part = captured.get("part")
    return BayesStageResult(
        **result.__dict__, posteriors=part.posteriors if part else {}, seconds=part.seconds if part else 0.0
    )


def write_posteriors(result: StageResult, out_dir: str | Path) -> dict[str, Path]:
    """Write each main posterior as netCDF, ``<out_dir>/posteriors/bayes_<name>.nc`` (atomically, via
    ``bayes.save_posterior``). Returns name -> path; a result without posteriors writes nothing."""
    out = {}
    for name, posterior in (getattr(result, "posteriors", None) or {}).items():
        out[name] = save_posterior(posterior, Path(out_dir) / "posteriors" / f"bayes_{slug(name)}.nc")
    return out
