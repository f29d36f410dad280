# Thin adapter: snakemake -> imrstats.data.stage.run_clean
from imrstats.data.stage import run_clean
from imrstats.core.logs import log_to

with log_to(snakemake.log[0]):
    paths = [snakemake.input[t] for t in ("participants", "assessments", "service_use", "programme") if t in snakemake.input.keys()]
    run_clean(paths, snakemake.params.out_dir, snakemake.config)
