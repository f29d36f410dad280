"""Data checks for data/published/: every number has a source and sits in its own verbatim quote.

The quote checks run on what the repository ships (each row's verbatim ``quote``). The full source texts are
not in the repository (docs/sources.md): where they are at hand, name their folder in the environment variable
``IMRSTATS_SOURCE_TEXTS`` and each quote is also re-found in them; without it those tests skip and say why.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from imrstats.core.paths import INSTRUMENTS_FILE, PROJECT_DIR
from imrstats.data import published
from imrstats.errors import InputError

SOURCE_TEXTS_ENV = "IMRSTATS_SOURCE_TEXTS"
# File names of the full texts (docs/sources.md, "The full texts, for the optional checks").
FULL_TEXTS = {
    "jensen2019": "003_760c7f5f7fc4daa3.txt",
    "mcguire2014": "001_a4b335bb3a7ff4c2.txt",
    "further_trials_extraction": "imr_trials_beyond_seeds.csv",
    "priors_extraction": "heterogeneity_priors.csv",
}
NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?|\.\d+")

# Keys deliberately outside the instrument registry (see data/published/README.md).
OUTSIDE_REGISTRY = {
    "hospitalisation",
    "hospital_days_change",
    "bprs",
    "qls_abbreviated",
    "psychosis_rating_scale",
    "sofas",
}
# Jensen et al. 2019 Table 3 row labels (footnote letters included, as printed) -> registry key.
TABLE3_LABELS = {
    "GAF-Fc": "gaf_f",
    "GAF-Sd": "gaf_s",
    "PSPe": "psp",
    "PANSSf": "panss_total",
    "Hamiltong": "hamd6",
    "Young’s Maniah": "ymrs",
    "Mental Health Recovery Scalei": "mhrm",
    "Adult State of Hope Scale": "hope",
    "Patient satisfaction": "csq8",
    "IMRS-Patientj": "imrs_client",
    "IMRS-Staffk": "imrs_clinician",
}
# Positions of Table 3's 19 numbers: ITT (N, IMR mean, SE, TAU mean, SE, P), complete case post
# (IMR N, mean, SD, TAU N, mean, SD), one-year (IMR N, mean, SD, TAU N, mean, SD), complete-case P.
TABLE3_POSITIONS = {
    ("itt", "fu12"): {"n_imr": 0, "mean_imr": 1, "se_imr": 2, "mean_tau": 3, "se_tau": 4, "p": 5},
    ("complete_case", "post"): {"n_imr": 6, "mean_imr": 7, "sd_imr": 8, "n_tau": 9, "mean_tau": 10, "sd_tau": 11},
    ("complete_case", "fu12"): {
        "n_imr": 12,
        "mean_imr": 13,
        "sd_imr": 14,
        "n_tau": 15,
        "mean_tau": 16,
        "sd_tau": 17,
        "p": 18,
    },
}
OUTCOME_NUMBERS = [
    "n_imr",
    "mean_imr",
    "sd_imr",
    "se_imr",
    "n_tau",
    "mean_tau",
    "sd_tau",
    "se_tau",
    "n_total",
    "effect",
    "se",
    "ci_low",
    "ci_high",
    "p",
]


@pytest.fixture(scope="module")
def outcomes() -> pd.DataFrame:
    return published.load_published_outcomes()


@pytest.fixture(scope="module")
def rates() -> pd.DataFrame:
    return published.load_implementation_rates()


@pytest.fixture(scope="module")
def priors() -> pd.DataFrame:
    return published.load_heterogeneity_priors()


@pytest.fixture(scope="module")
def registry() -> dict:
    return yaml.safe_load(INSTRUMENTS_FILE.read_text())


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _numbers(text: str) -> list[float]:
    return [float(tok.replace(",", "")) for tok in NUMBER.findall(text)]


def _in_quote(value: float, quote: str) -> bool:
    return any(math.isclose(abs(value), tok, rel_tol=1e-12, abs_tol=1e-12) for tok in _numbers(quote))


def _full_text_path(key: str) -> Path:
    """The full text of a docs/sources.md key, or a skip saying why it cannot be read."""
    name = FULL_TEXTS[key]
    root = os.environ.get(SOURCE_TEXTS_ENV, "").strip()
    if not root:
        pytest.skip(
            f"the full source texts are not part of the repository; set {SOURCE_TEXTS_ENV} to the folder "
            f"holding them (docs/sources.md) to re-find the quotes in {name}"
        )
    hits = sorted(Path(root).rglob(name))
    if not hits:
        pytest.skip(f"{name} ({key}) is not under {SOURCE_TEXTS_ENV}={root}")
    return hits[0]


def _full_text(key: str) -> str:
    return _collapse(_full_text_path(key).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- published_outcomes.csv


def test_danish_table3_rows_are_all_there(outcomes):
    danish = outcomes[outcomes["study"] == "Jensen 2019"]
    complete = danish[danish["analysis"] == "complete_case"]
    assert sorted(complete["instrument"].unique()) == sorted(TABLE3_LABELS.values())
    for instrument, timepoints in complete.groupby("instrument")["timepoint"]:
        assert sorted(timepoints) == ["fu12", "post"], instrument
    itt = danish[danish["analysis"] == "itt"]
    assert len(complete) == 22 and len(itt) == 11
    assert (itt["effect_type"] == "arm means (ITT, SE)").all()
    assert (itt["timepoint"] == "fu12").all()


def test_further_trials_pool_and_sensitivity_rows_are_all_there(outcomes):
    further = outcomes[outcomes["source_key"] != "jensen2019"]
    # 1 pool + 7 pool with care + 3 sensitivity + 3 pool (Wong) rows from the raw extraction of further trials
    assert len(further) == 14
    for study in ["Roosenschoon 2021", "Levitt 2009", "Wong 2023", "Hasson-Ohayon 2007", "Fardig 2011"]:
        assert study in set(further["study"])
    assert set(further.loc[further["study"] == "Fardig 2011", "use"]) == {"sensitivity"}


def test_every_source_key_is_documented(outcomes):
    documented = set(
        re.findall(r"^\| `([a-z0-9_]+)` \|", (PROJECT_DIR / "docs" / "sources.md").read_text(), re.MULTILINE)
    )
    audit = pd.read_csv(published.PUBLISHED_DIR / "audit_cases.csv", dtype=str, keep_default_na=False)
    for keys in (outcomes["source_key"], audit["source_key"]):
        assert (keys != "").all()
        assert set(keys) <= documented, set(keys) - documented
    for study, key in outcomes.groupby("study")["source_key"].agg(lambda s: tuple(set(s))).items():
        assert len(key) == 1 and key[0].startswith(re.sub(r"[^a-z]", "", study.lower().split()[0])), study


def test_every_row_has_source_and_quote(outcomes, rates, priors):
    for frame in (outcomes, rates):
        assert (frame["source"].str.strip() != "").all()
        assert (frame["quote"].str.strip() != "").all()
    assert (priors["source"].str.strip() != "").all()


@pytest.mark.parametrize("column", OUTCOME_NUMBERS)
def test_every_outcome_number_appears_in_its_quote(outcomes, column):
    for i, row in outcomes[outcomes[column].notna()].iterrows():
        assert _in_quote(float(row[column]), row["quote"]), (
            f"row {i + 2} ({row['study']}, {row['instrument']}): {column} = {row[column]} is not in its quote"
        )


def test_table3_numbers_sit_in_the_right_column(outcomes):
    """Read the 19 numbers of the quoted Table 3 line by position: n / mean / SD land where the table has them."""
    danish = outcomes[outcomes["study"] == "Jensen 2019"]
    for i, row in danish.iterrows():
        line = row["quote"].split(" || ")[0]
        label = line[: len(line) - len(" ".join(line.split()[-19:]))].strip()
        assert TABLE3_LABELS[label] == row["instrument"], f"row {i + 2}: label {label!r} vs {row['instrument']}"
        tokens = [float(t) for t in line.split()[-19:]]
        positions = TABLE3_POSITIONS[(row["analysis"], row["timepoint"])]
        for column, pos in positions.items():
            assert math.isclose(row[column], tokens[pos]), f"row {i + 2}: {column}"
        if row["analysis"] == "itt":
            assert row["n_tau"] == 99 and "TAUc (N = 99)" in row["quote"]


def test_jensen2019_rows_are_found_in_the_full_text(outcomes):
    text = _full_text("jensen2019")
    rows = outcomes[outcomes["source_key"] == "jensen2019"]
    assert len(rows) == 33
    for i, row in rows.iterrows():
        for part in row["quote"].split(" || "):
            part = part.removeprefix("Table 2 header: ")
            assert part in text, f"row {i + 2}: quote part not in Jensen et al. 2019: {part!r}"


def test_further_trial_rows_quote_their_sources_verbatim(outcomes):
    path = _full_text_path("further_trials_extraction")
    extracted_quotes = " ## ".join(pd.read_csv(path, dtype=str, keep_default_na=False)["quote"])
    review = _full_text("mcguire2014")
    rows = outcomes[outcomes["source_key"] != "jensen2019"]
    for i, row in rows.iterrows():
        for part in row["quote"].split(" || "):
            assert part in extracted_quotes or part in review, f"row {i + 2}: {part[:60]!r} not found"


def test_arm_values_within_registry_ranges(outcomes, registry):
    for i, row in outcomes.iterrows():
        spec = registry.get(row["instrument"])
        if spec is None:
            assert row["instrument"] in OUTSIDE_REGISTRY, f"row {i + 2}: unknown instrument {row['instrument']}"
            continue
        lo, hi = float(spec["min"]), float(spec["max"])
        for arm in ("imr", "tau"):
            mean, sd = row[f"mean_{arm}"], row[f"sd_{arm}"]
            if pd.notna(mean):
                assert lo <= mean <= hi, f"row {i + 2}: mean_{arm} {mean} outside {lo}-{hi}"
            if pd.notna(sd):
                # a variable confined to [lo, hi] has SD at most (hi - lo) / 2 (Popoviciu's inequality)
                assert 0 < sd <= (hi - lo) / 2, f"row {i + 2}: sd_{arm} {sd}"


def test_arm_sizes_are_whole_and_plausible(outcomes):
    for column in ("n_imr", "n_tau", "n_total"):
        values = outcomes[column].dropna()
        assert str(outcomes[column].dtype) == "Int64"
        assert (values > 0).all()
    danish_cc = outcomes[(outcomes["study"] == "Jensen 2019") & (outcomes["analysis"] == "complete_case")]
    assert (danish_cc["n_imr"] <= 99).all() and (danish_cc["n_tau"] <= 99).all()


def test_p_values_and_intervals_are_coherent(outcomes):
    p = outcomes["p"].dropna()
    assert ((p > 0) & (p <= 1)).all()
    ci = outcomes[outcomes["ci_low"].notna()]
    assert (ci["ci_low"] < ci["effect"]).all() and (ci["effect"] < ci["ci_high"]).all()


def test_sign_agrees_with_registry_direction(outcomes, registry):
    arm_rows = outcomes[outcomes["mean_imr"].notna()]
    for i, row in arm_rows.iterrows():
        spec = registry.get(row["instrument"])
        if spec is not None:
            assert row["sign_favouring_imr"] == (1 if spec["higher_is_better"] else -1), f"row {i + 2}"


def test_reported_effect_rows_carry_conversion_and_assumption(outcomes):
    effects = outcomes[outcomes["mean_imr"].isna()]
    assert (effects["conversion"] != "smd_from_arms").all()
    assert (effects["assumption"] != "").all()
    assert set(outcomes.loc[outcomes["effect_type"].str.startswith("Cohen's d"), "conversion"]) == {
        "d_total_n_equal_split"
    }


def test_sensitivity_without_assumptions_keeps_only_clean_rows(outcomes):
    main = published.select_for_pooling(outcomes, instrument="imrs_client")
    clean = published.select_for_pooling(outcomes, instrument="imrs_client", drop_assumptions=True)
    assert {"Jensen 2019", "Roosenschoon 2021", "Levitt 2009", "Wong 2023"} <= set(main["study"])
    assert set(clean["study"]) == {"Jensen 2019"}
    assert (clean["assumption"] == "").all()
    assert "Fardig 2011" not in set(main["study"])
    with_sens = published.select_for_pooling(
        outcomes, instrument="imrs_client", uses=("pool", "pool with care", "sensitivity")
    )
    assert "Fardig 2011" in set(with_sens["study"])


# ---------------------------------------------------------------- implementation_rates.csv


def test_implementation_numbers_appear_in_their_quote(rates):
    for column in ("value", "value_sd", "value_low", "value_high"):
        for i, row in rates[rates[column].notna()].iterrows():
            assert _in_quote(row[column], row["quote"]), f"row {i + 2}: {column} = {row[column]}"


def test_implementation_quotes_are_verbatim_review_lines(rates):
    review = _full_text("mcguire2014")
    for i, row in rates.iterrows():
        for part in row["quote"].split(" || "):
            assert part in review, f"row {i + 2}: {part!r} not in McGuire et al. 2014"


def test_implementation_values_are_in_range(rates):
    pct = rates[rates["unit"] == "percent"]
    assert pct["value"].between(0, 100).all()
    counts = rates[rates["measure"].isin(["n_enrolled", "n_imr"])]
    assert (counts["value"] % 1 == 0).all() and (counts["value"] > 0).all()
    ambiguous = rates[rates["use"] == "context"]
    assert (ambiguous.loc[ambiguous["table"] == "Table 3", "note"] != "").all()
    poolable = rates[rates["use"] != "context"]
    assert set(poolable["study"]) <= set(rates.loc[rates["measure"] == "n_enrolled", "study"])


def test_implementation_table3_rows_keep_the_column_order(rates):
    """Within a study's verbatim line, dropout precedes sessions, completion and fidelity (Table 3's column order)."""
    order = ["dropout_pct", "sessions_attended_pct", "completion_pct", "fidelity"]
    for study, group in rates[rates["table"] == "Table 3"].groupby("study"):
        line = group["quote"].iloc[0].split(" || ")[0]
        tokens = _numbers(line.split(")", 1)[1])  # the cells, after the citation's reference number
        group = group.sort_values("measure", key=lambda s: s.map(order.index))
        firsts = group["value"].fillna(group["value_low"])
        positions = [next(k for k, t in enumerate(tokens) if math.isclose(t, v)) for v in firsts]
        assert positions == sorted(positions), study


def _whole_person(pct: float, n: int) -> bool:
    """Some whole number of n people is pct% after rounding to a whole percent."""
    return any(math.floor(100 * k / n + 0.5) == pct for k in range(n + 1))


def _table1(rates, study, measure="n_enrolled"):
    hit = rates.loc[(rates["study"] == study) & (rates["measure"] == measure), "value"]
    return None if hit.empty else int(hit.iloc[0])


def test_rate_denominators_rest_on_their_table1_quote(rates):
    with_n = rates[rates["denominator"].notna()]
    assert len(with_n) == 13
    for i, row in with_n.iterrows():
        assert _in_quote(_table1(rates, row["study"]), row["denominator_quote"]), f"row {i + 2}"
    others = rates[~rates["measure"].isin(published.RATE_MEASURES)]
    assert others["denominator"].isna().all() and (others["denominator_basis"] == "").all()


def test_rate_denominator_quotes_are_verbatim_review_lines(rates):
    review = _full_text("mcguire2014")
    for i, row in rates[rates["denominator"].notna()].iterrows():
        for part in row["denominator_quote"].split(" || "):
            assert part in review, f"row {i + 2}: {part!r} not in McGuire et al. 2014"


def test_rate_denominators_follow_the_rule_people_offered_imr(rates):
    """Printed bases equal the Table 1 number; a controlled study's IMR rate is never divided by everyone enrolled;
    an assumed IMR N says so and follows from the numbers its assumption names."""
    for i, row in rates[rates["denominator"].notna()].iterrows():
        n, total, basis = int(row["denominator"]), _table1(rates, row["study"]), row["denominator_basis"]
        where = f"row {i + 2} ({row['study']}, {row['measure']})"
        if basis == "single_group":
            assert row["design"] == "pre-post" and n == total, where
        elif basis == "imr_group_printed":
            assert n == _table1(rates, row["study"], "n_imr") < total, where
        elif basis == "all_arms":
            assert n == total and row["use"] == "context", where
            assert "1Rate reported for IMR and control participants combined." in row["denominator_quote"], where
        else:
            assert basis.startswith("assumed_") and row["design"] != "pre-post" and n < total, where
            assert str(n) in row["assumption"] and str(total) in row["assumption"], where
        if basis == "assumed_equal_allocation":
            assert n == total // 2, where


def test_an_imr_n_assumed_from_the_percentages_is_the_one_they_allow(rates):
    """Fujita 2010: 14% and 86% are not whole-person fractions of the 25 enrolled, but are of the assumed 21."""
    rows = rates[rates["denominator_basis"] == "assumed_from_percentages"]
    assert set(rows["study"]) == {"Fujita 2010"}
    pcts = list(rows["value"])
    assert all(_whole_person(p, 21) for p in pcts) and not any(_whole_person(p, 25) for p in pcts)
    allowed = [n for n in range(1, 26) if all(_whole_person(p, n) for p in pcts)]
    assert allowed == [7, 14, 21, 22] and set(rows["denominator"]) == {21}


def test_printed_rates_that_no_denominator_reproduces_are_noted(rates):
    for i, row in rates[rates["denominator"].notna()].iterrows():
        if not _whole_person(row["value"], int(row["denominator"])):
            assert "not a whole-person fraction" in row["note"], f"row {i + 2} ({row['study']}, {row['measure']})"
    mueser = rates[(rates["study"] == "Mueser 2006") & rates["measure"].isin(published.RATE_MEASURES)]
    assert not any(_whole_person(p, 31) for p in mueser["value"])  # the note is needed there


@pytest.mark.parametrize(
    "change, message",
    [
        ({"denominator_basis": ""}, "denominator_basis '' is not one of"),
        ({"denominator": ""}, "needs a positive whole denominator"),
        ({"denominator_quote": ""}, "denominator_quote"),
        ({"assumption": ""}, "must state its assumption"),
    ],
)
def test_implementation_loader_checks_the_denominator_of_a_rate(tmp_path, change, message):
    raw = pd.read_csv(published.PUBLISHED_DIR / "implementation_rates.csv", dtype=str, keep_default_na=False)
    hit = (raw["study"] == "Fardig 2011") & (raw["measure"] == "dropout_pct")
    for col, value in change.items():
        raw.loc[hit, col] = value
    with pytest.raises(InputError, match=message):
        published.load_implementation_rates(_write(tmp_path, raw))


def test_implementation_loader_rejects_a_denominator_on_other_rows_and_old_files(tmp_path):
    raw = pd.read_csv(published.PUBLISHED_DIR / "implementation_rates.csv", dtype=str, keep_default_na=False)
    bad = raw.copy()
    bad.loc[bad["measure"] == "fidelity", "denominator"] = "10"
    with pytest.raises(InputError, match="only .* rows take a denominator"):
        published.load_implementation_rates(_write(tmp_path, bad))
    with pytest.raises(InputError, match="missing columns .*denominator"):
        published.load_implementation_rates(_write(tmp_path, raw.drop(columns=["denominator"])))


# ---------------------------------------------------------------- heterogeneity_priors.csv


def test_priors_keys_for_imr_outcomes(priors):
    for key in [
        "rhodes_mental_nonpharm",
        "rhodes_subjective_nonpharm",
        "rhodes_qol_function_nonpharm",
        "rhodes_marginal",
        "turner_mental_nonpharm_placebo",
        "turner_resource_nonpharm_placebo",
        "turner_dropout_nonpharm_placebo",
        "turner_marginal",
    ]:
        assert key in set(priors["key"])
    assert priors["key"].str.fullmatch(r"(rhodes|turner)_[a-z_]+").all()
    mental = published.prior_by_key(priors, "rhodes_mental_nonpharm")
    assert mental["location"] == -3.85 and mental["scale"] == 1.93 and "-2.85" in mental["note"]


def test_priors_are_an_exact_copy_of_the_raw_extraction(priors):
    path = _full_text_path("priors_extraction")
    ours = pd.read_csv(published.PUBLISHED_DIR / "heterogeneity_priors.csv", dtype=str, keep_default_na=False)
    theirs = pd.read_csv(path, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(ours.drop(columns="key"), theirs)


# ---------------------------------------------------------------- loader errors


def _write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


def _raw_outcomes() -> pd.DataFrame:
    return pd.read_csv(published.PUBLISHED_DIR / "published_outcomes.csv", dtype=str, keep_default_na=False)


def test_loader_rejects_a_row_without_source(tmp_path):
    raw = _raw_outcomes()
    raw.loc[3, "source"] = ""
    with pytest.raises(InputError, match=r"'source' is empty in rows \[5\]"):
        published.load_published_outcomes(_write(tmp_path, raw))


def test_loader_rejects_unknown_codes_and_fractional_n(tmp_path):
    raw = _raw_outcomes()
    raw.loc[0, "timepoint"] = "week9"
    with pytest.raises(InputError, match="timepoint"):
        published.load_published_outcomes(_write(tmp_path, raw))
    raw = _raw_outcomes()
    raw.loc[0, "n_imr"] = "62.5"
    with pytest.raises(InputError, match="whole numbers"):
        published.load_published_outcomes(_write(tmp_path, raw))
    raw = _raw_outcomes()
    raw.loc[0, "sd_imr"] = "abc"
    with pytest.raises(InputError, match="not numbers"):
        published.load_published_outcomes(_write(tmp_path, raw))


def test_loader_rejects_conversion_without_assumption_and_missing_sign(tmp_path):
    raw = _raw_outcomes()
    row = raw.index[raw["conversion"] == "d_total_n_equal_split"][0]
    raw.loc[row, "assumption"] = ""
    with pytest.raises(InputError, match="assumption"):
        published.load_published_outcomes(_write(tmp_path, raw))
    raw = _raw_outcomes()
    raw.loc[0, "sign_favouring_imr"] = ""
    with pytest.raises(InputError, match="sign_favouring_imr"):
        published.load_published_outcomes(_write(tmp_path, raw))


def test_loader_rejects_missing_file_and_columns(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        published.load_published_outcomes(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="missing columns"):
        published.load_published_outcomes(_write(tmp_path, _raw_outcomes().drop(columns="quote")))


def test_priors_loader_rejects_duplicate_keys_and_bad_scale(tmp_path):
    raw = pd.read_csv(published.PUBLISHED_DIR / "heterogeneity_priors.csv", dtype=str, keep_default_na=False)
    dup = raw.copy()
    dup.loc[1, "key"] = dup.loc[0, "key"]
    with pytest.raises(InputError, match="unique"):
        published.load_heterogeneity_priors(_write(tmp_path, dup))
    bad = raw.copy()
    bad.loc[0, "scale"] = "0"
    with pytest.raises(InputError, match="positive"):
        published.load_heterogeneity_priors(_write(tmp_path, bad))


def test_selection_and_lookup_errors(outcomes, priors):
    with pytest.raises(InputError, match="unknown 'use'"):
        published.select_for_pooling(outcomes, uses=("maybe",))
    with pytest.raises(InputError, match="unknown heterogeneity prior"):
        published.prior_by_key(priors, "rhodes_nonexistent")


def test_implementation_loader_rejects_empty_numbers(tmp_path):
    raw = pd.read_csv(published.PUBLISHED_DIR / "implementation_rates.csv", dtype=str, keep_default_na=False)
    raw.loc[0, "value"] = ""
    with pytest.raises(InputError, match="holds no number"):
        published.load_implementation_rates(_write(tmp_path, raw))
