"""Makes simstudy_replicates.csv: constructed replicate rows (three scenarios, two failed analyses) on which
tests/validation/r/simstudy.R and imrstats.trial.simstudy.aggregate compute the performance measures.
Run from the project root: .venv/bin/python tests/validation/data/simstudy_make_data.py"""

import numpy as np
import pandas as pd
from scipy import stats

rng = np.random.default_rng(20260801)
rows = []
for scen, truth, n in (("null", 0.0, 60), ("effect", 3.0, 80), ("noisy_se", 2.0, 40)):
    for rep in range(n):
        se = abs(rng.normal(1.5, 0.3 if scen != "noisy_se" else 0.8)) + 0.1
        est = truth + 0.2 * (scen == "effect") + rng.normal(0, 1.6)
        df = float(rng.uniform(8, 60))
        crit = stats.t.ppf(0.975, df)
        p = 2 * stats.t.sf(abs(est / se), df)
        err = "degenerate" if (scen == "effect" and rep in (5, 17)) else ""
        rows.append(
            dict(
                scenario=scen,
                rep=rep,
                estimator="mi_mmrm",
                outcome="gaf_f",
                timepoint="post",
                truth=truth,
                estimate=round(est, 10),
                se=round(se, 10),
                ci_low=round(est - crit * se, 10),
                ci_high=round(est + crit * se, 10),
                df=round(df, 10),
                p=round(p, 12),
                fmi=np.nan,
                n_not_converged=0,
                error=err,
            )
        )
pd.DataFrame(rows).to_csv("tests/validation/data/simstudy_replicates.csv", index=False)
