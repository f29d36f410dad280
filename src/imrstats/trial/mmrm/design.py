"""The MMRM's fixed-effects design on a participant x visit grid, and the emmeans reference grid.

Fixed effects (default): ``0 + time + arm:time + baseline:time + covariates``, i.e. a mean per visit,
a treatment - reference difference per visit, a baseline slope per visit (or, with the baseline among the
covariates, one common slope), and covariates shared across visits
(categorical ones treatment-coded against their first sorted level, numeric ones as is). The design is
built once (`build_mmrm_design`) and refitted on new outcomes (`MMRMDesign.fit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from imrstats.errors import AnalysisError

if TYPE_CHECKING:
    from imrstats.trial.mmrm.result import MMRMResult

DEFAULT_COVARIATES = ("site", "sex", "age", "diagnosis")


@dataclass(frozen=True)
class MMRMDesign:
    """The fixed-effects design on a participant x visit grid, built once and refitted on new outcomes.

    ``X`` has shape (participants, visits, p); ``present`` marks grid cells that have a data row with
    complete covariates; ``row_cell`` maps each row of the data the design was built from to its grid
    cell (-1 for rows not used: other visits or missing covariates). ``grid_terms`` describes each
    column so that adjusted means can be formed (see `reference_grid`).
    """

    X: np.ndarray
    present: np.ndarray
    row_cell: np.ndarray
    ids: tuple
    times: tuple
    columns: tuple
    grid_terms: tuple
    numeric_values: dict
    reference_arm: str
    treatment_arm: str
    arm_of: np.ndarray
    n_dropped_covariates: int
    # printed labels of arm and visit codes (the contrast and adjusted-mean texts); a code without one is printed
    arm_labels: dict = field(default_factory=dict)
    time_labels: dict = field(default_factory=dict)

    def arm_label(self, arm) -> str:
        return str(self.arm_labels.get(arm, arm))

    def time_label(self, time) -> str:
        return str(self.time_labels.get(time, time))

    def outcome_grid(self, y) -> np.ndarray:
        """Place an outcome vector aligned with the design's data rows onto the participant x visit grid."""
        y = np.asarray(y, dtype=float)
        if y.shape != self.row_cell.shape:
            raise AnalysisError(
                f"outcome has {y.size} values but the design was built from {self.row_cell.size} rows; "
                "pass one value per row of the data frame the design was built from, in the same order"
            )
        grid = np.full(self.present.shape, np.nan)
        used = self.row_cell >= 0
        grid.flat[self.row_cell[used]] = y[used]
        return grid

    def fit(
        self, y, *, start: np.ndarray | None = None, df_method: str = "satterthwaite", level: float = 0.95
    ) -> "MMRMResult":
        """Fit the MMRM to outcome ``y`` (one value per data row; NaN = missing), optionally warm-started
        from a covariance matrix ``start`` (e.g. the previous imputation's estimate)."""
        from imrstats.trial.mmrm.fit import fit_mmrm_grid  # fit.py builds on this module

        return fit_mmrm_grid(self, self.outcome_grid(y), start=start, df_method=df_method, level=level)


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _visit_order(data: pd.DataFrame, time: str, times) -> tuple:
    if times is not None:
        return tuple(times)
    column = data[time]
    if isinstance(column.dtype, pd.CategoricalDtype):
        return tuple(column.cat.categories)
    return tuple(sorted(column.dropna().unique(), key=str))


def _design_columns(rows, ti, times, time, arm, treatment_arm, is_treated, baseline, covariates):
    """Columns of 0 + time + arm:time + baseline:time + covariates for the analysed rows, their names,
    a description of each (for the reference grid) and the raw numeric covariates."""
    blocks, names, terms = [], [], []
    onehot_time = np.zeros((len(rows), len(times)))
    onehot_time[np.arange(len(rows)), ti] = 1.0
    for k, t in enumerate(times):
        blocks.append(onehot_time[:, k])
        names.append(f"{time}[{t}]")
        terms.append(("visit", k))
    for k, t in enumerate(times):
        blocks.append(onehot_time[:, k] * is_treated)
        names.append(f"{arm}[{treatment_arm}]:{time}[{t}]")
        terms.append(("arm", k))
    numeric_values = {}
    if baseline:
        b = rows[baseline].to_numpy(dtype=float)
        numeric_values[baseline] = b
        for k, t in enumerate(times):
            blocks.append(onehot_time[:, k] * b)
            names.append(f"{baseline}:{time}[{t}]")
            terms.append(("numeric_by_visit", baseline, k))
    for name in covariates:
        col = rows[name]
        if _is_categorical(col):
            levels = sorted(col.astype(str).unique())
            for level in levels[1:]:
                blocks.append((col.astype(str) == level).to_numpy(dtype=float))
                names.append(f"{name}[{level}]")
                terms.append(("factor", name, len(levels)))
        else:
            values = col.to_numpy(dtype=float)
            numeric_values[name] = values
            blocks.append(values)
            names.append(name)
            terms.append(("numeric", name))
    x_rows = np.column_stack(blocks)
    return x_rows, names, terms, numeric_values


def build_mmrm_design(
    data: pd.DataFrame,
    *,
    id: str = "id",
    time: str = "time",
    arm: str = "arm",
    baseline: str | None = "baseline",
    covariates=DEFAULT_COVARIATES,
    reference_arm: str = "TAU",
    treatment_arm: str = "IMR",
    times=None,
    arm_labels: dict | None = None,
    time_labels: dict | None = None,
) -> MMRMDesign:
    """Build the MMRM design from long data (one row per participant x post-baseline visit).

    Visits are ``times`` in the given order (default: the categories of a categorical ``time`` column,
    else the sorted distinct values); rows at other visits are ignored. Rows with a missing arm,
    baseline or covariate are dropped (counted in ``n_dropped_covariates``, reported in the notes).
    ``arm_labels`` / ``time_labels``: printed labels of the arm and visit codes in the contrast and
    adjusted-mean texts (default: the codes). ``baseline=None`` with ``"baseline"`` among the covariates
    gives one common baseline slope instead of one per visit.
    """
    covariates = tuple(covariates)
    needed = [id, time, arm] + ([baseline] if baseline else []) + list(covariates)
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise AnalysisError(f"MMRM data lack column(s) {missing}; columns present: {list(data.columns)}")
    times = _visit_order(data, time, times)
    if len(times) == 0:
        raise AnalysisError(f"MMRM needs at least one post-baseline visit; none found in column {time!r}")
    in_visits = data[time].isin(times).to_numpy()
    complete = data[needed].notna().all(axis=1).to_numpy()
    arms = data[arm].astype(object)
    bad_arm = in_visits & complete & ~arms.isin([reference_arm, treatment_arm]).to_numpy()
    if bad_arm.any():
        raise AnalysisError(
            f"column {arm!r} holds {sorted(set(arms[bad_arm].astype(str)))}; the MMRM compares exactly "
            f"two arms, {treatment_arm!r} and {reference_arm!r}: filter the data or set the arm names"
        )
    use = in_visits & complete
    rows = data.loc[use]
    if rows.duplicated([id, time]).any():
        dup = rows.loc[rows.duplicated([id, time], keep=False), [id, time]].head(3).to_dict("records")
        raise AnalysisError(f"more than one row per participant and visit, e.g. {dup}: aggregate first")
    ids = tuple(sorted(rows[id].unique(), key=str))
    id_index = {v: k for k, v in enumerate(ids)}
    t_index = {v: k for k, v in enumerate(times)}
    pi = rows[id].map(id_index).to_numpy(dtype=np.intp)
    ti = rows[time].map(t_index).to_numpy(dtype=np.intp)
    n, n_times = len(ids), len(times)

    is_treated = (rows[arm].astype(object) == treatment_arm).to_numpy(dtype=float)
    x_rows, names, terms, numeric_values = _design_columns(
        rows, ti, times, time, arm, treatment_arm, is_treated, baseline, covariates
    )

    X = np.zeros((n, n_times, x_rows.shape[1]))
    X[pi, ti] = x_rows
    present = np.zeros((n, n_times), dtype=bool)
    present[pi, ti] = True
    row_cell = np.full(len(data), -1, dtype=np.intp)
    row_cell[np.flatnonzero(use)] = pi * n_times + ti
    numeric_grid = {}
    for key, values in numeric_values.items():
        g = np.full((n, n_times), np.nan)
        g[pi, ti] = values
        numeric_grid[key] = g
    arm_of = np.zeros(n, dtype=bool)
    arm_of[pi] = is_treated.astype(bool)
    return MMRMDesign(
        X=X,
        present=present,
        row_cell=row_cell,
        ids=ids,
        times=times,
        columns=tuple(names),
        grid_terms=tuple(terms),
        numeric_values=numeric_grid,
        reference_arm=reference_arm,
        treatment_arm=treatment_arm,
        arm_of=arm_of,
        n_dropped_covariates=int((in_visits & ~complete).sum()),
        arm_labels=dict(arm_labels or {}),
        time_labels=dict(time_labels or {}),
    )


def reference_grid(design: MMRMDesign, observed: np.ndarray) -> tuple[np.ndarray, list]:
    """Rows L of the adjusted means (arm x visit), as emmeans' default reference grid defines them:
    numeric covariates (baseline, age) at their mean over the analysed rows, categorical covariates
    weighted equally over their levels (emmeans ``weights = "equal"``)."""
    means = {name: values[observed].mean() for name, values in design.numeric_values.items()}
    rows, labels = [], []
    for k, t in enumerate(design.times):
        for arm_name, treated in ((design.reference_arm, 0.0), (design.treatment_arm, 1.0)):
            L = np.zeros(len(design.columns))
            for j, term in enumerate(design.grid_terms):
                kind = term[0]
                if kind == "visit":
                    L[j] = float(term[1] == k)
                elif kind == "arm":  # ("arm", k): IMR at visit k; ("arm", None): an arm main effect
                    L[j] = treated * float(term[1] is None or term[1] == k)
                elif kind == "numeric_by_visit":
                    L[j] = float(term[2] == k) * means[term[1]]
                elif kind == "numeric":
                    L[j] = means[term[1]]
                elif kind == "factor":
                    L[j] = 1.0 / term[2]
            rows.append(L)
            labels.append((arm_name, t))
    return np.array(rows), labels
