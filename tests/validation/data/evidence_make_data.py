"""Inputs for tests/validation/r/evidence.R (run once from the repository root; outputs are committed).

evidence_published.csv: the published rows the meta stage pools for imrs_client and symptoms
(``meta_stage.outcome_inputs`` on data/published/published_outcomes.csv with the default meta settings).
evidence_trial_itt.csv / evidence_trial_descriptives.csv: a small hand-made trial result in the shape of the
trial stage's tables (ITT contrasts IMR - TAU with SE and df; observed n / mean / SD per arm and visit).
"""

from pathlib import Path

import pandas as pd

from imrstats.data.published import load_published_outcomes
from imrstats.meta.stage import outcome_inputs

HERE = Path(__file__).parent
inputs = outcome_inputs(load_published_outcomes(None), None)
published = pd.concat(
    [inputs[label].assign(outcome_label=label) for label in ("imrs_client", "symptoms")], ignore_index=True
)[["outcome_label", "study", "year", "instrument", "yi", "vi"]]
published.to_csv(HERE / "evidence_published.csv", index=False, float_format="%.17g")

itt = pd.DataFrame(
    {
        "outcome": ["imrs_client", "panss_total"],
        "timepoint": ["fu12", "fu12"],
        "estimate": [1.35, -3.2],
        "se": [1.21, 2.9],
        "df": [61.4, 88.2],
    }
)
itt.to_csv(HERE / "evidence_trial_itt.csv", index=False)
rows = []
for outcome, spec in {
    "imrs_client": {"baseline": [(95, 51.2, 7.9), (97, 50.6, 8.4)], "fu12": [(58, 55.1, 7.1), (54, 53.4, 8.0)]},
    "panss_total": {"baseline": [(96, 62.0, 17.5), (98, 61.1, 16.2)], "fu12": [(60, 57.3, 16.9), (63, 60.8, 19.4)]},
}.items():
    for tp, arms in spec.items():
        for arm, (n, mean, sd) in zip(("IMR", "TAU"), arms):
            rows.append({"outcome": outcome, "timepoint": tp, "arm": arm, "n": n, "mean": mean, "sd": sd})
pd.DataFrame(rows).to_csv(HERE / "evidence_trial_descriptives.csv", index=False)
