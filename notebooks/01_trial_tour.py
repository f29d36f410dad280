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
# # A tour of the trial data and the intention-to-treat analysis
#
# This notebook walks through the synthetic trial that `imrstats` ships as its default data: a
# two-arm randomised trial of Illness Management and Recovery (IMR) against treatment as usual (TAU),
# shaped like the Danish IMR trial (Jensen et al. 2019, BMC Psychiatry 19:65; docs/sources.md). The data are
# **simulated**: the numbers are not the trial's results, but the structure (198 participants, three
# sites, assessments at baseline, after the intervention and at one-year follow-up, about 30% missing
# follow-up) is.
#
# Every number below comes from the same library functions the pipeline calls
# (`imrstats.data.simulate`, `imrstats.data.clean`, `imrstats.trial.analyses`). Nothing here is special to the notebook:
# change a parameter in the next cell, rerun everything (Kernel -> Restart & Run All), and see what moves.

# %% tags=["parameters"]
# Parameters (papermill can override these; the test suite runs the notebook with a small m).
seed = 20190065  # the master seed of config/config.yaml: the same seed gives the same data
outcome = "gaf_f"  # the trial's primary outcome: GAF functioning (1-100, higher is better)
m = 100  # number of imputations (the trial's analysis plan used 100)

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd

from imrstats.config import load_config
from imrstats.data.clean import clean_tables
from imrstats.data.instruments import get_instrument
from imrstats.data.simulate import simulate_all
from imrstats.trial import analyses as trial

pd.set_option("display.precision", 2)
pd.set_option("display.width", 140)

# %% [markdown]
# ## 1. Make the data
#
# `load_config()` reads the embedded default configuration; `simulate_all` turns its `simulate`
# section and the master seed into the four canonical tables; `clean_tables` checks them, turns
# missing-value codes into real missing values, and scores item-level questionnaires into totals.

# %%
config = load_config(overrides={"seed": seed})
raw = simulate_all(config)
cleaned = clean_tables(raw, missing_codes=config["clean"]["missing_codes"], prorate=config["clean"]["prorate"])
participants = cleaned.tables["participants"]
assessments = cleaned.tables["assessments"]
{name: frame.shape for name, frame in cleaned.tables.items()}

# %% [markdown]
# The cleaning log records every value `clean` changed or derived, with the rule that did it.

# %%
cleaned.log["rule"].value_counts().head(10)

# %% [markdown]
# ## 2. Who was randomised?
#
# One row per participant. The baseline table of a trial compares the arms: randomisation should
# make them alike, up to chance.

# %%
participants.head()

# %%
baseline_table = participants.groupby("arm").agg(
    n=("id", "size"),
    female=("sex", lambda s: (s == "female").mean()),
    age_mean=("age", "mean"),
    age_sd=("age", "std"),
    bipolar=("diagnosis", lambda s: (s == "bipolar").mean()),
    sessions_mean=("sessions_attended", "mean"),
)
baseline_table

# %%
pd.crosstab(participants["site"], participants["arm"], margins=True)

# %% [markdown]
# IMR is delivered in weekly sessions; TAU participants attend none. How much IMR did the IMR arm get?

# %%
imr_sessions = participants.loc[participants["arm"] == "IMR", "sessions_attended"]
fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(imr_sessions, bins=range(0, int(imr_sessions.max()) + 2), color="tab:blue")
ax.set_xlabel("IMR sessions attended")
ax.set_ylabel("participants")
ax.set_title(f"Attendance in the IMR arm (median {imr_sessions.median():g} sessions)")
plt.show()

# %% [markdown]
# ## 3. The outcome and its missing values
#
# Assessments are stored long: one row per participant, timepoint and instrument. The instrument
# registry (`config/instruments.yaml`) says what each key means and its valid range.

# %%
instrument = get_instrument(outcome)
print(
    f"{outcome}: {instrument.name}; range {instrument.min:g}-{instrument.max:g}; "
    f"{'higher' if instrument.higher_is_better else 'lower'} is better"
)
assessments.loc[assessments["instrument"] == outcome].head()

# %% [markdown]
# `trial.outcome_frame` turns the long table into one row per participant with the outcome at
# baseline, post and fu12. Missing follow-up is the rule in this kind of trial, and it is why the
# analysis plan imputes.

# %%
frame = trial.outcome_frame(participants, assessments, outcome)
missing_share = frame.groupby("arm")[["baseline", "post", "fu12"]].agg(lambda s: s.isna().mean())
missing_share

# %% [markdown]
# The observed means per arm and visit (the trial's "complete-case" descriptives, Jensen et al. 2019, Table 3):

# %%
observed = trial.describe_by_arm(frame, outcome=outcome)
observed.pivot(index="timepoint", columns="arm", values=["n", "mean", "sd"]).loc[["baseline", "post", "fu12"]]

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for arm, colour in (("IMR", "tab:blue"), ("TAU", "tab:orange")):
    part = observed.loc[observed["arm"] == arm].set_index("timepoint").loc[["baseline", "post", "fu12"]]
    se = part["sd"] / part["n"] ** 0.5
    ax.errorbar(part.index, part["mean"], yerr=1.96 * se, label=arm, color=colour, marker="o", capsize=3)
ax.set_ylabel(f"{instrument.short} (observed mean, 95% CI)")
ax.set_title("Observed means: only those who were assessed")
ax.legend()
plt.show()

# %% [markdown]
# ## 4. Intention to treat: multiple imputation + MMRM + Rubin's rules
#
# The analysis plan: every randomised participant counts in the arm they were randomised to.
# Missing values are imputed `m` times by chained equations (within each arm), a mixed model for
# repeated measures (MMRM: post and fu12 as repeated outcomes, adjusted for baseline, site, sex, age,
# diagnosis; unstructured covariance) is fitted to each completed data set, and the `m` estimates are
# pooled by Rubin's rules.

# %%
imputation = trial.impute_outcome(frame, m=m, seed=seed)
print(imputation.method_text)
print("cells imputed per visit:", {t: int(imputation.missing[:, j].sum()) for j, t in enumerate(imputation.targets)})

# %%
itt = trial.itt_mi_mmrm(frame, outcome=outcome, imputation=imputation)
print(itt.method)
itt.contrasts[["quantity", "estimate", "se", "ci_low", "ci_high", "df", "p", "fmi"]]

# %% [markdown]
# `fmi` is the fraction of missing information: how much of the uncertainty in each estimate comes
# from not knowing the missing values. It is why `m` matters: with a large fmi, a small `m` gives a
# noisy pooled result. Try `m = 5` and a different `seed` in the parameters cell and compare.
#
# The adjusted means per arm and visit:

# %%
itt.adjusted_means[["quantity", "estimate", "se", "ci_low", "ci_high"]]

# %% [markdown]
# ## 5. The same question, three ways
#
# * **ITT MI-MMRM** (above): everyone randomised, missing values imputed.
# * **Likelihood MMRM**: no imputation; the mixed model uses every observed value and is valid if the
#   data are missing at random given the model's covariates.
# * **Complete case**: an ANCOVA per visit among those with the outcome observed. Simple, but it
#   analyses a selected subset.

# %%
likelihood = trial.likelihood_mmrm(frame)
print(likelihood.method, "| converged:", likelihood.converged)
_, complete = trial.complete_case(frame, outcome=outcome)

comparison = pd.concat(
    [
        itt.contrasts.assign(analysis="ITT MI-MMRM"),
        likelihood.contrasts.assign(analysis="likelihood MMRM"),
        complete.assign(analysis="complete-case ANCOVA"),
    ],
    ignore_index=True,
)
comparison[["analysis", "quantity", "estimate", "se", "ci_low", "ci_high", "p"]]

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.5))
rows = comparison.reset_index(drop=True)
ax.errorbar(
    rows["estimate"],
    range(len(rows)),
    xerr=[rows["estimate"] - rows["ci_low"], rows["ci_high"] - rows["estimate"]],
    fmt="o",
    color="black",
    capsize=3,
)
ax.set_yticks(range(len(rows)))
ax.set_yticklabels(rows["analysis"] + ": " + rows["quantity"])
ax.axvline(0, color="grey", lw=0.8)
ax.set_xlabel(
    f"IMR - TAU on {instrument.short} (95% CI); positive favours IMR"
    if instrument.higher_is_better
    else f"IMR - TAU on {instrument.short} (95% CI); negative favours IMR"
)
ax.invert_yaxis()
plt.show()

# %% [markdown]
# ## Try this
#
# 1. Set `outcome = "psp"` (personal and social performance) or `"panss_total"` (symptoms; lower is
#    better) in the parameters cell and rerun: which direction favours IMR now?
# 2. Set `m = 5` and change `seed` a few times: how much does the pooled estimate move? Then `m = 100`.
# 3. The synthetic trial has a true effect on GAF-F of +3 points at post and +2 at fu12
#    (`simulate.trial.true_effects` in `config/config.yaml`). Do the intervals cover it?
