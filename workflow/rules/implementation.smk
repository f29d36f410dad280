# Implementation stage: src/imrstats/implementation/stage.py (run_implementation_stage), config section `implementation`.


rule implementation:
    input:
        tables=rules.clean.output.tables,
    output:
        json=f"{RESULTS}/implementation/result.json",
        html=f"{RESULTS}/implementation/section.html",
        summary=f"{RESULTS}/implementation/summary.txt",
        tables=directory(f"{RESULTS}/implementation/tables"),
        figures=report(
            directory(f"{RESULTS}/implementation/figures"),
            patterns=["{name}.png"],
            caption="../report/implementation.rst",
            category="Implementation",
        ),
    log:
        f"{RESULTS}/logs/implementation.log",
    benchmark:
        f"{RESULTS}/benchmarks/implementation.tsv"
    conda:
        "../envs/imrstats.yaml"
    script:
        "../scripts/stage.py"
