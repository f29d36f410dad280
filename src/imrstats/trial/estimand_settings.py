"""The settings of estimands (the trial section's ``estimands``): checked and filled in from the config schema's
defaults, without importing the analysis code, so that validating a config stays light (`imrstats.config` calls
`estimand_problems`). The analysis is `imrstats.trial.estimands`."""

from __future__ import annotations

from dataclasses import dataclass

from imrstats.errors import SettingsError

ICE_RULES = ("dropout", "sessions_below", "table")
ESTIMAND_METHODS = ("condmean_jackknife", "condmean_bootstrap", "bayes")
ESTIMAND_ANALYSES = ("ancova", "mmrm")
BOOTSTRAP_CIS = ("percentile", "normal")  # imrstats.trial.reference_mi.BOOTSTRAP_CIS; a test checks they agree
# the strategies of imrstats.trial.reference_mi (STRATEGIES), named here so that reading the settings does not
# import the imputation code; a test checks they agree
ICE_STRATEGIES = ("MAR", "JR", "CR", "CIR", "LMCF")
_RULE_KEYS = {"dropout": (), "sessions_below": ("min_sessions", "visit"), "table": ("file",)}

# the ICH E9(R1) handling each strategy usually stands for ({reference}: the reference arm's label)
HANDLING = {
    "MAR": "hypothetical (as if the event had not occurred: the outcomes after it missing at random within the own "
    "arm)",
    "JR": "treatment policy (reference-based: after the ICE the participant's outcomes follow the {reference} arm)",
    "CR": "treatment policy (reference-based: the participant's outcomes follow the {reference} arm at every visit)",
    "CIR": "treatment policy (reference-based: after the ICE the outcomes change as the {reference} arm's do)",
    "LMCF": "treatment policy (the mean reached before the ICE is carried forward)",
}
METHOD_NAMES = {
    "condmean_jackknife": "conditional mean imputation, jackknife inference",
    "condmean_bootstrap": "conditional mean imputation, bootstrap inference",
    "bayes": "Bayesian multiple imputation, Rubin's rules",
}
ANALYSIS_NAMES = {"ancova": "ANCOVA per visit", "mmrm": "MMRM (unstructured covariance)"}


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IceSpec:
    """One intercurrent event of an estimand, its defaults filled in; ``key`` its settings path."""

    event: str
    rule: str
    strategy: str
    strategy_given: bool
    handling: str | None
    min_sessions: int | None
    visit: str | None
    file: str | None
    key: str


@dataclass(frozen=True)
class EstimandSpec:
    """One estimand of ``trial.estimands``, its defaults filled in (a None attribute is filled in from the design
    when it is run: `attributes`)."""

    name: str
    population: str
    variable: str | None
    treatment: str | None
    summary: str
    events: tuple[IceSpec, ...]
    method: str
    reference: str | None
    analysis: str
    outcomes: tuple[str, ...]
    delta_file: str | None = None
    tipping: dict | None = None
    bootstrap_samples: int = 1000
    bootstrap_ci: str = "percentile"

    @property
    def key(self) -> str:
        return f"trial.estimands.{self.name}"


def _schema_defaults(name: str) -> dict:
    """The ``default:`` of every key of the config schema's ``$defs/<name>`` (the one place they live)."""
    from imrstats.config import config_schema

    node = config_schema()["$defs"][name]
    return {key: sub["default"] for key, sub in node["properties"].items() if "default" in sub}


def estimand_problems(trial: dict) -> list[tuple[str, str]]:
    """What the schema cannot say about a ``trial`` section's estimands, as (key path, message) pairs: every name
    of ``sensitivity_estimands`` is defined; a ``reference`` is an arm; an estimand's ``outcomes`` are among
    ``trial.outcomes``; each ICE has the keys of its rule and no other (``min_sessions`` and optionally ``visit``
    for ``sessions_below``, ``file`` for ``table``); a ``visit`` is one of ``trial.visits``; a ``tipping`` grid
    goes with ``analysis: ancova`` (the grid relies on the ANCOVA being linear in the imputed values)."""
    problems = []
    estimands = trial.get("estimands") or {}
    for name in trial.get("sensitivity_estimands") or []:
        if name not in estimands:
            problems.append(
                (
                    "trial.sensitivity_estimands",
                    f"{name!r} is not defined in trial.estimands (defined: {', '.join(sorted(estimands)) or 'none'})",
                )
            )
    arms_setting = trial.get("arms") or {}
    arms = [str(arms_setting.get("intervention", "IMR")), str(arms_setting.get("control", "TAU"))]
    visits = [str(v) for v in trial.get("visits") or ()]
    outcomes = list(trial.get("outcomes") or ())
    for name, raw in estimands.items():
        key = f"trial.estimands.{name}"
        reference = raw.get("reference")
        if reference is not None and str(reference) not in arms:
            problems.append((f"{key}.reference", f"{reference!r} is not an arm; the arms are {arms}"))
        if raw.get("tipping") is not None and raw.get("analysis", "ancova") != "ancova":
            problems.append(
                (
                    f"{key}.tipping",
                    f"the tipping grid is computed with the ANCOVA per visit, not analysis {raw.get('analysis')!r}: "
                    "set analysis: ancova or tipping: null",
                )
            )
        for outcome in raw.get("outcomes") or []:
            if outcome not in outcomes:
                problems.append((f"{key}.outcomes", f"{outcome!r} is not one of trial.outcomes {outcomes}"))
        for j, event in enumerate(raw.get("intercurrent_events") or []):
            at = f"{key}.intercurrent_events.{j}"
            rule = event.get("rule")
            own = _RULE_KEYS.get(rule, ())
            for extra in ("min_sessions", "visit", "file"):
                if extra in event and extra not in own:
                    which = [r for r, keys in _RULE_KEYS.items() if extra in keys][0]
                    problems.append((f"{at}.{extra}", f"applies to rule {which} only, not {rule}"))
            if rule == "sessions_below" and event.get("min_sessions") is None:
                problems.append(
                    (f"{at}.min_sessions", "missing: rule sessions_below needs the fewest sessions without an ICE")
                )
            if rule == "sessions_below" and event.get("visit") is not None and str(event["visit"]) not in visits:
                problems.append((f"{at}.visit", f"{event['visit']!r} is not one of trial.visits {visits}"))
            if rule == "table" and not event.get("file"):
                problems.append((f"{at}.file", "missing: rule table needs the path of the ICE table"))
    return problems


def resolve_estimands(trial: dict) -> dict[str, EstimandSpec]:
    """Every estimand of a checked ``trial`` section (`imrstats.config.section_settings`), its keys' defaults
    filled in from the schema."""
    problems = estimand_problems(trial)
    if problems:
        raise SettingsError(problems)
    base, ice_base = _schema_defaults("estimand"), _schema_defaults("intercurrent_event")
    out = {}
    for name, raw in (trial.get("estimands") or {}).items():
        e = {**base, **raw}
        events = []
        for j, given in enumerate(e["intercurrent_events"]):
            ev = {**ice_base, **given}
            events.append(
                IceSpec(
                    event=str(ev["event"]),
                    rule=str(ev["rule"]),
                    strategy=str(ev["strategy"]),
                    strategy_given="strategy" in given,
                    handling=ev.get("handling"),
                    min_sessions=None if ev.get("min_sessions") is None else int(ev["min_sessions"]),
                    visit=None if ev.get("visit") is None else str(ev["visit"]),
                    file=ev.get("file"),
                    key=f"trial.estimands.{name}.intercurrent_events.{j}",
                )
            )
        out[name] = EstimandSpec(
            name=str(name),
            population=str(e["population"]),
            variable=e.get("variable"),
            treatment=e.get("treatment"),
            summary=str(e["summary"]),
            events=tuple(events),
            method=str(e["method"]),
            reference=None if e.get("reference") is None else str(e["reference"]),
            analysis=str(e["analysis"]),
            outcomes=tuple(e.get("outcomes") or ()),
            delta_file=e.get("delta_file"),
            tipping=None if e.get("tipping") is None else {"cumulative": False, **e["tipping"]},
            bootstrap_samples=int(e["bootstrap_samples"]),
            bootstrap_ci=str(e["bootstrap_ci"]),
        )
    return out


def estimand_outcomes(spec: EstimandSpec, trial: dict) -> list[str]:
    """The outcomes an estimand is run on: the primary outcome when it is one of ``trial.outcomes``, then the
    estimand's own ``outcomes``."""
    primary = trial["primary"]["outcome"]
    first = [primary] if primary in trial["outcomes"] else []
    return list(dict.fromkeys([*first, *spec.outcomes]))


# --------------------------------------------------------------------------------------------------
# Intercurrent events
# --------------------------------------------------------------------------------------------------
