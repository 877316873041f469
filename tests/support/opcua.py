"""OPC UA test helpers: certificates in a temporary directory, the simulated line PLC, and
device entries for the OPC UA driver pointed at it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.opcua import OpcUaDeviceConfig
from firmware_sim.certs import write_certificate
from firmware_sim.line_plc import LinePlcConfig

NAMESPACE = "urn:saltgw:sim:line-plc"
GATEWAY_URI = "urn:saltgw:test:gateway"

#: tag name -> NodeId (in the device's namespace_uri) of the simulated PLC's variables
PLC_NODES = {
    "state": "s=Line1.State",
    "state_name": "s=Line1.StateName",
    "mode": "s=Line1.Mode",
    "speed": "s=Line1.Speed",
    "bag_count": "s=Line1.BagCount",
    "case_count": "s=Line1.CaseCount",
    "batch_number": "s=Line1.BatchNumber",
    "product": "s=Line1.Product",
    "shift": "s=Line1.Shift",
}
COMMAND_NODES = {
    "cmd_batch": "s=Line1.Cmd_BatchNumber",
    "cmd_product": "s=Line1.Cmd_Product",
    "cmd_shift": "s=Line1.Cmd_Shift",
    "cmd_start": "s=Line1.Cmd_StartBatch",
    "cmd_end": "s=Line1.Cmd_EndBatch",
}


@dataclass(frozen=True)
class Pki:
    """Certificates made for one test module: the PLC's, the gateway's, and a stranger's."""

    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_cert: Path  # a valid certificate nobody trusts
    other_key: Path


def make_pki(root: Path) -> Pki:
    root.mkdir(parents=True, exist_ok=True)
    p = Pki(
        root / "plc.der",
        root / "plc.pem",
        root / "gateway.der",
        root / "gateway.pem",
        root / "other.der",
        root / "other.pem",
    )
    write_certificate(p.server_cert, p.server_key, "urn:test:plc", "test PLC", server=True)
    write_certificate(p.client_cert, p.client_key, GATEWAY_URI, "test gateway", server=False)
    write_certificate(p.other_cert, p.other_key, "urn:test:other", "stranger", server=True)
    return p


def plc_config(**overrides: Any) -> LinePlcConfig:
    """The simulated PLC on a free port, fast batches, reproducible."""
    settings: dict[str, Any] = {
        "id": "plc-sim",
        "kind": "line_plc",
        "port": 0,
        "seed": 11,
        "speed_min_bags_per_min": 600,
        "speed_max_bags_per_min": 600,
        "bags_per_case": 5,
        "first_batch_after_secs": 0.5,
        "batch_secs": 3,
        "idle_secs": 1,
        "transition_secs": 0.2,
    }
    settings.update(overrides)
    return LinePlcConfig.model_validate(settings)


def device_entry(endpoint: str, **overrides: Any) -> dict[str, Any]:
    """A device entry for the driver: every PLC variable and the command tags."""
    tags: dict[str, Any] = {name: {"node": node} for name, node in PLC_NODES.items()}
    tags.update({name: {"node": node, "writable": True} for name, node in COMMAND_NODES.items()})
    tags["batch_number"]["writable"] = True
    entry: dict[str, Any] = {
        "id": "plc1",
        "driver": "opcua",
        "endpoint": endpoint,
        "namespace_uri": NAMESPACE,
        "publishing_interval_ms": 50,
        "sampling_interval_ms": 20,
        "keepalive_count": 10,
        "timeout_ms": 1000,
        "connect_timeout_ms": 4000,
        "watchdog_interval_ms": 500,
        "tags": tags,
    }
    entry.update(overrides)
    return entry


def device_config(endpoint: str, **overrides: Any) -> OpcUaDeviceConfig:
    return OpcUaDeviceConfig.model_validate(device_entry(endpoint, **overrides))


def secure(
    pki: Pki, policy: str = "Basic256Sha256", mode: str = "SignAndEncrypt"
) -> dict[str, Any]:
    return {
        "policy": policy,
        "mode": mode,
        "certificate": str(pki.client_cert),
        "private_key": str(pki.client_key),
        "trusted_server_certificates": [str(pki.server_cert)],
    }
