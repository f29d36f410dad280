"""Kenward-Roger inference of imrstats.trial.mmrm against SAS PROC MIXED (DDFM=KR) and R (pbkrtest).

1. SAS, the independent reference. R's ``mmrm`` package repository (github.com/openpharma/mmrm, commit
   ec290b2695b25057b31bc98e27c39d3f498cd0d6) ships SAS 9 output of PROC MIXED on its ``fev_data`` set
   (exported unchanged to tests/validation/data/mmrm_kr_fev.csv, see mmrm_kr_fev.README.md), made by
   design/ddfm_covtype/ddfm_covtype.R (run 8 December 2022):

       PROC MIXED DATA = fev cl method=reml;
         CLASS RACE(ref = 'Asian') AVISIT(ref = 'VIS4') SEX(ref = 'Male') ARMCD(ref = 'PBO') USUBJID;
         MODEL FEV1 = ARMCD / ddfm=kr solution chisq;
         REPEATED AVISIT / subject=USUBJID type=un r rcorr;
         LSMEANS ARMCD / pdiff=all cl alpha=0.05 slice=AVISIT;

   i.e. FEV1 ~ intercept + ARMCD, unstructured 4 x 4 covariance, REML, 537 observations of 200 subjects.
   Pinned here: the TRT - PBO row of design/ddfm_covtype/kr_us.csv (15 digits; kr1_us.csv, DDFM=KR(LINEAR),
   is identical, as SAS's TYPE=UN is linear in its parameters), the LS means and -2 Res Log Likelihood of
   kr_us.txt (printed to 4 decimals), and the model-based (unadjusted) predicted means and SEs of
   design/predict_interval/un_kenwardroger_linear.csv (OUTPM=, same model; 15 digits). mmrm's own test
   (tests/testthat/test-kenwardroger.R, "kr linear give similar results as SAS for unstructured") pins
   the same SE and df with tolerance 1e-3.

   SAS stopped 7.6e-6 above the REML minimum of -2 l_R (3667.96276376 against 3667.962756144 here and in
   nlme + Newton in R; its estimate of ARMCD differs from the exact maximum by 6.4e-6 relative, and even
   its *unadjusted* SEs differ from ours by 7e-5), so its numbers carry that convergence error. Tolerances:
   (a) at our REML maximum, the first-order bound sqrt(Delta g' I^-1 g) on how far a quantity can move
   between the maximum and any covariance whose -2 l_R is Delta = 7.6e-6 higher (g its gradient in theta,
   I the observed REML information), computed once and rounded up: estimates 6e-5, SEs 2e-4, df 7e-4
   relative (observed: 6e-6, 9e-5, 2.7e-4);
   (b) at the covariance SAS stopped at, reconstructed as the point nearest the maximum (in the I metric)
   that reproduces SAS's four 15-digit model-based numbers (the two fixed effects and the unadjusted SEs
   of the two LS means): KR SE and df within 1e-5 relative (observed 4e-6 and 2e-6: the six covariance
   directions these four numbers leave free carry the rest), and SAS's 4-decimal LS means within half a
   unit of their last printed digit.

2. R, for richer designs (tests/validation/r/mmrm_kr.R, R 4.2.2, nlme 3.1-162, numDeriv 2016.8-1.1,
   pbkrtest 0.5.2): the exact REML maximum (Newton with the dense analytic score and information from
   nlme::gls's estimate), then
   - pbkrtest's KR code (pbkrtest:::vcovAdj_internal) on the dense covariance of all observations: Phi_A
     with pbkrtest's W = inverse *expected* information, compared with `kenward_roger_cov_beta` given the
     same W ("pbk_phi_adj");
   - Phi_A with W = inverse *observed* information (SAS's and mmrm's choice, ours), by the KR formula on
     dense matrices (the script checks it reproduces pbkrtest's Phi_A at pbkrtest's W to 1e-14), and the
     single-row df and multi-row F tests by pbkrtest's own Lb_ddf / .KR_adjust with that W;
   on fev_data (SAS's model) and on the synthetic trials of test_mmrm_vs_r.py with imrstats' default
   design (0 + time + arm:time + baseline:time + site + sex + age + diagnosis; 2 and 3 visits, MAR
   missingness). Tolerance 1e-6 relative (the project's deterministic default; observed ~1e-9);
   matrices elementwise relative to sqrt(V_ii V_jj).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imrstats.trial import mmrm
from imrstats.trial.mmrm import MMRMDesign, fit_mmrm
from imrstats.trial.mmrm.reml import evaluate_reml, pattern_stats, vech_basis

DATA = Path(__file__).parent / "data"
VISITS = ("VIS1", "VIS2", "VIS3", "VIS4")
RTOL = 1e-6

# ---- SAS 9, openpharma/mmrm@ec290b2 ---------------------------------------------------------------
SAS_DIFF = {  # design/ddfm_covtype/kr_us.csv: ARMCD TRT - PBO
    "estimate": 3.81972492174648,
    "se": 0.66124382270307,
    "df": 160.733266403768,
    "statistic": 5.77657558467911,
    "p": 3.8418051504164e-08,
    "ci_low": 2.51387886026607,
    "ci_high": 5.12557098322688,
}
SAS_MINUS2_REML = 3667.96276376  # kr_us.txt, Iteration History, last line
SAS_MODEL_MEANS = {  # predict_interval/un_kenwardroger_linear.csv: OUTPM Pred, StdErrPred
    "PBO": (41.0057732537811, 0.43968593170423),
    "TRT": (44.8254981755276, 0.46348535483747),
}
SAS_LS_MEANS = {  # kr_us.txt, Least Squares Means: estimate, SE, DF, t, lower, upper
    "TRT": (44.8255, 0.4801, 159, 93.37, 43.8773, 45.7737),
    "PBO": (41.0058, 0.4547, 162, 90.18, 40.1078, 41.9037),
}
# tolerances (a), see the module docstring
SAS_RTOL_ESTIMATE, SAS_RTOL_SE, SAS_RTOL_DF = 6e-5, 2e-4, 7e-4

# ---- R: tests/validation/r/mmrm_kr.R ----------------------------------------------------------------
R = {
    "fev": {
        "theta": [
            108.385685464698,
            45.4018317457451,
            40.1702787846451,
            -2.70030896846291,
            0.776890148968416,
            24.6123989258848,
            -47.0110305954017,
            -13.0963613798644,
            18.7469407513818,
            152.377907889607,
        ],
        "minus2_reml": [3667.9627561437],
        "beta": [41.0050990571543, 3.81974953675413],
        "se_model": [0.439718788096964, 0.638906265196974],
        "pbk_phi_adj": [0.202062456940314, -0.202062456940314, -0.202062456940314, 0.427222610177771],
        "kr_se": [0.454756532977812, 0.661300458916756],
        "c_trt": [3.81974953675413, 0.661300458916756, 160.690620458946, 3.85191837515504e-08],
        "c_mean_pbo": [41.0050990571543, 0.454756532977812, 162.163429866032, 1.7898768637441e-140],
        "c_mean_trt": [44.8248485939084, 0.480119560815337, 158.478518868121, 1.90352944996179e-140],
        "f_both": [8423.31306596922, 2, 160.540491176012, 0.999981058411893, 2.81157414532513e-163],
        "f_trt": [33.3635400687356, 1, 160.690620458946, 1, 3.85191837515507e-08],
    },
    "missing": {
        "theta": [62.7145720256947, 44.765531920474, 108.118141605121],
        "minus2_reml": [2352.43943584966],
        "beta": [
            10.9217943310518,
            20.5974836292926,
            3.18999429229017,
            -0.17452192022964,
            0.695862537603375,
            0.552848849587914,
            2.92762579258135,
            -1.10024426993358,
            -0.304348109993416,
            0.0553889793111116,
            -3.08584468882659,
        ],
        "se_model": [
            3.67848719133397,
            4.56872022838689,
            1.22802762979332,
            1.64468097297608,
            0.0546875121475711,
            0.0749017834755863,
            1.35011506640663,
            1.47423667209773,
            1.18433619837679,
            0.0398468636831042,
            1.34388717547545,
        ],
        "pbk_phi_adj": [
            13.6078720394471,
            10.1916791669729,
            -0.880304513622947,
            -0.761819850837882,
            -0.158313793130583,
            -0.0979939631678285,
            -1.17881210415933,
            -0.78384860122583,
            -1.03894913385282,
            -0.0505051322940972,
            -1.70723709358692,
            10.1916791669728,
            20.9737157138675,
            -0.689360218326772,
            -1.26826101822704,
            -0.0997808276797091,
            -0.291266825193512,
            -1.30849150196125,
            -0.769707962475754,
            -1.02035459818545,
            -0.0495179043301105,
            -1.6662322442428,
            -0.880304513622948,
            -0.689360218326774,
            1.5103505131053,
            1.03489475860558,
            -0.00351706282181249,
            -0.00246486087591182,
            0.0341547268404583,
            0.29709431349789,
            0.275566544425071,
            -0.00216676073136069,
            0.191992438330578,
            -0.761819850837884,
            -1.26826101822704,
            1.03489475860558,
            2.71090921203427,
            -0.00184247298928974,
            -0.00829660822492119,
            -0.00512163939593466,
            0.259418658440291,
            0.321486725657153,
            -0.0020124103091143,
            0.231873646403848,
            -0.158313793130583,
            -0.0997808276797092,
            -0.00351706282181251,
            -0.00184247298928976,
            0.0029952798184721,
            0.00189192393169977,
            0.00395113917102036,
            -0.00441052038922674,
            0.00151181935942254,
            -6.79148130420027e-05,
            0.00794114270105347,
            -0.0979939631678283,
            -0.291266825193512,
            -0.00246486087591184,
            -0.00829660822492126,
            0.00189192393169977,
            0.00562494212896029,
            0.00654088729629827,
            -0.00419193669373795,
            0.000723740770242749,
            -9.4005915926181e-05,
            0.006914677489905,
            -1.17881210415933,
            -1.30849150196125,
            0.0341547268404582,
            -0.00512163939593483,
            0.00395113917102036,
            0.00654088729629827,
            1.84550959171188,
            0.874110006493234,
            0.144859472125977,
            -0.00125142954151466,
            0.0878910333969165,
            -0.78384860122583,
            -0.769707962475754,
            0.29709431349789,
            0.259418658440291,
            -0.00441052038922673,
            -0.00419193669373795,
            0.874110006493234,
            2.20013191713741,
            0.120780610883117,
            -0.00885786160116905,
            0.358178840789615,
            -1.03894913385282,
            -1.02035459818545,
            0.27556654442507,
            0.321486725657153,
            0.00151181935942253,
            0.000723740770242739,
            0.144859472125977,
            0.120780610883117,
            1.41985864661163,
            -0.00489325531369081,
            0.236896767269807,
            -0.0505051322940974,
            -0.0495179043301107,
            -0.00216676073136069,
            -0.0020124103091143,
            -6.79148130420006e-05,
            -9.40059159261792e-05,
            -0.00125142954151464,
            -0.00885786160116904,
            -0.0048932553136908,
            0.0016078721623323,
            -0.00945621684338971,
            -1.70723709358692,
            -1.6662322442428,
            0.191992438330578,
            0.231873646403848,
            0.00794114270105347,
            0.00691467748990502,
            0.0878910333969165,
            0.358178840789615,
            0.236896767269807,
            -0.00945621684338973,
            1.82928593203113,
        ],
        "kr_se": [
            3.68886426824164,
            4.57962711864942,
            1.22896987529482,
            1.64646857364996,
            0.0547298679454008,
            0.0749987400138185,
            1.35844442107741,
            1.48322783938554,
            1.1915300971765,
            0.04009681973845,
            1.35245163085897,
        ],
        "c_diff_post": [3.18999429229017, 1.22896987529482, 172.015871614041, 0.0102567096127604],
        "c_mean_TAU_post": [48.581182890142, 0.942085337926885, 173.16253696015, 5.15227606857673e-107],
        "c_mean_IMR_post": [51.7711771824321, 0.880257470586888, 173.465093318004, 1.65552739560801e-116],
        "c_diff_fu12": [-0.17452192022964, 1.64646857364996, 173.852849901016, 0.915706363970781],
        "c_mean_TAU_fu12": [50.7740449199642, 1.22199198156252, 183.604041739132, 2.59444648590065e-95],
        "c_mean_IMR_fu12": [50.5995229997346, 1.16301242371441, 172.990033053576, 4.35274979778429e-95],
        "f_arm_all_visits": [4.73311631336243, 2, 166.943286373956, 0.994308569019311, 0.0100138009250073],
        "f_covariates": [0.923532045181097, 3, 176.946915253569, 0.999995121786755, 0.430649321394337],
    },
    "three_visits": {
        "theta": [
            53.2109179236142,
            38.854559309368,
            83.9995052081976,
            26.9613166038447,
            51.2868621342618,
            108.23523758738,
        ],
        "minus2_reml": [2605.59000823229],
        "beta": [
            17.3435420128358,
            10.9479566435632,
            10.4355065351623,
            2.37481200328453,
            1.81208246807948,
            2.68086010874916,
            0.631532888474621,
            0.77152338178134,
            0.81741014511882,
            0.411412032335778,
            0.295946412006246,
            -2.90445887903857,
            0.0231053121905864,
            -3.30084983775778,
        ],
        "se_model": [
            3.62565320548855,
            4.280032348502,
            4.88543904889773,
            1.25121072761904,
            1.5957070627295,
            1.8981012488884,
            0.0550268733461495,
            0.0681748560606392,
            0.0822635159008155,
            1.29733920322031,
            1.63653339951814,
            1.16844261681842,
            0.041262850370262,
            1.30214916157009,
        ],
        "pbk_phi_adj": [
            13.3126878950462,
            10.1991841246012,
            8.44274354116817,
            -0.655844303080664,
            -0.317291835372277,
            -0.142990779817761,
            -0.158258780080837,
            -0.105510285570802,
            -0.0742789040419756,
            -0.680919837098457,
            -0.845622929615789,
            -0.363160379894086,
            -0.0826820915961091,
            -0.507019713371101,
            10.1991841246012,
            18.5122158105875,
            12.1732776746334,
            -0.336950543254488,
            -1.32416837394792,
            -0.586548357183325,
            -0.104074416745296,
            -0.245016128575508,
            -0.137087138205574,
            -0.617740519849403,
            -1.00505081859085,
            -0.342575841334065,
            -0.0864558774367847,
            -0.431091462640838,
            8.44274354116817,
            12.1732776746334,
            24.1244218693795,
            -0.161327791095592,
            -0.599442004025563,
            -1.66411733228271,
            -0.0758367697415736,
            -0.139872821145332,
            -0.349732628901352,
            -0.584047480323644,
            -0.830887852613723,
            -0.438316200424196,
            -0.0833068345530666,
            -0.393788467382907,
            -0.655844303080665,
            -0.336950543254492,
            -0.161327791095595,
            1.56980144928725,
            1.07870804079304,
            0.764428003535642,
            0.00145711030571772,
            0.000194797579149941,
            -0.000188426765360487,
            -0.115303560516748,
            -0.198237918290703,
            -0.0250239492530278,
            -0.00500501882402759,
            0.114815150030104,
            -0.317291835372276,
            -1.32416837394792,
            -0.599442004025566,
            1.07870804079304,
            2.55463367134072,
            1.45207266772923,
            0.000326374880689788,
            0.00421231154425583,
            0.00220722491328665,
            -0.139474225961015,
            -0.228169635825724,
            -0.0358679475308276,
            -0.00520322632251822,
            0.112477947191791,
            -0.142990779817761,
            -0.586548357183325,
            -1.66411733228271,
            0.764428003535642,
            1.45207266772923,
            3.62605583541739,
            0.000292245387541284,
            0.00225524836587846,
            0.000340687202334105,
            -0.175700908683517,
            -0.245545365014052,
            -0.0610680638227611,
            -0.00463721177819697,
            0.0974513836346137,
            -0.158258780080836,
            -0.104074416745296,
            -0.0758367697415733,
            0.0014571103057177,
            0.000326374880689763,
            0.00029224538754126,
            0.00304072193525056,
            0.00204559634044909,
            0.00149089519221996,
            -0.00279460504031495,
            -0.000431915236998022,
            -0.00273035231537088,
            0.000257582515310748,
            -0.013343215622309,
            -0.105510285570801,
            -0.245016128575508,
            -0.139872821145332,
            0.000194797579149882,
            0.00421231154425581,
            0.00225524836587845,
            0.00204559634044909,
            0.00466621213216073,
            0.0026804883427461,
            -0.00371160539474118,
            0.00263589359207622,
            -0.0029779618503753,
            0.000315817979054016,
            -0.0145083711616072,
            -0.0742789040419756,
            -0.137087138205574,
            -0.349732628901351,
            -0.000188426765360554,
            0.00220722491328655,
            0.000340687202334032,
            0.00149089519221997,
            0.00268048834274611,
            0.00681825926365871,
            -0.00377625511205072,
            -0.000185788737843933,
            -0.000994901733772474,
            0.000249108760119462,
            -0.0151619110755132,
            -0.680919837098459,
            -0.617740519849406,
            -0.584047480323646,
            -0.115303560516748,
            -0.139474225961015,
            -0.175700908683517,
            -0.0027946050403149,
            -0.00371160539474114,
            -0.0037762551120507,
            1.73598285548399,
            0.783334549719933,
            0.14360665420035,
            0.00386600270744308,
            -0.162536041703909,
            -0.845622929615792,
            -1.00505081859086,
            -0.830887852613726,
            -0.198237918290703,
            -0.228169635825724,
            -0.245545365014052,
            -0.000431915236997963,
            0.00263589359207627,
            -0.000185788737843897,
            0.783334549719933,
            2.75951342556222,
            -0.11628575745211,
            0.00952159750712223,
            -0.191268051201027,
            -0.363160379894088,
            -0.342575841334066,
            -0.438316200424196,
            -0.0250239492530278,
            -0.0358679475308275,
            -0.061068063822761,
            -0.00273035231537087,
            -0.00297796185037529,
            -0.000994901733772474,
            0.14360665420035,
            -0.11628575745211,
            1.40797452373384,
            -0.00578186407551424,
            0.051927525592618,
            -0.0826820915961092,
            -0.0864558774367848,
            -0.0833068345530667,
            -0.00500501882402759,
            -0.00520322632251821,
            -0.00463721177819695,
            0.00025758251531075,
            0.000315817979054017,
            0.000249108760119463,
            0.00386600270744306,
            0.00952159750712221,
            -0.00578186407551425,
            0.00175731467307008,
            -0.000825424610174255,
            -0.507019713371097,
            -0.431091462640837,
            -0.393788467382907,
            0.114815150030103,
            0.112477947191791,
            0.0974513836346142,
            -0.013343215622309,
            -0.0145083711616072,
            -0.0151619110755132,
            -0.162536041703909,
            -0.191268051201027,
            0.0519275255926178,
            -0.000825424610174271,
            1.74967980883575,
        ],
        "kr_se": [
            3.64925272771547,
            4.30303083887458,
            4.91163919051537,
            1.25295523500349,
            1.59834752876796,
            1.9040421069587,
            0.0551456860016092,
            0.0683114805469837,
            0.0825634145064398,
            1.31810852613716,
            1.66181145949116,
            1.18706164710269,
            0.0419380183581159,
            1.32330424748109,
        ],
        "c_diff_post": [2.37481200328453, 1.25295523500349, 130.254473116447, 0.0602594733985568],
        "c_mean_TAU_post": [48.3449795902815, 0.995690452599495, 138.024740607261, 1.20365175560632e-88],
        "c_mean_IMR_post": [50.719791593566, 0.931784463249281, 137.62158490513, 5.7198704622717e-95],
        "c_diff_fu6": [1.81208246807948, 1.59834752876796, 131.133939335506, 0.258979372305629],
        "c_mean_TAU_fu6": [49.2451640204565, 1.23908072309157, 147.614843810387, 9.88025855163312e-81],
        "c_mean_IMR_fu6": [51.0572464885359, 1.13220346961319, 135.654986776929, 1.55920531395471e-83],
        "c_diff_fu12": [2.68086010874916, 1.9040421069587, 123.541438120988, 0.161647319830572],
        "c_mean_TAU_fu12": [51.1241567468092, 1.44894552641365, 140.053255682061, 1.45723063708358e-71],
        "c_mean_IMR_fu12": [53.8050168555584, 1.34349697531322, 130.720465144977, 2.94813152183399e-75],
        "f_arm_all_visits": [1.42778389970411, 3, 126.780238754401, 0.985023471269617, 0.237764851095764],
        "f_covariates": [2.04511337251947, 3, 134.16885472841, 0.999990252346383, 0.11057371631097],
    },
}
R_NAMES = {
    "missing": [
        "time[post]",
        "time[fu12]",
        "arm[IMR]:time[post]",
        "arm[IMR]:time[fu12]",
        "baseline:time[post]",
        "baseline:time[fu12]",
        "site[site_b]",
        "site[site_c]",
        "sex[male]",
        "age",
        "diagnosis[schizophrenia]",
    ],
    "three_visits": [
        "time[post]",
        "time[fu6]",
        "time[fu12]",
        "arm[IMR]:time[post]",
        "arm[IMR]:time[fu6]",
        "arm[IMR]:time[fu12]",
        "baseline:time[post]",
        "baseline:time[fu6]",
        "baseline:time[fu12]",
        "site[site_b]",
        "site[site_c]",
        "sex[male]",
        "age",
        "diagnosis[schizophrenia]",
    ],
}
TRIAL_TIMES = {"missing": ("post", "fu12"), "three_visits": ("post", "fu6", "fu12")}


# ---- fev_data: the SAS model FEV1 ~ ARMCD --------------------------------------------------------------


def fev_design(data: pd.DataFrame) -> MMRMDesign:
    """FEV1 ~ intercept + ARMCD on the subject x visit grid (the SAS model; not imrstats' default design).
    The ARMCD column is an arm main effect, so every visit's TRT - PBO contrast is that coefficient."""
    ids = tuple(sorted(data["USUBJID"].unique(), key=lambda s: int(s[2:])))
    pi = data["USUBJID"].map({v: i for i, v in enumerate(ids)}).to_numpy()
    ti = data["AVISIT"].map({v: k for k, v in enumerate(VISITS)}).to_numpy()
    treated = (data["ARMCD"] == "TRT").to_numpy(dtype=float)
    n = len(ids)
    X = np.zeros((n, len(VISITS), 2))
    X[pi, ti] = np.column_stack([np.ones(len(data)), treated])
    present = np.zeros((n, len(VISITS)), dtype=bool)
    present[pi, ti] = True
    arm_of = np.zeros(n, dtype=bool)
    arm_of[pi] = treated.astype(bool)
    return MMRMDesign(
        X=X,
        present=present,
        row_cell=pi * len(VISITS) + ti,
        ids=ids,
        times=VISITS,
        columns=("(Intercept)", "ARMCD[TRT]"),
        grid_terms=(("numeric", "(Intercept)"), ("arm", None)),
        numeric_values={"(Intercept)": np.ones((n, len(VISITS)))},
        reference_arm="PBO",
        treatment_arm="TRT",
        arm_of=arm_of,
        n_dropped_covariates=0,
    )


@pytest.fixture(scope="module")
def fev() -> tuple[MMRMDesign, np.ndarray]:
    data = pd.read_csv(DATA / "mmrm_kr_fev.csv")
    design = fev_design(data)
    return design, design.outcome_grid(data["FEV1"].to_numpy(dtype=float))


@pytest.fixture(scope="module")
def fev_fit(fev):
    design, grid = fev
    return mmrm.fit_mmrm_grid(design, grid, df_method="kenward_roger")


def _kr_at(design, grid, sigma):
    """Model-based and Kenward-Roger numbers of the fev model at a given Sigma (no refit), with W = the
    inverse observed REML information there, as SAS computes them at its last iterate."""
    observed = design.present & np.isfinite(grid)
    E, _ = vech_basis(len(design.times))
    fit = evaluate_reml(pattern_stats(design.X, grid, observed), sigma, E)
    W = np.linalg.inv(fit["observed_information"])
    q_terms = mmrm.kenward_roger_q_terms(design.X[None], observed, sigma[None])[0]
    adjusted = mmrm.kenward_roger_cov_beta(fit["cov_beta"], fit["dcov_beta"], q_terms, W)
    L = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # TRT - PBO, PBO mean, TRT mean
    return {
        "estimate": L @ fit["beta"],
        "se_model": np.sqrt(np.einsum("lp,pq,lq->l", L, fit["cov_beta"], L)),
        "se": np.sqrt(np.einsum("lp,pq,lq->l", L, adjusted, L)),
        "df": mmrm.kenward_roger_df(L, fit["cov_beta"], fit["dcov_beta"], W),
        "minus2": -2 * fit["loglik"],
    }


def _sas_stopping_covariance(design, grid, sigma_hat):
    """The Sigma nearest the REML maximum ``sigma_hat`` in the observed-information metric at which the
    model-based numbers equal SAS's 15-digit ones (both fixed effects, the unadjusted SEs of both LS means):
    Gauss-Newton on the linearised constraints, minimum-norm displacement (finite-difference Jacobian)."""
    _, pairs = vech_basis(len(design.times))
    rows, cols = (np.array(v) for v in zip(*pairs))

    def sigma_of(theta):
        s = np.zeros_like(sigma_hat)
        s[rows, cols] = s[cols, rows] = theta
        return s

    def model_numbers(theta):
        k = _kr_at(design, grid, sigma_of(theta))
        return np.array([k["estimate"][1], k["estimate"][2], k["se_model"][1], k["se_model"][2]])

    target = np.array(
        [SAS_MODEL_MEANS["PBO"][0], SAS_MODEL_MEANS["TRT"][0], SAS_MODEL_MEANS["PBO"][1], SAS_MODEL_MEANS["TRT"][1]]
    )
    theta0 = sigma_hat[rows, cols]
    E, _ = vech_basis(len(design.times))
    observed = design.present & np.isfinite(grid)
    info = evaluate_reml(pattern_stats(design.X, grid, observed), sigma_hat, E)["observed_information"]
    info_inv = np.linalg.inv(info)
    theta = theta0.copy()
    for _ in range(5):
        h = 1e-5 * np.maximum(np.abs(theta), 1.0)
        J = np.column_stack(
            [
                (
                    model_numbers(theta + h[j] * np.eye(len(theta))[j])
                    - model_numbers(theta - h[j] * np.eye(len(theta))[j])
                )
                / (2 * h[j])
                for j in range(len(theta))
            ]
        )
        rhs = target - model_numbers(theta) + J @ (theta - theta0)
        theta = theta0 + info_inv @ J.T @ np.linalg.solve(J @ info_inv @ J.T, rhs)
    np.testing.assert_allclose(model_numbers(theta), target, rtol=1e-12)
    return sigma_of(theta)


def test_fev_reaches_the_reml_maximum_sas_stopped_short_of(fev_fit):
    # SAS: 537 observations used; its 200 subjects include 3 with no observed FEV1, who add nothing
    assert fev_fit.converged and fev_fit.n_observations == 537 and fev_fit.n_participants == 197
    minus2 = -2 * fev_fit.reml_loglik
    np.testing.assert_allclose(minus2, R["fev"]["minus2_reml"][0], rtol=1e-12)
    assert 0 < SAS_MINUS2_REML - minus2 < 1e-5  # SAS's last iterate is 7.6e-6 above the minimum


def test_fev_kr_contrast_matches_sas_at_the_reml_maximum(fev_fit):
    rows = fev_fit.contrasts
    assert len(rows) == 4 and np.ptp(rows["se"]) < 1e-12  # one ARMCD coefficient at every visit
    row = rows.iloc[0]
    assert "Kenward-Roger" in row["method"]
    np.testing.assert_allclose(row["estimate"], SAS_DIFF["estimate"], rtol=SAS_RTOL_ESTIMATE)
    np.testing.assert_allclose(row["se"], SAS_DIFF["se"], rtol=SAS_RTOL_SE)
    np.testing.assert_allclose(row["df"], SAS_DIFF["df"], rtol=SAS_RTOL_DF)
    np.testing.assert_allclose(row["statistic"], SAS_DIFF["statistic"], rtol=SAS_RTOL_ESTIMATE + SAS_RTOL_SE)
    ci_tol = SAS_RTOL_ESTIMATE * row["estimate"] + 2.0 * SAS_RTOL_SE * row["se"] + 1e-4 * row["se"]
    np.testing.assert_allclose([row["ci_low"], row["ci_high"]], [SAS_DIFF["ci_low"], SAS_DIFF["ci_high"]], atol=ci_tol)
    # p moves with t: SAS's p must lie inside the p-values of t at the ends of its tolerance
    t = abs(row["statistic"])
    p_hi = 2 * stats.t.sf(t * (1 - SAS_RTOL_ESTIMATE - SAS_RTOL_SE), row["df"])
    p_lo = 2 * stats.t.sf(t * (1 + SAS_RTOL_ESTIMATE + SAS_RTOL_SE), row["df"])
    assert p_lo < SAS_DIFF["p"] < p_hi and p_lo < row["p"] < p_hi


def test_fev_model_based_ses_differ_from_sas_only_by_its_convergence(fev_fit):
    """The unadjusted SEs (no KR) show the size of SAS's convergence error that tolerance (a) allows for."""
    means = fev_fit.adjusted_means
    for arm, (est, se_model) in SAS_MODEL_MEANS.items():
        row = means.loc[(means["arm"] == arm) & (means["timepoint"] == "VIS1")].iloc[0]
        L = fev_fit.means_L[list(fev_fit.means_labels).index((arm, "VIS1"))]
        np.testing.assert_allclose(row["estimate"], est, rtol=SAS_RTOL_ESTIMATE)
        np.testing.assert_allclose(np.sqrt(L @ fev_fit.cov_beta_model @ L), se_model, rtol=SAS_RTOL_SE)


def test_fev_kr_matches_sas_at_its_own_covariance(fev, fev_fit):
    design, grid = fev
    sigma_sas = _sas_stopping_covariance(design, grid, fev_fit.sigma)
    at_sas = _kr_at(design, grid, sigma_sas)
    assert 0 < at_sas["minus2"] - (-2 * fev_fit.reml_loglik) < SAS_MINUS2_REML - (-2 * fev_fit.reml_loglik)
    np.testing.assert_allclose(at_sas["se"][0], SAS_DIFF["se"], rtol=1e-5)
    np.testing.assert_allclose(at_sas["df"][0], SAS_DIFF["df"], rtol=1e-5)
    for k, arm in ((2, "TRT"), (1, "PBO")):  # SAS's LS means, printed to 4 decimals / whole df
        est, se, df, t, lower, upper = SAS_LS_MEANS[arm]
        crit = stats.t.ppf(0.975, at_sas["df"][k])
        assert abs(at_sas["estimate"][k] - est) <= 5e-5 and abs(at_sas["se"][k] - se) <= 5e-5
        assert abs(at_sas["df"][k] - df) <= 0.5
        assert abs(at_sas["estimate"][k] / at_sas["se"][k] - t) <= 5e-3
        assert abs(at_sas["estimate"][k] - crit * at_sas["se"][k] - lower) <= 5e-5
        assert abs(at_sas["estimate"][k] + crit * at_sas["se"][k] - upper) <= 5e-5


# ---- against R (pbkrtest) ---------------------------------------------------------------------------


def _check_rows(frame, reference: dict, keys):
    for mask, key in keys:
        row = frame.loc[mask(frame)].iloc[0]
        est, se, df, p = reference[key]
        np.testing.assert_allclose([row["estimate"], row["se"], row["df"]], [est, se, df], rtol=RTOL, err_msg=key)
        np.testing.assert_allclose(np.log(row["p"]), np.log(p), rtol=RTOL, err_msg=key)


def _check_f(result, L, reference, rhs=None):
    test = result.f_test(L, rhs=rhs)
    f, ndf, ddf, scale, p = reference
    assert test.extra["num_df"] == ndf
    np.testing.assert_allclose([test.statistic, test.df, test.extra["lambda"]], [f, ddf, scale], rtol=RTOL)
    np.testing.assert_allclose(np.log(test.p), np.log(p), rtol=RTOL)


def _expected_information_phi_adj(design, grid, result):
    observed = design.present & np.isfinite(grid)
    E, _ = vech_basis(len(design.times))
    expected = evaluate_reml(pattern_stats(design.X, grid, observed), result.sigma, E)["expected_information"]
    q_terms = mmrm.kenward_roger_q_terms(design.X[None], observed, result.sigma[None])[0]
    return mmrm.kenward_roger_cov_beta(result.cov_beta_model, result.dcov_beta, q_terms, np.linalg.inv(expected))


def _assert_cov_close(actual, reference):
    p = actual.shape[0]
    reference = np.asarray(reference).reshape(p, p, order="F")
    scale = np.sqrt(np.outer(np.diag(reference), np.diag(reference)))
    np.testing.assert_array_less(np.abs(actual - reference) / scale, RTOL)


def test_fev_kr_matches_r(fev, fev_fit):
    ref = R["fev"]
    _, pairs = vech_basis(4)
    np.testing.assert_allclose(fev_fit.sigma[tuple(zip(*pairs))], ref["theta"], rtol=RTOL)
    np.testing.assert_allclose(fev_fit.beta, ref["beta"], rtol=RTOL)
    np.testing.assert_allclose(np.sqrt(np.diag(fev_fit.cov_beta_model)), ref["se_model"], rtol=RTOL)
    np.testing.assert_allclose(np.sqrt(np.diag(fev_fit.cov_beta)), ref["kr_se"], rtol=RTOL)

    def at(arm):
        return lambda f: (f["arm"] == arm) & (f["timepoint"] == "VIS2")

    _check_rows(fev_fit.contrasts, ref, [(lambda f: f["timepoint"] == "VIS3", "c_trt")])
    _check_rows(fev_fit.adjusted_means, ref, [(at("PBO"), "c_mean_pbo"), (at("TRT"), "c_mean_trt")])
    _check_f(fev_fit, [[0.0, 1.0], [1.0, 0.0]], ref["f_both"])
    _check_f(fev_fit, [[0.0, 1.0]], ref["f_trt"])
    design, grid = fev
    _assert_cov_close(_expected_information_phi_adj(design, grid, fev_fit), ref["pbk_phi_adj"])


@pytest.fixture(scope="module", params=["missing", "three_visits"])
def trial_fit(request):
    name = request.param
    data = pd.read_csv(DATA / f"mmrm_{name}.csv")
    design = mmrm.build_mmrm_design(data, times=TRIAL_TIMES[name])
    grid = design.outcome_grid(data["y"].to_numpy(dtype=float))
    return name, design, grid, fit_mmrm(data, "y", times=TRIAL_TIMES[name], df_method="kenward_roger")


def test_trial_design_kr_matches_r(trial_fit):
    name, _, _, res = trial_fit
    ref = R[name]
    assert list(res.columns) == R_NAMES[name] and res.converged
    _, pairs = vech_basis(len(res.times))
    np.testing.assert_allclose(res.sigma[tuple(zip(*pairs))], ref["theta"], rtol=RTOL)
    np.testing.assert_allclose(-2 * res.reml_loglik, ref["minus2_reml"][0], rtol=RTOL)
    np.testing.assert_allclose(res.beta, ref["beta"], rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(np.sqrt(np.diag(res.cov_beta_model)), ref["se_model"], rtol=RTOL)
    np.testing.assert_allclose(np.sqrt(np.diag(res.cov_beta)), ref["kr_se"], rtol=RTOL)
    keys = []
    for t in TRIAL_TIMES[name]:
        keys.append((lambda f, t=t: f["timepoint"] == t, f"c_diff_{t}"))
    _check_rows(res.contrasts, ref, keys)
    keys = [
        (lambda f, t=t, a=a: (f["timepoint"] == t) & (f["arm"] == a), f"c_mean_{a}_{t}")
        for t in TRIAL_TIMES[name]
        for a in ("TAU", "IMR")
    ]
    _check_rows(res.adjusted_means, ref, keys)


def test_trial_design_kr_f_tests_match_r(trial_fit):
    name, _, _, res = trial_fit
    _check_f(res, res.contrast_L, R[name]["f_arm_all_visits"])
    col = {c: j for j, c in enumerate(res.columns)}
    L = np.zeros((3, len(res.columns)))
    L[0, [col["site[site_b]"], col["site[site_c]"]]] = 1.0
    L[1, col["sex[male]"]] = 1.0
    L[2, col["age"]] = 1.0
    _check_f(res, L, R[name]["f_covariates"])


def test_trial_design_phi_adj_matches_pbkrtest(trial_fit):
    name, design, grid, res = trial_fit
    _assert_cov_close(_expected_information_phi_adj(design, grid, res), R[name]["pbk_phi_adj"])
