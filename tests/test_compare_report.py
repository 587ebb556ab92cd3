"""The report as a user sees it: opened from disk in headless Chromium (driven through the
DevTools protocol, as the ComfyUI browser test does), with the network cut off. Dragging the
slider moves the line and changes what is visible there, the plots are drawn, and a
screenshot is kept as an artefact (in the test's tmp folder, and in $SUPERRES_ARTEFACTS when set)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from compare_helpers import LR_SIZE, pan, resized, write_clip
from devtools import open_browser
from vs_superres.compare import compare, write_report

pytest.importorskip("cv2", reason="the compare extra (opencv-python-headless) is not installed")


@pytest.fixture
def page(tmp_path):
    with open_browser(tmp_path / "profile", "1400,1000", "--force-device-scale-factor=1") as devtools:
        yield devtools


def _warmth(image: Image.Image) -> float:
    """Mean red minus blue: the warm clip is far redder than the input."""
    a = np.asarray(image, dtype=np.float32)
    return float((a[..., 0] - a[..., 2]).mean())


def test_report_in_chromium_slider_moves_and_changes_the_picture_plots_drawn(page, tmp_path):
    hr = pan(8)
    warm = [np.clip(f.astype(np.int16) + np.array([60, 0, -60]), 0, 255).astype(np.uint8) for f in hr]
    lr = write_clip(tmp_path / "input.mkv", resized(hr, LR_SIZE))
    out = write_clip(tmp_path / "warm_output.mkv", warm)
    report = write_report(compare([lr, out], frames=1, measure=None), tmp_path / "report.html")

    page.call("Network.enable")
    page.call("Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1, uploadThroughput=-1)
    page.call("Page.enable")
    page.call("Page.navigate", url=report.as_uri())
    page.wait_for("document.readyState === 'complete' && [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    # the plots: one per figure over time, each with a line per clip that has a real extent
    drawn = page.js("[...document.querySelectorAll('svg.plot')].map(s => [s.dataset.figure, "
                    "[...s.querySelectorAll('polyline')].map(p => Math.round(p.getBBox().width))])")
    assert [figure for figure, _ in drawn] == ["flicker", "change"]
    assert all(len(widths) == 2 and min(widths) > 300 for _, widths in drawn)
    assert page.js("document.querySelectorAll('figcaption').length") >= 2

    page.js("document.querySelector('.stage').scrollIntoView({block: 'center'})")
    time.sleep(0.3)
    box = page.js("(() => { const r = document.querySelector('.stage').getBoundingClientRect();"
                  " return {x: r.left, y: r.top, width: r.width, height: r.height}; })()")
    assert box["width"] >= 250 and box["height"] >= 180
    scroll = page.js("({x: window.scrollX, y: window.scrollY})")  # a screenshot's clip is in page coordinates
    probe = {"x": scroll["x"] + box["x"] + 0.70 * box["width"], "y": scroll["y"] + box["y"] + 0.4 * box["height"],
             "width": 16, "height": 16}
    before = _warmth(page.shot(probe))  # right of the line (at 50%): the warm output
    assert page.js("document.querySelector('.wipe').value") == "50"

    # drag the line from the middle to 90%: the probed spot is now left of it, the input
    y = box["y"] + box["height"] / 2
    page.mouse("mousePressed", box["x"] + 0.5 * box["width"], y)
    for f in (0.6, 0.75, 0.9):
        page.mouse("mouseMoved", box["x"] + f * box["width"], y)
        time.sleep(0.05)
    page.mouse("mouseReleased", box["x"] + 0.9 * box["width"], y)
    time.sleep(0.2)
    assert float(page.js("document.querySelector('.wipe').value")) == pytest.approx(90, abs=1)
    assert page.js("document.querySelector('.divider').style.left").startswith("9")
    after = _warmth(page.shot(probe))
    assert before - after > 60  # the spot changed from the warm output to the input

    # choosing another pair shows it: left = right = the output
    page.js("(() => { const s = document.querySelector('select.left'); s.value = 'B';"
            " s.dispatchEvent(new Event('change')); })()")
    assert _warmth(page.shot(probe)) == pytest.approx(before, abs=15)
    assert page.js("document.querySelector('.badge.left').textContent") == "B: warm_output.mkv"

    shot = page.shot()
    path = tmp_path / "compare_report.png"
    shot.save(path)
    if os.environ.get("SUPERRES_ARTEFACTS"):
        Path(os.environ["SUPERRES_ARTEFACTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["SUPERRES_ARTEFACTS"]) / path.name)
    assert shot.size[0] >= 1000 and shot.size[1] > 1000
    print(f"screenshot: {path}")
