"""The report's one figure factory: every stage makes its figures with `new_figure`, so all of them share one
look (open axes: no top or right frame line) and none touches pyplot's global state.

Stage-specific plots (forest plots, rootograms, diagnostics panels) stay with their stage's presentation
module; they start from `new_figure`.
"""

from __future__ import annotations

import io

import numpy as np

DPI = 110  # the PNG resolution the pipeline writes (write_stage)


def style_axes(ax) -> None:
    """The shared look of one axes: no top or right frame line."""
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


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
    """A figure as PNG bytes with deterministic metadata (no software version or date in the file)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()
