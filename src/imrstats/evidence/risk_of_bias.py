"""Risk of bias of the published studies: plain functions on the long table that
``imrstats.data.published.load_risk_of_bias`` returns (one row per study x domain, ``overall`` included).

No statistics and no presentation here: the overall judgement per study, the study x domain matrix in display
order, and the studies at low overall risk. The traffic-light figure lives in ``imrstats.evidence.rob_figures``.
"""

from __future__ import annotations

import pandas as pd

from imrstats.data.published import ROB_TOOLS

# Display order of tools (randomised first) and of the domains of both tools in one matrix: before the
# intervention (randomisation / confounding, selection), at it (classification), after it (deviations,
# missing data, measurement, reporting), then overall.
TOOL_ORDER = ("RoB 2", "ROBINS-I")


def _merged_domain_order() -> tuple[str, ...]:
    """The domains of every tool in TOOL_ORDER, in one sequence that keeps each tool's own order: a later tool's
    domains that an earlier tool lacks go just before the next domain the two share."""
    merged = list(ROB_TOOLS[TOOL_ORDER[0]]["domains"])
    for tool in TOOL_ORDER[1:]:
        pending: list[str] = []
        for domain in ROB_TOOLS[tool]["domains"]:
            if domain in merged:
                at = merged.index(domain)
                merged[at:at] = pending
                pending = []
            else:
                pending.append(domain)
        merged.extend(pending)
    return tuple(merged)


DOMAIN_ORDER = _merged_domain_order()
# Human labels of the domains, per tool (the "D1 = ..." key of the traffic-light figure).
DOMAIN_LABELS = {
    "RoB 2": {
        "randomisation": "Bias arising from the randomisation process",
        "deviations": "Bias due to deviations from intended interventions",
        "missing_data": "Bias due to missing outcome data",
        "measurement": "Bias in measurement of the outcome",
        "reporting": "Bias in selection of the reported result",
        "overall": "Overall risk of bias",
    },
    "ROBINS-I": {
        "confounding": "Bias due to confounding",
        "selection": "Bias in selection of participants into the study",
        "classification": "Bias in classification of interventions",
        "deviations": "Bias due to deviations from intended interventions",
        "missing_data": "Bias due to missing data",
        "measurement": "Bias in measurement of outcomes",
        "reporting": "Bias in selection of the reported result",
        "overall": "Overall risk of bias",
    },
}


def tool_domains(tool: str, *, overall: bool = True) -> list[str]:
    """The domains of a tool in its own order (D1, D2, ...), ``overall`` last unless ``overall=False``."""
    domains = list(ROB_TOOLS[tool]["domains"])
    return domains if overall else [d for d in domains if d != "overall"]


def _ordered(rob: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by tool (display order), then by first appearance of the study in the file."""
    first_seen = {study: i for i, study in enumerate(dict.fromkeys(rob["study"]))}
    tool_rank = {tool: i for i, tool in enumerate(TOOL_ORDER)}
    key = rob["tool"].map(tool_rank).fillna(len(TOOL_ORDER)) * 10_000 + rob["study"].map(first_seen)
    return rob.assign(_key=key).sort_values("_key", kind="stable").drop(columns="_key")


def overall_by_study(rob: pd.DataFrame) -> pd.DataFrame:
    """One row per study: ``study``, ``tool`` and its ``overall`` ``judgement`` (RoB 2 studies first)."""
    overall = _ordered(rob.loc[rob["domain"] == "overall"])
    return overall[["study", "tool", "judgement"]].reset_index(drop=True)


def rob_matrix(rob: pd.DataFrame, tool: str | None = None) -> pd.DataFrame:
    """Wide table: one row per study (RoB 2 block, then ROBINS-I), a ``study`` and ``tool`` column, then one text
    column per domain. With ``tool`` given, only that tool's studies and its domains in its own order; otherwise
    the domains of the tools present in ``DOMAIN_ORDER``, a cell left empty ("") where the domain is not part of
    the study's tool."""
    rows = _ordered(rob if tool is None else rob.loc[rob["tool"] == tool])
    if tool is not None:
        columns = tool_domains(tool)
    else:
        present = set().union(*(ROB_TOOLS[t]["domains"] for t in rows["tool"].unique())) if len(rows) else set()
        columns = [d for d in DOMAIN_ORDER if d in present]
    wide = rows.pivot(index="study", columns="domain", values="judgement")
    studies = list(dict.fromkeys(rows["study"]))
    wide = wide.reindex(index=studies, columns=columns).fillna("")
    tools = rows.drop_duplicates("study").set_index("study")["tool"].reindex(studies)
    out = wide.reset_index()
    out.insert(1, "tool", tools.to_numpy())
    out.columns.name = None
    return out


def low_risk_studies(rob: pd.DataFrame) -> list[str]:
    """Studies whose overall judgement is "low" (RoB 2 "low"; ROBINS-I "low" too, never "moderate")."""
    overall = overall_by_study(rob)
    return overall.loc[overall["judgement"] == "low", "study"].tolist()
