# Trial stage: src/imrstats/trial/stage.py (run_trial_stage), config section `trial`.
# One job for all outcomes: the imputation and MMRM engines are fast, and a process per outcome would
# spend more time importing than computing.


rule trial:
    input:
        tables=rules.clean.output.tables,
    output:
        json=f"{RESULTS}/trial/result.json",
        html=f"{RESULTS}/trial/section.html",
        summary=f"{RESULTS}/trial/summary.txt",
        tables=directory(f"{RESULTS}/trial/tables"),
        figures=report(
            directory(f"{RESULTS}/trial/figures"),
            patterns=["{name}.png"],
            caption="../report/trial.rst",
            category="Trial",
        ),
    log:
        f"{RESULTS}/logs/trial.log",
    benchmark:
        f"{RESULTS}/benchmarks/trial.tsv"
    # on the critical path (simulate, clean, trial, evidence, report): run before the side stages
    priority: 10
    conda:
        "../envs/imrstats.yaml"
    script:
        "../scripts/stage.py"
