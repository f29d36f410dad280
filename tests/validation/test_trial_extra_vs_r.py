"""imrstats.trial.secondary against R on identical input: data/trial_extra_<outcome>.csv (outcome frames of the
default synthetic trial, made by data/trial_extra_make_data.py); references printed by r/trial_extra.R
(R 4.2.2, nlme 3.1.162, car 3.1.1, AER 1.2.10, numDeriv). All deterministic: tolerance 1e-6 relative.

nlme::gls stops ~1e-8 (relative) short of the REML maximum (see r/mmrm.R), which moves a tail p-value such as
Shapiro-Wilk's by ~1e-6; the R script therefore polishes each gls fit to the exact maximum (Newton steps on the
written-out REML log-likelihood, numDeriv) and computes residuals, Cook's distance (fixed covariance), the
quadratic term and the Satterthwaite df there, as test_mmrm_vs_r.py does. The delete-one-participant Cook's
distances are from a loop of plain gls refits (each fresh + restarted): observed agreement ~1e-7.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imrstats.trial import secondary as te

DATA = Path(__file__).parent / "data"
REL = 1e-6


def load(key):
    return pd.read_csv(DATA / f"trial_extra_{key}.csv", dtype={"id": str})


# ---------------------------------------------------------------- complete-case ANCOVA diagnostics

R_CC = {  # (outcome, visit): n, cooks max, sum, first 3, rows > 4/n, shapiro W, p, spearman rho, p, quadratic F, p, df2
    ("gaf_f", "post"): (
        117,
        0.0782362294452869,
        1.05864702486321,
        [0.000783989623913269, 0.000149477121254886, 6.91082408590545e-05],
        [6, 19, 20, 27, 63, 66, 91, 93],
        0.992345116807388,
        0.767851234708838,
        0.028375968469481,
        0.761357400754231,
        0.0628665395065738,
        0.802497700845973,
        108,
    ),
    ("gaf_f", "fu12"): (
        123,
        0.0848143470502054,
        1.13117363065531,
        [0.00192871677868026, 0.0016870967813221, 0.00347381867598725],
        [21, 23, 26, 89, 91, 97, 113],
        0.980076245661914,
        0.0659046892457885,
        0.0766016174175491,
        0.399722475225262,
        0.047762506305003,
        0.827394211831405,
        114,
    ),
    ("panss_total", "fu12"): (
        105,
        0.112221501612908,
        1.0277719213876,
        [0.000114878911282616, 0.00655700301834987, 0.00859094141900823],
        [38, 47, 49, 65],
        0.978675503424073,
        0.0886749001872731,
        0.285372174994816,
        0.00316942474679109,
        0.303496397062166,
        0.582978578517987,
        96,
    ),
}


@pytest.mark.parametrize("key,tp", list(R_CC))
def test_cc_diagnostics_match_lm(key, tp):
    n, cmax, csum, first, rows, w, pw, rho, prho, F, pF, df2 = R_CC[(key, tp)]
    d = te.cc_diagnostics(load(key), outcome=key, timepoint=tp)
    assert d.n == n and list(d.cooks_rows) == rows
    assert d.cooks.max() == pytest.approx(cmax, rel=REL) and d.cooks.sum() == pytest.approx(csum, rel=REL)
    assert d.cooks[:3] == pytest.approx(first, rel=REL)
    c = d.checks.set_index("check")
    assert c.loc["cooks_distance", "n_above"] == len(rows)
    assert [c.loc["shapiro_wilk", "statistic"], c.loc["shapiro_wilk", "p"]] == pytest.approx([w, pw], rel=REL)
    assert [
        c.loc["spearman_abs_residual_fitted", "statistic"],
        c.loc["spearman_abs_residual_fitted", "p"],
    ] == pytest.approx([rho, prho], rel=REL)
    assert [c.loc["baseline_quadratic", "statistic"], c.loc["baseline_quadratic", "p"]] == pytest.approx(
        [F, pF], rel=REL
    )
    assert f"F(1, {df2})" in c.loc["baseline_quadratic", "method"]


def test_spearman_check_fails_where_r_rejects():
    """panss_total at fu12: R's p = 0.0032 < 0.05, so the heteroscedasticity check must be a failure."""
    d = te.cc_diagnostics(load("panss_total"), outcome="panss_total", timepoint="fu12")
    assert d.checks.set_index("check").loc["spearman_abs_residual_fitted", "passed"] is False
    assert any(f.startswith("spearman") for f in d.failed)


# ---------------------------------------------------------------- MMRM diagnostics

R_MMRM = {  # n, normalized residuals 1-4, fitted 1-4, shapiro W, p, spearman rho, p, Cook (fixed covariance)
    # max, sum, first 3, rows > 4/n, quadratic term estimate, se, Satterthwaite df; all at the polished REML maximum
    "gaf_f": (
        161,
        [0.173232077848055, 0.588244965792088, -0.186511782431113, 0.827162413920229],
        [29.5112633563814, 38.9340714867762, 48.6028609044069, 53.5010782802955],
        0.992461704447825,
        0.260160550507911,
        0.0320873626278234,
        0.620863145578812,
        0.0644498391272301,
        1.07262662874593,
        [0.0015402684565783, 0.00162259957744712, 0.000792152358533681],
        [12, 25, 27, 29, 40, 92, 95, 125, 145],
        0.00050166840319937,
        0.00389582332721852,
        160.030496929201,
    ),
    "panss_total": (
        145,
        [-0.688853681536898, 0.0305138115621248, -0.681698309012933, 1.21787970356596],
        [55.0552662701294, 51.9683801459795, 42.5049050941587, 83.7584483321303],
        0.986375837894534,
        0.0622397915902863,
        0.223406930283825,
        0.00189227685611408,
        0.058659586797383,
        1.11802432264058,
        [0.00392352112364834, 0.00269431853899349, 0.0330036536321907],
        [3, 22, 23, 35, 37, 41, 49, 62, 65, 109],
        0.00170282780733019,
        0.00294423687272962,
        111.20379152134,
    ),
}
# delete-one-participant gls refit loop (gaf_f): max, sum, first 3, 1-based row of the max, rows > 4/n
R_COOKS_REFIT = (
    0.065130672148382,
    1.09590268384215,
    [0.00151883762926359, 0.00175279078061292, 0.000860651844459739],
    29,
    [12, 25, 27, 29, 40, 92, 95, 125, 145],
)


@pytest.mark.parametrize("key", list(R_MMRM))
def test_mmrm_diagnostics_match_gls(key):
    n, z, fitted, w, pw, rho, prho, cmax, csum, first, rows, qest, qse, qdf = R_MMRM[key]
    d = te.mmrm_diagnostics(load(key), outcome=key)
    assert d.n == n and list(d.cooks_rows) == rows
    # residuals in R's row order: participant (by id), then visit
    assert d.residuals[:4] == pytest.approx(z, rel=REL) and d.fitted[:4] == pytest.approx(fitted, rel=REL)
    c = d.checks.set_index("check")
    assert [c.loc["shapiro_wilk", "statistic"], c.loc["shapiro_wilk", "p"]] == pytest.approx([w, pw], rel=REL)
    assert [
        c.loc["spearman_abs_residual_fitted", "statistic"],
        c.loc["spearman_abs_residual_fitted", "p"],
    ] == pytest.approx([rho, prho], rel=REL)
    assert np.nanmax(d.cooks) == pytest.approx(cmax, rel=REL) and np.nansum(d.cooks) == pytest.approx(csum, rel=REL)
    assert d.cooks[:3] == pytest.approx(first, rel=REL)
    assert c.loc["baseline_quadratic", "statistic"] == pytest.approx(qest / qse, rel=REL)
    assert c.loc["baseline_quadratic", "p"] == pytest.approx(2 * stats.t.sf(abs(qest / qse), qdf), rel=REL)


def test_mmrm_cooks_refit_matches_gls_loop():
    cmax, csum, first, which_max, rows = R_COOKS_REFIT
    d = te.mmrm_diagnostics(load("gaf_f"), outcome="gaf_f", cooks_refit=True)
    assert np.nanmax(d.cooks) == pytest.approx(cmax, rel=REL) and np.nansum(d.cooks) == pytest.approx(csum, rel=REL)
    assert d.cooks[:3] == pytest.approx(first, rel=REL)
    assert int(np.nanargmax(d.cooks)) + 1 == which_max and list(d.cooks_rows) == rows
    assert "REML refits" in d.checks.set_index("check").loc["cooks_distance", "method"]


# ---------------------------------------------------------------- within-group change (gls)

R_WITHIN = {  # IMR, TAU, IMR - TAU: estimate, se, Satterthwaite df
    "gaf_f": (
        [4.40989887450896, 6.03508813218057, -1.6251892576716],
        [1.40566426207988, 1.38502613636205, 1.97123818989626],
        [113.721187503782, 113.849728194351, 114.315100147681],
    ),
    "panss_pos": (
        [1.36919485984522, 0.125102729634663, 1.24409213021056],
        [0.823726996250291, 0.780597339122242, 1.1339955331454],
        [112.111307107551, 112.031550227821, 112.659079787857],
    ),
}


@pytest.mark.parametrize("key", list(R_WITHIN))
def test_within_group_change_matches_gls(key):
    est, se, df = R_WITHIN[key]
    out = te.within_group_change(load(key), outcome=key)
    assert out["arm"].tolist() == ["IMR", "TAU", "IMR - TAU"]
    assert out["estimate"].tolist() == pytest.approx(est, rel=REL)
    assert out["se"].tolist() == pytest.approx(se, rel=REL)
    assert out["df"].tolist() == pytest.approx(df, rel=REL)
    assert out["converged"].all()


# ---------------------------------------------------------------- subscale ANCOVA (lm + car::Anova type III)

R_SUBSCALE = {  # n, estimate, se, F, p, df2, mean IMR, sd TAU
    "panss_pos": (
        45,
        2.3327482271282,
        1.52186642496541,
        2.34953903306508,
        0.132818867304958,
        42,
        14.2380952380952,
        4.72044581534967,
    ),
    "psp_selfcare": (
        87,
        0.0984873892258454,
        0.15215694026229,
        0.418964974270058,
        0.51921897646948,
        84,
        1.43181818181818,
        0.996116490183505,
    ),
}


@pytest.mark.parametrize("key", list(R_SUBSCALE))
def test_subscale_ancova_matches_car_anova(key):
    n, est, se, F, p, df2, mean_imr, sd_tau = R_SUBSCALE[key]
    row = te.subscale_ancova(load(key), outcome=key).iloc[0]
    assert (row["n"], row["df2"]) == (n, df2)
    assert [row["estimate"], row["se"], row["F"], row["p"], row["mean_imr"], row["sd_tau"]] == pytest.approx(
        [est, se, F, p, mean_imr, sd_tau], rel=REL
    )


# ---------------------------------------------------------------- attendance (IMR arm, lm / anova)

R_ATTEND = {  # anova F, p, df2; slope adjusted (est, se, t, p, n); split adjusted (est, se, t, p)
    "gaf_f": (
        0.0316196355213036,
        0.859474154332474,
        59,
        [0.0210950803431986, 0.110777287183145, 0.190427847437018, 0.849650478561395],
        60,
        [-1.21031686347717, 2.84807088498207, -0.42496023180434, 0.672465638275103],
    ),
    "panss_total": (
        0.242891115219888,
        0.624327119847403,
        49,
        [0.00786913220012592, 0.192638710533305, 0.0408491739710094, 0.967592924680561],
        49,
        [-2.26748412155258, 5.2186611580179, -0.434495372068531, 0.66596020516616],
    ),
}


@pytest.mark.parametrize("key", list(R_ATTEND))
def test_attendance_matches_lm(key):
    F, pF, df2, slope, n, split = R_ATTEND[key]
    out = te.attendance_dose_response(load(key), outcome=key, threshold=10)
    anova, adj, sp = out.iloc[0], out.iloc[1], out.iloc[2]
    assert [anova["F"], anova["p"]] == pytest.approx([F, pF], rel=REL) and anova["df2"] == df2
    assert [adj["estimate"], adj["se"], adj["statistic"], adj["p"]] == pytest.approx(slope, rel=REL)
    assert adj["n"] == n and sp["n"] == n
    assert [sp["estimate"], sp["se"], sp["statistic"], sp["p"]] == pytest.approx(split, rel=REL)


# ---------------------------------------------------------------- CACE (AER::ivreg)

R_CACE = {  # (outcome, covariates): estimate, se, t, p, df, n
    ("gaf_f", True): (6.12831994611923, 3.95021780532449, 1.55138785964128, 0.123556498908851, 115, 123),
    ("gaf_f", False): (5.23729195390528, 4.04603254903522, 1.29442655006671, 0.198003505747194, 120, 123),
    ("panss_total", True): (7.61352029032601, 6.77421748166338, 1.123896643551, 0.263830614762993, 97, 105),
    ("panss_total", False): (8.72776148302997, 6.5764101449625, 1.32713156427985, 0.187428244145567, 102, 105),
}


@pytest.mark.parametrize("key,with_covariates", list(R_CACE))
def test_cace_matches_ivreg(key, with_covariates):
    est, se, t, p, df, n = R_CACE[(key, with_covariates)]
    covs = te.DEFAULT_COVARIATES if with_covariates else ()
    out = te.cace_iv(load(key), outcome=key, threshold=10, covariates=covs)
    row = out.iloc[0]
    assert row["quantity"].startswith("CACE") and "exclusion restriction" in row["notes"]
    assert [row["estimate"], row["se"], row["statistic"], row["p"]] == pytest.approx([est, se, t, p], rel=REL)
    assert (row["df"], row["n"]) == (df, n)
    # just-identified IV: CACE = reduced form / first stage, in the same sample
    itt, first = out.iloc[1], out.iloc[2]
    assert itt["estimate"] / first["estimate"] == pytest.approx(est, rel=1e-10)
