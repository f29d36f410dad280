# Thin adapter: snakemake -> imrstats.data.stage.run_clean, into the folder of the declared outputs
from pathlib import Path

from imrstats.core.io import TABLES
from imrstats.core.logs import log_to
from imrstats.data.stage import run_clean

with log_to(snakemake.log[0]):
    paths = [snakemake.input[t] for t in TABLES if t in snakemake.input.keys()]
    run_clean(paths, Path(snakemake.output.log).parent, snakemake.config)
