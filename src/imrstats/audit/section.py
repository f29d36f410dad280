"""The audit stage's report section, rendered from its `StageResult` (findings, counts, settings in the
record, flags) through `report/templates/audit/section.html.j2`."""

from __future__ import annotations

from imrstats.audit.checks import CONSISTENT, INCONSISTENT, UNCHECKABLE
from imrstats.pipeline.stage_result import StageResult
from imrstats.report.html import render_template

# the rules that recompute a test, a CI / p pair or a GRIM / GRIMMER sum (counted in the closing sentence)
_RECOMPUTED = "student_t|welch_t|correlation|chisq|mann_whitney|ci_p|statistic_p|grim"


def render_audit_section(result: StageResult) -> str:
    """Rules and severities, the inconsistent findings as flags, the counts per rule, the findings shown."""
    findings = result.tables["findings"]
    show_uncheckable = bool(result.record["settings"]["show_uncheckable"])
    shown = [INCONSISTENT] + ([UNCHECKABLE] if show_uncheckable else [])
    checked = findings.loc[findings["rule"].str.contains(_RECOMPUTED) & (findings["severity"] == CONSISTENT)]
    return render_template(
        "audit/section.html.j2",
        flag_list=result.flags,
        counts=result.tables["counts"],
        findings=findings.loc[findings["severity"].isin(shown)],
        show_uncheckable=show_uncheckable,
        n_checked=len(checked),
    )
