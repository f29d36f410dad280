"""The synthetic default data: reproducible, and calibrated to the published tables within sampling error.

Calibration is tested on a large synthetic trial (2,000 participants) against the published numbers, so the
sampling error is essentially the published table's own: a generator summary must lie within 3.5 standard
errors of the published value (21 comparisons per timepoint, so a false alarm is rare), and an SD within the
99.9% F-interval of the published SD.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imrstats.config import load_config
from imrstats.core.seeds import derive_seed
from imrstats.data.simulate import TABLE4_SUBSCALES, calibration_targets, simulate_all

PUBLISHED = pd.read_csv(
    __import__("imrstats.core.paths", fromlist=["DATA_DIR"]).DATA_DIR / "published" / "published_outcomes.csv"
)
JENSEN_CC = PUBLISHED[(PUBLISHED["study"] == "Jensen 2019") & (PUBLISHED["analysis"] == "complete_case")]


@pytest.fixture(scope="module")
def large():
    config = load_config(
        overrides={
            "seed": 11,
            "simulate": {
                "trial": {"sites": {"A": 700, "B": 700, "C": 600}},
                "programme": {"service_types": {"CMHC": 690, "SerD": 520, "EDP": 50}},
            },
        }
    )
    tables = simulate_all(config)
    from imrstats.data.clean import clean_tables

    cleaned = clean_tables(tables, missing_codes=config["clean"]["missing_codes"]).tables
    scores = cleaned["assessments"].merge(cleaned["participants"][["id", "arm"]], on="id")
    return config, tables, cleaned, scores


def test_same_seed_same_tables_other_seed_differs(default_config):
    a = simulate_all(default_config)
    b = simulate_all(default_config)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    c = simulate_all(load_config(overrides={"seed": default_config["seed"] + 1}))
    assert not a["assessments"]["score"].equals(c["assessments"]["score"])


def test_derived_seeds_are_stable():
    assert derive_seed(1, "simulate.participants") == derive_seed(1, "simulate.participants")
    assert derive_seed(1, "simulate.participants") != derive_seed(1, "simulate.assessments")


def test_default_trial_matches_table2(default_tables):
    part = default_tables["participants"]
    assert len(part) == 198 and part["id"].is_unique
    assert part["arm"].value_counts().to_dict() == {"IMR": 99, "TAU": 99}  # Table 2: 99 / 99
    assert part["site"].value_counts().to_dict() == {"Frederiksberg": 81, "Gladsaxe": 63, "Ballerup": 54}
    assert (part.loc[part["arm"] == "TAU", "sessions_attended"] == 0).all()


def _within(value, expected, se, k=3.5):
    return abs(value - expected) <= k * se


def test_demographics_and_attendance_calibrated(large):
    _, tables, _, _ = large
    part = tables["participants"]
    n = len(part)
    for observed, published in [
        ((part["sex"] == "female").mean(), 89 / 198),
        ((part["diagnosis"] == "bipolar").mean(), 47 / 198),
    ]:
        assert _within(
            observed, published, np.sqrt(published * (1 - published) / 198 + published * (1 - published) / n)
        )
    assert _within(part["age"].mean(), 43.0, np.sqrt(11.3**2 / 198 + 11.3**2 / n))
    imr = part.loc[part["arm"] == "IMR", "sessions_attended"]
    # Jensen et al. 2019, Discussion: 13% attended no session, mean 16.4 (SD 13.3) among the 99 randomised to IMR
    assert _within((imr == 0).mean(), 0.13, np.sqrt(0.13 * 0.87 / 99))
    assert _within(imr.mean(), 16.4, 13.3 / np.sqrt(99))
    assert 13.3 * 0.8 < imr.std() < 13.3 * 1.2


@pytest.mark.parametrize("timepoint", ["post", "fu12"])
def test_outcomes_calibrated_to_table3(large, timepoint):
    config, _, _, scores = large
    effects = config["simulate"]["trial"]["true_effects"]
    failures = []
    for row in JENSEN_CC[JENSEN_CC["timepoint"] == timepoint].itertuples():
        sim = scores[(scores["instrument"] == row.instrument) & (scores["timepoint"] == timepoint)].dropna(
            subset=["score"]
        )
        for arm, n_pub, m_pub, sd_pub in (
            ("IMR", row.n_imr, row.mean_imr, row.sd_imr),
            ("TAU", row.n_tau, row.mean_tau, row.sd_tau),
        ):
            vals = sim.loc[sim["arm"] == arm, "score"]
            # the generator sets arm means at the pooled published mean -/+ half the configured true effect
            shift = effects.get(row.instrument, {}).get(timepoint, 0.0) * (0.5 if arm == "IMR" else -0.5)
            pooled = (row.n_imr * row.mean_imr + row.n_tau * row.mean_tau) / (row.n_imr + row.n_tau)
            se = np.sqrt(sd_pub**2 / n_pub + sd_pub**2 / n_pub + vals.var() / len(vals))
            if not _within(vals.mean(), pooled + shift, se):
                failures.append(f"{row.instrument} {arm} mean {vals.mean():.2f} vs {pooled + shift:.2f}")
            lo, hi = stats.f.ppf([0.0005, 0.9995], len(vals) - 1, n_pub - 1)
            if not lo <= vals.var() / sd_pub**2 <= hi * 1.15:
                failures.append(f"{row.instrument} {arm} SD {vals.std():.2f} vs {sd_pub}")
        share = len(sim) / 2000
        pub_share = (row.n_imr + row.n_tau) / 198
        if not _within(share, pub_share, np.sqrt(pub_share * (1 - pub_share) / 198)):
            failures.append(f"{row.instrument} observed share {share:.2f} vs {pub_share:.2f}")
    assert not failures, failures


def test_followup_attrition_about_31_percent(large):
    _, _, cleaned, scores = large
    seen = scores[(scores["timepoint"] == "fu12")].dropna(subset=["score"])["id"].unique()
    missing_share = 1 - len(seen) / 2000
    # Jensen et al. 2019: 69% were available at the one-year follow-up (64 of 198 missing)
    assert _within(missing_share, 64 / 198, np.sqrt(0.32 * 0.68 / 198))


def test_true_effect_is_built_in(large):
    config, _, _, scores = large
    post = scores[(scores["timepoint"] == "post") & (scores["instrument"] == "gaf_f")].dropna(subset=["score"])
    diff = post.loc[post["arm"] == "IMR", "score"].mean() - post.loc[post["arm"] == "TAU", "score"].mean()
    se = post["score"].std() * np.sqrt(4 / len(post))
    assert _within(diff, config["simulate"]["trial"]["true_effects"]["gaf_f"]["post"], se, k=3.0)


def test_subscale_targets_from_table4(large):
    _, _, _, scores = large
    fu = scores[scores["timepoint"] == "fu12"].dropna(subset=["score"])
    for key, (m1, s1, m2, s2) in TABLE4_SUBSCALES.items():
        vals = fu.loc[fu["instrument"] == key, "score"]
        se = np.sqrt((s1**2 + s2**2) / 2 / 50 + vals.var() / len(vals))
        assert _within(vals.mean(), (m1 + m2) / 2, se), key


def test_registry_calibrated_to_ferrara(large):
    _, tables, _, _ = large
    prog = tables["programme"]
    n = len(prog)
    assert prog["service_type"].value_counts().to_dict() == {"CMHC": 690, "SerD": 520, "EDP": 50}

    def share_ok(observed, published, n_pub=126):
        return _within(observed, published, np.sqrt(published * (1 - published) * (1 / n_pub + 1 / n)))

    # Ferrara implementation study: 61.1% men; module 1 70.6%, module 6 39.7%, modules 9 and 10 6.3%, module 11 43.7%
    assert share_ok((prog["sex"] == "male").mean(), 0.611)
    for module, published in {"m01": 0.706, "m06": 0.397, "m09": 0.063, "m10": 0.063, "m11": 0.437}.items():
        assert share_ok(prog[module].mean(), published), module
    edp = prog[prog["service_type"] == "EDP"]
    assert not edp[[f"m{i:02d}" for i in range(1, 12) if i not in (3, 8)]].any().any()
    assert not prog[[f"m{i:02d}" for i in range(1, 12)]].all(axis=1).any()  # nobody received all 11
    age = pd.to_datetime(prog["start_date"]).dt.year - prog["birth_year"]
    assert _within(age.mean(), 40.14, 12.92 * np.sqrt(1 / 126 + 1 / n))
    assert _within(prog["sessions"].mean(), 21.4, 12.6 * np.sqrt(1 / 126 + 1 / n))
    assert prog["sessions"].between(1, 70).all()
    months = (pd.to_datetime(prog["stop_date"]) - pd.to_datetime(prog["start_date"])).dt.days / 30.4
    assert _within(months.mean(), 9.6, 7.5 * np.sqrt(1 / 126 + 1 / n))
    user = prog["imrs_user"].dropna()
    assert _within(user.mean(), 55.1, 7.47 * np.sqrt(1 / 15 + 1 / len(user)))


def test_service_use_is_overdispersed_with_excess_zeros(default_tables):
    fu = default_tables["service_use"].query("period == 'follow_up'")
    for col in ("admissions", "er_visits", "outpatient_contacts"):
        assert fu[col].var() > 1.5 * fu[col].mean(), col
    lam = fu["admissions"].mean()
    assert (fu["admissions"] == 0).mean() > np.exp(-lam) + 0.1  # more zeros than a Poisson allows
    assert (fu["bed_days"] <= fu["exposure_days"]).all()
    assert ((fu["admissions"] == 0) <= (fu["bed_days"] == 0)).all()


def test_calibration_targets_cover_every_outcome():
    targets = calibration_targets()
    assert targets[("imrs_client", "post")].mean == pytest.approx((46 * 54.7 + 55 * 52.8) / 101)
