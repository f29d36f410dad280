# Report stage: the front page and the provenance record, in one job. Each statistical stage that runs adds its section, in
# the order of STAGES (common.smk, from imrstats.pipeline.registry); RUN_STAGES omits those whose inputs are absent.


# One job writes the front page and then the provenance record (which hashes the front page).
rule report:
    input:
        unpack(input_tables),
        tables=rules.clean.output.tables,
        cleaning_log=rules.clean.output.log,
        problems=rules.clean.output.problems,
        sections=expand(f"{RESULTS}/{{stage}}/section.html", stage=RUN_STAGES),
        stage_tables=expand(f"{RESULTS}/{{stage}}/tables", stage=RUN_STAGES),
        stage_figures=expand(f"{RESULTS}/{{stage}}/figures", stage=RUN_STAGES),
        # the CONSORT flow's ITT rows are read from the trial stage's fit (its result.json)
        results=expand(f"{RESULTS}/{{stage}}/result.json", stage=RUN_STAGES),
    output:
        index=report(
            f"{RESULTS}/report/index.html",
            caption="../report/index.rst",
            category="Report",
        ),
        provenance=f"{RESULTS}/provenance.json",
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    conda:
        "../envs/imrstats.yaml"
    params:
        # the stages skipped for want of their input tables, with the reason (common.smk: plan_stages)
        skipped=SKIPPED_STAGES,
        # written when the run starts (onstart, common.smk); a file, not a param value, so it triggers no rerun
        started_file=f"{RESULTS}/logs/run_started.txt",
    script:
        "../scripts/report.py"
