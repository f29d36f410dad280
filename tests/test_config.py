import re

import pytest
import yaml

from conftest import PROJECT
from imrstats.config import (
    config_schema,
    defaults,
    load_config,
    overlay,
    section_settings,
    stage_seed,
    step_seed,
    validate_config,
)
from imrstats.core.paths import DEFAULT_CONFIG
from imrstats.errors import InputError, SettingsError

TWO_KEYS = "trial: {imputations: 5}\nseed: 7\n"


def test_default_config_is_valid():
    config = load_config()
    assert config["data"]["source"] == "synthetic"
    assert isinstance(config["seed"], int)


def test_unknown_key_is_named(tmp_path):
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["simulate"]["trial"]["n_partcipants"] = 10
    with pytest.raises(InputError, match=r"simulate\.trial.*n_partcipants"):
        validate_config(config)


def test_wrong_type_is_named():
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["seed"] = "abc"
    with pytest.raises(SettingsError, match=r"^config: seed: must be an integer, got 'abc'$"):
        validate_config(config)


def test_every_problem_is_listed_at_once():
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["seed"] = -1
    config["clean"]["prorate"] = "yes"
    with pytest.raises(SettingsError) as err:
        validate_config(config)
    assert "\n  seed: must be >= 0, got -1" in str(err.value)
    assert "\n  clean.prorate: must be true or false, got 'yes'" in str(err.value)
    assert err.value.keys == ["clean.prorate", "seed"]


def test_true_effect_for_unknown_instrument():
    with pytest.raises(InputError, match="simulate.trial.true_effects.gaf_x"):
        load_config(overrides={"simulate": {"trial": {"true_effects": {"gaf_x": {"post": 1.0}}}}})


def test_directory_source_needs_input_dir():
    with pytest.raises(InputError, match="data.input_dir"):
        load_config(overrides={"data": {"source": "directory"}})


def test_every_config_key_is_documented():
    readme = (DEFAULT_CONFIG.parent / "README.md").read_text()

    def keys(node, prefix=""):
        for key, value in node.items():
            path = f"{prefix}{key}"
            yield path
            if isinstance(value, dict) and key not in (
                "sites",
                "true_effects",
                "service_types",
                "true_rate_ratios",
                "missing_codes",
                "attendance",
                "visit_missing",
                "outcomes",
                "primary",
                "prior_mu",
                "tau_prior",
            ):
                yield from keys(value, path + ".")

    missing = [k for k in keys(yaml.safe_load(DEFAULT_CONFIG.read_text())) if f"`{k}`" not in readme]
    assert not missing, f"undocumented config keys: {missing}"


# ---------------------------------------------------------------------------------------------
# One source of settings: defaults in the schema, an overlay of only the changed keys, one error type


def test_shipped_config_is_exactly_the_schema_defaults():
    """config/config.yaml (the documented default run) and the schema's defaults cannot drift apart."""
    assert yaml.safe_load(DEFAULT_CONFIG.read_text()) == defaults()
    assert load_config() == defaults()


def _properties(node, prefix=""):
    for key, sub in node.get("properties", {}).items():
        yield prefix + key, sub
        yield from _properties(sub, prefix + key + ".")


def test_every_key_has_its_default_in_the_schema():
    missing = [
        path
        for path, sub in _properties(config_schema())
        if "default" not in sub and path != "meta.bayes.implementation.tau_prior.nu"
    ]  # only for the log-t family; 5 in the code
    assert not missing, f"schema keys without a default: {missing}"


def test_a_two_key_file_is_overlaid_on_the_defaults(tmp_path):
    path = tmp_path / "two_keys.yaml"
    path.write_text(TWO_KEYS)
    config = load_config(path)
    expected = defaults()
    expected["trial"]["imputations"], expected["seed"] = 5, 7
    assert config == expected
    assert load_config(path, {"seed": 8})["seed"] == 8  # overrides (e.g. --seed) come last
    (tmp_path / "empty.yaml").write_text("# nothing changed\n")
    assert load_config(tmp_path / "empty.yaml") == defaults()
    (tmp_path / "commented.yaml").write_text("trial:\n  # imputations: 5\n")  # an empty section
    assert load_config(tmp_path / "commented.yaml") == defaults()


def test_overlay_merges_sections_and_replaces_free_form_mappings():
    config = load_config(
        overrides={
            "trial": {"primary": {"timepoint": "fu12"}},
            "meta": {"outcomes": {"hope": ["hope"]}, "bayes": {"prior_mu": {"scale": 2.0}}},
            "simulate": {"trial": {"true_effects": {"psp": {"post": 1.0}}}},
        }
    )
    assert config["trial"]["primary"] == {"outcome": "gaf_f", "timepoint": "fu12"}  # a section merges
    assert config["meta"]["bayes"]["prior_mu"] == {"loc": 0.0, "scale": 2.0}
    assert config["meta"]["outcomes"] == {"hope": ["hope"]}  # a free-form mapping replaces
    assert config["simulate"]["trial"]["true_effects"] == {"psp": {"post": 1.0}}
    assert config["trial"]["imputations"] == 100
    lists = overlay({"trial": {"outcomes": ["a", "b"]}}, {"trial": {"outcomes": ["c"]}})
    assert lists == {"trial": {"outcomes": ["c"]}}  # a list replaces


def test_section_settings_fill_a_partial_section():
    assert section_settings("trial") == defaults()["trial"]
    assert section_settings("trial", {"imputations": 5}) == {**defaults()["trial"], "imputations": 5}
    assert section_settings("meta.bayes", {"draws": 200})["draws"] == 200
    assert section_settings("meta", {"method": "FE"})["method"] == "EE"  # FE is the equal-effects model
    assert section_settings("services", {"covariates": ("site",)})["covariates"] == ["site"]
    with pytest.raises(KeyError):
        section_settings("trail")


@pytest.mark.parametrize(
    "section, raw, message",
    [
        ("trial", {"imputations": 1}, "trial.imputations: must be >= 2, got 1"),
        ("trial", {"imputation": 5}, "trial.imputation: unknown key; valid keys here: alpha, "),
        ("trial", {"outcomes": ["nope"]}, "trial.outcomes: ['nope'] not in the instrument registry"),
        (
            "trial",
            {"primary": {"timepoint": "baseline"}},
            "trial.primary.timepoint: 'baseline' is not one of the post-baseline visits ['post', 'fu12']",
        ),
        ("services", {"alpha": 1.5}, "services.alpha: must be < 1, got 1.5"),
        ("services", {"outcomes": ["admissions", "admissions"]}, "services.outcomes: lists an item twice"),
        (
            "implementation",
            {"suppress_small_cells": "yes"},
            "implementation.suppress_small_cells: must be true or false",
        ),
        ("audit", {"alpha": 5}, "audit.alpha: must be < 1, got 5"),
        ("meta", {"outcomes": {"x": "imrs_client"}}, "meta.outcomes.x: must be a list, got 'imrs_client'"),
        ("meta.bayes", {"chains": 1}, "meta.bayes.chains: must be >= 2, got 1"),
        (
            "meta.bayes",
            {"implementation": {"tau_prior": {"family": "gamma"}}},
            "meta.bayes.implementation.tau_prior.family: must be one of half_normal, ",
        ),
        ("evidence", {"label": " "}, "evidence.label: must not be empty or blank"),
    ],
)
def test_every_settings_error_is_one_type_naming_the_key_path(section, raw, message):
    with pytest.raises(SettingsError) as err:
        section_settings(section, raw)
    assert isinstance(err.value, InputError) and str(err.value).startswith(message)


def test_schema_enums_are_the_codes_choices():
    """The schema states the allowed values; the code that acts on them must know the same ones."""
    from imrstats.data.published import TIMEPOINTS, USES
    from imrstats.evidence.stage import ANALYSES, SD_SOURCES, TRIAL_TIMEPOINTS
    from imrstats.meta.bayes import PARAMETERIZATIONS, SHIPPED_TAU_PRIORS
    from imrstats.meta.stage import ESTIMATORS
    from imrstats.services.models import SELECTION_RULES
    from imrstats.trial import analyses
    from imrstats.trial.design import BASELINE_SLOPES
    from imrstats.trial.mmrm import DF_METHODS

    props = dict(_properties(config_schema()))
    defs = config_schema()["$defs"]

    def enum(path):
        return set(props[path].get("enum") or props[path]["items"]["enum"])

    assert enum("trial.df_method") == set(DF_METHODS)
    assert enum("trial.baseline_slope") == set(BASELINE_SLOPES)
    # the visits are the study's own (trial.visits): the timepoint settings are checked against them in code
    assert "enum" not in props["trial.primary.timepoint"] and "enum" not in props["trial.subgroup_timepoint"]
    assert section_settings("trial", {})["visits"] == list(analyses.TIMEPOINTS)
    assert enum("services.selection_rule") == set(SELECTION_RULES)
    assert enum("meta.bayes.parameterization") == set(PARAMETERIZATIONS)
    assert set(defs["tau_prior_key"]["enum"]) == set(SHIPPED_TAU_PRIORS)
    assert enum("meta.timepoints") == set(TIMEPOINTS) and enum("meta.uses") == set(USES)
    assert enum("meta.method") == set(ESTIMATORS) | {"FE"}
    assert enum("evidence.analyses") == set(ANALYSES) and enum("evidence.timepoints") == set(TRIAL_TIMEPOINTS)
    assert enum("evidence.standardise_by") == set(SD_SOURCES)


def test_seeds_come_from_the_config():
    from imrstats.data.simulate import derive_seed

    assert stage_seed("trial") == derive_seed(defaults()["seed"], "stage.trial")
    assert stage_seed("meta", {"seed": 7}) == step_seed("stage.meta", {"seed": 7}) == derive_seed(7, "stage.meta")
    stage_code = [p for p in (PROJECT / "src" / "imrstats").rglob("*.py") if p.name != "config.py"]
    offenders = [
        str(p.relative_to(PROJECT))
        for p in stage_code
        if re.search(r"^(DEFAULT_SEED|DEFAULT_SETTINGS|DEFAULT_BAYES_SETTINGS)\b", p.read_text(), re.M)
    ]
    assert not offenders, f"settings or seeds defined outside the config schema: {offenders}"


# ---------------------------------------------------------------------------------------------
# Where the pipeline writes and reads (outputs stay in their folder; stages run only on the inputs they need):
# checked with the settings, so the CLI and snakemake both refuse before any file is written


def _refusal(overrides: dict) -> str:
    with pytest.raises(SettingsError) as err:
        load_config(overrides=overrides)
    return str(err.value)


def _small_folder(folder, tables=("participants", "assessments")):
    folder.mkdir(parents=True)
    for table in tables:
        (folder / f"{table}.csv").write_bytes(
            (PROJECT / "data" / "examples" / "small_csv" / f"{table}.csv").read_bytes()
        )
    return folder


@pytest.mark.parametrize(
    ("results_dir", "cause"),
    [
        ("/", "'/' is the filesystem root"),
        ("../../x", "lies outside the working directory"),
        (".", "is the working directory itself"),
        ("/tmp/imrstats-elsewhere", "lies outside the working directory"),
        ("a/../../b", "lies outside the working directory"),
    ],
)
def test_results_dir_must_lie_inside_the_working_directory(tmp_path, monkeypatch, results_dir, cause):
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    message = _refusal({"results_dir": results_dir})
    assert f"results_dir: {results_dir!r}" in message and cause in message
    assert not (tmp_path / "a" / "x").exists()


def test_results_dir_inside_the_working_directory_is_accepted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config(overrides={"results_dir": "out/run1"})["results_dir"] == "out/run1"
    assert load_config(overrides={"results_dir": str(tmp_path / "results")})["results_dir"] == str(tmp_path / "results")


def test_results_dir_symlinks_are_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "to_root").symlink_to("/")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "out").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert "'to_root' (resolved: /) is the filesystem root" in _refusal({"results_dir": "to_root"})
    assert "'to_root/x' (resolved: /x) lies outside" in _refusal({"results_dir": "to_root/x"})
    assert "symbolic link loop" in _refusal({"results_dir": "loop"})
    monkeypatch.chdir(tmp_path / "work")
    assert "'out' (resolved: " in _refusal({"results_dir": "out"})  # a link inside pointing outside


def test_results_dir_never_the_home_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert "is the home directory itself" in _refusal({"results_dir": str(tmp_path)})
    monkeypatch.chdir("/")
    assert "is the home directory itself" in _refusal({"results_dir": str(tmp_path)})


def test_allow_results_outside_lets_results_lie_under_a_listed_folder(tmp_path, monkeypatch):
    work, scratch = tmp_path / "work", tmp_path / "scratch"
    work.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(work)
    outside = str(scratch / "me" / "run")
    assert "lies outside the working directory" in _refusal({"results_dir": outside})
    config = load_config(overrides={"results_dir": outside, "allow_results_outside": [str(scratch)]})
    assert config["results_dir"] == outside and config["allow_results_outside"] == [str(scratch)]
    # the root and the home directory stay refused, and allowing the root is refused itself
    assert "filesystem root" in _refusal({"results_dir": "/", "allow_results_outside": ["/tmp"]})
    message = _refusal({"allow_results_outside": ["/"]})
    assert "allow_results_outside.0: '/' is the filesystem root" in message
    assert defaults()["allow_results_outside"] == []


def test_results_dir_never_mixes_with_an_input_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _small_folder(tmp_path / "out" / "in")
    data = {"source": "directory", "input_dir": "out/in"}
    assert "is the folder of the inputs of data.input_dir" in _refusal({"data": data, "results_dir": "out/in"})
    assert "lies inside the folder of the inputs of data.input_dir" in _refusal(
        {"data": data, "results_dir": "out/in/r"}
    )
    assert "contains the folder of the inputs of data.input_dir" in _refusal({"data": data, "results_dir": "out"})
    assert load_config(overrides={"data": data, "results_dir": "results"})["data"]["input_dir"] == "out/in"


def test_results_dir_never_mixes_with_the_published_data(tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT)
    assert "contains the folder of the inputs of meta.published_outcomes" in _refusal({"results_dir": "data"})
    assert "lies inside the folder of the inputs of meta" in _refusal({"results_dir": "data/published/r"})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "papers").mkdir()
    audit = {"inputs": [str(tmp_path / "papers" / "table2.csv")]}
    assert "is the folder of the input " in _refusal({"audit": audit, "results_dir": "papers"})
    assert "contains the input " in _refusal({"audit": audit, "results_dir": "."})
    # a file in the working directory does not make the working directory an input folder
    (tmp_path / "rows.csv").write_text("study\n")
    config = load_config(overrides={"meta": {"published_outcomes": "rows.csv"}, "audit": {"inputs": ["rows.csv"]}})
    assert config["results_dir"] == "results"


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        (lambda tmp: "nowhere", "'nowhere': no such folder"),
        (lambda tmp: (tmp / "f.csv").write_text("id\n") and "f.csv", "'f.csv' is a file"),
        (lambda tmp: (tmp / "empty").mkdir() or "empty", "'empty' holds no input tables"),
        (lambda tmp: (tmp / "dangling").symlink_to(tmp / "gone") or "dangling", "which does not exist"),
    ],
    ids=["missing", "file", "empty", "dangling-link"],
)
def test_input_dir_must_be_a_folder_of_input_tables(tmp_path, monkeypatch, make, cause):
    monkeypatch.chdir(tmp_path)
    message = _refusal({"data": {"source": "directory", "input_dir": make(tmp_path)}})
    assert "data.input_dir: " in message and cause in message


def test_the_stages_that_run_follow_the_input_tables():
    from imrstats.pipeline.registry import STAGE_NAMES, plan_stages

    run, skipped = plan_stages(["participants", "assessments"])
    assert run == ["trial", "meta", "evidence", "audit"]
    assert skipped == {
        "services": "no service_use table in the input folder "
        "(the service use stage needs participants and service_use)",
        "implementation": "no programme table in the input folder (the implementation stage needs programme)",
    }
    run, skipped = plan_stages(["programme"])
    assert run == ["meta", "implementation", "audit"]
    assert skipped["evidence"] == "it reads the results of the trial stage, which was skipped"
    assert "no participants and assessments tables" in skipped["trial"]
    assert plan_stages(["participants", "assessments", "service_use", "programme"]) == (list(STAGE_NAMES), {})
