"""A wholesaler's handheld scanners (QB/T 5279-2018 5.2 入库扫描 / 出库扫描): two cradles on TCP
(the gateway's ``inbound_scanner`` and ``outbound_scanner`` devices connect to them, ``driver:
scanner``, ``tcp_client``), each sending what the warehouse clerk scans: the delivery's order
barcode and the pallet as it arrives; later the sales order's barcode and some of its cases.

What is scanned is either written out (``inbound`` / ``outbound``: order barcodes and codes as
the handheld reads them) or taken from the producer's EPCIS 2.0 documents (``from_epcis``: a
folder of them, e.g. the demo producer's outbox): its first pallet arrives, ``ship_cases`` of its
cases leave. A clerk scans when the system is up: each cradle waits for the gateway's connection
before its first scan (bounded by nothing: a scan with nobody listening would be lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Literal

from pydantic import Field

from firmware_sim.base import SimulatorConfigBase, SimulatorSpec
from firmware_sim.scan_endpoints import SimFraming, TcpServerEndpoint, frame

__all__ = ["HANDHELD_SCANNER", "HandheldScannerSim", "HandheldSimConfig", "pallets_in"]

log = logging.getLogger(__name__)

EPCIS_NS = "urn:epcglobal:epcis:xsd:2"
SG_NS = "urn:saltgw:epcis:1"
CODE_PREFIX = "urn:saltgw:code:"


class HandheldSimConfig(SimulatorConfigBase):
    kind: Literal["handheld_scanner"] = Field(
        description="A wholesaler's handheld scanners: inbound and outbound cradles over TCP."
    )
    outbound_port: int = Field(
        ge=0, le=65535, description="TCP port of the outbound cradle (`port`: the inbound one)."
    )
    framing: SimFraming = Field(default="crlf", description="Frame terminator of both cradles.")
    inbound: list[str] = Field(
        default_factory=list,
        description="What is scanned in, in order: order barcodes (`DO:{order}|{supplier}`) and "
        "codes; empty: from `from_epcis`.",
    )
    outbound: list[str] = Field(
        default_factory=list,
        description="What is scanned out, in order (`SO:{order}|{customer}`, codes); empty: "
        "from `from_epcis`.",
    )
    from_epcis: Path | None = Field(
        default=None,
        description="Folder of the producer's EPCIS 2.0 documents (*.xml): its first pallet is "
        "scanned in, `ship_cases` of its cases out.",
    )
    ship_cases: int = Field(default=2, ge=1, description="Cases of the pallet shipped on.")
    supplier: str = Field(default="山东岱岳制盐有限公司", description="Supplier on the DO barcode.")
    customer: str = Field(default="泰安市泰山区某超市", description="Customer on the SO barcode.")
    inbound_order: str = Field(default="DO-0001", description="Inbound order (入库单号).")
    outbound_order: str = Field(default="SO-0001", description="Outbound order (出库单号).")
    url_prefix: str = Field(
        default="https://trace.example.cn/q/",
        description="Resolver address the printed marks carry before each code (QB/T 5279 "
        "8.2); '' = bare codes.",
    )
    interval_ms: int = Field(default=300, ge=0, description="Between two scans.")
    outbound_after_ms: int = Field(
        default=2000, ge=0, description="After the last inbound scan, before the first outbound."
    )


def pallets_in(folder: Path) -> list[tuple[str, list[str]]]:
    """(pallet, its cases) packed in the EPCIS documents of ``folder``, in document order
    (files by name; a pallet packed again keeps its last cases)."""
    from lxml import etree  # here: the simulator registry is imported by every gateway

    found: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.xml")):
        try:
            root = etree.parse(str(path), etree.XMLParser(resolve_entities=False)).getroot()
        except etree.XMLSyntaxError:
            continue
        if etree.QName(root).namespace != EPCIS_NS:
            continue
        for ev in root.iterfind(".//AggregationEvent"):
            if ev.findtext("action") != "ADD" or ev.findtext(f"{{{SG_NS}}}level") != "pallet":
                continue
            parent = (ev.findtext("parentID") or "").removeprefix(CODE_PREFIX)
            cases = [(e.text or "").removeprefix(CODE_PREFIX) for e in ev.iterfind("childEPCs/epc")]
            found[parent] = cases
    return list(found.items())


class HandheldScannerSim:
    def __init__(self, config: HandheldSimConfig) -> None:
        self.config = config
        self.inbound = TcpServerEndpoint(config.host, config.port)
        self.outbound = TcpServerEndpoint(config.host, config.outbound_port)
        self.done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.inbound.port

    def scripts(self) -> tuple[list[str], list[str]]:
        """(inbound, outbound) scans: as configured, else from the producer's documents."""
        c = self.config
        if c.inbound or c.outbound or c.from_epcis is None:
            return list(c.inbound), list(c.outbound)
        pallets = pallets_in(c.from_epcis)
        if not pallets:
            raise ValueError(f"handheld {c.id}: no pallet in the EPCIS documents of {c.from_epcis}")
        pallet, cases = pallets[0]
        mark = c.url_prefix
        return (
            [f"DO:{c.inbound_order}|{c.supplier}", mark + pallet],
            [f"SO:{c.outbound_order}|{c.customer}", *(mark + x for x in cases[: c.ship_cases])],
        )

    async def start(self) -> None:
        inbound, outbound = self.scripts()
        await self.inbound.start()
        await self.outbound.start()
        self._task = asyncio.create_task(self._run(inbound, outbound), name=f"{self.config.id}")

    async def _run(self, inbound: list[str], outbound: list[str]) -> None:
        await self._scan(self.inbound, inbound)
        await asyncio.sleep(self.config.outbound_after_ms / 1000)
        await self._scan(self.outbound, outbound)
        self.done.set()

    async def _scan(self, ep: TcpServerEndpoint, texts: list[str]) -> None:
        if not texts:
            return
        while True:  # the clerk waits for the system (the gateway's connection)
            if ep.clients:
                break
            await asyncio.sleep(0.05)
        for text in texts:
            await asyncio.sleep(self.config.interval_ms / 1000)
            await ep.send(frame(text, self.config.framing))
            log.info("handheld %s: scanned %r", self.config.id, text)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.inbound.stop()
        await self.outbound.stop()


HANDHELD_SCANNER = SimulatorSpec(
    name="handheld_scanner",
    config_model=HandheldSimConfig,
    create=HandheldScannerSim,
    description="A wholesaler's handheld scanners: a pallet scanned in, some of its cases out "
    "(scripted, or from the producer's EPCIS documents).",
)
