"""``report.html`` of ``fedpsyau analyse`` opened in a real browser, offline.

The report is meant to be mailed or archived as one file: its plot and apex faces are
embedded as data URIs (``fedpsyau_jax/video/timeline_outputs.write_report_html``). Here
``fedpsyau analyse`` runs on the real smile clip of tests/fixtures/faces, played forward
and back between still frames of its neutral first frame (1.5 s each: the smile stands
out of a still background whatever the spotter's constants), with an exported model of
random weights (the path is tested, not the emotions); the report is copied alone into
an empty folder and opened in headless Chromium with networking disabled.
A script appended to that copy writes what the browser made of the page into the DOM,
which ``--dump-dom`` prints: every image decoded (naturalWidth > 0), every table has
rows, and the page requested nothing.

Chromium is a system package that ``scripts/setup.sh`` installs (apt-get) when it is
missing; without it these tests fail, they do not skip.

The screenshot in docs/_static/ is made by the same code::

    python tests/test_report_browser.py --checkpoint runs/demo --out docs/_static/report_screenshot.png
"""

import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "tests" / "fixtures" / "faces" / "single_face.mp4"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CLASSES = ["negative", "positive", "surprise"]

# Same worker as the other analyse tests: the module's report is made once.
pytestmark = pytest.mark.xdist_group("video_analyse")

# Appended before </body> of a copy of the report; the page itself has no script.
CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const out = {
    title: document.title,
    images: [...document.images].map(i => ({
      complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
      scheme: i.src.split(":")[0]})),
    tables: [...document.querySelectorAll("table")].map(t => ({
      rows: t.rows.length, data_rows: [...t.rows].filter(r => r.querySelector("td")).length})),
    requests: performance.getEntriesByType("resource").map(r => r.name),
  };
  const pre = document.createElement("pre");
  pre.id = "browser-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str:
    """The browser's path; a test fails (not skips) without one."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        f"no Chromium on PATH (looked for {', '.join(BROWSERS)}): run `bash scripts/setup.sh`, "
        "which installs it with apt-get (or install Chromium or Chrome yourself)",
        pytrace=False,
    )


def run_browser(page: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Headless Chromium on a local file with every network request failing: names do
    not resolve and the proxy is a closed port."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [
            chromium(),
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--hide-scrollbars",
            "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=10000",
            *args,
            page.resolve().as_uri(),
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def browser_view(report: Path, workdir: Path) -> dict:
    """What the browser made of ``report``, copied alone into ``workdir`` (so a file it
    referred to next to it could not load) with ``CHECK_SCRIPT`` appended."""
    src = report.read_text(encoding="utf-8")
    assert src.count("</body>") == 1, "report.html: expected one </body>"
    workdir.mkdir(parents=True, exist_ok=True)
    page = workdir / "report.html"
    page.write_text(src.replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    proc = run_browser(page, "--dump-dom")
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the page did not finish loading in Chromium (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def screenshot(report: Path, png: Path, width: int = 1000, height: int = 1000) -> Path:
    proc = run_browser(report, f"--window-size={width},{height}", f"--screenshot={png.resolve()}")
    assert png.is_file(), f"Chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return png


def smile_video(dest: Path) -> Path:
    """``dest``: 1.5 s of the clip's neutral first frame, the clip forward (the smile
    rises), backward (it fades), 1.5 s neutral again; 30 fps, 7.8 s."""
    from data_pipelines.spotting_synthetic import write_video
    from fedpsyau_jax.video.frame_stream import iter_frames, probe

    frames = [f for _, _, f in iter_frames(probe(CLIP))]
    still = [frames[0]] * 45
    height, width = frames[0].shape[:2]
    write_video(dest, still + frames + frames[::-1] + still, 30.0, (width, height))
    return dest


def analyse_smile(out: Path, checkpoint: Path | str) -> dict:
    from fedpsyau_jax.cli import main

    video = smile_video(out.parent / "smile.mp4")
    rc = main(["analyse", "--video", str(video), "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"])
    assert rc == 0
    return json.loads((out / "timeline.json").read_text())


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """(report.html, timeline) of the smile clip analysed with a random-weight model."""
    from fedpsyau_jax.training.exported_model import write_random_model

    chromium()  # no browser: fail before spending the analysis
    d = tmp_path_factory.mktemp("report")
    model = write_random_model(d / "model", CLASSES, group_tokens="paper", roi_source="flow128")
    timeline = analyse_smile(d / "out", model)
    assert timeline["intervals"], "the smile was not spotted: the report would have no face to show"
    return d / "out" / "report.html", timeline


def test_report_opens_offline_with_every_image_decoded_and_every_table_filled(report, tmp_path):
    import cv2

    path, timeline = report
    view = browser_view(path, tmp_path / "alone")
    assert view["title"] == "smile.mp4"
    n = len(timeline["intervals"])
    assert len(view["images"]) == 1 + n, view["images"]  # the plot, one apex face per interval
    for img in view["images"]:
        assert img["scheme"] == "data" and img["complete"], img
        assert img["width"] > 0 and img["height"] > 0, f"an image did not decode: {img}"
    plot = cv2.imread(str(path.parent / "timeline.png"))
    assert (view["images"][0]["height"], view["images"][0]["width"]) == plot.shape[:2]  # the embedded plot
    assert view["tables"], "no table in the report"
    for table in view["tables"]:
        assert table["data_rows"] >= 1, f"a table without rows: {table}"
    assert view["tables"][0]["data_rows"] == n
    assert view["requests"] == [], f"the report asked for files or the network: {view['requests']}"


def test_the_check_sees_images_that_need_a_file_or_the_network(tmp_path):
    """The check itself: next to an embedded image, one from the web and one from a
    neighbouring file (present next to the original, absent next to the copy)."""
    import base64

    import cv2
    import numpy as np

    ok, png = cv2.imencode(".png", np.zeros((4, 6, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "near.png"), np.zeros((4, 6, 3), np.uint8))
    page = tmp_path / "page.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>t</title></head><body><table><tr><th>h</th></tr></table>"
        f'<img src="data:image/png;base64,{base64.b64encode(png.tobytes()).decode()}">'
        '<img src="http://example.com/x.png"><img src="near.png"></body></html>'
    )
    view = browser_view(page, tmp_path / "alone")
    assert [(i["width"], i["height"]) for i in view["images"]] == [(6, 4), (0, 0), (0, 0)]
    assert view["tables"] == [{"rows": 1, "data_rows": 0}]
    assert view["requests"] == ["http://example.com/x.png"]


def test_report_renders_to_a_screenshot(report, tmp_path):
    import cv2
    import numpy as np

    path, _ = report
    shot = cv2.imread(str(screenshot(path, tmp_path / "shot.png", 800, 600)))
    assert shot is not None and shot.shape[:2] == (600, 800)
    grey = cv2.cvtColor(shot, cv2.COLOR_BGR2GRAY)
    ink = np.mean(grey < 128)
    assert 0.005 < ink < 0.5, f"the rendered page looks blank or broken ({ink:.3f} of its pixels are dark)"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="screenshot of the report of the smile clip")
    parser.add_argument("--checkpoint", required=True, help="run folder or exported model, as for analyse")
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("--size", default="1000x1000", help="window WIDTHxHEIGHT")
    a = parser.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        analyse_smile(Path(tmp) / "out", a.checkpoint)
        screenshot(Path(tmp) / "out" / "report.html", a.out, w, h)
    print(a.out, file=sys.stderr)
