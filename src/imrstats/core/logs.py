"""Send a step's output to its log file (Snakemake rules), keeping the terminal for progress."""

from __future__ import annotations

import contextlib
import sys
import traceback
from pathlib import Path


@contextlib.contextmanager
def log_to(path: str | Path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "w", encoding="utf-8") as handle,
        contextlib.redirect_stdout(handle),
        contextlib.redirect_stderr(handle),
    ):
        try:
            yield handle
        except SystemExit as exc:
            print(exc, file=handle)
            print(exc, file=sys.__stderr__)
            raise
        except Exception as exc:
            traceback.print_exc(file=handle)
            print(f"error: {exc} (details in {path})", file=sys.__stderr__)
            raise
