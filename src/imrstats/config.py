"""The pipeline's settings: one source of defaults, one overlay rule, one error type.

Defaults live once, in the JSON schema workflow/schemas/config.schema.yaml (a `default:` on every key).
The settings of a run are those defaults, overlaid with config/config.yaml (the shipped run; as shipped it
is exactly the defaults, which tests/test_config.py checks), overlaid with the user's own file
(``snakemake --configfile my.yaml``, ``imrstats --config my.yaml ...``) and any overrides. A user's file
therefore holds only the keys it changes.

The overlay (`overlay`) merges the schema's structured sections key by key (``trial``, ``meta.bayes``,
``simulate.trial.attendance``, ...); any other value, including a free-form mapping whose keys are the
user's own (``simulate.trial.sites``, ``simulate.trial.true_effects``, ``meta.outcomes``), replaces the
default as a whole, so that ``meta: {outcomes: {hope: [hope]}}`` pools only hope.

Every problem is a `SettingsError` naming the key path (``trial.imputations: must be >= 2, got 1``), from the
schema and from the checks that need more than the schema (the instrument registry, ...). A stage reads its
section through `section_settings`, which fills and checks a partial section the same way.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

from imrstats.core.paths import CONFIG_SCHEMA, DEFAULT_CONFIG
from imrstats.errors import SettingsError

_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


# ---------------------------------------------------------------------------------------------
# The schema and its defaults


@lru_cache(maxsize=1)
def _schema() -> dict:
    return yaml.safe_load(CONFIG_SCHEMA.read_text())


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_schema())


def _resolve(node: dict) -> dict:
    """A schema node with a local ``$ref`` (``#/$defs/name``) replaced by its target (siblings kept)."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = _schema()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**_resolve(target), **{k: v for k, v in node.items() if k != "$ref"}}


_NO_DEFAULT = object()


def _fill(node: dict):
    """The default value of a schema node: its ``default``, with a structured section's keys filled in."""
    node = _resolve(node)
    value = copy.deepcopy(node["default"]) if "default" in node else _NO_DEFAULT
    if "properties" in node and (value is _NO_DEFAULT or isinstance(value, dict)):
        value = {} if value is _NO_DEFAULT else value
        for key, sub in node["properties"].items():
            if key not in value:
                filled = _fill(sub)
                if filled is not _NO_DEFAULT:
                    value[key] = filled
    return value


@lru_cache(maxsize=1)
def _defaults() -> dict:
    return _fill(_schema())


def defaults() -> dict:
    """Every setting at its default (a fresh copy): what the schema's ``default:`` entries say."""
    return copy.deepcopy(_defaults())


def _section_node(path: list[str]) -> dict | None:
    node = _schema()
    for key in path:
        node = _resolve(node).get("properties", {}).get(key)
        if node is None:
            return None
    return _resolve(node)


# ---------------------------------------------------------------------------------------------
# Overlay


def overlay(base: dict, updates: dict | None, _node: dict | None = None) -> dict:
    """A copy of ``base`` with ``updates`` laid over it: a structured section of the schema (one with
    ``properties``) merges key by key (an empty one, None, changes nothing); any other value (number, list,
    free-form mapping) replaces."""
    node = _resolve(_schema() if _node is None else _node)
    out = copy.deepcopy(base)
    for key, value in (updates or {}).items():
        sub = node.get("properties", {}).get(key)
        sub = _resolve(sub) if sub is not None else None
        if value is None and sub is not None and "properties" in sub:
            continue  # an empty section (`trial:` with every key commented out) changes nothing
        if isinstance(value, dict) and isinstance(out.get(key), dict) and sub is not None and "properties" in sub:
            out[key] = overlay(out[key], value, sub)
        else:
            out[key] = copy.deepcopy(value)
    return out


def deep_update(base: dict, updates: dict) -> dict:
    """A copy of `base` with `updates` merged in recursively (mappings merge, other values replace); for
    settings outside the config schema (the simulation study's own file). Pipeline settings use `overlay`."""
    out = copy.deepcopy(base)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _plain(value):
    """Tuples as lists (a library caller may pass a tuple where the schema says list)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Validation


def _key_path(error: jsonschema.ValidationError, extra: str | None = None) -> str:
    parts = [str(p) for p in error.absolute_path] + ([extra] if extra else [])
    return ".".join(parts) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    """(key path, message) for one schema error; an unknown key is named as its own path."""
    kind, rule, got = error.validator, error.validator_value, error.instance
    if kind == "additionalProperties" and rule is False:
        known = sorted(error.schema.get("properties", {}))
        extra = [k for k in got if k not in known]
        return [
            (_key_path(error, k), f"unknown key; valid keys here: {', '.join(known)} (see config/README.md)")
            for k in extra
        ]
    if kind == "required":
        missing = [k for k in rule if k not in got]
        return [(_key_path(error, k), "missing") for k in missing]
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if kind in bounds:
        text = f"must be {bounds[kind]} {rule}, got {got!r}"
    elif kind == "enum":
        text = f"must be one of {', '.join(map(str, rule))}, got {got!r}"
    elif kind == "type":
        types = [rule] if isinstance(rule, str) else rule
        text = f"must be {' or '.join(_TYPE_NAMES.get(t, t) for t in types)}, got {got!r}"
    elif kind == "minItems":
        text = f"must list at least {rule} item{'s' if rule != 1 else ''}, got {got!r}"
    elif kind == "maxItems":
        text = f"must list at most {rule} item{'s' if rule != 1 else ''}, got {got!r}"
    elif kind == "uniqueItems":
        text = f"lists an item twice, got {got!r}"
    elif kind == "minProperties":
        text = f"must have at least {rule} entr{'ies' if rule != 1 else 'y'}, got {got!r}"
    elif kind in ("minLength", "pattern"):
        text = f"must not be empty or blank, got {got!r}"
    else:
        text = error.message
    return [(_key_path(error), text)]


def _semantic_problems(config: dict) -> list[tuple[str, str]]:
    """Checks the schema cannot express (each names its key path)."""
    from imrstats.data.instruments import load_registry

    registry = load_registry()
    problems = []
    for key in config["simulate"]["trial"].get("true_effects") or {}:
        if key not in registry:
            problems.append(
                (f"simulate.trial.true_effects.{key}", f"'{key}' is not an instrument in config/instruments.yaml")
            )
    for name in ("outcomes", "subscale_ancova_outcomes", "subscale_itt_outcomes"):
        unknown = [k for k in config["trial"][name] if k not in registry]
        if unknown:
            problems.append((f"trial.{name}", f"{unknown} not in the instrument registry (config/instruments.yaml)"))
    items = {it.key for inst in registry.values() for it in inst.items}
    for key in config["clean"].get("missing_codes_by_instrument") or {}:
        if key not in registry and key not in items:
            problems.append(
                (
                    f"clean.missing_codes_by_instrument.{key}",
                    f"'{key}' is not an instrument or item in config/instruments.yaml",
                )
            )
    if config["data"]["source"] == "directory" and not config["data"].get("input_dir"):
        problems.append(("data.input_dir", "required when data.source is 'directory'"))
    age_range = config["simulate"]["trial"]["age_range"]
    if age_range[0] >= age_range[1]:
        problems.append(("simulate.trial.age_range", f"lower bound {age_range[0]} must be below {age_range[1]}"))
    return problems


def _normalise(config: dict) -> dict:
    """Aliases the schema accepts, spelled one way: meta.method FE is the equal-effects model EE."""
    if config["meta"]["method"] == "FE":
        config["meta"]["method"] = "EE"
    return config


def validate_config(config: dict, source: str | None = "config") -> dict:
    """The complete settings: ``config`` overlaid on the defaults, checked against the schema and the
    instrument registry. Raises `SettingsError` listing every problem at once, each naming its key path."""
    if not isinstance(config, dict):
        raise SettingsError([("(top level)", "a config must be a mapping of keys to values")], source)
    merged = overlay(_defaults(), _plain(config))
    errors = sorted(_validator().iter_errors(merged), key=lambda e: [str(p) for p in e.absolute_path])
    problems = [p for e in errors for p in _describe(e)]
    if not problems:
        problems = _semantic_problems(merged)
    if problems:
        raise SettingsError(problems, source)
    return _normalise(merged)


def read_config_file(path: str | Path) -> dict:
    """A YAML config file as a dict (an empty file is an empty overlay)."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SettingsError([("(file)", "config file not found")], str(path)) from None
    except yaml.YAMLError as exc:
        raise SettingsError([("(file)", f"not valid YAML: {exc}")], str(path)) from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise SettingsError([("(top level)", "a config must be a mapping of keys to values")], str(path))
    return config


def load_config(path: str | Path | None = None, overrides: dict | None = None, *, source: str | None = None) -> dict:
    """The settings of a run: the defaults, overlaid with config/config.yaml, the user's file ``path`` (only
    the keys it changes) and ``overrides``; validated (`SettingsError` names the key path)."""
    config = overlay(_defaults(), read_config_file(DEFAULT_CONFIG))
    if path is not None:
        config = overlay(config, read_config_file(path))
    if overrides:
        config = overlay(config, overrides)
    return validate_config(config, source=source or str(path or DEFAULT_CONFIG))


def section_settings(section: str, raw: dict | None = None) -> dict:
    """One section of the settings (``"trial"``, ``"meta"``, ``"meta.bayes"``, ...): ``raw`` (a partial
    section, or None) overlaid on the section's defaults and checked like a whole config. What every stage
    calls on the settings it is given; `SettingsError` names the full key path (``trial.imputations``)."""
    path = section.split(".")
    if _section_node(path) is None:
        raise KeyError(f"no settings section {section!r} in the config schema")
    if raw is not None and not isinstance(raw, dict):
        raise SettingsError([(section, f"must be a mapping of settings, got {raw!r}")])
    nested: dict = dict(raw or {})
    for key in reversed(path):
        nested = {key: nested}
    out = validate_config(nested, source=None)
    for key in path:
        out = out[key]
    return out


# ---------------------------------------------------------------------------------------------
# Seeds


def step_seed(step: str, config: dict | None = None) -> int:
    """The seed of one random step (e.g. ``"stage.trial"``): derived from the config's master ``seed``
    (the shipped default's when ``config`` is None) and the step's name."""
    from imrstats.core.seeds import derive_seed

    master = (config if config is not None else _defaults())["seed"]
    return derive_seed(int(master), step)


def stage_seed(stage: str, config: dict | None = None) -> int:
    """The seed the pipeline gives stage ``stage``: ``step_seed("stage.<stage>", config)``."""
    return step_seed(f"stage.{stage}", config)
