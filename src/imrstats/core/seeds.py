"""Seeds: every random stream's seed is derived from the config's master ``seed`` and nothing else.

Two derivations, each kept because the numbers the pipeline writes depend on it (unifying them would
change the simulated data or the Bayesian sampler's draws):

- `derive_seed(master, name)`: a **named step** (``"simulate.participants"``, ``"stage.meta"``,
  ``"trial.impute.gaf_f"``, ``"simstudy.<scenario>.<rep>"``) gets the first 8 bytes (little-endian) of
  SHA-256(``"<master>:<name>"``) modulo 2**32. Steps are independent of the order they run in, and a
  step's seed can itself be the master of named sub-steps.
- `spawn_seed(seed, *path)`: a **fit within a step** (the Bayesian stage: outcome, analysis, index,
  attempt) gets the first 32-bit word of NumPy's ``SeedSequence([seed, *path])`` state. Path elements
  are integers; `label_code` turns a label (an outcome name) into one, so adding or removing one
  outcome does not change another's seeds. `spawn_generator(seed, *path)` is a generator seeded with that
  whole sequence, for draws made after a fit (posterior predictive study effects).

So the seed of, say, the retry of the main Bayesian fit of outcome "Illness management, post" is
``spawn_seed(spawn_seed(derive_seed(master, "stage.meta"), label_code(label), 0, 0), 1)``.
"""

from __future__ import annotations

import hashlib
import zlib

import numpy as np


def derive_seed(master: int, name: str) -> int:
    """A stable seed for one named random step, independent of the order steps run in:
    SHA-256 of ``"<master>:<name>"``, first 8 bytes little-endian, modulo 2**32."""
    digest = hashlib.sha256(f"{master}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**32)


def spawn_seed(seed: int, *path: int) -> int:
    """A reproducible, independent seed for the fit at ``path`` (integers, e.g. outcome code, analysis,
    index, attempt) under ``seed``: the first uint32 of ``numpy.random.SeedSequence([seed, *path])``."""
    return int(np.random.SeedSequence([int(seed), *map(int, path)]).generate_state(1, dtype=np.uint32)[0])


def spawn_generator(seed: int, *path: int) -> np.random.Generator:
    """A random generator for the stream at ``path`` under ``seed``, seeded with the whole
    ``numpy.random.SeedSequence([seed, *path])`` (e.g. the posterior draws that follow a fit seeded ``seed``)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, path)]))


def label_code(label: str) -> int:
    """A stable integer per label (CRC-32 of its UTF-8 bytes), for use in a `spawn_seed` path, so removing
    one outcome does not change another's seeds."""
    return zlib.crc32(label.encode("utf-8"))
