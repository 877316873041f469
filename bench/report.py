"""The benchmarks' output format: one JSON object per line, each figure beside its baseline.

    {"bench": NAME, "value": V, "unit": U, "baseline": B, "ratio": V/B, ...extra keys}

``ratio`` is ``value / baseline`` (None when there is no baseline to divide by); ``target`` and
``met`` are added when the bench has a target. Also the small statistics the benches share.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "REQUIRED_KEYS",
    "emit",
    "error_row",
    "latency_summary",
    "parse_only",
    "percentile",
    "row",
    "to_line",
]

REQUIRED_KEYS = ("bench", "value", "unit", "baseline", "ratio")


def row(
    bench: str,
    value: float,
    unit: str,
    baseline: float | None,
    *,
    target: float | None = None,
    higher_is_better: bool = True,
    digits: int = 3,
    **extra: Any,
) -> dict[str, Any]:
    """A result line: the required keys first, then ``target``/``met``, then ``extra``.

    ``met`` compares ``value`` with ``target``: at least it when higher is better, at most it
    otherwise (latency, memory)."""
    if not bench:
        raise ValueError("a bench needs a name")
    if not _finite(value):
        raise ValueError(f"{bench}: value must be a finite number, not {value!r}")
    if baseline is not None and not _finite(baseline):
        raise ValueError(f"{bench}: baseline must be a finite number or None, not {baseline!r}")
    clash = set(extra) & {*REQUIRED_KEYS, "target", "met"}
    if clash:
        raise ValueError(f"{bench}: extra keys may not replace {sorted(clash)}")
    ratio = round(value / baseline, digits) if baseline else None
    out: dict[str, Any] = {
        "bench": bench,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
    }
    if target is not None:
        out["target"] = target
        out["met"] = value >= target if higher_is_better else value <= target
    out.update(extra)
    return out


def error_row(bench: str, error: BaseException | str) -> dict[str, Any]:
    """What a bench that failed prints instead of its figure (the run goes on)."""
    return {"bench": bench, "value": None, "unit": None, "baseline": None, "ratio": None,
            "error": str(error) or type(error).__name__}  # fmt: skip


def to_line(obj: dict[str, Any]) -> str:
    """One JSON line; refuses objects without the required keys, in their order."""
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise ValueError(f"bench line misses {missing}: {obj!r}")
    if list(obj)[: len(REQUIRED_KEYS)] != list(REQUIRED_KEYS):
        obj = {**{k: obj[k] for k in REQUIRED_KEYS}, **obj}
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def emit(obj: dict[str, Any]) -> None:
    print(to_line(obj), flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0…100) of ``values``; they need not be sorted."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0…100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def latency_summary(ms: Sequence[float], digits: int = 2) -> dict[str, float | int]:
    """p50, p99, max, mean and count of latencies in ms (empty input: count 0 only)."""
    if not ms:
        return {"count": 0}
    return {
        "p50_ms": round(percentile(ms, 50), digits),
        "p99_ms": round(percentile(ms, 99), digits),
        "max_ms": round(max(ms), digits),
        "mean_ms": round(sum(ms) / len(ms), digits),
        "count": len(ms),
    }


def parse_only(spec: str | None, groups: dict[str, Iterable[str]]) -> list[str]:
    """The groups to run for ``--only NAME[,NAME]``: a name is a group or one of the bench
    names a group prints. None or empty: every group, in order."""
    if not spec:
        return list(groups)
    wanted: set[str] = set()
    for name in (n.strip() for n in spec.split(",")):
        if not name:
            continue
        hits = [g for g, benches in groups.items() if name == g or name in set(benches)]
        if not hits:
            known = sorted({*groups, *(b for bs in groups.values() for b in bs)})
            raise ValueError(f"unknown bench {name!r}; known: {', '.join(known)}")
        wanted.update(hits)
    return [g for g in groups if g in wanted]


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
