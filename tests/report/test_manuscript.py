"""The publication tables: Jensen et al. 2019, Table 2 (baseline) and Table 3 (outcomes) laid out as the paper, the
Summary of Findings with lettered footnotes, their great_tables HTML and the Word file. Fast: small constructed
frames, no pipeline run."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from docx import Document

from imrstats.data.instruments import load_registry
from imrstats.report import docx_tables, gt_tables
from imrstats.report.manuscript import (
    GRADE_SYMBOLS,
    MINUS,
    MISSING_CELL,
    OTHER_DOMAIN,
    level_counts,
    summary_of_findings_display,
    table2_baseline,
    table3_columns,
    table3_outcomes,
)
from imrstats.trial.consort import baseline_table
from imrstats.trial.design import DEFAULT_DESIGN, StudyDesign

CUSTOM = StudyDesign(
    visits=("wk4", "wk8", "wk12"),
    baseline="screen",
    intervention="ACT",
    control="PBO",
    arm_labels={"ACT": "Active", "PBO": "Placebo"},
    visit_labels={"wk4": "Week 4", "wk8": "Week 8", "wk12": "Week 12"},
)


def participants_frame(design: StudyDesign = DEFAULT_DESIGN, n: int = 37, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arms = np.array(design.arms)[rng.integers(0, 2, n)]
    sex = rng.choice(["female", "male"], n).astype(object)
    sex[rng.choice(n, 3, replace=False)] = None  # missing values must be counted, not dropped
    return pd.DataFrame(
        {
            "id": [f"P{i:03d}" for i in range(n)],
            "arm": arms,
            "site": rng.choice(["Ballerup", "Gladsaxe", "Frederiksberg"], n),
            "sex": sex,
            "age": rng.integers(18, 70, n).astype(float),
            "diagnosis": rng.choice(["schizophrenia", "bipolar"], n),
            "housing": rng.choice(["rented", "owned", "homeless"], n),
        }
    )


def test_table2_counts_and_percentages_are_the_data():
    p = participants_frame()
    t = table2_baseline(p, None, DEFAULT_DESIGN)
    n_arm = p["arm"].value_counts()
    assert [c.spanners[0] for c in t.columns] == [f"IMR (N = {n_arm['IMR']})"] * 2 + [f"TAU (N = {n_arm['TAU']})"] * 2
    for column, group in (("site", "Site"), ("sex", "Sex"), ("diagnosis", "Diagnosis"), ("housing", "Housing")):
        rows = t.values[t.values["variable"] == column]
        assert set(rows["group"]) == {group}
        expected = pd.crosstab(p[column].fillna("Missing"), p["arm"])
        assert sorted(rows["level"].astype(str)) == sorted(expected.index.astype(str))
        for _, r in rows.iterrows():
            for arm, key in (("IMR", "imr"), ("TAU", "tau")):
                k = int(expected.loc[r["level"], arm])
                assert r[f"{key}_n"] == k
                assert r[f"{key}_pct"] == pytest.approx(100 * k / n_arm[arm])
                shown = t.body.loc[r.name]
                assert shown[f"{key}_n"] == str(k)
                assert shown[f"{key}_pct"] == f"{100 * k / n_arm[arm]:.1f}"
        # each arm's rows add up to its N (the Missing row included)
        assert rows["imr_n"].sum() == n_arm["IMR"] and rows["tau_n"].sum() == n_arm["TAU"]
    assert "Missing" in set(t.body.loc[t.body["group"] == "Sex", "label"])
    age = t.values[t.values["variable"] == "age"].set_index("level")
    imr_age = p.loc[p["arm"] == "IMR", "age"]
    assert age.loc["mean", "imr_n"] == pytest.approx(imr_age.mean())
    assert age.loc["mean", "imr_pct"] == pytest.approx(imr_age.std())
    assert age.loc["range", "imr_n"] == imr_age.min() and age.loc["range", "imr_pct"] == imr_age.max()
    # the paper's group order, only the variables present; the absent ones named in a note
    assert t.groups() == ["Site", "Sex", "Age", "Housing", "Diagnosis"]
    assert any("Employment status" in n.text and "Not recorded" in n.text for n in t.notes)
    assert t.source == "Source layout: Jensen et al. 2019, Table 2"


def test_table2_agrees_with_the_report_baseline_table():
    p = participants_frame().dropna(subset=["sex"])
    a = pd.DataFrame(columns=["id", "timepoint", "instrument", "score"])
    old = baseline_table(p, a, (), {}).set_index("characteristic")
    counts = level_counts(p, "site")
    for _, r in counts.iterrows():
        assert old.loc[f"site: {r['level']}", r["arm"]] == f"{r['n']} ({r['pct']:.1f}%)"


def test_table2_follows_the_design():
    p = participants_frame(CUSTOM)
    t = table2_baseline(p, None, CUSTOM)
    assert t.column_ids == ["act_n", "act_pct", "pbo_n", "pbo_pct"]
    assert t.columns[0].spanners == (f"Active (N = {int((p['arm'] == 'ACT').sum())})",)
    assert not any("IMR" in n.text for n in t.notes)


def table3_frame(design: StudyDesign, outcomes=("gaf_f", "panss_total", "imrs_client", "hope"), seed=1):
    rng = np.random.default_rng(seed)
    rows = []
    for key in outcomes:
        row = {"outcome": key, "instrument": key.upper()}
        for v in design.visits:
            for arm in design.arms:
                a = design.arm_key(arm)
                row[f"itt_{v}_mean_{a}"], row[f"itt_{v}_se_{a}"] = rng.normal(50, 10), rng.uniform(0.5, 2)
                row[f"cc_{v}_n_{a}"] = int(rng.integers(30, 70))
                row[f"cc_{v}_mean_{a}"], row[f"cc_{v}_sd_{a}"] = rng.normal(50, 10), rng.uniform(3, 15)
            row[f"itt_{v}_diff"], row[f"itt_{v}_p"], row[f"cc_{v}_p"] = rng.normal(), rng.uniform(), rng.uniform()
        rows.append(row)
    return pd.DataFrame(rows)


def itt_frame(design: StudyDesign, outcomes, n=(99, 97)):
    return pd.DataFrame(
        [
            {"outcome": o, "timepoint": v, f"n_{design.arm_key(design.intervention)}": n[0],
             f"n_{design.arm_key(design.control)}": n[1]}
            for o in outcomes
            for v in design.visits
        ]
    )  # fmt: skip


def _as_float(text: str) -> float:
    return float(text.replace(MINUS, "-"))


@pytest.mark.parametrize("design", [DEFAULT_DESIGN, CUSTOM], ids=["default", "custom"])
def test_table3_layout_and_values_are_the_source(design):
    registry = load_registry()
    src = table3_frame(design)
    t = table3_outcomes(src, registry, design, itt_contrasts=itt_frame(design, src["outcome"]))
    last = design.visits[-1]
    a, c = (design.arm_key(x) for x in design.arms)
    ids = t.column_ids
    # ITT at the last visit only; complete case at every post-baseline visit; P of the complete case at the last
    assert ids[:6] == ["itt_n", f"itt_{last}_mean_{a}", f"itt_{last}_se_{a}", f"itt_{last}_mean_{c}",
                       f"itt_{last}_se_{c}", f"itt_{last}_p"]  # fmt: skip
    assert len(ids) == 6 + 6 * len(design.visits) + 1 and ids[-1] == f"cc_{last}_p"
    assert [i for i in ids if i.startswith("cc_") and i.endswith("_p")] == [f"cc_{last}_p"]
    spans = {s for col in t.columns for s in col.spanners}
    assert {"Intention-to-treat analysis", "Complete case analysis", design.arm_label(design.intervention)} <= spans
    assert t.columns[1].spanners[1] == design.visit_text(last)[:1].upper() + design.visit_text(last)[1:]
    by_outcome = t.values.set_index("outcome")
    shown = t.body.assign(outcome=t.values["outcome"]).set_index("outcome")
    for _, r in src.iterrows():
        for cid in ids[1:]:
            assert by_outcome.loc[r["outcome"], cid] == pytest.approx(r[cid])
            text = shown.loc[r["outcome"], cid]
            if cid.endswith("_p"):
                # the report's p formatter: "< 0.001" or the value to 2-4 decimals
                assert text == "< 0.001" if r[cid] < 0.001 else abs(_as_float(text) - r[cid]) <= 0.005
            elif "_n_" in cid:
                assert text == str(int(r[cid]))
            else:
                digits = 2 if "_se_" in cid else 1
                assert _as_float(text) == pytest.approx(round(r[cid], digits))
        assert shown.loc[r["outcome"], "itt_n"] == "99 / 97"
    # grouped by domain in the paper's order; the registry's short names
    assert t.groups() == ["Clinical recovery: functioning", "Clinical recovery: symptoms", "Personal recovery",
                          "Illness self-management"]  # fmt: skip
    assert list(t.body["label"]) == ["GAF-F", "PANSS", "Hope", "IMRS-Patient"]
    assert any("different N" in n.text for n in t.notes)
    assert t.landscape and t.source == "Source layout: Jensen et al. 2019, Table 3"


def test_table3_unknown_instruments_and_missing_n():
    src = table3_frame(DEFAULT_DESIGN, outcomes=("gaf_f", "qids"))
    t = table3_outcomes(src, load_registry(), DEFAULT_DESIGN)
    assert t.groups() == ["Clinical recovery: functioning", OTHER_DOMAIN]
    assert list(t.body["label"]) == ["GAF-F", "QIDS"]  # the frame's instrument name when the registry lacks it
    assert (t.body["itt_n"] == MISSING_CELL).all()
    assert any("no ITT contrasts table" in n.text for n in t.notes)
    only_unknown = table3_outcomes(table3_frame(DEFAULT_DESIGN, outcomes=("qids", "bdi")), {}, DEFAULT_DESIGN)
    assert only_unknown.groups() == ["Outcomes"]
    assert len(table3_columns(CUSTOM)) == 6 + 6 * 3 + 1


def sof_frame() -> pd.DataFrame:
    base = dict(
        timepoint="fu12",
        trial_md=2.5,
        trial_md_ci_low=-1.0,
        trial_md_ci_high=6.0,
        trial_p=0.2,
        k=5,
        n_participants=1234,
        pooled_smd=0.21,
        pooled_ci_low=-0.05,
        pooled_ci_high=0.47,
        pi_low=-0.3,
        pi_high=0.7,
        prob_gt_mid=0.41,
        mid=0.2,
        method="REML",
    )
    rows = [
        ("gaf_f", "Functioning (GAF-F)", True, "low", "Risk of bias: open label | Imprecision: CI includes 0"),
        ("imrs_client", "Illness self-management (IMRS, client)", False, "moderate",
         "Imprecision: CI includes 0 | Inconsistency: I2 64%"),
        ("hope", "Hope", False, None, None),
    ]  # fmt: skip
    frame = pd.DataFrame(
        [
            {**base, "outcome_label": key, "outcome_name": name, "is_primary": primary, "certainty": c, "footnotes": f}
            for key, name, primary, c, f in rows
        ]
    )
    frame.loc[2, ["pooled_smd", "k"]] = np.nan
    return frame


def test_sof_display_letters_and_cells():
    t = summary_of_findings_display(sof_frame())
    assert [c.label for c in t.columns] == [
        f"Trial: IMR {MINUS} TAU (95% CI)",
        "Pooled SMD (95% CI); 95% PI",
        "Bayesian P(SMD > MID)",
        "Studies (participants)",
        "Certainty (GRADE)",
    ]
    lettered = [(n.mark, n.text) for n in t.notes if n.mark]
    assert lettered == [("a", "Risk of bias: open label"), ("b", "Imprecision: CI includes 0"),
                        ("c", "Inconsistency: I2 64%")]  # fmt: skip
    assert t.marks == {(0, "certainty"): "a,b", (1, "certainty"): "b,c"}
    assert list(t.body["certainty"]) == ["Low", "Moderate", "Not assessed"]
    assert list(t.values["symbols"]) == [GRADE_SYMBOLS["low"], GRADE_SYMBOLS["moderate"], ""]
    row = t.body.iloc[0]
    assert "(primary outcome)" in row["label"] and "12-month follow-up" in row["label"]
    assert row["trial"].startswith(f"2.50 ({MINUS}1.00 to 6.00)")
    assert row["pooled"] == f"0.21 ({MINUS}0.05 to 0.47); PI {MINUS}0.30 to 0.70"
    assert row["studies"] == "5 (1,234)"
    assert t.body.iloc[2]["pooled"] == MISSING_CELL and t.body.iloc[2]["studies"] == MISSING_CELL


def all_tables(design: StudyDesign = DEFAULT_DESIGN):
    src = table3_frame(design)
    return (
        summary_of_findings_display(sof_frame(), design),
        table2_baseline(participants_frame(design), None, design),
        table3_outcomes(src, load_registry(), design, itt_contrasts=itt_frame(design, src["outcome"])),
    )


def test_gt_html_is_deterministic_and_has_the_layout():
    first = [gt_tables.table_html(t) for t in all_tables()]
    again = [gt_tables.table_html(t) for t in all_tables()]
    assert first == again
    sof, t2, t3 = first
    for html, tid in zip(first, ("imr-table-sof", "imr-table-2", "imr-table-3")):
        assert f'<div id="{tid}"' in html
        assert len(html) < 120_000, "keep the fragments compact"
    assert "gt_column_spanner" in t3
    for label in ("Intention-to-treat analysis", "Complete case analysis", "Post-intervention", "12-month follow-up"):
        assert f'<span class="gt_column_spanner">{label}</span>' in t3
    assert re.search(r'class="gt_column_spanner">IMR \(N = \d+\)</span>', t2)
    assert "Source layout: Jensen et al. 2019, Table 2" in t2 and "gt_group_heading" in t2
    assert f"{GRADE_SYMBOLS['low']}</span> Low<sup>a,b</sup>" in sof
    assert "<sup>c</sup> Inconsistency: I2 64%" in sof


def test_gt_html_follows_a_custom_design():
    html = gt_tables.table_html(all_tables(CUSTOM)[2])
    for label in ("Week 4", "Week 12", "Active", "Placebo"):
        assert f'<span class="gt_column_spanner">{label}</span>' in html
    assert "Post-intervention" not in html


def test_docx_tables_open_and_are_byte_identical(tmp_path):
    tables = all_tables()
    a = docx_tables.write_tables_docx(tmp_path / "a" / "tables.docx", *tables).read_bytes()
    b = docx_tables.write_tables_docx(tmp_path / "b" / "tables.docx", *all_tables()).read_bytes()
    assert a == b
    with zipfile.ZipFile(io.BytesIO(a)) as z:
        assert {i.date_time for i in z.infolist()} == {docx_tables.ZIP_DATE}
    doc = Document(str(tmp_path / "a" / "tables.docx"))
    assert doc.core_properties.author == "imrstats" and doc.core_properties.revision == 1
    assert doc.core_properties.created.year == 2000
    assert len(doc.tables) == 3
    sof, t2, t3 = doc.tables
    assert [c.text for c in sof.rows[0].cells] == ["Outcome", *(c.label for c in tables[0].columns)]
    assert sof.rows[1].cells[-1].text == f"{GRADE_SYMBOLS['low']} Lowa,b"  # the letters are a superscript run
    head2 = [c.text for c in t2.rows[0].cells]
    assert head2[0] == "Variable" and head2[1] == head2[2] == tables[1].columns[0].spanners[0]
    assert [c.text for c in t2.rows[1].cells][1:] == ["N", "%", "N", "%"]
    top = [c.text for c in t3.rows[0].cells]
    assert top[1:7] == ["Intention-to-treat analysis"] * 6 and top[7] == "Complete case analysis"
    assert [c.text for c in t3.rows[3].cells][1:4] == ["N", "Mean", "SE"]
    # the merged spanner is one cell spanning its columns
    assert t3.rows[0].cells[1]._tc is t3.rows[0].cells[6]._tc
    titles = [p.text for p in doc.paragraphs if p.text.startswith("Table ")]
    assert [t.split(" ")[1] for t in titles] == ["1", "2", "3"]
    assert [s.orientation for s in doc.sections][-1] == 1  # Table 3 in a landscape section


def test_docx_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "tables.docx"

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(docx_tables.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        docx_tables.write_tables_docx(target, *all_tables())
    assert list(tmp_path.iterdir()) == []
