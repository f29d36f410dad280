"""Provenance: what went into a run, so every number can be traced and rebuilt.

`results/provenance.json` records the SHA-256 of every input file, the resolved config, the seeds each
random step used, the versions of the packages that made the numbers, the git commit (and whether the
work tree had uncommitted changes), the start and end time of the run, and the stages skipped for want of
their input tables (with the reason). Paths are relative to the working directory: the record names no
absolute path of the machine that made it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from imrstats.core.paths import PROJECT_DIR

PACKAGES = (
    "imrstats",
    "numpy",
    "scipy",
    "pandas",
    "statsmodels",
    "pymc",
    "pytensor",
    "arviz",
    "nutpie",
    "snakemake",
    "pyarrow",
    "pyreadstat",
    "matplotlib",
)
RANDOM_STEPS = ("simulate.participants", "simulate.assessments", "simulate.services", "simulate.programme")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_state(directory: Path = PROJECT_DIR) -> dict:
    def run(*args):
        try:
            return subprocess.run(
                ["git", *args], cwd=directory, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def seeds_used(config: dict) -> dict[str, int]:
    from imrstats.core.seeds import derive_seed

    master = int(config["seed"])
    return {"master": master, **{step: derive_seed(master, step) for step in RANDOM_STEPS}}


def relative_path(path: str | Path) -> str:
    """``path`` relative to the working directory (``../`` where it lies outside it): a record that names no
    absolute path of the machine that made it. A relative path is kept as written."""
    path = str(path)
    return os.path.relpath(path) if os.path.isabs(path) else path


# the settings that name files or folders; provenance.json records them relative to the working directory
PATH_SETTINGS = (
    ("results_dir",),
    ("allow_results_outside",),
    ("data", "input_dir"),
    ("meta", "published_outcomes"),
    ("meta", "implementation_rates"),
    ("audit", "inputs"),
)


def relative_config(config: dict) -> dict:
    """A copy of the settings whose file and folder paths are relative to the working directory."""
    out = copy.deepcopy(config)
    for keys in PATH_SETTINGS:
        node = out
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or node.get(keys[-1]) is None:
            continue
        value = node[keys[-1]]
        node[keys[-1]] = [relative_path(v) for v in value] if isinstance(value, list) else relative_path(value)
    return out


def build_provenance(
    config: dict,
    inputs: list[str | Path],
    outputs: list[str | Path],
    started: str | None,
    finished: str | None = None,
    skipped: dict[str, str] | None = None,
) -> dict:
    """The provenance record. Paths are relative to the working directory (SHA-256 of every file kept);
    ``skipped`` names the stages that did not run, each with its reason (a trial-only input folder)."""
    return {
        "tool": "imrstats",
        "started": started,
        "finished": finished or now_iso(),
        "inputs": {relative_path(p): sha256_file(p) for p in sorted(map(str, inputs))},
        "outputs": {relative_path(p): sha256_file(p) for p in sorted(map(str, outputs)) if Path(p).exists()},
        "stages_skipped": dict(skipped or {}),
        "config": relative_config(config),
        "seeds": seeds_used(config),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": git_state(),
    }


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def write_provenance(path: str | Path, record: dict) -> None:
    from imrstats.core.io import write_text  # pandas: only when a record is written, not for now_iso()

    write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n", path)
