# imrstats: the whole pipeline on one screen. Stages live in workflow/rules/, statistics in src/imrstats/.
from snakemake.utils import min_version

min_version("9.0")


# Settings: no `configfile:` here. workflow/rules/common.smk lays config/config.yaml and then your
# --configfile / --config (only the keys you change) over the schema's defaults with imrstats.config, the
# same overlay rule as the CLI's --config (Snakemake's own merge would mix a free-form mapping such as
# meta.outcomes with the shipped one instead of replacing it).


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


# one rule file per statistical stage, workflow/rules/<stage>.smk, in the order of STAGES (common.smk): the
# stage list of imrstats.pipeline.registry, trial, services, meta, evidence, implementation, audit
for _stage in STAGES:

    include: f"workflow/rules/{_stage}.smk"


include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        f"{RESULTS}/report/index.html",
        f"{RESULTS}/provenance.json",
