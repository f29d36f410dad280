"""imrstats.trial.analyses against R on identical input: data/trial_gaf_f.csv (GAF-F of the default synthetic trial,
made by data/trial_make_data.py).

Deterministic (r/trial_deterministic.R, R 4.2.2; tolerance 1e-6 relative, 1e-9 absolute for p-values):
complete-case ANCOVA (lm), per-protocol one-way ANOVA and slope on sessions (lm / anova), the complete-case
arm x subgroup interaction F test (anova of lm, interaction last) and p.adjust (holm, BH).

Monte Carlo (r/trial_mi.R, mice 3.15.0 + nlme 3.1.162): the ITT MI-MMRM, imputed with pmm (5 donors,
m = 100, maxit = 5) within each arm, gls with unstructured covariance per completed data set, pooled with
pool.scalar(dfcom = 190). R ran 12 seeds; both sides are random. Tolerance as in test_imputation_vs_r.py:
each statistic s (pooled estimate, SE, Barnard-Rubin df, riv, fmi) is averaged over our K = 5 seeds and
R's 12; if both draw from the same distribution the difference of the means has SD sd_R sqrt(1/K + 1/12),
with sd_R the spread over R's seeds (its own Monte Carlo error of one m = 100 run); we allow 4 times that
(false alarm ~1 in 15,000 per statistic). The first MC test checks sd_R against the textbook Monte Carlo
error of a pooled estimate, sqrt(B / m).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.trial import analyses as trial

DATA = Path(__file__).parent / "data" / "trial_gaf_f.csv"
REL = 1e-6


@pytest.fixture(scope="module")
def frame():
    return pd.read_csv(DATA, dtype={"id": str})


# ---------------------------------------------------------------- deterministic

R_CC = {  # lm(y ~ arm + baseline + site + sex + age + diagnosis), armIMR: estimate, se, t, p, df, n
    "post": (5.84991321102353, 1.67059731967433, 3.5016895706285, 0.000671271236091883, 109, 117),
    "fu12": (2.93706010753103, 1.82421891316915, 1.61003708838243, 0.110131370282133, 115, 123),
}
R_PP_ANOVA = {  # F, df1, df2, p
    "post": (0.660840907031211, 1, 59, 0.419531540367344),
    "fu12": (0.32724427607647, 1, 59, 0.569459573744207),
}
R_PP_SLOPE = {  # estimate, se, t, p
    "post": (0.0549908226476662, 0.113336260522057, 0.485200609181595, 0.62933085993468),
    "fu12": (-0.0205533647078262, 0.115585804162406, -0.177819108988049, 0.859474154332474),
}
R_INTERACTION = {  # at fu12: F, df1, df2, p
    "sex": (0.621472586293957, 1, 114, 0.432136838059151),
    "diagnosis": (0.150229139351484, 1, 114, 0.699039203572196),
}
P_RAW = [0.01, 0.04, 0.03, np.nan, 0.2, 0.005, 0.04, 0.9]
R_HOLM = [0.06, 0.16, 0.15, np.nan, 0.4, 0.035, 0.16, 0.9]
R_BH = [0.035, 0.056, 0.056, np.nan, 0.233333333333333, 0.035, 0.056, 0.9]


def test_complete_case_ancova_matches_lm(frame):
    _, ancova = trial.complete_case(frame)
    for tp, (est, se, t, p, df, n) in R_CC.items():
        row = ancova.set_index("timepoint").loc[tp]
        assert row["estimate"] == pytest.approx(est, rel=REL)
        assert row["se"] == pytest.approx(se, rel=REL)
        assert row["statistic"] == pytest.approx(t, rel=REL)
        assert row["p"] == pytest.approx(p, rel=REL)
        assert (row["df"], row["n"]) == (df, n)


def test_per_protocol_matches_anova_and_lm(frame):
    groups, slopes = trial.per_protocol(frame, threshold=10)
    for tp, (F, df1, df2, p) in R_PP_ANOVA.items():
        row = groups.set_index("timepoint").loc[tp]
        assert row["F"] == pytest.approx(F, rel=REL) and row["p"] == pytest.approx(p, rel=REL)
        assert (row["df1"], row["df2"]) == (df1, df2)
    for tp, (est, se, t, p) in R_PP_SLOPE.items():
        row = slopes.set_index("timepoint").loc[tp]
        assert [row["estimate"], row["se"], row["statistic"], row["p"]] == pytest.approx([est, se, t, p], rel=REL)


@pytest.mark.parametrize("subgroup", ["sex", "diagnosis"])
def test_complete_case_interaction_matches_anova(frame, subgroup):
    _, test = trial.subgroup_interaction_cc(frame, subgroup, timepoint="fu12")
    F, df1, df2, p = R_INTERACTION[subgroup]
    assert test["F"] == pytest.approx(F, rel=REL) and test["p"] == pytest.approx(p, rel=REL)
    assert (test["df1"], test["df2"]) == (df1, df2)


@pytest.mark.parametrize("method, ref", [("holm", R_HOLM), ("bh", R_BH)])
def test_adjust_pvalues_matches_p_adjust(method, ref):
    np.testing.assert_allclose(trial.adjust_pvalues(P_RAW, method), ref, rtol=REL, atol=1e-12)


# ---------------------------------------------------------------- Monte Carlo: ITT MI-MMRM

STATS = ["estimate", "se", "df", "riv", "fmi"]
K_SEEDS = 5
# printed by r/trial_mi.R (N_REP=12, seeds 2001..2012): estimate, se, df, riv, fmi, b
R_RUNS = {
    "post": [
        [5.12764151372899, 1.67670633794344, 87.4093324422964, 0.784229166984237, 0.451932292099264, 1.22344653167433],
        [5.29155739232484, 1.67191765657095, 87.3019176924555, 0.785965558313571, 0.452479880387349, 1.2179762801341],
        [5.10298254546116, 1.6984954231564, 83.3986772608705, 0.852421986596961, 0.472662544210647, 1.31438351650259],
        [5.20443944323756, 1.63883283446512, 92.0845548687765, 0.712929703664313, 0.42848437528696, 1.10676421469759],
        [5.40372398626224, 1.58951459589836, 97.4803895616162, 0.63978492191942, 0.40230233522122, 0.976011148999654],
        [5.18089454097787, 1.74216416055353, 78.1628415386926, 0.953259511651418, 0.500651001156365, 1.4665874905462],
        [5.26414340833063, 1.69749459050553, 84.3930541450888, 0.834845254804552, 0.467467415292606, 1.29808151077467],
        [5.13402145562559, 1.63508387077066, 93.0777028404625, 0.698783184777546, 0.423597122694117, 1.08883779502834],
        [5.34480611135438, 1.69979929458986, 82.3252790124601, 0.871926489393419, 0.478312693826814, 1.33249318785456],
        [5.30552962018161, 1.77148728869609, 75.5060778885248, 1.01048570310443, 0.515279186538834, 1.56165066752721],
        [5.11176645490503, 1.74371209948653, 77.4014776272527, 0.969204782610972, 0.504812884933448, 1.48167466526843],
        [5.23181733801759, 1.62520040802189, 93.6100793784543, 0.691333056905934, 0.420990311573544, 1.06893342657751],
    ],
    "fu12": [
        [3.00755830113473, 1.86576657252228, 92.7743604198568, 0.703069375847221, 0.425086494850978, 1.42284988726495],
        [3.1791064143271, 1.91806884293233, 85.9005000132804, 0.809058318575293, 0.459662008324962, 1.62904945088664],
        [3.03835516262595, 1.96228056027195, 81.7583466302694, 0.882458894483488, 0.481314834172134, 1.78718624078073],
        [3.17173985437165, 1.96241164982507, 81.3542884956798, 0.890065643876778, 0.483462132921169, 1.79557687220888],
        [3.22919911352283, 1.86701689016529, 91.3692056715689, 0.723325269693201, 0.432024433792018, 1.44857671968705],
        [2.95828938815827, 1.90341297865692, 85.7968430438628, 0.810799447452569, 0.460196059746433, 1.60615616684172],
        [3.12353010189531, 1.8550586589635, 92.8704460685932, 0.701708431836436, 0.42461440787803, 1.40496486815539],
        [3.1328075111448, 1.94352719258397, 82.1120972192337, 0.875867901281768, 0.479440115654471, 1.74620902129998],
        [3.14979490791892, 1.82992885863062, 95.8228789561915, 0.66131736304699, 0.41025008625859, 1.31978856093569],
        [3.15475386293644, 1.91847402670074, 86.6845146499463, 0.796037874273697, 0.455635306948327, 1.615134576641],
        [3.0041207259798, 1.92580625241178, 85.07170331133, 0.823110852712198, 0.463943056913241, 1.65786461617295],
        [3.27599323915709, 1.86469072643289, 91.9496333559812, 0.714877012631732, 0.429150782413932, 1.43512788038189],
    ],
}


@pytest.fixture(scope="module")
def ours(frame):
    rows = []
    for seed in range(K_SEEDS):
        res = trial.itt_mi_mmrm(frame, m=100, method="pmm", donors=5, maxit=5, by_arm=True, seed=seed)
        assert res.df_complete == {"post": 190.0, "fu12": 190.0}  # the dfcom R is given
        for _, c in res.contrasts.iterrows():
            rows.append([c["timepoint"], c["estimate"], c["se"], c["df"], c["riv"], c["fmi"]])
    return pd.DataFrame(rows, columns=["timepoint"] + STATS)


@pytest.mark.parametrize("tp", ["post", "fu12"])
def test_r_spread_matches_the_textbook_monte_carlo_error(tp):
    ref = pd.DataFrame(R_RUNS[tp], columns=STATS + ["b"])
    assert 0.5 < ref["estimate"].std(ddof=1) / np.sqrt(ref["b"].mean() / 100) < 1.8


@pytest.mark.parametrize("tp", ["post", "fu12"])
@pytest.mark.parametrize("stat", STATS)
def test_itt_mi_mmrm_matches_mice_gls_pool(ours, tp, stat):
    ref = pd.DataFrame(R_RUNS[tp], columns=STATS + ["b"])
    mine = ours.loc[ours["timepoint"] == tp, stat]
    tol = 4 * ref[stat].std(ddof=1) * np.sqrt(1 / len(mine) + 1 / len(ref))
    diff = mine.mean() - ref[stat].mean()
    assert abs(diff) <= tol, f"{tp} {stat}: ours {mine.mean():.5g}, R {ref[stat].mean():.5g}, tol {tol:.3g}"
