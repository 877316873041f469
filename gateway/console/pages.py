"""The console's pages: Jinja2 templates beside this module (autoescaped, strict about
undefined names), compiled once."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

__all__ = ["Pages"]


def _pct(v: Any) -> str:
    return "—" if not isinstance(v, int | float) else f"{v * 100:.1f}%"


def _num(v: Any) -> str:
    return "—" if not isinstance(v, int | float) else f"{v:.1f}"


def _count(v: Any) -> str:
    return "—" if not isinstance(v, int | float) else f"{v:.0f}"


class Pages:
    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.env = Environment(
            loader=PackageLoader("gateway.console", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["pct"] = _pct
        self.env.filters["num"] = _num
        self.env.filters["count"] = _count
        self.env.filters["when"] = self._when

    def _when(self, epoch: float) -> str:
        return datetime.fromtimestamp(epoch, self.tz).strftime("%Y-%m-%d %H:%M:%S")

    def render(self, template: str, **ctx: Any) -> bytes:
        return self.env.get_template(f"{template}.html").render(**ctx).encode("utf-8")
