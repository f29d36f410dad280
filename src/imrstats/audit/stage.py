"""The audit stage: every row of the curated published data and of the shipped audit cases (or a user's own
CSVs) checked by every applicable rule of `imrstats.audit.checks`; the findings, their counts per rule and
severity, a record and a terminal summary. The report section is rendered from the result by
`imrstats.audit.section`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imrstats.audit.checks import (
    INCONSISTENT,
    INVALID_INPUT,
    SEVERITIES,
    audit_frames,
    decimal_comma_cells,
    read_audit_table,
)
from imrstats.config import section_settings
from imrstats.errors import AnalysisError
from imrstats.pipeline.stage_result import StageResult


def default_inputs() -> list[Path]:
    """The tables the audit reads unless `audit.inputs` names others: the curated published rows and the
    shipped audit cases."""
    from imrstats.data.published import PUBLISHED_DIR

    return [PUBLISHED_DIR / "published_outcomes.csv", PUBLISHED_DIR / "audit_cases.csv"]


def count_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings per rule and severity (wide: one column per severity)."""
    rules = findings["rule"].str.replace("_reported_as_equality", "", regex=False)
    counts = pd.crosstab(rules, findings["severity"]).reindex(columns=list(SEVERITIES), fill_value=0)
    counts = counts.reset_index().rename(columns={"index": "rule", "row_0": "rule"})
    counts.columns.name = None
    return counts.rename(columns={counts.columns[0]: "rule"})


def run_audit_stage(
    tables: dict[str, pd.DataFrame] | None, settings: dict | None, *, seed: int | None = None
) -> StageResult:
    """The audit stage: every row of the curated published data and of the shipped audit cases (or the CSVs in
    ``settings['inputs']``), plus any table in ``tables`` whose name starts with ``audit_`` (already read as
    text), checked by every applicable rule. ``seed`` is unused (the audit is deterministic)."""
    s = section_settings("audit", settings)
    paths = [Path(p) for p in s["inputs"]] if s["inputs"] is not None else default_inputs()
    frames = {path.name: read_audit_table(path) for path in paths}
    frames.update({name: frame for name, frame in (tables or {}).items() if name.startswith("audit_")})
    if not frames:
        raise AnalysisError("nothing to audit: give CSV paths in audit.inputs or a table named audit_*")
    findings = audit_frames(frames, alpha=float(s["alpha"]))
    counts = count_findings(findings)
    bad = findings.loc[findings["severity"] == INCONSISTENT]
    invalid = findings.loc[findings["rule"] == INVALID_INPUT]
    commas = [line for name, frame in frames.items() for line in decimal_comma_cells(frame, name)]
    flags = [
        f"{r.row} {r.study} {r.instrument}: {r.rule}: {r.reported} ({r.recomputed})".replace("  ", " ")
        for r in bad.itertuples()
    ]
    flags += [" ".join(filter(None, (str(r.row), r.study))) + f": {r.detail}" for r in invalid.itertuples()]
    flags += commas
    record = {
        "settings": {**s, "inputs": [str(p) for p in paths]},
        "rows_audited": {name: int(len(frame)) for name, frame in frames.items()},
        "counts": {sev: int((findings["severity"] == sev).sum()) for sev in SEVERITIES},
        "by_rule": counts.to_dict("records"),
        "inconsistent": bad.to_dict("records"),
        "invalid_input_rows": sorted(set(invalid["row"]), key=str),
        "decimal_commas": commas,
    }
    return StageResult(
        stage="audit",
        tables={"findings": findings, "counts": counts},
        figures={},
        record=record,
        summary=audit_summary(findings, frames),
        flags=flags,
    )


def audit_summary(findings: pd.DataFrame, frames: dict[str, pd.DataFrame]) -> str:
    lines = [
        f"Audit of published numbers: {sum(len(f) for f in frames.values())} rows in "
        f"{', '.join(frames)}; {len(findings)} findings"
    ]
    for sev in SEVERITIES:
        lines.append(f"  {sev:>17}: {int((findings['severity'] == sev).sum())}")
    bad = findings.loc[findings["severity"] == INCONSISTENT]
    if len(bad):
        lines.append("Inconsistent:")
        for r in bad.itertuples():
            lines.append(f"  {r.row:<28} {r.study} {r.instrument} [{r.rule}] {r.reported} -> {r.recomputed}")
    return "\n".join(lines)
