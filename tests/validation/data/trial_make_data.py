"""Make trial_gaf_f.csv: the GAF-F outcome frame of the default synthetic trial (imrstats.trial.analyses.outcome_frame
on the cleaned default tables; config/config.yaml's seed). Synthetic data only: ids are generator ids.

Run from the repository root: .venv/bin/python tests/validation/data/trial_make_data.py
"""

from pathlib import Path

from imrstats.config import load_config
from imrstats.data.clean import clean_tables
from imrstats.data.simulate import simulate_all
from imrstats.trial.analyses import outcome_frame

cfg = load_config()
tables = clean_tables(
    simulate_all(cfg), missing_codes=cfg["clean"]["missing_codes"], prorate=True, allow_identifier_columns=[]
).tables
frame = outcome_frame(tables["participants"], tables["assessments"], "gaf_f")
frame.to_csv(Path(__file__).parent / "trial_gaf_f.csv", index=False, float_format="%.10g")
