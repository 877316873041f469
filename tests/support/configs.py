"""Config files for tests: the demo line's shape, on free ports and a private journal."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.net import free_port


def line_config(
    tmp: Path,
    broker_port: int,
    *,
    sim_port: int | None = None,
    protocol: str = "5",
    rate_per_min: int = 600,
    underweight_ratio: float = 0.1,
    garbage_ratio: float = 0.0,
    poll_interval_ms: int = 50,
    journal: dict[str, Any] | None = None,
    seed: int | None = 7,
    extra_sim: dict[str, Any] | None = None,
) -> Path:
    sim_port = sim_port or free_port()
    cfg: dict[str, Any] = {
        "gateway": {"id": "gw-test-1", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "mqtt": {
            "url": f"mqtt://127.0.0.1:{broker_port}",
            "protocol": protocol,
            "reconnect_min_secs": 0.5,
            "reconnect_max_secs": 2,
        },
        "journal": {"path": str(tmp / "journal.db"), **(journal or {})},
        "devices": [
            {
                "id": "cw1",
                "driver": "modbus",
                "connection": {"type": "tcp", "host": "127.0.0.1", "port": sim_port},
                "poll_interval_ms": poll_interval_ms,
                "timeout_ms": 500,
                "byte_order": "big",
                "word_order": "big",
                "tags": {
                    "count": {"table": "holding_register", "address": 0, "type": "uint32"},
                    "weight_g": {
                        "table": "holding_register",
                        "address": 2,
                        "type": "float32",
                        "min": 0,
                        "max": 2000,
                    },
                    "rejected": {
                        "table": "holding_register",
                        "address": 4,
                        "type": "bool",
                        "bit": 0,
                    },
                },
            }
        ],
        "profiles": [{"profile": "checkweigher", "device": "cw1", "nominal_g": 400}],
        "simulators": [
            {
                "id": "cw1-sim",
                "kind": "checkweigher",
                "port": sim_port,
                "nominal_g": 400,
                "rate_per_min": rate_per_min,
                "underweight_ratio": underweight_ratio,
                "garbage_ratio": garbage_ratio,
                "seed": seed,
                **(extra_sim or {}),
            }
        ],
    }
    path = tmp / "line.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


ROOT = Path(__file__).parents[2]


def demo_line_on_free_ports(tmp: Path) -> Path:
    """The demo line with every simulator port moved to a free one (test suites running side by
    side on one machine must not fight over the demo's fixed ports)."""
    text = (ROOT / "mappings" / "demo-line.yaml").read_text()
    # one pass: a new port that happens to look like one of the demo's is not replaced again
    new = {old: str(free_port()) for old in sorted(set(re.findall(r"\b1[45]\d{3}\b", text)))}
    text = re.sub(r"\b1[45]\d{3}\b", lambda m: new[m.group(0)], text)
    path = tmp / "demo-line.yaml"
    path.write_text(text)
    return path


def modbus_scanner_line_on_free_ports(tmp: Path) -> Path:
    """The demo line without its OPC UA PLC and its camera, on free ports: the Modbus devices
    (checkweigher, metal detector, inspection panel, iodizing) and the scanners, the pallet
    label read by a fixed scanner (TCP) where the demo has a camera. What a small PC on a line
    without a PLC link or camera runs (bench/gateway_rss.py)."""
    data = yaml.safe_load(demo_line_on_free_ports(tmp).read_text())
    kept = []
    for dev in data["devices"]:
        if dev["driver"] == "camera":  # the pallet label: a fixed scanner instead
            dev = {"id": dev["id"], "driver": "scanner", "framing": "crlf",
                   "connection": {"type": "tcp_client", "host": "127.0.0.1",
                                  "port": free_port()}}  # fmt: skip
            pallet_port = dev["connection"]["port"]
        if dev["driver"] in ("modbus", "scanner"):
            kept.append(dev)
    ids = {d["id"] for d in kept}
    data["devices"] = kept
    data["profiles"] = [p for p in data["profiles"] if p["device"] in ids]
    data["simulators"] = [s for s in data["simulators"] if s["kind"] != "line_plc"]
    for sim in data["simulators"]:
        if sim["kind"] == "scan_line":
            sim["pallet"] = {"port": pallet_port}
    path = tmp / "modbus-scanner-line.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def without_simulators(path: Path) -> Path:
    """The map at ``path`` as a plant runs it: without its ``simulators:`` section (which only
    ``saltgw sim`` reads), written beside it as ``<name>-plant.yaml``."""
    data = yaml.safe_load(path.read_text())
    data.pop("simulators", None)
    out = path.with_name(f"{path.stem}-plant.yaml")
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return out
