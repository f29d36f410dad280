"""Curated, cited published data (data/published/): loaders that check types, codes and provenance.

Three tables ship with imrstats (data/published/README.md documents every column and code):

- ``published_outcomes.csv``: one row per study x outcome x timepoint x analysis, with arm-level
  n / mean / SD (or SE), or a reported effect, and for every row the paper it reports (``source_key``, a key
  of docs/sources.md), the citation, a verbatim quote holding each of its numbers, the conversion it needs and
  the assumption that conversion makes;
- ``implementation_rates.csv``: McGuire et al. (2014) Table 1 N and Table 3 dropout, sessions attended,
  completion and fidelity, one row per study x measure, each with its verbatim table line; every dropout and
  completion row names its denominator (the number of people offered IMR), how it was found
  (``denominator_basis``, see ``DENOMINATOR_BASES``) and the verbatim Table 1 text it rests on;
- ``heterogeneity_priors.csv``: the Rhodes et al. (2015) and Turner et al. (2015) priors for tau^2, as
  tabulated in R's bayesmeta, with a stable ``key`` a config can name;
- ``risk_of_bias.csv``: one RoB 2 (randomised) or ROBINS-I (non-randomised) judgement per study x domain, the
  ``overall`` row included and checked against the tool's algorithm (``rob_overall_allowed``), each domain row with
  its reasoning and a verbatim quote;
- ``indirectness.csv``: one indirectness judgement per randomised trial (population, intervention, comparator,
  outcomes) with its reasoning and a verbatim quote.

A loader reads a file, converts each column to its declared type and raises
:class:`~imrstats.errors.InputError` naming the file, row, column and rule on any breach. No statistics here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imrstats.core.paths import DATA_DIR
from imrstats.errors import InputError

PUBLISHED_DIR = DATA_DIR / "published"

USES = ("pool", "pool with care", "sensitivity", "context")
CONVERSIONS = (
    "none",
    "smd_from_arms",
    "md_from_arm_means_se",
    "log_or_from_ci",
    "d_from_p_two_sided",
    "d_total_n_equal_split",
    "d_from_eta_squared",
)
TIMEPOINTS = ("post", "fu12", "longest_fu", "overall", "year_after_post", "unclear")
RATERS = ("client", "clinician", "assessor", "register")
ANALYSES = ("itt", "complete_case", "not_stated")

OUTCOME_TEXT = [
    "study",
    "country",
    "design",
    "comparator",
    "outcome",
    "instrument",
    "rater",
    "timepoint",
    "timepoint_text",
    "analysis",
    "effect_type",
    "use",
    "conversion",
    "assumption",
    "source_key",
    "source",
    "quote",
    "note",
]
OUTCOME_INT = ["year", "n_imr", "n_tau", "n_total", "sign_favouring_imr"]
OUTCOME_FLOAT = [
    "mean_imr",
    "sd_imr",
    "se_imr",
    "mean_tau",
    "sd_tau",
    "se_tau",
    "effect",
    "se",
    "ci_low",
    "ci_high",
    "p",
]

IMPLEMENTATION_TEXT = [
    "study",
    "design",
    "table",
    "measure",
    "unit",
    "denominator_basis",
    "use",
    "assumption",
    "source",
    "quote",
    "denominator_quote",
    "note",
]
IMPLEMENTATION_INT = ["year", "denominator"]
IMPLEMENTATION_FLOAT = ["value", "value_sd", "value_low", "value_high"]
IMPLEMENTATION_MEASURES = ("n_enrolled", "n_imr", "dropout_pct", "sessions_attended_pct", "completion_pct", "fidelity")
# Rates of people, which need a denominator: the number of people offered IMR (data/published/README.md).
RATE_MEASURES = ("dropout_pct", "completion_pct")
# How a rate's denominator was found; the ``assumed_`` ones rest on a stated assumption.
DENOMINATOR_BASES = {
    "imr_group_printed": "IMR group N printed in Table 1",
    "single_group": "single-group pre-post study: all enrolled were offered IMR (Table 1 N)",
    "assumed_equal_allocation": "IMR group N not printed: assumed from the total by equal allocation",
    "assumed_from_percentages": "IMR group N not printed: assumed from the whole-person fractions the printed "
    "percentages allow",
    "all_arms": "rate over IMR and control combined (not an IMR rate)",
    "not_reported": "no N in Table 1",
}

# Risk-of-bias tools: domains in display order (``overall`` last) and the allowed judgements, best to worst.
ROB_TOOLS: dict[str, dict[str, tuple[str, ...]]] = {
    "RoB 2": {
        "domains": ("randomisation", "deviations", "missing_data", "measurement", "reporting", "overall"),
        "judgements": ("low", "some concerns", "high"),
    },
    "ROBINS-I": {
        "domains": (
            "confounding",
            "selection",
            "classification",
            "deviations",
            "missing_data",
            "measurement",
            "reporting",
            "overall",
        ),
        "judgements": ("low", "moderate", "serious", "critical", "no information"),
    },
}
ROB_TEXT = ["study", "design", "tool", "domain", "judgement", "support", "quote", "source", "source_key", "note"]
INDIRECTNESS_JUDGEMENTS = ("no concerns", "some concerns", "serious concerns")
INDIRECTNESS_TEXT = [
    "study",
    "population",
    "intervention",
    "comparator",
    "outcomes",
    "judgement",
    "support",
    "quote",
    "source",
    "source_key",
    "note",
]

PRIOR_TEXT = ["key", "source", "effect_measure", "parameter", "distribution", "outcome_type", "comparison_type", "note"]
PRIOR_FLOAT = ["location", "scale"]


def load_published_outcomes(path: str | Path | None = None) -> pd.DataFrame:
    """Read ``published_outcomes.csv``: typed columns, checked codes, a source and quote on every row."""
    path = Path(path) if path is not None else PUBLISHED_DIR / "published_outcomes.csv"
    df = _read_typed(path, OUTCOME_TEXT, OUTCOME_INT, OUTCOME_FLOAT)
    _require_text(
        df,
        path,
        [
            "study",
            "instrument",
            "rater",
            "timepoint",
            "analysis",
            "effect_type",
            "use",
            "conversion",
            "source_key",
            "source",
            "quote",
        ],
    )
    _require_codes(
        df,
        path,
        {"use": USES, "conversion": CONVERSIONS, "timepoint": TIMEPOINTS, "rater": RATERS, "analysis": ANALYSES},
    )
    _require_codes(df, path, {"sign_favouring_imr": (1, -1)})
    _require_positive(df, path, ["n_imr", "n_tau", "n_total", "sd_imr", "sd_tau", "se_imr", "se_tau", "se"])
    for i, row in df.iterrows():
        if row["conversion"] != "none" and row["use"] != "context" and pd.isna(row["sign_favouring_imr"]):
            raise InputError(
                f"{path}: row {i + 2} ({row['study']}, {row['instrument']}): sign_favouring_imr is "
                "empty; every row meant for pooling must say which sign favours IMR"
            )
        if row["assumption"] == "" and row["conversion"] not in ("none", "smd_from_arms"):
            raise InputError(
                f"{path}: row {i + 2} ({row['study']}): conversion '{row['conversion']}' always "
                "makes an assumption; state it in the 'assumption' column"
            )
    return df


def load_implementation_rates(path: str | Path | None = None) -> pd.DataFrame:
    """Read ``implementation_rates.csv`` (McGuire et al. 2014 Tables 1 and 3), one row per study x measure."""
    path = Path(path) if path is not None else PUBLISHED_DIR / "implementation_rates.csv"
    df = _read_typed(path, IMPLEMENTATION_TEXT, IMPLEMENTATION_INT, IMPLEMENTATION_FLOAT)
    _require_text(df, path, ["study", "table", "measure", "unit", "use", "source", "quote"])
    _require_codes(df, path, {"use": USES, "measure": IMPLEMENTATION_MEASURES})
    for i, row in df.iterrows():
        if row[IMPLEMENTATION_FLOAT].isna().all():
            raise InputError(
                f"{path}: row {i + 2} ({row['study']}, {row['measure']}) holds no number; "
                "leave not-reported cells out of the table"
            )
        _check_denominator(row, f"{path}: row {i + 2} ({row['study']}, {row['measure']})")
    return df


def _check_denominator(row: pd.Series, where: str) -> None:
    """A rate row names its denominator, its basis, the quote it rests on and, if assumed, the assumption;
    other rows carry none."""
    basis, n = row["denominator_basis"].strip(), row["denominator"]
    if row["measure"] not in RATE_MEASURES:
        if basis or pd.notna(n) or row["denominator_quote"].strip():
            raise InputError(
                f"{where}: only {list(RATE_MEASURES)} rows take a denominator; leave the denominator columns empty"
            )
        return
    if basis not in DENOMINATOR_BASES:
        raise InputError(f"{where}: denominator_basis '{basis}' is not one of {list(DENOMINATOR_BASES)}")
    if basis == "not_reported":
        if pd.notna(n):
            raise InputError(f"{where}: denominator_basis 'not_reported' but a denominator is given")
        return
    if pd.isna(n) or n <= 0:
        raise InputError(f"{where}: denominator_basis '{basis}' needs a positive whole denominator")
    if not row["denominator_quote"].strip():
        raise InputError(f"{where}: the denominator needs the verbatim text it rests on (denominator_quote)")
    if basis.startswith("assumed_") and not row["assumption"].strip():
        raise InputError(f"{where}: an assumed denominator ({basis}) must state its assumption")


def load_heterogeneity_priors(path: str | Path | None = None) -> pd.DataFrame:
    """Read ``heterogeneity_priors.csv``: unique keys, numeric location and a positive scale."""
    path = Path(path) if path is not None else PUBLISHED_DIR / "heterogeneity_priors.csv"
    df = _read_typed(path, PRIOR_TEXT, [], PRIOR_FLOAT)
    _require_text(df, path, ["key", "source", "distribution", "outcome_type", "comparison_type"])
    duplicated = df.loc[df["key"].duplicated(), "key"].tolist()
    if duplicated:
        raise InputError(f"{path}: prior keys must be unique; repeated: {duplicated}")
    _require_positive(df, path, ["scale"])
    if df["location"].isna().any():
        raise InputError(f"{path}: every prior needs a location (rows {_rows(df['location'].isna())})")
    return df


def prior_by_key(priors: pd.DataFrame, key: str) -> dict:
    """One prior's parameters as a plain dict (key, distribution, location, scale, source, note).

    ``location`` and ``scale`` are for log(tau^2); for log(tau) halve both (as bayesmeta does).
    """
    hit = priors.loc[priors["key"] == key]
    if hit.empty:
        raise InputError(f"unknown heterogeneity prior '{key}'; known keys: {', '.join(priors['key'])}")
    row = hit.iloc[0]
    return {
        name: (float(row[name]) if name in PRIOR_FLOAT else str(row[name]))
        for name in ["key", "distribution", "location", "scale", "outcome_type", "comparison_type", "source", "note"]
    }


def rob_overall_allowed(tool: str, judgements: list[str]) -> tuple[str, ...]:
    """The overall judgements a tool's algorithm allows for one study's domain judgements (``overall`` excluded).

    RoB 2: any "high" -> "high"; all "low" -> "low"; otherwise "some concerns", or "high" when at least two
    domains have some concerns (RoB 2 lets reviewers judge several concerns as high; the support must say so).
    ROBINS-I: the worst domain (low < moderate < serious < critical); where a domain has "no information" and
    none is serious or critical, "no information" or the worst informative domain.
    """
    if tool == "RoB 2":
        if "high" in judgements:
            return ("high",)
        concerns = judgements.count("some concerns")
        if concerns == 0:
            return ("low",)
        return ("some concerns", "high") if concerns >= 2 else ("some concerns",)
    if tool == "ROBINS-I":
        order = ("low", "moderate", "serious", "critical")
        informative = [j for j in judgements if j in order]
        worst = max(informative, key=order.index) if informative else "no information"
        if worst in ("serious", "critical") or "no information" not in judgements:
            return (worst,)
        return tuple(dict.fromkeys(["no information", worst]))
    raise InputError(f"unknown risk-of-bias tool '{tool}'; known: {list(ROB_TOOLS)}")


def load_risk_of_bias(path: str | Path | None = None) -> pd.DataFrame:
    """Read ``risk_of_bias.csv``: one RoB 2 or ROBINS-I judgement per study x domain, checked.

    Checks: allowed tool, domain and judgement per tool; RoB 2 only for ``design`` RCT, ROBINS-I for the rest;
    exactly one row per study x domain and every domain of the study's tool present; the ``overall`` row follows
    the tool's algorithm (``rob_overall_allowed``); every study is a ``study`` of ``published_outcomes.csv`` or
    ``implementation_rates.csv``; support, source and source key on every row and a verbatim quote on every
    domain row (``overall`` is derived, so its quote may be empty).
    """
    path = Path(path) if path is not None else PUBLISHED_DIR / "risk_of_bias.csv"
    df = _read_typed(path, ROB_TEXT, [], [])
    _require_text(df, path, ["study", "design", "tool", "domain", "judgement", "support", "source", "source_key"])
    _require_codes(df, path, {"tool": tuple(ROB_TOOLS)})
    for i, row in df.iterrows():
        where = f"{path}: row {i + 2} ({row['study']}, {row['domain']})"
        spec = ROB_TOOLS[row["tool"]]
        for col, allowed in (("domain", spec["domains"]), ("judgement", spec["judgements"])):
            if row[col] not in allowed:
                raise InputError(
                    f"{where}: column '{col}' holds '{row[col]}'; allowed for {row['tool']}: {list(allowed)}"
                )
        if (row["design"] == "RCT") != (row["tool"] == "RoB 2"):
            raise InputError(
                f"{where}: column 'tool' holds '{row['tool']}' for design '{row['design']}'; "
                "RoB 2 is for RCTs, ROBINS-I for non-randomised studies"
            )
        if row["domain"] != "overall" and not row["quote"].strip():
            raise InputError(
                f"{where}: column 'quote' is empty; every domain judgement needs the verbatim passage it rests on "
                "(where the source is silent, the passage that describes the method without the detail)"
            )
    repeated = df.duplicated(["study", "domain"], keep="first")
    if repeated.any():
        raise InputError(f"{path}: rows {_rows(repeated)} repeat a study x domain; one row per study x domain")
    designs: dict[str, set[str]] = {}
    for table in (load_published_outcomes(), load_implementation_rates()):
        for study, design in zip(table["study"], table["design"], strict=True):
            designs.setdefault(study, set()).add(design)
    for study, rows in df.groupby("study", sort=False):
        first = int(rows.index[0]) + 2
        tools = rows["tool"].unique().tolist()
        if len(tools) > 1:
            raise InputError(f"{path}: study '{study}' (rows {[int(i) + 2 for i in rows.index]}) mixes tools {tools}")
        if study not in designs:
            raise InputError(
                f"{path}: row {first}: column 'study' holds '{study}', which is not a study of "
                "published_outcomes.csv or implementation_rates.csv"
            )
        other = sorted(set(rows["design"]) - designs[study])
        if other:
            raise InputError(
                f"{path}: study '{study}' (row {first}): column 'design' holds {other}, but published_outcomes.csv / "
                f"implementation_rates.csv give {sorted(designs[study])}"
            )
        tool = tools[0]
        missing = [d for d in ROB_TOOLS[tool]["domains"] if d not in set(rows["domain"])]
        if missing:
            raise InputError(f"{path}: study '{study}' ({tool}) lacks rows for domains {missing}")
        domains = rows.loc[rows["domain"] != "overall", "judgement"].tolist()
        overall = rows.loc[rows["domain"] == "overall"].iloc[0]
        allowed = rob_overall_allowed(tool, domains)
        if overall["judgement"] not in allowed:
            raise InputError(
                f"{path}: row {int(overall.name) + 2} ({study}, overall): column 'judgement' holds "
                f"'{overall['judgement']}', but the {tool} algorithm gives {list(allowed)} for the domains {domains}"
            )
    return df


def load_indirectness(path: str | Path | None = None) -> pd.DataFrame:
    """Read ``indirectness.csv``: one indirectness judgement per randomised trial of ``published_outcomes.csv``,
    with population, intervention, comparator, outcomes, support, source and a verbatim quote on every row."""
    path = Path(path) if path is not None else PUBLISHED_DIR / "indirectness.csv"
    df = _read_typed(path, INDIRECTNESS_TEXT, [], [])
    _require_text(df, path, [c for c in INDIRECTNESS_TEXT if c != "note"])  # every column but the note
    _require_codes(df, path, {"judgement": INDIRECTNESS_JUDGEMENTS})
    repeated = df["study"].duplicated()
    if repeated.any():
        raise InputError(f"{path}: rows {_rows(repeated)} repeat a study; one row per study")
    outcomes = load_published_outcomes()
    trials = set(outcomes.loc[outcomes["design"] == "RCT", "study"])
    unknown = ~df["study"].isin(trials)
    if unknown.any():
        raise InputError(
            f"{path}: column 'study' rows {_rows(unknown)} hold {df.loc[unknown, 'study'].tolist()}, which are not "
            "randomised trials of published_outcomes.csv"
        )
    return df


def select_for_pooling(
    outcomes: pd.DataFrame,
    *,
    instrument: str | None = None,
    timepoint: str | None = None,
    uses: tuple[str, ...] = ("pool", "pool with care"),
    drop_assumptions: bool = False,
) -> pd.DataFrame:
    """The rows a meta-analysis of one outcome takes; ``drop_assumptions=True`` is the sensitivity analysis
    that keeps only rows whose conversion needed no assumption (empty ``assumption``)."""
    unknown = set(uses) - set(USES)
    if unknown:
        raise InputError(f"unknown 'use' values {sorted(unknown)}; choose from {USES}")
    keep = outcomes["use"].isin(uses)
    if instrument is not None:
        keep &= outcomes["instrument"] == instrument
    if timepoint is not None:
        keep &= outcomes["timepoint"] == timepoint
    if drop_assumptions:
        keep &= outcomes["assumption"] == ""
    return outcomes.loc[keep].reset_index(drop=True)


def _read_typed(path: Path, text: list[str], ints: list[str], floats: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise InputError(f"{path}: file not found; the curated tables live in data/published/")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    missing = [c for c in text + ints + floats if c not in raw.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}; see data/published/README.md")
    out = pd.DataFrame(index=raw.index)
    for col in raw.columns:
        if col in ints or col in floats:
            values = pd.to_numeric(raw[col].str.strip().replace("", None), errors="coerce")
            bad = raw[col].str.strip().ne("") & values.isna()
            if bad.any():
                raise InputError(
                    f"{path}: column '{col}' rows {_rows(bad)} are not numbers: {raw.loc[bad, col].tolist()[:3]}"
                )
            if col in ints:
                fractional = values.notna() & (values % 1 != 0)
                if fractional.any():
                    raise InputError(f"{path}: column '{col}' must hold whole numbers (rows {_rows(fractional)})")
                values = values.astype("Int64")
            else:
                values = values.astype("float64")
            out[col] = values
        else:
            out[col] = raw[col].astype("str")
    return out


def _require_text(df: pd.DataFrame, path: Path, columns: list[str]) -> None:
    for col in columns:
        empty = df[col].str.strip() == ""
        if empty.any():
            raise InputError(
                f"{path}: column '{col}' is empty in rows {_rows(empty)}; every row needs it "
                "(a number without a source and quote does not belong in data/published/)"
            )


def _require_codes(df: pd.DataFrame, path: Path, allowed: dict[str, tuple]) -> None:
    for col, codes in allowed.items():
        bad = df[col].notna() & ~df[col].isin(codes)
        if bad.any():
            raise InputError(
                f"{path}: column '{col}' rows {_rows(bad)} hold {df.loc[bad, col].unique().tolist()}; "
                f"allowed: {list(codes)}"
            )


def _require_positive(df: pd.DataFrame, path: Path, columns: list[str]) -> None:
    for col in columns:
        bad = df[col].notna() & (df[col] <= 0)
        if bad.any():
            raise InputError(f"{path}: column '{col}' must be positive (rows {_rows(bad)})")


def _rows(mask: pd.Series) -> list[int]:
    """File line numbers (header = line 1) of the rows a mask selects."""
    return [int(i) + 2 for i in mask[mask].index]
