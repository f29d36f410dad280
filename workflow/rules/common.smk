# Shared settings and input functions. The config is validated against workflow/schemas/ by the library
# (imrstats.config.validate_config), which also checks keys against the instrument registry.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from imrstats.config import validate_config
from imrstats.core.io import TABLES, find_table_file
from imrstats.core.provenance import now_iso

validate_config(config, source="snakemake config")

RESULTS = config["results_dir"]


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
