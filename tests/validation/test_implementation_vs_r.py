"""imrstats.implementation.hypothesis_tests and imrstats.implementation.descriptives against R on identical data.

References: tests/validation/r/implementation.R (R 4.2.2, base `stats`) run on
tests/validation/data/impl_programme.csv and impl_samples.csv; its printed numbers are pinned
below. Tolerance: 1e-6 relative for every statistic, df, p-value, CI and summary (deterministic
computations); an absolute 1e-12 floor only where R's value is zero up to rounding (e.g. a
chi-square statistic of 1.5e-29). The one exception is documented at `test_fisher_2x2_odds_ratio`.
"""

import math

import numpy as np
import pandas as pd
import pytest

from imrstats.implementation import hypothesis_tests as ht
from imrstats.implementation.descriptives import MODULES, derive_programme_variables, summarise_continuous

DATA = __import__("pathlib").Path(__file__).parent / "data"
REL = 1e-6

R_REFERENCE = {
    "chisq_sex_three": [3.46579736376156, 2.0, 0.176771262947245],
    "fisher_sex_three": [0.243875819734341],
    "chisq_sex_two": [0.0129178157913125, 1.0, 0.909510041863737],
    "fisher_sex_two": [0.851051267611592],
    "fisheror_sex_two": [0.893422522239363, 0.400857698014677, 1.9970158731559],
    "chisq_diagnosis_three": [236.217391304348, 10.0, 4.26376791292555e-45],
    "fisher_diagnosis_three": [1.37761408247474e-36],
    "chisq_diagnosis_two": [105.843685300207, 4.0, 5.5988713655543e-22],
    "fisher_diagnosis_two": [2.51020593912033e-29],
    "chisq_format_three": [9.4385365166497, 4.0, 0.0510256216058203],
    "fisher_format_three": [0.0674391778907682],
    "chisq_format_two": [3.2160862957579, 2.0, 0.200279147538323],
    "fisher_format_two": [0.20627994249363],
    "chisq_m01_three": [27.4802161049653, 2.0, 1.07831809249001e-06],
    "fisher_m01_three": [6.89254911449282e-07],
    "chisq_m01_two": [13.3995075414181, 1.0, 0.00025169036933997],
    "fisher_m01_two": [0.000215847437759391],
    "fisheror_m01_two": [0.181634463018131, 0.0621781458946683, 0.483570085952526],
    "chisq_m02_three": [17.5947605931061, 2.0, 0.000151128468732787],
    "fisher_m02_three": [7.08623636782591e-05],
    "chisq_m02_two": [11.2873520636799, 1.0, 0.000780369036091084],
    "fisher_m02_two": [0.000484432470406712],
    "fisheror_m02_two": [0.262195390976661, 0.112281632039225, 0.591995740530748],
    "chisq_m03_three": [15.883152173913, 2.0, 0.000355645508107776],
    "fisher_m03_three": [0.000129273348869217],
    "chisq_m03_two": [7.99414054106406, 1.0, 0.00469289712379964],
    "fisher_m03_two": [0.0029057440521151],
    "fisheror_m03_two": [0.308673469387755, 0.127626238538605, 0.713441179283591],
    "chisq_m04_three": [14.571865568154, 2.0, 0.000685108879555346],
    "fisher_m04_three": [0.00045529543826722],
    "chisq_m04_two": [10.3052461578277, 1.0, 0.00132652557326359],
    "fisher_m04_two": [0.00105237568151725],
    "fisheror_m04_two": [0.248001372297783, 0.0951689377547793, 0.601917033135842],
    "chisq_m05_three": [28.44508983514, 2.0, 6.65621319422507e-07],
    "fisher_m05_three": [1.86947444948605e-07],
    "chisq_m05_two": [22.7123438410768, 1.0, 1.88155300104812e-06],
    "fisher_m05_two": [8.8609684571482e-07],
    "fisheror_m05_two": [0.128983792219709, 0.0472175740305326, 0.322078276052522],
    "chisq_m06_three": [118.070048309179, 2.0, 2.29834262017855e-26],
    "fisher_m06_three": [1.91936788702422e-33],
    "chisq_m06_two": [109.24587257029, 1.0, 1.43353881462159e-25],
    "fisher_m06_two": [2.44014595538631e-32],
    "fisheror_m06_two": [math.inf, 209.180218020223, math.inf],
    "chisq_m07_three": [5.78706800445931, 2.0, 0.0553801527941661],
    "fisher_m07_three": [0.0513946434341827],
    "chisq_m07_two": [0.334930234058795, 1.0, 0.562770308303855],
    "fisher_m07_two": [0.467770884795453],
    "fisheror_m07_two": [0.757131390854597, 0.344707950720554, 1.65391623812158],
    "chisq_m08_three": [11.1027114340783, 2.0, 0.00388219052235067],
    "fisher_m08_three": [0.00248571382936211],
    "chisq_m08_two": [5.32905604062723, 1.0, 0.0209727412027494],
    "fisher_m08_two": [0.0169265732911739],
    "fisheror_m08_two": [0.396348016376864, 0.174863326500389, 0.877982125780681],
    "chisq_m09_three": [8.0066889632107, 2.0, 0.0182544848925916],
    "fisher_m09_three": [0.0163734111112442],
    "chisq_m09_two": [5.55555728364832, 1.0, 0.0184221072679985],
    "fisher_m09_two": [0.00993872071481697],
    "fisheror_m09_two": [0.0, 0.0, 0.622927468399186],
    "chisq_m10_three": [0.248388938738886, 2.0, 0.883208067265011],
    "fisher_m10_three": [0.999999999999945],
    "chisq_m10_two": [1.50889847843604e-29, 1.0, 0.999999999999997],
    "fisher_m10_two": [1.0],
    "fisheror_m10_two": [0.659058596490796, 0.0109285014412014, 12.9865823620235],
    "chisq_m11_three": [3.99163879598662, 2.0, 0.135902250499766],
    "fisher_m11_three": [0.154936856432255],
    "chisq_m11_two": [0.0117468407066612, 1.0, 0.913692010079093],
    "fisher_m11_two": [0.853961387882492],
    "fisheror_m11_two": [1.11328660472965, 0.506991792667468, 2.44414887092217],
    "aov_age_at_start": [3.8585327125361, 2.0, 123.0, 0.0236989198133868],
    "kruskal_age_at_start": [7.44256210470541, 2.0, 0.0242029427408017],
    "welch_age_at_start": [
        -0.815582882527206,
        115.124719160976,
        0.416422925528032,
        -7.59984454225358,
        3.16673417436062,
        -2.21655518394648,
    ],
    "wilcox_age_at_start": [1659.5, 0.482724996389652],
    "describe_age_at_start": [126.0, 41.1984126984127, 15.1139775525941, 43.5, 27.0, 55.5, 18.0, 65.0],
    "aov_age_at_first_contact": [0.910800421342529, 2.0, 123.0, 0.404897265473076],
    "kruskal_age_at_first_contact": [1.25446151406674, 2.0, 0.534068721137424],
    "welch_age_at_first_contact": [
        -0.492174483334269,
        112.194501104704,
        0.623557683164091,
        -5.53692631380327,
        3.33347034947774,
        -1.10172798216277,
    ],
    "wilcox_age_at_first_contact": [1659.5, 0.482541609796546],
    "describe_age_at_first_contact": [126.0, 30.0396825396825, 12.0647591230995, 28.0, 19.25, 39.0, 14.0, 59.0],
    "aov_illness_duration_years": [5.45041836254378, 2.0, 123.0, 0.00539500641928576],
    "kruskal_illness_duration_years": [14.2531267957884, 2.0, 0.000803475875188297],
    "welch_illness_duration_years": [
        -0.796711618272165,
        112.728295573467,
        0.427293300505364,
        -3.89007423301211,
        1.65873499819104,
        -1.11566961741053,
    ],
    "wilcox_illness_duration_years": [1640.0, 0.421570641671638],
    "describe_illness_duration_years": [
        126.0,
        11.1059830731289,
        7.81879646933213,
        9.58110882956879,
        4.17453798767967,
        17.7624914442163,
        0.290212183436003,
        25.9548254620123,
    ],
    "aov_sessions": [43.7815301119326, 2.0, 123.0, 4.37683373534425e-15],
    "kruskal_sessions": [46.9759314068008, 2.0, 6.29950034247595e-11],
    "welch_sessions": [
        7.1270660673486,
        111.431668896796,
        1.08032930334584e-10,
        4.35722088668625,
        7.71301322702612,
        6.03511705685619,
    ],
    "wilcox_sessions": [2939.0, 1.93016861026384e-09],
    "describe_sessions": [126.0, 20.2063492063492, 5.9750380220614, 20.5, 16.0, 24.0, 4.0, 35.0],
    "aov_duration_months": [0.610526891594237, 2.0, 123.0, 0.544702029992349],
    "kruskal_duration_months": [1.19560391589071, 2.0, 0.55001927388335],
    "welch_duration_months": [
        -0.303189650673949,
        110.892800574392,
        0.762313392090592,
        -3.13087425883651,
        2.29994112328772,
        -0.415466567774397,
    ],
    "wilcox_duration_months": [1716.0, 0.68489771196154],
    "describe_duration_months": [
        126.0,
        11.6562041654444,
        7.37478533202215,
        10.5626283367556,
        6.06160164271047,
        15.9671457905544,
        1.97125256673511,
        36.1724845995893,
    ],
    "aov_modules_received": [15.4455472182319, 2.0, 123.0, 1.03641771029339e-06],
    "kruskal_modules_received": [24.4530469919583, 2.0, 4.89878424950206e-06],
    "welch_modules_received": [
        4.0854970668749,
        113.39555445555,
        8.23412962973033e-05,
        0.564472397592141,
        1.62727788111466,
        1.0958751393534,
    ],
    "wilcox_modules_received": [2491.5, 0.000205055329151837],
    "describe_modules_received": [126.0, 4.37301587301587, 1.60864726765877, 4.0, 3.0, 5.75, 1.0, 8.0],
    "aov_imrs_user": [1.75117962376589, 2.0, 59.0, 0.182469476409435],
    "kruskal_imrs_user": [2.50452511904703, 2.0, 0.285857295484945],
    "welch_imrs_user": [
        1.21428840844772,
        54.9500351546508,
        0.229830426330524,
        -1.37217615697038,
        5.59153099568006,
        2.10967741935484,
    ],
    "wilcox_imrs_user": [521.5, 0.418278137334364],
    "describe_imrs_user": [62.0, 56.5161290322581, 6.83947542683101, 57.0, 53.25, 61.0, 40.0, 70.0],
    "aov_imrs_provider": [0.898188909160907, 2.0, 59.0, 0.412802233554251],
    "kruskal_imrs_provider": [1.61278378618311, 2.0, 0.446466060848753],
    "welch_imrs_provider": [
        1.10267597921674,
        55.8831230632272,
        0.274894062112572,
        -1.87071774470956,
        6.45136290599988,
        2.29032258064516,
    ],
    "wilcox_imrs_provider": [528.0, 0.366594574385181],
    "describe_imrs_provider": [62.0, 55.0645161290323, 8.06910921555301, 55.5, 49.25, 61.0, 33.0, 72.0],
    "pearson_imrs": [
        0.867054254930588,
        13.4805064543988,
        60.0,
        8.2350506298247e-20,
        0.787920054307471,
        0.91801480115484,
    ],
    "spearman_imrs": [0.874376482921894, 4988.63548668868, 1.67902664772651e-20],
    "blandaltman_imrs": [
        1.45161290322581,
        4.0232008273115,
        0.429911199317761,
        2.47331460713385,
        -8.18920533499425,
        -4.67822630675872,
        7.58145211321034,
        11.0924311414459,
    ],
    "spearman_ci_imrs": [0.782339628899848, 0.929045205571508],
    "wilcox_exact_ab": [28.0, 0.206001428911646],
    "welch_ab": [-1.23105716460217, 16.6701596364896, 0.235388198020311, -2.99329972174225, 0.78943608537861],
    "spearman_exact7": [0.428571428571428, 32.0, 0.353571428571429],
    "spearman_edgeworth30": [0.101223581757508, 4040.0, 0.593213476171558],
    "pearson_30": [0.212711228928082, 1.15192367523299, 28.0, 0.259093437782763, -0.159804328138569, 0.532196474593126],
    "orprecise_sex_two": [0.893420831337553, 0.400841096592865, 1.99708172638862],
    "orprecise_m01_two": [0.181634823400751, 0.0621723864115596, 0.483571288937141],
    "orprecise_m02_two": [0.262175870878433, 0.112283460915917, 0.592000946315482],
    "orprecise_m06_two": [math.inf, 210.264020521551, math.inf],
    "orprecise_m09_two": [0.0, 0.0, 0.622927082614643],
    "orprecise_m11_two": [1.11328836135717, 0.506987985918458, 2.44419507230494],
}


def close(actual, reference):
    assert np.atleast_1d(np.asarray(actual, dtype=float)) == pytest.approx(
        np.atleast_1d(np.asarray(reference, dtype=float)), rel=REL, abs=1e-12
    )


@pytest.fixture(scope="module")
def programme():
    return derive_programme_variables(pd.read_csv(DATA / "impl_programme.csv"))


@pytest.fixture(scope="module")
def samples():
    return pd.read_csv(DATA / "impl_samples.csv")


def subset(frame, which):
    return frame if which == "three" else frame[frame["service_type"].isin(["CMHC", "SerD"])]


def crosstab(frame, variable):
    # R: table(variable, service_type) with levels CMHC, SerD, EDP; empty rows/columns dropped
    table = pd.crosstab(frame[variable].astype(str), frame["service_type"])
    return table[[c for c in ["CMHC", "SerD", "EDP"] if c in table.columns]].to_numpy()


TABLE_CASES = [(v, w) for v in ["sex", "diagnosis", "format", *MODULES] for w in ["three", "two"]]


@pytest.mark.parametrize(("variable", "which"), TABLE_CASES)
def test_chi_square_matches_chisq_test(programme, variable, which):
    est = ht.chi_square_test(crosstab(subset(programme, which), variable))
    close([est.statistic, est.df, est.p], R_REFERENCE[f"chisq_{variable}_{which}"])


@pytest.mark.parametrize(("variable", "which"), TABLE_CASES)
def test_fisher_p_matches_fisher_test(programme, variable, which):
    est = ht.fisher_exact_test(crosstab(subset(programme, which), variable))
    close(est.p, R_REFERENCE[f"fisher_{variable}_{which}"])


@pytest.mark.parametrize("variable", ["sex", "m01", "m02", "m11"])
def test_fisher_2x2_odds_ratio(programme, variable):
    """Conditional MLE odds ratio and exact CI.

    R's fisher.test finds these with uniroot's default tolerance (~1.2e-4 on the odds-ratio or its
    reciprocal), so its printed values are accurate only to about 1e-3 relative; the script
    therefore also solves R's own equations with tol 1e-14 ("orprecise"), pinned at 1e-6.
    """
    est = ht.fisher_exact_test(crosstab(subset(programme, "two"), variable))
    close([est.estimate, est.ci_low, est.ci_high], R_REFERENCE[f"orprecise_{variable}_two"])
    assert [est.estimate, est.ci_low, est.ci_high] == pytest.approx(R_REFERENCE[f"fisheror_{variable}_two"], rel=1e-3)


def test_fisher_2x2_boundary_odds_ratios(programme):
    """Observed count at the edge of its support: the MLE is Inf (or 0) and one CI limit too, as in R."""
    inf_case = ht.fisher_exact_test(crosstab(subset(programme, "two"), "m06"))
    assert inf_case.estimate == math.inf and inf_case.ci_high == math.inf
    close(inf_case.ci_low, R_REFERENCE["orprecise_m06_two"][1])
    zero_case = ht.fisher_exact_test(crosstab(subset(programme, "two"), "m09"))
    assert zero_case.estimate == 0 and zero_case.ci_low == 0
    close(zero_case.ci_high, R_REFERENCE["orprecise_m09_two"][2])


CONTINUOUS = [
    "age_at_start",
    "age_at_first_contact",
    "illness_duration_years",
    "sessions",
    "duration_months",
    "modules_received",
    "imrs_user",
    "imrs_provider",
]


def groups_of(frame, variable, labels=("CMHC", "SerD", "EDP")):
    return [frame.loc[frame["service_type"] == g, variable].dropna().to_numpy() for g in labels]


@pytest.mark.parametrize("variable", CONTINUOUS)
def test_anova_matches_aov(programme, variable):
    est = ht.one_way_anova(groups_of(programme, variable))
    close([est.statistic, est.extra["df1"], est.df, est.p], R_REFERENCE[f"aov_{variable}"])


@pytest.mark.parametrize("variable", CONTINUOUS)
def test_kruskal_matches_kruskal_test(programme, variable):
    est = ht.kruskal_wallis_test(groups_of(programme, variable))
    close([est.statistic, est.df, est.p], R_REFERENCE[f"kruskal_{variable}"])


@pytest.mark.parametrize("variable", CONTINUOUS)
def test_welch_matches_t_test(programme, variable):
    est = ht.welch_t_test(*groups_of(programme, variable, ("CMHC", "SerD")))
    close([est.statistic, est.df, est.p, est.ci_low, est.ci_high, est.estimate], R_REFERENCE[f"welch_{variable}"])


@pytest.mark.parametrize("variable", CONTINUOUS)
def test_mann_whitney_normal_branch_matches_wilcox_test(programme, variable):
    est = ht.mann_whitney_u_test(*groups_of(programme, variable, ("CMHC", "SerD")))
    assert "normal approximation" in est.method  # these samples have ties or n >= 50
    close([est.statistic, est.p], R_REFERENCE[f"wilcox_{variable}"])


@pytest.mark.parametrize("variable", CONTINUOUS)
def test_summaries_match_r(programme, variable):
    row = summarise_continuous(programme, variable).iloc[0]
    assert row["group"] == "Overall"
    close(
        row[["n", "mean", "sd", "median", "q1", "q3", "min", "max"]].to_numpy(float),
        R_REFERENCE[f"describe_{variable}"],
    )


def test_pearson_imrs(programme):
    est = ht.pearson_correlation(programme["imrs_user"], programme["imrs_provider"])
    close([est.estimate, est.statistic, est.df, est.p, est.ci_low, est.ci_high], R_REFERENCE["pearson_imrs"])


def test_spearman_imrs_with_ties_uses_t_approximation(programme):
    est = ht.spearman_correlation(programme["imrs_user"], programme["imrs_provider"])
    assert "t(n-2) approximation" in est.method
    close([est.estimate, est.statistic, est.p], R_REFERENCE["spearman_imrs"])
    close([est.ci_low, est.ci_high], R_REFERENCE["spearman_ci_imrs"])  # R formula, not an R function


def test_bland_altman_imrs(programme):
    bias, low, high = ht.bland_altman(programme["imrs_user"], programme["imrs_provider"])
    ref = R_REFERENCE["blandaltman_imrs"]
    close([bias.estimate, bias.extra["sd_difference"], bias.ci_low, bias.ci_high], ref[:4])
    close([low.ci_low, low.ci_high, high.ci_low, high.ci_high], ref[4:])
    close([low.estimate, high.estimate], [ref[0] - 1.959963984540054 * ref[1], ref[0] + 1.959963984540054 * ref[1]])


def test_mann_whitney_exact_branch(samples):
    est = ht.mann_whitney_u_test(samples["a"].dropna(), samples["b"].dropna())
    assert "exact" in est.method
    close([est.statistic, est.p], R_REFERENCE["wilcox_exact_ab"])


def test_welch_small_samples(samples):
    est = ht.welch_t_test(samples["a"].dropna(), samples["b"].dropna())
    close([est.statistic, est.df, est.p, est.ci_low, est.ci_high], R_REFERENCE["welch_ab"])


def test_spearman_exact_enumeration_n7(samples):
    est = ht.spearman_correlation(samples["sx7"].dropna(), samples["sy7"].dropna())
    assert "exact enumeration" in est.method
    close([est.estimate, est.statistic, est.p], R_REFERENCE["spearman_exact7"])


def test_spearman_edgeworth_n30(samples):
    est = ht.spearman_correlation(samples["sx30"], samples["sy30"])
    assert "Edgeworth" in est.method
    close([est.estimate, est.statistic, est.p], R_REFERENCE["spearman_edgeworth30"])


def test_pearson_n30(samples):
    est = ht.pearson_correlation(samples["sx30"], samples["sy30"])
    close([est.estimate, est.statistic, est.df, est.p, est.ci_low, est.ci_high], R_REFERENCE["pearson_30"])
