"""Input for tests/validation/r/meta_moderators.R (run once from the repository root; the output is committed).

meta_moderators_published.csv: the effects the meta stage pools for imrs_client and imrs_clinician
(``imrstats.meta.stage.outcome_inputs`` on data/published/published_outcomes.csv with the default meta settings:
Hedges' g signed so that positive favours IMR, one row per study), with the study's publication year and country,
so that R fits the meta-regression on year to exactly the numbers imrstats computes.
"""

from pathlib import Path

import pandas as pd

from imrstats.data.published import load_published_outcomes
from imrstats.meta.stage import outcome_inputs

HERE = Path(__file__).parent
outcomes = load_published_outcomes(None)
inputs = outcome_inputs(outcomes, None)
country = outcomes.drop_duplicates("study").set_index("study")["country"]
published = pd.concat(
    [inputs[label].assign(outcome_label=label) for label in ("imrs_client", "imrs_clinician")], ignore_index=True
)
published["country"] = published["study"].map(country)
published = published[["outcome_label", "study", "year", "country", "instrument", "yi", "vi"]]
published.to_csv(HERE / "meta_moderators_published.csv", index=False, float_format="%.17g")
