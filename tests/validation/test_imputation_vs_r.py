"""Multiple imputation + Rubin's rules against R mice 3.15.0 on identical data (Monte Carlo).

Data: ``data/mi_trial.csv``, made by `make_trial_data` below (198 rows; arm, site, sex, age,
diagnosis complete; y_baseline 3.5%, y_post 31%, y_fu12 37% missing, MAR on baseline, arm and
post). Imputation: pmm or norm for the three scores, all other columns as predictors (mice's
default predictor matrix), m = 100, maxit = 5. Analysis: lm(y_fu12 ~ arm + y_baseline + site +
sex + age + diagnosis) per completed data set, pooled by Rubin's rules (mice ``pool()``); the
pinned row is the arm coefficient, IMR - TAU.

Reference: ``r/mice_trial.R`` (run from the repository root, N_REP=20) ran mice with 20 seeds per
method; its 20 printed rows per method are pinned below.

Tolerance (Monte Carlo): both sides are random, so each statistic s (pooled estimate, its SE,
Barnard-Rubin df, riv, fmi) is averaged over our K = 5 seeds and over R's 20 seeds. If the two
implementations draw from the same distribution, the difference of the two means has standard
deviation sd_R * sqrt(1/K + 1/20), where sd_R is the spread of s over R's 20 seeds (R's own
Monte Carlo error of one m = 100 run). We allow 4 times that (a false alarm about 1 in 15,000
per statistic). For the pooled estimate sd_R agrees with the textbook MC error sqrt(B/m)
(B ~ 1.0 and 1.5 here, so 0.10 and 0.12), which the first test checks, so the tolerance is the
4 x sqrt(2B/m) rule refined for averaging over seeds.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.trial.mice import impute_chained
from imrstats.trial.rubin import pool_rubin

DATA = Path(__file__).parent / "data" / "mi_trial.csv"
TARGETS = ["y_baseline", "y_post", "y_fu12"]
PREDICTORS = ["arm", "site", "sex", "age", "diagnosis"]
STATS = ["estimate", "se", "df", "riv", "fmi"]
K_SEEDS = 5

# printed by tests/validation/r/mice_trial.R (mice 3.15.0, R 4.2.2), 20 seeds (1001..1020) each;
# columns: estimate, se, df, riv, fmi, b (between-imputation variance)
R_RUNS = {
    "pmm": [
        [4.97081856230197, 1.59718603961238, 96.3377131883555, 0.6545449120962, 0.407772703915319, 0.999195635133885],
        [4.77934672390355, 1.64320738136444, 89.5889774546765, 0.74997891478582, 0.440908031313369, 1.14572296474699],
        [4.60591428318978, 1.55738914487053, 103.690883522503, 0.565532880312951, 0.373213895254116, 0.867498194343881],
        [4.64444558907099, 1.60578745929256, 96.232178824565, 0.655926891376813, 0.408279886844468, 1.01127443247734],
        [4.6005918420915, 1.5862078628077, 98.6739449510068, 0.624753943367239, 0.396629082775719, 0.957900123418518],
        [4.75245134408889, 1.65928600291171, 87.7553391736207, 0.778667597454985, 0.450171167201717, 1.19337912006715],
        [4.77079567412688, 1.50725735690678, 112.465280329143, 0.474958098469986, 0.333758174630349, 0.724317645283613],
        [4.67406046239023, 1.54280233378021, 105.896776481845, 0.541330965250789, 0.363125762362089, 0.827687063590371],
        [4.66855623779479, 1.57141106861731, 101.081554890771, 0.595568978866852, 0.385307490707521, 0.912587942936002],
        [4.55714286640401, 1.68309826863704, 84.9517872577882, 0.825169195897362, 0.464564561463226, 1.26805312717367],
        [4.64249298390722, 1.57619924188988, 100.268557156338, 0.605259903758548, 0.389112617533743, 0.927464726071178],
        [4.60407867945605, 1.57105623944465, 100.570675842984, 0.601639534929952, 0.387696486355746, 0.91798096606897],
        [4.67399370212047, 1.55785618753377, 102.90095037502, 0.574459261229196, 0.376856262731829, 0.876720498574652],
        [4.66482858293045, 1.6413271177903, 90.0263114167365, 0.743324855831787, 0.438715794747201, 1.13728483750649],
        [4.62340079678807, 1.65589132821867, 87.9409702253317, 0.775703632887504, 0.449228072761356, 1.18595342038234],
        [4.65403155201634, 1.55282253780494, 103.847237306098, 0.563782666863981, 0.37249484337951, 0.860711493657192],
        [4.59674481770082, 1.63891821165414, 92.2729007843945, 0.710221618392372, 0.427555083335043, 1.10442107190832],
        [4.42645044486273, 1.56035957925014, 103.125023205574, 0.571912846559208, 0.375821436001354, 0.877060188365206],
        [4.8405368461876, 1.5988952996939, 96.9822283798565, 0.646174307399917, 0.404682456384541, 0.993556444528808],
        [4.64286826885097, 1.58364279281588, 99.1842094828621, 0.618444332515141, 0.394216109501074, 0.948846437417157],
    ],
    "norm": [
        [4.56761880806625, 1.7680968328534, 79.7253472482007, 0.921609680834543, 0.492184275063367, 1.48447390840714],
        [4.56963315099495, 1.75515545813834, 80.7095633997768, 0.902379861504583, 0.486901702958398, 1.44677820870564],
        [4.61138146645511, 1.74806109931977, 83.0048197309946, 0.859513423899538, 0.474730605999247, 1.39844435053701],
        [4.6998882354482, 1.61350421703528, 97.9385552094191, 0.633969261600533, 0.400119703175172, 1.00009937277553],
        [4.81790431317248, 1.85386675479774, 70.4376302907746, 1.13340393033444, 0.544031023880175, 1.80778709740794],
        [4.92222828820859, 1.73481229212683, 83.312208227422, 0.853972475710223, 0.473116068498366, 1.37253743570434],
        [4.62303419079077, 1.67534491233454, 89.9236407643273, 0.744880660866091, 0.439229871855803, 1.18633695254518],
        [4.8253320160777, 1.71906527373328, 84.0255618231458, 0.841287273629733, 0.469383044890587, 1.33686061487549],
        [4.74407293239616, 1.65987208983087, 90.068309165416, 0.74268956208858, 0.43850561270228, 1.16255942532782],
        [4.66881679698874, 1.70029641137845, 88.2576989555265, 0.770677990743792, 0.447621732472205, 1.24583712956622],
        [4.77758264534976, 1.68697901267275, 86.9206680434642, 0.792166674431357, 0.454426763811416, 1.24547827474718],
        [4.56113245777136, 1.6715983504901, 91.999152676808, 0.71416158772224, 0.428906126669342, 1.15262284346554],
        [4.69407455114519, 1.66077656835687, 93.3538297115537, 0.694907626129993, 0.422243929073856, 1.11964949322217],
        [4.78965367940502, 1.57015578277693, 109.433741979941, 0.50459753530519, 0.347193038270173, 0.818632328026196],
        [4.6881821437212, 1.67827354057026, 89.7494711942096, 0.74752878483906, 0.440102764985418, 1.19291006777838],
        [4.7609131823681, 1.5873753496613, 104.467168176414, 0.556896279614393, 0.369649938880429, 0.892385542471437],
        [4.4807628048226, 1.66737335970498, 91.6162821542586, 0.719714847135778, 0.430799826629836, 1.15198908452525],
        [4.70900287532067, 1.75936636590037, 81.0987616034247, 0.894919961682854, 0.484823392698415, 1.44738651224223],
        [4.57551592428092, 1.73833757479511, 82.9750729589791, 0.86005206202495, 0.474887040340629, 1.38339595971081],
        [4.71399490390855, 1.76597107876767, 80.1959688160426, 0.912348462815348, 0.489653484876262, 1.47312470720533],
    ],
}


def make_trial_data(seed: int = 20190065, n: int = 198) -> pd.DataFrame:
    """The trial-like wide data set saved as data/mi_trial.csv (scores rounded to 0.1)."""
    rng = np.random.default_rng(seed)
    arm = np.where(rng.permutation(n) < n // 2, "IMR", "TAU")
    site = rng.choice(["CMHC1", "CMHC2", "CMHC3"], size=n, p=[0.4, 0.35, 0.25])
    sex = rng.choice(["female", "male"], size=n, p=[0.45, 0.55])
    age = np.round(rng.normal(38, 11, n).clip(18, 70), 0)
    diagnosis = rng.choice(["schizophrenia", "bipolar"], size=n, p=[0.7, 0.3])
    site_eff = pd.Series({"CMHC1": 0.0, "CMHC2": 2.0, "CMHC3": -1.5})[site].to_numpy()
    imr = (arm == "IMR").astype(float)
    y0 = 45 + site_eff - 0.08 * (age - 38) + 3 * (diagnosis == "bipolar") + rng.normal(0, 9, n)
    y1 = 12 + 0.75 * y0 + 2.0 * imr + rng.normal(0, 7, n)
    y2 = 8 + 0.45 * y1 + 0.35 * y0 + 1.5 * imr + 1.0 * (sex == "female") + rng.normal(0, 7, n)

    def logistic(x):
        return 1 / (1 + np.exp(-x))

    miss_post = rng.uniform(size=n) < logistic(-1.0 - 0.06 * (y0 - 45) + 0.3 * (arm == "TAU"))
    miss_fu = rng.uniform(size=n) < np.where(miss_post, 0.75, logistic(-1.6 - 0.05 * (y1 - 48)))
    miss_base = rng.uniform(size=n) < 0.03
    return pd.DataFrame(
        {
            "arm": arm,
            "site": site,
            "sex": sex,
            "age": age,
            "diagnosis": diagnosis,
            "y_baseline": np.round(np.where(miss_base, np.nan, y0), 1),
            "y_post": np.round(np.where(miss_post, np.nan, y1), 1),
            "y_fu12": np.round(np.where(miss_fu, np.nan, y2), 1),
        }
    )


def pooled_arm_effect(data: pd.DataFrame, imputed: np.ndarray):
    """lm(y_fu12 ~ arm + y_baseline + site + sex + age + diagnosis) on each of the m completed
    data sets (batched OLS by QR), pooled by Rubin's rules; returns the arm (IMR - TAU) row."""
    m, n = imputed.shape[:2]
    fixed = np.column_stack(
        [
            np.ones(n),
            data["arm"] == "IMR",
            data["site"] == "CMHC2",
            data["site"] == "CMHC3",
            data["sex"] == "male",
            data["age"],
            data["diagnosis"] == "schizophrenia",
        ]
    ).astype(float)
    x = np.concatenate(
        [np.broadcast_to(fixed, (m,) + fixed.shape), imputed[:, :, [TARGETS.index("y_baseline")]]], axis=2
    )
    y = imputed[:, :, TARGETS.index("y_fu12")]
    q, r = np.linalg.qr(x)
    r_inv = np.linalg.inv(r)
    beta = np.einsum("mij,mnj,mn->mi", r_inv, q, y)
    dfres = n - x.shape[2]
    sigma2 = ((y - np.einsum("mnp,mp->mn", x, beta)) ** 2).sum(axis=1) / dfres
    var = sigma2[:, None] * np.einsum("mij,mij->mi", r_inv, r_inv)
    return pool_rubin(beta[:, 1], var[:, 1], dfres, quantity="arm")


def test_shipped_csv_is_the_generated_data():
    shipped = pd.read_csv(DATA)
    pd.testing.assert_frame_equal(shipped, make_trial_data(), check_exact=False, rtol=1e-12)


@pytest.fixture(scope="module", params=["pmm", "norm"])
def ours_vs_r(request):
    data = pd.read_csv(DATA)
    rows = []
    for seed in range(K_SEEDS):
        res = impute_chained(
            data, targets=TARGETS, predictors=PREDICTORS, method=request.param, m=100, maxit=5, seed=seed
        )
        est = pooled_arm_effect(data, res.imputed)
        rows.append([est.estimate, est.se, est.df, est.extra["riv"], est.extra["fmi"]])
    return request.param, pd.DataFrame(rows, columns=STATS), pd.DataFrame(R_RUNS[request.param], columns=STATS + ["b"])


def test_r_spread_matches_the_textbook_monte_carlo_error(ours_vs_r):
    """Sanity check of the tolerance: over R's seeds, sd(Q-bar) is close to sqrt(B/m)."""
    method, _, ref = ours_vs_r
    b = ref["b"].mean()
    assert 0.6 < ref["estimate"].std(ddof=1) / np.sqrt(b / 100) < 1.6


@pytest.mark.parametrize("stat", STATS)
def test_pooled_arm_row_matches_mice_within_monte_carlo_error(ours_vs_r, stat):
    method, ours, ref = ours_vs_r
    tol = 4 * ref[stat].std(ddof=1) * np.sqrt(1 / len(ours) + 1 / len(ref))
    diff = ours[stat].mean() - ref[stat].mean()
    assert abs(diff) <= tol, f"{method} {stat}: ours {ours[stat].mean():.4g}, R {ref[stat].mean():.4g}, tol {tol:.3g}"
