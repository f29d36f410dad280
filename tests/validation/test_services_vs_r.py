"""imrstats.services.models against R on identical data (references pinned from tests/validation/r/services.R).

Data: tests/validation/data/services_analysis.csv (198 simulated participants, overdispersed and
zero-inflated counts, exposure 200-365 days; written by services_make_data.py). R 4.2, MASS, pscl,
AER, sandwich; glm.nb / zeroinfl / hurdle run with tight tolerances so the references are the MLE.

Tolerances: coefficients and SEs 1e-4 relative, theta 1e-3 relative. Log-likelihood,
AIC and BIC 1e-6 relative (the MLEs agree far better than 1e-4, and the maximum is flat, so the
log-likelihood agrees to many more digits). The dispersion test and expected frequencies are
deterministic functions of the Poisson fit: 1e-6 relative. Vuong z statistics 1e-4 relative (they
inherit the fitted values' 1e-4 tolerance).
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imrstats.services import models as services

DATA = Path(__file__).parent / "data"
OUTCOMES = services.COUNT_OUTCOMES
REL_COEF, REL_THETA, REL_LL, REL_DET, REL_VUONG = 1e-4, 1e-3, 1e-6, 1e-6, 1e-4


def _close(ours, ref, rel):
    assert ours == pytest.approx(ref, rel=rel), (ours, ref)


def _ref(outcome, model, prefix):
    """{name: value} of the R references whose quantity starts with prefix (e.g. 'coef:')."""
    return {
        q[len(prefix) :]: v
        for (o, m, q), v in R_REFERENCE.items()
        if o == outcome and m == model and q.startswith(prefix)
    }


@pytest.fixture(scope="module")
def frame():
    participants = pd.read_csv(DATA / "services_participants.csv")
    service_use = pd.read_csv(DATA / "services_service_use.csv")
    return services.services_frame(participants, service_use)


@pytest.fixture(scope="module")
def fits(frame):
    out = {}
    for outcome in OUTCOMES:
        out[outcome] = {
            "poisson": services.fit_poisson(frame, outcome),
            "poisson_robust": services.fit_poisson(frame, outcome, robust=True),
            "nb2": services.fit_nb2(frame, outcome),
            "zinb_zero_1": services.fit_zinb(frame, outcome, zero_terms=()),
            "zinb_zero_arm": services.fit_zinb(frame, outcome, zero_terms=("arm",)),
            "hurdle_nb": services.fit_hurdle_nb(frame, outcome),
        }
    return out


def test_frame_matches_the_analysis_csv_r_reads(frame):
    analysis = pd.read_csv(DATA / "services_analysis.csv")
    for column in ["id", "site", "exposure_days", "prior_admissions", *OUTCOMES]:
        assert frame[column].tolist() == analysis[column].tolist(), column
    assert frame["arm"].astype(str).tolist() == analysis["arm"].tolist()


def _coef_by_name(fit):
    rows = fit.coefficients.set_index("quantity")
    return rows["estimate"], rows["se"]


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("model", ["poisson", "nb2", "zinb_zero_1", "zinb_zero_arm", "hurdle_nb"])
def test_coefficients_and_ses_match_r(fits, outcome, model):
    fit = fits[outcome][model]
    assert fit.converged, fit.warnings
    est, se = _coef_by_name(fit)
    prefix = "count_" if model in ("poisson", "nb2") else ""
    ref_coef, ref_se = _ref(outcome, model, "coef:"), _ref(outcome, model, "se:")
    assert len(ref_coef) == len(ref_se) > 0
    for name, value in ref_coef.items():
        _close(est[prefix + name], value, REL_COEF)
        _close(se[prefix + name], ref_se[name], REL_COEF)
    n_reg = len([q for q in est.index if q.startswith(("count_", "zero_"))])
    assert n_reg == len([n for n in ref_coef if n != "log_theta"])


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("model", ["poisson", "nb2", "zinb_zero_1", "zinb_zero_arm", "hurdle_nb"])
def test_loglik_aic_bic_match_r(fits, outcome, model):
    fit = fits[outcome][model]
    _close(fit.loglik, R_REFERENCE[(outcome, model, "loglik")], REL_LL)
    assert fit.n_params == R_REFERENCE[(outcome, model, "df")]
    _close(fit.aic, R_REFERENCE[(outcome, model, "aic")], REL_LL)
    _close(fit.bic, R_REFERENCE[(outcome, model, "bic")], REL_LL)


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("model", ["nb2", "zinb_zero_1", "zinb_zero_arm", "hurdle_nb"])
def test_theta_matches_r(fits, outcome, model):
    fit = fits[outcome][model]
    _close(fit.theta, R_REFERENCE[(outcome, model, "theta")], REL_THETA)
    rows = fit.coefficients.set_index("quantity")
    _close(rows.loc["alpha", "estimate"], 1 / R_REFERENCE[(outcome, model, "theta")], REL_THETA)
    if model == "nb2":  # MASS reports SE(theta) directly
        _close(rows.loc["theta", "se"], R_REFERENCE[(outcome, "nb2", "se_theta")], REL_THETA)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_robust_poisson_ses_match_sandwich(fits, outcome):
    _, se = _coef_by_name(fits[outcome]["poisson_robust"])
    for name, value in _ref(outcome, "poisson", "robust_se:").items():
        _close(se["count_" + name], value, REL_COEF)


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("trafo", [None, 1, 2])
def test_dispersion_test_matches_aer(fits, outcome, trafo):
    result = services.overdispersion_test(fits[outcome]["poisson"], trafo=trafo).set_index("method")
    ct = result[result.index.str.startswith("Cameron")].iloc[0]
    label = "none" if trafo is None else trafo
    _close(ct["statistic"], R_REFERENCE[(outcome, "dispersiontest", f"z_trafo_{label}")], REL_DET)
    _close(ct["estimate"], R_REFERENCE[(outcome, "dispersiontest", f"estimate_trafo_{label}")], REL_DET)
    _close(ct["p"], R_REFERENCE[(outcome, "dispersiontest", f"p_trafo_{label}")], REL_DET)
    pearson = result[result.index.str.startswith("Pearson")].iloc[0]
    _close(pearson["statistic"], R_REFERENCE[(outcome, "poisson", "pearson_chi2")], REL_DET)
    assert pearson["df"] == 198 - 5


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("model", ["poisson", "zinb_zero_1", "zinb_zero_arm", "hurdle_nb"])
def test_expected_frequencies_match_predprob(fits, outcome, model):
    data = services.rootogram_data(fits[outcome][model], max_count=5)
    ref = _ref(outcome, model, "expected_freq:")
    rel = REL_DET if model == "poisson" else REL_COEF
    for count, value in ref.items():
        _close(data.loc[data["count"] == int(count), "expected"].iloc[0], value, rel)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_expected_zeros_nb2(fits, outcome):
    check = services.zero_check([fits[outcome]["nb2"]])
    _close(check["expected_zeros"].iloc[0], R_REFERENCE[(outcome, "nb2", "expected_zeros")], REL_COEF)


VUONG_PAIRS = {
    "vuong_zinb_arm_vs_nb2": ("zinb_zero_arm", "nb2"),
    "vuong_hurdle_vs_nb2": ("hurdle_nb", "nb2"),
    "vuong_nb2_vs_poisson": ("nb2", "poisson"),
    "vuong_zinb_arm_vs_hurdle": ("zinb_zero_arm", "hurdle_nb"),
}


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("pair", sorted(VUONG_PAIRS))
def test_vuong_matches_pscl(fits, outcome, pair):
    a, b = VUONG_PAIRS[pair]
    result = services.vuong_test(fits[outcome][a], fits[outcome][b]).set_index("quantity")
    for label in ("Raw", "AIC-corrected", "BIC-corrected"):
        ours = result.loc[f"Vuong z ({label.replace('Raw', 'raw')})", "statistic"]
        _close(ours, R_REFERENCE[(outcome, pair, f"z_{label}")], REL_VUONG)


def test_sparse_arm_matches_r():
    data = pd.read_csv(DATA / "services_degenerate.csv")
    data["arm"] = pd.Categorical(data["arm"], categories=["TAU", "IMR"])
    data["log_exposure"] = np.log(data["exposure_days"])
    for model, fitter in [("poisson", services.fit_poisson), ("nb2", services.fit_nb2)]:
        fit = fitter(data, "sparse_events", covariates=("prior_admissions",))
        assert fit.converged, fit.warnings
        est, se = _coef_by_name(fit)
        for name, value in _ref("sparse_events", model, "coef:").items():
            _close(est["count_" + name], value, REL_COEF)
            _close(se["count_" + name], R_REFERENCE[("sparse_events", model, f"se:{name}")], REL_COEF)
        _close(fit.loglik, R_REFERENCE[("sparse_events", model, "loglik")], REL_LL)
    _close(fit.theta, R_REFERENCE[("sparse_events", "nb2", "theta")], REL_THETA)
    _close(
        fit.coefficients.set_index("quantity").loc["theta", "se"],
        R_REFERENCE[("sparse_events", "nb2", "se_theta")],
        REL_THETA,
    )


def test_arm_irr_is_exp_of_the_r_coefficient(fits):
    for outcome in OUTCOMES:
        irr = fits[outcome]["nb2"].effects.iloc[0]
        b = R_REFERENCE[(outcome, "nb2", "coef:armIMR")]
        s = R_REFERENCE[(outcome, "nb2", "se:armIMR")]
        _close(irr["estimate"], math.exp(b), REL_COEF)
        _close(irr["ci_low"], math.exp(b - 1.959963984540054 * s), REL_COEF)
        _close(irr["ci_high"], math.exp(b + 1.959963984540054 * s), REL_COEF)


# Pinned output of `Rscript tests/validation/r/services.R` (R 4.2.2; MASS, pscl 1.5.x, AER, sandwich).
# Key: (outcome, model, quantity); quantity "coef:<R name>", "se:<R name>", ...
R_REFERENCE = {
    ("admissions", "poisson", "coef:(Intercept)"): -6.53856204668677,
    ("admissions", "poisson", "coef:armIMR"): -0.531910640244044,
    ("admissions", "poisson", "coef:siteFrederiksberg"): -0.0440360254491748,
    ("admissions", "poisson", "coef:siteGladsaxe"): 0.193239811805389,
    ("admissions", "poisson", "coef:prior_admissions"): 0.172890888401902,
    ("admissions", "poisson", "se:(Intercept)"): 0.217848354171492,
    ("admissions", "poisson", "se:armIMR"): 0.210728875633007,
    ("admissions", "poisson", "se:siteFrederiksberg"): 0.255984341304345,
    ("admissions", "poisson", "se:siteGladsaxe"): 0.260917320809282,
    ("admissions", "poisson", "se:prior_admissions"): 0.0472612478770699,
    ("admissions", "poisson", "loglik"): -191.023466846981,
    ("admissions", "poisson", "df"): 5,
    ("admissions", "poisson", "aic"): 392.046933693962,
    ("admissions", "poisson", "bic"): 408.488268847435,
    ("admissions", "poisson", "robust_se:(Intercept)"): 0.302057388958919,
    ("admissions", "poisson", "robust_se:armIMR"): 0.25289000319373,
    ("admissions", "poisson", "robust_se:siteFrederiksberg"): 0.326980188505353,
    ("admissions", "poisson", "robust_se:siteGladsaxe"): 0.342364410413463,
    ("admissions", "poisson", "robust_se:prior_admissions"): 0.0664984848144107,
    ("admissions", "poisson", "pearson_chi2"): 283.599577631548,
    ("admissions", "dispersiontest", "z_trafo_none"): 2.50894641235505,
    ("admissions", "dispersiontest", "estimate_trafo_none"): 1.39930019553563,
    ("admissions", "dispersiontest", "p_trafo_none"): 0.00605459264640654,
    ("admissions", "dispersiontest", "z_trafo_1"): 2.50894641235505,
    ("admissions", "dispersiontest", "estimate_trafo_1"): 0.399300195535634,
    ("admissions", "dispersiontest", "p_trafo_1"): 0.00605459264640654,
    ("admissions", "dispersiontest", "z_trafo_2"): 3.24308452695612,
    ("admissions", "dispersiontest", "estimate_trafo_2"): 0.937638381300386,
    ("admissions", "dispersiontest", "p_trafo_2"): 0.000591215628469432,
    ("admissions", "poisson", "expected_freq:0"): 124.209255760349,
    ("admissions", "poisson", "expected_freq:1"): 55.4491056257673,
    ("admissions", "poisson", "expected_freq:2"): 14.4923483572059,
    ("admissions", "poisson", "expected_freq:3"): 3.05659690575078,
    ("admissions", "poisson", "expected_freq:4"): 0.619045626228792,
    ("admissions", "poisson", "expected_freq:5"): 0.133518552251521,
    ("admissions", "nb2", "coef:(Intercept)"): -6.58067139411916,
    ("admissions", "nb2", "coef:armIMR"): -0.442282358387134,
    ("admissions", "nb2", "coef:siteFrederiksberg"): 0.0125558316017631,
    ("admissions", "nb2", "coef:siteGladsaxe"): 0.115546474944088,
    ("admissions", "nb2", "coef:prior_admissions"): 0.189816236864908,
    ("admissions", "nb2", "se:(Intercept)"): 0.279660264901071,
    ("admissions", "nb2", "se:armIMR"): 0.260809723597002,
    ("admissions", "nb2", "se:siteFrederiksberg"): 0.319698896749938,
    ("admissions", "nb2", "se:siteGladsaxe"): 0.336421190617854,
    ("admissions", "nb2", "se:prior_admissions"): 0.0707713657027608,
    ("admissions", "nb2", "loglik"): -182.401701302213,
    ("admissions", "nb2", "df"): 6,
    ("admissions", "nb2", "aic"): 376.803402604425,
    ("admissions", "nb2", "bic"): 396.533004788592,
    ("admissions", "nb2", "theta"): 0.891654661202814,
    ("admissions", "nb2", "se_theta"): 0.33435966735601,
    ("admissions", "nb2", "expected_zeros"): 136.190635170653,
    ("admissions", "zinb_zero_1", "coef:count_(Intercept)"): -6.16517737355416,
    ("admissions", "zinb_zero_1", "coef:count_armIMR"): -0.456730305027065,
    ("admissions", "zinb_zero_1", "coef:count_siteFrederiksberg"): 0.0743206956199314,
    ("admissions", "zinb_zero_1", "coef:count_siteGladsaxe"): 0.17199741726318,
    ("admissions", "zinb_zero_1", "coef:count_prior_admissions"): 0.20193414254546,
    ("admissions", "zinb_zero_1", "coef:zero_(Intercept)"): -0.541758806481569,
    ("admissions", "zinb_zero_1", "coef:log_theta"): 1.39077981740005,
    ("admissions", "zinb_zero_1", "se:count_(Intercept)"): 0.376093460959175,
    ("admissions", "zinb_zero_1", "se:count_armIMR"): 0.261842037743405,
    ("admissions", "zinb_zero_1", "se:count_siteFrederiksberg"): 0.325963077337009,
    ("admissions", "zinb_zero_1", "se:count_siteGladsaxe"): 0.327136162116928,
    ("admissions", "zinb_zero_1", "se:count_prior_admissions"): 0.0788817043756771,
    ("admissions", "zinb_zero_1", "se:zero_(Intercept)"): 0.735985363010742,
    ("admissions", "zinb_zero_1", "se:log_theta"): 1.61756701166496,
    ("admissions", "zinb_zero_1", "loglik"): -181.826208856836,
    ("admissions", "zinb_zero_1", "df"): 7,
    ("admissions", "zinb_zero_1", "aic"): 377.652417713671,
    ("admissions", "zinb_zero_1", "bic"): 400.670286928533,
    ("admissions", "zinb_zero_1", "theta"): 4.01798212398713,
    ("admissions", "zinb_zero_1", "expected_freq:0"): 136.931546059811,
    ("admissions", "zinb_zero_1", "expected_freq:1"): 37.4387131935368,
    ("admissions", "zinb_zero_1", "expected_freq:2"): 15.0203083862006,
    ("admissions", "zinb_zero_1", "expected_freq:3"): 5.36300624068429,
    ("admissions", "zinb_zero_1", "expected_freq:4"): 1.90489378800576,
    ("admissions", "zinb_zero_1", "expected_freq:5"): 0.72328820801248,
    ("admissions", "zinb_zero_arm", "coef:count_(Intercept)"): -5.91597986053111,
    ("admissions", "zinb_zero_arm", "coef:count_armIMR"): -1.0295417843287,
    ("admissions", "zinb_zero_arm", "coef:count_siteFrederiksberg"): 0.0211184658860286,
    ("admissions", "zinb_zero_arm", "coef:count_siteGladsaxe"): 0.0927982765996004,
    ("admissions", "zinb_zero_arm", "coef:count_prior_admissions"): 0.139579112868402,
    ("admissions", "zinb_zero_arm", "coef:zero_(Intercept)"): -0.162718925945274,
    ("admissions", "zinb_zero_arm", "coef:zero_armIMR"): -2.82109226581459,
    ("admissions", "zinb_zero_arm", "coef:log_theta"): 1.25187060853113,
    ("admissions", "zinb_zero_arm", "se:count_(Intercept)"): 0.386595127926285,
    ("admissions", "zinb_zero_arm", "se:count_armIMR"): 0.53525449014459,
    ("admissions", "zinb_zero_arm", "se:count_siteFrederiksberg"): 0.314200034680942,
    ("admissions", "zinb_zero_arm", "se:count_siteGladsaxe"): 0.322686468247141,
    ("admissions", "zinb_zero_arm", "se:count_prior_admissions"): 0.0756361211657752,
    ("admissions", "zinb_zero_arm", "se:zero_(Intercept)"): 0.68397674078083,
    ("admissions", "zinb_zero_arm", "se:zero_armIMR"): 10.5145533101692,
    ("admissions", "zinb_zero_arm", "se:log_theta"): 1.70962189290877,
    ("admissions", "zinb_zero_arm", "loglik"): -180.838719662815,
    ("admissions", "zinb_zero_arm", "df"): 8,
    ("admissions", "zinb_zero_arm", "aic"): 377.67743932563,
    ("admissions", "zinb_zero_arm", "bic"): 403.983575571187,
    ("admissions", "zinb_zero_arm", "theta"): 3.49687813324678,
    ("admissions", "zinb_zero_arm", "expected_freq:0"): 137.023616565208,
    ("admissions", "zinb_zero_arm", "expected_freq:1"): 38.9993607564299,
    ("admissions", "zinb_zero_arm", "expected_freq:2"): 14.0538059315495,
    ("admissions", "zinb_zero_arm", "expected_freq:3"): 5.01973935989479,
    ("admissions", "zinb_zero_arm", "expected_freq:4"): 1.82292555674231,
    ("admissions", "zinb_zero_arm", "expected_freq:5"): 0.669075476334528,
    ("admissions", "hurdle_nb", "coef:count_(Intercept)"): -5.95200252357629,
    ("admissions", "hurdle_nb", "coef:count_armIMR"): -1.24533653636411,
    ("admissions", "hurdle_nb", "coef:count_siteFrederiksberg"): -0.0922579612364025,
    ("admissions", "hurdle_nb", "coef:count_siteGladsaxe"): 0.0213944671547446,
    ("admissions", "hurdle_nb", "coef:count_prior_admissions"): 0.19908233669671,
    ("admissions", "hurdle_nb", "coef:zero_(Intercept)"): -0.912225541848474,
    ("admissions", "hurdle_nb", "coef:zero_armIMR"): -0.0967365866241981,
    ("admissions", "hurdle_nb", "coef:zero_siteFrederiksberg"): 0.107478787720665,
    ("admissions", "hurdle_nb", "coef:zero_siteGladsaxe"): 0.11924427541726,
    ("admissions", "hurdle_nb", "coef:zero_prior_admissions"): 0.116718245701427,
    ("admissions", "hurdle_nb", "coef:log_theta"): 0.994735441083899,
    ("admissions", "hurdle_nb", "se:count_(Intercept)"): 0.507343039001528,
    ("admissions", "hurdle_nb", "se:count_armIMR"): 0.495587915205455,
    ("admissions", "hurdle_nb", "se:count_siteFrederiksberg"): 0.515526603507708,
    ("admissions", "hurdle_nb", "se:count_siteGladsaxe"): 0.543170894382055,
    ("admissions", "hurdle_nb", "se:count_prior_admissions"): 0.115109559127012,
    ("admissions", "hurdle_nb", "se:zero_(Intercept)"): 0.34497734622279,
    ("admissions", "hurdle_nb", "se:zero_armIMR"): 0.30829297482359,
    ("admissions", "hurdle_nb", "se:zero_siteFrederiksberg"): 0.382814942926744,
    ("admissions", "hurdle_nb", "se:zero_siteGladsaxe"): 0.404571350512879,
    ("admissions", "hurdle_nb", "se:zero_prior_admissions"): 0.0996262515300959,
    ("admissions", "hurdle_nb", "se:log_theta"): 1.62256282647637,
    ("admissions", "hurdle_nb", "loglik"): -179.369216382897,
    ("admissions", "hurdle_nb", "df"): 11,
    ("admissions", "hurdle_nb", "aic"): 380.738432765794,
    ("admissions", "hurdle_nb", "bic"): 416.909370103434,
    ("admissions", "hurdle_nb", "theta"): 2.70400887698477,
    ("admissions", "hurdle_nb", "expected_freq:0"): 136.000000003264,
    ("admissions", "hurdle_nb", "expected_freq:1"): 41.4244391513784,
    ("admissions", "hurdle_nb", "expected_freq:2"): 12.9552843553574,
    ("admissions", "hurdle_nb", "expected_freq:3"): 4.54307428105457,
    ("admissions", "hurdle_nb", "expected_freq:4"): 1.74135276963684,
    ("admissions", "hurdle_nb", "expected_freq:5"): 0.707474177556986,
    ("admissions", "vuong_zinb_arm_vs_nb2", "z_Raw"): 0.87252878339142,
    ("admissions", "vuong_zinb_arm_vs_nb2", "z_AIC-corrected"): -0.243963901356696,
    ("admissions", "vuong_zinb_arm_vs_nb2", "z_BIC-corrected"): -2.07962694399113,
    ("admissions", "vuong_hurdle_vs_nb2", "z_Raw"): 1.13582325430253,
    ("admissions", "vuong_hurdle_vs_nb2", "z_AIC-corrected"): -0.7369366843666,
    ("admissions", "vuong_hurdle_vs_nb2", "z_BIC-corrected"): -3.81600406573221,
    ("admissions", "vuong_nb2_vs_poisson", "z_Raw"): 2.10206864800954,
    ("admissions", "vuong_nb2_vs_poisson", "z_AIC-corrected"): 2.10206864800954,
    ("admissions", "vuong_nb2_vs_poisson", "z_BIC-corrected"): 2.10206864800954,
    ("admissions", "vuong_zinb_arm_vs_hurdle", "z_Raw"): -0.993236175583828,
    ("admissions", "vuong_zinb_arm_vs_hurdle", "z_AIC-corrected"): 1.03446159649416,
    ("admissions", "vuong_zinb_arm_vs_hurdle", "z_BIC-corrected"): 4.36826746256256,
    ("bed_days", "poisson", "coef:(Intercept)"): -2.80818100367254,
    ("bed_days", "poisson", "coef:armIMR"): -0.256953636153032,
    ("bed_days", "poisson", "coef:siteFrederiksberg"): -0.0415065778357628,
    ("bed_days", "poisson", "coef:siteGladsaxe"): 0.119240457926666,
    ("bed_days", "poisson", "coef:prior_admissions"): 0.109854674652142,
    ("bed_days", "poisson", "se:(Intercept)"): 0.0338254451135477,
    ("bed_days", "poisson", "se:armIMR"): 0.0315856213290151,
    ("bed_days", "poisson", "se:siteFrederiksberg"): 0.0390266925028644,
    ("bed_days", "poisson", "se:siteGladsaxe"): 0.0402756614458598,
    ("bed_days", "poisson", "se:prior_admissions"): 0.00831945122315857,
    ("bed_days", "poisson", "loglik"): -4560.59625105133,
    ("bed_days", "poisson", "df"): 5,
    ("bed_days", "poisson", "aic"): 9131.19250210267,
    ("bed_days", "poisson", "bic"): 9147.63383725614,
    ("bed_days", "poisson", "robust_se:(Intercept)"): 0.266399052001544,
    ("bed_days", "poisson", "robust_se:armIMR"): 0.236905623792443,
    ("bed_days", "poisson", "robust_se:siteFrederiksberg"): 0.304538975742453,
    ("bed_days", "poisson", "robust_se:siteGladsaxe"): 0.298811313488842,
    ("bed_days", "poisson", "robust_se:prior_admissions"): 0.0503448679487607,
    ("bed_days", "poisson", "pearson_chi2"): 11392.8961558015,
    ("bed_days", "dispersiontest", "z_trafo_none"): 4.71450040607927,
    ("bed_days", "dispersiontest", "estimate_trafo_none"): 57.504167631172,
    ("bed_days", "dispersiontest", "p_trafo_none"): 1.21152260589751e-06,
    ("bed_days", "dispersiontest", "z_trafo_1"): 4.71450040607926,
    ("bed_days", "dispersiontest", "estimate_trafo_1"): 56.5041676311719,
    ("bed_days", "dispersiontest", "p_trafo_1"): 1.21152260589754e-06,
    ("bed_days", "dispersiontest", "z_trafo_2"): 4.65404767479207,
    ("bed_days", "dispersiontest", "estimate_trafo_2"): 2.59915967429768,
    ("bed_days", "dispersiontest", "p_trafo_2"): 1.62740747390748e-06,
    ("bed_days", "poisson", "expected_freq:0"): 0.000259393066326615,
    ("bed_days", "poisson", "expected_freq:1"): 0.00274108193562576,
    ("bed_days", "poisson", "expected_freq:2"): 0.0146986212851354,
    ("bed_days", "poisson", "expected_freq:3"): 0.0534807071074905,
    ("bed_days", "poisson", "expected_freq:4"): 0.149039507480726,
    ("bed_days", "poisson", "expected_freq:5"): 0.340644045256027,
    ("bed_days", "nb2", "coef:(Intercept)"): -2.97053072798669,
    ("bed_days", "nb2", "coef:armIMR"): -0.143633353728719,
    ("bed_days", "nb2", "coef:siteFrederiksberg"): 0.109433780769047,
    ("bed_days", "nb2", "coef:siteGladsaxe"): 0.2243302102635,
    ("bed_days", "nb2", "coef:prior_admissions"): 0.162908090856383,
    ("bed_days", "nb2", "se:(Intercept)"): 0.355174815276393,
    ("bed_days", "nb2", "se:armIMR"): 0.319923025520098,
    ("bed_days", "nb2", "se:siteFrederiksberg"): 0.394993138568411,
    ("bed_days", "nb2", "se:siteGladsaxe"): 0.417205908079882,
    ("bed_days", "nb2", "se:prior_admissions"): 0.108927248708885,
    ("bed_days", "nb2", "loglik"): -660.579063252585,
    ("bed_days", "nb2", "df"): 6,
    ("bed_days", "nb2", "aic"): 1333.15812650517,
    ("bed_days", "nb2", "bic"): 1352.88772868934,
    ("bed_days", "nb2", "theta"): 0.200097936639354,
    ("bed_days", "nb2", "se_theta"): 0.0226903257211098,
    ("bed_days", "nb2", "expected_zeros"): 78.3201361067135,
    ("bed_days", "zinb_zero_1", "coef:count_(Intercept)"): -2.39241695307804,
    ("bed_days", "zinb_zero_1", "coef:count_armIMR"): 0.027124448605818,
    ("bed_days", "zinb_zero_1", "coef:count_siteFrederiksberg"): -0.117988092780202,
    ("bed_days", "zinb_zero_1", "coef:count_siteGladsaxe"): 0.0586622273253845,
    ("bed_days", "zinb_zero_1", "coef:count_prior_admissions"): 0.167577308034891,
    ("bed_days", "zinb_zero_1", "coef:zero_(Intercept)"): -0.397007492935594,
    ("bed_days", "zinb_zero_1", "coef:log_theta"): -0.27123861884831,
    ("bed_days", "zinb_zero_1", "se:count_(Intercept)"): 0.25955057047925,
    ("bed_days", "zinb_zero_1", "se:count_armIMR"): 0.219966263166047,
    ("bed_days", "zinb_zero_1", "se:count_siteFrederiksberg"): 0.278534706932409,
    ("bed_days", "zinb_zero_1", "se:count_siteGladsaxe"): 0.296884285563176,
    ("bed_days", "zinb_zero_1", "se:count_prior_admissions"): 0.0913119618450673,
    ("bed_days", "zinb_zero_1", "se:zero_(Intercept)"): 0.165243762082649,
    ("bed_days", "zinb_zero_1", "se:log_theta"): 0.175516819726073,
    ("bed_days", "zinb_zero_1", "loglik"): -647.218978749176,
    ("bed_days", "zinb_zero_1", "df"): 7,
    ("bed_days", "zinb_zero_1", "aic"): 1308.43795749835,
    ("bed_days", "zinb_zero_1", "bic"): 1331.45582671321,
    ("bed_days", "zinb_zero_1", "theta"): 0.762434543444557,
    ("bed_days", "zinb_zero_1", "expected_freq:0"): 86.0770979592682,
    ("bed_days", "zinb_zero_1", "expected_freq:1"): 4.82120813911362,
    ("bed_days", "zinb_zero_1", "expected_freq:2"): 4.14932355467393,
    ("bed_days", "zinb_zero_1", "expected_freq:3"): 3.73165496852778,
    ("bed_days", "zinb_zero_1", "expected_freq:4"): 3.42830000861342,
    ("bed_days", "zinb_zero_1", "expected_freq:5"): 3.18948869986141,
    ("bed_days", "zinb_zero_arm", "coef:count_(Intercept)"): -2.4055611538218,
    ("bed_days", "zinb_zero_arm", "coef:count_armIMR"): 0.0513097160113956,
    ("bed_days", "zinb_zero_arm", "coef:count_siteFrederiksberg"): -0.118479371055095,
    ("bed_days", "zinb_zero_arm", "coef:count_siteGladsaxe"): 0.0590718299534668,
    ("bed_days", "zinb_zero_arm", "coef:count_prior_admissions"): 0.169990396721324,
    ("bed_days", "zinb_zero_arm", "coef:zero_(Intercept)"): -0.629559625380417,
    ("bed_days", "zinb_zero_arm", "coef:zero_armIMR"): 0.453161696446785,
    ("bed_days", "zinb_zero_arm", "coef:log_theta"): -0.272405343968215,
    ("bed_days", "zinb_zero_arm", "se:count_(Intercept)"): 0.260716603998431,
    ("bed_days", "zinb_zero_arm", "se:count_armIMR"): 0.220548528344494,
    ("bed_days", "zinb_zero_arm", "se:count_siteFrederiksberg"): 0.278567647135241,
    ("bed_days", "zinb_zero_arm", "se:count_siteGladsaxe"): 0.297008643817801,
    ("bed_days", "zinb_zero_arm", "se:count_prior_admissions"): 0.0914632528139149,
    ("bed_days", "zinb_zero_arm", "se:zero_(Intercept)"): 0.238509962354297,
    ("bed_days", "zinb_zero_arm", "se:zero_armIMR"): 0.314135499959679,
    ("bed_days", "zinb_zero_arm", "se:log_theta"): 0.175701411577326,
    ("bed_days", "zinb_zero_arm", "loglik"): -646.164197756507,
    ("bed_days", "zinb_zero_arm", "df"): 8,
    ("bed_days", "zinb_zero_arm", "aic"): 1308.32839551301,
    ("bed_days", "zinb_zero_arm", "bic"): 1334.63453175857,
    ("bed_days", "zinb_zero_arm", "theta"): 0.76154551063974,
    ("bed_days", "zinb_zero_arm", "expected_freq:0"): 86.0558473726094,
    ("bed_days", "zinb_zero_arm", "expected_freq:1"): 4.83208070385938,
    ("bed_days", "zinb_zero_arm", "expected_freq:2"): 4.156615950226,
    ("bed_days", "zinb_zero_arm", "expected_freq:3"): 3.73704000980302,
    ("bed_days", "zinb_zero_arm", "expected_freq:4"): 3.43246359702778,
    ("bed_days", "zinb_zero_arm", "expected_freq:5"): 3.19279196125347,
    ("bed_days", "hurdle_nb", "coef:count_(Intercept)"): -2.37747609416775,
    ("bed_days", "hurdle_nb", "coef:count_armIMR"): 0.0498545997984058,
    ("bed_days", "hurdle_nb", "coef:count_siteFrederiksberg"): -0.163734732856798,
    ("bed_days", "hurdle_nb", "coef:count_siteGladsaxe"): 0.0320863728447761,
    ("bed_days", "hurdle_nb", "coef:count_prior_admissions"): 0.1695920907384,
    ("bed_days", "hurdle_nb", "coef:zero_(Intercept)"): 0.125105026431308,
    ("bed_days", "hurdle_nb", "coef:zero_armIMR"): -0.409652978846216,
    ("bed_days", "hurdle_nb", "coef:zero_siteFrederiksberg"): 0.544778232352338,
    ("bed_days", "hurdle_nb", "coef:zero_siteGladsaxe"): 0.382838585412487,
    ("bed_days", "hurdle_nb", "coef:zero_prior_admissions"): 0.0062111490040069,
    ("bed_days", "hurdle_nb", "coef:log_theta"): -0.276337509711966,
    ("bed_days", "hurdle_nb", "se:count_(Intercept)"): 0.260417065166975,
    ("bed_days", "hurdle_nb", "se:count_armIMR"): 0.220697971333878,
    ("bed_days", "hurdle_nb", "se:count_siteFrederiksberg"): 0.279960331270533,
    ("bed_days", "hurdle_nb", "se:count_siteGladsaxe"): 0.299007367018666,
    ("bed_days", "hurdle_nb", "se:count_prior_admissions"): 0.0922750685981752,
    ("bed_days", "hurdle_nb", "se:zero_(Intercept)"): 0.318663477309506,
    ("bed_days", "hurdle_nb", "se:zero_armIMR"): 0.290593406681793,
    ("bed_days", "hurdle_nb", "se:zero_siteFrederiksberg"): 0.357440946045768,
    ("bed_days", "hurdle_nb", "se:zero_siteGladsaxe"): 0.375440889026763,
    ("bed_days", "hurdle_nb", "se:zero_prior_admissions"): 0.0989192737310904,
    ("bed_days", "hurdle_nb", "se:log_theta"): 0.176287120401338,
    ("bed_days", "hurdle_nb", "loglik"): -644.855407275211,
    ("bed_days", "hurdle_nb", "df"): 11,
    ("bed_days", "hurdle_nb", "aic"): 1311.71081455042,
    ("bed_days", "hurdle_nb", "bic"): 1347.88175188806,
    ("bed_days", "hurdle_nb", "theta"): 0.758556867241937,
    ("bed_days", "hurdle_nb", "expected_freq:0"): 85.9999999999416,
    ("bed_days", "hurdle_nb", "expected_freq:1"): 4.89231344375424,
    ("bed_days", "hurdle_nb", "expected_freq:2"): 4.20065101957286,
    ("bed_days", "hurdle_nb", "expected_freq:3"): 3.77197526432404,
    ("bed_days", "hurdle_nb", "expected_freq:4"): 3.4612826936465,
    ("bed_days", "hurdle_nb", "expected_freq:5"): 3.21710252143746,
    ("bed_days", "vuong_zinb_arm_vs_nb2", "z_Raw"): 3.07193907169252,
    ("bed_days", "vuong_zinb_arm_vs_nb2", "z_AIC-corrected"): 2.64572086347848,
    ("bed_days", "vuong_zinb_arm_vs_nb2", "z_BIC-corrected"): 1.94496122250252,
    ("bed_days", "vuong_hurdle_vs_nb2", "z_Raw"): 3.32094616046113,
    ("bed_days", "vuong_hurdle_vs_nb2", "z_AIC-corrected"): 2.26491117558236,
    ("bed_days", "vuong_hurdle_vs_nb2", "z_BIC-corrected"): 0.528648663563915,
    ("bed_days", "vuong_nb2_vs_poisson", "z_Raw"): 8.58939869314944,
    ("bed_days", "vuong_nb2_vs_poisson", "z_AIC-corrected"): 8.58939869314944,
    ("bed_days", "vuong_nb2_vs_poisson", "z_BIC-corrected"): 8.58939869314944,
    ("bed_days", "vuong_zinb_arm_vs_hurdle", "z_Raw"): -0.826504939943014,
    ("bed_days", "vuong_zinb_arm_vs_hurdle", "z_AIC-corrected"): 1.06800365808288,
    ("bed_days", "vuong_zinb_arm_vs_hurdle", "z_BIC-corrected"): 4.18282873921082,
    ("er_visits", "poisson", "coef:(Intercept)"): -6.01738456866903,
    ("er_visits", "poisson", "coef:armIMR"): 0.0321580896945151,
    ("er_visits", "poisson", "coef:siteFrederiksberg"): -0.152480572765024,
    ("er_visits", "poisson", "coef:siteGladsaxe"): 0.167186998237623,
    ("er_visits", "poisson", "coef:prior_admissions"): 0.138578965233802,
    ("er_visits", "poisson", "se:(Intercept)"): 0.159010254655016,
    ("er_visits", "poisson", "se:armIMR"): 0.145028960082227,
    ("er_visits", "poisson", "se:siteFrederiksberg"): 0.183274821700128,
    ("er_visits", "poisson", "se:siteGladsaxe"): 0.182289050363406,
    ("er_visits", "poisson", "se:prior_admissions"): 0.0354950597621263,
    ("er_visits", "poisson", "loglik"): -292.035129097546,
    ("er_visits", "poisson", "df"): 5,
    ("er_visits", "poisson", "aic"): 594.070258195091,
    ("er_visits", "poisson", "bic"): 610.511593348564,
    ("er_visits", "poisson", "robust_se:(Intercept)"): 0.212785811707443,
    ("er_visits", "poisson", "robust_se:armIMR"): 0.215063021133399,
    ("er_visits", "poisson", "robust_se:siteFrederiksberg"): 0.240671261648486,
    ("er_visits", "poisson", "robust_se:siteGladsaxe"): 0.284957362280797,
    ("er_visits", "poisson", "robust_se:prior_admissions"): 0.0586078038181375,
    ("er_visits", "poisson", "pearson_chi2"): 395.548111877515,
    ("er_visits", "dispersiontest", "z_trafo_none"): 2.98496318132961,
    ("er_visits", "dispersiontest", "estimate_trafo_none"): 1.99857980481372,
    ("er_visits", "dispersiontest", "p_trafo_none"): 0.00141806229460925,
    ("er_visits", "dispersiontest", "z_trafo_1"): 2.98496318132961,
    ("er_visits", "dispersiontest", "estimate_trafo_1"): 0.998579804813715,
    ("er_visits", "dispersiontest", "p_trafo_1"): 0.00141806229460927,
    ("er_visits", "dispersiontest", "z_trafo_2"): 3.21813123494452,
    ("er_visits", "dispersiontest", "estimate_trafo_2"): 1.05193534193972,
    ("er_visits", "dispersiontest", "p_trafo_2"): 0.000645143836260753,
    ("er_visits", "poisson", "expected_freq:0"): 78.5914039554629,
    ("er_visits", "poisson", "expected_freq:1"): 70.1570824743094,
    ("er_visits", "poisson", "expected_freq:2"): 33.3075607512352,
    ("er_visits", "poisson", "expected_freq:3"): 11.3861296526333,
    ("er_visits", "poisson", "expected_freq:4"): 3.27497108384507,
    ("er_visits", "poisson", "expected_freq:5"): 0.901285366426373,
    ("er_visits", "nb2", "coef:(Intercept)"): -6.11225776678256,
    ("er_visits", "nb2", "coef:armIMR"): 0.0990678247953932,
    ("er_visits", "nb2", "coef:siteFrederiksberg"): -0.109203883806129,
    ("er_visits", "nb2", "coef:siteGladsaxe"): 0.243708193084467,
    ("er_visits", "nb2", "coef:prior_admissions"): 0.161382625354662,
    ("er_visits", "nb2", "se:(Intercept)"): 0.235021382831506,
    ("er_visits", "nb2", "se:armIMR"): 0.21043076176547,
    ("er_visits", "nb2", "se:siteFrederiksberg"): 0.263888147048288,
    ("er_visits", "nb2", "se:siteGladsaxe"): 0.269726672178277,
    ("er_visits", "nb2", "se:prior_admissions"): 0.0625642172585317,
    ("er_visits", "nb2", "loglik"): -265.266064078318,
    ("er_visits", "nb2", "df"): 6,
    ("er_visits", "nb2", "aic"): 542.532128156636,
    ("er_visits", "nb2", "bic"): 562.261730340803,
    ("er_visits", "nb2", "theta"): 0.910477347752326,
    ("er_visits", "nb2", "se_theta"): 0.223834957998597,
    ("er_visits", "nb2", "expected_zeros"): 104.720378848302,
    ("er_visits", "zinb_zero_1", "coef:count_(Intercept)"): -5.89054633127099,
    ("er_visits", "zinb_zero_1", "coef:count_armIMR"): 0.119343745161563,
    ("er_visits", "zinb_zero_1", "coef:count_siteFrederiksberg"): -0.135909875050334,
    ("er_visits", "zinb_zero_1", "coef:count_siteGladsaxe"): 0.269592291438788,
    ("er_visits", "zinb_zero_1", "coef:count_prior_admissions"): 0.183225605284172,
    ("er_visits", "zinb_zero_1", "coef:zero_(Intercept)"): -1.27107820414016,
    ("er_visits", "zinb_zero_1", "coef:log_theta"): 0.632858771644992,
    ("er_visits", "zinb_zero_1", "se:count_(Intercept)"): 0.29797458412299,
    ("er_visits", "zinb_zero_1", "se:count_armIMR"): 0.205354140911947,
    ("er_visits", "zinb_zero_1", "se:count_siteFrederiksberg"): 0.253924546945523,
    ("er_visits", "zinb_zero_1", "se:count_siteGladsaxe"): 0.263421781183881,
    ("er_visits", "zinb_zero_1", "se:count_prior_admissions"): 0.0686795361848416,
    ("er_visits", "zinb_zero_1", "se:zero_(Intercept)"): 0.796833270056087,
    ("er_visits", "zinb_zero_1", "se:log_theta"): 0.683199501504664,
    ("er_visits", "zinb_zero_1", "loglik"): -264.709292736502,
    ("er_visits", "zinb_zero_1", "df"): 7,
    ("er_visits", "zinb_zero_1", "aic"): 543.418585473004,
    ("er_visits", "zinb_zero_1", "bic"): 566.436454687866,
    ("er_visits", "zinb_zero_1", "theta"): 1.88298591892212,
    ("er_visits", "zinb_zero_1", "expected_freq:0"): 105.727386548067,
    ("er_visits", "zinb_zero_1", "expected_freq:1"): 43.4094428533606,
    ("er_visits", "zinb_zero_1", "expected_freq:2"): 23.8745004103804,
    ("er_visits", "zinb_zero_1", "expected_freq:3"): 12.1810755018498,
    ("er_visits", "zinb_zero_1", "expected_freq:4"): 6.07414597052008,
    ("er_visits", "zinb_zero_1", "expected_freq:5"): 3.04032619189681,
    ("er_visits", "zinb_zero_arm", "coef:count_(Intercept)"): -5.91666509900472,
    ("er_visits", "zinb_zero_arm", "coef:count_armIMR"): 0.148493169872093,
    ("er_visits", "zinb_zero_arm", "coef:count_siteFrederiksberg"): -0.133135573508391,
    ("er_visits", "zinb_zero_arm", "coef:count_siteGladsaxe"): 0.273838919545245,
    ("er_visits", "zinb_zero_arm", "coef:count_prior_admissions"): 0.186416139379129,
    ("er_visits", "zinb_zero_arm", "coef:zero_(Intercept)"): -1.38112199043104,
    ("er_visits", "zinb_zero_arm", "coef:zero_armIMR"): 0.154913030671794,
    ("er_visits", "zinb_zero_arm", "coef:log_theta"): 0.617754413891815,
    ("er_visits", "zinb_zero_arm", "se:count_(Intercept)"): 0.339485973596366,
    ("er_visits", "zinb_zero_arm", "se:count_armIMR"): 0.268433669369702,
    ("er_visits", "zinb_zero_arm", "se:count_siteFrederiksberg"): 0.254544861830351,
    ("er_visits", "zinb_zero_arm", "se:count_siteGladsaxe"): 0.264450281655783,
    ("er_visits", "zinb_zero_arm", "se:count_prior_admissions"): 0.0710897163447622,
    ("er_visits", "zinb_zero_arm", "se:zero_(Intercept)"): 1.11442485426991,
    ("er_visits", "zinb_zero_arm", "se:zero_armIMR"): 0.946572911369301,
    ("er_visits", "zinb_zero_arm", "se:log_theta"): 0.687312174571215,
    ("er_visits", "zinb_zero_arm", "loglik"): -264.694929968339,
    ("er_visits", "zinb_zero_arm", "df"): 8,
    ("er_visits", "zinb_zero_arm", "aic"): 545.389859936678,
    ("er_visits", "zinb_zero_arm", "bic"): 571.695996182235,
    ("er_visits", "zinb_zero_arm", "theta"): 1.85475834232132,
    ("er_visits", "zinb_zero_arm", "expected_freq:0"): 105.644597691733,
    ("er_visits", "zinb_zero_arm", "expected_freq:1"): 43.5697395052003,
    ("er_visits", "zinb_zero_arm", "expected_freq:2"): 23.8310298593752,
    ("er_visits", "zinb_zero_arm", "expected_freq:3"): 12.1319903030503,
    ("er_visits", "zinb_zero_arm", "expected_freq:4"): 6.05011979967793,
    ("er_visits", "zinb_zero_arm", "expected_freq:5"): 3.03402331161769,
    ("er_visits", "hurdle_nb", "coef:count_(Intercept)"): -5.761140713117,
    ("er_visits", "hurdle_nb", "coef:count_armIMR"): 0.0463813671990852,
    ("er_visits", "hurdle_nb", "coef:count_siteFrederiksberg"): -0.471395414396478,
    ("er_visits", "hurdle_nb", "coef:count_siteGladsaxe"): 0.156846458503897,
    ("er_visits", "hurdle_nb", "coef:count_prior_admissions"): 0.176306340823177,
    ("er_visits", "hurdle_nb", "coef:zero_(Intercept)"): -0.44313322603849,
    ("er_visits", "hurdle_nb", "coef:zero_armIMR"): 0.119390472551743,
    ("er_visits", "hurdle_nb", "coef:zero_siteFrederiksberg"): 0.224428679693732,
    ("er_visits", "hurdle_nb", "coef:zero_siteGladsaxe"): 0.279400595790095,
    ("er_visits", "hurdle_nb", "coef:zero_prior_admissions"): 0.107780931880061,
    ("er_visits", "hurdle_nb", "coef:log_theta"): 0.413810511408944,
    ("er_visits", "hurdle_nb", "se:count_(Intercept)"): 0.39444604654343,
    ("er_visits", "hurdle_nb", "se:count_armIMR"): 0.278481468442939,
    ("er_visits", "hurdle_nb", "se:count_siteFrederiksberg"): 0.350106892978602,
    ("er_visits", "hurdle_nb", "se:count_siteGladsaxe"): 0.345699242840462,
    ("er_visits", "hurdle_nb", "se:count_prior_admissions"): 0.0801028787633539,
    ("er_visits", "hurdle_nb", "se:zero_(Intercept)"): 0.321646928558401,
    ("er_visits", "hurdle_nb", "se:zero_armIMR"): 0.286730888341143,
    ("er_visits", "hurdle_nb", "se:zero_siteFrederiksberg"): 0.355099547308524,
    ("er_visits", "hurdle_nb", "se:zero_siteGladsaxe"): 0.374950082259171,
    ("er_visits", "hurdle_nb", "se:zero_prior_admissions"): 0.100586129724962,
    ("er_visits", "hurdle_nb", "se:log_theta"): 0.75008857106252,
    ("er_visits", "hurdle_nb", "loglik"): -264.481291961019,
    ("er_visits", "hurdle_nb", "df"): 11,
    ("er_visits", "hurdle_nb", "aic"): 550.962583922038,
    ("er_visits", "hurdle_nb", "bic"): 587.133521259678,
    ("er_visits", "hurdle_nb", "theta"): 1.5125704848775,
    ("er_visits", "hurdle_nb", "expected_freq:0"): 105,
    ("er_visits", "hurdle_nb", "expected_freq:1"): 46.0151436538096,
    ("er_visits", "hurdle_nb", "expected_freq:2"): 23.2651842114735,
    ("er_visits", "hurdle_nb", "expected_freq:3"): 11.4821581399841,
    ("er_visits", "hurdle_nb", "expected_freq:4"): 5.71194368323672,
    ("er_visits", "hurdle_nb", "expected_freq:5"): 2.9033108073334,
    ("er_visits", "vuong_zinb_arm_vs_nb2", "z_Raw"): 0.520205972602567,
    ("er_visits", "vuong_zinb_arm_vs_nb2", "z_AIC-corrected"): -1.30145364643798,
    ("er_visits", "vuong_zinb_arm_vs_nb2", "z_BIC-corrected"): -4.29650527965729,
    ("er_visits", "vuong_hurdle_vs_nb2", "z_Raw"): 0.401130731998994,
    ("er_visits", "vuong_hurdle_vs_nb2", "z_AIC-corrected"): -2.15458399815547,
    ("er_visits", "vuong_hurdle_vs_nb2", "z_BIC-corrected"): -6.35652024166912,
    ("er_visits", "vuong_nb2_vs_poisson", "z_Raw"): 2.57691384877704,
    ("er_visits", "vuong_nb2_vs_poisson", "z_AIC-corrected"): 2.57691384877704,
    ("er_visits", "vuong_nb2_vs_poisson", "z_BIC-corrected"): 2.57691384877704,
    ("er_visits", "vuong_zinb_arm_vs_hurdle", "z_Raw"): -0.114261913501453,
    ("er_visits", "vuong_zinb_arm_vs_hurdle", "z_AIC-corrected"): 1.49025473971299,
    ("er_visits", "vuong_zinb_arm_vs_hurdle", "z_BIC-corrected"): 4.12829434519568,
    ("outpatient_contacts", "poisson", "coef:(Intercept)"): -2.89027740156944,
    ("outpatient_contacts", "poisson", "coef:armIMR"): 0.0728596215493098,
    ("outpatient_contacts", "poisson", "coef:siteFrederiksberg"): 0.0760824171019093,
    ("outpatient_contacts", "poisson", "coef:siteGladsaxe"): 0.23852837918168,
    ("outpatient_contacts", "poisson", "coef:prior_admissions"): 0.119119973271369,
    ("outpatient_contacts", "poisson", "se:(Intercept)"): 0.0329639961354132,
    ("outpatient_contacts", "poisson", "se:armIMR"): 0.0287506984509249,
    ("outpatient_contacts", "poisson", "se:siteFrederiksberg"): 0.0366621182768613,
    ("outpatient_contacts", "poisson", "se:siteGladsaxe"): 0.0375928515266793,
    ("outpatient_contacts", "poisson", "se:prior_admissions"): 0.0073403211276979,
    ("outpatient_contacts", "poisson", "loglik"): -1820.22408665127,
    ("outpatient_contacts", "poisson", "df"): 5,
    ("outpatient_contacts", "poisson", "aic"): 3650.44817330254,
    ("outpatient_contacts", "poisson", "bic"): 3666.88950845601,
    ("outpatient_contacts", "poisson", "robust_se:(Intercept)"): 0.122956722409215,
    ("outpatient_contacts", "poisson", "robust_se:armIMR"): 0.113386630966155,
    ("outpatient_contacts", "poisson", "robust_se:siteFrederiksberg"): 0.139746740585361,
    ("outpatient_contacts", "poisson", "robust_se:siteGladsaxe"): 0.147102269341566,
    ("outpatient_contacts", "poisson", "robust_se:prior_admissions"): 0.036804719924741,
    ("outpatient_contacts", "poisson", "pearson_chi2"): 2978.78903599166,
    ("outpatient_contacts", "dispersiontest", "z_trafo_none"): 5.18315620849327,
    ("outpatient_contacts", "dispersiontest", "estimate_trafo_none"): 15.0282388970989,
    ("outpatient_contacts", "dispersiontest", "p_trafo_none"): 1.09081085650822e-07,
    ("outpatient_contacts", "dispersiontest", "z_trafo_1"): 5.18315620849327,
    ("outpatient_contacts", "dispersiontest", "estimate_trafo_1"): 14.0282388970989,
    ("outpatient_contacts", "dispersiontest", "p_trafo_1"): 1.09081085650822e-07,
    ("outpatient_contacts", "dispersiontest", "z_trafo_2"): 5.30554552888118,
    ("outpatient_contacts", "dispersiontest", "estimate_trafo_2"): 0.559901933507872,
    ("outpatient_contacts", "dispersiontest", "p_trafo_2"): 5.61682619550678e-08,
    ("outpatient_contacts", "poisson", "expected_freq:0"): 2.56131745185833e-05,
    ("outpatient_contacts", "poisson", "expected_freq:1"): 0.000312366581446024,
    ("outpatient_contacts", "poisson", "expected_freq:2"): 0.00192784902613421,
    ("outpatient_contacts", "poisson", "expected_freq:3"): 0.00804117556689633,
    ("outpatient_contacts", "poisson", "expected_freq:4"): 0.0255498281051193,
    ("outpatient_contacts", "poisson", "expected_freq:5"): 0.066119206991069,
    ("outpatient_contacts", "nb2", "coef:(Intercept)"): -2.88949893258695,
    ("outpatient_contacts", "nb2", "coef:armIMR"): 0.0719935664622159,
    ("outpatient_contacts", "nb2", "coef:siteFrederiksberg"): 0.0272735668110758,
    ("outpatient_contacts", "nb2", "coef:siteGladsaxe"): 0.248025239123693,
    ("outpatient_contacts", "nb2", "coef:prior_admissions"): 0.158454723376712,
    ("outpatient_contacts", "nb2", "se:(Intercept)"): 0.127354563667173,
    ("outpatient_contacts", "nb2", "se:armIMR"): 0.114475596008376,
    ("outpatient_contacts", "nb2", "se:siteFrederiksberg"): 0.141598914521649,
    ("outpatient_contacts", "nb2", "se:siteGladsaxe"): 0.149183593700962,
    ("outpatient_contacts", "nb2", "se:prior_admissions"): 0.0384787752718838,
    ("outpatient_contacts", "nb2", "loglik"): -822.58307693589,
    ("outpatient_contacts", "nb2", "df"): 6,
    ("outpatient_contacts", "nb2", "aic"): 1657.16615387178,
    ("outpatient_contacts", "nb2", "bic"): 1676.89575605595,
    ("outpatient_contacts", "nb2", "theta"): 1.65671004988392,
    ("outpatient_contacts", "nb2", "se_theta"): 0.178289203681132,
    ("outpatient_contacts", "nb2", "expected_zeros"): 2.27480515690083,
    ("outpatient_contacts", "zinb_zero_1", "coef:count_(Intercept)"): -2.8630642671228,
    ("outpatient_contacts", "zinb_zero_1", "coef:count_armIMR"): 0.0446405410351398,
    ("outpatient_contacts", "zinb_zero_1", "coef:count_siteFrederiksberg"): 0.0713030361413734,
    ("outpatient_contacts", "zinb_zero_1", "coef:count_siteGladsaxe"): 0.259041854610832,
    ("outpatient_contacts", "zinb_zero_1", "coef:count_prior_admissions"): 0.169403096758701,
    ("outpatient_contacts", "zinb_zero_1", "coef:zero_(Intercept)"): -3.13363093813063,
    ("outpatient_contacts", "zinb_zero_1", "coef:log_theta"): 0.833617569467615,
    ("outpatient_contacts", "zinb_zero_1", "se:count_(Intercept)"): 0.112724333005492,
    ("outpatient_contacts", "zinb_zero_1", "se:count_armIMR"): 0.101098965904247,
    ("outpatient_contacts", "zinb_zero_1", "se:count_siteFrederiksberg"): 0.125116141645829,
    ("outpatient_contacts", "zinb_zero_1", "se:count_siteGladsaxe"): 0.129888663818082,
    ("outpatient_contacts", "zinb_zero_1", "se:count_prior_admissions"): 0.0397152304281931,
    ("outpatient_contacts", "zinb_zero_1", "se:zero_(Intercept)"): 0.372812925038181,
    ("outpatient_contacts", "zinb_zero_1", "se:log_theta"): 0.114200884369282,
    ("outpatient_contacts", "zinb_zero_1", "loglik"): -811.508081941292,
    ("outpatient_contacts", "zinb_zero_1", "df"): 7,
    ("outpatient_contacts", "zinb_zero_1", "aic"): 1637.01616388258,
    ("outpatient_contacts", "zinb_zero_1", "bic"): 1660.03403309745,
    ("outpatient_contacts", "zinb_zero_1", "theta"): 2.30163000434206,
    ("outpatient_contacts", "zinb_zero_1", "expected_freq:0"): 8.99948513607834,
    ("outpatient_contacts", "zinb_zero_1", "expected_freq:1"): 1.52533049966792,
    ("outpatient_contacts", "zinb_zero_1", "expected_freq:2"): 2.27279416290235,
    ("outpatient_contacts", "zinb_zero_1", "expected_freq:3"): 2.94350227265076,
    ("outpatient_contacts", "zinb_zero_1", "expected_freq:4"): 3.52608182310457,
    ("outpatient_contacts", "zinb_zero_1", "expected_freq:5"): 4.01912599431984,
    ("outpatient_contacts", "zinb_zero_arm", "coef:count_(Intercept)"): -2.86169922496815,
    ("outpatient_contacts", "zinb_zero_arm", "coef:count_armIMR"): 0.0422468051970148,
    ("outpatient_contacts", "zinb_zero_arm", "coef:count_siteFrederiksberg"): 0.0716741934772526,
    ("outpatient_contacts", "zinb_zero_arm", "coef:count_siteGladsaxe"): 0.258737024842919,
    ("outpatient_contacts", "zinb_zero_arm", "coef:count_prior_admissions"): 0.169378130260046,
    ("outpatient_contacts", "zinb_zero_arm", "coef:zero_(Intercept)"): -2.81481024992764,
    ("outpatient_contacts", "zinb_zero_arm", "coef:zero_armIMR"): -0.756931380517803,
    ("outpatient_contacts", "zinb_zero_arm", "coef:log_theta"): 0.834454928363544,
    ("outpatient_contacts", "zinb_zero_arm", "se:count_(Intercept)"): 0.112699678593921,
    ("outpatient_contacts", "zinb_zero_arm", "se:count_armIMR"): 0.101096394727581,
    ("outpatient_contacts", "zinb_zero_arm", "se:count_siteFrederiksberg"): 0.125069869233406,
    ("outpatient_contacts", "zinb_zero_arm", "se:count_siteGladsaxe"): 0.129846551820354,
    ("outpatient_contacts", "zinb_zero_arm", "se:count_prior_admissions"): 0.0396863355998123,
    ("outpatient_contacts", "zinb_zero_arm", "se:zero_(Intercept)"): 0.452044833235313,
    ("outpatient_contacts", "zinb_zero_arm", "se:zero_armIMR"): 0.791492373075405,
    ("outpatient_contacts", "zinb_zero_arm", "se:log_theta"): 0.114173292359324,
    ("outpatient_contacts", "zinb_zero_arm", "loglik"): -811.015474615112,
    ("outpatient_contacts", "zinb_zero_arm", "df"): 8,
    ("outpatient_contacts", "zinb_zero_arm", "aic"): 1638.03094923022,
    ("outpatient_contacts", "zinb_zero_arm", "bic"): 1664.33708547578,
    ("outpatient_contacts", "zinb_zero_arm", "theta"): 2.30355810184347,
    ("outpatient_contacts", "zinb_zero_arm", "expected_freq:0"): 9.03501798564972,
    ("outpatient_contacts", "zinb_zero_arm", "expected_freq:1"): 1.52108740719872,
    ("outpatient_contacts", "zinb_zero_arm", "expected_freq:2"): 2.26764930718702,
    ("outpatient_contacts", "zinb_zero_arm", "expected_freq:3"): 2.93796608341186,
    ("outpatient_contacts", "zinb_zero_arm", "expected_freq:4"): 3.5205029807755,
    ("outpatient_contacts", "zinb_zero_arm", "expected_freq:5"): 4.01373664175602,
    ("outpatient_contacts", "hurdle_nb", "coef:count_(Intercept)"): -2.86576053862771,
    ("outpatient_contacts", "hurdle_nb", "coef:count_armIMR"): 0.0415815661044758,
    ("outpatient_contacts", "hurdle_nb", "coef:count_siteFrederiksberg"): 0.0798679864031353,
    ("outpatient_contacts", "hurdle_nb", "coef:count_siteGladsaxe"): 0.262514708410166,
    ("outpatient_contacts", "hurdle_nb", "coef:count_prior_admissions"): 0.169000072574006,
    ("outpatient_contacts", "hurdle_nb", "coef:zero_(Intercept)"): 3.81128630187327,
    ("outpatient_contacts", "hurdle_nb", "coef:zero_armIMR"): 0.720102931423907,
    ("outpatient_contacts", "hurdle_nb", "coef:zero_siteFrederiksberg"): -1.43993960725096,
    ("outpatient_contacts", "hurdle_nb", "coef:zero_siteGladsaxe"): -0.596329908211097,
    ("outpatient_contacts", "hurdle_nb", "coef:zero_prior_admissions"): -0.143040118902599,
    ("outpatient_contacts", "hurdle_nb", "coef:log_theta"): 0.833052316245076,
    ("outpatient_contacts", "hurdle_nb", "se:count_(Intercept)"): 0.113072267081222,
    ("outpatient_contacts", "hurdle_nb", "se:count_armIMR"): 0.101191087656292,
    ("outpatient_contacts", "hurdle_nb", "se:count_siteFrederiksberg"): 0.125211061551364,
    ("outpatient_contacts", "hurdle_nb", "se:count_siteGladsaxe"): 0.130163444709836,
    ("outpatient_contacts", "hurdle_nb", "se:count_prior_admissions"): 0.0396960788981817,
    ("outpatient_contacts", "hurdle_nb", "se:zero_(Intercept)"): 1.05801698866705,
    ("outpatient_contacts", "hurdle_nb", "se:zero_armIMR"): 0.731276258418443,
    ("outpatient_contacts", "hurdle_nb", "se:zero_siteFrederiksberg"): 1.09818572070679,
    ("outpatient_contacts", "hurdle_nb", "se:zero_siteGladsaxe"): 1.24292338410389,
    ("outpatient_contacts", "hurdle_nb", "se:zero_prior_admissions"): 0.187352789117016,
    ("outpatient_contacts", "hurdle_nb", "se:log_theta"): 0.114493316443578,
    ("outpatient_contacts", "hurdle_nb", "loglik"): -809.426577914515,
    ("outpatient_contacts", "hurdle_nb", "df"): 11,
    ("outpatient_contacts", "hurdle_nb", "aic"): 1640.85315582903,
    ("outpatient_contacts", "hurdle_nb", "bic"): 1677.02409316667,
    ("outpatient_contacts", "hurdle_nb", "theta"): 2.30032936819403,
    ("outpatient_contacts", "hurdle_nb", "expected_freq:0"): 9.00000001309173,
    ("outpatient_contacts", "hurdle_nb", "expected_freq:1"): 1.53382295482675,
    ("outpatient_contacts", "hurdle_nb", "expected_freq:2"): 2.28422199163206,
    ("outpatient_contacts", "hurdle_nb", "expected_freq:3"): 2.95700940630509,
    ("outpatient_contacts", "hurdle_nb", "expected_freq:4"): 3.54094203041952,
    ("outpatient_contacts", "hurdle_nb", "expected_freq:5"): 4.03474459100545,
    ("outpatient_contacts", "vuong_zinb_arm_vs_nb2", "z_Raw"): 2.00809435524529,
    ("outpatient_contacts", "vuong_zinb_arm_vs_nb2", "z_AIC-corrected"): 1.66090151448897,
    ("outpatient_contacts", "vuong_zinb_arm_vs_nb2", "z_BIC-corrected"): 1.09007012871289,
    ("outpatient_contacts", "vuong_hurdle_vs_nb2", "z_Raw"): 2.12871849472016,
    ("outpatient_contacts", "vuong_hurdle_vs_nb2", "z_AIC-corrected"): 1.31971965267961,
    ("outpatient_contacts", "vuong_hurdle_vs_nb2", "z_BIC-corrected"): -0.0103824573964056,
    ("outpatient_contacts", "vuong_nb2_vs_poisson", "z_Raw"): 6.41601776888269,
    ("outpatient_contacts", "vuong_nb2_vs_poisson", "z_AIC-corrected"): 6.41601776888269,
    ("outpatient_contacts", "vuong_nb2_vs_poisson", "z_BIC-corrected"): 6.41601776888269,
    ("outpatient_contacts", "vuong_zinb_arm_vs_hurdle", "z_Raw"): -1.31652640372046,
    ("outpatient_contacts", "vuong_zinb_arm_vs_hurdle", "z_AIC-corrected"): 1.16921052913218,
    ("outpatient_contacts", "vuong_zinb_arm_vs_hurdle", "z_BIC-corrected"): 5.25609393077173,
    ("sparse_events", "poisson", "coef:(Intercept)"): -9.52589527387202,
    ("sparse_events", "poisson", "coef:armIMR"): 1.64265347133349,
    ("sparse_events", "poisson", "coef:prior_admissions"): -0.54174152081836,
    ("sparse_events", "poisson", "se:(Intercept)"): 0.716845751665379,
    ("sparse_events", "poisson", "se:armIMR"): 0.774597833163187,
    ("sparse_events", "poisson", "se:prior_admissions"): 0.466559710623256,
    ("sparse_events", "poisson", "loglik"): -43.8891226326134,
    ("sparse_events", "poisson", "df"): 3,
    ("sparse_events", "poisson", "aic"): 93.7782452652267,
    ("sparse_events", "poisson", "bic"): 103.64304635731,
    ("sparse_events", "nb2", "coef:(Intercept)"): -9.50567657408229,
    ("sparse_events", "nb2", "coef:armIMR"): 1.66657158321936,
    ("sparse_events", "nb2", "coef:prior_admissions"): -0.643782885745679,
    ("sparse_events", "nb2", "se:(Intercept)"): 0.774257635043566,
    ("sparse_events", "nb2", "se:armIMR"): 0.870736697247439,
    ("sparse_events", "nb2", "se:prior_admissions"): 0.574884289919028,
    ("sparse_events", "nb2", "loglik"): -40.3634223808267,
    ("sparse_events", "nb2", "df"): 4,
    ("sparse_events", "nb2", "aic"): 88.7268447616533,
    ("sparse_events", "nb2", "bic"): 101.879912884431,
    ("sparse_events", "nb2", "theta"): 0.150402070025566,
    ("sparse_events", "nb2", "se_theta"): 0.119319520214632,
}
