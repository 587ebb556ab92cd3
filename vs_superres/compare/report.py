"""The report: one self-contained HTML file (no network, no external file, no external script).

Pictures are ``data:`` URIs, plots are inline SVG drawn by :mod:`.plot`, the slider is a few
lines of inline script; a Content-Security-Policy forbids the page to load anything else. For
each shown frame: a slider between any two clips (drag the picture or the range), then the
detail crops of every clip side by side at full resolution.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

from vs_superres.compare.inputs import Clip
from vs_superres.compare.pictures import JPEG_QUALITY
from vs_superres.compare.plot import svg_plot
from vs_superres.compare.result import CAPTIONS, MILLI, TITLES, Comparison, SampledFrame
from vs_superres.compare.scaling import resampler_title
from vs_superres.media.atomic import write_bytes_atomic

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.caption, figcaption, .note { color: #555; font-size: 13px; margin: 4px 0; }
.stage { position: relative; width: 100%; overflow: hidden; cursor: ew-resize; touch-action: none; user-select: none; background: #000; }
.stage img { -webkit-user-drag: none; position: absolute; left: 0; top: 0; width: 100%; height: 100%; display: none; }
.stage img.under, .stage img.over { display: block; }
.stage img.over { z-index: 1; }
.divider { position: absolute; top: 0; bottom: 0; width: 2px; margin-left: -1px; background: #fff;
           box-shadow: 0 0 3px #000; z-index: 2; pointer-events: none; }
.badge { position: absolute; top: 6px; z-index: 3; background: rgba(0,0,0,.6); color: #fff; padding: 1px 6px; font-size: 12px; }
.badge.left { left: 6px; } .badge.right { right: 6px; } .badge:empty { display: none; }
.wipe { width: 100%; }
.crops { display: flex; flex-wrap: wrap; gap: 16px; margin: 12px 0; }
.crops figure { margin: 0; } .crops .row { display: flex; gap: 4px; }
.crops img { image-rendering: pixelated; display: block; }
.crops span { display: block; font-size: 12px; color: #444; }
"""

_SCRIPT = """
document.querySelectorAll('.compare').forEach(function (box) {
  var stage = box.querySelector('.stage'), range = box.querySelector('.wipe');
  var left = box.querySelector('select.left'), right = box.querySelector('select.right');
  var imgs = Array.prototype.slice.call(stage.querySelectorAll('img'));
  function show() {
    var p = range.value;
    imgs.forEach(function (im) {
      var c = im.getAttribute('data-clip');
      var over = c === right.value && c !== left.value;
      im.classList.toggle('under', c === left.value);
      im.classList.toggle('over', over);
      im.style.clipPath = over ? 'inset(0 0 0 ' + p + '%)' : '';
    });
    box.querySelector('.divider').style.left = p + '%';
    box.querySelector('.badge.left').textContent = left.options[left.selectedIndex].text;
    box.querySelector('.badge.right').textContent = right.value === left.value ? '' : right.options[right.selectedIndex].text;
  }
  function move(e) {
    var r = stage.getBoundingClientRect();
    range.value = Math.max(0, Math.min(100, (e.clientX - r.left) / r.width * 100));
    show();
  }
  var dragging = false;
  stage.addEventListener('pointerdown', function (e) { e.preventDefault(); dragging = true; stage.setPointerCapture(e.pointerId); move(e); });
  stage.addEventListener('pointermove', function (e) { if (dragging) move(e); });
  stage.addEventListener('pointerup', function (e) { if (dragging) move(e); dragging = false; });
  range.addEventListener('input', show);
  left.addEventListener('change', show);
  right.addEventListener('change', show);
  show();
});
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def shown_as(result: Comparison, clip: Clip) -> str:
    scale = result.scale_of(clip)
    if abs(scale - 1.0) < 1e-9:
        return "as is"
    return f"upscaled x{scale:.4g} with {resampler_title(result.resampler)}"


def _number(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "identical"
    if key in MILLI:
        return f"{value * 1000:.3f}"
    return f"{value:.2f}" if key == "psnr_y" else f"{value:.4f}"


def _inputs_table(result: Comparison) -> str:
    rows = []
    for clip in result.clips:
        count = f"{clip.frame_count} frames" if clip.frame_count_exact else f"about {clip.frame_count} frames"
        rate = f"{float(clip.fps):.6g} fps, {count}" if clip.fps else "image"
        role = "reference" if clip is result.reference else ("input" if clip is result.inputs[0] else "output")
        rows.append(f"<tr><td>{_e(clip.label)}</td><td>{_e(clip.name)}</td><td>{role}</td><td>{clip.width}x{clip.height}</td>"
                    f"<td>{_e(rate)}</td><td>{_e(shown_as(result, clip))}</td></tr>")
    return ("<table class='inputs'><tr><th></th><th>file</th><th>role</th><th>size</th><th>frames</th><th>shown</th></tr>"
            + "".join(rows) + "</table>")


def _scores(result: Comparison) -> str:
    if not result.series:
        return ""
    summary = result.summary()
    keys = [s.key for s in result.series]
    head = "".join(f"<th>{_e(TITLES[k])}{' (x10^-3)' if k in MILLI else ''}</th>" for k in keys)
    rows = "".join(f"<tr><td>{_e(c.title)}</td>" + "".join(
        f"<td class='num'>{_number(k, summary[c.label].get(k))}</td>" for k in keys) + "</tr>" for c in result.clips)
    counts = {s.key: len(s.frames) for s in result.series}
    captions = "".join(f"<li>{_e(CAPTIONS[k])}; mean over {counts[k]} frames</li>" for k in keys)
    luma = ("<p class='caption'>Y: " + ("BT.601" if result.luma == "bt601" else "BT.709")
            + " studio-range luma as the video-SR papers compute it (BasicSR, MATLAB rgb2ycbcr)"
            + (f", {result.crop_border} px left out at each edge" if result.crop_border else "")
            + "; smaller inputs are scored after the upscale named above.</p>") if result.reference else ""
    return (f"<section id='scores'><h2>Figures</h2><table class='scores'><tr><th>clip</th>{head}</tr>{rows}</table>"
            f"<ul class='caption'>{captions}</ul>{luma}</section>")


def _plots(result: Comparison) -> str:
    titles = {c.label: c.title for c in result.clips}
    figures = [f"<figure class='figure' id='plot-{s.key}'>{svg_plot(s, titles)}<figcaption>{_e(s.caption)}</figcaption></figure>"
               for s in result.series if len(s.frames) > 1]
    return f"<section id='plots'><h2>Over time</h2>{''.join(figures)}</section>" if figures else ""


def _options(result: Comparison, selected: str) -> str:
    return "".join(f"<option value='{_e(c.label)}'{' selected' if c.label == selected else ''}>{_e(c.title)}</option>"
                   for c in result.clips)


def _frame(result: Comparison, frame: SampledFrame) -> str:
    clips = result.clips
    view = frame.views[0]
    imgs = "".join(f"<img data-clip='{_e(c.label)}' alt='{_e(c.title)}' draggable='false' src='{p.uri()}'>" for c, p in zip(clips, frame.views))
    when = f"frame {frame.index} ({frame.time:.3f} s)" if clips[0].kind == "video" else "the image"
    slider = (f"<div class='compare' data-frame='{frame.index}'>"
              f"<p>left <select class='left' aria-label='left clip'>{_options(result, clips[0].label)}</select> "
              f"right <select class='right' aria-label='right clip'>{_options(result, clips[1].label)}</select></p>"
              f"<div class='stage' style='aspect-ratio: {view.width} / {view.height}; max-width: {view.width}px'>{imgs}"
              "<div class='divider'></div><span class='badge left'></span><span class='badge right'></span></div>"
              f"<input type='range' class='wipe' min='0' max='100' step='0.1' value='50' aria-label='wipe position' "
              f"style='max-width: {view.width}px'>"
              f"<p class='caption'>Slider: left of the line the left clip, right of it the right clip, the whole "
              f"{result.display[0]}x{result.display[1]} frame scaled to {view.width} px (JPEG quality {JPEG_QUALITY}); "
              "drag the picture or the range. The crops below are exact pixels.</p></div>")
    crops = []
    for n, (region, pictures) in enumerate(zip(frame.regions, frame.crops), 1):
        row = "".join(f"<div><img alt='{_e(c.title)}' src='{p.uri()}' width='{p.width}' height='{p.height}'>"
                      f"<span>{_e(c.title)}</span></div>" for c, p in zip(clips, pictures))
        crops.append(f"<figure><div class='row'>{row}</div><figcaption>Detail {n}: {region.size}x{region.size} px at "
                     f"({region.x}, {region.y}), full resolution (lossless PNG), chosen as one of the squares with the "
                     "most luma gradient energy in the outputs</figcaption></figure>")
    return (f"<section class='frame' id='frame-{frame.index}'><h3>{_e(when.capitalize())}</h3>{slider}"
            f"<div class='crops'>{''.join(crops)}</div></section>")


def render(result: Comparison) -> str:
    """The report's HTML text."""
    names = " vs ".join(c.name for c in result.inputs)
    notes = "".join(f"<p class='note'>{_e(n)}</p>" for n in result.notes)
    frames = "".join(_frame(result, f) for f in result.frames)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>superres compare: {_e(names)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>Comparison: {_e(names)}</h1>{_inputs_table(result)}{notes}{_scores(result)}{_plots(result)}"
            f"<section id='frames'><h2>Frames</h2>{frames}</section>"
            f"<script>{_SCRIPT}</script></body></html>")


def write_report(result: Comparison, path: str | os.PathLike) -> Path:
    """Write the report atomically (a complete file under its name, or nothing); returns the path."""
    return write_bytes_atomic(path, render(result).encode("utf-8"))
