"""Progress bars for long loops (outcomes x imputations, Bayesian fits), shown only when a person watches.

A bar appears on stderr when stderr is a terminal, or when IMRSTATS_PROGRESS=1 (e.g. to follow a
Snakemake job's log with `tail -f`); otherwise the loop runs silently, so logs, tests and byte-identical
outputs are unaffected. Snakemake itself reports job progress ("N of M steps done").
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    flag = os.environ.get("IMRSTATS_PROGRESS", "")
    if flag in ("0", "1"):
        return flag == "1"
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    if not progress_enabled():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False)
