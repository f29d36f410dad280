# Thin adapter: snakemake -> imrstats.data.stage.write_synthetic_inputs, into the folder of the declared outputs
from pathlib import Path

from imrstats.core.logs import log_to
from imrstats.data.stage import write_synthetic_inputs

with log_to(snakemake.log[0]):
    write_synthetic_inputs(snakemake.config, Path(snakemake.output[0]).parent)
