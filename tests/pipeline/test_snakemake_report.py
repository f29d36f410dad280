"""`snakemake --report` on a finished default run: the self-contained HTML report exists, it names every
category that the workflow's report() outputs declare, and every output in it carries its caption."""

import json
import re

import pytest

from conftest import PROJECT
from pipeline_runs import run_snakemake

pytestmark = pytest.mark.pipeline

RULES = sorted((PROJECT / "workflow" / "rules").glob("*.smk"))


def declared(pattern: str) -> list[str]:
    """Every match of `pattern` in the workflow's rule files."""
    return [m for path in RULES for m in re.findall(pattern, path.read_text())]


def embedded_json(html: str, name: str):
    """The JSON object that the report assigns to the JavaScript variable `name` (e.g. `categories`)."""
    match = re.search(r"\b(?:var|let|const)\s+" + name + r"\s*=\s*(?=\{)", html)
    assert match, f"the report holds no `{name} = {{...}}` object: has snakemake's report format changed?"
    value, _ = json.JSONDecoder().raw_decode(html, match.end())
    return value


def test_every_report_output_has_an_existing_caption():
    captions = declared(r'caption\s*=\s*"([^"]+)"')
    assert len(captions) == len(declared(r"\breport\(")), "a report() output in workflow/rules has no caption"
    for caption in captions:
        path = (PROJECT / "workflow" / "rules" / caption).resolve()
        assert path.is_file() and path.read_text().strip(), f"caption file {caption} is missing or empty"


@pytest.fixture(scope="module")
def snakemake_report(tmp_path_factory, default_pipeline_run) -> str:
    """`snakemake --report` on the session's shared default run (--cores 2), with the snapshot that made it."""
    out = tmp_path_factory.mktemp("snakemake_report") / "report.html"
    run = default_pipeline_run
    proc = run_snakemake(run.project, run.workdir, "--report", str(out), cores=2, small=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert out.is_file() and out.stat().st_size > 0, "snakemake --report exited 0 but wrote no report"
    return out.read_text()


def test_report_names_every_category(snakemake_report):
    expected = set(declared(r'category\s*=\s*"([^"]+)"'))
    assert expected, "no report() output in workflow/rules declares a category"
    categories = embedded_json(snakemake_report, "categories")
    assert set(categories) == expected
    empty = [c for c, subcategories in categories.items() if not any(subcategories.values())]
    assert not empty, f"categories without any output: {empty}"


def test_every_output_in_the_report_has_its_caption(snakemake_report):
    results = embedded_json(snakemake_report, "results")
    assert results, "the report lists no output"
    uncaptioned = [
        path for path, entry in results.items() if not re.sub(r"<[^>]+>", "", entry.get("caption") or "").strip()
    ]
    assert not uncaptioned, f"outputs without a caption: {uncaptioned}"
    # the files shown are the ones the run made
    assert all(path.startswith("results/") for path in results), list(results)[:5]


def test_report_outputs_cover_every_category_file(snakemake_report):
    """Each output listed under a category is in the report's results (its content embedded)."""
    results = embedded_json(snakemake_report, "results")
    listed = {
        path
        for subcategories in embedded_json(snakemake_report, "categories").values()
        for paths in subcategories.values()
        for path in paths
    }
    assert listed == set(results)
    assert all(entry.get("data_uri", "").startswith("data:") for entry in results.values())
