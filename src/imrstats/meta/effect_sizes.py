"""Effect sizes and their sampling variances from published arm summaries.

Every function returns ``EffectSize(yi, vi)``: the effect estimate and its sampling variance, with the
definitions of R's metafor ``escalc()`` (Viechtbauer 2010, J Stat Softw 36(3); metafor 3.8 source,
defaults ``vtype = "LS"``, ``add = 1/2``, ``to = "only0"``), so that a pooled analysis here reproduces
metafor on the same input.

Sign convention (project-wide): comparative effects are IMR minus TAU (arm 1 minus arm 2). When a lower
score is better on the instrument (``higher_is_better=False``; the caller reads this from the
instrument registry), the sign of ``yi`` is reversed, so that a positive effect always favours IMR.
For binary outcomes "higher is better" means "having the event is good" (e.g. remission); for an
adverse event (readmission, dropout) pass ``higher_is_better=False``. Variances do not change sign.
The single-arm logit proportion (``plo``) is not a comparison and is never sign-flipped.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln

from imrstats.errors import AnalysisError, InputError

FAVOURS_IMR = "positive favours IMR"
_ZERO_CELL_RULES = ("only0", "all", "if0all", "none")


class EffectSize(NamedTuple):
    """An effect estimate ``yi`` and its sampling variance ``vi`` (floats, or arrays for vector input)."""

    yi: float | np.ndarray
    vi: float | np.ndarray


def _values(name: str, value) -> np.ndarray:
    """A float array of ``value``; raises if any entry is missing or infinite."""
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise AnalysisError(
            f"{name} has missing or infinite values ({arr.tolist()}); remove or complete those rows first."
        )
    return arr


def _out(arr: np.ndarray):
    """Return a Python float for scalar input, the array otherwise."""
    return float(arr) if np.ndim(arr) == 0 else arr


def _direction_sign(higher_is_better) -> np.ndarray:
    """+1 where higher is better, -1 where lower is better (so that positive favours IMR)."""
    hib = np.asarray(higher_is_better)
    if hib.dtype != bool:
        raise AnalysisError(f"higher_is_better must be True/False (per instrument), got {higher_is_better!r}.")
    return np.where(hib, 1.0, -1.0)


def hedges_correction(df) -> float | np.ndarray:
    """Exact small-sample bias correction c(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2)).

    Hedges (1981), J Educ Stat 6:107-128, eq. 6e; computed on the log scale as metafor's
    ``.cmicalc`` does so that large ``m`` cannot overflow. ``df`` is m = n1 + n2 - 2; needs m > 1.
    """
    m = _values("degrees of freedom", df)
    if np.any(m <= 1):
        raise AnalysisError(
            f"Hedges' correction needs n1 + n2 - 2 > 1 (got {m.tolist()}): each comparison needs at least 4 people."
        )
    return _out(np.exp(gammaln(m / 2) - np.log(np.sqrt(m / 2)) - gammaln((m - 1) / 2)))


def _check_arms(n1, n2, sd1=None, sd2=None) -> None:
    if np.any(n1 <= 0) or np.any(n2 <= 0):
        raise AnalysisError("Arm sizes must be positive; check n_imr and n_tau.")
    if sd1 is not None and (np.any(sd1 < 0) or np.any(sd2 < 0)):
        raise AnalysisError("Standard deviations must be >= 0; check sd_imr and sd_tau.")


def smd(m1, sd1, n1, m2, sd2, n2, *, higher_is_better=True, correct: bool = True) -> EffectSize:
    """Standardized mean difference (Hedges' g) of arm 1 (IMR) minus arm 2 (TAU), and its variance.

    d = (m1 - m2) / s_p with the pooled SD s_p = sqrt(((n1-1) sd1^2 + (n2-1) sd2^2) / (n1+n2-2));
    g = c(n1+n2-2) d with the exact correction ``hedges_correction`` (``correct=False`` gives d).
    Variance (large-sample, metafor ``vtype="LS"``; Hedges 1982, eq. 8; Hedges & Olkin 1985, eq. 15):
    v = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2)).
    """
    m1, sd1, n1 = _values("mean_imr", m1), _values("sd_imr", sd1), _values("n_imr", n1)
    m2, sd2, n2 = _values("mean_tau", m2), _values("sd_tau", sd2), _values("n_tau", n2)
    _check_arms(n1, n2, sd1, sd2)
    df = n1 + n2 - 2
    pooled_sd = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / df)
    if np.any(pooled_sd <= 0):
        raise AnalysisError("Pooled SD is 0 (both arms have SD 0): a standardized difference is undefined.")
    correction = hedges_correction(df) if correct else 1.0
    yi = correction * (m1 - m2) / pooled_sd
    vi = 1 / n1 + 1 / n2 + yi**2 / (2 * (n1 + n2))
    return EffectSize(_out(_direction_sign(higher_is_better) * yi), _out(vi))


def md(m1, sd1, n1, m2, sd2, n2, *, higher_is_better=True) -> EffectSize:
    """Raw mean difference m1 - m2 (IMR minus TAU) with variance sd1^2/n1 + sd2^2/n2 (no equal-variance
    assumption; metafor ``measure="MD"``, ``vtype="LS"``). Units are the instrument's own."""
    m1, sd1, n1 = _values("mean_imr", m1), _values("sd_imr", sd1), _values("n_imr", n1)
    m2, sd2, n2 = _values("mean_tau", m2), _values("sd_tau", sd2), _values("n_tau", n2)
    _check_arms(n1, n2, sd1, sd2)
    yi = _direction_sign(higher_is_better) * (m1 - m2)
    vi = sd1**2 / n1 + sd2**2 / n2
    if np.any(vi <= 0):
        raise AnalysisError("Both SDs are 0, so the mean difference has variance 0; check the source table.")
    return EffectSize(_out(yi), _out(vi))


def _add_to_zero_cells(cells: list[np.ndarray], add: float, to: str) -> list[np.ndarray]:
    """metafor's continuity correction: ``to="only0"`` adds ``add`` to every cell of a study (row) with a
    zero cell, ``"all"`` to every cell, ``"if0all"`` to every cell of every study if any study has a zero
    cell, ``"none"`` never."""
    if to not in _ZERO_CELL_RULES:
        raise AnalysisError(f"to must be one of {_ZERO_CELL_RULES}, got {to!r}.")
    any_zero = np.zeros(np.broadcast(*cells).shape, dtype=bool)
    for cell in cells:
        any_zero = any_zero | (cell == 0)
    if to == "all":
        mask = np.ones_like(any_zero)
    elif to == "only0":
        mask = any_zero
    elif to == "if0all":
        mask = np.full_like(any_zero, bool(np.any(any_zero)))
    else:
        mask = np.zeros_like(any_zero)
    return [cell + np.where(mask, add, 0.0) for cell in cells]


def _two_by_two(events1, n1, events2, n2, add: float, to: str) -> list[np.ndarray]:
    e1, n1 = _values("events_imr", events1), _values("n_imr", n1)
    e2, n2 = _values("events_tau", events2), _values("n_tau", n2)
    _check_arms(n1, n2)
    if np.any(e1 < 0) or np.any(e2 < 0) or np.any(e1 > n1) or np.any(e2 > n2):
        raise AnalysisError("Event counts must lie between 0 and the arm size; check events_imr / events_tau.")
    return _add_to_zero_cells([e1, n1 - e1, e2, n2 - e2], add, to)


def _finite_or_raise(yi: np.ndarray, vi: np.ndarray, what: str) -> None:
    if not (np.all(np.isfinite(yi)) and np.all(np.isfinite(vi))):
        raise AnalysisError(
            f"{what} is undefined with a zero cell and no continuity correction; use to='only0' (metafor's default)."
        )


def log_rr(events1, n1, events2, n2, *, higher_is_better=True, add: float = 0.5, to: str = "only0") -> EffectSize:
    """Log risk ratio log(p1 / p2) (IMR over TAU) with variance 1/a - 1/n1 + 1/c - 1/n2
    (metafor ``measure="RR"``; Borenstein et al. 2009, ch. 5), after the continuity correction."""
    a, b, c, d = _two_by_two(events1, n1, events2, n2, add, to)
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = np.log(a / (a + b)) - np.log(c / (c + d))
        vi = 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)
    _finite_or_raise(yi, vi, "The log risk ratio")
    return EffectSize(_out(_direction_sign(higher_is_better) * yi), _out(vi))


def log_or(events1, n1, events2, n2, *, higher_is_better=True, add: float = 0.5, to: str = "only0") -> EffectSize:
    """Log odds ratio log(ad / bc) (IMR over TAU) with the Woolf variance 1/a + 1/b + 1/c + 1/d
    (metafor ``measure="OR"``; Borenstein et al. 2009, ch. 5), after the continuity correction."""
    a, b, c, d = _two_by_two(events1, n1, events2, n2, add, to)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = a / (a + b), c / (c + d)
        yi = np.log(p1 / (1 - p1)) - np.log(p2 / (1 - p2))
        vi = 1 / a + 1 / b + 1 / c + 1 / d
    _finite_or_raise(yi, vi, "The log odds ratio")
    return EffectSize(_out(_direction_sign(higher_is_better) * yi), _out(vi))


def rd(events1, n1, events2, n2, *, higher_is_better=True, add: float = 0.5, to: str = "only0") -> EffectSize:
    """Risk difference p1 - p2 (IMR minus TAU) with the large-sample variance p1 (1 - p1) / n1 + p2 (1 - p2) / n2
    (metafor ``measure="RD"``, ``vtype="LS"``; Borenstein et al. 2009, ch. 5), computed, as metafor does by
    default, after the continuity correction (``add`` to every cell of a study with a zero cell): a study with
    no events in either arm keeps a finite variance."""
    a, b, c, d = _two_by_two(events1, n1, events2, n2, add, to)
    p1, p2 = a / (a + b), c / (c + d)
    yi = p1 - p2
    vi = p1 * (1 - p1) / (a + b) + p2 * (1 - p2) / (c + d)
    if np.any(vi <= 0):
        raise AnalysisError(
            "The risk difference has variance 0 (every or no person has the event in both arms) with no "
            "continuity correction; use to='only0' (metafor's default)."
        )
    return EffectSize(_out(_direction_sign(higher_is_better) * yi), _out(vi))


def plo(events, n, *, add: float = 0.5, to: str = "only0") -> EffectSize:
    """Logit of a single-arm proportion (dropout, completion) log(x / (n - x)) with variance
    1/x + 1/(n - x) (metafor ``measure="PLO"``), after the continuity correction. Back-transform a
    pooled value with the inverse logit. Not a comparison: never sign-flipped."""
    x, n = _values("events", events), _values("n", n)
    if np.any(n <= 0) or np.any(x < 0) or np.any(x > n):
        raise AnalysisError("Need 0 <= events <= n and n > 0 for a proportion; check events / n.")
    x, rest = _add_to_zero_cells([x, n - x], add, to)
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = np.log(x / rest)
        vi = 1 / x + 1 / rest
    _finite_or_raise(yi, vi, "The logit proportion")
    return EffectSize(_out(yi), _out(vi))


MEASURE_COLUMNS = {  # the columns each measure of `escalc` reads
    "SMD": ["mean_imr", "sd_imr", "n_imr", "mean_tau", "sd_tau", "n_tau"],
    "MD": ["mean_imr", "sd_imr", "n_imr", "mean_tau", "sd_tau", "n_tau"],
    "RR": ["events_imr", "n_imr", "events_tau", "n_tau"],
    "OR": ["events_imr", "n_imr", "events_tau", "n_tau"],
    "RD": ["events_imr", "n_imr", "events_tau", "n_tau"],
    "PLO": ["events", "n"],
}


def _row_directions(df: pd.DataFrame, higher_is_better) -> np.ndarray:
    """Per-row booleans from a single bool, a sequence of bools, or the name of a bool column."""
    if isinstance(higher_is_better, str):
        if higher_is_better not in df.columns:
            raise InputError(f"Column {higher_is_better!r} (higher_is_better) is not in the table.")
        higher_is_better = df[higher_is_better].to_numpy()
    hib = np.broadcast_to(np.asarray(higher_is_better), (len(df),))
    if hib.dtype != bool:
        raise InputError("higher_is_better must be True/False for every row (from the instrument registry).")
    return hib


def _row_labels(df: pd.DataFrame) -> list[str]:
    """How an error names each row: its study label, else its position counted from 1."""
    if "study" in df.columns:
        return [f"study {s!r}" for s in df["study"].astype(str)]
    return [f"row {i + 1}" for i in range(len(df))]


def _one_measure(measure: str, args: list, hib, *, correct: bool, add: float, to: str) -> EffectSize:
    if measure == "PLO":
        return plo(*args, add=add, to=to)
    if measure == "SMD":
        return smd(*args, higher_is_better=hib, correct=correct)
    if measure == "MD":
        return md(*args, higher_is_better=hib)
    if measure == "RR":
        return log_rr(*args, higher_is_better=hib, add=add, to=to)
    if measure == "RD":
        return rd(*args, higher_is_better=hib, add=add, to=to)
    return log_or(*args, higher_is_better=hib, add=add, to=to)


def _by_rows(measure: str, args: list, hib, labels: list[str], **options) -> EffectSize:
    """The effect sizes of every row; an error names the rows (by study label) that cause it, and an effect or
    variance that overflows (values too large to compute with) is an error naming its rows, not a warning."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            es = _one_measure(measure, args, hib, **options)
        except AnalysisError:
            by_message: dict[str, list[str]] = {}
            for i in range(len(labels)):
                row = [a[i : i + 1] for a in args]
                try:
                    _one_measure(measure, row, None if hib is None else hib[i : i + 1], **options)
                except AnalysisError as row_error:
                    by_message.setdefault(str(row_error).rstrip("."), []).append(labels[i])
            if not by_message:
                raise
            raise AnalysisError(
                "; ".join(f"{', '.join(names)}: {message}" for message, names in by_message.items())
            ) from None
    yi, vi = np.atleast_1d(es.yi), np.atleast_1d(es.vi)
    bad = ~(np.isfinite(yi) & np.isfinite(vi))
    if np.any(bad):
        names = ", ".join(labels[i] for i in np.flatnonzero(bad))
        raise AnalysisError(
            f"the effect size or its variance is not a finite number for {names}: the values are too large to "
            "compute with; check the table."
        )
    return es


def escalc(
    df: pd.DataFrame,
    measure: str,
    *,
    higher_is_better: bool | Sequence[bool] | str = True,
    correct: bool = True,
    add: float = 0.5,
    to: str = "only0",
) -> pd.DataFrame:
    """Add effect sizes ``yi``, variances ``vi``, the ``measure`` and a ``direction`` column to a table.

    ``measure`` is "SMD", "MD" (columns n_imr, mean_imr, sd_imr, n_tau, mean_tau, sd_tau), "RR", "OR", "RD"
    (events_imr, n_imr, events_tau, n_tau) or "PLO" (events, n). ``higher_is_better`` is one bool, one
    per row, or the name of a bool column (from the instrument registry). Returns a copy of ``df``.
    """
    measure = measure.upper()
    if measure not in MEASURE_COLUMNS:
        raise InputError(f"Unknown measure {measure!r}; use one of {sorted(MEASURE_COLUMNS)}.")
    missing = [c for c in MEASURE_COLUMNS[measure] if c not in df.columns]
    if missing:
        raise InputError(f"escalc(measure={measure!r}) needs columns {missing} that the table lacks.")
    if len(df) == 0:
        raise InputError("The table has no rows.")
    labels = _row_labels(df)
    args = []
    for c in MEASURE_COLUMNS[measure]:
        values = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        unread = np.isnan(values) & df[c].notna().to_numpy()
        if np.any(unread):
            first = int(np.flatnonzero(unread)[0])
            raise InputError(f"column {c}: '{df[c].iloc[first]}' ({labels[first]}) is not a number.")
        args.append(values)
    out = df.copy()
    hib = None if measure == "PLO" else _row_directions(df, higher_is_better)
    es = _by_rows(measure, args, hib, labels, correct=correct, add=add, to=to)
    if measure == "PLO":
        out["direction"] = "logit proportion (single arm, not a comparison)"
    else:
        out["direction"] = np.where(
            hib,
            f"{FAVOURS_IMR} (higher is better; IMR minus TAU)",
            f"{FAVOURS_IMR} (lower is better; sign reversed)",
        )
    out["yi"] = np.atleast_1d(es.yi)
    out["vi"] = np.atleast_1d(es.vi)
    out["measure"] = measure
    return out


# ---------------------------------------------------------------------------------------------
# Conversions from what papers report (Borenstein, Hedges, Higgins & Rothstein 2009, Introduction to
# Meta-Analysis, chs. 4 and 7). Every conversion ends on the same footing as ``smd``: d is turned into
# Hedges' g with the exact correction c(n1 + n2 - 2) and given the ``vtype="LS"`` variance
# 1/n1 + 1/n2 + g^2 / (2 (n1 + n2)), so converted and computed effects pool consistently.


class Conversion(NamedTuple):
    """A converted effect size, its sampling variance and the assumption the conversion rests on."""

    yi: float
    vi: float
    assumption: str


def _signed(sign: int) -> float:
    if sign not in (1, -1):
        raise AnalysisError(f"sign is +1 (IMR mean above TAU) or -1 (below); got {sign!r}.")
    return float(sign)


def _g_from_d(d: float, n1: float, n2: float, higher_is_better: bool, assumption: str) -> Conversion:
    """Hedges' g and its LS variance from Cohen's d and arm sizes, sign-aligned (see module docstring)."""
    n1, n2 = float(_values("n_imr", n1)), float(_values("n_tau", n2))
    _check_arms(np.array(n1), np.array(n2))
    g = hedges_correction(n1 + n2 - 2) * float(_values("d", d))
    vi = 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))
    return Conversion(float(_direction_sign(higher_is_better)) * g, vi, assumption)


def smd_from_d_total_n(d: float, n_total: float, *, higher_is_better: bool = True) -> Conversion:
    """Cohen's d (IMR minus TAU) reported with only the total N: arms assumed equal, n1 = n2 = N / 2
    (Borenstein et al. 2009, ch. 4, eqs. 4.18-4.20 with that split). The assumption is returned."""
    n_total = float(_values("n_total", n_total))
    return _g_from_d(
        d,
        n_total / 2,
        n_total / 2,
        higher_is_better,
        f"total N = {n_total:g} split equally between arms (n = {n_total / 2:g} each)",
    )


def smd_from_t(t: float, n1: float, n2: float, *, higher_is_better: bool = True) -> Conversion:
    """Independent-samples t (IMR minus TAU): d = t sqrt(1/n1 + 1/n2) (Borenstein et al. 2009, ch. 7).
    Assumes a pooled-variance two-sample t test without covariates."""
    d = float(_values("t", t)) * math.sqrt(1 / float(n1) + 1 / float(n2))
    return _g_from_d(d, n1, n2, higher_is_better, "t from a pooled-variance two-sample t test (no covariates)")


def smd_from_f(f: float, n1: float, n2: float, *, sign: int, higher_is_better: bool = True) -> Conversion:
    """One-numerator-df F from a two-group ANOVA: t = sign sqrt(F), then ``smd_from_t``
    (Borenstein et al. 2009, ch. 7). F carries no direction: ``sign`` is +1 if the IMR mean is higher."""
    f = float(_values("F", f))
    if f < 0:
        raise AnalysisError(f"An F statistic cannot be negative (got {f}).")
    res = smd_from_t(_signed(sign) * math.sqrt(f), n1, n2, higher_is_better=higher_is_better)
    return res._replace(
        assumption="F(1, n1 + n2 - 2) from a two-group ANOVA without covariates; direction from the paper"
    )


def smd_from_p(p: float, n1: float, n2: float, *, sign: int, higher_is_better: bool = True) -> Conversion:
    """Exact two-sided p of a two-sample t test: t = sign * t_{1 - p/2}(n1 + n2 - 2), then ``smd_from_t``
    (Borenstein et al. 2009, ch. 7). Needs an exact p (not "p < .05"); ``sign`` +1 if IMR mean higher."""
    p = float(_values("p", p))
    if not 0 < p <= 1:
        raise AnalysisError(f"A two-sided p-value must be in (0, 1]; got {p}.")
    t = _signed(sign) * float(stats.t.isf(p / 2, float(n1) + float(n2) - 2))
    res = smd_from_t(t, n1, n2, higher_is_better=higher_is_better)
    return res._replace(assumption="exact two-sided p of a pooled-variance two-sample t test; direction from the paper")


def smd_from_eta_squared(eta2: float, n1: float, n2: float, *, sign: int, higher_is_better: bool = True) -> Conversion:
    """Eta squared of a two-group one-way ANOVA: F = eta2 (n1 + n2 - 2) / (1 - eta2), then ``smd_from_f``
    (eta^2 = SS_between / SS_total; Borenstein et al. 2009, ch. 7; Cohen 1988, eq. 8.2.19). A partial
    eta squared from a model with covariates is not this quantity."""
    eta2 = float(_values("eta squared", eta2))
    if not 0 <= eta2 < 1:
        raise AnalysisError(f"Eta squared must be in [0, 1); got {eta2}.")
    f = eta2 * (float(n1) + float(n2) - 2) / (1 - eta2)
    res = smd_from_f(f, n1, n2, sign=sign, higher_is_better=higher_is_better)
    return res._replace(assumption="eta squared of a two-group one-way ANOVA (not partial); direction from the paper")


def log_or_from_ci(
    odds_ratio: float, ci_low: float, ci_high: float, *, level: float = 0.95, higher_is_better: bool = True
) -> Conversion:
    """Log odds ratio (IMR over TAU) and its variance from a reported OR and its Wald CI:
    se = (ln ub - ln lb) / (2 z_{1 - alpha/2}) (Borenstein et al. 2009, ch. 5). Assumes a symmetric Wald
    CI on the log scale."""
    or_, lo, hi = (float(_values(n, v)) for n, v in (("OR", odds_ratio), ("CI low", ci_low), ("CI high", ci_high)))
    if not 0 < lo <= or_ <= hi:
        raise AnalysisError(f"Need 0 < CI low <= OR <= CI high; got OR {or_} ({lo}, {hi}).")

    se = (math.log(hi) - math.log(lo)) / (2 * float(stats.norm.isf((1 - level) / 2)))
    yi = float(_direction_sign(higher_is_better)) * math.log(or_)
    return Conversion(yi, se**2, f"{100 * level:g}% Wald CI symmetric on the log-odds scale")


def smd_from_log_or(log_odds_ratio: float, vi: float) -> Conversion:
    """Chinn (2000, Stat Med 19:3127): d = ln(OR) sqrt(3) / pi, v_d = v_lnOR 3 / pi^2
    (Borenstein et al. 2009, ch. 7, eqs. 7.1-7.2). Assumes logistic latent distributions with equal
    variance in both arms; no small-sample correction (arm sizes unknown). Pass an already sign-aligned
    log OR (e.g. from ``log_or_from_ci``)."""
    lor, v = float(_values("log OR", log_odds_ratio)), float(_values("variance", vi))
    if v <= 0:
        raise AnalysisError(f"The variance of the log OR must be > 0; got {v}.")
    return Conversion(
        lor * math.sqrt(3) / math.pi,
        v * 3 / math.pi**2,
        "logistic latent outcome with equal variances (Chinn 2000); no small-sample correction",
    )


def log_or_from_smd(d: float, vi: float) -> Conversion:
    """The inverse of ``smd_from_log_or``: ln(OR) = d pi / sqrt(3), v = v_d pi^2 / 3 (Borenstein et al.
    2009, eqs. 7.3-7.4), for pooling a continuous outcome with binary ones."""
    d, v = float(_values("d", d)), float(_values("variance", vi))
    if v <= 0:
        raise AnalysisError(f"The variance of d must be > 0; got {v}.")
    return Conversion(
        d * math.pi / math.sqrt(3), v * math.pi**2 / 3, "logistic latent outcome with equal variances (Chinn 2000)"
    )
