"""The report's figures as a reviewer reads them: forest plots carry each study's weight (summing to 100%), its
effect and CI as text, the pooled diamond and the 95% prediction interval; no legend sits over any axes' data
area; text is at least 8 pt. Also the study weights of a random-effects fit against w_i = 1 / (v_i + tau^2)."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from imrstats.errors import AnalysisError
from imrstats.meta.random_effects import rma, study_weights
from imrstats.report.figures import FONT, legend_outside, new_figure, png_bytes

YI = np.array([0.36, -0.23, 0.30, 0.45, 0.10])
VI = np.array([0.040, 0.045, 0.023, 0.019, 0.060])
SLAB = ["Levitt 2009", "Jensen 2019", "Roosenschoon 2021", "Wong 2023", "Fardig 2011"]


def _number(text: str) -> float:
    return float(text.replace("\u2212", "-").rstrip("%"))


def legend_overlaps(fig) -> list[str]:
    """Legends (of axes and of the figure) whose box overlaps any data axes' box (colour bars excepted)."""
    fig.draw_without_rendering()  # constrained / tight layouts move the axes at draw time
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    data_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.axison]
    return [
        f"legend {[t.get_text() for t in legend.get_texts()]} over axes {i}"
        for legend in legends
        for i, ax in enumerate(data_axes)
        if legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    ]


def run_figures_of(name: str, tables: dict, config: dict) -> dict:
    """A stage's figures (its result without the HTML section, which is rendered elsewhere)."""
    import importlib

    from imrstats.pipeline.registry import STAGES, stage_seed

    module, function = STAGES[name]
    fn = getattr(importlib.import_module(module), function)
    return fn(tables, config.get(name, {}), seed=stage_seed(name, config)).figures


def n_legends(fig) -> int:
    return sum(ax.get_legend() is not None for ax in fig.axes) + len(fig.legends)


def small_texts(fig) -> list[str]:
    return [
        f"{t.get_text()!r} at {t.get_fontsize()} pt"
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < 8
    ]


# ---- weights ---------------------------------------------------------------------------------------------------


def test_study_weights_follow_the_inverse_variance_formula():
    tau2 = 0.05
    expected = (1 / (VI + tau2)) / np.sum(1 / (VI + tau2)) * 100
    assert study_weights(VI, tau2) == pytest.approx(expected, rel=1e-12)
    assert study_weights(VI, math.nan) == pytest.approx(100 * (1 / VI) / np.sum(1 / VI))
    assert study_weights(VI, tau2).sum() == pytest.approx(100)
    # a larger tau^2 evens the weights out
    assert np.ptp(study_weights(VI, 1.0)) < np.ptp(study_weights(VI, 0.0))
    with pytest.raises(AnalysisError, match="positive variances"):
        study_weights([0.1, -0.2], 0.0)


def test_fit_weights_use_the_fits_tau2_and_equal_effects_ignore_it():
    fit = rma(YI, VI, method="REML", knha=True, slab=SLAB)
    assert fit.tau2 > 0
    assert fit.weights() == pytest.approx(100 / (VI + fit.tau2) / np.sum(1 / (VI + fit.tau2)))
    # the pooled estimate is the weighted mean with those weights
    assert np.sum(fit.weights() * YI) / 100 == pytest.approx(fit.estimate)
    ee = rma(YI, VI, method="EE", slab=SLAB)
    assert ee.weights() == pytest.approx(100 / VI / np.sum(1 / VI))


# ---- the meta-analysis forest plot ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def forest():
    from imrstats.meta.figures import forest_figure

    data = pd.DataFrame({"yi": YI, "vi": VI})
    fit = rma(YI, VI, method="REML", knha=True, slab=SLAB)
    fig = forest_figure(data, fit, title="imrs_client: random effects", xlabel="Hedges' g", mid=0.2)
    return fig, fit


def test_forest_weights_are_shown_and_sum_to_100(forest):
    fig, fit = forest
    ax = fig.axes[0]
    cells = [t for t in ax.texts if t.get_gid() == "weight"]
    assert len(cells) == fit.k
    shown = [_number(t.get_text()) for t in cells]
    assert sum(shown) == pytest.approx(100, abs=0.1)
    assert shown == pytest.approx(fit.weights(), abs=0.05)
    # squares: larger weight, larger marker
    squares = [line for line in ax.lines if line.get_marker() == "s"]
    sizes = [line.get_markersize() for line in squares]
    assert np.argsort(sizes).tolist() == np.argsort(fit.weights()).tolist()


def test_forest_prediction_interval_spans_the_computed_interval(forest):
    fig, fit = forest
    ax = fig.axes[0]
    (pi_line,) = [line for line in ax.lines if line.get_gid() == "prediction-interval"]
    pred = fit.predict().extra
    assert sorted(pi_line.get_xdata()) == pytest.approx([pred["pi_low"], pred["pi_high"]])
    # the interval reaches beyond the diamond (the pooled CI) on both sides
    assert pred["pi_low"] < fit.ci_low and pred["pi_high"] > fit.ci_high
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "95% prediction interval" in labels and labels[: fit.k] == SLAB


def test_forest_text_columns_heterogeneity_mid_and_favours(forest):
    fig, fit = forest
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    # each study's effect and CI as text, typographic minus: "-0.23 [-0.65, 0.18]"
    z = 1.959963984540054
    jensen = f"{YI[1]:.2f} [{YI[1] - z * math.sqrt(VI[1]):.2f}, {YI[1] + z * math.sqrt(VI[1]):.2f}]"
    assert jensen.replace("-", "\u2212") in texts
    het = next(t for t in texts if t.startswith("Heterogeneity"))
    assert f"I\u00b2 = {fit.i2:.0f}%" in het and f"\u03c4\u00b2 = {fit.tau2:.3f}" in het
    assert re.search(r"Q = [\d.]+ \(df = 4\), p [=<] ", het)
    assert any("Favours TAU" in t for t in texts) and any("Favours IMR" in t for t in texts)
    mids = sorted(line.get_xdata()[0] for line in ax.lines if line.get_gid() == "mid")
    assert mids == pytest.approx([-0.2, 0.2])
    assert small_texts(fig) == []
    assert n_legends(fig) == 0


def test_forest_of_one_study_has_no_pooled_rows():
    from imrstats.meta.figures import forest_figure

    fit = rma(YI[:1], VI[:1], slab=SLAB[:1])
    fig = forest_figure(pd.DataFrame({"yi": YI[:1], "vi": VI[:1]}), fit, title="one", xlabel="g")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "100.0%" in texts and not any(t.startswith("Heterogeneity") for t in texts)
    assert [line for line in fig.axes[0].lines if line.get_gid() == "prediction-interval"] == []


# ---- legends never over data -------------------------------------------------------------------------------------


def test_legend_outside_below_and_right_leave_the_data_area_free():
    for where in ("below", "right"):
        fig, ax = new_figure(5, 3)
        ax.plot([0, 1], [0, 1], label="a line")
        ax.set_xlabel("x")
        legend_outside(ax, where=where)
        assert n_legends(fig) == 1 and legend_overlaps(fig) == []
    fig, ax = new_figure(5, 3)
    ax.plot([0, 1], [0, 1], label="a line")
    ax.legend(loc="upper left")  # the check itself catches a legend inside the axes
    assert len(legend_overlaps(fig)) == 1
    with pytest.raises(ValueError):
        legend_outside(ax, where="inside")


@pytest.fixture(scope="module")
def meta_stage():
    from imrstats.config import load_config

    return run_figures_of("meta", {}, load_config())


def test_meta_stage_figures_have_no_legend_over_data(meta_stage):
    figures = meta_stage
    assert any(n.startswith("bayes_posterior_") for n in figures) and any(n.startswith("meta_forest_") for n in figures)
    for name, fig in figures.items():
        assert legend_overlaps(fig) == [], name
        assert small_texts(fig) == [], name
    posterior = next(f for n, f in figures.items() if n.startswith("bayes_posterior_"))
    assert n_legends(posterior) == 2  # one per panel, below it
    for name, fig in figures.items():
        if name.startswith("meta_forest_") and name[len("meta_forest_") :] in ("imrs_client", "completion_pct"):
            cells = [_number(t.get_text()) for t in fig.axes[0].texts if t.get_gid() == "weight"]
            assert sum(cells) == pytest.approx(100, abs=0.1), name


def test_influence_and_regression_figures_keep_legends_outside():
    from imrstats.meta.figures import bubble_figure, contour_funnel_figure
    from imrstats.meta.influence import trimfill
    from imrstats.meta.moderators import rma_mods

    data = pd.DataFrame({"yi": YI, "vi": VI, "year": [2009, 2019, 2021, 2023, 2011]})
    fit = rma(YI, VI, slab=SLAB)
    funnel = contour_funnel_figure(fit, trimfill=trimfill(fit))
    bubble = bubble_figure(rma_mods("yi", "vi", "year", data=data), "year")
    for fig in (funnel, bubble):
        assert n_legends(fig) == 1 and legend_overlaps(fig) == []


def test_evidence_figures_keep_legends_outside():
    from imrstats.evidence.figures import cumulative_with_trial_figure, predictive_figure

    rows = pd.DataFrame(
        {"analysis": ["itt", "complete_case"], "yi": [-0.08, -0.2], "ci_low": [-0.4, -0.6], "ci_high": [0.3, 0.2]}
    ).assign(pct_true=[0.08, 0.05])
    fig = predictive_figure(np.random.default_rng(1).normal(0.25, 0.2, 4000), rows, title="how surprising")
    assert n_legends(fig) == 1 and legend_overlaps(fig) == []
    steps = pd.DataFrame({"added": SLAB[:2], "k": [1, 2], "estimate": [0.36, 0.07], "ci_low": [-0.03, -3.7]})
    steps["ci_high"] = [0.74, 3.8]
    endings = {"itt": pd.Series({"added": "Trial (2024)", "k": 3, "estimate": 0.18, "ci_low": -0.19, "ci_high": 0.54})}
    fig = cumulative_with_trial_figure(steps, endings, title="cumulative")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "0.07 [\u22123.70, 3.80]" in texts and "0.18 [\u22120.19, 0.54]" in texts
    assert small_texts(fig) == []


def test_trial_figures_keep_legends_outside():
    from imrstats.trial.design import DEFAULT_DESIGN
    from imrstats.trial.figures import attendance_figure, forest_figure, tipping_2d_figure, tipping_figure

    design = DEFAULT_DESIGN
    visits = list(design.visits)
    itt = pd.DataFrame(
        {
            "outcome": ["gaf_f", "gaf_f", "panss_total", "panss_total"],
            "instrument": ["GAF-F", "GAF-F", "PANSS", "PANSS"],
            "timepoint": [visits[-2], visits[-1]] * 2,
            "direction": ["higher is better"] * 2 + ["lower is better"] * 2,
            "estimate": [5.0, 3.0, -2.0, 4.0],
            "ci_low": [2.0, -0.5, -6.0, 0.5],
            "ci_high": [8.0, 6.5, 2.0, 7.5],
        }
    )
    fig = forest_figure(itt, {"gaf_f": 10.0, "panss_total": 20.0}, design)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "0.50 [0.20, 0.80]" in texts  # 5 / 10 with its CI
    assert "\u22120.20 [\u22120.38, \u22120.03]" in texts  # lower is better: sign flipped, ends swapped
    assert any(f"Favours {design.arm_label(design.intervention)}" in t for t in texts)
    figures = {"forest": fig}

    grid = pd.DataFrame({"delta": [-6.0, 0.0, 6.0], "estimate": [1.0, 5.0, 9.0]})
    grid = grid.assign(ci_low=grid["estimate"] - 3.5, ci_high=grid["estimate"] + 3.5)
    points = pd.DataFrame({"reached": [True], "tipping_delta": [-4.5]})
    tp = SimpleNamespace(design=design, grid=grid, points=points, timepoint=visits[-1])
    figures["tipping"] = tipping_figure(tp, "GAF-F")

    a, c = np.array([-2.0, 0.0, 2.0]), np.array([-2.0, 0.0, 2.0])
    est = a[:, None] - c[None, :] + 1.0
    p = np.clip(np.abs(2.0 - est) / 4, 0.001, 0.9)
    grid2 = pd.DataFrame({"estimate": est.ravel(), "p": p.ravel()})
    tp2 = SimpleNamespace(
        design=design,
        deltas_intervention=tuple(a),
        deltas_control=tuple(c),
        matrix=lambda column: grid2[column].to_numpy().reshape(3, 3),
        alpha=0.05,
        tipping_points=pd.DataFrame({"delta_control": [0.5], "delta_intervention": [-1.0]}),
        cumulative=False,
        timepoint=visits[-1],
    )
    figures["tipping_2d"] = tipping_2d_figure(tp2, "GAF-F")

    rng = np.random.default_rng(3)
    results = [
        {"outcome": o, "attendance_points": np.column_stack([rng.integers(0, 40, 30), rng.normal(50, 10, 30)])}
        for o in ("gaf_f", "psp")
    ]
    registry = {"gaf_f": SimpleNamespace(short="GAF-F"), "psp": SimpleNamespace(short="PSP")}
    settings = {"per_protocol_threshold": 10, "attendance_timepoint": visits[-1]}
    figures["attendance"] = attendance_figure(results, registry, settings, design)
    for name, fig in figures.items():
        assert n_legends(fig) == 1, name
        assert legend_overlaps(fig) == [], name
        assert small_texts(fig) == [], name
        assert png_bytes(fig).startswith(b"\x89PNG")


def test_services_and_implementation_figures_keep_legends_outside(default_clean_tables, default_config):
    for stage in ("services", "implementation"):
        figures = run_figures_of(stage, default_clean_tables, default_config)
        assert figures, stage
        for name, fig in figures.items():
            assert legend_overlaps(fig) == [], name
            assert min(FONT.values()) >= 8
        if stage == "services":
            # the four panels share one legend, under them
            assert all(n_legends(fig) == 1 and len(fig.legends) == 1 for fig in figures.values())


def test_sampled_posterior_and_trace_figures_keep_legends_outside():
    from imrstats.meta.bayes import SHIPPED_TAU_PRIORS, Normal
    from imrstats.meta.figures import posterior_figure, trace_rank_figure

    rng = np.random.default_rng(7)
    draws = {"mu": rng.normal(0.25, 0.1, (2, 500)), "tau": np.abs(rng.normal(0.1, 0.05, (2, 500)))}
    draws["mu_new"] = draws["mu"] + rng.normal(0, 0.1, (2, 500))
    result = SimpleNamespace(
        exact=None, posterior={"posterior": {k: SimpleNamespace(values=v) for k, v in draws.items()}}
    )
    prior_tau = next(iter(SHIPPED_TAU_PRIORS.values())).prior
    posterior = posterior_figure(result, Normal(0.0, 1.0), prior_tau, title="sampled")
    trace = trace_rank_figure(result, title="trace")
    assert n_legends(posterior) == 2 and n_legends(trace) == 1
    assert legend_overlaps(posterior) == [] and legend_overlaps(trace) == []
    assert [t.get_text() for t in trace.axes[1].get_legend().get_texts()] == ["chain 1", "chain 2"]
