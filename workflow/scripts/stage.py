# Thin adapter: snakemake -> imrstats.pipeline.registry.run_stage_on_files -> imrstats.pipeline.stage_result.write_stage
# The stage is the rule's name; it reads the files its rule declares (snakemake.input) and writes the files its
# rule declares (snakemake.output: json, html, summary, tables/, figures/ and, for meta, posteriors/).
from pathlib import Path

from imrstats.core.logs import log_to
from imrstats.pipeline.registry import run_stage_on_files
from imrstats.pipeline.stage_result import write_stage

with log_to(snakemake.log[0]):
    inputs = {
        name: str(value) if isinstance(value, str) else [str(v) for v in value]
        for name, value in snakemake.input.items()
    }
    result = run_stage_on_files(snakemake.rule, inputs, snakemake.config)
    print(result.summary)
    out_dir = Path(snakemake.output.json).parent
    declared = {name: Path(path) for name, path in snakemake.output.items()}
    layout = {
        "json": "result.json",
        "html": "section.html",
        "summary": "summary.txt",
        "tables": "tables",
        "figures": "figures",
        "posteriors": "posteriors",
    }
    moved = {name: str(path) for name, path in declared.items() if path != out_dir / layout[name]}
    if moved:
        raise SystemExit(
            f"rule {snakemake.rule}: outputs {moved} are not where the stage writes them "
            f"({out_dir}/{{result.json, section.html, summary.txt, tables, figures, posteriors}})"
        )
    write_stage(result, out_dir)
    if "posteriors" in declared:  # the meta stage's Bayesian posteriors, as netCDF (none when Bayes is off)
        from imrstats.meta.bayes_stage import write_posteriors

        declared["posteriors"].mkdir(parents=True, exist_ok=True)
        write_posteriors(result, out_dir)
