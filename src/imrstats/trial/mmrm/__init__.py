"""The MMRM engine: unstructured-covariance GLS by REML, Satterthwaite and Kenward-Roger df, batched fits."""

from imrstats.trial.mmrm.fit import (  # noqa: F401
    DEFAULT_COVARIATES,
    DF_METHODS,
    MMRMDesign,
    MMRMFits,
    MMRMResult,
    build_mmrm_design,
    fit_mmrm,
    fit_mmrm_chains,
    fit_mmrm_grid,
    fit_mmrm_many,
    kenward_roger_cov_beta,
    kenward_roger_df,
    kenward_roger_f_test,
    kenward_roger_q_terms,
    reference_grid,
    satterthwaite_df,
    _pattern_stats,
    _vech_basis,
    _reml,
    _newton_reml,
)
