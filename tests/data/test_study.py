"""The study spec: a user's export mapped to the canonical tables by a hand-written spec; check and clean with
the study's design; every bad spec refused with one line naming key, file and the nearest columns; the shipped
antidepressant example."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from conftest import EXAMPLES
from imrstats.data.check import check_tables, has_errors
from imrstats.data.clean import clean_tables
from imrstats.data.instruments import load_registry
from imrstats.data.stage import read_inputs
from imrstats.data.study import load_study, study_registry, validate_spec
from imrstats.errors import InputError, SettingsError
from imrstats.trial.design import DEFAULT_DESIGN

ANTIDEPRESSANT = EXAMPLES / "antidepressant"

SPEC = """\
study: IMR trial, Region North
data:
  files: trial.sav
  layout: wide
id: PID
arm:
  column: GROUP
  intervention: 1
  control: Usual care
  labels: {intervention: IMR, control: TAU}
site: CENTRE
covariates:
  - {column: SEX, as: sex, recode: {1: male, 2: female}}
  - {column: AGE, as: age}
  - column: DIAG
    as: diagnosis
    recode: {"F20*": schizophrenia, "F25*": schizoaffective, "F31*": bipolar, "*": other}
visits:
  - {name: t0, baseline: true, time: 0, label: Baseline}
  - {name: t1, time: 39, label: 9 months}
  - {name: t2, time: 52, label: 12 months}
outcomes:
  gaf_f:
    columns: {t0: gaf_f_t0, t1: gaf_f_t1, t2: gaf_f_t2}
  qol:
    columns: {t0: qol_t0, t2: qol_t2}
instruments:
  qol:
    name: Quality of life, 10 items
    min: 10
    max: 50
    higher_is_better: true
    integer: true
sessions_attended: SESSIONS
missing_codes:
  all: [-99]
  columns: {AGE: [999]}
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_trial(folder: Path, *, arms=(1.0, 2.0), qol_max=50.0) -> pd.DataFrame:
    """A 12-participant SPSS export: GROUP 1/2 labelled IMR / Usual care, SEX 1/2 unlabelled, ICD-10 codes,
    GAF-F at t0-t2 (-99 missing twice), QoL at t0 and t2, AGE 999 once."""
    n = 12
    frame = pd.DataFrame(
        {
            "PID": [f" {1000 + i}" if i == 0 else float(1000 + i) for i in range(n)],
            "GROUP": [arms[i % len(arms)] for i in range(n)],
            "CENTRE": ["north", "south", "east"] * 4,
            "SEX": [1.0, 2.0] * 6,
            "AGE": [30.0 + i for i in range(n)],
            "DIAG": ["F20.0", "F25.1", "F31.0", "F60.3"] * 3,
            "SESSIONS": [10.0 if arms[i % len(arms)] == 1.0 else 0.0 for i in range(n)],
            "gaf_f_t0": [40.0 + i for i in range(n)],
            "gaf_f_t1": [45.0 + i for i in range(n)],
            "gaf_f_t2": [50.0 + i for i in range(n)],
            "qol_t0": [20.0 + i for i in range(n)],
            "qol_t2": [25.0 + i for i in range(n)],
        }
    )
    frame["PID"] = frame["PID"].astype(str).str.replace(".0", "", regex=False)
    frame.loc[3, "gaf_f_t1"] = -99.0
    frame.loc[7, "gaf_f_t2"] = -99.0
    frame.loc[5, "AGE"] = 999.0
    frame.loc[9, "qol_t2"] = qol_max
    pyreadstat.write_sav(
        frame, str(folder / "trial.sav"), variable_value_labels={"GROUP": {1.0: "IMR", 2.0: "Usual care"}}
    )
    return frame


def spec_file(folder: Path, text: str = SPEC, name: str = "study.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_a_hand_written_spec_maps_the_export(tmp_path):
    write_trial(tmp_path)
    before = sha256(tmp_path / "trial.sav")
    study = load_study(spec_file(tmp_path))
    part, assess = study.participants, study.assessments
    assert list(part.columns[:7]) == ["id", "arm", "site", "sex", "age", "diagnosis", "sessions_attended"]
    assert list(part["id"]) == [str(1000 + i) for i in range(12)]  # " 1000" trimmed
    assert list(part["arm"]) == ["IMR", "Usual care"] * 6  # raw code 1 and label "Usual care" both map
    assert list(part["sex"]) == ["male", "female"] * 6
    assert list(part["diagnosis"]) == ["schizophrenia", "schizoaffective", "bipolar", "other"] * 3
    assert pd.isna(part.loc[5, "age"]) and part.loc[4, "age"] == 34.0
    assert list(part["sessions_attended"]) == [10, 0] * 6
    assert study.covariates == ("sex", "age", "diagnosis")
    # the design: the decoded arm codes, the visits, labels and times
    d = study.design
    assert (d.intervention, d.control, d.baseline, d.visits) == ("IMR", "Usual care", "t0", ("t1", "t2"))
    assert d.arm_labels == {"IMR": "IMR", "Usual care": "TAU"} and d.contrast_label == "IMR - TAU"
    assert d.visit_labels["t1"] == "9 months" and d.visit_times == {"t0": 0.0, "t1": 39.0, "t2": 52.0}
    # assessments: gaf_f at three visits, qol at two; -99 blanked
    assert len(assess) == 12 * 5 and study.outcomes == ("gaf_f", "qol")
    assert list(assess["timepoint"].iloc[:5]) == ["t0", "t0", "t1", "t2", "t2"]
    assert list(assess["instrument"].iloc[:5]) == ["gaf_f", "qol", "gaf_f", "gaf_f", "qol"]
    assert int(assess["score"].isna().sum()) == 2
    # the registry extended by the spec's instrument; the package's own registry is untouched
    assert study.registry["qol"].range_text == "10-50" and "qol" not in load_registry()
    # the log: codes blanked (file, row, column, id), value labels decoded, recodes counted
    log = study.log
    codes = log[log["rule"].str.startswith("missing code")]
    assert sorted(zip(codes["row"], codes["column"], codes["id"])) == [
        (4, "gaf_f_t1", "1003"),
        (6, "AGE", "1005"),
        (8, "gaf_f_t2", "1007"),
    ]
    assert log["rule"].str.contains("arm value 1 read as arm 'IMR'").any()
    assert log["rule"].str.contains(r"recode pattern F20\*: 3 rows").any()
    assert not has_errors(check_tables(study.tables, design=study.design, registry=study.registry))
    assert sha256(tmp_path / "trial.sav") == before  # read, never written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml", "trial.sav"]  # nothing written


def test_clean_with_the_study_design_orders_its_visits(tmp_path):
    write_trial(tmp_path)
    study = load_study(spec_file(tmp_path))
    result = clean_tables(study.tables, design=study.design, registry=study.registry)
    cleaned = result.tables["assessments"]
    first = cleaned[cleaned["id"] == "1000"]
    assert list(first["timepoint"]) == ["t0", "t0", "t1", "t2", "t2"]
    assert set(result.tables["participants"]["arm"]) == {"IMR", "Usual care"}
    with pytest.raises(InputError, match="nothing was cleaned"):
        clean_tables(study.tables, registry=study.registry)  # without the design: t0 is not a visit


def test_check_with_a_design_names_its_own_arms(tmp_path):
    write_trial(tmp_path)
    study = load_study(spec_file(tmp_path))
    tables = study.tables
    tables["participants"].loc[0, "arm"] = "TAU"
    tables["participants"].loc[1, "sessions_attended"] = 3
    problems = check_tables(tables, design=study.design, registry=study.registry)
    rules = {(p.row, p.column, p.rule) for p in problems if p.severity == "error"}
    assert (1, "arm", "code: allowed values are IMR, Usual care") in rules
    assert (2, "sessions_attended", "consistency: a Usual care participant cannot have attended IMR sessions") in rules
    # a declared instrument's range is checked by check too, given the study's registry
    tables = study.tables
    tables["assessments"].loc[1, "score"] = 60.0
    problems = check_tables(tables, design=study.design, registry=study.registry)
    assert any(p.column == "score" and p.rule == "range: qol scores lie in 10-50" for p in problems)


def test_check_defaults_to_the_imr_trial():
    """Without a design, check and clean are what they were: the default design gives the same problem list."""
    tables = read_inputs([EXAMPLES / "dirty_csv"])
    codes = {"assessments": [-99, -999, 999], "participants": [-99, -999]}
    assert check_tables(tables, missing_codes=codes) == check_tables(
        tables, missing_codes=codes, design=DEFAULT_DESIGN, registry=load_registry()
    )


# ---------------------------------------------------------------------------------------------
# Bad specs: one line each, naming key, file and the nearest columns; nothing written


def load_error(tmp_path, text, error=SettingsError):
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(error) as info:
        load_study(spec_file(tmp_path, text))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(before) | {"study.yaml"})
    return str(info.value)


def test_a_column_the_file_lacks_names_key_file_and_nearest_columns(tmp_path):
    write_trial(tmp_path)
    message = load_error(
        tmp_path, SPEC.replace("t1: gaf_f_t1", "t1: gaf_f_t01").replace("column: GROUP", "column: GRUOP")
    )
    lines = message.splitlines()
    assert lines[0] == f"{tmp_path / 'study.yaml'}: 2 settings problems:"
    by_key = {line.strip().split(": ", 1)[0]: line for line in lines[1:]}
    assert "column 'GRUOP' is not in file trial.sav; nearest: GROUP" in by_key["arm.column"]
    line = by_key["outcomes.gaf_f.columns.t1"]
    assert "column 'gaf_f_t01' is not in file trial.sav; nearest: gaf_f_t1" in line
    assert "gaf_f_t0" in line.split("nearest: ")[1]


def test_one_missing_column_is_one_line(tmp_path):
    write_trial(tmp_path)
    message = load_error(tmp_path, SPEC.replace("column: AGE", "column: age"))
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'study.yaml'}: covariates[1].column: column 'age' is not in file")
    assert "column 'age' is not in file trial.sav; nearest: AGE" in message


def test_arm_values_not_mapped_are_named_with_their_counts(tmp_path):
    write_trial(tmp_path, arms=(1.0, 2.0, 3.0))
    message = load_error(tmp_path, SPEC, InputError)
    assert "\n" not in message
    assert message.startswith("trial.sav, row 3, column 'GROUP': arm value(s) '3' (4 participants, 4 rows)")
    assert "arm.intervention (1)" in message and "arm.exclude" in message
    study = load_study(spec_file(tmp_path, SPEC.replace("  labels:", "  exclude: [3]\n  labels:")))
    assert len(study.participants) == 8
    assert study.log["rule"].str.contains(r"participants dropped: arm listed under arm.exclude \(4 participants").any()
    assert study.log["rule"].str.contains("rows not used: 4 rows of 4 ids").any()


@pytest.mark.parametrize(
    "old, new, key, words",
    [
        ("time: 39,", "time: 60,", "visits[2].time", "visit 't2' at time 52 is not after 't1' at 60"),
        ("{name: t2,", "{name: t1,", "visits[2].name", "visit 't1' is listed twice (also visits[1])"),
        ("{name: t0, baseline: true,", "{name: t0,", None, None),
        ("{name: t1, time: 39,", "{name: t1, baseline: true, time: 39,", "visits", "2 visits are marked baseline"),
    ],
)
def test_visits_out_of_order_or_duplicated(tmp_path, old, new, key, words):
    write_trial(tmp_path)
    if key is None:  # no baseline flag: the first visit is the baseline
        assert load_study(spec_file(tmp_path, SPEC.replace(old, new))).design.baseline == "t0"
        return
    message = load_error(tmp_path, SPEC.replace(old, new))
    assert f"{key}: {words}" in message


def test_a_baseline_listed_after_another_visit_is_out_of_order(tmp_path):
    write_trial(tmp_path)
    text = SPEC.replace(
        "  - {name: t0, baseline: true, time: 0, label: Baseline}\n  - {name: t1, time: 39, label: 9 months}\n",
        "  - {name: t1, label: 9 months}\n  - {name: t0, baseline: true, label: Baseline}\n",
    ).replace("  - {name: t2, time: 52, label: 12 months}", "  - {name: t2, label: 12 months}")
    message = load_error(tmp_path, text)
    assert "visits[1].baseline: the baseline visit 't0' is listed after 't1'" in message


def test_a_value_outside_a_declared_instruments_range(tmp_path):
    write_trial(tmp_path, qol_max=60.0)
    message = load_error(tmp_path, SPEC, InputError)
    assert "\n" not in message
    assert message.startswith("trial.sav, row 10, column 'qol_t2', value 60.0: outside qol's valid range 10-50")
    assert "rule: scores lie in the instrument's range" in message and "missing_codes" in message


def test_unknown_keys_are_named_by_their_path(tmp_path):
    write_trial(tmp_path)
    message = load_error(
        tmp_path, SPEC.replace("  intervention: 1", "  interventon: 1").replace("sessions_attended:", "sessions:")
    )
    assert "arm.interventon: unknown key; valid keys here: column, control, exclude, intervention, labels" in message
    assert "arm.intervention: missing" in message
    assert "sessions: unknown key" in message
    message = load_error(tmp_path, SPEC.replace("{column: AGE, as: age}", "{column: AGE, as: age, recod: {}}"))
    assert "covariates[1].recod: unknown key" in message


def test_spec_problems_the_schema_cannot_see(tmp_path):
    write_trial(tmp_path)
    message = load_error(tmp_path, SPEC.replace("  gaf_f:\n", "  gaf_f:\n    instrument: gaf_ff\n"))
    assert "outcomes.gaf_f.instrument: 'gaf_ff' is neither in the instrument registry" in message
    assert "nearest: gaf_f" in message
    message = load_error(tmp_path, SPEC.replace("{t0: qol_t0, t2: qol_t2}", "{t0: qol_t0, t3: qol_t2}"))
    assert "outcomes.qol.columns.t3: 't3' is not a visit; visits: t0, t1, t2" in message
    message = load_error(
        tmp_path,
        SPEC.replace(
            "instruments:\n", "instruments:\n  gaf_f: {name: GAF, min: 0, max: 100, higher_is_better: true}\n"
        ),
    )
    assert "instruments: instrument key(s) gaf_f already in the instrument registry" in message


def test_a_missing_data_file_and_an_empty_spec(tmp_path):
    message = load_error(tmp_path, SPEC)
    assert "data.files: file 'trial.sav' not found" in message
    message = load_error(tmp_path, "")
    assert "empty: a study spec needs data, id, arm, visits and outcomes" in message


def test_study_registry_adds_without_changing_the_package_registry():
    spec = validate_spec(
        {
            "data": {"files": "x.csv"},
            "id": "id",
            "arm": {"column": "arm", "intervention": "A", "control": "B"},
            "visits": [{"name": "pre"}, {"name": "post"}],
            "outcomes": {"sdq": {"columns": {"pre": "sdq_pre", "post": "sdq_post"}}},
            "instruments": {"sdq": {"name": "SDQ", "min": 0, "max": 40, "higher_is_better": False}},
        }
    )
    registry = study_registry(spec)
    assert registry["sdq"].direction_text == "lower is better" and registry["sdq"].short == "SDQ"
    assert set(registry) - {"sdq"} == set(load_registry()) and "sdq" not in load_registry()


# ---------------------------------------------------------------------------------------------
# Long files, several files


def test_long_file_with_its_own_participants_file(tmp_path):
    """A participants CSV (semicolons) and a visits CSV (long, decimal commas, a screening visit to ignore)."""
    (tmp_path / "people.csv").write_text("pid;arm;centre\n1;A;x\n2;B;y\n3;A;x\n4;B;y\n")
    (tmp_path / "visits.csv").write_text(
        "pid;wave;score\n1;0;10,5\n1;1;12\n2;0;11\n2;1;n/a\n3;0;9\n3;9;1\n4;0;13\n4;1;14\n5;0;20\n"
    )
    text = """\
data:
  files: [people.csv, {path: visits.csv, layout: long, decimal: ","}]
  visit_column: wave
  ignore_visits: [9]
id: pid
arm: {column: arm, intervention: A, control: B}
site: centre
visits:
  - {name: baseline, value: 0}
  - {name: week6, value: 1}
outcomes:
  hope: {column: score}
missing_codes:
  files: {visits.csv: [n/a]}
"""
    study = load_study(spec_file(tmp_path, text))
    assert list(study.participants["id"]) == ["1", "2", "3", "4"]
    assert list(study.participants["site"]) == ["x", "y", "x", "y"]
    scores = study.assessments.set_index(["id", "timepoint"])["score"]
    assert scores[("1", "baseline")] == 10.5 and np.isnan(scores[("2", "week6")])
    assert ("3", "week6") not in scores.index and len(study.assessments) == 7
    rules = list(study.log["rule"])
    assert any(r.startswith("missing code n/a set to missing") for r in rules)
    assert any(r.startswith("rows dropped: visit listed under data.ignore_visits (6)") for r in rules)
    assert any(r.startswith("rows not used: 1 rows of 1 ids") for r in rules)  # id 5 has no arm
    assert not has_errors(check_tables(study.tables, design=study.design, registry=study.registry))
    # a visit value the spec does not name, and a participant twice at one visit
    (tmp_path / "visits.csv").write_text("pid;wave;score\n1;0;10\n1;2;12\n1;2;13\n")
    with pytest.raises(InputError, match=r"visits.csv, row 2, column 'wave': visit value\(s\) '2' \(2 rows\)"):
        load_study(tmp_path / "study.yaml")
    (tmp_path / "visits.csv").write_text("pid;wave;score\n1;0;10\n1;1;12\n1;1;13\n")
    with pytest.raises(InputError, match=r"rows 2, 3, columns 'pid' and 'wave': participant '1' has 2 rows"):
        load_study(tmp_path / "study.yaml")


# ---------------------------------------------------------------------------------------------
# The shipped example


@pytest.mark.skipif(
    not (ANTIDEPRESSANT / "antidepressant.csv").exists(),
    reason="data/examples/antidepressant/antidepressant.csv is not in this checkout",
)
def test_the_antidepressant_example_loads():
    study = load_study(ANTIDEPRESSANT / "study.yaml")
    part, assess = study.participants, study.assessments
    assert len(part) == 172 and part["arm"].value_counts().to_dict() == {"PLACEBO": 88, "DRUG": 84}
    assert study.design.arms == ("DRUG", "PLACEBO") and study.design.contrast_label == "Drug - Placebo"
    assert study.design.all_visits == ("baseline", "week1", "week2", "week4", "week6")
    assert study.design.visit_times == {"baseline": 0.0, "week1": 1.0, "week2": 2.0, "week4": 4.0, "week6": 6.0}
    assert study.covariates == () and study.outcomes == ("hamd17",)
    assert not study.registry["hamd17"].higher_is_better and study.registry["hamd17"].range_text == "0-52"
    observed = assess.groupby("timepoint")["score"].count().to_dict()
    assert observed == {"baseline": 172, "week1": 172, "week2": 158, "week4": 149, "week6": 129}
    assert len(study.log) == 0  # nothing blanked, recoded or dropped
    raw = pd.read_csv(ANTIDEPRESSANT / "antidepressant.csv", dtype={"PATIENT": str})
    wide = assess.pivot(index="id", columns="timepoint", values="score")
    first = raw.drop_duplicates("PATIENT").set_index("PATIENT")
    np.testing.assert_array_equal(wide.loc[first.index, "baseline"], first["BASVAL"])
    week6 = raw[raw["VISIT"] == 7].set_index("PATIENT")["HAMDTL17"]
    np.testing.assert_array_equal(wide.loc[week6.index, "week6"], week6)
    assert not has_errors(check_tables(study.tables, design=study.design, registry=study.registry))


@pytest.mark.parametrize(
    "text, words",
    [
        ("- data\n- id\n", "(top level): a study spec must be a mapping of keys to values"),
        ("a: &x [1, 2]\nb: *x\n", "aliases are refused in a study spec"),
        (SPEC.replace("  files: trial.sav", "  files: {trial: trial.sav}"), "data.files: must be array or string"),
        (SPEC.replace("  layout: wide", "  layout: tall"), "data.layout: must be one of 'wide', 'long', got 'tall'"),
        (SPEC.replace("    min: 10\n", "    min: 60\n"), "instruments.qol: min 60 must be below max 50"),
    ],
)
def test_hostile_or_malformed_specs_are_one_settings_error(tmp_path, text, words):
    write_trial(tmp_path)
    message = load_error(tmp_path, text)
    assert words in message
