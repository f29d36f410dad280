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


def execute(name: str, tmp_path, probe: str = "", **parameters):
    """Run notebooks/<name> with papermill; return the executed notebook (nbformat). ``probe``: code run in an
    extra last cell of the temporary copy (e.g. to save the frames the notebook displayed, for exact checks)."""
    import nbformat
    import papermill

    source = tmp_path / name.replace(".py", ".ipynb")
    nb = read_notebook(name)
    if probe:
        nb.cells.append(nbformat.v4.new_code_cell(probe))
    nbformat.write(nb, source)
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


def _meta_inputs(outcome: str):
    """The outcome's pooled rows and the config's meta settings, as the pipeline's meta stage selects them."""
    from imrstats.config import load_config
    from imrstats.data.published import load_published_outcomes
    from imrstats.meta import stage as meta_stage

    settings = dict(load_config()["meta"])
    bayes_settings = settings.pop("bayes")
    return meta_stage.outcome_inputs(load_published_outcomes(), settings)[outcome], settings, bayes_settings


# saves the frames the meta notebook displays in sections 5 and 6, and whether PyMC was ever imported
META_PROBE = """
import json, sys
with open("{path}", "w") as handle:
    json.dump(
        {{
            "sensitivity": json.loads(sensitivity.to_json(orient="records", double_precision=15)),
            "comparison": json.loads(comparison.to_json(orient="records", double_precision=15)),
            "pymc_imported": "pymc" in sys.modules,
        }},
        handle,
    )
"""


def test_meta_notebook_shows_the_effect_of_dropping_a_study_and_changing_a_prior(tmp_path):
    """Sections 4-6 use the pipeline's exact engine: the printed posterior mean of mu is fit_exact's on the same
    rows (to 1e-9), the sensitivity table has one row per configured prior plus the student's own (each fit as
    fit_exact gives it), the drop-study row is fit_exact without that study and differs from all studies, and
    PyMC is never imported (no sampler is compiled)."""
    import json
    import re

    from imrstats.meta import bayes_exact
    from imrstats.meta.bayes import SHIPPED_TAU_PRIORS, HalfNormal

    probe_path = tmp_path / "meta_probe.json"
    nb = execute(
        "02_meta_hands_on.py",
        tmp_path,
        probe=META_PROBE.format(path=probe_path),
        drop_study="Wong 2023",
        tau_prior_scale=2.0,
    )
    text = "\n".join(outputs(nb, "text/plain") + outputs(nb, "stream"))
    probe = json.loads(probe_path.read_text())
    data, settings, b = _meta_inputs("imrs_client")
    mu_prior = (b["prior_mu"]["loc"], b["prior_mu"]["scale"])
    mid = settings["mid"]

    def exact_fit(rows, prior_tau):
        return bayes_exact.fit_exact(
            rows["yi"], rows["sei"], rows["study"], prior_mu=mu_prior, prior_tau=prior_tau, mid=mid
        )

    main = exact_fit(data, SHIPPED_TAU_PRIORS[b["tau_prior"]].prior)
    printed = re.findall(r"posterior mean of mu: (-?\d+\.\d+)", text)
    assert len(printed) == 1
    assert abs(float(printed[0]) - main.values[0, 0]) <= 1e-9
    assert f"{main.marginal_likelihood:.6g}" in text  # the marginal likelihood line of the Bayes factors
    assert "tau ~ HalfNormal(2)" in text and "your HalfNormal(2)" in text  # the parameter reached section 5

    sensitivity = probe["sensitivity"]
    assert [r["prior"] for r in sensitivity] == [*b["sensitivity_priors"], "your HalfNormal(2)"]
    assert [r["prior"] for r in sensitivity if r["main_prior"]] == [b["tau_prior"]]
    for row in sensitivity:
        assert row["prior_tau"] in text  # shown in the table, not only computed
        prior = HalfNormal(2.0) if row["prior"].startswith("your") else SHIPPED_TAU_PRIORS[row["prior"]].prior
        expected = exact_fit(data, prior)
        assert abs(row["mu_mean"] - expected.values[0, 0]) <= 1e-9, row["prior"]
        assert abs(row["tau_median"] - expected.values[1, 2]) <= 1e-9, row["prior"]
    own, main_row = sensitivity[-1], next(r for r in sensitivity if r["main_prior"])
    assert own["tau_median"] > main_row["tau_median"]  # HalfNormal(2) lets tau roam more than the Rhodes prior
    assert own["mu_new_high"] - own["mu_new_low"] > main_row["mu_new_high"] - main_row["mu_new_low"]

    everything, without = probe["comparison"]
    assert (everything["analysis"], without["analysis"]) == ("all studies", "without Wong 2023")
    assert "without Wong 2023" in text and "without Jensen 2019" not in text
    assert (everything["k"], without["k"]) == (len(data), len(data) - 1)
    assert abs(everything["mu_mean"] - main.values[0, 0]) <= 1e-9
    dropped = exact_fit(data.loc[data["study"] != "Wong 2023"], SHIPPED_TAU_PRIORS[b["tau_prior"]].prior)
    assert abs(without["mu_mean"] - dropped.values[0, 0]) <= 1e-9
    assert abs(without["mu_mean"] - everything["mu_mean"]) > 0.01
    assert abs(without["P(mu > 0)"] - everything["P(mu > 0)"]) > 0.01

    assert probe["pymc_imported"] is False
    assert len(outputs(nb, "image/png")) == 5  # 2 forest plots, posterior, shrinkage, prior sensitivity
