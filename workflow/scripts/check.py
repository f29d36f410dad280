# Thin adapter: snakemake -> imrstats.data.stage.run_check. Errors stop the pipeline with the problem list.
from imrstats.data.check import has_errors
from imrstats.data.stage import run_check
from imrstats.core.logs import log_to

with log_to(snakemake.log[0]):
    paths = [snakemake.input[t] for t in ("participants", "assessments", "service_use", "programme") if t in snakemake.input.keys()]
    problems = run_check(paths, snakemake.config)
    for problem in problems:
        print(problem)
    if has_errors(problems):
        raise SystemExit(f"input check failed: {sum(p.severity == 'error' for p in problems)} errors "
                         f"(listed in {snakemake.log[0]}); fix the inputs and rerun")
    from imrstats.data.check import problems_frame
    from imrstats.core.io import write_csv

    write_csv(problems_frame(problems), snakemake.output.problems)
