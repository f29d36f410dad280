"""The CONSORT-style flow of a trial and its baseline table, computed from the data (aggregates only).

Flow, per arm: randomised (= allocated: every participant row), received the allocated intervention (IMR: at
least one session attended; TAU: by definition), assessed at post and at 12 months (at least one outcome
observed at that visit), analysed by intention to treat and complete case for the primary outcome at its visit.

"Analysed, intention to treat" is read from the trial stage's fit of the primary outcome (``itt``: the
fitted design's participants per arm, with those excluded for a missing covariate and those with imputed
covariates or outcome values beside it), never assumed from the randomised count; without a trial result
the row says the ITT analysis is not available.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ARMS = ("IMR", "TAU")
ITT_ANALYSED = "Analysed, intention to treat (multiple imputation)"
ITT_NOT_AVAILABLE = "Intention to treat: not analysed (no trial stage result)"
ITT_EXCLUDED = "Excluded from ITT: missing baseline covariate"
ITT_COVARIATES = "ITT: baseline covariate(s) imputed"
# side boxes of the flow figure: stage -> the main stage it hangs from
SIDE = {
    "Attended no IMR session": "Received allocated intervention (IMR: >= 1 session)",
    "Lost at 12-month follow-up": "Assessed at 12-month follow-up",
    ITT_EXCLUDED: ITT_ANALYSED,
    ITT_COVARIATES: ITT_ANALYSED,
}


def itt_outcome_stage(primary: str) -> str:
    return f"ITT: {primary} imputed at >= 1 visit"


def consort_counts(
    participants: pd.DataFrame,
    assessments: pd.DataFrame,
    *,
    primary: str = "gaf_f",
    primary_timepoint: str = "post",
    itt: dict | None = None,
) -> pd.DataFrame:
    """One row per stage of the flow, one column per arm, counts of participants. ``itt``: the primary outcome's
    ITT record (`ITTResult.to_dict()`: ``n_analysed_by_arm``, ``n_excluded_by_arm``,
    ``n_covariates_imputed_by_arm``, ``n_outcome_imputed_by_arm``); without it the ITT row says so."""
    observed = assessments[assessments["score"].notna()]
    seen = {tp: set(observed.loc[observed["timepoint"] == tp, "id"]) for tp in ("post", "fu12")}
    primary_ids = set(
        observed.loc[(observed["instrument"] == primary) & (observed["timepoint"] == primary_timepoint), "id"]
    )
    rows = []
    for stage, rule in (
        ("Randomised and allocated", lambda p: np.ones(len(p), bool)),
        (
            "Received allocated intervention (IMR: >= 1 session)",
            lambda p: (p["arm"] != "IMR") | (p["sessions_attended"].fillna(0) > 0),
        ),
        ("Attended no IMR session", lambda p: (p["arm"] == "IMR") & (p["sessions_attended"].fillna(0) == 0)),
        ("Assessed post-intervention", lambda p: p["id"].isin(seen["post"])),
        ("Assessed at 12-month follow-up", lambda p: p["id"].isin(seen["fu12"])),
        ("Lost at 12-month follow-up", lambda p: ~p["id"].isin(seen["fu12"])),
    ):
        row = {"stage": stage}
        for arm in ARMS:
            part = participants[participants["arm"] == arm]
            row[arm] = int(np.asarray(rule(part)).sum())
        rows.append(row)
    if itt is None:
        rows.append({"stage": ITT_NOT_AVAILABLE, **{arm: 0 for arm in ARMS}})
    else:
        for stage, key in (
            (ITT_ANALYSED, "n_analysed_by_arm"),
            (ITT_EXCLUDED, "n_excluded_by_arm"),
            (ITT_COVARIATES, "n_covariates_imputed_by_arm"),
            (itt_outcome_stage(primary), "n_outcome_imputed_by_arm"),
        ):
            rows.append({"stage": stage, **{arm: int((itt.get(key) or {}).get(arm, 0)) for arm in ARMS}})
    cc = f"Analysed, complete case ({primary} at {primary_timepoint})"
    rows.append(
        {
            "stage": cc,
            **{arm: int(participants.loc[participants["arm"] == arm, "id"].isin(primary_ids).sum()) for arm in ARMS},
        }
    )
    return pd.DataFrame(rows)


def consort_figure(counts: pd.DataFrame):
    """A flow diagram: one column of boxes per arm, the exclusions to the side."""
    import matplotlib.pyplot as plt

    side_of = dict(SIDE)
    side_of.update(
        {s: ITT_ANALYSED for s in counts["stage"] if s.startswith("ITT: ") and s.endswith("imputed at >= 1 visit")}
    )
    main = counts[~counts["stage"].isin(side_of)].reset_index(drop=True)
    side: dict[str, list[str]] = {}
    for stage in counts["stage"]:
        if stage in side_of:
            side.setdefault(side_of[stage], []).append(stage)
    fig, ax = plt.subplots(figsize=(10, 1.05 * len(main) + 0.6))
    ax.set_axis_off()
    ax.set_xlim(0, 10)
    ax.set_ylim(-len(main), 0.8)
    for j, arm in enumerate(ARMS):
        x = 2.6 + j * 5.0
        ax.text(x, 0.45, arm, ha="center", va="center", fontsize=12, fontweight="bold")
        for i, row in main.iterrows():
            y = -i
            ax.text(
                x,
                y,
                f"{row['stage']}\nn = {row[arm]}",
                ha="center",
                va="center",
                fontsize=8.5,
                bbox=dict(boxstyle="round,pad=0.4", fc="#eef3fb", ec="#4a6fa5"),
            )
            if i:
                ax.annotate("", xy=(x, y + 0.28), xytext=(x, y + 0.72), arrowprops=dict(arrowstyle="->", color="#555"))
            if row["stage"] in side:
                text = "\n".join(
                    f"{stage}: n = {counts.loc[counts['stage'] == stage, arm].item()}" for stage in side[row["stage"]]
                )
                ax.text(
                    x + 2.15,
                    y + 0.5,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7.5,
                    bbox=dict(boxstyle="round,pad=0.3", fc="#fbf3ee", ec="#a56f4a"),
                )
    fig.tight_layout()
    return fig


def baseline_table(
    participants: pd.DataFrame, assessments: pd.DataFrame, outcomes: tuple[str, ...], short_names: dict[str, str]
) -> pd.DataFrame:
    """Baseline characteristics by arm, as Jensen et al. 2019, Table 2: n (%) for categories, mean (SD) for numbers."""
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
