"""The implementation stage on the synthetic default registry: tables, flags, HTML, privacy, bad input.

The statistics themselves are validated against R in tests/validation/test_implementation_vs_r.py;
here the stage's wiring is checked: the paper-style tables repeat the tidy numbers, every table says
its method, no participant id leaks, small cells are suppressed when asked, and degenerate input
gives a clear error or a flag while the rest of the stage still runs.
"""

import json
import re

import numpy as np
import pandas as pd
import pytest

from imrstats.config import section_settings
from imrstats.errors import AnalysisError, InputError, SettingsError
from imrstats.implementation.descriptives import MODULES
from imrstats.implementation.stage import (
    read_excel_table,
    run_implementation_stage,
)
from imrstats.pipeline.registry import with_section
from imrstats.pipeline.stage_result import write_stage

TIDY = {
    "services",
    "demographics_categorical",
    "demographics_continuous",
    "delivery_categorical",
    "delivery_continuous",
    "module_share",
    "imrs_summary",
    "imrs_agreement",
    "tests",
}
DISPLAY = {"table1_demographics", "table2_delivery", "table3_imrs"}


@pytest.fixture(scope="module")
def cleaned(default_clean_tables):
    return default_clean_tables


@pytest.fixture(scope="module")
def programme(cleaned):
    return cleaned["programme"]


@pytest.fixture(scope="module")
def default_run(cleaned):
    return with_section(run_implementation_stage(cleaned, {}, seed=11))


@pytest.fixture(scope="module")
def suppressed_run(cleaned):
    return with_section(run_implementation_stage(cleaned, {"suppress_small_cells": True}, seed=11))


@pytest.fixture(scope="module")
def written_default(default_run, tmp_path_factory):
    directory = tmp_path_factory.mktemp("implementation")
    return directory, write_stage(default_run, directory)


def _written_text(directory) -> str:
    """Every text file write_stage produced (CSV, JSON, summary, HTML), concatenated."""
    texts = {".csv", ".json", ".txt", ".html"}
    return "\n".join(p.read_text() for p in sorted(directory.rglob("*")) if p.suffix in texts)


def _row(display: pd.DataFrame, characteristic: str, statistic: str | None = None) -> pd.Series:
    rows = display[display["characteristic"] == characteristic]
    if statistic is not None:
        rows = rows[rows["statistic"] == statistic]
    assert len(rows) == 1, f"{characteristic} / {statistic}"
    return rows.iloc[0]


# ---------------------------------------------------------------- default synthetic registry


def test_default_run_tables_and_figures(default_run, programme):
    assert default_run.stage == "implementation"
    assert set(default_run.tables) == TIDY | DISPLAY
    assert set(default_run.figures) == {"modules_per_participant", "module_heatmap", "bland_altman"}
    services = default_run.tables["services"].set_index("group")
    assert services.loc["Overall", "n"] == len(programme)
    for display in DISPLAY:
        assert list(default_run.tables[display].columns[2:6]) == ["Overall", "CMHC", "SerD", "EDP"]


def test_display_tables_repeat_the_tidy_numbers(default_run):
    t = default_run.tables
    cat = t["demographics_categorical"].set_index(["variable", "level", "group"])
    female = _row(t["table1_demographics"], "Sex: female")
    for group in ("Overall", "CMHC", "SerD", "EDP"):
        n, pct = cat.loc[("sex", "female", group), ["n", "pct"]]
        assert female[group] == f"{int(n)} ({pct:.1f}%)"
    tests = t["tests"].set_index(["variable", "test"])
    age = _row(t["table1_demographics"], "Age at start of IMR (years)", "mean (SD)")
    assert age["test"] == "one-way ANOVA"
    p = tests.loc[("age_at_start", "one-way ANOVA"), "p"]
    assert age["p"].startswith("< 0.001" if p < 0.001 else f"{p:.3f}")
    assert age["p"].endswith("*") == bool(p < 0.05)
    cont = t["delivery_continuous"].set_index(["variable", "group"])
    sessions = _row(t["table2_delivery"], "Sessions delivered", "median [Q1, Q3]")
    median, q1, q3 = cont.loc[("sessions", "SerD"), ["median", "q1", "q3"]]
    assert sessions["SerD"] == f"{median:.2f} [{q1:.2f}, {q3:.2f}]" and sessions["test"] == "Kruskal-Wallis"
    share = t["module_share"].set_index(["module", "group"])
    m6 = _row(t["table2_delivery"], "Module M6 Drug and Alcohol Use")
    n, pct = share.loc[("m06", "SerD"), ["n", "pct"]]
    assert m6["SerD"] == f"{int(n)} ({pct:.1f}%)"
    assert len(t["table2_delivery"][t["table2_delivery"]["characteristic"].str.startswith("Module M")]) == len(MODULES)


def test_tests_follow_the_seed_plan_at_alpha_005(default_run):
    tests = default_run.tables["tests"]
    assert set(tests.loc[tests["variable"].isin(["sex", "diagnosis", "format", *MODULES]), "test"]) <= {
        "chi-square",
        "Fisher exact",
    }
    assert set(tests.loc[tests["variable"] == "illness_duration_years", "test"]) == {"one-way ANOVA", "Kruskal-Wallis"}
    tested = tests[tests["quantity"] != "not tested"]
    assert (tested["significant"].astype(bool) == (tested["p"] < 0.05)).all()
    agreement = default_run.tables["imrs_agreement"]
    assert {"Pearson r", "Spearman rho", "bias (x - y)", "lower limit of agreement", "upper limit of agreement"} == set(
        agreement["quantity"]
    )
    correlations = agreement[agreement["quantity"].isin(["Pearson r", "Spearman rho"])]
    assert (correlations["ci_low"] < correlations["estimate"]).all()
    assert (correlations["estimate"] < correlations["ci_high"]).all()


def test_html_section(default_run):
    html = default_run.html
    assert html.startswith("<h2>")
    assert "&quot;0.5&quot;" in html and "slip" in html and "alpha = 0.05" in html
    assert html.count("<table") == 4 and html.count("<p class='method'>Method:") == 4
    referenced = set(re.findall(r"figures/([a-z_]+)\.png", html))
    assert referenced == set(default_run.figures)
    # the default registry has cells of 1-4 participants: flagged, and the flag is shown in a warning box
    assert any("unsuppressed" in f for f in default_run.flags)
    assert "<div class='flag'>" in html and "unsuppressed" in html


def test_summary_and_record(default_run):
    summary = default_run.summary
    assert "126 participants (CMHC 69, SerD 52, EDP 5)" in summary
    assert "alpha = 0.05" in summary and "Pearson r" in summary and "WARNING" in summary
    record = json.loads(json.dumps(default_run.record, allow_nan=False, default=str))
    assert record["settings"] == {**section_settings("implementation"), "alpha": 0.05}
    assert record["alpha"] == 0.05 and record["figures"] == sorted(default_run.figures)
    assert "plot_data" not in record


def test_no_participant_id_leaks(default_run, written_default, suppressed_run, programme, tmp_path):
    ids = set(programme["id"].astype(str))
    assert ids and all(re.fullmatch(r"R\d{4}", i) for i in ids)  # so a pattern search finds any of them
    write_stage(suppressed_run, tmp_path)
    for run, directory in ((default_run, written_default[0]), (suppressed_run, tmp_path)):
        text = _written_text(directory) + run.summary + "\n".join(run.flags)
        assert len(text) > 10_000
        assert not re.findall(r"R\d{4}", text)
        for table in run.tables.values():
            assert "id" not in table.columns


def test_write_stage_files(default_run, written_default):
    directory, written = written_default
    assert (directory / "figures" / "modules_per_participant.png").stat().st_size > 0
    assert (directory / "tables" / "table1_demographics.csv").exists()
    payload = json.loads(written["json"].read_text())
    assert payload["stage"] == "implementation" and payload["flags"] == default_run.flags


# ---------------------------------------------------------------- small-cell suppression


def test_suppression_blanks_small_cells_and_row_level_figures(default_run, suppressed_run):
    for name, table in suppressed_run.tables.items():
        if "small_cell" not in table.columns:
            continue
        small = table["small_cell"].astype(bool)
        assert small.equals(default_run.tables[name]["small_cell"].astype(bool))
        numeric = table.select_dtypes("number").columns
        assert table.loc[small, numeric].isna().all().all(), name
    assert default_run.tables["demographics_categorical"]["small_cell"].any()
    assert set(suppressed_run.figures) == {"module_heatmap"}
    assert set(suppressed_run.record["omitted_figures"]) == {"modules_per_participant", "bland_altman"}
    html = suppressed_run.html
    assert "left out because small-cell suppression is on" in html and "primary suppression" in html
    assert "figures/modules_per_participant.png" not in html and "figures/bland_altman.png" not in html
    assert (suppressed_run.tables["table2_delivery"] == "< 5 (suppressed)").any().any()
    assert not any("unsuppressed" in f for f in suppressed_run.flags)


def test_small_agreement_is_suppressed(programme):
    """Agreement on fewer pairs than the threshold is a small cell too."""
    few = programme.head(60).copy()
    observed = few.index[few["imrs_user"].notna() & few["imrs_provider"].notna()]
    few.loc[observed[4:], ["imrs_user", "imrs_provider"]] = np.nan
    shown = with_section(run_implementation_stage({"programme": few}, {}, seed=1))
    hidden = with_section(run_implementation_stage({"programme": few}, {"suppress_small_cells": True}, seed=1))
    assert shown.tables["imrs_agreement"]["small_cell"].all()
    assert shown.tables["imrs_agreement"]["estimate"].notna().all()
    agreement = hidden.tables["imrs_agreement"]
    assert agreement["suppressed"].all() and agreement["estimate"].isna().all() and agreement["p"].isna().all()
    assert "suppressed (fewer than 5 pairs)" in hidden.summary


# ---------------------------------------------------------------- degenerate and bad input


def test_one_service_type_flags_tests_and_still_reports(programme):
    cmhc = programme[programme["service_type"] == "CMHC"]
    result = with_section(run_implementation_stage({"programme": cmhc}, {}, seed=3))
    not_run = [f for f in result.flags if "was not run" in f]
    assert not_run and any("Sex by service type" in f for f in not_run)
    assert "<div class='flag'>" in result.html and "was not run" in result.html
    assert _row(result.tables["table1_demographics"], "Sex: female")["test"].startswith("not run")
    assert result.tables["imrs_agreement"]["quantity"].iloc[0] == "Pearson r"  # the paired analysis still runs
    assert "module_heatmap" in result.figures


def test_no_imrs_scores_flags_agreement_and_omits_bland_altman(programme):
    blank = programme.assign(imrs_user=np.nan, imrs_provider=np.nan)
    result = with_section(run_implementation_stage({"programme": blank}, {}, seed=3))
    assert (result.tables["imrs_agreement"]["quantity"] == "not tested").all()
    assert any("Bland-Altman" in f and "was not run" in f for f in result.flags)
    assert "bland_altman" not in result.figures and "bland_altman" in result.record["omitted_figures"]
    assert "could not be run" in result.html
    assert {"modules_per_participant", "module_heatmap"} <= set(result.figures)  # the rest still runs
    assert result.tables["table1_demographics"]["test"].iloc[1] in {"chi-square", "Fisher exact"}


def test_tiny_registry_with_suppression_still_runs(programme):
    tiny = pd.concat([programme[programme["service_type"] == g].head(2) for g in ("CMHC", "SerD")])
    result = with_section(run_implementation_stage({"programme": tiny}, {"suppress_small_cells": True}, seed=3))
    assert "(CMHC < 5, SerD < 5); < 5 services" in result.summary
    assert result.tables["services"]["n"].isna().all()
    assert not re.findall(r"R\d{4}", result.html + result.summary)


def test_missing_programme_table():
    with pytest.raises(AnalysisError, match="needs the 'programme' table"):
        run_implementation_stage({"participants": pd.DataFrame({"id": ["a"]})}, {})


def test_broken_programme_raises_clearly(programme):
    broken = programme.copy()
    broken.loc[broken.index[0], "stop_date"] = broken.loc[broken.index[0], "start_date"] - pd.Timedelta(days=30)
    with pytest.raises(AnalysisError, match="stop before they start"):
        run_implementation_stage({"programme": broken}, {})
    with pytest.raises(AnalysisError, match="lacks column"):
        run_implementation_stage({"programme": programme.drop(columns="m03")}, {})


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": "0.05"}, "alpha"),
        ({"small_cell_threshold": 0}, "small_cell_threshold"),
        ({"small_cell_threshold": 2.5}, "small_cell_threshold"),
        ({"suppress_small_cells": "yes"}, "suppress_small_cells"),
        ({"significance": 0.05}, "implementation.significance: unknown key"),
    ],
)
def test_bad_settings(settings, message):
    with pytest.raises(SettingsError, match=message):
        run_implementation_stage({}, settings)


def test_slip_sized_alpha_is_flagged(programme):
    result = with_section(run_implementation_stage({"programme": programme.head(40)}, {"alpha": 0.5}, seed=3))
    assert any("0.5" in f and "slip" in f for f in result.flags)
    assert "alpha = 0.5 " in result.html


def test_same_input_and_seed_give_identical_tables(programme):
    part = programme.head(50)
    first = with_section(run_implementation_stage({"programme": part}, {}, seed=5))
    second = with_section(run_implementation_stage({"programme": part}, {}, seed=5))
    for name, table in first.tables.items():
        pd.testing.assert_frame_equal(table, second.tables[name])
    assert first.html == second.html and first.summary == second.summary


# ---------------------------------------------------------------- Excel registry export


def test_read_excel_refuses_other_suffixes(tmp_path):
    path = tmp_path / "programme.csv"
    path.write_text("id\n1\n")
    with pytest.raises(InputError, match="not an Excel workbook"):
        read_excel_table(path)
    with pytest.raises(InputError, match="not found"):
        read_excel_table(tmp_path / "missing.xlsx")


def test_read_excel_without_openpyxl_says_what_to_do(tmp_path):
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        path = tmp_path / "programme.xlsx"
        path.write_bytes(b"PK")
        with pytest.raises(InputError, match="openpyxl"):
            read_excel_table(path)
    else:
        pytest.skip("openpyxl is installed")


def test_read_excel_round_trip(tmp_path, programme):
    pytest.importorskip("openpyxl")
    frame = pd.DataFrame({"id": ["P1", "P2"], "sessions": [12, 20], "note": ["n/a", None]})
    path = tmp_path / "programme.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="readme", index=False)
        frame.to_excel(writer, sheet_name="programme", index=False)
    read = read_excel_table(path)
    assert read.attrs["sheet"] == "programme" and read["sessions"].tolist() == [12, 20]
    assert read["note"].iloc[0] == "n/a" and pd.isna(read["note"].iloc[1])
    other = tmp_path / "export.xlsx"
    path.rename(other)
    with pytest.raises(InputError, match="several sheets"):
        read_excel_table(other)
