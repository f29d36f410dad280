"""Estimands (ICH E9(R1)) from the settings to the stage's tables and report: settings errors name their keys, an
ICE file's bad row names file, row, column, value and rule, the stage adds `trial_estimands` and
`trial_estimand_results` without changing any other table, and the counts per arm and strategy add up."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import EXAMPLES
from imrstats.cli import main
from imrstats.config import config_schema, section_settings
from imrstats.errors import InputError, SettingsError
from imrstats.pipeline.registry import with_section
from imrstats.trial import estimands as est
from imrstats.trial import reference_mi as rm
from imrstats.trial.stage import run_trial_estimand, run_trial_stage

# a small, fast stage: one outcome, few imputations, no side analyses
SMALL = {
    "outcomes": ["gaf_f"],
    "imputations": 3,
    "per_protocol_outcomes": [],
    "subgroup_outcomes": [],
    "subgroup_mi_outcomes": [],
    "tipping_outcomes": [],
    "random_intercept_outcomes": [],
    "diagnostics_outcomes": [],
    "within_group_outcomes": [],
    "attendance_outcomes": [],
    "subscale_ancova_outcomes": [],
    "subscale_itt_outcomes": [],
}
SPEC = EXAMPLES / "antidepressant" / "study.yaml"
DROPOUT = {"event": "left the study", "rule": "dropout", "strategy": "JR"}


def other_flags(flags) -> list[str]:
    """The flags besides the count of participants the reference-based model leaves out (checked on its own in
    test_the_stage_adds_both_tables_and_changes_no_other)."""
    return [f for f in flags if "participant(s) left out of the analysis for a missing arm" not in f]


@pytest.fixture(scope="module")
def small(default_clean_tables):
    """The default synthetic trial cut to its first 120 participants (both arms)."""
    participants = default_clean_tables["participants"]
    keep = set(participants["id"].iloc[:120])
    return {
        "participants": participants.loc[participants["id"].isin(keep)].reset_index(drop=True),
        "assessments": default_clean_tables["assessments"]
        .loc[default_clean_tables["assessments"]["id"].isin(keep)]
        .reset_index(drop=True),
    }


@pytest.fixture(scope="module")
def staged(small):
    return with_section(run_trial_stage(small, SMALL, seed=11))


def test_schema_choices_are_the_codes():
    defs = config_schema()["$defs"]
    assert tuple(defs["intercurrent_event"]["properties"]["strategy"]["enum"]) == rm.STRATEGIES == est.ICE_STRATEGIES
    assert tuple(defs["intercurrent_event"]["properties"]["rule"]["enum"]) == est.ICE_RULES
    assert tuple(defs["estimand"]["properties"]["method"]["enum"]) == est.ESTIMAND_METHODS
    assert tuple(defs["estimand"]["properties"]["analysis"]["enum"]) == est.ESTIMAND_ANALYSES
    s = section_settings("trial", {})
    assert s["sensitivity_estimands"] == ["treatment_policy_jr"] and s["imputations_bayes"] == 150
    spec = est.resolve_estimands(s)["treatment_policy_jr"]
    assert spec.method == "condmean_jackknife" and spec.reference is None and spec.analysis == "ancova"
    assert [(e.rule, e.strategy) for e in spec.events] == [("dropout", "JR")]


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            {"estimands": {"x": {"intercurrent_events": [{**DROPOUT, "strategy": "XR"}]}}},
            "trial.estimands.x.intercurrent_events.0.strategy: must be one of MAR, JR, CR, CIR, LMCF, got 'XR'",
        ),
        (
            {"sensitivity_estimands": ["nope"]},
            "trial.sensitivity_estimands: 'nope' is not defined in trial.estimands (defined: treatment_policy_jr)",
        ),
        (
            {
                "estimands": {"x": {"intercurrent_events": [{"event": "few sessions", "rule": "sessions_below"}]}},
                "sensitivity_estimands": ["x"],
            },
            "trial.estimands.x.intercurrent_events.0.min_sessions: missing",
        ),
        (
            {
                "estimands": {"x": {"intercurrent_events": [{**DROPOUT, "file": "ice.csv"}]}},
                "sensitivity_estimands": ["x"],
            },
            "trial.estimands.x.intercurrent_events.0.file: applies to rule table only, not dropout",
        ),
        (
            {
                "estimands": {"x": {"intercurrent_events": [DROPOUT], "reference": "PLACEBO"}},
                "sensitivity_estimands": ["x"],
            },
            "trial.estimands.x.reference: 'PLACEBO' is not an arm",
        ),
        (
            {"estimands": {"x": {"intercurrent_events": [DROPOUT], "method": "mice"}}, "sensitivity_estimands": ["x"]},
            "trial.estimands.x.method: must be one of condmean_jackknife, condmean_bootstrap, bayes, got 'mice'",
        ),
    ],
)
def test_settings_errors_name_the_key(raw, message):
    with pytest.raises(SettingsError) as err:
        section_settings("trial", raw)
    assert str(err.value).startswith(message)


def test_an_estimand_not_defined_is_named(small):
    with pytest.raises(SettingsError, match=r"trial.estimands.nope: not defined; the estimands defined: treatment"):
        run_trial_estimand(small, "nope", SMALL)


@pytest.mark.parametrize(
    "rows, cause",
    [
        ("{a},post,JR\n{b},week9,JR\n", "row 2, column visit, value 'week9': rule: a post-baseline visit"),
        ("{a},post,JR\n{b},fu12,XR\n", "row 2, column strategy, value 'XR': rule: one of ['MAR', 'JR'"),
        ("{a},post,JR\nZZ-999,fu12,JR\n", "row 2, column id, value 'ZZ-999': rule: a participant of the trial"),
        ("{a},post,JR\n{a},fu12,JR\n", "row 2, column id, value '{a}': a second row for this participant"),
        ("{a},,JR\n", "row 1, column visit, value '': blank"),
    ],
)
def test_an_ice_file_with_a_bad_row_is_one_error_naming_file_row_column_value(small, tmp_path, rows, cause):
    a, b = small["participants"]["id"].iloc[:2]
    path = tmp_path / "ice.csv"
    path.write_text("id,visit,strategy\n" + rows.format(a=a, b=b))
    settings = {
        **SMALL,
        "estimands": {"mine": {"intercurrent_events": [{"event": "listed", "rule": "table", "file": str(path)}]}},
        "sensitivity_estimands": ["mine"],
    }
    with pytest.raises(InputError) as err:
        run_trial_estimand(small, "mine", settings)
    assert str(err.value).startswith(f"{path}: {cause.format(a=a)}")
    with pytest.raises(InputError, match="row 2|row 1"):  # the stage stops at once, before the imputations
        run_trial_stage(small, settings, seed=1)


def test_an_ice_file_with_a_strategy_column_and_a_strategy_setting_is_refused(small, tmp_path):
    a = small["participants"]["id"].iloc[0]
    path = tmp_path / "ice.csv"
    path.write_text(f"id,visit,strategy\n{a},post,CR\n")
    event = {"event": "listed", "rule": "table", "file": str(path), "strategy": "JR"}
    settings = {**SMALL, "estimands": {"m": {"intercurrent_events": [event]}}, "sensitivity_estimands": ["m"]}
    with pytest.raises(SettingsError, match=r"trial.estimands.m.intercurrent_events.0.strategy: .* strategy column"):
        run_trial_estimand(small, "m", settings)


def test_the_stage_adds_both_tables_and_changes_no_other(small, staged):
    assert {"trial_estimands", "trial_estimand_results"} <= set(staged.tables)
    attributes = staged.tables["trial_estimands"]
    assert attributes["estimand"].tolist() == ["treatment_policy_jr"] and attributes["outcome"].tolist() == ["gaf_f"]
    row = attributes.iloc[0]
    for column in ("treatment", "population", "variable", "intercurrent_events", "summary"):
        assert isinstance(row[column], str) and row[column].strip()
    assert row["treatment"] == "IMR vs TAU" and "GAF-F" in row["variable"] and "jump to reference" in row["method"]
    assert "strategy JR" in row["intercurrent_events"] and row["strategies"] == "JR"
    results = staged.tables["trial_estimand_results"]
    assert results["timepoint"].tolist() == ["post", "fu12"]
    for prefix in ("contrast", "lsmean_imr", "lsmean_tau"):
        for stat in ("", "_se", "_ci_low", "_ci_high", "_p"):
            assert np.isfinite(results[prefix + stat]).all()
        assert (results[f"{prefix}_ci_low"] < results[prefix]).all() and (
            results[prefix] < results[f"{prefix}_ci_high"]
        ).all()
    np.testing.assert_allclose(results["contrast"], results["lsmean_imr"] - results["lsmean_tau"], rtol=1e-10)
    # the participants the reference-based model leaves out are counted in the table and flagged, nothing else
    left_out = int(results["n_excluded"].iloc[0])
    assert left_out > 0  # the simulated data have missing baselines
    assert staged.flags == [
        f"gaf_f: estimand treatment_policy_jr: {left_out} participant(s) left out of the analysis for a missing arm, "
        "baseline value or covariate (the reference-based imputation model conditions on them; the ITT MI-MMRM "
        "imputes missing baselines instead)"
    ]
    # every other table as the stage gives it without the estimands, to the last bit
    alone = run_trial_stage(small, {**SMALL, "sensitivity_estimands": []}, seed=11)
    assert set(staged.tables) - set(alone.tables) == {"trial_estimands", "trial_estimand_results"}
    for name, frame in alone.tables.items():
        pd.testing.assert_frame_equal(staged.tables[name], frame, check_exact=True)


def test_the_counts_add_up_to_the_participants_with_ices_per_arm(small, staged):
    """Independently of the ICE code: with visits post and fu12, a participant has a dropout ICE when the fu12
    value is missing (the final run of missing visits); an analysed participant has an observed baseline."""
    a = small["assessments"].loc[small["assessments"]["instrument"] == "gaf_f"]
    wide = a.pivot(index="id", columns="timepoint", values="score")
    arm = small["participants"].set_index("id")["arm"]
    analysed = wide.index[wide["baseline"].notna()]
    row = staged.tables["trial_estimands"].iloc[0]
    for code, key in (("IMR", "imr"), ("TAU", "tau")):
        mine = [i for i in analysed if arm[i] == code]
        with_ice = sum(1 for i in mine if pd.isna(wide.loc[i, "fu12"]))
        assert row[f"n_randomised_{key}"] == int((arm == code).sum())
        assert row[f"n_analysed_{key}"] == len(mine)
        assert row[f"n_analysed_{key}"] + row[f"n_excluded_{key}"] == row[f"n_randomised_{key}"]
        assert row[f"n_ice_{key}"] == with_ice > 0
        assert sum(row.get(f"n_{s.lower()}_{key}", 0) for s in rm.STRATEGIES) == with_ice
        assert row[f"n_ice_{key}"] + row[f"n_no_ice_{key}"] == len(mine)
        for r in staged.tables["trial_estimand_results"].itertuples():
            assert getattr(r, f"n_jr_{key}") == with_ice


def test_several_rules_keep_the_earliest_ice_and_count_it(small, tmp_path):
    """Dropout under MAR, then fewer than 6 sessions (IMR arm) under JR at the first visit (post): an IMR participant
    found by both keeps the earlier ICE, and on a tie (dropout at post: both visits missing) the first listed
    (dropout, MAR); the counts per strategy add up to the participants with an ICE."""
    events = [
        {"event": "left the study", "rule": "dropout", "strategy": "MAR"},
        {"event": "attended few sessions", "rule": "sessions_below", "min_sessions": 6, "strategy": "JR"},
    ]
    settings = {**SMALL, "estimands": {"two": {"intercurrent_events": events}}, "sensitivity_estimands": ["two"]}
    out = run_trial_estimand(small, "two", settings, seed=2)
    row = out.tables["trial_estimands"].iloc[0]
    p = small["participants"].set_index("id")
    a = small["assessments"].loc[small["assessments"]["instrument"] == "gaf_f"]
    wide = a.pivot(index="id", columns="timepoint", values="score")
    analysed = wide.index[wide["baseline"].notna()]
    few = {i for i in analysed if p.loc[i, "arm"] == "IMR" and p.loc[i, "sessions_attended"] < 6}
    gone = {i for i in analysed if pd.isna(wide.loc[i, "fu12"])}
    imr_gone = {i for i in gone if p.loc[i, "arm"] == "IMR"}
    tie = {i for i in few & imr_gone if pd.isna(wide.loc[i, "post"])}
    assert row["n_jr_imr"] == len(few - tie) > 0 and row["n_jr_tau"] == 0
    assert row["n_mar_imr"] == len(imr_gone - few) + len(tie)
    assert row["n_mar_tau"] == len(gone) - len(imr_gone)
    assert row["n_ice_imr"] == len(few | imr_gone) == row["n_jr_imr"] + row["n_mar_imr"]
    # found by both rules: counted among the randomised participants (the rules run on every one of them)
    everyone = wide.index
    assert row["n_several_ices_imr"] == sum(
        1
        for i in everyone
        if p.loc[i, "arm"] == "IMR" and p.loc[i, "sessions_attended"] < 6 and pd.isna(wide.loc[i, "fu12"])
    )
    assert "MAR, JR" == row["strategies"]
    assert "hypothetical" in row["intercurrent_events"] and "treatment policy" in row["intercurrent_events"]
    assert "Estimand two" in out.summary
    assert f"IMR: MAR {row['n_mar_imr']}, JR {row['n_jr_imr']}, no ICE {row['n_no_ice_imr']}" in out.summary


def test_a_failing_estimand_is_a_flag_and_the_rest_runs(small):
    no_sessions = dict(small, participants=small["participants"].drop(columns="sessions_attended"))
    events = [{"event": "few sessions", "rule": "sessions_below", "min_sessions": 6}]
    settings = {
        **SMALL,
        "estimands": {"sessions": {"intercurrent_events": events}, "dropout": {"intercurrent_events": [DROPOUT]}},
        "sensitivity_estimands": ["sessions", "dropout"],
    }
    res = run_trial_stage(no_sessions, settings, seed=3)
    assert any(f.startswith("gaf_f: estimand sessions not reported: ") and "sessions_attended" in f for f in res.flags)
    # attendance recorded for some only: the others are counted as unclassified, and flagged
    partial = small["participants"].copy()
    imr = partial.index[partial["arm"] == "IMR"][:3]
    partial.loc[imr, "sessions_attended"] = np.nan
    out = run_trial_estimand(dict(small, participants=partial), "sessions", settings)
    assert out.tables["trial_estimands"]["n_unclassified_imr"].tolist() == [3]
    assert other_flags(out.flags) == [
        "gaf_f: estimand sessions: 3 participant(s) of the IMR arm could not be classified by an ICE rule (attendance "
        "not recorded): analysed without an ICE"
    ]
    assert res.tables["trial_estimands"]["estimand"].tolist() == ["dropout"]
    assert "trial_itt_contrasts" in res.tables


def test_the_report_shows_the_estimands_in_the_users_labels(small):
    labels = {"arms": {"labels": {"IMR": "Recovery course", "TAU": "Usual care"}}, "visit_labels": {"fu12": "Month 12"}}
    res = with_section(run_trial_stage(small, {**SMALL, **labels}, seed=11))
    html = res.html
    assert "<h3>Estimands (ICH E9(R1))" in html
    assert "Recovery course: JR" in html and "Usual care: JR" in html
    assert "LS mean Recovery course" in html and "Month 12" in html and "Recovery course - Usual care" in html
    assert "MAR: ITT MI-MMRM (primary analysis)" in html
    # the method texts are the rows' own, listed once each below the table
    method = res.tables["trial_estimand_results"]["method"].iloc[0]
    assert html.count(method.replace("'", "&#39;")) == 2  # below the Estimands table and the results table
    assert "Estimand treatment_policy_jr" in res.summary and "ITT adjusted means (gaf_f" in res.summary


def test_the_study_command_prints_each_arms_ls_means_and_the_estimand(tmp_path, capsys):
    """`imrstats trial --study SPEC` (no --estimand): besides the ITT contrasts, each arm's LS mean per visit of the
    primary analysis and the sensitivity estimand's rows; `--estimand` with `--in` runs that estimand alone."""
    out = tmp_path / "trial.json"
    assert main(["trial", "--study", str(SPEC), "--imputations", "5", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    head = lines.index("ITT adjusted means (hamd17, MAR; SE, 95% CI):")
    assert [line.split()[:2] for line in lines[head + 1 : head + 5]] == [
        ["Week", "1"],
        ["Week", "2"],
        ["Week", "4"],
        ["Week", "6"],
    ]
    assert all(" Drug " in line and " Placebo " in line for line in lines[head + 1 : head + 5])
    assert "Estimand treatment_policy_jr (HAM-D17; ICH E9(R1) attributes):" in text
    assert "Drug: JR 20, no ICE 64 (of 84 analysed); Placebo: JR 23, no ICE 65 (of 88 analysed)" in text
    payload = json.loads(out.read_text())
    (record,) = payload["estimands"]
    assert record["name"] == "treatment_policy_jr" and record["outcome"] == "hamd17"
    assert record["analysis"]["n_fits"] == 173
    # the canonical-table door: --in with --outcome and --estimand
    assert main(["simulate", "--out", str(tmp_path / "in"), "--seed", "3"]) == 0
    capsys.readouterr()
    args = ["trial", "--in", str(tmp_path / "in"), "--outcome", "psp", "--estimand", "treatment_policy_jr"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.startswith("Estimand treatment_policy_jr (PSP; ICH E9(R1) attributes):")
    assert "LS mean IMR" in text and "LS mean TAU" in text
    assert main([*args[:-1], "nope"]) == 2
    assert "trial.estimands.nope: not defined" in capsys.readouterr().err


def test_a_delta_file_and_a_tipping_grid(small, tmp_path):
    """An estimand's delta table (written by --delta-template, filled in) shifts its imputed values as
    `reference_mi.reference_based_condmean(delta=...)` does; its tipping grid at the primary visit holds the
    estimand's own contrast at (0, 0); a delta on an observed value stops the stage before any imputation."""
    from imrstats.trial.analyses import outcome_frame
    from imrstats.trial.design import StudyDesign

    path = tmp_path / "delta.csv"
    tipping = {"deltas_intervention": [-4, 0, 4], "deltas_control": [0, 4]}
    settings = {
        **SMALL,
        "estimands": {
            "plain": {"intercurrent_events": [DROPOUT], "tipping": tipping},
            "shifted": {"intercurrent_events": [DROPOUT], "delta_file": str(path)},
        },
        "sensitivity_estimands": ["plain", "shifted"],
    }
    # the template the CLI writes for an estimand of the config (the default's)
    assert main(["simulate", "--out", str(tmp_path / "in"), "--seed", "4"]) == 0
    cli = ["trial", "--in", str(tmp_path / "in"), "--outcome", "gaf_f", "--estimand", "treatment_policy_jr"]
    assert main([*cli, "--delta-template", str(tmp_path / "t.csv")]) == 0
    written = pd.read_csv(tmp_path / "t.csv")
    assert written.columns.tolist() == list(rm.DELTA_TEMPLATE_COLUMNS) and (written["delta"] == 0).all()
    # the same library call on the small trial, filled in: +2 on every imputed IMR value at and after the ICE
    design = StudyDesign()
    columns = ["site", "sex", "age", "diagnosis", "sessions_attended"]
    frame = outcome_frame(small["participants"], small["assessments"], "gaf_f", design=design, columns=columns)
    ice = rm.ice_from_dropout(frame, design).table
    template = rm.delta_template(frame, ice, design)
    template["delta"] = np.where(template["is_missing"] & ~template["is_mar"] & (template["arm"] == "IMR"), 2.0, 0.0)
    rm.write_delta_template(template, path)
    res = with_section(run_trial_stage(small, settings, seed=4))
    assert other_flags(res.flags) == []
    results = res.tables["trial_estimand_results"].set_index(["estimand", "timepoint"])
    direct = rm.reference_based_condmean(
        frame,
        ice,
        design,
        covariates=["site", "sex", "age", "diagnosis"],
        delta=rm.validate_delta(template, frame, design),
    ).estimates
    for visit in design.visits:
        c = direct.loc[(direct["timepoint"] == visit) & direct["arm"].isna()].iloc[0]
        assert results.loc[("shifted", visit), "contrast"] == pytest.approx(c["estimate"], rel=1e-12)
        assert results.loc[("shifted", visit), "contrast_se"] == pytest.approx(c["se"], rel=1e-12)
        assert results.loc[("shifted", visit), "contrast"] > results.loc[("plain", visit), "contrast"]
    assert "delta adjustment" in results.loc[("shifted", "post"), "method"]
    assert (
        "delta table" in results.loc[("shifted", "post"), "notes"]
        and "SHA-256" in results.loc[("shifted", "post"), "notes"]
    )
    grid = res.tables["trial_estimand_tipping_grid"]
    assert len(grid) == 6 and set(grid["estimand"]) == {"plain"} and set(grid["timepoint"]) == {"post"}
    zero = grid.loc[(grid["delta_intervention"] == 0) & (grid["delta_control"] == 0)].iloc[0]
    assert zero["estimate"] == pytest.approx(results.loc[("plain", "post"), "contrast"], rel=1e-9)
    assert "trial_estimand_tipping_points" in res.tables
    assert "Two-dimensional tipping point" in res.summary
    assert "two-dimensional tipping points" in res.html and "delta varied in" in res.html
    assert set(res.figures) >= {"trial_estimand_tipping_plain_gaf_f"}
    assert "figures/trial_estimand_tipping_plain_gaf_f.png" in res.html
    # a non-zero delta on an observed value: one error naming the file, before the imputations
    observed = template.index[~template["is_missing"]][0]
    template.loc[observed, "delta"] = 1.0
    rm.write_delta_template(template, path)
    with pytest.raises(InputError, match=rf"{path}: row {observed + 1}, column delta, value '1'"):
        run_trial_stage(small, settings, seed=4)


def test_the_bayesian_method_is_seeded_and_carries_its_monte_carlo_error(small):
    settings = {
        **SMALL,
        "imputations_bayes": 20,
        "estimands": {"jr_bayes": {"intercurrent_events": [DROPOUT], "method": "bayes"}},
        "sensitivity_estimands": ["jr_bayes"],
    }
    one = run_trial_estimand(small, "jr_bayes", settings, seed=8)
    two = run_trial_estimand(small, "jr_bayes", settings, seed=8)
    rows = one.tables["trial_estimand_results"]
    pd.testing.assert_frame_equal(rows, two.tables["trial_estimand_results"])
    assert rows["method"].str.contains("Bayesian multiple imputation \\(m = 20").all()
    assert (rows["contrast_mcse"] > 0).all() and (rows["contrast_mcse"] < rows["contrast_se"]).all()
    other = run_trial_estimand(small, "jr_bayes", settings, seed=9).tables["trial_estimand_results"]
    assert not np.allclose(other["contrast"], rows["contrast"])
    assert one.record["estimand"]["method_key"] == "bayes"


def test_a_study_spec_keeps_the_estimands_with_its_own_control_arm():
    from imrstats.config import defaults, load_config

    trial = load_config(overrides={"data": {"study": str(SPEC)}})["trial"]
    assert trial["estimands"] == defaults()["trial"]["estimands"]
    assert trial["sensitivity_estimands"] == ["treatment_policy_jr"]
    spec = est.resolve_estimands(trial)["treatment_policy_jr"]
    assert spec.reference is None and trial["arms"]["control"] == "PLACEBO"  # the reference: the design's control
    assert est.estimand_outcomes(spec, trial) == ["hamd17"]


def test_an_ice_file_sets_each_listed_participants_ice_and_strategy(small, tmp_path):
    """ids spelled as the user's export may spell them (whitespace, letter case) and visits by code or label."""
    a = small["assessments"]
    has_baseline = set(a.loc[(a["instrument"] == "gaf_f") & (a["timepoint"] == "baseline") & a["score"].notna(), "id"])
    p = small["participants"].loc[small["participants"]["id"].isin(has_baseline)]
    imr, tau = p.loc[p["arm"] == "IMR", "id"].iloc[:3].tolist(), p.loc[p["arm"] == "TAU", "id"].iloc[:2].tolist()
    path = tmp_path / "ice.csv"
    path.write_text(
        "ID,Visit,Strategy\n"
        f" {imr[0].lower()} ,post,cr\n{imr[1]},Month 12,CIR\n{imr[2]},post,MAR\n{tau[0]},fu12,JR\n{tau[1]},post,CR\n"
    )
    settings = {
        **SMALL,
        "visit_labels": {"fu12": "Month 12"},
        "covariates": [],
        "estimands": {"listed": {"intercurrent_events": [{"event": "listed", "rule": "table", "file": str(path)}]}},
        "sensitivity_estimands": ["listed"],
    }
    out = run_trial_estimand(small, "listed", settings)
    row = out.tables["trial_estimands"].iloc[0]
    assert row["strategies"] == "MAR, JR, CR, CIR"
    assert (row["n_cr_imr"], row["n_cir_imr"], row["n_mar_imr"], row["n_jr_imr"]) == (1, 1, 1, 0)
    assert (row["n_cr_tau"], row["n_jr_tau"], row["n_ice_tau"]) == (1, 1, 2)
    assert "ice.csv: SHA-256 " in row["notes"] and str(tmp_path) not in row["notes"]


# ---------------------------------------------------------------- bootstrap inference and the MMRM analysis


def test_the_bootstrap_and_analysis_keys_are_filled_in_and_checked():
    spec = est.resolve_estimands(section_settings("trial", {}))["treatment_policy_jr"]
    assert (spec.bootstrap_samples, spec.bootstrap_ci, spec.analysis) == (1000, "percentile", "ancova")
    props = config_schema()["$defs"]["estimand"]["properties"]
    assert tuple(props["bootstrap_ci"]["enum"]) == est.BOOTSTRAP_CIS == rm.BOOTSTRAP_CIS
    assert est.ESTIMAND_ANALYSES == rm.ANALYSES and "condmean_bootstrap" in rm.TIPPING_METHODS
    given = {"intercurrent_events": [DROPOUT], "method": "condmean_bootstrap", "bootstrap_samples": 50}
    raw = {"estimands": {"x": {**given, "bootstrap_ci": "normal", "analysis": "mmrm"}}, "sensitivity_estimands": ["x"]}
    spec = est.resolve_estimands(section_settings("trial", raw))["x"]
    assert (spec.method, spec.bootstrap_samples, spec.bootstrap_ci, spec.analysis) == (
        "condmean_bootstrap",
        50,
        "normal",
        "mmrm",
    )
    grid = {"deltas_intervention": [0.0, 1.0], "deltas_control": [0.0]}
    for bad, message in [
        ({"bootstrap_ci": "basic"}, "trial.estimands.x.bootstrap_ci: must be one of percentile, normal, got 'basic'"),
        ({"bootstrap_samples": 1}, "trial.estimands.x.bootstrap_samples: must be >= 2, got 1"),
        ({"analysis": "glm"}, "trial.estimands.x.analysis: must be one of ancova, mmrm, got 'glm'"),
        ({"analysis": "mmrm", "tipping": grid}, "trial.estimands.x.tipping: the tipping grid is computed with the"),
    ]:
        with pytest.raises(SettingsError) as err:
            section_settings("trial", {"estimands": {"x": {**given, **bad}}, "sensitivity_estimands": ["x"]})
        assert str(err.value).startswith(message), str(err.value)


def test_bootstrap_and_mmrm_estimands_run_from_the_settings(small):
    settings = {
        **SMALL,
        "estimands": {
            "boot": {
                "intercurrent_events": [DROPOUT],
                "method": "condmean_bootstrap",
                "bootstrap_samples": 12,
                "bootstrap_ci": "normal",
                "tipping": {"deltas_intervention": [-2.0, 2.0], "deltas_control": [0.0]},
            },
            "mmrm": {"intercurrent_events": [DROPOUT], "analysis": "mmrm"},
        },
        "sensitivity_estimands": ["boot", "mmrm"],
    }
    one = run_trial_estimand(small, "boot", settings, seed=8)
    rows = one.tables["trial_estimand_results"]
    pd.testing.assert_frame_equal(
        rows, run_trial_estimand(small, "boot", settings, seed=8).tables["trial_estimand_results"]
    )
    assert rows["method"].str.contains("bootstrap inference \\(12 samples drawn within each arm").all()
    assert (rows["contrast_se"] == rows["contrast_bootstrap_se"]).all() and (rows["contrast_se"] > 0).all()
    assert one.record["estimand"]["method_key"] == "condmean_bootstrap"
    assert "trial_estimand_tipping_grid" in one.tables and not other_flags(one.flags)
    other = run_trial_estimand(small, "boot", settings, seed=9).tables["trial_estimand_results"]
    np.testing.assert_allclose(other["contrast"], rows["contrast"], rtol=1e-12)  # the full-data estimate
    assert not np.allclose(other["contrast_se"], rows["contrast_se"])
    jack = run_trial_estimand(small, "treatment_policy_jr", {**SMALL}, seed=8).tables["trial_estimand_results"]
    np.testing.assert_allclose(jack["contrast"], rows["contrast"], rtol=1e-12)
    mmrm = run_trial_estimand(small, "mmrm", settings, seed=8).tables
    assert mmrm["trial_estimands"]["analysis"].iloc[0] == "MMRM (unstructured covariance)"
    assert one.tables["trial_estimands"]["analysis"].iloc[0] == "ANCOVA per visit"
    assert mmrm["trial_estimand_results"]["method"].str.contains("the study's MMRM on each completed data set").all()
    assert "contrast_bootstrap_se" not in mmrm["trial_estimand_results"]
    # with shared covariates (site, sex, age, diagnosis) the MMRM's contrasts are not the ANCOVA's
    assert np.abs(mmrm["trial_estimand_results"]["contrast"] - jack["contrast"]).max() > 1e-4
