# Data stage: synthetic inputs (default), then check and clean.


rule simulate:
    output:
        expand(f"{RESULTS}/input/{{table}}.csv", table=TABLES),
    log:
        f"{RESULTS}/logs/simulate.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate.tsv"
    # on the critical path (simulate, clean, trial, evidence, report): run before the side stages
    priority: 10
    conda:
        "../envs/imrstats.yaml"
    script:
        "../scripts/simulate.py"


# One job checks and then cleans (a process each would spend more time importing than working): the check's
# problem list is written first, and any error stops the run before anything is cleaned.
rule clean:
    input:
        unpack(input_tables),
    output:
        problems=report(
            f"{RESULTS}/checks/problems.csv",
            caption="../report/problems.rst",
            category="Data",
        ),
        tables=expand(f"{RESULTS}/data/{{table}}.parquet", table=CLEAN_TABLES),
        log=report(
            f"{RESULTS}/data/cleaning_log.csv",
            caption="../report/cleaning_log.rst",
            category="Data",
        ),
    log:
        f"{RESULTS}/logs/clean.log",
    benchmark:
        f"{RESULTS}/benchmarks/clean.tsv"
    # on the critical path (simulate, clean, trial, evidence, report): run before the side stages
    priority: 10
    conda:
        "../envs/imrstats.yaml"
    script:
        "../scripts/clean.py"
