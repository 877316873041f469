"""Charts drawn on the server as SVG (no front-end library, nothing fetched at run time). Text in
an SVG is escaped; numbers are formatted, never pasted.

- :func:`rate_chart`: a KPI rate over time within one shift, the alarm threshold as a dashed
  line and the samples on its wrong side marked; the y range follows the data (a no-read rate
  of 1 % is drawn on 0–2 %, not on 0–100 %).
- :func:`ccp_value_chart`: a measured CCP (net content, magnet rods, iodine) over time, its
  lower and upper limits drawn as dashed steps (they follow the records: a product change moves
  them), failed records marked.
- :func:`ccp_verdict_chart`: a yes/no CCP (metal detector, sieve): each record a mark on the
  pass or the fail row.

Every chart ends with ``<desc>`` counts (``points=… below_threshold=…`` / ``fail=…``) that tests
and scripts read."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from xml.sax.saxutils import escape

__all__ = ["CcpPoint", "ccp_value_chart", "ccp_verdict_chart", "rate_chart"]

W, H = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 24, 32
PASS_COLOUR, FAIL_COLOUR, LIMIT_COLOUR = "#1f6feb", "#c0392b", "#c0392b"


@dataclass(frozen=True, slots=True)
class CcpPoint:
    """One CCP record as the charts draw it (the trace store's ``ccp`` row)."""

    at: float  # epoch seconds of the record's ts
    value: float | None  # a measured value (None: a yes/no check)
    flag: bool | None  # a yes/no check's value
    lo: float | None
    hi: float | None
    verdict: str  # pass | fail
    device: str | None = None


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def _open(title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" role="img" aria-label="{escape(title)}" class="chart">',
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>',
        f'<text x="{LEFT}" y="16" font-size="13" fill="#222">{escape(title)}</text>',
    ]


def _time_axis(t0: float, t1: float, tz: tzinfo) -> tuple[Callable[[float], float], list[str]]:
    """x(t) over the plot's width and the time labels under it: the first label starts at
    the left edge and the last ends at the right one (neither is cut off)."""
    span = max(t1 - t0, 1.0)
    pw = W - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + (t - t0) / span * pw

    labels = []
    for t, anchor in ((t0, "start"), (t0 + span / 2, "middle"), (t0 + span, "end")):
        text = datetime.fromtimestamp(t, tz).strftime("%H:%M:%S")
        labels.append(
            f'<text x="{_fmt(x(t))}" y="{H - 10}" font-size="11" text-anchor="{anchor}" '
            f'fill="#555">{text}</text>'
        )
    return x, labels


def _y_grid(y: Callable[[float], float], lo: float, hi: float, label: Callable[[float], str]
            ) -> list[str]:  # fmt: skip
    out = []
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{_fmt(y(v))}" y2="{_fmt(y(v))}" '
            'stroke="#e4e4e4"/>'
            f'<text x="{LEFT - 4}" y="{_fmt(y(v) + 4)}" font-size="11" text-anchor="end" '
            f'fill="#555">{escape(label(v))}</text>'
        )
    return out


def _no_data() -> str:
    return (
        f'<text x="{W // 2}" y="{H // 2}" font-size="14" text-anchor="middle" '
        'fill="#888">暂无数据</text>'
    )


def _nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 × 10^n at or above ``v`` (> 0)."""
    scale = 10.0 ** math.floor(math.log10(v))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * scale >= v - 1e-12:
            return m * scale
    return 10.0 * scale  # pragma: no cover - the loop ends at 10


def rate_chart(
    points: Sequence[tuple[float, float | None]],
    *,
    title: str,
    threshold: float | None,
    tz: tzinfo,
    lo: float | None = None,
    high_is_bad: bool = False,
) -> str:
    """An SVG line chart of ``points`` ((epoch seconds, rate in 0..1 or None)).

    A rate where high is good (scan rate, right-first-time) is drawn from ``lo`` (default: a
    little under the lowest of the points and the threshold) to 100 %, the samples under the
    threshold marked; one where high is bad (``high_is_bad``: the no-read rate) from 0 to a
    round ceiling above the highest of the points and the threshold, the samples over it
    marked."""
    vals = [v for _, v in points if v is not None]
    limit = [threshold] if threshold is not None else []
    if high_is_bad:
        floor, top = 0.0, _nice_ceiling(max([*vals, *limit, 0.004]) * 1.25)
        top = min(top, 1.0)
    else:
        floor = lo if lo is not None else max(0.0, min(0.9, min([*vals, *limit, 1.0]) - 0.02))
        top = 1.0
    span_y = max(top - floor, 1e-6)
    ph = H - TOP - BOTTOM
    t0 = points[0][0] if points else 0.0
    t1 = points[-1][0] if points else 1.0
    x, labels = _time_axis(t0, t1, tz)

    def y(v: float) -> float:
        return TOP + (1.0 - (min(max(v, floor), top) - floor) / span_y) * ph

    digits = 2 if span_y < 0.05 else 1
    out = _open(title)
    out += _y_grid(y, floor, top, lambda v: f"{v * 100:.{digits}f}%")
    if points:
        out += labels
    if threshold is not None:
        ty = _fmt(y(threshold))
        out.append(
            f'<line class="threshold" x1="{LEFT}" x2="{W - RIGHT}" y1="{ty}" y2="{ty}" '
            f'stroke="{LIMIT_COLOUR}" stroke-dasharray="6 4" stroke-width="1.5"/>'
            f'<text x="{W - RIGHT}" y="{_fmt(y(threshold) - 4)}" font-size="11" '
            f'text-anchor="end" fill="{LIMIT_COLOUR}">报警阈值 {threshold * 100:.1f}%</text>'
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
        wrong = threshold is not None and (rate > threshold if high_is_bad else rate < threshold)
        if wrong:
            below += 1
            out.append(
                f'<circle class="below" cx="{_fmt(x(t))}" cy="{_fmt(y(rate))}" r="3" '
                f'fill="{FAIL_COLOUR}"/>'
            )
    if path:
        out.append(_polyline(path))
    if not vals:
        out.append(_no_data())
    out.append(
        f"<desc>points={len(vals)} below_threshold={below} y_min={floor:.4f} y_max={top:.4f}"
        "</desc></svg>"
    )
    return "".join(out)


def _polyline(path: list[str], colour: str = PASS_COLOUR, width: float = 2) -> str:
    return (
        f'<polyline class="series" points="{" ".join(path)}" fill="none" stroke="{colour}" '
        f'stroke-width="{width}"/>'
    )


def _number(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.0f}"


def _limit_steps(
    points: Sequence[CcpPoint], which: str, x: Callable[[float], float],
    y: Callable[[float], float], right: float,
) -> list[str]:  # fmt: skip
    """The ``lo`` or ``hi`` limit as a dashed step line (a gap where a record has none)."""
    out: list[str] = []
    path: list[str] = []
    for i, p in enumerate(points):
        v = getattr(p, which)
        if v is None:
            if path:
                out.append(_limit_path(path, which))
            path = []
            continue
        end = x(points[i + 1].at) if i + 1 < len(points) else right
        path += [f"{_fmt(x(p.at))},{_fmt(y(v))}", f"{_fmt(end)},{_fmt(y(v))}"]
    if path:
        out.append(_limit_path(path, which))
    return out


def _limit_path(path: list[str], which: str) -> str:
    return (
        f'<polyline class="limit limit-{which}" points="{" ".join(path)}" fill="none" '
        f'stroke="{LIMIT_COLOUR}" stroke-dasharray="6 4" stroke-width="1.5"/>'
    )


def ccp_value_chart(points: Sequence[CcpPoint], *, title: str, unit: str | None, tz: tzinfo
                    ) -> str:  # fmt: skip
    """A measured CCP's values over time against their limits (the records' ``lo``/``hi``)."""
    vals = [p.value for p in points if p.value is not None]
    limits = [v for p in points for v in (p.lo, p.hi) if v is not None]
    every = vals + limits
    lo_y, hi_y = (min(every), max(every)) if every else (0.0, 1.0)
    pad = (hi_y - lo_y) * 0.08 or max(abs(hi_y) * 0.05, 1.0)
    lo_y, hi_y = lo_y - pad, hi_y + pad
    ph = H - TOP - BOTTOM
    t0 = points[0].at if points else 0.0
    t1 = points[-1].at if points else 1.0
    x, labels = _time_axis(t0, t1, tz)

    def y(v: float) -> float:
        return TOP + (1.0 - (v - lo_y) / (hi_y - lo_y)) * ph

    out = _open(title + (f"（{unit}）" if unit else ""))
    out += _y_grid(y, lo_y, hi_y, _number)
    if points:
        out += labels
    right = float(W - RIGHT)
    out += _limit_steps(points, "lo", x, y, right)
    out += _limit_steps(points, "hi", x, y, right)
    last = points[-1] if points else None
    for which, name, dy in (("lo", "下限", 13), ("hi", "上限", -4)):
        v = getattr(last, which) if last is not None else None
        if v is not None:
            out.append(
                f'<text x="{right}" y="{_fmt(y(v) + dy)}" font-size="11" text-anchor="end" '
                f'fill="{LIMIT_COLOUR}">{name} {_number(v)}</text>'
            )
    path = [f"{_fmt(x(p.at))},{_fmt(y(p.value))}" for p in points if p.value is not None]
    if len(path) > 1:
        out.append(_polyline(path, "#9bbcf0", 1))
    fails = 0
    for p in points:
        if p.value is None:
            continue
        failed = p.verdict != "pass"
        fails += failed
        out.append(
            f'<circle class="{"fail" if failed else "pass"}" cx="{_fmt(x(p.at))}" '
            f'cy="{_fmt(y(p.value))}" r="{3 if failed else 2}" '
            f'fill="{FAIL_COLOUR if failed else PASS_COLOUR}"/>'
        )
    if not vals:
        out.append(_no_data())
    shown = (
        f" lo={_number(last.lo) if last and last.lo is not None else '-'}"
        f" hi={_number(last.hi) if last and last.hi is not None else '-'}"
    )
    out.append(f"<desc>points={len(vals)} fail={fails}{shown}</desc></svg>")
    return "".join(out)


def ccp_verdict_chart(points: Sequence[CcpPoint], *, title: str, tz: tzinfo) -> str:
    """A yes/no CCP's records over time: a mark on the pass row or on the fail row."""
    t0 = points[0].at if points else 0.0
    t1 = points[-1].at if points else 1.0
    x, labels = _time_axis(t0, t1, tz)
    rows = {"pass": TOP + (H - TOP - BOTTOM) * 0.3, "fail": TOP + (H - TOP - BOTTOM) * 0.75}
    out = _open(title)
    for verdict, name in (("pass", "合格"), ("fail", "不合格")):
        ry = _fmt(rows[verdict])
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{ry}" y2="{ry}" stroke="#e4e4e4"/>'
            f'<text x="{LEFT - 4}" y="{_fmt(rows[verdict] + 4)}" font-size="11" '
            f'text-anchor="end" fill="#555">{name}</text>'
        )
    if points:
        out += labels
    fails = 0
    for p in points:
        failed = p.verdict != "pass"
        fails += failed
        cx, cy = _fmt(x(p.at)), _fmt(rows["fail" if failed else "pass"])
        out.append(
            f'<rect class="{"fail" if failed else "pass"}" x="{cx}" y="{cy}" width="4" '
            f'height="14" transform="translate(-2 -7)" '
            f'fill="{FAIL_COLOUR if failed else PASS_COLOUR}"/>'
        )
    if not points:
        out.append(_no_data())
    out.append(f"<desc>points={len(points)} fail={fails}</desc></svg>")
    return "".join(out)
