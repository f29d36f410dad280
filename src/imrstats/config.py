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
import sys
from functools import lru_cache
from pathlib import Path

import yaml

# jsonschema registers a checker for the "iri" string format when the optional package rfc3987_syntax is
# importable, and importing that package compiles a grammar: about 3 s at every start of the CLI and of
# every Snakemake invocation (a no-op rerun included). The config schema uses no "iri" format, so the
# checker is not needed: mark the package unavailable (jsonschema skips it on ImportError) unless some
# other code has imported it already.
if "rfc3987_syntax" not in sys.modules:
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]
import jsonschema  # noqa: E402

from imrstats.core.paths import CONFIG_SCHEMA, DEFAULT_CONFIG
from imrstats.errors import InputError, SettingsError

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
def config_schema() -> dict:
    """The config schema (workflow/schemas/config.schema.yaml) as a mapping, read once."""
    return yaml.safe_load(CONFIG_SCHEMA.read_text())


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(config_schema())


def _resolve(node: dict) -> dict:
    """A schema node with a local ``$ref`` (``#/$defs/name``) replaced by its target (siblings kept)."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = config_schema()
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
    return _fill(config_schema())


def defaults() -> dict:
    """Every setting at its default (a fresh copy): what the schema's ``default:`` entries say."""
    return copy.deepcopy(_defaults())


def _section_node(path: list[str]) -> dict | None:
    node = config_schema()
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
    node = _resolve(config_schema() if _node is None else _node)
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
# Reading a user's YAML safely

MAX_YAML_BYTES = 1_000_000  # a config is a few kB; anything near this is not a config
MAX_CONFIG_NODES = 100_000  # values in a config once every alias is expanded (the shipped one has about 300)


class NoAliasLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader refusing aliases (``*name``): a settings file needs none, and nested aliases expand
    exponentially (the "billion laughs"), so that validating a few hundred bytes would exhaust memory."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"alias *{event.anchor} is not allowed here (write the values out)", event.start_mark
            )
        return super().compose_node(parent, index)


def load_yaml_file(path: str | Path, what: str = "config file", *, max_bytes: int = MAX_YAML_BYTES):
    """A user's YAML file (None when it is empty), read safely: at most ``max_bytes``, UTF-8, no aliases, not
    nested beyond Python's recursion limit. Every problem is one `SettingsError` naming the file."""
    import os

    from imrstats.core.tables import why_not_found

    path = Path(path)

    def refuse(text: str):
        return SettingsError([("(file)", text)], str(path))

    if not path.exists():
        why = why_not_found(path)
        raise refuse(f"{what} not found" if why == "no such file or folder" else why)
    if path.is_dir():
        raise refuse(f"a folder where a {what} (YAML) is expected")
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise refuse(f"{size} bytes; a {what} is at most {max_bytes} bytes")
        raw = path.read_bytes()[: max_bytes + 1]
    except OSError as exc:
        raise refuse(f"cannot be read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:  # a file that grew, or a device that reports no size
        raise refuse(f"more than {max_bytes} bytes; a {what} is at most {max_bytes} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise refuse(f"not UTF-8 text (byte {exc.start}); a {what} is a YAML text file") from None
    try:
        return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f"line {where.line + 1}: " if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, yaml.composer.ComposerError) and "alias" in str(problem):
            raise refuse(f"{line}{problem}; aliases are refused in a {what}") from None
        raise refuse(f"not valid YAML: {line}{problem}") from None
    except RecursionError:
        raise refuse("nested too deeply to be a settings file") from None


def check_config_size(config, source: str | None = None, limit: int = MAX_CONFIG_NODES) -> None:
    """Refuse, before any copy or validation, settings that hold more than ``limit`` values once shared parts
    are counted at every place they appear (a YAML alias bomb parsed by another loader, e.g. Snakemake's
    ``--configfile``), or that contain themselves. Counts each distinct object once, so it is fast."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(value) -> int:
        if not isinstance(value, (dict, list, tuple)):
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise SettingsError([("(top level)", "the settings contain themselves (a recursive alias)")], source)
        active.add(key)
        children = value.values() if isinstance(value, dict) else value
        total = 1 + len(value) + sum(size(child) for child in children)
        active.discard(key)
        sizes[key] = total
        if total > limit:
            raise SettingsError(
                [("(top level)", f"more than {limit} values once aliases are expanded: not a settings file")], source
            )
        return total

    try:
        size(config)
    except RecursionError:
        raise SettingsError([("(top level)", "nested too deeply to be settings")], source) from None


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


def _semantic_problems(config: dict, paths: bool = True) -> list[tuple[str, str]]:
    """Checks the schema cannot express (each names its key path); with ``paths``, also where the run reads and
    writes (`input_dir_problems`, `results_dir_problems`: the file system as it is now)."""
    from imrstats.data.instruments import load_registry

    registry = load_registry()
    problems = []
    try:
        trial_registry = trial_instruments(config["trial"], registry)
    except (SettingsError, InputError) as err:
        problems.append(("trial.instruments", "; ".join(str(err).splitlines())))
        trial_registry = registry
    for key in config["simulate"]["trial"].get("true_effects") or {}:
        if key not in registry:
            problems.append(
                (f"simulate.trial.true_effects.{key}", f"'{key}' is not an instrument in config/instruments.yaml")
            )
    for name in ("outcomes", "subscale_ancova_outcomes", "subscale_itt_outcomes"):
        unknown = [k for k in config["trial"][name] if k not in trial_registry]
        if unknown:
            problems.append(
                (
                    f"trial.{name}",
                    f"{unknown} not in the instrument registry (config/instruments.yaml) or trial.instruments",
                )
            )
    items = {it.key for inst in registry.values() for it in inst.items}
    for key in config["clean"].get("missing_codes_by_instrument") or {}:
        if key not in registry and key not in items:
            problems.append(
                (
                    f"clean.missing_codes_by_instrument.{key}",
                    f"'{key}' is not an instrument or item in config/instruments.yaml",
                )
            )
    if config["data"]["source"] == "study" and not config["data"].get("study"):
        problems.append(("data.study", "required when data.source is 'study': the study spec's path"))
    elif config["data"].get("study") and config["data"]["source"] != "study":
        problems.append(
            (
                "data.source",
                f"is {config['data']['source']!r} but data.study is set: give one input (data.study alone reads "
                "the study spec's export)",
            )
        )
    if config["data"]["source"] == "directory" and not config["data"].get("input_dir"):
        problems.append(("data.input_dir", "required when data.source is 'directory'"))
    elif config["data"]["source"] == "directory" and paths:
        problems += input_dir_problems(config["data"]["input_dir"])
    if paths:
        problems += results_dir_problems(config)
    from imrstats.trial.study_design import design_problems  # the study design's visits and arms

    problems += design_problems(config["trial"])
    from imrstats.trial.estimand_settings import estimand_problems  # the estimands' rules, names and outcomes

    problems += estimand_problems(config["trial"])
    age_range = config["simulate"]["trial"]["age_range"]
    if age_range[0] >= age_range[1]:
        problems.append(("simulate.trial.age_range", f"lower bound {age_range[0]} must be below {age_range[1]}"))
    return problems


# ---------------------------------------------------------------------------------------------
# Where the pipeline reads and writes: checked before any file is written


def _resolved(path: str | Path) -> Path:
    """``path`` made absolute against the working directory, every symbolic link resolved (a missing tail is
    kept as written). RuntimeError / OSError on a symbolic link loop."""
    return Path(path).resolve()


def _within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies inside it."""
    return path == folder or folder in path.parents


def input_places(config: dict) -> list[tuple[str, Path, bool]]:
    """(key, path, is_folder) of every place the pipeline reads inputs from: the folders ``data.input_dir``
    (with ``data.source: directory``) and data/published/ (where the meta and audit stages read by default),
    and the files of ``meta.published_outcomes``, ``meta.implementation_rates`` and ``audit.inputs`` when they
    are set. Relative paths are relative to the working directory; symbolic links resolved."""
    from imrstats.core.paths import DATA_DIR

    candidates: list[tuple[str, str | Path, bool]] = []
    if config["data"]["source"] == "directory" and config["data"].get("input_dir"):
        candidates.append(("data.input_dir", config["data"]["input_dir"], True))
    meta, audit = config["meta"], config["audit"]["inputs"]
    for key, value in (
        ("meta.published_outcomes", meta["published_outcomes"]),
        ("meta.implementation_rates", meta["implementation_rates"]),
        *(("audit.inputs", path) for path in audit or ()),
    ):
        candidates.append((key, value, False) if value else (key, DATA_DIR / "published", True))
    out: list[tuple[str, Path, bool]] = []
    for key, path, is_folder in candidates:
        try:
            place = _resolved(path)
        except (OSError, RuntimeError):
            continue  # a symbolic link loop: the stage reading it says so
        if (place, is_folder) not in [(p, f) for _, p, f in out]:
            out.append((key, place, is_folder))
    return out


def input_dir_problems(input_dir: str) -> list[tuple[str, str]]:
    """``data.input_dir`` must be an existing folder holding at least one input table (participants,
    assessments, service_use, programme), so the pipeline never runs on nothing."""
    from imrstats.core.tables import FORMATS, TABLES, find_table_file, why_not_found
    from imrstats.errors import InputError

    key = "data.input_dir"
    path = Path(input_dir)
    if not path.exists():
        why = why_not_found(path)
        return [(key, f"{input_dir!r}: {'no such folder' if why == 'no such file or folder' else why}")]
    if not path.is_dir():
        return [(key, f"{input_dir!r} is a file; give the folder that holds the input tables")]
    found = []
    try:
        for table in TABLES:
            if find_table_file(path, table) is not None:
                found.append(table)
    except InputError as exc:
        return [(key, str(exc))]
    except OSError as exc:
        return [(key, f"{input_dir!r}: cannot be read: {exc.strerror or exc}")]
    if not found:
        return [
            (
                key,
                f"{input_dir!r} holds no input tables (expected files named {', '.join(TABLES)}, "
                f"each with one of {', '.join(FORMATS)})",
            )
        ]
    return []


def results_dir_problems(config: dict, cwd: str | Path | None = None) -> list[tuple[str, str]]:
    """``results_dir`` must resolve (symbolic links followed) to a folder inside the working directory, or
    inside a folder of ``allow_results_outside``; never the filesystem root, the home directory itself or the
    working directory itself; never equal to, inside, or containing a folder the pipeline reads inputs from."""
    raw = config["results_dir"]
    problems: list[tuple[str, str]] = []
    allowed = []
    for i, entry in enumerate(config.get("allow_results_outside") or []):
        try:
            folder = _resolved(entry)
        except (OSError, RuntimeError):
            problems.append((f"allow_results_outside.{i}", f"{entry!r}: a symbolic link loop"))
            continue
        if folder.parent == folder:
            problems.append(
                (f"allow_results_outside.{i}", f"{entry!r} is the filesystem root: it would allow every folder")
            )
        else:
            allowed.append(folder)
    try:
        here = _resolved(cwd if cwd is not None else Path.cwd())
        results = _resolved(Path(here, raw))
    except (OSError, RuntimeError):
        return [*problems, ("results_dir", f"{raw!r}: a symbolic link loop (the link points back to itself)")]
    named = f"{raw!r}" if str(results) == raw else f"{raw!r} (resolved: {results})"
    try:
        home = _resolved(Path.home())
    except (OSError, RuntimeError, KeyError):
        home = None
    if results.parent == results:
        return [
            *problems,
            (
                "results_dir",
                f"{named} is the filesystem root; give a folder inside the working directory, e.g. results",
            ),
        ]
    if results == home:
        return [
            *problems,
            (
                "results_dir",
                f"{named} is the home directory itself; give a folder inside the working directory, e.g. results",
            ),
        ]
    for key, place, is_folder in input_places(config):
        # an input folder: results neither in it nor around it; an input file: results neither beside it (its
        # folder) nor around it (a results folder inside the folder of a file, e.g. the working directory, is fine)
        if is_folder and results == place:
            why = f"is the folder of the inputs of {key}: outputs would mix with the inputs"
        elif is_folder and _within(results, place):
            why = f"lies inside the folder of the inputs of {key} ({place}): outputs would mix with the inputs"
        elif is_folder and _within(place, results):
            why = f"contains the folder of the inputs of {key} ({place}): outputs would mix with the inputs"
        elif not is_folder and results == place.parent:
            why = f"is the folder of the input {place} ({key}): outputs would mix with the inputs"
        elif not is_folder and _within(place, results):
            why = f"contains the input {place} ({key}): outputs would mix with the inputs"
        else:
            continue
        problems.append(("results_dir", f"{named} {why}; give a folder of its own, e.g. results"))
        return problems
    if any(_within(results, folder) for folder in allowed):
        return problems
    if results == here:
        problems.append(
            ("results_dir", f"{named} is the working directory itself; give a folder inside it, e.g. results")
        )
    elif here not in results.parents:
        problems.append(
            (
                "results_dir",
                f"{named} lies outside the working directory ({here}); give a folder inside it, e.g. results, "
                "or list a folder that holds it in allow_results_outside",
            )
        )
    return problems


def _normalise(config: dict) -> dict:
    """Aliases the schema accepts, spelled one way: meta.method FE is the equal-effects model EE."""
    if config["meta"]["method"] == "FE":
        config["meta"]["method"] = "EE"
    return config


def validate_config(config: dict, source: str | None = "config", *, paths: bool = True) -> dict:
    """The complete settings: ``config`` overlaid on the defaults, checked against the schema and the
    instrument registry, and (``paths``) where the run reads and writes: ``results_dir`` inside the working
    directory and apart from every input, ``data.input_dir`` a folder of input tables. Raises `SettingsError`
    listing every problem at once, each naming its key path."""
    if not isinstance(config, dict):
        raise SettingsError([("(top level)", "a config must be a mapping of keys to values")], source)
    check_config_size(config, source)
    merged = overlay(_defaults(), _plain(config))
    errors = sorted(_validator().iter_errors(merged), key=lambda e: [str(p) for p in e.absolute_path])
    problems = [p for e in errors for p in _describe(e)]
    if not problems:
        problems = _semantic_problems(merged, paths)
    if problems:
        raise SettingsError(problems, source)
    return _normalise(merged)


def read_config_file(path: str | Path) -> dict:
    """A YAML config file as a dict (an empty file is an empty overlay); read by `load_yaml_file` (size limit,
    no aliases), so a hostile file is one SettingsError naming it, never an exhausted memory."""
    path = Path(path)
    config = load_yaml_file(path, "config file")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise SettingsError([("(top level)", "a config must be a mapping of keys to values")], str(path))
    return config


def load_config(path: str | Path | None = None, overrides: dict | None = None, *, source: str | None = None) -> dict:
    """The settings of a run: the defaults, overlaid with config/config.yaml, the user's file ``path`` (only
    the keys it changes) and ``overrides``; validated (`SettingsError` names the key path)."""
    base = overlay(_defaults(), read_config_file(DEFAULT_CONFIG))
    layers = []  # the user's own keys, in order
    if path is not None:
        layers.append(read_config_file(path))
    if overrides:
        check_config_size(overrides, source or "settings overrides")
        layers.append(overrides)
    config = _with_study(base, layers)  # a study spec's implied settings, under the user's own
    return validate_config(config, source=source or str(path or DEFAULT_CONFIG))


def trial_instruments(trial: dict, registry: dict | None = None) -> dict:
    """The instrument registry the trial stage reads: the package's (config/instruments.yaml) extended by
    ``trial.instruments`` (a study spec's own instruments, or the user's). A key the package registry already
    holds is refused (`imrstats.data.instruments.extend_registry`)."""
    from imrstats.data.instruments import extend_registry, load_registry

    registry = load_registry() if registry is None else registry
    extra = trial.get("instruments") or {}
    if not extra:
        return registry
    from imrstats.data.study import spec_instruments

    return extend_registry(registry, spec_instruments({"instruments": extra}, "trial.instruments"), "trial.instruments")


def _with_study(base: dict, layers: list[dict]) -> dict:
    """The settings with a study spec's (``data.study``) implied settings laid between the shipped config
    (``base``) and the user's own ``layers``, so that anything the user sets wins
    (`imrstats.data.study.study_settings`). ``data.study`` given alone makes ``data.source`` 'study'."""
    config = base
    for layer in layers:
        config = overlay(config, layer)
    data = config.get("data") or {}
    if not isinstance(data, dict) or not data.get("study") or not isinstance(data["study"], str):
        return config
    if not any(isinstance(layer.get("data"), dict) and "source" in layer["data"] for layer in layers):
        config["data"]["source"] = "study"
    if config["data"].get("source") != "study":
        return config  # the conflict is reported by validation, naming data.source
    from imrstats.data.study import load_study, study_settings

    study = load_study(data["study"])
    config = overlay(base, study_settings(study))
    for layer in layers:
        config = overlay(config, layer)
    config["data"]["source"] = "study"
    return config


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
    out = validate_config(nested, source=None, paths=False)  # a stage's section: the run's paths are not its own
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
