# Thin adapter: snakemake -> imrstats.data_stage.write_synthetic_inputs
from imrstats.data_stage import write_synthetic_inputs
from imrstats.logs import log_to

with log_to(snakemake.log[0]):
    write_synthetic_inputs(snakemake.config, snakemake.params.out_dir)
