"""Bayesian pooling for the meta-analysis stage (issue 5, items 4-6).

Pools exactly the effects the frequentist analysis pooled (``meta_stage.outcome_inputs``) with the
normal-normal hierarchical model of ``imrstats.meta.bayes`` (study effects integrated out for sampling;
NUTS via nutpie). Per outcome:
the posterior of mu and tau, the shrunken study effects, the predictive effect of a new trial,
P(effect > 0) and P(effect > MID); a prior-sensitivity table across the shipped heterogeneity priors;
a cumulative Bayesian analysis by publication year. The implementation proportions (McGuire et al.
2014, Table 3) are pooled on the logit scale with the same model.

Default tau prior for SMD outcomes: the empirical log-t prior of Rhodes, Turner and Higgins 2015
(J Clin Epidemiol 68:52-60, Table 3: "mental health outcome, non-pharmacological"), because it was
derived from Cochrane meta-analyses of exactly this kind of outcome and comparison; the half-normal and
half-Cauchy are shown beside it in the sensitivity table. Log odds ratios get the Turner et al. 2015
(Stat Med 34:984-998) prior built for them. Raw mean differences have no scale-free prior: flagged, not pooled.

Every fit goes through one gate (R-hat <= 1.01, bulk ESS >= 400 per parameter, zero divergences;
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
import html as _html
import math
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from imrstats.meta.stage import DENOMINATOR_RULE, _front, _stack   # shared with the frequentist meta stage
from imrstats.core.progress import progress
from imrstats.meta.bayes import (DEFAULT_SENSITIVITY_KEYS, ESS_BULK_MIN, PARAMETERIZATIONS, RHAT_MAX, SHIPPED_TAU_PRIORS,
                    BayesResult, Normal, TauPrior, save_posterior, shared_sampler, summary_row, tau_prior_from_spec)
from imrstats.errors import AnalysisError, InputError
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.html import figure_html, table_html

FAVOURS = "positive favours IMR"
DEFAULT_SEED = 20241122

DEFAULT_BAYES_SETTINGS: dict = {
    "enabled": True,
    "prior_mu": {"loc": 0.0, "scale": 1.0},                  # Normal prior on the pooled SMD / log OR
    "tau_prior": "rhodes_mental_health_nonpharm",            # key of bayes.SHIPPED_TAU_PRIORS (SMD outcomes)
    "tau_prior_log_or": "turner_mental_health_nonpharm_vs_control",   # for log odds ratio outcomes
    "sensitivity_priors": list(DEFAULT_SENSITIVITY_KEYS),     # [] = no sensitivity table
    "draws": 1000,
    "tune": 1000,
    "chains": 4,
    "target_accept": 0.99,
    "parameterization": "marginal",                           # or "non_centred" (bayes.PARAMETERIZATIONS)
    "cumulative": True,
    "min_studies": 2,                                         # fewer studies: not pooled (also per cumulative step)
    "on_secondary_gate_failure": "flag",                      # sensitivity / cumulative fits: flag | fail
    "implementation": {
        "enabled": True,
        "prior_mu": {"loc": 0.0, "scale": 1.5},               # logit scale: 95% of mass on 5%-95%
        "tau_prior": {"family": "half_normal", "location": 0.0, "scale": 1.0},
    },
}


@dataclass
class BayesStageResult(StageResult):
    """A StageResult plus the main posteriors (name -> BayesResult) for ``write_posteriors``."""

    posteriors: dict = field(default_factory=dict)
    seconds: float = 0.0          # wall time of all fits (not written to tables: they stay byte-identical)


# ---------------------------------------------------------------------------------------------
# Settings


def _normal_prior(spec, where: str) -> Normal:
    if not isinstance(spec, dict) or set(spec) - {"loc", "scale"}:
        raise InputError(f"{where} must be a mapping with keys loc and scale, got {spec!r}")
    try:
        return Normal(float(spec.get("loc", 0.0)), float(spec.get("scale", 1.0)))
    except (TypeError, ValueError) as error:
        raise InputError(f"{where}: {error}") from error


def _shipped_key(key, where: str) -> str:
    if key not in SHIPPED_TAU_PRIORS:
        raise InputError(f"{where}: unknown prior {key!r}; choose from {sorted(SHIPPED_TAU_PRIORS)}")
    return key


def bayes_settings(raw: dict | None) -> dict:
    """The ``meta.bayes`` settings with defaults filled in; unknown keys or bad values raise ``InputError``."""
    merged = copy.deepcopy(DEFAULT_BAYES_SETTINGS)
    raw = dict(raw or {})
    unknown = set(raw) - set(merged)
    if unknown:
        raise InputError(f"meta.bayes: unknown settings {sorted(unknown)}; known: {sorted(merged)}")
    impl = dict(raw.pop("implementation", None) or {})
    unknown = set(impl) - set(merged["implementation"])
    if unknown:
        raise InputError(f"meta.bayes.implementation: unknown settings {sorted(unknown)}; known: enabled, prior_mu, "
                         "tau_prior")
    merged.update({k: v for k, v in raw.items() if v is not None})
    merged["implementation"].update({k: v for k, v in impl.items() if v is not None})
    for key in ("enabled", "cumulative"):
        if not isinstance(merged[key], bool):
            raise InputError(f"meta.bayes.{key} must be true or false, got {merged[key]!r}")
    _normal_prior(merged["prior_mu"], "meta.bayes.prior_mu")
    _shipped_key(merged["tau_prior"], "meta.bayes.tau_prior")
    _shipped_key(merged["tau_prior_log_or"], "meta.bayes.tau_prior_log_or")
    if isinstance(merged["sensitivity_priors"], str):
        raise InputError("meta.bayes.sensitivity_priors must be a list of prior keys")
    for key in merged["sensitivity_priors"]:
        _shipped_key(key, "meta.bayes.sensitivity_priors")
    for key, low in (("draws", 100), ("tune", 100), ("chains", 2), ("min_studies", 1)):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"meta.bayes.{key} must be an integer >= {low}, got {value!r}")
    if merged["on_secondary_gate_failure"] not in ("flag", "fail"):
        raise InputError("meta.bayes.on_secondary_gate_failure must be 'flag' (blank the fit's numbers and flag it) "
                         f"or 'fail' (stop the stage); got {merged['on_secondary_gate_failure']!r}")
    if merged["parameterization"] not in PARAMETERIZATIONS:
        raise InputError(f"meta.bayes.parameterization must be one of {list(PARAMETERIZATIONS)}, "
                         f"got {merged['parameterization']!r}")
    if not 0.5 <= float(merged["target_accept"]) < 1:
        raise InputError(f"meta.bayes.target_accept must be in [0.5, 1), got {merged['target_accept']!r}")
    impl = merged["implementation"]
    if not isinstance(impl["enabled"], bool):
        raise InputError("meta.bayes.implementation.enabled must be true or false")
    _normal_prior(impl["prior_mu"], "meta.bayes.implementation.prior_mu")
    _implementation_tau_prior(impl["tau_prior"])
    return merged


def _implementation_tau_prior(spec) -> TauPrior:
    if not isinstance(spec, dict) or "family" not in spec or set(spec) - {"family", "location", "scale", "nu"}:
        raise InputError("meta.bayes.implementation.tau_prior must be a mapping with family, scale "
                         f"(and location, nu for the log(tau^2) families), got {spec!r}")
    return tau_prior_from_spec(spec["family"], float(spec.get("location", 0.0) or 0.0),
                               float(spec.get("scale", 1.0)), float(spec.get("nu", 5.0)))


# ---------------------------------------------------------------------------------------------
# One gated fit


def _seed(seed: int, *path: int) -> int:
    """A reproducible seed for the fit at `path` (outcome, analysis, index, attempt) under the stage seed."""
    return int(np.random.SeedSequence([int(seed), *map(int, path)]).generate_state(1, dtype=np.uint32)[0])


def _label_code(label: str) -> int:
    """A stable number per outcome label, so removing one outcome does not change another's seeds."""
    return zlib.crc32(label.encode("utf-8"))


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


def gated_fit(sampler, yi, sei, labels, *, prior_mu: Normal, prior_tau: TauPrior, mid: float | None, seed: int,
              draws: int, tune: int, chains: int, context: str, on_failure: str = "fail") -> GatedFit:
    """Fit, check the gate (R-hat, bulk ESS, divergences); on failure refit once with 2x tune, 2x draws and
    ``retry_target_accept``. If that fails too: ``on_failure="fail"`` raises ``AnalysisError`` naming
    ``context`` (outcome, prior, step), the parameter and the criterion; ``"flag"`` returns the fit with
    ``failure`` set to that message (the caller blanks its numbers and flags it)."""
    first = sampler.fit(yi, sei, labels, prior_mu=prior_mu, prior_tau=prior_tau, mid=mid, seed=seed,
                        draws=draws, tune=tune, chains=chains)
    if first.diagnostics.ok:
        return GatedFit(first, 1)
    reason = "; ".join(first.diagnostics.problems())
    retry = copy.copy(sampler)                    # shares the compiled model; only the step-size target differs
    retry.target_accept = retry_target_accept(sampler.target_accept)
    second = retry.fit(yi, sei, labels, prior_mu=prior_mu, prior_tau=prior_tau, mid=mid, seed=_seed(seed, 1),
                       draws=2 * draws, tune=2 * tune, chains=chains)
    if second.diagnostics.ok:
        return GatedFit(second, 2, reason)
    message = (
        f"{context}: the sampler gate failed (R-hat <= {RHAT_MAX}, bulk ESS >= {ESS_BULK_MIN:.0f}, "
        f"no divergences). First run ({chains} x {draws} draws, tune {tune}, target_accept "
        f"{sampler.target_accept:g}): {reason}. Retry ({chains} x {2 * draws} draws, tune {2 * tune}, target_accept "
        f"{retry.target_accept:g}): {'; '.join(second.diagnostics.problems())}. These numbers are not reported: "
        "raise meta.bayes.draws / tune / target_accept, or review the prior.")
    if on_failure == "flag":
        return GatedFit(second, 2, reason, failure=message)
    raise AnalysisError(f"Bayesian pooling, {message}")


def _diagnostic_row(fit: GatedFit, **ids) -> dict:
    d = fit.result.diagnostics
    return {**ids, "k": fit.result.k, "attempts": fit.attempts, "retry_reason": fit.retry_reason,
            "max_rhat": d.max_rhat, "max_rhat_parameter": d.max_rhat_parameter, "min_ess_bulk": d.min_ess_bulk,
            "min_ess_parameter": d.min_ess_parameter, "divergences": d.divergences, "chains": d.chains,
            "draws": d.draws, "tune": d.tune, "target_accept": d.target_accept, "passed": fit.passed}


# ---------------------------------------------------------------------------------------------
# One outcome: main fit, prior sensitivity, cumulative by year


def _study_labels(data: pd.DataFrame) -> list[str]:
    return [f"{s} ({int(y)})" if not str(s).endswith(str(y)) else str(s) for s, y in zip(data["study"], data["year"])]


def _method_text(fit: GatedFit) -> str:
    method = fit.result.method
    if fit.attempts > 1:
        method += (f"; refitted once after the first run failed the gate ({fit.retry_reason}) with 2x tuning and "
                   f"draws and target_accept {fit.result.diagnostics.target_accept:g}")
    return method


def _table_row(fit: GatedFit) -> dict:
    """summary_row of a fit; a fit that failed the gate keeps only its diagnostics, never its numbers."""
    row = summary_row(fit.result)
    if not fit.passed:
        row = {k: (math.nan if isinstance(v, float) and k not in ("max_rhat", "min_ess_bulk") else v)
               for k, v in row.items()}
    return {**row, "attempts": fit.attempts, "gate": "passed" if fit.passed else "FAILED after retry: not reported"}


def pool_outcome_bayes(sampler, data: pd.DataFrame, *, prior_mu: Normal, prior_key: str,
                       sensitivity_keys: list[str], mid: float | None, seed: int, run: dict, cumulative: bool,
                       min_studies: int, context: str, prior_tau: TauPrior | None = None,
                       on_secondary_failure: str = "fail") -> dict:
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
    main = gated_fit(sampler, y, se, labels, prior_tau=main_prior, seed=_seed(seed, 0, 0),
                     context=f"{context}, prior {prior_key}, all {len(y)} studies", **fit_args)
    diagnostics = [_diagnostic_row(main, analysis="main", prior=prior_key, year=None)]
    flags: list[str] = []
    method = _method_text(main)
    estimates = main.result.estimates.loc[~main.result.estimates["quantity"].str.startswith("theta[")].copy()
    estimates["method"] = estimates["method"].map(lambda m: m.replace(main.result.method, method))
    study_effects = main.result.study_effects.copy()
    study_effects["method"] = method

    def secondary(yy, ss, ll, prior, seed_path, what):
        fit = gated_fit(sampler, yy, ss, ll, prior_tau=prior, seed=_seed(seed, *seed_path),
                        context=f"{context}, {what}", on_failure=on_secondary_failure, **fit_args)
        if not fit.passed:
            flags.append(fit.failure)
        return fit

    sens_rows = []
    for j, key in enumerate(sensitivity_keys):
        named = SHIPPED_TAU_PRIORS[key]
        if key == prior_key and prior_tau is None:
            fit = main
        else:
            fit = secondary(y, se, labels, named.prior, (1, j), f"sensitivity prior {key}")
            diagnostics.append(_diagnostic_row(fit, analysis="prior sensitivity", prior=key, year=None))
        sens_rows.append({"prior": key, "main_prior": key == prior_key, "prior_tau": named.prior.label(),
                          "prior_mu": prior_mu.label(), "k": fit.result.k, **_table_row(fit),
                          "citation": named.citation, "note": named.note, "method": _method_text(fit)})

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
                fit = secondary(y[included], se[included], [labels[i] for i in included], main_prior, (2, step),
                                f"prior {prior_key}, cumulative up to {int(year)}")
                diagnostics.append(_diagnostic_row(fit, analysis="cumulative", prior=prior_key, year=int(year)))
            cum_rows.append({"year": int(year), "k": int(included.size),
                             "added": "; ".join(labels[i] for i in included if years[i] == year),
                             "prior": prior_key, **_table_row(fit), "method": _method_text(fit)})
    return {"fit": main, "estimates": estimates, "study_effects": study_effects,
            "sensitivity": pd.DataFrame(sens_rows), "cumulative": pd.DataFrame(cum_rows),
            "diagnostics": pd.DataFrame(diagnostics).astype({"year": "Int64"}), "flags": flags}


def proportion_rows(result: BayesResult, ci: float = 0.95) -> pd.DataFrame:
    """Back-transform a logit-scale fit to percent: posterior median and equal-tailed interval of
    100 expit(mu) and 100 expit(mu_new) (quantiles commute with the monotone expit; the mean does not)."""
    post = result.posterior["posterior"]
    rows = []
    for name, quantity in (("mu", "pooled proportion (%)"), ("mu_new", "proportion in a new study (%)")):
        pct = 100 * expit(np.asarray(post[name].values, dtype=float).ravel())
        rows.append({"quantity": quantity, "estimate": float(np.median(pct)), "se": float(pct.std(ddof=1)),
                     "ci_low": float(np.quantile(pct, (1 - ci) / 2)), "ci_high": float(np.quantile(pct, (1 + ci) / 2)),
                     "method": result.method.split("; posterior mean")[0] + "; posterior median, SD and "
                               f"{100 * ci:g}% equal-tailed interval of 100 expit(draws)",
                     "notes": "back-transformed from the logit scale"})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib Figure objects, no pyplot state)


def _new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _draws(result: BayesResult, name: str) -> np.ndarray:
    return np.asarray(result.posterior["posterior"][name].values, dtype=float)


def posterior_figure(result: BayesResult, prior_mu: Normal, prior_tau: TauPrior, *, title: str = "",
                     xlabel: str = "pooled effect"):
    """Posterior density (histogram of the draws) of mu, with the predictive effect of a new trial, and of
    tau, each with its prior density overlaid (Normal pdf for mu; ``prior_tau.logpdf_tau`` for tau)."""
    fig, axes = _new_figure(10.0, 3.8, 1, 2)
    ax_mu, ax_tau = axes[0]
    mu, tau, mu_new = (_draws(result, n).ravel() for n in ("mu", "tau", "mu_new"))
    lo, hi = np.quantile(np.concatenate([mu, mu_new]), [0.002, 0.998])
    heights, _, _ = ax_mu.hist(mu, bins=60, range=(lo, hi), density=True, color="tab:blue", alpha=0.45,
                               label="posterior of mu")
    ax_mu.hist(mu_new, bins=60, range=(lo, hi), density=True, histtype="step", color="tab:blue", ls="--",
               label="predictive: new trial")
    grid = np.linspace(lo, hi, 400)
    ax_mu.plot(grid, stats.norm.pdf(grid, prior_mu.loc, prior_mu.scale), color="tab:red",
               label=f"prior {prior_mu.label()}")
    ax_mu.axvline(0, color="grey", lw=0.8)
    ax_mu.set_ylim(0, 1.25 * max(heights.max(), stats.norm.pdf(prior_mu.loc, prior_mu.loc, prior_mu.scale)
                                 if lo <= prior_mu.loc <= hi else 0))
    ax_mu.set_xlabel(xlabel)
    ax_mu.set_ylabel("density")
    ax_mu.legend(fontsize=7, loc="upper left")
    top = float(np.quantile(tau, 0.995))
    heights, _, _ = ax_tau.hist(tau, bins=60, range=(0, top), density=True, color="tab:green", alpha=0.45,
                                label="posterior of tau")
    grid = np.linspace(top / 2000, top, 400)
    with np.errstate(divide="ignore", over="ignore"):
        density = np.exp(prior_tau.logpdf_tau(grid))
    ax_tau.plot(grid, density, color="tab:red", label=f"prior: {prior_tau.label()}")
    ax_tau.set_ylim(0, 1.3 * heights.max())        # the log(tau^2) priors have a pole at tau = 0
    ax_tau.set_xlim(0, top)
    ax_tau.set_xlabel("tau (between-study SD)")
    ax_tau.legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    return fig


def trace_rank_figure(result: BayesResult, *, parameters=("mu", "tau"), title: str = "", bins: int = 20):
    """Per parameter: the trace of each chain, and the rank plot (histogram of each chain's ranks among all
    draws, Vehtari et al. 2021): well-mixed chains give flat, overlapping histograms."""
    fig, axes = _new_figure(10.0, 2.4 * len(parameters), len(parameters), 2)
    for row, name in enumerate(parameters):
        draws = _draws(result, name)
        chains, n = draws.shape
        ranks = stats.rankdata(draws.ravel()).reshape(draws.shape)
        edges = np.linspace(0.5, chains * n + 0.5, bins + 1)
        for c in range(chains):
            axes[row, 0].plot(draws[c], lw=0.35, alpha=0.8, label=f"chain {c + 1}")
            counts, _ = np.histogram(ranks[c], bins=edges)
            axes[row, 1].step(np.arange(bins), counts, where="mid", lw=1)
        axes[row, 1].axhline(n / bins, color="grey", ls="--", lw=0.8)
        axes[row, 1].set_ylim(0, None)
        axes[row, 0].set_ylabel(name)
        axes[row, 1].set_ylabel("draws per rank bin")
        axes[row, 1].set_yticks([])
    axes[-1, 0].set_xlabel("draw (after tuning)")
    axes[-1, 1].set_xlabel(f"rank of the draw among all chains ({bins} bins; dashed: uniform)")
    axes[0, 0].legend(fontsize=6, ncol=4, loc="upper right")
    fig.suptitle(title, fontsize=10)
    return fig


def cumulative_bayes_figure(table: pd.DataFrame, *, title: str = "", xlabel: str = "pooled effect"):
    """The posterior mean and 95% interval of mu as each year's studies are added, with P(mu > 0)."""
    n = len(table)
    fig, axes = _new_figure(7.5, 1.4 + 0.45 * n)
    ax = axes[0, 0]
    for i, (_, r) in enumerate(table.iterrows()):
        row = n - i
        ax.plot([r["mu_low"], r["mu_high"]], [row, row], color="black", lw=1)
        ax.plot(r["mu_mean"], row, "o", color="tab:blue")
        shown = "gate failed" if math.isnan(r["P(mu > 0)"]) else f"P(mu > 0) = {r['P(mu > 0)']:.2f}"
        ax.text(1.02, row, shown, transform=ax.get_yaxis_transform(), va="center",
                fontsize=8)
    ax.set_yticks([n - i for i in range(n)])
    ax.set_yticklabels([f"{int(y)}: + {a} (k = {int(k)})" for y, a, k in zip(table["year"], table["added"],
                                                                               table["k"])], fontsize=8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    fig.subplots_adjust(right=0.78)
    return fig


# ---------------------------------------------------------------------------------------------
# The stage part (the meta stage's Bayesian hook)


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label)).strip("_")


def _records(frame: pd.DataFrame) -> list[dict]:
    if frame is None or frame.empty:
        return []
    return [{k: (None if (not isinstance(v, str) and pd.isna(v)) else v) for k, v in row.items()}
            for row in frame.astype(object).to_dict(orient="records")]


def _implementation_inputs(settings: dict) -> dict[str, pd.DataFrame]:
    """The implementation rows the frequentist stage pools (logit proportions), per measure."""
    from imrstats.meta.stage import implementation_effects
    from imrstats.data.published import load_implementation_rates

    impl = settings.get("implementation") or {}
    rates = load_implementation_rates(settings.get("implementation_rates"))
    effects = implementation_effects(rates, measures=tuple(impl.get("measures", ("dropout_pct", "completion_pct"))),
                                     uses=tuple(impl.get("uses", ("pool with care",))))
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
            flags.append(f"{label}: effect measure '{measure}' has no scale-free heterogeneity prior "
                         "(only SMD and log OR are supported); not pooled")
    return plan, notes, flags


def bayes_pooling(pooling_inputs: dict[str, pd.DataFrame], settings: dict | None,
                  seed: int | None = None) -> BayesStageResult:
    """The meta stage's Bayesian hook: pool each outcome in ``pooling_inputs`` (label -> included rows with
    study, year, measure, yi, sei) and the implementation proportions; ``settings`` is the meta section
    (``mid``, ``implementation``, ``implementation_rates`` and the ``bayes`` sub-section). Returns a
    ``BayesStageResult`` (tables, figures, record, summary, HTML, flags, posteriors). A fit that fails the
    sampler gate after its retry raises ``AnalysisError``."""
    s = dict(settings or {})
    b = bayes_settings(s.get("bayes"))
    if not b["enabled"]:
        return BayesStageResult("meta_bayes", record={"enabled": False},
                                summary="Bayesian pooling: off (meta.bayes.enabled = false)",
                                html="<h2>Bayesian random-effects pooling</h2><p>Not run: meta.bayes.enabled is "
                                     "false.</p>")
    seed = DEFAULT_SEED if seed is None else int(seed)
    mid = s.get("mid")
    mid = None if mid is None else float(mid)
    prior_mu = _normal_prior(b["prior_mu"], "meta.bayes.prior_mu")
    run = dict(draws=b["draws"], tune=b["tune"], chains=b["chains"])
    plan, notes, flags = _plan(pooling_inputs, b, mid)
    impl_inputs: dict[str, pd.DataFrame] = {}
    if b["implementation"]["enabled"]:
        try:
            impl_inputs = _implementation_inputs(s)
        except (AnalysisError, InputError, OSError) as error:
            flags.append(f"implementation proportions not pooled: {error}")
    k_max = max([len(p["data"]) for p in plan] + [len(d) for d in impl_inputs.values()] + [1])
    sampler = shared_sampler(capacity=max(8, 8 * math.ceil(k_max / 8)), target_accept=float(b["target_accept"]),
                             parameterization=b["parameterization"])
    start = time.perf_counter()
    pooled, posteriors = {}, {}
    for p in progress(plan, desc="meta: Bayesian pooling (outcome x priors x cumulative)", unit="outcome"):
        try:
            pooled[p["label"]] = pool_outcome_bayes(
                sampler, p["data"], prior_mu=prior_mu, prior_key=p["prior"], sensitivity_keys=b["sensitivity_priors"],
                mid=p["mid"], seed=_seed(seed, _label_code(p["label"])), run=run, cumulative=b["cumulative"],
                min_studies=b["min_studies"], context=f"outcome {p['label']}",
                on_secondary_failure=b["on_secondary_gate_failure"])
        except InputError as error:
            flags.append(f"{p['label']}: not pooled: {error}")
            continue
        posteriors[p["label"]] = pooled[p["label"]]["fit"].result
        flags.extend(pooled[p["label"]]["flags"])
    impl_prior_mu = _normal_prior(b["implementation"]["prior_mu"], "meta.bayes.implementation.prior_mu")
    impl_tau = _implementation_tau_prior(b["implementation"]["tau_prior"])
    impl_pooled = {}
    for measure, data in impl_inputs.items():
        if len(data) < b["min_studies"]:
            notes.append(f"implementation {measure}: k = {len(data)} < meta.bayes.min_studies; not pooled")
            continue
        name = f"implementation_{measure}"
        impl_pooled[measure] = pool_outcome_bayes(
            sampler, data, prior_mu=impl_prior_mu, prior_key=impl_tau.label(), prior_tau=impl_tau,
            sensitivity_keys=[], mid=None, seed=_seed(seed, _label_code(name)), run=run, cumulative=False,
            min_studies=b["min_studies"], context=f"implementation {measure} (logit scale)")
        posteriors[name] = impl_pooled[measure]["fit"].result
    seconds = time.perf_counter() - start
    tables = _tables(plan, pooled, impl_pooled, b, prior_mu, impl_prior_mu, impl_tau)
    figures = _figures(plan, pooled, impl_pooled, prior_mu, impl_prior_mu, impl_tau)
    record = _record(b, seed, mid, tables, notes, sampler)
    html = _html_section(b, seed, mid, plan, pooled, impl_pooled, tables, notes, flags, prior_mu, impl_prior_mu,
                         impl_tau)
    summary = _summary(b, plan, pooled, impl_pooled, tables, notes, flags, prior_mu, mid)
    return BayesStageResult("meta_bayes", tables, figures, record, summary, html, flags, posteriors=posteriors,
                            seconds=seconds)


def _priors_table(plan, b, prior_mu, impl_prior_mu, impl_tau, with_impl: bool) -> pd.DataFrame:
    rows = [{"parameter": "mu", "key": "prior_mu", "role": "all effect outcomes", "prior": prior_mu.label(),
             "citation": "weakly informative: |SMD| or |log OR| > 2 has prior probability 0.05", "note": ""}]
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
        rows.append({"parameter": "tau", "key": key, "role": ", ".join(roles), "prior": named.prior.label(),
                     "citation": named.citation, "note": named.note})
    if with_impl:
        rows += [{"parameter": "mu (logit)", "key": "implementation.prior_mu", "role": "implementation proportions",
                  "prior": impl_prior_mu.label(), "citation": "weakly informative on the logit scale", "note": ""},
                 {"parameter": "tau (logit)", "key": "implementation.tau_prior", "role": "implementation proportions",
                  "prior": impl_tau.label(), "citation": "weakly informative", "note": ""}]
    return pd.DataFrame(rows)


def _tables(plan, pooled, impl_pooled, b, prior_mu, impl_prior_mu, impl_tau) -> dict[str, pd.DataFrame]:
    by_label = {p["label"]: p for p in plan}
    est, eff, sens, cum, diag = [], [], [], [], []
    for label, part in pooled.items():
        p, k = by_label[label], part["fit"].result.k
        ids = dict(outcome_label=label, measure=p["measure"], prior=p["prior"], k=k)
        est.append(_front(part["estimates"], **ids, direction=FAVOURS))
        eff.append(_front(part["study_effects"], **ids, direction=FAVOURS))
        sens.append(_front(part["sensitivity"], outcome_label=label, measure=p["measure"], direction=FAVOURS))
        cum.append(_front(part["cumulative"], outcome_label=label, measure=p["measure"], direction=FAVOURS))
        diag.append(_front(part["diagnostics"], outcome_label=label))
    for measure, part in impl_pooled.items():
        ids = dict(outcome_label=f"implementation: {measure}", measure="logit proportion", prior=impl_tau.label(),
                   k=part["fit"].result.k)
        logit = part["estimates"].assign(notes=lambda f: np.where(
            f["quantity"].str.startswith("P("), "logit scale: P(mu > 0) is P(proportion > 50%)", f["notes"]))
        est.append(_front(pd.concat([logit, proportion_rows(part["fit"].result)], ignore_index=True), **ids,
                          direction="a proportion, not an IMR-vs-control effect"))
        eff.append(_front(part["study_effects"], **ids, direction="logit proportion"))
        diag.append(_front(part["diagnostics"], outcome_label=f"implementation: {measure}"))
    return {"bayes_priors": _priors_table(plan, b, prior_mu, impl_prior_mu, impl_tau, bool(impl_pooled)),
            "bayes_pooled": _stack(est), "bayes_study_effects": _stack(eff), "bayes_sensitivity": _stack(sens),
            "bayes_cumulative": _stack(cum), "bayes_diagnostics": _stack(diag)}


def _xlabel(measure: str) -> str:
    return {"SMD": "Hedges' g", "log OR": "log odds ratio"}.get(measure, measure) + f" ({FAVOURS})"


def _figures(plan, pooled, impl_pooled, prior_mu, impl_prior_mu, impl_tau) -> dict:
    figures = {}
    by_label = {p["label"]: p for p in plan}
    for label, part in pooled.items():
        p, result, slug = by_label[label], part["fit"].result, _slug(label)
        figures[f"bayes_posterior_{slug}"] = posterior_figure(
            result, prior_mu, SHIPPED_TAU_PRIORS[p["prior"]].prior, xlabel=_xlabel(p["measure"]),
            title=f"{label}: posterior (shaded) and prior (red); k = {result.k}")
        figures[f"bayes_trace_{slug}"] = trace_rank_figure(result, title=f"{label}: trace and rank plots")
        if len(part["cumulative"]) >= 2:
            figures[f"bayes_cumulative_{slug}"] = cumulative_bayes_figure(
                part["cumulative"], xlabel=_xlabel(p["measure"]),
                title=f"{label}: cumulative Bayesian pooling by year (prior {p['prior']})")
    for measure, part in impl_pooled.items():
        result, slug = part["fit"].result, _slug(f"implementation_{measure}")
        figures[f"bayes_posterior_{slug}"] = posterior_figure(
            result, impl_prior_mu, impl_tau, xlabel="logit proportion",
            title=f"implementation {measure}: posterior (shaded) and prior (red); k = {result.k}")
        figures[f"bayes_trace_{slug}"] = trace_rank_figure(result, title=f"implementation {measure}: trace and rank")
    return figures


def _record(b, seed, mid, tables, notes, sampler) -> dict:
    return {"enabled": True, "settings": b, "seed": seed, "mid": mid, "direction": FAVOURS,
            "gate": {"max_rhat": RHAT_MAX, "min_ess_bulk": ESS_BULK_MIN, "max_divergences": 0,
                     "retry": f"once, with 2x tune and draws and target_accept "
                              f"{retry_target_accept(b['target_accept']):g}"},
            "sampler": {"capacity": sampler.capacity, "compiles": len(sampler.compile_log)},
            "notes": notes, **{name.removeprefix("bayes_"): _records(frame) for name, frame in tables.items()}}


# ---------------------------------------------------------------------------------------------
# Report text


_SHOW_POOLED = ["quantity", "estimate", "se", "ci_low", "ci_high", "median", "mcse_mean", "ess_bulk", "r_hat", "notes"]
_SHOW_SENS = ["prior", "prior_tau", "mu_mean", "mu_low", "mu_high", "tau_median", "mu_new_low", "mu_new_high",
              "P(mu > 0)", "P(mu_new > 0)", "attempts", "gate", "citation"]
_SHOW_CUM = ["year", "k", "added", "mu_mean", "mu_low", "mu_high", "tau_median", "mu_new_low", "mu_new_high",
             "P(mu > 0)", "attempts", "gate"]
_SHOW_DIAG = ["outcome_label", "analysis", "prior", "year", "k", "attempts", "retry_reason", "max_rhat",
              "max_rhat_parameter", "min_ess_bulk", "min_ess_parameter", "divergences", "chains", "draws", "tune",
              "target_accept", "passed"]


def _cols(frame: pd.DataFrame, columns: list[str], extra: list[str] = ()) -> pd.DataFrame:
    return frame[[c for c in [*columns, *extra] if c in frame.columns]]


def _probability_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("P(") and c not in ("P(mu > 0)", "P(mu_new > 0)")]


def cumulative_sentence(table: pd.DataFrame) -> str:
    """'P(mu > 0): 2009 (k = 2) 0.97 -> 2019 (k = 3, + Jensen 2019) 0.88': how the evidence moved by year."""
    steps = [f"{int(r['year'])} (k = {int(r['k'])}{'' if i == 0 else ', + ' + r['added']}) "
             f"{_fmt(r['P(mu > 0)']) if r['P(mu > 0)'] == r['P(mu > 0)'] else 'not reported (gate failed)'}"
             for i, (_, r) in enumerate(table.iterrows())]
    return "P(mu > 0): " + " -> ".join(steps)


def _outcome_section(label, p, part, fig_names) -> str:
    fit = part["fit"]
    parts = [f"<h3>{_html.escape(label)}: Bayesian pooling</h3>",
             f"<p>k = {fit.result.k} studies; {_html.escape(_xlabel(p['measure']))}; tau prior "
             f"<code>{_html.escape(p['prior'])}</code>.</p>"]
    parts.append(table_html(_cols(part["estimates"], _SHOW_POOLED),
                            caption=f"{label}: posterior of the pooled effect mu, the between-study SD tau and the "
                                    f"effect in a new trial (mu_new); probabilities are shares of the draws",
                            method=_method_text(fit)))
    parts.append(table_html(_cols(part["study_effects"], ["study", "yi", "sei", "theta_mean", "theta_sd", "theta_low",
                                                          "theta_high"]),
                            caption=f"{label}: study effects as reported (yi) and shrunken towards the pooled "
                                    "effect (theta: posterior mean, SD, 95% interval)",
                            method=_method_text(fit)))
    if f"bayes_posterior_{_slug(label)}" in fig_names:
        parts.append(figure_html(f"bayes_posterior_{_slug(label)}",
                                 f"{label}: posterior density of mu (with the predictive effect of a new trial, "
                                 "dashed) and of tau, prior density in red; histograms of the MCMC draws"))
    if len(part["sensitivity"]):
        parts.append(table_html(_cols(part["sensitivity"], _SHOW_SENS, _probability_columns(part["sensitivity"])),
                                caption=f"{label}: prior sensitivity (same data, each shipped tau prior; posterior "
                                        "means and 95% equal-tailed intervals)",
                                method="per row (column 'method' in tables/bayes_sensitivity.csv); "
                                       "each prior's fit passed the gate"))
    if len(part["cumulative"]):
        parts.append(table_html(_cols(part["cumulative"], _SHOW_CUM, _probability_columns(part["cumulative"])),
                                caption=f"{label}: cumulative Bayesian analysis by publication year",
                                method=f"one fit per year pooling every study published up to it; prior "
                                       f"{p['prior']}; {fit.result.method.split(';')[0]}"))
        parts.append(f"<p>{_html.escape(cumulative_sentence(part['cumulative']))}.</p>")
        if f"bayes_cumulative_{_slug(label)}" in fig_names:
            parts.append(figure_html(f"bayes_cumulative_{_slug(label)}",
                                     f"{label}: posterior mean and 95% interval of mu as studies are added by year"))
    return "\n".join(parts)


_SAMPLING_HTML = {
    "marginal": ("NUTS (nutpie) samples mu and tau from their marginal posterior (theta integrated out: "
                 "y<sub>i</sub> ~ N(mu, se<sub>i</sub><sup>2</sup> + tau<sup>2</sup>)), and each draw's "
                 "theta<sub>i</sub> is drawn from its exact conditional normal (BDA3, section 5.4), which avoids the "
                 "funnel that makes few-study fits diverge (meta.bayes.parameterization = marginal); "),
    "non_centred": ("NUTS (nutpie) samples the non-centred form theta<sub>i</sub> = mu + tau z<sub>i</sub>, "
                    "z<sub>i</sub> ~ N(0, 1) (meta.bayes.parameterization = non_centred); "),
}


def _html_section(b, seed, mid, plan, pooled, impl_pooled, tables, notes, flags, prior_mu, impl_prior_mu,
                  impl_tau) -> str:
    main = SHIPPED_TAU_PRIORS[b["tau_prior"]]
    fits = tables["bayes_diagnostics"]
    retried = int((fits["attempts"] > 1).sum()) if len(fits) else 0
    intro = (
        "<h2>Bayesian random-effects pooling</h2>"
        "<p>The same effects as the frequentist analysis are pooled with the normal-normal hierarchical model "
        "y<sub>i</sub> ~ N(theta<sub>i</sub>, se<sub>i</sub>), theta<sub>i</sub> ~ N(mu, tau). "
        + _SAMPLING_HTML[b["parameterization"]] +
        f"{b['chains']} chains of {b['draws']} draws after {b['tune']} tuning steps, target_accept "
        f"{float(b['target_accept']):g}; seed {seed}. mu ~ {_html.escape(prior_mu.label())}. The heterogeneity prior "
        f"for standardized mean differences is <code>{_html.escape(main.key)}</code>, "
        f"{_html.escape(main.prior.label())} ({_html.escape(main.citation)}): an empirical prior derived from "
        "Cochrane meta-analyses of mental-health outcomes of non-pharmacological interventions, the situation "
        "of IMR; the half-normal and half-Cauchy and the other published priors are in the sensitivity tables. "
        f"Note on this prior: {_html.escape(main.note or 'none')}.</p>"
        f"<p>Reported: posterior mean, SD and 95% equal-tailed interval of mu, tau, each study's shrunken effect "
        f"and the effect in a new trial (mu_new = mu + tau z_new); P(mu &gt; 0) and P(mu_new &gt; 0)"
        + (f", and for SMD outcomes P(&gt; {mid:g}), the smallest important effect meta.mid" if mid else "")
        + ". Every fit passes a gate: R-hat ≤ 1.01 and bulk ESS ≥ 400 for mu, tau, mu_new and every theta, and "
        "no divergent transitions (Vehtari et al. 2021). A fit that fails is refitted once with twice the tuning "
        f"and draws and target_accept {retry_target_accept(b['target_accept']):g}. If a main fit (the first table of "
        "each outcome) fails again the stage stops; a sensitivity or cumulative fit that fails again "
        + ("stops it too" if b["on_secondary_gate_failure"] == "fail" else
           "is flagged and its numbers are left blank (meta.bayes.on_secondary_gate_failure = flag)")
        + f". {len(fits)} fits, {retried} of them needed the retry, "
        f"{int((~fits['passed'].astype(bool)).sum()) if len(fits) else 0} failed (see the appendix).</p>")
    parts = [intro, "".join(f"<div class='flag'>{_html.escape(f)}</div>" for f in flags)]
    if notes:
        parts.append("<p>Not pooled: " + _html.escape("; ".join(notes)) + ".</p>")
    parts.append(table_html(tables["bayes_priors"], caption="Priors", method="as cited per row"))
    by_label = {p["label"]: p for p in plan}
    fig_names = {f"bayes_posterior_{_slug(label)}" for label in pooled} | {
        f"bayes_cumulative_{_slug(label)}" for label, part in pooled.items() if len(part["cumulative"]) >= 2}
    for label, part in pooled.items():
        parts.append(_outcome_section(label, by_label[label], part, fig_names))
    if impl_pooled:
        parts.append("<h3>Implementation proportions: Bayesian pooling on the logit scale</h3>"
                     f"<p>Dropout and completion (McGuire et al. 2014, Table 3; the rows the frequentist analysis "
                     f"pools, with the same denominators: {_html.escape(DENOMINATOR_RULE)}), "
                     f"mu ~ {_html.escape(impl_prior_mu.label())}, {_html.escape(impl_tau.label())}; "
                     "percentages are posterior medians and intervals of the back-transformed draws.</p>")
        for measure, part in impl_pooled.items():
            parts.append(table_html(_cols(tables["bayes_pooled"].loc[tables["bayes_pooled"]["outcome_label"]
                                                                     == f"implementation: {measure}"],
                                          _SHOW_POOLED),
                                    caption=f"{measure}: pooled logit proportion and percent",
                                    method=_method_text(part["fit"])))
            parts.append(figure_html(f"bayes_posterior_{_slug('implementation_' + measure)}",
                                     f"{measure}: posterior and prior (logit scale)"))
    parts.append("<h3>Appendix: sampler diagnostics, trace and rank plots</h3>")
    parts.append(table_html(_cols(fits, _SHOW_DIAG), caption="Every fit: the worst R-hat and bulk ESS over mu, tau, "
                            "mu_new and the study effects, divergences, and whether it needed the retry",
                            method="rank-normalised split R-hat and bulk ESS (Vehtari et al. 2021, ArviZ)"))
    for label in pooled:
        parts.append(figure_html(f"bayes_trace_{_slug(label)}", f"{label}: trace and rank plots of mu and tau "
                                 "(main prior)"))
    for measure in impl_pooled:
        parts.append(figure_html(f"bayes_trace_{_slug('implementation_' + measure)}",
                                 f"implementation {measure}: trace and rank plots"))
    return "\n".join(p for p in parts if p)


def _fmt(x, digits: int = 2) -> str:
    return "NA" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _summary(b, plan, pooled, impl_pooled, tables, notes, flags, prior_mu, mid) -> str:
    fits = tables["bayes_diagnostics"]
    retried = int((fits["attempts"] > 1).sum()) if len(fits) else 0
    form = "theta integrated out" if b["parameterization"] == "marginal" else "non-centred"
    lines = [f"Bayesian pooling (normal-normal, {form}; NUTS via nutpie, {b['chains']} x {b['draws']} draws; "
             f"mu ~ {prior_mu.label()}; tau prior {b['tau_prior']} for SMDs, {b['tau_prior_log_or']} for log ORs; "
             f"posterior mean [95% interval]). Gate R-hat <= 1.01, bulk ESS >= 400, 0 divergences: "
             f"{int(fits['passed'].astype(bool).sum()) if len(fits) else 0} of {len(fits)} fits passed, "
             f"{retried} needed one retry.", ""]
    for label, part in pooled.items():
        est = part["estimates"].set_index("quantity")
        line = (f"  {label}: k = {part['fit'].result.k}, mu {_fmt(est.at['mu', 'estimate'])} "
                f"[{_fmt(est.at['mu', 'ci_low'])}, {_fmt(est.at['mu', 'ci_high'])}], tau median "
                f"{_fmt(est.at['tau', 'median'])}, new trial [{_fmt(est.at['mu_new', 'ci_low'])}, "
                f"{_fmt(est.at['mu_new', 'ci_high'])}], P(mu > 0) = {_fmt(est.at['P(mu > 0)', 'estimate'])}")
        if mid and f"P(mu > {mid:g})" in est.index:
            line += f", P(mu > {mid:g}) = {_fmt(est.at[f'P(mu > {mid:g})', 'estimate'])}"
        lines.append(line)
        sens = part["sensitivity"]
        if len(sens) > 1:
            lines.append(f"    across {len(sens)} tau priors: mu {_fmt(sens['mu_mean'].min())} to "
                         f"{_fmt(sens['mu_mean'].max())}, P(mu > 0) {_fmt(sens['P(mu > 0)'].min())} to "
                         f"{_fmt(sens['P(mu > 0)'].max())}")
        if len(part["cumulative"]) >= 2:
            lines.append("    cumulative " + cumulative_sentence(part["cumulative"]))
    for measure, part in impl_pooled.items():
        pct = proportion_rows(part["fit"].result).set_index("quantity")
        q = "pooled proportion (%)"
        lines.append(f"  implementation {measure}: k = {part['fit'].result.k}, {_fmt(pct.at[q, 'estimate'], 1)}% "
                     f"[{_fmt(pct.at[q, 'ci_low'], 1)}, {_fmt(pct.at[q, 'ci_high'], 1)}] (posterior median, logit "
                     "scale back-transformed)")
    lines += [f"  not pooled: {n}" for n in notes]
    lines += [f"  FLAG: {f}" for f in flags]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Entry points for the pipeline


def run_meta_stage_with_bayes(tables: dict[str, pd.DataFrame] | None, settings: dict | None, *,
                              seed: int | None = None) -> BayesStageResult:
    """The whole meta stage: the frequentist analysis (``meta_stage.run_meta_stage``) with this module as its
    Bayesian hook. ``settings`` is the meta section; its ``bayes`` sub-section configures the pooling. The
    result carries the main posteriors (``posteriors``) for ``write_posteriors``."""
    from imrstats.meta.stage import run_meta_stage

    settings = dict(settings or {})
    b = bayes_settings(settings.pop("bayes", None))
    captured: dict = {}

    def hook(pooling_inputs, meta_settings, hook_seed):
        part = bayes_pooling(pooling_inputs, {**meta_settings, "bayes": b}, hook_seed)
        captured["part"] = part
        return part

    result = run_meta_stage(tables, settings, seed=seed, bayes=hook if b["enabled"] else None)
    result.record.setdefault("settings", {})["bayes"] = b
    part = captured.get("part")
    return BayesStageResult(**result.__dict__, posteriors=part.posteriors if part else {},
                            seconds=part.seconds if part else 0.0)


def write_posteriors(result: StageResult, out_dir: str | Path) -> dict[str, Path]:
    """Write each main posterior as netCDF, ``<out_dir>/posteriors/bayes_<name>.nc`` (atomically, via
    ``bayes.save_posterior``). Returns name -> path; a result without posteriors writes nothing."""
    out = {}
    for name, posterior in (getattr(result, "posteriors", None) or {}).items():
        out[name] = save_posterior(posterior, Path(out_dir) / "posteriors" / f"bayes_{_slug(name)}.nc")
    return out
