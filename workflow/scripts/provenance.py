# Thin adapter: snakemake -> imrstats.core.provenance
from pathlib import Path

from imrstats.core.io import TABLES
from imrstats.core.logs import log_to
from imrstats.core.provenance import build_provenance, write_provenance

with log_to(snakemake.log[0]):
    inputs = [snakemake.input[t] for t in TABLES if t in snakemake.input.keys()]
    outputs = [*snakemake.input.tables, snakemake.input.report, *snakemake.input.results]
    started = Path(snakemake.params.started_file)
    started = started.read_text().strip() if started.exists() else None
    record = build_provenance(snakemake.config, inputs, outputs, started, skipped=dict(snakemake.params.skipped))
    write_provenance(snakemake.output[0], record)
