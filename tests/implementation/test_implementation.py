"""Unit tests of imrstats.implementation.descriptives on small hand-built programme tables."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from imrstats.errors import AnalysisError
from imrstats.implementation.descriptives import (
    MODULES,
    ImplementationResult,
    analyse_programme,
    compare_continuous,
    derive_programme_variables,
    flag_small_cells,
    implementation_figures,
    module_share_table,
    summarise_categorical,
)


def make_programme(n_cmhc=12, n_serd=10, n_edp=3):
    """A deterministic small registry: every value is a function of the row number."""
    rows = []
    for i, st in enumerate(["CMHC"] * n_cmhc + ["SerD"] * n_serd + ["EDP"] * n_edp):
        rows.append(
            {
                "id": f"X{i:03d}",
                "service_type": st,
                "service": f"{st}-{i % 2}",
                "format": ["group", "individual", "group", "remote"][i % 4],
                "start_date": f"2019-{1 + i % 12:02d}-15",
                "stop_date": f"2020-{1 + i % 12:02d}-15",
                "sessions": 10 + (i * 7) % 13,
                **{m: bool((i + k) % 3 == 0 or (st == "SerD" and m == "m06")) for k, m in enumerate(MODULES)},
                "imrs_user": 40.0 + (i * 5) % 21,
                "imrs_provider": 38.0 + (i * 5 + i % 4) % 23,
                "sex": ["female", "male"][i % 2],
                "birth_year": 1960 + (i * 3) % 35,
                "first_contact_date": f"{2005 + i % 12}-06-01",
                "diagnosis": {"SerD": "substance use", "EDP": "eating disorder"}.get(
                    st, ["schizophrenia", "bipolar"][i % 2]
                ),
            }
        )
    return pd.DataFrame(rows)


def test_derived_variables():
    frame = derive_programme_variables(make_programme().iloc[:1])
    row = frame.iloc[0]
    assert row["age_at_start"] == 2019 - 1960
    assert row["age_at_first_contact"] == 2005 - 1960
    assert row["duration_months"] == pytest.approx(365 / (365.25 / 12))  # 2019-01-15 to 2020-01-15
    assert row["illness_duration_years"] == pytest.approx(
        (pd.Timestamp("2019-01-15") - pd.Timestamp("2005-06-01")).days / 365.25
    )
    assert row["modules_received"] == sum(row[m] for m in MODULES)
    assert row["imrs_user_item_mean"] == pytest.approx(row["imrs_user"] / 15)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns="m03"), "lacks column"),
        (lambda d: d.assign(service_type="Hospital"), "service_type"),
        (lambda d: d.assign(stop_date="2018-01-01"), "stop before"),
        (lambda d: d.assign(imrs_user=3.7), "IMRS total"),
        (lambda d: d.assign(m05=np.nan), "m05"),
        (lambda d: d.iloc[:0], "no rows"),
    ],
)
def test_bad_programme_tables_raise(change, message):
    with pytest.raises(AnalysisError, match=message):
        derive_programme_variables(change(make_programme()))


def test_categorical_summary_counts_and_missing():
    frame = make_programme().assign(sex=lambda d: d["sex"].where(d.index != 0))
    table = summarise_categorical(frame, "sex")
    overall = table[table["group"] == "Overall"].set_index("level")
    assert overall.loc["(missing)", "n"] == 1
    assert overall.loc["female", "n"] + overall.loc["male", "n"] == len(frame) - 1
    assert overall.loc["male", "pct"] == pytest.approx(100 * overall.loc["male", "n"] / (len(frame) - 1))
    cmhc = table[(table["group"] == "CMHC") & (table["level"] != "(missing)")]
    assert cmhc["pct"].sum() == pytest.approx(100)


def test_module_share():
    frame = derive_programme_variables(make_programme())
    shares = module_share_table(frame).set_index(["module", "group"])
    assert shares.loc[("m06", "SerD"), "pct"] == 100
    assert shares.loc[("m01", "Overall"), "n"] == frame["m01"].sum()


def test_flag_small_cells_threshold_and_suppression():
    table = pd.DataFrame({"level": list("abcd"), "n": [0, 1, 4, 5], "pct": [0.0, 10.0, 40.0, 50.0]})
    flagged = flag_small_cells(table)
    assert flagged["small_cell"].tolist() == [False, True, True, False]
    assert flagged["n"].tolist() == [0, 1, 4, 5] and not flagged["suppressed"].any()
    hidden = flag_small_cells(table, threshold=5, suppress=True)
    assert hidden["n"].isna().tolist() == [False, True, True, False]
    assert hidden["pct"].isna().tolist() == [False, True, True, False]
    assert hidden["level"].tolist() == list("abcd")
    with pytest.raises(AnalysisError, match="'n' column"):
        flag_small_cells(table.rename(columns={"n": "count"}))


def test_test_choice_depends_on_number_of_groups():
    frame = derive_programme_variables(make_programme())
    three = compare_continuous(frame, "sessions")
    assert [e.extra["test"] for e in three] == ["one-way ANOVA", "Kruskal-Wallis"]
    two = compare_continuous(frame[frame["service_type"] != "EDP"], "sessions")
    assert [e.extra["test"] for e in two] == ["Welch t", "Mann-Whitney U"]
    one = compare_continuous(frame[frame["service_type"] == "CMHC"], "sessions")
    assert all(e.quantity == "not tested" and e.notes for e in one)


def test_analyse_programme_tables_and_json():
    result = analyse_programme(make_programme(), alpha=0.05)
    assert isinstance(result, ImplementationResult) and result.n_participants == 25
    assert {
        "services",
        "demographics_categorical",
        "demographics_continuous",
        "delivery_categorical",
        "delivery_continuous",
        "module_share",
        "imrs_summary",
        "imrs_agreement",
        "tests",
    } <= set(result.tables)
    tests = result.tables["tests"]
    assert set(tests.loc[tests["variable"].isin(["sex", "diagnosis", "format"]), "test"]) <= {
        "chi-square",
        "Fisher exact",
    }
    assert (tests["significant"].dropna() == (tests["p"] < 0.05)[tests["significant"].notna()]).all()
    for table in result.tables.values():  # aggregates only: no identifiers reach the tables
        assert "id" not in table.columns
        assert not table.astype(str).isin(make_programme()["id"]).any().any()
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert payload["alpha"] == 0.05 and "plot_data" not in payload


def test_suppression_switch():
    flagged = analyse_programme(make_programme())
    suppressed = analyse_programme(make_programme(), suppress_small_cells=True)
    before = flagged.tables["demographics_categorical"]
    after = suppressed.tables["demographics_categorical"]
    edp = (before["group"] == "EDP") & (before["n"] > 0)  # 3 EDP participants: every nonzero count is 1-3
    assert edp.any() and before.loc[edp, "small_cell"].all() and before.loc[edp, "n"].notna().all()
    assert after.loc[edp, "n"].isna().all() and after.loc[edp, "suppressed"].all()
    assert after.loc[~before["small_cell"], "n"].equals(before.loc[~before["small_cell"], "n"].astype(float))


def test_invalid_alpha():
    with pytest.raises(AnalysisError, match="alpha"):
        analyse_programme(make_programme(), alpha=1.0)


def test_figures_from_result_and_from_frame():
    result = analyse_programme(make_programme())
    figures = implementation_figures(result)
    assert set(figures) == {"modules_per_participant", "module_heatmap", "bland_altman"}
    assert all(isinstance(f, Figure) for f in figures.values())
    stack = figures["modules_per_participant"].axes[0].images[0].get_array()
    assert stack.shape == (len(MODULES), 25)  # one bar (column) per participant
    received = derive_programme_variables(make_programme())[list(MODULES)].to_numpy(bool)
    assert np.ma.masked_invalid(stack).count() == received.sum()  # one coloured block per module received
    assert set(implementation_figures(make_programme())) == set(figures)
    with pytest.raises(AnalysisError):
        implementation_figures("not a result")
