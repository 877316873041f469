"""Contract events (../shared/design/contract.md, "Event envelope") for bridge tests: a batch of
bags packed into cases and pallets, CCP checks and an outbound order, with what they mean."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from gateway.event_schemas import spec_for
from gateway.signing import sign

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 22, 8, 0, 0, tzinfo=TZ)


@dataclass
class LineEvents:
    """Makes envelopes for one line; ``published`` remembers them in order."""

    enterprise: str = "8035"
    site: str = "daiyue"
    line: str = "L1"
    gateway: str = "gw-test-1"  # TEST_GATEWAY
    prefix: str = "salt/v1"
    seq: int = 0
    clock: datetime = T0
    published: list[dict[str, Any]] = field(default_factory=list)

    def make(
        self, etype: str, data: dict[str, Any], batch: str | None, device: str | None = None
    ) -> dict[str, Any]:
        """An event of ``etype`` valid by its schema (gateway/event_schemas, which the bridge
        checks every event with): ``data`` completed with the fields its type requires, from
        the type's documented example, and a device where the type requires one."""
        data, device = _complete(etype, data, device)
        self.seq += 1
        self.clock += timedelta(milliseconds=250)
        ev = {
            "id": str(uuid.uuid4()),
            "gateway": self.gateway,
            "seq": self.seq,
            "type": etype,
            "ts": self.clock.isoformat(timespec="milliseconds"),
            "enterprise": self.enterprise,
            "site": self.site,
            "line": self.line,
            "device": device,
            "batch": batch,
            "data": data,
        }
        self.published.append(ev)
        return ev

    def topic(self, ev: dict[str, Any]) -> str:
        group, kind = ev["type"].split(".", 1)
        root = f"{self.prefix}/{self.enterprise}/{self.site}/{self.line}"
        return f"{root}/alarm/{kind}" if group == "alarm" else f"{root}/event/{group}/{kind}"


def _complete(
    etype: str, data: dict[str, Any], device: str | None
) -> tuple[dict[str, Any], str | None]:
    try:
        spec = spec_for(etype)
    except KeyError:  # a type without a schema: as given
        return data, device
    out = dict(data)
    for f in spec.fields:
        if f.required and f.when is None and f.name not in out:
            out[f.name] = spec.example["data"][f.name]
    if "children" in data and "count" in out and "expected" in out:
        out["count"] = out["expected"] = len(data["children"])
    if device is None and spec.device == "required":
        device = spec.example["device"]
    return out, device


@dataclass
class BatchPlan:
    batch: str
    bags: list[str]
    cases: dict[str, list[str]]
    pallets: dict[str, list[str]]
    unpacked: dict[str, list[str]]  # case → bags taken out again (rework)
    orders: dict[str, list[str]]  # order → codes shipped
    events: list[dict[str, Any]]


def batch_events(
    f: LineEvents,
    batch: str,
    n_bags: int,
    *,
    per_case: int = 10,
    per_pallet: int = 4,
    with_end: bool = True,
    rework: bool = True,
) -> BatchPlan:
    """batch.start, bags (each followed by a net-content check), cases, pallets, one unpack,
    a metal-detector check, one outbound order of the first pallet, batch.end."""
    evs = [f.make("batch.start", {"batch": batch, "product": "P400"}, batch)]
    tag = batch.replace("-", "")
    bags = [f"{f.enterprise}B{tag}{i:05d}" for i in range(n_bags)]
    cases: dict[str, list[str]] = {}
    for i, bag in enumerate(bags):
        evs.append(f.make("pack.bag", {"code": bag}, batch, device="scan1"))
        verdict = "fail" if i % 7 == 3 else "pass"
        value = 380.5 if verdict == "fail" else 400.0 + (i % 5)
        data = {
            "value": value,
            "unit": "g",
            "limits": {"lo": 388.0, "hi": None},
            "verdict": verdict,
        }
        evs.append(f.make("ccp.net_content", data, batch, device="cw1"))
        if (i + 1) % per_case == 0:
            case = f"{f.enterprise}C{tag}{len(cases):04d}"
            cases[case] = bags[i + 1 - per_case : i + 1]
            evs.append(f.make("pack.case", {"code": case, "children": cases[case]}, batch))
    pallets: dict[str, list[str]] = {}
    names = list(cases)
    for j in range(0, len(names) - len(names) % per_pallet, per_pallet):
        pallet = f"{f.enterprise}P{tag}{len(pallets):03d}"
        pallets[pallet] = names[j : j + per_pallet]
        evs.append(f.make("pack.pallet", {"code": pallet, "children": pallets[pallet]}, batch))
    unpacked: dict[str, list[str]] = {}
    if rework and names:
        last = names[-1]
        unpacked[last] = cases[last][:2]
        evs.append(f.make("pack.unpack", {"code": last, "children": unpacked[last]}, batch))
    md = {"value": True, "unit": None, "limits": {"expected": True}, "verdict": "pass",
          "check": "detection", "detection": 1}  # fmt: skip
    evs.append(f.make("ccp.metal_detector", md, batch, device="md1"))
    orders: dict[str, list[str]] = {}
    if pallets:
        order = f"SO-{tag}"
        orders[order] = [next(iter(pallets))]
        pallet = orders[order][0]
        data = {"order": order, "customer": "某某盐业批发公司", "customer_type": "wholesaler",
                "code": pallet, "level": "pallet", "children": pallets[pallet],
                "bags": sum(len(cases[c]) for c in pallets[pallet])}  # fmt: skip
        evs.append(f.make("ship.outbound", data, None))
    if with_end:
        evs.append(f.make("batch.end", {"batch": batch, "inspection": "合格，一级"}, batch))
    return BatchPlan(batch, bags, cases, pallets, unpacked, orders, evs)


#: the key the test line's gateways sign with; bridges under test know it for TEST_GATEWAY
#: (tests/support/bridge_env.py, known_gateway)
TEST_KEY = b"saltgw-test-gateway-key-8035daiyue"
TEST_GATEWAY = "gw-test-1"


def payload(ev: dict[str, Any], key: bytes | None = TEST_KEY) -> bytes:
    """The event as a gateway publishes it: compact JSON signed with ``key``
    (gateway/signing.py); ``key=None``: unsigned."""
    body = json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode()
    return body if key is None else sign(key, body)


GARBAGE = [
    b"not json at all",
    b'{"id": "x"}',
    b"[1, 2, 3]",
    json.dumps(
        {
            "id": "g1",
            "gateway": "gw",
            "seq": 1,
            "type": "pack.case",
            "ts": "2026-11-22T08:00:00+08:00",
            "enterprise": "8035",
            "site": "s",
            "line": "L1",
            "device": None,
            "batch": "B",
            "data": {"code": "8035CX", "children": []},
        }
    ).encode(),
    b"\xff\xfe\x00garbage",
]


@dataclass
class LineRecords:
    """The records besides codes, packing, CCP and outbound that one batch adds (issue 13)."""

    events: list[dict[str, Any]]
    feedings: list[dict[str, Any]]  # the feed.material data, in order
    rejects: list[tuple[str, str | None, str | None]]  # (reason, code, case it left)
    decommissioned: list[str]  # codes of rejected bags
    inbound: list[tuple[str, str | None, str | None]]  # (code, order, supplier)
    recalls: list[tuple[str, str | None, str | None]]  # (code, recall, party)


def line_records(f: LineEvents, plan: BatchPlan) -> LineRecords:
    """For a plan with at least two cases and a pallet: two feedings; four rejects — a bag out
    of the case the event names, a bag out of the case only the store knows (an older gateway),
    a bag in no case, and a bag whose code was not read; an inbound scan of the first pallet
    and of an unknown code; a recall scan of a bag and of the second case."""
    b = plan.batch
    cases = list(plan.cases)
    loose = [c for c in plan.bags if not any(c in kids for kids in plan.cases.values())]
    assert len(cases) >= 2 and plan.pallets and loose, "plan too small for line_records"
    feed = [
        {"material": "原盐 (日晒盐)", "lot": "RS-2026-11-07", "quantity": 25.5, "unit": "kg",
         "point": "hopper 1", "operator": "张三", "count": 7},
        {"material": "碘酸钾", "lot": None, "quantity": 0.125, "unit": "kg", "point": None,
         "operator": 42, "count": 8},
    ]  # fmt: skip
    in_case, in_case_too = plan.cases[cases[0]][0], plan.cases[cases[1]][-1]
    rejects = [
        ("reject_chute", in_case, cases[0]),
        ("reject_chute", in_case_too, cases[1]),
        ("reject_chute", loose[0], None),
        ("net_content", None, None),
    ]
    evs = [f.make("feed.material", d, b, device="plc1") for d in feed]
    evs.append(
        f.make(
            "pack.reject",
            {"reason": "reject_chute", "code": in_case, "commissioned": True, "case": cases[0]},
            b,
            "rej1",
        )
    )
    evs.append(
        f.make(
            "pack.reject",
            {"reason": "reject_chute", "code": in_case_too, "commissioned": True},
            b,
            "rej1",
        )
    )
    evs.append(
        f.make(
            "pack.reject",
            {"reason": "reject_chute", "code": loose[0], "commissioned": True},
            b,
            "rej1",
        )
    )
    evs.append(f.make("pack.reject", {"reason": "net_content", "value": 380.0, "unit": "g",
                                      "count": 17}, b, "cw1"))  # fmt: skip
    pallet = next(iter(plan.pallets))
    unknown = f"{f.enterprise}ZZUNKNOWN1"  # a code this line never packed
    inbound = [(pallet, "IN-2026-0042", "泰安市盐业公司"), (unknown, None, None)]
    for code, order, supplier in inbound:
        level = "pallet" if code == pallet else "unknown"
        data = {"code": code, "level": level, "order": order, "supplier": supplier,
                "bags": 40 if code == pallet else 1, "children": []}  # fmt: skip
        evs.append(f.make("ship.inbound", data, None, device="in1"))
    recalls = [(plan.bags[1], "RC-2026-003", "某超市"), (cases[1], "RC-2026-003", None)]
    for code, recall, party in recalls:
        level = "bag" if code in plan.bags else "case"
        data = {"code": code, "level": level, "recall": recall, "party": party, "bags": 1,
                "children": []}  # fmt: skip
        evs.append(f.make("recall.scan", data, None, device="rc1"))
    return LineRecords(evs, feed, rejects, [in_case, in_case_too, loose[0]], inbound, recalls)
