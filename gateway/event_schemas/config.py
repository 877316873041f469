"""``config.reload`` and ``alarm.config``: a change of the map on a running gateway
(gateway/reload.py; docs/operations.md, "Changing the map on a running line")."""

from __future__ import annotations

from gateway.event_schemas.alarms import detail
from gateway.event_schemas.envelope import ID_RE
from gateway.event_schemas.spec import EventSpec, Field, array, integer, nullable, string

__all__ = ["ALARM_CONFIG", "CONFIG_SPECS"]

SHA256_RE = r"^[0-9a-f]{64}$"
_EXAMPLE_SHA = "5f1c0a7e2b9d4c8e6a3f1b0d9c8e7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b"
_EXAMPLE_PREV = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"


def _sha(description: str) -> Field:
    return Field("sha256", string(pattern=SHA256_RE), description)


def _devices(name: str, what: str) -> Field:
    return Field(name, array(string(pattern=ID_RE)), f"Ids of the devices {what}.")


def _by() -> Field:
    return Field(
        "by",
        string(minLength=1),
        "Who asked: the Unix user of `saltgw reload` (name, uid and pid), or `signal SIGHUP`.",
    )


RELOAD = EventSpec(
    type="config.reload",
    title="The map was reloaded on the running gateway.",
    meaning="After `saltgw reload` or SIGHUP applied a changed map without a restart: which "
    "devices were started, stopped and restarted (with the profiles bound to them); the others "
    "kept running on their connection. The journal and the broker link are never restarted, "
    "so `seq` goes on without a gap. The hashes identify the file (`sha256sum FILE`): what "
    "ran before and what runs now. Not uploaded to the platform.",
    records="contract extension; QB/T 5279-2018 10.2.1 (automated collection: a record of "
    "what configuration collected the data)",
    source="the runtime (gateway/reload.py)",
    device="null",
    fields=(
        Field("file", string(minLength=1), "The map file, as `saltgw run` was given it."),
        _sha("SHA-256 of the file's bytes now running (before `${NAME}` substitution)."),
        Field(
            "previous_sha256",
            nullable(string(pattern=SHA256_RE)),
            "SHA-256 of the map that ran before; null when not known.",
        ),
        _devices("added", "started"),
        _devices("removed", "stopped"),
        _devices("changed", "restarted with their new entry or profiles"),
        Field("unchanged", integer(minimum=0), "Devices that kept running untouched."),
        _by(),
    ),
    example={
        "device": None,
        "batch": None,
        "data": {
            "file": "/etc/saltgw/line.yaml",
            "sha256": _EXAMPLE_SHA,
            "previous_sha256": _EXAMPLE_PREV,
            "added": [],
            "removed": [],
            "changed": ["cw2"],
            "unchanged": 3,
            "by": "alice (uid 1000, pid 4321, saltgw reload)",
        },
    },
)

ALARM_CONFIG = EventSpec(
    type="alarm.config",
    title="A reload of the map was refused; the map that ran before still runs.",
    meaning="When the changed file does not validate (the same errors as `saltgw validate`, "
    "FILE:LINE:COL each) or changes what cannot change while running (the gateway's identity, "
    "the broker, the journal, …: a restart applies those). Nothing was stopped or started.",
    records="contract extension",
    source="the runtime (gateway/reload.py)",
    device="null",
    fields=(
        detail(),
        Field("file", string(minLength=1), "The map file, as `saltgw run` was given it."),
        Field(
            "sha256",
            nullable(string(pattern=SHA256_RE)),
            "SHA-256 of the refused file's bytes; null when it could not be read.",
        ),
        Field(
            "running_sha256",
            nullable(string(pattern=SHA256_RE)),
            "SHA-256 of the map still running; null when not known.",
        ),
        Field(
            "errors",
            array(string(minLength=1), minItems=1),
            "Why, one line each (`FILE:LINE:COL: error: PATH: message` for a validation error).",
        ),
        _by(),
    ),
    example={
        "device": None,
        "batch": None,
        "data": {
            "detail": "reload of /etc/saltgw/line.yaml refused (1 errors); the map that was "
            "running still runs: correct the file and reload again",
            "file": "/etc/saltgw/line.yaml",
            "sha256": _EXAMPLE_SHA,
            "running_sha256": _EXAMPLE_PREV,
            "errors": [
                "/etc/saltgw/line.yaml:14:15: error: devices[1].tags.weight_g.type: expected "
                "one of int16, uint16, int32, uint32, float32, float64; got 'in16'"
            ],
            "by": "signal SIGHUP",
        },
    },
)

CONFIG_SPECS = (RELOAD,)
