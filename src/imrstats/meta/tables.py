"""Assembling the meta stages' tables: identifying columns put in front, per-outcome parts stacked."""

from __future__ import annotations

import pandas as pd


def with_leading_columns(frame: pd.DataFrame, **columns) -> pd.DataFrame:
    """A copy of ``frame`` with ``columns`` (name=value, a constant or one value per row) as its first
    columns, in the order given, replacing columns of the same name."""
    out = frame.copy()
    for i, (name, value) in enumerate(columns.items()):
        if name in out.columns:
            out = out.drop(columns=name)
        out.insert(i, name, value)
    return out


def stack_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The non-empty frames one under another (a new 0..n-1 index); an empty frame if there are none."""
    frames = [f for f in frames if f is not None and len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
