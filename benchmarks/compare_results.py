#!/usr/bin/env python3
"""Compare two pipeline results folders and prove (or disprove) that no number changed.

Usage
-----
    python compare_results.py BEFORE_DIR AFTER_DIR [--rtol 0] [--json OUT]
                              [--ignore-key PATTERN ...] [--ignore-path GLOB ...]
                              [--text-numbers {strict,lenient}] [--max-examples 3] [--quiet]

Only the standard library, pandas and numpy are required. Parquet needs pandas' parquet engine
(pyarrow); netCDF value comparison uses h5py when it is importable. Run it with the project's venv
(e.g. /work/before/.venv/bin/python) to have both.

What is compared (every file under both folders, recursively, matched by relative path)
----------------------------------------------------------------------------------------
* ``*.csv`` / ``*.tsv``: read as text, columns matched by NAME (reordering is reported, not a
  difference; missing/added columns are listed), rows matched by position.  A column is *numeric*
  when every non-missing cell on both sides parses as a number (or all are True/False); its values
  are then compared exactly (``a == b``, NaN positions must coincide, ``inf`` equal to ``inf``) or,
  with ``--rtol R``, as ``|a-b| <= R*max(|a|,|b|)`` and the max relative difference is reported.
  A numeric value written differently (``1`` vs ``1.0``, ``nan`` vs empty) counts as identical and
  is noted as a formatting change.  Other columns are *text*: differing cells are counted with up
  to ``--max-examples`` example pairs.
* ``*.json``: both trees are walked.  Numbers (and booleans, and null-vs-number) are compared exactly
  (or with --rtol); strings are text differences; keys added/missing and list-length changes are
  listed.  Keys matching the ignore list (below) are skipped.
* ``*.parquet``: read as tables and compared like CSVs, using the stored dtypes (numeric, bool and
  datetime columns are "numeric"; object/string/categorical columns are "text"); dtype changes are
  noted.
* ``*.nc``: SHA-256 of the bytes; if the bytes differ, every HDF5 dataset and attribute is compared
  by value with h5py (numeric arrays exactly / rtol; strings as text).
* anything else (``.png``, ``.html``, ``.log``, ``.txt`` ...): SHA-256 only; "bytes differ" is
  informational and never changes the exit code.

Tolerances
----------
``--rtol R`` applies to every number.  ``--rtol-for PATTERN=R`` (repeatable) gives a larger tolerance only
where PATTERN (fnmatch, case-insensitive) matches the file's relative path (``meta/posteriors/*.nc``) or
the column name / JSON key / dotted JSON path (list indices written ``[]``) / netCDF variable
(``posterior/mu``) of the value (``*rhat*``).  A value uses the largest matching tolerance.  Differences
within tolerance are noted, not counted.

Text that embeds numbers
------------------------
Report tables often hold formatted numbers in text cells ("0.52 (0.31 to 0.73)").  For every differing
text cell/string the numbers embedded in it are extracted (tokens not glued to letters, so hashes and
identifiers are not mistaken for numbers) and compared.  If they differ the change is listed as
"text with different embedded numbers".  With ``--text-numbers strict`` (the default) such a change counts
as a numeric difference; ``--text-numbers lenient`` keeps it a text difference.

Run-specific values that are ignored (documented ignore list; add more with --ignore-key)
------------------------------------------------------------------------------------------
Patterns are shell-style (fnmatch, case-insensitive) and are matched against a JSON key name, a
dotted JSON path (``git.commit``; list items appear as ``[]``), or a CSV/parquet column name.
Ignored values are not compared at all (their presence is still checked).  Defaults:

    started finished start end start_time end_time *_started *_finished *_at timestamp*
    run_started run_finished date_run created generated          -- wall-clock times
    seconds *_seconds seconds_* elapsed* duration* runtime* wall_time* *_time_s cpu_time*
                                                                 -- durations
    git commit dirty git_*                                       -- git state
    packages versions *_version version python platform hostname host user cwd pid
                                                                 -- environment
    outputs                                                      -- provenance SHA-256 of output
                                                                    files (the files themselves are
                                                                    compared directly)

Absolute paths: every string (and JSON key) has the two results folders and their parent project
folders replaced by ``<RESULTS>`` and ``<ROOT>`` before comparison, so a clone at another path compares
equal.  Whole files can be skipped with --ignore-path (glob on the relative path); the default skips
``benchmarks/*`` (Snakemake's per-rule timings) and ``logs/*`` (log text, timestamps).  Skipped files are
still listed.

Exit code: 0 when no numeric difference, 1 when there is one, 2 on usage error.  Numeric differences are
value changes in numeric columns/JSON numbers/parquet/netCDF values, numbers added or removed (a numeric
column or a JSON key holding numbers missing on one side, a row-count change, a numeric column turning
into text), a data file (csv/tsv/json/parquet/nc) present on one side only, and (strict mode) text whose
embedded numbers changed.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_IGNORE_KEYS = [
    # wall-clock times
    "started",
    "finished",
    "start",
    "end",
    "start_time",
    "end_time",
    "*_started",
    "*_finished",
    "*_at",
    "timestamp*",
    "run_started",
    "run_finished",
    "date_run",
    "created",
    "generated",
    # durations / resources
    "seconds",
    "*_seconds",
    "seconds_*",
    "elapsed*",
    "duration*",
    "runtime*",
    "wall_time*",
    "*_time_s",
    "cpu_time*",
    # git state
    "git",
    "commit",
    "dirty",
    "git_*",
    # environment
    "packages",
    "versions",
    "*_version",
    "version",
    "python",
    "platform",
    "hostname",
    "host",
    "user",
    "cwd",
    "pid",
    # provenance hashes of the output files (the files are compared directly)
    "outputs",
]
DEFAULT_IGNORE_PATHS = ["benchmarks/*", "logs/*"]

TABLE_EXT = {".csv": ",", ".tsv": "\t"}
DATA_EXT = {".csv", ".tsv", ".json", ".parquet", ".nc"}
NA_TOKENS = {"", "na", "nan", "-nan", "n/a", "null", "none", "<na>", "nat"}
BOOL_TOKENS = {"true": True, "false": False}
INT_RE = re.compile(r"^[-+]?\d+$")
# a number token not glued to letters/underscores/other digits (hashes and identifiers are skipped)
EMBEDDED_NUM_RE = re.compile(r"(?<![\w.])[-+−]?(?:\d+(?:[.,]\d+)*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?%?(?![\w])")


# --------------------------------------------------------------------------------------------- helpers


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Ctx:
    def __init__(self, args, before: Path, after: Path):
        self.rtol = float(args.rtol)
        self.rtol_rules = []  # (pattern, rtol)
        for spec in args.rtol_for or []:
            pat, sep, val = spec.rpartition("=")
            if not sep or not pat:
                raise SystemExit(f"error: --rtol-for expects PATTERN=RTOL, got {spec!r}")
            self.rtol_rules.append((pat, float(val)))
        self.current_file = ""
        self.max_examples = int(args.max_examples)
        self.strict_text_numbers = args.text_numbers == "strict"
        self.ignore_keys = [p.lower() for p in DEFAULT_IGNORE_KEYS + list(args.ignore_key or [])]
        if args.no_default_ignores:
            self.ignore_keys = [p.lower() for p in (args.ignore_key or [])]
        self.ignore_paths = ([] if args.no_default_ignores else DEFAULT_IGNORE_PATHS) + list(args.ignore_path or [])
        # absolute-path normalisation, longest first
        subs = []
        for d, tag in ((before, "B"), (after, "A")):
            subs.append((str(d.resolve()), "<RESULTS>"))
            subs.append((str(d), "<RESULTS>"))
            subs.append((str(d.resolve().parent), "<ROOT>"))
        subs = sorted({s for s in subs if s[0] not in ("", "/", ".")}, key=lambda s: -len(s[0]))
        self.subs = subs

    def tol(self, *names: str) -> float:
        """The relative tolerance for a value: the largest of --rtol and every --rtol-for rule whose pattern
        matches the current file's relative path or one of `names` (column / JSON key / dotted path /
        netCDF variable)."""
        t = self.rtol
        cands = [self.current_file] + [str(n) for n in names if n]
        for pat, val in self.rtol_rules:
            if val > t and any(fnmatch.fnmatchcase(c.lower(), pat.lower()) for c in cands):
                t = val
        return t

    def norm(self, s: str) -> str:
        for old, new in self.subs:
            if old in s:
                s = s.replace(old, new)
        return s

    def key_ignored(self, key: str, path: str = "") -> bool:
        k = str(key).lower()
        p = path.lower()
        for pat in self.ignore_keys:
            if fnmatch.fnmatchcase(k, pat) or (p and fnmatch.fnmatchcase(p, pat)):
                return True
        return False

    def path_ignored(self, rel: str) -> bool:
        return any(fnmatch.fnmatch(rel, pat) for pat in self.ignore_paths)


def num_equal(a: float, b: float, rtol: float) -> tuple[bool, float]:
    """(equal?, relative difference) for two Python numbers (int/float/bool)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return (a is b) or (type(a) is type(b) and a == b), (0.0 if a == b else math.inf)
    if isinstance(a, int) and isinstance(b, int):
        if a == b:
            return True, 0.0
        rel = abs(a - b) / max(abs(a), abs(b))
        return rel <= rtol, rel
    fa, fb = float(a), float(b)
    if math.isnan(fa) or math.isnan(fb):
        return (math.isnan(fa) and math.isnan(fb)), (0.0 if math.isnan(fa) and math.isnan(fb) else math.inf)
    if fa == fb:
        return True, 0.0
    if math.isinf(fa) or math.isinf(fb):
        return False, math.inf
    rel = abs(fa - fb) / max(abs(fa), abs(fb))
    return rel <= rtol, rel


def embedded_numbers(s: str) -> list[str]:
    out = []
    for m in EMBEDDED_NUM_RE.finditer(s):
        tok = m.group(0).replace("−", "-")
        out.append(tok)
    return out


def _canon_num(tok: str):
    t = tok.rstrip("%").replace(",", "")
    try:
        return float(t)
    except ValueError:
        return tok


def text_numbers_differ(a: str, b: str, rtol: float) -> bool:
    na, nb = embedded_numbers(a), embedded_numbers(b)
    if len(na) != len(nb):
        return True
    for x, y in zip(na, nb):
        cx, cy = _canon_num(x), _canon_num(y)
        if isinstance(cx, float) and isinstance(cy, float):
            if not num_equal(cx, cy, rtol)[0]:
                return True
        elif cx != cy:
            return True
    return False


def short(v, n=120):
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def trunc(v, n=200):
    """A string value cut to n characters (kept as a string so the report shows it once)."""
    s = v if isinstance(v, str) else repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


# --------------------------------------------------------------------------------------------- report


def new_file_report(rel: str, kind: str) -> dict:
    return {
        "file": rel,
        "kind": kind,
        "status": "identical",
        "numeric_differences": [],  # list of dicts: what / where / examples
        "text_differences": [],  # list of dicts
        "notes": [],  # informational (formatting, reordering, bytes differ, ...)
    }


def finish(rep: dict) -> dict:
    if rep["numeric_differences"]:
        rep["status"] = "numeric-diff"
    elif rep["text_differences"]:
        rep["status"] = "text-only"
    elif rep["status"] not in ("skipped", "bytes-differ", "error"):
        rep["status"] = "identical"
    return rep


# --------------------------------------------------------------------------------------------- tables


def parse_cell(s: str):
    """A CSV cell as a Python number/bool/NaN, or None when it is not a number."""
    t = s.strip()
    lo = t.lower()
    if lo in NA_TOKENS:
        return math.nan
    if lo in BOOL_TOKENS:
        return BOOL_TOKENS[lo]
    if INT_RE.match(t):
        return int(t)
    try:
        return float(t)  # correctly rounded; accepts inf/-inf/1e-5
    except ValueError:
        return None


def classify_text_column(values: list[str]):
    """Parsed numbers for a text-read column, or None when any non-missing cell is not numeric."""
    out = []
    for v in values:
        p = parse_cell(v)
        if p is None:
            return None
        out.append(p)
    return out


def read_text_table(path: Path, sep: str) -> pd.DataFrame:
    return pd.read_csv(
        path,
        sep=sep,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        engine="python" if sep not in (",", "\t") else "c",
    )


def column_values_text(df: pd.DataFrame, col) -> list[str]:
    return df[col].tolist()


def compare_numeric_lists(a: list, b: list, ctx: Ctx, where: str, rep: dict, row_labels=None, rtol=None):
    """Compare two equally long lists of numbers; record a numeric difference if any."""
    rtol = ctx.tol() if rtol is None else rtol
    n_diff = 0
    max_rel = 0.0
    examples = []
    n_within = 0
    for i, (x, y) in enumerate(zip(a, b)):
        eq, rel = num_equal(x, y, rtol)
        if rel > 0:
            max_rel = max(max_rel, rel)
        if not eq:
            n_diff += 1
            if len(examples) < ctx.max_examples:
                examples.append(
                    {
                        "row": (row_labels[i] if row_labels is not None else i + 1),
                        "before": _jsonable(x),
                        "after": _jsonable(y),
                    }
                )
        elif rel > 0:
            n_within += 1
    info = {"where": where, "n_values": len(a), "n_different": n_diff, "max_rel_diff": _jsonable(max_rel), "rtol": rtol}
    if n_diff:
        info["examples"] = examples
        rep["numeric_differences"].append(info)
    elif n_within:
        rep["notes"].append(f"{where}: {n_within} value(s) differ within rtol={rtol:g} (max rel diff {max_rel:.3g})")
    return n_diff, max_rel


def _jsonable(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return _jsonable(float(v))
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return str(v)
    return v


def compare_text_lists(a: list[str], b: list[str], ctx: Ctx, where: str, rep: dict, row_labels=None):
    n_diff = 0
    n_num = 0
    examples, num_examples = [], []
    for i, (x, y) in enumerate(zip(a, b)):
        nx, ny = ctx.norm(x), ctx.norm(y)
        if nx == ny:
            continue
        n_diff += 1
        row = row_labels[i] if row_labels is not None else i + 1
        if text_numbers_differ(nx, ny, ctx.tol(where[8:-1] if where.startswith("column '") else where)):
            n_num += 1
            if len(num_examples) < ctx.max_examples:
                num_examples.append({"row": row, "before": trunc(x), "after": trunc(y)})
        elif len(examples) < ctx.max_examples:
            examples.append({"row": row, "before": trunc(x), "after": trunc(y)})
    if n_diff - n_num:
        rep["text_differences"].append(
            {"where": where, "n_values": len(a), "n_different": n_diff - n_num, "examples": examples}
        )
    if n_num:
        entry = {
            "where": where,
            "n_values": len(a),
            "n_different": n_num,
            "examples": num_examples,
            "what": "text with different embedded numbers",
        }
        (rep["numeric_differences"] if ctx.strict_text_numbers else rep["text_differences"]).append(entry)


def compare_frames(db: pd.DataFrame, da: pd.DataFrame, ctx: Ctx, rep: dict, typed: bool):
    """Compare two DataFrames. typed=False: all cells are strings (CSV); True: parquet dtypes."""
    cb, ca = [str(c) for c in db.columns], [str(c) for c in da.columns]
    db = db.copy()
    da = da.copy()
    db.columns, da.columns = cb, ca
    common = [c for c in cb if c in ca]
    missing = [c for c in cb if c not in ca]
    added = [c for c in ca if c not in cb]
    rep["rows"] = {"before": len(db), "after": len(da)}
    rep["columns"] = {
        "before": len(cb),
        "after": len(ca),
        "common": len(common),
        "missing_in_after": missing,
        "added_in_after": added,
    }
    if [c for c in cb if c in common] != [c for c in ca if c in common]:
        rep["notes"].append("column order differs (columns matched by name)")
    if len(cb) != len(set(cb)) or len(ca) != len(set(ca)):
        rep["notes"].append("duplicate column names")
    n = min(len(db), len(da))
    if len(db) != len(da):
        rep["numeric_differences"].append(
            {
                "where": "<rows>",
                "what": "row count differs",
                "before": len(db),
                "after": len(da),
                "note": f"first {n} rows compared by position",
            }
        )
    # index of parquet frames (non-RangeIndex) is compared as columns too
    if typed:
        for side in (db, da):
            pass
    numeric_cols, text_cols, ignored_cols = [], [], []

    def col_kind(df, c):
        if typed:
            s = df[c]
            if (
                pd.api.types.is_bool_dtype(s)
                or pd.api.types.is_numeric_dtype(s)
                or pd.api.types.is_datetime64_any_dtype(s)
                or pd.api.types.is_timedelta64_dtype(s)
            ):
                return "numeric"
            return "text"
        return "numeric" if classify_text_column(df[c].tolist()) is not None else "text"

    for c in missing + added:
        side = db if c in missing else da
        kind = col_kind(side, c)
        where = f"column {c!r} {'missing in after' if c in missing else 'added in after'}"
        if ctx.key_ignored(c):
            rep["notes"].append(where + " (ignored column)")
        elif kind == "numeric":
            rep["numeric_differences"].append({"where": where, "what": "numeric column missing/added"})
        else:
            rep["text_differences"].append({"where": where, "what": "text column missing/added"})

    for c in common:
        if ctx.key_ignored(c):
            ignored_cols.append(c)
            continue
        if typed:
            sb, sa = db[c].iloc[:n], da[c].iloc[:n]
            kb, ka = col_kind(db, c), col_kind(da, c)
            if str(db[c].dtype) != str(da[c].dtype):
                rep["notes"].append(f"column {c!r}: dtype {db[c].dtype} -> {da[c].dtype}")
            if kb == ka == "numeric":
                numeric_cols.append(c)
                vb, va = _typed_numeric_values(sb), _typed_numeric_values(sa)
                compare_numeric_lists(vb, va, ctx, f"column {c!r}", rep, rtol=ctx.tol(c))
            elif kb == ka == "text":
                text_cols.append(c)
                compare_text_lists(_typed_text_values(sb), _typed_text_values(sa), ctx, f"column {c!r}", rep)
            else:
                numeric_cols.append(c)
                rep["numeric_differences"].append(
                    {
                        "where": f"column {c!r}",
                        "what": f"column kind changed {kb} -> {ka} ({db[c].dtype} -> {da[c].dtype})",
                    }
                )
            continue
        tb, ta = db[c].tolist()[:n], da[c].tolist()[:n]
        pb, pa = classify_text_column(db[c].tolist()), classify_text_column(da[c].tolist())
        if pb is not None and pa is not None:
            numeric_cols.append(c)
            compare_numeric_lists(pb[:n], pa[:n], ctx, f"column {c!r}", rep, rtol=ctx.tol(c))
            nfmt = sum(1 for x, y in zip(tb, ta) if x != y)
            ndiff_vals = sum(1 for x, y in zip(pb[:n], pa[:n]) if num_equal(x, y, 0.0)[1] > 0)
            if nfmt > ndiff_vals:
                rep["notes"].append(
                    f"column {c!r}: {nfmt - ndiff_vals} numerically equal value(s) written "
                    f"differently (e.g. 1 vs 1.0, nan vs empty)"
                )
        elif pb is None and pa is None:
            text_cols.append(c)
            compare_text_lists(tb, ta, ctx, f"column {c!r}", rep)
        else:
            # numeric on one side only: all-missing columns are numeric; treat as text comparison but flag
            numeric_cols.append(c)
            ndiff = sum(1 for x, y in zip(tb, ta) if ctx.norm(x) != ctx.norm(y))
            ex = [
                {"row": i + 1, "before": x, "after": y}
                for i, (x, y) in enumerate(zip(tb, ta))
                if ctx.norm(x) != ctx.norm(y)
            ][: ctx.max_examples]
            rep["numeric_differences"].append(
                {
                    "where": f"column {c!r}",
                    "what": f"column is {'numeric' if pb is not None else 'text'} "
                    f"before and {'numeric' if pa is not None else 'text'} after",
                    "n_different": ndiff,
                    "examples": ex,
                }
            )
    if (rep["numeric_differences"] or rep["text_differences"]) and len(db) == len(da) and common:
        # diagnostic only: are these the same rows in another order?
        try:
            rb = sorted(tuple(ctx.norm(str(v)) for v in r) for r in db[common].itertuples(index=False))
            ra = sorted(tuple(ctx.norm(str(v)) for v in r) for r in da[common].itertuples(index=False))
            if rb == ra:
                rep["notes"].append("the rows are the same set in a different order (rows are compared by position)")
        except Exception:  # noqa: BLE001
            pass
    rep["columns"]["numeric"] = numeric_cols
    rep["columns"]["text"] = text_cols
    rep["columns"]["ignored"] = ignored_cols


def _typed_numeric_values(s: pd.Series) -> list:
    if pd.api.types.is_datetime64_any_dtype(s) or pd.api.types.is_timedelta64_dtype(s):
        return [
            math.nan if pd.isna(v) else int(pd.Timestamp(v).value if not isinstance(v, pd.Timedelta) else v.value)
            for v in s.tolist()
        ]
    out = []
    for v in s.tolist():
        if v is None or (not isinstance(v, (bool, np.bool_)) and pd.isna(v)):
            out.append(math.nan)
        elif isinstance(v, (bool, np.bool_)):
            out.append(bool(v))
        elif isinstance(v, (int, np.integer)):
            out.append(int(v))
        else:
            out.append(float(v))
    return out


def _typed_text_values(s: pd.Series) -> list[str]:
    return [
        "<NA>" if (v is None or (not isinstance(v, (list, dict, np.ndarray)) and pd.isna(v))) else str(v)
        for v in s.tolist()
    ]


def compare_table_file(pb: Path, pa: Path, rel: str, ctx: Ctx) -> dict:
    sep = TABLE_EXT[pb.suffix.lower()]
    rep = new_file_report(rel, "table")
    try:
        db, da = read_text_table(pb, sep), read_text_table(pa, sep)
    except Exception as e:  # noqa: BLE001 - fall back to a line comparison
        rep["notes"].append(f"could not parse as a table ({e}); compared as text lines")
        return compare_as_lines(pb, pa, rep, ctx)
    compare_frames(db, da, ctx, rep, typed=False)
    if sha256(pb) != sha256(pa) and not rep["numeric_differences"] and not rep["text_differences"]:
        rep["notes"].append("bytes differ but the parsed values are identical (formatting/order/ignored columns)")
    return finish(rep)


def compare_as_lines(pb: Path, pa: Path, rep: dict, ctx: Ctx) -> dict:
    lb = pb.read_text(errors="replace").splitlines()
    la = pa.read_text(errors="replace").splitlines()
    if len(lb) != len(la):
        rep["numeric_differences"].append(
            {"where": "<lines>", "what": "line count differs", "before": len(lb), "after": len(la)}
        )
    compare_text_lists(lb[: min(len(lb), len(la))], la[: min(len(lb), len(la))], ctx, "lines", rep)
    return finish(rep)


def compare_parquet_file(pb: Path, pa: Path, rel: str, ctx: Ctx) -> dict:
    rep = new_file_report(rel, "parquet")
    if sha256(pb) == sha256(pa):
        rep["notes"].append("bytes identical")
        return finish(rep)
    try:
        db, da = pd.read_parquet(pb), pd.read_parquet(pa)
    except Exception as e:  # noqa: BLE001
        rep["status"] = "error"
        rep["numeric_differences"].append({"where": "<file>", "what": f"bytes differ and cannot read parquet: {e}"})
        return finish(rep)
    for df in (db, da):
        if not isinstance(df.index, pd.RangeIndex):
            df.reset_index(inplace=True)
    compare_frames(db, da, ctx, rep, typed=True)
    if not rep["numeric_differences"] and not rep["text_differences"]:
        rep["notes"].append("bytes differ but the table values are identical (metadata/encoding)")
    return finish(rep)


# --------------------------------------------------------------------------------------------- JSON


def _has_numbers(v) -> bool:
    if isinstance(v, bool) or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return True
    if isinstance(v, dict):
        return any(_has_numbers(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_numbers(x) for x in v)
    return False


class JsonWalker:
    def __init__(self, ctx: Ctx, rep: dict):
        self.ctx, self.rep = ctx, rep
        self.num_diffs = []  # (path, before, after, rel)
        self.text_diffs = []  # (path, before, after)
        self.textnum_diffs = []  # (path, before, after)
        self.struct_num = []  # structural changes involving numbers
        self.struct_text = []
        self.n_numbers = 0
        self.n_strings = 0
        self.n_ignored = 0
        self.within_rtol = 0
        self.max_rel = 0.0

    def walk(self, b, a, path: str):
        ctx = self.ctx
        if isinstance(b, dict) and isinstance(a, dict):
            nb = {ctx.norm(str(k)): v for k, v in b.items()}
            na = {ctx.norm(str(k)): v for k, v in a.items()}
            for k in nb:
                sub = f"{path}.{k}" if path else k
                if ctx.key_ignored(k, sub):
                    self.n_ignored += 1
                    if k not in na:
                        self.struct_text.append((sub, "key missing in after (ignored key)"))
                    continue
                if k not in na:
                    (self.struct_num if _has_numbers(nb[k]) else self.struct_text).append(
                        (sub, f"key missing in after: {short(nb[k], 80)}")
                    )
                    continue
                self.walk(nb[k], na[k], sub)
            for k in na:
                if k not in nb:
                    sub = f"{path}.{k}" if path else k
                    if ctx.key_ignored(k, sub):
                        self.struct_text.append((sub, "key added in after (ignored key)"))
                        continue
                    (self.struct_num if _has_numbers(na[k]) else self.struct_text).append(
                        (sub, f"key added in after: {short(na[k], 80)}")
                    )
            return
        if isinstance(b, list) and isinstance(a, list):
            if len(b) != len(a):
                (self.struct_num if (_has_numbers(b) or _has_numbers(a)) else self.struct_text).append(
                    (path, f"list length {len(b)} -> {len(a)} (first {min(len(a), len(b))} compared)")
                )
            for i, (x, y) in enumerate(zip(b, a)):
                self.walk(x, y, f"{path}[{i}]")
            return
        b_num = isinstance(b, (int, float)) and not isinstance(b, bool)
        a_num = isinstance(a, (int, float)) and not isinstance(a, bool)
        if b_num and a_num:
            self.n_numbers += 1
            key = path.rsplit(".", 1)[-1].split("[", 1)[0]
            eq, rel = num_equal(b, a, ctx.tol(key, re.sub(r"\[\d+\]", "[]", path)))
            if rel > 0 and not math.isinf(rel):
                self.max_rel = max(self.max_rel, rel)
            if not eq:
                self.num_diffs.append((path, b, a, rel))
            elif rel > 0:
                self.within_rtol += 1
            return
        if isinstance(b, bool) and isinstance(a, bool):
            self.n_numbers += 1
            if b != a:
                self.num_diffs.append((path, b, a, math.inf))
            return
        if isinstance(b, str) and isinstance(a, str):
            self.n_strings += 1
            nb, na = ctx.norm(b), ctx.norm(a)
            if nb != na:
                if text_numbers_differ(nb, na, ctx.tol(path.rsplit(".", 1)[-1].split("[", 1)[0])):
                    self.textnum_diffs.append((path, b, a))
                else:
                    self.text_diffs.append((path, b, a))
            return
        if b is None and a is None:
            return
        # type change (number <-> null/string/dict/list, etc.)
        if _has_numbers(b) or _has_numbers(a) or b is None or a is None:
            self.struct_num.append((path, f"type/value changed {short(b, 60)} -> {short(a, 60)}"))
        else:
            self.struct_text.append((path, f"type changed {type(b).__name__} -> {type(a).__name__}"))

    def into_report(self):
        rep, ctx, k = self.rep, self.ctx, self.ctx.max_examples
        rep["json"] = {
            "numbers_compared": self.n_numbers,
            "strings_compared": self.n_strings,
            "ignored_keys_skipped": self.n_ignored,
            "max_rel_diff": _jsonable(self.max_rel),
        }
        if self.num_diffs:
            rep["numeric_differences"].append(
                {
                    "where": "numbers",
                    "n_different": len(self.num_diffs),
                    "max_rel_diff": _jsonable(max(r for *_, r in self.num_diffs)),
                    "examples": [
                        {"path": p, "before": _jsonable(x), "after": _jsonable(y)} for p, x, y, _ in self.num_diffs[:k]
                    ],
                    "paths": [p for p, *_ in self.num_diffs[:200]],
                }
            )
        if self.within_rtol:
            rep["notes"].append(
                f"{self.within_rtol} number(s) differ within the tolerance (max rel diff {self.max_rel:.3g})"
            )
        if self.struct_num:
            rep["numeric_differences"].append(
                {
                    "where": "structure",
                    "what": "keys/list items holding numbers added/missing or type changed",
                    "n_different": len(self.struct_num),
                    "examples": [{"path": p, "change": c} for p, c in self.struct_num[:k]],
                    "paths": [p for p, _ in self.struct_num[:200]],
                }
            )
        if self.struct_text:
            rep["text_differences"].append(
                {
                    "where": "structure",
                    "what": "text keys added/missing or type changed",
                    "n_different": len(self.struct_text),
                    "examples": [{"path": p, "change": c} for p, c in self.struct_text[:k]],
                    "paths": [p for p, _ in self.struct_text[:200]],
                }
            )
        if self.text_diffs:
            rep["text_differences"].append(
                {
                    "where": "strings",
                    "n_different": len(self.text_diffs),
                    "examples": [{"path": p, "before": trunc(x), "after": trunc(y)} for p, x, y in self.text_diffs[:k]],
                    "paths": [p for p, *_ in self.text_diffs[:200]],
                }
            )
        if self.textnum_diffs:
            entry = {
                "where": "strings",
                "what": "text with different embedded numbers",
                "n_different": len(self.textnum_diffs),
                "examples": [{"path": p, "before": trunc(x), "after": trunc(y)} for p, x, y in self.textnum_diffs[:k]],
                "paths": [p for p, *_ in self.textnum_diffs[:200]],
            }
            (rep["numeric_differences"] if ctx.strict_text_numbers else rep["text_differences"]).append(entry)


def compare_json_file(pb: Path, pa: Path, rel: str, ctx: Ctx) -> dict:
    rep = new_file_report(rel, "json")
    try:
        jb = json.loads(pb.read_text())
        ja = json.loads(pa.read_text())
    except Exception as e:  # noqa: BLE001
        rep["notes"].append(f"could not parse as JSON ({e}); compared as text lines")
        return compare_as_lines(pb, pa, rep, ctx)
    w = JsonWalker(ctx, rep)
    w.walk(jb, ja, "")
    w.into_report()
    return finish(rep)


# --------------------------------------------------------------------------------------------- netCDF


def compare_nc_file(pb: Path, pa: Path, rel: str, ctx: Ctx) -> dict:
    rep = new_file_report(rel, "netcdf")
    if sha256(pb) == sha256(pa):
        rep["notes"].append("bytes identical")
        return finish(rep)
    try:
        import h5py  # noqa: PLC0415
    except ImportError:
        rep["status"] = "bytes-differ"
        rep["notes"].append(
            "bytes differ; h5py not available so values were not compared (counted as a numeric difference to be safe)"
        )
        rep["numeric_differences"].append({"where": "<file>", "what": "bytes differ (h5py unavailable)"})
        return finish(rep)

    def collect(f):
        items = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                items[name] = obj

        f.visititems(visit)
        return items

    def attrs_of(obj):
        out = {}
        for k, v in obj.attrs.items():
            try:
                if isinstance(v, bytes):
                    v = v.decode(errors="replace")
                elif isinstance(v, np.ndarray):
                    if v.dtype.kind in "SOU":
                        v = [x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in v.ravel()]
                    else:
                        v = v.tolist()
                elif isinstance(v, np.generic):
                    v = v.item()
                else:
                    v = str(v) if not isinstance(v, (int, float, str)) else v
            except Exception:  # noqa: BLE001
                v = str(v)
            if k.startswith("_") or k in ("DIMENSION_LIST", "REFERENCE_LIST"):
                continue  # HDF5/netCDF internals (object references, _Netcdf4Dimid, ...)
            out[k] = v
        return out

    try:
        with h5py.File(pb, "r") as fb, h5py.File(pa, "r") as fa:
            ib, ia = collect(fb), collect(fa)
            w = JsonWalker(ctx, rep)
            # attributes (creation dates, library versions are in the ignore list)
            for name in sorted(set(["/"] + [g for g in _groups(fb)]) | set(["/"] + [g for g in _groups(fa)])):
                if name in fb and name in fa:
                    w.walk(attrs_of(fb[name]), attrs_of(fa[name]), f"{name}@attrs")
            for name in sorted(set(ib) | set(ia)):
                if name not in ia or name not in ib:
                    rep["numeric_differences"].append(
                        {"where": f"variable {name}", "what": "missing in after" if name in ib else "added in after"}
                    )
                    continue
                w.walk(attrs_of(ib[name]), attrs_of(ia[name]), f"{name}@attrs")
                xb, xa = ib[name][()], ia[name][()]
                xb, xa = np.asarray(xb), np.asarray(xa)
                if xb.shape != xa.shape:
                    rep["numeric_differences"].append(
                        {"where": f"variable {name}", "what": f"shape {xb.shape} -> {xa.shape}"}
                    )
                    continue
                if xb.dtype.kind in "biufcmM" and xa.dtype.kind in "biufcmM":
                    _compare_arrays(xb, xa, ctx, f"variable {name}", rep)
                elif xb.dtype.kind in "SOUV" or xa.dtype.kind in "SOUV":
                    tb = [x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in xb.ravel()]
                    ta = [x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in xa.ravel()]
                    compare_text_lists(tb, ta, ctx, f"variable {name}", rep)
            w.into_report()
            attrs = rep.pop("json")
            rep["netcdf"] = {
                "variables_compared": len(set(ib) & set(ia)),
                "variables_before": len(ib),
                "variables_after": len(ia),
                "attribute_numbers_compared": attrs["numbers_compared"],
                "attribute_strings_compared": attrs["strings_compared"],
            }
    except Exception as e:  # noqa: BLE001
        rep["status"] = "error"
        rep["numeric_differences"].append({"where": "<file>", "what": f"bytes differ and h5py failed: {e}"})
        return finish(rep)
    if not rep["numeric_differences"] and not rep["text_differences"]:
        rep["notes"].append("bytes differ but all variables and attributes are identical")
    return finish(rep)


def _groups(f):
    import h5py  # noqa: PLC0415

    out = []
    f.visititems(lambda n, o: out.append(n) if isinstance(o, h5py.Group) else None)
    return out


def _compare_arrays(xb: np.ndarray, xa: np.ndarray, ctx: Ctx, where: str, rep: dict):
    rtol = ctx.tol(where.split(" ", 1)[-1])
    b = xb.ravel()
    a = xa.ravel()
    if b.dtype.kind in "mM":
        b = b.view("i8")
    if a.dtype.kind in "mM":
        a = a.view("i8")
    if b.dtype.kind == "c" or a.dtype.kind == "c":
        bb = np.concatenate([b.real, b.imag]).astype(float)
        aa = np.concatenate([a.real, a.imag]).astype(float)
        b, a = bb, aa
    if b.dtype.kind in "biu" and a.dtype.kind in "biu":
        diff = b.astype(object) != a.astype(object)
        bad = np.asarray(diff, dtype=bool)
        relv = np.zeros(len(b))
        if bad.any():
            bo, ao = b.astype(float), a.astype(float)
            relv = np.abs(bo - ao) / np.maximum(np.maximum(np.abs(bo), np.abs(ao)), 1e-300)
            bad = relv > rtol
    else:
        bf, af = b.astype(float), a.astype(float)
        both_nan = np.isnan(bf) & np.isnan(af)
        same = (bf == af) | both_nan
        with np.errstate(invalid="ignore", divide="ignore"):
            relv = np.where(same, 0.0, np.abs(bf - af) / np.maximum(np.abs(bf), np.abs(af)))
        relv = np.where(np.isnan(relv), np.inf, relv)
        bad = relv > rtol
    max_rel = float(np.max(relv)) if len(relv) else 0.0
    if bad.any():
        idx = np.flatnonzero(bad)[: ctx.max_examples]
        rep["numeric_differences"].append(
            {
                "where": where,
                "n_values": int(len(b)),
                "n_different": int(bad.sum()),
                "max_rel_diff": _jsonable(max_rel),
                "rtol": rtol,
                "examples": [
                    {"flat_index": int(i), "before": _jsonable(b[i].item()), "after": _jsonable(a[i].item())}
                    for i in idx
                ],
            }
        )
    elif max_rel > 0:
        rep["notes"].append(f"{where}: values differ within rtol={rtol:g} (max rel diff {max_rel:.3g})")


# --------------------------------------------------------------------------------------------- driver


def compare_other(pb: Path, pa: Path, rel: str) -> dict:
    rep = new_file_report(rel, "bytes")
    hb, ha = sha256(pb), sha256(pa)
    rep["sha256"] = {"before": hb, "after": ha}
    if hb != ha:
        rep["status"] = "bytes-differ"
        rep["notes"].append("bytes differ (informational)")
    return rep


def list_files(root: Path) -> set[str]:
    out = set()
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    return out


def compare_dirs(before: Path, after: Path, ctx: Ctx) -> dict:
    fb, fa = list_files(before), list_files(after)
    reports = []
    only_before = sorted(fb - fa)
    only_after = sorted(fa - fb)
    for rel in sorted(fb & fa):
        pb, pa = before / rel, after / rel
        ext = pb.suffix.lower()
        ctx.current_file = rel
        if ctx.path_ignored(rel):
            rep = new_file_report(rel, "skipped")
            rep["status"] = "skipped"
            same = sha256(pb) == sha256(pa)
            rep["notes"].append("skipped by --ignore-path (run-specific)" + ("" if same else "; bytes differ"))
            reports.append(rep)
            continue
        try:
            if ext in TABLE_EXT:
                rep = compare_table_file(pb, pa, rel, ctx)
            elif ext == ".json":
                rep = compare_json_file(pb, pa, rel, ctx)
            elif ext == ".parquet":
                rep = compare_parquet_file(pb, pa, rel, ctx)
            elif ext == ".nc":
                rep = compare_nc_file(pb, pa, rel, ctx)
            else:
                rep = compare_other(pb, pa, rel)
        except Exception as e:  # noqa: BLE001
            rep = new_file_report(rel, "error")
            rep["status"] = "error"
            rep["numeric_differences"].append(
                {"where": "<file>", "what": f"comparison failed: {type(e).__name__}: {e}"}
            )
        reports.append(rep)
    one_side = []
    for rel, side in [(r, "before") for r in only_before] + [(r, "after") for r in only_after]:
        data = Path(rel).suffix.lower() in DATA_EXT and not ctx.path_ignored(rel)
        one_side.append({"file": rel, "only_in": side, "data_file": data})
    return {
        "before": str(before),
        "after": str(after),
        "rtol": ctx.rtol,
        "rtol_for": ctx.rtol_rules,
        "text_numbers": "strict" if ctx.strict_text_numbers else "lenient",
        "ignore_keys": ctx.ignore_keys,
        "ignore_paths": ctx.ignore_paths,
        "files": reports,
        "only_one_side": one_side,
    }


def print_report(result: dict, quiet: bool) -> dict:
    files = result["files"]
    num = [r for r in files if r["numeric_differences"]]
    txt = [r for r in files if not r["numeric_differences"] and r["text_differences"]]
    bytes_differ = [r for r in files if r["status"] == "bytes-differ" and not r["numeric_differences"]]
    skipped = [r for r in files if r["status"] == "skipped"]
    compared = [r for r in files if r["status"] != "skipped"]
    one_side_data = [o for o in result["only_one_side"] if o["data_file"]]
    p = print

    p(f"Comparing  BEFORE {result['before']}\n           AFTER  {result['after']}")
    p(
        f"rtol={result['rtol']}  text-numbers={result['text_numbers']}"
        + (f"  rtol-for={['%s=%g' % r for r in result['rtol_for']]}" if result["rtol_for"] else "")
    )
    p("")
    for r in files:
        if quiet and r["status"] in ("identical", "skipped"):
            continue
        line = f"[{r['status']:>12}] {r['file']}"
        if "rows" in r:
            c = r["columns"]
            line += (
                f"  rows {r['rows']['before']}/{r['rows']['after']}, cols {c['common']} matched"
                f" ({len(c.get('numeric', []))} numeric, {len(c.get('text', []))} text"
                + (f", {len(c.get('ignored', []))} ignored" if c.get("ignored") else "")
                + ")"
            )
            if c["missing_in_after"]:
                line += f", missing in after: {c['missing_in_after']}"
            if c["added_in_after"]:
                line += f", added in after: {c['added_in_after']}"
        if "netcdf" in r:
            nc = r["netcdf"]
            line += (
                f"  bytes differ; {nc['variables_compared']} variables and "
                f"{nc['attribute_numbers_compared'] + nc['attribute_strings_compared']} "
                "attributes compared by value"
            )
        if "json" in r:
            j = r["json"]
            line += f"  {j['numbers_compared']} numbers, {j['strings_compared']} strings compared"
        p(line)
        if quiet and r["status"] in ("bytes-differ",):
            continue
        for d in r["numeric_differences"]:
            p("      NUMERIC: " + _fmt_diff(d))
        for d in r["text_differences"]:
            p("      text:    " + _fmt_diff(d))
        for n in r["notes"]:
            if n == "bytes identical" or (quiet and n == "bytes differ (informational)"):
                continue
            p("      note:    " + n)
    if result["only_one_side"]:
        p("")
        p("Files present on one side only:")
        for o in result["only_one_side"]:
            p(f"  only in {o['only_in']:<6} {'(DATA) ' if o['data_file'] else ''}{o['file']}")
    p("")
    p("Summary")
    p(f"  files compared:                     {len(compared)} (plus {len(skipped)} skipped by --ignore-path)")
    p(
        f"  files with numeric differences:     {len(num)}"
        + (f"  -> {', '.join(r['file'] for r in num)}" if num else "")
    )
    p(
        f"  files with only text differences:   {len(txt)}"
        + (f"  -> {', '.join(r['file'] for r in txt)}" if txt else "")
    )
    p(f"  other files whose bytes differ:     {len(bytes_differ)} (informational: sha256 only)")
    p(f"  files only on one side:             {len(result['only_one_side'])} ({len(one_side_data)} data files)")
    if one_side_data:
        p(f"  data files on one side only:        {len(one_side_data)} (count as numeric differences)")
    identical = not num and not one_side_data
    p("  RESULT: " + ("no numeric differences" if identical else "NUMERIC DIFFERENCES FOUND"))
    result["summary"] = {
        "files_compared": len(compared),
        "files_skipped": len(skipped),
        "files_numeric_diff": [r["file"] for r in num],
        "files_text_only_diff": [r["file"] for r in txt],
        "files_bytes_differ": [r["file"] for r in bytes_differ],
        "files_only_one_side": result["only_one_side"],
        "numeric_identical": identical,
    }
    return result


def _fmt_diff(d: dict) -> str:
    s = d.get("where", "")
    if d.get("what"):
        s += f" — {d['what']}"
    if "n_different" in d:
        s += f": {d['n_different']}" + (f"/{d['n_values']}" if "n_values" in d else "") + " differ"
    if "max_rel_diff" in d and d.get("n_different"):
        s += f", max rel diff {d['max_rel_diff']}"
    if "before" in d and "after" in d and "examples" not in d:
        s += f" ({d['before']} -> {d['after']})"
    if d.get("note"):
        s += f" [{d['note']}]"
    for ex in d.get("examples", []):
        loc = ex.get("path", ex.get("row", ex.get("flat_index", "")))
        if "change" in ex:
            s += f"\n               {loc}: {ex['change']}"
        else:
            s += (
                f"\n               {('row ' if 'row' in ex else '')}{loc}: "
                f"{short(ex['before'], 90)} -> {short(ex['after'], 90)}"
            )
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring (python compare_results.py --help-long) for details.",
    )
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rtol", type=float, default=0.0, help="relative tolerance for numbers (default 0: exact)")
    ap.add_argument(
        "--rtol-for",
        action="append",
        metavar="PATTERN=RTOL",
        help="a larger relative tolerance for files (glob on the relative path) or for columns / JSON "
        "keys / dotted JSON paths / netCDF variables matching PATTERN (repeatable)",
    )
    ap.add_argument("--json", type=Path, help="write the full report as JSON to this file")
    ap.add_argument(
        "--ignore-key",
        action="append",
        metavar="PATTERN",
        help="JSON key / dotted path / column name glob to ignore (repeatable); added to the defaults",
    )
    ap.add_argument(
        "--ignore-path",
        action="append",
        metavar="GLOB",
        help="relative file path glob to skip (repeatable); added to the defaults (benchmarks/*, logs/*)",
    )
    ap.add_argument("--no-default-ignores", action="store_true", help="drop the default key and path ignore lists")
    ap.add_argument(
        "--text-numbers",
        choices=["strict", "lenient"],
        default="strict",
        help="strict (default): text whose embedded numbers changed counts as a numeric difference",
    )
    ap.add_argument("--max-examples", type=int, default=3)
    ap.add_argument("--quiet", action="store_true", help="print only files that differ, and the summary")
    if argv is None:
        argv = sys.argv[1:]
    if "--help-long" in argv:
        print(__doc__)
        return 0
    args = ap.parse_args(argv)
    for d in (args.before, args.after):
        if not d.is_dir():
            print(f"error: {d} is not a directory", file=sys.stderr)
            return 2
    ctx = Ctx(args, args.before, args.after)
    result = compare_dirs(args.before, args.after, ctx)
    result = print_report(result, args.quiet)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=_jsonable_default))
        print(f"  full report: {args.json}")
    return 0 if result["summary"]["numeric_identical"] else 1


def _jsonable_default(o):
    v = _jsonable(o)
    if v is o:
        return str(o)
    return v


if __name__ == "__main__":
    sys.exit(main())
