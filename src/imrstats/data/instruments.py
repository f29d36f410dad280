"""The instrument registry (config/instruments.yaml): every scale's range, direction, items and subscales.

Checking, cleaning, effect-size direction and report labels all read it through this module.
Subscales declared under a parent are registered as instruments of their own (`subscale_of` set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from imrstats.core.paths import INSTRUMENTS_FILE
from imrstats.errors import InputError


@dataclass(frozen=True)
class Item:
    key: str  # e.g. "imrs_client_item07"
    min: float
    max: float


@dataclass(frozen=True)
class Instrument:
    key: str
    name: str
    short: str
    min: float
    max: float
    higher_is_better: bool
    integer: bool
    rater: str
    source: str
    items: tuple[Item, ...] = ()
    subscales: tuple[str, ...] = ()  # keys of subscale instruments
    subscale_of: str | None = None
    prorate_max_missing: int = 0
    notes: str = ""
    item_keys_in_parent: tuple[str, ...] = field(default=())  # for a subscale: the parent's item keys it sums

    def in_range(self, value: float) -> bool:
        return self.min <= value <= self.max

    @property
    def range_text(self) -> str:
        return f"{self.min:g}-{self.max:g}"

    @property
    def direction_text(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


def _expand_items(key: str, spec: dict) -> tuple[Item, ...]:
    prefix = spec["prefix"]
    if "keys" in spec:
        suffixes = [str(k) for k in spec["keys"]]
    else:
        suffixes = [f"{i:02d}" for i in range(1, int(spec["count"]) + 1)]
    max_by_key = {str(k).zfill(2) if str(k).isdigit() else str(k): v for k, v in (spec.get("max_by_key") or {}).items()}
    return tuple(Item(prefix + s, float(spec["min"]), float(max_by_key.get(s, spec["max"]))) for s in suffixes)


def _item_key(items: tuple[Item, ...], prefix: str, suffix: str) -> str:
    suffix = suffix.zfill(2) if suffix.isdigit() else suffix
    return prefix + suffix


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, Instrument]:
    from imrstats.config import load_yaml_file

    raw = load_yaml_file(path, "instrument registry")  # size limit, no aliases
    return registry_from_mapping(raw, path)


def registry_from_mapping(raw: dict, path: str) -> dict[str, Instrument]:
    """Instruments (totals and subscales) by key from a mapping laid out as config/instruments.yaml is
    (``path`` names where it came from in error messages). A study spec's own instruments are read by it too."""
    registry: dict[str, Instrument] = {}
    required = ("name", "short", "min", "max", "higher_is_better", "integer", "rater", "source")
    for key, spec in raw.items():
        missing = [f for f in required if f not in spec]
        if missing:
            raise InputError(f"{path}: instrument '{key}' lacks {', '.join(missing)}")
        items = _expand_items(key, spec["items"]) if "items" in spec else ()
        sub_keys = []
        for sub_key, sub in (spec.get("subscales") or {}).items():
            prefix = spec["items"]["prefix"]
            members = tuple(_item_key(items, prefix, str(s)) for s in sub["items"])
            known = {it.key for it in items}
            unknown = [m for m in members if m not in known]
            if unknown:
                raise InputError(f"{path}: subscale '{sub_key}' of '{key}' names unknown items {unknown}")
            registry[sub_key] = Instrument(
                key=sub_key,
                name=sub["name"],
                short=sub.get("short", sub["name"]),
                min=float(sub["min"]),
                max=float(sub["max"]),
                higher_is_better=bool(spec["higher_is_better"]),
                integer=bool(spec["integer"]),
                rater=spec["rater"],
                source=f"subscale of {key}; {spec.get('subscale_source', spec['source'])}",
                subscale_of=key,
                item_keys_in_parent=members,
                prorate_max_missing=min(int(spec.get("prorate_max_missing", 0)), max(len(members) // 5, 0)),
            )
            sub_keys.append(sub_key)
        if items:
            lo = sum(it.min for it in items)
            hi = sum(it.max for it in items)
            if (lo, hi) != (float(spec["min"]), float(spec["max"])):
                raise InputError(
                    f"{path}: instrument '{key}' range {spec['min']}-{spec['max']} "
                    f"disagrees with its items' sum {lo:g}-{hi:g}"
                )
        registry[key] = Instrument(
            key=key,
            name=spec["name"],
            short=spec["short"],
            min=float(spec["min"]),
            max=float(spec["max"]),
            higher_is_better=bool(spec["higher_is_better"]),
            integer=bool(spec["integer"]),
            rater=spec["rater"],
            source=spec["source"],
            items=items,
            subscales=tuple(sub_keys),
            subscale_of=spec.get("subscale_of"),
            prorate_max_missing=int(spec.get("prorate_max_missing", 0)),
            notes=spec.get("subscale_source", ""),
        )
    return registry


def load_registry(path: str | Path | None = None) -> dict[str, Instrument]:
    """All instruments (totals and subscales) by key."""
    return _load(str(path or INSTRUMENTS_FILE))


def extend_registry(
    registry: dict[str, Instrument], extra: dict[str, Instrument], source: str = "study spec"
) -> dict[str, Instrument]:
    """A new registry: ``registry`` with the instruments of ``extra`` added (e.g. those a study spec declares;
    `imrstats.data.study.study_registry`). The package's registry file is never changed. A key (instrument,
    subscale or item) that ``registry`` already holds is an InputError naming it: a study may use a registry
    instrument as it is, not redefine it."""
    if not extra:
        return dict(registry)
    known = set(registry) | set(item_index(registry))
    clash = sorted(k for k in set(extra) | set(item_index(extra)) if k in known)
    if clash:
        raise InputError(
            f"{source}: instrument key(s) {', '.join(clash)} already in the instrument registry; use the registry's "
            "instrument as it is, or declare yours under another key"
        )
    return {**registry, **extra}


def item_index(registry: dict[str, Instrument] | None = None) -> dict[str, tuple[str, Item]]:
    """Map each item key (e.g. 'panss_item_p3') to (instrument key, Item)."""
    registry = registry or load_registry()
    return {it.key: (inst.key, it) for inst in registry.values() for it in inst.items}


def get_instrument(key: str, registry: dict[str, Instrument] | None = None) -> Instrument:
    registry = registry or load_registry()
    try:
        return registry[key]
    except KeyError:
        raise InputError(f"unknown instrument '{key}'; known: {', '.join(sorted(registry))}") from None


# The eleven outcomes of Jensen et al. 2019, Table 3, in its order: the trial stage's default outcome list.
TRIAL_OUTCOMES = (
    "gaf_f",
    "gaf_s",
    "psp",
    "panss_total",
    "hamd6",
    "ymrs",
    "mhrm",
    "hope",
    "csq8",
    "imrs_client",
    "imrs_clinician",
)
