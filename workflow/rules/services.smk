# Services stage: src/imrstats/services/stage.py (run_services_stage), config section `services`.


rule services:
    input:
        tables=rules.clean.output.tables,
    output:
        json=f"{RESULTS}/services/result.json",
        html=f"{RESULTS}/services/section.html",
        summary=f"{RESULTS}/services/summary.txt",
        tables=directory(f"{RESULTS}/services/tables"),
        figures=report(
            directory(f"{RESULTS}/services/figures"),
            patterns=["{name}.png"],
            caption="../report/services.rst",
            category="Service use",
        ),
    log:
        f"{RESULTS}/logs/services.log",
    benchmark:
        f"{RESULTS}/benchmarks/services.tsv"
    conda:
        "../envs/imrstats.yaml"
    script:
        "../scripts/stage.py"
