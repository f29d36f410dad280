# Thin adapter: snakemake -> imrstats.report.index.write_index. The cleaned tables' folder holds the cleaning
# log; each stage's folder holds its declared section.html, tables/ and figures/; the skipped stages come with
# their reason (params).
from pathlib import Path

from imrstats.core.logs import log_to
from imrstats.report.index import write_index

with log_to(snakemake.log[0]):
    write_index(
        snakemake.config,
        Path(snakemake.input.cleaning_log).parent,
        snakemake.input.problems,
        snakemake.output[0],
        stage_dirs=[Path(section).parent for section in snakemake.input.sections],
        skipped=dict(snakemake.params.skipped),
    )
