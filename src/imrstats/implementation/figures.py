"""The implementation stage's figures: Fig. 1 (modules per participant; module x service heat map) and the
Bland-Altman plot, drawn by `imrstats.implementation.descriptives` with the report's figure factory. The
row-level figures (one mark per participant) are left out when small cells are suppressed.
"""

from __future__ import annotations

from imrstats.errors import AnalysisError
from imrstats.implementation.descriptives import (
    ImplementationResult,
    plot_bland_altman,
    plot_module_heatmap,
    plot_modules_per_participant,
)

ROW_LEVEL_FIGURES = ("modules_per_participant", "bland_altman")


def implementation_stage_figures(result: ImplementationResult) -> tuple[dict, dict[str, str], list[str]]:
    """(figures, omitted figure -> reason, flags). Row-level figures are left out when cells are suppressed."""
    figures, omitted, flags = {}, {}, []
    agreement = result.tables["imrs_agreement"]
    bias = agreement[agreement["quantity"] == "bias (x - y)"]
    makers = {
        "modules_per_participant": lambda: plot_modules_per_participant(result.plot_data["modules"]),
        "module_heatmap": lambda: plot_module_heatmap(result.tables["module_share"]),
        "bland_altman": lambda: plot_bland_altman(result.plot_data["imrs_pairs"], agreement),
    }
    for name, make in makers.items():
        if name in ROW_LEVEL_FIGURES and result.suppress_small_cells:
            omitted[name] = (
                "left out because small-cell suppression is on: it draws one mark per participant, "
                "and in a small service a single mark can identify a person"
            )
        elif name == "bland_altman" and bias.empty:
            omitted[name] = "not drawn: the Bland-Altman analysis could not be run (see the warnings above)"
        else:
            try:
                figures[name] = make()
            except (AnalysisError, ValueError, KeyError) as error:
                omitted[name] = f"could not be drawn: {error}"
                flags.append(f"Figure {name} could not be drawn: {error}")
    return figures, omitted, flags
