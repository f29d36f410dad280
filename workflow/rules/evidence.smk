# The trial in the pooled evidence: src/imrstats/evidence/stage.py (run_evidence_stage), config section `evidence`.


rule evidence:
    input:
        trial=rules.trial.output.json,
        trial_tables=rules.trial.output.tables,
        published=lambda wildcards: meta_inputs()["outcomes"],
    output:
        json=f"{RESULTS}/evidence/result.json",
        html=f"{RESULTS}/evidence/section.html",
        tables=directory(f"{RESULTS}/evidence/tables"),
        figures=report(
            directory(f"{RESULTS}/evidence/figures"),
            patterns=["{name}.png"],
            caption="../report/evidence.rst",
            category="Evidence in context",
        ),
    params:
        stage="evidence",
        data_dir=f"{RESULTS}/data",
        out_dir=f"{RESULTS}/evidence",
    log:
        f"{RESULTS}/logs/evidence.log",
    benchmark:
        f"{RESULTS}/benchmarks/evidence.tsv"
    script:
        "../scripts/stage.py"
