"""Delta adjustment after reference-based imputation (rbmi's delta_template and analyse(delta = )) and the
two-dimensional tipping point (Cro et al. 2020), in imrstats.trial.reference_mi:

1. the delta template: its rows and flags, rbmi's delta/dlag rule, the CSV round trip and one error naming row,
   column, value and rule for each bad row;
2. the numbers: a zero delta changes nothing (exactly); for conditional mean imputation with an ANCOVA on arm and
   baseline, a constant delta d on the imputed values of one arm at one visit moves that visit's contrast by
   d x the ANCOVA contrast of the indicator of those values, derived below in closed form, in the full sample and
   in every leave-one-out sample; the jackknife SE is taken over the shifted leave-one-out estimates;
3. the grid: its cells equal single runs with the corresponding delta table, its boundary cells bracket
   p = alpha, its tipping points have p = alpha; a deterministic grid on the antidepressant data with its stated
   tipping deltas;
4. the Bayesian path with a delta against the shifted expectation (exactly with the same seed, within Monte Carlo
   error with another);
5. the heat map.

Closed form (Frisch-Waugh): in the ANCOVA y = b0 + b1 g + b2 x (g the intervention indicator, x the baseline),
b1 = (mean_T y - mean_C y) - b2 (mean_T x - mean_C x), b2 = S_xy / S_xx pooled within the arms. Adding d m to y,
where m (0/1) marks the imputed values of one arm at the visit, adds d b1(m) to the contrast. For the intervention
arm b1(m) = p_T - g_T (mean_T x - mean_C x), p_T = (number imputed in the arm) / (arm size),
g_T = sum_T (x - mean_T x)(m - p_T) / S_xx; for the control arm b1(m) = -p_C - g_C (mean_T x - mean_C x). The
contrast is linear in d with that slope."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.errors import InputError, SettingsError
from imrstats.trial import reference_mi as rm
from imrstats.trial.design import StudyDesign

ROOT = Path(__file__).resolve().parents[2]
DESIGN = StudyDesign(visits=("v1", "v2", "v3"))  # IMR vs TAU
NUMERIC = ["estimate", "se", "ci_low", "ci_high", "statistic", "p"]


def simulated_frame(n: int = 60, seed: int = 5) -> pd.DataFrame:
    """IMR / TAU alternating, baseline ~ N(20, 4^2), a growing IMR benefit; dropout: 6 participants per arm stop
    after v1 (p000-p011), 4 per arm after v2 (p024-p031); TAU p041 misses only v2 (intermittent)."""
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
    """JR at the dropout visits, plus p013 (complete) with a JR ICE at v2 (observed post-ICE values) and p015
    (complete) with a MAR ICE at v3."""
    table = rm.ice_from_dropout(frame, DESIGN, strategy="JR").table[["id", "visit", "strategy"]]
    extra = pd.DataFrame({"id": ["p013", "p015"], "visit": ["v2", "v3"], "strategy": ["JR", "MAR"]})
    return pd.concat([table, extra], ignore_index=True)


@pytest.fixture(scope="module")
def template(frame, ice):
    return rm.delta_template(frame, ice, DESIGN)


@pytest.fixture(scope="module")
def plain(frame, ice):
    return rm.reference_based_condmean(frame, ice, DESIGN)


def with_delta(template: pd.DataFrame, d: float, *, arm: str, visit: str) -> pd.DataFrame:
    """The template with ``d`` on the imputed values of ``arm`` at ``visit`` at or after the ICE."""
    out = template.copy()
    mask = (out["arm"] == arm) & (out["visit"] == visit) & out["is_missing"] & out["is_post_ice"]
    out.loc[mask, "delta"] = d
    return out


def ancova_slope(x: np.ndarray, treated: np.ndarray, m: np.ndarray) -> float:
    """The ANCOVA contrast (arm coefficient of y ~ arm + x) of the 0/1 indicator m, by the closed form above."""
    xt, xc = x[treated], x[~treated]
    sxx = ((xt - xt.mean()) ** 2).sum() + ((xc - xc.mean()) ** 2).sum()
    if m[~treated].any():  # control-arm values
        mc = m[~treated]
        g = ((xc - xc.mean()) * (mc - mc.mean())).sum() / sxx
        return -mc.mean() - g * (xt.mean() - xc.mean())
    mt = m[treated]
    g = ((xt - xt.mean()) * (mt - mt.mean())).sum() / sxx
    return mt.mean() - g * (xt.mean() - xc.mean())


def contrast_row(result, visit: str) -> pd.Series:
    rows = result.estimates
    return rows.loc[rows["quantity"] == f"IMR - TAU at {visit}"].iloc[0]


# ---------------------------------------------------------------- the template


def test_template_rows_and_flags(frame, template):
    assert list(template.columns) == list(rm.DELTA_TEMPLATE_COLUMNS)
    assert len(template) == 60 * 3 and (template["delta"] == 0.0).all()
    assert list(template["id"][:6]) == ["p000"] * 3 + ["p001"] * 3 and list(template["visit"][:3]) == ["v1", "v2", "v3"]
    missing = frame.set_index("id")[list(DESIGN.visits)].isna()
    np.testing.assert_array_equal(
        template["is_missing"], [missing.loc[i, v] for i, v in zip(template["id"], template["visit"])]
    )
    by = template.set_index(["id", "visit"])
    # dropout after v1 (JR at v2): post-ICE at v2 and v3, imputed under JR, not MAR
    assert list(by.loc["p000", "is_post_ice"]) == [False, True, True]
    assert list(by.loc["p000", "is_mar"]) == [True, False, False]
    assert list(by.loc["p000", "strategy"].fillna("-")) == ["-", "JR", "JR"]
    # observed values after a JR ICE: post-ICE, not MAR, no strategy (not imputed)
    assert list(by.loc["p013", "is_post_ice"]) == [False, True, True] and not by.loc["p013", "is_missing"].any()
    assert by.loc["p013", "strategy"].isna().all()
    # a MAR ICE: post-ICE and MAR
    assert list(by.loc["p015", "is_post_ice"]) == [False, False, True] and by.loc["p015", "is_mar"].all()
    # intermittent missing value without an ICE: imputed under MAR, not post-ICE
    assert by.loc[("p041", "v2"), "strategy"] == "MAR" and not by.loc[("p041", "v2"), "is_post_ice"]
    assert by.loc[("p041", "v2"), "arm"] == "TAU"


def test_template_lagged_deltas_follow_rbmi():
    """rbmi's documentation of delta_template, "Details": delta = (5, 6, 7, 8), dlag = (1, 2, 3, 4) give 0, 6, 20,
    44 with the ICE at visit 2 and 0, 0, 7, 23 with it at visit 3; delta = (5, 5, 5, 5), dlag = (1, 0, 0, 0) give 5
    at every visit from the ICE; an observed post-ICE value gets 0 (rbmi's missing_only)."""
    design = StudyDesign(visits=("v1", "v2", "v3", "v4"), intervention="A", control="B")
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "arm": ["A", "B", "A", "B"],
            "baseline": [1.0, 2.0, 3.0, 4.0],
            "v1": [1.0, 1.0, 1.0, 1.0],
            "v2": [np.nan, 1.0, 1.0, 1.0],
            "v3": [np.nan, np.nan, 1.0, 1.0],
            "v4": [np.nan, np.nan, np.nan, 1.0],
        }
    )
    ice = pd.DataFrame({"id": ["a", "b", "c"], "visit": ["v2", "v3", "v2"], "strategy": ["JR", "MAR", "CR"]})
    out = rm.delta_template(frame, ice, design, delta=[5, 6, 7, 8], dlag=[1, 2, 3, 4]).set_index(["id", "visit"])
    assert list(out.loc["a", "delta"]) == [0, 6, 20, 44]
    assert list(out.loc["b", "delta"]) == [0, 0, 7, 23]
    assert list(out.loc["c", "delta"]) == [0, 0, 0, 6 + 14 + 24]  # v2, v3 observed: 0 there
    assert list(out.loc["d", "delta"]) == [0, 0, 0, 0]  # no ICE
    flat = rm.delta_template(frame, ice, design, delta=[5] * 4, dlag=[1, 0, 0, 0]).set_index(["id", "visit"])
    assert list(flat.loc["a", "delta"]) == [0, 5, 5, 5] and list(flat.loc["b", "delta"]) == [0, 0, 5, 5]
    with pytest.raises(SettingsError, match="dlag: must be 4 finite numbers"):
        rm.delta_template(frame, ice, design, delta=[5] * 4, dlag=[1, 0])
    with pytest.raises(SettingsError, match="delta and dlag go together"):
        rm.delta_template(frame, ice, design, delta=[5] * 4)


def test_template_csv_round_trip(frame, template, tmp_path):
    path = tmp_path / "delta.csv"
    filled = with_delta(template, 2.5, arm="IMR", visit="v3")
    rm.write_delta_template(filled, path)
    back = rm.read_delta(path, frame, DESIGN)
    assert list(back.columns) == ["id", "visit", "delta"] and len(back) == 180
    assert list(back["id"]) == list(filled["id"]) and list(back["visit"]) == list(filled["visit"])
    np.testing.assert_array_equal(back["delta"], filled["delta"])
    assert (back["delta"] == 2.5).sum() == 10  # IMR values imputed at v3: 6 + 4 dropouts


def bad_csv(tmp_path, template, change) -> Path:
    table = template.astype(str)
    table["strategy"] = template["strategy"].fillna("")
    change(table)
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    return path


def _set(row, column, value):
    def change(table):
        table.loc[row, column] = value

    return change


def _duplicate(table):
    table.loc[4, ["id", "visit"]] = table.loc[3, ["id", "visit"]].to_numpy()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set(2, "id", "nobody"), "row 3, column id, value 'nobody': rule: a participant of the trial frame"),
        (_set(2, "id", ""), "row 3, column id, value '': blank; rule: a value is needed"),
        (_set(2, "visit", "v9"), "row 3, column visit, value 'v9': rule: a post-baseline visit of the design"),
        (_set(2, "delta", "abc"), "row 3, column delta, value 'abc': not a finite number; rule:"),
        (_set(2, "delta", "inf"), "row 3, column delta, value 'inf': not a finite number; rule:"),
        (_set(2, "delta", ""), "row 3, column delta, value '': blank; rule: a number is needed"),
        (_set(2, "arm", "TAU"), "row 3, column arm, value 'TAU': participant 'p000' is in arm 'IMR'"),
        (_set(0, "delta", "2"), "row 1, column delta, value '2': participant 'p000' has an observed value at visit "),
        (_duplicate, "row 5, columns id and visit, value 'p001' at 'v1': a second row"),
        (lambda t: t.pop("delta"), "column(s) ['delta'] not found; rule:"),
    ],
)
def test_bad_delta_rows_are_named(frame, template, tmp_path, change, message):
    path = bad_csv(tmp_path, template, change)
    with pytest.raises(InputError) as err:
        rm.read_delta(path, frame, DESIGN)
    text = str(err.value)
    assert text.startswith(str(path)) and message in text and "rule" in text and "\n" not in text


def test_delta_on_observed_value_refused_in_the_analysis(frame, ice, template):
    bad = template.copy()
    bad.loc[(bad["id"] == "p013") & (bad["visit"] == "v3"), "delta"] = 1.0  # observed after a JR ICE
    with pytest.raises(InputError, match="delta table: row 42, column delta, value '1.0': participant 'p013' has an"):
        rm.reference_based_condmean(frame, ice, DESIGN, delta=bad)


# ---------------------------------------------------------------- the numbers


def test_zero_delta_equals_no_delta_exactly(frame, ice, template, plain):
    zero = rm.reference_based_condmean(frame, ice, DESIGN, delta=template)
    pd.testing.assert_frame_equal(zero.estimates[NUMERIC], plain.estimates[NUMERIC], check_exact=True)
    np.testing.assert_array_equal(zero.jackknife_estimates, plain.jackknife_estimates)
    assert "delta adjustment" in zero.method and "none of IMR's imputed values" in zero.method
    b0 = rm.reference_based_bayes(frame, ice, DESIGN, seed=7, m=8)
    b1 = rm.reference_based_bayes(frame, ice, DESIGN, seed=7, m=8, delta=template)
    pd.testing.assert_frame_equal(b1.estimates[NUMERIC], b0.estimates[NUMERIC], check_exact=True)


@pytest.fixture(scope="module")
def shifted(frame, ice, template):
    """d = 3 on IMR's imputed values at v3."""
    return rm.reference_based_condmean(frame, ice, DESIGN, delta=with_delta(template, 3.0, arm="IMR", visit="v3"))


def closed_form(frame, arm: str, visit: str, leave_out: int | None = None) -> float:
    x = frame["baseline"].to_numpy()
    treated = (frame["arm"] == "IMR").to_numpy()
    m = (frame[visit].isna() & (frame["arm"] == arm)).to_numpy(float)
    keep = np.arange(len(frame)) != leave_out
    return ancova_slope(x[keep], treated[keep], m[keep])


def test_constant_delta_moves_the_contrast_by_the_closed_form(frame, plain, shifted):
    slope = closed_form(frame, "IMR", "v3")
    assert 0.2 < slope < 0.45  # 10 of 30 imputed, adjusted for the baseline: not 1/3 exactly
    assert slope != pytest.approx(10 / 30, rel=1e-3)
    moved = contrast_row(shifted, "v3")["estimate"] - contrast_row(plain, "v3")["estimate"]
    assert moved == pytest.approx(3.0 * slope, rel=1e-10)
    for visit in ("v1", "v2"):  # a delta at v3 leaves the other visits' contrasts alone
        assert contrast_row(shifted, visit)["estimate"] == pytest.approx(contrast_row(plain, visit)["estimate"], 1e-12)
    # the same in every leave-one-out sample, with that sample's closed form (frame order = model order: ids sorted)
    loo = shifted.jackknife_estimates[:, 2] - plain.jackknife_estimates[:, 2]
    expected = np.array([3.0 * closed_form(frame, "IMR", "v3", leave_out=i) for i in range(60)])
    np.testing.assert_allclose(loo, expected, rtol=1e-9, atol=1e-12)


def test_jackknife_se_is_taken_over_the_shifted_leave_one_out_estimates(plain, shifted, frame):
    theta = plain.jackknife_estimates[:, 2]
    # a shift that is the same in every leave-one-out sample leaves the jackknife SE unchanged ...
    assert rm.jackknife_se(theta + 3.0 * closed_form(frame, "IMR", "v3")) == pytest.approx(
        rm.jackknife_se(theta), rel=1e-12
    )
    # ... but the delta's shift is not: leaving out a participant with an imputed value changes the share of
    # shifted values, so the SE is the jackknife SE of the shifted leave-one-out estimates
    expected = np.array([3.0 * closed_form(frame, "IMR", "v3", leave_out=i) for i in range(60)])
    se = contrast_row(shifted, "v3")["se"]
    assert se == pytest.approx(rm.jackknife_se(theta + expected), rel=1e-9)
    assert abs(se - contrast_row(plain, "v3")["se"]) > 1e-3


@pytest.fixture(scope="module")
def grid(frame, ice):
    return rm.tipping_point_2d(
        frame,
        ice,
        DESIGN,
        deltas_intervention=np.arange(-20.0, 21.0, 2.5),
        deltas_control=np.arange(-10.0, 31.0, 2.5),
        visit="v3",
    )


def test_grid_is_linear_with_the_closed_form_slopes(frame, grid, plain):
    est = grid.matrix("estimate")
    a = np.asarray(grid.deltas_intervention)
    c = np.asarray(grid.deltas_control)
    base = contrast_row(plain, "v3")["estimate"]
    slope_a, slope_c = closed_form(frame, "IMR", "v3"), closed_form(frame, "TAU", "v3")
    assert slope_c < 0
    np.testing.assert_allclose(est, base + slope_a * a[:, None] + slope_c * c[None, :], rtol=1e-10, atol=1e-10)
    assert grid.at_zero["estimate"] == pytest.approx(base, rel=1e-12)
    assert grid.at_zero["se"] == pytest.approx(contrast_row(plain, "v3")["se"], rel=1e-12)
    assert grid.n_fits == 61  # one jackknife run serves the grid


def test_grid_cells_equal_single_runs_with_the_delta_table(frame, ice, template, grid):
    a, c = grid.deltas_intervention[1], grid.deltas_control[9]
    table = template.copy()
    post = table["is_missing"] & table["is_post_ice"]
    table.loc[post & (table["arm"] == "IMR"), "delta"] = a
    table.loc[post & (table["arm"] == "TAU"), "delta"] = c
    single = contrast_row(rm.reference_based_condmean(frame, ice, DESIGN, delta=table), "v3")
    cell = grid.grid.loc[(grid.grid["delta_intervention"] == a) & (grid.grid["delta_control"] == c)].iloc[0]
    for column in NUMERIC:
        assert cell[column] == pytest.approx(single[column], rel=1e-9, abs=1e-12), column
    # cumulative: the delta times the number of visits since the ICE, as rbmi's dlag = (1, 1, 1)
    cum = rm.tipping_point_2d(
        frame, ice, DESIGN, deltas_intervention=[a], deltas_control=[c], visit="v3", cumulative=True
    )
    lagged = rm.delta_template(frame, ice, DESIGN, delta=[1, 1, 1], dlag=[1, 1, 1])
    assert set(lagged["delta"]) == {0.0, 1.0, 2.0}
    lagged["delta"] *= np.where(lagged["arm"] == "IMR", a, c)
    single = contrast_row(rm.reference_based_condmean(frame, ice, DESIGN, delta=lagged), "v3")
    for column in NUMERIC:
        assert cum.grid.iloc[0][column] == pytest.approx(single[column], rel=1e-9, abs=1e-12), column
    assert cum.shifted.set_index(["arm", "timepoint"]).loc[("IMR", "v3"), "max_multiplier"] == 2.0


def test_boundary_cells_bracket_p_alpha(frame, ice, template, grid):
    codes = grid.matrix("conclusion")
    p, est, boundary = grid.matrix("p"), grid.matrix("estimate"), grid.matrix("boundary")
    assert set(codes.ravel()) == {"significant positive", "not significant", "significant negative"}
    assert (p < 0.05).any() and (p >= 0.05).any()
    seen = np.zeros(codes.shape, dtype=bool)
    pairs = 0
    for (i, j), (k, m) in [(((i, j)), (i + 1, j)) for i in range(codes.shape[0] - 1) for j in range(codes.shape[1])] + [
        ((i, j), (i, j + 1)) for i in range(codes.shape[0]) for j in range(codes.shape[1] - 1)
    ]:
        if codes[i, j] == codes[k, m]:
            continue
        pairs += 1
        seen[i, j] = seen[k, m] = True
        both_significant = p[i, j] < 0.05 and p[k, m] < 0.05
        if both_significant:  # a sign change between two significant cells passes through p = 1
            assert np.sign(est[i, j]) != np.sign(est[k, m])
        else:
            assert min(p[i, j], p[k, m]) < 0.05 <= max(p[i, j], p[k, m])
    np.testing.assert_array_equal(boundary, seen)
    assert pairs > 10
    # the tipping points: p = alpha on a grid line, between the neighbouring grid values
    tips = grid.tipping_points
    assert len(tips) >= pairs
    np.testing.assert_allclose(tips["p"], 0.05, rtol=1e-9)
    row = tips.loc[(tips["varied"] == "control") & (tips["delta_intervention"] == 0.0)].iloc[0]
    # check one by a single run with the delta table at the tipping point
    table = template.copy()
    table.loc[table["is_missing"] & table["is_post_ice"] & (table["arm"] == "TAU"), "delta"] = row["delta_control"]
    single = contrast_row(rm.reference_based_condmean(frame, ice, DESIGN, delta=table), "v3")
    assert single["p"] == pytest.approx(0.05, rel=1e-8)


def test_grid_settings_are_checked(frame, ice):
    def run(**kw):
        settings = {"deltas_intervention": [0, 1], "deltas_control": [0, 1], **kw}
        return rm.tipping_point_2d(frame, ice, DESIGN, **settings)

    for kw, message in [
        ({"method": "mi"}, "method: 'mi' is not one of"),
        ({"alpha": 0.7}, "alpha: must be between 0 and 0.5"),
        ({"visit": "v9"}, "visit: 'v9' is not one of the post-baseline visits"),
        ({"deltas_intervention": [0, np.nan]}, "deltas_intervention: must be one or more finite numbers"),
        ({"deltas_control": []}, "deltas_control: must be one or more finite numbers"),
        ({"deltas_control": [1, 1]}, "deltas_control: has a repeated value"),
        ({"method": "bayes"}, "seed: the Bayesian method needs a seed"),
    ]:
        with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
            run(**kw)


# ---------------------------------------------------------------- the Bayesian path


def test_bayes_with_a_delta_is_the_shifted_expectation(frame, ice, template):
    """Same seed: the same completed data sets, shifted, so the pooled estimate moves by exactly d x the closed
    form (Rubin's estimate is the mean of the per-imputation ANCOVAs, each linear in the data). Another seed: the
    delta-adjusted estimate lies within Monte Carlo error of the no-delta estimate plus that shift."""
    d = 3.0
    table = with_delta(template, d, arm="IMR", visit="v3")
    shift = d * closed_form(frame, "IMR", "v3")
    b0 = rm.reference_based_bayes(frame, ice, DESIGN, seed=21, m=60)
    b1 = rm.reference_based_bayes(frame, ice, DESIGN, seed=21, m=60, delta=table)
    r0, r1 = contrast_row(b0, "v3"), contrast_row(b1, "v3")
    assert r1["estimate"] - r0["estimate"] == pytest.approx(shift, rel=1e-9)
    np.testing.assert_allclose(
        b1.imputation_estimates[:, 2] - b0.imputation_estimates[:, 2], shift, rtol=1e-9
    )  # every imputation
    other = contrast_row(rm.reference_based_bayes(frame, ice, DESIGN, seed=22, m=60, delta=table), "v3")
    mc = np.hypot(r0["mcse_estimate"], other["mcse_estimate"])
    assert abs(other["estimate"] - (r0["estimate"] + shift)) <= 4 * mc
    assert 0 < mc < 0.2
    # the Bayesian grid: its cells are single runs with the delta table, same seed
    g = rm.tipping_point_2d(
        frame,
        ice,
        DESIGN,
        deltas_intervention=[0.0, d],
        deltas_control=[0.0],
        visit="v3",
        method="bayes",
        seed=21,
        m=60,
    )
    post = template["is_missing"] & template["is_post_ice"] & (template["arm"] == "IMR")
    full = template.copy()
    full.loc[post, "delta"] = d
    single = contrast_row(rm.reference_based_bayes(frame, ice, DESIGN, seed=21, m=60, delta=full), "v3")
    for column in ("estimate", "se", "p", "ci_low", "ci_high"):
        assert g.grid.iloc[1][column] == pytest.approx(single[column], rel=1e-9), column
    assert g.grid.iloc[0]["estimate"] == pytest.approx(r0["estimate"], rel=1e-12)
    assert g.grid["mcse_estimate"].iloc[0] == pytest.approx(r0["mcse_estimate"], rel=1e-9)
    assert g.flags == b0.flags  # a sampler that did not converge is flagged in the grid too


# ---------------------------------------------------------------- the antidepressant data


@pytest.fixture(scope="module")
def antidepressant():
    visits = ("4", "5", "6", "7")
    design = StudyDesign(
        visits=visits,
        intervention="DRUG",
        control="PLACEBO",
        arm_labels={"DRUG": "Drug", "PLACEBO": "Placebo"},
        visit_labels={"7": "Week 6"},
    )
    long = pd.read_csv(ROOT / "data/examples/antidepressant/antidepressant.csv", dtype={"PATIENT": str, "VISIT": str})
    frame = rm.trial_frame_from_long(
        long, id="PATIENT", visit="VISIT", arm="THERAPY", outcome="CHANGE", baseline="BASVAL", visits=visits
    )
    ice = rm.ice_from_dropout(frame, design, strategy="JR").table
    grid = rm.tipping_point_2d(
        frame,
        ice,
        design,
        deltas_intervention=np.arange(-2.0, 6.5, 0.5),
        deltas_control=np.arange(-6.0, 2.5, 0.5),
        outcome="hamd17",
    )
    return frame, ice, design, grid


def test_antidepressant_grid_and_its_tipping_deltas(antidepressant):
    """JR for every ICE (rbmi vignette CondMean_Inference, section 3), CHANGE at visit 7 (week 6), conditional mean
    imputation with the jackknife. Without a delta: DRUG - PLACEBO -2.126, SE 0.858, p 0.013 (the vignette's
    section 3.4, trt_7 = 2.126 in its PLACEBO - DRUG sign). Stated tipping deltas (p = 0.05): +1.6676 HAM-D17
    points added to every imputed DRUG value (PLACEBO unshifted), or -1.7099 added to every imputed PLACEBO value
    (DRUG unshifted): the benefit of the drug at week 6 is no longer significant if the drug arm's dropouts are
    assumed 1.67 points worse than jump to reference implies."""
    frame, ice, design, grid = antidepressant
    z = grid.at_zero
    assert (round(z["estimate"], 3), round(z["se"], 3), round(z["p"], 3)) == (-2.126, 0.858, 0.013)
    assert z["conclusion"] == "significant negative" and grid.timepoint == "7" and grid.n_fits == 173
    tips = grid.tipping_points
    drug = tips.loc[(tips["varied"] == "intervention") & (tips["delta_control"] == 0.0)]
    placebo = tips.loc[(tips["varied"] == "control") & (tips["delta_intervention"] == 0.0)]
    assert len(drug) == 1 and len(placebo) == 1
    assert drug["delta_intervention"].iloc[0] == pytest.approx(1.667583, rel=1e-6)
    assert placebo["delta_control"].iloc[0] == pytest.approx(-1.709896, rel=1e-6)
    assert drug["to_conclusion"].iloc[0] == "not significant"
    shifted = grid.shifted.set_index(["arm", "timepoint"])
    assert shifted.loc[("DRUG", "7"), "n_shifted"] == 20 and shifted.loc[("PLACEBO", "7"), "n_shifted"] == 23
    assert shifted.loc[("DRUG", "5"), "n_imputed_not_shifted"] == 1  # patient 3618, intermittent (MAR)
    # the contour is the only place the conclusion changes: every cell below it significant, above not
    codes = grid.matrix("conclusion")
    assert set(codes.ravel()) == {"significant negative", "not significant"}
    # and the stated tipping delta, checked by a single run with the delta table
    template = rm.delta_template(frame, ice, design)
    post = template["is_missing"] & template["is_post_ice"] & (template["arm"] == "DRUG")
    template.loc[post, "delta"] = drug["delta_intervention"].iloc[0]
    single = rm.reference_based_condmean(frame, ice, design, delta=template).estimates
    row = single.loc[single["quantity"] == "Drug - Placebo at Week 6"].iloc[0]
    assert row["p"] == pytest.approx(0.05, rel=1e-6)
    assert "Drug" in grid.summary() and "p = 0.05 at delta Drug +1.668, Placebo +0" in grid.summary()


def test_heat_map_is_labelled_with_the_arms_and_units(antidepressant):
    from imrstats.report.figures import png_bytes
    from imrstats.trial.figures import tipping_2d_figure

    grid = antidepressant[3]
    fig = tipping_2d_figure(grid, "HAM-D17")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "delta added to Placebo's imputed values (HAM-D17 points)"
    assert ax.get_ylabel() == "delta added to Drug's imputed values (HAM-D17 points)"
    assert fig.axes[1].get_ylabel() == "Drug - Placebo at Week 6 (HAM-D17 points)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "p = 0.05: the conclusion changes" in labels and "no delta (primary analysis)" in labels
    assert len(ax.collections) >= 3  # heat map, hatched region, contour
    assert png_bytes(fig)[:4] == b"\x89PNG"
