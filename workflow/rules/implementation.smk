# Implementation stage: src/imrstats/implementation/stage.py (run_implementation_stage), config section `implementation`.


rule implementation:
    input:
        tables=rules.clean.output.tables,
    output:
        json=f"{RESULTS}/implementation/result.json",
        html=f"{RESULTS}/implementation/section.html",
        tables=directory(f"{RESULTS}/implementation/tables"),
        figures=report(
            directory(f"{RESULTS}/implementation/figures"),
            patterns=["{name}.png"],
            caption="../report/implementation.rst",
            category="Implementation",
        ),
    params:
        stage="implementation",
        data_dir=f"{RESULTS}/data",
        out_dir=f"{RESULTS}/implementation",
    log:
        f"{RESULTS}/logs/implementation.log",
    benchmark:
        f"{RESULTS}/benchmarks/implementation.tsv"
    script:
        "../scripts/stage.py"
