import pytest
import yaml

from imrstats.config import load_config, validate_config
from imrstats.errors import InputError
from imrstats.core.paths import DEFAULT_CONFIG


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
    with pytest.raises(InputError, match=r"config key seed: 'abc' is not of type 'integer'"):
        validate_config(config)


def test_every_problem_is_listed_at_once():
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["seed"] = -1
    config["clean"]["prorate"] = "yes"
    with pytest.raises(InputError) as err:
        validate_config(config)
    assert "config key seed" in str(err.value) and "config key clean.prorate" in str(err.value)


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
            if isinstance(value, dict) and key not in ("sites", "true_effects", "service_types", "true_rate_ratios",
                                                       "missing_codes", "attendance", "visit_missing",
                                                       "outcomes", "primary", "prior_mu", "tau_prior"):
                yield from keys(value, path + ".")

    missing = [k for k in keys(yaml.safe_load(DEFAULT_CONFIG.read_text())) if f"`{k}`" not in readme]
    assert not missing, f"undocumented config keys: {missing}"
