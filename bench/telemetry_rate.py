"""Tag telemetry rate: a Modbus farm of D devices x T holding registers changing every 100 ms,
read and published to MQTT, with the delivered datapoints counted by a subscriber.

    python bench/telemetry_rate.py [--quick] [--seconds S] [--sizes 10x100,50x100]
                                   [--systems raw_paho,saltgw]
    python bench/telemetry_rate.py --mapping 10x100 [--farm-port 15100]   # the tag map, YAML

Processes: one mosquitto (free port) for the whole run; the farm (``saltgw sim``,
firmware-sim/modbus_farm.py, a port per device) per size; then each system in turn:

* ``raw_paho`` (the baseline): one process polling every device with pymodbus's asyncio client
  every ``period_ms`` (one request per device while D x (4+T) fits a read) and publishing each
  poll as one JSON message ``{"ts": read time, "values": {tag: value}}`` with paho, QoS 1, to
  ``raw/v1/8035/bench/L1/tags/{device}``;
* ``saltgw``: ``saltgw run`` with the farm's tag map, every device ``telemetry: {tags: all}``
  and top-level ``telemetry: {uns: true}`` (journal on), publishing
  ``salt/v1/8035/bench/L1/tags/{device}`` as documented in docs/events.md. Until the config
  model takes ``telemetry:`` the bench says "gateway telemetry not available" and goes on.

The subscriber (paho, QoS 1, in this process) takes only ``…/tags/+`` and counts a device's
state once (by its ``changed_ms``): delivered dp/s = values of distinct states received in the
measured window / window. Offered dp/s = D x T x 1000 / period_ms. Polling at the period the
values change at, a poll now and then reads a state twice and misses the next (sampling, not
loss); ``received_dp_s`` counts every message's values, repeats included, and ``messages`` vs
``states`` shows how many repeats there were. Latency: read -> MQTT =
received - ``ts``; change -> MQTT = received - ``changed_ms`` (adds up to a poll period). CPU %
(of one core) and RSS of the publishing process from /proc over the window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml

from bench import procs
from bench.report import emit, error_row, latency_summary, row

__all__ = ["gateway_config", "rows", "run_size"]

PERIOD_MS = 100
TARGET_RATIO_10K = 0.99  # issue 14: 10 x 100 (10k dp/s) >= 99 % delivered
GATEWAY = {"id": "gw-bench", "enterprise": "8035", "site": "bench", "line": "L1"}
PREFIX = {"raw_paho": "raw/v1", "saltgw": "salt/v1"}
SYSTEMS = ("raw_paho", "saltgw")


# -- configs -------------------------------------------------------------------------------------
def farm_sim(port: int, devices: int, registers: int, period_ms: int) -> dict[str, Any]:
    return {
        "id": "farm",
        "kind": "modbus_farm",
        "port": port,
        "devices": devices,
        "registers": registers,
        "period_ms": period_ms,
    }


def gateway_config(
    ports: list[int],
    registers: int,
    *,
    broker_port: int = 1883,
    journal: str = "var/bench-journal.db",
    period_ms: int = PERIOD_MS,
    telemetry: bool = True,
    telemetry_section: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole config: the farm's D x T tag map (firmware_sim.modbus_farm.farm_devices), every
    device with ``telemetry: {tags: all}``, ``telemetry: {uns: true}`` (plus
    ``telemetry_section``'s keys), and the farm itself under ``simulators:`` (devices on
    consecutive ports from ``ports[0]``)."""
    from firmware_sim.modbus_farm import farm_devices

    extra = {"telemetry": {"tags": "all"}} if telemetry else None
    cfg: dict[str, Any] = {
        "gateway": dict(GATEWAY),
        "mqtt": {"url": f"mqtt://127.0.0.1:{broker_port}", "topic_prefix": PREFIX["saltgw"]},
        "journal": {"path": journal},
        "devices": farm_devices(ports, registers, poll_interval_ms=period_ms, extra=extra),
    }
    if telemetry:
        cfg["telemetry"] = {"uns": True, **(telemetry_section or {})}
    cfg["simulators"] = [farm_sim(ports[0], len(ports), registers, period_ms)]
    return cfg


# -- the subscriber ------------------------------------------------------------------------------
@dataclass
class Tally:
    """What the subscriber saw: per distinct device state, when it arrived and its latencies."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: set[tuple[str, int]] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    # (received wall time, datapoints, read->MQTT ms, change->MQTT ms)
    states: list[tuple[float, int, float, float]] = field(default_factory=list)
    messages: list[tuple[float, int]] = field(default_factory=list)  # every one: (time, dps)
    bad: int = 0


def subscribe(port: int, topic_filter: str, tally: Tally) -> Any:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        now = time.time()
        try:
            body = json.loads(msg.payload)
            values = body["values"]
            read_ts = datetime.fromisoformat(body["ts"]).timestamp()
            changed = int(values["changed_ms"])
        except (ValueError, KeyError, TypeError):
            with tally.lock:
                tally.bad += 1
            return
        device = msg.topic.rsplit("/", 1)[-1]
        dps = sum(1 for k in values if k != "changed_ms")
        with tally.lock:
            tally.devices.add(device)
            tally.messages.append((now, dps))
            if (device, changed) in tally.seen:
                return
            tally.seen.add((device, changed))
            tally.states.append((now, dps, (now - read_ts) * 1000, now * 1000 - changed))

    ready = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{time.time_ns()}")
    client.on_message = on_message
    client.on_subscribe = lambda *_a: ready.set()
    client.on_connect = lambda c, *_a: c.subscribe(topic_filter, qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not ready.wait(10):
        raise RuntimeError("bench subscriber: not subscribed within 10 s")
    return client


# -- the baseline publisher (its own process: --role raw_paho) -----------------------------------
async def raw_paho_publisher(ports: list[int], registers: int, period_ms: int, broker: int) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from pymodbus.client import AsyncModbusTcpClient

    mqtt = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw-paho")
    mqtt.connect("127.0.0.1", broker)
    mqtt.loop_start()
    root = f"{PREFIX['raw_paho']}/{GATEWAY['enterprise']}/{GATEWAY['site']}/{GATEWAY['line']}"
    total = 4 + registers
    names = [f"v{i}" for i in range(registers)]
    loop = asyncio.get_running_loop()

    async def device(d: int, port: int) -> None:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        await client.connect()
        topic = f"{root}/tags/farm{d}"
        due = loop.time()
        while True:
            regs: list[int] = []
            for start in range(0, total, 125):
                resp = await client.read_holding_registers(
                    start, count=min(125, total - start), device_id=1
                )
                regs += resp.registers
            ts = datetime.now(UTC).isoformat(timespec="milliseconds")
            changed = regs[0] << 48 | regs[1] << 32 | regs[2] << 16 | regs[3]
            values: dict[str, int] = {
                "changed_ms": changed,
                **dict(zip(names, regs[4:], strict=True)),
            }
            mqtt.publish(topic, json.dumps({"ts": ts, "values": values}), qos=1)
            due += period_ms / 1000
            await asyncio.sleep(max(0.0, due - loop.time()))
            if due < loop.time() - period_ms / 1000:
                due = loop.time()

    await asyncio.gather(*(device(d, p) for d, p in enumerate(ports)))


# -- one system, one size ------------------------------------------------------------------------
def measure(
    system: str,
    publisher: list[str],
    *,
    broker_port: int,
    devices: int,
    registers: int,
    period_ms: int,
    seconds: float,
    workdir: Path,
) -> dict[str, Any]:
    """Run ``publisher`` until every device was seen and a warm-up passed, then measure."""
    root = f"{PREFIX[system]}/{GATEWAY['enterprise']}/{GATEWAY['site']}/{GATEWAY['line']}"
    tally = Tally()
    sub = subscribe(broker_port, f"{root}/tags/+", tally)
    log = workdir / f"{system}-{devices}x{registers}.log"
    proc = procs.start(publisher, log, workdir)
    try:
        deadline = time.monotonic() + 60
        while len(tally.devices) < devices:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"{system} exited ({proc.returncode}) before publishing: {tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{system}: {len(tally.devices)} of {devices} devices published within 60 s "
                    f"(see {log})"
                )
            time.sleep(0.2)
        time.sleep(3.0)  # warm-up: connections, caches, the first backlog
        cpu0, t0, wall0 = procs.proc_cpu_s(proc.pid), time.monotonic(), time.time()
        rss_max = 0
        while (elapsed := time.monotonic() - t0) < seconds:
            rss_max = max(rss_max, procs.status_kb(proc.pid, "VmRSS"))
            time.sleep(min(0.5, seconds - elapsed))
        cpu1, t1, wall1 = procs.proc_cpu_s(proc.pid), time.monotonic(), time.time()
        rss_max = max(rss_max, procs.status_kb(proc.pid, "VmRSS"))
        hwm = procs.status_kb(proc.pid, "VmHWM")
        if proc.poll() is not None:
            raise RuntimeError(f"{system} exited ({proc.returncode}) during the run (see {log})")
    finally:
        procs.stop(proc)
        sub.loop_stop()
        sub.disconnect()
    window = t1 - t0
    with tally.lock:
        inside = [s for s in tally.states if wall0 <= s[0] < wall1]
        messages = [m for m in tally.messages if wall0 <= m[0] < wall1]
        bad = tally.bad
    offered = devices * registers * 1000 / period_ms
    delivered = sum(s[1] for s in inside) / window
    return {
        "offered_dp_s": round(offered),
        "delivered_dp_s": round(delivered, 1),
        "delivered_ratio": round(delivered / offered, 4),
        "cpu_percent": round(100 * (cpu1 - cpu0) / window, 1),
        "rss_max_mb": round(rss_max / 1024, 1),
        "rss_hwm_mb": round(hwm / 1024, 1),
        "read_to_mqtt": latency_summary([s[2] for s in inside]),
        "change_to_mqtt": latency_summary([s[3] for s in inside]),
        "received_dp_s": round(sum(m[1] for m in messages) / window, 1),
        "messages": len(messages),
        "states": len(inside),
        "unparsable_messages": bad,
        "window_s": round(window, 2),
    }


def _gateway_unavailable(cfg_path: Path) -> str | None:
    """Why ``saltgw run`` cannot publish telemetry with this config, or None."""
    from gateway.config.loader import ConfigError, load_config

    try:
        load_config(cfg_path)
    except ConfigError as exc:
        text = str(exc)
        if "telemetry" in text:
            first = text.strip().splitlines()[0]
            return f"gateway telemetry not available: the config model rejects telemetry: ({first})"
        raise
    return None


def run_size(
    devices: int,
    registers: int,
    *,
    seconds: float,
    systems: tuple[str, ...],
    broker_port: int,
    workdir: Path,
    period_ms: int = PERIOD_MS,
) -> dict[str, Any]:
    """Every system on one farm of ``devices`` x ``registers``: a result line."""
    bench = f"telemetry_rate_{devices}x{registers}"
    base = procs.free_port_run(devices)
    ports = list(range(base, base + devices))
    size_dir = workdir / f"{devices}x{registers}"
    size_dir.mkdir()
    full = gateway_config(ports, registers, broker_port=broker_port,
                          journal=str(size_dir / "journal.db"), period_ms=period_ms)  # fmt: skip
    plain = gateway_config(ports, registers, broker_port=broker_port,
                           journal=str(size_dir / "journal.db"), period_ms=period_ms,
                           telemetry=False)  # fmt: skip
    gw_cfg, farm_cfg = size_dir / "gateway.yaml", size_dir / "farm.yaml"
    gw_cfg.write_text(yaml.safe_dump(full, sort_keys=False))
    farm_cfg.write_text(yaml.safe_dump(plain, sort_keys=False))
    common = {"broker_port": broker_port, "devices": devices, "registers": registers,
              "period_ms": period_ms, "seconds": seconds, "workdir": size_dir}  # fmt: skip
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    farm = procs.start([sys.executable, "-m", "gateway", "sim", str(farm_cfg)],
                  size_dir / "farm.log", size_dir)  # fmt: skip
    try:
        procs.wait_ports(ports, farm, size_dir / "farm.log")
        for system in systems:
            try:
                if system == "raw_paho":
                    cmd = [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--role",
                        "raw_paho",
                        "--ports",
                        f"{base}:{devices}",
                        "--registers",
                        str(registers),
                        "--period-ms",
                        str(period_ms),
                        "--broker-port",
                        str(broker_port),
                    ]
                    results[system] = measure(system, cmd, **common)  # type: ignore[arg-type]
                else:
                    why = _gateway_unavailable(gw_cfg)
                    if why is not None:
                        errors[system] = why
                        continue
                    cmd = [sys.executable, "-m", "gateway", "run", str(gw_cfg),
                           "--broker", f"mqtt://127.0.0.1:{broker_port}"]  # fmt: skip
                    results[system] = measure(system, cmd, **common)  # type: ignore[arg-type]
            except Exception as exc:  # one system failing must not hide the other's figures
                errors[system] = f"{type(exc).__name__}: {exc}"
    finally:
        procs.stop(farm)
    offered = devices * registers * 1000 / period_ms
    extra: dict[str, Any] = {
        "what": f"{devices} Modbus TCP devices x {registers} holding registers changing every "
        f"{period_ms} ms -> MQTT QoS 1 (…/tags/{{device}}), subscriber counting distinct states",
        "offered_dp_s": round(offered),
        "seconds": seconds,
        **results,
    }
    if errors:
        extra["errors"] = errors
    gw, raw = results.get("saltgw"), results.get("raw_paho")
    if gw is None:
        reason = errors.get("saltgw", "saltgw not run (--systems)")
        return {**error_row(bench, reason), **extra}
    target = round(TARGET_RATIO_10K * offered) if devices * registers <= 1000 else None
    return row(bench, gw["delivered_dp_s"], "dp/s", raw["delivered_dp_s"] if raw else None,
               target=target, **extra)  # fmt: skip


def rows(
    quick: bool,
    seconds: float | None = None,
    sizes: list[tuple[int, int]] | None = None,
    systems: tuple[str, ...] = SYSTEMS,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    from tests.support.broker import Mosquitto

    secs = seconds if seconds is not None else (10.0 if quick else 30.0)
    sizes = sizes or ([(10, 100)] if quick else [(10, 100), (50, 100)])
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-telemetry-") as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            for d, t in sizes:
                out.append(run_size(d, t, seconds=secs, systems=systems,
                                    broker_port=broker.port, workdir=Path(tmp)))  # fmt: skip
                if on_row is not None:
                    on_row(out[-1])
        finally:
            broker.kill()
    return out


def _size(text: str) -> tuple[int, int]:
    d, _, t = text.lower().partition("x")
    try:
        return int(d), int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DxT like 10x100, got {text!r}") from None


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="10 x 100 only, 10 s")
    ap.add_argument("--seconds", type=float, help="measured window per system (default 30)")
    ap.add_argument("--sizes", help="DxT[,DxT]: devices x registers (default 10x100,50x100)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="raw_paho,saltgw")
    ap.add_argument(
        "--mapping",
        type=_size,
        metavar="DxT",
        help="print the config (farm tag map, telemetry, simulator) as YAML",
    )
    ap.add_argument("--farm-port", type=int, default=15100, help="--mapping: first farm port")
    ap.add_argument("--role", choices=["raw_paho"], help=argparse.SUPPRESS)
    ap.add_argument("--ports", help=argparse.SUPPRESS)
    ap.add_argument("--registers", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--period-ms", type=int, default=PERIOD_MS, help=argparse.SUPPRESS)
    ap.add_argument("--broker-port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "raw_paho":
        base, _, count = args.ports.partition(":")
        ports = list(range(int(base), int(base) + int(count)))
        asyncio.run(raw_paho_publisher(ports, args.registers, args.period_ms, args.broker_port))
        return 0
    if args.mapping:
        d, t = args.mapping
        ports = list(range(args.farm_port, args.farm_port + d))
        sys.stdout.write(yaml.safe_dump(gateway_config(ports, t), sort_keys=False))
        return 0
    sizes = [_size(s) for s in args.sizes.split(",")] if args.sizes else None
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        ap.error(f"unknown systems {sorted(unknown)}; known: {', '.join(SYSTEMS)}")
    got = rows(args.quick, args.seconds, sizes, systems, on_row=emit)
    return 0 if all("error" not in r for r in got) else 1


if __name__ == "__main__":
    sys.exit(main())
