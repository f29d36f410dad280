"""The report's one figure factory: every stage makes its figures with `new_figure`, so all of them share one
look (open axes: no top or right frame line) and none touches pyplot's global state.

Stage-specific plots (forest plots, rootograms, diagnostics panels) stay with their stage's presentation
module; they start from `new_figure` and take their colours from `PALETTE` (series: `SERIES`) and their text
sizes from `FONT`. No legend is drawn over data: `legend_outside` puts one below or right of the axes.
"""

from __future__ import annotations

import io

import numpy as np

DPI = 110  # the PNG resolution the pipeline writes (write_stage)

# The report's colours, by role (colour-blind safe pairs: blue / orange, red / grey; matplotlib's tab10 values).
PALETTE = {
    "estimate": "#1f77b4",  # observed / study estimates, posteriors (blue)
    "pooled": "#d62728",  # pooled effects, diamonds, priors, the main analysis (red)
    "secondary": "#ff7f0e",  # a second analysis or a fitted line (orange)
    "tertiary": "#2ca02c",  # a third series, e.g. the between-study SD (green)
    "reference": "0.35",  # the null line and other reference lines (dark grey)
    "band": "0.88",  # shaded intervals and regions (light grey)
    "ink": "black",  # CI whiskers, text
}
# Several series of one kind (visits, chains), in order.
SERIES = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22")
# Text sizes in points (>= 8 pt at the saved DPI, so every label stays readable in the report).
FONT = {"title": 10, "label": 9, "tick": 8, "text": 8, "legend": 8}


def style_axes(ax) -> None:
    """The shared look of one axes: no top or right frame line; tick and axis labels at the report's sizes."""
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.tick_params(labelsize=FONT["tick"])
    ax.xaxis.label.set_fontsize(FONT["label"])  # kept by set_xlabel / set_ylabel, which change the text only
    ax.yaxis.label.set_fontsize(FONT["label"])


def legend_outside(ax, *, where: str = "below", handles=None, labels=None, ncol: int = 1, below: float = 0.55):
    """A legend beside the axes' data area, never over it: ``where="right"`` (top-aligned, just right of the
    axes) or ``"below"`` (centred, ``below`` inches under the axes' bottom edge, i.e. under the tick and axis
    labels). No extra layout pass: the position is fixed in inches, and the saved PNG (``bbox_inches="tight"``)
    grows to include it. ``handles`` / ``labels`` as ``Axes.legend`` takes them (default: the axes' own)."""
    from matplotlib.transforms import ScaledTranslation

    if handles is None:
        handles, found = ax.get_legend_handles_labels()
        labels = found if labels is None else labels
    elif labels is None:
        labels = [h.get_label() for h in handles]
    if where == "right":
        options = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0)}
    elif where == "below":
        shift = ScaledTranslation(0, -below, ax.figure.dpi_scale_trans)
        options = {"loc": "upper center", "bbox_to_anchor": (0.5, 0.0), "bbox_transform": ax.transAxes + shift}
    else:
        raise ValueError(f"legend_outside: where is 'below' or 'right', not {where!r}")
    return ax.legend(handles, labels, ncol=ncol, fontsize=FONT["legend"], frameon=False, **options)


def signed(text: str) -> str:
    """Text with typographic minus signs (U+2212) for the figures' number columns."""
    from imrstats.report.format import MINUS

    return text.replace("-", MINUS)


def estimate_text(estimate, low, high, digits: int = 2) -> str:
    """'0.25 [\u22120.05, 0.51]': an estimate and its interval by the report's number formatter."""
    from imrstats.report.format import format_ci, format_fixed

    return signed(f"{format_fixed(estimate, digits)} {format_ci(low, high, digits)}")


def new_figure(
    width: float,
    height: float,
    *,
    nrows: int = 1,
    ncols: int = 1,
    squeeze: bool = True,
    layout: str | None = None,
    **subplot_kw,
):
    """A matplotlib `Figure` on the Agg canvas (no pyplot state, so nothing leaks between figures; no GUI) of
    `width` x `height` inches
    and its axes, styled alike. Returns (fig, ax) for one axes, or (fig, array of axes) as `Figure.subplots`
    does with `squeeze`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout, facecolor="white")
    FigureCanvasAgg(fig)  # drawable and savable without a GUI backend
    axes = fig.subplots(nrows, ncols, squeeze=squeeze, **subplot_kw)
    for ax in np.atleast_1d(axes).flat:
        style_axes(ax)
    return fig, axes


def png_bytes(fig, dpi: int = DPI) -> bytes:
    """A figure as a small PNG (`compress_png`: a palette of at most 256 colours) with deterministic metadata
    (no software version or date in the file)."""
    buffer = io.BytesIO()
    # the first encoding is only read back by compress_png, so it is made fast rather than small
    fig.savefig(
        buffer,
        format="png",
        dpi=dpi,
        bbox_inches="tight",
        metadata={"Software": None},
        pil_kwargs={"compress_level": 1},
    )
    return compress_png(buffer.getvalue())


def _is_palette_png(data: bytes) -> bool:
    """A PNG whose IHDR colour type is 3 (indexed colour)."""
    return data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data[25] == 3


def compress_png(data: bytes) -> bytes:
    """A figure's PNG made small for the report's pages: composited on white, reduced to a palette of at most
    256 colours (fast octree, no dithering; a figure's flat colours and anti-aliased edges fit in 256) and saved
    at zlib level 6; a PNG that is already indexed, or that would not get smaller, is returned as it is. The
    same bytes in give the same bytes out."""
    if _is_palette_png(data):
        return data
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        rgba = image.convert("RGBA")
    flat = Image.new("RGBA", rgba.size, "white")
    flat.alpha_composite(rgba)
    palette = flat.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    out = io.BytesIO()
    palette.save(out, format="PNG", compress_level=6)
    return out.getvalue() if out.tell() < len(data) else data


def text_column(ax, inches: float, rows, texts, *, header: str = "", header_row=None, ha: str = "left", **kw):
    """A column of texts right of the axes, ``inches`` from its right edge (fixed in inches, so no layout pass is
    needed), one per data row ``rows`` (y in data units), with an optional bold ``header`` at ``header_row``;
    returns the Text artists of the rows (not the header). For the number columns of forest-style plots."""
    from matplotlib.transforms import ScaledTranslation

    transform = ax.get_yaxis_transform() + ScaledTranslation(inches, 0, ax.figure.dpi_scale_trans)
    style = {"va": "center", "ha": ha, "fontsize": FONT["text"], "transform": transform, "clip_on": False}
    drawn = [ax.text(1.0, row, text, **{**style, **kw}) for row, text in zip(rows, texts)]
    if header and header_row is not None:
        ax.text(1.0, header_row, header, **{**style, "weight": "bold"})
    return drawn


def favours_labels(ax, left: str, right: str, *, at: float = 0.0, below: float = 0.3) -> None:
    """'\u2190 Favours <left>' and 'Favours <right> \u2192' under the x axis, either side of ``at`` (the null
    value; the axis centre when ``at`` is outside the x range), ``below`` inches under the axes (under the tick
    labels); the x-axis label is moved down to make room."""
    from matplotlib.transforms import ScaledTranslation, blended_transform_factory

    lo, hi = ax.get_xlim()
    x, transform = (at, ax.transData) if lo < at < hi else (0.5, ax.transAxes)
    base = blended_transform_factory(transform, ax.transAxes)
    shift = ScaledTranslation(0, -below, ax.figure.dpi_scale_trans)
    style = {"va": "top", "fontsize": FONT["text"], "color": PALETTE["reference"], "transform": base + shift}
    ax.text(x, 0, f"\u2190 Favours {left}  ", ha="right", **style)
    ax.text(x, 0, f"  Favours {right} \u2192", ha="left", **style)
    ax.xaxis.labelpad = 72 * below - 3.5  # the tick labels take ~15 pt; the favours line 8 pt more


def finish_interval_rows(ax, n_rows: int, *, xlabel: str, favours: tuple[str, str], title: str, wrap: int = 95):
    """The shared finish of a figure of interval rows numbered 1..``n_rows`` from the bottom (the cumulative
    plots): the null line, room for the rows and the column headers above them, no y ticks or left spine, the x
    label with the favours line under it, the title wrapped at ``wrap`` characters."""
    import textwrap

    ax.axvline(0, color=PALETTE["reference"], lw=0.8)
    ax.set_ylim(0.4, n_rows + 1.1)
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)
    ax.set_xlabel(xlabel)
    favours_labels(ax, *favours)
    ax.set_title("\n".join(textwrap.wrap(title, wrap)), fontsize=FONT["title"])
