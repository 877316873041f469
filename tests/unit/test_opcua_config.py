"""drivers.opcua: the device entry schema and its example, node addressing, value conversion."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from asyncua import ua
from pydantic import ValidationError

from drivers.base import DeviceConfigBase, WritableDriver, WriteRejected
from drivers.opcua import OPCUA, OpcUaDeviceConfig, OpcUaDriver, SecureChannel
from drivers.opcua.addressing import BrowseStep, parse_browse_path, parse_node
from drivers.opcua.values import to_tag_value, to_variant
from drivers.registry import driver_specs

EXAMPLE = Path(__file__).parents[2] / "drivers" / "opcua" / "example.yaml"


def example() -> dict[str, Any]:
    entry: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())[0]
    return entry


def minimal(**extra: Any) -> dict[str, Any]:
    return {
        "id": "plc",
        "driver": "opcua",
        "endpoint": "opc.tcp://10.0.0.5:4840",
        "tags": {"x": {"node": "ns=2;s=X"}},
        **extra,
    }


def errors(entry: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        OpcUaDeviceConfig.model_validate(entry)
    return [(".".join(str(x) for x in e["loc"]), e["msg"]) for e in info.value.errors()]


def test_example_validates_and_is_registered() -> None:
    cfg = OpcUaDeviceConfig.model_validate(example())
    assert cfg.id == "plc_l3" and cfg.mode == "subscribe"
    assert isinstance(cfg.security, SecureChannel)
    assert cfg.security.policy == "Basic256Sha256" and cfg.security.mode == "SignAndEncrypt"
    assert cfg.identity is not None and cfg.identity.password_env == "SALTGW_PLC_L3_PASSWORD"
    assert cfg.tag_names() >= {"state", "bag_count", "case_count", "batch_number", "cmd_start"}
    assert cfg.writable_tags() == {"batch_number", "cmd_batch", "cmd_start", "cmd_end"}
    assert cfg.tags["case_count"].browse_path == "0:Objects/Line1/CaseCount"
    assert cfg.stall_timeout_secs == pytest.approx(7.5)  # 3 x 250 ms x 10
    assert driver_specs()["opcua"] is OPCUA
    assert issubclass(OPCUA.config_model, DeviceConfigBase)
    driver = OPCUA.create(cfg)
    assert isinstance(driver, OpcUaDriver) and isinstance(driver, WritableDriver)


def test_defaults_are_anonymous_without_security() -> None:
    cfg = OpcUaDeviceConfig.model_validate(minimal())
    assert cfg.security.policy == "None" and cfg.identity is None
    assert (cfg.publishing_interval_ms, cfg.queue_size, cfg.keepalive_count) == (250, 10, 10)
    assert cfg.stall_timeout_secs == pytest.approx(7.5)
    short = OpcUaDeviceConfig.model_validate(minimal(publishing_interval_ms=20, keepalive_count=2))
    assert short.stall_timeout_secs == 2.0  # never below 2 s
    assert OpcUaDeviceConfig.model_validate(minimal(stall_timeout_ms=900)).stall_timeout_secs == 0.9


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"endpoint": "http://plc:4840"}, "endpoint", "String should match pattern"),
        ({"tags": {"x": {"node": "Line1.BagCount"}}}, "tags.x.node", "not a NodeId"),
        ({"tags": {"x": {"browse_path": "0:Objects//X"}}}, "tags.x.browse_path", "empty browse"),
        ({"tags": {"x": {}}}, "tags.x", "exactly one of node and browse_path"),
        ({"tags": {"x": {"node": "s=A", "browse_path": "0:A"}}}, "tags.x", "exactly one"),
        ({"tags": {"x": {"node": "s=A", "type": "Int33"}}}, "tags.x.type", "Input should be"),
        ({"tags": {"1x": {"node": "s=A"}}}, "tags.1x.[key]", "String should match pattern"),
        ({"tags": {}}, "tags", "at least 1 item"),
        ({"mode": "push"}, "mode", "'subscribe' or 'poll'"),
        ({"deadband": {"type": "percent", "value": 150}}, "deadband", "at most 100"),
        ({"identity": {"username": "u", "password": "x"}}, "identity.password", "Extra inputs"),
        (
            {"security": {"policy": "Basic256Sha256", "certificate": "c", "private_key": "k"}},
            "security.Basic256Sha256",
            "needs trusted_server_certificates or trust_dir",
        ),
        ({"security": {"policy": "Basic128Rsa15"}}, "security", "does not match any"),
        ({"pollinterval_ms": 5}, "pollinterval_ms", "Extra inputs are not permitted"),
    ],
)
def test_mistakes_are_reported_where_they_are(
    change: dict[str, Any], where: str, says: str
) -> None:
    found = errors(minimal(**change))
    assert any(loc == where and says in msg for loc, msg in found), found


def test_node_strings() -> None:
    a = parse_node("ns=2;s=Line1.BagCount")
    assert (a.index, a.uri, a.identifier) == (2, None, "Line1.BagCount")
    b = parse_node("nsu=urn:plc:l1;s=Line1.BagCount")
    assert (b.index, b.uri) == (None, "urn:plc:l1")
    c = parse_node("i=2258")
    assert (c.index, c.uri, c.identifier) == (None, None, 2258)
    assert parse_node("ns=0;i=2258").index == 0  # explicit 0 differs from "no namespace"
    assert c.node_id(5) == ua.NodeId(2258, 5)
    for bad in ("Line1.BagCount", "s=", "ns=x;s=a", "ns=2;i=abc", ""):
        with pytest.raises(ValueError, match="NodeId"):
            parse_node(bad)


def test_browse_paths() -> None:
    assert parse_browse_path("0:Objects/2:Line1/BagCount") == (
        BrowseStep("Objects", 0),
        BrowseStep("Line1", 2),
        BrowseStep("BagCount", None),
    )
    assert parse_browse_path("/0:Objects/") == (BrowseStep("Objects", 0),)
    for bad in ("", "0:", "a//b", "70000:X"):
        with pytest.raises(ValueError):
            parse_browse_path(bad)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (True, True),
        (7, 7),
        (ua.VariantType.Int32, 6),  # an enumeration is its number
        (2.5, 2.5),
        ("Line 1", "Line 1"),
        (ua.LocalizedText("Execute", "en"), "Execute"),
        (datetime(2026, 11, 22, 2, 15, tzinfo=UTC), "2026-11-22T02:15:00.000+00:00"),
        (datetime(2026, 11, 22, 2, 15), "2026-11-22T02:15:00.000+00:00"),  # OPC UA time is UTC
    ],
)
def test_node_values_become_tag_values(raw: Any, value: Any) -> None:
    got = to_tag_value(raw)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (math.nan, "not a number"),
        (math.inf, "infinite"),
        (None, "null"),
        ([1, 2], "array of 2"),
        (b"\x00", "ByteString"),
        (ua.QualifiedName("x", 1), "QualifiedName"),
    ],
)
def test_unusable_node_values_say_why(raw: Any, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        to_tag_value(raw)


V = ua.VariantType


@pytest.mark.parametrize(
    ("value", "vtype", "expected"),
    [
        (True, V.Boolean, True),
        (0, V.Boolean, False),
        (255, V.Byte, 255),
        (-128, V.SByte, -128),
        (3.0, V.UInt32, 3),
        (2**63 - 1, V.Int64, 2**63 - 1),
        (7, V.Double, 7.0),
        (1.5, V.Float, 1.5),
        ("20261122-L1-01", V.String, "20261122-L1-01"),
    ],
)
def test_writes_convert_to_the_nodes_type(value: Any, vtype: ua.VariantType, expected: Any) -> None:
    variant = to_variant(value, vtype, "tag 't'")
    assert variant.VariantType == vtype and variant.Value == expected
    assert type(variant.Value) is type(expected)


@pytest.mark.parametrize(
    ("value", "vtype", "why"),
    [
        ("yes", V.Boolean, "expected true/false"),
        (2, V.Boolean, "expected true/false"),
        (256, V.Byte, r"out of range 0\.\.255"),
        (-1, V.UInt16, r"out of range 0\.\.65535"),
        (True, V.Int32, "not a boolean"),
        (1.5, V.Int32, "expected an integer"),
        ("5", V.Int32, "expected an integer"),
        (math.nan, V.Double, "not a finite number"),
        (1e39, V.Float, "32-bit float"),
        (5, V.String, "expected a string"),
        ("x", V.DateTime, "not supported"),
    ],
)
def test_writes_that_do_not_fit_are_refused(value: Any, vtype: ua.VariantType, why: str) -> None:
    with pytest.raises(WriteRejected, match=why) as info:
        to_variant(value, vtype, "tag 't' (node 's=T')")
    assert "tag 't' (node 's=T')" in str(info.value) and vtype.name in str(info.value)
