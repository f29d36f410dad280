"""Bootstrap inference for reference-based conditional mean imputation (Wolbers et al. 2022; rbmi's
``method_condmean(type = "bootstrap")`` and ``pool()``) in imrstats.trial.reference_mi: the samples (stratified by
arm, seeded, a prefix stream), the frequency-weight shortcut against an explicit data set with the repeated
participants, the pooling (percentile and normal) against hand computation, failed fits counted and replaced, the
settings, and the tipping grid on the bootstrap. Numbers against an independent R implementation and the
jackknife on the antidepressant data are in tests/validation/test_rbmi_condmean_bootstrap.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imrstats.errors import AnalysisError, SettingsError
from imrstats.trial import reference_mi as rm
from imrstats.trial.design import StudyDesign

DESIGN = StudyDesign(visits=("v1", "v2", "v3"))  # IMR vs TAU
B = 12
SEED = 31


def simulated_frame(n: int = 60, seed: int = 5) -> pd.DataFrame:
    """IMR / TAU alternating, baseline ~ N(20, 4^2), a growing IMR benefit; 6 participants per arm stop after v1,
    4 per arm after v2; TAU p041 misses only v2 (intermittent, MAR)."""
    rng = np.random.default_rng(seed)
    arm = np.where(np.arange(n) % 2 == 0, "IMR", "TAU")
    base = rng.normal(20, 4, n)
    sigma = np.array([[9.0, 6.0, 5.0], [6.0, 12.0, 8.0], [5.0, 8.0, 14.0]])
    mean = np.array([1.0, 2.0, 2.5]) + np.outer(arm == "IMR", [1.0, 2.0, 3.0]) + 0.6 * (base[:, None] - 20)
    y = mean + rng.multivariate_normal(np.zeros(3), sigma, n)
    y[0:12, 1:] = np.nan
    y[24:32, 2] = np.nan
    y[41, 1] = np.nan
    frame = pd.DataFrame({"id": [f"p{i:03d}" for i in range(n)], "arm": arm, "baseline": base})
    for k, v in enumerate(DESIGN.visits):
        frame[v] = y[:, k]
    return frame


@pytest.fixture(scope="module")
def frame():
    return simulated_frame()


@pytest.fixture(scope="module")
def ice(frame):
    """JR at the dropout visits, plus p013 (complete) with a JR ICE at v2: its observed v2, v3 leave the fit."""
    table = rm.ice_from_dropout(frame, DESIGN, strategy="JR").table[["id", "visit", "strategy"]]
    return pd.concat([table, pd.DataFrame({"id": ["p013"], "visit": ["v2"], "strategy": ["JR"]})], ignore_index=True)


@pytest.fixture(scope="module")
def percentile(frame, ice):
    return rm.reference_based_condmean(frame, ice, DESIGN, inference="bootstrap", n_samples=B, seed=SEED)


@pytest.fixture(scope="module")
def normal(frame, ice):
    return rm.reference_based_condmean(
        frame, ice, DESIGN, inference="bootstrap", n_samples=B, seed=SEED, bootstrap_ci="normal"
    )


@pytest.fixture(scope="module")
def jackknife(frame, ice):
    return rm.reference_based_condmean(frame, ice, DESIGN)


def type6(x: np.ndarray, p: float) -> float:
    """R's quantile type 6 by its definition: rank h = (B + 1) p, the order statistics x_(1..B), linear between
    ranks, x_(1) below rank 1 and x_(B) above rank B."""
    x = np.sort(x)
    h = (len(x) + 1) * p
    if h <= 1:
        return float(x[0])
    if h >= len(x):
        return float(x[-1])
    j = int(np.floor(h))
    return float(x[j - 1] + (h - j) * (x[j] - x[j - 1]))


# ---------------------------------------------------------------- the samples


def test_samples_keep_each_arms_size_and_are_a_seeded_prefix_stream(frame):
    arms = frame["arm"].to_numpy()
    samples = rm.bootstrap_samples(arms, 30, seed=4)
    assert samples.shape == (30, 60)
    for s in samples:
        assert (arms[s] == "IMR").sum() == 30 and (arms[s] == "TAU").sum() == 30
    np.testing.assert_array_equal(rm.bootstrap_samples(arms, 7, seed=4), samples[:7])  # sample k whatever the count
    assert not np.array_equal(rm.bootstrap_samples(arms, 7, seed=5), samples[:7])
    assert len({tuple(s) for s in samples}) == 30 and all(len(set(s)) < 60 for s in samples)  # with replacement
    weights = rm.sample_weights(samples, 60)
    assert (weights.sum(axis=1) == 60).all() and weights.max() >= 2


def test_the_result_is_seeded_and_its_estimate_is_the_full_data_one(frame, ice, percentile, normal, jackknife):
    again = rm.reference_based_condmean(frame, ice, DESIGN, inference="bootstrap", n_samples=B, seed=SEED)
    pd.testing.assert_frame_equal(again.estimates, percentile.estimates)
    np.testing.assert_array_equal(percentile.bootstrap_indices, rm.bootstrap_samples(frame["arm"], B, SEED))
    other = rm.reference_based_condmean(frame, ice, DESIGN, inference="bootstrap", n_samples=B, seed=SEED + 1)
    assert not np.allclose(other.estimates["ci_low"], percentile.estimates["ci_low"])
    for result in (percentile, normal, other):  # the point estimate never depends on the samples
        np.testing.assert_allclose(result.estimates["estimate"], jackknife.estimates["estimate"], rtol=1e-12)
    np.testing.assert_array_equal(normal.bootstrap_estimates, percentile.bootstrap_estimates)
    assert percentile.inference == "bootstrap" and percentile.n_samples == B and percentile.n_failed == 0
    assert percentile.n_fits == 1 + B and percentile.jackknife_estimates.shape == (0, 9)
    assert percentile.bootstrap_estimates.shape == (B, 9)
    assert "bootstrap inference (12 samples drawn within each arm, seed 31" in percentile.method
    assert "12 samples (seed 31, stratified by arm), percentile CI" in percentile.summary()
    assert "bootstrap_estimates" not in percentile.to_dict() and percentile.to_dict()["n_samples"] == B


def test_a_sample_equals_an_explicit_data_set_with_the_repeated_participants(frame, ice, percentile):
    """The shortcut (every participant imputed at the sample's fit, the ANCOVA weighted by how often each is in
    the sample) against the sample written out: each copy a participant of its own, with its own ICE row, fitted,
    imputed and analysed by plain least squares."""
    b = 3
    sample = percentile.bootstrap_indices[b]
    rows = frame.iloc[sample].reset_index(drop=True)
    rows["id"] = [f"{pid}_{j:02d}" for j, pid in enumerate(frame["id"].to_numpy()[sample])]
    ice_of = ice.set_index("id")
    copies = [(new, old) for new, old in zip(rows["id"], frame["id"].to_numpy()[sample]) if old in ice_of.index]
    dup_ice = pd.DataFrame(
        {
            "id": [new for new, _ in copies],
            "visit": [ice_of.loc[old, "visit"] for _, old in copies],
            "strategy": [ice_of.loc[old, "strategy"] for _, old in copies],
        }
    )
    model = rm.fit_imputation_model(rows, dup_ice, DESIGN)
    shortcut = rm.fit_imputation_model(frame, ice, DESIGN)
    beta, sigma, why = rm.bootstrap_fit(shortcut, sample)
    assert why == ""
    np.testing.assert_allclose(sigma, model.sigma, rtol=1e-7)
    completed = model.impute()
    Z = np.column_stack([np.ones(60), (model.arms == "IMR").astype(float), model.Z[:, 2]])
    for k in range(3):
        coef = np.linalg.lstsq(Z, completed[:, k], rcond=None)[0]
        zbar = Z.mean(axis=0)
        expected = [coef[1], zbar[[0, 2]] @ coef[[0, 2]], zbar[[0, 2]] @ coef[[0, 2]] + coef[1]]
        got = percentile.bootstrap_estimates[b, [k, 3 + k, 6 + k]]
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------- pooling


def test_percentile_interval_is_the_type_6_quantiles_of_the_sample_estimates(frame, ice, percentile):
    boot = percentile.bootstrap_estimates
    for j, row in percentile.estimates.iterrows():
        assert row["ci_low"] == pytest.approx(type6(boot[:, j], 0.025), rel=1e-14, abs=1e-14)
        assert row["ci_high"] == pytest.approx(type6(boot[:, j], 0.975), rel=1e-14, abs=1e-14)
        assert np.isnan(row["se"]) and np.isnan(row["statistic"]) and np.isnan(row["df"])
        assert row["bootstrap_se"] == pytest.approx(boot[:, j].std(ddof=1), rel=1e-14)
    # with B = 12, the 95% limits are the extremes (rank 13 x 0.025 < 1); at 50% they interpolate
    assert (percentile.estimates["ci_low"].to_numpy() == boot.min(axis=0)).all()
    half = rm.reference_based_condmean(
        frame, ice, DESIGN, inference="bootstrap", n_samples=B, seed=SEED, level=0.5
    ).estimates
    for j in range(9):
        assert half["ci_low"].iloc[j] == pytest.approx(type6(boot[:, j], 0.25), rel=1e-14, abs=1e-14)
        assert half["ci_high"].iloc[j] == pytest.approx(type6(boot[:, j], 0.75), rel=1e-14, abs=1e-14)
        assert boot[:, j].min() < half["ci_low"].iloc[j] < half["ci_high"].iloc[j] < boot[:, j].max()


def test_percentile_p_inverts_the_interval():
    rng = np.random.default_rng(2)
    boot = rng.normal(0.4, 1.0, size=(25, 6))
    boot[:, 4] = np.abs(boot[:, 4]) + 0.1  # every estimate > 0
    boot[:, 5] = -np.abs(boot[:, 5]) - 0.1  # every estimate < 0
    p = rm.percentile_p(boot)
    for j in range(4):  # the level q at which the type-6 quantile is 0, by bisection on its definition
        lo, hi = 0.0, 1.0
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if type6(boot[:, j], mid) < 0 else (lo, mid)
        assert p[j] == pytest.approx(min(1.0, 2 * min(lo, 1 - lo)), abs=1e-12)
    assert p[4] == 0.0 and p[5] == 0.0
    # ties at 0 (rbmi: ranks of the zeros, first method): sorted ranks 3, 4 of 9 -> q = 3/10 and 1 - 4/10
    x = np.array([-2.0, -1.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0])[:, None]
    assert rm.percentile_p(x)[0] == pytest.approx(2 * 0.3)
    assert rm.percentile_p(np.zeros((5, 1)))[0] == 1.0
    # the p falls below 1 - level exactly when the percentile interval excludes 0
    for level in (0.5, 0.8, 0.9):
        low, high = np.quantile(boot[:, :4], [0.5 - level / 2, 0.5 + level / 2], axis=0, method="weibull")
        assert ((p[:4] < 1 - level) == ((low > 0) | (high < 0))).all()


def test_normal_interval_uses_the_sd_of_the_sample_estimates(normal):
    boot = normal.bootstrap_estimates
    z = stats.norm.ppf(0.975)
    for j, row in normal.estimates.iterrows():
        sd = boot[:, j].std(ddof=1)
        assert row["se"] == pytest.approx(sd, rel=1e-14) and row["bootstrap_se"] == row["se"]
        assert row["ci_low"] == pytest.approx(row["estimate"] - z * sd, rel=1e-14)
        assert row["ci_high"] == pytest.approx(row["estimate"] + z * sd, rel=1e-14)
        assert row["p"] == pytest.approx(2 * stats.norm.sf(abs(row["estimate"] / sd)), rel=1e-12)
    assert "SE the SD of the sample estimates, normal CI and p" in normal.method


# ---------------------------------------------------------------- failures, settings


def sparse_frame() -> pd.DataFrame:
    """60 participants; at v3 only two TAU participants (p013, p015) have a value, the others drop out after v2:
    a bootstrap sample of TAU without both leaves the TAU mean at v3 without data (not estimable)."""
    frame = simulated_frame(60, seed=9)
    tau = frame["arm"] == "TAU"
    keep = frame["id"].isin(["p013", "p015"])
    frame.loc[tau & ~keep, "v3"] = np.nan
    return frame


def test_a_sample_whose_fit_fails_is_counted_named_and_replaced():
    frame = sparse_frame()
    ice = rm.ice_from_dropout(frame, DESIGN, strategy="JR").table
    model = rm.fit_imputation_model(frame, ice, DESIGN)
    result = rm.reference_based_condmean(
        frame, ice, DESIGN, inference="bootstrap", n_samples=20, seed=3, failure_threshold=0.5
    )
    drawn = rm.bootstrap_samples(model.arms, result.n_samples + result.n_failed, seed=3)
    observed_tau_v3 = {i for i in range(60) if model.arms[i] == "TAU" and model.fit_observed[i, 2]}
    failing = [k + 1 for k, s in enumerate(drawn) if not observed_tau_v3 & set(s)]
    assert len(failing) >= 2  # this seed draws at least two such samples
    assert [k for k, _ in result.bootstrap_failures] == failing and result.n_failed == len(failing)
    assert all(
        "no TAU participant has an observed outcome at visit 'v3'" in why for _, why in result.bootstrap_failures
    )
    kept = [s for k, s in enumerate(drawn) if k + 1 not in failing]
    np.testing.assert_array_equal(result.bootstrap_indices, kept)
    assert result.n_fits == 1 + 20 + len(failing)
    note = f"{len(failing)} of {20 + len(failing)} bootstrap samples could not be fitted and were replaced"
    assert note in result.notes and (result.estimates["notes"].str.contains(note, regex=False)).all()
    assert f"failed fits replaced: {len(failing)}" in result.summary()
    # rbmi's threshold: at most ceil(1% x 20) = 1 failure
    with pytest.raises(AnalysisError, match=r"^2 of \d+ bootstrap samples could not be fitted \(more than ceil"):
        rm.reference_based_condmean(frame, ice, DESIGN, inference="bootstrap", n_samples=20, seed=3)


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"inference": "bootstrapp"}, "inference"),
        ({"inference": "bootstrap", "seed": 1}, "n_samples"),
        ({"inference": "bootstrap", "seed": 1, "n_samples": 1}, "n_samples"),
        ({"inference": "bootstrap", "n_samples": 10}, "seed"),
        ({"inference": "bootstrap", "n_samples": 10, "seed": 1, "bootstrap_ci": "basic"}, "bootstrap_ci"),
        ({"inference": "bootstrap", "n_samples": 10, "seed": 1, "failure_threshold": 1.0}, "failure_threshold"),
        ({"analysis": "glm"}, "analysis"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(frame, ice, settings, key):
    with pytest.raises(SettingsError) as err:
        rm.reference_based_condmean(frame, ice, DESIGN, **settings)
    assert err.value.keys == [key]


# ---------------------------------------------------------------- the tipping grid on the bootstrap


def test_tipping_grid_on_the_bootstrap_equals_single_runs_with_the_delta_table(frame, ice, percentile):
    template = rm.delta_template(frame, ice, DESIGN)
    grid = rm.tipping_point_2d(
        frame,
        ice,
        DESIGN,
        deltas_intervention=[-4.0, 0.0, 6.0],
        deltas_control=[0.0, 5.0],
        method="condmean_bootstrap",
        visit="v3",
        seed=SEED,
        n_samples=B,
    )
    assert grid.n_fits == 1 + B and "bootstrap inference" in grid.method and "percentile CI" in grid.method
    row = percentile.estimates.loc[percentile.estimates["quantity"] == "IMR - TAU at v3"].iloc[0]
    for column in ("estimate", "p"):
        assert grid.at_zero[column] == pytest.approx(row[column], rel=1e-12)
    a, c = 6.0, 5.0
    table = template.copy()
    post = table["is_missing"] & table["is_post_ice"]
    table.loc[post & (table["arm"] == "IMR"), "delta"] = a
    table.loc[post & (table["arm"] == "TAU"), "delta"] = c
    single = rm.reference_based_condmean(
        frame, ice, DESIGN, inference="bootstrap", n_samples=B, seed=SEED, delta=table
    ).estimates
    single = single.loc[single["quantity"] == "IMR - TAU at v3"].iloc[0]
    cell = grid.grid.loc[(grid.grid["delta_intervention"] == a) & (grid.grid["delta_control"] == c)].iloc[0]
    for column in ("estimate", "ci_low", "ci_high", "p", "bootstrap_se"):
        assert cell[column] == pytest.approx(single[column], rel=1e-9, abs=1e-12), column
    assert np.isnan(cell["se"])
    with pytest.raises(SettingsError, match="n_samples"):
        rm.tipping_point_2d(
            frame, ice, DESIGN, deltas_intervention=[0.0], deltas_control=[0.0], method="condmean_bootstrap", seed=1
        )
