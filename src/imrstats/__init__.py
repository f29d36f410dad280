"""imrstats: reproducible analysis of Illness Management and Recovery (IMR) trials and evidence.

The public verbs are importable from the top level (``from imrstats import fit_mmrm, rma``); each is
imported on first use, so ``import imrstats`` stays fast and loads no statistics engine. Where each verb
lives, and why the package is cut that way: docs/architecture.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (grouped by sub-package, in pipeline order)
_EXPORTS: dict[str, str] = {
    # data: inputs, checks, cleaning, synthetic data, curated published rows
    "check_tables": "imrstats.data.check",
    "clean_tables": "imrstats.data.clean",
    "simulate_all": "imrstats.data.simulate",
    "load_published_outcomes": "imrstats.data.published",
    "load_implementation_rates": "imrstats.data.published",
    "load_heterogeneity_priors": "imrstats.data.published",
    "select_for_pooling": "imrstats.data.published",
    "load_study": "imrstats.data.study",
    "draft_spec": "imrstats.data.spec_draft",
    # trial: multiple imputation, MMRM, Rubin's rules, the trial's analyses
    "impute_chained": "imrstats.trial.mice",
    "fit_mmrm": "imrstats.trial.mmrm",
    "fit_mmrm_grid": "imrstats.trial.mmrm",
    "pool_rubin": "imrstats.trial.rubin",
    "pool_rubin_many": "imrstats.trial.rubin",
    "barnard_rubin_df": "imrstats.trial.rubin",
    "itt_mi_mmrm": "imrstats.trial.analyses",
    "likelihood_mmrm": "imrstats.trial.analyses",
    "complete_case": "imrstats.trial.analyses",
    "per_protocol": "imrstats.trial.analyses",
    "delta_tipping_point": "imrstats.trial.analyses",
    "adjust_pvalues": "imrstats.trial.analyses",
    "random_intercept_lmm": "imrstats.trial.lmm",
    # trial: estimands and reference-based imputation (rbmi's methods)
    "ice_from_dropout": "imrstats.trial.reference_mi",
    "ice_from_attendance": "imrstats.trial.reference_mi",
    "reference_based_condmean": "imrstats.trial.reference_mi",
    "reference_based_bayes": "imrstats.trial.reference_mi",
    "delta_template": "imrstats.trial.reference_mi",
    "tipping_point_2d": "imrstats.trial.reference_mi",
    # services: count models of service use
    "fit_poisson": "imrstats.services.models",
    "fit_nb2": "imrstats.services.models",
    "fit_zinb": "imrstats.services.models",
    "fit_hurdle_nb": "imrstats.services.models",
    "fit_count_models": "imrstats.services.models",
    "compare_models": "imrstats.services.models",
    "overdispersion_test": "imrstats.services.models",
    "vuong_test": "imrstats.services.models",
    # meta: effect sizes, frequentist and Bayesian pooling
    "escalc": "imrstats.meta.effect_sizes",
    "smd": "imrstats.meta.effect_sizes",
    "md": "imrstats.meta.effect_sizes",
    "rma": "imrstats.meta.random_effects",
    "rma_mods": "imrstats.meta.moderators",
    "permutest": "imrstats.meta.moderators",
    "subgroups": "imrstats.meta.moderators",
    "influence": "imrstats.meta.influence",
    "ranktest": "imrstats.meta.influence",
    "trimfill": "imrstats.meta.influence",
    "rma_mv": "imrstats.meta.multilevel",
    "robust_cr2": "imrstats.meta.multilevel",
    "selmodel_stepfun": "imrstats.meta.selection",
    "selmodel_sensitivity": "imrstats.meta.selection",
    "BayesMeta": "imrstats.meta.bayes",
    "shared_sampler": "imrstats.meta.bayes",
    "prior_sensitivity": "imrstats.meta.bayes",
    "cumulative_bayes": "imrstats.meta.bayes",
    # implementation: hypothesis tests and the programme registry's descriptive analysis
    "chi_square_test": "imrstats.implementation.hypothesis_tests",
    "fisher_exact_test": "imrstats.implementation.hypothesis_tests",
    "independence_test": "imrstats.implementation.hypothesis_tests",
    "welch_t_test": "imrstats.implementation.hypothesis_tests",
    "mann_whitney_u_test": "imrstats.implementation.hypothesis_tests",
    "one_way_anova": "imrstats.implementation.hypothesis_tests",
    "kruskal_wallis_test": "imrstats.implementation.hypothesis_tests",
    "pearson_correlation": "imrstats.implementation.hypothesis_tests",
    "spearman_correlation": "imrstats.implementation.hypothesis_tests",
    "bland_altman": "imrstats.implementation.hypothesis_tests",
    "analyse_programme": "imrstats.implementation.descriptives",
    # audit: recomputing printed numbers
    "grim": "imrstats.audit.checks",
    "grimmer": "imrstats.audit.checks",
    "recompute_t": "imrstats.audit.checks",
    "check_ci_p_consistency": "imrstats.audit.checks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public verb from its module on first use (PEP 562) and keep it on the package."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'imrstats' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
