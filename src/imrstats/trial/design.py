"""The trial's design and the frames its models are built from: arms, visits, default covariates, the
analysable rows of an outcome frame, its long (participant x visit) form and covariate dummy columns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from imrstats.errors import AnalysisError

if TYPE_CHECKING:  # the MMRM engine is imported where a design is built: reading settings stays light
    from imrstats.trial.mmrm import MMRMDesign

from imrstats.trial.study_design import (  # noqa: F401  (the design itself; re-exported)
    ALL_TIMEPOINTS,
    ARMS,
    BASELINE_SLOPES,
    DEFAULT_COVARIATES,
    DEFAULT_DESIGN,
    DEFAULT_VISITS,
    TIMEPOINTS,
    StudyDesign,
    and_join,
    design_problems,
)


def analysable_rows(
    frame: pd.DataFrame, covariates: Sequence[str], design: StudyDesign = DEFAULT_DESIGN
) -> tuple[pd.DataFrame, int]:
    """Rows with a valid arm and complete covariates (the ITT population we can model), and the count dropped."""
    needed = ["id", "arm", *covariates, *design.outcome_columns]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise AnalysisError(f"trial frame lacks column(s) {absent}; build it with outcome_frame()")
    bad_arm = frame["arm"].notna() & ~frame["arm"].isin(design.arms)
    if bad_arm.any():
        raise AnalysisError(
            f"arm holds {sorted(set(frame.loc[bad_arm, 'arm']))}; the trial compares "
            f"{design.intervention} and {design.control}"
        )
    ok = frame["arm"].notna() & frame[list(covariates)].notna().all(axis=1)
    rows = frame.loc[ok].reset_index(drop=True)
    for arm in design.arms:
        if not (rows["arm"] == arm).any():
            raise AnalysisError(f"no {arm} participant with complete covariates: the trial contrast is not estimable")
    return rows, int((~ok).sum())


def long_format(
    rows: pd.DataFrame,
    covariates: Sequence[str],
    baseline: np.ndarray,
    extra: dict[str, np.ndarray] | None = None,
    design: StudyDesign = DEFAULT_DESIGN,
) -> pd.DataFrame:
    """Long frame (participant x post-baseline visit) for the MMRM design; ``extra`` adds numeric
    columns given as (n, K) arrays (e.g. visit-specific interaction columns)."""
    n, T = len(rows), len(design.visits)
    long = pd.DataFrame(
        {
            "id": np.repeat(rows["id"].to_numpy(), T),
            "time": np.tile(design.visits, n),
            "arm": np.repeat(rows["arm"].to_numpy(), T),
            "baseline": np.repeat(baseline, T),
        }
    )
    for c in covariates:
        long[c] = np.repeat(rows[c].to_numpy(), T)
    for name, values in (extra or {}).items():
        long[name] = np.asarray(values, dtype=float).reshape(-1)
    return long


def mmrm_design(
    long: pd.DataFrame, covariates: Sequence[str], design: StudyDesign = DEFAULT_DESIGN, *, times=None
) -> MMRMDesign:
    """The MMRM's fixed-effects design for the study: ``0 + time + arm:time`` (intervention vs control),
    the baseline slope per visit (``separate``: ``baseline:time``) or one shared slope (``common``: a
    ``baseline`` column), and the covariates; visits ``times`` (default: the study's post-baseline visits)."""
    common = design.baseline_slope == "common"
    from imrstats.trial.mmrm import build_mmrm_design

    return build_mmrm_design(
        long,
        baseline=None if common else "baseline",
        covariates=(("baseline",) if common else ()) + tuple(covariates),
        reference_arm=design.control,
        treatment_arm=design.intervention,
        times=design.visits if times is None else times,
        arm_labels={a: design.arm_label(a) for a in design.arms},
        time_labels={v: design.visit_label(v) for v in design.visits},
    )


def covariate_dummies(rows: pd.DataFrame, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Numeric columns as is, categorical ones as treatment dummies against the first sorted level
    (R's default factor coding)."""
    blocks, labels = [], []
    for name in names:
        col = rows[name]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            blocks.append(col.to_numpy(dtype=float))
            labels.append(name)
        else:
            levels = sorted(col.astype(str).unique())
            for lev in levels[1:]:
                blocks.append((col.astype(str) == lev).to_numpy(dtype=float))
                labels.append(f"{name}[{lev}]")
    return (np.column_stack(blocks) if blocks else np.empty((len(rows), 0))), labels
