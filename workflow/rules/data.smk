# Data stage: synthetic inputs (default), check, clean.


rule simulate:
    output:
        expand(f"{RESULTS}/input/{{table}}.csv", table=TABLES),
    params:
        out_dir=f"{RESULTS}/input",
    log:
        f"{RESULTS}/logs/simulate.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate.tsv"
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
    script:
        "../scripts/check.py"


rule clean:
    input:
        unpack(input_tables),
        problems=f"{RESULTS}/checks/problems.csv",
    output:
        tables=expand(f"{RESULTS}/data/{{table}}.parquet", table=[*TABLES, "assessment_items"]),
        log=report(
            f"{RESULTS}/data/cleaning_log.csv",
            caption="../report/cleaning_log.rst",
            category="Data",
        ),
    params:
        out_dir=f"{RESULTS}/data",
    log:
        f"{RESULTS}/logs/clean.log",
    benchmark:
        f"{RESULTS}/benchmarks/clean.tsv"
    script:
        "../scripts/clean.py"
