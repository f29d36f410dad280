"""One result shape for every estimator in imrstats.

Every statistical function returns `Estimate` rows (or a frame built from them) so that the
report, the CLI's ``--json`` output and the tests read the same fields: what was estimated, the
estimate, its standard error, a confidence interval, degrees of freedom, a p-value and the method
that made the number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable

import pandas as pd

ESTIMATE_COLUMNS = [
    "quantity",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "df",
    "statistic",
    "p",
    "method",
    "notes",
]


@dataclass(frozen=True)
class Estimate:
    """A single estimated quantity with its uncertainty and the method that produced it."""

    quantity: str
    estimate: float
    se: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    df: float = math.nan
    statistic: float = math.nan
    p: float = math.nan
    method: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        extra = out.pop("extra")
        out.update(extra)
        return {k: _jsonable(v) for k, v in out.items()}


def _jsonable(value):
    """Floats that JSON cannot hold (nan, inf) become None; numpy scalars become Python ones."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_frame(estimates: Iterable[Estimate]) -> pd.DataFrame:
    """Stack estimates into a tidy frame with the canonical columns first."""
    rows = []
    for est in estimates:
        row = asdict(est)
        row.update(row.pop("extra"))
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=ESTIMATE_COLUMNS)
    extra_cols = [c for c in frame.columns if c not in ESTIMATE_COLUMNS]
    return frame[ESTIMATE_COLUMNS + extra_cols]
