# Data stage: synthetic inputs (default), check, clean.


rule simulate:
    output:
        expand(f"{RESULTS}/input/{{table}}.csv", table=TABLES),
    log:
        f"{RESULTS}/logs/simulate.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate.tsv"
    conda:
        "../envs/imrstats.yaml"
    script:
        "../scripts/simulate.py"


rule check:
    input:
        unpack(input_tables),
    output:
        problems=report(
            f"{RESULTS}/checks/problems.csv",
            caption="../report/problems.rst",
            category="Data",
        ),
    log:
        f"{RESULTS}/logs/check.log",
    benchmark:
        f"{RESULTS}/benchmarks/check.tsv"
    conda:
        "../envs/imrstats.yaml"
    script:
        "../scripts/check.py"


rule clean:
    input:
        unpack(input_tables),
        problems=f"{RESULTS}/checks/problems.csv",
    output:
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
    conda:
        "../envs/imrstats.yaml"
    script:
        "../scripts/clean.py"
