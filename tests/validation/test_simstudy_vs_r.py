"""imrstats.trial.simstudy.aggregate against the performance measures of Morris, White & Crowther 2019 (Table 6)
computed in base R by tests/validation/r/simstudy.R on tests/validation/data/simstudy_replicates.csv.
Deterministic: 1e-6 relative (absolute 1e-12 for exact zeros)."""

import pandas as pd
import pytest

from conftest import PROJECT
from imrstats.trial.simstudy import aggregate

# printed by Rscript tests/validation/r/simstudy.R (R 4.x, base R only): (estimate, MCSE)
R_REFERENCE = {
    "null": {
        "bias": (-0.137422761211667, 0.226975021330619),
        "empirical_se": (1.75814095523712, 0.161849993807881),
        "mse": (3.0584269734731, 0.513569337527296),
        "model_se": (1.53631772859138, 0.0344752986016851),
        "rel_error_model_se_pct": (-12.6169193650248, 8.27981294341675),
        "coverage": (0.916666666666667, 0.0356812016074031),
        "type_i_error": (0.0833333333333333, 0.0356812016074031),
    },
    "effect": {
        "bias": (0.0580681664512821, 0.194218505906614),
        "empirical_se": (1.7152913999827, 0.13822212001013),
        "mse": (2.90787567077302, 0.541668782187527),
        "model_se": (1.69904536545863, 0.0284800480967645),
        "rel_error_model_se_pct": (-0.94712971360007, 8.1527696912348),
        "coverage": (0.948717948717949, 0.0249749111284978),
        "power": (0.397435897435897, 0.0554099644914046),
    },
    "noisy_se": {
        "bias": (-0.2226126967325, 0.273499120356765),
        "empirical_se": (1.7297603167598, 0.195856788124181),
        "mse": (2.96682539734756, 0.635425967375601),
        "model_se": (1.73623470385305, 0.120766709057122),
        "rel_error_model_se_pct": (0.374293885142141, 13.3383212498407),
        "coverage": (0.825, 0.0600780742034896),
        "power": (0.25, 0.0684653196881458),
    },
}
R_COUNTS = {"null": (60, 0), "effect": (78, 2), "noisy_se": (40, 0)}


@pytest.fixture(scope="module")
def performance():
    rows = pd.read_csv(
        PROJECT / "tests" / "validation" / "data" / "simstudy_replicates.csv",
        keep_default_na=False,
        na_values={c: [""] for c in ("estimate", "se", "ci_low", "ci_high", "df", "p", "fmi")},
    )
    return aggregate(rows, alpha=0.05)


@pytest.mark.parametrize("scenario", sorted(R_REFERENCE))
def test_measures_match_r(performance, scenario):
    got = performance[performance["scenario"] == scenario].set_index("quantity")
    assert set(got.index) == set(R_REFERENCE[scenario])
    for measure, (est, mcse) in R_REFERENCE[scenario].items():
        assert got.loc[measure, "estimate"] == pytest.approx(est, rel=1e-6, abs=1e-12), measure
        assert got.loc[measure, "se"] == pytest.approx(mcse, rel=1e-6, abs=1e-12), measure


@pytest.mark.parametrize("scenario", sorted(R_COUNTS))
def test_counts_match_r(performance, scenario):
    got = performance[performance["scenario"] == scenario].iloc[0]
    assert (got["n_rep"], got["n_failed"]) == R_COUNTS[scenario]
