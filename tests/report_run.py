"""The session's finished run of the default pipeline (default config, --cores 2), for test_report_browser.py.
It is the same run that the `default_pipeline_run` fixture (conftest.py) gives test_pipeline.py,
test_snakemake_report.py and test_determinism.py: tests/pipeline_runs.py makes it once per process and caches it."""

from pathlib import Path

from pipeline_runs import finished_run


def finished_default_run(tmp_path_factory) -> Path:
    """The working directory of a completed default run (its outputs are under `results/`)."""
    return finished_run(tmp_path_factory, cores=2, small=False).workdir
