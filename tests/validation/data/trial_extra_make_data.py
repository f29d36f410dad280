"""Make trial_extra_<outcome>.csv: outcome frames (imrstats.trial.analyses.outcome_frame) of the cleaned default
synthetic trial (config/config.yaml's seed) for the secondary trial analyses (imrstats.trial.secondary) pinned in
test_trial_extra_vs_r.py. Synthetic data only: ids are generator ids.

Run from the repository root: .venv/bin/python tests/validation/data/trial_extra_make_data.py
"""

from pathlib import Path

from imrstats.config import load_config
from imrstats.data.clean import clean_tables
from imrstats.data.simulate import simulate_all
from imrstats.trial.analyses import outcome_frame

OUTCOMES = ["gaf_f", "panss_total", "panss_pos", "psp_selfcare"]

cfg = load_config()
tables = clean_tables(
    simulate_all(cfg), missing_codes=cfg["clean"]["missing_codes"], prorate=True, allow_identifier_columns=[]
).tables
for key in OUTCOMES:
    frame = outcome_frame(tables["participants"], tables["assessments"], key)
    frame.to_csv(Path(__file__).parent / f"trial_extra_{key}.csv", index=False, float_format="%.10g")
