"""The test suite's own plan (tests/conftest.py): the pipeline tier's folders and the NUTS modules run as one unit
name files that exist, and the modules that fit NUTS models are the ones listed."""

import re

from conftest import NUTS_TEST_MODULES, PIPELINE_TEST_DIRS, PROJECT


def test_the_tier_folders_and_the_nuts_modules_exist():
    assert all(folder.is_dir() for folder in PIPELINE_TEST_DIRS)
    assert all((PROJECT / module).is_file() for module in NUTS_TEST_MODULES)


def test_every_module_that_fits_with_nuts_is_listed():
    """A module that builds a PyMC sampler (meta.bayes.shared_sampler, meta.bayes_models.shared_model, or the meta
    stage with the nuts engine) is in NUTS_TEST_MODULES, so that make test compiles each model once."""
    sampling = re.compile(r"\bshared_(sampler|model)\(|\bengine[\"']?\s*[:=]\s*[\"']nuts")
    found = set()
    for path in (PROJECT / "tests").rglob("test_*.py"):
        if sampling.search(path.read_text()):
            found.add(str(path.relative_to(PROJECT)))
    assert found <= NUTS_TEST_MODULES, sorted(found - NUTS_TEST_MODULES)
