"""The HTML report's front page. Aggregates only: counts, shares and means, never a participant's row.

The trial's part of the page (CONSORT flow, baseline table, allocation, outcomes observed) follows the study
design of the config's ``trial`` section (`imrstats.trial.design.StudyDesign`: arms, visits and their labels),
its ``outcomes`` and the instrument registry extended by ``trial.instruments`` (`imrstats.config.trial_instruments`);
the default is the IMR trial's. Each statistical stage adds its section as it lands; until then the page says
which stages are pending. Every table shown is also written as CSV beside the report (results/report/tables/).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pandas as pd

from imrstats.config import trial_instruments
from imrstats.core.io import write_csv, write_text
from imrstats.core.provenance import package_versions
from imrstats.data.instruments import TRIAL_OUTCOMES, Instrument
from imrstats.data.stage import read_clean
from imrstats.errors import SettingsError
from imrstats.pipeline.registry import PIPELINE
from imrstats.report.figures import png_bytes
from imrstats.report.html import render_template
from imrstats.trial.consort import baseline_table, consort_counts, consort_figure
from imrstats.trial.design import StudyDesign

# (name, title, what it does) of every statistical stage, from the pipeline's one stage list
PENDING_STAGES = [(stage.name, stage.title, stage.what) for stage in PIPELINE]


def trial_outcomes(trial: dict | None) -> tuple[str, ...]:
    """The trial's outcomes as the config's ``trial.outcomes`` lists them (default: the IMR trial's eleven,
    `imrstats.data.instruments.TRIAL_OUTCOMES`)."""
    return tuple(str(k) for k in ((trial or {}).get("outcomes") or TRIAL_OUTCOMES))


def trial_primary(trial: dict | None, design: StudyDesign | None = None) -> dict:
    """The primary outcome and its visit (``trial.primary``); unset, the first of ``trial.outcomes`` at the
    design's first post-baseline visit (the IMR trial: GAF-F post-intervention)."""
    trial = trial or {}
    design = StudyDesign.from_settings(trial) if design is None else design
    primary = trial.get("primary") or {}
    return {
        "outcome": str(primary.get("outcome") or trial_outcomes(trial)[0]),
        "timepoint": str(primary.get("timepoint") or design.visits[0]),
    }


def outcome_instruments(outcomes, registry: dict[str, Instrument]) -> dict[str, Instrument]:
    """Each outcome's registry entry; an outcome that neither the registry nor ``trial.instruments`` holds is a
    `SettingsError` naming ``trial.outcomes``."""
    unknown = [key for key in outcomes if key not in registry]
    if unknown:
        raise SettingsError(
            [
                (
                    "trial.outcomes",
                    f"{', '.join(map(repr, unknown))} not in the instrument registry (config/instruments.yaml) "
                    "nor declared under trial.instruments",
                )
            ]
        )
    return {key: registry[key] for key in outcomes}


def data_summary(
    tables: dict[str, pd.DataFrame],
    primary: dict | None = None,
    itt: dict | None = None,
    trial: dict | None = None,
) -> dict[str, pd.DataFrame]:
    """Aggregate tables describing the cleaned data: allocation, follow-up, outcome completeness; the CONSORT
    flow's ITT rows from ``itt``, the trial stage's ITT record of the primary outcome (`primary_itt_record`).
    ``trial``: the config's trial section (default the IMR trial's): its design (arms, visits, labels;
    `StudyDesign.from_settings`), ``outcomes`` and ``instruments``; ``primary`` (default ``trial.primary``,
    `trial_primary`). Arms and visits are headed by their labels. Without participants and assessments (an
    input folder of a programme registry alone) only the tables of what is there."""
    out = {}
    if not {"participants", "assessments"} <= tables.keys():
        return _programme_summary(tables, out)
    trial = trial or {}
    design = StudyDesign.from_settings(trial)
    outcomes = trial_outcomes(trial)
    instruments = outcome_instruments(outcomes, trial_instruments(trial))
    primary = {**trial_primary(trial, design), **(primary or {})}
    part = tables["participants"]
    arms = design.arms
    label = {arm: design.arm_label(arm) for arm in arms}
    out["consort_flow"] = consort_counts(
        part,
        tables["assessments"],
        primary=primary["outcome"],
        primary_timepoint=primary["timepoint"],
        itt=itt,
        design=design,
    )
    out["baseline"] = baseline_table(
        part, tables["assessments"], outcomes, {k: inst.short for k, inst in instruments.items()}, design=design
    )
    allocation = part.groupby(["site", "arm"]).size().unstack("arm", fill_value=0)
    # the design's arms first (intervention, control), any other arm code in the data after them, never dropped
    allocation = allocation.reindex(
        columns=[*arms, *sorted(c for c in allocation.columns if c not in arms)], fill_value=0
    )
    out["allocation"] = allocation.rename(columns=label).rename_axis(None, axis=1).reset_index()
    assess = tables["assessments"].merge(part[["id", "arm"]], on="id")
    rows = []
    for key, inst in instruments.items():
        sub = assess[(assess["instrument"] == key) & assess["score"].notna()]
        row = {"instrument": inst.short, "range": inst.range_text, "direction": inst.direction_text}
        for tp in design.all_visits:
            for arm in arms:
                vals = sub[(sub["timepoint"] == tp) & (sub["arm"] == arm)]["score"]
                head = f"{design.visit_label(tp)} {label[arm]}"
                row[f"{head} n"] = int(vals.size)
                row[f"{head} mean (SD)"] = f"{vals.mean():.1f} ({vals.std():.1f})" if vals.size > 1 else ""
        rows.append(row)
    out["outcomes_observed"] = pd.DataFrame(rows)
    if "service_use" in tables:
        su = tables["service_use"].merge(part[["id", "arm"]], on="id")
        su["arm"] = su["arm"].map(lambda arm: label.get(arm, arm))
        out["service_use"] = (
            su.groupby(["period", "arm"])[["admissions", "bed_days", "er_visits", "outpatient_contacts"]]
            .mean()
            .round(2)
            .reset_index()
        )
    return _programme_summary(tables, out)


def _programme_summary(tables: dict[str, pd.DataFrame], out: dict) -> dict:
    if "programme" in tables:
        out["programme"] = tables["programme"].groupby("service_type").size().rename("participants").reset_index()
    return out


def _consort_png(counts: pd.DataFrame, design: StudyDesign) -> str:
    """The CONSORT flow diagram as base64 PNG text, embedded in the page (no file beside the report is needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = consort_figure(counts, design)
    data = png_bytes(fig, dpi=100)

    plt.close(fig)
    return base64.b64encode(data).decode("ascii")


def _wrap_wide_tables(html_text: str) -> str:
    """Let wide tables scroll sideways inside the page instead of running past it."""
    return re.sub(r"(<table[^>]*>.*?</table>)", r"<div class='scroll'>\1</div>", html_text, flags=re.S)


def shown_path(path: str | Path | None) -> str:
    """A path as the report shows it: relative to the working directory when it lies inside it, else only its
    name; never an absolute path of the machine that made the report."""
    if path is None:
        return ""
    try:
        resolved, here = Path(path).resolve(), Path.cwd().resolve()
    except (OSError, RuntimeError):
        return Path(path).name
    if resolved == here:
        return "."
    if here in resolved.parents:
        return str(resolved.relative_to(here))
    return resolved.name or Path(path).name


def with_article(label: str) -> str:
    """A label with its indefinite article as prose reads it: "an IMR", "an Active", "a Drug"."""
    return f"{'an' if label[:1].lower() in 'aeiou' else 'a'} {label}"


def render_index(
    config: dict,
    summary: dict[str, pd.DataFrame],
    problems: pd.DataFrame,
    log: pd.DataFrame,
    sections: list[str] = (),
    done: set[str] = frozenset(),
    skipped: dict[str, str] | None = None,
) -> str:
    """The front page (``report/templates/index/index.html.j2``): what was run, the input check and cleaning
    log, the CONSORT flow, baseline and observed outcomes (the study design of ``config["trial"]``), then each
    stage's section; the stages skipped for want of their input tables, each with its reason (``skipped``:
    {stage name: reason})."""
    skipped = dict(skipped or {})
    design = StudyDesign.from_settings(config.get("trial"))
    severity = problems["severity"] if not problems.empty else pd.Series(dtype=str)
    rules = (
        (
            log["rule"]
            .str.replace(r"\d+", "N", regex=True)
            .value_counts()
            .rename_axis("rule")
            .rename("values")
            .reset_index()
        )
        if not log.empty
        else pd.DataFrame(columns=["rule", "values"])
    )
    page = render_template(
        "index/index.html.j2",
        source=config["data"]["source"],
        input_dir=shown_path(config["data"].get("study") or config["data"]["input_dir"]),
        seed=int(config["seed"]),
        versions=", ".join(f"{k} {v}" for k, v in package_versions().items()),
        n_errors=int((severity == "error").sum()),
        n_warnings=int((severity == "warning").sum()),
        cleaning_rules=rules,
        consort_png=_consort_png(summary["consort_flow"], design) if "consort_flow" in summary else None,
        intervention=with_article(design.arm_label(design.intervention)),
        imr_trial=design.arms == ("IMR", "TAU") and design.all_visits == ("baseline", "post", "fu12"),
        summary=summary,
        sections=list(sections),
        skipped=[(name, skipped[key]) for key, name, _ in PENDING_STAGES if key in skipped and key not in done],
        pending=[(name, what) for key, name, what in PENDING_STAGES if key not in done and key not in skipped],
    )
    return _wrap_wide_tables(page)


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
            sections.append(
                f"<section id='{stage_dir.name}'>" + embed_figures(html_file.read_text(), stage_dir) + "</section>"
            )
            done.add(stage_dir.name)
    return sections, done


def primary_itt_record(stage_dirs, primary: dict | None) -> dict | None:
    """The primary outcome's ITT record in the trial stage's result.json (who was analysed per arm), or None
    when the trial stage is not among ``stage_dirs`` or did not analyse that outcome."""
    outcome = (primary or {}).get("outcome", TRIAL_OUTCOMES[0])
    for stage_dir in map(Path, stage_dirs):
        path = stage_dir / "result.json"
        if stage_dir.name == "trial" and path.exists():
            record = json.loads(path.read_text())
            return ((record.get("outcomes") or {}).get(outcome) or {}).get("itt")
    return None


def write_index(
    config: dict,
    data_dir: str | Path,
    problems_csv: str | Path,
    out_path: str | Path,
    stage_dirs: list[str | Path] = (),
    skipped: dict[str, str] | None = None,
) -> None:
    tables = read_clean(data_dir)
    trial = config.get("trial") or {}
    primary = trial_primary(trial)
    summary = data_summary(tables, primary, primary_itt_record(stage_dirs, primary), trial)
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
    write_text(render_index(config, summary, problems, log, sections, done, skipped), out_path)
