"""The report as a person sees it: results/report/index.html of a default run, rendered by headless
Chromium. Every figure must be a PNG embedded as a data URI that the browser decoded (non-zero natural
size), every table must have at least one body row, and a screenshot is kept: in the run
(results/report/screenshot.png) and as a CI artefact in <project>/results/ci/report_screenshot.png.

Skipped when `chromium` is not installed (Debian: apt-get install chromium)."""

import base64
import hashlib
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import PROJECT
from report_run import finished_default_run

pytestmark = [
    pytest.mark.pipeline,
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="chromium is not installed (Debian: apt-get install chromium); "
        "the headless browser check of the report needs it",
    ),
]

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]
SCREENSHOT_SIZE = (1280, 2400)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Appended to a copy of the report: after the load event, record what the browser made of each image.
PROBE = (
    "<script>window.addEventListener('load', function () {"
    " for (const img of document.images) {"
    "  img.setAttribute('data-probe-size', img.complete ? img.naturalWidth + 'x' + img.naturalHeight : 'incomplete');"
    " }"
    " document.body.setAttribute('data-probe-loaded', 'yes');"
    "});</script>"
)


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    cmd = ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; (0, 0) if it is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return 0, 0
    return struct.unpack(">II", data[16:24])


class ReportDOM(HTMLParser):
    """Images (their attributes) and, per <table>, the number of body rows (rows holding a <td>)."""

    def __init__(self):
        super().__init__()
        self.images: list[dict] = []
        self.tables: list[dict] = []
        self.body_attrs: dict = {}
        self._open: list[dict] = []  # stack of open tables
        self._row_has_td = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body_attrs = attrs
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "table":
            self._open.append({"body_rows": 0})
        elif tag == "tr":
            self._row_has_td = False
        elif tag == "td" and self._open:
            if not self._row_has_td:
                self._open[-1]["body_rows"] += 1
            self._row_has_td = True

    def handle_endtag(self, tag):
        if tag == "table" and self._open:
            self.tables.append(self._open.pop())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Screenshot and DOM dump of a finished default run's report."""
    results = finished_default_run(tmp_path_factory) / "results"
    index = results / "report" / "index.html"
    work = tmp_path_factory.mktemp("chromium")
    # the probe copy lives outside the run, so a figure referenced by a relative path would not load
    probe = work / "probe.html"
    html = index.read_text()
    probe.write_text(html.replace("</body>", PROBE + "</body>") if "</body>" in html else html + PROBE)
    screenshot = results / "report" / "screenshot.png"
    shot = chromium(
        f"--window-size={SCREENSHOT_SIZE[0]},{SCREENSHOT_SIZE[1]}",
        f"--screenshot={screenshot}",
        index.as_uri(),
        profile=work / "profile-shot",
    )
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    artefact = PROJECT / "results" / "ci" / "report_screenshot.png"
    artefact.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshot, artefact)
    dump = chromium("--dump-dom", probe.as_uri(), profile=work / "profile-dom")
    assert dump.returncode == 0 and "</html>" in dump.stdout, dump.stderr[-2000:]
    dom = ReportDOM()
    dom.feed(dump.stdout)
    return {"results": results, "screenshot": screenshot, "artefact": artefact, "dom": dom}


def test_the_browser_finished_loading_the_page(rendered):
    assert rendered["dom"].body_attrs.get("data-probe-loaded") == "yes", (
        "the DOM was dumped before the page's load event: image sizes below would be meaningless"
    )


def test_every_figure_is_an_embedded_png_the_browser_decoded(rendered):
    images = rendered["dom"].images
    assert images, "the report shows no figure at all"
    problems = []
    for i, img in enumerate(images):
        src = img.get("src", "")
        where = f"<img> #{i + 1} (alt={img.get('alt', '')!r})"
        if not src.startswith("data:image/png;base64,"):
            problems.append(f"{where}: src is not an embedded PNG: {src[:80]!r}")
            continue
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        width, height = png_size(data)
        if width == 0 or height == 0:
            problems.append(f"{where}: the data URI does not decode to a PNG with a size")
        if img.get("data-probe-size") != f"{width}x{height}":
            problems.append(
                f"{where}: the browser shows it as {img.get('data-probe-size')!r}, the PNG is {width}x{height}"
            )
    assert not problems, "\n".join(problems)


def test_every_figure_a_stage_made_is_in_the_report(rendered):
    shown = {
        hashlib.sha256(base64.b64decode(img["src"].split(",", 1)[1])).hexdigest()
        for img in rendered["dom"].images
        if img.get("src", "").startswith("data:image/png;base64,")
    }
    made = sorted(rendered["results"].glob("*/figures/*.png"))
    assert made, "no stage wrote a figure"
    missing = [
        str(p.relative_to(rendered["results"])) for p in made if hashlib.sha256(p.read_bytes()).hexdigest() not in shown
    ]
    assert not missing, f"figures written but not shown in the report: {missing}"


def test_no_table_is_empty(rendered):
    tables = rendered["dom"].tables
    assert tables, "the report shows no table at all"
    empty = [i + 1 for i, t in enumerate(tables) if t["body_rows"] == 0]
    assert not empty, f"{len(empty)} of {len(tables)} tables have no body row (table numbers {empty})"


def test_screenshot_shows_a_rendered_page(rendered):
    from PIL import Image

    for path in (rendered["screenshot"], rendered["artefact"]):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == SCREENSHOT_SIZE
            colours = image.convert("L").getcolors(maxcolors=256 * 256) or []
        # a blank or error page has one or two grey levels; rendered text and tables have many
        assert len(colours) > 20, f"{path} looks blank ({len(colours)} grey levels)"


def test_every_stage_section_is_in_the_report(rendered):
    sections = sorted(p.parent.name for p in rendered["results"].glob("*/section.html"))
    assert sections, "no stage wrote a section.html"
    html = (rendered["results"] / "report" / "index.html").read_text()
    absent = [s for s in sections if f"<section id='{s}'>" not in html and f'<section id="{s}">' not in html]
    assert not absent, f"stage sections missing from the report: {absent}"
