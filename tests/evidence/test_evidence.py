"""The trial in the pooled evidence: conversion, settings, the stage on a fake trial and on the real trial
stage's output (default synthetic data, small m), privacy, degenerate input. Numbers against R are in
tests/validation/test_evidence_vs_r.py."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from imrstats.errors import AnalysisError, InputError, SettingsError
from imrstats.evidence.stage import (
    evidence_settings,
    predictive_percentiles_frequentist,
    read_trial_results,
    run_evidence_stage,
    smd_from_mean_difference,
    trial_effects_for_meta,
    with_trial,
)
from imrstats.meta import effect_sizes as es
from imrstats.meta.random_effects import rma
from imrstats.pipeline.registry import render_section, with_section
from imrstats.pipeline.stage_result import to_json, write_stage

NO_BAYES = {"bayes": {"enabled": False}}
TWO = {"imrs_client": ["imrs_client"], "functioning": ["gaf_f", "sofas"]}


def fake_trial(sd_tau=8.0) -> dict:
    itt = pd.DataFrame(
        {
            "outcome": ["imrs_client", "gaf_f"],
            "timepoint": ["fu12", "fu12"],
            "estimate": [1.2, 2.5],
            "se": [1.1, 1.9],
            "df": [70.0, 60.0],
        }
    )
    rows = []
    for outcome, (mean, sd) in {"imrs_client": (54.0, 7.5), "gaf_f": (50.0, 12.0)}.items():
        for tp in ("baseline", "post", "fu12"):
            rows.append({"outcome": outcome, "timepoint": tp, "arm": "IMR", "n": 60, "mean": mean + 1, "sd": sd})
            rows.append(
                {
                    "outcome": outcome,
                    "timepoint": tp,
                    "arm": "TAU",
                    "n": 58,
                    "mean": mean,
                    "sd": sd_tau if outcome == "imrs_client" else sd,
                }
            )
    return {"trial_itt_contrasts": itt, "trial_descriptives": pd.DataFrame(rows)}


# ---------------------------------------------------------------------------------------------
# Conversion


def test_unadjusted_difference_reduces_to_escalc_smd():
    n1, n2, s1, s2, m1, m2 = 40, 45, 9.0, 11.0, 52.0, 49.0
    sp = np.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (n1 + n2 - 2))
    ours = smd_from_mean_difference(m1 - m2, sp * np.sqrt(1 / n1 + 1 / n2), sp, n1 + n2 - 2, n1 + n2)
    ref = es.smd(m1, s1, n1, m2, s2, n2)
    assert ours["yi"] == pytest.approx(float(ref.yi), rel=1e-12)
    assert ours["vi"] == pytest.approx(float(ref.vi), rel=1e-12)


def test_lower_is_better_flips_the_sign_only():
    up = smd_from_mean_difference(-3.0, 2.0, 15.0, 100, 102)
    down = smd_from_mean_difference(-3.0, 2.0, 15.0, 100, 102, higher_is_better=False)
    assert down["yi"] == pytest.approx(-up["yi"]) and down["vi"] == pytest.approx(up["vi"]) and down["yi"] > 0


def test_degenerate_conversion_raises():
    with pytest.raises(AnalysisError, match="must be > 0"):
        smd_from_mean_difference(1.0, 1.0, 0.0, 10, 12)
    with pytest.raises(AnalysisError, match="missing value"):
        smd_from_mean_difference(float("nan"), 1.0, 2.0, 10, 12)


def test_effects_table_rows_and_columns():
    eff = trial_effects_for_meta(
        fake_trial(), {"evidence": {"timepoints": ["fu12", "post"]}, "meta": {"outcomes": TWO}}
    )
    assert len(eff) == 2 * 2 * 2  # labels x analyses x visits
    post_itt = eff.loc[(eff["analysis"] == "itt") & (eff["timepoint"] == "post")]
    assert post_itt["problem"].str.contains("no ITT contrast").all() and post_itt["yi"].isna().all()
    ok = eff.loc[eff["problem"] == ""]
    assert set(ok["instrument"]) == {"imrs_client", "gaf_f"}
    assert (ok["sd_source"].str.contains("observed outcome at")).all()
    assert np.allclose(ok["sei"] ** 2, ok["vi"])
    cc = ok.loc[(ok["analysis"] == "complete_case") & (ok["instrument"] == "gaf_f")].iloc[0]
    assert cc["md"] == pytest.approx(1.0) and cc["yi"] == pytest.approx(float(es.smd(51, 12, 60, 50, 12, 58).yi))


def test_record_and_tables_give_the_same_effects():
    tables = fake_trial()
    record = {
        "outcomes": {
            k: {"itt": {"contrasts": g.to_dict("records")}} for k, g in tables["trial_itt_contrasts"].groupby("outcome")
        },
        "descriptives": tables["trial_descriptives"].to_dict("records"),
    }
    s = {"meta": {"outcomes": TWO}}
    a, b = trial_effects_for_meta(tables, s), trial_effects_for_meta(record, s)
    pd.testing.assert_frame_equal(
        a.sort_values(["outcome_label", "analysis"]).reset_index(drop=True),
        b.sort_values(["outcome_label", "analysis"]).reset_index(drop=True),
    )


def test_with_trial_drops_the_replaced_study_and_appends_last():
    pub = pd.DataFrame(
        {
            "study": ["A 2001", "Jensen 2019"],
            "year": [2001, 2019],
            "yi": [0.1, 0.2],
            "vi": [0.04, 0.05],
            "sei": [0.2, np.sqrt(0.05)],
            "measure": "SMD",
        }
    )
    row = {"study": "Mine", "yi": 0.3, "vi": 0.02, "sei": np.sqrt(0.02)}
    out = with_trial(pub, row, year=2015, replaces_study="Jensen 2019")
    assert list(out["study"]) == ["A 2001", "Mine"] and out["is_trial"].tolist() == [False, True]
    assert len(with_trial(pub, row, year=2030)) == 3


def test_frequentist_percentile_needs_two_studies_and_orders_correctly():
    fit = rma([0.1, 0.3, 0.5], [0.02, 0.03, 0.04], method="REML", knha=True)
    low, high = (predictive_percentiles_frequentist(fit, y, 0.02) for y in (-1.0, 2.0))
    assert low["pct_observed"] < 0.05 < 0.95 < high["pct_observed"]
    assert low["pct_true"] < low["pct_observed"]  # own sampling error widens the distribution
    with pytest.raises(AnalysisError, match="at least 2"):
        predictive_percentiles_frequentist(rma([0.1], [0.02]), 0.0, 0.01)


# ---------------------------------------------------------------------------------------------
# Settings and bad input


def test_settings_defaults_and_errors():
    ev, meta = evidence_settings(None)
    assert ev["enabled"] and ev["analyses"] == ["itt", "complete_case"] and ev["replaces_study"] is None
    assert meta["method"] == "REML" and meta["bayes"]["tau_prior"] == "rhodes_mental_health_nonpharm"
    assert evidence_settings({"label": "X"})[0]["label"] == "X"  # evidence section alone
    for bad, match in (
        ({"evidence": {"labl": "x"}}, "evidence.labl: unknown key"),
        ({"evidence": {"analyses": ["per_protocol"]}}, "analyses"),
        ({"evidence": {"timepoints": "fu12"}}, "timepoints"),
        ({"evidence": {"standardise_by": "sd"}}, "standardise_by"),
        ({"evidence": {"year": "2020"}}, "year"),
        ({"evidence": {"label": " "}}, "label"),
        ({"evidence": {"replaces_study": 3}}, "replaces_study"),
        ({"meta": {"bayes": {"draw": 5}}}, "meta.bayes.draw: unknown key"),
    ):
        with pytest.raises(SettingsError, match=match):
            evidence_settings(bad)


def test_disabled_needs_no_trial(tmp_path):
    res = run_evidence_stage(None, {"evidence": {"enabled": False}}, trial_dir=tmp_path / "nothing")
    assert res.tables == {} and "Not run" in render_section(res) and "off" in res.summary


def test_missing_trial_results_raise(tmp_path):
    with pytest.raises(InputError, match="run the trial stage first"):
        read_trial_results(tmp_path / "none")
    with pytest.raises(InputError, match="trial stage's output"):
        trial_effects_for_meta({"something": pd.DataFrame()}, None)


def test_read_trial_results_from_a_written_stage(tmp_path):
    tables = fake_trial()
    for name, frame in tables.items():
        (tmp_path / "tables").mkdir(exist_ok=True)
        frame.to_csv(tmp_path / "tables" / f"{name}.csv", index=False)
    back = read_trial_results(tmp_path)
    a = trial_effects_for_meta(back, {"meta": {"outcomes": TWO}})
    b = trial_effects_for_meta(tables, {"meta": {"outcomes": TWO}})
    assert np.allclose(a["yi"], b["yi"])


def test_degenerate_outcome_is_flagged_and_the_rest_runs():
    trial = fake_trial()
    d = trial["trial_descriptives"]
    d.loc[d["outcome"] == "imrs_client", "sd"] = 0.0  # both arms SD 0 for one outcome
    res = run_evidence_stage(
        None, {"evidence": {"analyses": ["complete_case"]}, "meta": {"outcomes": TWO, **NO_BAYES}}, trial=trial
    )
    assert any("imrs_client" in f and "SD is 0" in f for f in res.flags)
    assert "<div class='flag'>" in render_section(res)
    pooled = res.tables["evidence_pooled"]
    assert set(pooled["outcome_label"]) == {"functioning"}
    assert pooled.loc[pooled["framework"].str.startswith("Bayesian"), "estimate_with"].isna().all()


def test_no_overlap_and_unknown_replaced_study_are_flagged():
    res = run_evidence_stage(
        None,
        {
            "evidence": {"replaces_study": "Nobody 1999"},
            "meta": {"outcomes": {"hospitalisation": ["hospitalisation"]}, **NO_BAYES},
        },
        trial=fake_trial(),
    )
    assert any("nothing to compare" in f for f in res.flags)
    assert any("Nobody 1999" in f and "matches no pooled" in f for f in res.flags)
    assert "hospitalisation: not compared" in res.summary


def test_frequentist_only_stage_on_fake_trial():
    res = run_evidence_stage(
        None, {"evidence": {"label": "Mine", "year": 2025}, "meta": {"outcomes": TWO, **NO_BAYES}}, trial=fake_trial()
    )
    assert not res.flags
    pooled = res.tables["evidence_pooled"]
    freq = pooled.loc[~pooled["framework"].str.startswith("Bayesian")]
    assert (freq["k_with"] == freq["k_without"] + 1).all()
    assert freq["studies_with"].str.endswith("Mine (2025)").all()
    cum = res.tables["evidence_cumulative"]
    last = cum.groupby(["outcome_label", "analysis"]).tail(1)
    assert last["added"].str.startswith("Mine").all()
    assert {f"evidence_cumulative_{x}_fu12" for x in TWO} | {"risk_of_bias"} == set(res.figures)
    assert "figures/evidence_cumulative_functioning_fu12.png" in render_section(res)
    json.loads(to_json(res.record))


# ---------------------------------------------------------------------------------------------
# The real trial stage on the default synthetic data (small m), Bayesian fits included


@pytest.fixture(scope="module")
def clean(default_clean_tables):
    return default_clean_tables


@pytest.fixture(scope="module")
def real(clean, default_config):
    from imrstats.trial.stage import run_trial_stage

    trial = run_trial_stage(
        clean,
        {
            "outcomes": ["gaf_f", "imrs_client"],
            "imputations": 5,
            "tipping_outcomes": [],
            "subgroup_outcomes": [],
            "per_protocol_outcomes": [],
            "subgroups": [],
        },
        seed=3,
    )
    meta = {
        **default_config["meta"],
        "outcomes": TWO,
        "bayes": {**default_config["meta"]["bayes"], "sensitivity_priors": []},
    }
    return with_section(
        run_evidence_stage(
            clean,
            {"evidence": {"label": "Synthetic trial", "replaces_study": "Jensen 2019"}, "meta": meta},
            trial=trial,
            seed=4,
        )
    )


def test_real_trial_stage_tables_figures_html(real, tmp_path):
    assert not real.flags, real.flags
    assert {
        "evidence_trial_effects",
        "evidence_pooled",
        "evidence_surprise",
        "evidence_cumulative",
        "evidence_diagnostics",
    } <= set(real.tables)
    pooled = real.tables["evidence_pooled"]
    assert len(pooled) == 2 * 2 * 2  # labels x analyses x frameworks
    assert not pooled["studies_with"].str.contains("Jensen").any()
    assert "its published row was dropped" in real.html
    surprise = real.tables["evidence_surprise"].set_index("outcome_label")
    ok = surprise.loc["imrs_client"]  # Levitt, Roosenschoon, Wong remain as the reference
    assert (ok["k_reference"] == 3).all()
    assert ok["bayes_pct_true"].between(0, 1).all() and ok["freq_pct_observed"].between(0, 1).all()
    alone = surprise.loc["functioning"]  # only Wong 2023 remains: no predictive distribution
    assert alone["bayes_pct_true"].isna().all() and alone["freq_pct_true"].isna().all()
    assert real.summary.count("functioning: 1 reference study") == 1
    assert real.tables["evidence_diagnostics"]["passed"].all()
    assert any(name.startswith("evidence_predictive_imrs_client") for name in real.figures)
    written = write_stage(real, tmp_path)
    assert (tmp_path / "figures" / "evidence_predictive_imrs_client_fu12.png").stat().st_size > 1000
    assert written["html"].read_text().count("<table") >= 4
    # GRADE on the shipped risk-of-bias tables: the primary outcome's label (gaf_f: functioning) first
    sof = real.tables["evidence_summary_of_findings"]
    assert list(sof["outcome_label"]) == ["functioning", "imrs_client"]
    assert sof["certainty"].isin(["high", "moderate", "low", "very low"]).all()
    assert (real.tables["evidence_grade"].groupby("outcome_label").size() == 5).all()
    assert (tmp_path / "figures" / "risk_of_bias.png").stat().st_size > 1000
    assert "figures/risk_of_bias.png" in written["html"].read_text()


def test_no_participant_id_leaks(real, clean, tmp_path):
    write_stage(real, tmp_path)
    text = "\n".join(p.read_text() for p in tmp_path.rglob("*") if p.suffix in (".csv", ".json", ".html", ".txt"))
    ids = set(clean["participants"]["id"].astype(str))
    leaked = [i for i in ids if i in text]
    assert not leaked, leaked[:5]


# ---------------------------------------------------------------------------------------------
# The meta stage's published-only fits are reused, not refitted


REUSE_META = {
    "outcomes": TWO,
    "bayes": {"sensitivity_priors": [], "cumulative": False, "implementation": {"enabled": False}},
}


def _meta_outputs(tmp_path, meta: dict, seed: int):
    from imrstats.meta.bayes_stage import run_meta_stage_with_bayes, write_posteriors

    result = run_meta_stage_with_bayes(None, meta, seed=seed)
    # the evidence stage reads result.json and the posteriors: the figures are not rendered here
    write_stage(dataclasses.replace(result, figures={}), tmp_path)
    write_posteriors(result, tmp_path)
    return result


def _counting_fit_exact(monkeypatch) -> list:
    from imrstats.meta import bayes_exact

    calls, original = [], bayes_exact.fit_exact
    monkeypatch.setattr(bayes_exact, "fit_exact", lambda *a, **k: calls.append(len(a[0])) or original(*a, **k))
    return calls


def test_published_only_fits_come_from_the_meta_outputs_not_refitted(tmp_path, monkeypatch):
    meta = _meta_outputs(tmp_path / "meta", REUSE_META, seed=5)
    calls = _counting_fit_exact(monkeypatch)
    settings = {"evidence": {"label": "Mine", "year": 2025}, "meta": REUSE_META}
    alone = run_evidence_stage(None, settings, trial=fake_trial(), seed=5)
    fitted_alone = list(calls)
    calls.clear()
    reused = run_evidence_stage(None, settings, trial=fake_trial(), seed=5, meta_dir=tmp_path / "meta")
    # without the meta outputs: per outcome one published-only fit (k published) and two with the trial (k + 1)
    published_k = sorted(int(meta.posteriors[label].k) for label in TWO)
    assert sorted(fitted_alone) == sorted(published_k + [k + 1 for k in published_k for _ in range(2)])
    # with them: only the fits with the trial added
    assert sorted(calls) == sorted(k + 1 for k in published_k for _ in range(2))
    assert reused.record["reused_meta_fits"] == sorted(TWO) and alone.record["reused_meta_fits"] == []
    # and the numbers are the same, to the last bit (same seed path, same exact draws)
    for name in ("evidence_pooled", "evidence_surprise", "evidence_cumulative", "evidence_trial_effects"):
        pd.testing.assert_frame_equal(alone.tables[name], reused.tables[name], check_exact=True)
    diag = reused.tables["evidence_diagnostics"]
    assert diag.loc[diag["analysis"] == "without", "source"].str.contains("meta stage's fit").all()
    pooled = reused.tables["evidence_pooled"]
    bayes = pooled.loc[pooled["framework"].str.startswith("Bayesian")]
    meta_mu = meta.tables["bayes_pooled"].set_index(["outcome_label", "quantity"])["estimate"]
    for _, row in bayes.iterrows():
        assert row["estimate_without"] == meta_mu[(row["outcome_label"], "mu")]
        assert row["mcse_without"] == 0.0 and "exact, quadrature" in row["method"]


def test_meta_outputs_that_do_not_match_are_refitted_with_a_note(tmp_path, monkeypatch):
    """Meta outputs made with another tau prior (or another seed) are not taken: the stage fits the published
    studies itself, says why, and its numbers are those of its own settings."""
    other = {**REUSE_META, "bayes": {**REUSE_META["bayes"], "tau_prior": "half_normal_0.5"}}
    _meta_outputs(tmp_path / "meta", other, seed=5)
    _meta_outputs(tmp_path / "meta_seed", REUSE_META, seed=6)
    settings = {"evidence": {"label": "Mine", "year": 2025}, "meta": REUSE_META}
    alone = run_evidence_stage(None, settings, trial=fake_trial(), seed=5)
    calls = _counting_fit_exact(monkeypatch)
    for folder, differs in (("meta", "prior_tau"), ("meta_seed", "seed")):
        calls.clear()
        res = run_evidence_stage(None, settings, trial=fake_trial(), seed=5, meta_dir=tmp_path / folder)
        assert res.record["reused_meta_fits"] == [] and len(calls) == 6
        assert any(f"differs in {differs}; fitted here instead" in n for n in res.record["notes"])
        pd.testing.assert_frame_equal(alone.tables["evidence_pooled"], res.tables["evidence_pooled"])
    _meta_outputs(tmp_path / "meta_partial", REUSE_META, seed=5)
    (tmp_path / "meta_partial" / "posteriors" / "bayes_imrs_client.nc").unlink()
    res = run_evidence_stage(None, settings, trial=fake_trial(), seed=5, meta_dir=tmp_path / "meta_partial")
    assert res.record["reused_meta_fits"] == ["functioning"]
    assert any("imrs_client: the meta stage wrote no published-only posterior" in n for n in res.record["notes"])
    pd.testing.assert_frame_equal(alone.tables["evidence_pooled"], res.tables["evidence_pooled"])
    (tmp_path / "meta" / "result.json").write_text("{not json")
    with pytest.raises(InputError, match="the meta stage's result cannot be read"):
        run_evidence_stage(None, settings, trial=fake_trial(), seed=5, meta_dir=tmp_path / "meta")
