"""Scenario 3: devices that die in the middle of a frame, against ``saltgw run``.

- ``cwh``: a raw-socket Modbus TCP checkweigher (:class:`HalfModbus`) answers with 3 bytes of
  the MBAP header then FIN, with the header and half the PDU then RST, with half a response then
  silence; then it is gone (nothing listening); then it comes back whole.
- ``scan1``: a raw-socket bag scanner (:class:`DyingScanner`) sends whole code lines, then the
  first half of a code line and closes (FIN), resets (RST), or stalls past the frame timeout
  first; then it comes back and sends whole codes again.
- ``cw1``: a real ``saltgw sim`` checkweigher killed with SIGKILL, then started again.

Asserted: no cut code becomes an event (``pack.bag``, ``alarm.invalid_code``, …), no cut Modbus
frame becomes a reading (every ``cwh`` weighing is the served 400 g, no ``bad_value``), each
device goes ``offline`` (retained state topic, ``alarm.device`` with ``previous: online``,
``/healthz`` says why) and comes back ``online`` by itself; seqs gapless, ids unique.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import yaml

from firmware_sim.codegen import CodeGen
from tests.support.broker import Mosquitto
from tests.support.delivery import assert_gapless_unique, journal_last_seq, wait_delivered
from tests.support.fake_devices import DyingScanner, HalfModbus
from tests.support.gateway_proc import GatewayProc
from tests.support.net import free_port, wait_port
from tests.support.procs import kill9, saltgw, stop
from tests.support.subscriber import Collector, Received

LINE = "salt/v1/8035/daiyue/L1"
CW_TAGS = {
    "count": {"table": "holding_register", "address": 0, "type": "uint32"},
    "weight_g": {
        "table": "holding_register",
        "address": 2,
        "type": "float32",
        "min": 0,
        "max": 2000,
    },
    "rejected": {"table": "holding_register", "address": 4, "type": "bool", "bit": 0},
}


def _modbus(dev: str, port: int) -> dict[str, Any]:
    return {
        "id": dev,
        "driver": "modbus",
        "connection": {"type": "tcp", "host": "127.0.0.1", "port": port},
        "poll_interval_ms": 50,
        "timeout_ms": 400,
        "byte_order": "big",
        "word_order": "big",
        "tags": CW_TAGS,
    }


def _config(tmp: Path, broker: int, cwh: int, cw1: int, scan: int) -> Path:
    cfg = {
        "gateway": {"id": "gw-test-1", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "mqtt": {"url": f"mqtt://127.0.0.1:{broker}", "reconnect_min_secs": 0.2},
        "journal": {"path": str(tmp / "journal.db")},
        "devices": [
            _modbus("cwh", cwh),
            _modbus("cw1", cw1),
            {
                "id": "scan1",
                "driver": "scanner",
                "connection": {"type": "tcp_client", "host": "127.0.0.1", "port": scan},
                "framing": "crlf",
                "frame_timeout_ms": 400,
            },
        ],
        "profiles": [
            {"profile": "checkweigher", "device": "cwh", "nominal_g": 400},
            {"profile": "checkweigher", "device": "cw1", "nominal_g": 400},
            {"profile": "bag_scanner", "device": "scan1", "store": str(tmp / "trace.db")},
        ],
        "simulators": [
            {"id": "cw1-sim", "kind": "checkweigher", "port": cw1, "rate_per_min": 600, "seed": 3}
        ],
    }
    path = tmp / "line.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _states(msgs: list[Received], device: str) -> list[str]:
    return [json.loads(m.payload)["state"] for m in msgs if m.topic == f"{LINE}/state/{device}"]


def _state_now(sub: Collector, device: str) -> str | None:
    states = _states(sub.snapshot(), device)
    return states[-1] if states else None


def _wait_state(sub: Collector, device: str, state: str, timeout: float) -> None:
    sub.wait_for(lambda _: _state_now(sub, device) == state, timeout, f"device {device} {state}")


def _line(code: str) -> bytes:
    return code.encode() + b"\r\n"


def test_devices_cut_mid_frame(tmp_path: Path, mosquitto: Mosquitto) -> None:
    gen = CodeGen(random.Random(3), "8035")
    sizes = {"a": 3, "b": 3, "c": 2, "d": 3}
    whole = {phase: [gen.new() for _ in range(n)] for phase, n in sizes.items()}
    cut = [gen.new()[:9] for _ in range(3)]  # 8035 + 5 chars: a valid-looking code, unterminated
    modbus, scanner = HalfModbus(), DyingScanner()
    scanner.play(*[("send", _line(c)) for c in whole["a"]], ("sleep", 1.5),
                 ("send", cut[0].encode()), ("close",))  # fmt: skip
    scanner.play(*[("send", _line(c)) for c in whole["b"]], ("send", cut[1].encode()), ("reset",))
    scanner.play(("send", _line(whole["c"][0])), ("send", cut[2].encode()), ("sleep", 1.2),
                 ("send", _line(whole["c"][1])), ("close",))  # fmt: skip
    scanner.play(*[("send", _line(c)) for c in whole["d"]])
    sim_port = free_port()
    cfg = _config(tmp_path, mosquitto.port, modbus.port, sim_port, scanner.port)
    sub = Collector(mosquitto.port, topic=f"{LINE}/#").start()
    modbus.listen()
    scanner.listen()
    sim = saltgw("sim", str(cfg), log=tmp_path / "sim.log")
    gw = GatewayProc(cfg, tmp_path / "saltgw.log").start()
    try:
        wait_port(sim_port, 30)
        for dev in ("cwh", "cw1"):
            _wait_state(sub, dev, "online", 60)
        sub.wait_for(lambda _: _weighings(sub, "cwh") >= 3, 30, "weighings from cwh")

        # cut frames, and the real simulator killed
        modbus.set_mode("half_mbap_close")
        kill9(sim)
        for dev in ("cwh", "cw1"):
            _wait_state(sub, dev, "offline", 30)
        code, health = gw.healthz()
        assert code == 503
        assert any(r.startswith("device cw1: offline") for r in health["reasons"]), health
        for mode in ("half_pdu_reset", "half_pdu_stall"):
            before = modbus.cut_frames
            modbus.set_mode(mode)  # type: ignore[arg-type]
            sub.wait_for(lambda _, b=before: modbus.cut_frames > b, 30, f"a {mode} frame")  # type: ignore[misc]
        modbus.set_mode("down")
        time.sleep(1.0)

        # everything returns: online again by itself
        modbus.set_mode("good")
        sim = saltgw("sim", str(cfg), log=tmp_path / "sim.log")
        for dev in ("cwh", "cw1", "scan1"):
            _wait_state(sub, dev, "online", 60)
        sub.wait_for(lambda _: whole["d"][-1] in _bags(sub), 60, "the last bag code")
        weighed = _weighings(sub, "cwh")
        sub.wait_for(lambda _: _weighings(sub, "cwh") > weighed, 30, "cwh weighing again")
        sub.wait_for(lambda _: _weighings(sub, "cw1") > 0, 30, "cw1 weighing again")
        deadline = time.monotonic() + 30
        while gw.healthz()[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gw.healthz() == (200, {"ready": True, "reasons": []})
        assert gw.stop() == 0, gw.log_text()[-3000:]
        last = journal_last_seq(tmp_path / "journal.db")
        events = wait_delivered(sub.events, last, 60)
    finally:
        if gw.running():
            gw.kill9()
        stop(sim)
        modbus.close()
        scanner.close()
        sub.stop()

    assert_gapless_unique(events, last)
    once = {e["id"]: e for e in events}.values()
    # no cut code became anything but a device alarm
    for ev in once:
        if ev["type"] != "alarm.device":
            body = json.dumps(ev["data"])
            assert not any(c in body for c in cut), f"a cut code became {ev['type']}: {ev}"
    sent = [c for phase in whole.values() for c in phase]
    bags = sorted(e["data"]["code"] for e in once if e["type"] == "pack.bag")
    assert bags == sorted(sent), "pack.bag codes differ from the whole codes sent"
    # no cut Modbus frame became a reading
    cwh = [e for e in once if e["device"] == "cwh"]
    weights = {e["data"]["value"] for e in cwh if e["type"] == "ccp.net_content"}
    assert weights == {400.0}, weights
    assert not [e for e in cwh if e["data"].get("state") == "bad_value"]
    # offline, said by alarm.device and the state topic, then online by itself
    for dev in ("cwh", "cw1", "scan1"):
        alarms = [e["data"] for e in once if e["type"] == "alarm.device" and e["device"] == dev]
        offline = [a for a in alarms if a["state"] == "offline"]
        assert offline, f"no alarm.device offline for {dev}: {alarms}"
        assert any(a["previous"] == "online" for a in offline), alarms
        assert alarms[-1]["state"] == "online", alarms
        states = _states(sub.snapshot(), dev)
        assert "offline" in states and states[-1] == "online", (dev, states)
    assert modbus.cut_frames >= 3
    assert "Traceback" not in gw.log_text()


def _bags(sub: Collector) -> set[str]:
    return {e["data"]["code"] for e in sub.events() if e["type"] == "pack.bag"}


def _weighings(sub: Collector, device: str) -> int:
    return sum(1 for e in sub.events() if e["type"] == "ccp.net_content" and e["device"] == device)
