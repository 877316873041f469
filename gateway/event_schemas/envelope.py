"""The event envelope of the contract (../shared/design/contract.md, "Event envelope"), as a
JSON Schema: every event, whatever its type, is one such object (``gateway/events.py``)."""

from __future__ import annotations

from gateway.enterprise import ENTERPRISE_ID_RE
from gateway.event_schemas.spec import JSON, EventSpec, Field, integer, nullable, obj, string

__all__ = ["ENTERPRISE_RE", "ENVELOPE_FIELDS", "ID_RE", "TS_RE", "envelope_schema"]

#: A gateway, site, line or device id (gateway/config/models.py, drivers/base.py).
ID_RE = r"^[A-Za-z0-9_\-]{1,64}$"
#: A producer's Annex A code (QB/T 5279-2018: 8 or 9, then the last 3 digits of its certificate
#: number) or a wholesaler's unified social credit code (GB 32100-2015; gateway/enterprise.py).
ENTERPRISE_RE = ENTERPRISE_ID_RE
#: RFC 3339 with an explicit offset, as ``gateway.events.format_ts`` writes it.
TS_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
TYPE_RE = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
SIG_RE = r"^[0-9a-f]{64}$"

ENVELOPE_FIELDS = (
    Field(
        "id",
        string(pattern=UUID_RE),
        "Unique id of the event (a time-ordered UUID, RFC 9562 version 7). An event sent again "
        "(after a reconnect or a restart) keeps its id: subscribers de-duplicate by it.",
    ),
    Field(
        "gateway",
        string(pattern=ID_RE),
        "Id of the gateway that accepted the event (`gateway.id` of its config).",
    ),
    Field(
        "seq",
        integer(minimum=1),
        "Per gateway: strictly increasing, without gaps, across restarts (allocated when the "
        "event is journaled). A gap means events were dropped on purpose (`journal.when_full: "
        "drop_oldest`, counted in `saltgw_events_dropped`).",
    ),
    Field(
        "type",
        string(pattern=TYPE_RE),
        "`{group}.{kind}`: which of the types below; names the topic and the shape of `data`.",
    ),
    Field(
        "ts",
        string(format="date-time", pattern=TS_RE),
        "RFC 3339 time of the reading (or of the gateway's clock for what time alone causes), "
        "with milliseconds and the line's UTC offset (`gateway.timezone`).",
    ),
    Field(
        "enterprise",
        string(pattern=ENTERPRISE_RE),
        "The enterprise: a producer's 4-digit code (QB/T 5279-2018 Annex A) or a wholesaler's "
        "18-character unified social credit code (GB 32100-2015; docs/wholesale.md).",
    ),
    Field("site", string(pattern=ID_RE), "Site (plant) id."),
    Field("line", string(pattern=ID_RE), "Packing line id."),
    Field(
        "device",
        nullable(string(pattern=ID_RE)),
        "Id of the device the event comes from; null when it comes from no single device.",
    ),
    Field(
        "batch",
        nullable(string(minLength=1)),
        "The line's batch (QB/T 5279-2018 10.2.4: the batch ties a line's records together): "
        "the one running when the event was accepted, from its `batch.start` to its "
        "`batch.end` inclusive; null outside a batch. `pack.case` / `pack.pallet` carry their "
        "children's batch.",
    ),
    Field("data", {"type": "object"}, "Type-specific fields: the sections below."),
    Field(
        "sig",
        string(pattern=SIG_RE),
        "HMAC-SHA-256 of the event by its gateway's key, lowercase hex: always the last member, "
        "over the payload's bytes without it ([Signature](#signature)). Sent on every event; "
        "a bridge stores only events signed by a gateway it knows (docs/bridge.md).",
        required=False,
    ),
)


def envelope_schema(spec: EventSpec | None = None, data: JSON | None = None) -> JSON:
    """The envelope; with ``spec``, narrowed to that type (``type``, ``device``, ``batch``) and
    with ``data`` as the type's data schema."""
    out = obj(*ENVELOPE_FIELDS)
    if spec is None:
        out["title"] = "saltgw event envelope"
        return out
    props = dict(out["properties"])
    props["type"] = {**props["type"], "const": spec.type}
    if spec.device == "required":
        props["device"] = {**props["device"], "type": "string"}
    elif spec.device == "null":
        props["device"] = {**props["device"], "type": "null"}
        props["device"].pop("pattern", None)
    if spec.batch == "required":
        props["batch"] = {**props["batch"], "type": "string"}
    if data is not None:
        props["data"] = data
    out["properties"] = props
    out["title"] = f"saltgw event {spec.type}"
    return out
