"""The report's pages. The front page for a study of another design than the IMR trial's: a 4-visit Active vs Placebo
trial whose outcome is an instrument the package registry lacks (declared under ``trial.instruments``). The
page must follow the design (arm and visit labels, the study's outcome), never the IMR trial's arms or visits,
and its counts must be those of the data. Fast: no Snakemake run."""

from __future__ import annotations

import base64
import copy
import html
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.core.io import write_csv, write_parquet
from imrstats.data.instruments import load_registry
from imrstats.errors import SettingsError
from imrstats.report.figures import compress_png
from imrstats.report.html import figure_html
from imrstats.report.index import anchor_page, data_summary, slug, with_article, write_index

VISITS = ("wk2", "wk4", "wk8", "wk12")
VISIT_LABELS = {"base": "Screening", "wk2": "Week 2", "wk4": "Week 4", "wk8": "Week 8", "wk12": "Week 12"}
INSTRUMENT = {
    "name": "Quick Inventory of Depressive Symptomatology, self-report, 16 items",
    "short": "QIDS-SR16",
    "min": 0,
    "max": 27,
    "higher_is_better": False,
    "integer": True,
    "rater": "client",
    "source": "Rush et al. 2003: 16 items, total 0-27; higher is more depressed",
}
# site -> (Active, Placebo) participants
SITES = {"north": (5, 4), "south": (3, 4)}


def study_trial_section(default_trial: dict) -> dict:
    trial = copy.deepcopy(default_trial)
    trial.update(
        {
            "visits": list(VISITS),
            "baseline_visit": "base",
            "arms": {"intervention": "ACT", "control": "PBO", "labels": {"ACT": "Active", "PBO": "Placebo"}},
            "visit_labels": dict(VISIT_LABELS),
            "outcomes": ["qids16"],
            "primary": {"outcome": "qids16", "timepoint": "wk12"},
            "instruments": {"qids16": dict(INSTRUMENT)},
        }
    )
    return trial


def study_tables() -> dict[str, pd.DataFrame]:
    """16 participants (8 per arm over two sites); QIDS-SR16 at the baseline visit for all, then fewer at each
    visit: participant i (0-based within its arm) is seen at visit k (1..4) when i < 8 - k for Active and
    i < 8 - 2k + 1 for Placebo (Placebo: 7, 5, 3, 1 seen); Active's sessions attended: 0 for its first one."""
    rng = np.random.default_rng(7)
    parts, rows = [], []
    counter = {"ACT": 0, "PBO": 0}
    for site, (n_act, n_pbo) in SITES.items():
        for arm, n in (("ACT", n_act), ("PBO", n_pbo)):
            for _ in range(n):
                i = counter[arm]
                counter[arm] += 1
                pid = f"{arm.lower()}{i:02d}"
                parts.append(
                    {
                        "id": pid,
                        "arm": arm,
                        "site": site,
                        "sex": "female" if i % 2 else "male",
                        "age": 30.0 + i,
                        "diagnosis": "depression",
                        "sessions_attended": (0 if i == 0 else 6) if arm == "ACT" else 0,
                    }
                )
                rows.append(
                    {"id": pid, "timepoint": "base", "instrument": "qids16", "score": float(rng.integers(10, 27))}
                )
                for k, visit in enumerate(VISITS, start=1):
                    seen = i < 8 - k if arm == "ACT" else i < 8 - 2 * k + 1
                    score = float(rng.integers(0, 27)) if seen else np.nan
                    rows.append({"id": pid, "timepoint": visit, "instrument": "qids16", "score": score})
    return {"participants": pd.DataFrame(parts), "assessments": pd.DataFrame(rows)}


@pytest.fixture
def study_config(default_config, tmp_path):
    config = copy.deepcopy(default_config)
    config["trial"] = study_trial_section(default_config["trial"])
    config["data"] = {**config["data"], "source": "directory", "input_dir": str(tmp_path / "input")}
    return config


def cleaned_data(tmp_path: Path) -> tuple[dict[str, pd.DataFrame], Path, Path]:
    """The study's tables as the data job leaves them (Parquet, an empty cleaning log) and an empty problem list:
    (tables, data folder, problems.csv)."""
    tables = study_tables()
    data_dir = tmp_path / "data"
    for name, frame in tables.items():
        write_parquet(frame, data_dir / f"{name}.parquet")
    write_csv(pd.DataFrame(columns=["table", "row", "column", "value", "rule"]), data_dir / "cleaning_log.csv")
    problems = tmp_path / "problems.csv"
    write_csv(pd.DataFrame(columns=["severity", "table", "row", "column", "value", "rule"]), problems)
    return tables, data_dir, problems


@pytest.fixture
def front_page(study_config, tmp_path):
    tables, data_dir, problems = cleaned_data(tmp_path)
    out = tmp_path / "report" / "index.html"
    write_index(study_config, data_dir, problems, out, stage_dirs=[], skipped={})
    page = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", out.read_text())  # the embedded figure's bytes aside
    return tables, page, out.parent / "tables"


def test_the_study_instrument_is_not_in_the_package_registry():
    assert "qids16" not in load_registry()


def test_front_page_says_nothing_of_the_imr_trial_design(front_page):
    _, page, _ = front_page
    for word in ("IMR", "TAU", "post", "fu12", "post-intervention", "12-month"):
        assert not re.search(rf"\b{re.escape(word)}\b", page), word
    # the IMR trial's baseline table is not this study's: Jensen et al.'s Table 2 is named only as the layout
    for at in [m.start() for m in re.finditer(re.escape("Jensen et al. 2019, Table 2"), page)]:
        assert re.search(r"(Source layout: |Laid out as )$", page[max(0, at - 20) : at]), page[at - 60 : at + 30]
    assert "an Active participant received the intervention" in page
    assert with_article("Drug") == "a Drug" and with_article("IMR") == "an IMR"
    for text in ("Active", "Placebo", "Screening", "Week 2", "Week 12", "QIDS-SR16", "0-27", "lower is better"):
        assert text in page, text


def test_consort_counts_follow_the_design(front_page):
    _, _, tables = front_page
    flow = pd.read_csv(tables / "data_consort_flow.csv").set_index("stage")
    assert list(flow.columns) == ["Active", "Placebo"]
    expected = {
        "Randomised and allocated": (8, 8),
        "Received allocated intervention (Active: >= 1 session)": (7, 8),
        "Attended no Active session": (1, 0),
        "Assessed at Week 2": (7, 7),
        "Assessed at Week 4": (6, 5),
        "Assessed at Week 8": (5, 3),
        "Assessed at Week 12": (4, 1),
        "Lost at Week 12": (4, 7),
        "Intention to treat: not analysed (no trial stage result)": (0, 0),
        "Analysed, complete case (qids16 at Week 12)": (4, 1),
    }
    assert {stage: tuple(flow.loc[stage]) for stage in flow.index} == expected


def test_allocation_and_baseline_tables_use_the_arm_labels(front_page):
    tables_in, _, tables = front_page
    allocation = pd.read_csv(tables / "data_allocation.csv")
    assert list(allocation.columns) == ["site", "Active", "Placebo"]
    assert {r.site: (r.Active, r.Placebo) for r in allocation.itertuples()} == SITES
    baseline = pd.read_csv(tables / "data_baseline.csv").set_index("characteristic")
    assert list(baseline.columns) == ["Active", "Placebo"]
    assert baseline.loc["Participants"].tolist() == ["8", "8"]
    scores = tables_in["assessments"].query("timepoint == 'base'").merge(tables_in["participants"], on="id")
    act = scores.loc[scores["arm"] == "ACT", "score"].to_numpy()
    assert baseline.loc["QIDS-SR16 at Screening, mean (SD) [n]", "Active"] == (
        f"{act.mean():.1f} ({act.std(ddof=1):.1f}) [8]"
    )


def test_outcome_completeness_over_the_study_visits_and_arms(front_page):
    tables_in, _, tables = front_page
    observed = pd.read_csv(tables / "data_outcomes_observed.csv", dtype=str)
    assert len(observed) == 1 and observed.loc[0, "instrument"] == "QIDS-SR16"
    heads = [
        f"{VISIT_LABELS[v]} {a} {s}"
        for v in ("base", *VISITS)
        for a in ("Active", "Placebo")
        for s in ("n", "mean (SD)")
    ]
    assert list(observed.columns) == ["instrument", "range", "direction", *heads]
    counts = {v: [int(observed.loc[0, f"{VISIT_LABELS[v]} {a} n"]) for a in ("Active", "Placebo")] for v in VISITS}
    assert counts == {"wk2": [7, 7], "wk4": [6, 5], "wk8": [5, 3], "wk12": [4, 1]}
    merged = tables_in["assessments"].merge(tables_in["participants"], on="id")
    pbo = merged.query("timepoint == 'wk8' and arm == 'PBO'")["score"].dropna().to_numpy()
    assert observed.loc[0, "Week 8 Placebo mean (SD)"] == f"{pbo.mean():.1f} ({pbo.std(ddof=1):.1f})"
    assert pd.isna(observed.loc[0, "Week 12 Placebo mean (SD)"])  # one value: no SD, left blank


def test_an_outcome_no_registry_holds_names_trial_outcomes(study_config):
    trial = {**study_config["trial"], "instruments": {}}
    with pytest.raises(SettingsError, match=r"trial\.outcomes: 'qids16' not in the instrument registry"):
        data_summary(study_tables(), trial=trial)


def test_default_trial_section_gives_the_imr_trial_page(default_config, default_clean_tables):
    """The default trial section and no section at all give the same front-page tables: IMR vs TAU over
    baseline, post and fu12, the eleven outcomes of Jensen et al. 2019."""
    tables = {k: default_clean_tables[k] for k in ("participants", "assessments")}
    with_section = data_summary(tables, trial=default_config["trial"])
    without = data_summary(tables)
    assert with_section.keys() == without.keys()
    for name in with_section:
        pd.testing.assert_frame_equal(with_section[name], without[name])
    assert list(with_section["allocation"].columns) == ["site", "IMR", "TAU"]
    assert "fu12 TAU n" in with_section["outcomes_observed"].columns
    assert len(with_section["outcomes_observed"]) == 11


# ---------------------------------------------------------------------------------------------------------------
# The pages: one per stage, the navigation bar, anchors, the summary of findings slot, embedded figures

SECTION = (
    "<h2>Trial: the analyses</h2>\n<p>Intro.</p>\n<h4>Deep detail</h4>\n"  # h4 right after h2: becomes h3
    "<p class='caption'>qids16: pooled effect (details); more</p>\n<table class='tbl'><tr><td>1</td></tr></table>\n"
    "<p class='caption'>qids16: pooled effect (again)</p>\n<table class='tbl'><tr><td>2</td></tr></table>\n"
    "<h3>Second part</h3>\n<figure><img src='figures/plot.png' alt='A plot'><figcaption>qids16: forest plot "
    "(squares)</figcaption></figure>\n"
)


def plot_png() -> bytes:
    from imrstats.report.figures import new_figure, png_bytes

    fig, ax = new_figure(4, 3)
    ax.plot(np.linspace(0, 1, 50), np.sin(np.linspace(0, 6, 50)), label="a line")
    ax.scatter(np.arange(10) / 10, np.cos(np.arange(10)), c=np.arange(10), cmap="viridis")
    data = png_bytes(fig)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return data


def trial_stage_dir(root, primary_estimate: float) -> Path:
    stage = root / "trial"
    (stage / "figures").mkdir(parents=True)
    (stage / "section.html").write_text(SECTION)
    (stage / "figures" / "plot.png").write_bytes(plot_png())
    contrasts = pd.DataFrame(
        {
            "outcome": ["qids16", "qids16"],
            "instrument": ["QIDS-SR16", "QIDS-SR16"],
            "timepoint": ["wk12", "wk4"],
            "estimate": [primary_estimate, 9.0],
            "ci_low": [primary_estimate - 2, 7.0],
            "ci_high": [primary_estimate + 2, 11.0],
            "p": [0.0004, 0.5],
            "n_analysed": [14, 14],
            "direction": ["lower is better", "lower is better"],
            "role": ["primary", "secondary"],
        }
    )
    write_csv(contrasts, stage / "tables" / "trial_itt_contrasts.csv")
    return stage


def sof_frame() -> pd.DataFrame:
    """Two rows of evidence_summary_of_findings.csv as the evidence stage writes it."""
    return pd.DataFrame(
        {
            "outcome_label": ["qids16_wk12", "hope_fu12"],
            "outcome_name": ["Depressive symptoms (QIDS-SR16)", "Hope (AHS)"],
            "instrument": ["QIDS-SR16", "AHS"],
            "timepoint": ["wk12", "fu12"],
            "is_primary": [True, False],
            "trial_md": [-3.25, 1.0],
            "trial_md_ci_low": [-5.25, -1.0],
            "trial_md_ci_high": [-1.25, 3.0],
            "trial_p": [0.0004, 0.3],
            "trial_g": [-0.41, 0.1],
            "trial_g_ci_low": [-0.7, -0.1],
            "trial_g_ci_high": [-0.1, 0.3],
            "trial_n": [14, 14],
            "k": [4, 3],
            "n_participants": [512, 300],
            "pooled_smd": [0.31, 0.12],
            "pooled_ci_low": [0.05, -0.2],
            "pooled_ci_high": [0.57, 0.44],
            "pi_low": [-0.3, -0.9],
            "pi_high": [0.92, 1.1],
            "certainty": ["moderate", "very low"],
            "n_downgrades": [1, 3],
            "footnotes": ["imprecision: the CI crosses 0.2", "risk_of_bias: two of three studies at high risk"],
            "method": ["REML, Knapp-Hartung", "REML, Knapp-Hartung"],
        }
    )


@pytest.fixture
def report_pages(study_config, tmp_path):
    """The pages of a run whose trial stage ran (with its section, a figure and the primary contrast) and whose
    other stages were skipped; a page of the meta stage left by an earlier run in the folder."""
    _, data_dir, problems = cleaned_data(tmp_path)
    stage = trial_stage_dir(tmp_path / "stages", primary_estimate=-3.25)
    out = tmp_path / "report" / "index.html"
    out.parent.mkdir(parents=True)
    (out.parent / "meta.html").write_text("stale")
    skipped = {"services": "no service_use table in the input folder"}
    written = write_index(study_config, data_dir, problems, out, stage_dirs=[stage], skipped=skipped)
    return {"written": written, "folder": out.parent, "stage": stage, "args": (study_config, data_dir, problems)}


def test_one_page_per_stage_that_ran_with_the_navigation_bar(report_pages):
    folder = report_pages["folder"]
    assert report_pages["written"] == [folder / "index.html", folder / "trial.html"]
    assert not (folder / "meta.html").exists()  # the stale page of a stage that did not run is gone
    for page in ("index.html", "trial.html"):
        html_text = (folder / page).read_text()
        nav = re.search(r"<nav class='pages'.*?</nav>", html_text, re.S).group(0)
        assert re.findall(r"<a href='([^']+)'", nav) == ["index.html", "trial.html"]
        assert re.findall(r"<a href='([^']+)' aria-current='page'>", nav) == [page]
        assert html_text.count("<h1") == 1
    front = (folder / "index.html").read_text()
    trial = (folder / "trial.html").read_text()
    assert "<section id='trial'>" in trial and "<section id='trial'>" not in front
    assert "Service use</b>: skipped, no service_use table in the input folder" in front


def test_summary_of_findings_comes_first_and_without_evidence_is_the_primary_contrast(report_pages):
    front = (report_pages["folder"] / "index.html").read_text()
    sections = re.findall(r"<section id='([^']+)'>", front)
    assert sections[:2] == ["findings", "run"]
    findings = re.search(r"<section id='findings'>(.*?)</section>", front, re.S).group(1)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", findings)).split())
    assert "QIDS-SR16 at Week 12 (lower is better): Active - Placebo -3.25, 95% CI [-5.25, -1.25], p < 0.001" in text
    assert "14 participants analysed" in text
    assert "Certainty of the evidence is not rated" in text and "evidence stage" in text and "did not run" in text


def test_summary_of_findings_table_when_the_evidence_stage_wrote_one(report_pages, tmp_path):
    config, data_dir, problems = report_pages["args"]
    evidence = tmp_path / "stages" / "evidence"
    evidence.mkdir()
    (evidence / "section.html").write_text("<h2>Your trial in the pooled evidence</h2>\n")
    write_csv(sof_frame(), evidence / "tables" / "evidence_summary_of_findings.csv")
    out = tmp_path / "report2" / "index.html"
    write_index(config, data_dir, problems, out, stage_dirs=[report_pages["stage"], evidence], skipped={})
    front = out.read_text()
    findings = re.search(r"<section id='findings'>(.*?)</section>", front, re.S).group(1)
    assert "Key results" not in findings and "<table" in findings
    # the Cochrane layout (great_tables): the outcome is the row's header cell, the certainty its GRADE symbols
    cells = [
        html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<t[dh]\b[^>]*>(.*?)</t[dh]>", findings)
    ]
    assert any(c.startswith("Depressive symptoms (QIDS-SR16)") and "(primary outcome)" in c for c in cells), cells
    for shown in ("⊕⊕⊕◯ Moderate", "⊕◯◯◯ Very low", "4 (512)"):
        assert any(c.startswith(shown) for c in cells), shown
    assert any("0.31 (0.05 to 0.57)" in c for c in cells), cells
    notes = html.unescape(re.sub(r"<[^>]+>", " ", findings))
    assert "the CI crosses 0.2" in notes and "two of three studies at high risk" in notes  # the downgrades' reasons
    assert "evidence_summary_of_findings.csv" in {p.name.split("_", 1)[1] for p in (out.parent / "tables").glob("*")}


def test_every_heading_table_and_figure_has_a_unique_id_and_levels_do_not_skip(report_pages):
    trial = (report_pages["folder"] / "trial.html").read_text()
    main = trial[trial.index("<main") :]
    levels = [int(n) for n in re.findall(r"<h([1-6])\b", main)]
    assert levels == [1, 2, 3, 3]  # the h4 that followed the section's h2 is an h3 on the page
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:]))
    for tag in ("h2", "h3", "table", "figure", "section"):
        assert all(" id='" in t for t in re.findall(rf"<{tag}\b[^>]*>", main)), tag
    ids = re.findall(r"\sid='([^']+)'", trial)
    assert len(ids) == len(set(ids))
    assert re.findall(r"<table id='([^']+)'", main) == ["pooled-effect-qids16", "pooled-effect-qids16-2"]
    assert re.findall(r"<figure id='([^']+)'", main) == ["forest-plot-qids16"]
    toc = re.search(r"<nav class='toc'.*?</nav>", trial, re.S).group(0)
    assert re.findall(r"href='#([^']+)'", toc) == ["trial-the-analyses", "deep-detail", "second-part"]
    assert all(f"id='{anchor}'" in main for anchor in re.findall(r"href='#([^']+)'", toc))


def test_figures_are_embedded_as_small_palette_pngs(report_pages):
    from PIL import Image

    trial = (report_pages["folder"] / "trial.html").read_text()
    embedded = re.search(r"src='data:image/png;base64,([^']+)' data-figure='trial/figures/plot.png'", trial)
    assert embedded, "the figure is not embedded with its source"
    data = base64.b64decode(embedded.group(1))
    original = (report_pages["stage"] / "figures" / "plot.png").read_bytes()
    # the stage's figures are written small already (png_bytes) and embedded as they are
    assert data == original and compress_png(original) == original
    # an RGBA PNG is made smaller, the same every time
    rgba = io.BytesIO()
    Image.open(io.BytesIO(original)).convert("RGBA").save(rgba, format="PNG")
    assert len(compress_png(rgba.getvalue())) < len(rgba.getvalue())
    assert compress_png(rgba.getvalue()) == compress_png(rgba.getvalue())
    with Image.open(io.BytesIO(data)) as small, Image.open(io.BytesIO(original)) as big:
        assert small.mode == "P" and len(small.getcolors(256)) <= 256 and small.size == big.size
        diff = np.abs(np.asarray(small.convert("RGB"), float) - np.asarray(big.convert("RGB"), float)).mean()
    assert diff < 2.0


def test_slugs_and_figure_alt_text():
    assert slug("imrs_client: forest plot (squares sized by weight; ...)") == "forest-plot-imrs-client"
    assert slug("Egger&#39;s regression test; low power") == "eggers-regression-test"
    assert slug("Fig. 1a: IMR modules received per participant (one bar each)") == (
        "fig-1a-imr-modules-received-per-participant"
    )
    assert slug("<code>--</code>") == ""
    body, contents = anchor_page("<h3 id='kept'>A</h3><h2>A</h2><h5>B</h5><table></table>")
    assert body == "<h2 id='kept'>A</h2><h2 id='a'>A</h2><h3 id='b'>B</h3><table id='table-1'></table>"
    assert [(c["id"], [k["id"] for k in c["children"]]) for c in contents] == [("kept", []), ("a", ["b"])]
    parts = "<p class='caption'>Wide: all</p><p class='part'>Part 1</p><table></table><p class='part'>Part 2</p><table>"
    assert re.findall(r"<table id='([^']+)'", anchor_page(parts)[0]) == ["wide-all", "wide-all-2"]
    figure = figure_html("x_y", "Fig. 2: the <b> plot. Second sentence.")
    assert "alt='Fig. 2: the &lt;b&gt; plot'" in figure
    assert "alt='Figure: x y'" in figure_html("x_y", "")
