# imrstats simulation study (scaling out on an execution profile): replicate synthetic trials, each analysed by ITT MI-MMRM as its
# own job, aggregated into bias, coverage, power and type-I error with Monte Carlo SEs.
#   snakemake -s workflow/simulation.smk --configfile config/simulation.yaml --cores 2
#   snakemake -s workflow/simulation.smk --configfile config/simulation.yaml --profile workflow/profiles/slurm --config replicates=2000
# Statistics live in src/imrstats/trial/simstudy.py; see docs/scaling.md.
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

PROJECT = Path(workflow.basedir).parent
sys.path.insert(0, str(PROJECT / "src"))

from imrstats.trial.simstudy import validate_study_config


configfile: PROJECT / "config" / "simulation.yaml"


validate_study_config(config, source="snakemake config (simulation study)")

SIM = config["results_dir"]
SCENARIOS = [s["name"] for s in config["scenarios"]]
REPS = range(int(config["replicates"]))
ANALYSIS_KEYS = (
    "outcomes",
    "estimators",
    "imputations",
    "imputation_method",
    "impute_by_arm",
    "maxit",
    "donors",
    "covariates",
    "alpha",
    "seed",
    "trial_model",
    "base_config",
)


wildcard_constraints:
    scenario="|".join(SCENARIOS),
    rep=r"\d+",


localrules:
    all,


rule all:
    default_target: True
    input:
        f"{SIM}/report.html",
        f"{SIM}/performance.csv",


def scenario_settings(wildcards):
    return next(s for s in config["scenarios"] if s["name"] == wildcards.scenario)


# One synthetic trial, cleaned and analysed. Each replicate is a job of its own (so a failure or a rerun
# touches one replicate); the `group` lets a cluster profile pack many of them into one submission
# (--group-components simstudy=N). Local runs ignore groups.
rule simstudy_replicate:
    output:
        f"{SIM}/replicates/{{scenario}}/rep{{rep}}.json",
    log:
        f"{SIM}/logs/replicates/{{scenario}}/rep{{rep}}.log",
    benchmark:
        f"{SIM}/benchmarks/replicates/{{scenario}}/rep{{rep}}.tsv"
    group:
        "simstudy"
    conda:
        "envs/imrstats.yaml"
    threads: 1
    params:
        # a change to the scenario or the analysis settings reruns the replicates it affects
        scenario=scenario_settings,
        analysis={k: config.get(k) for k in ANALYSIS_KEYS},
    script:
        "scripts/simstudy_replicate.py"


rule simstudy_aggregate:
    input:
        replicates=expand(f"{SIM}/replicates/{{scenario}}/rep{{rep}}.json", scenario=SCENARIOS, rep=REPS),
    output:
        replicates=f"{SIM}/replicates.csv",
        performance=f"{SIM}/performance.csv",
        table=f"{SIM}/performance_table.csv",
        html=report(f"{SIM}/report.html", category="Simulation study"),
    log:
        f"{SIM}/logs/aggregate.log",
    benchmark:
        f"{SIM}/benchmarks/aggregate.tsv"
    conda:
        "envs/imrstats.yaml"
    params:
        scenarios=config["scenarios"],
        replicates=config["replicates"],
    script:
        "scripts/simstudy_aggregate.py"
