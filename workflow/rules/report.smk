# Report stage: the front page and the provenance record. Each statistical stage that runs adds its section, in
# the order of STAGES (common.smk, from imrstats.pipeline.registry); RUN_STAGES omits those whose inputs are absent.


rule report_index:
    input:
        tables=rules.clean.output.tables,
        cleaning_log=rules.clean.output.log,
        problems=rules.check.output.problems,
        sections=expand(f"{RESULTS}/{{stage}}/section.html", stage=RUN_STAGES),
        stage_tables=expand(f"{RESULTS}/{{stage}}/tables", stage=RUN_STAGES),
        stage_figures=expand(f"{RESULTS}/{{stage}}/figures", stage=RUN_STAGES),
        # the CONSORT flow's ITT rows are read from the trial stage's fit (its result.json)
        results=expand(f"{RESULTS}/{{stage}}/result.json", stage=RUN_STAGES),
    output:
        report(
            f"{RESULTS}/report/index.html",
            caption="../report/index.rst",
            category="Report",
        ),
    log:
        f"{RESULTS}/logs/report_index.log",
    benchmark:
        f"{RESULTS}/benchmarks/report_index.tsv"
    conda:
        "../envs/imrstats.yaml"
    params:
        # the stages skipped for want of their input tables, with the reason (common.smk: plan_stages)
        skipped=SKIPPED_STAGES,
    script:
        "../scripts/report_index.py"


rule provenance:
    input:
        unpack(input_tables),
        report=f"{RESULTS}/report/index.html",
        tables=rules.clean.output.tables,
        results=expand(f"{RESULTS}/{{stage}}/result.json", stage=RUN_STAGES),
    output:
        f"{RESULTS}/provenance.json",
    log:
        f"{RESULTS}/logs/provenance.log",
    conda:
        "../envs/imrstats.yaml"
    params:
        # written when the run starts (onstart, common.smk); a file, not a param value, so it triggers no rerun
        started_file=f"{RESULTS}/logs/run_started.txt",
        skipped=SKIPPED_STAGES,
    script:
        "../scripts/provenance.py"
