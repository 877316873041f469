"""Which Modbus RTU devices share a serial port, and what they must agree on — without pymodbus,
so that ``saltgw validate`` checks a map where the ``modbus`` extra is not installed.

Devices whose ``connection`` is RTU on one port share one link (drivers/modbus/bus.py). A port
has one line speed and one character format, and an RS-485 line addresses its slaves by unit id,
so :func:`shared_port_errors` reports, on the later device of a map:

* serial settings (``baudrate``, ``bytesize``, ``parity``, ``stopbits``) that differ from the
  first device on the port;
* a unit id already used by another device on the port.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from drivers.modbus.config import ModbusDeviceConfig, RtuConnection

__all__ = ["SERIAL_SETTINGS", "bus_key", "serial_settings", "shared_port_errors"]

#: the connection keys every device on one port must agree on
SERIAL_SETTINGS = ("baudrate", "bytesize", "parity", "stopbits")

Loc = tuple[str | int, ...]


def serial_settings(conn: RtuConnection) -> tuple[int, int, str, int]:
    """The settings every device on one port must agree on."""
    return (conn.baudrate, conn.bytesize, conn.parity, conn.stopbits)


def bus_key(port: str) -> str:
    """What identifies a port: the real path of a device file (``/dev/serial/by-id/…`` and
    ``/dev/ttyUSB0`` are one port), a pyserial URL (``socket://…``) as written."""
    if "://" in port:
        return port
    return os.path.realpath(port)


def _rtu(entry: Any) -> tuple[str, dict[str, Any]] | None:
    """(port, connection) of a raw device entry that is Modbus RTU; None otherwise."""
    if not isinstance(entry, dict) or entry.get("driver") != "modbus":
        return None
    conn = entry.get("connection")
    if not isinstance(conn, dict) or conn.get("type") != "rtu":
        return None
    port = conn.get("port")
    return (port, conn) if isinstance(port, str) and port else None


def shared_port_errors(devices: Iterable[Any]) -> Iterator[tuple[Loc, str]]:
    """(location, message) for each RTU device (a raw ``devices:`` entry) that disagrees with
    the first device on its port, or repeats a unit id used on it."""
    defaults = {k: RtuConnection.model_fields[k].default for k in SERIAL_SETTINGS}
    unit_default = ModbusDeviceConfig.model_fields["unit_id"].default
    first: dict[str, tuple[int, str, dict[str, Any]]] = {}  # port key -> (index, id, settings)
    units: dict[tuple[str, Any], tuple[int, str]] = {}  # (port key, unit) -> (index, id)
    for i, entry in enumerate(devices):
        found = _rtu(entry)
        if found is None:
            continue
        port, conn = found
        key = bus_key(port)
        name = str(entry.get("id"))
        settings = {k: conn.get(k, defaults[k]) for k in SERIAL_SETTINGS}
        if key not in first:
            first[key] = (i, name, settings)
        else:
            j, other, agreed = first[key]
            for k in SERIAL_SETTINGS:
                if settings[k] != agreed[k]:
                    where: Loc = ("devices", i, "connection", k)
                    note = ""
                    if k not in conn:
                        where, note = ("devices", i, "connection"), " (the default)"
                    yield (
                        where,
                        f"{k} {settings[k]!r}{note} differs from {agreed[k]!r} of device {other!r} "
                        f"(devices[{j}]) on port {port}: devices on one serial port share one "
                        "line and must agree on baudrate, bytesize, parity and stopbits",
                    )
        unit = entry.get("unit_id", unit_default)
        if (key, unit) in units:
            j, other = units[(key, unit)]
            at: Loc = ("devices", i, "unit_id")
            note = ""
            if "unit_id" not in entry:
                at, note = ("devices", i), " (the default)"
            yield (
                at,
                f"unit id {unit}{note} is already used on port {port} by device {other!r} "
                f"(devices[{j}]): each device on one serial line needs its own unit id",
            )
        else:
            units[(key, unit)] = (i, name)
