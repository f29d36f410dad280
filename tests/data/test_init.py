"""`imrstats init` on exports made as trial teams make them: init drafts a spec, `load_study` loads it on the
same file, and `check` (with the study's design and registry) finds no error in the canonical tables.

Each export is built here with the writer a team would use (pyreadstat for SPSS with value labels and
user-missing ranges, pandas.to_stata with value labels, a semicolon CSV with decimal commas, an Excel sheet,
Parquet); the assertions compare the canonical tables with what was written."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from exports import N, csv_semicolons, excel_six_visits, parquet_canonical_visits, spss_wide, stata_long

from imrstats.cli import main
from imrstats.data.check import check_tables, has_errors
from imrstats.data.study import load_study


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def init_load_check(datafile: Path, spec: Path, capsys):
    """init -> load_study -> check: the draft is written, loads on the same file, and check finds no error."""
    before = sha256(datafile)
    assert main(["init", str(datafile), "--out", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "the draft loads" in out, out
    study = load_study(spec)
    problems = check_tables(study.tables, design=study.design, registry=study.registry)
    assert not has_errors(problems), [str(p) for p in problems if p.severity == "error"]
    assert sha256(datafile) == before  # the export is never modified
    return study, spec.read_text()


def test_spss_wide_init_load_check(tmp_path, capsys):
    made = spss_wide(tmp_path)
    study, text = init_load_check(made["path"], tmp_path / "study.yaml", capsys)
    raw = made["frame"]
    part, assess = study.participants, study.assessments
    # arms: the value labels decoded, and the guess (IMR is the intervention) marked
    assert study.design.intervention == "IMR" and study.design.control == "Usual care"
    assert part["arm"].value_counts().to_dict() == {"IMR": N // 2, "Usual care": N // 2}
    assert "intervention: IMR  # guess:" in text
    assert list(part["id"]) == list(raw["PID"])
    # covariates decoded and recoded: Mand/Kvinde -> male/female, ICD-10 -> canonical diagnoses, sites by label
    expected_sex = raw["SEX"].map({1.0: "male", 2.0: "female"})
    assert list(part["sex"]) == list(expected_sex)
    expected_diag = (
        raw["DIAG"]
        .str[:3]
        .map({"F20": "schizophrenia", "F25": "schizoaffective", "F31": "bipolar", "F33": "depression", "F60": "other"})
    )
    assert list(part["diagnosis"]) == list(expected_diag)
    assert set(part["site"]) == {"Aarhus", "Odense", "Aalborg"}
    assert pd.isna(part.loc[6, "age"]) and part.loc[0, "age"] == raw.loc[0, "AGE"]
    assert part["sessions_attended"].sum() == raw["SESSIONS"].sum()
    # visits t0 (baseline), t1, t2; GAF-F matched to the registry, CGI-S declared with the observed range
    assert study.design.baseline == "t0" and study.design.visits == ("t1", "t2")
    assert set(study.outcomes) == {"gaf_f", "cgi_s"}
    assert (
        "cgi_s" in study.registry and study.registry["cgi_s"].min == raw[[f"cgi_s_t{t}" for t in range(3)]].min().min()
    )
    assert len(assess) == N * 3 * 2
    gaf = assess[assess["instrument"] == "gaf_f"].set_index(["id", "timepoint"])["score"]
    assert gaf[("AAR-0003", "t1")] != gaf[("AAR-0003", "t1")]  # -99 (declared user-missing) is NaN
    assert gaf[("AAR-0005", "t2")] != gaf[("AAR-0005", "t2")]  # -99 (not declared; init found it) is NaN
    assert gaf[("AAR-0001", "t0")] == raw.loc[0, "gaf_f_t0"]
    assert int(gaf.isna().sum()) == 5
    # every blanked code is a log row naming file, row and column
    blanked = study.log[study.log["rule"].str.startswith("missing code")]
    assert sorted(zip(blanked["column"], blanked["row"])) == sorted(
        [("gaf_f_t1", 3), ("gaf_f_t1", 10), ("gaf_f_t1", 18), ("gaf_f_t2", 5), ("gaf_f_t2", 31), ("AGE", 7)]
    )
    assert (blanked["file"] == "trial.sav").all()
    assert blanked[blanked["column"] == "gaf_f_t1"]["rule"].str.contains("declared user-missing").all()
    # the same tables fail the IMR trial's default codes: the design is what lets them pass
    default = check_tables(study.tables, registry=study.registry)
    assert any(p.column == "timepoint" and p.rule.startswith("code") for p in default)
    assert any(p.column == "arm" and p.rule.startswith("code") for p in default)


def test_stata_long_init_load_check(tmp_path, capsys):
    made = stata_long(tmp_path)
    study, text = init_load_check(made["path"], tmp_path / "study.yaml", capsys)
    raw = made["frame"]
    assert "layout: long" in text and "visit_column: visit" in text
    assert study.design.intervention == "CBT" and study.design.control == "Waitlist"
    assert study.design.all_visits == ("baseline", "week_4", "week_8", "week_12", "week_24")
    assert study.design.visit_labels["week_12"] == "Week 12"
    part, assess = study.participants, study.assessments
    assert len(part) == N and list(part["id"]) == [str(500 + i) for i in range(N)]
    assert part["arm"].value_counts().to_dict() == {"Waitlist": N // 2, "CBT": N // 2}
    # one row per observed participant x visit x outcome; missed visits are absent
    assert len(assess) == 2 * len(raw)
    counts = assess[assess["instrument"] == "bprs"].groupby("timepoint").size()
    assert (
        counts.to_dict()
        == raw.groupby("visit")
        .size()
        .rename({1: "baseline", 2: "week_4", 3: "week_8", 4: "week_12", 5: "week_24"})
        .to_dict()
    )
    bprs = study.registry["bprs"]  # declared with the observed range, its direction marked to confirm
    assert (bprs.min, bprs.max) == (raw["bprs"].min(), raw["bprs"].max())
    assert "higher_is_better: true  # guess: unknown from the data; CONFIRM" in text
    psp = assess[assess["instrument"] == "psp"]
    assert int(psp["score"].isna().sum()) == 2  # the two -9 codes
    assert "psp: [-9]  # guess: present and outside" in text
    assert set(part["sex"]) == {"female", "male"}


def test_csv_semicolons_decimal_commas_init_load_check(tmp_path, capsys):
    made = csv_semicolons(tmp_path)
    study, text = init_load_check(made["path"], tmp_path / "study.yaml", capsys)
    spec = yaml.safe_load(text)
    assert spec["data"]["sep"] == ";" and spec["data"]["decimal"] == ","
    assert study.design.intervention == "Intervention" and study.design.control == "Control"
    assert study.design.all_visits == ("bl", "w4", "w8")
    assert study.design.visit_times == {"bl": 0.0, "w4": 4.0, "w8": 8.0}
    hope = study.assessments[study.assessments["instrument"] == "hope"].pivot(
        index="id", columns="timepoint", values="score"
    )
    assert list(hope.index) == list(made["frame"]["Patient"])  # ids "001" keep their leading zeros
    np.testing.assert_allclose(hope["w4"].to_numpy(), made["hope"]["w4"])
    assert (hope["bl"] % 1 != 0).any()  # halves read through the decimal comma
    assert hope["w8"].isna().sum() == 2  # 999
    assert study.participants["age"].between(18, 60).all()


def test_excel_six_visits_init_load_check(tmp_path, capsys):
    made = excel_six_visits(tmp_path)
    study, text = init_load_check(made["path"], tmp_path / "study.yaml", capsys)
    assert study.design.baseline == "v1" and study.design.visits == ("v2", "v3", "v4", "v5", "v6", "v7")
    assert set(study.outcomes) == {"imrs_client", "wemwbs"}
    assert "imrs_client:  # guess: 'imrs_client' names the registry instrument" in text
    assert "wemwbs:  # guess: 'wemwbs' is not a registry instrument" in text
    assert study.design.intervention == "IMR" and study.design.control == "TAU"
    assess = study.assessments
    assert len(assess) == N * 7 * 2 and int(assess["score"].isna().sum()) == 1
    assert list(assess["timepoint"].iloc[:14]) == [f"v{v}" for v in range(1, 8) for _ in range(2)]


def test_parquet_canonical_visits_pass_the_default_check(tmp_path, capsys):
    made = parquet_canonical_visits(tmp_path)
    study, _ = init_load_check(made["path"], tmp_path / "study.yaml", capsys)
    assert study.design.all_visits == ("baseline", "post", "fu12")
    assert not has_errors(check_tables(study.tables))  # IMR vs TAU at baseline/post/fu12: the default codes


def test_init_never_overwrites_without_force(tmp_path, capsys):
    made = parquet_canonical_visits(tmp_path)
    spec = tmp_path / "study.yaml"
    spec.write_text("# my own spec\n")
    assert main(["init", str(made["path"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err and "--force" in err and str(spec) in err
    assert spec.read_text() == "# my own spec\n"
    assert main(["init", str(made["path"]), "--force"]) == 0
    assert "# guess:" in spec.read_text()


def test_init_refuses_the_data_file_and_a_missing_file(tmp_path, capsys):
    made = parquet_canonical_visits(tmp_path)
    before = sha256(made["path"])
    assert main(["init", str(made["path"]), "--out", str(made["path"]), "--force"]) == 2
    assert "the data file itself" in capsys.readouterr().err
    assert sha256(made["path"]) == before
    assert main(["init", str(tmp_path / "absent.sav")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("builder", [spss_wide, stata_long, csv_semicolons, excel_six_visits])
def test_every_guess_is_marked_with_a_reason(tmp_path, builder):
    from imrstats.data.spec_draft import draft_spec

    made = builder(tmp_path)
    draft = draft_spec(made["path"], tmp_path / "study.yaml")
    guesses = [line for line in draft.lines if "# guess:" in line]
    assert len(guesses) == draft.guesses > 3
    assert all(len(line.split("# guess:", 1)[1].strip()) > 10 for line in guesses)
    for key in ("id:", "  column:", "  intervention:", "  layout:"):
        assert any(line.startswith(key) and "# guess:" in line for line in draft.lines), key


def test_stata_long_export_through_init_and_the_trial_cli(tmp_path, capsys):
    """A Stata long file with its own visit names (Week 4 .. Week 24) and arms (CBT vs Waitlist): drafted by
    init, then `imrstats trial --study` analyses every outcome over the four post-baseline visits and prints
    the user's labels, never the IMR trial's."""
    import json

    made = stata_long(tmp_path)
    spec = tmp_path / "study.yaml"
    assert main(["init", str(made["path"]), "--out", str(spec)]) == 0
    capsys.readouterr()
    out_json = tmp_path / "trial.json"
    assert main(["trial", "--study", str(spec), "--imputations", "3", "--json", str(out_json)]) == 0
    stdout = capsys.readouterr().out
    assert "CBT - Waitlist" in stdout and "Week 24" in stdout and "Week 4" in stdout
    assert not any(word in stdout.split() for word in ("IMR", "TAU", "fu12", "post"))
    record = json.loads(out_json.read_text())
    assert record["settings"]["visits"] == ["week_4", "week_8", "week_12", "week_24"]
    assert record["settings"]["primary"] == {"outcome": record["settings"]["outcomes"][0], "timepoint": "week_24"}


def test_semicolon_csv_export_through_init_check_and_the_trial_cli(tmp_path, capsys):
    """A spreadsheet's CSV (semicolons, decimal commas, 999 for a missed rating, arms written out): drafted by
    init, checked through the spec, and analysed by `imrstats trial --study` with the export's own arm and visit
    names (the 999 codes are blanked on the way: test_csv_semicolons_decimal_commas_init_load_check)."""
    import json

    made = csv_semicolons(tmp_path)
    spec = tmp_path / "study.yaml"
    assert main(["init", str(made["path"]), "--out", str(spec)]) == 0
    assert main(["check", "--study", str(spec)]) == 0
    capsys.readouterr()
    out_json = tmp_path / "trial.json"
    assert main(["trial", "--study", str(spec), "--imputations", "3", "--json", str(out_json)]) == 0
    stdout = capsys.readouterr().out
    assert not any(word in stdout.split() for word in ("IMR", "TAU", "fu12"))
    record = json.loads(out_json.read_text())
    assert record["settings"]["outcomes"] == ["hope"]
    assert record["settings"]["arms"]["intervention"] in ("Intervention", "Control")
    assert len(record["settings"]["visits"]) == 2  # _w4 and _w8 after the _bl baseline
    assert record["settings"]["primary"]["timepoint"] == record["settings"]["visits"][-1]
