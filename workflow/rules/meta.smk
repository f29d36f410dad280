# Meta-analysis stage: src/imrstats/meta/stage.py (run_meta_stage), config section `meta`.
# Reads the curated, cited published data (data/published/ or the paths in config; common.smk: meta_inputs),
# not the trial tables. Writes the main posteriors as netCDF under posteriors/ (empty with Bayes off).


rule meta:
    input:
        unpack(meta_inputs),
    output:
        json=f"{RESULTS}/meta/result.json",
        html=f"{RESULTS}/meta/section.html",
        summary=f"{RESULTS}/meta/summary.txt",
        tables=directory(f"{RESULTS}/meta/tables"),
        figures=report(
            directory(f"{RESULTS}/meta/figures"),
            patterns=["{name}.png"],
            caption="../report/meta.rst",
            category="Meta-analysis",
        ),
        posteriors=directory(f"{RESULTS}/meta/posteriors"),
    log:
        f"{RESULTS}/logs/meta.log",
    benchmark:
        f"{RESULTS}/benchmarks/meta.tsv"
    conda:
        "../envs/imrstats.yaml"
    script:
        "../scripts/stage.py"
