# Thin adapter: snakemake -> imrstats.pipeline.registry.run_stage_on_clean_dir -> imrstats.pipeline.stage_result.write_stage
from imrstats.core.logs import log_to
from imrstats.pipeline.stage_result import write_stage
from imrstats.pipeline.registry import run_stage_on_clean_dir

with log_to(snakemake.log[0]):
    result = run_stage_on_clean_dir(snakemake.params.stage, snakemake.params.data_dir, snakemake.config)
    print(result.summary)
    write_stage(result, snakemake.params.out_dir)
    if getattr(result, "posteriors", None):   # the meta stage's Bayesian posteriors, as netCDF
        from imrstats.meta.bayes_stage import write_posteriors

        write_posteriors(result, snakemake.params.out_dir)
