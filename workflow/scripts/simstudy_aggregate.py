# Thin adapter: replicate JSON files -> imrstats.trial.simstudy.aggregate / simstudy_section.render_simstudy_report
# -> CSV + HTML
import json

from imrstats.config import load_config
from imrstats.core.io import write_csv, write_text
from imrstats.core.logs import log_to
from imrstats.trial.simstudy import aggregate, performance_table, replicate_rows, resolve_study_config
from imrstats.trial.simstudy_section import render_simstudy_report

with log_to(snakemake.log[0]):
    study = resolve_study_config(dict(snakemake.config), load_config(snakemake.config.get("base_config")))
    replicates = [json.loads(open(path, encoding="utf-8").read()) for path in snakemake.input.replicates]
    rows = replicate_rows(replicates)
    performance = aggregate(rows, alpha=float(study["alpha"]))
    write_csv(rows, snakemake.output.replicates)
    write_csv(performance, snakemake.output.performance)
    write_csv(performance_table(performance), snakemake.output.table)
    write_text(render_simstudy_report(performance, study, replicates=rows), snakemake.output.html)
    print(performance_table(performance).to_string(index=False))
