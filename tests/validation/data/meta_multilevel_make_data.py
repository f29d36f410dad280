"""Input for tests/validation/r/meta_multilevel.R (run once from the repository root; the output is committed).

meta_multilevel_imrs.csv: every IMRS effect in the curated published rows (data/published/published_outcomes.csv)
that the meta stage may pool (use 'pool' or 'pool with care', a standardised mean difference), client- and
clinician-rated, at every timepoint reported: several effects per study (Jensen 2019 gives client and clinician
IMRS at post and one-year follow-up; Levitt 2009 client and clinician), the dependent-effects case the multilevel
model is for. Effect sizes by the project's own conversion (``imrstats.meta.stage.effect_table``, Hedges' g signed
so that positive favours IMR). ``effect`` labels the effect within its study (instrument / timepoint);
``clinician`` is 1 for clinician-rated IMRS (the moderator).
"""

from pathlib import Path

from imrstats.data.published import load_published_outcomes
from imrstats.meta.stage import effect_table

HERE = Path(__file__).parent
effects = effect_table(load_published_outcomes(None))
keep = (
    effects["instrument"].isin(["imrs_client", "imrs_clinician"])
    & effects["use"].isin(["pool", "pool with care"])
    & (effects["measure"] == "SMD")
)
rows = effects.loc[keep, ["row", "study", "year", "instrument", "rater", "timepoint", "yi", "vi"]].copy()
rows.insert(6, "effect", rows["instrument"] + " / " + rows["timepoint"])
rows.insert(7, "clinician", (rows["instrument"] == "imrs_clinician").astype(int))
rows.to_csv(HERE / "meta_multilevel_imrs.csv", index=False, float_format="%.17g")
print(f"{len(rows)} effects from {rows['study'].nunique()} studies")
