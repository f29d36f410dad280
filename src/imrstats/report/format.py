"""How numbers read in the report and the summaries: one number formatter, one p-value formatter, one interval,
one minus sign.

Presentation only: these turn floats into text and never round a number that is written to CSV or JSON.
"""

from __future__ import annotations

import math

import pandas as pd

MINUS = "\u2212"  # the sign printed before a negative number (the hyphen-minus is for words)


def typographic(text: str) -> str:
    """A number's text with its sign as printed: "-0.42" -> "\u22120.42"."""
    return MINUS + text[1:] if text.startswith("-") else text


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


def format_p(p, *, missing: str = "") -> str:
    """A p-value as printed in papers: "< 0.001" below 0.001; 3 decimals below 0.01 ("0.004"); otherwise 2
    decimals ("0.03", "0.27"), except where 2 would print "0.05" and so hide the side of 0.05 the value lies on:
    then 3 ("0.049", "0.052"), or 4 when 3 still print "0.050" ("0.0499"). Missing -> `missing`."""
    if _missing(p):
        return missing
    p = float(p)
    if p < 0.001:
        return "< 0.001"
    if p < 0.01:
        return f"{p:.3f}"
    for digits in (2, 3, 4):
        shown = f"{p:.{digits}f}"
        if float(shown) != 0.05 or p == 0.05:
            return shown
    return shown


def format_fixed(x, digits: int = 2, *, missing: str = "NA") -> str:
    """`x` with exactly `digits` decimals, as the numbers of an interval are printed side by side ("0.00", never
    "-0.00" nor "0.0018"). Missing -> `missing`."""
    if _missing(x):
        return missing
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def format_ci(low, high, digits: int = 2, *, missing: str = "NA") -> str:
    """An interval as "[low, high]", both ends with `digits` decimals (`format_fixed`)."""
    return f"[{format_fixed(low, digits, missing=missing)}, {format_fixed(high, digits, missing=missing)}]"


def is_p_column(name) -> bool:
    """Columns holding p-values, shown with `format_p` in report tables: "p", "p_holm", "q_p", "freq_p_two_sided",
    and a section's own "p raw" or "p (IRR)"; not a probability such as "P(mu > 0)"."""
    name = str(name)
    return name == "p" or name.startswith(("p_", "p ", "p(")) or name.endswith("_p") or "_p_" in name
