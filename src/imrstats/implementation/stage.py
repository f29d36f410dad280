"""The implementation stage: the Ferrara-style programme registry analysis as one report section.

Wraps `imrstats.implementation.descriptives.analyse_programme` (validated against R) for the pipeline: it turns
the tidy result tables into the paper's Tables 1-3 (Overall and per service type, each row with its
test and p-value), draws Fig. 1 (modules per participant; module x service heat map) and the
Bland-Altman plot, and writes a terminal summary (the report section is rendered from the result by
`imrstats.implementation.section`). Settings (config section
`implementation`): `alpha` (0.05; the source's "0.5" is a slip), `small_cell_threshold` (5) and
`suppress_small_cells` (false). With suppression on, counts of 1 to threshold - 1 are blanked in every
table and the row-level figures (one bar or one point per participant) are left out, because with
small services a single bar or point can identify a person.

Registries exported from Excel are read by `imrstats.core.io.read_excel_table` (any input path accepts .xlsx).
"""

from __future__ import annotations

import math

import pandas as pd

from imrstats.config import section_settings, stage_seed
from imrstats.core.io import EXCEL_SUFFIXES, read_excel_table  # noqa: F401  (re-exported for the registry CLI)
from imrstats.errors import AnalysisError
from imrstats.implementation.descriptives import (
    MODULE_NAMES,
    MODULES,
    OVERALL,
    ImplementationResult,
    analyse_programme,
)
from imrstats.implementation.figures import implementation_stage_figures
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.format import format_p

SOURCE_SLIP_ALPHA = 0.5  # Ferrara implementation study, "Statistical Analysis": "significance level set to 0.5"
LARGE_ALPHA = 0.1  # above this an alpha is flagged as a likely slip
LABELS = {
    "sex": "Sex",
    "diagnosis": "Diagnosis",
    "format": "Format",
    "age_at_start": "Age at start of IMR (years)",
    "age_at_first_contact": "Age at first contact with services (years)",
    "illness_duration_years": "Illness duration at start (years)",
    "sessions": "Sessions delivered",
    "duration_months": "Programme duration (months)",
    "modules_received": "Modules received (of 11)",
    "imrs_user": "IMRS user",
    "imrs_provider": "IMRS provider",
}
PARAMETRIC_TESTS = ("one-way ANOVA", "Welch t")
RANK_TESTS = ("Kruskal-Wallis", "Mann-Whitney U")


# ---------------------------------------------------------------- display tables (paper style)


def _label(variable: str) -> str:
    """A readable name for a variable or module column."""
    if variable in MODULE_NAMES:
        return f"M{MODULES.index(variable) + 1} {MODULE_NAMES[variable]}"
    return LABELS.get(variable, variable)


def count_text(value, threshold: int) -> str:
    """A count for running text; a suppressed (missing) count reads '< threshold'."""
    return f"< {threshold}" if pd.isna(value) else f"{int(value)}"


def _is_significant(value) -> bool:
    return value is not None and not pd.isna(value) and bool(value)


def _count_cell(row: pd.Series, threshold: int) -> str:
    """'n (pct%)', '< threshold' when suppressed."""
    if bool(row.get("suppressed", False)):
        return f"< {threshold} (suppressed)"
    pct = row.get("pct", math.nan)
    return f"{int(row['n'])}" if pd.isna(pct) else f"{int(row['n'])} ({pct:.1f}%)"


def _summary_cell(row: pd.Series, statistic: str, threshold: int) -> str:
    """'mean (SD)' or 'median [Q1, Q3]' of one group; says when suppressed or empty."""
    if bool(row.get("suppressed", False)):
        return f"n < {threshold} (suppressed)"
    if not row["n"]:
        return "no data"
    if statistic == "mean":
        sd = "" if pd.isna(row["sd"]) else f"{row['sd']:.2f}"
        text = f"{row['mean']:.2f} ({sd})"
    else:
        text = f"{row['median']:.2f} [{row['q1']:.2f}, {row['q3']:.2f}]"
    return text + (f"; n = {int(row['n'])}" if row["missing"] else "")


def _test_cells(tests: pd.DataFrame, variable: str, names: tuple[str, ...] | None = None) -> dict:
    """The test and p-value columns for a display row (or why the test was not run)."""
    rows = tests[tests["variable"] == variable]
    if names is not None:
        rows = rows[rows["test"].isin(names)]
    if rows.empty:
        return {"test": "", "p": ""}
    row = rows.iloc[0]
    if row["quantity"] == "not tested":
        return {"test": f"not run: {row['notes']}", "p": ""}
    star = " *" if _is_significant(row["significant"]) else ""
    return {"test": str(row["test"]), "p": format_p(row["p"]) + star}


def _groups(result: ImplementationResult) -> list[str]:
    return result.tables["services"]["group"].tolist()


def _categorical_rows(table: pd.DataFrame, tests: pd.DataFrame, groups: list[str], threshold: int) -> list[dict]:
    rows = []
    for variable in table["variable"].unique():
        sub = table[table["variable"] == variable]
        for i, level in enumerate(sub["level"].unique()):
            cells = sub[sub["level"] == level].set_index("group")
            row = {"characteristic": f"{LABELS.get(variable, variable)}: {level}", "statistic": "n (%)"}
            row.update({g: _count_cell(cells.loc[g], threshold) if g in cells.index else "" for g in groups})
            row.update(_test_cells(tests, variable) if i == 0 else {"test": "", "p": ""})
            rows.append(row)
    return rows


def _continuous_rows(
    table: pd.DataFrame, tests: pd.DataFrame, groups: list[str], threshold: int, label=None
) -> list[dict]:
    rows = []
    for variable in table["variable"].unique():
        cells = table[table["variable"] == variable].set_index("group")
        name = label(variable) if label else LABELS.get(variable, variable)
        for statistic, shown, names in (
            ("mean", "mean (SD)", PARAMETRIC_TESTS),
            ("median", "median [Q1, Q3]", RANK_TESTS),
        ):
            row = {"characteristic": name, "statistic": shown}
            row.update(
                {g: _summary_cell(cells.loc[g], statistic, threshold) if g in cells.index else "" for g in groups}
            )
            row.update(_test_cells(tests, variable, names))
            rows.append(row)
    return rows


def _participant_rows(services: pd.DataFrame, groups: list[str], threshold: int) -> list[dict]:
    cells = services.set_index("group")
    count = {"characteristic": "Participants", "statistic": "n (% of all)", "test": "", "p": ""}
    units = {"characteristic": "Services delivering IMR", "statistic": "n", "test": "", "p": ""}
    for g in groups:
        count[g] = _count_cell(cells.loc[g], threshold)
        units[g] = "" if pd.isna(cells.loc[g, "services"]) else f"{int(cells.loc[g, 'services'])}"
    return [count, units]


def table1_demographics(result: ImplementationResult) -> pd.DataFrame:
    """Table 1: demographic and clinical characteristics, Overall and by service type, with tests."""
    t, groups, k = result.tables, _groups(result), result.small_cell_threshold
    tests = t["tests"][t["tests"]["table"] == "demographics"]
    rows = _participant_rows(t["services"], groups, k)[:1]
    rows += _categorical_rows(t["demographics_categorical"], tests, groups, k)
    rows += _continuous_rows(t["demographics_continuous"], tests, groups, k)
    return pd.DataFrame(rows, columns=["characteristic", "statistic", *groups, "test", "p"])


def table2_delivery(result: ImplementationResult) -> pd.DataFrame:
    """Table 2: services, format, sessions, duration, modules received and the share per module."""
    t, groups, k = result.tables, _groups(result), result.small_cell_threshold
    tests = t["tests"][t["tests"]["table"].isin(["delivery", "module_share"])]
    rows = _participant_rows(t["services"], groups, k)
    rows += _categorical_rows(t["delivery_categorical"], tests, groups, k)
    rows += _continuous_rows(t["delivery_continuous"], tests, groups, k)
    shares = t["module_share"]
    for module in MODULES:
        cells = shares[shares["module"] == module].set_index("group")
        row = {"characteristic": f"Module {_label(module)}", "statistic": "n (%) received"}
        row.update({g: _count_cell(cells.loc[g], k) for g in groups if g in cells.index})
        row.update(_test_cells(tests, module))
        rows.append(row)
    return pd.DataFrame(rows, columns=["characteristic", "statistic", *groups, "test", "p"])


def table3_imrs(result: ImplementationResult) -> pd.DataFrame:
    """Table 3: IMRS user and provider scores (item mean 1-5 and total 15-75) by service type, with tests."""
    t, groups, k = result.tables, _groups(result), result.small_cell_threshold
    tests = t["tests"][t["tests"]["table"] == "imrs"]
    summary = t["imrs_summary"].copy()
    summary["variable"] = "imrs_" + summary["rater"]
    rows = []
    for scale, shown in (("item mean", "item mean (1-5)"), ("total", "total (15-75)")):
        part = summary[summary["scale"] == scale]
        block = _continuous_rows(
            part, tests if scale == "total" else tests.iloc[0:0], groups, k, label=lambda v, s=shown: f"{LABELS[v]} {s}"
        )
        rows += block
    return pd.DataFrame(rows, columns=["characteristic", "statistic", *groups, "test", "p"])


# ---------------------------------------------------------------- flags and summary


def small_cell_count(tables: dict[str, pd.DataFrame]) -> int:
    """Table rows flagged as small cells (counts of 1 to threshold - 1), over every result table."""
    return int(sum(t["small_cell"].sum() for t in tables.values() if "small_cell" in t.columns))


def implementation_flags(result: ImplementationResult) -> list[str]:
    """Checks the report must show: tests that could not run, small cells left visible, a slip-sized alpha."""
    flags = []
    for name in ("tests", "imrs_agreement"):
        table = result.tables[name]
        for _, row in table[table["quantity"] == "not tested"].iterrows():
            by = "service type" if row["by"] == "service_type" else str(row["by"])
            flags.append(f"{row['test']} of {_label(row['variable'])} by {by} was not run: {row['notes']}")
    n_small = small_cell_count(result.tables)
    if n_small and not result.suppress_small_cells:
        flags.append(
            f"{n_small} table cell(s) count 1-{result.small_cell_threshold - 1} participants and are shown "
            "unsuppressed; set implementation.suppress_small_cells: true before sharing a report built "
            "from a real registry."
        )
    if result.alpha > LARGE_ALPHA:
        flags.append(
            f"The significance level is {result.alpha:g}; the source study's '0.5' is a slip for 0.05. "
            "Check implementation.alpha."
        )
    return flags


def display_tables(result: ImplementationResult) -> dict[str, pd.DataFrame]:
    """Tables 1-3 in the paper's layout (text cells), keyed by their CSV names."""
    return {
        "table1_demographics": table1_demographics(result),
        "table2_delivery": table2_delivery(result),
        "table3_imrs": table3_imrs(result),
    }


def _summary_test_lines(result: ImplementationResult) -> list[str]:
    tests = result.tables["tests"]
    lines = []
    for _, row in tests.iterrows():
        shown = format_p(row["p"])
        p = "not run" if row["quantity"] == "not tested" else f"p {shown}" if shown[:1] == "<" else f"p = {shown}"
        mark = " *" if _is_significant(row["significant"]) else ""
        lines.append(f"  {row['table']:<13} {_label(row['variable'])[:44]:<44} {row['test']:<15} {p}{mark}")
    return lines


def implementation_summary(result: ImplementationResult, flags: list[str]) -> str:
    """A terminal summary: sizes, the tests by service type, delivery, IMRS agreement, small cells, warnings."""
    services = result.tables["services"]
    k = result.small_cell_threshold
    by_group = ", ".join(f"{r.group} {count_text(r.n, k)}" for r in services.itertuples() if r.group != OVERALL)
    overall = result.tables["delivery_continuous"].set_index(["variable", "group"])
    delivery = "; ".join(
        f"{LABELS[v].lower()} {overall.loc[(v, OVERALL), 'mean']:.1f} (SD {overall.loc[(v, OVERALL), 'sd']:.1f})"
        for v in ("sessions", "duration_months", "modules_received")
    )
    lines = [
        f"Implementation registry: {result.n_participants} participants ({by_group}); "
        f"{count_text(services.set_index('group').loc[OVERALL, 'services'], k)} services.",
        f"Two-sided tests at alpha = {result.alpha:g} (the source's '0.5' is a slip for 0.05); * p < alpha.",
        f"Delivery (overall mean): {delivery}.",
        "Tests by service type:",
        *_summary_test_lines(result),
        "IMRS user vs provider:",
    ]
    for _, row in result.tables["imrs_agreement"].iterrows():
        if row["quantity"] == "not tested":
            lines.append(f"  {row['test']}: not run ({row['notes']})")
        elif bool(row.get("suppressed", False)):
            lines.append(f"  {row['quantity']}: suppressed (fewer than {result.small_cell_threshold} pairs)")
        else:
            shown = format_p(row["p"])
            p = "" if not shown else f", p {shown}" if shown[:1] == "<" else f", p = {shown}"
            lines.append(
                f"  {row['quantity']:<26} {row['estimate']:8.3f}  95% CI [{row['ci_low']:.3f}, "
                f"{row['ci_high']:.3f}]  n = {int(row['n'])}{p}"
            )
    action = "suppressed" if result.suppress_small_cells else "flagged, shown"
    lines.append(f"Small cells (1-{result.small_cell_threshold - 1}): {small_cell_count(result.tables)} {action}.")
    lines += [f"WARNING: {f}" for f in flags]
    return "\n".join(lines) + "\n"


def run_implementation_stage(
    tables: dict[str, pd.DataFrame], settings: dict | None = None, *, seed: int | None = None
) -> StageResult:
    """The implementation stage on cleaned canonical tables (needs `programme`).

    `settings` is the config section `implementation` (only the keys that differ from the defaults in
    workflow/schemas/config.schema.yaml); `seed` (default: the config's `stage_seed("implementation")`, what
    the pipeline passes) is used only for a Monte Carlo Fisher p-value when an r x c table is too large to
    enumerate exactly. A programme table that cannot be analysed at all raises AnalysisError; a test or figure
    that cannot be made becomes a flag and the rest of the stage still runs.
    """
    options = section_settings("implementation", settings)
    seed = stage_seed("implementation") if seed is None else int(seed)
    if "programme" not in tables:
        raise AnalysisError(
            "The implementation stage needs the 'programme' table (one row per IMR course); "
            f"the cleaned data hold only {sorted(tables)}."
        )
    result = analyse_programme(
        tables["programme"],
        alpha=options["alpha"],
        small_cell_threshold=options["small_cell_threshold"],
        suppress_small_cells=options["suppress_small_cells"],
        seed=seed,
    )
    figures, omitted, figure_flags = implementation_stage_figures(result)
    flags = implementation_flags(result) + figure_flags
    display = display_tables(result)
    record = {
        **result.to_dict(),
        "settings": options,
        "seed": seed,
        "figures": sorted(figures),
        "omitted_figures": omitted,
    }
    return StageResult(
        stage="implementation",
        tables={**result.tables, **display},
        figures=figures,
        record=record,
        summary=implementation_summary(result, flags),
        flags=flags,
    )
