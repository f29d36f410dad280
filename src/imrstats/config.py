"""Load and validate the pipeline configuration.

The JSON schema in workflow/schemas/config.schema.yaml is the contract: an unknown key or a wrong type
stops the run with a message that names the key. Checks that need the instrument registry (e.g. a true
effect given for an instrument that does not exist) are made here too.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from imrstats.errors import InputError
from imrstats.core.paths import CONFIG_SCHEMA, DEFAULT_CONFIG


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties":
        return f"config key {where}: {error.message} (unknown key; see config/README.md for the valid keys)"
    return f"config key {where}: {error.message}"


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate a config dict against the schema and the instrument registry; return it unchanged.

    Raises InputError listing every problem at once, each naming the offending key.
    """
    schema = yaml.safe_load(CONFIG_SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    problems = [_describe(e) for e in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))]
    if not problems:
        problems = _semantic_problems(config)
    if problems:
        raise InputError(f"{source}: invalid configuration\n  " + "\n  ".join(problems))
    return config


def _semantic_problems(config: dict) -> list[str]:
    from imrstats.data.instruments import load_registry

    registry = load_registry()
    problems = []
    effects = config.get("simulate", {}).get("trial", {}).get("true_effects", {}) or {}
    for key in effects:
        if key not in registry:
            problems.append(
                f"config key simulate.trial.true_effects.{key}: '{key}' is not an instrument in config/instruments.yaml"
            )
    if config.get("data", {}).get("source") == "directory" and not config["data"].get("input_dir"):
        problems.append("config key data.input_dir: required when data.source is 'directory'")
    age_range = config.get("simulate", {}).get("trial", {}).get("age_range")
    if age_range and age_range[0] >= age_range[1]:
        problems.append(f"config key simulate.trial.age_range: lower bound {age_range[0]} must be below {age_range[1]}")
    return problems


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Read a YAML config (default: the embedded config/config.yaml), apply overrides, validate."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: a config must be a mapping of keys to values")
    if overrides:
        config = deep_update(config, overrides)
    return validate_config(config, source=str(path))


def deep_update(base: dict, updates: dict) -> dict:
    """A copy of `base` with `updates` merged in recursively (mappings merge, other values replace)."""
    out = copy.deepcopy(base)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
