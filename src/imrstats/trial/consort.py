"""The CONSORT-style flow of a trial and its baseline table, computed from the data (aggregates only).

Flow, per arm: randomised (= allocated: every participant row), received the allocated intervention (IMR: at
least one session attended; TAU: by definition; only when sessions attended are recorded), assessed at each
post-baseline visit (at least one outcome observed at that visit), lost at the last visit, analysed by
intention to treat and complete case for the primary outcome at its visit. The arms and visits are the study
design's (`trial.design.StudyDesign`; default the IMR trial's: IMR vs TAU, post and fu12); the arms' columns
are headed by their printed labels.

"Analysed, intention to treat" is read from the trial stage's fit of the primary outcome (``itt``: the
fitted design's participants per arm, with those excluded for a missing covariate and those with imputed
covariates or outcome values beside it), never assumed from the randomised count; without a trial result
the row says the ITT analysis is not available.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imrstats.trial.design import DEFAULT_DESIGN, StudyDesign

ARMS = DEFAULT_DESIGN.arms
ITT_ANALYSED = "Analysed, intention to treat (multiple imputation)"
ITT_NOT_AVAILABLE = "Intention to treat: not analysed (no trial stage result)"
ITT_EXCLUDED = "Excluded from ITT: missing baseline covariate"
ITT_COVARIATES = "ITT: baseline covariate(s) imputed"


def received_stage(design: StudyDesign = DEFAULT_DESIGN) -> str:
    return f"Received allocated intervention ({design.arm_label(design.intervention)}: >= 1 session)"


def no_session_stage(design: StudyDesign = DEFAULT_DESIGN) -> str:
    return f"Attended no {design.arm_label(design.intervention)} session"


def assessed_stage(visit: str, design: StudyDesign = DEFAULT_DESIGN) -> str:
    text = design.visit_text(visit)
    return f"Assessed {text}" if text == "post-intervention" else f"Assessed at {text}"


def lost_stage(design: StudyDesign = DEFAULT_DESIGN) -> str:
    return f"Lost at {design.visit_text(design.visits[-1])}"


def side_stages(stages, design: StudyDesign = DEFAULT_DESIGN) -> dict[str, str]:
    """Side boxes of the flow figure among ``stages``: stage -> the main stage it hangs from."""
    side = {
        no_session_stage(design): received_stage(design),
        lost_stage(design): assessed_stage(design.visits[-1], design),
        ITT_EXCLUDED: ITT_ANALYSED,
        ITT_COVARIATES: ITT_ANALYSED,
    }
    side.update({s: ITT_ANALYSED for s in stages if s.startswith("ITT: ") and s.endswith("imputed at >= 1 visit")})
    return {s: main for s, main in side.items() if s in set(stages)}


# side boxes of the default design's flow figure
SIDE = {
    no_session_stage(): received_stage(),
    lost_stage(): assessed_stage(DEFAULT_DESIGN.visits[-1]),
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
    primary_timepoint: str | None = None,
    itt: dict | None = None,
    design: StudyDesign = DEFAULT_DESIGN,
) -> pd.DataFrame:
    """One row per stage of the flow, one column per arm (headed by its label), counts of participants.
    ``primary_timepoint``: the primary visit (default the first post-baseline visit). ``itt``: the primary
    outcome's ITT record (`ITTResult.to_dict()`: ``n_analysed_by_arm``, ``n_excluded_by_arm``,
    ``n_covariates_imputed_by_arm``, ``n_outcome_imputed_by_arm``, keyed by arm code); without it the ITT row
    says so. The attendance rows are left out when ``participants`` has no ``sessions_attended``."""
    primary_timepoint = design.visits[0] if primary_timepoint is None else primary_timepoint
    arms, intervention = design.arms, design.intervention
    observed = assessments[assessments["score"].notna()]
    seen = {tp: set(observed.loc[observed["timepoint"] == tp, "id"]) for tp in design.visits}
    primary_ids = set(
        observed.loc[(observed["instrument"] == primary) & (observed["timepoint"] == primary_timepoint), "id"]
    )
    stages = [("Randomised and allocated", lambda p: np.ones(len(p), bool))]
    if "sessions_attended" in participants.columns:
        stages += [
            (received_stage(design), lambda p: (p["arm"] != intervention) | (p["sessions_attended"].fillna(0) > 0)),
            (no_session_stage(design), lambda p: (p["arm"] == intervention) & (p["sessions_attended"].fillna(0) == 0)),
        ]
    stages += [(assessed_stage(v, design), lambda p, v=v: p["id"].isin(seen[v])) for v in design.visits]
    stages.append((lost_stage(design), lambda p: ~p["id"].isin(seen[design.visits[-1]])))
    label = {arm: design.arm_label(arm) for arm in arms}
    rows = []
    for stage, rule in stages:
        row = {"stage": stage}
        for arm in arms:
            part = participants[participants["arm"] == arm]
            row[label[arm]] = int(np.asarray(rule(part)).sum())
        rows.append(row)
    if itt is None:
        rows.append({"stage": ITT_NOT_AVAILABLE, **{label[arm]: 0 for arm in arms}})
    else:
        for stage, key in (
            (ITT_ANALYSED, "n_analysed_by_arm"),
            (ITT_EXCLUDED, "n_excluded_by_arm"),
            (ITT_COVARIATES, "n_covariates_imputed_by_arm"),
            (itt_outcome_stage(primary), "n_outcome_imputed_by_arm"),
        ):
            rows.append({"stage": stage, **{label[arm]: int((itt.get(key) or {}).get(arm, 0)) for arm in arms}})
    cc = f"Analysed, complete case ({primary} at {design.visit_label(primary_timepoint)})"
    rows.append(
        {
            "stage": cc,
            **{
                label[arm]: int(participants.loc[participants["arm"] == arm, "id"].isin(primary_ids).sum())
                for arm in arms
            },
        }
    )
    return pd.DataFrame(rows)


def consort_figure(counts: pd.DataFrame, design: StudyDesign = DEFAULT_DESIGN):
    """A flow diagram of `consort_counts` (made with the same ``design``): one column of boxes per arm, the
    exclusions to the side."""
    import matplotlib.pyplot as plt

    side_of = side_stages(list(counts["stage"]), design)
    arms = [c for c in counts.columns if c != "stage"]
    main = counts[~counts["stage"].isin(side_of)].reset_index(drop=True)
    side: dict[str, list[str]] = {}
    for stage in counts["stage"]:
        if stage in side_of:
            side.setdefault(side_of[stage], []).append(stage)
    fig, ax = plt.subplots(figsize=(10, 1.05 * len(main) + 0.6))
    ax.set_axis_off()
    ax.set_xlim(0, 10)
    ax.set_ylim(-len(main), 0.8)
    for j, arm in enumerate(arms):
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
    participants: pd.DataFrame,
    assessments: pd.DataFrame,
    outcomes: tuple[str, ...],
    short_names: dict[str, str],
    design: StudyDesign = DEFAULT_DESIGN,
    categorical: tuple[str, ...] = ("site", "sex", "diagnosis"),
    numeric: tuple[str, ...] = ("age",),
) -> pd.DataFrame:
    """Baseline characteristics by arm (columns headed by the arms' labels), as Jensen et al. 2019, Table 2:
    n (%) for the ``categorical`` columns, mean (SD) for the ``numeric`` ones (those present), and each outcome's
    mean (SD) [n] at the baseline visit of ``design``."""
    rows = []
    arms = design.arms
    label = {arm: design.arm_label(arm) for arm in arms}
    n = {arm: int((participants["arm"] == arm).sum()) for arm in arms}
    rows.append({"characteristic": "Participants", **{label[arm]: str(n[arm]) for arm in arms}})
    for col in (c for c in categorical if c in participants.columns):
        for level in sorted(participants[col].dropna().unique()):
            row = {"characteristic": f"{col}: {level}"}
            for arm in arms:
                k = int(((participants["arm"] == arm) & (participants[col] == level)).sum())
                row[label[arm]] = f"{k} ({100 * k / n[arm]:.1f}%)" if n[arm] else ""
            rows.append(row)
    for col in (c for c in numeric if c in participants.columns):
        row = {"characteristic": f"{col}, mean (SD)"}
        for arm in arms:
            v = participants.loc[participants["arm"] == arm, col].astype(float)
            row[label[arm]] = f"{v.mean():.1f} ({v.std():.1f})"
        rows.append(row)
    base = assessments[(assessments["timepoint"] == design.baseline) & assessments["score"].notna()]
    base = base.merge(participants[["id", "arm"]], on="id")
    for key in outcomes:
        row = {"characteristic": f"{short_names.get(key, key)} at {design.visit_text(design.baseline)}, mean (SD) [n]"}
        for arm in arms:
            v = base.loc[(base["instrument"] == key) & (base["arm"] == arm), "score"]
            row[label[arm]] = f"{v.mean():.1f} ({v.std():.1f}) [{v.size}]" if v.size > 1 else ""
        rows.append(row)
    return pd.DataFrame(rows)
