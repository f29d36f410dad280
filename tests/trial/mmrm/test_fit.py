"""Unit tests for imrstats.trial.mmrm.fit (and the design it builds): invariances, edge cases and errors.

Numbers against R live in tests/validation/test_mmrm_vs_r.py; here the engine is checked against
itself by independent routes (OLS when T = 1, permutations, refits); the REML algebra is checked in
test_reml.py.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import VALIDATION_DATA
from imrstats.errors import AnalysisError
from imrstats.trial.mmrm import build_mmrm_design, fit_mmrm, reml

DATA = VALIDATION_DATA
TIMES = ("post", "fu12")


@pytest.fixture(scope="module")
def trial() -> pd.DataFrame:
    return pd.read_csv(DATA / "mmrm_missing.csv")


@pytest.fixture(scope="module")
def fitted(trial):
    return fit_mmrm(trial, "y", times=TIMES)


def test_single_visit_reduces_to_ols_with_residual_df(trial):
    one = trial[trial["time"] == "post"]
    res = fit_mmrm(one, "y", times=("post",))
    d = one.dropna(subset=["y"])
    X = np.column_stack(
        [
            np.ones(len(d)),
            (d["arm"] == "IMR"),
            d["baseline"],
            d["site"] == "site_b",
            d["site"] == "site_c",
            d["sex"] == "male",
            d["age"],
            d["diagnosis"] == "schizophrenia",
        ]
    ).astype(float)
    beta, rss, *_ = np.linalg.lstsq(X, d["y"].to_numpy(), rcond=None)
    n, p = X.shape
    assert res.contrast_estimate[0] == pytest.approx(beta[1], rel=1e-10)
    assert res.sigma[0, 0] == pytest.approx(rss[0] / (n - p), rel=1e-10)
    np.testing.assert_allclose(res.df_beta, n - p, rtol=1e-9)
    assert res.contrasts["df"].iloc[0] == pytest.approx(n - p, rel=1e-9)


def test_complete_data_with_visit_specific_effects_is_per_visit_ols():
    """With complete data and every regressor visit-specific, GLS equals OLS visit by visit and the
    Satterthwaite df of any visit-specific coefficient is exactly n - k (multivariate regression)."""
    data = pd.read_csv(DATA / "mmrm_complete.csv")
    res = fit_mmrm(data, "y", times=TIMES, covariates=())
    n = data["id"].nunique()
    for k, visit in enumerate(TIMES):
        d = data[data["time"] == visit]
        X = np.column_stack([np.ones(len(d)), d["arm"] == "IMR", d["baseline"]]).astype(float)
        beta, *_ = np.linalg.lstsq(X, d["y"].to_numpy(), rcond=None)
        assert res.contrast_estimate[k] == pytest.approx(beta[1], rel=1e-10)
    np.testing.assert_allclose(res.contrast_df, n - 3, rtol=1e-9)
    np.testing.assert_allclose(res.df_beta, n - 3, rtol=1e-9)


def test_degenerate_covariance_is_flagged_not_hidden():
    """fu12 = post + 1 for everyone: correlation 1, the REML maximum is on the boundary."""
    data = pd.read_csv(DATA / "mmrm_complete.csv")
    post = data[data["time"] == "post"].set_index("id")["y"]
    data["y"] = data["id"].map(post) + (data["time"] == "fu12")
    res = fit_mmrm(data, "y", times=TIMES)
    assert not res.converged
    assert res.notes.startswith("NOT CONVERGED")


def test_row_order_and_id_labels_do_not_matter(trial, fitted):
    shuffled = trial.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled["id"] = "x" + shuffled["id"].str[::-1]
    res = fit_mmrm(shuffled, "y", times=TIMES)
    np.testing.assert_allclose(res.beta, fitted.beta, rtol=1e-10)
    np.testing.assert_allclose(res.sigma, fitted.sigma, rtol=1e-10)
    pd.testing.assert_frame_equal(res.contrasts, fitted.contrasts, rtol=1e-9)
    pd.testing.assert_frame_equal(res.adjusted_means, fitted.adjusted_means, rtol=1e-9)


def test_visit_order_only_permutes_the_output(trial, fitted):
    res = fit_mmrm(trial, "y", times=TIMES[::-1])
    assert res.reml_loglik == pytest.approx(fitted.reml_loglik, rel=1e-12)
    np.testing.assert_allclose(res.sigma, fitted.sigma[::-1, ::-1], rtol=1e-8)
    np.testing.assert_allclose(res.contrast_estimate, fitted.contrast_estimate[::-1], rtol=1e-8)
    np.testing.assert_allclose(res.contrast_df, fitted.contrast_df[::-1], rtol=1e-7)


def test_absent_rows_equal_rows_with_missing_outcome(trial, fitted):
    res = fit_mmrm(trial.dropna(subset=["y"]), "y", times=TIMES)
    pd.testing.assert_frame_equal(res.contrasts, fitted.contrasts, rtol=1e-10)
    pd.testing.assert_frame_equal(res.adjusted_means, fitted.adjusted_means, rtol=1e-10)
    assert res.n_participants == fitted.n_participants == trial.groupby("id")["y"].count().gt(0).sum()
    assert res.n_observations == fitted.n_observations == trial["y"].notna().sum()


def test_other_visits_in_the_data_are_ignored(trial, fitted):
    base = trial.drop_duplicates("id").assign(time="baseline", y=lambda d: d["baseline"])
    res = fit_mmrm(pd.concat([trial, base]), "y", times=TIMES)
    np.testing.assert_allclose(res.beta, fitted.beta, rtol=1e-10)


def test_refit_and_warm_start_reproduce_the_fit(trial, fitted):
    design = build_mmrm_design(trial, times=TIMES)
    again = design.fit(trial["y"].to_numpy())
    warm = design.fit(trial["y"].to_numpy(), start=fitted.sigma * 1.1)
    np.testing.assert_array_equal(again.beta, fitted.beta)
    np.testing.assert_allclose(warm.beta, fitted.beta, rtol=1e-9)
    np.testing.assert_allclose(warm.contrast_df, fitted.contrast_df, rtol=1e-7)


def test_unusable_warm_start_falls_back_to_the_default(trial, fitted):
    design = build_mmrm_design(trial, times=TIMES)
    res = design.fit(trial["y"].to_numpy(), start=np.array([[1.0, 2.0], [2.0, 1.0]]))
    np.testing.assert_allclose(res.beta, fitted.beta, rtol=1e-9)


def test_result_frames_and_json(fitted):
    assert list(fitted.contrasts["quantity"]) == ["IMR - TAU at post", "IMR - TAU at fu12"]
    row = fitted.contrasts.iloc[0]
    assert row["ci_low"] < row["estimate"] < row["ci_high"]
    assert row["statistic"] == pytest.approx(row["estimate"] / row["se"])
    assert "Satterthwaite" in row["method"] and "REML" in row["method"]
    means = fitted.adjusted_means
    assert list(zip(means["arm"], means["timepoint"])) == [
        ("TAU", "post"),
        ("IMR", "post"),
        ("TAU", "fu12"),
        ("IMR", "fu12"),
    ]
    diff = means["estimate"].to_numpy()[1::2] - means["estimate"].to_numpy()[0::2]
    np.testing.assert_allclose(diff, fitted.contrasts["estimate"], rtol=1e-12)
    json.dumps(fitted.to_dict())


def test_rows_with_missing_covariates_are_dropped_and_noted(trial):
    broken = trial.copy()
    broken.loc[broken["id"] == "P001", "age"] = np.nan
    res = fit_mmrm(broken, "y", times=TIMES)
    assert "2 row(s) dropped" in res.notes
    assert res.contrasts["notes"].str.contains("dropped").all()


def test_non_convergence_is_flagged(trial, monkeypatch):
    monkeypatch.setattr(reml, "MAX_ITER", 1)
    res = fit_mmrm(trial, "y", times=TIMES)
    assert not res.converged
    assert "NOT CONVERGED" in res.notes
    assert res.contrasts["notes"].str.contains("NOT CONVERGED").all()


def test_no_treated_observation_at_a_visit_raises(trial):
    broken = trial.copy()
    broken.loc[(broken["arm"] == "IMR") & (broken["time"] == "fu12"), "y"] = np.nan
    with pytest.raises(AnalysisError, match="no IMR participant .* 'fu12'"):
        fit_mmrm(broken, "y", times=TIMES)


def test_single_participant_raises(trial):
    with pytest.raises(AnalysisError, match="at least two participants"):
        fit_mmrm(trial[trial["id"] == "P002"], "y", times=TIMES)


def test_visits_never_observed_together_raise(trial):
    broken = trial.copy()
    both = broken.groupby("id")["y"].transform("count") == 2
    broken.loc[both & (broken["time"] == "fu12"), "y"] = np.nan
    with pytest.raises(AnalysisError, match="both 'post' and 'fu12'"):
        fit_mmrm(broken, "y", times=TIMES)


def test_singular_design_raises(trial):
    collinear = trial.assign(age2=trial["age"] * 2)
    with pytest.raises(AnalysisError, match="singular design"):
        fit_mmrm(collinear, "y", times=TIMES, covariates=("site", "age", "age2"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.assign(arm=d["arm"].replace("TAU", "waitlist")), "exactly two arms"),
        (lambda d: pd.concat([d, d.head(1)]), "more than one row"),
        (lambda d: d.drop(columns="site"), "lack column"),
    ],
)
def test_bad_input_raises(trial, change, message):
    with pytest.raises(AnalysisError, match=message):
        fit_mmrm(change(trial), "y", times=TIMES)


def test_unknown_outcome_and_df_method_raise(trial):
    with pytest.raises(AnalysisError, match="outcome column"):
        fit_mmrm(trial, "score", times=TIMES)
    with pytest.raises(AnalysisError, match="Kenward-Roger"):
        fit_mmrm(trial, "y", times=TIMES, df_method="kenward-roger")


def test_outcome_length_must_match_design(trial):
    design = build_mmrm_design(trial, times=TIMES)
    with pytest.raises(AnalysisError, match="one value per row"):
        design.fit(np.zeros(5))
