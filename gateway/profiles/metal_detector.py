"""Metal detector → ``ccp.metal_detector`` (QB/T 5279-2018 7.2 table 2 row 4: the metal
detector's records are CCP information to collect).

Two kinds of record, each from a device counter (the first value seen is a baseline):

* **detection** — each new count of ``detections`` is a pack with metal in it. The CCP worked
  when the device confirms the reject (its ``rejects`` counter advances) within
  ``reject_confirm_s``: a record with ``value: true`` (rejected), verdict ``pass``, and a
  ``pack.reject`` with reason ``metal``. No confirmed reject in time: ``value: false``, verdict
  ``fail`` and ``alarm.ccp`` — a contaminated pack may be on its way to the case packer.
* **verification** — each new count of ``verifications`` is a completed test-piece check (Fe,
  non-Fe and stainless-steel spheres passed through the aperture); one record per piece with
  ``value`` = detected and ``limits`` = ``{"expected": true, "max_size_mm": …}``. A piece not
  detected, or larger than configured (when the device reports the size it used), fails and
  raises ``alarm.ccp``. No verification within ``verification_interval_min`` raises
  ``alarm.ccp`` once per missed interval (``on_tick``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.base import Reading
from gateway.events import EventDraft
from gateway.profiles.base import ProfileSpec, Role
from gateway.profiles.records import (
    CcpProfileConfig,
    bad_value,
    ccp_alarm,
    ccp_record,
    read_bool,
    read_number,
)
from gateway.profiles.watch import CounterWatch, PeriodicWatch, ReadingAge, TagHealth

__all__ = [
    "METAL_DETECTOR",
    "MetalDetectorProfile",
    "MetalDetectorProfileConfig",
    "MetalDetectorTestPieces",
]

KIND = "metal_detector"


class MetalDetectorTestPieces(BaseModel):
    """Diameters of the test spheres the detector must find (the plant's HACCP plan; typical
    for dry salt in small packs). A verification with a larger piece than these fails."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    fe_mm: float = Field(default=1.5, gt=0, le=20, description="Ferrous sphere, mm.")
    non_fe_mm: float = Field(
        default=2.0, gt=0, le=20, description="Non-ferrous (brass/aluminium) sphere, mm."
    )
    stainless_mm: float = Field(
        default=2.5, gt=0, le=20, description="Stainless-steel (SUS 304/316) sphere, mm."
    )


class MetalDetectorProfileConfig(CcpProfileConfig):
    """A metal detector: detections with reject confirmation, periodic test-piece checks."""

    profile: Literal["metal_detector"] = Field(description="A metal detector (CCP).")
    test_pieces: MetalDetectorTestPieces = Field(
        default_factory=MetalDetectorTestPieces,
        description="Required test-piece sizes: fe_mm, non_fe_mm, stainless_mm.",
    )
    verification_interval_min: float = Field(
        default=60.0,
        gt=0,
        description="A test-piece verification is due this often (minutes); a miss raises "
        "alarm.ccp once per missed interval.",
    )
    reject_confirm_s: float = Field(
        default=3.0,
        gt=0,
        le=600,
        description="A detection must be followed by a confirmed reject (the rejects counter "
        "advancing) within this many seconds, or the detection record fails.",
    )


@dataclass(frozen=True, slots=True)
class _Piece:
    key: str  # "fe", "non_fe", "stainless": in events (test_piece) and role names
    label: str  # for the operator


PIECES = (
    _Piece("fe", "Fe"),
    _Piece("non_fe", "non-Fe"),
    _Piece("stainless", "stainless steel"),
)

ROLES = (
    Role("detections", "detections", description="Detection counter: +1 per pack with metal."),
    Role("rejects", "rejects", description="Confirmed-reject counter (reject confirm sensor)."),
    Role(
        "verifications",
        "verifications",
        description="Verification counter: +1 per completed test-piece verification.",
    ),
    *(
        Role(
            f"{p.key}_detected",
            f"{p.key}_detected",
            description=f"True when the last verification detected the {p.label} test piece.",
        )
        for p in PIECES
    ),
    *(
        Role(
            f"{p.key}_mm",
            f"{p.key}_mm",
            required=False,
            description=f"Diameter of the {p.label} test piece the device was verified with, mm.",
        )
        for p in PIECES
    ),
)


@dataclass(slots=True)
class _Pending:
    number: int  # the detection counter's value for this detection
    ts: datetime


class MetalDetectorProfile:
    def __init__(
        self, cfg: MetalDetectorProfileConfig, tags: Mapping[str, str], tz: tzinfo
    ) -> None:
        self.cfg = cfg
        self.device = cfg.device
        self.tags = dict(tags)
        self.detections = CounterWatch(cfg.device, tags["detections"])
        self.rejects = CounterWatch(cfg.device, tags["rejects"])
        self.verifications = CounterWatch(cfg.device, tags["verifications"])
        self.periodic = PeriodicWatch(timedelta(minutes=cfg.verification_interval_min))
        self.health = TagHealth(cfg.device)
        self.age = ReadingAge(self.health, tags["detections"], cfg.max_reading_age_s)
        self.pending: deque[_Pending] = deque()
        self.confirm = timedelta(seconds=cfg.reject_confirm_s)

    # -- the profile protocol --------------------------------------------------------------
    def on_tick(self, now: datetime) -> list[EventDraft]:
        self.age.tick(now)
        out = self._expire(now)
        missed = self.periodic.overdue(now)
        if missed:
            out.append(self._missed(now, missed))
        return out

    def on_reading(self, reading: Reading) -> list[EventDraft]:
        self.periodic.start(reading.ts)
        fresh, out = self.age.check(reading)
        if not fresh:
            return out
        new = self.detections.advance(reading)
        last = self.detections.last
        if new and last is not None:
            for number in range(last - new + 1, last + 1):
                self.pending.append(_Pending(number, reading.ts))
        for _ in range(self.rejects.advance(reading)):
            if not self.pending:
                break  # a reject for another cause (e.g. a device fault): not ours to record
            out.extend(self._confirmed(self.pending.popleft(), reading.ts))
        out.extend(self._expire(reading.ts))
        count = self.verifications.advance(reading)
        if count:
            out.extend(self._verification(reading, count))
        for watch in (self.detections, self.rejects, self.verifications):
            out.extend(watch.reset_alarms(reading.ts))
        return out

    # -- detections ----------------------------------------------------------------------------
    def _confirmed(self, det: _Pending, ts: datetime) -> list[EventDraft]:
        record = ccp_record(
            KIND,
            det.ts,
            self.device,
            value=True,
            unit=None,
            limits={"expected": True},
            verdict="pass",
            check="detection",
            detection=det.number,
        )
        reject = EventDraft(
            "pack.reject", ts, {"reason": "metal", "detection": det.number}, device=self.device
        )
        return [record, reject]

    def _expire(self, now: datetime) -> list[EventDraft]:
        out: list[EventDraft] = []
        for p in self.pending:  # the wall clock went back: the reject windows restart now
            p.ts = min(p.ts, now)
        while self.pending and now - self.pending[0].ts > self.confirm:
            det = self.pending.popleft()
            limits = {"expected": True}
            out.append(
                ccp_record(
                    KIND,
                    det.ts,
                    self.device,
                    value=False,
                    unit=None,
                    limits=limits,
                    verdict="fail",
                    check="detection",
                    detection=det.number,
                )
            )
            detail = (
                f"metal detector {self.device}: metal detected (detection {det.number}) but no "
                f"reject confirmed within {self.cfg.reject_confirm_s:g} s; a contaminated pack "
                "may have passed: stop the line, find and hold it"
            )
            out.append(
                ccp_alarm(
                    KIND,
                    det.ts,
                    self.device,
                    check="detection",
                    value=False,
                    unit=None,
                    limits=limits,
                    detail=detail,
                    detection=det.number,
                )
            )
        return out

    # -- verifications ---------------------------------------------------------------------------
    def _verification(self, reading: Reading, new: int) -> list[EventDraft]:
        number = self.verifications.last
        out: list[EventDraft] = []
        results: list[bool | None] = []
        last_pass = self.periodic.last_pass
        for piece in PIECES:
            events, passed = self._piece(reading, piece, number, missed=new - 1)
            out.extend(events)
            results.append(passed)
        passed_all = None if None in results else all(results)
        failed = [e for e in out if e.type == f"ccp.{KIND}" and e.data["verdict"] == "fail"]
        for rec in failed:
            out.append(self._failed_alarm(rec, last_pass))
        self.periodic.done(reading.ts, passed=passed_all)
        return out

    def _piece(
        self, reading: Reading, piece: _Piece, number: int | None, *, missed: int
    ) -> tuple[list[EventDraft], bool | None]:
        required = getattr(self.cfg.test_pieces, f"{piece.key}_mm")
        tag = self.tags[f"{piece.key}_detected"]
        detected, why = read_bool(reading, tag)
        if detected is None:
            detail = f"verification {number}: {piece.label} result unreadable ({why}); no verdict"
            bad = bad_value(reading.ts, self.device, tag, why, detail, verification=number)
            return [bad], None
        size = required
        out: list[EventDraft] = []
        size_tag = self.tags.get(f"{piece.key}_mm")
        if size_tag is not None:
            used, why = read_number(reading, size_tag)
            if used is None or used == 0:
                why = why or "zero, which is no test piece"
                detail = (
                    f"verification {number}: {piece.label} test piece size unreadable ({why}); "
                    f"the required {required:g} mm is assumed"
                )
                out.append(
                    bad_value(reading.ts, self.device, size_tag, why, detail, verification=number)
                )
            else:
                size = round(used, 2)
        passed = detected and size <= required
        extra: dict[str, Any] = {
            "check": "verification",
            "test_piece": piece.key,
            "size_mm": size,
            "verification": number,
        }
        if missed:
            extra["missed"] = missed
        out.insert(
            0,
            ccp_record(
                KIND,
                reading.ts,
                self.device,
                value=detected,
                unit=None,
                limits={"expected": True, "max_size_mm": required},
                verdict="pass" if passed else "fail",
                **extra,
            ),
        )
        return out, passed

    def _failed_alarm(self, rec: EventDraft, last_pass: datetime | None) -> EventDraft:
        d = rec.data
        label = next(p.label for p in PIECES if p.key == d["test_piece"])
        required = d["limits"]["max_size_mm"]
        if not d["value"]:
            what = f"{label} test piece {d['size_mm']:g} mm not detected"
        else:
            what = (
                f"{label} test piece {d['size_mm']:g} mm used, larger than the required "
                f"{required:g} mm"
            )
        since = (
            f"since the last passed verification ({last_pass.isoformat(timespec='seconds')})"
            if last_pass is not None
            else "since the gateway started watching"
        )
        detail = (
            f"metal detector {self.device}, verification {d['verification']}: {what}; "
            f"hold and re-inspect the product packed {since}"
        )
        return ccp_alarm(
            KIND,
            rec.ts,
            self.device,
            check="verification",
            value=d["value"],
            unit=None,
            limits=d["limits"],
            detail=detail,
            test_piece=d["test_piece"],
            size_mm=d["size_mm"],
            verification=d["verification"],
            last_pass=last_pass.isoformat(timespec="milliseconds") if last_pass else None,
        )

    def _missed(self, now: datetime, missed: int) -> EventDraft:
        interval = self.cfg.verification_interval_min
        minutes = self.periodic.minutes_since(now)
        detail = (
            f"metal detector {self.device}: no test-piece verification for {minutes:g} min "
            f"(due every {interval:g} min)"
        )
        return ccp_alarm(
            KIND,
            now,
            self.device,
            check="verification",
            value=minutes,
            unit="min",
            limits={"lo": None, "hi": interval},
            detail=detail,
            missed=missed,
        )


METAL_DETECTOR = ProfileSpec(
    name="metal_detector",
    config_model=MetalDetectorProfileConfig,
    create=MetalDetectorProfile,
    roles=ROLES,
    description="Metal detector: ccp.metal_detector per detection (with pack.reject when the "
    "device confirmed it) and per test piece of each verification; alarm.ccp on a failure, an "
    "unconfirmed reject or a missed verification.",
    full_image=True,
)
