"""One result shape for every estimator in imrstats.

Every statistical function returns `Estimate` rows (or a frame built from them) so that the
report, the CLI's ``--json`` output and the tests read the same fields: what was estimated, the
estimate, its standard error, a confidence interval, degrees of freedom, a p-value and the method
that made the number.

One serialiser, `to_jsonable`, turns any result (dataclasses, frames, numpy values, NaN) into plain
JSON-ready Python; `to_json` writes it, sorted by key. Fitted result classes take `ResultMixin`, which
gives them `to_dict()` through that serialiser.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Iterable

import numpy as np
import pandas as pd
from scipy import stats

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

# Columns that say which row a number belongs to, in the order tables show them: first, then ESTIMATE_COLUMNS,
# then the extras (`identifiers_first`).
IDENTIFIER_COLUMNS = (
    "table",
    "scenario",
    "estimator",
    "outcome_label",
    "outcome",
    "instrument",
    "variable",
    "study",
    "analysis",
    "subgroup",
    "model",
    "part",
    "term",
    "prior",
    "measure",
    "arm",
    "timepoint",
    "omitted",
    "added",
)


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

    @classmethod
    def from_t(
        cls,
        quantity: str,
        estimate,
        se,
        df,
        level: float = 0.95,
        method: str = "",
        *,
        notes: str = "",
        extra: dict | None = None,
    ) -> "Estimate":
        """A t-based row: CI estimate -/+ t_{df, (1 + level)/2} se, statistic estimate / se, two-sided p."""
        crit = stats.t.ppf(0.5 + level / 2, df)
        t = estimate / se
        return cls(
            quantity=quantity,
            estimate=float(estimate),
            se=float(se),
            ci_low=float(estimate - crit * se),
            ci_high=float(estimate + crit * se),
            df=float(df),
            statistic=float(t),
            p=float(2 * stats.t.sf(abs(t), df)),
            method=method,
            notes=notes,
            extra={} if extra is None else extra,
        )

    @classmethod
    def from_wald(
        cls,
        quantity: str,
        estimate,
        se,
        level: float = 0.95,
        method: str = "",
        *,
        notes: str = "",
        extra: dict | None = None,
    ) -> "Estimate":
        """A Wald (normal) row: CI estimate -/+ z_{(1 + level)/2} se, z = estimate / se (NaN unless se > 0),
        two-sided p; df is NaN."""
        crit = stats.norm.ppf(0.5 + level / 2)
        z = estimate / se if se > 0 else math.nan
        return cls(
            quantity,
            float(estimate),
            float(se),
            float(estimate - crit * se),
            float(estimate + crit * se),
            math.nan,
            float(z),
            float(2 * stats.norm.sf(abs(z))),
            method,
            notes,
            {} if extra is None else extra,
        )

    def to_dict(self) -> dict:
        out = asdict(self)
        extra = out.pop("extra")
        out.update(extra)
        return to_jsonable(out)


# --------------------------------------------------------------------------------------------------
# The serialiser
# --------------------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Plain JSON-ready Python from any result value, recursively.

    Dicts (keys as strings), lists and tuples recurse; a data frame becomes a list of records; numpy
    scalars and arrays become Python numbers and lists; NaN, +/-inf, None, pd.NA and NaT become None; a
    result with a `to_dict()` (or any other dataclass, field by field) becomes a dict. Anything else is
    returned as it is (`to_json` writes it with `str`).
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, pd.DataFrame):
        return to_records(value)
    if value is pd.NA or value is pd.NaT:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if callable(getattr(value, "to_dict", None)):
            return to_jsonable(value.to_dict())
        return to_jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return value


def to_records(frame: pd.DataFrame | None) -> list[dict]:
    """A frame as JSON-ready records, one dict per row (None gives [])."""
    if frame is None:
        return []
    return [to_jsonable(row) for row in frame.to_dict("records")]


def to_json(record: Any) -> str:
    """The one JSON writer (stage result.json, the CLI's --json): `to_jsonable`, keys sorted, indent 2."""
    return json.dumps(to_jsonable(record), indent=2, sort_keys=True, default=str) + "\n"


class ResultMixin:
    """`to_dict()` for a result dataclass: its fields through `to_jsonable`.

    Per class: ``_json_skip`` names fields left out (row-level arrays, the posterior), ``_json_rename``
    maps a field to its JSON key, `_json_extra()` adds derived entries after the fields; a class whose
    record is not its fields overrides `_json_fields()`.
    """

    _json_skip: ClassVar[tuple[str, ...]] = ()
    _json_rename: ClassVar[dict[str, str]] = {}

    def _json_fields(self) -> dict:
        return {
            self._json_rename.get(f.name, f.name): getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in self._json_skip
        }

    def _json_extra(self) -> dict:
        return {}

    def to_dict(self) -> dict:
        return to_jsonable({**self._json_fields(), **self._json_extra()})


# --------------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------------


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


def identifiers_first(frame: pd.DataFrame) -> pd.DataFrame:
    """A table of Estimate rows in reading order: its identifier columns (outcome, timepoint, study, prior,
    ...; `IDENTIFIER_COLUMNS`) first, then quantity, estimate, se, ci_low, ci_high, df, statistic, p, method
    and notes, then the extras in their order. Other tables (no quantity and estimate) and the values are
    left as they are."""
    if not {"quantity", "estimate"} <= set(frame.columns):
        return frame
    ids = [c for c in IDENTIFIER_COLUMNS if c in frame.columns]
    core = [c for c in ESTIMATE_COLUMNS if c in frame.columns]
    order = ids + core + [c for c in frame.columns if c not in ids and c not in core]
    return frame if order == list(frame.columns) else frame[order]


def confint_t(frame: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Estimate rows with their CIs recomputed at ``level`` from estimate, se and df: estimate -/+
    t_{df, (1 + level)/2} se, as `Estimate.from_t` (rows without df get NaN intervals)."""
    out = frame.copy()
    crit = stats.t.ppf(0.5 + level / 2, out["df"].to_numpy(float))
    out["ci_low"] = out["estimate"] - crit * out["se"]
    out["ci_high"] = out["estimate"] + crit * out["se"]
    return out


# --------------------------------------------------------------------------------------------------
# Printouts
# --------------------------------------------------------------------------------------------------


def _num(x, fmt: str = ".4f") -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "NA"
    return format(x, fmt) if math.isfinite(x) else "NA"


def estimates_text(frame: pd.DataFrame) -> str:
    """Estimate rows as an aligned plain-text table: quantity, estimate, se, CI, df, p."""
    if frame is None or frame.empty:
        return "(no estimates)"
    width = max(8, *(len(str(q)) for q in frame["quantity"]))
    lines = [f"{'quantity':<{width}} {'estimate':>10} {'se':>9} {'ci_low':>10} {'ci_high':>10} {'df':>8} {'p':>8}"]
    for row in frame.itertuples(index=False):
        r = row._asdict()
        lines.append(
            f"{str(r['quantity']):<{width}} {_num(r.get('estimate')):>10} {_num(r.get('se')):>9} "
            f"{_num(r.get('ci_low')):>10} {_num(r.get('ci_high')):>10} {_num(r.get('df'), '.1f'):>8} "
            f"{_num(r.get('p'), '.4g'):>8}"
        )
    return "\n".join(lines)


def summary_block(
    title: str, facts: Iterable[tuple[str, Any]] = (), frame: pd.DataFrame | None = None, notes: Iterable[str] = ()
) -> str:
    """A result's printout, as metafor's print or statsmodels' summary: the model and method (``title``),
    one ``name: value`` line per fact (n, settings, fit state), the estimate rows and the notes."""
    lines = [title]
    facts = [f"{name}: {value}" for name, value in facts]
    if facts:
        lines += [""] + facts
    if frame is not None:
        lines += ["", estimates_text(frame)]
    notes = [f"Note: {n}" for n in notes if n]
    if notes:
        lines += [""] + notes
    return "\n".join(lines)
