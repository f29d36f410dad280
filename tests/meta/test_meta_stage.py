"""The meta-analysis stage: effect_table conversions and signs, row selection, the stage's tables, flags,
HTML and figures on the default data, degenerate / bad input, the Bayesian hook. Numbers against R are in
tests/validation/test_meta_stage_vs_r.py."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from imrstats.config import section_settings
from imrstats.data.published import PUBLISHED_DIR, load_implementation_rates, load_published_outcomes
from imrstats.errors import AnalysisError, InputError, SettingsError
from imrstats.meta.stage import (
    DENOMINATOR_RULE,
    FAVOURS,
    effect_table,
    implementation_effects,
    implementation_sensitivity,
    outcome_inputs,
    pool_outcome,
    run_meta_stage,
    select_outcome_rows,
)
from imrstats.pipeline.registry import render_section, with_section
from imrstats.pipeline.stage_result import StageResult, to_json, write_stage

ONE_OUTCOME = {"outcomes": {"imrs_client": ["imrs_client"]}}


def _close_figures(result: StageResult) -> None:
    for fig in result.figures.values():
        plt.close(fig)


@pytest.fixture(scope="module")
def clean(default_clean_tables):
    return default_clean_tables


@pytest.fixture(scope="module")
def stage(clean, default_config):
    result = with_section(run_meta_stage(clean, default_config.get("meta", {}), seed=1))
    yield result
    _close_figures(result)


@pytest.fixture(scope="module")
def outcomes():
    return load_published_outcomes()


# ---- effect_table -----------------------------------------------------------------------------------


def test_effect_table_signs_lower_is_better_scales_to_favour_imr(outcomes):
    rows = outcomes.loc[
        (outcomes["study"] == "Jensen 2019")
        & (outcomes["instrument"] == "panss_total")
        & (outcomes["timepoint"] == "post")
    ]
    eff = effect_table(rows).iloc[0]
    # IMR 57.5 vs TAU 60.4 on PANSS (lower is better): IMR better, so the effect is positive
    assert eff["yi"] > 0 and eff["measure"] == "SMD"
    assert eff["direction"].startswith(FAVOURS) and "reversed" in eff["direction"]
    assert not eff["needs_assumption"] and eff["assumption"] == ""


def test_effect_table_records_the_assumption_of_every_conversion(outcomes):
    eff = effect_table(outcomes.loc[outcomes["use"] != "context"])
    converted = eff.loc[eff["conversion"] != "smd_from_arms"]
    assert (converted["assumption"].str.len() > 0).all()
    assert converted["needs_assumption"].all()
    levitt_bprs = eff.loc[(eff["study"] == "Levitt 2009") & (eff["instrument"] == "bprs")].iloc[0]
    assert levitt_bprs["yi"] > 0  # d = -0.20 on BPRS, lower is better: favours IMR
    assert "split" in levitt_bprs["assumption"]
    odds = eff.loc[eff["conversion"] == "log_or_from_ci"].iloc[0]
    assert odds["measure"] == "log OR" and math.isclose(odds["yi"], -math.log(1.22))
    assert set(eff["measure"]) == {"SMD", "MD", "log OR"}


def test_effect_table_raises_on_a_row_it_cannot_convert_or_flags_it_when_asked(outcomes):
    rows = outcomes.loc[outcomes["conversion"] == "smd_from_arms"].head(2).copy()
    rows.loc[rows.index[0], "sd_imr"] = float("nan")
    with pytest.raises(AnalysisError, match="sd_imr"):
        effect_table(rows)
    eff = effect_table(rows, skip_invalid=True)
    assert math.isnan(eff["yi"].iloc[0]) and "sd_imr" in eff["problem"].iloc[0]
    assert not math.isnan(eff["yi"].iloc[1])


def test_effect_table_needs_the_curated_columns():
    with pytest.raises(InputError, match="missing"):
        effect_table(pd.DataFrame({"study": ["A"]}))


# ---- selection -------------------------------------------------------------------------------------


def test_selection_keeps_one_row_per_study_by_timepoint_preference(outcomes):
    eff = effect_table(outcomes, skip_invalid=True)
    sel = select_outcome_rows(
        eff,
        ["imrs_client"],
        uses=["pool", "pool with care"],
        timepoints=["post", "fu12"],
        analyses=["itt", "complete_case"],
    )
    kept = sel.loc[sel["included"]]
    assert list(kept["study"]) == ["Jensen 2019"] and list(kept["timepoint"]) == ["post"]
    reasons = dict(zip(zip(sel["study"], sel["timepoint"], sel["analysis"]), sel["reason"]))
    assert "preferred" in reasons[("Jensen 2019", "fu12", "complete_case")]
    assert "use 'sensitivity'" in reasons[("Jensen 2019", "fu12", "itt")]
    assert "not in the preference list" in reasons[("Wong 2023", "unclear", "not_stated")]


def test_selection_never_pools_a_raw_mean_difference_with_smds(outcomes):
    eff = effect_table(outcomes, skip_invalid=True)
    sel = select_outcome_rows(
        eff,
        ["hope"],
        uses=["pool", "pool with care", "sensitivity"],
        timepoints=["fu12", "unclear"],
        analyses=["itt", "not_stated", "complete_case"],
    )
    itt = sel.loc[sel["analysis"] == "itt"].iloc[0]
    assert not itt["included"] and "cannot be pooled with SMD" in itt["reason"]
    assert set(sel.loc[sel["included"], "measure"]) == {"SMD"}


def test_outcome_inputs_give_the_bayesian_part_the_pooled_rows(outcomes):
    inputs = outcome_inputs(outcomes, ONE_OUTCOME)
    assert list(inputs) == ["imrs_client"]
    data = inputs["imrs_client"]
    assert list(data["year"]) == sorted(data["year"]) and data["study"].is_unique
    assert {"yi", "vi", "sei", "measure", "study", "year"} <= set(data.columns)


# ---- pooling ---------------------------------------------------------------------------------------


def test_pool_outcome_single_study_reports_it_without_pooling(outcomes):
    data = outcome_inputs(outcomes, {"outcomes": {"h": ["hospitalisation"]}})["h"]
    pooled = pool_outcome(data)
    assert pooled["k"] == 1 and len(pooled["estimators"]) == 1
    row = pooled["estimators"].iloc[0]
    assert "no pooling" in row["quantity"] and math.isclose(row["estimate"], data["yi"].iloc[0])
    assert "heterogeneity" not in pooled and "egger" not in pooled


def test_pool_outcome_with_no_study_raises():
    with pytest.raises(AnalysisError, match="no study"):
        pool_outcome(pd.DataFrame(columns=["study", "year", "yi", "vi", "measure"]))


# ---- the stage on the default data -----------------------------------------------------------------


def test_stage_tables_hold_every_part_with_methods_and_direction(stage):
    t = stage.tables
    for name in (
        "meta_effects",
        "meta_estimators",
        "meta_heterogeneity",
        "meta_leave_one_out",
        "meta_egger",
        "meta_cumulative",
        "meta_sensitivity",
        "meta_implementation_pooled",
        "meta_implementation_rates",
        "meta_implementation_sensitivity",
    ):
        assert name in t and len(t[name]) > 0, name
    est = t["meta_estimators"]
    client = est.loc[est["outcome_label"] == "imrs_client"]
    assert list(client["estimator"]) == ["REML", "DL", "PM", "ML", "EE"]
    assert client["method"].str.contains("Knapp-Hartung").sum() == 4  # EE uses Wald z
    assert (est["direction"] == FAVOURS).all() and (est["method"].str.len() > 0).all()
    assert est.loc[est["estimator"] == "REML", "pi_low"].notna().all()
    egger = t["meta_egger"]
    assert set(egger["outcome_label"]) == {"imrs_client", "imrs_clinician"} and egger["low_power"].all()
    assert egger["notes"].str.contains("low power").all()
    het = t["meta_heterogeneity"]
    assert het["method"].str.contains("Q-profile").any()


def test_stage_reports_the_single_study_outcome_and_the_sensitivity_without_assumptions(stage):
    est = stage.tables["meta_estimators"]
    hosp = est.loc[est["outcome_label"] == "hospitalisation"]
    assert len(hosp) == 1 and hosp["quantity"].iloc[0].endswith("(no pooling)")
    sens = stage.tables["meta_sensitivity"]
    no_assumption = sens.loc[
        (sens["outcome_label"] == "imrs_client") & (sens["analysis"] == "only rows needing no assumption")
    ].iloc[0]
    assert no_assumption["k"] == 1 and no_assumption["studies"] == "Jensen 2019"


def test_stage_compares_pooled_implementation_rates_with_the_review(stage):
    pooled = stage.tables["meta_implementation_pooled"].set_index("measure")
    assert (
        pooled.loc["dropout_pct", "review_median_pct"] == 24 and pooled.loc["completion_pct", "review_median_pct"] == 63
    )
    assert "median dropout (about 24%)" in pooled.loc["dropout_pct", "review_quote"]
    assert pooled.loc["completion_pct", "median_all_table3_pct"] == 63  # the 7 Table 3 cells reproduce the text
    for m in pooled.index:
        assert pooled.loc[m, "ci_low"] < pooled.loc[m, "estimate"] < pooled.loc[m, "ci_high"]
    rates = stage.tables["meta_implementation_rates"]
    salyers = rates.loc[(rates["study"] == "Salyers 2011") & (rates["measure"] == "dropout_pct")].iloc[0]
    assert salyers["n"] == 144 and salyers["events"] == 36  # IMR N from Table 1, not all 498 enrolled
    assert not salyers["denominator_assumed"] and salyers["consistent"]
    fardig = rates.loc[rates["study"] == "Fardig 2011"].iloc[0]
    assert fardig["n"] == 20 and fardig["denominator_assumed"] and "floor(41 / 2)" in fardig["assumption"]
    assert not rates.loc[rates["study"] == "Rychener 2009", "included"].any()


def test_stage_states_the_denominator_rule_and_its_sensitivity(stage):
    assert "people offered IMR" in DENOMINATOR_RULE and "control arm never counts" in DENOMINATOR_RULE
    assert "Denominator rule:" in stage.html and "Denominator rule: the denominator of a dropout" in stage.summary
    assert "only printed denominators: k = 3" in stage.summary
    assert stage.record["implementation"]["denominator_rule"] == DENOMINATOR_RULE
    sens = stage.tables["meta_implementation_sensitivity"]
    k = sens.set_index(["measure", sens["analysis"].str.split(":| \\(", regex=True).str[0]])["k"].to_dict()
    assert k == {
        ("dropout_pct", "main"): 6,
        ("dropout_pct", "only printed denominators"): 3,
        ("completion_pct", "main"): 4,
        ("completion_pct", "only printed denominators"): 2,
    }
    main = sens.loc[sens["analysis"].str.startswith("main")].set_index("measure")["estimate"]
    pooled = stage.tables["meta_implementation_pooled"].set_index("measure")["estimate"]
    assert (main == pooled.loc[main.index]).all()
    # Mueser 2006: 27% and 73% are no whole-person fractions of the printed N = 31: flagged, not hidden
    assert any(f.startswith("implementation Mueser 2006 dropout_pct: 27% is not a whole-person") for f in stage.flags)


def test_a_rate_over_imr_and_control_combined_is_never_pooled():
    eff = implementation_effects(load_implementation_rates(), uses=("pool with care", "context"))
    hasson = eff.loc[eff["study"] == "Hasson-Ohayon 2007"].iloc[0]
    assert hasson["n"] == 210 and hasson["denominator_basis"] == "all_arms"
    assert not hasson["included"] and "IMR and control combined" in hasson["reason"]


def test_implementation_sensitivity_with_only_assumed_denominators_reports_no_study():
    eff = implementation_effects(load_implementation_rates())
    eff = eff.loc[eff["denominator_assumed"] | ~eff["included"]]
    sens = implementation_sensitivity(eff).set_index("analysis")
    printed = sens.loc[sens.index.str.startswith("only printed")]
    assert (printed["k"] == 0).all() and printed["estimate"].isna().all()
    assert (printed["notes"] == "no study to pool").all()


def test_implementation_effects_needs_the_denominator_columns():
    rates = load_implementation_rates().drop(columns=["denominator", "denominator_basis"])
    with pytest.raises(InputError, match="denominator"):
        implementation_effects(rates)


def test_stage_flags_a_knapp_hartung_interval_narrower_than_wald(stage):
    # hope: Jensen and Wong agree almost exactly, so the KH factor is < 1
    assert any(f.startswith("hope: Knapp-Hartung variance factor") for f in stage.flags)
    assert "<div class='flag'>" in stage.html


def test_stage_html_names_methods_and_references_every_figure(stage):
    html = stage.html
    assert html.startswith("<h2>") and "positive value favours IMR" in html
    assert html.count("Method:") >= 20
    for name in stage.figures:
        assert f"figures/{name}.png" in html
    assert {
        "meta_forest_imrs_client",
        "meta_funnel_imrs_client",
        "meta_cumulative_imrs_client",
        "meta_forest_dropout_pct",
        "meta_forest_completion_pct",
    } <= set(stage.figures)
    assert "meta_funnel_hope" not in stage.figures  # no funnel plot with k = 2


def test_stage_leaks_no_participant_id(stage, clean):
    ids = set(clean["participants"]["id"].astype(str))
    assert len(ids) > 100
    text = stage.html + to_json(stage.record) + stage.summary
    text += "".join(frame.to_csv(index=False) for frame in stage.tables.values())
    assert not [i for i in ids if i in text]


def test_stage_summary_and_record_are_readable(stage):
    assert "imrs_client: k = 4" in stage.summary and "review median 24%" in stage.summary
    record = stage.record
    assert record["direction"] == FAVOURS and record["outcomes"]["hospitalisation"]["k"] == 1
    assert record["settings"]["knha"] is True
    to_json(record)  # JSON-serialisable


def test_stage_writes_its_files(tmp_path):
    result = with_section(
        run_meta_stage({}, {"outcomes": {"hope": ["hope"]}, "implementation": {"measures": ["dropout_pct"]}})
    )
    written = write_stage(result, tmp_path)
    assert written["figure:meta_forest_hope"].stat().st_size > 1000
    assert (tmp_path / "tables" / "meta_effects.csv").exists() and (tmp_path / "section.html").exists()


def test_stage_is_deterministic():
    a = run_meta_stage({}, ONE_OUTCOME)
    b = run_meta_stage({}, ONE_OUTCOME)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])
    assert render_section(a) == render_section(b)
    _close_figures(a), _close_figures(b)


# ---- bad and degenerate input ----------------------------------------------------------------------


def test_unknown_or_bad_settings_raise_input_errors():
    for bad, message in (
        ({"estimator": "REML"}, "meta.estimator: unknown key"),
        ({"timepoints": ["week6"]}, "meta.timepoints.0: must be one of post, "),
        ({"method": "HS"}, "meta.method: must be one of REML, "),
        ({"outcomes": {"x": "imrs_client"}}, "meta.outcomes.x: must be a list"),
    ):
        with pytest.raises(SettingsError, match=message):
            run_meta_stage({}, bad)
    assert section_settings("meta", {"method": "FE"})["method"] == "EE"
    assert section_settings("meta") == section_settings("meta", {}) and section_settings("meta")["knha"] is True


def test_a_row_that_cannot_be_converted_is_flagged_and_the_rest_still_runs(tmp_path):
    raw = pd.read_csv(PUBLISHED_DIR / "published_outcomes.csv", dtype=str, keep_default_na=False)
    hit = (
        (raw["study"] == "Jensen 2019")
        & (raw["instrument"] == "imrs_client")
        & (raw["timepoint"] == "fu12")
        & (raw["analysis"] == "complete_case")
    )
    raw.loc[hit, "sd_imr"] = ""
    path = tmp_path / "outcomes.csv"
    raw.to_csv(path, index=False)
    result = run_meta_stage({}, {**ONE_OUTCOME, "published_outcomes": str(path)})
    assert any("Jensen 2019 imrs_client (fu12" in f and "sd_imr" in f for f in result.flags)
    effects = result.tables["meta_effects"]
    jensen = effects.loc[(effects["study"] == "Jensen 2019") & (effects["included"])]
    assert list(jensen["timepoint"]) == ["post"]  # falls back to the next preferred timepoint
    assert len(result.tables["meta_estimators"]) == 5
    _close_figures(result)


def test_an_outcome_nobody_reports_is_flagged_and_the_others_still_run():
    result = run_meta_stage({}, {"outcomes": {"nothing": ["no_such_scale"], "hope": ["hope"]}})
    assert any(f.startswith("nothing:") and "no study" in f for f in result.flags)
    assert set(result.tables["meta_estimators"]["outcome_label"]) == {"hope"}
    assert "nothing" in render_section(result) and result.record["outcomes"]["nothing"]["k"] == 0
    _close_figures(result)


def test_missing_implementation_file_is_flagged_and_the_effects_still_pool(tmp_path):
    result = run_meta_stage({}, {**ONE_OUTCOME, "implementation_rates": str(tmp_path / "missing.csv")})
    assert any(f.startswith("implementation outcomes not pooled") for f in result.flags)
    assert "meta_implementation_pooled" not in result.tables and len(result.tables["meta_estimators"]) == 5
    _close_figures(result)


def test_missing_outcomes_file_raises_a_clear_input_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        run_meta_stage({}, {"published_outcomes": str(tmp_path / "none.csv")})


def test_implementation_rows_without_n_are_excluded_with_a_reason():
    eff = implementation_effects(load_implementation_rates(), uses=("pool with care", "context"))
    roe = eff.loc[eff["study"] == "Roe 2007"].iloc[0]
    assert not roe["included"] and "no N" in roe["reason"]


# ---- the Bayesian hook -----------------------------------------------------------------------------


def test_bayes_hook_gets_the_pooled_rows_and_its_output_is_merged():
    seen = {}

    def fake_bayes(inputs, settings, seed):
        seen.update(inputs=inputs, seed=seed, mid=settings["mid"])
        return StageResult(
            "meta_bayes",
            tables={"pooled": pd.DataFrame({"x": [1.0]})},
            record={"ok": True},
            summary="Bayes summary",
            flags=["R-hat 1.02 for tau"],
        )

    result = run_meta_stage({}, ONE_OUTCOME, seed=7, bayes=fake_bayes)
    assert seen["seed"] == 7 and seen["mid"] == 0.2
    assert len(seen["inputs"]["imrs_client"]) == 4
    assert "bayes_pooled" in result.tables and result.record["bayes"] == {"ok": True}
    assert result.summary.endswith("Bayes summary")  # the section renders the hook's record, not its HTML
    assert "Bayesian pooling: R-hat 1.02 for tau" in result.flags
    _close_figures(result)
