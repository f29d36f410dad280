"""The evidence stage's figures: the cumulative meta-analysis ending in the trial, and the trial's g in the
published-only predictive distribution of a new trial. Every figure starts from the report's figure factory
(``imrstats.report.figures.new_figure``); nothing here computes a reported number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imrstats.evidence.stage import ANALYSIS_NAMES, FAVOURS
from imrstats.report.figures import (
    FONT,
    PALETTE,
    estimate_text,
    finish_interval_rows,
    legend_outside,
    new_figure,
    text_column,
)

COLOURS = {"itt": PALETTE["pooled"], "complete_case": PALETTE["secondary"]}  # per trial analysis


def cumulative_with_trial_figure(steps: pd.DataFrame, endings: dict[str, pd.Series], *, title: str):
    """The pooled effect and CI as published studies are added by year (black), ending in the trial:
    one final row per trial analysis (coloured), with the pooled effect and CI as text beside each row."""
    n = len(steps) + len(endings)
    fig, ax = new_figure(9.5, 1.4 + 0.36 * (n + 1))
    labels, rows, texts = [], [], []
    for i, (_, r) in enumerate(steps.iterrows()):
        ax.plot([r["ci_low"], r["ci_high"]], [n - i, n - i], color=PALETTE["ink"], lw=1)
        ax.plot(r["estimate"], n - i, "o", color=PALETTE["estimate"])
        labels.append(f"+ {r['added']} (k = {int(r['k'])})")
        rows.append(n - i)
        texts.append(estimate_text(r["estimate"], r["ci_low"], r["ci_high"]))
    for j, (analysis, r) in enumerate(endings.items()):
        row = n - len(steps) - j
        colour = COLOURS.get(analysis, PALETTE["pooled"])
        ax.plot([r["ci_low"], r["ci_high"]], [row, row], color=colour, lw=1.5)
        ax.plot(r["estimate"], row, "D", color=colour)
        labels.append(f"+ {r['added']}, {ANALYSIS_NAMES[analysis]} (k = {int(r['k'])})")
        rows.append(row)
        texts.append(estimate_text(r["estimate"], r["ci_low"], r["ci_high"]))
    ax.set_yticks(rows, labels)
    text_column(ax, 0.15, rows, texts, header="Pooled g [95% CI]", header_row=n + 0.8)
    finish_interval_rows(
        ax, n, xlabel=f"pooled Hedges' g ({FAVOURS}), 95% CI", favours=("TAU", "IMR"), title=title, wrap=100
    )
    fig.subplots_adjust(left=0.33, right=0.78)
    return fig


def predictive_figure(mu_new: np.ndarray, trial_rows: pd.DataFrame, *, title: str):
    """Histogram of the published-only posterior predictive draws of a new trial's effect, with the
    trial's g (and its 95% CI, the whiskers at the top) per analysis; the legend below the axes."""
    fig, ax = new_figure(7.0, 3.8)
    flat = mu_new.ravel()
    lo, hi = np.quantile(flat, [0.002, 0.998])
    lo = min(lo, float(trial_rows["ci_low"].min()))
    hi = max(hi, float(trial_rows["ci_high"].max()))
    heights, _, _ = ax.hist(
        flat,
        bins=80,
        range=(lo, hi),
        density=True,
        color=PALETTE["estimate"],
        alpha=0.4,
        label="predictive: new trial's true effect (published studies only)",
    )
    top = heights.max()
    for i, (_, r) in enumerate(trial_rows.iterrows()):
        colour = COLOURS.get(r["analysis"], PALETTE["pooled"])
        ax.axvline(
            r["yi"],
            color=colour,
            lw=1.5,
            label=f"{ANALYSIS_NAMES[r['analysis']]}: g = {r['yi']:.2f} (95% CI at the top), "
            f"percentile {100 * r['pct_true']:.0f}",
        )
        y = top * (1.05 + 0.07 * i)
        ax.plot([r["ci_low"], r["ci_high"]], [y, y], color=colour, lw=1, marker="|")
    ax.axvline(0, color=PALETTE["reference"], lw=0.8)
    ax.set_ylim(0, top * (1.2 + 0.07 * len(trial_rows)))
    ax.set_xlabel(f"Hedges' g ({FAVOURS})")
    ax.set_ylabel("density")
    legend_outside(ax)
    ax.set_title(title, fontsize=FONT["title"])
    return fig
