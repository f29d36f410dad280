"""A study design of its own through the trial stage: K post-baseline visits of any names, any arm codes and
labels, one or one-per-visit baseline slopes; the default design (IMR vs TAU, post and fu12) unchanged; the K = 4
MMRM pinned to nlme::gls (tests/validation/r/k_visit_mmrm.R)."""

import dataclasses
import json
import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from imrstats.config import section_settings
from imrstats.errors import AnalysisError, SettingsError
from imrstats.pipeline.registry import with_section
from imrstats.trial import analyses as trial
from imrstats.trial import secondary as trial_extra
from imrstats.trial.consort import baseline_table, consort_counts
from imrstats.trial.design import DEFAULT_DESIGN, StudyDesign
from imrstats.trial.stage import run_trial_stage

matplotlib.use("Agg")

DATA = Path(__file__).resolve().parents[1] / "validation" / "data"
WEEKS = ("week4", "week8", "week12", "week16")
COLUMNS = ("site", "sex", "age", "sessions_attended")  # the participants' columns of the simulated study
# words that would betray the IMR trial's design in a study that has other arms and visits ("post hoc" is prose)
LEAK = re.compile(r"\b(IMR|TAU|fu12)\b|(?<![\w-])post(?![\w-]| hoc)")
LEAK_COLUMN = re.compile(r"(^|_)(imr|tau|post|fu12)(_|$)")


def simulate_study(n=90, visits=WEEKS, arms=("Active", "Placebo"), seed=11, sessions=True):
    """Cleaned participants and assessments tables of a synthetic two-arm trial with visits ``visits``: GAF-F with
    an effect growing over the visits, dropout and intermittent misses; sessions attended in the first arm."""
    rng = np.random.default_rng(seed)
    arm = np.array([arms[i % 2] for i in range(n)])
    participants = pd.DataFrame(
        {
            "id": [f"S{i:03d}" for i in range(n)],
            "arm": arm,
            "site": rng.choice(["North", "South"], n),
            "sex": rng.choice(["female", "male"], n),
            "age": rng.normal(40, 10, n).round(),
        }
    )
    if sessions:
        participants["sessions_attended"] = np.where(arm == arms[0], rng.integers(0, 25, n), 0)
    K = len(visits)
    base = rng.normal(45, 8, n)
    noise = rng.multivariate_normal(np.zeros(K), 30 * (0.5 * np.eye(K) + 0.5), n)
    y = base[:, None] * 0.7 + 15 + np.arange(K) + (arm == arms[0])[:, None] * np.linspace(1, 5, K) + noise
    y[rng.random(y.shape) < 0.12] = np.nan
    base[rng.random(n) < 0.05] = np.nan
    rows = [(participants["id"][i], "baseline", base[i]) for i in range(n)]
    rows += [(participants["id"][i], v, y[i, k]) for i in range(n) for k, v in enumerate(visits)]
    assessments = pd.DataFrame(rows, columns=["id", "timepoint", "score"]).assign(instrument="gaf_f")
    return {"participants": participants, "assessments": assessments}


STUDY = {
    "outcomes": ["gaf_f"],
    "primary": {"outcome": "gaf_f", "timepoint": "week16"},
    "visits": list(WEEKS),
    "arms": {"intervention": "Active", "control": "Placebo"},
    "visit_labels": {"week4": "Week 4", "week16": "Week 16"},
    "baseline_slope": "common",
    "covariates": ["site", "sex", "age"],
    "subgroups": ["sex"],
    "imputations": 5,
    "per_protocol_outcomes": ["gaf_f"],
    "subgroup_outcomes": ["gaf_f"],
    "subgroup_mi_outcomes": ["gaf_f"],
    "tipping_outcomes": ["gaf_f"],
    "delta_grid_sd": [-0.5, 0.5],
    "random_intercept_outcomes": ["gaf_f"],
    "diagnostics_outcomes": ["gaf_f"],
    "diagnostics_figures": "all",
    "within_group_outcomes": ["gaf_f"],
    "subscale_ancova_outcomes": [],
    "subscale_itt_outcomes": [],
    "attendance_outcomes": ["gaf_f"],
}


@pytest.fixture(scope="module")
def tables():
    return simulate_study()


@pytest.fixture(scope="module")
def stage(tables):
    return with_section(run_trial_stage(tables, STUDY, seed=3))


def _texts(result) -> list[str]:
    """Every text a reader sees: table cells and column names, the section HTML, the summary, the flags and
    every text drawn in a figure."""
    out = [result.html, result.summary, *result.flags]
    for frame in result.tables.values():
        out += [str(c) for c in frame.columns]
        for col in frame.columns:
            out += [v for v in frame[col] if isinstance(v, str)]
    for fig in result.figures.values():
        out += [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    return out


def test_a_four_visit_active_placebo_trial_runs_through_the_stage(stage):
    # the only flag: the participants the reference-based estimand leaves out, as its table counts them
    left_out = int(stage.tables["trial_estimand_results"]["n_excluded"].iloc[0])
    assert [f for f in stage.flags if f"{left_out} participant(s) left out of the analysis" not in f] == []
    assert len(stage.flags) == (1 if left_out else 0), stage.flags
    expected = {
        "trial_itt_contrasts",
        "trial_itt_adjusted_means",
        "trial_likelihood_mmrm",
        "trial_random_intercept_lmm",
        "trial_complete_case",
        "trial_descriptives",
        "trial_table3",
        "trial_per_protocol",
        "trial_subgroup_interaction_cc",
        "trial_subgroup_interaction_mi",
        "trial_tipping_grid",
        "trial_diagnostics",
        "trial_within_group_change",
        "trial_attendance",
        "trial_cace",
    }
    assert expected <= set(stage.tables)
    itt = stage.tables["trial_itt_contrasts"]
    assert itt["timepoint"].tolist() == list(WEEKS)  # the visit codes, in order
    assert itt["quantity"].tolist() == [f"Active - Placebo at {v}" for v in ("Week 4", "week8", "week12", "Week 16")]
    assert itt.loc[itt["role"] == "primary", "timepoint"].tolist() == ["week16"]
    assert {"n_active", "n_placebo"} <= set(itt.columns)
    means = stage.tables["trial_itt_adjusted_means"]
    assert len(means) == 8 and set(means["arm"]) == {"Active", "Placebo"}
    assert {f"itt_{v}_mean_active" for v in WEEKS} <= set(stage.tables["trial_table3"].columns)
    desc = stage.tables["trial_descriptives"]
    assert desc["timepoint"].drop_duplicates().tolist() == ["baseline", *WEEKS]
    assert stage.tables["trial_tipping_grid"]["timepoint"].eq("week16").all()  # the primary visit
    assert stage.tables["trial_subgroup_interaction_cc"]["timepoint"].eq("week16").all()  # null = the last visit
    assert stage.record["settings"]["attendance_timepoint"] == "week16"
    change = stage.tables["trial_within_group_change"]
    assert change["arm"].tolist() == ["Active", "Placebo", "Active - Placebo"]
    assert change["quantity"].iloc[0] == "change Week 16 - Week 4, Active"
    diag = stage.tables["trial_diagnostics"]
    assert set(diag["timepoint"]) == {"+".join(WEEKS), *WEEKS}
    assert "trial_itt_forest" in stage.figures and "trial_tipping_gaf_f" in stage.figures


def test_nothing_printed_names_the_imr_trial(stage):
    texts = _texts(stage)
    leaks = sorted({m.group(0) for t in texts for m in LEAK.finditer(t)})
    assert not leaks, leaks
    columns = sorted({c for f in stage.tables.values() for c in map(str, f.columns) if LEAK_COLUMN.search(c)})
    assert not columns, columns
    assert "Active - Placebo" in stage.summary and "Active minus Placebo" in stage.html
    assert "Week 4, week8, week12 and Week 16" in stage.html  # the MMRM's visits, by their labels


def test_the_common_slope_is_one_baseline_column(stage):
    method = stage.tables["trial_random_intercept_lmm"]["method"].iloc[0]
    assert "arm:time + baseline +" in method
    assert "baseline (one common slope)" in stage.html
    assert "one common baseline slope" in stage.tables["trial_diagnostics"]["method"].iloc[0]


def test_arm_labels_are_printed_and_codes_kept(tables):
    settings = {
        **STUDY,
        "arms": {"intervention": "Active", "control": "Placebo", "labels": {"Active": "Drug X", "Placebo": "Dummy"}},
        "tipping_outcomes": [],
        "subgroup_mi_outcomes": [],
        "diagnostics_outcomes": [],
        "random_intercept_outcomes": [],
    }
    result = with_section(run_trial_stage(tables, settings, seed=3))
    itt = result.tables["trial_itt_contrasts"]
    assert itt["quantity"].iloc[0] == "Drug X - Dummy at Week 4"
    assert set(result.tables["trial_itt_adjusted_means"]["arm"]) == {"Active", "Placebo"}  # codes in the data
    assert "Drug X minus Dummy" in result.html and "Drug X - Dummy on each instrument" in result.summary
    assert "(compliance in Drug X" in result.summary


def test_no_sessions_column_skips_the_attendance_analyses_with_one_flag():
    tables = simulate_study(n=60, sessions=False)
    settings = {**STUDY, "tipping_outcomes": [], "subgroup_mi_outcomes": [], "diagnostics_outcomes": []}
    result = run_trial_stage(tables, settings, seed=3)
    assert [f for f in result.flags if "sessions_attended" in f] == [
        "the participants table has no sessions_attended column: the per-protocol, attendance and CACE analyses "
        "are not run"
    ]
    assert not {"trial_per_protocol", "trial_attendance", "trial_cace"} & set(result.tables)
    assert "trial_itt_contrasts" in result.tables


def test_one_visit_is_a_design_too(tables):
    design = StudyDesign(visits=("week16",), intervention="Active", control="Placebo")
    one = {**tables, "assessments": tables["assessments"].loc[lambda a: a["timepoint"].isin(["baseline", "week16"])]}
    frame = trial.outcome_frame(one["participants"], one["assessments"], "gaf_f", design=design, columns=COLUMNS)
    assert [c for c in frame.columns if c in ("baseline", *WEEKS)] == ["baseline", "week16"]
    imp = trial.impute_outcome(frame, covariates=["site", "sex", "age"], m=3, seed=1, design=design)
    itt = trial.itt_mi_mmrm(frame, covariates=["site", "sex", "age"], imputation=imp, design=design)
    assert itt.contrasts["timepoint"].tolist() == ["week16"] and np.isfinite(itt.contrasts["estimate"]).all()
    like = trial.likelihood_mmrm(frame, covariates=["site", "sex", "age"], design=design)
    assert like.sigma.shape == (1, 1)
    with pytest.raises(AnalysisError, match="one post-baseline visit"):
        trial_extra.within_group_change(frame, design=design)


@pytest.mark.parametrize("slope", ["separate", "common"])
def test_itt_on_complete_data_is_the_likelihood_mmrm(tables, slope):
    """With nothing to impute every completed data set is the observed one: the pooled ITT contrasts are the
    likelihood MMRM's, for either baseline slope (the baseline columns of each completed design are rebuilt)."""
    design = StudyDesign(visits=WEEKS, intervention="Active", control="Placebo", baseline_slope=slope)
    frame = trial.outcome_frame(tables["participants"], tables["assessments"], "gaf_f", design=design, columns=COLUMNS)
    frame = frame.dropna(subset=["baseline", *WEEKS]).reset_index(drop=True)
    covs = ["site", "sex", "age"]
    imp = trial.impute_outcome(frame, covariates=covs, m=2, seed=1, design=design)
    itt = trial.itt_mi_mmrm(frame, covariates=covs, imputation=imp, design=design)
    like = trial.likelihood_mmrm(frame, covariates=covs, design=design)
    np.testing.assert_allclose(itt.contrasts["estimate"], like.contrasts["estimate"], rtol=1e-9)
    np.testing.assert_allclose(itt.contrasts["se"], like.contrasts["se"], rtol=1e-7)
    baseline_columns = [c for c in like.columns if c.startswith("baseline")]
    assert baseline_columns == (["baseline"] if slope == "common" else [f"baseline:time[{v}]" for v in WEEKS])


def test_renaming_codes_changes_text_not_numbers(tables):
    """The same data with other arm and visit codes: the same numbers, the new names."""
    design = StudyDesign(visits=WEEKS, intervention="Active", control="Placebo")
    names = dict(zip(WEEKS, ("v1", "v2", "v3", "v4")))
    other = StudyDesign(visits=tuple(names.values()), intervention="B", control="A", baseline="screen")
    renamed_p = tables["participants"].assign(arm=tables["participants"]["arm"].map({"Active": "B", "Placebo": "A"}))
    renamed_a = tables["assessments"].assign(timepoint=tables["assessments"]["timepoint"].replace(names))
    renamed_a["timepoint"] = renamed_a["timepoint"].replace({"baseline": "screen"})
    covs = ["site", "sex", "age"]
    a = trial.complete_case(
        trial.outcome_frame(tables["participants"], tables["assessments"], "gaf_f", design=design, columns=COLUMNS),
        covariates=covs,
        design=design,
    )
    b = trial.complete_case(
        trial.outcome_frame(renamed_p, renamed_a, "gaf_f", design=other, columns=COLUMNS),
        covariates=covs,
        design=other,
    )
    np.testing.assert_array_equal(a[1]["estimate"], b[1]["estimate"])
    np.testing.assert_array_equal(a[0]["mean"], b[0]["mean"])
    assert b[0]["timepoint"].drop_duplicates().tolist() == ["screen", "v1", "v2", "v3", "v4"]
    assert b[1]["quantity"].iloc[0] == "B - A at v1" and {"n_b", "n_a"} <= set(b[1].columns)


def test_the_default_design_is_the_imr_trials():
    assert StudyDesign.from_settings(section_settings("trial")) == DEFAULT_DESIGN
    assert DEFAULT_DESIGN.arms == ("IMR", "TAU") and DEFAULT_DESIGN.all_visits == ("baseline", "post", "fu12")
    assert DEFAULT_DESIGN.contrast_label == "IMR - TAU" and DEFAULT_DESIGN.baseline_slope == "separate"
    assert DEFAULT_DESIGN.visits_text == "post-intervention and 12-month follow-up"


def test_default_design_given_explicitly_gives_the_same_numbers(default_clean_tables):
    """The settings naming the default design (and a null attendance visit) are the defaults: identical tables."""
    fast = {"outcomes": ["gaf_f"], "imputations": 4, "subgroup_mi_outcomes": [], "tipping_outcomes": []}
    explicit = {
        **fast,
        "visits": ["post", "fu12"],
        "arms": {"intervention": "IMR", "control": "TAU"},
        "baseline_slope": "separate",
        "attendance_timepoint": "fu12",
    }
    a, b = run_trial_stage(default_clean_tables, fast, seed=2), run_trial_stage(default_clean_tables, explicit, seed=2)
    assert set(a.tables) == set(b.tables)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True)
    itt = a.tables["trial_itt_contrasts"]
    assert itt["quantity"].tolist() == ["IMR - TAU at post", "IMR - TAU at fu12"]
    assert {"n_imr", "n_tau"} <= set(itt.columns)


def test_consort_and_baseline_table_follow_the_design(tables):
    design = StudyDesign(visits=WEEKS, intervention="Active", control="Placebo", arm_labels={"Placebo": "Sham"})
    flow = consort_counts(
        tables["participants"], tables["assessments"], primary_timepoint="week16", design=design
    ).set_index("stage")
    assert list(flow.columns) == ["Active", "Sham"]
    assert [s for s in flow.index if s.startswith("Assessed")] == [f"Assessed at {v}" for v in WEEKS]
    assert "Lost at week16" in flow.index and "Attended no Active session" in flow.index
    assert flow.loc["Randomised and allocated"].tolist() == [45, 45]
    base = baseline_table(tables["participants"], tables["assessments"], ("gaf_f",), {}, design=design)
    assert list(base.columns) == ["characteristic", "Active", "Sham"]
    assert not any(LEAK.search(t) for t in [*flow.index, *base["characteristic"]])


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"visits": ["w1", "w2"]}, "trial.primary.timepoint"),  # the default primary visit 'post' is not a visit
        (
            {"visits": ["w1", "w2"], "primary": {"timepoint": "w2"}, "subgroup_timepoint": "fu12"},
            "trial.subgroup_timepoint",
        ),
        ({"arms": {"intervention": "A", "control": "A"}}, "trial.arms.control"),
        ({"arms": {"labels": {"DRUG": "Drug"}}}, "trial.arms.labels"),
        ({"visit_labels": {"week9": "Week 9"}}, "trial.visit_labels"),
        ({"visits": ["post", "baseline"]}, "trial.visits"),
        ({"baseline_slope": "random"}, "trial.baseline_slope"),
    ],
)
def test_design_settings_are_checked_naming_the_key(raw, key):
    with pytest.raises(SettingsError) as err:
        section_settings("trial", raw)
    assert key in err.value.keys, str(err.value)


# --------------------------------------------------------------------------------------------------
# K = 4 MMRM against nlme::gls
# --------------------------------------------------------------------------------------------------

REFERENCE = json.loads((DATA / "k_visit_mmrm_reference.json").read_text())


def _k_visit_frame() -> pd.DataFrame:
    long = pd.read_csv(DATA / "k_visit_trial.csv")
    wide = long.pivot(index="id", columns="visit", values="y").reset_index()
    first = long.groupby("id", sort=False)[["arm", "baseline"]].first().reset_index()
    return first.merge(wide, on="id")


@pytest.mark.parametrize("slope", ["common", "separate"])
def test_k_visit_mmrm_matches_nlme_gls(slope):
    """Active - Placebo per visit (estimate, SE) of the K = 4 MMRM (unstructured 4 x 4 covariance, REML), common
    (y ~ baseline + arm * visit) or separate (y ~ baseline * visit + arm * visit) baseline slope, against R.
    R's gls stops ~1e-6 (relative) short of the REML maximum on these data; the reference's ``optimum`` is the
    same linear functions at the exact maximum (Newton steps on the written-out REML log-likelihood from the gls
    estimate), pinned to 1e-6. gls as reported is within 5e-6 (its shortfall, stated in the reference)."""
    ref = REFERENCE[slope]
    design = StudyDesign(
        visits=tuple(REFERENCE["visits"]), intervention="Active", control="Placebo", baseline_slope=slope
    )
    fit = trial.likelihood_mmrm(_k_visit_frame(), covariates=(), design=design)
    assert fit.converged and fit.n_participants == ref["n_participants"] and fit.n_observations == ref["n_observations"]
    assert fit.contrasts["timepoint"].tolist() == REFERENCE["visits"]
    for key in ("estimate", "se"):
        np.testing.assert_allclose(fit.contrasts[key], ref["optimum"][key], rtol=1e-6)
        np.testing.assert_allclose(fit.contrasts[key], ref["gls"][key], rtol=5e-6)
    np.testing.assert_allclose(fit.sigma, ref["optimum"]["sigma"], rtol=1e-6)
    assert fit.reml_loglik == pytest.approx(ref["optimum"]["reml_loglik"], abs=1e-7)
    assert fit.sigma.shape == (4, 4)
    baseline_columns = [c for c in fit.columns if c.startswith("baseline")]
    assert len(baseline_columns) == (1 if slope == "common" else 4)


def test_common_and_separate_slopes_differ_on_these_data():
    """The data were made with a baseline slope falling over the visits: the two models are not the same fit."""
    a, b = (np.array(REFERENCE[s]["optimum"]["estimate"]) for s in ("common", "separate"))
    assert np.max(np.abs(a - b)) > 0.05


def test_design_is_frozen_and_checked():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_DESIGN.visits = ("a",)
    with pytest.raises(ValueError, match="at least one post-baseline visit"):
        StudyDesign(visits=())
