# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Hands-on meta-analysis: drop a study, change a prior, see what moves
#
# The published randomised trials of Illness Management and Recovery (IMR) are few and small, so a
# meta-analysis of them is fragile: one study or one prior can change the answer. This notebook lets
# you see that for yourself. It uses the curated, cited data in `data/published/` and the same library
# functions as the pipeline's meta-analysis stage (`imrstats.meta.stage`, `imrstats.meta.random_effects`,
# `imrstats.meta.bayes_stage` with the exact Bayesian engine `imrstats.meta.bayes_exact`).
#
# Effects are standardized mean differences (Hedges' g), **signed so that a positive value favours
# IMR**, whatever the direction of the instrument.
#
# Change the parameters in the next cell and rerun everything (Kernel -> Restart & Run All).

# %% tags=["parameters"]
# Parameters (papermill can override these).
outcome = "imrs_client"  # an outcome label of meta.outcomes in config/config.yaml
drop_study = "Jensen 2019"  # a study to leave out in section 3 ("" keeps every study)
method = "REML"  # tau^2 estimator: REML, DL, PM, ML or EE (equal effects)
knha = True  # Knapp-Hartung t intervals (recommended with few studies)
tau_prior_scale = 1.0  # your own prior in section 5: tau ~ HalfNormal(tau_prior_scale)

# %%
# %matplotlib inline
import time

import numpy as np
import pandas as pd
from IPython.display import display
from matplotlib.lines import Line2D

from imrstats.config import load_config, stage_seed
from imrstats.core.seeds import label_code, spawn_seed
from imrstats.data.published import load_published_outcomes
from imrstats.errors import AnalysisError
from imrstats.meta import bayes, bayes_stage
from imrstats.meta import figures as meta_figures
from imrstats.meta import stage as meta_stage
from imrstats.report.figures import PALETTE, legend_outside, new_figure

pd.set_option("display.precision", 3)
pd.set_option("display.width", 140)
pd.set_option("display.max_colwidth", 80)

# %% [markdown]
# ## 1. The studies
#
# `load_published_outcomes()` reads the curated table: one row per study, outcome, timepoint and arm
# pair, each with its source (paper, table, page). `outcome_inputs` converts every row to an effect
# size and picks, per outcome, one row per study by the preferences in the config (timepoint,
# instrument, ITT before complete case). These are exactly the numbers the pipeline pools.

# %%
config = load_config()
settings = dict(config["meta"])
bayes_settings = settings.pop("bayes")  # the Bayesian pooling's own settings (meta.bayes), used in section 4
published = load_published_outcomes()
inputs = meta_stage.outcome_inputs(published, settings)
print("outcomes:", {label: len(rows) for label, rows in inputs.items()})
if outcome not in inputs:
    raise AnalysisError(f"outcome {outcome!r} is not one of {sorted(inputs)}")
data = inputs[outcome]
data[["study", "year", "instrument", "timepoint", "analysis", "measure", "yi", "sei", "ci_low", "ci_high"]]

# %%
data[["study", "source"]]

# %% [markdown]
# ## 2. Random-effects pooling
#
# `pool_outcome` fits the random-effects model with every tau^2 estimator side by side (metafor's
# `rma()` numbers; the library is checked against R), plus heterogeneity, leave-one-out, cumulative
# and Egger results. The `method` column says exactly how each number was made.

# %%
pooled = meta_stage.pool_outcome(data, method=method, knha=knha, level=settings["level"])
fit = pooled["fit"]
pooled["estimators"][["method", "estimate", "se", "ci_low", "ci_high", "p", "tau2", "i2", "pi_low", "pi_high"]]

# %%
for flag in pooled["flags"]:
    print("FLAG:", flag)
pooled["heterogeneity"][["quantity", "estimate", "ci_low", "ci_high", "p"]]

# %%
display(
    meta_figures.forest_figure(
        data, fit, title=f"{outcome}: all {len(data)} studies", xlabel="Hedges' g (positive favours IMR)"
    )
)

# %% [markdown]
# ## 3. Drop a study
#
# With four studies, each carries a lot of weight. Refit without `drop_study` and compare. The
# leave-one-out table below does the same for every study at once.

# %%
if drop_study and drop_study not in set(data["study"]):
    raise AnalysisError(f"drop_study {drop_study!r} is not among {list(data['study'])}; use '' to keep all")
kept = data.loc[data["study"] != drop_study].reset_index(drop=True)
refit = meta_stage.pool_outcome(kept, method=method, knha=knha, level=settings["level"])["fit"]


def headline(name, f):
    return {
        "analysis": name,
        "k": f.k,
        "estimate": f.estimate,
        "ci_low": f.ci_low,
        "ci_high": f.ci_high,
        "p": f.p,
        "tau2": f.tau2,
        "I2 (%)": f.i2,
    }


pd.DataFrame([headline("all studies", fit), headline(f"without {drop_study or 'none'}", refit)])

# %%
display(
    meta_figures.forest_figure(
        kept, refit, title=f"{outcome}: without {drop_study or 'none'}", xlabel="Hedges' g (positive favours IMR)"
    )
)

# %%
pooled["leave_one_out"][["omitted", "estimate", "ci_low", "ci_high", "p", "tau2", "i2"]]

# %% [markdown]
# ## 4. Bayesian pooling
#
# The same normal-normal model, with priors on the overall effect `mu` and the between-study standard
# deviation `tau`. With few studies the data say little about `tau`, so its prior matters. The
# pipeline's priors are in the config (`meta.bayes`): for `tau` by default the empirical prior that
# Rhodes et al. (2015) derived from Cochrane meta-analyses of non-pharmacological mental-health
# interventions.
#
# The posterior is computed **exactly**, not sampled: given `tau` everything in this model is normal, so
# `mu`, `theta` and `mu_new` are integrated out analytically and `tau` by numerical quadrature (the
# method of R's bayesmeta, Röver 2020, J Stat Softw 93(6); `imrstats.meta.bayes_exact.fit_exact`,
# accurate to about 1e-9). There are no chains, no Monte Carlo error and no convergence diagnostics to
# check, and a fit takes milliseconds. This is the pipeline's default engine (`meta.bayes.engine: exact`),
# and `bayes_stage.pool_outcome_bayes` below is the very call its meta stage makes for each outcome: the
# main fit, the prior-sensitivity fits (section 5) and the Bayes factors.

# %%
if bayes_settings["engine"] != "exact":
    print(f"NOTE: the config sets meta.bayes.engine = {bayes_settings['engine']}; this notebook uses the exact engine")
sampler = bayes_stage.ExactSampler(bayes_settings["exact_draws"])
prior_mu = bayes_stage.normal_prior_from_spec(bayes_settings["prior_mu"], "meta.bayes.prior_mu")
main_key = bayes_settings["tau_prior"]
main_prior = bayes.SHIPPED_TAU_PRIORS[main_key]
mid = settings["mid"]
print(f"engine: {bayes_stage.EXACT_ENGINE}")
print(f"mu ~ {prior_mu.label()}; {main_prior.prior.label()}\n  {main_prior.citation}")
# the pipeline's seed for this outcome; the exact engine uses it only for the draws it saves, not for any number here
seed = spawn_seed(stage_seed("meta"), label_code(outcome))
start = time.perf_counter()
part = bayes_stage.pool_outcome_bayes(
    sampler,
    data,
    prior_mu=prior_mu,
    prior_key=main_key,
    sensitivity_keys=bayes_settings["sensitivity_priors"],
    mid=mid,
    seed=seed,
    run={},  # NUTS settings (draws, tune, chains): the exact engine has none
    cumulative=False,
    min_studies=bayes_settings["min_studies"],
    context=f"outcome {outcome}",
)
print(f"{sampler.fits} exact fits (main prior and the sensitivity priors) in {time.perf_counter() - start:.2f} s")
posterior = part["fit"].result  # the main fit; posterior.exact is the bayes_exact.ExactFit
exact = posterior.exact
print(f"posterior mean of mu: {posterior.estimate('mu'):.10f}")
print(
    f"P(mu > 0) = {posterior.estimate('P(mu > 0)'):.3f}; P(mu > {mid:g}) = {posterior.estimate(f'P(mu > {mid:g})'):.3f}"
)
exact.to_frame().drop(columns="method").rename(columns={"p_gt_0": "P(> 0)", "p_gt_mid": f"P(> {mid:g})"})

# %% [markdown]
# One row per quantity: `mu` is the average effect, `tau` the between-study SD, `mu_new` the effect to
# expect in a new trial, and `theta` the study effects shrunk towards `mu`. `ci_*` is the equal-tailed
# 95% interval, `hpd_*` the shortest one (for the skewed `tau` it can start at 0). `P(> 0.2)` is the
# posterior probability that the effect exceeds the minimal important difference set in the config
# (`meta.mid`). The pipeline's figure of the posteriors, each with its prior (legends below the panels):

# %%
display(
    meta_figures.posterior_figure(
        posterior,
        prior_mu,
        main_prior.prior,
        title=f"{outcome}: exact posterior (shaded) and prior (red); k = {posterior.k}",
        xlabel="Hedges' g (positive favours IMR)",
    )
)

# %% [markdown]
# **Bayes factors.** The marginal likelihood p(y) is how probable the data were under the model, averaged
# over the priors; a Bayes factor divides the same for a point hypothesis by it, so BF(tau = 0) > 1 means
# the data favour "no heterogeneity" and BF(mu = 0) > 1 favours "no effect" (< 1: against them). The
# `minimum` row divides by the best-fitting value instead of the average, the most the data can say
# against the point hypothesis. These are bayesmeta's definitions; they depend on the priors (section 5).

# %%
print(f"marginal likelihood p(y) = {exact.marginal_likelihood:.6g} (log p(y) = {exact.log_marginal_likelihood:.6g})")
exact.bayes_factors

# %% [markdown]
# The shrinkage, study by study: each study's own estimate (blue, 95% CI) and its posterior effect
# `theta` (red, 95% interval), pulled towards the pooled mean (grey band: the 95% interval of `mu`).
# The less precise a study, and the smaller `tau`, the stronger the pull.

# %%
effects = part["study_effects"].merge(data[["study", "ci_low", "ci_high"]], on="study", validate="1:1")
mu_row = posterior.estimates.set_index("quantity").loc["mu"]
fig, ax = new_figure(6.5, 0.55 * len(effects) + 1.2)
rows = np.arange(len(effects))
ax.axvspan(mu_row["ci_low"], mu_row["ci_high"], color=PALETTE["band"], label="mu: 95% interval")
ax.axvline(mu_row["estimate"], color=PALETTE["reference"], lw=1, label="mu: posterior mean")
ax.errorbar(
    effects["yi"],
    rows - 0.15,
    xerr=[effects["yi"] - effects["ci_low"], effects["ci_high"] - effects["yi"]],
    fmt="s",
    color=PALETTE["estimate"],
    label="observed (95% CI)",
)
ax.errorbar(
    effects["theta_mean"],
    rows + 0.15,
    xerr=[effects["theta_mean"] - effects["theta_low"], effects["theta_high"] - effects["theta_mean"]],
    fmt="o",
    color=PALETTE["pooled"],
    label="shrunken theta (95% interval)",
)
ax.set_yticks(rows, effects["study"])
ax.axvline(0, color="grey", lw=0.8, ls=":")
ax.set_xlabel("Hedges' g (positive favours IMR)")
ax.invert_yaxis()
legend_outside(ax, where="right")
display(fig)

# %% [markdown]
# ## 5. Change the prior
#
# The same data under the heterogeneity priors of the pipeline's sensitivity analysis
# (`meta.bayes.sensitivity_priors`, each shipped with its citation), computed above by `pool_outcome_bayes`,
# plus your own `HalfNormal(tau_prior_scale)`. A small scale says "the trials should agree"; a large one lets
# `tau` roam. Watch `tau` and the width of the interval for `mu_new` move far more than `mu` does. Every row
# is an exact fit of a few milliseconds, so trying priors costs nothing. The citations are in the
# `citation` column of `sensitivity`.

# %%
own_prior = bayes.HalfNormal(tau_prior_scale)
start = time.perf_counter()
own = sampler.fit(data["yi"], data["sei"], data["study"], prior_mu=prior_mu, prior_tau=own_prior, mid=mid, seed=seed)
print(f"your prior: one exact fit in {1000 * (time.perf_counter() - start):.0f} ms")
own_name = f"your HalfNormal({tau_prior_scale:g})"
own_row = {
    "prior": own_name,
    "main_prior": False,
    "prior_tau": own_prior.label(),
    "prior_mu": prior_mu.label(),
    "k": own.k,
    **bayes_stage.exact_summary_row(own),
    "citation": "your choice (parameter tau_prior_scale)",
    "note": "",
    "method": own.method,
}
sensitivity = pd.concat([part["sensitivity"], pd.DataFrame([own_row])], ignore_index=True)
sensitivity[
    [
        "prior",
        "prior_tau",
        "main_prior",
        "mu_mean",
        "mu_low",
        "mu_high",
        "tau_median",
        "tau_hpd_low",
        "tau_hpd_high",
        "mu_new_low",
        "mu_new_high",
        "P(mu > 0)",
        f"P(mu > {mid:g})",
    ]
]

# %%
fig, ax = new_figure(6.5, 0.45 * len(sensitivity) + 1.2)
rows = np.arange(len(sensitivity))
ax.hlines(rows, sensitivity["mu_new_low"], sensitivity["mu_new_high"], color=PALETTE["pooled"], lw=1, ls="--")
ax.hlines(rows, sensitivity["mu_low"], sensitivity["mu_high"], color=PALETTE["ink"], lw=3)
ax.plot(sensitivity["mu_mean"], rows, "o", color="white", markeredgecolor=PALETTE["ink"], ls="")
ax.set_yticks(
    rows, [f"{label}{' (main)' if main else ''}" for label, main in sensitivity[["prior_tau", "main_prior"]].values]
)
ax.axvline(0, color=PALETTE["reference"], lw=0.8)
ax.set_xlabel("Hedges' g (positive favours IMR)")
ax.invert_yaxis()
legend_outside(
    ax,
    where="right",
    handles=[
        Line2D([], [], color=PALETTE["ink"], lw=3, marker="o", markerfacecolor="white"),
        Line2D([], [], color=PALETTE["pooled"], lw=1, ls="--"),
    ],
    labels=["mu: mean and 95% interval", "mu_new: 95% interval"],
)
display(fig)

# %% [markdown]
# The Bayes factors move with the prior too (the marginal likelihood averages over it):

# %%
factors = pd.concat(
    [
        part["bayes_factors"],
        pd.DataFrame([{"prior": own_name, "main_prior": False, **bayes_stage.bayes_factor_row(own)}]),
    ],
    ignore_index=True,
)
factors[["prior", "prior_tau", "log_marginal_likelihood", "bf_tau0", "bf_mu0", "bf_tau0_minimum", "bf_mu0_minimum"]]

# %% [markdown]
# ## 6. Both at once: drop the study under the Bayesian model

# %%
without = sampler.fit(
    kept["yi"], kept["sei"], kept["study"], prior_mu=prior_mu, prior_tau=main_prior.prior, mid=mid, seed=seed
)
comparison = pd.DataFrame(
    [
        {"analysis": "all studies", "k": posterior.k, **bayes_stage.exact_summary_row(posterior)},
        {"analysis": f"without {drop_study or 'none'}", "k": without.k, **bayes_stage.exact_summary_row(without)},
    ]
)
comparison[
    [
        "analysis",
        "k",
        "mu_mean",
        "mu_low",
        "mu_high",
        "tau_median",
        "mu_new_low",
        "mu_new_high",
        "P(mu > 0)",
        f"P(mu > {mid:g})",
    ]
]

# %% [markdown]
# ## Where PyMC (NUTS) still comes in
#
# The exact engine covers this model, normal-normal with a normal (or flat) prior on `mu` and any prior on
# `tau`. Models outside that family are sampled with PyMC's NUTS (nutpie), each fit gated on R-hat, bulk
# ESS and divergences: the meta-regression (`imrstats.meta.bayes_models.MetaRegression`) and t-distributed
# study effects (`bayes_models.RobustT`), both made by `bayes_models.shared_model` and run by
# `bayes_models.run_bayes_sensitivity_models` when `meta.bayes.meta_regression` or `meta.bayes.robust_t`
# is enabled. The NUTS version of this very model stays as well (`bayes.shared_sampler`, `BayesMeta.fit`;
# `meta.bayes.engine: nuts`); the test `tests/validation/test_nuts_vs_exact.py` checks that its summaries
# agree with the exact ones within the sampler's Monte Carlo error. This notebook does not run it, because
# compiling the PyMC model takes tens of seconds, longer than everything above together. To try it yourself:
#
# ```python
# nuts = bayes.shared_sampler(target_accept=bayes_settings["target_accept"])
# sampled = nuts.fit(
#     data["yi"], data["sei"], data["study"], prior_mu=prior_mu, prior_tau=main_prior.prior, mid=mid, seed=seed
# ).check_diagnostics()
# sampled.estimates  # the table of section 4, up to Monte Carlo error
# ```

# %% [markdown]
# ## Try this
#
# 1. Set `drop_study = ""` and then each of the other studies in turn. Which study moves the pooled
#    effect most? Does the leave-one-out table agree?
# 2. Set `tau_prior_scale = 0.1`, then `2.0`. How do `tau` and `mu_new` respond? Why does `mu` move less?
# 3. Set `method = "EE"` (equal effects, no heterogeneity). Compare its interval with REML + Knapp-Hartung.
# 4. Set `outcome = "imrs_clinician"` or `"hope"`. With k = 2, what can a random-effects model tell you?
# 5. Compare BF(tau = 0) across the priors of section 5. Why can a prior that expects little heterogeneity
#    make "no heterogeneity" look better or worse?
