"""What ``saltgw demo`` shows while it runs: a snapshot of the line, rendered.

:class:`DemoSnapshot` is what a MES would see plus what the gateway and the bridge know
(journal backlog, outbox); :func:`render` (a rich renderable, for a terminal) and
:func:`progress_line` (one plain line, for logs and pipes) are pure functions of it.
:func:`open_progress` picks one: ``rich.live.Live`` redrawn in place when the output is a
terminal, else a plain line each time.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TextIO

from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

__all__ = [
    "AlarmLine",
    "DemoSnapshot",
    "LiveProgress",
    "PlainProgress",
    "UploadView",
    "closing_line",
    "open_progress",
    "progress_line",
    "render",
]

CCP_TYPES = ("ccp.metal_detector", "ccp.magnet_rod", "ccp.net_content", "ccp.sieve", "ccp.iodine")
STATE_STYLE = {"online": "green", "offline": "red", "fault": "red"}


@dataclass(frozen=True, slots=True)
class AlarmLine:
    time: str  # HH:MM:SS of the event
    type: str  # alarm.ccp, …
    device: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class UploadView:
    stored: int  # events in the trace store
    built: int  # documents written into the outbox (schema-checked)
    uploaded: int  # acknowledged by the platform (written, for an outbox directory)
    pending: int  # not yet acknowledged
    quarantined: int  # documents that failed their schema or were rejected
    events_waiting: int  # uploadable events not in a document yet
    target: str | None  # the outbox directory or the platform's URL


@dataclass(frozen=True, slots=True)
class DemoSnapshot:
    elapsed_secs: float
    broker: str
    duration_secs: float | None = None
    phase: str = "running"  # running | stopping | stopped
    last_seq: int = 0
    types: Mapping[str, int] = field(default_factory=dict)  # events received, by type
    ccp: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # type → verdict → n
    latest_alarms: tuple[AlarmLine, ...] = ()
    bags_per_min: float | None = None
    scan_rate: float | None = None  # this shift's, from the retained …/kpi
    scan_rate_window: float | None = None  # the live window's
    backlog: int = 0  # journal: undelivered events
    refused: int = 0  # of them, refused by the broker in its PUBACK (gateway/refusals.py)
    devices: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    upload: UploadView | None = None
    resolver: str | None = None  # the resolver's page, http://HOST:PORT/ (consumers, 9.1)
    last_bag: str | None = None  # the code of the latest bag, to look up on the resolver
    console: str | None = None  # the web console, http://HOST:PORT/ (docs/console.md)

    @property
    def resolver_link(self) -> str | None:
        """The consumer's page of the latest bag (what its QR code opens), else the form."""
        if self.resolver is None:
            return None
        return f"{self.resolver}q/{self.last_bag}" if self.last_bag else self.resolver

    @property
    def events(self) -> int:
        return sum(self.types.values())

    def count(self, event_type: str) -> int:
        return self.types.get(event_type, 0)

    @property
    def alarms(self) -> dict[str, int]:
        return {t: n for t, n in sorted(self.types.items()) if t.startswith("alarm.")}

    def verdicts(self) -> tuple[int, int]:
        """(pass, fail) over every CCP."""
        return (
            sum(v.get("pass", 0) for v in self.ccp.values()),
            sum(v.get("fail", 0) for v in self.ccp.values()),
        )


# -- formatting ------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return f"{x:.1%}" if x is not None else "-"


def _rate(x: float | None) -> str:
    return f"{x:.0f}" if x is not None else "-"


def _clock(snap: DemoSnapshot) -> str:
    total = f" / {snap.duration_secs:.0f}" if snap.duration_secs is not None else ""
    return f"{snap.elapsed_secs:.0f}{total} s"


# -- plain -----------------------------------------------------------------------------------
def progress_line(snap: DemoSnapshot) -> str:
    """One line: for pipes, logs and CI."""
    passed, failed = snap.verdicts()
    states = " ".join(f"{d}={s}" for d, (s, _) in sorted(snap.devices.items()))
    line = (
        f"[{snap.elapsed_secs:5.0f}s] events={snap.events} last_seq={snap.last_seq} "
        f"ccp pass={passed} fail={failed} rejects={snap.count('pack.reject')} "
        f"alarms={sum(snap.alarms.values())} bags={snap.count('pack.bag')} "
        f"bags/min={_rate(snap.bags_per_min)} cases={snap.count('pack.case')} "
        f"pallets={snap.count('pack.pallet')} scan_rate={_pct(snap.scan_rate)} "
        f"backlog={snap.backlog}{f' refused={snap.refused}' if snap.refused else ''} "
        f"devices: {states}"
    )
    u = snap.upload
    if u is not None:
        line += (
            f" upload: stored={u.stored} docs={u.built} uploaded={u.uploaded} "
            f"pending={u.pending} quarantined={u.quarantined}"
        )
    return line


def closing_line(snap: DemoSnapshot) -> str:
    """What a person reads last, under the final view."""
    text = f"stopped after {snap.elapsed_secs:.0f} s: {snap.events} events"
    text += f" (last seq {snap.last_seq})"
    u = snap.upload
    if u is not None:
        text += f", {u.built} document{'' if u.built == 1 else 's'}"
        if u.target:
            text += f" in {u.target}"
    return text


# -- rich ------------------------------------------------------------------------------------
def _pairs(title: str, rows: list[tuple[str, str | Text]], per_row: int = 1) -> Panel:
    """A panel of ``label value`` pairs, ``per_row`` pairs side by side."""
    t = Table.grid(padding=(0, 1))
    for n in range(per_row):
        if n:
            t.add_column(width=1)  # a gap between pairs
        t.add_column(style="dim")
        t.add_column(justify="right")
    for i in range(0, len(rows), per_row):
        cells: list[str | Text] = []
        for n, (k, v) in enumerate(rows[i : i + per_row]):
            cells += ["", k, v] if n else [k, v]
        t.add_row(*cells)
    return Panel(t, title=title, title_align="left", expand=False)


def _packing(snap: DemoSnapshot) -> Panel:
    return _pairs(
        "packing",
        [
            ("bags", str(snap.count("pack.bag"))),
            ("cases", str(snap.count("pack.case"))),
            ("bags/min", _rate(snap.bags_per_min)),
            ("pallets", str(snap.count("pack.pallet"))),
            ("scan rate, shift", _pct(snap.scan_rate)),
            ("rejects", str(snap.count("pack.reject"))),
            ("scan rate, live", _pct(snap.scan_rate_window)),
            ("no-reads", str(snap.count("pack.noread"))),
            ("outbound", str(snap.count("ship.outbound"))),
            ("unpacked", str(snap.count("pack.unpack"))),
        ],
        per_row=2,
    )


def _ccp(snap: DemoSnapshot) -> Panel:
    t = Table(box=None, padding=(0, 1), show_edge=False)
    t.add_column("CCP", style="dim")
    t.add_column("pass", justify="right", style="green")
    t.add_column("fail", justify="right")
    kinds = list(CCP_TYPES) + sorted(k for k in snap.ccp if k not in CCP_TYPES)
    for kind in kinds:
        v = snap.ccp.get(kind, {})
        fail = v.get("fail", 0)
        label = kind.removeprefix("ccp.").replace("_", " ")
        t.add_row(label, str(v.get("pass", 0)), Text(str(fail), style="bold red" if fail else ""))
    return Panel(t, title="CCP verdicts", title_align="left", expand=False)


def _upload(snap: DemoSnapshot) -> Panel | None:
    u = snap.upload
    if u is None:
        return None
    quarantined = Text(str(u.quarantined), style="bold red" if u.quarantined else "")
    return _pairs(
        "upload",
        [
            ("events stored", str(u.stored)),
            ("events waiting", str(u.events_waiting)),
            ("documents written", str(u.built)),
            ("uploaded", str(u.uploaded)),
            ("pending", str(u.pending)),
            ("quarantined", quarantined),
        ],
    )


def _devices(snap: DemoSnapshot) -> Panel:
    items, why = [], []
    for dev, (state, detail) in sorted(snap.devices.items()):
        items.append(Text.assemble(f"{dev} ", (state, STATE_STYLE.get(state, "yellow"))))
        if detail and state != "online":
            why.append(_line((f"{dev}: ", ""), (detail, "dim")))
    body: RenderableType = Group(Columns(items, padding=(0, 2)), *why)
    if not items:
        body = Text("waiting for the first device state…", style="dim")
    return Panel(body, title="devices", title_align="left")


def _alarms(snap: DemoSnapshot) -> Panel:
    counts = Text()
    for kind, n in snap.alarms.items():
        if counts:
            counts.append(" · ", style="dim")
        counts.append(f"{kind.removeprefix('alarm.')} {n}")
    if not snap.alarms:
        counts.append("none", style="dim")
    latest = []
    for a in snap.latest_alarms:
        who = f" {a.device}" if a.device else ""
        kind = f"{a.type.removeprefix('alarm.')}{who}"
        latest.append(_line((f"{a.time} ", "dim"), (kind, "yellow"), (f"  {a.detail}", "")))
    return Panel(Group(counts, *latest), title="alarms", title_align="left")


def _line(*parts: tuple[str, str]) -> Text:
    """One line, cut with an ellipsis when too long."""
    return Text.assemble(*parts, no_wrap=True, overflow="ellipsis")


def render(snap: DemoSnapshot) -> RenderableType:
    """The whole view: two header lines, packing and CCP verdicts side by side, the upload and
    the devices side by side, then the alarms (about 25 lines)."""
    phase_style = {"running": "bold green", "stopping": "bold yellow"}.get(snap.phase, "bold")
    header = Text.assemble(
        ("saltgw demo ", "bold"),
        (snap.phase, phase_style),
        f"  {_clock(snap)} · events {snap.events} (last seq {snap.last_seq})"
        f" · journal backlog {snap.backlog}",
    )
    where = Text(f"broker {snap.broker}", style="dim")
    if snap.refused:
        where.append(f" · refuses {snap.refused} events (they wait in the journal; see the log)",
                     style="bold red")  # fmt: skip
    if snap.upload is not None and snap.upload.target:
        where.append(f" · platform XML to {snap.upload.target}")
    if snap.resolver_link is not None:
        where.append(f"\nresolver: open {snap.resolver_link} (a consumer's scan of the latest bag)")
    if snap.console is not None:
        where.append(f"\nconsole: open {snap.console} (sign in with a name and password above)")
    grid = Table.grid(padding=(0, 1))
    grid.add_column()
    grid.add_column()
    grid.add_row(_packing(snap), _ccp(snap))
    grid.add_row(_upload(snap) or "", _devices(snap))
    return Group(header, where, grid, _alarms(snap))


# -- showing it ------------------------------------------------------------------------------
class PlainProgress:
    """A progress line per update (not a terminal)."""

    interval_secs = 2.0

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass

    def update(self, snap: DemoSnapshot) -> None:
        if snap.phase == "running":
            print(progress_line(snap), file=self.out, flush=True)


class LiveProgress:
    """The view redrawn in place (a terminal). Log lines written to stderr while it runs are
    printed above it, when stderr is the same kind of terminal."""

    interval_secs = 1.0

    def __init__(self, out: TextIO, *, console: Console | None = None) -> None:
        self.console = console or Console(file=out)
        self._capture_stderr = sys.stderr.isatty()
        self.live = Live(
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=self._capture_stderr,
        )
        self._handlers: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def __enter__(self) -> LiveProgress:
        stderr = sys.stderr
        self.live.start()
        if self._capture_stderr and sys.stderr is not stderr:
            for h in logging.getLogger().handlers:  # they hold the real stderr: point them
                if isinstance(h, logging.StreamHandler) and h.stream is stderr:
                    old = h.setStream(sys.stderr)
                    if old is not None:
                        self._handlers.append((h, old))
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for h, stream in self._handlers:
            h.setStream(stream)
        self._handlers.clear()
        self.live.stop()

    def update(self, snap: DemoSnapshot) -> None:
        self.live.update(render(snap), refresh=True)


def open_progress(out: TextIO, live: bool | None = None) -> PlainProgress | LiveProgress:
    """The live view on a terminal (or when ``live`` says so), plain lines otherwise."""
    if live is None:
        live = out.isatty()
    return LiveProgress(out) if live else PlainProgress(out)
