"""The Bayesian pooling's report section: what `bayes_pooling` computed, as HTML.

Reads only the pooling's tables (``bayes_*``), its record, the names of its figures and its flags; computes
nothing. The method line under a table is the rows' own `method` column (``report.html.table_html``).
"""

from __future__ import annotations

import pandas as pd
from markupsafe import escape

from imrstats.meta.bayes import SHIPPED_TAU_PRIORS
from imrstats.meta.bayes_stage import (
    BF_DEFINITION,
    EXACT_ENGINE,
    NOT_APPLICABLE,
    cumulative_sentence,
    retry_target_accept,
)
from imrstats.meta.figures import axis_label, slug
from imrstats.meta.section import cols, rows_of
from imrstats.meta.stage import DENOMINATOR_RULE
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.html import figure_html, flags_html, render_template, table_html

IMPLEMENTATION_PREFIX = "implementation: "

_SHOW_POOLED = [
    "quantity",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "median",
    "hpd_low",
    "hpd_high",
    "mcse_mean",
    "ess_bulk",
    "r_hat",
    "notes",
    "method",
]
_SHOW_EFFECTS = [
    "study",
    "yi",
    "sei",
    "theta_mean",
    "theta_sd",
    "theta_median",
    "theta_low",
    "theta_high",
    "theta_hpd_low",
    "theta_hpd_high",
    "method",
]
_SHOW_SENS = [
    "prior",
    "prior_tau",
    "mu_mean",
    "mu_sd",
    "mu_low",
    "mu_high",
    "mu_hpd_low",
    "mu_hpd_high",
    "tau_median",
    "mu_new_low",
    "mu_new_high",
    "P(mu > 0)",
    "P(mu_new > 0)",
    "attempts",
    "gate",
    "citation",
]
_SHOW_CUM = [
    "year",
    "k",
    "added",
    "mu_mean",
    "mu_sd",
    "mu_low",
    "mu_high",
    "tau_median",
    "mu_new_low",
    "mu_new_high",
    "P(mu > 0)",
    "attempts",
    "gate",
]
_SHOW_DIAG = [
    "outcome_label",
    "analysis",
    "prior",
    "year",
    "k",
    "attempts",
    "retry_reason",
    "max_rhat",
    "max_rhat_parameter",
    "min_ess_bulk",
    "min_ess_parameter",
    "divergences",
    "chains",
    "draws",
    "tune",
    "target_accept",
    "passed",
]
_SHOW_EXACT_FITS = [
    "outcome_label",
    "analysis",
    "prior",
    "year",
    "k",
    "engine",
    "quadrature_panels",
    "quadrature_nodes",
    "mixture_nodes",
    "sampler_diagnostics",
]
_SHOW_FACTORS = [
    "prior",
    "main_prior",
    "k",
    "log_marginal_likelihood",
    "bf_tau0",
    "bf_mu0",
    "bf_tau0_minimum",
    "bf_mu0_minimum",
    "notes",
    "method",
]


def _probability_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("P(") and c not in ("P(mu > 0)", "P(mu_new > 0)")]


def _prior_label(priors: pd.DataFrame, parameter: str) -> str:
    hit = priors.loc[priors["parameter"] == parameter, "prior"] if "parameter" in priors else []
    return str(hit.iloc[0]) if len(hit) else ""


def render_bayes_section(result: StageResult) -> str:
    """The section of ``bayes_pooling``'s own result (tables ``bayes_*``, the Bayesian record)."""
    return render_bayes_part(result.tables, result.record, set(result.figures), result.flags)


def render_bayes_part(tables: dict[str, pd.DataFrame], record: dict, figures: set[str], flags: list[str]) -> str:
    """The Bayesian pooling's HTML from its tables (``bayes_*``), its record, its figure names and flags."""
    if not record.get("enabled", False):
        return render_template("meta/bayes_section.html.j2", enabled=False)
    b = record["settings"]
    fits = tables.get("bayes_diagnostics", pd.DataFrame())
    priors = tables["bayes_priors"]
    pooled = tables.get("bayes_pooled", pd.DataFrame())
    labels = list(dict.fromkeys(pooled["outcome_label"])) if "outcome_label" in pooled else []
    outcomes = [label for label in labels if not label.startswith(IMPLEMENTATION_PREFIX)]
    measures = [
        label.removeprefix(IMPLEMENTATION_PREFIX) for label in labels if label.startswith(IMPLEMENTATION_PREFIX)
    ]
    implementation = [
        (
            table_html(
                cols(rows_of(tables, "bayes_pooled", f"{IMPLEMENTATION_PREFIX}{measure}"), _SHOW_POOLED),
                caption=f"{measure}: pooled logit proportion and percent",
            ),
            figure_html(
                f"bayes_posterior_{slug('implementation_' + measure)}", f"{measure}: posterior and prior (logit scale)"
            ),
        )
        for measure in measures
    ]
    traces = [
        figure_html(f"bayes_trace_{slug(label)}", f"{label}: trace and rank plots of mu and tau (main prior)")
        for label in outcomes
        if f"bayes_trace_{slug(label)}" in figures
    ]
    traces += [
        figure_html(
            f"bayes_trace_{slug('implementation_' + measure)}", f"implementation {measure}: trace and rank plots"
        )
        for measure in measures
        if f"bayes_trace_{slug('implementation_' + measure)}" in figures
    ]
    exact = b.get("engine", "exact") == "exact"
    if exact:
        diagnostics = table_html(
            cols(fits, _SHOW_EXACT_FITS),
            caption="Every fit: the quadrature behind it (panels of 16 Gauss-Legendre nodes on log(tau); nodes of "
            f"the normal mixtures); sampler diagnostics (R-hat, ESS, divergences): {NOT_APPLICABLE}",
            method=f"{EXACT_ENGINE}; imrstats.meta.bayes_exact (accuracy: docs/methods.md)",
        )
    else:
        diagnostics = table_html(
            cols(fits, _SHOW_DIAG),
            caption="Every fit: the worst R-hat and bulk ESS over mu, tau, "
            "mu_new and the study effects, divergences, and whether it needed the retry",
            method="rank-normalised split R-hat and bulk ESS (Vehtari et al. 2021, ArviZ)",
        )
    return render_template(
        "meta/bayes_section.html.j2",
        enabled=True,
        b=b,
        seed=record["seed"],
        mid=record["mid"],
        prior_mu=_prior_label(priors, "mu"),
        main=SHIPPED_TAU_PRIORS[b["tau_prior"]],
        retry_target_accept=retry_target_accept(b["target_accept"]),
        n_fits=len(fits),
        n_retried=int((fits["attempts"] > 1).sum()) if len(fits) else 0,
        n_failed=int((~fits["passed"].astype(bool)).sum()) if len(fits) else 0,
        flags=flags_html(flags),
        notes=record.get("notes", []),
        priors=table_html(priors, caption="Priors", method="as cited per row"),
        outcomes=[_outcome_html(tables, label, figures) for label in outcomes],
        implementation=implementation,
        denominator_rule=DENOMINATOR_RULE,
        impl_prior_mu=_prior_label(priors, "mu (logit)"),
        impl_tau=_prior_label(priors, "tau (logit)"),
        diagnostics=diagnostics,
        traces=traces,
        exact=exact,
        engine=EXACT_ENGINE if exact else "NUTS",
        n_draws=b.get("exact_draws"),
        beyond=[
            table_html(tables[name], caption=caption)
            for name, caption in (
                ("bayes_robust_t", "Robust model: t-distributed study effects (meta.bayes.robust_t)"),
                ("bayes_meta_regression", "Bayesian meta-regression on one moderator (meta.bayes.meta_regression)"),
            )
            if name in tables and len(tables[name])
        ],
    )


def _outcome_html(tables: dict[str, pd.DataFrame], label: str, figures: set[str]) -> str:
    estimates = rows_of(tables, "bayes_pooled", label)
    first = estimates.iloc[0]
    parts = [
        table_html(
            cols(estimates, _SHOW_POOLED),
            caption=f"{label}: posterior of the pooled effect mu, the between-study SD tau and the effect "
            "in a new trial (mu_new); "
            + (
                "exact (mean, SD, median, 95% equal-tailed ci and shortest hpd intervals, probabilities)"
                if "hpd_low" in estimates.columns
                else "probabilities are shares of the draws"
            ),
        ),
        table_html(
            cols(rows_of(tables, "bayes_study_effects", label), _SHOW_EFFECTS),
            caption=f"{label}: study effects as reported (yi) and shrunken towards the pooled effect "
            "(theta: posterior mean, SD, median, 95% interval; hpd: shortest 95% interval where given)",
        ),
    ]
    factors = rows_of(tables, "bayes_factors", label)
    if len(factors):
        parts.append(
            table_html(
                cols(factors, _SHOW_FACTORS),
                caption=f"{label}: marginal likelihood and Bayes factors per tau prior. {BF_DEFINITION}.",
            )
        )
    if f"bayes_posterior_{slug(label)}" in figures:
        parts.append(
            figure_html(
                f"bayes_posterior_{slug(label)}",
                f"{label}: posterior density of mu (with the predictive effect of a new trial, "
                "dashed) and of tau, prior density in red; "
                + ("exact densities" if "hpd_low" in estimates.columns else "histograms of the MCMC draws"),
            )
        )
    sensitivity = rows_of(tables, "bayes_sensitivity", label)
    if len(sensitivity):
        parts.append(
            table_html(
                cols(sensitivity, [*_SHOW_SENS, *_probability_columns(sensitivity), "method"]),
                caption=f"{label}: prior sensitivity (same data, each shipped tau prior; posterior "
                "means and 95% equal-tailed intervals"
                + ("; 'gate' says whether the fit passed)" if "gate" in sensitivity.columns else "; exact)"),
            )
        )
    cumulative = rows_of(tables, "bayes_cumulative", label)
    if len(cumulative):
        parts.append(
            table_html(
                cols(cumulative, [*_SHOW_CUM, *_probability_columns(cumulative), "method"]),
                caption=f"{label}: cumulative Bayesian analysis by publication year (one fit per "
                f"year pooling every study published up to it; prior {first['prior']})",
            )
        )
        parts.append(f"<p>{escape(cumulative_sentence(cumulative))}.</p>")
        if f"bayes_cumulative_{slug(label)}" in figures:
            parts.append(
                figure_html(
                    f"bayes_cumulative_{slug(label)}",
                    f"{label}: posterior mean and 95% interval of mu as studies are added by year",
                )
            )
    return render_template(
        "meta/bayes_outcome.html.j2",
        label=label,
        k=int(first["k"]),
        measure=axis_label(first["measure"]),
        prior=first["prior"],
        parts=parts,
    )
