"""Human labels for the columns of the report's tables ("ci_low" is a CSV column; "95% CI" is what a reader sees).

Presentation only: the CSVs keep their column names; `report.html.table_html` shows each column under
`column_label(name)`. A name is labelled, in this order, by

1. the exact labels of `LABELS` ("fmi" -> "Fraction of missing information");
2. an analysis-and-visit prefix: "itt_post_mean_imr" -> "ITT post: mean (IMR)";
3. a qualifier suffix: "estimate_with" -> "Estimate, with", "tau2_del" -> "tau² after deletion",
   "irr_p" -> "p (IRR)", "md_se" -> "SE of mean difference";
4. a statistic followed by an arm: "n_imr" -> "n (IMR)", "mean_placebo" -> "Mean (Placebo)". The arm is read
   from the name (its last word after a known statistic), never assumed, so the labels follow the data's arms;
5. a generic rule: underscores to spaces, known abbreviations kept (IMR, TAU, ITT, CI, SE, SD, SMD, MD, df, GAF,
   ...), the first letter capitalised unless the first word is a symbol (n, p, k, df, tau, mu, ...).

A name that is not a snake_case identifier (a section's own "LS mean IMR" or "p (IRR)") is already a label and
is shown as it is.
"""

from __future__ import annotations

import re

__all__ = ["LABELS", "column_label", "interval_label"]

# exact labels: the columns of the stages' tables whose meaning a generic rule would not say
LABELS: dict[str, str] = {
    # the canonical Estimate columns
    "quantity": "Quantity",
    "estimate": "Estimate",
    "se": "SE",
    "ci_low": "CI low",
    "ci_high": "CI high",
    "df": "df",
    "df1": "df1",
    "df2": "df2",
    "statistic": "Statistic",
    "p": "p",
    "method": "Method",
    "notes": "Notes",
    "note": "Note",
    # identifiers
    "outcome_label": "Outcome",
    "outcome": "Outcome",
    "estimator": "Estimator",
    "omitted": "Study omitted",
    "added": "Study added",
    "row": "Row",
    # multiple imputation (Rubin's rules)
    "m": "m (imputations)",
    "qbar": "Pooled estimate (Q̄)",
    "ubar": "Within-imputation variance (Ū)",
    "b": "Between-imputation variance (B)",
    "t": "Total variance (T)",
    "fmi": "Fraction of missing information",
    "riv": "Relative increase in variance",
    "lambda": "Proportion of variance due to missingness",
    "df_complete": "Complete-data df",
    "n_not_converged": "n not converged",
    "n_covariates_imputed": "n covariates imputed",
    "n_excluded_missing_covariates": "n excluded (missing covariates)",
    # multiplicity
    "p_holm": "p (Holm)",
    "p_bh": "p (BH)",
    "q_p": "p (Q)",
    "p_t_test": "p (t test)",
    # meta-analysis
    "yi": "Effect size (yi)",
    "vi": "Variance (vi)",
    "sei": "SE (sei)",
    "tau": "tau",
    "tau2": "tau²",
    "i2": "I²",
    "h2": "H²",
    "q": "Q",
    "k": "k",
    "k0": "k0 (filled)",
    "pi_low": "PI low",
    "pi_high": "PI high",
    "hpd_low": "HPD low",
    "hpd_high": "HPD high",
    "md": "Mean difference",
    "md_se": "SE of mean difference",
    "md_df": "df of mean difference",
    "sd_divided_by": "SD the difference is divided by",
    "sd_source": "Source of the SD",
    "sd_df": "df of the SD",
    "sd_difference": "SD of the differences",
    "hedges_j": "Hedges' J",
    "trial_g": "Trial g",
    "trial_se": "SE of trial g",
    "logit_estimate": "Estimate (logit)",
    "logit_se": "SE (logit)",
    "log_se": "SE (log scale)",
    "needs_assumption": "Needs an assumption",
    "excludes_zero": "CI excludes 0",
    "low_power": "Low power",
    "qe_del": "Q after deletion",
    "cook_d": "Cook's distance",
    "cov_r": "Covariance ratio",
    "dffits": "DFFITS",
    "dfbetas": "DFBETAS",
    "hat": "Hat value",
    "rstudent": "Studentised residual",
    "sigma2_study": "σ² (study)",
    "sigma2_effect": "σ² (effect)",
    "n_studies": "n studies",
    "n_table3_cells": "n Table 3 cells",
    "median_pooled_studies_pct": "Median of the pooled studies (%)",
    "median_all_table3_pct": "Median of all Table 3 rows (%)",
    "review_median_pct": "Median in the review (%)",
    "reconstructed_pct": "Reconstructed (%)",
    "studies_with": "Studies, with",
    # Bayesian pooling
    "main_prior": "Main prior",
    "prior_tau": "Prior on tau",
    "prior_mu": "Prior on mu",
    "mu_new": "mu (new study)",
    "bf_mu0": "BF (mu = 0)",
    "bf_mu0_minimum": "Minimum BF (mu = 0)",
    "bf_tau0": "BF (tau = 0)",
    "bf_tau0_minimum": "Minimum BF (tau = 0)",
    "log_marginal_likelihood": "log marginal likelihood",
    "mu_max_likelihood": "mu (maximum likelihood)",
    "tau_max_likelihood": "tau (maximum likelihood)",
    "mcse": "MCSE",
    "prob_gt_0": "P(effect > 0)",
    "freq_pct_true": "Frequentist: % true",
    "freq_pct_observed": "Frequentist: % observed",
    "freq_p_two_sided": "Frequentist: two-sided p",
    "freq_distribution": "Frequentist: distribution",
    "bayes_pct_true": "Bayesian: % true",
    "bayes_pct_true_mcse": "Bayesian: MCSE of % true",
    "bayes_pct_observed": "Bayesian: % observed",
    "bayes_pct_observed_mcse": "Bayesian: MCSE of % observed",
    "bayes_p_two_sided": "Bayesian: two-sided p",
    "sampler_diagnostics": "Sampler diagnostics",
    # trial
    "n_fu12": "n (fu12)",
    "n_above": "n above",
    "person_years": "Person-years",
    "n_post": "n (post)",
    "lsmean": "LS mean",
    "contrast": "Contrast",
    "random_intercept_variance": "Random-intercept variance",
    "residual_variance": "Residual variance",
    "tipping_delta": "Tipping delta",
    "reference_level": "Reference level",
    "intercurrent_events": "Intercurrent events",
    "F": "F",
    # services
    "irr": "IRR",
    "zero_or": "Zero-part OR",
    "zero_part": "Zero part",
    "theta": "theta",
    "loglik": "log-likelihood",
    "n_params": "n parameters",
    "aic": "AIC",
    "bic": "BIC",
    "delta_aic": "ΔAIC",
    "delta_bic": "ΔBIC",
    "model_a": "Model A",
    "model_b": "Model B",
    "sqrt_observed": "√observed",
    "sqrt_expected": "√expected",
    "share_zero": "Share of zeros",
    "variance_to_mean": "Variance / mean",
    "rate_per_person_year": "Rate per person-year",
    # implementation
    "small_cell": "Small cell",
}

# words kept as written inside any label: abbreviations, symbols and the scales' short names
_WORDS = {
    "imr": "IMR",
    "tau": "tau",
    "itt": "ITT",
    "cc": "CC",
    "ci": "CI",
    "pi": "PI",
    "hpd": "HPD",
    "se": "SE",
    "sd": "SD",
    "smd": "SMD",
    "md": "MD",
    "df": "df",
    "gaf": "GAF",
    "irr": "IRR",
    "or": "OR",
    "ls": "LS",
    "lsmean": "LS mean",
    "mcse": "MCSE",
    "bf": "BF",
    "aic": "AIC",
    "bic": "BIC",
    "imrs": "IMRS",
    "mmrm": "MMRM",
    "lmm": "LMM",
    "ice": "ICE",
    "ices": "ICEs",
    "jr": "JR",
    "mar": "MAR",
    "cace": "CACE",
    "pct": "%",
    "er": "ER",
    "diff": "difference",
    "n": "n",
    "k": "k",
    "p": "p",
    "q": "Q",
    "mu": "mu",
    "theta": "theta",
    "i2": "I²",
    "tau2": "tau²",
    "h2": "H²",
}
# first words that stay lower case at the start of a label (symbols, not words)
_SYMBOLS = {
    "n",
    "k",
    "k0",
    "p",
    "q",
    "z",
    "t",
    "m",
    "df",
    "df1",
    "df2",
    "tau",
    "tau²",
    "mu",
    "theta",
    "σ²",
    "log",
    "fu12",
}
_FIRST_WORD = re.compile(r"[^\s,:(]+")

# a statistic followed by an arm: "n_imr", "mean_tau", "n_randomised_placebo", "compliance_imr"
_ARM_STATISTICS = {
    "n",
    "mean",
    "sd",
    "se",
    "median",
    "lsmean",
    "compliance",
    "n_randomised",
    "n_analysed",
    "n_excluded",
    "n_compliers",
    "n_ice",
    "n_jr",
    "n_no_ice",
    "n_several_ices",
    "n_unclassified",
    "n_missing_mar",
    "n_missing_after_ice",
    "n_missing",
}
# the last word of a name that qualifies the rest and is not an arm
_NOT_ARMS = {"low", "high", "with", "without", "del", "post", "baseline", "pct", "p", "se", "sd", "df", "mean"}

# "itt_post_...", "cc_fu12_...": an analysis and a visit prefix
_PREFIX = re.compile(r"^(itt|cc)_(baseline|post|fu\d+|wk\d+|week\d+|month\d+)_(.+)$")
_ANALYSES = {"itt": "ITT", "cc": "CC"}
# the summaries of a posterior or a parameter: "mu_mean", "theta_hpd_low", "tau_median"
_SUMMARIES = {
    "mean": "mean",
    "sd": "SD",
    "median": "median",
    "low": "low",
    "high": "high",
    "hpd_low": "HPD low",
    "hpd_high": "HPD high",
    "se": "SE",
}
_PARAMETERS = {"mu": "mu", "mu_new": "mu (new study)", "tau": "tau", "theta": "theta"}
_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _capitalised(label: str) -> str:
    """The first letter upper case, unless the first word is a symbol ("n", "tau²", "p") or a visit ("fu12")."""
    first = m.group(0) if (m := _FIRST_WORD.match(label)) else ""
    if first in _SYMBOLS or first in _WORDS.values() or re.fullmatch(r"[a-z]+\d+", first) or not label[:1].islower():
        return label
    return label[:1].upper() + label[1:]


def _arm(token: str, arms: dict[str, str]) -> str:
    """An arm's label from the last word of a column name: the caller's arm labels when given (matched case-
    blind), else the word as an abbreviation when short ("imr" -> "IMR"), else capitalised ("placebo")."""
    if token in arms:
        return arms[token]
    return token.upper() if len(token) <= 4 else token.capitalize()


def _words(name: str) -> str:
    """The generic label: underscores to spaces, known abbreviations kept."""
    return " ".join(_WORDS.get(w, w) for w in name.split("_"))


def _label(name: str, arms: dict[str, str]) -> str:
    """A snake_case name's label, first letter as it comes (the caller capitalises)."""
    if name in LABELS:
        return LABELS[name]
    if m := _PREFIX.match(name):
        analysis, visit, rest = m.groups()
        return f"{_ANALYSES[analysis]} {visit}: {_lower(_label(rest, arms))}"
    for parameter, shown in sorted(_PARAMETERS.items(), key=lambda kv: -len(kv[0])):
        for summary, summary_shown in _SUMMARIES.items():
            if name == f"{parameter}_{summary}":
                return f"{shown}: {summary_shown}"
    if m := re.match(r"^(.+)_(with|without)$", name):
        return f"{_label(m.group(1), arms)}, {m.group(2)}"
    if m := re.match(r"^(.+)_del$", name):
        return f"{_label(m.group(1), arms)} after deletion"
    if m := re.match(r"^(.+)_at_tip$", name):
        return f"{_label(m.group(1), arms)} at the tipping point"
    if m := re.match(r"^(.+)_ci_(low|high)$", name):
        return f"{_label(m.group(1), arms)}: CI {m.group(2)}"
    if m := re.match(r"^(.+)_p$", name):
        return f"p ({_lower(_label(m.group(1), arms))})"
    if m := re.match(r"^(.+)_se$", name):
        return f"SE of {_lower(_label(m.group(1), arms))}"
    if name in _ARM_STATISTICS:
        return _words(name)
    if m := re.match(r"^(.+)_([a-z]+)$", name):
        statistic, token = m.groups()
        if statistic in _ARM_STATISTICS and token not in _NOT_ARMS:
            return f"{_label(statistic, arms)} ({_arm(token, arms)})"
    if m := re.match(r"^(.+)_(low|high)$", name):
        return f"{_label(m.group(1), arms)}, {m.group(2)}"
    return _words(name)


def _lower(label: str) -> str:
    """A label continued after a colon: its first letter lower case unless the first word is an abbreviation or
    a symbol ("mean (IMR)", but "SE of ...", "LS mean", "Q")."""
    first = label.split(" ", 1)[0]
    if first in _WORDS.values() or sum(ch.isupper() for ch in first) > 1 or len(first) == 1:
        return label
    return label[:1].lower() + label[1:]


def column_label(name, arms=None) -> str:
    """A table column's human label.

    `arms` (optional) are the arm labels as the data spells them ("IMR", "TAU"; "Active", "Placebo"): a name
    ending in an arm shows that label. Without them the arm is read from the name. A name that is not a
    snake_case identifier is returned as it is."""
    text = str(name)
    if not _SNAKE.match(text):
        return _capitalised(text) if re.fullmatch(r"[a-z]+", _FIRST_WORD.match(text + " ").group(0)) else text
    if text in LABELS:
        return LABELS[text]
    arm_labels = {str(a).lower(): str(a) for a in (arms or ())}
    return _capitalised(_label(text, arm_labels))


def interval_label(name, kind: str = "CI", level: float = 0.95, arms=None) -> str:
    """The header of a merged "estimate (low to high)" cell: "Estimate (95% CI)", "IRR (95% CI)",
    "Estimate, with (95% CI)", "mu: mean (95% CrI)"."""
    return f"{column_label(name, arms)} ({level_text(level)} {kind})"


def level_text(level: float) -> str:
    """0.95 -> "95%", 0.9 -> "90%", 0.975 -> "97.5%"."""
    return f"{100 * float(level):.10g}%"
