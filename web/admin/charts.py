"""Server-rendered SVG bar charts: no JavaScript, so the CSP can forbid all scripts.

Bars are scaled from integer minor units; only the pixel geometry uses
division, and every label is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 640, 220
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 70, 30, 10


def bar_chart(bars: Sequence[tuple[str, int]], *, label: str, value_text: Sequence[str]) -> str:
    """One SVG: a bar per (x label, value ≥ 0); ``value_text`` is each bar's tooltip."""
    plot_w = WIDTH - MARGIN_LEFT - 10
    plot_h = HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    top = max([v for _, v in bars] + [1])
    step = plot_w / max(len(bars), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(label)}" class="chart">',
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP + plot_h}" x2="{WIDTH - 10}" '
        f'y2="{MARGIN_TOP + plot_h}" stroke="#9ca3af"/>',
    ]
    for i, ((name, value), text) in enumerate(zip(bars, value_text, strict=True)):
        height = plot_h * max(value, 0) / top
        x = MARGIN_LEFT + i * step + step * 0.15
        y = MARGIN_TOP + plot_h - height
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{height:.1f}" '
            f'fill="#2563eb"><title>{escape(name)}: {escape(text)}</title></rect>'
        )
        parts.append(
            f'<text x="{x + step * 0.35:.1f}" y="{HEIGHT - 10}" font-size="11" '
            f'text-anchor="middle" fill="#374151">{escape(name)}</text>'
        )
    if bars:  # the axis is labelled with the tallest bar's value
        tallest = max(range(len(bars)), key=lambda i: bars[i][1])
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{MARGIN_TOP + 10}" font-size="11" '
            f'text-anchor="end" fill="#374151">{escape(value_text[tallest])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
