"""The implementation stage's report section, rendered from its `StageResult` alone (the tidy and the
paper-style tables, figure names, the omitted figures and settings in the record, flags) through
`report/templates/implementation/`.

The tests under Tables 1-3 are named by the `method` column of the rows of the tidy `tests` table behind
them, and the agreement table's by its own rows' `method`.
"""

from __future__ import annotations

import pandas as pd

from imrstats.implementation.descriptives import OVERALL
from imrstats.implementation.stage import SOURCE_SLIP_ALPHA, count_text, small_cell_count
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.html import render_template

# the tidy `tests` rows behind each paper-style table
_TESTED = {
    "table1_demographics": ("demographics",),
    "table2_delivery": ("delivery", "module_share"),
    "table3_imrs": ("imrs",),
}
_DESCRIPTIVES = {
    "table1_demographics": "counts and percentages of non-missing values; mean (SD), median [Q1, Q3] "
    "(R type-7 quartiles)",
    "table2_delivery": "counts and percentages of participants; mean (SD), median [Q1, Q3]",
    "table3_imrs": "mean (SD), median [Q1, Q3]; tests of the totals only",
}


def tests_method(tests: pd.DataFrame, table: str, alpha: float) -> str:
    """The method line of a paper-style table: its descriptives, then the distinct methods of its tests."""
    rows = tests.loc[tests["table"].isin(_TESTED[table]) & (tests["quantity"] != "not tested")]
    methods = list(dict.fromkeys(rows["method"].dropna().astype(str)))
    tested = (
        f"two-sided tests at alpha = {alpha:g} (Fisher's exact test where a chi-square expected count "
        f"is < 5): {'; '.join(methods)}"
        if methods
        else "no test could be run"
    )
    return f"{_DESCRIPTIVES[table]}; {tested}"


def agreement_display(agreement: pd.DataFrame) -> pd.DataFrame:
    """The user-provider agreement rows for the report (estimate, 95% CI, p, n, method)."""
    cols = [
        c for c in ("quantity", "estimate", "ci_low", "ci_high", "p", "n", "method", "notes") if c in agreement.columns
    ]
    shown = agreement[cols].copy()
    if "n" in shown.columns:
        shown["n"] = pd.to_numeric(shown["n"]).round().astype("Int64")
    return shown  # the table renderer labels the columns, joins estimate and CI and prints p


def render_implementation_section(result: StageResult) -> str:
    """The report section: intro, warnings, Tables 1-3, Fig. 1, the heat map and the Bland-Altman plot."""
    tables, rec = result.tables, result.record
    s = rec["settings"]
    k = s["small_cell_threshold"]
    units = count_text(tables["services"].set_index("group").loc[OVERALL, "services"], k)
    shown = {
        name: {"frame": tables[name], "method": tests_method(tables["tests"], name, s["alpha"])} for name in _TESTED
    }
    figures = {
        name: {"drawn": name in result.figures, "reason": rec["omitted_figures"].get(name, "not drawn")}
        for name in ("modules_per_participant", "module_heatmap", "bland_altman")
    }
    return render_template(
        "implementation/section.html.j2",
        n_participants=rec["n_participants"],
        units=units,
        alpha=s["alpha"],
        slip_alpha=SOURCE_SLIP_ALPHA,
        flag_list=result.flags,
        shown=shown,
        agreement=agreement_display(tables["imrs_agreement"]),
        figures=figures,
        k=k,
        suppress=s["suppress_small_cells"],
        n_small=small_cell_count(tables),
    )
