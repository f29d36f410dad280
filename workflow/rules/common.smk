# Shared settings and input functions. The settings are the schema's defaults (workflow/schemas/) overlaid
# with config/config.yaml and then with --configfile / --config, checked by the library (imrstats.config,
# which also checks keys against the instrument registry); `config` is replaced by the complete settings.
import os
import sys
from pathlib import Path

# One job is one process on one core: Snakemake runs jobs side by side, so a numpy/scipy job must not also
# start a BLAS thread per core (OpenBLAS's threads spin while they wait, and two jobs' threads on two cores
# fight over them: measured 49 s -> 43 s for the default pipeline). Set before any job is started, so every
# job inherits it; a value you export yourself wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from imrstats.config import load_config
from imrstats.core.tables import TABLES, find_table_file
from imrstats.core.provenance import now_iso
from imrstats.errors import InputError
from imrstats.pipeline.plan import STAGE_NAMES, plan_stages

# A bad setting (results_dir outside the working directory, a missing or empty data.input_dir, an unknown key,
# ...) is one line naming the key and exit code 2, before the DAG is built and before any file is written.
try:
    _settings = load_config(overrides=config, source="snakemake config (config/config.yaml + --configfile / --config)")
    _source = _settings["data"]["source"]
    if _source == "synthetic":
        _found = list(TABLES)
    elif _source == "study":  # a study spec maps the user's export to participants and assessments
        _found = ["participants", "assessments"]
    else:
        _found = [t for t in TABLES if find_table_file(_settings["data"]["input_dir"], t) is not None]
except InputError as _error:
    print("imrstats: " + "; ".join(s.strip() for s in str(_error).splitlines() if s.strip()), file=sys.stderr)
    sys.exit(2)
config.clear()
config.update(_settings)

RESULTS = config["results_dir"]
# the statistical stages in the order of the report: the one list (imrstats.pipeline.registry.PIPELINE)
STAGES = list(STAGE_NAMES)
# the stages whose inputs exist (the others are skipped, each with its reason, on the front page and in
# provenance.json): a trial-only folder runs trial, meta, evidence and audit
RUN_STAGES, SKIPPED_STAGES = plan_stages(
    _found, "mapped by the study spec" if config["data"]["source"] == "study" else "in the input folder"
)
# the cleaned tables: one per input table found, and the item-level scores when there are assessments
CLEAN_TABLES = [*_found, *(["assessment_items"] if "assessments" in _found else [])]
# the shipped published data, named relative to the working directory when it lies inside it, so that no
# absolute path (which differs between clones) reaches a stage's settings record
PUBLISHED = Path(workflow.basedir, "data", "published").resolve()
if PUBLISHED.is_relative_to(Path.cwd().resolve()):
    PUBLISHED = PUBLISHED.relative_to(Path.cwd().resolve())


onstart:
    # when this invocation started, for provenance.json (a file, not a param, so it triggers no rerun)
    Path(RESULTS, "logs").mkdir(parents=True, exist_ok=True)
    Path(RESULTS, "logs", "run_started.txt").write_text(now_iso() + "\n")
    for _stage, _why in SKIPPED_STAGES.items():
        print(f"imrstats: stage {_stage} skipped: {_why}", file=sys.stderr)


def input_tables(wildcards=None):
    """The input files: the four canonical tables, generated (synthetic) or the user's own (directory); or a
    study spec and the export file(s) it names (study)."""
    if config["data"]["source"] == "synthetic":
        return {t: f"{RESULTS}/input/{t}.csv" for t in TABLES}
    if config["data"]["source"] == "study":
        from imrstats.data.study import spec_files

        return {"spec": config["data"]["study"], "export": [str(p) for p in spec_files(config["data"]["study"])]}
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
