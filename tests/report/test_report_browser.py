"""The report as a person sees it: every page of results/report/ of a default run (index.html and one page per
stage that ran), rendered by headless Chromium at window widths 1400 and 800 px. A probe script, added to a copy
of each page, records what the browser made of it: each table's width against its container, each image's
alt text and decoded size, the heading levels in order. The checks:

- no table wider than its container at 1400 px; at 800 px a wider table only inside a box that scrolls sideways
  and fits the window; no page scrolls sideways at either width;
- every internal link (``#id``, ``page.html``, ``page.html#id``) names a page of the report and an element on it;
  no id twice on a page;
- every image has alt text, is an embedded PNG that the browser decoded, and every figure a stage made is shown
  on its stage's page, looking as the stage drew it;
- one h1 per page and no skipped heading level;
- no page over 1.5 MB.

One Chromium launch per page and width (--dump-dom and --screenshot together), a few at a time. The
screenshots are kept in the test's temporary folder and copied as CI artefacts to <project>/results/ci/
(report_screenshot.png: the front page at 1400 px; report_pages/<page>_<width>.png: all). Skipped when
`chromium` is not installed (`make browser` installs it)."""

import base64
import html as html_module
import io
import json
import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from conftest import PROJECT
from report_run import finished_default_run

pytestmark = pytest.mark.pipeline

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="chromium is not installed (make browser, or Debian: apt-get install chromium); "
    "the headless browser check of the report needs it",
)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]
WIDTHS = (1400, 800)
SCREENSHOT_HEIGHT = 2000
PARALLEL = max(2, min(4, os.cpu_count() or 2))  # Chromium processes at a time
MAX_PAGE_BYTES = 1_500_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Added to a copy of each page: after the load event, what the browser made of the page, as JSON in the DOM.
PROBE = """<script>window.addEventListener('load', function () {
  function scrollBox(el) {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll') return a;
    }
    return null;
  }
  const out = {tables: [], images: [], headings: [],
    viewport: document.documentElement.clientWidth, pageWidth: document.documentElement.scrollWidth};
  document.querySelectorAll('table').forEach(function (t) {
    const box = scrollBox(t);
    out.tables.push({id: t.id, width: Math.max(t.scrollWidth, Math.ceil(t.getBoundingClientRect().width)),
      container: t.parentElement.clientWidth, box: box ? box.clientWidth : null,
      boxRight: box ? box.getBoundingClientRect().right : null});
  });
  for (const img of document.images) {
    out.images.push({alt: img.getAttribute('alt'), complete: img.complete, width: img.naturalWidth,
      height: img.naturalHeight, figure: img.getAttribute('data-figure') || ''});
  }
  document.querySelectorAll('h1, h2, h3, h4, h5, h6').forEach(function (h) {
    out.headings.push(Number(h.tagName.substring(1)));
  });
  const probe = document.createElement('script');
  probe.type = 'application/json';
  probe.id = 'imrstats-probe';
  probe.textContent = JSON.stringify(out).replace(/</g, '\\\\u003c');
  document.body.appendChild(probe);
  document.body.setAttribute('data-probe-loaded', 'yes');
});</script>"""
PROBE_RESULT = re.compile(r'<script type="application/json" id="imrstats-probe">(.*?)</script>', re.S)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; (0, 0) if it is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return 0, 0
    return struct.unpack(">II", data[16:24])


class PageDOM(HTMLParser):
    """A dumped page: its ids (with repeats), its links, its images' attributes, its body's attributes and,
    per <table>, the number of body rows (rows holding a <td>)."""

    def __init__(self):
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []
        self.images: list[dict] = []
        self.tables: list[dict] = []
        self.sections: list[str] = []
        self.body_attrs: dict = {}
        self._open: list[dict] = []  # stack of open tables
        self._row_has_td = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.append(attrs["id"])
        if tag == "body":
            self.body_attrs = attrs
        elif tag == "a" and attrs.get("href") is not None:
            self.links.append(attrs["href"])
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "section":
            self.sections.append(attrs.get("id", ""))
        elif tag == "table":
            self._open.append({"id": attrs.get("id", ""), "body_rows": 0})
        elif tag == "tr":
            self._row_has_td = False
        elif tag == "td" and self._open:
            if not self._row_has_td:
                self._open[-1]["body_rows"] += 1
            self._row_has_td = True

    def handle_endtag(self, tag):
        if tag == "table" and self._open:
            self.tables.append(self._open.pop())


def report_pages(results: Path) -> list[str]:
    """The report's pages that a run must have: the front page, then one per stage that wrote a section."""
    stages = sorted(p.parent.name for p in results.glob("*/section.html"))
    return ["index.html", *(f"{stage}.html" for stage in stages)]


def run_chromium(jobs: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Run Chromium once per argument list, PARALLEL at a time; the results in the order of ``jobs``."""
    done: list[subprocess.CompletedProcess] = []
    for start in range(0, len(jobs), PARALLEL):
        batch = [
            (
                args,
                subprocess.Popen(
                    ["chromium", *CHROMIUM_FLAGS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                ),
            )
            for args in jobs[start : start + PARALLEL]
        ]
        for args, proc in batch:
            try:
                out, err = proc.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


def render_report(results: Path, work: Path) -> dict:
    """Dump the DOM (with the probe's findings) and screenshot every page of ``results/report`` at each width.
    Returns {"results", "report", "pages", "dom": {(page, width): PageDOM}, "probe": {(page, width): dict},
    "shots": {(page, width): Path}}."""
    report = results / "report"
    pages = report_pages(results)
    missing = [page for page in pages if not (report / page).is_file()]
    assert not missing, f"report pages not written: {missing}"
    # the probe copies live outside the run, so a figure referenced by a relative path would not load
    probes = work / "probe"
    probes.mkdir(parents=True, exist_ok=True)
    for page in pages:
        html = (report / page).read_text()
        (probes / page).write_text(html.replace("</body>", PROBE + "</body>") if "</body>" in html else html + PROBE)
    shots, keys, jobs = {}, [], []
    for page in pages:
        for width in WIDTHS:
            name = f"{Path(page).stem}_{width}"
            shots[page, width] = work / "shots" / f"{name}.png"
            shots[page, width].parent.mkdir(parents=True, exist_ok=True)
            keys.append((page, width))
            jobs.append(
                [
                    f"--window-size={width},{SCREENSHOT_HEIGHT}",
                    f"--user-data-dir={work / 'profiles' / name}",
                    "--dump-dom",
                    f"--screenshot={shots[page, width]}",
                    (probes / page).as_uri(),
                ]
            )
    doms, probed = {}, {}
    for (page, width), proc in zip(keys, run_chromium(jobs)):
        where = f"chromium on {page} at {width} px"
        assert proc.returncode == 0, f"{where} failed: {proc.stderr[-2000:]}"
        assert shots[page, width].is_file(), f"{where} wrote no screenshot: {proc.stderr[-2000:]}"
        assert "</html>" in proc.stdout, f"{where}: no DOM dumped: {proc.stderr[-2000:]}"
        dom = PageDOM()
        dom.feed(proc.stdout)
        doms[page, width] = dom
        found = PROBE_RESULT.search(proc.stdout)
        probed[page, width] = json.loads(found.group(1)) if found else None
    artefacts = PROJECT / "results" / "ci"
    (artefacts / "report_pages").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shots["index.html", WIDTHS[0]], artefacts / "report_screenshot.png")
    for path in shots.values():
        shutil.copyfile(path, artefacts / "report_pages" / path.name)
    return {"results": results, "report": report, "pages": pages, "dom": doms, "probe": probed, "shots": shots}


@pytest.fixture(scope="module")
def run_results(tmp_path_factory) -> Path:
    return finished_default_run(tmp_path_factory) / "results"


@pytest.fixture(scope="module")
def rendered(run_results, tmp_path_factory):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (make browser, or Debian: apt-get install chromium)")
    return render_report(run_results, tmp_path_factory.mktemp("chromium"))


def test_no_page_is_over_the_size_limit(run_results):
    pages = report_pages(run_results)
    sizes = {page: (run_results / "report" / page).stat().st_size for page in pages}
    assert len(sizes) >= 2, "the report has no stage page"
    over = {page: size for page, size in sizes.items() if size > MAX_PAGE_BYTES}
    assert not over, f"pages over {MAX_PAGE_BYTES} bytes: {over}"


def test_the_words_cite_papers_never_file_numbers_or_trackers(run_results):
    """What a reader sees: sources cited as papers ("Jensen et al. 2019, Table 2"), never as the project's
    file numbers ("seed 003") or tracker numbers (the word "issue" and a number); the summary of findings and
    the GRADE words."""
    pages = report_pages(run_results)
    for page in pages:
        source = re.sub(r"<(style|script)\b.*?</\1>", " ", (run_results / "report" / page).read_text(), flags=re.S)
        text = html_module.unescape(re.sub(r"<[^>]+>", " ", source))
        text = re.sub(r"data:image/png;base64,\S+", "", text)
        assert not re.search(r"\bseeds? ?0\d\d\b", text, re.I), page
        assert not re.search(r"\b(issue|ticket) #?\d+\b", text, re.I), page
        assert not re.search(r"(?<![\w&])#\d+\b", text), page
    front = html_module.unescape(re.sub(r"<[^>]+>", " ", (run_results / "report" / "index.html").read_text()))
    assert "Jensen et al. 2019, Table 2" in front and "Summary of findings" in front
    assert re.search(r"(High|Moderate|Low|Very low)\b", front)
    trial = (run_results / "report" / "trial.html").read_text()
    assert "Jensen et al. 2019, Table 3" in html_module.unescape(trial)


@needs_chromium
def test_the_browser_finished_loading_every_page(rendered):
    unfinished = [key for key, dom in rendered["dom"].items() if dom.body_attrs.get("data-probe-loaded") != "yes"]
    assert not unfinished, f"DOM dumped before the load event (the probe's measures would be meaningless): {unfinished}"
    assert all(rendered["probe"].values())


@needs_chromium
def test_no_table_overflows_at_1400_px_and_at_800_px_only_in_a_scroll_box(rendered):
    problems = []
    for (page, width), probe in rendered["probe"].items():
        assert probe["tables"] or page != "index.html", "the front page shows no table"
        for table in probe["tables"]:
            if table["width"] <= table["container"] + 1:
                continue
            where = f"{page} at {width} px: table #{table['id']} is {table['width']} px in {table['container']} px"
            if width == max(WIDTHS):
                problems.append(where)
            elif table["box"] is None:
                problems.append(where + ", and no box around it scrolls sideways")
            elif table["boxRight"] > probe["viewport"] + 1:
                problems.append(where + f", its scroll box runs past the window ({table['boxRight']} px)")
        if probe["pageWidth"] > probe["viewport"] + 1:
            problems.append(f"{page} at {width} px scrolls sideways: {probe['pageWidth']} px in {probe['viewport']}")
    assert not problems, "\n".join(problems)


@needs_chromium
def test_every_internal_link_resolves_and_ids_are_unique(rendered):
    width = max(WIDTHS)
    pages = rendered["pages"]
    ids = {page: rendered["dom"][page, width].ids for page in pages}
    doubled = {page: sorted({i for i in found if found.count(i) > 1}) for page, found in ids.items()}
    assert not any(doubled.values()), f"ids used twice on a page: {doubled}"
    broken, checked = [], 0
    for page in pages:
        for href in rendered["dom"][page, width].links:
            if re.match(r"[a-z][a-z0-9+.-]*:", href):  # http:, mailto:, ...: not the report's own
                continue
            target, _, anchor = href.partition("#")
            target = target or page
            checked += 1
            if target not in pages:
                broken.append(f"{page}: {href} (no such page)")
            elif anchor and anchor not in ids[target]:
                broken.append(f"{page}: {href} (no element with that id on {target})")
    assert checked >= len(pages) * len(pages), "the pages link to each other too little: is the navigation bar there?"
    assert not broken, "\n".join(broken)


@needs_chromium
def test_navigation_bar_marks_the_current_page(rendered):
    for page in rendered["pages"]:
        html = (rendered["report"] / page).read_text()
        nav = re.search(r"<nav class='pages'.*?</nav>", html, re.S)
        assert nav, f"{page} has no navigation bar"
        current = re.findall(r"<a href='([^']+)' aria-current='page'>", nav.group(0))
        assert current == [page], f"{page}: the navigation bar marks {current} as current"
        linked = re.findall(r"<a href='([^']+)'", nav.group(0))
        assert linked[0] == "index.html" and sorted(linked) == sorted(rendered["pages"]), f"{page}: nav {linked}"


@needs_chromium
def test_headings_start_at_h1_and_never_skip_a_level(rendered):
    problems = []
    for (page, width), probe in rendered["probe"].items():
        levels = probe["headings"]
        if not levels or levels[0] != 1 or levels.count(1) != 1:
            problems.append(f"{page}: the headings do not open with the one h1: {levels[:5]}")
        skips = [(a, b) for a, b in zip(levels, levels[1:]) if b > a + 1]
        if skips:
            problems.append(f"{page}: heading levels skip: {skips[:5]}")
    assert not problems, "\n".join(problems)


@needs_chromium
def test_every_image_has_alt_text_and_is_an_embedded_png_the_browser_decoded(rendered):
    problems, shown = [], 0
    for (page, width), probe in rendered["probe"].items():
        images = rendered["dom"][page, width].images
        assert len(images) == len(probe["images"])
        for i, (img, seen) in enumerate(zip(images, probe["images"])):
            shown += 1
            where = f"{page} at {width} px, <img> #{i + 1} ({img.get('data-figure') or img.get('alt', '')!r})"
            if not (seen["alt"] or "").strip():
                problems.append(f"{where}: no alt text")
            src = img.get("src", "")
            if not src.startswith("data:image/png;base64,"):
                problems.append(f"{where}: src is not an embedded PNG: {src[:80]!r}")
                continue
            size = png_size(base64.b64decode(src.split(",", 1)[1], validate=True))
            if 0 in size:
                problems.append(f"{where}: the data URI does not decode to a PNG with a size")
            if not seen["complete"] or (seen["width"], seen["height"]) != size:
                problems.append(f"{where}: the browser shows {seen['width']}x{seen['height']}, the PNG is {size}")
    assert shown, "the report shows no image at all"
    assert not problems, "\n".join(problems)


def flat_pixels(data: bytes) -> np.ndarray:
    """A PNG's pixels as RGB over white (0-255 floats)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, "white")
    white.alpha_composite(rgba)
    return np.asarray(white.convert("RGB"), dtype=float)


@needs_chromium
def test_every_figure_a_stage_made_is_on_its_page_as_drawn(rendered):
    results = rendered["results"]
    made = sorted(results.glob("*/figures/*.png"))
    assert made, "no stage wrote a figure"
    shown = {}
    for page in rendered["pages"]:
        for img in rendered["dom"][page, max(WIDTHS)].images:
            if img.get("data-figure"):
                shown[img["data-figure"]] = (page, img["src"])
    problems = []
    for path in made:
        rel = str(path.relative_to(results))
        if rel not in shown:
            problems.append(f"{rel}: not shown in the report")
            continue
        page, src = shown[rel]
        if page != f"{path.parts[-3]}.html":
            problems.append(f"{rel}: shown on {page}, not on its stage's page")
        original, embedded = flat_pixels(path.read_bytes()), flat_pixels(base64.b64decode(src.split(",", 1)[1]))
        if original.shape != embedded.shape:
            problems.append(f"{rel}: embedded at {embedded.shape}, drawn at {original.shape}")
        elif np.abs(original - embedded).mean() > 2.0:  # palette reduction: a few levels off, on average far less
            problems.append(
                f"{rel}: embedded copy differs by {np.abs(original - embedded).mean():.1f} levels on average"
            )
    assert not problems, "\n".join(problems)


@needs_chromium
def test_no_table_is_empty(rendered):
    empty = []
    for page in rendered["pages"]:
        tables = rendered["dom"][page, max(WIDTHS)].tables
        empty += [f"{page}#{t['id']}" for t in tables if t["body_rows"] == 0]
    assert not empty, f"tables without a body row: {empty}"


@needs_chromium
def test_screenshots_show_rendered_pages(rendered):
    from PIL import Image

    artefacts = PROJECT / "results" / "ci"
    for (page, width), path in rendered["shots"].items():
        for shot in (path, artefacts / "report_pages" / path.name):
            with Image.open(shot) as image:
                assert image.format == "PNG" and image.size == (width, SCREENSHOT_HEIGHT), shot
                colours = image.convert("L").getcolors(maxcolors=256 * 256) or []
            # a blank or error page has one or two grey levels; rendered text and tables have many
            assert len(colours) > 20, f"{shot} looks blank ({len(colours)} grey levels)"
    assert (artefacts / "report_screenshot.png").read_bytes() == rendered["shots"][
        "index.html", max(WIDTHS)
    ].read_bytes()


@needs_chromium
def test_every_stage_section_is_on_its_own_page(rendered):
    for page in rendered["pages"][1:]:
        sections = rendered["dom"][page, max(WIDTHS)].sections
        assert Path(page).stem in sections, f"{page} does not hold the section of its stage"
    front = rendered["dom"]["index.html", max(WIDTHS)].sections
    assert front[0] == "findings", f"the front page opens with {front[:1]}, not the summary of findings"
    assert not set(front) & {Path(page).stem for page in rendered["pages"][1:]}, "a stage section on the front page"
