"""The stage list of the pipeline and which stages a run can make: plain data and the standard library, so
the workflow's start-up (workflow/rules/common.smk) plans a run without importing any statistics.
Running a stage is `imrstats.pipeline.registry`'s job."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One statistical stage of the pipeline: its name (the rule, the config section, the results folder
    and the sub-package), its title in the report and what it does."""

    name: str
    title: str
    what: str
    needs: tuple[str, ...] = ()  # the input tables it reads; () = the published data only (always there)
    after: tuple[str, ...] = ()  # the stages whose results it reads


# The statistical stages, in the order of the report: the one list of stages. The workflow reads it
# (workflow/rules/common.smk: STAGES; the Snakefile includes workflow/rules/<name>.smk for each, the report
# rule collects their sections) and so does the report's front page (its pending list).
PIPELINE = (
    Stage(
        "trial",
        "Trial",
        "ITT MMRM with multiple imputation, complete case, per protocol, subgroups, MNAR sensitivity",
        needs=("participants", "assessments"),
    ),
    Stage(
        "services",
        "Service use",
        "Poisson, negative binomial, zero-inflated and hurdle models",
        needs=("participants", "service_use"),
    ),
    Stage("meta", "Meta-analysis", "effect sizes, frequentist random effects, Bayesian pooling"),
    Stage(
        "evidence", "Evidence in context", "the trial's result within the published evidence", after=("trial", "meta")
    ),
    Stage("implementation", "Implementation", "programme registry descriptives", needs=("programme",)),
    Stage("audit", "Audit", "consistency checks of published numbers (GRIM, GRIMMER, recomputed tests)"),
)
STAGE_NAMES = tuple(stage.name for stage in PIPELINE)


def plan_stages(tables_found, where: str = "in the input folder") -> tuple[list[str], dict[str, str]]:
    """Which stages of `PIPELINE` can run on the input tables found (names: participants, assessments,
    service_use, programme): the names of those that run, in order, and {name: why it is skipped} for the
    others (a missing input table, or a stage it reads that is skipped). The workflow runs only the first.
    ``where`` says where tables were looked for, in the reason (e.g. "mapped by the study spec")."""
    found = set(tables_found)
    run: list[str] = []
    skipped: dict[str, str] = {}
    for stage in PIPELINE:
        missing = [t for t in stage.needs if t not in found]
        waiting = [s for s in stage.after if s not in run]
        if missing:
            tables = " and ".join(stage.needs)
            absent = " and ".join(missing)
            skipped[stage.name] = (
                f"no {absent} table{'s' if len(missing) > 1 else ''} {where} "
                f"(the {stage.title.lower()} stage needs {tables})"
            )
        elif waiting:
            skipped[stage.name] = f"it reads the results of the {' and '.join(waiting)} stage, which was skipped"
        else:
            run.append(stage.name)
    return run, skipped
