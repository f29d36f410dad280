"""imrstats.trial.lmm against R on identical input: data/trial_gaf_f.csv and data/trial_extra_panss_total.csv
(outcome frames of the default synthetic trial); references printed by r/trial_lmm.R (R 4.2.2, nlme 3.1.162,
emmeans 1.8.4.1, lme4 1.1.31): nlme::lme(y ~ 0 + time + time:arm + time:baseline + site + sex + age +
diagnosis, random = ~ 1 | id, method = "REML") and emmeans' IMR - TAU contrast per visit (containment df).

Tolerances (relative): fixed effects, SEs, contrasts, CIs, t, p: 1e-6 against nlme. Variance components: the
REML surface is flat in them (a relative error e in tau^2 lowers the log-likelihood by ~1e-11 for e = 1e-6),
so every optimiser stops at a different point within ~1e-6: nlme's default nlminb ~2e-6, its optim ~6e-7 (the
reference below); imrstats finds the root of the analytic profile score (Brent), which is the maximum to machine
precision (observed 3.5e-8 from lmer's). They are therefore pinned at 1e-6 against nlme (observed 6e-7) and
at 1e-7 against lme4::lmer with tight nloptwrap tolerances, which reaches the maximum to ~1e-8. The REML
log-likelihood (nlme's constant) at 1e-10.
The same ~6e-7 offset of nlme's variance components moves a fixed effect by ~1e-7 of its SE, which for a
coefficient near 0 (sex[male] of GAF-F: 0.14, SE 1.41) is 1.3e-6 of the coefficient: fixed effects are
pinned at 1e-6 relative against lmer's (fixef at its tighter maximum; observed < 1e-7), and against nlme's
at 1e-6 relative or 1e-6 of their SE, whichever is larger.
"""

from pathlib import Path

import pandas as pd
import pytest

from imrstats.trial.lmm import random_intercept_lmm

DATA = Path(__file__).parent / "data"
REL = 1e-6

# name: n_obs, n_id, nlme tau2, sigma2, REML loglik, lmer tau2, sigma2, fixdf (within, between)
R_FIT = {
    "trial_gaf_f": (
        240,
        161,
        40.5316465722957,
        47.5982800910204,
        -858.524231110195,
        40.5316716541322,
        47.5982634282647,
        (74, 156),
    ),
    "trial_extra_panss_total": (
        191,
        145,
        26.3042988388038,
        192.173162478519,
        -769.827262863751,
        26.304308781774,
        192.173153229449,
        (41, 140),
    ),
}
R_TERMS = [
    "time[post]",
    "time[fu12]",
    "site[Frederiksberg]",
    "site[Gladsaxe]",
    "sex[male]",
    "age",
    "diagnosis[schizophrenia]",
    "arm[IMR]:time[post]",
    "arm[IMR]:time[fu12]",
    "baseline:time[post]",
    "baseline:time[fu12]",
]
R_COEF = {
    "trial_gaf_f": (
        [
            19.2500384858363,
            36.6126650198845,
            -2.42351727028154,
            -3.94468700625469,
            0.141265552072417,
            -0.0837396817276075,
            -3.9595871256982,
            5.2537298517831,
            2.88611647809148,
            0.68442318614534,
            0.452197386804121,
        ],
        [
            6.13107309288931,
            6.09570302297659,
            1.75632536455864,
            1.83094586172344,
            1.41391147596567,
            0.0709159491023841,
            1.83011088047728,
            1.743215546683,
            1.67322792029552,
            0.0815784056036191,
            0.0782710117477846,
        ],
    ),
    "trial_extra_panss_total": (
        [
            25.6166935395887,
            19.3930191600027,
            1.4352909851799,
            3.21102912386074,
            2.45922055820842,
            0.0388942616180597,
            1.99050639933724,
            -1.70878957505989,
            3.50160544849152,
            0.466514434394406,
            0.546371808082493,
        ],
        [
            7.15289586134374,
            6.71285076767682,
            2.78751224355413,
            3.01046688454407,
            2.25984148956003,
            0.107779098029652,
            2.86302886242841,
            3.26254254559276,
            2.92349461361723,
            0.0907353626103557,
            0.0882099526167134,
        ],
    ),
}
R_LMER_COEF = {
    "trial_gaf_f": [
        19.250039351722,
        36.6126647898011,
        -2.42351735323306,
        -3.94468692084043,
        0.141265741719112,
        -0.0837396961261276,
        -3.95958699125519,
        5.25372955235914,
        2.88611652352722,
        0.684423184558524,
        0.452197397044366,
    ],
    "trial_extra_panss_total": [
        25.6166935047733,
        19.3930194121859,
        1.43529098439309,
        3.21102911630084,
        2.45922049937693,
        0.0388942608738465,
        1.99050637721346,
        -1.70878957450592,
        3.50160535133432,
        0.466514436242366,
        0.546371805634681,
    ],
}
# emmeans contrast IMR - TAU | time: estimate, SE, df, lower, upper, t, p
R_CONTRAST = {
    ("trial_gaf_f", "post"): (
        5.2537298517831,
        1.743215546683,
        74,
        1.78029705354161,
        8.72716265002459,
        3.01381539522173,
        0.00353143301924199,
    ),
    ("trial_gaf_f", "fu12"): (
        2.88611647809148,
        1.67322792029552,
        74,
        -0.447862930448479,
        6.22009588663145,
        1.7248794638699,
        0.0887237567869395,
    ),
    ("trial_extra_panss_total", "post"): (
        -1.70878957505989,
        3.26254254559276,
        41,
        -8.29762791369258,
        4.88004876357279,
        -0.523760089310782,
        0.603265289695282,
    ),
    ("trial_extra_panss_total", "fu12"): (
        3.50160544849152,
        2.92349461361723,
        41,
        -2.40251170057317,
        9.4057225975562,
        1.19774650248423,
        0.237894368359935,
    ),
}


@pytest.fixture(scope="module")
def fits():
    return {
        name: random_intercept_lmm(pd.read_csv(DATA / f"{name}.csv", dtype={"id": str}), outcome=name) for name in R_FIT
    }


@pytest.mark.parametrize("name", list(R_FIT))
def test_variance_components_and_loglik(fits, name):
    n_obs, n_id, tau2, sigma2, loglik, tau2_lmer, sigma2_lmer, _ = R_FIT[name]
    r = fits[name]
    assert r.converged and not r.boundary
    assert (r.n_observations, r.n_participants) == (n_obs, n_id)
    assert r.random_intercept_variance == pytest.approx(tau2, rel=REL)
    assert r.residual_variance == pytest.approx(sigma2, rel=REL)
    assert r.random_intercept_variance == pytest.approx(tau2_lmer, rel=1e-7)
    assert r.residual_variance == pytest.approx(sigma2_lmer, rel=1e-7)
    assert r.reml_loglik == pytest.approx(loglik, rel=1e-10)


@pytest.mark.parametrize("name", list(R_FIT))
def test_fixed_effects_and_between_within_df(fits, name):
    coef, se = R_COEF[name]
    within, between = R_FIT[name][7]
    fe = fits[name].fixed_effects.set_index("term").loc[R_TERMS]
    assert list(fe["estimate"]) == pytest.approx(R_LMER_COEF[name], rel=REL)
    for got, want, s in zip(fe["estimate"], coef, se):
        assert got == pytest.approx(want, rel=REL, abs=REL * s)
    assert list(fe["se"]) == pytest.approx(se, rel=REL)
    expected_df = [between if t.split("[")[0] in ("site", "sex", "age", "diagnosis") else within for t in R_TERMS]
    assert list(fe["df"]) == expected_df


@pytest.mark.parametrize("name,tp", list(R_CONTRAST))
def test_contrast_matches_emmeans(fits, name, tp):
    est, se, df, lo, hi, t, p = R_CONTRAST[(name, tp)]
    row = fits[name].contrasts.set_index("timepoint").loc[tp]
    assert row["df"] == df
    assert [row["estimate"], row["se"], row["ci_low"], row["ci_high"], row["statistic"], row["p"]] == pytest.approx(
        [est, se, lo, hi, t, p], rel=REL
    )
