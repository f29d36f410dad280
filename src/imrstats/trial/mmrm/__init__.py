"""The MMRM engine: unstructured-covariance GLS by REML, Satterthwaite and Kenward-Roger df, batched fits.

One module per concept, as in R's mmrm package:

- `design`: the fixed-effects design on a participant x visit grid and the emmeans reference grid;
- `reml`: pattern-wise sufficient statistics, the REML log-likelihood and its derivatives, Newton-Raphson;
- `ddf`: Satterthwaite and Kenward-Roger degrees of freedom, the Kenward-Roger cov(beta) and F test;
- `result`: `MMRMResult`, a fitted MMRM and its Estimate frames;
- `fit`: `fit_mmrm` and `fit_mmrm_grid`, with the estimability checks;
- `batch`: many fits of one design structure at once (`fit_mmrm_many`, `fit_mmrm_chains`, `MMRMFits`).
"""

from imrstats.trial.mmrm.batch import MMRMFits, fit_mmrm_chains, fit_mmrm_many
from imrstats.trial.mmrm.ddf import (
    DF_METHODS,
    kenward_roger_cov_beta,
    kenward_roger_df,
    kenward_roger_f_test,
    kenward_roger_q_terms,
    satterthwaite_df,
)
from imrstats.trial.mmrm.design import DEFAULT_COVARIATES, MMRMDesign, build_mmrm_design, reference_grid
from imrstats.trial.mmrm.fit import fit_mmrm, fit_mmrm_grid
from imrstats.trial.mmrm.result import MMRMResult

__all__ = [
    "DEFAULT_COVARIATES",
    "DF_METHODS",
    "MMRMDesign",
    "MMRMFits",
    "MMRMResult",
    "build_mmrm_design",
    "fit_mmrm",
    "fit_mmrm_chains",
    "fit_mmrm_grid",
    "fit_mmrm_many",
    "kenward_roger_cov_beta",
    "kenward_roger_df",
    "kenward_roger_f_test",
    "kenward_roger_q_terms",
    "reference_grid",
    "satterthwaite_df",
]
