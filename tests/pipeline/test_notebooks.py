"""The student notebooks (notebooks/*.py, jupytext percent format) run top to bottom on the default data.

Each is converted to a notebook in a temporary directory and executed by papermill with small settings
from its `parameters` cell (few imputations), so the suite stays quick; the outputs are then checked for
the results the notebook exists to show."""

import pytest

from conftest import PROJECT

NOTEBOOKS = PROJECT / "notebooks"
# small settings for the test run; the notebooks' own defaults are the analysis plan's (m = 100)
FAST_PARAMETERS = {
    "01_trial_tour.py": {"m": 5},
    "02_meta_hands_on.py": {},
}


def read_notebook(name: str):
    import jupytext

    return jupytext.read(NOTEBOOKS / name, fmt="py:percent")


def execute(name: str, tmp_path, **parameters):
    """Run notebooks/<name> with papermill; return the executed notebook (nbformat)."""
    import nbformat
    import papermill

    source = tmp_path / name.replace(".py", ".ipynb")
    nbformat.write(read_notebook(name), source)
    executed = tmp_path / name.replace(".py", ".out.ipynb")
    papermill.execute_notebook(
        str(source),
        str(executed),
        parameters={**FAST_PARAMETERS[name], **parameters},
        kernel_name="python3",
        cwd=str(NOTEBOOKS),
        progress_bar=False,
        execution_timeout=600,
    )
    return nbformat.read(executed, as_version=4)


def outputs(nb, kind: str) -> list:
    """Every output of a kind: 'text/plain' / 'image/png' payloads, or 'stream' texts."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind == "stream" and out["output_type"] == "stream":
                found.append(out["text"])
            elif out["output_type"] in ("execute_result", "display_data") and kind in out.get("data", {}):
                found.append(out["data"][kind])
    return found


def test_every_notebook_is_listed_here():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.py")) == sorted(FAST_PARAMETERS)


@pytest.mark.parametrize("name", sorted(FAST_PARAMETERS))
def test_notebook_is_runnable_and_diffable(name):
    """Kernelspec set (papermill needs it), a `parameters` cell, the library imported, and the file in
    jupytext's canonical form, so editing in Jupyter and saving gives no spurious diff."""
    import jupytext

    nb = read_notebook(name)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert sum("parameters" in cell.metadata.get("tags", []) for cell in nb.cells) == 1
    assert any("from imrstats" in cell.source for cell in nb.cells if cell.cell_type == "code")
    text = (NOTEBOOKS / name).read_text()
    canonical = jupytext.writes(nb, fmt="py:percent")
    strip = lambda s: [line for line in s.splitlines() if "jupytext_version" not in line]  # noqa: E731
    assert strip(canonical) == strip(text), f"run `jupytext --to py:percent {name}` to normalise it"


def test_trial_tour_runs_and_shows_the_itt_analysis(tmp_path):
    nb = execute("01_trial_tour.py", tmp_path)
    text = "\n".join(outputs(nb, "text/plain") + outputs(nb, "stream"))
    assert "ITT MI-MMRM" in text and "m = 5" in text  # the parameter reached the analysis
    for quantity in ("IMR - TAU at post", "IMR - TAU at fu12", "likelihood MMRM", "complete-case ANCOVA"):
        assert quantity in text
    assert len(outputs(nb, "image/png")) == 3


def test_meta_notebook_shows_the_effect_of_dropping_a_study_and_changing_a_prior(tmp_path):
    nb = execute("02_meta_hands_on.py", tmp_path, drop_study="Wong 2023", tau_prior_scale=2.0)
    text = "\n".join(outputs(nb, "text/plain") + outputs(nb, "stream"))
    assert "without Wong 2023" in text and "without Jensen 2019" not in text
    assert "your HalfNormal(2)" in text and "tau ~ HalfNormal(2)" in text
    assert len(outputs(nb, "image/png")) == 4
