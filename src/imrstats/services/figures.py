"""The service-use stage's figure: a 2 x 2 panel of hanging rootograms per count outcome, made with the
report's one figure factory."""

from __future__ import annotations

import textwrap

from imrstats.report.figures import FONT, new_figure
from imrstats.services import models as services


def rootogram_figure(analysis):
    """2 x 2 hanging rootograms of one outcome's `OutcomeAnalysis`, one per model; a model that was not
    fitted shows why."""
    from imrstats.services.stage import MODEL_LABELS, MODELS, OUTCOME_LABELS  # the stage imports this module

    fig, axes = new_figure(10, 7, nrows=2, ncols=2, layout="constrained")
    handles: list = []
    for ax, name in zip(axes.flat, MODELS):
        status = {"reported": " (reported)", "flagged": " (flagged)"}.get(
            analysis.models.set_index("model").loc[name, "status"], ""
        )
        if name in analysis.rootograms:
            data = analysis.rootograms[name]
            services.plot_rootogram(data, title=MODEL_LABELS[name] + status, ax=ax)
            if ax.get_legend() is not None:  # one legend for the four panels, under them (not over the bars)
                handles = handles or ax.get_legend_handles_labels()[0]
                ax.get_legend().remove()
            above = data.attrs.get("observed_above_max", 0)
            if above:
                ax.annotate(
                    f"{above} count(s) above the axis",
                    (0.98, 0.02),
                    xycoords="axes fraction",
                    ha="right",
                    fontsize=FONT["text"],
                )
        else:
            ax.set_axis_off()
            ax.set_title(MODEL_LABELS[name] + " (not fitted)")
            reason = textwrap.shorten(analysis.errors.get(name, ""), 240, placeholder=" ...")
            ax.text(
                0.5,
                0.5,
                textwrap.fill(reason, 50),
                ha="center",
                va="center",
                fontsize=FONT["text"],
                transform=ax.transAxes,
            )
    if handles:
        fig.legend(
            handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=FONT["legend"]
        )
    fig.suptitle(
        f"{OUTCOME_LABELS.get(analysis.outcome, analysis.outcome)}: hanging rootograms "
        "(bars = observed frequency hanging from the expected curve; square-root scale)",
        fontsize=FONT["title"],
    )
    return fig
