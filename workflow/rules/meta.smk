# Meta-analysis stage: src/imrstats/meta/stage.py (run_meta_stage), config section `meta`.
# Reads the curated, cited published data (data/published/ or the paths in config), not the trial tables.


def meta_inputs(wildcards=None):
    base = Path(workflow.basedir) / "data" / "published"
    return {
        "outcomes": config["meta"]["published_outcomes"] or str(base / "published_outcomes.csv"),
        "rates": config["meta"]["implementation_rates"] or str(base / "implementation_rates.csv"),
    }


rule meta:
    input:
        unpack(meta_inputs),
    output:
        json=f"{RESULTS}/meta/result.json",
        html=f"{RESULTS}/meta/section.html",
        tables=directory(f"{RESULTS}/meta/tables"),
        figures=report(
            directory(f"{RESULTS}/meta/figures"),
            patterns=["{name}.png"],
            caption="../report/meta.rst",
            category="Meta-analysis",
        ),
    params:
        stage="meta",
        data_dir=f"{RESULTS}/data",
        out_dir=f"{RESULTS}/meta",
    log:
        f"{RESULTS}/logs/meta.log",
    benchmark:
        f"{RESULTS}/benchmarks/meta.tsv"
    script:
        "../scripts/stage.py"
