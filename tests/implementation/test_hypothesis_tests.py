"""Edge cases and independent checks of imrstats.implementation.hypothesis_tests (numbers vs R: tests/validation)."""

import itertools
import math

import numpy as np
import pytest
from scipy import special, stats

from imrstats.errors import AnalysisError
from imrstats.implementation import hypothesis_tests as ht


def brute_force_fisher_p(table):
    """Enumerate every table with the observed margins; sum P(T) over P(T) <= P(obs)."""
    table = np.asarray(table)
    rows, cols, n = table.sum(1), table.sum(0), table.sum()

    def logp(t):
        return (
            special.gammaln(rows + 1).sum()
            + special.gammaln(cols + 1).sum()
            - special.gammaln(n + 1)
            - special.gammaln(np.asarray(t) + 1).sum()
        )

    r, c = table.shape
    total, observed = 0.0, logp(table)
    for free in itertools.product(*[range(min(rows[i], cols[j]) + 1) for i in range(r - 1) for j in range(c - 1)]):
        t = np.zeros((r, c), dtype=int)
        t[:-1, :-1] = np.reshape(free, (r - 1, c - 1))
        t[:-1, -1] = rows[:-1] - t[:-1, :-1].sum(1)
        t[-1, :] = cols - t[:-1, :].sum(0)
        if (t < 0).any():
            continue
        if logp(t) <= observed + 1e-7:
            total += math.exp(logp(t))
    return total


@pytest.mark.parametrize(
    "table",
    [[[3, 1, 0], [2, 5, 1], [0, 2, 6]], [[4, 0], [1, 3], [2, 2]], [[1, 2, 3, 0], [3, 0, 1, 4]], [[5, 5, 5], [5, 5, 5]]],
)
def test_fisher_rxc_equals_brute_force_enumeration(table):
    assert ht.fisher_exact_test(table).p == pytest.approx(brute_force_fisher_p(table), rel=1e-9)


def test_fisher_2x2_p_equals_scipy():
    table = [[8, 2], [1, 5]]
    assert ht.fisher_exact_test(table).p == pytest.approx(stats.fisher_exact(table).pvalue, rel=1e-9)


def test_fisher_too_large_needs_seed_and_monte_carlo_is_reproducible():
    table = [[3, 1, 0], [2, 5, 1], [0, 2, 6]]
    with pytest.raises(AnalysisError, match="seed"):
        ht.fisher_exact_test(table, max_work=1)
    mc = ht.fisher_exact_test(table, max_work=1, seed=11, n_simulations=4000)
    assert mc.p == ht.fisher_exact_test(table, max_work=1, seed=11, n_simulations=4000).p
    exact = ht.fisher_exact_test(table).p
    # binomial MC error of a proportion from 4000 draws; 4 SE plus R's +1 / (B+1) offset
    assert abs(mc.p - exact) < 4 * math.sqrt(exact * (1 - exact) / 4000) + 1 / 4001
    assert "Monte Carlo" in mc.method and "seed 11" in mc.method


def test_chi_square_yates_only_for_2x2():
    a, b, c, d = 12, 20, 30, 25
    n = a + b + c + d
    yates = n * (abs(a * d - b * c) - n / 2) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))
    est = ht.chi_square_test([[a, b], [c, d]])
    assert est.statistic == pytest.approx(yates, rel=1e-12) and "Yates" in est.method
    big = [[12, 20, 5], [30, 25, 9]]
    plain = stats.chi2_contingency(big, correction=False)
    est = ht.chi_square_test(big)
    assert est.statistic == pytest.approx(plain.statistic) and est.p == pytest.approx(plain.pvalue)
    assert "Yates" not in est.method


def test_empty_rows_and_columns_are_dropped():
    assert ht.chi_square_test([[10, 0, 20], [0, 0, 0], [15, 0, 12]]).p == pytest.approx(
        ht.chi_square_test([[10, 20], [15, 12]]).p
    )


@pytest.mark.parametrize("bad", [[[1, -1], [2, 3]], [[1.5, 2], [2, 3]], [1, 2, 3], [[5, 0], [7, 0]]])
def test_bad_tables_raise(bad):
    with pytest.raises(AnalysisError):
        ht.chi_square_test(bad)


def test_independence_test_picks_fisher_for_small_expected_counts():
    small = ht.independence_test([[1, 4], [6, 2]])
    assert small.extra["test"] == "Fisher exact" and "below 5" in small.notes
    large = ht.independence_test([[30, 40], [35, 25]])
    assert large.extra["test"] == "chi-square" and ">= 5" in large.notes


def test_welch_drops_missing_and_rejects_degenerate_input():
    x, y = [1.0, 2.0, np.nan, 4.0], [2.0, 3.0, 5.0, 7.0]
    assert ht.welch_t_test(x, y).estimate == pytest.approx(np.mean([1, 2, 4]) - np.mean(y))
    with pytest.raises(AnalysisError, match="at least 2"):
        ht.welch_t_test([1.0], y)
    with pytest.raises(AnalysisError, match="constant"):
        ht.welch_t_test([3.0, 3.0], [1.0, 1.0])


def test_mann_whitney_branches():
    exact = ht.mann_whitney_u_test([1.1, 2.3, 3.2], [4.5, 5.1, 6.7, 7.2])
    assert "exact" in exact.method and exact.statistic == 0 and exact.estimate == 0
    assert exact.p == pytest.approx(2 / math.comb(7, 3))  # the single most extreme arrangement, two-sided
    tied = ht.mann_whitney_u_test([1, 2, 2, 3], [2, 3, 4, 5])
    assert "normal approximation" in tied.method
    with pytest.raises(AnalysisError, match="tied"):
        ht.mann_whitney_u_test([1, 1], [1, 1, 1])


def test_group_tests_need_two_groups_and_spread():
    with pytest.raises(AnalysisError):
        ht.one_way_anova([[1.0, 2.0, 3.0]])
    with pytest.raises(AnalysisError):
        ht.kruskal_wallis_test([[1.0, 2.0], []])
    with pytest.raises(AnalysisError, match="constant"):
        ht.one_way_anova([[1.0, 1.0], [2.0, 2.0]])


def test_anova_and_kruskal_equal_scipy():
    groups = [[1.0, 2.5, 3.1, 4.0], [2.2, 3.3, 5.1], [6.0, 7.5, 5.5, 8.1, 6.6]]
    assert ht.one_way_anova(groups).p == pytest.approx(stats.f_oneway(*groups).pvalue)
    assert ht.kruskal_wallis_test(groups).statistic == pytest.approx(stats.kruskal(*groups).statistic)


@pytest.mark.parametrize("n", [4, 5, 6])
def test_spearman_exact_p_equals_permutation_distribution(n):
    rng = np.random.default_rng(n)
    x, y = rng.permutation(n) + 0.5, rng.permutation(n) + 0.25
    est = ht.spearman_correlation(x, y)
    rhos = np.array([stats.spearmanr(np.arange(n), p).statistic for p in itertools.permutations(range(n))])
    tail = min(np.mean(rhos >= est.estimate - 1e-12), np.mean(rhos <= est.estimate + 1e-12))
    assert est.p == pytest.approx(min(1.0, 2 * tail))


def test_correlation_edge_cases():
    r = ht.pearson_correlation([1.0, 2.0, 3.0], [2.0, 4.1, 5.9])
    assert math.isnan(r.ci_low)  # Fisher-z CI needs n >= 4
    with pytest.raises(AnalysisError, match="constant"):
        ht.pearson_correlation([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(AnalysisError, match="length"):
        ht.spearman_correlation([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(AnalysisError, match="complete pair"):
        ht.pearson_correlation([1.0, np.nan, 3.0, np.nan], [1.0, 2.0, np.nan, 4.0])
    perfect = ht.spearman_correlation([1, 2, 3, 4, 5, 6], [2, 4, 6, 8, 10, 12])
    assert perfect.estimate == 1 and perfect.p == pytest.approx(2 / math.factorial(6))


def test_bland_altman_limits():
    x = np.array([10.0, 12.0, 14.0, 16.0, 18.0])
    y = x - np.array([1.0, 2.0, 3.0, 2.0, 2.0])
    bias, low, high = ht.bland_altman(x, y)
    sd = np.std([1, 2, 3, 2, 2], ddof=1)
    assert bias.estimate == pytest.approx(2.0)
    assert (low.estimate, high.estimate) == pytest.approx((2 - 1.959963984540054 * sd, 2 + 1.959963984540054 * sd))
    assert low.ci_low < low.estimate < low.ci_high and high.ci_high - high.ci_low == pytest.approx(
        low.ci_high - low.ci_low
    )
