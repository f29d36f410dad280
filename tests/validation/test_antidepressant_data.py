"""The shipped antidepressant trial data (data/examples/antidepressant/) against the facts R recorded from them.

tests/validation/r/antidepressant_mmrm.R read the same CSV when it fitted the reference MMRMs and wrote its
row counts, sums and missing-data pattern into tests/validation/data/antidepressant_mmrm_reference.json
("data_facts"). Checking the CSV against those facts here (without R) keeps the file from drifting away
from the data the reference numbers were computed on; the README's stated counts are checked against the
file too. The data are rbmi's example from the antidepressant trial of Goldstein et al. (2004), see the
README beside the CSV.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "data" / "examples" / "antidepressant"
CSV = FOLDER / "antidepressant.csv"
README = FOLDER / "README.md"
REFERENCE = Path(__file__).parent / "data" / "antidepressant_mmrm_reference.json"

COLUMNS = [
    "PATIENT",
    "HAMATOTL",
    "PGIIMP",
    "RELDAYS",
    "VISIT",
    "THERAPY",
    "GENDER",
    "POOLINV",
    "BASVAL",
    "HAMDTL17",
    "CHANGE",
]
VISITS = ["4", "5", "6", "7"]
ARMS = ["PLACEBO", "DRUG"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(CSV, dtype={"PATIENT": str, "VISIT": str, "POOLINV": str})


@pytest.fixture(scope="module")
def facts() -> dict:
    return json.loads(REFERENCE.read_text())["data_facts"]


def per_visit_arm(data: pd.DataFrame, column: str | None) -> dict:
    """{visit: {arm: row count or column sum}} as the reference JSON holds it."""
    groups = data.groupby(["VISIT", "THERAPY"])
    values = groups.size() if column is None else groups[column].sum()
    return {v: {a: int(values.get((v, a), 0)) for a in ARMS} for v in VISITS}


def patterns(data: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: arm, last visit, pattern (O observed, . missing at visits 4..7), monotone."""
    rows = []
    for patient, g in data.groupby("PATIENT"):
        seen = set(g["VISIT"].astype(int))
        last = max(seen)
        rows.append(
            {
                "PATIENT": patient,
                "arm": g["THERAPY"].iloc[0],
                "last": str(last),
                "pattern": "".join("O" if v in seen else "." for v in range(4, 8)),
                "monotone": seen == set(range(4, last + 1)),
            }
        )
    return pd.DataFrame(rows)


def count_by_arm(table: pd.DataFrame, column: str) -> dict:
    counts = table.groupby(["arm", column]).size()
    return {a: {k: int(n) for k, n in counts[a].items()} for a in ARMS}


def test_structure(data):
    assert list(data.columns) == COLUMNS
    assert sorted(data["VISIT"].unique()) == VISITS
    assert sorted(data["THERAPY"].unique()) == sorted(ARMS)
    assert not data.duplicated(["PATIENT", "VISIT"]).any()
    assert data["THERAPY"].groupby(data["PATIENT"]).nunique().eq(1).all()
    assert data["BASVAL"].groupby(data["PATIENT"]).nunique().eq(1).all()
    assert (data["CHANGE"] == data["HAMDTL17"] - data["BASVAL"]).all()
    assert data["POOLINV"].str.fullmatch(r"\d{3}").all()


def test_counts_and_sums_match_r(data, facts):
    assert facts["file"] == CSV.relative_to(ROOT).as_posix()
    assert len(data) == facts["n_rows"] == 608
    assert data["PATIENT"].nunique() == facts["n_patients"] == 172
    first = data.drop_duplicates("PATIENT")
    assert first["THERAPY"].value_counts().to_dict() == facts["patients_per_arm"]
    assert per_visit_arm(data, None) == facts["rows_per_visit_arm"]
    assert per_visit_arm(data, "CHANGE") == facts["sum_change"]
    assert per_visit_arm(data, "BASVAL") == facts["sum_basval"]
    assert per_visit_arm(data, "HAMDTL17") == facts["sum_hamdtl17"]
    assert int(first["BASVAL"].sum()) == facts["sum_basval_patients"]
    assert data.isna().sum().to_dict() == facts["missing_per_column"]


def test_missing_data_pattern_matches_r(data, facts):
    table = patterns(data)
    assert count_by_arm(table, "last") == facts["last_visit_per_arm"]
    assert count_by_arm(table, "pattern") == facts["pattern_per_arm"]
    assert sorted(table.loc[~table["monotone"], "PATIENT"]) == sorted(facts["non_monotone_patients"]) == ["3618"]
    assert (table["pattern"].str[0] == "O").all()  # everyone is observed at visit 4


def markdown_table(text: str, header: str) -> dict:
    """{first cell: [other cells as int]} of the markdown table whose header line starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = [int(c) for c in cells[1:]]
    return rows


def test_readme_counts_match_data(data):
    text = README.read_text()
    flat = " ".join(text.split())
    table = patterns(data)
    first = data.drop_duplicates("PATIENT")
    n_arm = first["THERAPY"].value_counts()
    assert (
        f"{len(data)} rows, {data['PATIENT'].nunique()} patients: {n_arm['DRUG']} DRUG, {n_arm['PLACEBO']} PLACEBO"
        in flat
    )

    rows = per_visit_arm(data, None)
    assert markdown_table(text, "| visit | DRUG | PLACEBO | total |") == {
        v: [rows[v]["DRUG"], rows[v]["PLACEBO"], rows[v]["DRUG"] + rows[v]["PLACEBO"]] for v in VISITS
    }
    last = count_by_arm(table, "last")
    assert markdown_table(text, "| last visit | DRUG | PLACEBO |") == {
        v: [last["DRUG"].get(v, 0), last["PLACEBO"].get(v, 0)] for v in VISITS
    }

    dropped = {a: int(((table["arm"] == a) & (table["last"] != "7")).sum()) for a in ARMS}
    for arm in ("DRUG", "PLACEBO"):
        pct = round(100 * dropped[arm] / n_arm[arm])
        assert f"{dropped[arm]} of {n_arm[arm]} on {arm} ({pct}%)" in flat

    stated = {
        arm: {p: int(n) for p, n in re.findall(r"`([O.]{4})` (\d+)", part)}
        for arm, part in re.findall(r"(DRUG|PLACEBO) ((?:`[O.]{4}` \d+,? ?)+)", flat)
    }
    assert stated == count_by_arm(table, "pattern")
    odd = table.loc[~table["monotone"]]
    assert len(odd) == 1
    gap = [v for v, c in zip(VISITS, odd["pattern"].iloc[0]) if c == "."]
    assert (
        len(gap) == 1 and f"Patient {odd['PATIENT'].iloc[0]} ({odd['arm'].iloc[0]}) misses visit {gap[0]} only" in flat
    )
    assert f"missing on {int(data['PGIIMP'].isna().sum())} rows" in flat
