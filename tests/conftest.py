import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# one BLAS thread, as the CLI and the workflow's jobs use (many small matrices; see src/imrstats/cli.py)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
PROJECT = Path(__file__).resolve().parent.parent
EXAMPLES = PROJECT / "data" / "examples"
VALIDATION_DATA = PROJECT / "tests" / "validation" / "data"


@pytest.fixture(scope="session")
def default_config():
    from imrstats.config import load_config

    return load_config()


@pytest.fixture(scope="session")
def default_tables(default_config):
    from imrstats.data.simulate import simulate_all

    return simulate_all(default_config)


@pytest.fixture(scope="session")
def default_clean_tables(default_config, default_tables):
    """The default synthetic data after `clean`, shared by every stage test in the session."""
    from imrstats.data.clean import clean_tables

    cfg = default_config
    return clean_tables(
        default_tables,
        missing_codes=cfg["clean"]["missing_codes"],
        prorate=cfg["clean"]["prorate"],
        allow_identifier_columns=cfg["privacy"]["allow_identifier_columns"],
    ).tables


# ---- full pipeline runs (tests/pipeline_runs.py): one per (config, cores), shared by the whole session ----


@pytest.fixture(scope="session")
def pipeline_project(tmp_path_factory):
    """The session's snapshot of the project (src, workflow, config, data, Snakefile) that every shared run uses."""
    from pipeline_runs import session_project

    return session_project(tmp_path_factory)


@pytest.fixture(scope="session")
def default_pipeline_run(tmp_path_factory):
    """A finished run of the embedded default config on --cores 2 (`pipeline_runs.FinishedRun`). Read-only."""
    from pipeline_runs import finished_run

    return finished_run(tmp_path_factory, cores=2, small=False)


@pytest.fixture(scope="session")
def small_pipeline_run_one_core(tmp_path_factory):
    """A finished run of the small config (pipeline_runs.SMALL_CONFIG) on --cores 1: compared byte for byte with
    the same config on --cores 2 (small_pipeline_run) by the determinism tests."""
    from pipeline_runs import finished_run

    return finished_run(tmp_path_factory, cores=1, small=True)


@pytest.fixture(scope="session")
def small_pipeline_run(tmp_path_factory):
    """A finished run of the small config (pipeline_runs.SMALL_CONFIG: the default, smaller where that only costs
    time), --cores 2."""
    from pipeline_runs import finished_run

    return finished_run(tmp_path_factory, cores=2, small=True)


# the second tier of `make test` (`pytest -m pipeline`): the tests in these folders, and only they, run the
# workflow or the whole pipeline; each is marked `pipeline` here, whatever its module says
PIPELINE_TEST_DIRS = (PROJECT / "tests" / "pipeline", PROJECT / "tests" / "report")


def _in_pipeline_dirs(path: Path) -> bool:
    return any(Path(path).is_relative_to(folder) for folder in PIPELINE_TEST_DIRS)


def pytest_ignore_collect(collection_path, config):
    """Each tier of `make test` imports only its own test modules: `-m pipeline` skips every folder and file
    outside PIPELINE_TEST_DIRS (about 10 s of imports in each worker), `-m "not pipeline"` skips those folders."""
    tier = (config.getoption("-m") or "").strip()
    path = Path(collection_path)
    if tier == "pipeline":
        leads_there = any(folder.is_relative_to(path) for folder in PIPELINE_TEST_DIRS)
        return None if leads_there or _in_pipeline_dirs(path) or path.name == "conftest.py" else True
    if tier == "not pipeline":
        return True if _in_pipeline_dirs(path) else None
    return None


# The test modules that sample with NUTS: each model compiles (nutpie, numba) for about 10 s in every process
# that fits it. Under `--dist loadfile` (make test) they are one unit of work, run by one worker, so the
# normal-normal model several of them fit is compiled once per session instead of once per worker. Speed only:
# a module missing here still runs, and compiles in whichever worker runs it.
NUTS_TEST_MODULES = frozenset(
    {
        "tests/meta/test_bayes.py",
        "tests/meta/test_bayes_models.py",
        "tests/meta/test_meta_bayes.py",
        "tests/validation/test_bayes_validation.py",
        "tests/validation/test_nuts_vs_exact.py",
    }
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's file-by-file scheduling, with NUTS_TEST_MODULES as one unit (by overriding the scheduler's
    `_split_scope`, the one method that names a file's unit of work; pytest-xdist is pinned, requirements.lock)."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class NutsModulesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return "NUTS test modules" if scope in NUTS_TEST_MODULES else scope

    return NutsModulesTogether(config, log)


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers
def pytest_collection_modifyitems(config, items):
    """Tests under PIPELINE_TEST_DIRS are marked `pipeline`; a test marked `pipeline` anywhere else is refused
    (the pipeline tier would never collect it). Slow simulation studies run only when asked for (`pytest -m
    slow`), never in the default run."""
    for item in items:
        if _in_pipeline_dirs(item.path):
            item.add_marker(pytest.mark.pipeline)
        elif item.get_closest_marker("pipeline"):
            folders = ", ".join(str(folder.relative_to(PROJECT)) for folder in PIPELINE_TEST_DIRS)
            raise pytest.UsageError(
                f"{item.nodeid} is marked pipeline but lives outside {folders}: move it there (the pipeline tier of"
                " make test collects only those folders)"
            )
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="simulation study: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
