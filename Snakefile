# imrstats: the whole pipeline on one screen. Stages live in workflow/rules/, statistics in src/imrstats/.
import os

from snakemake.utils import min_version

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/trial.smk"
include: "workflow/rules/services.smk"
include: "workflow/rules/meta.smk"
include: "workflow/rules/evidence.smk"
include: "workflow/rules/implementation.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        f"{RESULTS}/report/index.html",
        f"{RESULTS}/provenance.json",
    default_target: True
