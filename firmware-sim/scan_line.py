"""A simulated packing line's fixed scanners: the bag scanner, and optionally the case label,
pallet label and outbound scanners, fed by one flow of bags so that what they read adds up.

Every ``60 / rate_per_min`` seconds a bag passes the bag scanner, which sends its QR payload
(``url_prefix`` + code, QB/T 5279-2018 8.2) — or, as configured, a no-read (``NoRead``), a
duplicate (a copied label: an earlier bag's code), an invalid code (another producer's, one
not in Annex A, or too long), a misread (truncated or corrupted) or garbage before the code.
After every ``bags_per_case`` bags the case label scanner reads the case's label; after every
``cases_per_pallet`` cases the pallet scanner reads the pallet's; then the outbound scanner
reads an order barcode (``SO:{order}|{customer}``) and the pallet, a wholesaler's inbound scanner
reads the pallet when it arrives, and every ``recall_every_pallets``-th pallet one of its cases
comes back to the recall desk (order barcode ``RC:{recall}`` and the case).

The bag scanner's link is a TCP server on ``port`` (the gateway's ``tcp_client`` link, or its
serial link with ``socket://host:port``), a TCP client to the gateway's ``tcp_server`` link on
``gateway_host:port``, or a pseudo-terminal (``pty``: a real serial device; ``pty_link`` names
a stable symlink to it). The other stations are TCP servers, or cameras (``folder:``) that drop
one image of each label into a folder (qrframes.py: tilted, blurred, glare; a label not read is
an image without a readable code) for the camera driver's folder source.

``seed`` fixes the fault pattern; the codes themselves are new on every run (a trace store
that outlives a run must not see the next run's codes as duplicates).

Test knobs: :meth:`ScanLineSim.send_raw`, :meth:`ScanLineSim.inject_garbage`,
:meth:`ScanLineSim.drop`, :meth:`ScanLineSim.pause` / :meth:`ScanLineSim.resume`; the truth is in
``bags``, ``cases`` and ``pallets``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from firmware_sim.base import SimulatorConfigBase, SimulatorSpec
from firmware_sim.codegen import CodeGen
from firmware_sim.scan_endpoints import (
    Endpoint,
    FolderEndpoint,
    PtyEndpoint,
    SimFraming,
    TcpClientEndpoint,
    TcpServerEndpoint,
    frame,
)

__all__ = [
    "SCAN_LINE",
    "STATIONS",
    "Bag",
    "Packed",
    "ScanLineSim",
    "ScanLineSimConfig",
    "ScanStationSimConfig",
]

log = logging.getLogger(__name__)

Fault = Literal["ok", "noread", "duplicate", "invalid", "misread"]
STATIONS = ("bag", "case", "pallet", "outbound", "inbound", "recall")
Garbage = Literal["binary", "overlong", "framing"]


class ScanStationSimConfig(BaseModel):
    """A further scanner of the simulated line: a TCP server, or a camera writing images."""

    model_config = ConfigDict(extra="forbid")

    port: int = Field(
        default=0, ge=0, le=65535, description="TCP port to listen on (0 picks a free one)."
    )
    framing: SimFraming = Field(default="crlf", description="cr, lf, crlf or stx_etx.")
    folder: Path | None = Field(
        default=None,
        description="Instead of a TCP scanner, a camera dropping one image per label into this "
        "folder (the camera driver's folder source).",
    )


class ScanLineSimConfig(SimulatorConfigBase):
    """The scanners of a packing line, with injected faults."""

    kind: Literal["scan_line"] = Field(description="Selects the packing-line scanners simulator.")
    link: Literal["tcp_server", "tcp_client", "pty"] = Field(
        default="tcp_server",
        description="The bag scanner's link: tcp_server (on host:port), tcp_client (connects "
        "to gateway_host:port) or pty (a pseudo-terminal; port unused).",
    )
    gateway_host: str = Field(
        default="127.0.0.1", description="tcp_client link: where the gateway listens."
    )
    pty_link: Path | None = Field(
        default=None, description="pty link: a symlink made to the pty's device (e.g. var/scan1)."
    )
    framing: SimFraming = Field(default="crlf", description="The bag scanner's framing.")
    case: ScanStationSimConfig | None = Field(
        default=None, description="The case label scanner; none = no case scanner."
    )
    pallet: ScanStationSimConfig | None = Field(
        default=None, description="The pallet label scanner; none = none."
    )
    outbound: ScanStationSimConfig | None = Field(
        default=None, description="The outbound scanner (order barcode + pallet); none = none."
    )
    inbound: ScanStationSimConfig | None = Field(
        default=None, description="A wholesaler's inbound scanner (the pallet arrives)."
    )
    recall: ScanStationSimConfig | None = Field(
        default=None, description="The recall desk's scanner (recall id barcode + a case)."
    )
    forced_faults: dict[Fault, list[Annotated[int, Field(ge=1)]]] = Field(
        default_factory=dict,
        description="Bags (1-based numbers) forced to have a fault, on top of the ratios: e.g. "
        "so that a demo shows each fault within its first minute.",
        examples=[{"duplicate": [5], "noread": [9, 30], "invalid": [14]}],
    )
    recall_every_pallets: int = Field(
        default=3, ge=1, description="Every so many pallets, one of its cases is recalled."
    )
    enterprise: str = Field(
        default="8035", pattern=r"^[89][0-9]{3}$", description="Enterprise code printed."
    )
    url_prefix: str = Field(
        default="https://trace.example.cn/q/",
        description="Resolver address before each code (QB/T 5279 8.2); '' = bare codes.",
    )
    rate_per_min: float = Field(default=120.0, gt=0, le=6000, description="Bags per minute.")
    bags_per_case: int = Field(default=6, ge=1, le=200, description="Bags per case.")
    cases_per_pallet: int = Field(default=4, ge=1, le=200, description="Cases per pallet.")
    customer: str = Field(default="泰安市盐业公司", description="Customer on the order barcodes.")
    noread_ratio: float = Field(default=0.0, ge=0, le=1, description="Bags not read (NoRead).")
    duplicate_ratio: float = Field(
        default=0.0, ge=0, le=1, description="Bags with a copied label (an earlier code)."
    )
    invalid_ratio: float = Field(
        default=0.0, ge=0, le=1, description="Bags with an invalid code (foreign, too long)."
    )
    misread_ratio: float = Field(
        default=0.0, ge=0, le=1, description="Bags whose code is misread (truncated, corrupted)."
    )
    garbage_ratio: float = Field(
        default=0.0, ge=0, le=1, description="Bags preceded by a garbage frame on the line."
    )
    case_noread_ratio: float = Field(default=0.0, ge=0, le=1, description="Case labels not read.")
    start_delay_s: float = Field(
        default=0.0, ge=0, le=60, description="Wait this long before the first bag."
    )
    outbound_delay_s: float = Field(
        default=1.0, ge=0, le=60, description="Time from a pallet's label to its outbound scan."
    )

    @model_validator(mode="after")
    def _ratios(self) -> ScanLineSimConfig:
        total = self.noread_ratio + self.duplicate_ratio + self.invalid_ratio + self.misread_ratio
        if total > 1:
            raise ValueError(f"fault ratios add up to {total:g}, more than 1")
        return self

    def optional_needs(self) -> dict[str | None, tuple[str, ...]]:
        """A camera station (``folder:``) draws its images with OpenCV and numpy
        (``qrframes.py``); the TCP and pty stations need nothing optional."""
        stations = (self.case, self.pallet, self.outbound, self.inbound, self.recall)
        if any(st is not None and st.folder is not None for st in stations):
            return {"camera": ("cv2", "numpy")}
        return {}


@dataclass(frozen=True, slots=True)
class Bag:
    n: int
    code: str  # printed on the bag
    sent: str  # what the scanner sent
    fault: Fault
    garbage: Garbage | None = None  # a garbage frame was sent just before this bag's


@dataclass(slots=True)
class Packed:
    code: str
    children: list[str]
    labeled: bool = True


@dataclass(slots=True)
class _Stations:
    bag: Endpoint
    case: Endpoint | None = None
    pallet: Endpoint | None = None
    outbound: Endpoint | None = None
    inbound: Endpoint | None = None
    recall: Endpoint | None = None
    framing: dict[str, SimFraming] = field(default_factory=dict)


class ScanLineSim:
    def __init__(self, config: ScanLineSimConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)  # the fault pattern: reproducible with a seed
        self._fault_rng = random.Random(self._rng.random())  # bags' faults: their own stream
        self.codes = CodeGen(random.Random(), config.enterprise)  # new codes on every run
        self.bags: list[Bag] = []
        self.cases: list[Packed] = []
        self.pallets: list[Packed] = []
        self.stations = self._stations()
        self._task: asyncio.Task[None] | None = None
        self._spawned: set[asyncio.Task[None]] = set()
        self._in_case: list[str] = []
        self._in_pallet: list[str] = []
        self._garbage_next: Garbage | None = None
        self._paused = False
        self._orders = 0

    def _stations(self) -> _Stations:
        c = self.config
        bag: Endpoint
        if c.link == "tcp_client":
            bag = TcpClientEndpoint(c.gateway_host, c.port)
        elif c.link == "pty":
            bag = PtyEndpoint(c.pty_link)
        else:
            bag = TcpServerEndpoint(c.host, c.port)
        st = _Stations(bag, framing={"bag": c.framing})
        for name in ("case", "pallet", "outbound", "inbound", "recall"):
            sc: ScanStationSimConfig | None = getattr(c, name)
            if sc is not None and sc.folder is not None:
                setattr(st, name, FolderEndpoint(sc.folder, random.Random(self._rng.random())))
            elif sc is not None:
                setattr(st, name, TcpServerEndpoint(c.host, sc.port))
            if sc is not None:
                st.framing[name] = sc.framing
        return st

    @property
    def port(self) -> int:
        return self.stations.bag.port

    def station_port(self, name: str) -> int:
        ep: Endpoint | None = getattr(self.stations, name)
        if ep is None:
            raise KeyError(f"no {name} station")
        return ep.port

    @property
    def pty_device(self) -> str | None:
        bag = self.stations.bag
        return bag.device if isinstance(bag, PtyEndpoint) else None

    async def start(self) -> None:
        for name in STATIONS:
            ep: Endpoint | None = getattr(self.stations, name)
            if ep is not None:
                await ep.start()
        self._task = asyncio.create_task(self._run(), name=f"scan-line-{self.config.id}")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._spawned) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for name in STATIONS:
            ep: Endpoint | None = getattr(self.stations, name)
            if ep is not None:
                await ep.stop()

    # -- test knobs -------------------------------------------------------------------------------
    async def send_raw(self, data: bytes, station: str = "bag") -> None:
        """Send bytes as they are (no framing) on a station."""
        ep: Endpoint | None = getattr(self.stations, station)
        assert ep is not None, station
        await ep.send(data)

    def inject_garbage(self, kind: Garbage = "binary") -> None:
        """The next bag's code is preceded by a garbage frame of ``kind``."""
        self._garbage_next = kind

    async def drop(self) -> None:
        """Cut the bag scanner's connections (TCP server link); the gateway reconnects."""
        bag = self.stations.bag
        if isinstance(bag, TcpServerEndpoint):
            await bag.drop_clients()

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def garbage(self, kind: Garbage, framing: SimFraming) -> bytes:
        """A garbage frame that still ends where a frame ends, so the next code reads."""
        if kind == "binary":
            noise = bytes(self._rng.randrange(0x80, 0x100) for _ in range(6))  # no CR/LF/STX/ETX
            return frame(bytes([0x00, 0x01, 0xFE, 0xFF]) + noise, framing)
        if kind == "overlong":
            return frame(b"A" * 2000, framing)
        if framing == "stx_etx":
            return b"8035NOFRAME\r\n"  # text outside STX … ETX
        return b"\x028035WRONGFRAMING\x03" + frame(b"", framing)  # STX/ETX on a CR/LF line

    # -- the flow ---------------------------------------------------------------------------------
    async def _run(self) -> None:
        c = self.config
        interval = 60.0 / c.rate_per_min
        await asyncio.sleep(c.start_delay_s)
        next_t = time.monotonic()
        while True:
            next_t += interval
            if not self._paused:
                await self._bag()
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    def _fault(self) -> Fault:
        c, r = self.config, self._fault_rng.random()
        n = len(self.bags) + 1
        for fault, bags in c.forced_faults.items():
            if n in bags:
                return fault
        for fault, ratio in (
            ("noread", c.noread_ratio),
            ("duplicate", c.duplicate_ratio),
            ("invalid", c.invalid_ratio),
            ("misread", c.misread_ratio),
        ):
            if r < ratio:
                return fault  # type: ignore[return-value]
            r -= ratio
        return "ok"

    async def _bag(self) -> None:
        c = self.config
        code = self.codes.new()
        fault = self._fault()
        printed = [b.code for b in self.bags if b.fault == "ok"]
        if fault == "duplicate" and not printed:
            fault = "ok"
        if fault == "noread":
            sent = "NoRead"
        elif fault == "duplicate":
            code = self._fault_rng.choice(printed)
            sent = c.url_prefix + code
        elif fault == "invalid":
            sent = c.url_prefix + self.codes.foreign()
        elif fault == "misread":
            sent = c.url_prefix + self.codes.misread(code)
        else:
            sent = c.url_prefix + code
        garbage = self._garbage_next
        self._garbage_next = None
        if garbage is None and c.garbage_ratio and self._rng.random() < c.garbage_ratio:
            garbage = self._rng.choice(["binary", "overlong", "framing"])
        framing = self.stations.framing["bag"]
        if garbage is not None:
            await self.stations.bag.send(self.garbage(garbage, framing))
        self.bags.append(Bag(len(self.bags) + 1, code, sent, fault, garbage))
        await self.stations.bag.send(frame(sent, framing))
        self._in_case.append(code)
        if len(self._in_case) >= c.bags_per_case:
            bags, self._in_case = self._in_case, []
            self._spawn(self._case(bags))

    def _label_delay(self) -> float:
        return min(0.2, 0.4 * 60.0 / self.config.rate_per_min)

    async def _case(self, bags: list[str]) -> None:
        await asyncio.sleep(self._label_delay())
        code = self.codes.new()
        labeled = self._rng.random() >= self.config.case_noread_ratio
        self.cases.append(Packed(code, bags, labeled))
        await self._emit("case", code if labeled else None)
        self._in_pallet.append(code)
        if len(self._in_pallet) >= self.config.cases_per_pallet:
            cases, self._in_pallet = self._in_pallet, []
            self._spawn(self._pallet(cases))

    async def _pallet(self, cases: list[str]) -> None:
        await asyncio.sleep(self._label_delay())
        code = self.codes.new()
        self.pallets.append(Packed(code, cases))
        await self._emit("pallet", code)
        if self.stations.outbound is not None:
            await asyncio.sleep(self.config.outbound_delay_s)
            self._orders += 1
            order = f"SO:SO{time.strftime('%Y%m%d')}-{self._orders:04d}|{self.config.customer}"
            await self._emit("outbound", order)
            await self._emit("outbound", code)
        if self.stations.inbound is not None:
            await asyncio.sleep(self.config.outbound_delay_s)
            await self._emit("inbound", code)
        if (
            self.stations.recall is not None
            and len(self.pallets) % self.config.recall_every_pallets == 0
        ):
            await asyncio.sleep(self.config.outbound_delay_s)
            await self._emit("recall", f"RC:RC{time.strftime('%Y%m%d')}-{len(self.pallets):04d}")
            await self._emit("recall", self._rng.choice(cases))

    async def _emit(self, station: str, text: str | None) -> None:
        """A label read (``text``) or not read (None) at ``station``, if the line has it."""
        ep: Endpoint | None = getattr(self.stations, station)
        if isinstance(ep, FolderEndpoint):
            await ep.write_frame(text)
        elif ep is not None:
            await ep.send(
                frame(text if text is not None else "NoRead", self.stations.framing[station])
            )


SCAN_LINE = SimulatorSpec(
    name="scan_line",
    config_model=ScanLineSimConfig,
    create=ScanLineSim,
    description="Fixed scanners of a packing line (bag, case, pallet, outbound) over TCP or a "
    "pty, with no-reads, duplicates, invalid codes, misreads and garbage.",
)
