"""Unit tests for imrstats.results: the Estimate constructors, the one serialiser and the result protocol
(`to_dict`, `to_frame`, `summary`, `confint`) of every fitted result class."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import VALIDATION_DATA
from imrstats.results import (
    ESTIMATE_COLUMNS,
    Estimate,
    ResultMixin,
    confint_t,
    identifiers_first,
    to_frame,
    to_json,
    to_jsonable,
    to_records,
)

# ---------------------------------------------------------------- constructors


@pytest.mark.parametrize("level", [0.95, 0.9])
def test_from_t_matches_scipy_by_hand(level):
    est, se, df = 1.7, 0.6, 23.4
    row = Estimate.from_t("diff", est, se, df, level, "OLS", notes="n", extra={"timepoint": "post"})
    q = stats.t.ppf(0.5 + level / 2, df)
    assert row.ci_low == est - q * se and row.ci_high == est + q * se
    assert row.statistic == est / se and row.df == df
    assert row.p == 2 * stats.t.sf(est / se, df)
    assert row.p == pytest.approx(2 * (1 - stats.t.cdf(est / se, df)), rel=1e-12)
    assert (row.method, row.notes, row.extra) == ("OLS", "n", {"timepoint": "post"})
    assert isinstance(row.estimate, float) and isinstance(row.p, float)


def test_from_t_with_numpy_inputs_and_negative_estimate():
    row = Estimate.from_t("d", np.float64(-2.0), np.float64(0.5), np.int64(10))
    assert row.statistic == -4.0
    assert row.p == pytest.approx(2 * stats.t.cdf(-4.0, 10), rel=1e-12)
    assert row.ci_low < -2.0 < row.ci_high and row.extra == {}


def test_from_wald_matches_scipy_by_hand():
    est, se = -0.3, 0.12
    row = Estimate.from_wald("log IRR", est, se, 0.95, "Wald", extra={"part": "count"})
    z = stats.norm.ppf(0.975)
    assert row.ci_low == est - z * se and row.ci_high == est + z * se
    assert row.statistic == est / se and math.isnan(row.df)
    assert row.p == pytest.approx(2 * stats.norm.cdf(-abs(est / se)), rel=1e-12)
    assert row.extra == {"part": "count"}


def test_from_wald_without_a_positive_se_has_no_statistic():
    row = Estimate.from_wald("x", 1.0, 0.0)
    assert math.isnan(row.statistic) and math.isnan(row.p)


# ---------------------------------------------------------------- serialiser


@dataclasses.dataclass(frozen=True)
class _Plain:
    a: float
    b: tuple


def test_to_jsonable_scrubs_nested_nan_numpy_and_frames():
    value = {
        1: np.float64("nan"),
        "ints": [np.int64(3), (np.float32(1.5), np.inf, -np.inf)],
        "arr": np.array([[1.0, np.nan], [2.0, 3.0]]),
        "flag": np.bool_(True),
        "frame": pd.DataFrame({"x": [1, 2], "y": [np.nan, 0.5], "z": ["a", None]}),
        "na": pd.NA,
        "nat": pd.NaT,
        "row": Estimate("q", np.float64(2.0), extra={"k": np.int64(4)}),
        "plain": _Plain(math.nan, (1, 2)),
    }
    out = to_jsonable(value)
    assert out == {
        "1": None,
        "ints": [3, [1.5, None, None]],
        "arr": [[1.0, None], [2.0, 3.0]],
        "flag": True,
        "frame": [{"x": 1, "y": None, "z": "a"}, {"x": 2, "y": 0.5, "z": None}],
        "na": None,
        "nat": None,
        "row": {
            "quantity": "q",
            "estimate": 2.0,
            "se": None,
            "ci_low": None,
            "ci_high": None,
            "df": None,
            "statistic": None,
            "p": None,
            "method": "",
            "notes": "",
            "k": 4,
        },
        "plain": {"a": None, "b": [1, 2]},
    }
    assert type(out["ints"][0]) is int and type(out["flag"]) is bool
    json.dumps(out, allow_nan=False)  # nothing left that JSON cannot hold


def test_to_json_sorts_keys_and_ends_with_a_newline():
    text = to_json({"b": 1, "a": {"d": np.nan, "c": [np.int32(2)]}})
    assert text == '{\n  "a": {\n    "c": [\n      2\n    ],\n    "d": null\n  },\n  "b": 1\n}\n'


def test_to_records_of_none_and_empty_frames():
    assert to_records(None) == [] and to_records(pd.DataFrame()) == []


def test_result_mixin_skips_renames_and_adds():
    @dataclasses.dataclass(frozen=True)
    class R(ResultMixin):
        name: str
        rows: np.ndarray
        value: float
        _json_skip = ("rows",)
        _json_rename = {"value": "renamed"}

        def _json_extra(self):
            return {"twice": 2 * self.value}

    assert R("r", np.arange(3), np.float64(1.5)).to_dict() == {"name": "r", "renamed": 1.5, "twice": 3.0}
    assert R("r", np.arange(3), math.nan).to_dict() == {"name": "r", "renamed": None, "twice": None}


# ---------------------------------------------------------------- frames


def test_confint_t_reproduces_from_t_intervals():
    rows = [Estimate.from_t(f"q{i}", 0.3 * i, 0.2 + i / 10, 5 + i, 0.9) for i in range(4)]
    again = confint_t(to_frame([dataclasses.replace(r, ci_low=0.0, ci_high=0.0) for r in rows]), 0.9)
    assert list(again["ci_low"]) == [r.ci_low for r in rows]
    assert list(again["ci_high"]) == [r.ci_high for r in rows]


def test_identifiers_first_moves_only_identifier_columns():
    frame = to_frame([Estimate("d", 1.0, extra={"n": 3, "outcome": "gaf_f", "timepoint": "post"})])
    moved = identifiers_first(frame)
    assert list(moved.columns) == ["outcome", "timepoint", *ESTIMATE_COLUMNS, "n"]
    pd.testing.assert_frame_equal(moved[frame.columns], frame)
    plain = pd.DataFrame({"a": [1], "outcome": ["x"]})
    assert identifiers_first(plain) is plain and identifiers_first(moved) is moved
    mixed = frame.assign(direction="up")[["direction", "outcome", *ESTIMATE_COLUMNS, "timepoint", "n"]]
    assert list(identifiers_first(mixed).columns) == ["outcome", "timepoint", *ESTIMATE_COLUMNS, "direction", "n"]


# ---------------------------------------------------------------- every result class answers the protocol


def _check_protocol(result, *, confint: bool):
    record = result.to_dict()
    json.dumps(record, allow_nan=False)
    frame = result.to_frame()
    assert isinstance(frame, pd.DataFrame) and not frame.empty
    assert {"quantity", "estimate"} <= set(frame.columns)
    text = result.summary()
    assert isinstance(text, str) and text.strip()
    if confint:
        ci = result.confint(level=0.9) if "level" in result.confint.__code__.co_varnames else result.confint()
        assert {"ci_low", "ci_high"} <= set(ci.columns)
    return record, frame, text


@pytest.fixture(scope="module")
def gaf():
    return pd.read_csv(VALIDATION_DATA / "trial_extra_gaf_f.csv", dtype={"id": str})


def test_meta_result_protocol():
    from imrstats.meta.random_effects import rma

    res = rma([0.1, 0.3, 0.5, 0.2], [0.04, 0.05, 0.03, 0.06], slab=["A", "B", "C", "D"])
    record, frame, text = _check_protocol(res, confint=True)
    assert record["slab"] == ["A", "B", "C", "D"] and record["estimates"][0]["quantity"] == "pooled effect"
    assert "Random-effects model" in text


def test_count_model_protocol():
    from imrstats.services import models as services

    frame = services.services_frame(
        pd.read_csv(VALIDATION_DATA / "services_participants.csv"),
        pd.read_csv(VALIDATION_DATA / "services_service_use.csv"),
    )
    fits = services.fit_count_models(frame, "er_visits")["fits"]
    for fit in fits.values():
        record, rows, text = _check_protocol(fit, confint=True)
        assert {"aic", "bic", "coefficients", "effects"} <= set(record) and "_y" not in record
        assert fit.model in text and str(fit.nobs) in text
        # at the fit's level the Wald intervals are the stored ones
        same = fit.confint(0.95)
        stored = fit.coefficients.loc[fit.coefficients["part"].isin(["count", "zero"])]
        np.testing.assert_array_equal(same["ci_low"].to_numpy(), stored["ci_low"].to_numpy())
    comparison = services.compare_models(list(fits.values()))
    record, _, text = _check_protocol(comparison, confint=False)
    assert record["chosen"] == comparison.chosen and comparison.chosen in text


def test_trial_result_classes_protocol(gaf):
    from imrstats.trial import analyses as trial
    from imrstats.trial import secondary
    from imrstats.trial.lmm import random_intercept_lmm

    mmrm = trial.likelihood_mmrm(gaf)
    record, _, text = _check_protocol(mmrm, confint=True)
    assert {"fixed_effects", "contrasts", "adjusted_means", "covariance"} <= set(record)
    pd.testing.assert_series_equal(
        mmrm.confint()["ci_low"].iloc[-len(mmrm.adjusted_means) :].reset_index(drop=True),
        mmrm.adjusted_means["ci_low"],
        check_names=False,
    )
    assert "MMRM" in text

    lmm = random_intercept_lmm(gaf, outcome="gaf_f")
    record, _, text = _check_protocol(lmm, confint=True)
    assert record["icc"] == pytest.approx(lmm.icc)
    np.testing.assert_allclose(
        lmm.confint(0.95)["ci_low"].iloc[: len(lmm.contrasts)], lmm.contrasts["ci_low"], rtol=1e-14
    )

    imputation = trial.impute_outcome(gaf, m=3, seed=5)
    itt = trial.itt_mi_mmrm(gaf, outcome="gaf_f", imputation=imputation)
    record, _, text = _check_protocol(itt, confint=True)
    assert {"n_dropped_missing_covariates", "n_fits_not_converged", "imputation"} <= set(record)
    np.testing.assert_allclose(
        itt.confint(0.95)["ci_high"].iloc[: len(itt.contrasts)], itt.contrasts["ci_high"], rtol=1e-14
    )

    diagnostics = secondary.cc_diagnostics(gaf, outcome="gaf_f")
    record, _, _ = _check_protocol(diagnostics, confint=False)
    assert "cooks_rows_above_4_over_n" in record and "fitted" not in record


def test_imputation_result_protocol():
    from imrstats.trial.mice import impute_chained

    rng = np.random.default_rng(1)
    data = pd.DataFrame({"x": rng.normal(size=40), "y": rng.normal(size=40)})
    data.loc[::5, "y"] = np.nan
    result = impute_chained(data, targets=["y"], predictors=["x"], m=2, maxit=2, seed=3)
    record, frame, text = _check_protocol(result, confint=False)
    assert record["n_missing"] == {"y": 8} and frame["n_missing"].tolist() == [8]
    assert "MICE" in text


def test_bayes_result_protocol_without_sampling():
    from imrstats.meta.bayes import BayesResult, Diagnostics

    d = Diagnostics(1.001, "mu", 900.0, "tau", 0, 4, 1000, 1000, 0.99, 1.5)
    estimates = to_frame([Estimate("mu", 0.2, 0.1, 0.0, 0.4), Estimate("tau", 0.1, 0.05, 0.01, 0.2)])
    res = BayesResult(
        estimates,
        pd.DataFrame({"study": ["A"], "theta": [0.2]}),
        d,
        "Normal(0, 1)",
        "tau ~ HalfNormal(0.5)",
        2,
        7,
        "Bayesian normal-normal",
        posterior=object(),
    )
    record, _, text = _check_protocol(res, confint=False)
    assert "posterior" not in record and record["diagnostics"]["ok"] is True
    assert "HalfNormal" in text and "gate passed" in text


def test_implementation_and_audit_results_protocol():
    import sys
    from pathlib import Path

    from imrstats.audit.checks import Finding
    from imrstats.implementation.descriptives import analyse_programme

    sys.path.insert(0, str(Path(__file__).parent / "implementation"))
    from test_implementation import make_programme

    result = analyse_programme(make_programme())
    record, frame, _ = _check_protocol(result, confint=False)
    assert "plot_data" not in record and frame.columns[0] == "table"

    finding = Finding(
        "t_test_p",
        "consistent",
        "p = 0.03",
        "0.029",
        "fine",
        low=0.02,
        high=math.inf,
        estimate=Estimate("t", 2.2, df=30.0, p=0.029),
        extra={"table": "Table 2"},
    )
    record, frame, text = _check_protocol(finding, confint=False)
    assert record["high"] is None and record["table"] == "Table 2" and record["estimate"]["p"] == 0.029
    assert text.startswith("consistent: t_test_p")
