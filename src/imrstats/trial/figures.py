"""The trial stage's figures: drawn by `run_trial_stage` from its fitted results (the residuals and Cook's
distances behind the diagnostics panels are row-level and never leave the stage as tables), each made with the
report's one figure factory, `imrstats.report.figures.new_figure`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imrstats.report.figures import (
    FONT,
    PALETTE,
    SERIES,
    estimate_text,
    favours_labels,
    legend_outside,
    new_figure,
    text_column,
)
from imrstats.trial import analyses as trial
from imrstats.trial.design import DEFAULT_DESIGN, StudyDesign

# one colour per visit, in visit order (the forest plot)
VISIT_COLOURS = SERIES


def trial_figures(
    results: list[dict],
    tables: dict[str, pd.DataFrame],
    s: dict,
    registry,
    diagnostic_keys: tuple[str, ...],
    into: dict | None = None,
    design: StudyDesign = DEFAULT_DESIGN,
) -> dict:
    """Every figure of the trial stage, by name (the report refers to figures/<name>.png). `diagnostic_keys`:
    the result keys of the fitted models whose residual diagnostics are drawn, one panel row each. Figures are
    added to `into` as they are drawn, so those drawn before a failure are kept. Arms and visits are printed
    with ``design``'s labels."""
    figures = {} if into is None else into
    if "trial_itt_contrasts" in tables:
        sds = {r["outcome"]: float(np.nanstd(baseline_values(r), ddof=1)) for r in results if "itt" in r}
        figures["trial_itt_forest"] = forest_figure(tables["trial_itt_contrasts"], sds, design)
    for r in results:
        if "tipping" in r:
            figures[f"trial_tipping_{r['outcome']}"] = tipping_figure(r["tipping"], registry[r["outcome"]].short)
    for r in results:
        diags = [r[n] for n in diagnostic_keys if n in r]
        if diags and draw_diagnostics(r["outcome"], diags, s):
            figures[f"trial_diagnostics_{r['outcome']}"] = diagnostics_figure(
                diags, registry[r["outcome"]].short, design
            )
    if any("attendance_points" in r for r in results):
        figures["trial_attendance"] = attendance_figure(results, registry, s, design)
    return figures


def baseline_values(result: dict) -> np.ndarray:
    """Observed baseline values of one outcome (for the SD that scales the forest plot)."""
    return result["imputation"].frame["baseline"].to_numpy(dtype=float)


def draw_diagnostics(key: str, diags: list, s: dict) -> bool:
    """Figures are costly (12 panels): ``flagged`` draws the primary outcome and any outcome with a failed check."""
    if s["diagnostics_figures"] == "none":
        return False
    return (
        s["diagnostics_figures"] == "all"
        or key == s["primary"]["outcome"]
        or any(d.failed or np.nanmax(d.cooks) > 1 for d in diags)
    )


def diagnostics_figure(diags: list, label: str, design: StudyDesign = DEFAULT_DESIGN):
    """Per model (row): normal Q-Q of the residuals, residuals vs fitted, Cook's distance, residuals vs baseline."""
    from scipy import stats

    fig, axes = new_figure(12, 2.7 * len(diags), nrows=len(diags), ncols=4, squeeze=False)
    for row, d in zip(axes, diags):
        c = d.checks.set_index("check")
        z = (d.residuals - d.residuals.mean()) / d.residuals.std(ddof=1)
        osm, osr = stats.probplot(z, dist="norm", fit=False)
        row[0].plot(osm, osr, ".", ms=3)
        lim = [min(osm.min(), osr.min()), max(osm.max(), osr.max())]
        row[0].plot(lim, lim, color="black", lw=0.8)
        row[0].set_title(
            f"{label}, {d.model} {'+'.join(design.visit_label(v) for v in d.timepoint.split('+'))}\nnormal Q-Q; "
            f"Shapiro-Wilk p = {c.loc['shapiro_wilk', 'p']:.3g}",
            fontsize=8,
        )
        row[1].plot(d.fitted, d.residuals, ".", ms=3)
        row[1].axhline(0, color="black", lw=0.8)
        row[1].set_title(
            f"{d.residual_kind.split()[0]} residual vs fitted\nSpearman(|residual|, fitted) p = "
            f"{c.loc['spearman_abs_residual_fitted', 'p']:.3g}",
            fontsize=8,
        )
        n = len(d.cooks)
        row[2].vlines(np.arange(1, n + 1), 0, np.nan_to_num(d.cooks), lw=0.8)
        row[2].axhline(4 / n, color=PALETTE["pooled"], ls="--", lw=0.8)
        row[2].set_title(f"Cook's distance by row\n{len(d.cooks_rows)} above 4/n (dashed), all kept", fontsize=8)
        row[3].plot(d.baseline, d.residuals, ".", ms=3)
        row[3].axhline(0, color="black", lw=0.8)
        row[3].set_title(f"residual vs baseline\nquadratic term p = {c.loc['baseline_quadratic', 'p']:.3g}", fontsize=8)
        for ax, xl in zip(row, ("normal quantile", "fitted", "row in analysed data", "baseline")):
            ax.set_xlabel(xl, fontsize=8)
            ax.locator_params(nbins=4)  # few tick labels: text layout is most of the drawing time
    fig.subplots_adjust(
        left=0.05, right=0.99, bottom=0.13 / len(diags), top=1 - 0.16 / len(diags), wspace=0.25, hspace=0.75
    )  # fixed layout: tight_layout would cost a full draw
    return fig


def attendance_figure(results, registry, s, design: StudyDesign = DEFAULT_DESIGN):
    panels = [r for r in results if "attendance_points" in r]
    fig, axes = new_figure(3.4 * len(panels), 3.2, ncols=len(panels))
    axes = np.atleast_1d(axes)
    for ax, r in zip(axes, panels):
        x, y = r["attendance_points"][:, 0], r["attendance_points"][:, 1]
        ax.scatter(x, y, s=8, alpha=0.7, color=PALETTE["estimate"])
        if np.ptp(x) > 0:
            slope, icpt = np.polyfit(x, y, 1)
            grid = np.linspace(x.min(), x.max(), 50)
            ax.plot(grid, icpt + slope * grid, color=PALETTE["secondary"], label="OLS (unadjusted)")
        ax.axvline(
            int(s["per_protocol_threshold"]) + 0.5,
            color=PALETTE["pooled"],
            ls="--",
            lw=0.8,
            label=f">{s['per_protocol_threshold']} sessions",
        )
        ax.set_xlabel(f"sessions attended ({design.arm_label(design.intervention)} arm)")
        ax.set_ylabel(f"{registry[r['outcome']].short} at {design.visit_label(s['attendance_timepoint'])}")
    legend_outside(axes[-1], where="right")  # one legend for all panels, beside the last
    fig.tight_layout()
    return fig


def tipping_figure(tp: trial.TippingPoint, label: str):
    design = tp.design
    contrast, arm = design.contrast_label, design.arm_label(design.intervention)
    fig, ax = new_figure(6.4, 4.0)
    g = tp.grid
    ax.fill_between(
        g["delta"], g["ci_low"], g["ci_high"], alpha=0.25, color=PALETTE["estimate"], label="95% CI (Rubin)"
    )
    ax.plot(g["delta"], g["estimate"], "o-", color=PALETTE["estimate"], label=f"pooled {contrast}")
    ax.axhline(0, color="black", lw=0.8)
    for _, p in tp.points.iterrows():
        if p["reached"]:
            ax.axvline(p["tipping_delta"], color=PALETTE["pooled"], ls="--", lw=1)
            ax.annotate(
                f" tipping point {p['tipping_delta']:+.2f}",
                (p["tipping_delta"], ax.get_ylim()[0]),
                color=PALETTE["pooled"],
                fontsize=FONT["text"],
                ha="left",
                va="bottom",
            )
    ax.set_xlabel(f"delta added to the {arm} arm's imputed values ({label} points)")
    ax.set_ylabel(f"{contrast} at {design.visit_label(tp.timepoint)}")
    ax.set_title(f"{label}: delta-adjusted MI (MNAR) sensitivity", fontsize=FONT["title"])
    legend_outside(ax, ncol=2)
    return fig


def forest_figure(itt: pd.DataFrame, sds: dict, design: StudyDesign = DEFAULT_DESIGN):
    """ITT effects in baseline-SD units, signed so that positive favours the intervention; one colour per visit
    (legend below the axes), the effect and 95% CI as text beside each row, the arms' "Favours" under the axis."""
    n = len(itt)
    fig, ax = new_figure(8.6, 0.3 * n + 1.9)
    y = np.arange(n)[::-1]
    sign = np.where(itt["direction"] == "higher is better", 1.0, -1.0)
    sd = itt["outcome"].map(sds).to_numpy(dtype=float)
    est, lo, hi = (sign * itt[c].to_numpy() / sd for c in ("estimate", "ci_low", "ci_high"))
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    palette = {v: VISIT_COLOURS[k % len(VISIT_COLOURS)] for k, v in enumerate(design.visits)}
    colours = itt["timepoint"].map(palette).fillna(PALETTE["reference"]).to_numpy()
    ax.hlines(y, lo, hi, colors=colours)
    for tp in design.visits:
        sel = (itt["timepoint"] == tp).to_numpy()
        if sel.any():
            ax.scatter(est[sel], y[sel], color=palette[tp], zorder=3, s=22, label=design.visit_label(tp))
    ax.axvline(0, color=PALETTE["reference"], lw=0.8)
    ax.set_yticks(y, [f"{i} ({design.visit_label(t)})" for i, t in zip(itt["instrument"], itt["timepoint"])])
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)
    text_column(
        ax, 0.15, y, [estimate_text(*v) for v in zip(est, lo, hi)], header="SD units [95% CI]", header_row=n - 0.2
    )
    ax.set_ylim(-0.7, n + 0.2)
    ax.set_xlabel(f"{design.contrast_label} in baseline SD units; ITT MI-MMRM, 95% CI")
    favours_labels(ax, design.arm_label(design.control), design.arm_label(design.intervention))
    legend_outside(ax, ncol=len(design.visits), below=0.75)
    fig.subplots_adjust(left=0.2, right=0.72)
    return fig


def tipping_2d_figure(tp, label: str = "", units: str = ""):
    """Heat map of a two-dimensional tipping-point grid (`imrstats.trial.reference_mi.tipping_point_2d`): the
    contrast at the visit in colour (diverging around 0), the delta added to the control arm's imputed values
    across and the intervention arm's up (as rbmi's vignette draws it), axes in the outcome's ``units`` and
    labelled with the arms' labels; the contour p = alpha where the conclusion changes (interpolated between cells)
    with the exact crossings on the grid lines as dots, the cells with p >= alpha hatched, and the point without a
    delta marked."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    design = tp.design
    units = units or (f"{label} points" if label else "outcome units")
    a = np.asarray(tp.deltas_intervention, dtype=float)
    c = np.asarray(tp.deltas_control, dtype=float)
    est, p = tp.matrix("estimate"), tp.matrix("p")

    def edges(v):
        if len(v) == 1:
            return np.array([v[0] - 0.5, v[0] + 0.5])
        mid = (v[1:] + v[:-1]) / 2
        return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])

    fig, ax = new_figure(6.4, 5.0)
    top = float(np.nanmax(np.abs(est))) or 1.0
    mesh = ax.pcolormesh(edges(c), edges(a), est, cmap="RdBu_r", vmin=-top, vmax=top, shading="flat")
    bar = fig.colorbar(mesh, ax=ax)
    bar.set_label(f"{design.contrast_label} at {design.visit_label(tp.timepoint)} ({units})")
    handles = []
    if len(a) > 1 and len(c) > 1:
        if (p >= tp.alpha).any():
            ax.contourf(c, a, p, levels=[tp.alpha, 1.0 + 1e-9], colors="none", hatches=["///"])
            handles.append(Patch(facecolor="none", hatch="///", label=f"not significant (p >= {tp.alpha:g})"))
        if (p < tp.alpha).any() and (p >= tp.alpha).any():
            ax.contour(c, a, p, levels=[tp.alpha], colors="black", linewidths=1.5)
            handles.append(Line2D([], [], color="black", lw=1.5, label=f"p = {tp.alpha:g}: the conclusion changes"))
    points = tp.tipping_points
    if len(points):
        ax.plot(points["delta_control"], points["delta_intervention"], "o", color="black", ms=3)
        handles.append(
            Line2D([], [], marker="o", color="black", ls="", ms=3, label=f"p = {tp.alpha:g} on a grid line (exact)")
        )
    if c[0] <= 0 <= c[-1] and a[0] <= 0 <= a[-1]:
        ax.plot([0], [0], marker="*", color="gold", mec="black", ms=12, ls="")
        handles.append(
            Line2D([], [], marker="*", color="gold", mec="black", ms=12, ls="", label="no delta (primary analysis)")
        )
    how = " per visit since the ICE" if tp.cumulative else ""
    ax.set_xlabel(f"delta added to {design.arm_label(design.control)}'s imputed values{how} ({units})")
    ax.set_ylabel(f"delta added to {design.arm_label(design.intervention)}'s imputed values{how} ({units})")
    title = f"{label}: " if label else ""
    ax.set_title(
        f"{title}tipping point at {design.visit_label(tp.timepoint)} (alpha = {tp.alpha:g})", fontsize=FONT["title"]
    )
    if handles:
        legend_outside(ax, handles=handles, ncol=2)
    return fig
