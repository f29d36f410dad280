# Thin adapter: snakemake -> imrstats.data.stage.run_check_and_clean (run_study_check_and_clean for a study
# spec): the problem list first (written whatever it holds); errors stop the pipeline with the list before
# anything is cleaned; then the cleaned tables and the cleaning log, into the folder of the declared outputs.
from pathlib import Path

from imrstats.core.io import TABLES
from imrstats.core.logs import log_to
from imrstats.data.stage import run_check_and_clean, run_study_check_and_clean

with log_to(snakemake.log[0]):
    out_dir = Path(snakemake.output.log).parent
    if "spec" in snakemake.input.keys():  # data.study: the export read through the study spec
        run_study_check_and_clean(snakemake.input.spec, snakemake.output.problems, out_dir, snakemake.config)
    else:
        paths = [snakemake.input[t] for t in TABLES if t in snakemake.input.keys()]
        run_check_and_clean(paths, snakemake.output.problems, out_dir, snakemake.config)
