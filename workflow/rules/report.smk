# Report stage: the front page and the provenance record. Each statistical stage adds its section.
# The order of the report's sections.
def _has_rule(name):
    try:
        getattr(rules, name)
        return True
    except Exception:  # snakemake raises WorkflowError for an unknown rule
        return False


STAGES_IN_REPORT = [s for s in ("trial", "services", "meta", "evidence", "implementation", "audit") if _has_rule(s)]


rule report_index:
    input:
        tables=rules.clean.output.tables,
        cleaning_log=rules.clean.output.log,
        problems=rules.check.output.problems,
        sections=expand(f"{RESULTS}/{{stage}}/section.html", stage=STAGES_IN_REPORT),
    output:
        report(
            f"{RESULTS}/report/index.html",
            caption="../report/index.rst",
            category="Report",
        ),
    params:
        stage_dirs=expand(f"{RESULTS}/{{stage}}", stage=STAGES_IN_REPORT),
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
        results=expand(f"{RESULTS}/{{stage}}/result.json", stage=STAGES_IN_REPORT),
    output:
        f"{RESULTS}/provenance.json",
    params:
        started_file=f"{RESULTS}/logs/run_started.txt",
    log:
        f"{RESULTS}/logs/provenance.log",
    script:
        "../scripts/provenance.py"
