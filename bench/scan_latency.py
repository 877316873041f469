"""Scan → MQTT latency at 1,000 scans/s, over the TCP scanner driver.

    python bench/scan_latency.py [--quick] [--rate 1000] [--seconds 30]

A TCP server in this process plays a fixed bag scanner: it sends valid traceability codes
(QB/T 5279-2018 6.2, enterprise 8035, as QR payloads ``https://trace.example.cn/q?c=CODE``) as
CRLF lines at ``rate`` per second, recording the wall-clock time each line is handed to the
socket. ``saltgw run`` (a subprocess, as deployed) reads them with the scanner driver
(``tcp_client`` link), the ``bag_scanner`` profile checks and commissions each code in the trace
store, the journal commits the ``pack.bag`` event (fsync) and the forwarder publishes it QoS 1
to mosquitto. ``mosquitto_sub -q 1 -F '%U %p'`` (C, its own process) stamps each message's
arrival with the same wall clock. Latency = arrival − send, per code.

Baseline, same run, same kind of server, broker and subscriber: bench/scan_relay.py, a minimal
relay (read a line → paho publish QoS 1, no checks, no journal). A warm-up second of codes goes
first and is not counted; measuring starts once its last code has arrived.
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import emit, latency_summary, percentile, row
from firmware_sim.codegen import CodeGen
from tests.support.broker import Mosquitto
from tests.support.procs import saltgw

__all__ = ["TARGET_P99_MS", "LatencyRun", "measure", "rows"]

TARGET_P99_MS = 20.0
ENTERPRISE = "8035"
URL_PREFIX = "https://trace.example.cn/q?c="
CODE_RE = re.compile(rb"(?<![0-9A-Z])" + ENTERPRISE.encode() + rb"[0-9A-Z]{12}(?![0-9A-Z])")
GATEWAY_TOPIC = "salt/v1/8035/bench/L1/#"
RELAY_TOPIC = "bench/scan/relay"


# -- the scanner ----------------------------------------------------------------------------------
class CodeEmitter(threading.Thread):
    """A scanner's TCP server sending ``warmup`` codes, then (after :attr:`go`) ``count``
    codes, each at ``rate`` per second; ``sent`` maps a measured code to its send time."""

    def __init__(self, rate: float, count: int, warmup: int, seed: int = 1) -> None:
        super().__init__(name="code-emitter", daemon=True)
        gen = CodeGen(random.Random(seed), ENTERPRISE)
        self.rate = rate
        self.warmup_codes = [gen.new() for _ in range(warmup)]
        self.codes = [gen.new() for _ in range(count)]
        self.sent: dict[str, float] = {}
        self.late_ms: list[float] = []  # how far behind its schedule each measured line went
        self.go = threading.Event()  # set by the harness once the warm-up came through
        self.done = threading.Event()  # set by the harness when it no longer needs the link
        self.error: BaseException | None = None
        self.send_secs = 0.0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]

    def run(self) -> None:
        try:
            self._server.settimeout(60)
            conn, _ = self._server.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._send(conn, self.warmup_codes, record=False)
                if not self.go.wait(90):
                    raise TimeoutError("the warm-up codes never came through")
                time.sleep(0.5)
                t0 = time.perf_counter()
                self._send(conn, self.codes, record=True)
                self.send_secs = time.perf_counter() - t0
                self.done.wait(120)
        except BaseException as exc:  # reported by the harness
            self.error = exc
        finally:
            self._server.close()

    def _send(self, conn: socket.socket, codes: list[str], *, record: bool) -> None:
        start = time.perf_counter()
        for i, code in enumerate(codes):
            due = start + i / self.rate
            ahead = due - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            line = f"{URL_PREFIX}{code}\r\n".encode()
            if record:
                self.late_ms.append(max(0.0, time.perf_counter() - due) * 1000)
                self.sent[code] = time.time()
            conn.sendall(line)


# -- the subscriber -------------------------------------------------------------------------------
class TimedSubscriber:
    """``mosquitto_sub`` stamping each message's arrival (wall clock, ns) into a file."""

    def __init__(self, port: int, topic: str, out: Path) -> None:
        self.out = out
        self.arrived: dict[str, float] = {}
        self.duplicates = 0
        self.other = 0  # messages without a code (device states, alarms without one)
        self._offset = 0
        with out.open("wb") as f:
            self.proc = subprocess.Popen(
                ["mosquitto_sub", "-p", str(port), "-t", topic, "-q", "1", "-F", "%U %p",
                 "-i", f"bench-lat-{time.time_ns()}"],
                stdout=f,
            )  # fmt: skip

    def poll(self) -> None:
        """Read what arrived since the last poll (whole lines only)."""
        with self.out.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].splitlines():
            stamp, _, payload = line.partition(b" ")
            m = CODE_RE.search(payload)
            if m is None:
                self.other += 1
                continue
            code = m.group().decode()
            if code in self.arrived:
                self.duplicates += 1
            else:
                self.arrived[code] = float(stamp)

    def wait_for(self, codes: list[str], timeout: float, idle: float | None = None) -> bool:
        """Until every code arrived (True), ``timeout`` s passed, or — with ``idle`` — nothing
        new arrived for ``idle`` s (a relay still catching up is waited for, a stuck one not)."""
        deadline = time.monotonic() + timeout
        count, last_new = -1, time.monotonic()
        while True:
            self.poll()
            if all(c in self.arrived for c in codes):
                return True
            now = time.monotonic()
            if len(self.arrived) != count:
                count, last_new = len(self.arrived), now
            if now > deadline or (idle is not None and now - last_new > idle):
                return False
            time.sleep(0.05)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


# -- one measured run -----------------------------------------------------------------------------
@dataclass
class LatencyRun:
    """What one relay (the gateway or the baseline) achieved."""

    name: str
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0
    lost: int = 0
    duplicates: int = 0
    send_rate: float = 0.0
    late_p99_ms: float = 0.0
    throughput: float = 0.0  # codes delivered per second, first send to last arrival
    stopped: str = ""
    log: str = ""

    def summary(self) -> dict[str, Any]:
        return {**latency_summary(self.latencies_ms), "sent": self.sent, "lost": self.lost,
                "duplicates": self.duplicates, "send_rate_per_s": round(self.send_rate),
                "emitter_late_p99_ms": round(self.late_p99_ms, 2),
                "delivered_per_s": round(self.throughput), "stopped": self.stopped}  # fmt: skip


def gateway_config(workdir: Path, scanner_port: int, broker_port: int) -> Path:
    """One bag scanner on a ``tcp_client`` link, the bag_scanner profile, defaults otherwise."""
    cfg = {
        "gateway": {"id": "gw-bench", "enterprise": ENTERPRISE, "site": "bench", "line": "L1"},
        "mqtt": {"url": f"mqtt://127.0.0.1:{broker_port}"},
        "journal": {"path": str(workdir / "journal.db")},
        "devices": [
            {
                "id": "scan1",
                "driver": "scanner",
                "connection": {"type": "tcp_client", "host": "127.0.0.1", "port": scanner_port},
                "framing": "crlf",
            }
        ],
        "profiles": [
            {
                "profile": "bag_scanner",
                "device": "scan1",
                "store": str(workdir / "trace.db"),
                "sku": "s400g",
                "codes": {"resolver_hosts": ["trace.example.cn"]},
            }
        ],
    }
    path = workdir / "scan-bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def measure(
    which: str, broker: Mosquitto, workdir: Path, rate: float, seconds: float
) -> LatencyRun:
    """``which`` is ``gateway`` (saltgw run) or ``relay`` (bench/scan_relay.py)."""
    workdir.mkdir(parents=True, exist_ok=True)
    emitter = CodeEmitter(rate, count=round(rate * seconds), warmup=round(rate))
    topic = GATEWAY_TOPIC if which == "gateway" else RELAY_TOPIC
    sub = TimedSubscriber(broker.port, topic, workdir / "arrivals.txt")
    log = workdir / f"{which}.log"
    time.sleep(0.3)  # subscribed before anything is published (the warm-up checks it too)
    emitter.start()
    proc: subprocess.Popen[bytes]
    if which == "gateway":
        proc = saltgw("run", str(gateway_config(workdir, emitter.port, broker.port)),
                      log=log, cwd=workdir)  # fmt: skip
    else:
        with log.open("wb") as f:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "scan_relay.py"), "--scanner-port",
                 str(emitter.port), "--broker-port", str(broker.port), "--topic", topic],
                stdout=f, stderr=subprocess.STDOUT,
            )  # fmt: skip
    try:
        if not sub.wait_for(emitter.warmup_codes[-1:], 90):
            raise RuntimeError(f"{which}: warm-up codes never arrived (log: {log})")
        emitter.go.set()
        _wait_sent(emitter, seconds * 3 + 60)
        # a relay that fell behind is waited for while it makes progress (bounded); what is
        # missing after 5 s without any arrival is counted lost
        sub.wait_for(emitter.codes, 4 * seconds + 60, idle=5)
    finally:
        # the gateway is stopped while its scanner link is still open and idle: a hang-up at
        # the moment of SIGTERM can lose the supervisor's cancellation (asyncio.wait_for in
        # Python 3.11) and the gateway then never stops. The relay ends when the link closes.
        stopped = _stop(proc) if which == "gateway" else None
        emitter.done.set()
        if which == "relay":
            stopped = _wait_or_kill(proc, 30)
        sub.close()
        emitter.join(10)
    if emitter.error is not None:
        raise RuntimeError(f"{which}: scanner side failed: {emitter.error!r}")
    sub.poll()
    got = [(sub.arrived[c] - t) * 1000 for c, t in emitter.sent.items() if c in sub.arrived]
    arrivals = [sub.arrived[c] for c in emitter.sent if c in sub.arrived]
    first_sent = min(emitter.sent.values(), default=0.0)
    span = max(arrivals, default=first_sent) - first_sent
    return LatencyRun(
        name=which,
        latencies_ms=got,
        sent=len(emitter.sent),
        lost=len(emitter.sent) - len(got),
        duplicates=sub.duplicates,
        send_rate=len(emitter.sent) / emitter.send_secs if emitter.send_secs else 0.0,
        late_p99_ms=percentile(emitter.late_ms, 99) if emitter.late_ms else 0.0,
        throughput=len(got) / span if span > 0 else 0.0,
        stopped=stopped or "",
        log=str(log),
    )


def _stop(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM, then SIGKILL after 30 s; says which it took."""
    proc.send_signal(signal.SIGTERM)
    return _wait_or_kill(proc, 30)


def _wait_or_kill(proc: subprocess.Popen[bytes], secs: float) -> str:
    try:
        proc.wait(secs)
        return f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"did not stop within {secs:g} s: killed"


def _wait_sent(emitter: CodeEmitter, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(emitter.sent) < len(emitter.codes) and emitter.error is None:
        if time.monotonic() > deadline or not emitter.is_alive():
            break
        time.sleep(0.1)


def rows(quick: bool, rate: float = 1000.0, seconds: float | None = None) -> list[dict[str, Any]]:
    """Baseline relay then gateway on one broker; one result line."""
    secs = seconds if seconds is not None else (3.0 if quick else 30.0)
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto")
        broker.start()
        try:
            base = measure("relay", broker, work / "relay", rate, secs)
            gw = measure("gateway", broker, work / "gateway", rate, secs)
        finally:
            broker.kill()
    if not gw.latencies_ms or not base.latencies_ms:
        raise RuntimeError(f"nothing arrived: gateway {gw.summary()}, relay {base.summary()}")
    g, b = gw.summary(), base.summary()
    return [
        row(
            "scan_to_mqtt_p99_ms",
            g["p99_ms"],
            "ms",
            b["p99_ms"],
            target=TARGET_P99_MS,
            higher_is_better=False,
            digits=2,
            baseline_name="minimal relay: TCP line → paho QoS1 publish (bench/scan_relay.py)",
            gateway="saltgw run subprocess: scanner driver (tcp_client) → bag_scanner → "
            "journal → QoS1",
            rate_per_s=rate,
            seconds=secs,
            **{k: v for k, v in g.items() if k != "p99_ms"},
            baseline_stats=b,
        )
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 s of scans instead of 30 s")
    ap.add_argument("--rate", type=float, default=1000.0, help="scans per second")
    ap.add_argument("--seconds", type=float, help="measured seconds of scanning")
    args = ap.parse_args()
    for r in rows(args.quick, args.rate, args.seconds):
        emit(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
