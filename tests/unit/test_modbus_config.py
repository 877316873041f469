"""drivers.modbus.config: the device entry schema and its example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from drivers.base import DeviceConfigBase
from drivers.modbus import MODBUS, ModbusDeviceConfig, ModbusDriver
from drivers.modbus.config import RtuConnection, TcpConnection, register_count, write_function

EXAMPLE = Path(__file__).parents[2] / "drivers" / "modbus" / "example.yaml"


def example() -> dict[str, Any]:
    entry: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())[0]
    return entry


def with_tag(**tag: Any) -> dict[str, Any]:
    entry = example()
    entry["tags"] = {"t": tag}
    return entry


def test_example_validates() -> None:
    cfg = ModbusDeviceConfig.model_validate(example())
    assert cfg.id == "checkweigher_l3"
    assert isinstance(cfg.connection, TcpConnection)
    assert cfg.connection.port == 502
    assert cfg.word_order == "big"
    assert cfg.tag_names() == {"count", "weight_g", "rejected", "running", "nominal_g", "rejects"}
    assert cfg.tags["rejected"].bit == 0


def test_the_second_example_has_64_bit_and_writable_tags() -> None:
    entry = yaml.safe_load(EXAMPLE.read_text())[1]
    cfg = ModbusDeviceConfig.model_validate(entry)
    assert register_count(cfg.tags["bags_total"]) == 4
    writes = {name: write_function(t) for name, t in cfg.tags.items() if t.writable}
    assert writes == {"speed_bpm": 16, "cmd_batch": 16, "cmd_start": 5}


def test_spec_wires_model_and_driver() -> None:
    assert MODBUS.name == "modbus"
    assert MODBUS.config_model is ModbusDeviceConfig
    assert issubclass(MODBUS.config_model, DeviceConfigBase)
    driver = MODBUS.create(ModbusDeviceConfig.model_validate(example()))
    assert isinstance(driver, ModbusDriver)
    assert len(driver.blocks) == 1  # all six tags in one read of registers 0..7
    assert (driver.blocks[0].address, driver.blocks[0].count) == (0, 8)


def test_defaults() -> None:
    cfg = ModbusDeviceConfig.model_validate(
        {
            "id": "d",
            "driver": "modbus",
            "connection": {"type": "tcp", "host": "plc"},
            "tags": {"x": {"table": "input_register", "address": 0, "type": "int16"}},
        }
    )
    assert isinstance(cfg.connection, TcpConnection)
    assert cfg.connection.port == 502
    assert (cfg.unit_id, cfg.poll_interval_ms, cfg.timeout_ms) == (1, 200, 1000)
    assert (cfg.byte_order, cfg.word_order) == ("big", "little")
    assert (cfg.max_block_registers, cfg.max_block_gap) == (100, 10)
    assert (cfg.tags["x"].scale, cfg.tags["x"].offset) == (1.0, 0.0)


def test_rtu_connection() -> None:
    entry = example()
    entry["connection"] = {"type": "rtu", "port": "/dev/ttyUSB0", "parity": "E"}
    cfg = ModbusDeviceConfig.model_validate(entry)
    assert isinstance(cfg.connection, RtuConnection)
    assert (cfg.connection.baudrate, cfg.connection.bytesize) == (9600, 8)
    assert (cfg.connection.parity, cfg.connection.stopbits) == ("E", 1)


def test_tcp_key_on_rtu_connection_is_rejected() -> None:
    entry = example()
    entry["connection"] = {"type": "rtu", "port": "/dev/ttyUSB0", "host": "x"}
    with pytest.raises(ValidationError, match="host"):
        ModbusDeviceConfig.model_validate(entry)


def test_unknown_connection_type() -> None:
    entry = example()
    entry["connection"] = {"type": "udp", "host": "x"}
    with pytest.raises(ValidationError, match="tcp"):
        ModbusDeviceConfig.model_validate(entry)


def test_string_without_length_rejected() -> None:
    with pytest.raises(ValidationError, match="length"):
        ModbusDeviceConfig.model_validate(
            with_tag(table="holding_register", address=0, type="string")
        )


def test_length_on_non_string_rejected() -> None:
    with pytest.raises(ValidationError, match="length applies to type string"):
        ModbusDeviceConfig.model_validate(
            with_tag(table="holding_register", address=0, type="uint16", length=2)
        )


def test_bool_on_register_is_allowed_and_bit_checked() -> None:
    ModbusDeviceConfig.model_validate(with_tag(table="holding_register", address=0, type="bool"))
    ModbusDeviceConfig.model_validate(
        with_tag(table="input_register", address=0, type="bool", bit=15)
    )
    with pytest.raises(ValidationError, match="less than or equal to 15"):
        ModbusDeviceConfig.model_validate(
            with_tag(table="holding_register", address=0, type="bool", bit=16)
        )
    with pytest.raises(ValidationError, match="bit applies"):
        ModbusDeviceConfig.model_validate(
            with_tag(table="holding_register", address=0, type="uint16", bit=1)
        )
    with pytest.raises(ValidationError, match="bit applies"):
        ModbusDeviceConfig.model_validate(with_tag(table="coil", address=0, type="bool", bit=1))


@pytest.mark.parametrize("table", ["coil", "discrete_input"])
def test_bit_tables_hold_only_bool(table: str) -> None:
    with pytest.raises(ValidationError, match="type must be bool"):
        ModbusDeviceConfig.model_validate(with_tag(table=table, address=0, type="uint16"))


def test_scale_on_string_or_bool_rejected() -> None:
    with pytest.raises(ValidationError, match="scale apply to numeric types only"):
        ModbusDeviceConfig.model_validate(
            with_tag(table="holding_register", address=0, type="string", length=2, scale=2)
        )
    with pytest.raises(ValidationError, match="min apply to numeric"):
        ModbusDeviceConfig.model_validate(with_tag(table="coil", address=0, type="bool", min=0))


def test_min_above_max_rejected() -> None:
    with pytest.raises(ValidationError, match="greater than max"):
        ModbusDeviceConfig.model_validate(
            with_tag(table="holding_register", address=0, type="int16", min=5, max=1)
        )


@pytest.mark.parametrize("where", ["device", "tag", "connection"])
def test_unknown_key_rejected(where: str) -> None:
    entry = example()
    target = {"device": entry, "tag": entry["tags"]["count"], "connection": entry["connection"]}
    target[where]["colour"] = "blue"
    with pytest.raises(ValidationError, match="colour"):
        ModbusDeviceConfig.model_validate(entry)


def test_typo_in_type_rejected() -> None:
    with pytest.raises(ValidationError, match="in16"):
        ModbusDeviceConfig.model_validate(
            with_tag(table="holding_register", address=0, type="in16")
        )


@pytest.mark.parametrize("name", ["1st", "with space", "dash-name", ""])
def test_bad_tag_names_rejected(name: str) -> None:
    entry = example()
    entry["tags"] = {name: {"table": "holding_register", "address": 0, "type": "int16"}}
    with pytest.raises(ValidationError):
        ModbusDeviceConfig.model_validate(entry)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("unit_id", 248),
        ("unit_id", -1),
        ("poll_interval_ms", 0),
        ("timeout_ms", 0),
        ("max_block_registers", 126),
        ("max_block_gap", -1),
        ("byte_order", "middle"),
        ("tags", {}),
    ],
)
def test_device_ranges(key: str, value: Any) -> None:
    entry = example()
    entry[key] = value
    with pytest.raises(ValidationError):
        ModbusDeviceConfig.model_validate(entry)


def test_address_range_and_overrun() -> None:
    with pytest.raises(ValidationError):
        ModbusDeviceConfig.model_validate(
            with_tag(table="holding_register", address=65536, type="int16")
        )
    with pytest.raises(ValidationError, match="past address 65535"):
        ModbusDeviceConfig.model_validate(
            with_tag(table="holding_register", address=65535, type="uint32")
        )


def test_string_wider_than_block_limit_rejected() -> None:
    entry = with_tag(table="holding_register", address=0, type="string", length=20)
    entry["max_block_registers"] = 10
    with pytest.raises(ValidationError, match="max_block_registers"):
        ModbusDeviceConfig.model_validate(entry)


def test_wrong_driver_name_rejected() -> None:
    entry = example()
    entry["driver"] = "opcua"
    with pytest.raises(ValidationError):
        ModbusDeviceConfig.model_validate(entry)


def test_every_field_has_a_description() -> None:
    def check(schema: dict[str, Any], where: str) -> None:
        for name, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{where}.{name} has no description"

    schema = ModbusDeviceConfig.model_json_schema()
    check(schema, "ModbusDeviceConfig")
    for def_name, sub in schema.get("$defs", {}).items():
        check(sub, def_name)


def test_a_profile_counter_becomes_the_snapshot_counter_unless_one_is_set() -> None:
    """gateway/runtime.py hands the checkweigher's counter to its device (issue 13)."""
    from drivers.modbus.config import ModbusDeviceConfig

    entry: dict[str, object] = {
        "id": "cw1",
        "driver": "modbus",
        "connection": {"type": "tcp", "host": "127.0.0.1"},
        "tags": {
            "count": {"table": "holding_register", "address": 0, "type": "uint32"},
            "n": {"table": "holding_register", "address": 9, "type": "uint16"},
        },
    }
    cfg = ModbusDeviceConfig.model_validate(entry)
    assert cfg.snapshot is None
    got = cfg.with_snapshot_counter("count")
    assert got.snapshot is not None and got.snapshot.counter == "count"
    assert (got.snapshot.retries, got.snapshot.max_skipped) == (3, 10)
    assert cfg.with_snapshot_counter("missing") is cfg  # no such tag: nothing to guard
    own = ModbusDeviceConfig.model_validate({**entry, "snapshot": {"counter": "n"}})
    assert own.with_snapshot_counter("count") is own  # the tag map's choice stands


# -- writable tags ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tag", "function"),
    [
        ({"table": "coil", "address": 0, "type": "bool"}, 5),
        ({"table": "coil", "address": 0, "type": "bool", "write_function": 15}, 15),
        ({"table": "holding_register", "address": 0, "type": "uint16"}, 6),
        ({"table": "holding_register", "address": 0, "type": "bool"}, 6),
        ({"table": "holding_register", "address": 0, "type": "int16", "write_function": 16}, 16),
        ({"table": "holding_register", "address": 0, "type": "int32"}, 16),
        ({"table": "holding_register", "address": 0, "type": "uint64"}, 16),
        ({"table": "holding_register", "address": 0, "type": "float64"}, 16),
        ({"table": "holding_register", "address": 0, "type": "string", "length": 1}, 6),
        ({"table": "holding_register", "address": 0, "type": "string", "length": 8}, 16),
    ],
)
def test_write_function_by_table_and_width(tag: dict[str, Any], function: int) -> None:
    cfg = ModbusDeviceConfig.model_validate(with_tag(writable=True, **tag))
    assert write_function(cfg.tags["t"]) == function


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        ({"table": "input_register", "type": "uint16"}, "input_register is read-only"),
        ({"table": "discrete_input", "type": "bool"}, "discrete_input is read-only"),
        ({"table": "holding_register", "type": "bool", "bit": 3}, "bool with bit cannot be"),
        ({"table": "coil", "type": "bool", "write_function": 6}, "cannot write a coil"),
        (
            {"table": "holding_register", "type": "int32", "write_function": 6},
            "cannot write a 2-register int32",
        ),
        ({"table": "holding_register", "type": "uint16", "write_function": 5}, r"allowed: 6, 16"),
        ({"table": "holding_register", "type": "string", "length": 124}, "at most 123 registers"),
    ],
)
def test_writable_tags_that_modbus_cannot_write_are_config_errors(
    tag: dict[str, Any], reason: str
) -> None:
    entry = with_tag(address=0, writable=True, **tag)
    entry["max_block_registers"] = 125
    with pytest.raises(ValidationError, match=reason):
        ModbusDeviceConfig.model_validate(entry)


def test_write_function_without_writable_is_an_error() -> None:
    with pytest.raises(ValidationError, match="write_function applies to writable tags only"):
        ModbusDeviceConfig.model_validate(
            with_tag(table="coil", address=0, type="bool", write_function=5)
        )


def test_64_bit_tags_take_four_registers() -> None:
    cfg = ModbusDeviceConfig.model_validate(
        with_tag(table="holding_register", address=65532, type="int64")
    )
    assert register_count(cfg.tags["t"]) == 4
    with pytest.raises(ValidationError, match="runs past address 65535"):
        ModbusDeviceConfig.model_validate(
            with_tag(table="holding_register", address=65533, type="uint64")
        )
