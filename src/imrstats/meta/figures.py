"""The meta-analysis stage's figures: forest, funnel and cumulative plots of the frequentist pooling, and the
posterior, trace / rank and cumulative plots of the Bayesian pooling. Every figure starts from the report's
figure factory (``imrstats.report.figures.new_figure``); nothing here computes a reported number.
"""

from __future__ import annotations

import math
import re
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from imrstats.meta.bayes import SHIPPED_TAU_PRIORS, BayesResult, Normal, TauPrior
from imrstats.meta.random_effects import MetaResult, rma
from imrstats.meta.stage import FAVOURS
from imrstats.report.figures import new_figure


def axis_label(measure: str) -> str:
    """The x-axis (and report) name of an effect measure, with its direction."""
    return {"SMD": "Hedges' g", "log OR": "log odds ratio", "MD": "mean difference"}.get(
        measure, measure
    ) + f" ({FAVOURS})"


def slug(label: str) -> str:
    """A label as a file-name part (figure and posterior names)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label)).strip("_")


# ---------------------------------------------------------------------------------------------
# Frequentist pooling


def forest_figure(data: pd.DataFrame, fit: MetaResult, *, title: str, xlabel: str, transform: Callable | None = None):
    """Studies (normal CIs, squares sized by the model's weights), the pooled diamond and the prediction
    interval (dashed) of ``fit``; ``transform`` maps the logit scale to percent for proportions."""
    t = transform or (lambda x: x)
    k = len(data)
    z = float(stats.norm.isf((1 - fit.level) / 2))
    y, v = data["yi"].to_numpy(float), data["vi"].to_numpy(float)
    tau2 = 0.0 if math.isnan(fit.tau2) else fit.tau2
    w = 1 / (v + tau2)
    weight = 100 * w / w.sum()
    fig, ax = new_figure(8.0, 1.6 + 0.42 * (k + 2))
    labels = list(fit.slab)
    for i in range(k):
        row = k - i + 1
        lo, hi = t(y[i] - z * math.sqrt(v[i])), t(y[i] + z * math.sqrt(v[i]))
        ax.plot([lo, hi], [row, row], color="black", lw=1)
        ax.plot(t(y[i]), row, "s", color="tab:blue", markersize=4 + 8 * math.sqrt(weight[i] / 100))
        ax.text(
            1.02,
            row,
            f"{weight[i]:4.1f}%   {t(y[i]):.2f} [{lo:.2f}, {hi:.2f}]",
            transform=ax.get_yaxis_transform(),
            va="center",
            fontsize=8,
        )
    if fit.k > 1:
        est, lo, hi = t(fit.estimate), t(fit.ci_low), t(fit.ci_high)
        ax.fill([lo, est, hi, est], [0.5, 0.75, 0.5, 0.25], color="tab:red")
        ax.text(
            1.02,
            0.5,
            f"100%   {est:.2f} [{lo:.2f}, {hi:.2f}]",
            transform=ax.get_yaxis_transform(),
            va="center",
            fontsize=8,
            weight="bold",
        )
        if fit.method not in ("EE", "FE"):
            pred = fit.predict()
            ax.plot([t(pred.extra["pi_low"]), t(pred.extra["pi_high"])], [0.5, 0.5], ls="--", color="tab:red", lw=1)
        labels = labels + [f"Pooled ({fit.method}{', Knapp-Hartung' if fit.knha else ''})"]
    ax.set_yticks([k - i + 1 for i in range(k)] + ([0.5] if fit.k > 1 else []))
    ax.set_yticklabels(labels, fontsize=8)
    if transform is None:
        ax.axvline(0, color="grey", lw=0.8)
    ax.set_ylim(-0.2, k + 1.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    fig.subplots_adjust(right=0.68)
    return fig


def funnel_figure(data: pd.DataFrame, fit: MetaResult, *, title: str, xlabel: str):
    """Effect against its standard error (inverted axis) with the pseudo 95% region around the pooled effect."""
    se = np.sqrt(data["vi"].to_numpy(float))
    fig, ax = new_figure(5.5, 4.2)
    top = 1.1 * se.max()
    grid = np.linspace(0, top, 50)
    z = float(stats.norm.isf((1 - fit.level) / 2))
    ax.fill_betweenx(grid, fit.estimate - z * grid, fit.estimate + z * grid, color="0.92")
    ax.axvline(fit.estimate, color="tab:red", lw=1)
    ax.scatter(data["yi"], se, color="tab:blue", zorder=3)
    for label, x, s in zip(fit.slab, data["yi"], se):
        ax.annotate(label, (x, s), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_ylim(top, 0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("standard error")
    ax.set_title(title, fontsize=10)
    return fig


def cumulative_figure(cumulative: pd.DataFrame, *, title: str, xlabel: str):
    """The pooled effect and its CI as studies are added by publication year."""
    n = len(cumulative)
    fig, ax = new_figure(7.0, 1.4 + 0.42 * n)
    for i, (_, r) in enumerate(cumulative.iterrows()):
        row = n - i
        ax.plot([r["ci_low"], r["ci_high"]], [row, row], color="black", lw=1)
        ax.plot(r["estimate"], row, "o", color="tab:blue")
    ax.set_yticks([n - i for i in range(n)])
    ax.set_yticklabels([f"+ {a} (k = {int(k)})" for a, k in zip(cumulative["added"], cumulative["k"])], fontsize=8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    return fig


def outcome_figures(label: str, data: pd.DataFrame, pooled: dict) -> dict:
    """Forest, funnel (k >= 3) and cumulative plots of one outcome's pooling (``pool_outcome``'s result)."""
    fit = pooled.get("fit")
    if fit is None:
        return {}
    xlabel = axis_label(pooled["measure"])
    figures = {f"meta_forest_{label}": forest_figure(data, fit, title=f"{label}: {fit.method_label}", xlabel=xlabel)}
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
        mu, bins=60, range=(lo, hi), density=True, color="tab:blue", alpha=0.45, label="posterior of mu"
    )
    ax_mu.hist(
        mu_new,
        bins=60,
        range=(lo, hi),
        density=True,
        histtype="step",
        color="tab:blue",
        ls="--",
        label="predictive: new trial",
    )
    grid = np.linspace(lo, hi, 400)
    ax_mu.plot(
        grid, stats.norm.pdf(grid, prior_mu.loc, prior_mu.scale), color="tab:red", label=f"prior {prior_mu.label()}"
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
    ax_mu.legend(fontsize=7, loc="upper left")
    top = float(np.quantile(tau, 0.995))
    heights, _, _ = ax_tau.hist(
        tau, bins=60, range=(0, top), density=True, color="tab:green", alpha=0.45, label="posterior of tau"
    )
    grid = np.linspace(top / 2000, top, 400)
    with np.errstate(divide="ignore", over="ignore"):
        density = np.exp(prior_tau.logpdf_tau(grid))
    ax_tau.plot(grid, density, color="tab:red", label=f"prior: {prior_tau.label()}")
    ax_tau.set_ylim(0, 1.3 * heights.max())  # the log(tau^2) priors have a pole at tau = 0
    ax_tau.set_xlim(0, top)
    ax_tau.set_xlabel("tau (between-study SD)")
    ax_tau.legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
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
    ax_mu.fill_between(grid, density, color="tab:blue", alpha=0.45, label="posterior of mu (exact)")
    ax_mu.plot(grid, fit.pdf("mu_new", grid), color="tab:blue", ls="--", label="predictive: new trial")
    ax_mu.plot(
        grid, stats.norm.pdf(grid, prior_mu.loc, prior_mu.scale), color="tab:red", label=f"prior {prior_mu.label()}"
    )
    ax_mu.axvline(0, color="grey", lw=0.8)
    ax_mu.set_ylim(
        0, 1.25 * max(density.max(), stats.norm.pdf(0, 0, prior_mu.scale) if lo <= prior_mu.loc <= hi else 0)
    )
    ax_mu.set_xlabel(xlabel)
    ax_mu.set_ylabel("density")
    ax_mu.legend(fontsize=7, loc="upper left")
    top = float(fit.tau_posterior.ppf(0.995)[0])
    grid = np.linspace(top / 2000, top, 400)
    density = fit.pdf("tau", grid)
    ax_tau.fill_between(grid, density, color="tab:green", alpha=0.45, label="posterior of tau (exact)")
    with np.errstate(divide="ignore", over="ignore"):
        prior = np.exp(prior_tau.logpdf_tau(grid))
    ax_tau.plot(grid, prior, color="tab:red", label=f"prior: {prior_tau.label()}")
    ax_tau.set_ylim(0, 1.3 * density.max())  # the log(tau^2) priors have a pole at tau = 0
    ax_tau.set_xlim(0, top)
    ax_tau.set_xlabel("tau (between-study SD)")
    ax_tau.legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
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
    axes[0, 0].legend(fontsize=6, ncol=4, loc="upper right")
    fig.suptitle(title, fontsize=10)
    return fig


def cumulative_bayes_figure(table: pd.DataFrame, *, title: str = "", xlabel: str = "pooled effect"):
    """The posterior mean and 95% interval of mu as each year's studies are added, with P(mu > 0)."""
    n = len(table)
    fig, axes = new_figure(7.5, 1.4 + 0.45 * n, squeeze=False)
    ax = axes[0, 0]
    for i, (_, r) in enumerate(table.iterrows()):
        row = n - i
        ax.plot([r["mu_low"], r["mu_high"]], [row, row], color="black", lw=1)
        ax.plot(r["mu_mean"], row, "o", color="tab:blue")
        shown = "gate failed" if math.isnan(r["P(mu > 0)"]) else f"P(mu > 0) = {r['P(mu > 0)']:.2f}"
        ax.text(1.02, row, shown, transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.set_yticks([n - i for i in range(n)])
    ax.set_yticklabels(
        [f"{int(y)}: + {a} (k = {int(k)})" for y, a, k in zip(table["year"], table["added"], table["k"])], fontsize=8
    )
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    fig.subplots_adjust(right=0.78)
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
