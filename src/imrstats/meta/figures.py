"""The meta-analysis stage's figures: forest, funnel and cumulative plots of the frequentist pooling, and the
posterior, trace / rank and cumulative plots of the Bayesian pooling. Every figure starts from the report's
figure factory (``imrstats.report.figures.new_figure``); nothing here computes a reported number.
"""

from __future__ import annotations

import math
import re
import textwrap
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from imrstats.meta.bayes import SHIPPED_TAU_PRIORS, BayesResult, Normal, TauPrior
from imrstats.meta.random_effects import MetaResult, rma
from imrstats.meta.stage import FAVOURS
from imrstats.report.figures import (
    FONT,
    PALETTE,
    estimate_text,
    favours_labels,
    finish_interval_rows,
    legend_outside,
    new_figure,
    signed,
    text_column,
)
from imrstats.report.format import format_ci, format_number, format_p


def axis_label(measure: str) -> str:
    """The x-axis (and report) name of an effect measure, with its direction."""
    return {"SMD": "Hedges' g", "log OR": "log odds ratio", "MD": "mean difference"}.get(
        measure, measure
    ) + f" ({FAVOURS})"


ESTIMATE_NAMES = {"SMD": "g", "log OR": "log OR", "MD": "MD"}  # the forest plots' column header


def slug(label: str) -> str:
    """A label as a file-name part (figure and posterior names)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label)).strip("_")


# ---------------------------------------------------------------------------------------------
# Frequentist pooling


def heterogeneity_text(fit: MetaResult) -> str:
    """The heterogeneity line under a forest plot: tau^2, I^2 and Cochran's Q with its p (RevMan's order)."""
    tau2 = "" if fit.method in ("EE", "FE") else f"\u03c4\u00b2 = {format_number(fit.tau2, 3)}, "
    return signed(
        f"Heterogeneity: {tau2}I\u00b2 = {format_number(fit.i2, 0)}%,\n"
        f"Q = {format_number(fit.q, 2)} (df = {fit.q_df}), p {_p_text(fit.q_p)}"
    )


def _p_text(p: float) -> str:
    shown = format_p(p)
    return shown if shown.startswith("<") else f"= {shown}"


def forest_figure(
    data: pd.DataFrame,
    fit: MetaResult,
    *,
    title: str,
    xlabel: str,
    transform: Callable | None = None,
    mid: float | None = None,
    favours: tuple[str, str] = ("TAU", "IMR"),
    estimate_header: str = "Estimate [95% CI]",
):
    """A forest plot as reviewers read them: per study its label ("Study year"), CI whisker and a square whose
    area is its weight, the effect and CI as text and its weight in the fit shown (``fit.weights()``: random
    effects 1 / (vi + tau^2), normalised; equal effects 1 / vi); the pooled diamond; the 95% prediction interval
    as a bar in its own labelled row under the diamond (random effects); a line at 0, dashed lines at +/- ``mid``
    when given, "Favours <control> | Favours <IMR>" under the axis and tau^2, I^2 and Q at the bottom left.
    ``transform`` maps the logit scale to percent for proportions (then no null line, no favours labels)."""
    t = transform or (lambda x: x)
    digits = 1 if transform is not None else 2
    k = len(data)
    z = float(stats.norm.isf((1 - fit.level) / 2))
    y, v = data["yi"].to_numpy(float), data["vi"].to_numpy(float)
    weight = fit.weights()
    pooled = fit.k > 1
    with_pi = pooled and fit.method not in ("EE", "FE")
    # rows from the top: header, studies, (gap), pooled diamond, prediction interval, heterogeneity text
    top = k + 4.0
    study_rows = [top - 1 - i for i in range(k)]
    pooled_row, pi_row, het_row = 2.0, 1.2, 0.0
    fig, ax = new_figure(10.0, 1.25 + 0.3 * (k + (5 if pooled else 1.5)))
    low, high = t(y - z * np.sqrt(v)), t(y + z * np.sqrt(v))
    ax.hlines(study_rows, low, high, color=PALETTE["ink"], lw=1)
    area = np.sqrt(weight / weight.max())
    for row, est, a in zip(study_rows, t(y), area):
        ax.plot(est, row, "s", color=PALETTE["estimate"], markersize=3 + 9 * a, zorder=3)
    rows, labels = list(study_rows), list(fit.slab)
    texts = [estimate_text(e, lo, hi, digits) for e, lo, hi in zip(t(y), low, high)]
    weights = [f"{w:.1f}%" for w in weight]
    if pooled:
        est, lo, hi = t(fit.estimate), t(fit.ci_low), t(fit.ci_high)
        ax.fill(
            [lo, est, hi, est], [pooled_row, pooled_row + 0.3, pooled_row, pooled_row - 0.3], color=PALETTE["pooled"]
        )
        rows.append(pooled_row)
        labels.append(f"Pooled ({fit.method}{', Knapp-Hartung' if fit.knha else ''})")
        texts.append(estimate_text(est, lo, hi, digits))
        weights.append("100%")
        if with_pi:
            pred = fit.predict().extra
            pi_low, pi_high = t(pred["pi_low"]), t(pred["pi_high"])
            ax.plot(
                [pi_low, pi_high],
                [pi_row, pi_row],
                color=PALETTE["pooled"],
                lw=2,
                marker="|",
                markersize=8,
                solid_capstyle="butt",
                gid="prediction-interval",
            )
            rows.append(pi_row)
            labels.append(f"{100 * fit.level:g}% prediction interval")
            texts.append(signed(format_ci(pi_low, pi_high, digits)))
    ax.set_yticks(rows, labels)
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)
    for tick in ax.get_yticklabels()[k:]:
        tick.set_fontweight("bold")
    drawn = text_column(ax, 0.15, rows, texts, header=estimate_header, header_row=top)
    for text in drawn[k:]:
        text.set_fontweight("bold")
    cells = text_column(ax, 2.15, rows[: len(weights)], weights, header="Weight", header_row=top, ha="right")
    for text in cells[:k]:
        text.set_gid("weight")
    ax.text(
        0,
        top,
        "Study",
        transform=ax.get_yaxis_transform(),
        ha="right",
        va="center",
        weight="bold",
        fontsize=FONT["text"],
    )
    if pooled:
        ax.text(
            0,
            het_row,
            heterogeneity_text(fit),
            transform=ax.get_yaxis_transform(),
            ha="right",
            va="center",
            fontsize=FONT["text"],
            color=PALETTE["reference"],
        )
    if transform is None:
        ax.axvline(0, color=PALETTE["reference"], lw=0.8)
        if mid:
            for x in (-mid, mid):
                ax.axvline(x, color=PALETTE["reference"], lw=0.8, ls="--", gid="mid")
            ax.text(
                mid,
                top,
                f" \u00b1MID {format_number(mid)}",
                ha="left",
                va="center",
                fontsize=FONT["text"],
                color=PALETTE["reference"],
            )
    ax.set_ylim((het_row - 0.6) if pooled else (study_rows[-1] - 0.8), top + 0.6)
    ax.set_xlabel(xlabel)
    if transform is None:
        favours_labels(ax, *favours)
    ax.set_title("\n".join(textwrap.wrap(title, 95)), fontsize=FONT["title"])
    fig.subplots_adjust(left=0.25, right=0.70)
    return fig


def funnel_figure(data: pd.DataFrame, fit: MetaResult, *, title: str, xlabel: str):
    """Effect against its standard error (inverted axis) with the pseudo 95% region around the pooled effect."""
    se = np.sqrt(data["vi"].to_numpy(float))
    fig, ax = new_figure(5.5, 4.2)
    top = 1.1 * se.max()
    grid = np.linspace(0, top, 50)
    z = float(stats.norm.isf((1 - fit.level) / 2))
    ax.fill_betweenx(grid, fit.estimate - z * grid, fit.estimate + z * grid, color=PALETTE["band"])
    ax.axvline(fit.estimate, color=PALETTE["pooled"], lw=1)
    ax.scatter(data["yi"], se, color=PALETTE["estimate"], zorder=3)
    for label, x, s in zip(fit.slab, data["yi"], se):
        ax.annotate(label, (x, s), fontsize=FONT["text"], xytext=(3, 3), textcoords="offset points")
    ax.set_ylim(top, 0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("standard error")
    ax.set_title(title, fontsize=FONT["title"])
    return fig


def cumulative_figure(cumulative: pd.DataFrame, *, title: str, xlabel: str, favours: tuple[str, str] = ("TAU", "IMR")):
    """The pooled effect and its CI as studies are added by publication year, with the numbers beside."""
    n = len(cumulative)
    fig, ax = new_figure(8.5, 1.4 + 0.36 * (n + 1))
    rows = _interval_rows(ax, cumulative, ("estimate", "ci_low", "ci_high"), header="Pooled [95% CI]")
    ax.set_yticks(rows, [f"+ {a} (k = {int(k)})" for a, k in zip(cumulative["added"], cumulative["k"])])
    finish_interval_rows(ax, n, xlabel=xlabel, favours=favours, title=title)
    fig.subplots_adjust(left=0.26, right=0.76)
    return fig


def _interval_rows(ax, frame: pd.DataFrame, columns: tuple[str, str, str], *, header: str) -> list[int]:
    """One row per line of ``frame``, top to bottom: the interval (``columns``: point, low, high) as a line,
    the point as a dot, and "point [low, high]" in a column right of the axes under ``header``. Returns the
    rows' y positions."""
    point, low, high = columns
    n = len(frame)
    rows = [n - i for i in range(n)]
    ax.hlines(rows, frame[low], frame[high], color=PALETTE["ink"], lw=1)
    ax.plot(frame[point], rows, "o", color=PALETTE["estimate"], ls="")
    texts = [estimate_text(*r) for r in frame[[point, low, high]].itertuples(index=False)]
    text_column(ax, 0.15, rows, texts, header=header, header_row=n + 0.8)
    return rows


def outcome_figures(label: str, data: pd.DataFrame, pooled: dict, *, mid: float | None = None) -> dict:
    """Forest, funnel (k >= 3) and cumulative plots of one outcome's pooling (``pool_outcome``'s result);
    ``mid`` (the minimal important difference in SMD units, ``meta.mid``) is drawn on SMD forest plots."""
    fit = pooled.get("fit")
    if fit is None:
        return {}
    xlabel = axis_label(pooled["measure"])
    figures = {
        f"meta_forest_{label}": forest_figure(
            data,
            fit,
            title=f"{label}: {fit.method_label}",
            xlabel=xlabel,
            mid=mid if pooled["measure"] == "SMD" else None,
            estimate_header=f"{ESTIMATE_NAMES.get(pooled['measure'], 'Estimate')} [95% CI]",
        )
    }
    if pooled["k"] >= 3:
        figures[f"meta_funnel_{label}"] = funnel_figure(data, fit, title=f"{label}: funnel plot", xlabel=xlabel)
    if "cumulative" in pooled:
        figures[f"meta_cumulative_{label}"] = cumulative_figure(
            pooled["cumulative"], title=f"{label}: cumulative by publication year ({fit.method_label})", xlabel=xlabel
        )
    return figures


def implementation_figures(effects: pd.DataFrame, pooled: pd.DataFrame, settings: dict) -> dict:
    """A forest plot per implementation measure with at least two pooled studies (logit scale back-transformed
    to percent), from the rows ``implementation_effects`` made and ``pool_implementation``'s table."""
    figures = {}
    for _, r in pooled.iterrows():
        data = effects.loc[(effects["measure"] == r["measure"]) & effects["included"]].sort_values(["year", "study"])
        if len(data) >= 2 and not math.isnan(r["estimate"]):
            fit = rma(
                data["yi"],
                data["vi"],
                method=settings["method"],
                knha=settings["knha"],
                level=settings["level"],
                slab=list(data["study"]),
            )
            figures[f"meta_forest_{r['measure']}"] = forest_figure(
                data,
                fit,
                title=f"{r['quantity']}: {fit.method_label}",
                xlabel="percent (back-transformed from the logit scale)",
                transform=lambda x: 100 * expit(x),
                estimate_header="% [95% CI]",
            )
    return figures


# ---------------------------------------------------------------------------------------------
# Bayesian pooling


def _draws(result: BayesResult, name: str) -> np.ndarray:
    return np.asarray(result.posterior["posterior"][name].values, dtype=float)


def posterior_figure(
    result: BayesResult, prior_mu: Normal, prior_tau: TauPrior, *, title: str = "", xlabel: str = "pooled effect"
):
    """Posterior density (histogram of the draws) of mu, with the predictive effect of a new trial, and of
    tau, each with its prior density overlaid (Normal pdf for mu; ``prior_tau.logpdf_tau`` for tau)."""
    if getattr(result, "exact", None) is not None:
        return _exact_posterior_figure(result.exact, prior_mu, prior_tau, title=title, xlabel=xlabel)
    fig, axes = new_figure(10.0, 3.8, nrows=1, ncols=2, squeeze=False)
    ax_mu, ax_tau = axes[0]
    mu, tau, mu_new = (_draws(result, n).ravel() for n in ("mu", "tau", "mu_new"))
    lo, hi = np.quantile(np.concatenate([mu, mu_new]), [0.002, 0.998])
    heights, _, _ = ax_mu.hist(
        mu, bins=60, range=(lo, hi), density=True, color=PALETTE["estimate"], alpha=0.45, label="posterior of mu"
    )
    ax_mu.hist(
        mu_new,
        bins=60,
        range=(lo, hi),
        density=True,
        histtype="step",
        color=PALETTE["estimate"],
        ls="--",
        label="predictive: new trial",
    )
    grid = np.linspace(lo, hi, 400)
    ax_mu.plot(
        grid,
        stats.norm.pdf(grid, prior_mu.loc, prior_mu.scale),
        color=PALETTE["pooled"],
        label=f"prior {prior_mu.label()}",
    )
    ax_mu.axvline(0, color="grey", lw=0.8)
    ax_mu.set_ylim(
        0,
        1.25
        * max(
            heights.max(), stats.norm.pdf(prior_mu.loc, prior_mu.loc, prior_mu.scale) if lo <= prior_mu.loc <= hi else 0
        ),
    )
    ax_mu.set_xlabel(xlabel)
    ax_mu.set_ylabel("density")
    legend_outside(ax_mu)
    top = float(np.quantile(tau, 0.995))
    heights, _, _ = ax_tau.hist(
        tau, bins=60, range=(0, top), density=True, color=PALETTE["tertiary"], alpha=0.45, label="posterior of tau"
    )
    grid = np.linspace(top / 2000, top, 400)
    with np.errstate(divide="ignore", over="ignore"):
        density = np.exp(prior_tau.logpdf_tau(grid))
    ax_tau.plot(grid, density, color=PALETTE["pooled"], label=f"prior: {prior_tau.label()}")
    ax_tau.set_ylim(0, 1.3 * heights.max())  # the log(tau^2) priors have a pole at tau = 0
    ax_tau.set_xlim(0, top)
    ax_tau.set_xlabel("tau (between-study SD)")
    legend_outside(ax_tau)
    fig.suptitle(title, fontsize=FONT["title"])
    return fig


def _exact_posterior_figure(fit, prior_mu: Normal, prior_tau: TauPrior, *, title: str, xlabel: str):
    """The exact posterior densities (``bayes_exact.ExactFit.pdf``) of mu and mu_new (dashed) and of tau, each with
    its prior density overlaid: the same panels as the sampled figure, curves instead of histograms."""
    fig, axes = new_figure(10.0, 3.8, nrows=1, ncols=2, squeeze=False)
    ax_mu, ax_tau = axes[0]
    frame = fit.to_frame().set_index("parameter")
    new_low, new_high = frame.at["mu_new", "ci_low"], frame.at["mu_new", "ci_high"]
    lo, hi = new_low - 0.3 * (new_high - new_low), new_high + 0.3 * (new_high - new_low)
    grid = np.linspace(lo, hi, 400)
    density = fit.pdf("mu", grid)
    ax_mu.fill_between(grid, density, color=PALETTE["estimate"], alpha=0.45, label="posterior of mu (exact)")
    ax_mu.plot(grid, fit.pdf("mu_new", grid), color=PALETTE["estimate"], ls="--", label="predictive: new trial")
    ax_mu.plot(
        grid,
        stats.norm.pdf(grid, prior_mu.loc, prior_mu.scale),
        color=PALETTE["pooled"],
        label=f"prior {prior_mu.label()}",
    )
    ax_mu.axvline(0, color="grey", lw=0.8)
    ax_mu.set_ylim(
        0, 1.25 * max(density.max(), stats.norm.pdf(0, 0, prior_mu.scale) if lo <= prior_mu.loc <= hi else 0)
    )
    ax_mu.set_xlabel(xlabel)
    ax_mu.set_ylabel("density")
    legend_outside(ax_mu)
    top = float(fit.tau_posterior.ppf(0.995)[0])
    grid = np.linspace(top / 2000, top, 400)
    density = fit.pdf("tau", grid)
    ax_tau.fill_between(grid, density, color=PALETTE["tertiary"], alpha=0.45, label="posterior of tau (exact)")
    with np.errstate(divide="ignore", over="ignore"):
        prior = np.exp(prior_tau.logpdf_tau(grid))
    ax_tau.plot(grid, prior, color=PALETTE["pooled"], label=f"prior: {prior_tau.label()}")
    ax_tau.set_ylim(0, 1.3 * density.max())  # the log(tau^2) priors have a pole at tau = 0
    ax_tau.set_xlim(0, top)
    ax_tau.set_xlabel("tau (between-study SD)")
    legend_outside(ax_tau)
    fig.suptitle(title, fontsize=FONT["title"])
    return fig


def trace_rank_figure(result: BayesResult, *, parameters=("mu", "tau"), title: str = "", bins: int = 20):
    """Per parameter: the trace of each chain, and the rank plot (histogram of each chain's ranks among all
    draws, Vehtari et al. 2021): well-mixed chains give flat, overlapping histograms."""
    fig, axes = new_figure(10.0, 2.4 * len(parameters), nrows=len(parameters), ncols=2, squeeze=False)
    for row, name in enumerate(parameters):
        draws = _draws(result, name)
        chains, n = draws.shape
        ranks = stats.rankdata(draws.ravel()).reshape(draws.shape)
        edges = np.linspace(0.5, chains * n + 0.5, bins + 1)
        for c in range(chains):
            axes[row, 0].plot(draws[c], lw=0.35, alpha=0.8, label=f"chain {c + 1}")
            counts, _ = np.histogram(ranks[c], bins=edges)
            axes[row, 1].step(np.arange(bins), counts, where="mid", lw=1)
        axes[row, 1].axhline(n / bins, color="grey", ls="--", lw=0.8)
        axes[row, 1].set_ylim(0, None)
        axes[row, 0].set_ylabel(name)
        axes[row, 1].set_ylabel("draws per rank bin")
        axes[row, 1].set_yticks([])
    axes[-1, 0].set_xlabel("draw (after tuning)")
    axes[-1, 1].set_xlabel(f"rank of the draw among all chains ({bins} bins; dashed: uniform)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    legend_outside(axes[0, 1], where="right", handles=handles, labels=labels)
    fig.suptitle(title, fontsize=FONT["title"])
    return fig


def cumulative_bayes_figure(
    table: pd.DataFrame, *, title: str = "", xlabel: str = "pooled effect", favours: tuple[str, str] = ("TAU", "IMR")
):
    """The posterior mean and 95% interval of mu as each year's studies are added, with P(mu > 0) beside."""
    n = len(table)
    fig, axes = new_figure(9.0, 1.4 + 0.36 * (n + 1), squeeze=False)
    ax = axes[0, 0]
    rows = _interval_rows(ax, table, ("mu_mean", "mu_low", "mu_high"), header="Mean [95% CrI]")
    shown = ["gate failed" if math.isnan(p) else format_number(p) for p in table["P(mu > 0)"]]
    text_column(ax, 1.75, rows, shown, header="P(\u03bc > 0)", header_row=n + 0.8)
    ax.set_yticks(
        rows, [f"{int(y)}: + {a} (k = {int(k)})" for y, a, k in zip(table["year"], table["added"], table["k"])]
    )
    finish_interval_rows(ax, n, xlabel=xlabel, favours=favours, title=title)
    fig.subplots_adjust(left=0.25, right=0.68)
    return fig


def bayes_figures(plan, pooled, impl_pooled, prior_mu, impl_prior_mu, impl_tau) -> dict:
    """Posterior and (sampled fits only) trace / rank plots of every main fit, and the cumulative plot of an
    outcome with two or more steps (``bayes_pooling``'s plan and pooled parts)."""
    figures = {}
    by_label = {p["label"]: p for p in plan}
    for label, part in pooled.items():
        p, result, name = by_label[label], part["fit"].result, slug(label)
        figures[f"bayes_posterior_{name}"] = posterior_figure(
            result,
            prior_mu,
            SHIPPED_TAU_PRIORS[p["prior"]].prior,
            xlabel=axis_label(p["measure"]),
            title=f"{label}: posterior (shaded) and prior (red); k = {result.k}",
        )
        if result.diagnostics is not None:  # a sampled fit; an exact fit has no chains
            figures[f"bayes_trace_{name}"] = trace_rank_figure(result, title=f"{label}: trace and rank plots")
        if len(part["cumulative"]) >= 2:
            figures[f"bayes_cumulative_{name}"] = cumulative_bayes_figure(
                part["cumulative"],
                xlabel=axis_label(p["measure"]),
                title=f"{label}: cumulative Bayesian pooling by year (prior {p['prior']})",
            )
    for measure, part in impl_pooled.items():
        result, name = part["fit"].result, slug(f"implementation_{measure}")
        figures[f"bayes_posterior_{name}"] = posterior_figure(
            result,
            impl_prior_mu,
            impl_tau,
            xlabel="logit proportion",
            title=f"implementation {measure}: posterior (shaded) and prior (red); k = {result.k}",
        )
        if result.diagnostics is not None:
            figures[f"bayes_trace_{name}"] = trace_rank_figure(
                result, title=f"implementation {measure}: trace and rank"
            )
    return figures


# ---------------------------------------------------------------------------------------------
# Influence and small-study effects (imrstats.meta.influence)


def baujat_figure(points: pd.DataFrame, *, equal_effects: bool = False, title: str = ""):
    """Baujat plot (Baujat et al. 2002, Stat Med 21:2641-2652) of ``imrstats.meta.influence.baujat``'s data, as
    metafor's ``baujat``: each study's contribution to the heterogeneity (x: squared Pearson residual; for an
    equal-effects model its share of Cochran's Q) against its influence on the pooled effect (y), labelled by
    study (with more than 15 studies only the 5 largest on either axis are labelled). Studies at the top right
    are both heterogeneous and influential."""
    fig, ax = new_figure(6.0, 4.6)
    shown = points.dropna(subset=["x", "y"])
    ax.scatter(shown["x"], shown["y"], color=PALETTE["estimate"], s=18, zorder=3)
    if len(shown) > 15:  # label the stand-outs only: the 5 largest on either axis
        shown = shown.loc[shown["x"].rank(ascending=False).le(5) | shown["y"].rank(ascending=False).le(5)]
    for label, x, y in zip(shown["slab"], shown["x"], shown["y"]):
        ax.annotate(str(label), (x, y), fontsize=FONT["text"], xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("contribution to overall heterogeneity" if equal_effects else "squared Pearson residual")
    ax.set_ylabel("influence on overall result")
    ax.grid(True, color="0.88", lw=0.6)
    ax.set_axisbelow(True)
    ax.set_title(title or "Baujat plot", fontsize=FONT["title"])
    return fig


def contour_funnel_figure(
    fit: MetaResult,
    *,
    trimfill=None,
    levels: tuple[float, ...] = (90.0, 95.0, 99.0),
    refline: float = 0.0,
    title: str = "",
    xlabel: str = "effect",
):
    """Contour-enhanced funnel plot (Peters et al. 2008, J Clin Epidemiol 61:991-996), as metafor's
    ``funnel(fit, level = c(90, 95, 99), shade = c("white", "gray55", "gray75"), refline = 0)``: effect against its
    standard error (inverted axis), shaded by the two-sided p-value of a study at that point against ``refline``
    (white p > 0.10, dark grey 0.05 < p <= 0.10, mid grey 0.01 < p <= 0.05, light grey p <= 0.01 for the default
    levels). With ``trimfill`` (``imrstats.meta.influence.trimfill``'s result) the filled-in studies are open
    circles and the solid line is the pooled effect with them (dashed: the observed studies' pooled effect);
    otherwise the solid line is ``fit``'s pooled effect."""
    from matplotlib.patches import Patch

    from imrstats.errors import AnalysisError

    levels = tuple(sorted(float(level) for level in levels))
    if not levels or any(not 0 < level < 100 for level in levels):
        raise AnalysisError(f"contour levels are percentages in (0, 100), e.g. (90, 95, 99); got {levels!r}")
    data = trimfill.data if trimfill is not None else pd.DataFrame({"yi": fit.yi, "vi": fit.vi, "filled": False})
    se = np.sqrt(data["vi"].to_numpy(float))
    yi = data["yi"].to_numpy(float)
    filled = data["filled"].to_numpy(bool)
    top = 1.05 * se.max()
    grid = np.linspace(0, top, 200)
    z = [float(stats.norm.isf((1 - level / 100) / 2)) for level in levels]
    half = z[-1] * top
    lo = min(refline - half, float(yi.min())) - 0.05 * half
    hi = max(refline + half, float(yi.max())) + 0.05 * half
    fig, ax = new_figure(7.8, 4.6)
    ax.set_facecolor("0.83")  # beyond the outermost contour: p <= 1 - max(level) / 100
    # innermost white, then metafor's gray55 / gray75 (further levels in between), outermost region light grey
    shades = ["white"] + [f"{g:.2f}" for g in np.linspace(0.55, 0.75, len(levels) - 1)]
    handles = [Patch(facecolor="0.83", edgecolor="0.5", label=f"p \u2264 {1 - levels[-1] / 100:.2f}")]
    for i in range(len(levels) - 1, -1, -1):  # widest contour first, narrower ones on top
        ax.fill_betweenx(grid, refline - z[i] * grid, refline + z[i] * grid, color=shades[i], lw=0, zorder=1)
        upper = 1 - levels[i - 1] / 100 if i > 0 else 1.0
        lower = 1 - levels[i] / 100
        label = f"p > {lower:.2f}" if i == 0 else f"{lower:.2f} < p \u2264 {upper:.2f}"
        handles.append(Patch(facecolor=shades[i], edgecolor="0.5", label=label))
    ax.axvline(refline, color="0.35", lw=0.7, zorder=2)
    pooled = trimfill.fit if trimfill is not None else fit
    ax.axvline(pooled.estimate, color=PALETTE["pooled"], lw=1.2, zorder=2)
    if trimfill is not None and trimfill.k0 > 0:
        ax.axvline(fit.estimate, color=PALETTE["pooled"], lw=1.0, ls="--", zorder=2)
    ax.scatter(yi[~filled], se[~filled], color="black", s=22, zorder=4, label="observed studies")
    if filled.any():
        ax.scatter(
            yi[filled],
            se[filled],
            facecolor="white",
            edgecolor="black",
            s=22,
            zorder=4,
            label="filled-in (trim and fill)",
        )
    ax.set_xlim(lo, hi)
    ax.set_ylim(top, 0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("standard error")
    points, names = ax.get_legend_handles_labels()
    legend_outside(ax, where="right", handles=handles[::-1] + points)
    fig.subplots_adjust(right=0.7)
    if not title and trimfill is not None:
        title = f"contour-enhanced funnel plot; trim and fill ({trimfill.estimator}): {trimfill.k0} filled in"
    ax.set_title(title or "contour-enhanced funnel plot", fontsize=FONT["title"])
    return fig


# ---------------------------------------------------------------------------------------------
# Meta-regression


def bubble_figure(
    res,
    moderator: str,
    *,
    title: str = "",
    xlabel: str | None = None,
    ylabel: str = "effect",
    prediction_interval: bool = True,
    points: int = 101,
):
    """Bubble plot of a meta-regression (``imrstats.meta.moderators.rma_mods``) on one continuous moderator,
    as metafor's ``regplot``: each study at (moderator, yi) with area proportional to its weight 1 / (vi +
    tau^2), the fitted line with its CI band and (dashed) the prediction interval; other moderators are held at
    their means over the studies (for a categorical one, the mean of its indicator columns), as regplot does."""
    from imrstats.errors import InputError
    from imrstats.meta.moderators import ModeratorResult

    if not isinstance(res, ModeratorResult):
        raise InputError(f"bubble_figure takes the result of rma_mods; got {type(res).__name__}")
    kinds = {m.name: m.kind for m in res.moderators}
    if kinds.get(moderator) != "continuous":
        continuous = [name for name, kind in kinds.items() if kind == "continuous"]
        raise InputError(
            f"bubble_figure: {moderator!r} is not a continuous moderator of the model; continuous: {continuous}"
        )
    X = np.asarray(res.X)
    offset = int(res.intercept)
    j = res.terms.index(moderator)
    x = X[:, j]
    y = np.asarray(res.yi)
    tau2 = 0.0 if res.method in ("EE", "FE") else res.tau2
    w = 1.0 / (np.asarray(res.vi) + tau2)
    grid = np.linspace(float(x.min()), float(x.max()), points)
    coded = np.tile(X[:, offset:].mean(axis=0), (points, 1))
    coded[:, j - offset] = grid
    pred = res.predict(coded)
    fig, ax = new_figure(7.0, 4.8)
    ax.fill_between(grid, pred["ci_low"], pred["ci_high"], color=PALETTE["estimate"], alpha=0.2, lw=0, label="CI")
    ax.plot(grid, pred["estimate"], color=PALETTE["estimate"], lw=1.5, label="fitted")
    if prediction_interval and res.method not in ("EE", "FE"):
        ax.plot(grid, pred["pi_low"], color=PALETTE["estimate"], lw=0.8, ls="--", label="prediction interval")
        ax.plot(grid, pred["pi_high"], color=PALETTE["estimate"], lw=0.8, ls="--")
    ax.scatter(x, y, s=600 * w / w.max(), facecolor="0.6", edgecolor="black", alpha=0.8, zorder=3, label="studies")
    ax.axhline(0.0, color="0.4", lw=0.6)
    ax.set_xlabel(xlabel or moderator)
    ax.set_ylabel(ylabel)
    others = [m.name for m in res.moderators if m.name != moderator]
    held = f"; {', '.join(others)} held at {'its mean' if len(others) == 1 else 'their means'}" if others else ""
    ax.set_title(title or f"meta-regression on {moderator} ({res.method}{held})", fontsize=FONT["title"])
    legend_outside(ax, where="right")
    return fig


# ---------------------------------------------------------------------------------------------
# Forest plot grouped by subgroup (or by study, for several effects per study)


def grouped_forest_figure(
    data: pd.DataFrame,
    *,
    groups: pd.DataFrame | None = None,
    overall: dict | None = None,
    level: float = 0.95,
    title: str = "",
    xlabel: str = "effect",
    group_name: str = "subgroup",
):
    """A forest plot in blocks: ``data`` (columns ``label``, ``group``, ``yi``, ``vi``) drawn group by group in
    the order of ``groups`` (else of first appearance), each study with its normal CI and a square sized by its
    precision 1 / vi; under each group its pooled diamond when ``groups`` gives it (columns ``group``,
    ``estimate``, ``ci_low``, ``ci_high``, optional ``text``, e.g. the subgroup's k and tau^2); at the foot the
    overall diamond from ``overall`` (``label``, ``estimate``, ``ci_low``, ``ci_high``, optional ``pi_low`` /
    ``pi_high`` drawn dashed). Draws only what it is given; computes no reported number."""
    z = float(stats.norm.isf((1 - level) / 2))
    order = list(groups["group"]) if groups is not None else list(dict.fromkeys(data["group"]))
    summaries = {r["group"]: r for r in groups.to_dict("records")} if groups is not None else {}
    precision = 1.0 / data["vi"].to_numpy(float)
    size = {i: 4 + 8 * math.sqrt(p / precision.max()) for i, p in zip(data.index, precision)}
    lines: list[tuple[str, str, dict]] = []  # (kind, label, payload) from the top down
    for group in order:
        rows = data.loc[data["group"] == group]
        lines.append(("header", f"{group_name}: {group}", {}))
        for i, r in rows.iterrows():
            lines.append(("study", str(r["label"]), {"y": float(r["yi"]), "v": float(r["vi"]), "size": size[i]}))
        if group in summaries:
            lines.append(("diamond", f"{group} (pooled)", summaries[group]))
    if overall is not None:
        lines.append(("overall", str(overall.get("label", "Overall")), overall))
    n = len(lines)
    fig, ax = new_figure(9.0, 1.6 + 0.36 * n)
    ticks, names = [], []
    for j, (kind, label, item) in enumerate(lines):
        row = n - j
        ticks.append(row)
        names.append(label)
        if kind == "study":
            lo, hi = item["y"] - z * math.sqrt(item["v"]), item["y"] + z * math.sqrt(item["v"])
            ax.plot([lo, hi], [row, row], color="black", lw=1)
            ax.plot(item["y"], row, "s", color=PALETTE["estimate"], markersize=item["size"])
            text = f"{item['y']:.2f} [{lo:.2f}, {hi:.2f}]"
        elif kind in ("diamond", "overall"):
            est, lo, hi = float(item["estimate"]), float(item["ci_low"]), float(item["ci_high"])
            if not all(math.isfinite(x) for x in (est, lo, hi)):
                continue
            color = PALETTE["pooled"] if kind == "overall" else PALETTE["secondary"]
            ax.fill([lo, est, hi, est], [row, row + 0.25, row, row - 0.25], color=color)
            pi_low, pi_high = item.get("pi_low"), item.get("pi_high")
            if pi_low is not None and pi_high is not None and math.isfinite(pi_low) and math.isfinite(pi_high):
                ax.plot([pi_low, pi_high], [row, row], ls="--", color=color, lw=1)
            text = f"{est:.2f} [{lo:.2f}, {hi:.2f}]" + (f"  {item['text']}" if item.get("text") else "")
        else:
            text = ""
        if text:
            weight = "bold" if kind != "study" else "normal"
            ax.text(
                1.02, row, text, transform=ax.get_yaxis_transform(), va="center", fontsize=FONT["text"], weight=weight
            )
    ax.set_yticks(ticks)
    ax.set_yticklabels(names, fontsize=FONT["text"])
    for tick, (kind, _, _) in zip(ax.get_yticklabels(), lines):
        if kind in ("header", "overall"):
            tick.set_fontweight("bold")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_ylim(0.3, n + 0.7)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=FONT["title"])
    fig.subplots_adjust(right=0.66, left=0.27)
    return fig
