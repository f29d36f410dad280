# Report stage: the front page and the provenance record. Each statistical stage adds its section.


rule report_index:
    input:
        tables=rules.clean.output.tables,
        cleaning_log=rules.clean.output.log,
        problems=rules.check.output.problems,
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
    script:
        "../scripts/report_index.py"


rule provenance:
    input:
        unpack(input_tables),
        report=f"{RESULTS}/report/index.html",
        tables=rules.clean.output.tables,
    output:
        f"{RESULTS}/provenance.json",
    params:
        started_file=f"{RESULTS}/logs/run_started.txt",
    log:
        f"{RESULTS}/logs/provenance.log",
    script:
        "../scripts/provenance.py"
