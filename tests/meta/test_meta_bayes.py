"""The Bayesian pooling of the meta stage (imrstats.meta.bayes_stage): the stage part on the default data (tables,
flags, HTML, figures, posteriors, no participant id), the gate with its one retry, settings and degenerate input.
Posterior numbers against exact references are in tests/validation/test_bayes_validation.py; this file checks
the stage's behaviour. One compiled model serves the session (bayes.shared_sampler)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from imrstats.config import section_settings
from imrstats.errors import AnalysisError, SettingsError
from imrstats.meta import bayes_stage as meta_bayes
from imrstats.meta.bayes import SHIPPED_TAU_PRIORS, Normal
from imrstats.meta.bayes_stage import (
    BayesStageResult,
    bayes_pooling,
    cumulative_sentence,
    gated_fit,
    pool_outcome_bayes,
    retry_target_accept,
    run_meta_stage_with_bayes,
    write_posteriors,
)
from imrstats.meta.figures import posterior_figure, trace_rank_figure
from imrstats.pipeline.registry import render_section, with_section
from imrstats.pipeline.stage_result import to_json, write_stage

# small but gate-worthy: 2 chains x 1000 draws reach bulk ESS >= 400 on these data
QUICK = {
    "draws": 1000,
    "tune": 1000,
    "chains": 2,
    "sensitivity_priors": ["half_normal_0.5", "rhodes_mental_health_nonpharm"],
}
SETTINGS = {
    "outcomes": {"imrs_clinician": ["imrs_clinician"], "hope": ["hope"], "hospitalisation": ["hospitalisation"]},
    "bayes": QUICK,
}


@pytest.fixture(scope="session")
def clean(default_clean_tables):
    return default_clean_tables


@pytest.fixture(scope="session")
def stage(clean, default_config):
    settings = {**default_config.get("meta", {}), **SETTINGS}
    result = with_section(run_meta_stage_with_bayes(clean, settings, seed=default_config["seed"]))
    yield result
    import matplotlib.pyplot as plt

    for fig in result.figures.values():
        plt.close(fig)


@pytest.fixture(scope="session")
def a_result(stage):
    return stage.posteriors["imrs_clinician"]


# ---- the stage on the default data ---------------------------------------------------------------


def test_stage_has_bayes_tables_and_posteriors(stage):
    assert isinstance(stage, BayesStageResult)
    for name in (
        "bayes_priors",
        "bayes_pooled",
        "bayes_study_effects",
        "bayes_sensitivity",
        "bayes_cumulative",
        "bayes_diagnostics",
    ):
        assert name in stage.tables and len(stage.tables[name]), name
    assert "meta_estimators" in stage.tables  # the frequentist part is still there
    assert set(stage.posteriors) == {
        "imrs_clinician",
        "hope",
        "implementation_dropout_pct",
        "implementation_completion_pct",
    }
    pooled = stage.tables["bayes_pooled"]
    clin = pooled.loc[pooled["outcome_label"] == "imrs_clinician"].set_index("quantity")
    assert {"mu", "tau", "mu_new", "P(mu > 0)", "P(mu > 0.2)", "P(mu_new > 0)"} <= set(clin.index)
    assert clin.at["mu", "ci_low"] < clin.at["mu", "estimate"] < clin.at["mu", "ci_high"]
    # the predictive interval of a new trial is wider than the interval of the mean
    width = clin["ci_high"] - clin["ci_low"]
    assert width["mu_new"] > width["mu"]
    assert clin.at["P(mu > 0.2)", "estimate"] < clin.at["P(mu > 0)", "estimate"]
    assert clin["method"].str.contains("rhodes|t5\\(-3.85", regex=True).all()
    impl = pooled.loc[pooled["outcome_label"] == "implementation: dropout_pct"].set_index("quantity")
    assert 0 < impl.at["pooled proportion (%)", "ci_low"] < impl.at["pooled proportion (%)", "ci_high"] < 100


def test_sample_mean_percent_matches_inverse_logit_of_the_draws(stage):
    result = stage.posteriors["implementation_completion_pct"]
    mu = np.asarray(result.posterior["posterior"]["mu"].values).ravel()
    row = meta_bayes.proportion_rows(result).set_index("quantity").loc["pooled proportion (%)"]
    # the median commutes with the monotone expit up to the interpolation between the two middle draws
    # (an even number of draws): it lies between their back-transforms, and next to expit(median(mu))
    middle = np.sort(mu)[[mu.size // 2 - 1, mu.size // 2]]
    low, high = 100 / (1 + np.exp(-middle))
    assert low <= row["estimate"] <= high
    assert row["estimate"] == pytest.approx(100 / (1 + np.exp(-np.median(mu))), abs=high - low + 1e-12)


def test_sensitivity_and_cumulative_reuse_the_main_fit(stage):
    pooled = stage.tables["bayes_pooled"].set_index(["outcome_label", "quantity"])
    sens = stage.tables["bayes_sensitivity"]
    main = sens.loc[sens["main_prior"] & (sens["outcome_label"] == "imrs_clinician")].iloc[0]
    assert main["mu_mean"] == pooled.at[("imrs_clinician", "mu"), "estimate"]
    cum = stage.tables["bayes_cumulative"]
    clin = cum.loc[cum["outcome_label"] == "imrs_clinician"]
    assert list(clin["k"]) == [2, 3] and list(clin["year"]) == [2009, 2019]  # 2007 alone < min_studies
    assert clin["mu_mean"].iloc[-1] == pooled.at[("imrs_clinician", "mu"), "estimate"]
    assert "Jensen 2019" in clin["added"].iloc[-1]
    assert set(sens["prior"]) == set(QUICK["sensitivity_priors"])


def test_every_reported_fit_passed_the_gate(stage):
    diag = stage.tables["bayes_diagnostics"]
    ok = diag.loc[diag["passed"].astype(bool)]
    assert (ok["max_rhat"] <= 1.01).all() and (ok["min_ess_bulk"] >= 400).all() and (ok["divergences"] == 0).all()
    assert (diag.loc[diag["analysis"] == "main", "passed"]).all()
    for frame in (stage.tables["bayes_sensitivity"], stage.tables["bayes_cumulative"]):
        failed = frame.loc[frame["gate"] != "passed"]
        assert failed["mu_mean"].isna().all()
    n_failed = int((~diag["passed"].astype(bool)).sum())
    assert sum("sampler gate failed" in f for f in stage.flags) == n_failed


def test_k1_outcome_is_noted_not_pooled(stage):
    assert "hospitalisation: k = 1 < meta.bayes.min_studies = 2; not pooled" in stage.summary
    assert "hospitalisation" not in set(stage.tables["bayes_pooled"]["outcome_label"])


def test_html_says_methods_and_references_every_figure(stage):
    html = stage.html
    assert "<h2>Bayesian random-effects pooling</h2>" in html
    assert "Rhodes KM, Turner RM, Higgins JPT (2015)" in html and "R-hat ≤ 1.01" in html
    bayes_html = html[html.index("<h2>Bayesian random-effects pooling</h2>") :]
    assert bayes_html.count("<table") == bayes_html.count("<p class='method'>Method:")
    for name in stage.figures:
        if name.startswith("bayes_"):
            assert f"figures/{name}.png" in html, name
    assert "Appendix: sampler diagnostics" in html and "figures/bayes_trace_imrs_clinician.png" in html


def test_stage_leaks_no_participant_id(stage, clean):
    ids = set(clean["participants"]["id"].astype(str))
    assert len(ids) > 100
    text = stage.html + to_json(stage.record) + stage.summary
    text += "".join(frame.to_csv(index=False) for frame in stage.tables.values())
    assert not [i for i in ids if i in text]


def test_record_is_json_and_files_are_written(stage, tmp_path):
    record = json.loads(to_json(stage.record))
    assert record["bayes"]["settings"]["tau_prior"] == "rhodes_mental_health_nonpharm"
    assert record["bayes"]["gate"]["max_rhat"] == 1.01 and record["settings"]["bayes"]["draws"] == 1000
    written = write_stage(stage, tmp_path)
    assert (tmp_path / "tables" / "bayes_pooled.csv").exists() and "figure:bayes_posterior_hope" in written
    paths = write_posteriors(stage, tmp_path)
    import xarray as xr

    tree = xr.open_datatree(paths["hope"], engine="h5netcdf")
    assert list(tree["posterior"]["theta"].coords["study"].values) == ["Jensen 2019", "Wong 2023"]
    assert write_posteriors(BayesStageResult("x"), tmp_path / "none") == {}


def test_cumulative_sentence_reads_by_year():
    table = pd.DataFrame({"year": [2009, 2019], "k": [2, 3], "added": ["A; B", "C"], "P(mu > 0)": [0.97, np.nan]})
    assert cumulative_sentence(table) == "P(mu > 0): 2009 (k = 2) 0.97 -> 2019 (k = 3, + C) not reported (gate failed)"


# ---- figures -------------------------------------------------------------------------------------


def test_posterior_figure_overlays_both_priors(a_result):
    prior_tau = SHIPPED_TAU_PRIORS["rhodes_mental_health_nonpharm"].prior
    fig = posterior_figure(a_result, Normal(0, 1), prior_tau, title="t")
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert "prior Normal(0, 1)" in labels and f"prior: {prior_tau.label()}" in labels
    fig2 = trace_rank_figure(a_result)
    assert len(fig2.axes) == 4 and len(fig2.axes[0].get_lines()) == 2  # one trace per chain


# ---- the gate and its retry (a stand-in sampler replays real results with chosen diagnostics) --------


class ReplaySampler:
    def __init__(self, results, target_accept=0.99):
        self.results, self.target_accept, self.calls = list(results), target_accept, []

    def fit(self, yi, sei, labels, **kwargs):
        self.calls.append({**kwargs, "target_accept": self.target_accept})
        return self.results.pop(0)


def _with(result, **diagnostics):
    return dataclasses.replace(result, diagnostics=dataclasses.replace(result.diagnostics, **diagnostics))


FIT = dict(
    prior_mu=Normal(0, 1),
    prior_tau=SHIPPED_TAU_PRIORS["half_normal_0.5"].prior,
    mid=None,
    seed=5,
    draws=500,
    tune=400,
    chains=2,
    context="outcome X, prior P",
)


def test_a_failing_fit_is_retried_once_with_more_tuning_and_higher_target_accept(a_result):
    sampler = ReplaySampler([_with(a_result, divergences=2), a_result])
    fit = gated_fit(sampler, [0.1, 0.2], [0.1, 0.1], ["a", "b"], **FIT)
    assert fit.attempts == 2 and fit.passed and "2 divergent transitions" in fit.retry_reason
    first, retry = sampler.calls
    assert retry["draws"] == 1000 and retry["tune"] == 800 and retry["seed"] != first["seed"]
    assert retry["target_accept"] == pytest.approx(0.999) and sampler.target_accept == 0.99
    assert retry_target_accept(0.95) == pytest.approx(0.995)


def test_a_fit_failing_twice_raises_naming_outcome_prior_parameter_and_criterion(a_result):
    bad = _with(a_result, max_rhat=1.05, max_rhat_parameter="tau")
    with pytest.raises(AnalysisError, match=r"outcome X, prior P.*R-hat of tau is 1.0500 > 1.01"):
        gated_fit(ReplaySampler([bad, bad]), [0.1, 0.2], [0.1, 0.1], ["a", "b"], **FIT)
    fit = gated_fit(ReplaySampler([bad, bad]), [0.1, 0.2], [0.1, 0.1], ["a", "b"], **FIT, on_failure="flag")
    assert not fit.passed and "R-hat of tau" in fit.failure


def _data(k=2):
    return pd.DataFrame(
        {
            "study": [f"S{i}" for i in range(k)],
            "year": [2001 + i for i in range(k)],
            "yi": [0.1 * i for i in range(k)],
            "sei": [0.2] * k,
            "measure": ["SMD"] * k,
        }
    )


def test_main_fit_failure_stops_but_a_sensitivity_failure_is_flagged(a_result):
    bad = _with(a_result, min_ess_bulk=120.0, min_ess_parameter="tau")
    kwargs = dict(
        prior_mu=Normal(0, 1),
        prior_key="rhodes_mental_health_nonpharm",
        mid=0.2,
        seed=1,
        run=dict(draws=500, tune=500, chains=2),
        cumulative=False,
        min_studies=2,
        context="outcome hope",
    )
    with pytest.raises(AnalysisError, match=r"outcome hope, prior rhodes_mental_health_nonpharm.*bulk ESS of tau"):
        pool_outcome_bayes(ReplaySampler([bad, bad]), _data(), sensitivity_keys=[], **kwargs)
    part = pool_outcome_bayes(
        ReplaySampler([a_result, bad, bad]),
        _data(),
        sensitivity_keys=["half_cauchy_0.5"],
        on_secondary_failure="flag",
        **kwargs,
    )
    row = part["sensitivity"].iloc[0]
    assert np.isnan(row["mu_mean"]) and row["gate"].startswith("FAILED") and row["max_rhat"] == bad.diagnostics.max_rhat
    assert len(part["flags"]) == 1 and "sensitivity prior half_cauchy_0.5" in part["flags"][0]
    with pytest.raises(AnalysisError, match="sensitivity prior half_cauchy_0.5"):
        pool_outcome_bayes(
            ReplaySampler([a_result, bad, bad]),
            _data(),
            sensitivity_keys=["half_cauchy_0.5"],
            on_secondary_failure="fail",
            **kwargs,
        )


# ---- settings and degenerate input -------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"colour": 1}, "meta.bayes.colour: unknown key"),
        ({"tau_prior": "flat"}, "meta.bayes.tau_prior: must be one of half_normal_0.5, "),
        ({"sensitivity_priors": "half_normal_0.5"}, "meta.bayes.sensitivity_priors: must be a list"),
        ({"draws": 50}, "meta.bayes.draws: must be >= 100, got 50"),
        ({"chains": 1}, "meta.bayes.chains: must be >= 2, got 1"),
        ({"target_accept": 1.0}, "meta.bayes.target_accept: must be < 1"),
        ({"parameterization": "centred"}, "meta.bayes.parameterization"),
        ({"prior_mu": {"loc": 0, "scale": -1}}, "meta.bayes.prior_mu.scale: must be > 0, got -1"),
        ({"on_secondary_gate_failure": "ignore"}, "meta.bayes.on_secondary_gate_failure: must be one of flag, fail"),
        (
            {"implementation": {"tau_prior": {"family": "gamma", "scale": 1}}},
            "meta.bayes.implementation.tau_prior.family",
        ),
        ({"enabled": "yes"}, "meta.bayes.enabled: must be true or false"),
    ],
)
def test_bad_settings_raise_a_settings_error(raw, match):
    with pytest.raises(SettingsError, match=match):
        bayes_pooling({}, {"bayes": raw})


def test_defaults_ship_the_empirical_prior_and_every_shipped_prior_in_sensitivity():
    b = section_settings("meta.bayes")
    assert b["tau_prior"] == "rhodes_mental_health_nonpharm" and b["enabled"] and b["cumulative"]
    assert {"half_normal_0.5", "half_cauchy_0.5", "turner_mental_health_nonpharm_vs_control"} <= set(
        b["sensitivity_priors"]
    )


def test_unpoolable_inputs_are_flagged_or_noted_without_sampling():
    inputs = {
        "raw md": _data().assign(measure="MD"),
        "empty": _data(0),
        "mixed": _data().assign(measure=["SMD", "log OR"]),
    }
    part = bayes_pooling(inputs, {"mid": 0.2, "bayes": {"implementation": {"enabled": False}}}, seed=3)
    assert part.posteriors == {} and len(part.tables["bayes_diagnostics"]) == 0
    assert any("'MD' has no scale-free heterogeneity prior" in f for f in part.flags)
    assert any("mixed effect measures" in f for f in part.flags)
    assert "empty: k = 0 < meta.bayes.min_studies" in part.summary
    assert "<div class='flag'>" in render_section(part)


def test_disabled_runs_no_fit(clean):
    result = run_meta_stage_with_bayes(clean, {"outcomes": {"hope": ["hope"]}, "bayes": {"enabled": False}}, seed=1)
    assert not [n for n in result.tables if n.startswith("bayes_")] and result.posteriors == {}
    assert "bayes" not in result.record and result.record["settings"]["bayes"]["enabled"] is False


def test_missing_implementation_file_is_flagged_while_outcomes_still_pool(tmp_path):
    settings = {
        "mid": 0.2,
        "implementation_rates": str(tmp_path / "missing.csv"),
        "implementation": {"measures": ["dropout_pct"], "uses": ["pool with care"]},
        "bayes": {"implementation": {"enabled": True}},
    }
    part = bayes_pooling({"one": _data(1)}, settings, seed=3)
    assert any(f.startswith("implementation proportions not pooled") for f in part.flags)
