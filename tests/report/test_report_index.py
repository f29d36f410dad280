"""The report's front page for a study of another design than the IMR trial's: a 4-visit Active vs Placebo
trial whose outcome is an instrument the package registry lacks (declared under ``trial.instruments``). The
page must follow the design (arm and visit labels, the study's outcome), never the IMR trial's arms or visits,
and its counts must be those of the data. Fast: no Snakemake run."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest

from imrstats.core.io import write_csv, write_parquet
from imrstats.data.instruments import load_registry
from imrstats.errors import SettingsError
from imrstats.report.index import data_summary, with_article, write_index

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


@pytest.fixture
def front_page(study_config, tmp_path):
    tables = study_tables()
    data_dir = tmp_path / "data"
    for name, frame in tables.items():
        write_parquet(frame, data_dir / f"{name}.parquet")
    write_csv(pd.DataFrame(columns=["table", "row", "column", "value", "rule"]), data_dir / "cleaning_log.csv")
    problems = tmp_path / "problems.csv"
    write_csv(pd.DataFrame(columns=["severity", "table", "row", "column", "value", "rule"]), problems)
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
    assert "Jensen et al. 2019, Table 2" not in page  # the IMR trial's baseline table is not this study's
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
