"""Audit of published numbers: are the reported summaries, tests, CIs and p-values possible together?

Every check takes numbers *as printed*. A value printed with d decimals stands for the closed interval
[x - 0.5 * 10^-d, x + 0.5 * 10^-d] (both rounding conventions at a tie are allowed); a sample size or a
count is exact. A recomputed quantity *agrees* with a reported one when some combination of the reported
inputs inside their rounding intervals reproduces the reported output inside its rounding interval. The
audit bounds the recomputed quantity over the box of inputs (monotonicity gives the corners; see each
function) and asks whether that range meets the reported interval. This is statcheck's rounding rule
(Nuijten et al. 2016, Behav Res Methods 48:1205) carried through to the inputs.

Rules (``docs/audit.md`` gives the definitions and what they flag in the source papers):

- ``range_mean`` / ``range_sd``: a mean must lie in the instrument's range; an SD cannot exceed the largest
  SD that n values in [min, max] with that mean can have, sqrt(n / (n - 1) * (m - min) * (max - m)).
- ``grim`` (Brown & Heathers 2017, Soc Psychol Personal Sci 8:363) and ``grimmer`` (Anaya 2016, PeerJ
  Preprints 4:e2400; Allard 2018): a mean (and SD) of n integer totals must be reachable by some integer
  sum (and integer sum of squares of the right parity). Applied only where the totals are integers.
- recomputed tests: two-sample Student / Welch t and z from arm summaries, a correlation's p from r and n,
  a chi-square from counts, a Mann-Whitney U's p bound, and a reported statistic's p (statcheck).
- ``ci_contains_estimate``, ``ci_centred``, ``ci_p``: a reported difference (or ratio), its CI and its p.
- ``repeated_p``: one quantity reported twice (text and table) with p-values that cannot both be right.

Each finding has a severity: ``inconsistent``, ``cannot be checked`` or ``consistent``. An inconsistency is a
reporting problem to look at, not an accusation: a p printed "= 0.001" that can only be "< 0.001" is named as
exactly that (rule suffix ``_reported_as_equality``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from imrstats.errors import AnalysisError, InputError
from imrstats.results import Estimate, ResultMixin, to_frame

INCONSISTENT, UNCHECKABLE, CONSISTENT = "inconsistent", "cannot be checked", "consistent"
SEVERITIES = (INCONSISTENT, UNCHECKABLE, CONSISTENT)
FINDING_COLUMNS = ["row", "study", "instrument", "rule", "severity", "reported", "recomputed", "detail", "source"]
TESTS = ("", "student_t", "welch_t", "z_from_se", "t", "z", "correlation", "chisq", "chisq_yates", "mann_whitney")
_EPS = 1e-9  # floating slack when comparing interval ends computed in floating point


# --------------------------------------------------------------------------------------------- numbers as printed


@dataclass(frozen=True)
class Reported:
    """A number as printed: its value, its decimals (None = exact, e.g. an n) and its relation (=, <, >)."""

    value: float
    decimals: int | None = None
    relation: str = "="
    text: str = ""

    @property
    def half_unit(self) -> float:
        return 0.0 if self.decimals is None else 0.5 * 10.0 ** (-self.decimals)

    @property
    def low(self) -> float:
        return self.value - self.half_unit

    @property
    def high(self) -> float:
        return self.value + self.half_unit

    def __str__(self) -> str:
        if self.text:
            return self.text
        shown = f"{self.value:.{self.decimals}f}" if self.decimals is not None else f"{self.value:g}"
        return shown if self.relation == "=" else f"{self.relation} {shown}"


_NUMBER = re.compile(r"^\s*(?:p\s*)?([<>=≤≥]?)\s*([-+−–]?)\s*(\d[\d,]*\.?\d*|\.\d+|,\d+)\s*$", re.IGNORECASE)
_RELATION = re.compile(r"^\s*(?:p\s*)?[<>=≤≥]?\s*", re.IGNORECASE)


def read_comma(digits: str, printed) -> str:
    """The digits of a printed number with its comma read as ``imrstats check`` reads it (one rule, in
    `imrstats.data.check.decimal_comma_mask`): a decimal comma (40,5) is a decimal point; a comma that could as
    well separate thousands (1,000) is ambiguous and refused (InputError), never guessed. Commas before a decimal
    point (3,928.50) can only separate thousands and are dropped."""
    from imrstats.data.check import decimal_comma_mask

    if "," not in digits:
        return digits
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+\.\d*", digits):
        return digits.replace(",", "")
    if not bool(decimal_comma_mask(pd.Series([digits], dtype="string")).iloc[0]):
        raise InputError(
            f"'{printed}' is not a number as printed: a comma is read as a decimal point only where that is "
            "unambiguous (40,5); write 1000, not 1,000"
        )
    return digits.replace(",", ".")


def as_reported(value, decimals: int | None = None) -> Reported | None:
    """Read a printed number: a string keeps its decimals ("13.0" has 1, ".45" has 2, "< .001" is a bound);
    a float's decimals come from its shortest repr unless ``decimals`` is given; an int is exact.
    Empty / NA gives None; text that is not a number raises InputError."""
    if isinstance(value, Reported):
        return value
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        match = _NUMBER.match(text)
        if not match:
            raise InputError(f"'{value}' is not a number as printed (expected e.g. '0.45', '.001', '< 0.001')")
        relation = {"≤": "<", "≥": ">", "": "="}.get(match.group(1), match.group(1))
        digits = read_comma(match.group(3), value)
        sign = -1.0 if match.group(2) in ("-", "−", "–") else 1.0
        places = len(digits.split(".")[1]) if "." in digits else 0
        return Reported(sign * float(digits), places if decimals is None else decimals, relation, text)
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{value!r} is not a number")
    if isinstance(value, (int, np.integer)) and decimals is None:
        return Reported(float(value), None)
    number = float(value)
    if decimals is None:
        text = repr(number)
        decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return Reported(number, decimals)


def _exact_n(value, what: str) -> int | None:
    if (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (not isinstance(value, str) and pd.isna(value))
    ):
        return None
    try:
        number = float(read_comma(str(value).strip(), value))
    except (ValueError, InputError) as error:
        raise InputError(f"{what} = '{value}' is not a whole number") from error
    if not math.isfinite(number) or number != int(number) or number < 1:
        raise InputError(f"{what} = '{value}' must be a whole number >= 1")
    return int(number)


def _fraction(rep: Reported) -> tuple[Fraction, Fraction]:
    """Exact rounding interval of a printed value (for GRIM / GRIMMER, where floating error would matter)."""
    if rep.decimals is None:
        exact = Fraction(repr(rep.value))
        return exact, exact
    centre = Fraction(f"{rep.value:.{rep.decimals}f}")
    half = Fraction(1, 2 * 10**rep.decimals)
    return centre - half, centre + half


# --------------------------------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding(ResultMixin):
    """One audit result: the rule, its severity, what was printed, what recomputes, and why."""

    rule: str
    severity: str
    reported: str
    recomputed: str = ""
    detail: str = ""
    low: float = math.nan  # recomputed range over the rounding box (where a number was recomputed)
    high: float = math.nan
    estimate: Estimate | None = None  # the recomputation at the printed values (statistic, df, p, method)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    _json_skip = ("extra",)  # its entries follow the fields

    def _json_extra(self) -> dict:
        return self.extra

    def to_frame(self) -> pd.DataFrame:
        """One row: the recomputation at the printed values (if any), named by the rule and its verdict."""
        ids = {"rule": self.rule, "severity": self.severity, "reported": self.reported, "recomputed": self.recomputed}
        est = self.estimate or Estimate(self.rule, math.nan, notes=self.detail)
        frame = to_frame([est]).assign(**ids)
        return frame[list(ids) + [c for c in frame.columns if c not in ids]]

    def summary(self) -> str:
        """One line: verdict, rule, what was printed, what recomputes and why."""
        text = f"{self.severity}: {self.rule}: reported {self.reported}"
        text += f"; recomputed {self.recomputed}" if self.recomputed else ""
        return text + (f" ({self.detail})" if self.detail else "")


def _fmt(x: float, digits: int = 4) -> str:
    if not math.isfinite(x):
        return "inf" if x > 0 else "nan"
    if x != 0 and abs(x) < 10**-digits:
        return f"{x:.2e}"
    return f"{x:.{digits}g}" if abs(x) >= 1 else f"{x:.{digits}f}".rstrip("0").rstrip(".") or "0"


def _range_text(lo: float, hi: float) -> str:
    return _fmt(lo) if abs(hi - lo) < 1e-12 else f"[{_fmt(lo)}, {_fmt(hi)}]"


def _overlap(lo1: float, hi1: float, lo2: float, hi2: float) -> bool:
    return lo1 <= hi2 + _EPS * max(1.0, abs(hi2)) and lo2 <= hi1 + _EPS * max(1.0, abs(hi1))


def _compare_p(
    rule: str,
    p_rep: Reported,
    lo: float,
    hi: float,
    point: float,
    method: str,
    alpha: float,
    estimate: Estimate | None = None,
) -> Finding:
    """Does a recomputed p range [lo, hi] agree with a printed p (=, < or >)? Names a '= 0.001' that can only be
    '< 0.001' and says when the disagreement changes the significance decision at ``alpha``."""
    lo, hi = max(lo, 0.0), min(hi, 1.0)
    recomputed = f"p = {_range_text(lo, hi)} ({method})"
    if p_rep.relation == "<":
        ok = lo < p_rep.value + _EPS
    elif p_rep.relation == ">":
        ok = hi > p_rep.value - _EPS
    else:
        ok = _overlap(lo, hi, max(p_rep.low, 0.0), min(p_rep.high, 1.0))
    if ok:
        return Finding(
            rule,
            CONSISTENT,
            f"p {p_rep}" if p_rep.relation != "=" else f"p = {p_rep}",
            recomputed,
            "the reported p is reproduced within rounding.",
            lo,
            hi,
            estimate,
        )
    reported_sig = p_rep.high < alpha if p_rep.relation != ">" else False
    recomputed_sig = hi < alpha
    decision = (
        " The disagreement changes the significance decision at alpha = "
        f"{alpha:g} (a gross inconsistency in statcheck's terms)."
        if reported_sig != recomputed_sig and not (lo < alpha <= hi)
        else f" The significance decision at alpha = {alpha:g} is the same."
    )
    if (
        p_rep.relation == "="
        and p_rep.decimals is not None
        and hi < p_rep.low
        and abs(p_rep.value - 10.0 ** (-p_rep.decimals)) < 1e-12
    ):
        threshold = f"{p_rep.value:.{p_rep.decimals}f}"
        return Finding(
            rule + "_reported_as_equality",
            INCONSISTENT,
            f"p = {p_rep}",
            recomputed,
            f"the recomputed p is below {_fmt(p_rep.low)}, so the value can only be reported as "
            f"p < {threshold}; 'p = {threshold}' is a reporting slip of the threshold, not a different "
            "result." + decision,
            lo,
            hi,
            estimate,
        )
    return Finding(
        rule,
        INCONSISTENT,
        f"p {p_rep.relation} {p_rep}" if p_rep.relation != "=" else f"p = {p_rep}",
        recomputed,
        "no combination of the reported inputs within their rounding reproduces the reported p." + decision,
        lo,
        hi,
        estimate,
    )


def _compare_statistic(rule: str, stat_rep: Reported, lo: float, hi: float, what: str, method: str) -> Finding:
    """Compare |reported statistic| with the recomputed |statistic| range (signs depend on group order)."""
    rep_lo, rep_hi = max(abs(stat_rep.value) - stat_rep.half_unit, 0.0), abs(stat_rep.value) + stat_rep.half_unit
    recomputed = f"|{what}| = {_range_text(lo, hi)} ({method})"
    if _overlap(lo, hi, rep_lo, rep_hi):
        return Finding(
            rule,
            CONSISTENT,
            f"{what} = {stat_rep}",
            recomputed,
            "the reported statistic is reproduced within rounding (absolute values compared)",
            lo,
            hi,
        )
    return Finding(
        rule,
        INCONSISTENT,
        f"{what} = {stat_rep}",
        recomputed,
        "no combination of the reported inputs within their rounding gives the reported statistic",
        lo,
        hi,
    )


def _p_two_sided(stat_abs: float, df: float | None, kind: str = "t") -> float:
    if kind == "chisq":
        return float(stats.chi2.sf(stat_abs, df))
    if df is None or not math.isfinite(df):
        return float(2.0 * stats.norm.sf(stat_abs))
    return float(2.0 * stats.t.sf(stat_abs, df))


# ------------------------------------------------------------------------------------------- GRIM and GRIMMER


def _grim_sums(mean: Reported, n: int, items: int) -> list[int]:
    lo, hi = _fraction(mean)
    total = n * items
    return list(range(math.ceil(lo * total), math.floor(hi * total) + 1))


def grim(mean, n: int, decimals: int | None = None, items: int = 1) -> Finding:
    """GRIM (Brown & Heathers 2017): can a mean printed with ``decimals`` decimals be the mean of ``n`` values that
    are each an integer total divided by ``items`` (items = 1: integer totals; items = k: per-item means of k
    integer items)? Consistent iff some integer sum S has S / (n * items) inside the mean's rounding interval.
    With n * items >= 10^decimals every printed mean is possible, and the check cannot discriminate.

    Assumption (stated in every finding): the values are integer totals (no prorating, no imputation)."""
    rep = as_reported(mean, decimals)
    n = _exact_n(n, "n")
    if rep is None or n is None:
        raise AnalysisError("GRIM needs a printed mean and its n; give both (n = number of values averaged)")
    if rep.decimals is None:
        raise AnalysisError("GRIM needs the number of decimals the mean was printed with")
    items = _exact_n(items, "items")
    granularity = n * items
    reported = f"mean {rep} (n = {n}{', items = ' + str(items) if items > 1 else ''})"
    assumption = "assumes integer totals (no prorated or imputed values)"
    if granularity >= 10**rep.decimals:
        return Finding(
            "grim",
            UNCHECKABLE,
            reported,
            "",
            f"n x items = {granularity} >= 10^{rep.decimals}: every mean printed with {rep.decimals} "
            "decimal(s) is possible, so GRIM cannot discriminate",
        )
    sums = _grim_sums(rep, n, items)
    if sums:
        nearest = sums[0]
        return Finding(
            "grim",
            CONSISTENT,
            reported,
            f"sum {nearest} / {granularity} = {_fmt(nearest / granularity)}",
            f"the mean is possible; {assumption}",
            nearest / granularity,
            nearest / granularity,
        )
    below = math.floor(_fraction(rep)[0] * granularity)
    return Finding(
        "grim",
        INCONSISTENT,
        reported,
        f"nearest possible means {_fmt(below / granularity)} and {_fmt((below + 1) / granularity)}",
        f"no integer sum of {granularity} units gives a mean that rounds to {rep}; {assumption}",
    )


def grimmer(
    mean, sd, n: int, decimals_mean: int | None = None, decimals_sd: int | None = None, items: int = 1
) -> Finding:
    """GRIMMER (Anaya 2016; the analytic form of Allard 2018): can n integer totals have both the printed mean and
    the printed SD? For each integer sum S allowed by GRIM, the sum of squares Q = (n - 1) * SD^2 + S^2 / n must
    be an integer inside the SD's rounding interval, have the parity of S (x^2 = x mod 2 for integers), and be at
    least the smallest sum of squares integers with sum S can have (values as equal as possible). With
    ``items`` > 1 the values are per-item means of ``items`` integer items and the check runs on the totals."""
    m_rep, s_rep = as_reported(mean, decimals_mean), as_reported(sd, decimals_sd)
    n = _exact_n(n, "n")
    items = _exact_n(items, "items")
    if m_rep is None or s_rep is None or n is None:
        raise AnalysisError("GRIMMER needs a printed mean, SD and n")
    if m_rep.decimals is None or s_rep.decimals is None:
        raise AnalysisError("GRIMMER needs the decimals the mean and the SD were printed with")
    if n < 2:
        raise AnalysisError("GRIMMER needs n >= 2 (an SD of one value is undefined)")
    reported = f"mean {m_rep}, SD {s_rep} (n = {n}{', items = ' + str(items) if items > 1 else ''})"
    sd_lo, sd_hi = _fraction(s_rep)
    sd_lo, sd_hi = max(sd_lo, Fraction(0)) * items, sd_hi * items  # SD of the integer totals
    sums = _grim_sums(m_rep, n, items) if n * items < 10**m_rep.decimals else None
    if sums is None:  # GRIM cannot discriminate: every sum near n * mean * items is allowed
        lo, hi = _fraction(m_rep)
        sums = list(range(math.ceil(lo * n * items), math.floor(hi * n * items) + 1))
    if not sums:
        return Finding("grimmer", INCONSISTENT, reported, "", "the mean itself fails GRIM, so no SD can fit")
    if (n - 1) * (sd_hi**2 - sd_lo**2) >= 2:
        return Finding(
            "grimmer",
            UNCHECKABLE,
            reported,
            "",
            f"the SD's rounding interval spans at least two integer sums of squares at n = {n}, so every "
            "SD printed this way is possible and GRIMMER cannot discriminate",
        )
    for s in sums:
        q_lo = (n - 1) * sd_lo**2 + Fraction(s * s, n)
        q_hi = (n - 1) * sd_hi**2 + Fraction(s * s, n)
        base, rest = divmod(s, n)
        q_min = n * base * base + rest * (2 * base + 1)
        q = max(math.ceil(q_lo), q_min)
        if q % 2 != s % 2:
            q += 1
        while q <= q_hi:
            exact = _integers_with(n, s, q)
            if exact is not False:
                sd_found = math.sqrt(float(q - Fraction(s * s, n)) / (n - 1)) / items
                how = (
                    "some n integers have this sum and sum of squares (exhaustive search)"
                    if exact
                    else "the necessary conditions hold (n too large for the exhaustive search)"
                )
                return Finding(
                    "grimmer",
                    CONSISTENT,
                    reported,
                    f"sum {s}, sum of squares {q}: SD {_fmt(sd_found)}",
                    f"the SD is possible with the mean: {how}; assumes integer totals",
                    sd_found,
                    sd_found,
                )
            q += 2
    return Finding(
        "grimmer",
        INCONSISTENT,
        reported,
        "",
        "no n integers have a sum and a sum of squares that reproduce the printed mean and SD together "
        "(integer sum of squares of matching parity, checked exhaustively for small n); assumes integer "
        "totals (no prorated or imputed values)",
    )


_SEARCH_MAX_N = 40
_SEARCH_BUDGET = 200_000


def _integers_with(n: int, total: int, squares: int) -> bool | None:
    """Are there n integers with this sum and sum of squares? An exhaustive depth-first search over non-decreasing
    values (Cauchy-Schwarz bound k * q >= s^2 prunes it); True / False, or None when n is large or the search
    exceeds its budget (then only the necessary conditions of analytic GRIMMER have been checked). Needed because
    parity and the integer sum of squares are necessary, not sufficient: n = 3, sum 21, sum of squares 167 passes
    both, yet no three integers have them."""
    if n > _SEARCH_MAX_N:
        return None
    budget = [_SEARCH_BUDGET]
    cache: dict = {}
    spread = math.isqrt(max(squares * n - total * total, 0) // n) + 2
    start = total // n - spread - 1

    def search(k: int, s: int, q: int, lo: int) -> bool:
        if k == 1:
            return s >= lo and s * s == q
        key = (k, s, q, lo)
        if key in cache:
            return cache[key]
        budget[0] -= 1
        if budget[0] < 0:
            raise TimeoutError
        found = False
        for x in range(lo, s // k + 1):  # the smallest of k non-decreasing values is <= their mean
            rs, rq = s - x, q - x * x
            if rq < 0:
                continue
            if (k - 1) * rq < rs * rs:
                continue
            if search(k - 1, rs, rq, x):
                found = True
                break
        cache[key] = found
        return found

    try:
        return search(n, total, squares, start)
    except TimeoutError:
        return None


# ------------------------------------------------------------------------------------------------ range checks


def max_sd(mean: float, scale_min: float, scale_max: float, n: int | None) -> float:
    """Largest sample SD (n - 1 denominator) of n values in [min, max] with this mean: the values sit at the two
    ends, sum of squared deviations n * (m - min) * (max - m). Without n the bound for n = 2 (the loosest)."""
    n_eff = 2 if n is None else n
    spread = max(mean - scale_min, 0.0) * max(scale_max - mean, 0.0)
    return math.sqrt(n_eff / (n_eff - 1) * spread) if n_eff > 1 else 0.0


def check_range(
    mean=None,
    sd=None,
    n: int | None = None,
    *,
    scale_min: float,
    scale_max: float,
    decimals_mean: int | None = None,
    decimals_sd: int | None = None,
    what: str = "",
) -> list[Finding]:
    """Range checks against the instrument registry: the mean's rounding interval must meet [min, max]; the SD
    must not exceed ``max_sd`` at the most favourable mean in its interval (the one nearest the midpoint)."""
    if not scale_min < scale_max:
        raise AnalysisError(f"scale range {scale_min}-{scale_max} is empty; check the instrument registry")
    label = f" ({what})" if what else ""
    out = []
    m_rep, s_rep = as_reported(mean, decimals_mean), as_reported(sd, decimals_sd)
    n = _exact_n(n, "n")
    if m_rep is not None:
        inside = m_rep.high >= scale_min - _EPS and m_rep.low <= scale_max + _EPS
        out.append(
            Finding(
                "range_mean",
                CONSISTENT if inside else INCONSISTENT,
                f"mean {m_rep}{label}",
                f"range {scale_min:g}-{scale_max:g}",
                "the mean lies in the scale's range"
                if inside
                else "the mean lies outside the scale's range: no set of valid scores has it",
            )
        )
    if s_rep is not None:
        if s_rep.high < 0:
            out.append(Finding("range_sd", INCONSISTENT, f"SD {s_rep}{label}", "SD >= 0", "a negative SD"))
            return out
        mid = (scale_min + scale_max) / 2.0
        m_best = mid if m_rep is None else min(max(mid, m_rep.low), m_rep.high)
        m_best = min(max(m_best, scale_min), scale_max)
        bound = max_sd(m_best, scale_min, scale_max, n)
        ok = s_rep.low <= bound + _EPS
        basis = f"n = {n}" if n is not None else "n unknown, the loosest bound (n = 2) used"
        out.append(
            Finding(
                "range_sd",
                CONSISTENT if ok else INCONSISTENT,
                f"SD {s_rep}{label}",
                f"largest possible SD {_fmt(bound)} ({basis})",
                "the SD is possible on this range"
                if ok
                else "the SD is larger than any set of valid scores with this mean and n can have",
                0.0,
                bound,
            )
        )
    return out


# ------------------------------------------------------------------------------------------- recomputed tests


def _welch_df(v1: float, v2: float, n1: int, n2: int) -> float:
    return (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))


def welch_df_range(s1: Reported, s2: Reported, n1: int, n2: int) -> tuple[float, float]:
    """Welch-Satterthwaite df over the SD box: df depends on s1^2/n1 : s2^2/n2 only, rises to its maximum
    n1 + n2 - 2 at ratio (n1 - 1)/(n2 - 1) and falls on both sides, so the ends of the ratio range and that
    interior point bound it exactly."""

    def df_at(ratio: float) -> float:
        return _welch_df(ratio, 1.0, n1, n2)

    lo1, hi1 = max(s1.low, 1e-300) ** 2 / n1, s1.high**2 / n1
    lo2, hi2 = max(s2.low, 1e-300) ** 2 / n2, s2.high**2 / n2
    r_lo, r_hi = lo1 / hi2, hi1 / lo2
    values = [df_at(r_lo), df_at(r_hi)]
    r_star = (n1 - 1) / (n2 - 1)
    if r_lo <= r_star <= r_hi:
        values.append(df_at(r_star))
    return min(values), max(values)


def _two_sample(m1: Reported, s1: Reported, n1: int, m2: Reported, s2: Reported, n2: int, test: str):
    """Point t, df and the |t| and p ranges over the rounding box. |t| = |d| / SE with d = m1 - m2 linear in the
    means and SE increasing in both SDs, so the extremes sit at the box's corners."""
    d_lo, d_hi = m1.low - m2.high, m1.high - m2.low
    d_min = 0.0 if d_lo <= 0.0 <= d_hi else min(abs(d_lo), abs(d_hi))
    d_max = max(abs(d_lo), abs(d_hi))

    def se(a: float, b: float) -> float:
        if test == "student_t":
            pooled = ((n1 - 1) * a * a + (n2 - 1) * b * b) / (n1 + n2 - 2)
            return math.sqrt(pooled * (1.0 / n1 + 1.0 / n2))
        if test == "z_from_se":
            return math.sqrt(a * a + b * b)
        return math.sqrt(a * a / n1 + b * b / n2)

    se_lo, se_hi = se(max(s1.low, 0.0), max(s2.low, 0.0)), se(s1.high, s2.high)
    se_point = se(s1.value, s2.value)
    if se_point <= 0 or se_hi <= 0:
        raise AnalysisError("the standard error of the difference is zero; SDs (or SEs) must be positive")
    t_point = (m1.value - m2.value) / se_point
    t_lo, t_hi = d_min / se_hi, (d_max / se_lo if se_lo > 0 else math.inf)
    if test == "student_t":
        df_point = df_lo = df_hi = float(n1 + n2 - 2)
    elif test == "z_from_se":
        df_point, df_lo, df_hi = math.inf, math.inf, math.inf
    else:
        df_point = _welch_df(s1.value**2 / n1, s2.value**2 / n2, n1, n2)
        df_lo, df_hi = welch_df_range(s1, s2, n1, n2)
    p_lo = _p_two_sided(t_hi, df_hi)  # p falls with |t| and with df
    p_hi = _p_two_sided(t_lo, df_lo)
    return t_point, df_point, (t_lo, t_hi), (p_lo, p_hi), _p_two_sided(abs(t_point), df_point)


_TEST_METHOD = {
    "student_t": "Student two-sample t, pooled SD, df = n1 + n2 - 2",
    "welch_t": "Welch two-sample t, Welch-Satterthwaite df",
    "z_from_se": "z = (m1 - m2) / sqrt(se1^2 + se2^2), arm estimates taken as independent",
}


def recompute_t(
    mean1, sd1, n1, mean2, sd2, n2, *, t_reported=None, p_reported=None, test: str = "welch_t", alpha: float = 0.05
) -> list[Finding]:
    """Recompute a two-sample test from printed arm summaries and compare it with the printed t and / or p.

    ``test``: ``"welch_t"`` (default), ``"student_t"`` (pooled SD; a one-way ANOVA on two groups is this test,
    F = t^2) or ``"z_from_se"`` (``sd1``, ``sd2`` are the arms' standard errors; normal reference). Returns one
    finding per printed quantity (statistic, p); with neither printed, one 'cannot be checked' finding that
    still shows the recomputed p."""
    if test not in _TEST_METHOD:
        raise AnalysisError(f"unknown two-sample test '{test}'; choose from {sorted(_TEST_METHOD)}")
    reps = [as_reported(x) for x in (mean1, sd1, mean2, sd2)]
    if any(r is None for r in reps):
        raise AnalysisError("a two-sample test needs both arms' mean and SD (or SE for z_from_se)")
    m1, s1, m2, s2 = reps
    n1, n2 = _exact_n(n1, "n1"), _exact_n(n2, "n2")
    if test != "z_from_se" and (n1 is None or n2 is None or n1 < 2 or n2 < 2):
        raise AnalysisError("a two-sample t-test needs n >= 2 in each arm")
    n1, n2 = n1 or 1, n2 or 1
    t_point, df_point, (t_lo, t_hi), (p_lo, p_hi), p_point = _two_sample(m1, s1, n1, m2, s2, n2, test)
    method = _TEST_METHOD[test]
    estimate = Estimate(
        "two-sample test of mean1 - mean2",
        m1.value - m2.value,
        df=df_point,
        statistic=t_point,
        p=p_point,
        method=method,
    )
    rule = {"student_t": "student_t", "welch_t": "welch_t", "z_from_se": "z_from_se"}[test]
    stat_name = "z" if test == "z_from_se" else "t"
    out = []
    t_rep, p_rep = as_reported(t_reported), as_reported(p_reported)
    if t_rep is not None:
        out.append(_compare_statistic(rule + "_statistic", t_rep, t_lo, t_hi, stat_name, method))
    if p_rep is not None:
        out.append(_compare_p(rule + "_p", p_rep, p_lo, p_hi, p_point, method, alpha, estimate))
    if not out:
        out.append(
            Finding(
                rule,
                UNCHECKABLE,
                "no statistic or p printed",
                f"{stat_name} = {_fmt(t_point)}, p = {_range_text(p_lo, p_hi)} ({method})",
                "nothing printed to compare with",
                p_lo,
                p_hi,
                estimate,
            )
        )
    return out


def recompute_correlation_p(r, n, p_reported, *, alpha: float = 0.05) -> Finding:
    """p of a Pearson correlation from r and n: t = r sqrt(n - 2) / sqrt(1 - r^2) on n - 2 df, two-sided. |t| rises
    with |r|, so the ends of r's rounding interval bound p."""
    r_rep, p_rep = as_reported(r), as_reported(p_reported)
    n = _exact_n(n, "n")
    if r_rep is None or n is None or p_rep is None:
        raise AnalysisError("a correlation's p needs r, n and the printed p")
    if n < 3:
        raise AnalysisError("a correlation test needs n >= 3 (df = n - 2)")
    if abs(r_rep.value) > 1:
        return Finding("correlation_p", INCONSISTENT, f"r = {r_rep}", "|r| <= 1", "a correlation beyond +-1")

    def p_of(rr: float) -> float:
        rr = min(abs(rr), 1.0)
        if rr >= 1.0:
            return 0.0
        return _p_two_sided(rr * math.sqrt(n - 2) / math.sqrt(1.0 - rr * rr), n - 2)

    a, b = abs(r_rep.low), abs(r_rep.high)
    r_min = 0.0 if r_rep.low <= 0 <= r_rep.high else min(a, b)
    r_max = max(a, b)
    method = f"t = r sqrt(n - 2) / sqrt(1 - r^2), df = {n - 2}"
    t_point = r_rep.value * math.sqrt(n - 2) / math.sqrt(max(1.0 - r_rep.value**2, 1e-300))
    estimate = Estimate("correlation", r_rep.value, df=n - 2, statistic=t_point, p=p_of(r_rep.value), method=method)
    finding = _compare_p("correlation_p", p_rep, p_of(r_max), p_of(r_min), p_of(r_rep.value), method, alpha, estimate)
    return Finding(
        finding.rule,
        finding.severity,
        f"r = {r_rep}, n = {n}, {finding.reported}",
        finding.recomputed,
        finding.detail,
        finding.low,
        finding.high,
        estimate,
    )


def _parse_counts(counts) -> np.ndarray:
    if isinstance(counts, str):
        rows = [[float(c) for c in row.split(",") if c.strip()] for row in counts.split(";") if row.strip()]
        if not rows or len({len(r) for r in rows}) != 1:
            raise InputError(f"counts '{counts}' must be rows of equal length, e.g. '12,30;20,25'")
        counts = rows
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or min(table.shape) < 2:
        raise AnalysisError("a chi-square test needs a table of at least 2 x 2 counts")
    if (table < 0).any() or (table % 1 != 0).any():
        raise AnalysisError("counts must be whole numbers >= 0")
    return table


def pearson_chisq(table: np.ndarray, correction: bool = False) -> tuple[float, int]:
    """Pearson's X^2 for independence and its df; ``correction`` = Yates for 2 x 2 tables (|O - E| reduced by
    min(0.5, |O - E|), as R's chisq.test does)."""
    total = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    if (expected == 0).any():
        raise AnalysisError("a row or column of the table sums to zero; chi-square is undefined")
    dev = np.abs(table - expected)
    if correction and table.shape == (2, 2):
        dev = dev - np.minimum(0.5, dev)
    df = (table.shape[0] - 1) * (table.shape[1] - 1)
    return float((dev**2 / expected).sum()), int(df)


def recompute_chisq(
    counts=None,
    *,
    chisq_reported=None,
    df: int | None = None,
    p_reported=None,
    correction: bool = False,
    alpha: float = 0.05,
) -> list[Finding]:
    """A chi-square test: from the counts (exact, so the recomputed X^2 is a point) compare the printed X^2 and p;
    without counts, the p of the printed X^2 on ``df`` (its rounding interval bounds p)."""
    chi_rep, p_rep = as_reported(chisq_reported), as_reported(p_reported)
    rule = "chisq_yates" if correction else "chisq"
    out = []
    if counts is not None and not (isinstance(counts, str) and not counts.strip()):
        table = _parse_counts(counts)
        value, table_df = pearson_chisq(table, correction)
        if df is not None and int(df) != table_df:
            out.append(
                Finding(
                    rule + "_df",
                    INCONSISTENT,
                    f"df = {df}",
                    f"df = {table_df}",
                    f"a {table.shape[0]} x {table.shape[1]} table has {table_df} df",
                )
            )
        p_value = float(stats.chi2.sf(value, table_df))
        method = (
            f"Pearson chi-square{' with Yates correction' if correction and table.shape == (2, 2) else ''}, "
            f"df = {table_df}"
        )
        estimate = Estimate("chi-square", value, df=table_df, statistic=value, p=p_value, method=method)
        if chi_rep is not None:
            out.append(_compare_statistic(rule + "_statistic", chi_rep, value, value, "X^2", method))
        if p_rep is not None:
            out.append(_compare_p(rule + "_p", p_rep, p_value, p_value, p_value, method, alpha, estimate))
        if not out:
            out.append(
                Finding(
                    rule,
                    UNCHECKABLE,
                    "no statistic or p printed",
                    f"X^2 = {_fmt(value)}, p = {_fmt(p_value)} ({method})",
                    "nothing printed to compare with",
                    p_value,
                    p_value,
                    estimate,
                )
            )
        return out
    if chi_rep is None or p_rep is None or df is None:
        raise AnalysisError("a chi-square check needs the counts, or the printed X^2 with its df and p")
    lo, hi = max(chi_rep.low, 0.0), chi_rep.high
    method = f"chi-square reference, df = {int(df)}"
    return [
        _compare_p(
            rule + "_p",
            p_rep,
            float(stats.chi2.sf(hi, df)),
            float(stats.chi2.sf(lo, df)),
            float(stats.chi2.sf(chi_rep.value, df)),
            method,
            alpha,
        )
    ]


def check_statistic_p(statistic, p_reported, *, kind: str = "t", df=None, df2=None, alpha: float = 0.05) -> Finding:
    """statcheck's core check: the p of a printed statistic. ``kind``: 't' (df may be unknown: two-sided p falls as
    df rises, so df in [1, inf) bounds it), 'z', 'chisq' (df needed) or 'F' (df and df2 needed)."""
    stat_rep, p_rep = as_reported(statistic), as_reported(p_reported)
    if stat_rep is None or p_rep is None:
        raise AnalysisError("a statistic's p check needs the statistic and the printed p")
    lo, hi = max(abs(stat_rep.value) - stat_rep.half_unit, 0.0), abs(stat_rep.value) + stat_rep.half_unit
    if kind == "t":
        if df is None or (not isinstance(df, str) and pd.isna(df)):
            p_lo, p_hi = _p_two_sided(hi, None), _p_two_sided(lo, 1.0)
            method = "two-sided t, df not printed: bounded over df in [1, inf)"
        else:
            p_lo, p_hi = _p_two_sided(hi, float(df)), _p_two_sided(lo, float(df))
            method = f"two-sided t, df = {float(df):g}"
    elif kind == "z":
        p_lo, p_hi, method = _p_two_sided(hi, None), _p_two_sided(lo, None), "two-sided normal"
    elif kind == "chisq" and df is not None:
        p_lo, p_hi, method = float(stats.chi2.sf(hi, df)), float(stats.chi2.sf(lo, df)), f"chi-square, df = {df}"
    elif kind == "F" and df is not None and df2 is not None:
        p_lo, p_hi = float(stats.f.sf(hi, df, df2)), float(stats.f.sf(lo, df, df2))
        method = f"F({df}, {df2})"
    else:
        return Finding(
            f"{kind}_p",
            UNCHECKABLE,
            f"{kind} = {stat_rep}, p {p_rep.relation} {p_rep}",
            "",
            f"a {kind} statistic's p needs its degrees of freedom, which are not printed",
        )
    finding = _compare_p(f"{kind}_statistic_p", p_rep, p_lo, p_hi, math.nan, method, alpha)
    return Finding(
        finding.rule,
        finding.severity,
        f"{kind} = {stat_rep}, {finding.reported}",
        finding.recomputed,
        finding.detail,
        finding.low,
        finding.high,
    )


def recompute_mann_whitney_p(u, n1: int, n2: int, p_reported, *, alpha: float = 0.05) -> Finding:
    """A Mann-Whitney U's p by the normal approximation. Without ties and with the continuity correction,
    z = (|U - n1 n2 / 2| - 0.5) / sqrt(n1 n2 (n1 + n2 + 1) / 12) gives the *largest* p the printed U allows (ties
    shrink the SD and so the p; no correction gives a smaller p); a printed p above that bound is inconsistent,
    one below it is possible with ties (which the summaries do not show)."""
    u_rep, p_rep = as_reported(u), as_reported(p_reported)
    n1, n2 = _exact_n(n1, "n1"), _exact_n(n2, "n2")
    if u_rep is None or p_rep is None or n1 is None or n2 is None:
        raise AnalysisError("a Mann-Whitney check needs U, both n and the printed p")
    if u_rep.high < 0 or u_rep.low > n1 * n2:
        return Finding(
            "mann_whitney_p",
            INCONSISTENT,
            f"U = {u_rep}",
            f"0 <= U <= {n1 * n2}",
            "U lies outside its possible range 0 to n1 * n2",
        )
    centre, sd = n1 * n2 / 2.0, math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0)
    dist = 0.0 if u_rep.low <= centre <= u_rep.high else min(abs(u_rep.low - centre), abs(u_rep.high - centre))
    p_max = _p_two_sided(max(dist - 0.5, 0.0) / sd, None)
    method = "normal approximation; largest p (no ties, continuity corrected); ties lower it"
    finding = _compare_p("mann_whitney_p", p_rep, 0.0, p_max, p_max, method, alpha)
    detail = (
        finding.detail
        if finding.severity == INCONSISTENT
        else f"possible: p <= {_fmt(p_max)} without ties; ties (not printed) can lower p to the printed value"
    )
    return Finding(
        finding.rule,
        finding.severity,
        f"U = {u_rep}, n = {n1}, {n2}, {finding.reported}",
        f"p <= {_fmt(p_max)} ({method})",
        detail,
        0.0,
        p_max,
    )


# ------------------------------------------------------------------------------------ estimate, CI and p together


def check_ci_p_consistency(
    estimate,
    ci_low,
    ci_high,
    p=None,
    *,
    level: float = 0.95,
    scale: str = "difference",
    df: float | None = None,
    alpha: float = 0.05,
) -> list[Finding]:
    """Internal consistency of a printed estimate, its CI and its p, assuming a symmetric Wald / t interval on
    the difference scale (``scale="ratio"``: on the log scale, null 1):

    - ``ci_contains_estimate``: the estimate must lie inside its CI;
    - ``ci_centred``: the CI's midpoint (geometric for ratios) must match the estimate within rounding;
    - ``ci_p``: SE = (upper - lower) / (2 q) with q the normal (or t_df) quantile, p = 2 P(|Z| > |est| / SE),
      bounded over the rounding box, must meet the printed p. The midpoint-based p is shown as well."""
    if scale not in ("difference", "ratio"):
        raise AnalysisError(f"scale must be 'difference' or 'ratio', not '{scale}'")
    if not 0 < level < 1:
        raise AnalysisError(f"CI level must be in (0, 1), not {level}")
    est, lo, hi, p_rep = as_reported(estimate), as_reported(ci_low), as_reported(ci_high), as_reported(p)
    if est is None or lo is None or hi is None:
        raise AnalysisError("a CI check needs the estimate and both CI limits")
    shown = f"{est} ({level:.0%} CI {lo} to {hi})"
    if lo.value > hi.value:
        return [Finding("ci_order", INCONSISTENT, shown, "", "the lower CI limit exceeds the upper one")]
    if scale == "ratio":
        if min(est.low, lo.low, hi.low) <= 0:
            raise AnalysisError("a ratio, and its CI limits, must be positive (give scale='difference' otherwise)")
        tr = math.log
    else:

        def tr(x: float) -> float:
            return x

    e_lo, e_hi, e_pt = tr(est.low), tr(est.high), tr(est.value)
    l_lo, l_hi, l_pt = tr(lo.low), tr(lo.high), tr(lo.value)
    u_lo, u_hi, u_pt = tr(hi.low), tr(hi.high), tr(hi.value)
    out = []
    inside = _overlap(e_lo, e_hi, l_lo, u_hi)
    out.append(
        Finding(
            "ci_contains_estimate",
            CONSISTENT if inside else INCONSISTENT,
            shown,
            "",
            "the estimate lies inside its CI"
            if inside
            else "the estimate lies outside its own CI: estimate, CI (or both) are misprinted, or belong to "
            "different quantities",
        )
    )
    c_lo, c_hi, c_pt = (l_lo + u_lo) / 2, (l_hi + u_hi) / 2, (l_pt + u_pt) / 2
    back = math.exp if scale == "ratio" else (lambda x: x)
    centred = _overlap(e_lo, e_hi, c_lo, c_hi)
    detail = (
        "the CI is centred on the estimate (a symmetric Wald / t interval)"
        if centred
        else f"the CI's {'geometric ' if scale == 'ratio' else ''}midpoint is {_fmt(back(c_pt))}, not {est}"
    )
    if not centred and _overlap(-e_hi, -e_lo, c_lo, c_hi):
        detail += (
            f"; it is centred on {'1 / ' if scale == 'ratio' else '-'}{est}: the estimate and the CI use "
            "opposite signs (group order)"
        )
    elif not centred:
        detail += " (an asymmetric interval, e.g. from a transformation or bootstrap, would explain this)"
    out.append(
        Finding(
            "ci_centred",
            CONSISTENT if centred else INCONSISTENT,
            shown,
            f"midpoint {_range_text(back(c_lo), back(c_hi))}",
            detail,
        )
    )
    if p_rep is None:
        return out
    q = float(stats.norm.ppf(0.5 + level / 2)) if df is None else float(stats.t.ppf(0.5 + level / 2, df))
    se_lo, se_hi = max(u_lo - l_hi, 0.0) / (2 * q), (u_hi - l_lo) / (2 * q)
    if se_hi <= 0:
        raise AnalysisError("the CI has zero width; a p cannot be derived from it")
    a_min = 0.0 if e_lo <= 0 <= e_hi else min(abs(e_lo), abs(e_hi))
    a_max = max(abs(e_lo), abs(e_hi))
    ref = None if df is None else float(df)
    p_lo = _p_two_sided(a_max / se_lo if se_lo > 0 else math.inf, ref)
    p_hi = _p_two_sided(a_min / se_hi, ref)
    se_pt = (u_pt - l_pt) / (2 * q)
    p_mid = _p_two_sided(abs(c_pt) / se_pt, ref)
    method = (
        f"SE from the CI width ({level:.0%}, {'normal' if df is None else f't on {df:g} df'}"
        f"{', log scale' if scale == 'ratio' else ''}), p of estimate / SE"
    )
    found = _compare_p("ci_p", p_rep, p_lo, p_hi, _p_two_sided(abs(e_pt) / se_pt, ref), method, alpha)
    excludes_null = l_lo > 0 or u_hi < 0
    contains_null_surely = l_hi < 0 < u_lo
    extra = f" The p from the CI's own midpoint is {_fmt(p_mid)}."
    if excludes_null and p_rep.low >= alpha and p_rep.relation != "<":
        extra += f" The CI excludes the null while p >= {alpha:g}: they disagree on significance."
    if contains_null_surely and p_rep.high < alpha and p_rep.relation != ">":
        extra += f" The CI contains the null while p < {alpha:g}: they disagree on significance."
    out.append(
        Finding(
            found.rule,
            found.severity,
            f"{shown}, p {p_rep.relation} {p_rep}",
            found.recomputed,
            found.detail + extra,
            found.low,
            found.high,
        )
    )
    return out


def check_repeated_p(p_values: list, labels: list[str]) -> Finding:
    """One quantity printed twice (e.g. in the text and in a table): their p rounding intervals must meet."""
    reps = [as_reported(p) for p in p_values]
    if len(reps) < 2 or any(r is None for r in reps):
        raise AnalysisError("a repeated-p check needs at least two printed p-values")
    lo, hi = max(r.low for r in reps), min(r.high for r in reps)
    shown = "; ".join(f"{label}: p {r.relation} {r}" for label, r in zip(labels, reps))
    ok = lo <= hi + _EPS or any(r.relation != "=" for r in reps)
    return Finding(
        "repeated_p",
        CONSISTENT if ok else INCONSISTENT,
        shown,
        "",
        "the printed p-values of the same quantity agree within rounding"
        if ok
        else "the same quantity is printed with p-values that cannot both be right",
    )


# ------------------------------------------------------------------------------------------ a table of reports

ALIASES = {
    "n_imr": "n1",
    "mean_imr": "mean1",
    "sd_imr": "sd1",
    "se_imr": "se1",
    "n_tau": "n2",
    "mean_tau": "mean2",
    "sd_tau": "sd2",
    "se_tau": "se2",
}
MISSING_TEXT = {"", "na", "nan", "nr", "none", "n/a"}
AUDIT_COLUMNS = {  # every column audit_table reads; all optional but `study` (published_outcomes.csv names work too)
    "study": "study (first author year)",
    "source": "citation + table / page",
    "quote": "verbatim passage",
    "instrument": "registry key (range, integer totals)",
    "analysis": "itt rows hold model-based means",
    "observed": "true / false: means and SDs of observed values (GRIM / GRIMMER apply only then)",
    "test": f"the named test: one of {', '.join(t for t in TESTS if t)} (empty: not named)",
    "n1": "arm 1 n",
    "mean1": "arm 1 mean",
    "sd1": "arm 1 SD",
    "se1": "arm 1 SE",
    "n2": "arm 2 n",
    "mean2": "arm 2 mean",
    "sd2": "arm 2 SD",
    "se2": "arm 2 SE",
    "statistic": "printed t / z / X^2 / U",
    "df": "printed df",
    "p": "printed p ('0.45', '< .001')",
    "r": "printed correlation",
    "n": "n of the correlation",
    "counts": "contingency table '12,30;20,25'",
    "effect": "printed estimate",
    "ci_low": "lower CI limit",
    "ci_high": "upper CI limit",
    "ci_level": "CI level (default 0.95)",
    "effect_scale": "difference (default) or ratio",
    "quantity_id": "rows with the same id report the same quantity (their p must agree)",
    "scale_min": "range override",
    "scale_max": "range override",
    "integer": "true / false override",
    "items": "values are per-item means of this many integer items (default 1)",
}


def read_audit_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV of printed numbers *as text*, so every number keeps the decimals it was printed with."""
    from imrstats.core.io import FORMATS, read_table, why_not_found

    path = Path(path)
    if not path.exists():
        why = why_not_found(path)
        raise InputError(f"{path}: {'file not found' if why == 'no such file or folder' else why}")
    if not path.is_dir() and path.suffix.lower() not in FORMATS:
        raise InputError(f"{path}: unsupported format '{path.suffix}' (accepted: {', '.join(FORMATS)})")
    frame = read_table(path)  # missing, a folder, empty, not UTF-8, a row with the wrong number of fields: InputError
    text = [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])]
    frame[text] = frame[text].fillna("")
    if frame.empty:
        raise InputError(f"{path}: no data rows (only a header)")
    return frame


def decimal_comma_cells(frame: pd.DataFrame, name: str | None = None) -> list[str]:
    """One line per number printed with a decimal comma (40,5), which the audit reads as 40.5 as ``imrstats
    check`` does (`imrstats.data.check.decimal_comma_mask`): ``name:line column 'value' read as value``."""
    from imrstats.data.check import decimal_comma_mask

    out = []
    lines = [_cell(row, "row") or i + 2 for i, row in enumerate(frame.to_dict("records"))]
    for column in frame.columns:
        if ALIASES.get(column, column) not in NUMBER_COLUMNS:
            continue
        text = frame[column].astype("string").str.replace(_RELATION, "", regex=True).str.strip()
        for idx in np.flatnonzero(decimal_comma_mask(text).to_numpy()):
            value = str(frame[column].iloc[idx]).strip()
            line = f"{name}:{lines[idx]}" if name else str(lines[idx])
            out.append(f"{line} column {column}: '{value}' has a decimal comma, read as {value.replace(',', '.')}")
    return out


def _cell(row: dict, key: str):
    value = row.get(key)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, str):
        return None if value.strip().lower() in MISSING_TEXT else value.strip()
    return value


def _flag(row: dict, key: str) -> bool | None:
    value = _cell(row, key)
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "1.0"):
        return True
    if text in ("false", "0", "no", "0.0"):
        return False
    raise InputError(f"column '{key}' must be true or false, not '{value}'")


def _scale(row: dict, registry: dict) -> tuple[float | None, float | None, bool | None, str]:
    instrument = _cell(row, "instrument")
    inst = registry.get(str(instrument)) if instrument is not None else None
    lo, hi = _cell(row, "scale_min"), _cell(row, "scale_max")
    lo = as_reported(lo).value if lo is not None else (inst.min if inst else None)
    hi = as_reported(hi).value if hi is not None else (inst.max if inst else None)
    integer = _flag(row, "integer")
    if integer is None and inst is not None:
        integer = inst.integer
    note = ""
    if inst is not None and inst.prorate_max_missing > 0 and _cell(row, "integer") is None:
        note = (
            f"; {inst.short} totals may be prorated when items are missing, which would make them "
            "non-integer (not stated in the source)"
        )
    return lo, hi, integer, note


def _arm_findings(row: dict, k: int, scale, observed: bool) -> list[Finding]:
    lo, hi, integer, note = scale
    mean, sd, n = _cell(row, f"mean{k}"), _cell(row, f"sd{k}"), _cell(row, f"n{k}")
    if mean is None:
        return []
    items = _exact_n(_cell(row, "items") or 1, "items")
    out = []
    what = f"arm {k}"
    if lo is not None and hi is not None:
        out += check_range(mean, sd, _exact_n(n, f"n{k}"), scale_min=lo, scale_max=hi, what=what)
    if not observed:
        out.append(
            Finding(
                "grim",
                UNCHECKABLE,
                f"mean {mean} ({what})",
                "",
                "a model-based (e.g. ITT, multiply imputed) mean need not be a mean of integers",
            )
        )
        return out
    if integer is not True:
        out.append(
            Finding(
                "grim",
                UNCHECKABLE,
                f"mean {mean} ({what})",
                "",
                "the scale's totals are not known to be integers (instrument not in the registry, or "
                "not integer-valued); give `integer` = true to apply GRIM",
            )
        )
        return out
    if n is None:
        out.append(Finding("grim", UNCHECKABLE, f"mean {mean} ({what})", "", "n not printed"))
        return out
    grim_finding = grim(mean, n, items=items)
    out.append(_with_note(grim_finding, f" ({what}){note}"))
    if sd is not None and _exact_n(n, "n") >= 2 and grim_finding.severity != INCONSISTENT:
        out.append(_with_note(grimmer(mean, sd, n, items=items), f" ({what}){note}"))
    return out


def _with_note(finding: Finding, note: str) -> Finding:
    return Finding(
        finding.rule,
        finding.severity,
        finding.reported,
        finding.recomputed,
        finding.detail + note,
        finding.low,
        finding.high,
        finding.estimate,
    )


def _unnamed_test(row: dict, alpha: float) -> list[Finding]:
    """A p printed next to arm summaries without a named test: show what the standard tests give, as context."""
    p = _cell(row, "p")
    sds = all(_cell(row, c) is not None for c in ("mean1", "sd1", "n1", "mean2", "sd2", "n2"))
    ses = all(_cell(row, c) is not None for c in ("mean1", "se1", "mean2", "se2"))
    if p is None or not (sds or ses):
        return []
    results = []
    tests = ("student_t", "welch_t") if sds else ("z_from_se",)
    for test in tests:
        cols = ("sd1", "sd2") if test != "z_from_se" else ("se1", "se2")
        found = recompute_t(
            _cell(row, "mean1"),
            _cell(row, cols[0]),
            _cell(row, "n1"),
            _cell(row, "mean2"),
            _cell(row, cols[1]),
            _cell(row, "n2"),
            p_reported=p,
            test=test,
            alpha=alpha,
        )[0]
        results.append((test, found))
    agree = [t for t, f in results if f.severity == CONSISTENT]
    recomputed = "; ".join(f"{t}: {f.recomputed}" for t, f in results)
    if agree:
        detail = f"the test is not named; {', '.join(agree)} on these summaries reproduces the printed p"
    else:
        detail = (
            "the test is not named; no standard test on these summaries reproduces the printed p, so the "
            "p comes from another analysis (e.g. covariate-adjusted, a model contrast or another sample)"
        )
    first = results[0][1]
    return [
        Finding(
            "two_sample_test_not_named",
            UNCHECKABLE,
            first.reported,
            recomputed,
            detail,
            first.low,
            first.high,
            first.estimate,
        )
    ]


def _test_findings(row: dict, alpha: float) -> list[Finding]:
    test = (_cell(row, "test") or "").lower()
    if test not in TESTS:
        raise InputError(f"unknown test '{test}'; use one of {', '.join(t for t in TESTS if t)} or leave empty")
    p, stat, df = _cell(row, "p"), _cell(row, "statistic"), _cell(row, "df")
    if test in ("student_t", "welch_t"):
        return recompute_t(
            _cell(row, "mean1"),
            _cell(row, "sd1"),
            _cell(row, "n1"),
            _cell(row, "mean2"),
            _cell(row, "sd2"),
            _cell(row, "n2"),
            t_reported=stat,
            p_reported=p,
            test=test,
            alpha=alpha,
        )
    if test == "z_from_se":
        return recompute_t(
            _cell(row, "mean1"),
            _cell(row, "se1"),
            _cell(row, "n1"),
            _cell(row, "mean2"),
            _cell(row, "se2"),
            _cell(row, "n2"),
            t_reported=stat,
            p_reported=p,
            test=test,
            alpha=alpha,
        )
    if test == "correlation":
        return [recompute_correlation_p(_cell(row, "r"), _cell(row, "n"), p, alpha=alpha)]
    if test in ("chisq", "chisq_yates"):
        return recompute_chisq(
            _cell(row, "counts"),
            chisq_reported=stat,
            df=None if df is None else int(as_reported(df).value),
            p_reported=p,
            correction=test == "chisq_yates",
            alpha=alpha,
        )
    if test in ("t", "z"):
        return [check_statistic_p(stat, p, kind=test, df=None if df is None else as_reported(df).value, alpha=alpha)]
    if test == "mann_whitney":
        return [recompute_mann_whitney_p(stat, _cell(row, "n1"), _cell(row, "n2"), p, alpha=alpha)]
    return _unnamed_test(row, alpha)


def _ci_findings(row: dict, alpha: float) -> list[Finding]:
    effect, lo, hi = _cell(row, "effect"), _cell(row, "ci_low"), _cell(row, "ci_high")
    if effect is None or lo is None or hi is None:
        return []
    scale = (_cell(row, "effect_scale") or "").lower()
    if not scale:
        scale = "ratio" if "ratio" in str(_cell(row, "effect_type") or "").lower() else "difference"
    level = as_reported(_cell(row, "ci_level") or 0.95).value
    return check_ci_p_consistency(effect, lo, hi, _cell(row, "p"), level=level, scale=scale, alpha=alpha)


NUMBER_COLUMNS = (
    "n1",
    "mean1",
    "sd1",
    "se1",
    "n2",
    "mean2",
    "sd2",
    "se2",
    "statistic",
    "df",
    "p",
    "r",
    "n",
    "effect",
    "ci_low",
    "ci_high",
    "ci_level",
    "scale_min",
    "scale_max",
    "items",
)
COUNT_COLUMNS = ("n1", "n2", "n", "items")  # whole numbers >= 1
INVALID_INPUT, IMPOSSIBLE_VALUE = "input", "impossible_value"  # the rules of a row that is not read / not possible


def _invalid(column: str, value, rule: str) -> Finding:
    value = str(value) if len(str(value)) <= 80 else str(value)[:77] + "..."  # a hostile cell can be megabytes
    rule = rule if len(rule) <= 240 else rule[:237] + "..."
    return Finding(
        INVALID_INPUT,
        UNCHECKABLE,
        f"{column} = '{value}'",
        "",
        f"invalid input, the row is not audited: column {column}, value '{value}': {rule}",
        extra={"column": column, "value": str(value), "input_rule": rule},
    )


def invalid_inputs(row: dict, names: dict | None = None) -> list[Finding]:
    """The cells of one row (columns as in ``AUDIT_COLUMNS``) that cannot be read: a blank study label, a number
    that is not a number as printed (an ambiguous 1,000 included, as ``imrstats check`` refuses it), a sample
    size that is not a whole number >= 1, a CI level outside (0, 1), df <= 0. One finding (rule ``input``) per
    cell, naming column (as the file names it: ``names`` maps a canonical name to the file's), value and rule;
    such a row is not audited."""
    out = []
    if _cell(row, "study") is None:
        out.append(_invalid("study", row.get("study") or "", "every row needs a study label (findings cite it)"))
    for canonical in NUMBER_COLUMNS:
        value = _cell(row, canonical)
        if value is None:
            continue
        column = (names or {}).get(canonical, canonical)
        try:
            rep = as_reported(value)
        except InputError as error:
            out.append(_invalid(column, value, str(error)))
            continue
        if not math.isfinite(rep.value):
            out.append(_invalid(column, value, "not a finite number"))
        elif canonical in COUNT_COLUMNS and (rep.relation != "=" or rep.value != int(rep.value) or rep.value < 1):
            out.append(_invalid(column, value, "a sample size (or item count) must be a whole number >= 1"))
        elif canonical == "ci_level" and not 0 < rep.value < 1:
            out.append(_invalid(column, value, "a CI level lies strictly between 0 and 1 (e.g. 0.95)"))
        elif canonical == "df" and rep.value <= 0:
            out.append(_invalid(column, value, "degrees of freedom must be > 0"))
    return out


_POSSIBLE = {  # column: (lowest, highest, what is possible)
    "p": (0.0, 1.0, "0 <= p <= 1"),
    "r": (-1.0, 1.0, "-1 <= r <= 1"),
    "sd1": (0.0, math.inf, "SD >= 0"),
    "sd2": (0.0, math.inf, "SD >= 0"),
    "se1": (0.0, math.inf, "SE >= 0"),
    "se2": (0.0, math.inf, "SE >= 0"),
}


def impossible_values(row: dict, names: dict | None = None) -> list[Finding]:
    """Printed values no data can give (p outside [0, 1], |r| > 1, a negative SD or SE), judged on their rounding
    interval: one ``impossible_value`` finding each (inconsistent), not a rounding disagreement with a
    recomputed number. The caller blanks these cells before the other rules run."""
    out = []
    for column, (lowest, highest, rule) in _POSSIBLE.items():
        rep = as_reported(_cell(row, column))
        if rep is None:
            continue
        if rep.relation == "<":
            impossible = rep.value <= lowest
        elif rep.relation == ">":
            impossible = rep.value >= highest
        else:
            impossible = rep.low > highest + _EPS or rep.high < lowest - _EPS
        if impossible:
            name = (names or {}).get(column, column)
            shown = f"{name} {rep.relation} {rep}" if rep.relation != "=" else f"{name} = {rep}"
            out.append(
                Finding(
                    IMPOSSIBLE_VALUE,
                    INCONSISTENT,
                    shown,
                    rule,
                    f"an impossible value ({rule} whatever the data and the test): a misprint or a misread "
                    "cell; it is not compared with any recomputed number",
                    extra={"column": column, "value": str(_cell(row, column))},
                )
            )
    return out


def audit_row(row: dict, registry: dict, *, alpha: float = 0.05) -> list[Finding]:
    """Every applicable rule for one row of printed numbers (see ``AUDIT_COLUMNS``). A row with an invalid cell
    (`invalid_inputs`) gives one ``input`` finding per cell naming column, value and rule, and is not audited;
    an impossible printed value (`impossible_values`) is its own inconsistent finding and takes no part in the
    other rules. A row whose numbers a rule cannot use gives one 'cannot be checked' finding naming the
    problem; the other rows still run."""
    names = {ALIASES.get(k, k): k for k in row}
    row = {ALIASES.get(k, k): v for k, v in row.items()}
    invalid = invalid_inputs(row, names)
    if invalid:
        return invalid
    impossible = impossible_values(row, names)
    for finding in impossible:
        row[finding.extra["column"]] = None
    out = []
    try:
        analysis = str(_cell(row, "analysis") or "").lower()
        observed = _flag(row, "observed")
        if observed is None:
            observed = analysis != "itt" and not (_cell(row, "se1") and not _cell(row, "sd1"))
        scale = _scale(row, registry)
        for k in (1, 2):
            out += _arm_findings(row, k, scale, observed)
        if _cell(row, "mean1") is not None and (scale[0] is None or scale[1] is None):
            out.append(
                Finding(
                    "range_mean",
                    UNCHECKABLE,
                    f"instrument {_cell(row, 'instrument')}",
                    "",
                    "the instrument is not in the registry and no scale_min / scale_max is given",
                )
            )
        out += _test_findings(row, alpha)
        out += _ci_findings(row, alpha)
    except (AnalysisError, InputError) as error:
        if impossible:  # the impossible value is why the rule cannot run; its finding says so
            return impossible + out
        return [Finding(INVALID_INPUT, UNCHECKABLE, "", "", f"this row cannot be audited: {error}")]
    if impossible:
        return impossible + out
    if not out:
        out.append(
            Finding(
                "no_checkable_numbers",
                UNCHECKABLE,
                "",
                "",
                "the row prints no combination of numbers a rule can check (e.g. an effect size "
                "without CI, arm summaries or test)",
            )
        )
    return out


def audit_table(
    frame: pd.DataFrame, *, registry: dict | None = None, name: str | None = None, alpha: float = 0.05
) -> pd.DataFrame:
    """Audit every row of a table of printed numbers; returns one finding per row and rule with columns
    row, study, instrument, rule, severity, reported, recomputed, detail, source. ``row`` is the file line
    (header = line 1), prefixed by ``name`` when given. Read the table with ``read_audit_table`` (text), so
    trailing zeros ("13.0", "0.50") keep their precision; floats are read at their shortest repr."""
    if "study" not in frame.columns:
        raise InputError(
            "an audit table needs a 'study' column (and the numbers to check: see "
            "imrstats.audit.checks.AUDIT_COLUMNS or docs/audit.md)"
        )
    if registry is None:
        from imrstats.data.instruments import load_registry

        registry = load_registry()
    known = set(AUDIT_COLUMNS) | set(ALIASES) | {"effect_type", "row"}
    if not known & (set(frame.columns) - {"study", "source", "quote"}):
        raise InputError(f"the table has none of the columns the audit reads ({', '.join(sorted(AUDIT_COLUMNS))})")
    records = []
    for i, row in enumerate(frame.to_dict("records")):
        line = _cell(row, "row") or i + 2
        cited = f"{name}:{line}" if name else str(line)
        for finding in audit_row(row, registry, alpha=alpha):
            records.append(
                {
                    "row": cited,
                    "study": str(_cell(row, "study") or ""),
                    "instrument": str(_cell(row, "instrument") or ""),
                    "rule": finding.rule,
                    "severity": finding.severity,
                    "reported": finding.reported,
                    "recomputed": finding.recomputed,
                    "detail": finding.detail,
                    "source": str(_cell(row, "source") or ""),
                }
            )
    records += _repeated_findings(frame, name)
    return pd.DataFrame(records, columns=FINDING_COLUMNS)


def _possible_p(value) -> bool:
    """A printed p the repeated-p rule can use (read, and possible; the others have their own finding)."""
    try:
        rep = as_reported(_cell({"p": value}, "p"))
    except InputError:
        return False
    return rep is not None and not impossible_values({"p": value})


def _repeated_findings(frame: pd.DataFrame, name: str | None) -> list[dict]:
    if "quantity_id" not in frame.columns:
        return []
    out = []
    ids = frame["quantity_id"].astype(str).str.strip()
    for qid in sorted(set(ids) - {"", "nan", "None"}):
        rows = frame.loc[ids == qid]
        rows = rows.loc[rows["p"].map(_possible_p)] if "p" in rows else rows.iloc[0:0]
        if len(rows) < 2:
            continue
        lines = [f"{name}:{i + 2}" if name else str(i + 2) for i in rows.index]
        finding = check_repeated_p(rows["p"].tolist(), lines)
        out.append(
            {
                "row": ", ".join(lines),
                "study": str(rows["study"].iloc[0]),
                "instrument": str(rows["instrument"].iloc[0]) if "instrument" in rows else "",
                "rule": finding.rule,
                "severity": finding.severity,
                "reported": finding.reported,
                "recomputed": f"quantity '{qid}'",
                "detail": finding.detail,
                "source": " | ".join(dict.fromkeys(rows["source"].astype(str))) if "source" in rows else "",
            }
        )
    return out


# ------------------------------------------------------------------------------------------------ several tables


def audit_frames(frames: dict[str, pd.DataFrame], *, alpha: float = 0.05, registry: dict | None = None) -> pd.DataFrame:
    """Audit several named tables; the findings cite rows as ``name:line``."""
    parts = [audit_table(frame, registry=registry, name=name, alpha=alpha) for name, frame in frames.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FINDING_COLUMNS)
