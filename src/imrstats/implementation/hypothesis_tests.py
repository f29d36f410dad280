"""Classical two-sided tests and correlations, each returning one `Estimate` row.

Every function reproduces the number R's `stats` package gives on the same data with its default
arguments (chisq.test, fisher.test, t.test, wilcox.test, aov, kruskal.test, cor.test); the
docstrings say which R branch is matched. The `extra["test"]` field names the test so that a
table of these rows says which test made each p-value.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np
from scipy import special, stats

from imrstats.errors import AnalysisError
from imrstats.results import Estimate

# R's fisher.test counts tables whose probability is within a relative 1e-7 of the observed one
# (2x2: `relErr <- 1 + 10^(-7)`); FEXACT (r x c) uses a log-scale tolerance of 3.45254e-7.
_FISHER_REL_TOL_2X2 = math.log1p(1e-7)
_FISHER_LOG_TOL_RXC = 3.45254e-7


def _clean_sample(values, name: str, minimum: int) -> np.ndarray:
    """Finite values of a sample as floats; at least `minimum` of them, else AnalysisError."""
    arr = np.asarray(values, dtype=float).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size < minimum:
        raise AnalysisError(
            f"{name} has {arr.size} non-missing value(s); this test needs at least {minimum}. "
            "Drop the group or report descriptives only."
        )
    return arr


def _count_table(table) -> np.ndarray:
    """A contingency table as a non-negative integer matrix with all-zero rows/columns dropped."""
    arr = np.asarray(table, dtype=float)
    if arr.ndim != 2:
        raise AnalysisError("A contingency table must be two-dimensional (rows x columns).")
    if np.any(~np.isfinite(arr)) or np.any(arr < 0) or np.any(arr != np.round(arr)):
        raise AnalysisError("A contingency table must hold non-negative whole counts.")
    arr = arr.astype(np.int64)
    arr = arr[arr.sum(axis=1) > 0][:, arr.sum(axis=0) > 0]
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise AnalysisError(
            "After dropping empty rows and columns the table has fewer than 2 rows or columns; "
            "there is nothing to test (one category or one group only)."
        )
    return arr


def expected_counts(table) -> np.ndarray:
    """Expected cell counts under independence: row total x column total / grand total."""
    arr = _count_table(table).astype(float)
    return np.outer(arr.sum(axis=1), arr.sum(axis=0)) / arr.sum()


def chi_square_test(table, *, correct: bool = True) -> Estimate:
    """Pearson's chi-square test of independence, as R's `chisq.test(x)`.

    With `correct=True` a 2x2 table gets Yates' continuity correction exactly as R applies it
    (|O - E| reduced by min(0.5, |O - E|)); larger tables are never corrected. The estimate is
    Cramer's V from the uncorrected statistic (Cramer 1946), a size-free effect measure.
    """
    obs = _count_table(table).astype(float)
    exp = expected_counts(obs)
    dev = np.abs(obs - exp)
    yates = obs.shape == (2, 2) and correct
    shift = min(0.5, float(dev.min())) if yates else 0.0
    statistic = float(np.sum((dev - shift) ** 2 / exp))
    df = (obs.shape[0] - 1) * (obs.shape[1] - 1)
    uncorrected = float(np.sum(dev**2 / exp))
    cramers_v = math.sqrt(uncorrected / (obs.sum() * (min(obs.shape) - 1)))
    method = "Pearson chi-square" + (" with Yates continuity correction" if yates else "")
    return Estimate(
        quantity="Cramer's V",
        estimate=cramers_v,
        df=float(df),
        statistic=statistic,
        p=float(stats.chi2.sf(statistic, df)),
        method=method,
        notes=f"min expected count {exp.min():.3g}",
        extra={"test": "chi-square"},
    )


def _bounds_remaining(rows: np.ndarray, cols: np.ndarray, logfact: np.ndarray) -> tuple[float, float]:
    """Lower and upper bounds of sum(log x_ij!) over tables with these margins.

    Lower: each margin spread as evenly as its own relaxation allows (the larger of the row-only and
    column-only relaxations). Upper: log-factorial is superadditive, so no table exceeds
    min(sum log r_i!, sum log c_j!). Both are valid bounds, which is all the pruning needs.
    """

    def even_spread(margins, k):
        q, rem = np.divmod(margins, k)
        return float(np.sum(rem * logfact[q + 1] + (k - rem) * logfact[q]))

    k_cols = int(np.count_nonzero(cols))
    lower = max(even_spread(rows, k_cols), even_spread(cols[cols > 0], len(rows)))
    upper = min(float(logfact[rows].sum()), float(logfact[cols].sum()))
    return lower, upper


def _compositions(total: int, caps: np.ndarray) -> np.ndarray:
    """All vectors x with 0 <= x_j <= caps_j and sum(x) = total, as rows of a matrix."""
    out = np.zeros((1, 0), dtype=np.int64)
    remaining_caps = np.concatenate([np.cumsum(caps[::-1])[::-1][1:], [0]])
    for j, cap in enumerate(caps):
        used = out.sum(axis=1)
        rows, values = [], []
        for v in range(int(cap) + 1):
            ok = (used + v <= total) & (total - used - v <= remaining_caps[j])
            idx = np.nonzero(ok)[0]
            rows.append(idx)
            values.append(np.full(idx.size, v))
        idx = np.concatenate(rows)
        out = np.column_stack([out[idx], np.concatenate(values)])
    return out


def _fisher_rxc_exact_p(table: np.ndarray, log_tol: float, max_work: float) -> float | None:
    """Exact Fisher p-value: total probability of tables no more probable than the observed one.

    A forward pass over rows (network idea of Mehta & Patel 1983): a node is the multiset of
    remaining column margins and carries the distinct partial sums of log x! that reach it with
    their path counts. A node's paths are settled in bulk when the bounds on the rest of the table
    show that all (or none) of their completions are at most as probable as the observed table; the
    rest are expanded. Returns None when the work exceeds `max_work` (cells x paths examined).
    """
    t = table if table.shape[0] >= table.shape[1] else table.T
    t = t[np.argsort(t.sum(axis=1))]
    rows, n = t.sum(axis=1), int(t.sum())
    logfact = special.gammaln(np.arange(n + 2) + 1.0)
    const = float(logfact[rows].sum() + logfact[t.sum(axis=0)].sum() - logfact[n])
    threshold = float(logfact[t].sum()) - log_tol  # a table counts when sum(log x!) >= threshold
    nodes = {tuple(sorted(t.sum(axis=0))): (np.zeros(1), np.ones(1))}
    p_value, work = 0.0, 0.0
    for k, row_total in enumerate(rows):
        children: dict[tuple, list] = {}
        rest = rows[k:]
        for state, (past, count) in nodes.items():
            cols = np.array(state, dtype=np.int64)
            if k == len(rows) - 1:  # the last row is forced: x = remaining column margins
                total = past + logfact[cols].sum()
                keep = total >= threshold
                p_value += float(np.sum(count[keep] * np.exp(const - total[keep])))
                continue
            lower, upper = _bounds_remaining(rest, cols, logfact)
            log_all = float(logfact[cols.sum()] - logfact[rest].sum() - logfact[cols].sum())
            settled = past + lower >= threshold
            p_value += float(np.sum(count[settled] * np.exp(const - past[settled] + log_all)))
            open_ = ~settled & (past + upper >= threshold)
            if not open_.any():
                continue
            comps = _compositions(int(row_total), cols)
            work += comps.size * open_.sum()
            if work > max_work:
                return None
            inc = logfact[comps].sum(axis=1)
            child_states, inverse = np.unique(np.sort(cols - comps, axis=1), axis=0, return_inverse=True)
            order = np.argsort(inverse.ravel(), kind="stable")
            splits = np.split(inc[order], np.cumsum(np.bincount(inverse.ravel()))[:-1])
            past_open, count_open = past[open_], count[open_]
            for child, incs in zip(child_states, splits):
                sums = (past_open[None, :] + incs[:, None]).ravel()
                counts = np.tile(count_open, incs.size)
                children.setdefault(tuple(child), []).append((sums, counts))
        nodes = {}
        for state, parts in children.items():
            sums = np.concatenate([s for s, _ in parts])
            counts = np.concatenate([c for _, c in parts])
            keys, inv = np.unique(np.round(sums, 9), return_inverse=True)
            nodes[state] = (keys, np.bincount(inv.ravel(), weights=counts))
    return min(p_value, 1.0)


def _fisher_monte_carlo_p(table: np.ndarray, n_simulations: int, seed) -> float:
    """R's `fisher.test(simulate.p.value = TRUE)`: (1 + #{simulated P <= observed P}) / (B + 1)."""
    rng = np.random.default_rng(seed)
    dist = stats.random_table(table.sum(axis=1), table.sum(axis=0), seed=rng)
    sims = dist.rvs(size=n_simulations)
    stat = lambda x: -special.gammaln(np.asarray(x) + 1.0).sum(axis=(-2, -1))  # noqa: E731
    almost_one = 1 + 64 * np.finfo(float).eps
    return float((1 + np.sum(stat(sims) <= stat(table) / almost_one)) / (n_simulations + 1))


def fisher_exact_test(table, *, max_work: float = 5e8, seed=None, n_simulations: int = 2000) -> Estimate:
    """Fisher's exact test of independence for an r x c table, two-sided as R's `fisher.test(x)`.

    The p-value sums the probabilities of all tables with the observed margins that are no more
    probable than the observed one (R's definition). It is computed exactly by a network-style
    enumeration (see `_fisher_rxc_exact_p`). If that would exceed `max_work`, a Monte Carlo p-value
    is computed as R's `simulate.p.value=TRUE` does, but only when a `seed` is given (the method
    string then says so); without a seed an AnalysisError asks for one. For 2x2 tables the
    estimate is R's conditional maximum-likelihood odds ratio with its exact 95% CI.
    """
    obs = _count_table(table)
    is_2x2 = obs.shape == (2, 2)
    tol = _FISHER_REL_TOL_2X2 if is_2x2 else _FISHER_LOG_TOL_RXC
    p = _fisher_rxc_exact_p(obs, tol, max_work)
    method = "Fisher exact test (exact conditional p, network enumeration)"
    if p is None:
        if seed is None:
            raise AnalysisError(
                f"The exact Fisher test on this {obs.shape[0]}x{obs.shape[1]} table exceeds the work limit; "
                "pass a seed for a Monte Carlo p-value, raise max_work, or merge sparse categories."
            )
        p = _fisher_monte_carlo_p(obs, n_simulations, seed)
        method = f"Fisher exact test, Monte Carlo p ({n_simulations} tables, seed {seed})"
    estimate = ci_low = ci_high = math.nan
    quantity = "independence (no effect size for r x c)"
    if is_2x2:
        odds = stats.contingency.odds_ratio(obs, kind="conditional")
        ci = odds.confidence_interval(0.95)
        estimate, ci_low, ci_high = float(odds.statistic), float(ci.low), float(ci.high)
        quantity = "odds ratio (conditional MLE)"
    return Estimate(
        quantity=quantity,
        estimate=estimate,
        ci_low=ci_low,
        ci_high=ci_high,
        p=p,
        method=method,
        notes=f"min expected count {expected_counts(obs).min():.3g}",
        extra={"test": "Fisher exact"},
    )


def independence_test(table, *, min_expected: float = 5.0, seed=None) -> Estimate:
    """Chi-square when every expected count is at least `min_expected`, else Fisher's exact test.

    This is the usual rule (Cochran 1954, strict form): any expected count below 5 means the
    chi-square approximation may be poor, so the exact test is used; the choice is stated in
    `extra["test"]` and in `notes`.
    """
    exp = expected_counts(table)
    if exp.min() < min_expected:
        est = fisher_exact_test(table, seed=seed)
        reason = f"Fisher: an expected count ({exp.min():.3g}) is below {min_expected:g}"
    else:
        est = chi_square_test(table)
        reason = f"chi-square: all expected counts >= {min_expected:g}"
    return replace(est, notes=reason)


def welch_t_test(x, y, *, conf_level: float = 0.95) -> Estimate:
    """Welch's two-sample t-test (unequal variances), as R's `t.test(x, y)`.

    Estimate: mean(x) - mean(y) with its standard error and a t CI on the Welch-Satterthwaite df
    (Welch 1947).
    """
    x, y = _clean_sample(x, "x", 2), _clean_sample(y, "y", 2)
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    if se == 0:
        raise AnalysisError("Both groups are constant; the t statistic is undefined.")
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    diff = float(x.mean() - y.mean())
    return Estimate.from_t(
        "mean difference (x - y)",
        diff,
        se,
        df,
        conf_level,
        "Welch two-sample t-test; Welch-Satterthwaite df",
        extra={"test": "Welch t"},
    )


def mann_whitney_u_test(x, y) -> Estimate:
    """Wilcoxon-Mann-Whitney rank-sum test with R's `wilcox.test(x, y)` defaults.

    W = rank sum of x - n_x(n_x+1)/2. Exact p (null distribution of W) when both samples have
    fewer than 50 values and there are no ties; otherwise the normal approximation with the tie
    correction of the variance and a continuity correction of 0.5 towards the mean, as R does.
    The estimate is W / (n_x n_y), the probability that an x exceeds a y (ties count half).
    """
    x, y = _clean_sample(x, "x", 1), _clean_sample(y, "y", 1)
    nx, ny = x.size, y.size
    ranks = stats.rankdata(np.concatenate([x, y]))
    w = float(ranks[:nx].sum() - nx * (nx + 1) / 2)
    _, tie_sizes = np.unique(ranks, return_counts=True)
    ties = bool(np.any(tie_sizes > 1))
    if nx < 50 and ny < 50 and not ties:
        dist = stats.mannwhitneyu(x, y, method="exact")  # p = 2 * min tail of W's exact law
        p, method = float(dist.pvalue), "Wilcoxon rank-sum, exact p"
        z = math.nan
    else:
        n = nx + ny
        sigma = math.sqrt(nx * ny / 12 * ((n + 1) - np.sum(tie_sizes**3 - tie_sizes) / (n * (n - 1))))
        if sigma == 0:
            raise AnalysisError("All values are tied; the rank-sum test is undefined.")
        centred = w - nx * ny / 2
        z = (centred - 0.5 * np.sign(centred)) / sigma
        p = float(min(1.0, 2 * stats.norm.sf(abs(z))))
        method = "Wilcoxon rank-sum, normal approximation with continuity and tie correction"
    return Estimate(
        quantity="P(x > y) + P(x = y)/2",
        estimate=w / (nx * ny),
        statistic=w,
        p=p,
        method=method,
        notes="statistic is R's W" + ("" if math.isnan(z) else f"; z = {z:.4g}"),
        extra={"test": "Mann-Whitney U"},
    )


def _clean_groups(groups: Sequence, minimum: int) -> list[np.ndarray]:
    cleaned = [_clean_sample(g, f"group {i + 1}", 1) for i, g in enumerate(groups)]
    if len(cleaned) < 2:
        raise AnalysisError("A comparison of groups needs at least two non-empty groups.")
    if sum(g.size for g in cleaned) - len(cleaned) < minimum:
        raise AnalysisError("Too few observations beyond one per group to estimate within-group spread.")
    return cleaned


def one_way_anova(groups: Sequence) -> Estimate:
    """One-way ANOVA F-test of equal group means (R: `anova(aov(y ~ g))`).

    The estimate is eta squared, SS_between / SS_total.
    """
    gs = _clean_groups(groups, 1)
    allv = np.concatenate(gs)
    ss_between = sum(g.size * (g.mean() - allv.mean()) ** 2 for g in gs)
    ss_within = sum(((g - g.mean()) ** 2).sum() for g in gs)
    df1, df2 = len(gs) - 1, allv.size - len(gs)
    if ss_within == 0:
        raise AnalysisError("Every group is constant; the F statistic is undefined.")
    f = (ss_between / df1) / (ss_within / df2)
    return Estimate(
        quantity="eta squared",
        estimate=float(ss_between / (ss_between + ss_within)),
        df=float(df2),
        statistic=float(f),
        p=float(stats.f.sf(f, df1, df2)),
        method=f"one-way ANOVA F({df1}, {df2})",
        extra={"test": "one-way ANOVA", "df1": float(df1)},
    )


def kruskal_wallis_test(groups: Sequence) -> Estimate:
    """Kruskal-Wallis rank test with the tie correction (R: `kruskal.test`), chi-square(k - 1) p.

    The estimate is epsilon squared, H / (n - 1) (Tomczak & Tomczak 2014).
    """
    gs = _clean_groups(groups, 0)
    allv = np.concatenate(gs)
    n = allv.size
    ranks = stats.rankdata(allv)
    bounds = np.cumsum([0] + [g.size for g in gs])
    rank_term = sum(ranks[a:b].sum() ** 2 / (b - a) for a, b in zip(bounds[:-1], bounds[1:]))
    _, ties = np.unique(allv, return_counts=True)
    correction = 1 - np.sum(ties**3 - ties) / (n**3 - n)
    if correction == 0:
        raise AnalysisError("All values are tied; the Kruskal-Wallis test is undefined.")
    h = (12 * rank_term / (n * (n + 1)) - 3 * (n + 1)) / correction
    df = len(gs) - 1
    return Estimate(
        quantity="epsilon squared",
        estimate=float(h / (n - 1)),
        df=float(df),
        statistic=float(h),
        p=float(stats.chi2.sf(h, df)),
        method=f"Kruskal-Wallis, tie-corrected, chi-square({df})",
        extra={"test": "Kruskal-Wallis"},
    )


def _paired_samples(x, y, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs where both values are finite (R's `complete.cases`); at least `minimum` pairs."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.size != y.size:
        raise AnalysisError(f"Paired samples differ in length ({x.size} vs {y.size}).")
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < minimum:
        raise AnalysisError(f"Only {int(keep.sum())} complete pair(s); this needs at least {minimum}.")
    return x[keep], y[keep]


def pearson_correlation(x, y, *, conf_level: float = 0.95) -> Estimate:
    """Pearson's r with R's `cor.test` t-test (n - 2 df) and Fisher-z confidence interval.

    CI: tanh(atanh(r) +/- z_{(1+level)/2} / sqrt(n - 3)) (Fisher 1921), given for n >= 4.
    """
    x, y = _paired_samples(x, y, 3)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise AnalysisError("A variable is constant; the correlation is undefined.")
    n = x.size
    r = float(np.clip(np.corrcoef(x, y)[0, 1], -1.0, 1.0))
    df = n - 2
    t = math.inf * np.sign(r) if abs(r) == 1 else math.sqrt(df) * r / math.sqrt(1 - r * r)
    ci_low = ci_high = math.nan
    if n >= 4:
        half = stats.norm.ppf(0.5 + conf_level / 2) / math.sqrt(n - 3)
        ci_low, ci_high = math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)
    return Estimate(
        quantity="Pearson r",
        estimate=r,
        ci_low=ci_low,
        ci_high=ci_high,
        df=float(df),
        statistic=float(t),
        p=float(2 * stats.t.sf(abs(t), df)),
        method="Pearson product-moment correlation; t(n-2) test; Fisher-z CI",
        extra={"test": "Pearson correlation", "n": n},
    )


def _spearman_s_distribution(n: int) -> np.ndarray:
    """S = sum (i - pi_i)^2 for every permutation of 1..n (n <= 9), as AS 89 enumerates."""
    from itertools import permutations

    perms = np.array(list(permutations(range(n))), dtype=np.int64)
    return ((perms - np.arange(n)) ** 2).sum(axis=1)


def spearman_upper_tail_as89(n: int, s: float, lower_tail: bool = False) -> float:
    """P(S >= s) (or P(S < s) when `lower_tail`) for Spearman's S: algorithm AS 89 (Best & Roberts 1975).

    Follows R's prho.c: complete enumeration for n <= 9, otherwise the Edgeworth series expansion
    with AS 89's coefficients. This is what R's `cor.test(method = "spearman")` calls for
    untied data with n < 1290.
    """
    pv = 0.0 if lower_tail else 1.0
    n3 = n * (n * n - 1) / 3
    if n <= 1 or s <= 0:
        return pv
    if s > n3:
        return 1 - pv
    if n <= 9:
        all_s = _spearman_s_distribution(n)
        count = 1 if s == n3 else int(np.sum(all_s >= s))
        return (all_s.size - count) / all_s.size if lower_tail else count / all_s.size
    c = (0.2274, 0.2531, 0.1745, 0.0758, 0.1033, 0.3932, 0.0879, 0.0151, 0.0072, 0.0831, 0.0131, 4.6e-4)
    b = 1 / n
    x = (6 * (s - 1) * b / (n * n - 1) - 1) * math.sqrt(n - 1)
    y = x * x
    u = (
        x
        * b
        * (
            c[0]
            + b * (c[1] + c[2] * b)
            + y
            * (
                -c[3]
                + b * (c[4] + c[5] * b)
                - y * b * (c[6] + c[7] * b - y * (c[8] - c[9] * b + y * b * (c[10] - c[11] * y)))
            )
        )
    )
    y = u / math.exp(y / 2)
    tail = stats.norm.cdf(x) if lower_tail else stats.norm.sf(x)
    return float(min(1.0, max(0.0, (-y if lower_tail else y) + tail)))


def spearman_correlation(x, y, *, conf_level: float = 0.95) -> Estimate:
    """Spearman's rho with the p-value R's `cor.test(method = "spearman")` gives by default.

    No ties and n < 1290: AS 89 on S = (n^3 - n)(1 - rho)/6 (exact enumeration for n <= 9,
    Edgeworth series above). Ties or n >= 1290: the t approximation rho sqrt((n-2)/(1-rho^2)) on
    n - 2 df. The CI (which R does not give) is Fisher-z with the Bonett & Wright (2000) variance
    (1 + rho^2/2)/(n - 3).
    """
    x, y = _paired_samples(x, y, 3)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise AnalysisError("A variable is constant; the rank correlation is undefined.")
    n = x.size
    rho = float(np.clip(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1], -1.0, 1.0))
    s = (n**3 - n) * (1 - rho) / 6
    ties = min(np.unique(x).size, np.unique(y).size) < n
    lower = not s > (n**3 - n) / 6
    if not ties and n < 1290:
        p = spearman_upper_tail_as89(n, round(s) + 2 * lower, lower_tail=lower)
        method = "Spearman rank correlation; AS 89 p" + (" (exact enumeration)" if n <= 9 else " (Edgeworth series)")
    else:
        t = math.inf if abs(rho) == 1 else rho / math.sqrt((1 - rho * rho) / (n - 2))
        p = float(stats.t.sf(t, n - 2) if lower else stats.t.cdf(t, n - 2))
        method = "Spearman rank correlation; t(n-2) approximation p" + (" (ties)" if ties else "")
    ci_low = ci_high = math.nan
    if n >= 4 and abs(rho) < 1:
        half = stats.norm.ppf(0.5 + conf_level / 2) * math.sqrt((1 + rho * rho / 2) / (n - 3))
        ci_low, ci_high = math.tanh(math.atanh(rho) - half), math.tanh(math.atanh(rho) + half)
    return Estimate(
        quantity="Spearman rho",
        estimate=rho,
        ci_low=ci_low,
        ci_high=ci_high,
        df=float(n - 2),
        statistic=float(s),
        p=float(min(1.0, 2 * p)),
        method=method + "; Fisher-z CI with Bonett-Wright variance",
        notes="statistic is R's S",
        extra={"test": "Spearman correlation", "n": n},
    )


def bland_altman(x, y, *, conf_level: float = 0.95, loa_z: float = 1.959963984540054) -> list[Estimate]:
    """Bland-Altman agreement of paired measurements: bias and 95% limits of agreement with CIs.

    d = x - y; bias = mean(d) with a t(n-1) CI; limits = bias +/- 1.96 SD(d), each with the
    approximate CI of Bland & Altman (1999, Stat Methods Med Res 8:135, section 3):
    SE = SD(d) sqrt(1/n + z^2 / (2(n - 1))), limit +/- t_{n-1} SE.
    """
    x, y = _paired_samples(x, y, 3)
    d = x - y
    n = d.size
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    q = stats.t.ppf(0.5 + conf_level / 2, n - 1)
    se_bias = sd / math.sqrt(n)
    se_loa = sd * math.sqrt(1 / n + loa_z**2 / (2 * (n - 1)))
    method = f"Bland-Altman; t({n - 1}) CIs; LoA SE of Bland & Altman 1999"
    rows = [
        Estimate(
            "bias (x - y)",
            bias,
            se_bias,
            bias - q * se_bias,
            bias + q * se_bias,
            float(n - 1),
            method=method,
            extra={"test": "Bland-Altman", "n": n, "sd_difference": sd},
        )
    ]
    for label, sign in (("lower limit of agreement", -1), ("upper limit of agreement", 1)):
        limit = bias + sign * loa_z * sd
        rows.append(
            Estimate(
                label,
                limit,
                se_loa,
                limit - q * se_loa,
                limit + q * se_loa,
                float(n - 1),
                method=method,
                extra={"test": "Bland-Altman", "n": n, "sd_difference": sd},
            )
        )
    return rows
