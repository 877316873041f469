"""Charts drawn on the server as SVG (no front-end library, nothing fetched at run time): a
KPI over time within one shift, with the alarm threshold as a dashed line and the samples under
it marked. Text in an SVG is escaped; numbers are formatted, never pasted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from xml.sax.saxutils import escape

__all__ = ["rate_chart"]

W, H = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 24, 32


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def rate_chart(
    points: Sequence[tuple[float, float | None]],
    *,
    title: str,
    threshold: float | None,
    tz: tzinfo,
    lo: float | None = None,
) -> str:
    """An SVG line chart of ``points`` ((epoch seconds, rate in 0..1 or None)); y from ``lo``
    (default: a little under the lowest of the points and the threshold) to 1.0."""
    vals = [v for _, v in points if v is not None]
    floor = lo
    if floor is None:
        low = min([*vals, *([threshold] if threshold is not None else []), 1.0])
        floor = max(0.0, min(0.9, low - 0.02))
    span_y = max(1.0 - floor, 1e-6)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    t0 = points[0][0] if points else 0.0
    t1 = points[-1][0] if points else 1.0
    span_t = max(t1 - t0, 1.0)

    def x(t: float) -> float:
        return LEFT + (t - t0) / span_t * pw

    def y(v: float) -> float:
        return TOP + (1.0 - (min(max(v, floor), 1.0) - floor) / span_y) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" role="img" aria-label="{escape(title)}" class="chart">',
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>',
        f'<text x="{LEFT}" y="16" font-size="13" fill="#222">{escape(title)}</text>',
    ]
    for i in range(5):  # y grid: floor .. 1.0
        v = floor + span_y * i / 4
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{_fmt(y(v))}" y2="{_fmt(y(v))}" '
            'stroke="#e4e4e4"/>'
            f'<text x="{LEFT - 4}" y="{_fmt(y(v) + 4)}" font-size="11" text-anchor="end" '
            f'fill="#555">{v * 100:.1f}%</text>'
        )
    if points:
        for t in (t0, t0 + span_t / 2, t1):
            label = datetime.fromtimestamp(t, tz).strftime("%H:%M:%S")
            out.append(
                f'<text x="{_fmt(x(t))}" y="{H - 10}" font-size="11" text-anchor="middle" '
                f'fill="#555">{label}</text>'
            )
    if threshold is not None:
        ty = _fmt(y(threshold))
        out.append(
            f'<line class="threshold" x1="{LEFT}" x2="{W - RIGHT}" y1="{ty}" y2="{ty}" '
            'stroke="#c0392b" stroke-dasharray="6 4" stroke-width="1.5"/>'
            f'<text x="{W - RIGHT}" y="{_fmt(y(threshold) - 4)}" font-size="11" '
            f'text-anchor="end" fill="#c0392b">报警阈值 {threshold * 100:.1f}%</text>'
        )
    path: list[str] = []
    below = 0
    for t, rate in points:
        if rate is None:
            if path:
                out.append(_polyline(path))
            path = []
            continue
        path.append(f"{_fmt(x(t))},{_fmt(y(rate))}")
        if threshold is not None and rate < threshold:
            below += 1
            out.append(
                f'<circle class="below" cx="{_fmt(x(t))}" cy="{_fmt(y(rate))}" r="3" '
                'fill="#c0392b"/>'
            )
    if path:
        out.append(_polyline(path))
    if not vals:
        out.append(
            f'<text x="{W // 2}" y="{H // 2}" font-size="14" text-anchor="middle" '
            'fill="#888">暂无数据</text>'
        )
    out.append(f"<desc>points={len(vals)} below_threshold={below}</desc></svg>")
    return "".join(out)


def _polyline(path: list[str]) -> str:
    return (
        f'<polyline class="series" points="{" ".join(path)}" fill="none" stroke="#1f6feb" '
        'stroke-width="2"/>'
    )
