"""Cross-check: the normal-normal model in PyMC (imrstats.meta.bayes, the marginal parameterization of the
shared, once-compiled sampler) agrees with the exact quadrature engine (imrstats.meta.bayes_exact) within the
sampler's own Monte Carlo error.

The exact engine is accurate to ~1e-9 relative (its own tests pin it against R's integrate); NUTS summaries are
Monte Carlo estimates. Every comparison allows 4 Monte Carlo standard errors of that very run (arviz MCSE of
the mean, the SD, the quantile or the indicator's mean, all from the draws' effective sample size) plus 1e-6:

    |NUTS - exact| <= 4 MCSE + 1e-6

Quantiles (2.5%, 50%, 97.5%) use the MCSE of the quantile (arviz, method="quantile"). Seeds are fixed, so the
test is deterministic; a 4-MCSE miss of a correct sampler has probability ~6e-5 per comparison. The last test
shows the bound has teeth: the same draws are > 4 MCSE away from the exact posterior under a neighbouring prior.

Data: the eight schools (BDA3 Table 5.2) with mu ~ N(0, 5^2), tau ~ HalfCauchy(5); the first three studies of
the synthetic SMD set (tests/validation/data/bayes_smd_synthetic.csv) with mu ~ N(0, 1), tau ~ HalfNormal(0.5),
MID 0.2. One compile (``shared_sampler(capacity=8)``, the sampler the meta stage and the other NUTS tests use
for up to 8 studies, so a test process compiles it once), two fits of 4 chains x 1000 draws.
"""

from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

from imrstats.meta import bayes_exact
from imrstats.meta.bayes import HalfCauchy, HalfNormal, Normal, shared_sampler

DATA = Path(__file__).parent / "data"
TOL_Z = 4.0
QUAD_TOL = 1e-6
PROBS = {"ci_low": 0.025, "median": 0.5, "ci_high": 0.975}


def _cases():
    eight = pd.read_csv(DATA / "bayes_eight_schools.csv")
    smd = pd.read_csv(DATA / "bayes_smd_synthetic.csv").iloc[:3]
    return {
        "eight_schools_hc5": dict(
            y=eight["y"].to_numpy(float),
            se=eight["se"].to_numpy(float),
            labels=[str(s) for s in eight["school"]],
            mu=(0.0, 5.0),
            tau=HalfCauchy(5.0),
            mid=5.0,
            seed=20241122,
        ),
        "smd_k3_hn05": dict(
            y=smd["yi"].to_numpy(float),
            se=smd["sei"].to_numpy(float),
            labels=[str(s) for s in smd["study"]],
            mu=(0.0, 1.0),
            tau=HalfNormal(0.5),
            mid=0.2,
            seed=20241123,
        ),
    }


CASES = _cases()


@pytest.fixture(scope="module")
def fits():
    sampler = shared_sampler(capacity=8)
    out = {}
    for name, c in CASES.items():
        nuts = sampler.fit(
            c["y"], c["se"], c["labels"], prior_mu=Normal(*c["mu"]), prior_tau=c["tau"], mid=c["mid"], seed=c["seed"]
        )
        exact = bayes_exact.fit_exact(c["y"], c["se"], c["labels"], prior_mu=c["mu"], prior_tau=c["tau"], mid=c["mid"])
        out[name] = (nuts, exact.to_frame())
    return out


def _draws(nuts, parameter, study=None):
    post = nuts.posterior["posterior"]
    if parameter == "theta":
        return np.asarray(post["theta"].sel(study=study).values)
    return np.asarray(post[parameter].values)


def _exact_row(exact, parameter, study=None):
    rows = exact.loc[exact["parameter"] == parameter]
    if study is not None:
        rows = rows.loc[rows["study"] == study]
    assert len(rows) == 1, (parameter, study)
    return rows.iloc[0]


def _z_scores(nuts, exact, parameter, study=None, mid=None):
    """(what, NUTS value, exact value, MCSE) for mean, SD, three quantiles and the probabilities."""
    x = _draws(nuts, parameter, study)
    flat = x.ravel()
    ex = _exact_row(exact, parameter, study)
    out = [
        ("mean", flat.mean(), ex["mean"], az.mcse(x, method="mean")),
        ("sd", flat.std(ddof=1), ex["sd"], az.mcse(x, method="sd")),
    ]
    for col, prob in PROBS.items():
        out.append((col, np.quantile(flat, prob), ex[col], az.mcse(x, method="quantile", prob=prob)))
    if parameter in ("mu", "mu_new"):
        for col, threshold in (("p_gt_0", 0.0), ("p_gt_mid", mid)):
            indicator = (x > threshold).astype(float)
            out.append((col, indicator.mean(), ex[col], az.mcse(indicator, method="mean")))
    return [(what, float(a), float(b), float(m)) for what, a, b, m in out]


@pytest.mark.parametrize("case", list(CASES))
def test_nuts_passes_its_gate(fits, case):
    nuts, _ = fits[case]
    assert nuts.diagnostics.ok, nuts.diagnostics.problems()
    assert nuts.diagnostics.min_ess_bulk >= 400


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("parameter", ["mu", "tau", "mu_new", "theta"])
def test_nuts_agrees_with_exact_within_mcse(fits, case, parameter):
    nuts, exact = fits[case]
    c = CASES[case]
    studies = c["labels"] if parameter == "theta" else [None]
    misses = []
    for study in studies:
        for what, got, want, mcse in _z_scores(nuts, exact, parameter, study, c["mid"]):
            assert mcse > 0 or got == want
            if abs(got - want) > TOL_Z * mcse + QUAD_TOL * max(1.0, abs(want)):
                misses.append(
                    f"{parameter}[{study}] {what}: NUTS {got:.6g} exact {want:.6g} ({(got - want) / mcse:+.1f} MCSE)"
                )
    assert not misses, "; ".join(misses)


def test_nuts_summary_rows_match_their_draws(fits):
    """The BayesResult rows the pipeline reports are the draws' summaries compared above (not other numbers)."""
    nuts, exact = fits["eight_schools_hc5"]
    est = nuts.to_frame().set_index("quantity")
    mu = _draws(nuts, "mu").ravel()
    assert est.at["mu", "estimate"] == pytest.approx(mu.mean(), rel=1e-12)
    assert est.at["mu", "ci_high"] == pytest.approx(np.quantile(mu, 0.975), rel=1e-12)
    assert (
        abs(est.at["P(mu > 5)", "estimate"] - _exact_row(exact, "mu")["p_gt_mid"]) <= TOL_Z * est.at["P(mu > 5)", "se"]
    )


def test_the_bound_detects_a_wrong_prior(fits):
    """Power: the eight-schools draws (HalfCauchy(5)) against the exact posterior under HalfCauchy(1) miss the
    4-MCSE bound on tau's mean by far; so agreement above is evidence, not a tolerance that passes anything."""
    nuts, _ = fits["eight_schools_hc5"]
    c = CASES["eight_schools_hc5"]
    wrong = bayes_exact.fit_exact(c["y"], c["se"], c["labels"], prior_mu=c["mu"], prior_tau=HalfCauchy(1.0)).to_frame()
    tau = _draws(nuts, "tau")
    gap = abs(tau.mean() - _exact_row(wrong, "tau")["mean"])
    assert gap > 3 * TOL_Z * az.mcse(tau, method="mean")
