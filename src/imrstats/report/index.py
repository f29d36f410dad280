"""The HTML report's front page. Aggregates only: counts, shares and means, never a participant's row.

The trial's part of the page (CONSORT flow, baseline table, allocation, outcomes observed) follows the study
design of the config's ``trial`` section (`imrstats.trial.design.StudyDesign`: arms, visits and their labels),
its ``outcomes`` and the instrument registry extended by ``trial.instruments`` (`imrstats.config.trial_instruments`);
the default is the IMR trial's. Each statistical stage adds its section as it lands; until then the page says
which stages are pending. Every table shown is also written as CSV beside the report (results/report/tables/).
"""

from __future__ import annotations

import base64
import html
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from markupsafe import Markup

from imrstats.config import trial_instruments
from imrstats.core.io import write_csv, write_text
from imrstats.core.provenance import package_versions
from imrstats.data.instruments import TRIAL_OUTCOMES, Instrument
from imrstats.data.stage import read_clean
from imrstats.errors import SettingsError
from imrstats.pipeline.registry import PIPELINE
from imrstats.report import gt_tables
from imrstats.report.docx_tables import write_tables_docx
from imrstats.report.figures import compress_png, png_bytes
from imrstats.report.format import format_ci, format_number, format_p
from imrstats.report.html import render_template
from imrstats.report.manuscript import ManuscriptTable, summary_of_findings_display, table2_baseline, table3_outcomes
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


# ---------------------------------------------------------------------------------------------------------------
# Anchors, headings and the table of contents of a page

# ids the page frame itself uses (index/page.html.j2): never given to a heading, table or figure
_FRAME_IDS = ("main", "page-title", "pages", "contents")
_ANCHORED = re.compile(
    r"<h([1-6])((?:\s[^>]*)?)>(.*?)</h\1>"  # a heading
    r"|<table\b([^>]*)>"  # a table's start tag
    r"|<figure\b([^>]*)>(.*?)</figure>"  # a figure
    r"|<section\b([^>]*)>",  # a section's start tag
    re.S,
)
_ID = re.compile(r"""\bid\s*=\s*['"]([^'"]*)['"]""")
_CAPTION_BEFORE = re.compile(r"""<p class=['"]caption['"][^>]*>((?:(?!</?p\b).)*)</p>\s*(?:<div\b[^>]*>\s*)*$""", re.S)


_PART_BEFORE = re.compile(r"""<p class=['"]part['"][^>]*>(?:(?!</?p\b).)*</p>\s*(?:<div\b[^>]*>\s*)*$""", re.S)
_CAPTION = re.compile(r"""<p class=['"]caption['"][^>]*>((?:(?!</?p\b).)*)</p>""", re.S)


def _last_caption(body: str, end: int) -> str:
    """The text of the last caption paragraph of ``body`` before ``end`` ("" if none)."""
    found = ""
    for match in _CAPTION.finditer(body, max(0, body.rfind("<p class='caption'", 0, end)), end):
        found = match.group(1)
    return found


def plain_text(fragment: str) -> str:
    """The text of an HTML fragment: tags dropped, entities decoded, white space collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def slug(text: str, max_words: int = 8) -> str:
    """An anchor name from a heading or caption: its first words (up to ``max_words``) in lower-case ASCII
    letters and digits, joined by hyphens. A caption "key: what (details...)" whose key is a code name
    (``imrs_client: forest plot (...)``) reads what first: ``forest-plot-imrs-client``; the details in
    parentheses or after a semicolon are left out. Empty when the text has no letter or digit."""
    text = plain_text(text)
    keyed = re.match(r"([a-z][a-z0-9_]*): (.+)", text, re.S)
    key, text = (keyed.group(1), keyed.group(2)) if keyed else ("", text)
    head = re.split(r" \(|; ", text, maxsplit=1)[0]
    head = re.sub(r"(?<=\w)['\u2019](?=\w)", "", head)  # "Egger's" -> "eggers"
    ascii_text = unicodedata.normalize("NFKD", head).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())[:max_words] + re.findall(r"[a-z0-9]+", key)
    return "-".join(words)


def _unique(base: str, used: set[str]) -> str:
    candidate, n = base, 2
    while candidate in used:
        candidate, n = f"{base}-{n}", n + 1
    used.add(candidate)
    return candidate


def anchor_page(body: str, top_level: int = 2) -> tuple[str, list[dict]]:
    """Give every heading, table, figure and section of a page's body a stable id and put its headings in
    order; returns the body and its table of contents.

    Ids: an element's own id is kept; the others get the `slug` of the heading's text, the table's caption
    (its <caption>, or the caption paragraph just before it) or the figure's <figcaption>, de-duplicated in
    document order by a suffix (``-2``, ``-3``); without text, ``<kind>-<n>`` (``table-3``, ``figure-2``).
    Headings: the page's title is its one <h1>; the body's headings are renumbered from ``top_level`` down, each
    one level below the nearest preceding heading of a higher original level, so no level is skipped (a
    stage's h2/h4 become h2/h3). Contents: the headings at ``top_level`` with those one below nested,
    [{"id", "text", "children": [...]}], the text as HTML."""
    used = set(_FRAME_IDS) | set(_ID.findall(body))
    counts = {"heading": 0, "table": 0, "figure": 0, "section": 0}
    stack: list[tuple[int, int]] = []  # (original level, new level) of the open headings
    contents: list[dict] = []

    def named(kind: str, attrs: str, text: str) -> tuple[str, str]:
        """(attributes with the id, the id)."""
        counts[kind] += 1
        own = _ID.search(attrs)
        if own:
            return attrs, own.group(1)
        anchor = _unique(slug(text) or f"{kind}-{counts[kind]}", used)
        return f" id='{anchor}'{attrs}", anchor

    def replace(match: re.Match) -> str:
        if match.group(1):  # a heading
            level = int(match.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            new = min(6, stack[-1][1] + 1 if stack else top_level)
            stack.append((level, new))
            inner = match.group(3)
            attrs, anchor = named("heading", match.group(2) or "", inner)
            entry = {"id": anchor, "text": " ".join(re.sub(r"<[^>]+>", " ", inner).split()), "children": []}
            if new == top_level or (new == top_level + 1 and not contents):
                contents.append(entry)
            elif new == top_level + 1:
                contents[-1]["children"].append(entry)
            return f"<h{new}{attrs}>{inner}</h{new}>"
        if match.group(4) is not None:  # a table: its caption inside or just before it
            end = body.find("</table>", match.end())
            inside = re.search(r"<caption\b[^>]*>(.*?)</caption>", body[match.end() : end if end >= 0 else None], re.S)
            window = body[max(0, match.start() - 4000) : match.start()]
            before = _CAPTION_BEFORE.search(window)
            caption = inside.group(1) if inside else before.group(1) if before else ""
            if not caption and _PART_BEFORE.search(window):  # a table shown in parts: the caption above part 1
                caption = _last_caption(body, match.start())
            attrs, _ = named("table", match.group(4), caption)
            return f"<table{attrs}>"
        if match.group(5) is not None:  # a figure
            caption = re.search(r"<figcaption\b[^>]*>(.*?)</figcaption>", match.group(6), re.S)
            attrs, _ = named("figure", match.group(5), caption.group(1) if caption else "")
            return f"<figure{attrs}>{match.group(6)}</figure>"
        attrs, _ = named("section", match.group(7), "")
        return f"<section{attrs}>"

    return _ANCHORED.sub(replace, body), contents


# ---------------------------------------------------------------------------------------------------------------
# The pages


@dataclass(frozen=True)
class Page:
    """One page of the report: its file (``index.html`` or ``<stage>.html``), its title (the <h1>) and its
    label in the navigation bar."""

    file: str
    title: str
    label: str


FRONT_PAGE = Page("index.html", "imrstats report", "Overview")
_STAGE_TITLES = {stage.name: stage.title for stage in PIPELINE}


def stage_page(stage: str) -> Page:
    """The page of a stage that ran: ``<stage>.html``, titled as the pipeline's stage list names it."""
    title = _STAGE_TITLES.get(stage, stage)
    return Page(f"{stage}.html", title, title)


def finish_page(page: Page, body: str, pages: list[Page]) -> str:
    """A whole page (``report/templates/index/page.html.j2``): the navigation bar over all ``pages`` (this one
    marked current), the sticky table of contents of the body's h2/h3 and the body with its ids and ordered
    headings (`anchor_page`); wide tables scroll sideways in their own box."""
    body, contents = anchor_page(_wrap_wide_tables(body))
    return render_template("index/page.html.j2", page=page, pages=list(pages), contents=contents, body=Markup(body))


SOF_TABLE = "evidence_summary_of_findings.csv"


def key_results(trial_dir: Path | None, design: StudyDesign) -> dict | None:
    """The trial's primary outcome ITT contrast (``trial_itt_contrasts.csv``, role ``primary``) as the front
    page's key results: {outcome, visit, contrast, estimate, ci, p, n, direction} as text; None without it."""
    path = None if trial_dir is None else Path(trial_dir) / "tables" / "trial_itt_contrasts.csv"
    if path is None or not path.exists():
        return None
    contrasts = pd.read_csv(path)
    if "role" not in contrasts.columns:
        return None
    rows = contrasts[contrasts["role"] == "primary"]
    if rows.empty:
        return None
    row = rows.iloc[0]
    p = format_p(row.get("p"))
    n = row.get("n_analysed")
    return {
        "outcome": str(row.get("instrument") or row["outcome"]),
        "visit": design.visit_text(str(row["timepoint"])),
        "contrast": design.contrast_label,
        "estimate": format_number(row["estimate"], 2),
        "ci": format_ci(row.get("ci_low"), row.get("ci_high"), 2),
        "p": ("p " if p.startswith("<") else "p = ") + p if p else "",
        "n": "" if pd.isna(n) else str(int(n)),
        "direction": "" if pd.isna(row.get("direction")) else str(row["direction"]),
    }


def findings(stage_dirs, done: set[str], design: StudyDesign, sof: ManuscriptTable | None = None) -> dict:
    """What the front page's "Summary of findings" shows: ``sof``, the evidence stage's summary of findings laid
    out as Cochrane's (`manuscript_tables`), rendered by great_tables ({"kind": "sof", "html"}); without it the
    trial's primary contrast ({"kind": "key", "result", "why"}: why the certainty is not rated); else
    {"kind": "none"}."""
    if sof is not None:
        return {"kind": "sof", "html": Markup(gt_tables.table_html(sof, "imr-table-sof"))}
    dirs = {Path(d).name: Path(d) for d in stage_dirs}
    result = key_results(dirs.get("trial") if "trial" in done else None, design)
    if result is None:
        return {"kind": "none"}
    why = (
        "the evidence stage wrote no summary-of-findings table"
        if "evidence" in done
        else "the evidence stage, which pools the trial with the published trials, did not run"
    )
    return {"kind": "key", "result": result, "why": why}


def render_index(
    config: dict,
    summary: dict[str, pd.DataFrame],
    problems: pd.DataFrame,
    log: pd.DataFrame,
    done: set[str] = frozenset(),
    skipped: dict[str, str] | None = None,
    summary_of_findings: dict | None = None,
    pages: list[Page] = (),
    table2_html: str | None = None,
) -> str:
    """The front page's body (``report/templates/index/index.html.j2``): the summary of findings
    (``summary_of_findings``, `findings`), what was run, the input check and cleaning log, the CONSORT flow,
    baseline and observed outcomes (the study design of ``config["trial"]``), service use and programme; the
    stages skipped for want of their input tables, each with its reason (``skipped``: {stage name: reason}),
    and those not yet in the pipeline. ``pages``: the report's stage pages, listed with what each holds;
    ``table2_html``: the baseline table laid out as Jensen et al. 2019, Table 2 (great_tables), shown before the
    report's own baseline table."""
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
    what = {f"{key}.html": what for key, _, what in PENDING_STAGES}
    return render_template(
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
        findings=summary_of_findings or {"kind": "none"},
        table2=Markup(table2_html) if table2_html else None,
        stage_pages=[(page, what.get(page.file, "")) for page in pages if page.file != FRONT_PAGE.file],
        skipped=[(name, skipped[key]) for key, name, _ in PENDING_STAGES if key in skipped and key not in done],
        pending=[(name, what) for key, name, what in PENDING_STAGES if key not in done and key not in skipped],
    )


def embed_figures(section: str, stage_dir: Path) -> str:
    """Replace figures/<name>.png references by data URIs of the figure made small (`compress_png`), so each
    page is one self-contained file; the image keeps its source in ``data-figure`` (``<stage>/figures/<name>``)."""

    def inline(match):
        path = stage_dir / "figures" / match.group(1)
        if not path.exists():
            return match.group(0)
        data = base64.b64encode(compress_png(path.read_bytes())).decode("ascii")
        source = html.escape(f"{stage_dir.name}/figures/{match.group(1)}", quote=True)
        return f"src='data:image/png;base64,{data}' data-figure='{source}'"

    return re.sub(r"src='figures/([^']+\.png)'", inline, section)


def stage_sections(stage_dirs: list[str | Path]) -> dict[str, str]:
    """{stage: its HTML section, figures embedded} of the stages that ran (those whose folder holds a
    section.html), in the order of ``stage_dirs``."""
    sections = {}
    for stage_dir in map(Path, stage_dirs):
        html_file = stage_dir / "section.html"
        if html_file.exists():
            sections[stage_dir.name] = (
                f"<section id='{stage_dir.name}'>" + embed_figures(html_file.read_text(), stage_dir) + "</section>"
            )
    return sections


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


def manuscript_tables(
    tables: dict[str, pd.DataFrame], stage_dirs, done: set[str], trial: dict, design: StudyDesign
) -> dict[str, ManuscriptTable]:
    """The publication tables this run can make (`imrstats.report.manuscript`): ``sof`` from the evidence
    stage's summary of findings, ``table2`` (Jensen et al. 2019, Table 2 layout) from the cleaned participants,
    ``table3`` (Jensen et al. 2019, Table 3 layout) from the trial stage's trial_table3.csv and ITT contrasts.
    A table whose inputs are absent is left out."""
    dirs = {Path(d).name: Path(d) for d in stage_dirs}
    out = {}
    sof = dirs["evidence"] / "tables" / SOF_TABLE if "evidence" in dirs and "evidence" in done else None
    if sof is not None and sof.exists():
        frame = pd.read_csv(sof)
        if not frame.empty:
            out["sof"] = summary_of_findings_display(frame, design)
    if "participants" in tables and "arm" in tables["participants"].columns:
        out["table2"] = table2_baseline(tables["participants"], design=design)
    trial_tables = dirs["trial"] / "tables" if "trial" in dirs and "trial" in done else None
    if trial_tables is not None and (trial_tables / "trial_table3.csv").exists():
        contrasts = trial_tables / "trial_itt_contrasts.csv"
        out["table3"] = table3_outcomes(
            pd.read_csv(trial_tables / "trial_table3.csv"),
            trial_instruments(trial),
            design,
            itt_contrasts=pd.read_csv(contrasts) if contrasts.exists() else None,
        )
    return out


def _after_first_heading(section: str, insert: str) -> str:
    """``insert`` placed right after the section's first heading (its title)."""
    match = re.search(r"</h[1-6]>", section)
    return section.replace(match.group(0), match.group(0) + insert, 1) if match else insert + section


def write_index(
    config: dict,
    data_dir: str | Path,
    problems_csv: str | Path,
    out_path: str | Path,
    stage_dirs: list[str | Path] = (),
    skipped: dict[str, str] | None = None,
    docx_path: str | Path | None = None,
) -> list[Path]:
    """The report's pages in ``out_path``'s folder: the front page ``out_path`` (index.html) and one page per
    stage that ran (``<stage>.html``, its section), each with the navigation bar over all of them; every table
    shown as CSV under ``tables/``; the publication tables (`manuscript_tables`) on their pages (Table 2 on the
    front page, Table 3 atop the trial page, the summary of findings first) and as a Word file ``docx_path``
    (default ``tables.docx`` beside the front page). A page of a stage that did not run, left by an earlier run,
    is removed. Returns the pages written, the front page first."""
    tables = read_clean(data_dir)
    trial = config.get("trial") or {}
    primary = trial_primary(trial)
    summary = data_summary(tables, primary, primary_itt_record(stage_dirs, primary), trial)
    problems = pd.read_csv(problems_csv, dtype=str)
    log = pd.read_csv(Path(data_dir) / "cleaning_log.csv", dtype=str)
    out_path = Path(out_path)
    folder = out_path.parent
    for name, frame in summary.items():
        write_csv(frame, folder / "tables" / f"data_{name}.csv")
    for stage_dir in map(Path, stage_dirs):
        for csv in sorted((stage_dir / "tables").glob("*.csv")):
            write_text(csv.read_text(), folder / "tables" / f"{stage_dir.name}_{csv.name}")
    sections = stage_sections(stage_dirs)
    done = set(sections)
    front = Page(out_path.name, FRONT_PAGE.title, FRONT_PAGE.label)
    pages = [front, *(stage_page(stage) for stage in sections)]
    design = StudyDesign.from_settings(trial)
    publication = manuscript_tables(tables, stage_dirs, done, trial, design)
    if "table3" in publication and "trial" in sections:
        table3 = gt_tables.table_html(publication["table3"], "imr-table-3")
        sections["trial"] = _after_first_heading(sections["trial"], f"<div class='publication'>{table3}</div>")
    table2 = gt_tables.table_html(publication["table2"], "imr-table-2") if "table2" in publication else None
    body = render_index(
        config,
        summary,
        problems,
        log,
        done,
        skipped,
        findings(stage_dirs, done, design, publication.get("sof")),
        pages,
        table2,
    )
    written = [out_path]
    write_text(finish_page(front, body, pages), out_path)
    for page, section in zip(pages[1:], sections.values()):
        write_text(finish_page(page, section, pages), folder / page.file)
        written.append(folder / page.file)
    for stage in _STAGE_TITLES:
        stale = folder / f"{stage}.html"
        if stage not in done and stale.exists():
            stale.unlink()
    write_tables_docx(
        folder / "tables.docx" if docx_path is None else docx_path,
        publication.get("sof"),
        publication.get("table2"),
        publication.get("table3"),
    )
    return written
