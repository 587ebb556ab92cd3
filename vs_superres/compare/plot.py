"""Line plots as inline SVG, drawn here (no script, no network): one per figure over time.

Each clip is one polyline in its own colour and dash (told apart in grey print too), the axes
carry ticks in the figure's unit, and a legend names the clips. Values that could not be
measured (NaN) or are infinite break the line.
"""

from __future__ import annotations

import html
import math

from vs_superres.compare.result import MILLI, Series

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
DASHES = ("", "6 3", "2 2", "8 3 2 3")
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 16, 40


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= m * step)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:.4g}"


def svg_plot(series: Series, titles: dict[str, str]) -> str:
    """``<svg>`` text plotting ``series`` (x: seconds, or frames when the clip has no rate)
    with one line per clip; ``titles[label]`` names the clips in the legend."""
    factor = 1000.0 if series.key in MILLI else 1.0
    xs = list(series.times) if any(series.times) else [float(f) for f in series.frames]
    x_unit = "s" if any(series.times) else "frame"
    lines = {label: [v * factor for v in values] for label, values in series.values.items()}
    finite = [v for values in lines.values() for v in values if math.isfinite(v)]
    y_low, y_high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if series.key in MILLI:
        y_low = 0.0
    if y_high - y_low < 1e-12:
        y_high = y_low + (abs(y_low) * 0.1 or 1.0)
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_high - x_low < 1e-12:
        x_high = x_low + 1.0
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * pw

    def py(y: float) -> float:
        return TOP + ph - (y - y_low) / (y_high - y_low) * ph

    unit = " (x10^-3)" if series.key in MILLI else ""
    parts = [f'<svg class="plot" data-figure="{series.key}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{html.escape(series.title)}">',
             f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#888"/>']
    for t in _ticks(y_low, y_high):
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>'
                     f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end" font-size="11">{_label(t)}</text>')
    for t in _ticks(x_low, x_high):
        parts.append(f'<text x="{px(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle" font-size="11">{_label(t)}</text>')
    parts.append(f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 6}" text-anchor="middle" font-size="12">{x_unit}</text>')
    parts.append(f'<text x="12" y="{TOP + ph / 2}" font-size="12" transform="rotate(-90 12 {TOP + ph / 2})" '
                 f'text-anchor="middle">{html.escape(series.title + unit)}</text>')
    for n, (label, values) in enumerate(lines.items()):
        colour, dash = COLOURS[n % len(COLOURS)], DASHES[n % len(DASHES)]
        runs: list[list[str]] = [[]]
        for x, y in zip(xs, values):
            if math.isfinite(y):
                runs[-1].append(f"{px(x):.1f},{py(y):.1f}")
            elif runs[-1]:
                runs.append([])
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle data-clip="{label}" cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
            elif run:
                parts.append(f'<polyline data-clip="{label}" points="{" ".join(run)}" fill="none" stroke="{colour}" '
                             f'stroke-width="1.8"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        ly = TOP + 14 + 18 * n
        parts.append(f'<line x1="{WIDTH - RIGHT + 10}" x2="{WIDTH - RIGHT + 34}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
                     f'stroke-width="2"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>"
                     f'<text x="{WIDTH - RIGHT + 40}" y="{ly}" font-size="11">{html.escape(titles.get(label, label)[:22])}</text>')
    parts.append("</svg>")
    return "".join(parts)
