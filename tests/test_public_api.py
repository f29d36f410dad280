"""The public verbs of ``imrstats/__init__.py``: every name in ``__all__`` resolves and is callable, and
``import imrstats`` loads none of them until asked (docs/architecture.md, "Public verbs")."""

from __future__ import annotations

import subprocess
import sys

import pytest

import imrstats


@pytest.mark.parametrize("name", imrstats.__all__)
def test_every_public_name_resolves_and_is_callable(name):
    value = getattr(imrstats, name)
    assert callable(value), name
    assert name in dir(imrstats)


def test_the_verbs_the_layout_promises_are_public():
    promised = {
        "fit_mmrm",
        "impute_chained",
        "pool_rubin",
        "escalc",
        "rma",
        "fit_poisson",
        "fit_nb2",
        "fit_zinb",
        "fit_hurdle_nb",
        "random_intercept_lmm",
        "welch_t_test",
        "chi_square_test",
        "BayesMeta",
    }
    assert promised <= set(imrstats.__all__)
    assert imrstats.__all__ == sorted(set(imrstats.__all__))


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_verb'"):
        imrstats.no_such_verb  # noqa: B018


def test_import_is_lazy():
    code = (
        "import sys, imrstats; "
        "heavy = [m for m in ('imrstats.trial.mmrm', 'imrstats.meta.bayes', 'imrstats.services.models', "
        "'pymc', 'nutpie', 'statsmodels', 'scipy') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import imrstats loaded {out.stdout.strip()}"
