# Audit of published numbers: src/imrstats/audit/stage.py (run_audit_stage), config section `audit`.
# Checks the CSVs of audit.inputs, else the curated published rows and the shipped audit cases (common.smk).


rule audit:
    input:
        csv=audit_inputs,
    output:
        json=f"{RESULTS}/audit/result.json",
        html=f"{RESULTS}/audit/section.html",
        summary=f"{RESULTS}/audit/summary.txt",
        tables=report(
            directory(f"{RESULTS}/audit/tables"),
            patterns=["{name}.csv"],
            caption="../report/audit.rst",
            category="Audit",
        ),
        figures=directory(f"{RESULTS}/audit/figures"),
    log:
        f"{RESULTS}/logs/audit.log",
    benchmark:
        f"{RESULTS}/benchmarks/audit.tsv"
    conda:
        "../envs/imrstats.yaml"
    script:
        "../scripts/stage.py"
