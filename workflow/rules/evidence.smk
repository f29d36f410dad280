# The trial in the pooled evidence: src/imrstats/evidence/stage.py (run_evidence_stage), config section `evidence`.
# Reads the trial stage's result.json and tables/, the curated published rows, and the meta stage's result.json
# and posteriors/: the published-only Bayesian fits are the meta stage's, reused, not refitted (only the fits
# with the trial added are made here).


rule evidence:
    input:
        trial=rules.trial.output.json,
        trial_tables=rules.trial.output.tables,
        published=meta_inputs()["outcomes"],
        # the published studies' risk of bias and indirectness, for GRADE (evidence/grade.py)
        risk_of_bias=str(PUBLISHED / "risk_of_bias.csv"),
        indirectness=str(PUBLISHED / "indirectness.csv"),
        meta=rules.meta.output.json,
        meta_posteriors=rules.meta.output.posteriors,
    output:
        json=f"{RESULTS}/evidence/result.json",
        html=f"{RESULTS}/evidence/section.html",
        summary=f"{RESULTS}/evidence/summary.txt",
        tables=directory(f"{RESULTS}/evidence/tables"),
        figures=report(
            directory(f"{RESULTS}/evidence/figures"),
            patterns=["{name}.png"],
            caption="../report/evidence.rst",
            category="Evidence in context",
        ),
    log:
        f"{RESULTS}/logs/evidence.log",
    benchmark:
        f"{RESULTS}/benchmarks/evidence.tsv"
    # on the critical path (simulate, clean, trial, evidence, report): run before the side stages
    priority: 10
    conda:
        "../envs/imrstats.yaml"
    script:
        "../scripts/stage.py"
