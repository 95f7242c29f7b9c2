"""Charts as inline SVG rendered on the server (no script): each has role="img", a title and a
description naming what it shows, and every mark carries its value as text, so nothing is told
by colour alone; the page puts the data table beside each chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

INK = "#1a1a1a"
BAR = "#1f5f99"  # 6.9:1 on white
GRID = "#6b6b6b"  # 5.3:1 on white: axes are non-text content that must show (3:1)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    shown: str


@dataclass(frozen=True)
class Point:
    label: str
    value: float | None
    shown: str


def _head(chart_id: str, title: str, description: str, width: int, height: int) -> str:
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(description)}</desc>'
    )


def bar_chart(
    chart_id: str, title: str, description: str, bars: Sequence[Bar], top: float | None = None
) -> Markup:
    """Horizontal bars, each labelled on its left and valued on its right."""
    label_w, bar_w, row_h = 210, 300, 24
    width, height = label_w + bar_w + 70, row_h * max(len(bars), 1) + 8
    top = top if top else max((b.value for b in bars), default=0.0) or 1.0
    parts = [_head(chart_id, title, description, width, height)]
    for i, bar in enumerate(bars):
        y = 4 + i * row_h
        length = 0.0 if top <= 0 else max(0.0, min(bar.value, top)) / top * bar_w
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" fill="{INK}">'
            f"{escape(bar.label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row_h - 8}" '
            f'fill="{BAR}"/>'
            f'<text x="{label_w + length + 6:.1f}" y="{y + 16}" fill="{INK}">'
            f"{escape(bar.shown)}</text>"
        )
    parts.append(
        f'<line x1="{label_w}" y1="2" x2="{label_w}" y2="{height - 2}" stroke="{GRID}"/></svg>'
    )
    return Markup("".join(parts))


def line_chart(
    chart_id: str,
    title: str,
    description: str,
    points: Sequence[Point],
    top: float | None = None,
    unit: str = "",
    step: int = 56,
    label_every: int = 1,
) -> Markup:
    """A line over the periods; each point is marked, and labelled with its value (every
    ``label_every``-th and the last, on a dense chart); a missing value breaks the line."""
    left, right, upper, lower = 52, 16, 22, 40
    width = left + 20 + right + step * max(len(points) - 1, 1)
    height = 220
    plot_h = height - upper - lower
    values = [p.value for p in points if p.value is not None]
    top = top if top else max(values, default=0.0) * 1.15 or 1.0

    def y_of(value: float) -> float:
        return upper + plot_h * (1 - max(0.0, min(value, top)) / top)

    def x_of(i: int) -> float:  # clear of the axis labels
        return left + 20 + (step * i if len(points) > 1 else step / 2)

    parts = [_head(chart_id, title, description, width, height)]
    for fraction in (0.0, 0.5, 1.0):
        y = y_of(top * fraction)
        tick = f"{top * fraction:.0f}{unit}"
        dashes = "" if fraction == 0 else ' stroke-dasharray="3 3"'
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="{GRID}"{dashes}/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{INK}">{tick}</text>'
        )
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, point in enumerate(points):
        if point.value is None:
            if segment:
                segments.append(segment)
            segment = []
            continue
        segment.append(f"{x_of(i):.1f},{y_of(point.value):.1f}")
    if segment:
        segments.append(segment)
    parts.extend(
        f'<polyline points="{" ".join(s)}" fill="none" stroke="{BAR}" stroke-width="2"/>'
        for s in segments
        if len(s) > 1
    )
    for i, point in enumerate(points):
        x = x_of(i)
        if i % label_every and i != len(points) - 1:
            if point.value is not None:
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{y_of(point.value):.1f}" r="3" fill="{BAR}"/>'
                )
            continue
        parts.append(
            f'<text x="{x:.1f}" y="{height - lower + 18}" text-anchor="middle" fill="{INK}">'
            f"{escape(point.label)}</text>"
        )
        if point.value is None:
            parts.append(
                f'<text x="{x:.1f}" y="{height - lower - 6}" text-anchor="middle" '
                f'fill="{INK}">s/d</text>'
            )
            continue
        y = y_of(point.value)
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{BAR}"/>'
            f'<text x="{x:.1f}" y="{y - 9:.1f}" text-anchor="middle" fill="{INK}">'
            f"{escape(point.shown)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
