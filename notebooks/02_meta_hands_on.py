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
# `imrstats.meta.bayes`).
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
draws = 1000  # posterior draws per chain (4 chains) after as many tuning steps
seed = 20190065

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from imrstats.config import load_config
from imrstats.data.published import load_published_outcomes
from imrstats.errors import AnalysisError
from imrstats.meta import bayes
from imrstats.meta import figures as meta_figures
from imrstats.meta import stage as meta_stage

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
# interventions. The model is compiled once (`shared_sampler`; this takes 10-40 seconds) and then
# refitted in about a second. The result is gated: R-hat <= 1.01, bulk ESS >= 400 and no divergent
# transitions, or it raises.

# %%
sampler = bayes.shared_sampler(target_accept=bayes_settings["target_accept"])
prior_mu = bayes.Normal(**bayes_settings["prior_mu"])
main_prior = bayes.SHIPPED_TAU_PRIORS[bayes_settings["tau_prior"]]
print(f"mu ~ {prior_mu.label()}; {main_prior.prior.label()}\n  {main_prior.citation}")
posterior = sampler.fit(
    data["yi"],
    data["sei"],
    data["study"],
    prior_mu=prior_mu,
    prior_tau=main_prior.prior,
    mid=settings["mid"],
    draws=draws,
    tune=draws,
    seed=seed,
).check_diagnostics()
print(posterior.method)
posterior.estimates[["quantity", "estimate", "se", "ci_low", "ci_high"]]

# %% [markdown]
# `theta` are the study effects shrunk towards `mu`; `mu_new` is the effect to expect in a new trial;
# `P(mu > 0.2)` is the posterior probability that the average effect exceeds the minimal important
# difference set in the config (`meta.mid`). The shrinkage, study by study:

# %%
effects = posterior.study_effects
fig, ax = plt.subplots(figsize=(6.5, 3))
rows = range(len(effects))
ax.errorbar(
    effects["yi"],
    [r + 0.15 for r in rows],
    xerr=1.96 * effects["sei"],
    fmt="s",
    color="tab:blue",
    label="observed (95% CI)",
)
ax.errorbar(
    effects["theta_mean"],
    [r - 0.15 for r in rows],
    xerr=[effects["theta_mean"] - effects["theta_low"], effects["theta_high"] - effects["theta_mean"]],
    fmt="o",
    color="tab:red",
    label="shrunken theta (95% interval)",
)
ax.set_yticks(list(rows))
ax.set_yticklabels(effects["study"])
ax.axvline(0, color="grey", lw=0.8)
ax.set_xlabel("Hedges' g (positive favours IMR)")
ax.invert_yaxis()
ax.legend(fontsize=8, loc="lower right")
plt.show()

# %% [markdown]
# ## 5. Change the prior
#
# Refit the same data under the heterogeneity priors of the pipeline's sensitivity analysis (each
# shipped with its citation: the `citation` column of the table) and under your own
# `HalfNormal(tau_prior_scale)`. A small scale says "the trials should agree"; a large one lets `tau`
# roam. Watch `tau` and the width of the interval for `mu_new` move far more than `mu` does.

# %%
priors = {key: bayes.SHIPPED_TAU_PRIORS[key] for key in bayes_settings["sensitivity_priors"]}
priors[f"your HalfNormal({tau_prior_scale:g})"] = bayes.HalfNormal(tau_prior_scale)
sensitivity = bayes.prior_sensitivity(
    sampler,
    data["yi"],
    data["sei"],
    data["study"],
    priors=priors,
    prior_mu=prior_mu,
    mid=settings["mid"],
    draws=draws,
    tune=draws,
    seed=seed,
)
for _, row in sensitivity.loc[~sensitivity["diagnostics_ok"]].iterrows():
    print(f"SAMPLER PROBLEM under {row['prior']}: {row['diagnostic_problems']} (do not report this row)")
sensitivity[
    [
        "prior",
        "prior_tau",
        "mu_mean",
        "mu_low",
        "mu_high",
        "tau_median",
        "mu_new_low",
        "mu_new_high",
        "P(mu > 0)",
        "diagnostics_ok",
    ]
]

# %%
fig, ax = plt.subplots(figsize=(6.5, 0.6 * len(sensitivity) + 1.2))
for i, (_, row) in enumerate(sensitivity.iterrows()):
    ax.plot([row["mu_new_low"], row["mu_new_high"]], [i, i], color="tab:red", lw=1, ls="--")
    ax.plot([row["mu_low"], row["mu_high"]], [i, i], color="black", lw=3)
    ax.plot(row["mu_mean"], i, "o", color="white", markeredgecolor="black")
ax.set_yticks(range(len(sensitivity)))
ax.set_yticklabels(sensitivity["prior_tau"])
ax.axvline(0, color="grey", lw=0.8)
ax.set_xlabel("mu (solid, 95% interval) and mu_new (dashed); positive favours IMR")
ax.invert_yaxis()
plt.show()

# %% [markdown]
# ## 6. Both at once: drop the study under the Bayesian model

# %%
without = sampler.fit(
    kept["yi"],
    kept["sei"],
    kept["study"],
    prior_mu=prior_mu,
    prior_tau=main_prior.prior,
    mid=settings["mid"],
    draws=draws,
    tune=draws,
    seed=seed,
).check_diagnostics()
pd.DataFrame(
    [
        {"analysis": "all studies", **bayes.summary_row(posterior)},
        {"analysis": f"without {drop_study or 'none'}", **bayes.summary_row(without)},
    ]
)[["analysis", "mu_mean", "mu_low", "mu_high", "tau_median", "P(mu > 0)", "P(mu > 0.2)"]]

# %% [markdown]
# ## Try this
#
# 1. Set `drop_study = ""` and then each of the other studies in turn. Which study moves the pooled
#    effect most? Does the leave-one-out table agree?
# 2. Set `tau_prior_scale = 0.1`, then `2.0`. How do `tau` and `mu_new` respond? Why does `mu` move less?
# 3. Set `method = "EE"` (equal effects, no heterogeneity). Compare its interval with REML + Knapp-Hartung.
# 4. Set `outcome = "imrs_clinician"` or `"hope"`. With k = 2, what can a random-effects model tell you?
