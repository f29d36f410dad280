"""Bayesian models beyond the normal-normal family, sampled with PyMC + nutpie: where PyMC earns its place.

The normal-normal random-effects model has an exact posterior (``imrstats.meta.bayes_exact``); the two models
here do not, so they are sampled with NUTS, behind the same convergence gate as ``imrstats.meta.bayes``
(R-hat <= 1.01, bulk ESS >= 400, no divergences; Vehtari et al. 2021, Bayesian Analysis 16:667-718).

1. **Meta-regression with one moderator** (``MetaRegression``; Thompson & Higgins 2002, Stat Med 21:1559-1573;
   Higgins, Thompson & Spiegelhalter 2009, JRSS A 172:137-159):

       y_i ~ N(theta_i, s_i^2),  theta_i ~ N(beta0 + beta1 (x_i - c), tau^2),
       beta0 ~ N(m0, s0^2),  beta1 ~ N(m1, s1^2),  tau ~ any shipped tau prior.

   theta is integrated out for sampling, y_i ~ N(beta0 + beta1 (x_i - c), s_i^2 + tau^2), as bayes.py does
   for the pooled model. The moderator is centred at c (default: the mean of x, reported) so that beta0 and
   beta1 are nearly uncorrelated a posteriori (NUTS adapts a diagonal mass matrix; an uncentred year would
   make the two almost collinear); beta0 is the mean effect at x = c and its prior is stated there, as brms
   does for its intercept. Given tau the posterior of (beta0, beta1) is normal (weighted least squares with
   the prior as two pseudo-observations); the tests check NUTS against that and against a quadrature over tau.
   Reported: beta0, beta1, tau (mean, SD, median, equal-tailed interval), P(beta1 > 0), the gate.

2. **Robust model with t-distributed study effects** (``RobustT``; Lee & Thompson 2008, Stat Med 27:2387-2402;
   Baker & Jackson 2008, Res Synth Methods / Stat Med 27:6-27 for the heavy-tailed random effects):

       y_i ~ N(theta_i, s_i^2),  theta_i ~ Student-t(nu, mu, tau),  mu ~ N(m0, s0^2),  tau ~ shipped prior,
       nu fixed (default 4) or nu ~ Gamma(2, 0.1) (Juarez & Steel 2010, J Bus Econ Stat 28:52-66).

   Sampled through the t's scale-mixture form (Andrews & Mallows 1974): theta_i ~ N(mu, tau^2 lambda_i),
   lambda_i ~ InvGamma(nu/2, nu/2); theta is integrated out, y_i ~ N(mu, s_i^2 + tau^2 lambda_i), and each
   draw's theta_i is drawn afterwards from its exact normal conditional given (mu, tau, lambda_i). An outlying
   study gets a large lambda_i, i.e. a wide random-effect distribution of its own, so it pulls mu less and is
   shrunk less than under the normal model. Reported: mu, tau, mu_new (a new trial's effect, drawn from the
   t: mu + tau t_nu), each theta_i, P(mu > 0), P(mu > MID), P(mu_new > 0), P(mu_new > MID), nu if sampled,
   the gate. tau is the t's scale, not the SD of the effects (which is tau sqrt(nu / (nu - 2)) for nu > 2).

Both are compiled once per model structure (nutpie + numba): the data (y, se, x, a mask over padded study
slots) and every prior hyperparameter are ``pm.Data`` containers swapped in by ``with_data``; the tau prior is
chosen by a family code (``bayes.tau_prior_logp_log_scale``), so every outcome and prior reuses one compile.
Seeds: nutpie's chains from ``seed``; draws made after sampling (theta, mu_new) from
``spawn_generator(seed, ...)``: the same seed gives byte-identical draws.

``run_bayes_sensitivity_models(effects, settings, seed)`` runs both over the meta stage's pooled effects when
``meta.bayes.robust_t.enabled`` / ``meta.bayes.meta_regression.enabled`` are set (both off by default).
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from imrstats.core.seeds import label_code, spawn_generator, spawn_seed
from imrstats.errors import AnalysisError, InputError
from imrstats.meta.bayes import (
    ESS_BULK_MIN,
    RHAT_MAX,
    SHIPPED_TAU_PRIORS,
    Diagnostics,
    GatedPosterior,
    HalfNormal,
    Normal,
    TauPrior,
    UniformTau,
    diagnose,
    mcse_mean,
    prior_data,
    rhat_ess,
    start_inside_bound,
    tau_prior_logp_log_scale,
    validate_inputs,
)
from imrstats.results import Estimate, ResultMixin, summary_block, to_frame

ENGINE = "NUTS (PyMC/nutpie)"
NU_PRIORS = {"gamma_2_0.1": "nu ~ Gamma(2, 0.1) (Juarez & Steel 2010)"}
_CENTRES = ("mean",)


# ---------------------------------------------------------------------------------------------
# Result


@dataclass(frozen=True)
class ModelResult(GatedPosterior, ResultMixin):
    """Posterior of one fit of a model beyond the normal-normal family.

    estimates: tidy Estimate rows (posterior mean = estimate, SD = se, equal-tailed interval; median, MCSE,
    bulk ESS and R-hat as extra columns; probabilities as their own rows, se = MCSE); method starts with
    ``ENGINE``. draws: name -> array (chain, draw) of every reported parameter (theta per study as
    ``theta[label]``).
    """

    model: str
    estimates: pd.DataFrame
    diagnostics: Diagnostics
    priors: dict
    k: int
    seed: int
    method: str
    settings: dict = field(default_factory=dict)
    draws: dict = field(default_factory=dict, repr=False, compare=False)

    _json_skip = ("draws",)

    gate_advice = "review the priors"

    def gate_subject(self) -> str:
        return f"{self.model} (k = {self.k})"

    def to_frame(self) -> pd.DataFrame:
        return self.estimates.copy()

    def summary(self) -> str:
        d = self.diagnostics
        gate = "passed" if d.ok else "FAILED: " + "; ".join(d.problems())
        facts = [("priors", "; ".join(self.priors.values())), ("seed", self.seed)]
        facts += [(k, v) for k, v in self.settings.items()]
        facts.append(
            (
                "sampler",
                f"{d.chains} chains x {d.draws} draws after {d.tune} tuning; max R-hat {d.max_rhat:.4f} "
                f"({d.max_rhat_parameter}), min bulk ESS {d.min_ess_bulk:.0f} ({d.min_ess_parameter}), "
                f"{d.divergences} divergences; gate {gate}",
            )
        )
        return summary_block(
            f"{self.model} (k = {self.k}), {ENGINE}", facts, self.estimates, [f"Method: {self.method}"]
        )


def _estimate_rows(draws_by_name, rhat, ess, ci, method, notes=None, probabilities=()) -> pd.DataFrame:
    """Posterior mean, SD, equal-tailed interval per parameter; then P(name > threshold) rows."""
    notes = notes or {}
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    rows = []
    for name, x in draws_by_name.items():
        flat = x.ravel()
        rows.append(
            Estimate(
                quantity=name,
                estimate=float(flat.mean()),
                se=float(flat.std(ddof=1)),
                ci_low=float(np.quantile(flat, lo)),
                ci_high=float(np.quantile(flat, hi)),
                method=method,
                notes=notes.get(name, ""),
                extra={
                    "median": float(np.median(flat)),
                    "mcse_mean": mcse_mean(x),
                    "ess_bulk": ess[name],
                    "r_hat": rhat[name],
                },
            )
        )
    for target, text, value, note in probabilities:
        indicator = (draws_by_name[target] > value).astype(float)
        rows.append(
            Estimate(
                quantity=f"P({target} > {text})",
                estimate=float(indicator.mean()),
                se=mcse_mean(indicator),
                method=f"{ENGINE}; share of posterior draws (se = MCSE)",
                notes=note,
            )
        )
    return to_frame(rows)


# ---------------------------------------------------------------------------------------------
# Compile once per structure


class _Compiled:
    """Holds one compiled model over `capacity` study slots; a larger data set recompiles once to the next
    multiple of 8 (recorded in `compile_log`)."""

    structure = ""

    def __init__(self, capacity: int = 16, target_accept: float = 0.99, cores: int | None = None):
        if int(capacity) < 1:
            raise InputError(f"capacity must be >= 1 study slot, got {capacity}")
        if not 0.5 <= target_accept < 1:
            raise InputError(f"target_accept must be in [0.5, 1), got {target_accept}")
        self.capacity = int(capacity)
        self.target_accept = float(target_accept)
        self.cores = cores
        self.compile_log: list[dict] = []
        self._compiled = None

    def build(self, capacity: int):  # pragma: no cover - overridden
        raise NotImplementedError

    def compile(self):
        import nutpie

        start = time.perf_counter()
        self._compiled = nutpie.compile_pymc_model(self.build(self.capacity))
        self.compile_log.append(
            {"structure": self.structure, "capacity": self.capacity, "seconds": time.perf_counter() - start}
        )
        return self

    def _compiled_for(self, k: int):
        if k > self.capacity:
            self.capacity = 8 * math.ceil(k / 8)
            self._compiled = None
        if self._compiled is None:
            self.compile()
        return self._compiled

    def _sample(self, model, *, prior_tau, seed, draws, tune, chains):
        import nutpie

        if not (isinstance(draws, int) and draws >= 100 and isinstance(tune, int) and tune >= 100):
            raise InputError(f"draws and tune must be integers >= 100, got draws={draws}, tune={tune}")
        if not (isinstance(chains, int) and chains >= 2):
            raise InputError(f"chains must be an integer >= 2 (R-hat needs several chains), got {chains}")
        if isinstance(prior_tau, UniformTau):
            model = start_inside_bound(model, math.log(prior_tau.upper))
        start = time.perf_counter()
        trace = nutpie.sample(
            model,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=self.cores or min(chains, os.cpu_count() or 1),
            seed=int(seed),
            progress_bar=False,
            save_warmup=False,
            target_accept=self.target_accept,
        )
        return trace, time.perf_counter() - start


def _padded(values, capacity, fill):
    values = np.asarray(values, dtype=float)
    return np.concatenate([values, np.full(capacity - values.size, float(fill))])


def _check_ci(ci):
    if not 0 < ci < 1:
        raise InputError(f"ci must be in (0, 1), got {ci}")


class MetaRegression(_Compiled):
    """Bayesian meta-regression with one moderator (see the module docstring); compiled once, fitted many times."""

    structure = "meta-regression, one moderator (study effects integrated out)"

    def build(self, capacity: int):
        import pymc as pm
        import pytensor.tensor as pt

        with pm.Model() as model:
            y = pm.Data("y", np.zeros(capacity))
            se = pm.Data("se", np.ones(capacity))
            x = pm.Data("x", np.zeros(capacity))
            mask = pm.Data("mask", np.zeros(capacity))
            d = {n: pm.Data(n, v) for n, v in prior_data(Normal(), HalfNormal(1.0)).items()}
            b1_loc, b1_scale = pm.Data("b1_loc", 0.0), pm.Data("b1_scale", 1.0)
            beta0 = pm.Normal("beta0", d["mu_loc"], d["mu_scale"])
            beta1 = pm.Normal("beta1", b1_loc, b1_scale)
            log_tau = pm.Flat("log_tau")
            tau = pm.Deterministic("tau", pt.exp(log_tau))
            pm.Potential("tau_prior", tau_prior_logp_log_scale(d, tau, log_tau))
            sd = pt.sqrt(se**2 + tau**2)
            pm.Potential("loglik", pt.sum(mask * pm.logp(pm.Normal.dist(beta0 + beta1 * x, sd), y)))
        return model

    def fit(
        self,
        yi: Sequence[float],
        sei: Sequence[float],
        x: Sequence[float],
        labels: Sequence[str] | None = None,
        *,
        prior_beta0: Normal = Normal(0.0, 10.0),
        prior_beta1: Normal = Normal(0.0, 10.0),
        prior_tau: TauPrior = HalfNormal(0.5),
        centre: float | str = "mean",
        moderator: str = "x",
        seed: int = 20241122,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        ci: float = 0.95,
    ) -> ModelResult:
        """Sample the posterior of (beta0, beta1, tau) for effects `yi` (standard errors `sei`) on moderator `x`.

        beta0 is the mean effect at x = `centre` ("mean": the mean of x; or a number, e.g. 0 for the
        uncentred intercept); its prior `prior_beta0` is stated there. Diagnostics are computed, not enforced:
        call ``result.check_diagnostics()`` to gate."""
        y, se, labels = validate_inputs(yi, sei, labels)
        x = np.asarray(x, dtype=float).ravel()
        if x.shape != y.shape:
            raise InputError(f"moderator {moderator!r} has {x.size} values for {y.size} effects; give one per study")
        if not np.all(np.isfinite(x)):
            bad = np.flatnonzero(~np.isfinite(x)).tolist()
            raise InputError(f"moderator {moderator!r} holds missing or infinite values at positions {bad}")
        if np.ptp(x) == 0:
            raise AnalysisError(f"moderator {moderator!r} is constant ({x[0]:g}) across the {y.size} studies: no slope")
        if isinstance(centre, str):
            if centre not in _CENTRES:
                raise InputError(f"centre must be a number or one of {_CENTRES}, got {centre!r}")
            c = float(x.mean())
        else:
            c = float(centre)
            if not math.isfinite(c):
                raise InputError(f"centre must be finite, got {centre!r}")
        if not isinstance(prior_beta1, Normal):
            raise InputError(f"prior_beta1 must be imrstats.meta.bayes.Normal, got {type(prior_beta1).__name__}")
        _check_ci(ci)
        k = y.size
        compiled = self._compiled_for(k)
        cap = self.capacity
        model = compiled.with_data(
            y=_padded(y, cap, 0.0),
            se=_padded(se, cap, 1.0),
            x=_padded(x - c, cap, 0.0),
            mask=_padded(np.ones(k), cap, 0.0),
            b1_loc=float(prior_beta1.loc),
            b1_scale=float(prior_beta1.scale),
            **prior_data(prior_beta0, prior_tau),
        )
        trace, seconds = self._sample(model, prior_tau=prior_tau, seed=seed, draws=draws, tune=tune, chains=chains)
        draws_by_name = {
            name: np.asarray(trace.posterior[name].values, dtype=float) for name in ("beta0", "beta1", "tau")
        }
        divergences = int(np.asarray(trace.sample_stats["diverging"].values).sum())
        rhat, ess = rhat_ess(draws_by_name)
        diagnostics = diagnose(rhat, ess, divergences, chains, draws, tune, self.target_accept, seconds)
        method = (
            f"{ENGINE}: Bayesian meta-regression on {moderator} (centred at {c:g}; study effects integrated out), "
            f"{chains} chains x {draws} draws after {tune} tuning, target_accept {self.target_accept:g}; "
            f"posterior mean, SD, {100 * ci:g}% equal-tailed interval"
        )
        notes = {
            "beta0": f"mean effect at {moderator} = {c:g}",
            "beta1": f"change in effect per unit of {moderator}",
            "tau": "residual heterogeneity (SD of the study effects around the regression line)",
        }
        estimates = _estimate_rows(
            draws_by_name, rhat, ess, ci, method, notes, probabilities=[("beta1", "0", 0.0, f"slope on {moderator}")]
        )
        return ModelResult(
            model="Bayesian meta-regression",
            estimates=estimates,
            diagnostics=diagnostics,
            priors={
                "beta0": f"beta0 ~ {prior_beta0.label()}",
                "beta1": f"beta1 ~ {prior_beta1.label()}",
                "tau": prior_tau.label(),
            },
            k=k,
            seed=int(seed),
            method=method,
            settings={"moderator": moderator, "centre": c},
            draws=draws_by_name,
        )


class RobustT(_Compiled):
    """Random-effects model with Student-t study effects (see the module docstring). `nu_prior`: None (nu is
    fixed per fit, a data container) or a key of ``NU_PRIORS`` (nu sampled): two model structures."""

    def __init__(self, capacity: int = 16, target_accept: float = 0.99, cores: int | None = None, nu_prior=None):
        if nu_prior is not None and nu_prior not in NU_PRIORS:
            raise InputError(f"nu_prior must be None (nu fixed) or one of {sorted(NU_PRIORS)}, got {nu_prior!r}")
        super().__init__(capacity, target_accept, cores)
        self.nu_prior = nu_prior
        self.structure = "robust t study effects (scale mixture; " + (
            "nu fixed)" if nu_prior is None else f"{NU_PRIORS[nu_prior]})"
        )

    def build(self, capacity: int):
        import pymc as pm
        import pytensor.tensor as pt

        with pm.Model() as model:
            y = pm.Data("y", np.zeros(capacity))
            se = pm.Data("se", np.ones(capacity))
            mask = pm.Data("mask", np.zeros(capacity))
            d = {n: pm.Data(n, v) for n, v in prior_data(Normal(), HalfNormal(1.0)).items()}
            if self.nu_prior is None:
                nu = pm.Data("nu", 4.0)
            else:
                nu = pm.Gamma("nu", alpha=2.0, beta=0.1)
            mu = pm.Normal("mu", d["mu_loc"], d["mu_scale"])
            log_tau = pm.Flat("log_tau")
            tau = pm.Deterministic("tau", pt.exp(log_tau))
            pm.Potential("tau_prior", tau_prior_logp_log_scale(d, tau, log_tau))
            lam = pm.InverseGamma("lam", alpha=nu / 2.0, beta=nu / 2.0, shape=capacity)
            sd = pt.sqrt(se**2 + tau**2 * lam)
            pm.Potential("loglik", pt.sum(mask * pm.logp(pm.Normal.dist(mu, sd), y)))
        return model

    def fit(
        self,
        yi: Sequence[float],
        sei: Sequence[float],
        labels: Sequence[str] | None = None,
        *,
        nu: float = 4.0,
        prior_mu: Normal = Normal(0.0, 10.0),
        prior_tau: TauPrior = HalfNormal(0.5),
        mid: float | None = None,
        seed: int = 20241122,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        ci: float = 0.95,
    ) -> ModelResult:
        """Sample mu, tau (and nu if it has a prior), the lambda_i; then theta_i and mu_new (see the module
        docstring). `nu` is used only when the model was built with nu fixed."""
        y, se, labels = validate_inputs(yi, sei, labels)
        if self.nu_prior is None and not (isinstance(nu, (int, float)) and math.isfinite(nu) and nu > 0):
            raise InputError(f"nu (degrees of freedom of the study effects) must be a finite number > 0, got {nu!r}")
        _check_ci(ci)
        k = y.size
        compiled = self._compiled_for(k)
        cap = self.capacity
        data = dict(
            y=_padded(y, cap, 0.0),
            se=_padded(se, cap, 1.0),
            mask=_padded(np.ones(k), cap, 0.0),
            **prior_data(prior_mu, prior_tau),
        )
        if self.nu_prior is None:
            data["nu"] = float(nu)
        model = compiled.with_data(**data)
        trace, seconds = self._sample(model, prior_tau=prior_tau, seed=seed, draws=draws, tune=tune, chains=chains)
        post = trace.posterior
        mu = np.asarray(post["mu"].values, dtype=float)
        tau = np.asarray(post["tau"].values, dtype=float)
        lam = np.asarray(post["lam"].values, dtype=float)[:, :, :k]
        nu_draws = (
            np.asarray(post["nu"].values, dtype=float) if self.nu_prior is not None else np.full(mu.shape, float(nu))
        )
        divergences = int(np.asarray(trace.sample_stats["diverging"].values).sum())
        # theta_i | mu, tau, lambda_i, y: normal with B_i = s_i^2 / (s_i^2 + tau^2 lambda_i) (written with B, so
        # tau -> 0 gives theta = mu); mu_new = mu + tau t_nu. Generators seeded from `seed`.
        v = se**2
        shrink = v / (v + tau[..., None] ** 2 * lam)
        mean = shrink * mu[..., None] + (1.0 - shrink) * y
        theta = mean + np.sqrt((1.0 - shrink) * v) * spawn_generator(seed, 2).standard_normal(mean.shape)
        mu_new = mu + tau * spawn_generator(seed, 1).standard_t(nu_draws)
        draws_by_name = {"mu": mu, "tau": tau, "mu_new": mu_new}
        if self.nu_prior is not None:
            draws_by_name["nu"] = nu_draws
        draws_by_name.update({f"theta[{lab}]": theta[:, :, i] for i, lab in enumerate(labels)})
        rhat, ess = rhat_ess(draws_by_name)
        diagnostics = diagnose(rhat, ess, divergences, chains, draws, tune, self.target_accept, seconds)
        nu_text = f"nu = {float(nu):g} fixed" if self.nu_prior is None else NU_PRIORS[self.nu_prior]
        method = (
            f"{ENGINE}: random-effects model with Student-t study effects ({nu_text}; scale mixture, study "
            f"effects integrated out), {chains} chains x {draws} draws after {tune} tuning, target_accept "
            f"{self.target_accept:g}; posterior mean, SD, {100 * ci:g}% equal-tailed interval"
        )
        thresholds = [("0", 0.0, "")] + (
            [] if mid is None else [(f"{float(mid):g}", float(mid), "threshold is the MID")]
        )
        probabilities = [(t, text, value, note) for t in ("mu", "mu_new") for text, value, note in thresholds]
        notes = {
            "tau": "scale of the t distribution of study effects (not their SD)",
            "mu_new": "predictive effect of a new trial (from the t)",
        }
        estimates = _estimate_rows(draws_by_name, rhat, ess, ci, method, notes, probabilities)
        priors = {
            "mu": f"mu ~ {prior_mu.label()}",
            "tau": prior_tau.label(),
            "theta": f"theta_i ~ Student-t({nu_text}, mu, tau)",
        }
        return ModelResult(
            model="Robust random-effects meta-analysis (t study effects)",
            estimates=estimates,
            diagnostics=diagnostics,
            priors=priors,
            k=k,
            seed=int(seed),
            method=method,
            settings={"nu": nu_text},
            draws=draws_by_name,
        )


_SHARED: dict[tuple, _Compiled] = {}


def shared_model(kind: str, capacity: int = 16, target_accept: float = 0.99, nu_prior: str | None = None) -> _Compiled:
    """One compiled model per process, structure and setting: kind "meta_regression" or "robust_t"."""
    key = (kind, int(capacity), float(target_accept), nu_prior)
    if key not in _SHARED:
        if kind == "meta_regression":
            _SHARED[key] = MetaRegression(capacity, target_accept)
        elif kind == "robust_t":
            _SHARED[key] = RobustT(capacity, target_accept, nu_prior=nu_prior)
        else:
            raise InputError(f"kind must be 'meta_regression' or 'robust_t', got {kind!r}")
    return _SHARED[key]


# ---------------------------------------------------------------------------------------------
# Pipeline hook: optional sensitivity analyses of the meta stage


def _gated(model: _Compiled, fit_args: tuple, fit_kwargs: dict, *, seed: int, context: str, on_failure: str):
    """Fit; on a failed gate refit once with 2x tune and draws and target_accept a tenth closer to 1 (as the
    meta stage's ``gated_fit``). Returns (result, attempts, failure message or "")."""
    first = model.fit(*fit_args, seed=seed, **fit_kwargs)
    if first.diagnostics.ok:
        return first, 1, ""
    retry = copy.copy(model)  # shares the compiled model; only the step-size target differs
    retry.target_accept = 1.0 - (1.0 - model.target_accept) / 10.0
    kwargs = dict(fit_kwargs, draws=2 * fit_kwargs["draws"], tune=2 * fit_kwargs["tune"])
    second = retry.fit(*fit_args, seed=spawn_seed(seed, 1), **kwargs)
    if second.diagnostics.ok:
        return second, 2, ""
    message = (
        f"{context}: the sampler gate failed twice (R-hat <= {RHAT_MAX}, bulk ESS >= {ESS_BULK_MIN:.0f}, no "
        f"divergences): first {'; '.join(first.diagnostics.problems())}; retry "
        f"{'; '.join(second.diagnostics.problems())}; not reported"
    )
    if on_failure == "fail":
        raise AnalysisError(f"Bayesian sensitivity model, {message}")
    return second, 2, message


def _result_rows(result: ModelResult, attempts: int, failure: str, **ids) -> pd.DataFrame:
    frame = result.to_frame()
    d = result.diagnostics
    if failure:  # a fit that failed the gate keeps its diagnostics, never its numbers
        for col in ("estimate", "se", "ci_low", "ci_high", "median", "mcse_mean"):
            if col in frame:
                frame[col] = math.nan
    gate = {
        "k": result.k,
        "attempts": attempts,
        "max_rhat": d.max_rhat,
        "min_ess_bulk": d.min_ess_bulk,
        "divergences": d.divergences,
        "gate": "passed" if not failure else "FAILED after retry: not reported",
    }
    return frame.assign(**ids, **gate)[list(ids) + list(frame.columns) + list(gate)]


def _as_inputs(effects) -> dict[str, pd.DataFrame]:
    if isinstance(effects, Mapping):
        return {str(k): v for k, v in effects.items() if v is not None}
    if isinstance(effects, pd.DataFrame):
        if "outcome" not in effects.columns:
            raise InputError("the effects frame needs an 'outcome' column (or pass a mapping outcome -> rows)")
        return {str(k): g for k, g in effects.groupby("outcome", sort=False)}
    raise InputError(
        f"effects must be a mapping outcome -> rows or a frame with an 'outcome' column, got {type(effects).__name__}"
    )


def run_bayes_sensitivity_models(effects, settings: Mapping, seed: int) -> dict:
    """The optional PyMC sensitivity analyses of the meta stage, over the effects the Bayesian pooling uses.

    effects: outcome label -> rows (study, year, measure, yi, sei and the moderator column), as the meta stage
    hands ``bayes_pooling``, or one frame with an ``outcome`` column. settings: the meta section (its ``bayes``
    sub-section holds ``robust_t`` and ``meta_regression``; ``mid``, ``prior_mu``, ``tau_prior``,
    ``tau_prior_log_or``, draws / tune / chains / target_accept and ``on_secondary_gate_failure`` are shared
    with the main pooling). Only SMD and log OR outcomes are fitted (the shipped tau priors are built for them).

    Returns {"tables": {"bayes_robust_t": frame, "bayes_meta_regression": frame} (only those enabled),
    "notes": [...], "flags": [...], "compile_log": [...]}. Seeds: ``spawn_seed(seed, label_code(kind),
    label_code(outcome))``. A fit failing the gate twice is flagged and blanked, or raises with
    ``on_secondary_gate_failure: fail``.
    """
    from imrstats.config import section_settings

    s = section_settings("meta", dict(settings) if settings is not None else None)
    b = s["bayes"]
    robust, reg = b["robust_t"], b["meta_regression"]
    out: dict = {"tables": {}, "notes": [], "flags": [], "compile_log": []}
    if not (robust["enabled"] or reg["enabled"]):
        return out
    inputs = _as_inputs(effects)
    prior_mu = Normal(float(b["prior_mu"]["loc"]), float(b["prior_mu"]["scale"]))
    mid = None if s.get("mid") is None else float(s["mid"])
    run = dict(draws=int(b["draws"]), tune=int(b["tune"]), chains=int(b["chains"]))
    on_failure = b["on_secondary_gate_failure"]
    plan = []
    for label, data in inputs.items():
        measures = set(data["measure"]) if "measure" in data.columns else {"SMD"}
        if len(measures) != 1 or not measures <= {"SMD", "log OR"}:
            out["notes"].append(f"{label}: measure(s) {sorted(map(str, measures))}: no shipped tau prior; not fitted")
            continue
        key = b["tau_prior"] if measures == {"SMD"} else b["tau_prior_log_or"]
        plan.append((label, data, key, mid if measures == {"SMD"} else None))
    k_max = max([len(d) for _, d, _, _ in plan] + [1])
    capacity = max(8, 8 * math.ceil(k_max / 8))
    target_accept = float(b["target_accept"])
    if robust["enabled"]:
        model = shared_model("robust_t", capacity, target_accept, robust.get("nu_prior"))
        frames = []
        for label, data, key, mid_here in plan:
            if len(data) < b["min_studies"]:
                out["notes"].append(f"robust t, {label}: k = {len(data)} < meta.bayes.min_studies; not fitted")
                continue
            result, attempts, failure = _gated(
                model,
                (data["yi"].to_numpy(float), data["sei"].to_numpy(float), [str(x) for x in data["study"]]),
                dict(
                    nu=float(robust["nu"]),
                    prior_mu=prior_mu,
                    prior_tau=SHIPPED_TAU_PRIORS[key].prior,
                    mid=mid_here,
                    **run,
                ),
                seed=spawn_seed(seed, label_code("robust_t"), label_code(label)),
                context=f"robust t, outcome {label}",
                on_failure=on_failure,
            )
            if failure:
                out["flags"].append(failure)
            frames.append(_result_rows(result, attempts, failure, outcome=label, model="robust t", prior=key))
        out["tables"]["bayes_robust_t"] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        out["compile_log"] += model.compile_log
    if reg["enabled"]:
        moderator = str(reg["moderator"])
        model = shared_model("meta_regression", capacity, target_accept)
        slope = Normal(float(reg["prior_slope"]["loc"]), float(reg["prior_slope"]["scale"]))
        frames = []
        for label, data, key, _ in plan:
            if moderator not in data.columns:
                raise InputError(f"meta.bayes.meta_regression.moderator: outcome {label} has no column {moderator!r}")
            x = pd.to_numeric(data[moderator], errors="coerce")
            missing = int(x.isna().sum())
            keep = x.notna().to_numpy()
            if missing:
                out["notes"].append(
                    f"meta-regression, {label}: {missing} of {len(data)} studies without {moderator}; left out"
                )
            k = int(keep.sum())
            if k < reg["min_studies"]:
                out["notes"].append(
                    f"meta-regression, {label}: k = {k} < meta.bayes.meta_regression.min_studies = "
                    f"{reg['min_studies']}; not fitted"
                )
                continue
            if np.ptp(x[keep].to_numpy(float)) == 0:
                out["notes"].append(f"meta-regression, {label}: {moderator} is the same in every study; not fitted")
                continue
            rows = data.loc[keep]
            result, attempts, failure = _gated(
                model,
                (
                    rows["yi"].to_numpy(float),
                    rows["sei"].to_numpy(float),
                    x[keep].to_numpy(float),
                    [str(v) for v in rows["study"]],
                ),
                dict(
                    prior_beta0=prior_mu,
                    prior_beta1=slope,
                    prior_tau=SHIPPED_TAU_PRIORS[key].prior,
                    moderator=moderator,
                    **run,
                ),
                seed=spawn_seed(seed, label_code("meta_regression"), label_code(label)),
                context=f"meta-regression on {moderator}, outcome {label}",
                on_failure=on_failure,
            )
            if failure:
                out["flags"].append(failure)
            frames.append(
                _result_rows(
                    result, attempts, failure, outcome=label, model=f"meta-regression on {moderator}", prior=key
                )
            )
        out["tables"]["bayes_meta_regression"] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        out["compile_log"] += model.compile_log
    return out
