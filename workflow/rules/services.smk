# Services stage: src/imrstats/services/stage.py (run_services_stage), config section `services`.


rule services:
    input:
        tables=rules.clean.output.tables,
    output:
        json=f"{RESULTS}/services/result.json",
        html=f"{RESULTS}/services/section.html",
        tables=directory(f"{RESULTS}/services/tables"),
        figures=report(
            directory(f"{RESULTS}/services/figures"),
            patterns=["{name}.png"],
            caption="../report/services.rst",
            category="Service use",
        ),
    params:
        stage="services",
        data_dir=f"{RESULTS}/data",
        out_dir=f"{RESULTS}/services",
    log:
        f"{RESULTS}/logs/services.log",
    benchmark:
        f"{RESULTS}/benchmarks/services.tsv"
    script:
        "../scripts/stage.py"
