# Thin adapter: snakemake -> imrstats.trial.simstudy.run_replicate -> one JSON file per replicate
import json

from imrstats.config import load_config
from imrstats.core.io import write_text
from imrstats.core.logs import log_to
from imrstats.trial.simstudy import resolve_study_config, run_replicate

with log_to(snakemake.log[0]):
    study = resolve_study_config(dict(snakemake.config), load_config(snakemake.config.get("base_config")))
    result = run_replicate(study, snakemake.wildcards.scenario, int(snakemake.wildcards.rep), int(study["seed"]))
    errors = sorted({row["error"] for row in result["rows"] if row["error"]})
    print(
        f"{result['scenario']} replicate {result['rep']} (seed {result['seed']}): "
        f"{len(result['rows'])} estimates, {len(errors)} failed analyses {errors}"
    )
    write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", snakemake.output[0])
