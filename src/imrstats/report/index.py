"""The HTML report's front page. Aggregates only: counts, shares and means, never a participant's row.

Each statistical stage adds its section as it lands; until then the page says which stages are pending.
Every table shown is also written as CSV beside the report (results/report/tables/).
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from imrstats.trial.consort import baseline_table, consort_counts, consort_figure
from imrstats.data.stage import read_clean
from imrstats.data.instruments import TRIAL_OUTCOMES, load_registry
from imrstats.core.io import write_csv, write_text
from imrstats.core.provenance import package_versions

PENDING_STAGES = [
    ("trial", "Trial", "ITT MMRM with multiple imputation, complete case, per protocol, subgroups, MNAR sensitivity"),
    ("services", "Service use", "Poisson, negative binomial, zero-inflated and hurdle models"),
    ("meta", "Meta-analysis", "effect sizes, frequentist random effects, Bayesian pooling"),
    ("evidence", "Evidence in context", "the trial's result within the published evidence"),
    ("implementation", "Implementation", "programme registry descriptives"),
]


def data_summary(tables: dict[str, pd.DataFrame], primary: dict | None = None) -> dict[str, pd.DataFrame]:
    """Aggregate tables describing the cleaned data: allocation, follow-up, outcome completeness."""
    out = {}
    part = tables["participants"]
    registry = load_registry()
    primary = primary or {"outcome": "gaf_f", "timepoint": "post"}
    out["consort_flow"] = consort_counts(part, tables["assessments"], primary=primary["outcome"],
                                         primary_timepoint=primary["timepoint"])
    out["baseline"] = baseline_table(part, tables["assessments"], TRIAL_OUTCOMES,
                                     {k: registry[k].short for k in TRIAL_OUTCOMES})
    out["allocation"] = (part.groupby(["site", "arm"]).size().unstack("arm", fill_value=0)
                         .rename_axis(None, axis=1).reset_index())
    assess = tables["assessments"].merge(part[["id", "arm"]], on="id")
    registry = load_registry()
    rows = []
    for key in TRIAL_OUTCOMES:
        sub = assess[(assess["instrument"] == key) & assess["score"].notna()]
        row = {"instrument": registry[key].short, "range": registry[key].range_text,
               "direction": registry[key].direction_text}
        for tp in ("baseline", "post", "fu12"):
            for arm in ("IMR", "TAU"):
                vals = sub[(sub["timepoint"] == tp) & (sub["arm"] == arm)]["score"]
                row[f"{tp} {arm} n"] = int(vals.size)
                row[f"{tp} {arm} mean (SD)"] = f"{vals.mean():.1f} ({vals.std():.1f})" if vals.size > 1 else ""
        rows.append(row)
    out["outcomes_observed"] = pd.DataFrame(rows)
    if "service_use" in tables:
        su = tables["service_use"].merge(part[["id", "arm"]], on="id")
        out["service_use"] = (su.groupby(["period", "arm"])[["admissions", "bed_days", "er_visits", "outpatient_contacts"]]
                              .mean().round(2).reset_index())
    if "programme" in tables:
        out["programme"] = tables["programme"].groupby("service_type").size().rename("participants").reset_index()
    return out


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, classes="tbl", na_rep="", escape=True)


def _consort_img(counts: pd.DataFrame) -> str:
    """The CONSORT flow diagram as an embedded PNG (no file beside the report is needed)."""
    import io as _io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = consort_figure(counts)
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<figure><img src='data:image/png;base64,{data}' alt='CONSORT flow diagram'><figcaption>Participant flow " \
           "by arm (CONSORT), from the data.</figcaption></figure>"


def _wrap_wide_tables(html_text: str) -> str:
    """Let wide tables scroll sideways inside the page instead of running past it."""
    return re.sub(r"(<table[^>]*>.*?</table>)", r"<div class='scroll'>\1</div>", html_text, flags=re.S)


def render_index(config: dict, summary: dict[str, pd.DataFrame], problems: pd.DataFrame, log: pd.DataFrame,
                 sections: list[str] = (), done: set[str] = frozenset()) -> str:
    esc = html.escape
    n_err = int((problems["severity"] == "error").sum()) if not problems.empty else 0
    n_warn = int((problems["severity"] == "warning").sum()) if not problems.empty else 0
    rules = (log["rule"].str.replace(r"\d+", "N", regex=True).value_counts().rename_axis("rule").rename("values")
             .reset_index()) if not log.empty else pd.DataFrame(columns=["rule", "values"])
    versions = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    body = [
        "<h2>What was run</h2>",
        f"<p>Data source: <b>{esc(config['data']['source'])}</b>"
        + (" (synthetic trial calibrated to Jensen et al. 2019; programme registry calibrated to the Ferrara study)"
           if config["data"]["source"] == "synthetic" else f" ({esc(str(config['data']['input_dir']))})")
        + f". Master seed {int(config['seed'])}. Input hashes, the full configuration, seeds and versions are in "
        "<code>results/provenance.json</code>.</p>",
        f"<p class='small'>Packages: {esc(versions)}</p>",
        "<h2>Input check</h2>",
        f"<p>{n_err} errors, {n_warn} warnings (method: <code>imrstats check</code> against "
        "workflow/schemas/tables.schema.yaml and config/instruments.yaml).</p>",
        "<h2>Cleaning</h2>",
        "<p>Changes and derived values by rule (method: <code>imrstats clean</code>; the full log is "
        "<code>results/data/cleaning_log.csv</code>).</p>", _table_html(rules),
        "<h2>Participant flow (CONSORT)</h2>",
        "<p>Counted from the data: an IMR participant received the intervention with at least one session attended; "
        "assessed means at least one outcome observed at that visit; intention to treat analyses everyone randomised "
        "(missing outcomes multiply imputed); complete case counts the primary outcome observed.</p>",
        _consort_img(summary["consort_flow"]),
        _table_html(summary["consort_flow"]),
        "<h2>Baseline characteristics</h2>",
        "<p>By arm, as seed 003's Table 2: n (%) or mean (SD), and for outcomes the number observed [n].</p>",
        _table_html(summary["baseline"]),
        "<h2>Allocation by site</h2>", _table_html(summary["allocation"]),
        "<h2>Outcomes observed</h2>",
        "<p>Observed n and mean (SD) per arm and timepoint (complete cases, no model).</p>",
        _table_html(summary["outcomes_observed"]),
    ]
    if "service_use" in summary:
        body += ["<h2>Service use</h2>", "<p>Mean counts per participant and period (no model).</p>",
                     _table_html(summary["service_use"])]
    if "programme" in summary:
        body += ["<h2>Programme registry</h2>", _table_html(summary["programme"])]
    stage_html = list(sections)
    sections = [*body, *stage_html]
    pending = [(name, what) for key, name, what in PENDING_STAGES if key not in done]
    if pending:
        sections += ["<h2>Stages not yet in this pipeline</h2>", "<ul>"]
        sections += [f"<li><b>{esc(name)}</b>: {esc(what)}</li>" for name, what in pending]
        sections += ["</ul>"]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             ".tbl{border-collapse:collapse;font-size:0.85em;margin:0.5em 0 1.5em}"
             ".tbl td,.tbl th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
             ".small{font-size:0.8em;color:#555}.method{font-size:0.8em;color:#555;margin-top:-1em}"
             ".caption{font-weight:bold;margin-bottom:0.2em}"
             ".flag{background:#fff3cd;border:1px solid #e0b000;padding:0.5em 1em;margin:1em 0}"
             "figure{margin:1em 0}figure img{max-width:100%}figcaption{font-size:0.85em;color:#444}"
             ".scroll{overflow-x:auto;max-width:100%}")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>imrstats report</title>"
            f"<style>{style}</style></head><body><h1>imrstats report</h1>\n" + _wrap_wide_tables("\n".join(sections))
            + "\n</body></html>\n")


def embed_figures(section: str, stage_dir: Path) -> str:
    """Replace figures/<name>.png references by data URIs, so the report is one self-contained file."""
    def inline(match):
        path = stage_dir / "figures" / match.group(1)
        if not path.exists():
            return match.group(0)
        return "src='data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii") + "'"

    return re.sub(r"src='figures/([^']+\.png)'", inline, section)


def stage_sections(stage_dirs: list[str | Path]) -> tuple[list[str], set[str]]:
    """HTML sections of the stages that ran, figures embedded; and the names of those stages."""
    sections, done = [], set()
    for stage_dir in map(Path, stage_dirs):
        html_file = stage_dir / "section.html"
        if html_file.exists():
            sections.append(f"<section id='{stage_dir.name}'>" + embed_figures(html_file.read_text(), stage_dir)
                            + "</section>")
            done.add(stage_dir.name)
    return sections, done


def write_index(config: dict, data_dir: str | Path, problems_csv: str | Path, out_path: str | Path,
                stage_dirs: list[str | Path] = ()) -> None:
    tables = read_clean(data_dir)
    summary = data_summary(tables, config.get("trial", {}).get("primary"))
    problems = pd.read_csv(problems_csv, dtype=str)
    log = pd.read_csv(Path(data_dir) / "cleaning_log.csv", dtype=str)
    out_path = Path(out_path)
    for name, frame in summary.items():
        write_csv(frame, out_path.parent / "tables" / f"data_{name}.csv")
    for stage_dir in map(Path, stage_dirs):
        for csv in sorted((stage_dir / "tables").glob("*.csv")):
            target = out_path.parent / "tables" / f"{stage_dir.name}_{csv.name}"
            write_text(csv.read_text(), target)
    sections, done = stage_sections(stage_dirs)
    write_text(render_index(config, summary, problems, log, sections, done), out_path)
