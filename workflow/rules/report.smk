# Report stage: the report's pages and the provenance record, in one job. The front page (index.html) and one page per
# statistical stage that runs (<stage>.html, its section), in the order of STAGES (common.smk, from
# imrstats.pipeline.registry); RUN_STAGES omits those whose inputs are absent (the front page says why).


# One job writes the pages and then the provenance record (which hashes every page).
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
        # one page per stage that runs, beside the front page; every page links to every other
        pages=expand(f"{RESULTS}/report/{{stage}}.html", stage=RUN_STAGES),
        # the summary of findings and the trial's Tables 2-3 (Jensen et al. 2019 layout) for the manuscript
        docx=f"{RESULTS}/report/tables.docx",
        provenance=f"{RESULTS}/provenance.json",
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    # on the critical path (simulate, clean, trial, evidence, report): run before the side stages
    priority: 10
    conda:
        "../envs/imrstats.yaml"
    params:
        # the stages skipped for want of their input tables, with the reason (common.smk: plan_stages)
        skipped=SKIPPED_STAGES,
        # written when the run starts (onstart, common.smk); a file, not a param value, so it triggers no rerun
        started_file=f"{RESULTS}/logs/run_started.txt",
    script:
        "../scripts/report.py"
