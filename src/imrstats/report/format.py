"""How numbers read in the report and the summaries: one number formatter, one p-value formatter, one interval.

Presentation only: these turn floats into text and never round a number that is written to CSV or JSON.
"""

from __future__ import annotations

import math

import pandas as pd


def _missing(x) -> bool:
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def format_number(x, digits: int = 2, *, missing: str = "NA") -> str:
    """`x` with `digits` decimals; a non-zero value too small to show at that precision keeps `digits`
    significant figures instead of printing as zero ("0.00012" rather than "0.000"). Missing -> `missing`."""
    if _missing(x):
        return missing
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x != 0 and abs(x) < 10.0**-digits:
        return f"{x:.{digits}g}"
    return f"{x:.{digits}f}"


def format_p(p, digits: int = 3, *, missing: str = "") -> str:
    """A p-value as printed in papers: "< 0.001" below the shown precision, else `digits` decimals ("0.030")."""
    if _missing(p):
        return missing
    p = float(p)
    floor = 10.0**-digits
    return f"< {floor:.{digits}f}" if p < floor else f"{p:.{digits}f}"


def format_ci(low, high, digits: int = 2, *, missing: str = "NA") -> str:
    """An interval as "[low, high]", each end by `format_number`."""
    return f"[{format_number(low, digits, missing=missing)}, {format_number(high, digits, missing=missing)}]"


def is_p_column(name) -> bool:
    """Columns holding p-values, shown with `format_p` in report tables: "p", "p_holm", "q_p", ..."""
    name = str(name)
    return name == "p" or name.startswith("p_") or name.endswith("_p")
