"""The wholesaler's side end to end (QB/T 5279-2018 5.2; issue 18's "done when"): the demo
producer (`saltgw demo --epcis`) packs and writes its EPCIS 2.0 documents; the wholesaler
imports them (`saltgw import CONFIG epcis`), its handheld simulator scans the producer's first
pallet in and two of its cases out, over real sockets to `saltgw run` on a real mosquitto; the
wholesaler's upload outbox then holds the inbound scan of the pallet and the outbound order of
the two cases, each with every bag inside expanded."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from lxml import etree

from gateway.bridge.xmlcheck import check_document
from tests.support.bridge_docs import GS1_XSD, facts_of
from tests.support.broker import Mosquitto, mosquitto_available
from tests.support.configs import demo_line_on_free_ports
from tests.support.demo import start_demo
from tests.support.net import free_port
from tests.support.procs import ROOT, saltgw, stop

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not mosquitto_available(), reason="needs mosquitto"),
    pytest.mark.skipif(not GS1_XSD.is_file(), reason="needs GS1's EPCIS 2.0 XSD"),
]

P = "{urn:saltgw:platform:1}"
# the producer's demo line packs 10 bags/s here (the demo map's 120 bags/min: its first good
# pallet ~30 s in, after the forced faults); the demo is stopped (Ctrl-C) once the outbox holds
# a pallet, PRODUCER_SECS only bounds it
PRODUCER_BAGS_PER_MIN = 600
PRODUCER_SECS = 120


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def contents(docs: list[Path]) -> dict[str, list[str]]:
    """Container → its children now, replaying the producer's packing events in order."""
    inside: dict[str, list[str]] = {}
    for action, parent, kids in facts_of([d.read_bytes() for d in docs]).relations:
        held = inside.setdefault(parent, [])
        if action == "pack":
            held.extend(k for k in kids if k not in held)
        else:
            inside[parent] = [k for k in held if k not in (kids or held)]
    return inside


def bags_of(code: str, inside: dict[str, list[str]]) -> list[str]:
    kids = inside.get(code)
    return [code] if kids is None else [b for k in kids for b in bags_of(k, inside)]


def fast_producer_line(tmp: Path) -> Path:
    """The demo line on free ports, its scanners at PRODUCER_BAGS_PER_MIN (same fault pattern)."""
    line = demo_line_on_free_ports(tmp)
    data = yaml.safe_load(line.read_text())
    (scan,) = [s for s in data["simulators"] if s["kind"] == "scan_line"]
    scan["rate_per_min"] = PRODUCER_BAGS_PER_MIN
    line.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return line


def run_producer(outbox: Path, cwd: Path) -> tuple[int, str]:
    """``saltgw demo --epcis`` until its outbox holds a packed pallet, then Ctrl-C (a clean
    stop); its exit code and stderr. The line: :func:`fast_producer_line`."""
    from firmware_sim.handheld import pallets_in

    args = ("--epcis", "--duration", str(PRODUCER_SECS), "--outbox", str(outbox))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    demo = start_demo(cwd, args, line=fast_producer_line, env=env)
    try:
        deadline = time.monotonic() + PRODUCER_SECS
        while time.monotonic() < deadline and demo.proc.poll() is None:
            if outbox.is_dir() and pallets_in(outbox):
                demo.proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.25)
        code = demo.proc.wait(timeout=60)
    finally:
        demo.stop()
    return code, demo.stderr.read_text()


def wholesaler_config(tmp: Path, broker: int, producer_outbox: Path) -> Path:
    data = yaml.safe_load((ROOT / "mappings" / "wholesale-line.yaml").read_text())
    data["mqtt"]["url"] = f"mqtt://127.0.0.1:{broker}"
    data["mqtt"]["protocol"] = "5"
    inbound, outbound = free_port(), free_port()
    data["devices"][0]["connection"]["port"] = inbound
    data["devices"][1]["connection"]["port"] = outbound
    sim = data["simulators"][0]
    sim.update(port=inbound, outbound_port=outbound, from_epcis=str(producer_outbox))
    sim["interval_ms"], sim["outbound_after_ms"] = 100, 1500
    data["bridge"]["epcis_xsd"] = str(GS1_XSD)
    path = tmp / "wholesale.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return path


def uploaded(outbox: Path) -> list[etree._Element]:
    return [etree.parse(str(p)).getroot() for p in sorted(outbox.glob("*.xml"))]


def test_a_wholesaler_receives_a_pallet_and_ships_part_of_it(tmp_path: Path) -> None:
    # -- the demo producer packs, its bridge writes EPCIS documents --------------------------
    producer = tmp_path / "producer"
    producer.mkdir()
    p_outbox = producer / "outbox"
    code, stderr = run_producer(p_outbox, producer)
    assert code == 0, stderr[-2000:]
    p_docs = sorted(p_outbox.glob("*.xml"))
    assert p_docs, "the producer wrote no EPCIS document"
    from firmware_sim.handheld import pallets_in

    assert pallets_in(p_outbox), f"no pallet packed within {PRODUCER_SECS} s: {stderr[-2000:]}"
    for doc in p_docs:
        result = check_document(doc.read_bytes(), GS1_XSD)
        assert result.kind == "EPCIS 2.0" and result.valid, result.errors
    inside = contents(p_docs)

    # -- the wholesaler imports them --------------------------------------------------------
    ws = tmp_path / "wholesaler"
    ws.mkdir()
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        config = wholesaler_config(ws, broker.port, p_outbox)
        files = [str(d) for d in p_docs]
        first = run_cli("import", str(config), "epcis", *files, cwd=ws)
        assert first.returncode == 0, first.stderr
        assert first.stdout.count(": imported ") == len(p_docs), first.stdout
        again = run_cli("import", str(config), "epcis", *files, cwd=ws)
        assert again.returncode == 0 and again.stdout.count("already imported") == len(p_docs)

        bad = ws / "bad.xml"
        text = p_docs[-1].read_text()
        bad.write_text(text.replace("<action>", "<actoin>", 1).replace("</action>", "</actoin>", 1))
        refused = run_cli("import", str(config), "epcis", str(bad), cwd=ws)
        assert refused.returncode == 1
        assert refused.stderr.startswith(f"{bad}:") and "actoin" in refused.stderr
        assert "nothing imported" in refused.stderr

        # -- the handheld scans the pallet in and two of its cases out ---------------------
        pallet, cases = pallets_in(p_outbox)[0]
        shipped = cases[:2]
        log = ws / "saltgw.log"
        sim = saltgw("sim", str(config), log=ws / "sim.log", cwd=ws)
        gw = saltgw("run", str(config), log=log, cwd=ws)
        outbox = ws / "var" / "wholesale-outbox"
        inbound: list[etree._Element] = []
        orders: list[etree._Element] = []
        deadline = time.monotonic() + 90
        try:
            while time.monotonic() < deadline and not (inbound and orders):
                time.sleep(0.5)
                assert gw.poll() is None, log.read_text()[-3000:]
                docs = uploaded(outbox)
                inbound = [s for d in docs for s in d.iter(f"{P}Scan") if s.get("code") == pallet]
                orders = [o for d in docs for o in d.iter(f"{P}Order")]
        finally:
            stop(gw)
            stop(sim)
        assert inbound and orders, f"nothing uploaded in time: {log.read_text()[-3000:]}"
    finally:
        broker.stop()

    for doc in sorted(outbox.glob("*.xml")):
        result = check_document(doc.read_bytes())
        assert result.valid, result.errors
        assert etree.parse(str(doc)).getroot().get("enterprise") == "91370900MA3C5DEM0H"
    (scan,) = inbound
    assert scan.get("level") == "pallet" and scan.get("order") == "DO-0001"
    assert scan.get("supplier") == "山东岱岳制盐有限公司"
    pallet_bags = bags_of(pallet, inside)
    assert len(pallet_bags) > len(cases)  # cases hold bags
    assert sorted(b.text for b in scan.iter(f"{P}Bag")) == sorted(pallet_bags)
    assert scan.get("bags") == str(len(pallet_bags))

    assert {o.get("number") for o in orders} == {"SO-0001"}
    assert [c.text for o in orders for c in o.iter(f"{P}C")] == shipped
    moved = [(b.get("of"), b.text) for o in orders for b in o.iter(f"{P}Bag")]
    assert sorted(moved) == sorted((case, bag) for case in shipped for bag in bags_of(case, inside))
    assert all(o.get("customer") == "泰安市泰山区某超市" for o in orders)
