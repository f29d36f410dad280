"""The risk-of-bias traffic-light figure (Cochrane robvis style) of the published studies.

Rows are studies, columns the tool's domains D1, D2, ... and Overall; each cell is a coloured circle with a
symbol, so the judgement does not rest on colour alone. RoB 2 and ROBINS-I studies get one panel each (their
domains differ). The legend and the domain key sit below the panels, outside the plotting area. Made with the
report's figure factory (``imrstats.report.figures.new_figure``); the caller turns it into PNG bytes.
"""

from __future__ import annotations

import textwrap

import pandas as pd
from matplotlib.lines import Line2D

from imrstats.data.published import ROB_TOOLS
from imrstats.errors import InputError
from imrstats.evidence.risk_of_bias import TOOL_ORDER, rob_matrix, tool_domains
from imrstats.report.figures import new_figure

# Judgement -> display class; one colour and symbol per class (robvis colours; grey for no information).
JUDGEMENT_CLASS = {
    "low": "low",
    "some concerns": "concerns",
    "moderate": "concerns",
    "high": "high",
    "serious": "high",
    "critical": "critical",
    "no information": "no_information",
}
CLASS_STYLE = {
    "low": {"color": "#02C100", "symbol": "+", "text": "black"},
    "concerns": {"color": "#E2DF07", "symbol": "\u2212", "text": "black"},
    "high": {"color": "#BF0000", "symbol": "\u00d7", "text": "white"},
    "critical": {"color": "#820000", "symbol": "!", "text": "white"},
    "no_information": {"color": "#AAAAAA", "symbol": "?", "text": "black"},
}
# Short domain names for the key under the figure ("D1 = randomisation process").
DOMAIN_KEY = {
    "RoB 2": {
        "randomisation": "randomisation process",
        "deviations": "deviations from intended interventions",
        "missing_data": "missing outcome data",
        "measurement": "measurement of the outcome",
        "reporting": "selection of the reported result",
    },
    "ROBINS-I": {
        "confounding": "confounding",
        "selection": "selection of participants",
        "classification": "classification of interventions",
        "deviations": "deviations from intended interventions",
        "missing_data": "missing data",
        "measurement": "measurement of outcomes",
        "reporting": "selection of the reported result",
    },
}
PANEL_TITLE = {"RoB 2": "Randomised trials (RoB 2)", "ROBINS-I": "Non-randomised studies (ROBINS-I)"}

WIDTH = 7.0  # inches
ROW = 0.36  # inches per study row
HEAD = 0.75  # inches per panel for its title and column headers
GAP = 0.1  # inches between panels
LEFT = 1.9 / WIDTH  # room for study names
RIGHT = 1 - 0.2 / WIDTH
MARKER = 17  # circle size, points


def _tools(rob: pd.DataFrame) -> list[str]:
    present = set(rob["tool"])
    return [t for t in TOOL_ORDER if t in present]


def _legend_entries(tools: list[str]) -> list[tuple[str, str]]:
    """(class, label) for every judgement class the tools present use, in severity order."""
    names: dict[str, list[str]] = {}
    for tool in tools:
        for judgement in ROB_TOOLS[tool]["judgements"]:
            names.setdefault(JUDGEMENT_CLASS[judgement], [])
            if judgement not in names[JUDGEMENT_CLASS[judgement]]:
                names[JUDGEMENT_CLASS[judgement]].append(judgement)
    entries = []
    for cls in CLASS_STYLE:
        if cls in names:
            label = " / ".join(names[cls])
            entries.append((cls, f"{label[0].upper()}{label[1:]} ({CLASS_STYLE[cls]['symbol']})"))
    return entries


def _domain_key(tool: str) -> str:
    parts = [f"D{i} = {name}" for i, name in enumerate(DOMAIN_KEY[tool].values(), start=1)]
    return f"{tool}: " + "; ".join(parts) + "."


def traffic_light(rob: pd.DataFrame):
    """The traffic-light plot of a risk-of-bias table (``load_risk_of_bias`` format) as a matplotlib Figure.

    One circle per study x domain (``overall`` included), each a ``Line2D`` whose ``gid`` is
    ``"rob:<study>:<domain>"``; legend and domain key below the panels. Deterministic: the order is the table's
    (RoB 2 studies first), nothing random.
    """
    if rob.empty:
        raise InputError("risk of bias: no rows to plot")
    tools = _tools(rob)
    matrices = {tool: rob_matrix(rob, tool) for tool in tools}
    key_lines = [line for tool in tools for line in textwrap.wrap(_domain_key(tool), 115)]
    bottom_in = 0.35 + 0.45 + 0.17 * len(key_lines)  # legend row + key lines
    panels_in = [HEAD + ROW * len(matrices[tool]) for tool in tools]
    height = 0.1 + sum(panels_in) + GAP * (len(tools) - 1) + bottom_in
    axes_in = [ROW * len(matrices[tool]) for tool in tools]
    fig, axes = new_figure(
        WIDTH,
        height,
        nrows=len(tools),
        squeeze=False,
        gridspec_kw={
            "height_ratios": axes_in,
            "left": LEFT,
            "right": RIGHT,
            "top": 1 - (0.1 + HEAD) / height,
            "bottom": bottom_in / height,
            "hspace": (GAP + HEAD) / (sum(axes_in) / len(axes_in)),
        },
    )
    for ax, tool in zip(axes[:, 0], tools, strict=True):
        _panel(ax, matrices[tool], tool)

    entries = _legend_entries(tools)
    handles = [
        Line2D(
            [],
            [],
            linestyle="",
            marker="o",
            markersize=10,
            markerfacecolor=CLASS_STYLE[cls]["color"],
            markeredgecolor="#555555",
        )
        for cls, _ in entries
    ]
    fig.legend(
        handles,
        [label for _, label in entries],
        loc="upper center",
        bbox_to_anchor=(0.5, (bottom_in - 0.05) / height),
        ncol=len(entries),
        frameon=False,
        fontsize=8,
        handletextpad=0.3,
        columnspacing=1.2,
    )
    fig.text(
        0.02,
        (bottom_in - 0.5) / height,
        "\n".join(key_lines),
        ha="left",
        va="top",
        fontsize=8,
        linespacing=1.5,
        color="#333333",
    )
    return fig


def _panel(ax, matrix: pd.DataFrame, tool: str) -> None:
    domains = tool_domains(tool)
    n_rows, n_cols = len(matrix), len(domains)
    for r, row in enumerate(matrix.itertuples(index=False)):
        record = dict(zip(matrix.columns, row, strict=True))
        for c, domain in enumerate(domains):
            judgement = record[domain]
            style = CLASS_STYLE[JUDGEMENT_CLASS[judgement]]
            ax.plot(
                [c],
                [r],
                linestyle="",
                marker="o",
                markersize=MARKER,
                markerfacecolor=style["color"],
                markeredgecolor="#555555",
                markeredgewidth=0.6,
                gid=f"rob:{record['study']}:{domain}",
            )
            ax.text(
                c,
                r,
                style["symbol"],
                ha="center",
                va="center_baseline",
                fontsize=10,
                fontweight="bold",
                color=style["text"],
            )
    ax.set_xlim(-0.5, n_cols - 0.5)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.axvline(n_cols - 1.5, color="#BBBBBB", linewidth=0.8)
    ax.xaxis.tick_top()
    ax.set_xticks(range(n_cols), [f"D{i}" for i in range(1, n_cols)] + ["Overall"], fontsize=8.5)
    ax.set_yticks(range(n_rows), matrix["study"].tolist(), fontsize=8.5)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(PANEL_TITLE[tool], loc="left", fontsize=9.5, pad=22)


def traffic_light_alt_text(rob: pd.DataFrame) -> str:
    """Alt text for the traffic-light figure: what it shows and each study's overall judgement."""
    parts = []
    for tool in _tools(rob):
        matrix = rob_matrix(rob, tool)
        overall = "; ".join(f"{s}: {j}" for s, j in zip(matrix["study"], matrix["overall"], strict=True))
        parts.append(f"{PANEL_TITLE[tool]}, {len(matrix)} studies, overall {overall}.")
    return "Risk-of-bias traffic-light plot, one circle per study and domain. " + " ".join(parts)
