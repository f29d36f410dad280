# Thin adapter: snakemake -> imrstats.data.stage.run_check. Errors stop the pipeline with the problem list.
from imrstats.core.io import TABLES, write_csv
from imrstats.core.logs import log_to
from imrstats.data.check import has_errors, problems_frame
from imrstats.data.stage import run_check

with log_to(snakemake.log[0]):
    paths = [snakemake.input[t] for t in TABLES if t in snakemake.input.keys()]
    problems = run_check(paths, snakemake.config)
    for problem in problems:
        print(problem)
    if has_errors(problems):
        raise SystemExit(
            f"input check failed: {sum(p.severity == 'error' for p in problems)} errors "
            f"(listed in {snakemake.log[0]}); fix the inputs and rerun"
        )
    write_csv(problems_frame(problems), snakemake.output.problems)
