# Shared settings and input functions. The settings are the schema's defaults (workflow/schemas/) overlaid
# with config/config.yaml and then with --configfile / --config, checked by the library (imrstats.config,
# which also checks keys against the instrument registry); `config` is replaced by the complete settings.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from imrstats.config import load_config
from imrstats.core.io import TABLES, find_table_file
from imrstats.core.provenance import now_iso
from imrstats.pipeline.registry import STAGE_NAMES

_settings = load_config(overrides=config, source="snakemake config (config/config.yaml + --configfile / --config)")
config.clear()
config.update(_settings)

RESULTS = config["results_dir"]
# the statistical stages in the order of the report: the one list (imrstats.pipeline.registry.PIPELINE)
STAGES = list(STAGE_NAMES)
PUBLISHED = Path(workflow.basedir) / "data" / "published"


onstart:
    # when this invocation started, for provenance.json (a file, not a param, so it triggers no rerun)
    Path(RESULTS, "logs").mkdir(parents=True, exist_ok=True)
    Path(RESULTS, "logs", "run_started.txt").write_text(now_iso() + "\n")


def input_tables(wildcards=None):
    """The four canonical input files: generated (synthetic) or the user's own (directory)."""
    if config["data"]["source"] == "synthetic":
        return {t: f"{RESULTS}/input/{t}.csv" for t in TABLES}
    found = {t: find_table_file(config["data"]["input_dir"], t) for t in TABLES}
    return {t: str(p) for t, p in found.items() if p is not None}


def meta_inputs(wildcards=None):
    """The meta stage's curated, cited published data: the paths in config, else data/published/."""
    return {
        "outcomes": config["meta"]["published_outcomes"] or str(PUBLISHED / "published_outcomes.csv"),
        "rates": config["meta"]["implementation_rates"] or str(PUBLISHED / "implementation_rates.csv"),
    }


def audit_inputs(wildcards=None):
    """The CSVs the audit checks: audit.inputs, else the curated published rows and the shipped audit cases."""
    return config["audit"]["inputs"] or [str(PUBLISHED / "published_outcomes.csv"), str(PUBLISHED / "audit_cases.csv")]
