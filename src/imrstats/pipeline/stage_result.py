"""The shape every analysis stage returns, and how it is written to disk.

A stage (trial, services, meta, implementation, audit) is a plain function on data frames that returns a
`StageResult`: aggregate tables, figures, a JSON-serialisable record, a human summary for the CLI and an
HTML section for the report. `write_stage` writes all of them atomically under one directory, so the CLI,
a Snakemake rule and a notebook produce the same files from the same call.

Tables and JSON hold aggregates only (estimates, counts, means): never a participant's row or id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from imrstats.core.io import atomic_path, write_csv, write_text
from imrstats.results import identifiers_first, to_json

__all__ = ["StageResult", "to_json", "write_stage"]


@dataclass
class StageResult:
    stage: str  # "services", "implementation", ...
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict = field(default_factory=dict)  # name -> matplotlib Figure
    record: dict = field(default_factory=dict)  # JSON-serialisable results (for --json)
    summary: str = ""  # human summary (CLI stdout)
    html: str = ""  # report section; figures referenced as figures/<name>.png
    flags: list[str] = field(default_factory=list)  # failed checks / non-convergence, shown in the report


def write_stage(result: StageResult, out_dir: str | Path) -> dict[str, Path]:
    """Write tables (CSV; tables of Estimate rows with their identifier columns first, `identifiers_first`),
    figures (PNG by `imrstats.report.figures.png_bytes`: a palette of at most 256 colours, deterministic),
    result.json, summary.txt and section.html."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)  # always present: rules declare these folders
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, frame in result.tables.items():
        written[f"table:{name}"] = out_dir / "tables" / f"{name}.csv"
        write_csv(identifiers_first(frame), written[f"table:{name}"])  # columns reordered, values as they are
    from imrstats.report.figures import DPI, png_bytes

    for name, fig in result.figures.items():
        path = out_dir / "figures" / f"{name}.png"
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(png_bytes(fig, dpi=DPI))  # the report's one PNG writer: small, deterministic
        written[f"figure:{name}"] = path
        import matplotlib.pyplot as plt

        plt.close(fig)
    record = {"stage": result.stage, "flags": result.flags, **result.record}
    written["json"] = out_dir / "result.json"
    write_text(to_json(record), written["json"])
    written["summary"] = out_dir / "summary.txt"
    write_text(result.summary.rstrip() + "\n", written["summary"])
    written["html"] = out_dir / "section.html"
    write_text(result.html, written["html"])
    return written
