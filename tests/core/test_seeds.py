"""Unit tests for imrstats.core.seeds: the two seed derivations are pinned, so a refactor that would change
any seed (and with it the simulated data or the Bayesian draws) fails here first."""

from __future__ import annotations

import hashlib

import numpy as np

from imrstats.core.seeds import derive_seed, label_code, spawn_generator, spawn_seed


def test_named_step_seed_is_the_sha256_of_master_and_name():
    digest = hashlib.sha256(b"20240611:stage.meta").digest()
    assert derive_seed(20240611, "stage.meta") == int.from_bytes(digest[:8], "little") % 2**32
    assert derive_seed(1, "simulate.participants") != derive_seed(1, "simulate.assessments")
    assert derive_seed(1, "simulate.participants") != derive_seed(2, "simulate.participants")


def test_spawned_seed_is_the_first_word_of_the_seed_sequence():
    expected = int(np.random.SeedSequence([12345, 7, 0, 0]).generate_state(1, dtype=np.uint32)[0])
    assert spawn_seed(12345, 7, 0, 0) == expected
    assert spawn_seed(12345, 1) != spawn_seed(12345, 2)


def test_spawned_generator_draws_from_the_whole_seed_sequence():
    expected = np.random.default_rng(np.random.SeedSequence([3, 1])).standard_normal(4)
    np.testing.assert_array_equal(spawn_generator(3, 1).standard_normal(4), expected)


def test_label_code_is_stable():
    assert label_code("GAF-F, post") == label_code("GAF-F, post")
    assert label_code("GAF-F, post") != label_code("GAF-F, fu12")
    assert label_code("") == 0
