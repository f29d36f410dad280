# Thin adapter: snakemake -> imrstats.data.stage.write_synthetic_inputs
from imrstats.data.stage import write_synthetic_inputs
from imrstats.core.logs import log_to

with log_to(snakemake.log[0]):
    write_synthetic_inputs(snakemake.config, snakemake.params.out_dir)
