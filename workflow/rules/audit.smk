# Audit of published numbers: src/imrstats/audit/checks.py (run_audit_stage), config section `audit`.


def audit_inputs(wildcards=None):
    base = Path(workflow.basedir) / "data" / "published"
    return config["audit"]["inputs"] or [str(base / "published_outcomes.csv"), str(base / "audit_cases.csv")]


rule audit:
    input:
        audit_inputs,
    output:
        json=f"{RESULTS}/audit/result.json",
        html=f"{RESULTS}/audit/section.html",
        tables=report(
            directory(f"{RESULTS}/audit/tables"),
            patterns=["{name}.csv"],
            caption="../report/audit.rst",
            category="Audit",
        ),
        figures=directory(f"{RESULTS}/audit/figures"),
    params:
        stage="audit",
        data_dir=f"{RESULTS}/data",
        out_dir=f"{RESULTS}/audit",
    log:
        f"{RESULTS}/logs/audit.log",
    benchmark:
        f"{RESULTS}/benchmarks/audit.tsv"
    script:
        "../scripts/stage.py"
