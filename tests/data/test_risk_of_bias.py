"""Risk-of-bias and indirectness data (data/published/risk_of_bias.csv, indirectness.csv): the shipped files, their
loaders' checks, the evidence helpers and the traffic-light figure.

The overall judgements are recomputed here from the domain rows by the tools' rules (RoB 2: any high -> high, all
low -> low, otherwise some concerns, or high when two or more domains have some concerns; ROBINS-I: the worst
domain, "no information" allowed in place of a non-serious worst). Quotes are re-found in the full source texts
only when ``IMRSTATS_SOURCE_TEXTS`` names their folder (docs/sources.md); otherwise that test skips and says why.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from imrstats.core.paths import PROJECT_DIR
from imrstats.data import published
from imrstats.errors import InputError
from imrstats.evidence.risk_of_bias import DOMAIN_ORDER, low_risk_studies, overall_by_study, rob_matrix
from imrstats.evidence.rob_figures import traffic_light, traffic_light_alt_text

RCT_DOMAINS = ["randomisation", "deviations", "missing_data", "measurement", "reporting"]
NRS_DOMAINS = ["confounding", "selection", "classification", "deviations", "missing_data", "measurement", "reporting"]
RCT_JUDGEMENTS = {"low", "some concerns", "high"}
NRS_JUDGEMENTS = {"low", "moderate", "serious", "critical", "no information"}
SOURCE_TEXTS_ENV = "IMRSTATS_SOURCE_TEXTS"
FULL_TEXTS = {"jensen2019": "003_760c7f5f7fc4daa3.txt", "mcguire2014": "001_a4b335bb3a7ff4c2.txt"}
EXTRACTION = "imr_trials_beyond_seeds.csv"


@pytest.fixture(scope="module")
def rob() -> pd.DataFrame:
    return published.load_risk_of_bias()


@pytest.fixture(scope="module")
def indirectness() -> pd.DataFrame:
    return published.load_indirectness()


def _expected_overall(tool: str, judgements: list[str]) -> set[str]:
    if tool == "RoB 2":
        if "high" in judgements:
            return {"high"}
        if all(j == "low" for j in judgements):
            return {"low"}
        return {"some concerns", "high"} if judgements.count("some concerns") >= 2 else {"some concerns"}
    ranks = ["low", "moderate", "serious", "critical"]
    known = [ranks.index(j) for j in judgements if j != "no information"]
    worst = ranks[max(known)] if known else "no information"
    if worst in ("serious", "critical") or "no information" not in judgements:
        return {worst}
    return {"no information", worst}


# ---------------------------------------------------------------- the shipped files


def test_shipped_files_load_with_the_contract_columns(rob, indirectness):
    assert list(rob.columns) == published.ROB_TEXT
    assert list(indirectness.columns) == published.INDIRECTNESS_TEXT
    assert len(rob) > 0 and len(indirectness) > 0


def test_allowed_values_and_one_row_per_study_and_domain(rob):
    for study, rows in rob.groupby("study"):
        tool = rows["tool"].iloc[0]
        assert (rows["tool"] == tool).all(), study
        domains = RCT_DOMAINS if tool == "RoB 2" else NRS_DOMAINS
        assert sorted(rows["domain"]) == sorted(domains + ["overall"]), study
        allowed = RCT_JUDGEMENTS if tool == "RoB 2" else NRS_JUDGEMENTS
        assert set(rows["judgement"]) <= allowed, study
        assert ((rows["design"] == "RCT") == (tool == "RoB 2")).all(), study


def test_overall_follows_the_tool_algorithm(rob):
    for study, rows in rob.groupby("study"):
        tool = rows["tool"].iloc[0]
        domains = rows.loc[rows["domain"] != "overall", "judgement"].tolist()
        overall = rows.loc[rows["domain"] == "overall", "judgement"].item()
        assert overall in _expected_overall(tool, domains), (study, domains, overall)
        if tool == "RoB 2" and overall == "high" and "high" not in domains:
            assert "several" in rows.loc[rows["domain"] == "overall", "support"].item().lower(), study


def test_every_domain_row_has_support_quote_and_source(rob):
    domain_rows = rob[rob["domain"] != "overall"]
    assert (domain_rows["quote"].str.strip() != "").all()
    assert (rob["support"].str.strip() != "").all()
    assert (rob["source"].str.strip() != "").all()
    # Judgements resting on absent information say so in their support.
    absent = domain_rows[domain_rows["judgement"] == "no information"]
    assert absent["support"].str.contains("Not reported in", case=False).all()


def test_source_keys_are_documented(rob, indirectness):
    documented = set(
        re.findall(r"^\| `([a-z0-9_]+)` \|", (PROJECT_DIR / "docs" / "sources.md").read_text(), re.MULTILINE)
    )
    for keys in (rob["source_key"], indirectness["source_key"]):
        assert set(keys) <= documented, set(keys) - documented


def test_every_pooled_trial_has_rob_and_indirectness_rows(rob, indirectness):
    outcomes = published.load_published_outcomes()
    pooled = outcomes[(outcomes["design"] == "RCT") & outcomes["use"].isin(["pool", "pool with care", "sensitivity"])]
    trials = set(pooled["study"])
    assert trials, "no pooled trials in published_outcomes.csv"
    rob2 = set(rob.loc[rob["tool"] == "RoB 2", "study"])
    assert trials <= rob2, trials - rob2
    assert trials <= set(indirectness["study"]), trials - set(indirectness["study"])


def test_non_randomised_studies_use_robins_i(rob):
    rates = published.load_implementation_rates()
    designs = rates.drop_duplicates("study").set_index("study")["design"]
    nrs = rob[rob["tool"] == "ROBINS-I"].drop_duplicates("study")
    assert len(nrs) > 0
    for study, design in zip(nrs["study"], nrs["design"], strict=True):
        assert designs[study] == design and design != "RCT", study


def test_indirectness_values(indirectness):
    assert set(indirectness["judgement"]) <= {"no concerns", "some concerns", "serious concerns"}
    assert not indirectness["study"].duplicated().any()
    for col in ["population", "intervention", "comparator", "outcomes", "support", "quote", "source"]:
        assert (indirectness[col].str.strip() != "").all(), col


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_quotes_are_found_in_their_sources(rob, indirectness):
    root = os.environ.get(SOURCE_TEXTS_ENV, "").strip()
    if not root:
        pytest.skip(
            f"the full source texts are not part of the repository; set {SOURCE_TEXTS_ENV} to the folder holding "
            "them (docs/sources.md) to re-find the risk-of-bias quotes"
        )
    texts: dict[str, list[str]] = {}
    for key, name in {**FULL_TEXTS, "extraction": EXTRACTION}.items():
        hits = sorted(Path(root).rglob(name))
        if not hits:
            pytest.skip(f"{name} is not under {SOURCE_TEXTS_ENV}={root}")
        if key == "extraction":
            raw = pd.read_csv(hits[0], dtype=str, keep_default_na=False)
            texts[key] = [_collapse(q) for q in raw["quote"]]
        else:
            texts[key] = [_collapse(hits[0].read_text(encoding="utf-8"))]
    for table in (rob, indirectness):
        for _, row in table[table["quote"] != ""].iterrows():
            pool = texts.get(row["source_key"], texts["extraction"])
            for part in row["quote"].split(" || "):
                assert any(part in text for text in pool), (row["study"], part[:80])


# ---------------------------------------------------------------- loader errors


def _bad_copy(tmp_path: Path, name: str, edit) -> Path:
    df = pd.read_csv(published.PUBLISHED_DIR / name, dtype=str, keep_default_na=False)
    edit(df)
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_loader_names_row_and_column_of_a_bad_judgement(tmp_path):
    path = _bad_copy(tmp_path, "risk_of_bias.csv", lambda df: df.loc.__setitem__((2, "judgement"), "unclear"))
    with pytest.raises(InputError, match=r"row 4 .*column 'judgement' holds 'unclear'"):
        published.load_risk_of_bias(path)


def test_loader_rejects_an_overall_against_the_algorithm(tmp_path):
    def edit(df):
        first = df["study"].iloc[0]
        df.loc[(df["study"] == first) & (df["domain"] == "overall"), "judgement"] = "low"

    path = _bad_copy(tmp_path, "risk_of_bias.csv", edit)
    with pytest.raises(InputError, match=r"overall\).*column 'judgement' holds 'low'.*algorithm"):
        published.load_risk_of_bias(path)


def test_loader_rejects_a_domain_of_the_other_tool_a_repeat_and_an_unknown_study(tmp_path):
    path = _bad_copy(tmp_path, "risk_of_bias.csv", lambda df: df.loc.__setitem__((0, "domain"), "confounding"))
    with pytest.raises(InputError, match=r"row 2 .*column 'domain' holds 'confounding'"):
        published.load_risk_of_bias(path)
    path = _bad_copy(tmp_path, "risk_of_bias.csv", lambda df: df.loc.__setitem__((1, "domain"), "randomisation"))
    with pytest.raises(InputError, match=r"rows \[3\] repeat a study x domain"):
        published.load_risk_of_bias(path)
    path = _bad_copy(
        tmp_path, "risk_of_bias.csv", lambda df: df.__setitem__("study", df["study"].str.replace("Wong", "Wang"))
    )
    with pytest.raises(InputError, match=r"column 'study' holds 'Wang 2023'"):
        published.load_risk_of_bias(path)


def test_loader_requires_a_quote_on_domain_rows(tmp_path):
    path = _bad_copy(tmp_path, "risk_of_bias.csv", lambda df: df.loc.__setitem__((0, "quote"), " "))
    with pytest.raises(InputError, match=r"row 2 .*column 'quote' is empty"):
        published.load_risk_of_bias(path)


def test_indirectness_loader_names_row_and_column(tmp_path):
    path = _bad_copy(tmp_path, "indirectness.csv", lambda df: df.loc.__setitem__((1, "judgement"), "serious"))
    with pytest.raises(InputError, match=r"column 'judgement' rows \[3\] hold \['serious'\]"):
        published.load_indirectness(path)
    path = _bad_copy(tmp_path, "indirectness.csv", lambda df: df.loc.__setitem__((0, "support"), ""))
    with pytest.raises(InputError, match=r"column 'support' is empty in rows \[2\]"):
        published.load_indirectness(path)


# ---------------------------------------------------------------- helpers on a constructed frame


def _frame(spec: dict[str, tuple[str, dict[str, str]]]) -> pd.DataFrame:
    rows = []
    for study, (tool, judgements) in spec.items():
        for domain, judgement in judgements.items():
            rows.append({"study": study, "tool": tool, "domain": domain, "judgement": judgement})
    return pd.DataFrame(rows)


SMALL = _frame(
    {
        "Pre 2001": (
            "ROBINS-I",
            dict(
                zip(NRS_DOMAINS + ["overall"], ["low"] * 7 + ["low"], strict=True),
            ),
        ),
        "Trial A": ("RoB 2", dict(zip(RCT_DOMAINS + ["overall"], ["low"] * 5 + ["low"], strict=True))),
        "Trial B": (
            "RoB 2",
            dict(zip(RCT_DOMAINS + ["overall"], ["low", "high", "low", "some concerns", "low", "high"], strict=True)),
        ),
        "Cohort C": (
            "ROBINS-I",
            dict(zip(NRS_DOMAINS + ["overall"], ["moderate"] + ["low"] * 6 + ["moderate"], strict=True)),
        ),
    }
)


def test_overall_by_study_puts_rob2_first_and_keeps_file_order():
    out = overall_by_study(SMALL)
    assert list(out.columns) == ["study", "tool", "judgement"]
    assert out["study"].tolist() == ["Trial A", "Trial B", "Pre 2001", "Cohort C"]
    assert out["judgement"].tolist() == ["low", "high", "low", "moderate"]


def test_rob_matrix_orders_domains_and_blanks_other_tools_domains():
    wide = rob_matrix(SMALL)
    assert wide["study"].tolist() == ["Trial A", "Trial B", "Pre 2001", "Cohort C"]
    assert list(wide.columns[:3]) == ["study", "tool", "randomisation"]
    assert wide.columns[-1] == "overall"
    trial_b = wide.set_index("study").loc["Trial B"]
    assert trial_b["deviations"] == "high" and trial_b["confounding"] == ""
    assert wide.set_index("study").loc["Cohort C", "randomisation"] == ""
    only = rob_matrix(SMALL, "RoB 2")
    assert list(only.columns) == ["study", "tool", *RCT_DOMAINS, "overall"]
    assert len(only) == 2


def test_low_risk_studies_only_overall_low():
    assert low_risk_studies(SMALL) == ["Trial A", "Pre 2001"]
    assert low_risk_studies(SMALL[SMALL["study"] == "Trial B"]) == []


# ---------------------------------------------------------------- figure


def _cells(fig) -> list[str]:
    return [line.get_gid() for ax in fig.axes for line in ax.lines if (line.get_gid() or "").startswith("rob:")]


def test_traffic_light_has_one_marker_per_study_and_domain(rob):
    fig = traffic_light(rob)
    cells = _cells(fig)
    assert len(cells) == len(rob)
    assert sorted(cells) == sorted(f"rob:{s}:{d}" for s, d in zip(rob["study"], rob["domain"], strict=True))
    assert len(fig.axes) == rob["tool"].nunique()
    # Legend below the panels, outside every axes.
    legend = fig.legends[0]
    fig.canvas.draw()
    legend_box = legend.get_window_extent()
    assert all(legend_box.y1 <= ax.get_window_extent().y0 for ax in fig.axes)


def test_traffic_light_on_a_small_frame_is_deterministic():
    first = traffic_light(SMALL)
    second = traffic_light(SMALL)
    assert _cells(first) == _cells(second)
    assert len(_cells(first)) == len(SMALL)
    colours = [line.get_markerfacecolor() for ax in first.axes for line in ax.lines if line.get_gid()]
    assert colours == [line.get_markerfacecolor() for ax in second.axes for line in ax.lines if line.get_gid()]
    assert "Trial B: high" in traffic_light_alt_text(SMALL)
    with pytest.raises(InputError):
        traffic_light(SMALL.iloc[0:0])


def test_one_domain_order_keeps_each_tools_order():
    """The matrix's columns: RoB 2's randomisation, ROBINS-I's domains before and at the intervention, then the
    domains both tools share, in the order each tool lists them."""
    assert DOMAIN_ORDER == (
        "randomisation",
        "confounding",
        "selection",
        "classification",
        "deviations",
        "missing_data",
        "measurement",
        "reporting",
        "overall",
    )
    for tool in published.ROB_TOOLS.values():
        assert [d for d in DOMAIN_ORDER if d in tool["domains"]] == list(tool["domains"])
