"""The CONSORT-style flow of a trial and its baseline table, computed from the data (aggregates only).

Flow, per arm: randomised (= allocated: every participant row), received the allocated intervention (IMR: at
least one session attended; TAU: by definition), assessed at post and at 12 months (at least one outcome
observed at that visit), analysed by intention to treat (everyone randomised: missing outcomes are multiply
imputed) and complete case for the primary outcome at its visit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ARMS = ("IMR", "TAU")


def consort_counts(participants: pd.DataFrame, assessments: pd.DataFrame, *, primary: str = "gaf_f",
                   primary_timepoint: str = "post") -> pd.DataFrame:
    """One row per stage of the flow, one column per arm, counts of participants."""
    observed = assessments[assessments["score"].notna()]
    seen = {tp: set(observed.loc[observed["timepoint"] == tp, "id"]) for tp in ("post", "fu12")}
    primary_ids = set(observed.loc[(observed["instrument"] == primary)
                                   & (observed["timepoint"] == primary_timepoint), "id"])
    rows = []
    for stage, rule in (
        ("Randomised and allocated", lambda p: np.ones(len(p), bool)),
        ("Received allocated intervention (IMR: >= 1 session)",
         lambda p: (p["arm"] != "IMR") | (p["sessions_attended"].fillna(0) > 0)),
        ("Attended no IMR session", lambda p: (p["arm"] == "IMR") & (p["sessions_attended"].fillna(0) == 0)),
        ("Assessed post-intervention", lambda p: p["id"].isin(seen["post"])),
        ("Assessed at 12-month follow-up", lambda p: p["id"].isin(seen["fu12"])),
        ("Lost at 12-month follow-up", lambda p: ~p["id"].isin(seen["fu12"])),
        ("Analysed, intention to treat (multiple imputation)", lambda p: np.ones(len(p), bool)),
        (f"Analysed, complete case ({primary} at {primary_timepoint})", lambda p: p["id"].isin(primary_ids)),
    ):
        row = {"stage": stage}
        for arm in ARMS:
            part = participants[participants["arm"] == arm]
            row[arm] = int(np.asarray(rule(part)).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def consort_figure(counts: pd.DataFrame):
    """A flow diagram: one column of boxes per arm, the exclusions to the side."""
    import matplotlib.pyplot as plt

    main = counts[~counts["stage"].str.startswith(("Attended no", "Lost at"))].reset_index(drop=True)
    side = {"Received allocated intervention (IMR: >= 1 session)": "Attended no IMR session",
            "Assessed at 12-month follow-up": "Lost at 12-month follow-up"}
    fig, ax = plt.subplots(figsize=(10, 1.05 * len(main) + 0.6))
    ax.set_axis_off()
    ax.set_xlim(0, 10)
    ax.set_ylim(-len(main), 0.8)
    for j, arm in enumerate(ARMS):
        x = 2.6 + j * 5.0
        ax.text(x, 0.45, arm, ha="center", va="center", fontsize=12, fontweight="bold")
        for i, row in main.iterrows():
            y = -i
            ax.text(x, y, f"{row['stage']}\nn = {row[arm]}", ha="center", va="center", fontsize=8.5,
                    bbox=dict(boxstyle="round,pad=0.4", fc="#eef3fb", ec="#4a6fa5"))
            if i:
                ax.annotate("", xy=(x, y + 0.28), xytext=(x, y + 0.72), arrowprops=dict(arrowstyle="->", color="#555"))
            if row["stage"] in side:
                excluded = counts.loc[counts["stage"] == side[row["stage"]], arm].item()
                ax.text(x + 2.15, y + 0.5, f"{side[row['stage']]}\nn = {excluded}", ha="center", va="center",
                        fontsize=7.5, bbox=dict(boxstyle="round,pad=0.3", fc="#fbf3ee", ec="#a56f4a"))
    fig.tight_layout()
    return fig


def baseline_table(participants: pd.DataFrame, assessments: pd.DataFrame, outcomes: tuple[str, ...],
                   short_names: dict[str, str]) -> pd.DataFrame:
    """Baseline characteristics by arm, as seed 003's Table 2: n (%) for categories, mean (SD) for numbers."""
    rows = []
    n = {arm: int((participants["arm"] == arm).sum()) for arm in ARMS}
    rows.append({"characteristic": "Participants", **{arm: str(n[arm]) for arm in ARMS}})
    for col in ("site", "sex", "diagnosis"):
        for level in sorted(participants[col].dropna().unique()):
            row = {"characteristic": f"{col}: {level}"}
            for arm in ARMS:
                k = int(((participants["arm"] == arm) & (participants[col] == level)).sum())
                row[arm] = f"{k} ({100 * k / n[arm]:.1f}%)" if n[arm] else ""
            rows.append(row)
    for col in ("age",):
        row = {"characteristic": "age, mean (SD)"}
        for arm in ARMS:
            v = participants.loc[participants["arm"] == arm, col].astype(float)
            row[arm] = f"{v.mean():.1f} ({v.std():.1f})"
        rows.append(row)
    base = assessments[(assessments["timepoint"] == "baseline") & assessments["score"].notna()]
    base = base.merge(participants[["id", "arm"]], on="id")
    for key in outcomes:
        row = {"characteristic": f"{short_names.get(key, key)} at baseline, mean (SD) [n]"}
        for arm in ARMS:
            v = base.loc[(base["instrument"] == key) & (base["arm"] == arm), "score"]
            row[arm] = f"{v.mean():.1f} ({v.std():.1f}) [{v.size}]" if v.size > 1 else ""
        rows.append(row)
    return pd.DataFrame(rows)
