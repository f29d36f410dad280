"""Provenance: what went into a run, so every number can be traced and rebuilt.

`results/provenance.json` records the SHA-256 of every input file, the resolved config, the seeds each
random step used, the versions of the packages that made the numbers, the git commit (and whether the
work tree had uncommitted changes), and the start and end time of the run.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from imrstats.core.io import write_text
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


def build_provenance(
    config: dict, inputs: list[str | Path], outputs: list[str | Path], started: str | None, finished: str | None = None
) -> dict:
    return {
        "tool": "imrstats",
        "started": started,
        "finished": finished or now_iso(),
        "inputs": {str(p): sha256_file(p) for p in sorted(map(str, inputs))},
        "outputs": {str(p): sha256_file(p) for p in sorted(map(str, outputs)) if Path(p).exists()},
        "config": config,
        "seeds": seeds_used(config),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": git_state(),
    }


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def write_provenance(path: str | Path, record: dict) -> None:
    write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n", path)
