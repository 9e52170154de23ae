"""A small inline SVG of the last runs: rows moved as bars, duration as a line (no scripts, no
external assets: the page works on a machine without internet)."""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, HEIGHT, PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 760, 180, 56, 56, 14, 26
STATUS_COLOURS = {"success": "#4a90d9", "partial": "#e0a030", "failed": "#d9534f", "running": "#9b9b9b"}


def _short(n: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _seconds(ms: float) -> str:
    s = ms / 1000
    return f"{s:.1f}s" if s < 120 else f"{s / 60:.1f}m"


def runs_chart(runs: list[dict[str, Any]]) -> str:
    """``runs`` newest first (as listed); drawn oldest to newest, left to right."""
    runs = list(reversed(runs))
    if not runs:
        return ""
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    rows = [int(r.get("rows_moved") or 0) for r in runs]
    durations = [float(r.get("duration_ms") or 0) for r in runs]
    max_rows, max_ms = max(max(rows), 1), max(max(durations), 1.0)
    step = plot_w / len(runs)
    bar_w = max(step * 0.7, 1.0)
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
             f'aria-label="rows moved and duration of the last {len(runs)} runs">']
    base = PAD_TOP + plot_h
    parts.append(f'<line x1="{PAD_LEFT}" y1="{base}" x2="{WIDTH - PAD_RIGHT}" y2="{base}" stroke="#bbb"/>')
    parts.append(f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + 10}" text-anchor="end" class="axis">{_short(max_rows)}</text>')
    parts.append(f'<text x="{PAD_LEFT - 6}" y="{base}" text-anchor="end" class="axis">0</text>')
    parts.append(f'<text x="{WIDTH - PAD_RIGHT + 6}" y="{PAD_TOP + 10}" class="axis">{_seconds(max_ms)}</text>')
    parts.append(f'<text x="{PAD_LEFT}" y="{HEIGHT - 6}" class="axis">rows moved (bars)</text>')
    parts.append(f'<text x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 6}" text-anchor="end" class="axis">duration (line)</text>')
    points = []
    for i, (run, n, ms) in enumerate(zip(runs, rows, durations)):
        x = PAD_LEFT + i * step + (step - bar_w) / 2
        h = plot_h * n / max_rows
        colour = STATUS_COLOURS.get(run.get("status"), "#9b9b9b")
        label = escape(f"{run.get('started_at') or ''}: {run.get('status')}, {n:,} rows moved, {_seconds(ms)}")
        parts.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar_w:.1f}" height="{max(h, 1):.1f}" '
                     f'fill="{colour}"><title>{label}</title></rect>')
        points.append(f"{PAD_LEFT + i * step + step / 2:.1f},{base - plot_h * ms / max_ms:.1f}")
    parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#333" stroke-width="1.5"/>')
    parts.append("</svg>")
    return "".join(parts)
