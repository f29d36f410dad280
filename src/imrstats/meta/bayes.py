"""Bayesian random-effects meta-analysis: the normal-normal hierarchical model, sampled with nutpie.

Model (Gelman et al. 2013, *Bayesian Data Analysis* 3rd ed., sections 5.4-5.5):

    y_i ~ Normal(theta_i, se_i)          i = 1..k, se_i known
    theta_i ~ Normal(mu, tau)
    mu ~ Normal(m0, s0),  tau ~ one of the priors below,
    theta_new ~ Normal(mu, tau)           (the predictive effect in a new trial)

How it is sampled: the study effects are integrated out analytically, so NUTS explores only (mu, log tau)
with y_i ~ Normal(mu, sqrt(se_i^2 + tau^2)) (BDA3 eq. 5.17-5.21); each draw's theta is then drawn from its
exact conditional posterior, theta_i | mu, tau, y ~ Normal(B_i mu + (1 - B_i) y_i, sqrt((1 - B_i) se_i^2)),
B_i = se_i^2 / (se_i^2 + tau^2), with a generator seeded from the fit's seed. The joint draws are draws
from the same posterior as the centred or non-centred forms, without either's funnel: with k = 2-3 studies
and a heavy-tailed tau prior the non-centred form still diverged where tau >> se (the likelihood pins theta
and z = (theta - mu) / tau narrows as tau grows); the two-dimensional marginal has no such region.
The non-centred form (theta_i = mu + tau z_i, z_i ~ N(0, 1); Betancourt & Girolami 2015) is kept as
`parameterization="non_centred"`; both are checked against the exact posterior.

Speed: one model is compiled (PyTensor -> numba, via nutpie) and reused for every outcome, prior and
cumulative step. The data (y, se, a mask over a padded study axis) and all prior hyperparameters are
`pm.Data` containers, and the tau prior is chosen by a numeric family code inside one `pm.Potential`,
so `CompiledPyMCModel.with_data` swaps inputs without recompiling. Padded study slots are masked out of
the likelihood and dropped from every output.

The sampler is a diagnostics gate, not a black box: every fit reports max R-hat, min bulk ESS and the
number of divergent transitions over mu, tau and the study effects, and `check_diagnostics` raises
`AnalysisError` naming the parameter and criterion that failed (R-hat <= 1.01, bulk ESS >= 400,
zero divergences; Vehtari et al. 2021, Bayesian Analysis 16:667-718).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.core.seeds import spawn_generator, spawn_seed
from imrstats.errors import AnalysisError, InputError
from imrstats.results import Estimate, ResultMixin, summary_block, to_frame, to_jsonable

RHAT_MAX = 1.01
ESS_BULK_MIN = 400.0
MAX_DIVERGENCES = 0


def _require_positive(value: float, what: str) -> None:
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value > 0):
        raise InputError(f"{what} must be a finite positive number, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Priors: small frozen dataclasses, each able to say what it is and give its log density.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normal:
    """Normal(loc, scale) prior on the pooled effect mu."""

    loc: float = 0.0
    scale: float = 10.0

    def __post_init__(self):
        _require_positive(self.scale, "Normal prior on mu: scale")

    def label(self) -> str:
        return f"Normal({self.loc:g}, {self.scale:g})"


@dataclass(frozen=True)
class HalfNormal:
    """tau ~ HalfNormal(scale): weakly informative; Friede et al. 2017 (Res Synth Methods 8:79-91)
    and Roever et al. 2021 (Res Synth Methods 12:448-474) discuss scale 0.5 for log ORs and SMDs."""

    scale: float
    code = 0

    def __post_init__(self):
        _require_positive(self.scale, "HalfNormal tau prior: scale")

    def label(self) -> str:
        return f"tau ~ HalfNormal({self.scale:g})"

    def logpdf_tau(self, tau):
        return stats.halfnorm.logpdf(tau, scale=self.scale)


@dataclass(frozen=True)
class HalfCauchy:
    """tau ~ HalfCauchy(scale): Gelman 2006 (Bayesian Analysis 1:515-534) for few groups."""

    scale: float
    code = 1

    def __post_init__(self):
        _require_positive(self.scale, "HalfCauchy tau prior: scale")

    def label(self) -> str:
        return f"tau ~ HalfCauchy({self.scale:g})"

    def logpdf_tau(self, tau):
        return stats.halfcauchy.logpdf(tau, scale=self.scale)


@dataclass(frozen=True)
class LogNormalTau2:
    """log(tau^2) ~ Normal(mean, sd): the empirical priors of Turner et al. 2015 (Stat Med
    34:984-998, Table IV), built for log odds ratios."""

    mean: float
    sd: float
    code = 2

    def __post_init__(self):
        _require_positive(self.sd, "LogNormalTau2 prior: sd")

    def label(self) -> str:
        return f"log(tau^2) ~ Normal({self.mean:g}, {self.sd:g}^2)"

    def logpdf_tau(self, tau):
        tau = np.asarray(tau, dtype=float)
        # change of variables t = log(tau^2): |dt/dtau| = 2 / tau
        log_tau = np.log(tau)
        return stats.norm.logpdf(2 * log_tau, self.mean, self.sd) + math.log(2.0) - log_tau


@dataclass(frozen=True)
class LogTTau2:
    """log(tau^2) ~ Student-t(nu, location, scale): the empirical priors of Rhodes, Turner and
    Higgins 2015 (J Clin Epidemiol 68:52-60, Table 3; nu = 5), built for standardized mean differences."""

    location: float
    scale: float
    nu: float = 5.0
    code = 3

    def __post_init__(self):
        _require_positive(self.scale, "LogTTau2 prior: scale")
        _require_positive(self.nu, "LogTTau2 prior: nu")

    def label(self) -> str:
        return f"log(tau^2) ~ t{self.nu:g}({self.location:g}, {self.scale:g})"

    def logpdf_tau(self, tau):
        tau = np.asarray(tau, dtype=float)
        log_tau = np.log(tau)
        return stats.t.logpdf(2 * log_tau, self.nu, self.location, self.scale) + math.log(2.0) - log_tau


@dataclass(frozen=True)
class UniformTau:
    """tau ~ Uniform(0, upper): the reference prior of Gelman et al. 2013 (BDA3, sections 5.4-5.5, the
    eight schools) and of the RStan "Getting Started" eight-schools example (flat on tau > 0), and
    Gelman 2006's recommendation when there are enough groups (>= ~5). Proper once `upper` is finite;
    choose `upper` far beyond any plausible tau so that the bound is never touched."""

    upper: float
    code = 4

    def __post_init__(self):
        _require_positive(self.upper, "Uniform tau prior: upper")

    def label(self) -> str:
        return f"tau ~ Uniform(0, {self.upper:g})"

    def logpdf_tau(self, tau):
        tau = np.asarray(tau, dtype=float)
        return np.where((tau > 0) & (tau < self.upper), -math.log(self.upper), -np.inf)


TauPrior = HalfNormal | HalfCauchy | LogNormalTau2 | LogTTau2 | UniformTau


@dataclass(frozen=True)
class NamedPrior:
    """A shipped tau prior: a key, the prior and where it comes from."""

    key: str
    prior: TauPrior
    citation: str
    note: str = ""


_RHODES = "Rhodes KM, Turner RM, Higgins JPT (2015) J Clin Epidemiol 68(1):52-60, Table 3"
_TURNER = "Turner RM et al. (2015) Stat Med 34(6):984-998, Table IV"
_VIA_BAYESMETA = " (values as tabulated in R package bayesmeta, R/bayesmeta.R, commit 10a27a7)"

SHIPPED_TAU_PRIORS: dict[str, NamedPrior] = {
    p.key: p
    for p in [
        NamedPrior(
            "half_normal_0.5",
            HalfNormal(0.5),
            "Friede T, Roever C, Wandel S, Neuenschwander B (2017) Res Synth Methods 8(1):79-91; "
            "Roever C et al. (2021) Res Synth Methods 12(4):448-474",
            "weakly informative; puts 95% of its mass below tau = 0.98",
        ),
        NamedPrior(
            "half_cauchy_0.5",
            HalfCauchy(0.5),
            "Gelman A (2006) Bayesian Analysis 1(3):515-534",
            "weakly informative with a heavy tail",
        ),
        NamedPrior(
            "rhodes_mental_health_nonpharm",
            LogTTau2(-3.85, 1.93, 5.0),
            _RHODES + _VIA_BAYESMETA + ": mental health outcome, non-pharmacological (any)",
            "location -3.85 as the source gives it; every other outcome row follows "
            "'pharmacological vs placebo + 0.14' (which would give -2.85): not settled against the paper",
        ),
        NamedPrior(
            "rhodes_mental_health_nonpharm_if_-2.85",
            LogTTau2(-2.85, 1.93, 5.0),
            _RHODES + _VIA_BAYESMETA + ": mental health outcome, non-pharmacological (any), location replaced by -2.85",
            "sensitivity only: the location the table's pattern implies, not a published value",
        ),
        NamedPrior(
            "rhodes_subjective_nonpharm",
            LogTTau2(-2.62, 2.41, 5.0),
            _RHODES + _VIA_BAYESMETA + ": various subjectively measured outcomes, non-pharmacological (any)",
        ),
        NamedPrior(
            "rhodes_functioning_nonpharm",
            LogTTau2(-3.02, 2.27, 5.0),
            _RHODES + _VIA_BAYESMETA + ": general physical health, adverse event, pain and quality of "
            "life / functioning, non-pharmacological (any)",
        ),
        NamedPrior(
            "turner_mental_health_nonpharm_vs_control",
            LogNormalTau2(-2.34, 1.72),
            _TURNER + _VIA_BAYESMETA + ": mental health indicators, non-pharmacological vs. placebo / control",
            "built for log odds ratios (binary outcomes); for an SMD analysis only a sensitivity prior",
        ),
    ]
}

DEFAULT_SENSITIVITY_KEYS = (
    "half_normal_0.5",
    "half_cauchy_0.5",
    "rhodes_mental_health_nonpharm",
    "rhodes_mental_health_nonpharm_if_-2.85",
    "rhodes_subjective_nonpharm",
    "rhodes_functioning_nonpharm",
    "turner_mental_health_nonpharm_vs_control",
)


def tau_prior_from_spec(family: str, location: float, scale: float, nu: float = 5.0) -> TauPrior:
    """Build a tau prior from plain config values (family + location + scale).

    family: "half_normal" | "half_cauchy" (location ignored, must be 0 or missing),
    "lognormal_tau2" (Turner) | "log_t_tau2" (Rhodes; nu degrees of freedom) |
    "uniform" (tau ~ Uniform(0, scale); BDA3's eight-schools prior).
    """
    family = str(family).strip().lower()
    if family in ("half_normal", "halfnormal"):
        return HalfNormal(float(scale))
    if family in ("half_cauchy", "halfcauchy"):
        return HalfCauchy(float(scale))
    if family in ("lognormal_tau2", "log_normal_tau2", "turner"):
        return LogNormalTau2(float(location), float(scale))
    if family in ("log_t_tau2", "logt_tau2", "rhodes"):
        return LogTTau2(float(location), float(scale), float(nu))
    if family in ("uniform", "uniform_tau"):
        return UniformTau(float(scale))
    raise InputError(
        f"unknown tau prior family {family!r}; use one of half_normal, half_cauchy, "
        "lognormal_tau2 (Turner et al. 2015), log_t_tau2 (Rhodes et al. 2015), uniform (scale = upper bound)"
    )


def read_heterogeneity_priors(path: str | os.PathLike) -> dict[str, NamedPrior]:
    """Adapter: read the curated `data/published/heterogeneity_priors.csv` (with a `key` column) into
    named priors. Reads a file, so it is an I/O helper, not a statistical function."""
    table = pd.read_csv(path)
    missing = {"key", "distribution", "location", "scale"} - set(table.columns)
    if missing:
        raise InputError(f"{path}: columns {sorted(missing)} missing; need key, distribution, location, scale")
    out = {}
    for row in table.itertuples(index=False):
        dist = str(row.distribution).lower()
        family = "log_t_tau2" if "student" in dist or "log-t" in dist else "lognormal_tau2"
        prior = tau_prior_from_spec(family, row.location, row.scale)
        source = str(getattr(row, "source", ""))
        out[str(row.key)] = NamedPrior(str(row.key), prior, source, str(getattr(row, "note", "") or ""))
    return out


# ---------------------------------------------------------------------------------------------
# The compiled model: one PyTensor graph, data and hyperparameters as containers.
# ---------------------------------------------------------------------------------------------

_LOG_2 = math.log(2.0)


def prior_data(prior_mu: Normal, prior_tau: TauPrior) -> dict[str, float]:
    """Values for the hyperparameter containers. Slots of the families not in use keep safe
    defaults (1.0), so no branch of the switch ever evaluates log(0) or 1/0."""
    if not isinstance(prior_mu, Normal):
        raise InputError(f"prior_mu must be imrstats.meta.bayes.Normal, got {type(prior_mu).__name__}")
    if not isinstance(prior_tau, (HalfNormal, HalfCauchy, LogNormalTau2, LogTTau2, UniformTau)):
        raise InputError(
            "prior_tau must be HalfNormal, HalfCauchy, LogNormalTau2, LogTTau2 or UniformTau, "
            f"got {type(prior_tau).__name__}"
        )
    values = dict(
        mu_loc=prior_mu.loc,
        mu_scale=prior_mu.scale,
        tau_family=float(prior_tau.code),
        hn_scale=1.0,
        hc_scale=1.0,
        ln_mean=0.0,
        ln_sd=1.0,
        lt_loc=0.0,
        lt_scale=1.0,
        lt_nu=5.0,
        u_upper=1.0,
    )
    if isinstance(prior_tau, HalfNormal):
        values["hn_scale"] = prior_tau.scale
    elif isinstance(prior_tau, HalfCauchy):
        values["hc_scale"] = prior_tau.scale
    elif isinstance(prior_tau, LogNormalTau2):
        values.update(ln_mean=prior_tau.mean, ln_sd=prior_tau.sd)
    elif isinstance(prior_tau, UniformTau):
        values["u_upper"] = prior_tau.upper
    else:
        values.update(lt_loc=prior_tau.location, lt_scale=prior_tau.scale, lt_nu=prior_tau.nu)
    return {k: float(v) for k, v in values.items()}


_PARAMETERIZATION_TEXT = {
    "marginal": "study effects integrated out for sampling, then drawn from their exact conditional",
    "non_centred": "non-centred",
}

PARAMETERIZATIONS = tuple(_PARAMETERIZATION_TEXT)


def tau_prior_logp_log_scale(d: Mapping, tau, log_tau):
    """The tau prior's log density on the log-tau scale as a PyTensor expression: the family is chosen by the
    numeric code in the container ``d["tau_family"]`` (HalfNormal 0, HalfCauchy 1, LogNormalTau2 2, LogTTau2 3,
    UniformTau 4) and the hyperparameters are the containers of ``prior_data``, so one compiled graph serves
    every shipped prior. Shared by this model and those of ``imrstats.meta.bayes_models``."""
    import pymc as pm
    import pytensor.tensor as pt

    log_tau2 = 2.0 * log_tau
    # log p(log_tau) = log p_tau(tau) + log_tau  (half-normal, half-Cauchy), or
    # log p(log_tau) = log p_t(log tau^2) + log 2 (priors stated on log tau^2).
    half_normal = (
        _LOG_2 - 0.5 * math.log(2 * math.pi) - pt.log(d["hn_scale"]) - 0.5 * (tau / d["hn_scale"]) ** 2 + log_tau
    )
    half_cauchy = math.log(2 / math.pi) - pt.log(d["hc_scale"]) - pt.log1p((tau / d["hc_scale"]) ** 2) + log_tau
    lognormal = pm.logp(pm.Normal.dist(d["ln_mean"], d["ln_sd"]), log_tau2) + _LOG_2
    log_t = pm.logp(pm.StudentT.dist(nu=d["lt_nu"], mu=d["lt_loc"], sigma=d["lt_scale"]), log_tau2) + _LOG_2
    uniform = pt.switch(pt.lt(tau, d["u_upper"]), log_tau - pt.log(d["u_upper"]), -np.inf)
    family = d["tau_family"]
    return pt.switch(
        pt.eq(family, 0),
        half_normal,
        pt.switch(
            pt.eq(family, 1),
            half_cauchy,
            pt.switch(pt.eq(family, 2), lognormal, pt.switch(pt.eq(family, 3), log_t, uniform)),
        ),
    )


def build_model(capacity: int, parameterization: str = "marginal"):
    """The normal-normal model over `capacity` study slots (a PyMC model, not compiled).

    "marginal": the study effects integrated out, y_i ~ N(mu, se_i^2 + tau^2); theta is drawn after
    sampling (`draw_study_effects`). "non_centred": theta_i = mu + tau z_i, z_i ~ N(0, 1) sampled.

    tau is sampled as log_tau with a flat base measure; the chosen prior's log density *on the
    log-tau scale* (prior density of tau plus the Jacobian log tau) is added by one Potential.
    """
    import pymc as pm
    import pytensor.tensor as pt

    with pm.Model() as model:
        y = pm.Data("y", np.zeros(capacity))
        se = pm.Data("se", np.ones(capacity))
        mask = pm.Data("mask", np.zeros(capacity))
        d = {name: pm.Data(name, value) for name, value in prior_data(Normal(), HalfNormal(1.0)).items()}

        mu = pm.Normal("mu", d["mu_loc"], d["mu_scale"])
        log_tau = pm.Flat("log_tau")
        tau = pm.Deterministic("tau", pt.exp(log_tau))
        pm.Potential("tau_prior", tau_prior_logp_log_scale(d, tau, log_tau))
        if parameterization == "marginal":
            marginal_sd = pt.sqrt(se**2 + tau**2)
            pm.Potential("loglik", pt.sum(mask * pm.logp(pm.Normal.dist(mu, marginal_sd), y)))
        elif parameterization == "non_centred":
            z = pm.Normal("z", 0.0, 1.0, shape=capacity)
            theta = pm.Deterministic("theta", mu + tau * z)
            pm.Potential("loglik", pt.sum(mask * pm.logp(pm.Normal.dist(theta, se), y)))
        else:
            raise InputError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
    return model


def draw_study_effects(
    mu: np.ndarray, tau: np.ndarray, y: np.ndarray, se: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Draw theta_i | mu, tau, y for every posterior draw (arrays of shape (chain, draw)) and study:
    Normal(B mu + (1 - B) y_i, sqrt((1 - B) se_i^2)), B = se_i^2 / (se_i^2 + tau^2) (BDA3 eq. 5.17).
    Written with B, not with precisions, so tau -> 0 gives theta = mu without dividing by tau.
    Returns shape (chain, draw, k)."""
    v = np.asarray(se, dtype=float) ** 2
    tau2 = np.asarray(tau, dtype=float)[..., None] ** 2
    shrink = v / (v + tau2)
    mean = shrink * np.asarray(mu, dtype=float)[..., None] + (1.0 - shrink) * np.asarray(y, dtype=float)
    sd = np.sqrt((1.0 - shrink) * v)
    return mean + sd * rng.standard_normal(mean.shape)


@dataclass(frozen=True)
class Diagnostics(ResultMixin):
    """Sampler diagnostics over mu, tau, every study's theta and the predictive effect."""

    max_rhat: float
    max_rhat_parameter: str
    min_ess_bulk: float
    min_ess_parameter: str
    divergences: int
    chains: int
    draws: int
    tune: int
    target_accept: float
    sampling_seconds: float

    def problems(self) -> list[str]:
        """Each failed criterion, in words that name the parameter."""
        out = []
        if not self.max_rhat <= RHAT_MAX:
            out.append(f"R-hat of {self.max_rhat_parameter} is {self.max_rhat:.4f} > {RHAT_MAX}")
        if not self.min_ess_bulk >= ESS_BULK_MIN:
            out.append(f"bulk ESS of {self.min_ess_parameter} is {self.min_ess_bulk:.0f} < {ESS_BULK_MIN:.0f}")
        if self.divergences > MAX_DIVERGENCES:
            out.append(f"{self.divergences} divergent transitions (must be {MAX_DIVERGENCES})")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems()

    def _json_extra(self) -> dict:
        return {"ok": self.ok, "problems": self.problems()}


class GatedPosterior:
    """What every NUTS-sampled result shares (``estimates``, ``diagnostics``): reading one estimate, and the
    sampler gate. A result names what failed in ``gate_subject()`` and its advice in ``gate_advice``."""

    gate_advice = "review the prior"

    def gate_subject(self) -> str:
        raise NotImplementedError

    def check_diagnostics(self):
        """Raise AnalysisError if R-hat > 1.01, bulk ESS < 400 or any divergence; else return self."""
        problems = self.diagnostics.problems()
        if problems:
            raise AnalysisError(
                f"{self.gate_subject()} failed the sampler gate: "
                + "; ".join(problems)
                + f". Increase draws/tune or target_accept, or {self.gate_advice}; do not report these numbers."
            )
        return self

    def estimate(self, quantity: str) -> float:
        row = self.estimates.loc[self.estimates["quantity"] == quantity]
        if row.empty:
            raise KeyError(f"no quantity {quantity!r}; have {list(self.estimates['quantity'])}")
        return float(row["estimate"].iloc[0])


@dataclass(frozen=True)
class BayesResult(GatedPosterior, ResultMixin):
    """Posterior of one Bayesian meta-analysis.

    estimates: rows for mu, tau, mu_new (predictive effect in a new trial) and the posterior
    probabilities; study_effects: the shrunken theta per study next to its observed y and se;
    posterior: the draws as an `xarray.DataTree` (save it with `save_posterior`).
    """

    estimates: pd.DataFrame
    study_effects: pd.DataFrame
    diagnostics: Diagnostics
    prior_mu: str
    prior_tau: str
    k: int
    seed: int
    method: str
    posterior: object = field(repr=False, compare=False)

    def gate_subject(self) -> str:
        return f"Bayesian meta-analysis ({self.prior_tau}; k = {self.k})"

    _json_skip = ("posterior",)

    def to_frame(self) -> pd.DataFrame:
        """The posterior rows (mu, tau, mu_new and the probabilities) as tidy Estimate rows."""
        return self.estimates.copy()

    def summary(self) -> str:
        """The model, priors, k, the sampler and its gate, and the posterior rows."""
        d = self.diagnostics
        gate = "passed" if d.ok else "FAILED: " + "; ".join(d.problems())
        return summary_block(
            f"Bayesian random-effects meta-analysis (k = {self.k})",
            [
                ("priors", f"mu ~ {self.prior_mu}; {self.prior_tau}"),
                ("seed", self.seed),
                (
                    "sampler",
                    f"{d.chains} chains x {d.draws} draws after {d.tune} tuning; max R-hat "
                    f"{d.max_rhat:.4f} ({d.max_rhat_parameter}), min bulk ESS {d.min_ess_bulk:.0f} "
                    f"({d.min_ess_parameter}), {d.divergences} divergences; gate {gate}",
                ),
            ],
            self.estimates,
            [f"Method: {self.method}"],
        )


# ---------------------------------------------------------------------------------------------
# The sampler holder: compile once, fit many.
# ---------------------------------------------------------------------------------------------


class BayesMeta:
    """Holds one compiled normal-normal model and fits it to any data set and prior.

    capacity: study slots compiled in; a larger data set triggers one recompile to the next
    multiple of 8 (recorded in `compile_log`). Compiling costs ~10-25 s (numba); a fit ~0.3 s.
    cores: parallel chains (default: all CPUs, at most `chains`).
    target_accept 0.99 (not nutpie's 0.8): at 0.95, 1-2 divergences per 4000 draws appeared on small
    SMD meta-analyses (k = 2-7), which the zero-divergence gate rejects; 0.99 gave none and costs ~2x steps.
    """

    def __init__(
        self,
        capacity: int = 16,
        target_accept: float = 0.99,
        cores: int | None = None,
        parameterization: str = "marginal",
    ):
        if int(capacity) < 1:
            raise InputError(f"capacity must be >= 1 study slot, got {capacity}")
        if not 0.5 <= target_accept < 1:
            raise InputError(f"target_accept must be in [0.5, 1), got {target_accept}")
        if parameterization not in PARAMETERIZATIONS:
            raise InputError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
        self.parameterization = parameterization
        self.capacity = int(capacity)
        self.target_accept = float(target_accept)
        self.cores = cores
        self.compile_log: list[dict] = []
        self._compiled = None

    def compile(self) -> "BayesMeta":
        """Compile now (otherwise the first `fit` does it)."""
        import nutpie

        start = time.perf_counter()
        self._compiled = nutpie.compile_pymc_model(build_model(self.capacity, self.parameterization))
        self.compile_log.append(
            {
                "capacity": self.capacity,
                "parameterization": self.parameterization,
                "seconds": time.perf_counter() - start,
            }
        )
        return self

    def _compiled_for(self, k: int):
        if k > self.capacity:
            self.capacity = 8 * math.ceil(k / 8)
            self._compiled = None
        if self._compiled is None:
            self.compile()
        return self._compiled

    def fit(
        self,
        yi: Sequence[float],
        sei: Sequence[float],
        labels: Sequence[str] | None = None,
        *,
        prior_mu: Normal = Normal(0.0, 10.0),
        prior_tau: TauPrior = HalfNormal(0.5),
        mid: float | None = None,
        seed: int = 20241122,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        ci: float = 0.95,
    ) -> BayesResult:
        """Sample the posterior for effects `yi` with standard errors `sei`.

        Returns a BayesResult with posterior mean, SD and equal-tailed `ci` interval of mu, tau,
        each study's shrunken theta and the predictive effect mu_new for a new trial, and the
        posterior probabilities P(mu > 0), P(mu > mid), P(mu_new > 0) (and P(mu_new > mid)).
        Diagnostics are computed, not enforced: call `result.check_diagnostics()` to gate.
        """
        import nutpie

        y, se, labels = validate_inputs(yi, sei, labels)
        if not (isinstance(draws, int) and draws >= 100 and isinstance(tune, int) and tune >= 100):
            raise InputError(f"draws and tune must be integers >= 100, got draws={draws}, tune={tune}")
        if not (isinstance(chains, int) and chains >= 2):
            raise InputError(f"chains must be an integer >= 2 (R-hat needs several chains), got {chains}")
        if not 0 < ci < 1:
            raise InputError(f"ci must be in (0, 1), got {ci}")
        k = len(y)
        compiled = self._compiled_for(k)
        pad = self.capacity - k
        model = compiled.with_data(
            y=np.concatenate([y, np.zeros(pad)]),
            se=np.concatenate([se, np.ones(pad)]),
            mask=np.concatenate([np.ones(k), np.zeros(pad)]),
            **prior_data(prior_mu, prior_tau),
        )
        if isinstance(prior_tau, UniformTau):
            model = start_inside_bound(model, math.log(prior_tau.upper))
        cores = self.cores or min(chains, os.cpu_count() or 1)
        start = time.perf_counter()
        trace = nutpie.sample(
            model,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            seed=int(seed),
            progress_bar=False,
            save_warmup=False,
            target_accept=self.target_accept,
        )
        seconds = time.perf_counter() - start
        mu = np.asarray(trace.posterior["mu"].values, dtype=float)
        tau = np.asarray(trace.posterior["tau"].values, dtype=float)
        divergences = int(np.asarray(trace.sample_stats["diverging"].values).sum())
        # Study effects from their exact conditional, and the predictive effect of a new trial,
        # theta_new = mu + tau * z_new, z_new ~ N(0, 1): drawn after sampling with generators seeded
        # from `seed`, so they are reproducible.
        if self.parameterization == "marginal":
            theta = draw_study_effects(mu, tau, y, se, spawn_generator(seed, 2))
        else:
            theta = np.asarray(trace.posterior["theta"].values, dtype=float)[:, :, :k]
        rng = spawn_generator(seed, 1)
        mu_new = mu + tau * rng.standard_normal(mu.shape)
        draws_by_name = {"mu": mu, "tau": tau, "mu_new": mu_new}
        draws_by_name.update({f"theta[{lab}]": theta[:, :, i] for i, lab in enumerate(labels)})
        rhat, ess = rhat_ess(draws_by_name)
        diagnostics = diagnose(rhat, ess, divergences, chains, draws, tune, self.target_accept, seconds)
        method = (
            f"Bayesian normal-normal random-effects model ({_PARAMETERIZATION_TEXT[self.parameterization]}), "
            f"NUTS via nutpie "
            f"({chains} chains x {draws} draws after {tune} tuning, target_accept {self.target_accept:g}); "
            f"mu ~ {prior_mu.label()}, {prior_tau.label()}; posterior mean, SD, "
            f"{100 * ci:g}% equal-tailed interval"
        )
        estimates = _posterior_estimates(draws_by_name, rhat, ess, mid, ci, method)
        study_effects = _study_effects(estimates, labels, y, se)
        posterior = _posterior_tree(
            mu, tau, theta, mu_new, trace, labels, y, se, prior_mu, prior_tau, seed, self.parameterization
        )
        return BayesResult(
            estimates=estimates,
            study_effects=study_effects,
            diagnostics=diagnostics,
            prior_mu=prior_mu.label(),
            prior_tau=prior_tau.label(),
            k=k,
            seed=int(seed),
            method=method,
            posterior=posterior,
        )


def start_inside_bound(model, log_upper: float):
    """nutpie starts each chain at log_tau = 0 jittered by U(-1, 1) (PyMC's initial point); under a
    Uniform(0, upper) prior with upper < e^1 some starts would have zero density and the sampler would
    refuse to begin. Shift the jittered start below log(upper) (keeping each chain's own jitter), so
    only the starting point moves; the posterior and the draws after warm-up are those of the model."""
    import dataclasses

    names, slices = model.shape_info[0], model.shape_info[1]
    index = slices[names.index("log_tau")].start
    base = model.initial_point_func

    def initial_point(seed):
        point = np.array(base(seed), dtype=float)
        point[index] = min(point[index], log_upper - 2.0 + point[index])
        return point

    return dataclasses.replace(model, initial_point_func=initial_point)


_SHARED: dict[tuple[int, float, str], BayesMeta] = {}


def shared_sampler(capacity: int = 16, target_accept: float = 0.99, parameterization: str = "marginal") -> BayesMeta:
    """One BayesMeta per process and setting, so every caller (pipeline stage, CLI, tests) pays the
    compile once and reuses it across outcomes, priors and cumulative steps."""
    key = (int(capacity), float(target_accept), str(parameterization))
    if key not in _SHARED:
        _SHARED[key] = BayesMeta(capacity=capacity, target_accept=target_accept, parameterization=parameterization)
    return _SHARED[key]


def validate_inputs(yi, sei, labels):
    y = np.asarray(yi, dtype=float).ravel()
    se = np.asarray(sei, dtype=float).ravel()
    if y.size == 0:
        raise AnalysisError("no studies to pool: yi is empty")
    if y.shape != se.shape:
        raise InputError(f"yi has {y.size} values but sei has {se.size}; give one standard error per effect")
    if not np.all(np.isfinite(y)):
        raise InputError(f"yi holds missing or infinite values at positions {np.flatnonzero(~np.isfinite(y)).tolist()}")
    if not np.all(np.isfinite(se) & (se > 0)):
        raise InputError(
            f"sei must be finite and > 0; bad at positions {np.flatnonzero(~(np.isfinite(se) & (se > 0))).tolist()}"
        )
    if labels is None:
        labels = [f"study_{i + 1}" for i in range(y.size)]
    labels = [str(lab) for lab in labels]
    if len(labels) != y.size:
        raise InputError(f"{len(labels)} labels for {y.size} effects; give one label per study")
    if len(set(labels)) != len(labels):
        raise InputError("study labels must be unique (they name the study axis of the posterior)")
    return y, se, labels


def rhat_ess(draws_by_name) -> tuple[dict, dict]:
    """Rank-normalised split R-hat and bulk ESS (Vehtari et al. 2021) per parameter."""
    import arviz as az

    rhat = {name: float(az.rhat(x)) for name, x in draws_by_name.items()}
    ess = {name: float(az.ess(x, method="bulk")) for name, x in draws_by_name.items()}
    return rhat, ess


def diagnose(rhat, ess, divergences, chains, draws, tune, target_accept, seconds) -> Diagnostics:
    # nan (e.g. a constant chain) must fail the gate, so rank nan as worst.
    worst_rhat = max(rhat, key=lambda n: math.inf if math.isnan(rhat[n]) else rhat[n])
    worst_ess = min(ess, key=lambda n: -math.inf if math.isnan(ess[n]) else ess[n])
    return Diagnostics(
        max_rhat=rhat[worst_rhat],
        max_rhat_parameter=worst_rhat,
        min_ess_bulk=ess[worst_ess],
        min_ess_parameter=worst_ess,
        divergences=divergences,
        chains=chains,
        draws=draws,
        tune=tune,
        target_accept=target_accept,
        sampling_seconds=seconds,
    )


def mcse_mean(x: np.ndarray) -> float:
    import arviz as az

    if np.ptp(x) == 0:
        return 0.0
    return float(az.mcse(x, method="mean"))


def _posterior_estimates(draws_by_name, rhat, ess, mid, ci, method) -> pd.DataFrame:
    """Posterior mean (estimate), SD (se), equal-tailed interval; median, MCSE, ESS, R-hat in extra."""
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
                notes="predictive effect of a new trial" if name == "mu_new" else "",
                extra={
                    "median": float(np.median(flat)),
                    "mcse_mean": mcse_mean(x),
                    "ess_bulk": ess[name],
                    "r_hat": rhat[name],
                },
            )
        )
    thresholds = [("0", 0.0)] + ([] if mid is None else [(f"{float(mid):g}", float(mid))])
    for target in ("mu", "mu_new"):
        for text, value in thresholds:
            indicator = (draws_by_name[target] > value).astype(float)
            rows.append(
                Estimate(
                    quantity=f"P({target} > {text})",
                    estimate=float(indicator.mean()),
                    se=mcse_mean(indicator),
                    method=method.split("; posterior mean")[0] + "; share of posterior draws (se = MCSE)",
                    notes="threshold is the minimal important difference" if value != 0.0 else "",
                )
            )
    return to_frame(rows)


def _study_effects(estimates: pd.DataFrame, labels, y, se) -> pd.DataFrame:
    rows = estimates.set_index("quantity").loc[[f"theta[{lab}]" for lab in labels]]
    return pd.DataFrame(
        {
            "study": labels,
            "yi": y,
            "sei": se,
            "theta_mean": rows["estimate"].to_numpy(),
            "theta_sd": rows["se"].to_numpy(),
            "theta_low": rows["ci_low"].to_numpy(),
            "theta_high": rows["ci_high"].to_numpy(),
        }
    )


def _posterior_tree(mu, tau, theta, mu_new, trace, labels, y, se, prior_mu, prior_tau, seed, parameterization):
    import arviz as az

    stats_group = {"diverging": np.asarray(trace.sample_stats["diverging"].values, dtype=bool)}
    for name in ("tree_depth", "energy", "step_size"):
        if name in trace.sample_stats:
            stats_group[name] = np.asarray(trace.sample_stats[name].values)
    return az.from_dict(
        {
            "posterior": {"mu": mu, "tau": tau, "theta": theta, "mu_new": mu_new},
            "sample_stats": stats_group,
            "observed_data": {"y": y},
            "constant_data": {"se": se},
        },
        dims={"theta": ["study"], "y": ["study"], "se": ["study"]},
        coords={"study": np.asarray(labels, dtype=str)},
        attrs={
            "posterior": {
                "model": f"normal-normal random-effects meta-analysis ({_PARAMETERIZATION_TEXT[parameterization]})",
                "sampler": "nutpie",
                "prior_mu": prior_mu.label(),
                "prior_tau": prior_tau.label(),
                "seed": int(seed),
                "interval": "equal-tailed",
            }
        },
    )


# ---------------------------------------------------------------------------------------------
# Many fits of one compiled model: prior sensitivity and cumulative analysis.
# ---------------------------------------------------------------------------------------------


def summary_row(result: BayesResult) -> dict:
    """One flat row per fit: the numbers a sensitivity or cumulative table shows, plus the gate."""
    est = result.estimates.set_index("quantity")
    row = {}
    for name in ("mu", "tau", "mu_new"):
        row[f"{name}_mean"] = float(est.at[name, "estimate"])
        row[f"{name}_low"] = float(est.at[name, "ci_low"])
        row[f"{name}_high"] = float(est.at[name, "ci_high"])
    row["mu_sd"] = float(est.at["mu", "se"])
    row["tau_median"] = float(est.at["tau", "median"])
    for quantity in est.index:
        if quantity.startswith("P("):
            row[quantity] = float(est.at[quantity, "estimate"])
    d = result.diagnostics
    row.update(
        max_rhat=d.max_rhat,
        min_ess_bulk=d.min_ess_bulk,
        divergences=d.divergences,
        diagnostics_ok=d.ok,
        diagnostic_problems="; ".join(d.problems()),
    )
    return row


def prior_sensitivity(
    sampler: BayesMeta,
    yi: Sequence[float],
    sei: Sequence[float],
    labels: Sequence[str] | None = None,
    *,
    priors: Mapping[str, NamedPrior | TauPrior] | None = None,
    prior_mu: Normal = Normal(0.0, 10.0),
    mid: float | None = None,
    seed: int = 20241122,
    **fit_kwargs,
) -> pd.DataFrame:
    """Refit the same data under each tau prior (default: the shipped sensitivity set).

    Returns one row per prior: key, prior label, citation, mu/tau/mu_new mean and interval,
    posterior probabilities and the diagnostics gate (`diagnostics_ok`, `diagnostic_problems`).
    Seeds: `spawn_seed(seed, i)` for the i-th prior.
    """
    if priors is None:
        priors = {key: SHIPPED_TAU_PRIORS[key] for key in DEFAULT_SENSITIVITY_KEYS}
    if not priors:
        raise InputError("priors is empty: give at least one tau prior")
    rows = []
    for i, (key, named) in enumerate(priors.items()):
        prior = named.prior if isinstance(named, NamedPrior) else named
        citation = named.citation if isinstance(named, NamedPrior) else ""
        result = sampler.fit(
            yi, sei, labels, prior_mu=prior_mu, prior_tau=prior, mid=mid, seed=spawn_seed(seed, i), **fit_kwargs
        )
        rows.append(
            {
                "prior": key,
                "prior_tau": prior.label(),
                "prior_mu": prior_mu.label(),
                "citation": citation,
                "k": result.k,
                **summary_row(result),
            }
        )
    return pd.DataFrame(rows)


def cumulative_bayes(
    sampler: BayesMeta,
    yi: Sequence[float],
    sei: Sequence[float],
    years: Sequence[int],
    labels: Sequence[str] | None = None,
    *,
    prior_mu: Normal = Normal(0.0, 10.0),
    prior_tau: TauPrior = HalfNormal(0.5),
    mid: float | None = None,
    min_studies: int = 2,
    seed: int = 20241122,
    **fit_kwargs,
) -> pd.DataFrame:
    """Cumulative Bayesian meta-analysis by publication year.

    Studies are ordered by year (ties by input order); one fit per distinct year pools every study
    published up to and including that year, once at least `min_studies` are available. Returns one
    row per year: year, k, studies added that year, posterior summaries, probabilities and diagnostics.
    """
    y, se, labels = validate_inputs(yi, sei, labels)
    years = np.asarray(years)
    if years.shape != y.shape or not np.all(np.isfinite(years.astype(float))):
        raise InputError(f"years must hold one finite year per study ({y.size}), got {years.tolist()}")
    if min_studies < 1:
        raise InputError(f"min_studies must be >= 1, got {min_studies}")
    order = np.argsort(years, kind="stable")
    rows = []
    for step, year in enumerate(np.unique(years)):
        included = order[years[order] <= year]
        if included.size < min_studies:
            continue
        result = sampler.fit(
            y[included],
            se[included],
            [labels[i] for i in included],
            prior_mu=prior_mu,
            prior_tau=prior_tau,
            mid=mid,
            seed=spawn_seed(seed, step),
            **fit_kwargs,
        )
        added = [labels[i] for i in included if years[i] == year]
        rows.append(
            {
                "year": to_jsonable(year),
                "k": int(included.size),
                "added": "; ".join(added),
                "prior_tau": prior_tau.label(),
                **summary_row(result),
            }
        )
    if not rows:
        raise AnalysisError(f"no year has at least min_studies = {min_studies} studies; lower min_studies")
    return pd.DataFrame(rows)


def check_table_diagnostics(table: pd.DataFrame, what: str = "Bayesian table") -> pd.DataFrame:
    """Gate for a prior-sensitivity or cumulative table: raise AnalysisError listing every row that
    failed (R-hat, bulk ESS or divergences), else return the table."""
    bad = table.loc[~table["diagnostics_ok"].astype(bool)]
    if not bad.empty:
        id_col = (
            next(c for c in ("prior", "year", "outcome") if c in table.columns)
            if any(c in table.columns for c in ("prior", "year", "outcome"))
            else None
        )
        lines = [
            f"{id_col}={row[id_col]}: {row['diagnostic_problems']}" if id_col else row["diagnostic_problems"]
            for _, row in bad.iterrows()
        ]
        raise AnalysisError(f"{what}: {len(bad)} fit(s) failed the sampler gate: " + " | ".join(lines))
    return table


_WALL_CLOCK_ATTRS = ("created_at", "sampling_time")


def _without_timestamps(tree):
    """A copy of the posterior tree without ArviZ's wall-clock attributes (`created_at` on every group),
    so the same seed writes the same bytes; the run's time is in provenance.json instead."""
    tree = tree.copy()
    for node in tree.subtree:
        for name in _WALL_CLOCK_ATTRS:
            node.attrs.pop(name, None)
    return tree


def save_posterior(result: BayesResult, path: str | os.PathLike) -> Path:
    """Write the posterior DataTree to netCDF (h5netcdf) atomically: a temporary file in the same
    directory is renamed over `path`, so a reader never sees a half-written file."""
    try:
        import h5py  # noqa: F401  (h5netcdf >= 1.5 writes through h5py)
    except ImportError as exc:
        raise ImportError(
            "saving the posterior as netCDF needs h5netcdf with its h5py backend; "
            "add h5py to requirements.lock and reinstall the environment"
        ) from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree = _without_timestamps(result.posterior)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        tree.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
