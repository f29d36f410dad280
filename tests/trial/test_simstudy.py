"""imrstats.trial.simstudy: performance measures on constructed replicates with known answers, the scenario
settings, one replicate, and the profiles' resources. The workflow itself (end to end, and a dry run of the SLURM
profile) is run in tests/pipeline/test_simstudy_workflow.py."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import PROJECT
from imrstats.errors import AnalysisError, InputError
from imrstats.trial.simstudy import (
    aggregate,
    load_study_config,
    performance_measures,
    performance_table,
    replicate_rows,
    replicate_seed,
    resolve_study_config,
    run_replicate,
    scale_sites,
    scenario_trial_model,
    validate_study_config,
)
from imrstats.trial.simstudy_section import render_simstudy_report


def rows_for(estimates, ses, truth, *, half_width=None, p=None, scenario="s", errors=None):
    """Replicate rows of one scenario / outcome / visit with chosen numbers."""
    n = len(estimates)
    est, se = np.asarray(estimates, float), np.asarray(ses, float)
    hw = 1.96 * se if half_width is None else np.asarray(half_width, float)
    return pd.DataFrame(
        {
            "scenario": scenario,
            "rep": range(n),
            "estimator": "mi_mmrm",
            "outcome": "gaf_f",
            "timepoint": "post",
            "truth": truth,
            "estimate": est,
            "se": se,
            "ci_low": est - hw,
            "ci_high": est + hw,
            "df": 50.0,
            "p": np.full(n, 0.5) if p is None else np.asarray(p, float),
            "fmi": np.nan,
            "n_not_converged": 0,
            "error": errors or [""] * n,
        }
    )


def measure(perf, name, scenario="s"):
    row = perf[(perf["quantity"] == name) & (perf["scenario"] == scenario)]
    assert len(row) == 1, name
    return float(row["estimate"].iloc[0]), float(row["se"].iloc[0])


# --------------------------------------------------------------------------------------------------
# Performance measures with known answers
# --------------------------------------------------------------------------------------------------


def test_measures_by_hand():
    # estimates 1..4 around truth 2: deviations from the mean -1.5, -.5, .5, 1.5 (sum of squares 5)
    perf = aggregate(rows_for([1, 2, 3, 4], [1, 1, 1, 1], 2.0, half_width=[2, 2, 2, 2], p=[0.01, 0.2, 0.04, 0.5]))
    assert measure(perf, "bias") == pytest.approx((0.5, math.sqrt(5 / 12)))
    assert measure(perf, "empirical_se") == pytest.approx((math.sqrt(5 / 3), math.sqrt(5 / 3) / math.sqrt(6)))
    # squared errors 1, 0, 1, 4: MSE 1.5, deviations -.5, -1.5, -.5, 2.5 (sum of squares 9)
    assert measure(perf, "mse") == pytest.approx((1.5, math.sqrt(9 / 12)))
    assert measure(perf, "model_se") == pytest.approx((1.0, 0.0))
    assert measure(perf, "coverage") == pytest.approx((1.0, 0.0))  # every CI [e - 2, e + 2] holds 2
    assert measure(perf, "power") == pytest.approx((0.5, 0.25))  # p <= .05 twice in 4
    assert measure(perf, "rel_error_model_se_pct")[0] == pytest.approx(100 * (1 / math.sqrt(5 / 3) - 1))


def test_model_se_is_root_mean_variance_with_its_mcse():
    # variances 1 and 3: ModSE = sqrt(2); Var(var) = 2; MCSE = sqrt(2 / (4 * 2 * 2))
    out = performance_measures(
        np.array([0.0, 1.0]),
        np.array([1.0, math.sqrt(3)]),
        np.array([-9.0, -9.0]),
        np.array([9.0, 9.0]),
        np.array([0.5, 0.5]),
        0.0,
        0.05,
    )
    assert out["model_se"] == pytest.approx((math.sqrt(2), math.sqrt(1 / 8)))


def test_coverage_counts_ci_bounds_and_rejection_counts_p_at_alpha():
    # CI half-widths 0.5 around estimates 0, 1, 2, 3 with truth 1: covered by rep 0? no (|0-1| > .5); rep 1 yes;
    # rep 2 no; rep 3 no. p = alpha exactly rejects.
    perf = aggregate(rows_for([0, 1, 2, 3], [1] * 4, 1.0, half_width=[0.5] * 4, p=[0.05, 0.051, 0.9, 0.0]))
    assert measure(perf, "coverage") == pytest.approx((0.25, math.sqrt(0.25 * 0.75 / 4)))
    assert measure(perf, "power")[0] == pytest.approx(0.5)


def test_truth_zero_reports_type_i_error_not_power():
    perf = aggregate(rows_for([0.1, -0.2, 0.3], [1] * 3, 0.0, p=[0.01, 0.3, 0.6]))
    assert "type_i_error" in set(perf["quantity"]) and "power" not in set(perf["quantity"])
    assert measure(perf, "type_i_error")[0] == pytest.approx(1 / 3)


def test_failed_replicates_are_counted_and_left_out():
    rows = rows_for([1, 2, 3, 100], [1] * 4, 2.0, errors=["", "", "", "imputation failed"])
    rows.loc[4] = rows.loc[0]
    rows.loc[4, ["rep", "estimate"]] = [4, np.nan]  # a missing estimate counts as failed too
    perf = aggregate(rows)
    assert measure(perf, "bias")[0] == pytest.approx(0.0)  # mean of 1, 2, 3: the 100 is left out
    assert set(perf["n_rep"]) == {3} and set(perf["n_failed"]) == {2}


def test_non_converged_replicates_are_kept_and_flagged():
    rows = rows_for([1, 2, 3], [1] * 3, 2.0)
    rows.loc[1, "n_not_converged"] = 2
    perf = aggregate(rows)
    assert set(perf["n_flagged"]) == {1} and set(perf["n_rep"]) == {3}


def test_groups_are_separate_and_wald_ci_uses_mcse():
    rows = pd.concat([rows_for([1, 3], [1, 1], 2.0, scenario="a"), rows_for([5, 9], [1, 1], 6.0, scenario="b")])
    perf = aggregate(rows, level=0.90)
    assert measure(perf, "bias", "a")[0] == pytest.approx(0.0) and measure(perf, "bias", "b")[0] == pytest.approx(1.0)
    b = perf[(perf["scenario"] == "b") & (perf["quantity"] == "bias")].iloc[0]
    assert b["ci_high"] - b["estimate"] == pytest.approx(1.6448536269514722 * b["se"])


def test_fewer_than_two_replicates_give_nan_with_a_note():
    perf = aggregate(rows_for([1.0, 2.0], [1, 1], 0.0, errors=["", "boom"]))
    assert perf["estimate"].isna().all() and perf["notes"].str.contains("at least 2 replicates").all()


@pytest.mark.parametrize(
    "bad, message",
    [
        (pd.DataFrame(), "no replicate results"),
        (pd.DataFrame({"scenario": ["s"], "rep": [0]}), "lack column"),
    ],
)
def test_replicate_rows_refuses_bad_input(bad, message):
    with pytest.raises(AnalysisError, match=message):
        replicate_rows(bad)


def test_duplicate_replicate_and_conflicting_truth_are_refused():
    rows = rows_for([1, 2], [1, 1], 2.0)
    with pytest.raises(AnalysisError, match="appears twice"):
        aggregate(pd.concat([rows, rows]))
    rows.loc[1, "truth"] = 3.0
    with pytest.raises(AnalysisError, match="disagree on the truth"):
        aggregate(rows)


def test_performance_table_and_report_show_every_group():
    perf = aggregate(
        pd.concat(
            [
                rows_for([1, 3], [1, 1], 2.0, scenario="a"),
                rows_for([1, 2, 3], [1] * 3, 0.0, scenario="b", errors=["", "x", ""]),
            ]
        )
    )
    table = performance_table(perf)
    assert list(table["scenario"]) == ["a", "b"] and table.loc[0, "bias"] == "0.000 (1.000)"
    study = {
        "replicates": 3,
        "seed": 1,
        "estimators": ["mi_mmrm"],
        "imputations": 5,
        "imputation_method": "pmm",
        "maxit": 5,
        "covariates": ["site"],
        "alpha": 0.05,
        "outcomes": ["gaf_f"],
        "scenarios": [{"name": "a", "true_effects": {"gaf_f": {"post": 2.0}}}, {"name": "b"}],
    }
    page = render_simstudy_report(perf, study)
    assert "<table" in page and "a / mi_mmrm / gaf_f at post: 2 replicates found, 3 configured" in page
    assert "b / mi_mmrm / gaf_f at post: 1 of 3 replicates failed" in page


# --------------------------------------------------------------------------------------------------
# Configuration and scenarios
# --------------------------------------------------------------------------------------------------


def test_shipped_config_is_valid_and_resolves(default_config):
    study = yaml.safe_load((PROJECT / "config" / "simulation.yaml").read_text())
    resolved = resolve_study_config(study, default_config)
    assert resolved["trial_model"]["sites"] == default_config["simulate"]["trial"]["sites"]
    assert resolved["replicates"] == 20 and len(resolved["scenarios"]) >= 2


@pytest.mark.parametrize(
    "change, message",
    [
        ({"replicatez": 3}, "unknown|Additional properties"),
        ({"outcomes": ["no_such_scale"]}, "no_such_scale"),
        ({"scenarios": [{"name": "a"}, {"name": "a"}]}, "used twice"),
        ({"scenarios": [{"name": "a", "true_effects": {"gaff": {"post": 1}}}]}, "gaff"),
        ({"scenarios": [{"name": "a b"}]}, "does not match"),
        ({"imputations": 1}, "imputations"),
    ],
)
def test_invalid_configs_name_the_key(change, message):
    study = {**yaml.safe_load((PROJECT / "config" / "simulation.yaml").read_text()), **change}
    with pytest.raises(InputError, match=message):
        validate_study_config(study)


def test_scenario_model_overrides_effects_attrition_and_size(default_config):
    base = default_config["simulate"]["trial"]
    model = scenario_trial_model(
        base,
        {"name": "x", "true_effects": {"psp": {"post": 1.0}}, "visit_missing": {"post": 0.5}, "n_participants": 100},
    )
    assert model["true_effects"] == {"psp": {"post": 1.0}}  # gaf_f's base effect is gone
    assert model["visit_missing"] == {"post": 0.5, "fu12": base["visit_missing"]["fu12"]}
    assert sum(model["sites"].values()) == 100 == model["n_participants"]
    assert base["true_effects"]["gaf_f"]["post"] == 3.0  # the base is not modified


def test_scale_sites_largest_remainder():
    assert scale_sites({"a": 1, "b": 1, "c": 1}, 10) == {"a": 4, "b": 3, "c": 3}
    assert scale_sites({"a": 54, "b": 63, "c": 81}, 198) == {"a": 54, "b": 63, "c": 81}
    with pytest.raises(InputError, match="too small"):
        scale_sites({"a": 1, "b": 1}, 3)


def test_replicate_seeds_differ_by_scenario_and_rep():
    seeds = {replicate_seed(1, s, r) for s in ("a", "b") for r in range(50)}
    assert len(seeds) == 100 and replicate_seed(1, "a", 3) == replicate_seed(1, "a", 3)


def test_run_replicate_is_deterministic_and_carries_the_truth():
    study = load_study_config(
        overrides={
            "imputations": 2,
            "scenarios": [{"name": "small", "true_effects": {"gaf_f": {"post": 4.0}}, "n_participants": 60}],
        }
    )
    a = run_replicate(study, "small", 3, seed=11)
    b = run_replicate(study, study["scenarios"][0], 3, seed=11)
    assert a == b and a["n_participants"] == 60
    truth = {(r["estimator"], r["timepoint"]): r["truth"] for r in a["rows"]}
    assert truth == {
        ("mi_mmrm", "post"): 4.0,
        ("mi_mmrm", "fu12"): 0.0,
        ("complete_case", "post"): 4.0,
        ("complete_case", "fu12"): 0.0,
    }
    assert all(r["error"] == "" and r["ci_low"] < r["estimate"] < r["ci_high"] for r in a["rows"])
    c = run_replicate(study, "small", 4, seed=11)
    assert c["rows"][0]["estimate"] != a["rows"][0]["estimate"]
    with pytest.raises(InputError, match="no scenario named"):
        run_replicate(study, "nope", 0, seed=11)


def test_profiles_ask_for_the_same_per_rule_resources():
    """profiles/default overrides a --profile for workflow/simulation.smk, so the two must not disagree."""
    profiles = PROJECT / "workflow" / "profiles"
    local = yaml.safe_load((profiles / "default" / "config.yaml").read_text())
    slurm = yaml.safe_load((profiles / "slurm" / "config.yaml").read_text())
    assert local["set-resources"] == slurm["set-resources"]
    rules = {
        "trial",
        "meta",
        "services",
        "implementation",
        "audit",
        "clean",
        "simulate",
        "report",
        "simstudy_replicate",
        "simstudy_aggregate",
    }
    assert rules <= set(slurm["set-resources"])
    assert all({"mem_mb", "runtime", "cpus_per_task"} <= set(r) for r in slurm["set-resources"].values())
    assert not {"default-resources", "resources", "executor"} & set(local)
