"""The services stage on the synthetic default data: tables, flags, HTML, privacy, degenerate input.

The statistics are pinned against R in tests/validation/test_services_vs_r.py; here we check that the
stage runs them per outcome, reports what they give, and turns every failure into a flag or a clear error.
"""

import json

import numpy as np
import pandas as pd
import pytest

from imrstats.config import section_settings
from imrstats.errors import AnalysisError, SettingsError
from imrstats.pipeline.registry import with_section
from imrstats.pipeline.stage_result import to_json, write_stage
from imrstats.services import likelihoods as countmodels
from imrstats.services import models as services
from imrstats.services.stage import MODELS, rootogram_top, run_services_stage


@pytest.fixture(scope="module")
def tables(default_clean_tables):
    return default_clean_tables


@pytest.fixture(scope="module")
def result(tables):
    return with_section(run_services_stage(tables, {}, seed=1))


def _with_follow_up(tables, outcome, values):
    """A copy of the tables with the follow-up counts of `outcome` replaced (values: id -> count)."""
    service_use = tables["service_use"].copy()
    follow = service_use["period"] == "follow_up"
    service_use.loc[follow, outcome] = service_use.loc[follow, "id"].map(values).astype("Int64").to_numpy()
    return {**tables, "service_use": service_use}


def _arm_of(tables):
    return tables["participants"].set_index("id")["arm"]


def _models(result, outcome):
    return result.tables["models"].query("outcome == @outcome").set_index("model")


# --- the default run -------------------------------------------------------------------------


def test_every_outcome_gets_all_tables_and_a_rootogram_panel(result):
    outcomes = list(services.COUNT_OUTCOMES)
    assert result.stage == "services"
    assert result.tables["reported"]["outcome"].tolist() == outcomes
    assert len(result.tables["models"]) == 4 * len(outcomes)
    assert set(result.tables["descriptives"]["arm"]) == {"IMR", "TAU", "all"}
    assert len(result.tables["overdispersion"]) == 2 * len(outcomes)
    assert set(result.figures) == {f"rootogram_{o}" for o in outcomes}
    assert all(len(fig.axes) == 4 for fig in result.figures.values())
    root = result.tables["rootograms"]
    for (outcome, model), part in root.groupby(["outcome", "model"]):
        assert part["observed"].sum() == 198 and len(part) <= section_settings("services")["rootogram_max_bars"]


def test_reported_irr_is_the_chosen_models_own_estimate(result, tables):
    frame = services.services_frame(tables["participants"], tables["service_use"])
    fitters = {
        "poisson": services.fit_poisson,
        "nb2": services.fit_nb2,
        "zinb": services.fit_zinb,
        "hurdle_nb": services.fit_hurdle_nb,
    }
    for row in result.tables["reported"].itertuples():
        fit = fitters[row.model](frame, row.outcome)
        irr = fit.effects[fit.effects["part"] == "count"].iloc[0]
        assert row.irr == pytest.approx(irr["estimate"], rel=1e-10)
        assert (row.irr_ci_low, row.irr_ci_high) == pytest.approx((irr["ci_low"], irr["ci_high"]), rel=1e-10)


def test_aic_rule_picks_the_lowest_aic_among_clean_models(result):
    for outcome in services.COUNT_OUTCOMES:
        models = _models(result, outcome)
        eligible = models[models["status"].isin(["fitted", "reported"])]
        assert models.index[models["status"] == "reported"].tolist() == [eligible["aic"].idxmin()]
        assert eligible["delta_aic"].min() == pytest.approx(0, abs=1e-9)


def test_zero_parts_and_dispersion_are_reported(result):
    models = result.tables["models"].set_index(["outcome", "model"])
    for outcome in services.COUNT_OUTCOMES:
        assert np.isnan(models.loc[(outcome, "poisson"), "theta"])
        for name in ("nb2", "zinb", "hurdle_nb"):
            row = models.loc[(outcome, name)]
            assert row["theta"] > 0 and row["theta_se"] > 0
        assert models.loc[(outcome, "zinb"), "zero_part"].startswith("OR IMR vs TAU of a structural zero")
        assert models.loc[(outcome, "hurdle_nb"), "zero_part"].startswith("OR IMR vs TAU of any event")
    assert set(result.tables["effects"]["part"]) == {"count", "zero"}


def test_flagged_models_are_flagged_and_never_reported(result):
    models = result.tables["models"]
    flagged = models[models["status"] == "flagged"]
    assert len(flagged) == sum(": flagged, shown but never reported" in f for f in result.flags)
    for row in flagged.itertuples():
        assert any(f.startswith(f"{row.outcome}, ") and "flagged" in f for f in result.flags)
        assert row.note  # the reason is in the table too
    if result.flags:
        assert result.html.count("<div class='flag'>") >= 1


def test_html_section_has_methods_tables_and_figures(result):
    html = result.html
    assert html.startswith("<h2>Service use")
    # one method line per table (a wide table shown in parts counts once)
    assert html.count("<table") - html.count("(continued; the first columns repeated)") == html.count("Method:")
    for outcome in services.COUNT_OUTCOMES:
        assert f"figures/rootogram_{outcome}.png" in html
    assert "Vuong" in html and "Pearson chi-square" in html and "lowest AIC" in html


def test_summary_names_rule_and_every_outcome(result):
    assert "chosen by rule 'aic'" in result.summary
    for row in result.tables["reported"].itertuples():
        assert f"{row.outcome:<21} {row.model}" in result.summary


def test_no_participant_id_leaks(result, tables, tmp_path):
    written = write_stage(result, tmp_path)
    texts = [p.read_text() for key, p in written.items() if not key.startswith("figure:")]
    texts += [to_json(result.record), result.html, result.summary]
    ids = set(tables["participants"]["id"]) | set(tables["service_use"]["id"])
    for text in texts:
        assert not [i for i in ids if i in text]
    json.loads(written["json"].read_text())  # valid JSON
    assert (tmp_path / "figures" / "rootogram_bed_days.png").stat().st_size > 0


def test_stage_is_deterministic(result, tables):
    again = with_section(run_services_stage(tables, {}, seed=99))
    for name, frame in result.tables.items():
        pd.testing.assert_frame_equal(frame, again.tables[name])
    assert to_json(result.record) == to_json(again.record) and result.html == again.html


# --- settings ------------------------------------------------------------------------------


def test_settings_are_checked():
    for bad, message in (
        ({"rule": "aic"}, "services.rule: unknown key"),
        ({"selection_rule": "lowest_p"}, "services.selection_rule: must be one of aic, bic, vuong"),
        ({"alpha": 1.5}, "services.alpha: must be < 1"),
        ({"outcomes": []}, "services.outcomes: must list at least 1 item"),
        ({"rootogram_max_bars": 1}, "services.rootogram_max_bars: must be >= 2"),
    ):
        with pytest.raises(SettingsError, match=message):
            run_services_stage({}, bad)


def test_vuong_rule_robust_poisson_and_intercept_only_zero_part(tables):
    out = run_services_stage(
        tables,
        {
            "outcomes": ["er_visits"],
            "selection_rule": "vuong",
            "robust_poisson": True,
            "hurdle_zero_terms": [],
            "overdispersion_trafo": None,
        },
    )
    reported = out.tables["reported"].iloc[0]
    assert "NB2 over Poisson: LR" in reported["reason"]
    poisson = _models(out, "er_visits").loc["poisson"]
    assert "robust HC0" in poisson["method"]
    hurdle_zero = out.tables["coefficients"].query("model == 'hurdle_nb' and part == 'zero'")
    assert hurdle_zero["term"].tolist() == ["(Intercept)"]
    assert out.tables["overdispersion"]["quantity"].tolist() == ["Pearson chi2/df", "dispersion c"]


# --- sparse and degenerate data: flags, and the other outcomes still run ----------------------


def _assert_others_ran(out, broken):
    for row in out.tables["reported"].itertuples():
        if row.outcome != broken:
            assert row.model in MODELS and np.isfinite(row.irr)


def test_all_zero_outcome_is_flagged_and_others_run(tables):
    data = _with_follow_up(tables, "er_visits", {i: 0 for i in tables["participants"]["id"]})
    out = with_section(run_services_stage(data, {"outcomes": ["admissions", "er_visits"]}))
    assert "er_visits: no model could be fitted; descriptives only" in out.flags
    assert any("is 0 for all 198" in f for f in out.flags)
    assert out.tables["reported"].set_index("outcome").loc["er_visits", "model"] == "none"
    assert set(_models(out, "er_visits")["status"]) == {"not fitted"}
    assert "rootogram_er_visits" not in out.figures and "No rootogram" in out.html
    desc = out.tables["descriptives"].query("outcome == 'er_visits'")
    assert (desc["share_zero"] == 1).all()
    _assert_others_ran(out, "er_visits")


def test_arm_without_events_is_flagged(tables):
    arm = _arm_of(tables)
    values = {i: (0 if arm[i] == "TAU" else 1 + k % 3) for k, i in enumerate(arm.index)}
    out = run_services_stage(_with_follow_up(tables, "admissions", values), {"outcomes": ["admissions", "er_visits"]})
    notes = _models(out, "admissions")["note"]
    for name in ("poisson", "nb2", "zinb"):
        assert "no events at all where arm = TAU" in notes[name]
    assert "perfect separation" in notes["hurdle_nb"]
    assert sum(f.startswith("admissions, ") and "not fitted" in f for f in out.flags) == 4
    _assert_others_ran(out, "admissions")


def test_perfect_separation_only_stops_the_hurdle_model(tables):
    arm = _arm_of(tables)
    original = tables["service_use"].query("period == 'follow_up'").set_index("id")["er_visits"]
    values = {i: (max(int(original[i]), 1) if arm[i] == "IMR" else int(original[i])) for i in arm.index}
    out = run_services_stage(_with_follow_up(tables, "er_visits", values), {"outcomes": ["er_visits"]})
    models = _models(out, "er_visits")
    assert models.loc["hurdle_nb", "status"] == "not fitted"
    assert "perfect separation" in models.loc["hurdle_nb", "note"]
    assert models.loc[["poisson", "nb2"], "status"].isin(["fitted", "reported"]).all()
    assert any("Hurdle NB2: not fitted" in f for f in out.flags)
    assert "(not fitted)" in out.figures["rootogram_er_visits"].axes[3].get_title()


def test_missing_counts_are_flagged_not_imputed(tables):
    ids = tables["participants"]["id"]
    original = tables["service_use"].query("period == 'follow_up'").set_index("id")["bed_days"]
    values = {i: (pd.NA if k < 5 else original[i]) for k, i in enumerate(ids)}
    out = run_services_stage(_with_follow_up(tables, "bed_days", values), {"outcomes": ["bed_days"]})
    assert any("5 missing values" in f for f in out.flags)
    desc = out.tables["descriptives"].set_index("arm")
    assert desc.loc["all", "n"] == 193 and desc.loc["all", "n_missing"] == 5


def test_non_convergence_is_flagged_and_no_model_is_reported(tables, monkeypatch):
    real = countmodels.maximize

    def never_converges(*args, **kwargs):
        fit = real(*args, **kwargs)
        return countmodels.MaxResult(fit.params, fit.loglik, fit.hessian, False, "forced by the test")

    monkeypatch.setattr(countmodels, "maximize", never_converges)
    out = with_section(run_services_stage(tables, {"outcomes": ["er_visits"]}))
    assert set(_models(out, "er_visits")["status"]) == {"flagged"}
    assert sum("optimiser did not converge: forced by the test" in f for f in out.flags) == 4
    assert any(f.startswith("er_visits: no model is reported") for f in out.flags)
    assert out.tables["reported"].iloc[0]["model"] == "none"
    assert "<div class='flag'>" in out.html


def test_collinear_covariate_is_flagged_per_model(tables):
    participants = tables["participants"].assign(arm_copy=tables["participants"]["arm"])
    out = run_services_stage(
        {**tables, "participants": participants}, {"outcomes": ["er_visits"], "covariates": ["arm_copy"]}
    )
    assert all("rank deficient" in n for n in _models(out, "er_visits")["note"])
    assert out.tables["reported"].iloc[0]["model"] == "none"


def test_absent_outcome_column_is_flagged_and_the_rest_runs(tables):
    out = with_section(run_services_stage(tables, {"outcomes": ["er_visits", "day_care_visits"]}))
    assert "outcome 'day_care_visits' is not a column of service_use; it is left out" in out.flags
    assert out.tables["reported"]["outcome"].tolist() == ["er_visits"]
    assert "day_care_visits" in out.html


def test_input_that_stops_the_whole_stage_raises_a_clear_error(tables):
    with pytest.raises(AnalysisError, match="needs the cleaned table"):
        run_services_stage({"participants": tables["participants"]}, {})
    with pytest.raises(AnalysisError, match="none of the configured outcomes"):
        run_services_stage(tables, {"outcomes": ["day_care_visits"]})
    no_pre = tables["service_use"].query("period != 'pre'")
    with pytest.raises(AnalysisError, match="prior_admissions"):
        run_services_stage({**tables, "service_use": no_pre}, {})
    bad_arm = tables["participants"].assign(arm=tables["participants"]["arm"].str.lower())
    with pytest.raises(AnalysisError, match="arm other than TAU or IMR"):
        run_services_stage({**tables, "participants": bad_arm}, {})
    one_arm = tables["participants"].assign(arm="IMR")
    out = run_services_stage({**tables, "participants": one_arm}, {"outcomes": ["er_visits"]})
    assert any("only one arm" in f for f in out.flags)


# --- rootogram grouping --------------------------------------------------------------------


def test_rootogram_grouping_keeps_zero_and_totals(tables):
    frame = services.services_frame(tables["participants"], tables["service_use"])
    fit = services.fit_nb2(frame, "bed_days")
    y_max = int(fit.observed_counts.max())
    top, width = rootogram_top(y_max, 30), -(-y_max // 29)
    assert top % width == 0 and y_max <= top < y_max + width
    assert rootogram_top(8, 30) == 8
    long = services.rootogram_data(fit, top)
    grouped = services.bin_rootogram_data(long, 30)
    assert len(grouped) <= 30 and grouped["count_low"].iloc[0] == 0 and grouped["count_high"].iloc[0] == 0
    assert grouped["observed"].sum() == long["observed"].sum() == 198
    assert grouped["expected"].sum() == pytest.approx(long["expected"].sum(), rel=1e-12)
    assert grouped["width"].iloc[1:].nunique() == 1  # equal-width groups after zero
    assert np.allclose(grouped["hang_bottom"], np.sqrt(grouped["expected"]) - np.sqrt(grouped["observed"]))
    short = services.rootogram_data(services.fit_nb2(frame, "er_visits"))
    assert services.bin_rootogram_data(short, 30)["count"].tolist() == short["count"].tolist()
    with pytest.raises(AnalysisError, match="at least 2 bars"):
        services.bin_rootogram_data(short, 1)
