"""Unit tests for imrstats.trial.analyses: data shaping, edge cases, errors, internal consistency, recovery of the
truth.

Numbers against R are in tests/validation/test_trial_vs_r.py."""

import numpy as np
import pandas as pd
import pytest

from conftest import VALIDATION_DATA
from imrstats.errors import AnalysisError
from imrstats.trial import analyses as trial

DATA = VALIDATION_DATA / "trial_gaf_f.csv"
TRUE_EFFECTS = {"post": 3.0, "fu12": 2.0}  # config/config.yaml simulate.trial.true_effects.gaf_f


@pytest.fixture(scope="module")
def frame():
    return pd.read_csv(DATA, dtype={"id": str})


@pytest.fixture(scope="module")
def imputation(frame):
    return trial.impute_outcome(frame, m=100, seed=11)


@pytest.fixture(scope="module")
def itt(frame, imputation):
    return trial.itt_mi_mmrm(frame, outcome="gaf_f", imputation=imputation)


# ---------------------------------------------------------------- data


def test_outcome_frame_pivots_and_keeps_everyone():
    participants = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "arm": ["IMR", "TAU", "IMR"],
            "site": "s",
            "sex": "male",
            "age": [30.0, 40, 50],
            "diagnosis": "bipolar",
            "sessions_attended": [3, 0, 12],
        }
    )
    assessments = pd.DataFrame(
        {
            "id": ["a", "a", "b", "a"],
            "timepoint": ["baseline", "post", "fu12", "baseline"],
            "instrument": ["x", "x", "x", "y"],
            "score": [1.0, 2.0, 3.0, 9.0],
        }
    )
    out = trial.outcome_frame(participants, assessments, "x", auxiliary=["y"])
    assert list(out["id"]) == ["a", "b", "c"]
    assert out.loc[0, ["baseline", "post"]].tolist() == [1.0, 2.0]
    assert np.isnan(out.loc[0, "fu12"]) and out.loc[1, "fu12"] == 3.0
    assert out.loc[2, ["baseline", "post", "fu12"]].isna().all()  # no assessment at all: still in the ITT frame
    assert out.loc[0, "aux_y"] == 9.0 and np.isnan(out.loc[1, "aux_y"])


def test_outcome_frame_errors():
    participants = pd.DataFrame(
        {
            "id": ["a"],
            "arm": ["IMR"],
            "site": "s",
            "sex": "male",
            "age": [30.0],
            "diagnosis": "bipolar",
            "sessions_attended": [3],
        }
    )
    assessments = pd.DataFrame(
        {"id": ["a", "a"], "timepoint": ["post", "post"], "instrument": ["x", "x"], "score": [1.0, 2.0]}
    )
    with pytest.raises(AnalysisError, match="no assessments of instrument 'z'"):
        trial.outcome_frame(participants, assessments, "z")
    with pytest.raises(AnalysisError, match="more than one score"):
        trial.outcome_frame(participants, assessments, "x")
    with pytest.raises(AnalysisError, match="lack column"):
        trial.outcome_frame(participants.drop(columns="sessions_attended"), assessments, "x")


# ---------------------------------------------------------------- imputation + ITT


def test_imputation_fills_every_cell_and_keeps_observed(frame, imputation):
    assert imputation.imputed.shape == (100, len(frame), 3)
    assert not np.isnan(imputation.imputed).any()
    obs = ~imputation.missing
    for j, col in enumerate(imputation.targets):
        assert np.array_equal(
            imputation.imputed[:, obs[:, j], j],
            np.broadcast_to(frame[col].to_numpy()[obs[:, j]], (100, obs[:, j].sum())),
        )
    # pmm within arm: every imputed value is an observed value of the same arm
    for arm in ("IMR", "TAU"):
        rows = (frame["arm"] == arm).to_numpy()
        donors = set(frame.loc[rows, "post"].dropna())
        assert set(np.unique(imputation.imputed[:, rows & imputation.missing[:, 1], 1])) <= donors


def test_imputation_is_seeded(frame):
    a = trial.impute_outcome(frame, m=5, seed=3).imputed
    b = trial.impute_outcome(frame, m=5, seed=3).imputed
    c = trial.impute_outcome(frame, m=5, seed=4).imputed
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_itt_recovers_true_effect_and_reports_diagnostics(itt):
    c = itt.contrasts.set_index("timepoint")
    for tp, truth in TRUE_EFFECTS.items():
        assert c.loc[tp, "ci_low"] < truth < c.loc[tp, "ci_high"]
        assert 0 < c.loc[tp, "fmi"] < 1 and c.loc[tp, "riv"] > 0
        assert 2 < c.loc[tp, "df"] < c.loc[tp, "df_complete"]
    assert itt.n_participants == 198 and itt.n_not_converged == 0
    # df_complete = n - p_k: 198 - (visit, arm, baseline, 2 site, sex, age, diagnosis)
    assert itt.df_complete == {"post": 190.0, "fu12": 190.0}
    # and the completed-data Satterthwaite df are close to it (the justification of the choice)
    for tp in ("post", "fu12"):
        assert abs(itt.mean_satterthwaite_df[tp] - 190) < 10


def test_itt_contrast_equals_difference_of_adjusted_means(itt):
    means = itt.adjusted_means.set_index(["timepoint", "arm"])["estimate"]
    for _, row in itt.contrasts.iterrows():
        tp = row["timepoint"]
        assert row["estimate"] == pytest.approx(means[(tp, "IMR")] - means[(tp, "TAU")], rel=1e-10)


def test_itt_needs_seed_and_valid_arms(frame):
    with pytest.raises(AnalysisError, match="needs a seed"):
        trial.itt_mi_mmrm(frame)
    bad = frame.copy()
    bad.loc[0, "arm"] = "Placebo"
    with pytest.raises(AnalysisError, match="compares IMR and TAU"):
        trial.impute_outcome(bad, m=2, seed=1)
    one_arm = frame.loc[frame["arm"] == "IMR"]
    with pytest.raises(AnalysisError, match="no TAU participant"):
        trial.impute_outcome(one_arm, m=2, seed=1)


def test_itt_with_no_missing_outcome_equals_single_fit(frame):
    """With nothing to impute, every completed data set is the data: B = 0 and the pooled estimate
    is the single complete-data MMRM estimate."""
    complete = frame.dropna(subset=["baseline", "post", "fu12"]).reset_index(drop=True)
    res = trial.itt_mi_mmrm(complete, imputation=trial.impute_outcome(complete, m=3, seed=1))
    single = trial.likelihood_mmrm(complete)
    np.testing.assert_allclose(res.contrasts["estimate"], single.contrast_estimate, rtol=1e-8)
    np.testing.assert_allclose(res.contrasts["se"], single.contrast_se, rtol=1e-8)
    assert (res.contrasts["b"] == 0).all()


def test_missing_covariates_are_imputed_or_on_request_dropped_and_counted(frame):
    bad = frame.copy()
    bad.loc[[0, 1], "age"] = np.nan
    imp = trial.impute_outcome(bad, m=2, seed=1)
    assert imp.n_dropped == 0 and len(imp.frame) == len(frame)
    assert imp.covariate_missing["age"].sum() == 2 and not np.isnan(imp.covariate_values["age"]).any()
    imp = trial.impute_outcome(bad, m=2, seed=1, missing_covariates="exclude")
    assert imp.n_dropped == 2 and len(imp.frame) == len(frame) - 2
    assert sum(imp.excluded_by_arm.values()) == 2


def test_joint_imputation_option(frame):
    res = trial.itt_mi_mmrm(frame, m=10, by_arm=False, method="norm", seed=2)
    assert "arm as a predictor" in res.method and "Bayesian linear regression" in res.method


def test_likelihood_mmrm_drops_missing_baseline(frame):
    res = trial.likelihood_mmrm(frame)
    has_base = frame["baseline"].notna() & frame[["post", "fu12"]].notna().any(axis=1)
    assert res.n_participants == int(has_base.sum())


# ---------------------------------------------------------------- complete case, per protocol, subgroups


def test_complete_case_descriptives(frame):
    desc, ancova = trial.complete_case(frame, outcome="gaf_f")
    row = desc.set_index(["timepoint", "arm"]).loc[("fu12", "IMR")]
    y = frame.loc[frame["arm"] == "IMR", "fu12"].dropna()
    assert row["n"] == len(y) and row["mean"] == pytest.approx(y.mean()) and row["sd"] == pytest.approx(y.std())
    assert list(ancova["timepoint"]) == ["post", "fu12"]


def test_complete_case_too_few_rows_raises(frame):
    tiny = pd.concat([frame.loc[frame["arm"] == a].dropna().head(3) for a in ("IMR", "TAU")])
    with pytest.raises(AnalysisError, match="complete cases for"):
        trial.complete_case(tiny)


def test_per_protocol_groups_split_at_threshold(frame):
    groups, slopes = trial.per_protocol(frame, threshold=10)
    imr = frame.loc[(frame["arm"] == "IMR") & frame["fu12"].notna()]
    g = groups.set_index("timepoint").loc["fu12"]
    assert g["n_low"] == (imr["sessions_attended"] <= 10).sum()
    assert g["n_high"] == (imr["sessions_attended"] > 10).sum()
    assert g["estimate"] == pytest.approx(g["mean_high"] - g["mean_low"])
    assert g["F"] == pytest.approx(g["statistic"] ** 2)


def test_subgroup_mi_within_effects_are_consistent(frame, imputation):
    res = trial.subgroup_interactions(frame, "sex", imputation=imputation)
    fu = res.loc[res["timepoint"] == "fu12"].set_index(["kind", "level"])["estimate"]
    assert fu[("interaction", "male")] == pytest.approx(fu[("within", "male")] - fu[("within", "female")], rel=1e-8)
    assert (res["n_not_converged"] == 0).all()


def test_subgroup_without_both_arms_raises(frame, imputation):
    bad = frame.copy()
    bad.loc[(bad["arm"] == "IMR") & (bad["diagnosis"] == "bipolar"), "diagnosis"] = "schizophrenia"
    with pytest.raises(AnalysisError, match="has no IMR participant"):
        trial.subgroup_interaction_cc(bad, "diagnosis")
    with pytest.raises(AnalysisError, match="lacks column"):
        trial.subgroup_interaction_cc(frame, "colour")


# ---------------------------------------------------------------- tipping point


def test_tipping_point_is_where_the_ci_crosses_zero(imputation):
    tp = trial.delta_tipping_point(imputation, deltas=[-12, -6, -3, 3], timepoint="post")
    assert tp.significant_at_zero  # GAF-F at post: CI excludes 0 without a shift
    grid = tp.grid.set_index("delta")
    assert grid.loc[0.0, "excludes_zero"]
    # a shift against IMR lowers the estimate about linearly
    assert grid.loc[-12, "estimate"] < grid.loc[-6, "estimate"] < grid.loc[0.0, "estimate"]
    down = tp.points.iloc[0]
    assert down["reached"] and -12 < down["tipping_delta"] < 0 and down["bound"] == "ci_low"
    # the refit at the interpolated delta puts the crossing bound at ~0 (within 2% of the SE)
    assert abs(down["ci_low_at_tip"]) < 0.02 * grid.loc[0.0, "se"]
    assert not tp.points.iloc[1]["reached"]


def test_tipping_point_needs_a_shift(imputation):
    with pytest.raises(AnalysisError, match="non-zero shift"):
        trial.delta_tipping_point(imputation, deltas=[0.0])


# ---------------------------------------------------------------- multiplicity


def test_adjust_pvalues_hand_computed():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 x 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> cummax 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(trial.adjust_pvalues(p, "holm"), [0.03, 0.06, 0.06, 0.02])
    # BH: p_(i) n / i = 0.02, 0.02, 0.04, 0.04 -> cummin from the top
    np.testing.assert_allclose(trial.adjust_pvalues(p, "bh"), [0.02, 0.04, 0.04, 0.02])


def test_adjust_pvalues_edges():
    assert np.isnan(trial.adjust_pvalues([np.nan, 0.2], "holm")[0])
    assert trial.adjust_pvalues([np.nan, 0.2], "holm")[1] == pytest.approx(0.2)
    assert trial.adjust_pvalues([], "bh").size == 0
    with pytest.raises(AnalysisError):
        trial.adjust_pvalues([0.5, 1.5])
    with pytest.raises(AnalysisError):
        trial.adjust_pvalues([0.5], "bonferroni")


# ---------------------------------------------------------------- slow: recovery simulation


@pytest.mark.slow
def test_recovery_simulation(request):
    """100 synthetic trials (default config, master seeds 1..100), m = 20: bias and coverage of the
    ITT MI-MMRM estimate of GAF-F at post and fu12 against the configured true effects. Coverage of a
    correct 95% interval over 100 trials is 95% +/- 2.2% (binomial SE); we require >= 88% (3 SE)."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("simulation study: run with -m slow")
    import copy

    from imrstats.config import load_config
    from imrstats.data.simulate import simulate_all

    base = load_config()
    rows = []
    for rep in range(1, 101):
        cfg = copy.deepcopy(base)
        cfg["seed"] = rep
        tables = simulate_all(cfg)
        f = trial.outcome_frame(tables["participants"], tables["assessments"], "gaf_f")
        res = trial.itt_mi_mmrm(f, m=20, seed=rep)
        for _, c in res.contrasts.iterrows():
            truth = TRUE_EFFECTS[c["timepoint"]]
            rows.append(
                {
                    "timepoint": c["timepoint"],
                    "error": c["estimate"] - truth,
                    "covered": c["ci_low"] <= truth <= c["ci_high"],
                }
            )
    sim = (
        pd.DataFrame(rows)
        .groupby("timepoint")
        .agg(bias=("error", "mean"), mc_se=("error", lambda e: e.std() / 10), coverage=("covered", "mean"))
    )
    print("\nITT MI-MMRM recovery over 100 synthetic trials (m = 20):\n", sim)
    for tp, r in sim.iterrows():
        assert abs(r["bias"]) < 3 * r["mc_se"], tp
        assert r["coverage"] >= 0.88, tp
