"""imrstats.evidence.stage against R (tests/validation/r/evidence.R; inputs in tests/validation/data/evidence_*.csv,
made by evidence_make_data.py).

Deterministic numbers (the conversion to Hedges' g, REML + Knapp-Hartung without / with the trial, the
prediction interval and the frequentist predictive percentiles) are pinned at 1e-6 relative (metafor:
escalc, rma, predict; pt). The Bayesian predictive percentiles and posterior means come from MCMC and are
compared with R's *exact* posterior (quadrature over log tau, ~1e-9 accurate) within 4 Monte Carlo SEs of
our run (ArviZ MCSE of the mean of the indicator / Phi values / mu draws) plus 1e-6 for the quadrature:
for a correct sampler a 4-MCSE miss has probability ~6e-5 per comparison, and the seeds are fixed.
"""

from pathlib import Path

import pandas as pd
import pytest

from imrstats.evidence.stage import run_evidence_stage, trial_effects_for_meta

DATA = Path(__file__).parent / "data"
QUAD_TOL = 1e-6
REL = 1e-6

R = {
    ("imrs_client_conversion", "s"): 7.5470463819238,
    ("imrs_client_conversion", "J"): 0.993163687043012,
    ("imrs_client_conversion", "g_itt"): 0.17765505996086,
    ("imrs_client_conversion", "v_itt"): 0.0258458451472952,
    ("imrs_client_conversion", "g_cc"): 0.223713779209973,
    ("imrs_client_conversion", "v_cc"): 0.035983325753008,
    ("imrs_client_conversion", "md_cc"): 1.7,
    ("imrs_client_conversion", "md_se_cc"): 1.4332910089091,
    ("imrs_client_without", "est"): 0.241630184438167,
    ("imrs_client_without", "se"): 0.146586952107872,
    ("imrs_client_without", "ci_low"): -0.22487491970033,
    ("imrs_client_without", "ci_high"): 0.708135288576664,
    ("imrs_client_without", "tau2"): 0.049037294039383,
    ("imrs_client_without", "pi_low"): -0.603517722562947,
    ("imrs_client_without", "pi_high"): 1.08677809143928,
    ("imrs_client_bayes_without", "mu_mean"): 0.247617130546106,
    ("imrs_client_itt_with", "est"): 0.235154559937684,
    ("imrs_client_itt_with", "se"): 0.111493117340419,
    ("imrs_client_itt_with", "ci_low"): -0.0743999599653645,
    ("imrs_client_itt_with", "ci_high"): 0.544709079840732,
    ("imrs_client_itt_with", "tau2"): 0.0269300915400092,
    ("imrs_client_itt_with", "pi_low"): -0.315679881179866,
    ("imrs_client_itt_with", "pi_high"): 0.785989001055234,
    ("imrs_client_itt_freq", "pct_true"): 0.412578400359396,
    ("imrs_client_itt_freq", "pct_observed"): 0.424960217358257,
    ("imrs_client_itt_bayes_reference", "mu_mean"): 0.247617130546106,
    ("imrs_client_itt_bayes_reference", "pct_true"): 0.33177606720766,
    ("imrs_client_itt_bayes_reference", "pct_observed"): 0.385330333486372,
    ("imrs_client_itt_bayes_with", "mu_mean"): 0.236889038338261,
    ("imrs_client_cc_with", "est"): 0.245467570546271,
    ("imrs_client_cc_with", "se"): 0.112581376629061,
    ("imrs_client_cc_with", "ci_low"): -0.0671084415319149,
    ("imrs_client_cc_with", "ci_high"): 0.558043582624456,
    ("imrs_client_cc_with", "tau2"): 0.0272465439309183,
    ("imrs_client_cc_with", "pi_low"): -0.309273597894473,
    ("imrs_client_cc_with", "pi_high"): 0.800208738987015,
    ("imrs_client_cc_freq", "pct_true"): 0.475228069927274,
    ("imrs_client_cc_freq", "pct_observed"): 0.479835482407718,
    ("imrs_client_cc_bayes_reference", "mu_mean"): 0.247617130546106,
    ("imrs_client_cc_bayes_reference", "pct_true"): 0.425395077106232,
    ("imrs_client_cc_bayes_reference", "pct_observed"): 0.45885731358212,
    ("imrs_client_cc_bayes_with", "mu_mean"): 0.247621090243513,
    ("symptoms_conversion", "s"): 18.223885425452,
    ("symptoms_conversion", "J"): 0.993786672420342,
    ("symptoms_conversion", "g_itt"): 0.17450270771038,
    ("symptoms_conversion", "v_itt"): 0.0254467205176029,
    ("symptoms_conversion", "g_cc"): 0.190862336558228,
    ("symptoms_conversion", "v_cc"): 0.0326877655946275,
    ("symptoms_conversion", "md_cc"): -3.5,
    ("symptoms_conversion", "md_se_cc"): 3.27629896691906,
    ("symptoms_without", "est"): 0.0662201545427448,
    ("symptoms_without", "se"): 0.127224743017038,
    ("symptoms_without", "ci_low"): -1.55032347773895,
    ("symptoms_without", "ci_high"): 1.68276378682444,
    ("symptoms_without", "tau2"): 0,
    ("symptoms_without", "pi_low"): -1.55032347773895,
    ("symptoms_without", "pi_high"): 1.68276378682444,
    ("symptoms_bayes_without", "mu_mean"): 0.065041830590661,
    ("symptoms_itt_with", "est"): 0.111901825016734,
    ("symptoms_itt_with", "se"): 0.0781579396410386,
    ("symptoms_itt_with", "ci_low"): -0.224384647331375,
    ("symptoms_itt_with", "ci_high"): 0.448188297364842,
    ("symptoms_itt_with", "tau2"): 0,
    ("symptoms_itt_with", "pi_low"): -0.224384647331375,
    ("symptoms_itt_with", "pi_high"): 0.448188297364842,
    ("symptoms_itt_freq", "pct_true"): 0.724452874232711,
    ("symptoms_itt_freq", "pct_observed"): 0.655302316264996,
    ("symptoms_itt_bayes_reference", "mu_mean"): 0.065041830590661,
    ("symptoms_itt_bayes_reference", "pct_true"): 0.700134100923405,
    ("symptoms_itt_bayes_reference", "pct_observed"): 0.655031005556181,
    ("symptoms_itt_bayes_with", "mu_mean"): 0.107705097949307,
    ("symptoms_cc_with", "est"): 0.111375112023316,
    ("symptoms_cc_with", "se"): 0.0834011928508534,
    ("symptoms_cc_with", "ci_low"): -0.24747125806077,
    ("symptoms_cc_with", "ci_high"): 0.470221482107402,
    ("symptoms_cc_with", "tau2"): 0,
    ("symptoms_cc_with", "pi_low"): -0.24747125806077,
    ("symptoms_cc_with", "pi_high"): 0.470221482107402,
    ("symptoms_cc_freq", "pct_true"): 0.746736269001959,
    ("symptoms_cc_freq", "pct_observed"): 0.6634132599514,
    ("symptoms_cc_bayes_reference", "mu_mean"): 0.065041830590661,
    ("symptoms_cc_bayes_reference", "pct_true"): 0.72573330191645,
    ("symptoms_cc_bayes_reference", "pct_observed"): 0.667893652576988,
    ("symptoms_cc_bayes_with", "mu_mean"): 0.108899430552644,
    ("imrs_client_baseline_conversion", "s"): 8.15646337188135,
    ("imrs_client_baseline_conversion", "J"): 0.996046561793328,
    ("imrs_client_baseline_conversion", "g_itt"): 0.164858566404723,
    ("imrs_client_baseline_conversion", "v_itt"): 0.022078086898183,
    ("imrs_client_baseline_conversion", "g_cc"): 0.207599676213355,
    ("imrs_client_baseline_conversion", "v_cc"): 0.0307280978834193,
    ("imrs_client_baseline_conversion", "md_cc"): 1.7,
    ("imrs_client_baseline_conversion", "md_se_cc"): 1.4332910089091,
    ("replaced_with", "est"): 0.327075212653722,
    ("replaced_with", "se"): 0.0592776971745459,
    ("replaced_with", "ci_low"): 0.138427124294862,
    ("replaced_with", "ci_high"): 0.515723301012582,
    ("replaced_with", "tau2"): 0,
    ("replaced_with", "pi_low"): 0.138427124294862,
    ("replaced_with", "pi_high"): 0.515723301012582,
    ("replaced_freq", "pct_true"): 0.0264122227245364,
    ("replaced_freq", "pct_observed"): 0.180036451753701,
    ("replaced_bayes_reference", "mu_mean"): 0.366944945558418,
    ("replaced_bayes_reference", "pct_true"): 0.111652814468587,
    ("replaced_bayes_reference", "pct_observed"): 0.201578170510469,
}

META = {
    "outcomes": {"imrs_client": ["imrs_client"], "symptoms": ["panss_total", "bprs"]},
    "bayes": {"sensitivity_priors": []},
}
LABEL_CASE = {"imrs_client": "imrs_client", "symptoms": "symptoms"}
ANALYSIS_CASE = {"itt": "itt", "complete_case": "cc"}


@pytest.fixture(scope="module")
def trial():
    return {
        "trial_itt_contrasts": pd.read_csv(DATA / "evidence_trial_itt.csv"),
        "trial_descriptives": pd.read_csv(DATA / "evidence_trial_descriptives.csv"),
    }


@pytest.fixture(scope="module")
def published():
    from imrstats.data.published import load_published_outcomes

    return load_published_outcomes(None)


@pytest.fixture(scope="module")
def stage(trial, published):
    return run_evidence_stage(
        None, {"evidence": {"label": "Fake trial"}, "meta": META}, trial=trial, published=published, seed=11
    )


@pytest.fixture(scope="module")
def replaced(trial, published):
    return run_evidence_stage(
        None,
        {"evidence": {"label": "Fake trial", "analyses": ["itt"], "replaces_study": "Jensen 2019"}, "meta": META},
        trial=trial,
        published=published,
        seed=12,
    )


def _close(ours, ref):
    assert ours == pytest.approx(ref, rel=REL, abs=1e-12)


def _mc_close(what, ours, exact, mcse):
    assert abs(ours - exact) <= 4 * mcse + QUAD_TOL, (
        f"{what}: ours {ours:.6g} vs exact {exact:.6g}; |diff| {abs(ours - exact):.3g} > 4 MCSE {4 * mcse:.3g}"
    )


def test_published_rows_are_the_meta_stage_rows():
    pub = pd.read_csv(DATA / "evidence_published.csv")
    from imrstats.data.published import load_published_outcomes
    from imrstats.meta.stage import outcome_inputs

    inputs = outcome_inputs(load_published_outcomes(None), None)
    for label, rows in pub.groupby("outcome_label", sort=False):
        assert list(inputs[label]["study"]) == list(rows["study"])
        assert inputs[label]["yi"].to_numpy() == pytest.approx(rows["yi"].to_numpy(), rel=1e-12)


@pytest.mark.parametrize(
    "standardise_by, case", [("visit_sd", "{}_conversion"), ("baseline_sd", "{}_baseline_conversion")]
)
def test_conversion_matches_escalc_and_formula(trial, standardise_by, case):
    eff = trial_effects_for_meta(trial, {"evidence": {"standardise_by": standardise_by}, "meta": META})
    labels = ["imrs_client"] if standardise_by == "baseline_sd" else ["imrs_client", "symptoms"]
    for label in labels:
        key = case.format(label)
        rows = eff.loc[eff["outcome_label"] == label].set_index("analysis")
        for analysis, tag in ANALYSIS_CASE.items():
            _close(rows.at[analysis, "yi"], R[(key, f"g_{tag}")])
            _close(rows.at[analysis, "vi"], R[(key, f"v_{tag}")])
            _close(rows.at[analysis, "sd_divided_by"], R[(key, "s")])
            _close(rows.at[analysis, "hedges_j"], R[(key, "J")])
        _close(rows.at["complete_case", "md"], R[(key, "md_cc")])
        _close(rows.at["complete_case", "md_se"], R[(key, "md_se_cc")])


def test_frequentist_without_and_with_match_rma(stage):
    pooled = stage.tables["evidence_pooled"]
    freq = pooled.loc[~pooled["framework"].str.startswith("Bayesian")]
    for _, r in freq.iterrows():
        base = LABEL_CASE[r["outcome_label"]]
        tag = ANALYSIS_CASE[r["analysis"]]
        for ours, ref in (("estimate", "est"), ("ci_low", "ci_low"), ("ci_high", "ci_high")):
            _close(r[f"{ours}_without"], R[(f"{base}_without", ref)])
            _close(r[f"{ours}_with"], R[(f"{base}_{tag}_with", ref)])
        _close(r["tau_with"] ** 2, R[(f"{base}_{tag}_with", "tau2")])


def test_frequentist_predictive_percentiles_match_pt(stage):
    for _, r in stage.tables["evidence_surprise"].iterrows():
        key = f"{LABEL_CASE[r['outcome_label']]}_{ANALYSIS_CASE[r['analysis']]}_freq"
        _close(r["freq_pct_true"], R[(key, "pct_true")])
        _close(r["freq_pct_observed"], R[(key, "pct_observed")])
        assert r["freq_distribution"].startswith("t(")


def test_bayesian_percentiles_match_exact_posterior(stage):
    assert not stage.flags
    for _, r in stage.tables["evidence_surprise"].iterrows():
        key = f"{LABEL_CASE[r['outcome_label']]}_{ANALYSIS_CASE[r['analysis']]}_bayes_reference"
        _mc_close(f"{key} pct_true", r["bayes_pct_true"], R[(key, "pct_true")], r["bayes_pct_true_mcse"])
        _mc_close(
            f"{key} pct_observed", r["bayes_pct_observed"], R[(key, "pct_observed")], r["bayes_pct_observed_mcse"]
        )


def test_bayesian_pooled_means_match_exact_posterior(stage):
    pooled = stage.tables["evidence_pooled"]
    for _, r in pooled.loc[pooled["framework"].str.startswith("Bayesian")].iterrows():
        base, tag = LABEL_CASE[r["outcome_label"]], ANALYSIS_CASE[r["analysis"]]
        _mc_close(f"{base} without", r["estimate_without"], R[(f"{base}_bayes_without", "mu_mean")], r["mcse_without"])
        _mc_close(f"{base} {tag} with", r["estimate_with"], R[(f"{base}_{tag}_bayes_with", "mu_mean")], r["mcse_with"])


def test_replaced_study_matches_r(replaced):
    pooled = replaced.tables["evidence_pooled"]
    row = pooled.loc[(pooled["outcome_label"] == "imrs_client") & ~pooled["framework"].str.startswith("Bayesian")]
    row = row.iloc[0]
    assert "Jensen" not in row["studies_with"] and int(row["k_with"]) == 4 and int(row["k_without"]) == 4
    _close(row["estimate_with"], R[("replaced_with", "est")])
    _close(row["ci_low_with"], R[("replaced_with", "ci_low")])
    s = replaced.tables["evidence_surprise"].set_index("outcome_label").loc["imrs_client"]
    assert int(s["k_reference"]) == 3
    _close(s["freq_pct_true"], R[("replaced_freq", "pct_true")])
    _close(s["freq_pct_observed"], R[("replaced_freq", "pct_observed")])
    _mc_close(
        "replaced pct_true", s["bayes_pct_true"], R[("replaced_bayes_reference", "pct_true")], s["bayes_pct_true_mcse"]
    )
    _mc_close(
        "replaced pct_observed",
        s["bayes_pct_observed"],
        R[("replaced_bayes_reference", "pct_observed")],
        s["bayes_pct_observed_mcse"],
    )
