import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
PROJECT = Path(__file__).resolve().parent.parent
EXAMPLES = PROJECT / "data" / "examples"


@pytest.fixture(scope="session")
def default_config():
    from imrstats.config import load_config

    return load_config()


@pytest.fixture(scope="session")
def default_tables(default_config):
    from imrstats.simulate import simulate_all

    return simulate_all(default_config)
