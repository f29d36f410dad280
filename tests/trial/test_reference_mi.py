"""Unit tests for the ICE / strategy / conditional-mean part of imrstats.trial.reference_mi: the expansion of a
long export, the ICE table and its derivations, the strategies' means and covariances, conditional means, the
ANCOVA, the leave-one-out refits and the whole estimator's bookkeeping.

Numbers against rbmi's vignette and an independent R implementation are in
tests/validation/test_rbmi_condmean.py."""

import json

import numpy as np
import pandas as pd
import pytest

from imrstats.errors import AnalysisError, InputError, SettingsError
from imrstats.trial import reference_mi as rm
from imrstats.trial.design import StudyDesign
from imrstats.trial.mmrm.reml import fit_reml, vech_basis

DESIGN = StudyDesign(visits=("v1", "v2", "v3"))  # IMR vs TAU


def simulated_frame(n: int = 60, seed: int = 5) -> pd.DataFrame:
    """A trial frame: IMR / TAU alternating, baseline ~ N(20, 4^2), visits with a growing IMR benefit, and
    dropout: 6 participants per arm stop after v1, 4 after v2; one TAU participant misses only v2."""
    rng = np.random.default_rng(seed)
    arm = np.where(np.arange(n) % 2 == 0, "IMR", "TAU")
    base = rng.normal(20, 4, n)
    sigma = np.array([[9.0, 6.0, 5.0], [6.0, 12.0, 8.0], [5.0, 8.0, 14.0]])
    mean = np.array([1.0, 2.0, 2.5]) + np.outer(arm == "IMR", [1.0, 2.0, 3.0]) + 0.6 * (base[:, None] - 20)
    y = mean + rng.multivariate_normal(np.zeros(3), sigma, n)
    y[0:24:2][:6, 1:] = np.nan  # IMR 0, 2, ..., 10: stop after v1
    y[1:24:2][:6, 1:] = np.nan  # TAU 1, 3, ..., 11
    y[24:40:2][:4, 2] = np.nan  # IMR: stop after v2
    y[25:40:2][:4, 2] = np.nan
    y[41, 1] = np.nan  # TAU, intermittent
    frame = pd.DataFrame({"id": [f"p{i:03d}" for i in range(n)], "arm": arm, "baseline": base})
    for k, v in enumerate(DESIGN.visits):
        frame[v] = y[:, k]
    return frame


@pytest.fixture(scope="module")
def frame():
    return simulated_frame()


# ---------------------------------------------------------------- the long export and the ICE table


def test_long_export_expands_to_every_visit():
    long = pd.DataFrame(
        {
            "PATIENT": ["1", "1", "1", "2", "3", "3"],
            "VISIT": ["4", "5", "6", "4", "4", "6"],
            "THERAPY": ["DRUG", "DRUG", "DRUG", "PLACEBO", "DRUG", "DRUG"],
            "BASVAL": [20, 20, 20, 18, 25, 25],
            "CHANGE": [-1.0, -2.0, -3.0, 0.5, -4.0, None],
        }
    )
    out = rm.trial_frame_from_long(
        long, id="PATIENT", visit="VISIT", arm="THERAPY", outcome="CHANGE", baseline="BASVAL", visits=["4", "5", "6"]
    )
    assert list(out.columns) == ["id", "arm", "baseline", "4", "5", "6"]
    assert list(out["id"]) == ["1", "2", "3"]
    np.testing.assert_array_equal(
        out[["4", "5", "6"]].to_numpy(), [[-1, -2, -3], [0.5, np.nan, np.nan], [-4, np.nan, np.nan]]
    )
    assert list(out["arm"]) == ["DRUG", "PLACEBO", "DRUG"] and list(out["baseline"]) == [20.0, 18.0, 25.0]
    coded = rm.trial_frame_from_long(
        long,
        id="PATIENT",
        visit="VISIT",
        arm="THERAPY",
        outcome="CHANGE",
        baseline="BASVAL",
        visits={4: "w1", 5: "w2", 6: "w4"},
    )
    assert list(coded.columns[-3:]) == ["w1", "w2", "w4"] and coded.loc[0, "w4"] == -3.0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"VISIT": ["4", "9", "4"]}, "data: row 2, column VISIT, value '9': not a visit of the design; rule: one of"),
        ({"VISIT": ["4", "4", "4"], "PATIENT": ["1", "1", "2"]}, "data: row 2, columns PATIENT and VISIT, value '1'"),
        (
            {"THERAPY": ["DRUG", "PLACEBO", "DRUG"], "VISIT": ["4", "5", "4"], "PATIENT": ["1", "1", "2"]},
            "column THERAPY",
        ),
        ({"CHANGE": ["1", "x", "2"]}, "data: row 2, column CHANGE, value 'x': not a number"),
        ({"PATIENT": ["1", "", "3"]}, "data: row 2, column PATIENT, value '': blank"),
    ],
)
def test_long_export_errors_name_row_column_value_and_rule(change, message):
    long = pd.DataFrame(
        {
            "PATIENT": ["1", "2", "3"],
            "VISIT": ["4", "4", "4"],
            "THERAPY": ["DRUG"] * 3,
            "BASVAL": [1, 2, 3],
            "CHANGE": [1, 2, 3],
        }
    )
    for key, values in change.items():
        long[key] = values
    with pytest.raises(InputError) as err:
        rm.trial_frame_from_long(
            long, id="PATIENT", visit="VISIT", arm="THERAPY", outcome="CHANGE", baseline="BASVAL", visits=["4", "5"]
        )
    assert message in str(err.value)


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [("p000", "v2", "JR"), ("nobody", "v2", "JR")],
            "ICE table: row 2, column id, value 'nobody': rule: a participant",
        ),
        ([("p000", "week9", "JR")], "ICE table: row 1, column visit, value 'week9': rule: a post-baseline visit"),
        (
            [("p000", "v2", "JTR")],
            "ICE table: row 1, column strategy, value 'JTR': rule: one of ['MAR', 'JR', 'CR', 'CIR', 'LMCF']",
        ),
        ([("p000", "v2", "JR"), ("p000", "v3", "CR")], "ICE table: row 2, column id, value 'p000': a second row"),
        ([("p000", "v1", "LMCF")], "ICE table: row 1, column visit, value 'v1': LMCF with the ICE at the first visit"),
        ([("p000", None, "JR")], "ICE table: row 1, column visit, value '': blank"),
    ],
)
def test_ice_table_rules(frame, rows, message):
    with pytest.raises(InputError) as err:
        rm.validate_ice(pd.DataFrame(rows, columns=["id", "visit", "strategy"]), frame, DESIGN)
    assert message in str(err.value)


def test_ice_table_needs_its_columns(frame):
    with pytest.raises(InputError, match=r"column\(s\) \['strategy'\] not found"):
        rm.validate_ice(pd.DataFrame({"id": ["p000"], "visit": ["v2"]}), frame, DESIGN)


def test_dropout_rule_takes_the_final_missing_run_and_leaves_intermittent_values_mar():
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e", "f"],
            "arm": ["IMR", "IMR", "IMR", "TAU", "TAU", "TAU"],
            "baseline": 1.0,
            "v1": [1, 1, 1, np.nan, 1, 1],
            "v2": [1, np.nan, np.nan, np.nan, np.nan, 1],
            "v3": [1, np.nan, 1, np.nan, np.nan, np.nan],
        }
    )
    derived = rm.ice_from_dropout(frame, DESIGN, strategy={"IMR": "JR", "TAU": "CR"})
    table = derived.table.set_index("id")
    assert dict(table["visit"]) == {"b": "v2", "d": "v1", "e": "v2", "f": "v3"}  # c: intermittent, no ICE
    assert dict(table["strategy"]) == {"b": "JR", "d": "CR", "e": "CR", "f": "CR"}
    counts = derived.counts.set_index("arm")
    assert counts.loc["IMR", "n_ice"] == 1 and counts.loc["TAU", "n_ice"] == 3
    assert counts.loc["IMR", "n_missing_mar"] == 1  # c at v2
    assert counts.loc["IMR", "n_missing_after_ice"] == 2 and counts.loc["TAU", "n_missing_after_ice"] == 6
    assert counts.loc["TAU", "ice_at_v1"] == 1 and counts.loc["TAU", "n_cr"] == 3 and counts.loc["IMR", "n_jr"] == 1


def test_attendance_rule_counts_per_arm_and_unrecorded_attendance():
    frame = simulated_frame().head(12).copy()
    frame["sessions_attended"] = [0, 0, 5, 0, 12, 0, np.nan, 0, 3, 0, 20, 0]  # IMR: even rows
    derived = rm.ice_from_attendance(frame, DESIGN, min_sessions=6, visit="v2", strategy="CIR")
    assert list(derived.table["id"]) == ["p000", "p002", "p008"]
    assert set(derived.table["visit"]) == {"v2"} and set(derived.table["strategy"]) == {"CIR"}
    counts = derived.counts.set_index("arm")
    assert counts.loc["IMR", "n_ice"] == 3 and counts.loc["IMR", "n_unclassified"] == 1
    assert counts.loc["TAU", "n_ice"] == 0  # TAU offers no sessions: not classified by this rule
    both = rm.ice_from_attendance(frame, DESIGN, min_sessions=6, visit="v2", arms=("IMR", "TAU"))
    assert both.counts.set_index("arm").loc["TAU", "n_ice"] == 6
    with pytest.raises(SettingsError, match="'week9' is not one of"):
        rm.ice_from_attendance(frame, DESIGN, min_sessions=6, visit="week9")


# ---------------------------------------------------------------- strategies


def test_strategy_means_by_hand():
    own = np.array([[-1.0, -3.0, -6.0, -8.0]] * 5)
    ref = np.array([[-0.5, -1.0, -2.0, -2.5]] * 5)
    names = ["MAR", "JR", "CR", "CIR", "LMCF"]
    got = rm.strategy_means(names, own, ref, [2] * 5)
    np.testing.assert_array_equal(got[0], [-1, -3, -6, -8])
    np.testing.assert_array_equal(got[1], [-1, -3, -2, -2.5])
    np.testing.assert_array_equal(got[2], [-0.5, -1, -2, -2.5])
    np.testing.assert_array_equal(got[3], [-1, -3, -3 + (-2 + 1), -3 + (-2.5 + 1)])
    np.testing.assert_array_equal(got[4], [-1, -3, -3, -3])
    at_first = rm.strategy_means(["JR", "CIR"], own[:2], ref[:2], [0, 0])
    np.testing.assert_array_equal(at_first, ref[:2])  # rbmi: no pre-ICE visit -> the reference's mean
    no_ice = rm.strategy_means(["JR", "CIR", "LMCF"], own[:3], ref[:3], [4, 4, 4])
    np.testing.assert_array_equal(no_ice, own[:3])
    batched = rm.strategy_means(names, np.stack([own, own + 1]), np.stack([ref, ref + 1]), [2] * 5)
    np.testing.assert_allclose(batched[1], got + 1)
    with pytest.raises(AnalysisError, match="LMCF"):
        rm.strategy_means(["LMCF"], own[:1], ref[:1], [0])


def test_jump_to_reference_covariance_keeps_own_past_and_reference_future():
    rng = np.random.default_rng(2)
    A, B = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    own, ref = A @ A.T + 4 * np.eye(4), B @ B.T + 4 * np.eye(4)
    for k in (1, 2, 3):
        joint = rm.strategy_covariance("JR", own, ref, k)
        np.testing.assert_allclose(joint, joint.T)
        assert np.linalg.eigvalsh(joint).min() > 0
        np.testing.assert_allclose(joint[:k, :k], own[:k, :k])  # pre-ICE: own distribution
        reg = joint[k:, :k] @ np.linalg.inv(joint[:k, :k])
        np.testing.assert_allclose(reg, ref[k:, :k] @ np.linalg.inv(ref[:k, :k]))  # post given pre: reference's
        resid = joint[k:, k:] - reg @ joint[:k, k:]
        np.testing.assert_allclose(resid, ref[k:, k:] - ref[k:, :k] @ np.linalg.inv(ref[:k, :k]) @ ref[:k, k:])
        np.testing.assert_array_equal(rm.strategy_covariance("CIR", own, ref, k), joint)
    np.testing.assert_array_equal(rm.strategy_covariance("JR", own, ref, 4), own)
    np.testing.assert_array_equal(rm.strategy_covariance("JR", own, ref, 0), ref)
    np.testing.assert_array_equal(rm.strategy_covariance("CR", own, ref, 2), ref)
    np.testing.assert_array_equal(rm.strategy_covariance("LMCF", own, ref, 2), own)
    np.testing.assert_array_equal(rm.strategy_covariance("JR", own, own.copy(), 2), own)  # one Sigma for both arms
    mu, cov = rm.strategy_distribution("JR", [1, 2, 3, 4], [0, 0, 0, 0], own, ref, 2)
    np.testing.assert_array_equal(mu, [1, 2, 0, 0])
    np.testing.assert_array_equal(cov, rm.strategy_covariance("JR", own, ref, 2))


def test_conditional_means_match_the_textbook_formula():
    rng = np.random.default_rng(4)
    A = rng.normal(size=(4, 4))
    sigma = A @ A.T + np.eye(4)
    mu = rng.normal(size=(6, 4))
    y = rng.normal(size=(6, 4))
    y[0, 2:] = np.nan
    y[1, 1] = np.nan
    y[2, :] = np.nan
    y[3, [0, 3]] = np.nan
    got = rm.conditional_means(mu, sigma, y)
    for i in range(6):
        m = np.isnan(y[i])
        o = ~m
        want = y[i].copy()
        if m.all():
            want = mu[i]
        elif m.any():
            want[m] = mu[i, m] + sigma[np.ix_(m, o)] @ np.linalg.solve(sigma[np.ix_(o, o)], y[i, o] - mu[i, o])
        np.testing.assert_allclose(got[i], want, rtol=1e-12)
    batched = rm.conditional_means(np.stack([mu, mu + 1]), np.stack([sigma, 2 * sigma]), y)
    np.testing.assert_allclose(batched[0], got, rtol=1e-12)
    np.testing.assert_allclose(batched[1], rm.conditional_means(mu + 1, 2 * sigma, y), rtol=1e-12)


def test_ancova_matches_least_squares_and_weights_drop_participants():
    rng = np.random.default_rng(6)
    n = 30
    Z = np.column_stack([np.ones(n), np.arange(n) % 2, rng.normal(10, 2, n)])
    y = rng.normal(size=(n, 2))
    out = rm.ancova_by_visit(y, Z)
    coef = np.linalg.lstsq(Z, y, rcond=None)[0]
    np.testing.assert_allclose(out["contrast"], coef[1])
    np.testing.assert_allclose(out["lsmean_control"], coef[0] + coef[2] * Z[:, 2].mean())
    np.testing.assert_allclose(out["lsmean_intervention"] - out["lsmean_control"], coef[1])
    w = np.ones(n)
    w[7] = 0.0
    dropped = rm.ancova_by_visit(y, Z, w)
    keep = np.arange(n) != 7
    coef = np.linalg.lstsq(Z[keep], y[keep], rcond=None)[0]
    np.testing.assert_allclose(dropped["lsmean_control"], coef[0] + coef[2] * Z[keep, 2].mean())


def test_jackknife_se_formula():
    theta = np.array([1.0, 2.0, 4.0, 7.0])
    assert rm.jackknife_se(theta) == pytest.approx(np.sqrt(3 / 4 * ((theta - 3.5) ** 2).sum()))


# ---------------------------------------------------------------- the imputation model and the estimator


@pytest.fixture(scope="module")
def dropout_ice(frame):
    return rm.ice_from_dropout(frame, DESIGN, strategy="JR").table


def test_leave_one_out_batch_fits_equal_single_fits(frame, dropout_ice):
    model = rm.fit_imputation_model(frame, dropout_ice, DESIGN)
    betas, sigmas, converged = rm.jackknife_fits(model)
    assert converged.all() and betas.shape == (60, model.X.shape[2])
    E, pairs = vech_basis(3)
    y = np.where(model.fit_observed, model.y, np.nan)
    for i in (0, 13, 41, 59):  # dropout after v1, complete, intermittent, complete
        keep = np.arange(60) != i
        sigma, fit, _, ok, _, _ = fit_reml(model.X[keep], y[keep], model.fit_observed[keep], None, E, pairs)
        assert ok
        np.testing.assert_allclose(sigmas[i], sigma, rtol=1e-8)
        np.testing.assert_allclose(betas[i], fit["beta"], rtol=1e-8, atol=1e-10)


def test_observed_values_after_a_non_mar_ice_leave_the_fit_but_stay_in_the_analysis(frame):
    ice = pd.DataFrame({"id": ["p013", "p015"], "visit": ["v2", "v3"], "strategy": ["JR", "MAR"]})
    model = rm.fit_imputation_model(frame, ice, DESIGN)
    i, j = model.ids.index("p013"), model.ids.index("p015")
    assert not model.fit_observed[i, 1:].any() and model.fit_observed[i, 0]
    assert model.fit_observed[j].all()  # MAR: post-ICE values are fitted
    completed = model.impute()
    np.testing.assert_array_equal(completed[i], frame.loc[13, ["v1", "v2", "v3"]].to_numpy(float))
    result = rm.reference_based_condmean(frame, ice, DESIGN)
    imputed = result.imputed.set_index(["arm", "timepoint"])
    assert imputed.loc[("IMR", "v2"), "n_observed_left_out_of_fit"] == 0
    assert imputed["n_observed_left_out_of_fit"].sum() == 2
    assert result.ice_counts.set_index("arm").loc["TAU", "n_observed_after_ice"] == 3


def test_reference_strategies_are_mar_in_the_reference_arm(frame):
    """A participant of the reference arm has the same mean under its own arm and the reference: JR, CR and CIR
    are MAR for it (LMCF is not)."""
    tau = frame.loc[frame["arm"] == "TAU"]
    derived = rm.ice_from_dropout(tau.assign(arm="TAU"), DESIGN).table
    mar = rm.reference_based_condmean(frame, derived.assign(strategy="MAR"), DESIGN)
    for strategy in ("JR", "CR", "CIR"):
        other = rm.reference_based_condmean(frame, derived.assign(strategy=strategy), DESIGN)
        np.testing.assert_allclose(other.estimates["estimate"], mar.estimates["estimate"], rtol=1e-10)
        np.testing.assert_allclose(other.estimates["se"], mar.estimates["se"], rtol=1e-8)
    # with the intervention arm as reference, the intervention arm's ICEs are MAR
    imr = rm.ice_from_dropout(frame.loc[frame["arm"] == "IMR"], DESIGN).table
    as_ref = rm.reference_based_condmean(frame, imr, DESIGN, reference="IMR")
    as_mar = rm.reference_based_condmean(frame, imr.assign(strategy="MAR"), DESIGN)
    np.testing.assert_allclose(as_ref.estimates["estimate"], as_mar.estimates["estimate"], rtol=1e-10)
    jr_tau = rm.reference_based_condmean(frame, imr, DESIGN)
    assert not np.allclose(jr_tau.estimates["estimate"], as_mar.estimates["estimate"])


def test_estimator_is_deterministic_and_reports_its_bookkeeping(frame, dropout_ice):
    a = rm.reference_based_condmean(frame, dropout_ice, DESIGN, outcome="gaf")
    b = rm.reference_based_condmean(frame, dropout_ice, DESIGN, outcome="gaf")
    pd.testing.assert_frame_equal(a.estimates, b.estimates)
    assert list(a.estimates["quantity"][:3]) == ["IMR - TAU at v1", "IMR - TAU at v2", "IMR - TAU at v3"]
    assert list(a.estimates["quantity"][3:5]) == ["LS mean TAU at v1", "LS mean TAU at v2"]
    assert a.n_fits == 61 and a.n_participants == 60 and a.strategies == {"JR": 20}
    assert set(a.estimates["outcome"]) == {"gaf"} and set(a.estimates["n_analysed"]) == {60}
    assert "jackknife SE (60 leave-one-out refits)" in a.method
    # the SE is the jackknife SE of the leave-one-out estimates, CI and p from the normal distribution
    np.testing.assert_allclose(a.estimates["se"], rm.jackknife_se(a.jackknife_estimates))
    row = a.estimates.iloc[2]
    assert row["ci_high"] - row["estimate"] == pytest.approx(1.959963984540054 * row["se"])
    imputed = a.imputed.set_index(["arm", "timepoint"])
    assert imputed.loc[("IMR", "v2"), "n_imputed"] == 6 and imputed.loc[("TAU", "v2"), "n_imputed"] == 7
    record = json.loads(json.dumps(a.to_dict()))
    assert "jackknife_estimates" not in record and len(record["estimates"]) == 9
    assert "REML fits" in a.summary()


def test_participants_without_baseline_are_left_out_and_counted(frame, dropout_ice):
    gap = frame.copy()
    gap.loc[58, "baseline"] = np.nan
    result = rm.reference_based_condmean(gap, dropout_ice, DESIGN)
    assert result.n_excluded == 1 and result.n_participants == 59
    assert "1 participant(s) left out" in result.notes


def test_settings_errors(frame, dropout_ice):
    with pytest.raises(SettingsError, match="'PLACEBO' is not an arm"):
        rm.reference_based_condmean(frame, dropout_ice, DESIGN, reference="PLACEBO")
    with pytest.raises(SettingsError, match="names arm 'DRUG'"):
        rm.ice_from_dropout(frame, DESIGN, strategy={"DRUG": "JR"})
    with pytest.raises(SettingsError, match="strategy 'J2R'"):
        rm.ice_from_dropout(frame, DESIGN, strategy="J2R")


def test_jackknife_needs_two_participants_per_arm_and_visit(frame):
    sparse = frame.copy()
    imr_at_v3 = sparse.index[(sparse["arm"] == "IMR") & sparse["v3"].notna()]
    sparse.loc[imr_at_v3[1:], "v3"] = np.nan
    ice = pd.DataFrame(columns=["id", "visit", "strategy"])
    with pytest.raises(AnalysisError, match="needs two IMR participants with a value at v3"):
        rm.reference_based_condmean(sparse, ice, DESIGN)


def test_records_hold_no_wall_time_so_runs_are_byte_identical():
    """A result's JSON record is a function of data, settings and seed only: the wall times the results carry
    for their summaries (fit_seconds, seconds, sampler_seconds) stay out of it, so two runs write the same bytes."""
    import json as _json
    from pathlib import Path

    from imrstats.results import to_json

    root = Path(__file__).resolve().parents[2]
    long = pd.read_csv(
        root / "data" / "examples" / "antidepressant" / "antidepressant.csv", dtype={"PATIENT": str, "VISIT": str}
    )
    visits = ("4", "5", "6", "7")
    design = StudyDesign(visits=visits, intervention="DRUG", control="PLACEBO")
    frame = rm.trial_frame_from_long(
        long, id="PATIENT", visit="VISIT", arm="THERAPY", outcome="CHANGE", baseline="BASVAL", visits=visits
    )
    ice = rm.ice_from_dropout(frame, design, strategy="JR").table
    runs = [
        (
            rm.reference_based_condmean(frame, ice, design, change=True),
            rm.reference_based_condmean(frame, ice, design, change=True),
        ),
        (
            rm.reference_based_bayes(frame, ice, design, seed=5, m=20, change=True),
            rm.reference_based_bayes(frame, ice, design, seed=5, m=20, change=True),
        ),
    ]
    for first, second in runs:
        text = to_json(first.to_dict())
        assert "seconds" not in _json.loads(text) and text == to_json(second.to_dict())
