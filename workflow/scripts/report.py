# Thin adapter: snakemake -> imrstats.report.index.write_index, then imrstats.core.provenance. The cleaned
# tables' folder holds the cleaning log; each stage's folder holds its declared section.html, tables/ and
# figures/; the skipped stages come with their reason (params). write_index writes the front page and one page
# per stage beside it (the rule declares them as output.pages) and the Word file of the publication tables
# (output.docx). The provenance record hashes the inputs, the
# cleaned tables, the stage records and every page just written.
from pathlib import Path

from imrstats.core.io import TABLES
from imrstats.core.logs import log_to
from imrstats.core.provenance import build_provenance, write_provenance
from imrstats.report.index import write_index

with log_to(snakemake.log[0]):
    skipped = dict(snakemake.params.skipped)
    pages = write_index(
        snakemake.config,
        Path(snakemake.input.cleaning_log).parent,
        snakemake.input.problems,
        snakemake.output.index,
        stage_dirs=[Path(section).parent for section in snakemake.input.sections],
        skipped=skipped,
        docx_path=snakemake.output.docx,
    )
    declared = [snakemake.output.index, *snakemake.output.pages]
    if sorted(map(str, pages)) != sorted(map(str, declared)):
        raise RuntimeError(f"report pages written {[str(p) for p in pages]} but the rule declares {declared}")
    inputs = [snakemake.input[t] for t in TABLES if t in snakemake.input.keys()]
    if "spec" in snakemake.input.keys():  # data.study: the spec and the export file(s) it names
        inputs = [snakemake.input.spec, *snakemake.input.export]
    outputs = [*snakemake.input.tables, *declared, snakemake.output.docx, *snakemake.input.results]
    started = Path(snakemake.params.started_file)
    started = started.read_text().strip() if started.exists() else None
    write_provenance(
        snakemake.output.provenance, build_provenance(snakemake.config, inputs, outputs, started, skipped=skipped)
    )
