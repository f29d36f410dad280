"""Unit tests for imrstats.services.models: frame building, edge cases, degenerate data and helpers.

Numbers against R live in tests/validation/test_services_vs_r.py.
"""

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

from conftest import VALIDATION_DATA
from imrstats.errors import AnalysisError
from imrstats.services import likelihoods as countmodels
from imrstats.services import models as services

DATA = VALIDATION_DATA


@pytest.fixture(scope="module")
def tables():
    return (pd.read_csv(DATA / "services_participants.csv"), pd.read_csv(DATA / "services_service_use.csv"))


@pytest.fixture(scope="module")
def frame(tables):
    return services.services_frame(*tables)


@pytest.fixture(scope="module")
def degenerate():
    data = pd.read_csv(DATA / "services_degenerate.csv")
    data["arm"] = pd.Categorical(data["arm"], categories=["TAU", "IMR"])
    data["log_exposure"] = np.log(data["exposure_days"])
    return data


@pytest.fixture(scope="module")
def er_fits(frame):
    return services.fit_count_models(frame, "er_visits")["fits"]


# --- services_frame --------------------------------------------------------------------------


def test_frame_has_offset_prior_admissions_and_tau_reference(frame, tables):
    _, service_use = tables
    pre = service_use[service_use["period"] == "pre"].set_index("id")["admissions"]
    assert len(frame) == 198 and frame.attrs["excluded"] == 0
    assert np.allclose(frame["log_exposure"], np.log(frame["exposure_days"]))
    assert frame["prior_admissions"].tolist() == pre.loc[frame["id"]].astype(float).tolist()
    assert list(frame["arm"].cat.categories) == ["TAU", "IMR"]


def test_frame_leaves_out_participants_without_follow_up(tables):
    participants, service_use = tables
    drop = service_use[~((service_use["id"] == "P001") & (service_use["period"] == "follow_up"))]
    frame = services.services_frame(participants, drop)
    assert len(frame) == 197 and frame.attrs["excluded"] == 1 and "P001" not in set(frame["id"])


def test_frame_refuses_zero_days_at_risk(tables):
    participants, service_use = tables
    bad = service_use.copy()
    bad.loc[(bad["id"] == "P002") & (bad["period"] == "follow_up"), "exposure_days"] = 0
    with pytest.raises(AnalysisError, match="exposure_days"):
        services.services_frame(participants, bad)


def test_frame_refuses_missing_prior_year_when_it_is_a_covariate(tables):
    participants, service_use = tables
    no_pre = service_use[~((service_use["id"] == "P003") & (service_use["period"] == "pre"))]
    with pytest.raises(AnalysisError, match="prior_admissions"):
        services.services_frame(participants, no_pre)
    frame = services.services_frame(participants, no_pre, covariates=("site",))
    assert np.isnan(frame.loc[frame["id"] == "P003", "prior_admissions"]).all()


def test_frame_refuses_duplicate_follow_up_rows(tables):
    participants, service_use = tables
    doubled = pd.concat([service_use, service_use[service_use["period"] == "follow_up"].head(1)])
    with pytest.raises(AnalysisError, match="more than one follow_up"):
        services.services_frame(participants, doubled)


def test_design_matrix_uses_r_names_and_reference_levels(frame):
    X, names = services.design_matrix(frame, ["arm", "site", "prior_admissions"])
    assert names == ["(Intercept)", "armIMR", "siteFrederiksberg", "siteGladsaxe", "prior_admissions"]
    assert X[:, 1].sum() == 99 and X[:, 2].sum() == (frame["site"] == "Frederiksberg").sum()


# --- descriptives and checks -----------------------------------------------------------------


def test_describe_counts_per_arm(frame):
    table = services.describe_counts(frame, "bed_days").set_index("arm")
    tau = frame.loc[frame["arm"] == "TAU"]
    assert table.loc["TAU", "n"] == 99 and table.loc["all", "n"] == 198
    assert table.loc["TAU", "mean"] == pytest.approx(tau["bed_days"].sum() / 99)
    assert table.loc["TAU", "share_zero"] == pytest.approx((tau["bed_days"] == 0).sum() / 99)
    assert table.loc["TAU", "max"] == tau["bed_days"].max()
    days = tau["exposure_days"].sum()
    assert table.loc["TAU", "rate_per_person_year"] == pytest.approx(tau["bed_days"].sum() * 365.25 / days)


def test_overdispersion_test_needs_poisson(er_fits):
    with pytest.raises(AnalysisError, match="Poisson"):
        services.overdispersion_test(er_fits["nb2"])


def test_overdispersion_test_finds_no_overdispersion_in_poisson_data():
    rng = np.random.default_rng(7)
    n = 400
    data = pd.DataFrame(
        {
            "arm": pd.Categorical(np.repeat(["TAU", "IMR"], n // 2), categories=["TAU", "IMR"]),
            "exposure_days": 365,
            "log_exposure": np.log(365.0),
        }
    )
    data["y"] = rng.poisson(np.where(data["arm"] == "IMR", 2.0, 2.5))
    result = services.overdispersion_test(services.fit_poisson(data, "y", covariates=()))
    assert result["estimate"].iloc[0] == pytest.approx(1, abs=0.2)  # Pearson chi2/df
    assert result["p"].iloc[1] > 0.01


def test_zero_check_hurdle_reproduces_observed_zeros(er_fits):
    check = services.zero_check(list(er_fits.values())).set_index("model")
    observed = check["observed_zeros"].iloc[0]
    assert observed == (er_fits["poisson"]._y == 0).sum()
    # a logit zero part with an intercept reproduces the zero count exactly (score equation)
    assert check.loc["hurdle_nb", "expected_zeros"] == pytest.approx(observed, rel=1e-8)
    assert check.loc["poisson", "expected_zeros"] < check.loc["nb2", "expected_zeros"]


# --- fitted models ---------------------------------------------------------------------------


def test_effects_hold_the_arm_irr_and_zero_part_or(er_fits):
    nb2 = er_fits["nb2"].effects
    assert nb2["quantity"].tolist() == ["IRR IMR vs TAU"]
    coef = er_fits["nb2"].coefficients.set_index("quantity").loc["count_armIMR"]
    assert nb2["estimate"].iloc[0] == pytest.approx(np.exp(coef["estimate"]))
    assert nb2["ci_low"].iloc[0] == pytest.approx(np.exp(coef["ci_low"]))
    hurdle = er_fits["hurdle_nb"].effects["quantity"].tolist()
    assert hurdle == ["IRR IMR vs TAU (count part)", "OR IMR vs TAU of any event (zero hurdle part)"]


def test_strong_arm_effect_is_recovered():
    rng = np.random.default_rng(11)
    n = 600
    arm = np.repeat(["TAU", "IMR"], n // 2)
    days = rng.integers(200, 366, n)
    mu = np.where(arm == "IMR", 0.5, 1.0) * 2 * days / 365
    data = pd.DataFrame(
        {
            "arm": pd.Categorical(arm, categories=["TAU", "IMR"]),
            "exposure_days": days,
            "log_exposure": np.log(days),
            "y": rng.negative_binomial(2, 2 / (2 + mu)),
        }
    )
    irr = services.fit_nb2(data, "y", covariates=()).effects.iloc[0]
    assert irr["ci_low"] < 0.5 < irr["ci_high"] and irr["ci_high"] < 1 and irr["p"] < 1e-6


def test_fits_are_deterministic(frame):
    a = services.fit_zinb(frame, "admissions")
    b = services.fit_zinb(frame, "admissions")
    pd.testing.assert_frame_equal(a.coefficients, b.coefficients)


def test_to_dict_is_json_and_aggregate_only(er_fits):
    for fit in er_fits.values():
        text = json.dumps(fit.to_dict())
        assert "P001" not in text and "_y" not in fit.to_dict()
        assert json.loads(text)["converged"] is True


# --- sparse and degenerate data --------------------------------------------------------------


@pytest.mark.parametrize("fitter", [services.fit_poisson, services.fit_nb2, services.fit_zinb, services.fit_hurdle_nb])
def test_all_zero_outcome_is_refused(degenerate, fitter):
    with pytest.raises(AnalysisError, match="0 for all 198"):
        fitter(degenerate, "all_zero")


@pytest.mark.parametrize("fitter", [services.fit_poisson, services.fit_nb2, services.fit_zinb])
def test_arm_without_events_is_refused(degenerate, fitter):
    # R's glm returns armIMR = 19.8 with SE 1554 here, without an error
    with pytest.raises(AnalysisError, match="arm = TAU"):
        fitter(degenerate, "tau_no_events")


def test_site_without_events_is_refused(degenerate):
    with pytest.raises(AnalysisError, match="site = Ballerup"):
        services.fit_nb2(degenerate, "site_no_events")
    with pytest.raises(AnalysisError, match="site = Ballerup"):
        services.fit_hurdle_nb(degenerate, "site_no_events")


def test_hurdle_separation_is_refused(degenerate):
    # R's hurdle returns zero_armIMR = 19.7 with SE 1763 here, without an error
    with pytest.raises(AnalysisError, match="perfect separation"):
        services.fit_hurdle_nb(degenerate, "imr_always_positive")
    fit = services.fit_hurdle_nb(degenerate, "imr_always_positive", zero_terms=())
    assert np.isfinite(fit.coefficients.set_index("quantity").loc["zero_(Intercept)", "se"])
    # the positive counts are 1 + Poisson: the truncated NB2 part is flagged as collapsing to Poisson
    assert not fit.converged and any("collapses to Poisson" in w for w in fit.warnings)


def test_zero_models_need_zeros_and_hurdle_needs_counts_above_one(degenerate):
    data = degenerate.assign(
        positive=degenerate["tau_no_events"] + 1, ones=(degenerate["sparse_events"] > 0).astype(int)
    )
    with pytest.raises(AnalysisError, match="no participant has a zero"):
        services.fit_zinb(data, "positive")
    with pytest.raises(AnalysisError, match="every positive count is 1"):
        services.fit_hurdle_nb(data, "ones", covariates=(), zero_terms=("arm",))


def test_fit_count_models_records_errors_instead_of_stopping(degenerate):
    out = services.fit_count_models(degenerate, "imr_always_positive")
    assert set(out["fits"]) == {"poisson", "nb2", "zinb"} and "perfect separation" in out["errors"]["hurdle_nb"]


def test_underdispersed_counts_flag_nb2_theta_boundary():
    data = pd.DataFrame(
        {
            "arm": pd.Categorical(np.tile(["TAU", "IMR"], 50), categories=["TAU", "IMR"]),
            "exposure_days": 365,
            "log_exposure": np.log(365.0),
            "y": np.tile([2, 3, 3, 2], 25),
        }
    )
    fit = services.fit_nb2(data, "y", covariates=())
    assert not fit.converged
    assert any("collapses to Poisson" in w for w in fit.warnings)


def test_non_convergence_is_reported_not_hidden():
    rng = np.random.default_rng(3)
    X = np.column_stack([np.ones(50), rng.normal(size=50)])
    y = rng.poisson(1.0, 50).astype(float)
    result = countmodels.maximize(
        lambda p: countmodels.nb2_loglik(p, X, y, np.zeros(50)),
        lambda p: np.zeros(3) + 1.0,  # a wrong score never reaches zero
        np.zeros(3),
        max_newton=3,
    )
    assert not result.converged and result.message


# --- comparison, Vuong and rootograms --------------------------------------------------------


def test_compare_models_rules(er_fits):
    fits = list(er_fits.values())
    by_aic = services.compare_models(fits, "aic")
    table = by_aic.table.set_index("model")
    assert by_aic.chosen == table["aic"].idxmin() and "AIC" in by_aic.reason
    assert services.compare_models(fits, "bic").chosen == table["bic"].idxmin()
    by_vuong = services.compare_models(fits, "vuong")
    assert by_vuong.chosen == "nb2" and "Vuong" in by_vuong.reason
    assert len(by_vuong.vuong) == 12 and set(table.index) == set(er_fits)
    json.dumps(by_vuong.to_dict())
    with pytest.raises(AnalysisError, match="unknown model selection rule"):
        services.compare_models(fits, "lowest_p")


def test_compare_models_excludes_flagged_models(er_fits):
    bad = services.CountModelFit(**{**er_fits["poisson"].__dict__, "converged": False, "loglik": 0.0})
    result = services.compare_models([bad, er_fits["nb2"]], "aic")
    assert result.chosen == "nb2" and "not eligible" in result.reason


def test_vuong_refuses_models_of_different_data(frame, er_fits):
    other = services.fit_poisson(frame, "admissions")
    with pytest.raises(AnalysisError, match="same counts"):
        services.vuong_test(er_fits["poisson"], other)


@pytest.mark.parametrize("model", ["poisson", "nb2", "zinb", "hurdle_nb"])
def test_rootogram_frequencies(er_fits, model):
    fit = er_fits[model]
    data = services.rootogram_data(fit)
    assert data["observed"].sum() == fit.nobs and data.attrs["observed_above_max"] == 0
    wide = services.rootogram_data(fit, max_count=200)
    assert wide["expected"].sum() == pytest.approx(fit.nobs, rel=1e-6)
    assert np.allclose(data["hang_bottom"], np.sqrt(data["expected"]) - np.sqrt(data["observed"]))


def test_plot_rootogram_returns_a_figure(er_fits):
    fig = services.plot_rootogram(services.rootogram_data(er_fits["nb2"], max_count=8))
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes[0].patches) == 9
