"""Input for tests/validation/r/meta_influence.R (run once from the repository root; the output is committed).

meta_influence_imrs_client.csv: the client-rated IMR Scale effects the meta stage pools in its sensitivity
analysis "rows curated as use = 'sensitivity' added" (``imrstats.meta.stage.outcome_inputs`` on
data/published/published_outcomes.csv with ``uses`` = pool, pool with care and sensitivity: Levitt et al. 2009,
Färdig et al. 2011, Jensen et al. 2019, Roosenschoon et al. 2021, Wong et al. 2023; k = 5, the only outcome the
stage pools with k >= 5). Hedges' g signed so that positive favours IMR, one row per study, computed by imrstats'
own conversions, so that R runs the influence, rank, regression and trim-and-fill analyses on exactly these numbers.
"""

from pathlib import Path

from imrstats.config import section_settings
from imrstats.data.published import load_published_outcomes
from imrstats.meta.stage import outcome_inputs

HERE = Path(__file__).parent
outcomes = load_published_outcomes(None)
uses = [*section_settings("meta")["uses"], "sensitivity"]
data = outcome_inputs(outcomes, {"uses": uses})["imrs_client"]
data = data[["study", "year", "instrument", "timepoint", "analysis", "use", "yi", "vi"]]
data.to_csv(HERE / "meta_influence_imrs_client.csv", index=False, float_format="%.17g")
