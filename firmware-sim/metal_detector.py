"""A simulated metal detector (the aperture the packs pass through before case packing), speaking
Modbus TCP like the Ethernet/Modbus option of common food metal detectors.

Register map — holding registers (FC 3), zero-based, big-endian bytes and words ("ABCD"),
read-only, unit ``unit_id``:

    ====  ==============  =======  ==========================================================
    addr  name            type     meaning
    ====  ==============  =======  ==========================================================
    0-1   products        uint32   packs passed through the aperture
    2-3   detections      uint32   metal detections (+1 per contaminated pack)
    4-5   rejects         uint32   confirmed rejects (reject-confirm sensor after the pusher)
    6-7   verifications   uint32   completed test-piece verifications
    8     status          uint16   bit0 running; bits 1/2/3: the Fe / non-Fe / stainless test
                                   piece was detected at the last verification
    9     fe_size         uint16   Fe test piece used at the last verification, 0.1 mm
    10    non_fe_size     uint16   non-Fe test piece, 0.1 mm
    11    stainless_size  uint16   stainless-steel test piece, 0.1 mm
    ====  ==============  =======  ==========================================================

A detection is followed ``reject_delay_s`` later (the pack travelling to the pusher) by a
confirmed reject — except every ``unconfirmed_every``-th detection, whose reject never comes (a
jammed pusher). Every ``verification_every_s`` an operator passes the three test pieces; every
``failed_verification_every``-th verification misses one of them (Fe, non-Fe, stainless in
turn). For tests: :meth:`detect` and :meth:`verify` do it now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from firmware_sim.base import SimulatorSpec
from firmware_sim.modbus_device import ModbusSimBase, ModbusSimConfig, every, u32

__all__ = ["METAL_DETECTOR", "MetalDetectorSim", "MetalDetectorSimConfig"]

PIECES = ("fe", "non_fe", "stainless")


class MetalDetectorSimPieces(BaseModel):
    """Test pieces the simulated operator uses, mm (reported in registers 9-11)."""

    model_config = ConfigDict(extra="forbid")

    fe_mm: float = Field(default=1.5, gt=0, le=6553, description="Ferrous sphere, mm.")
    non_fe_mm: float = Field(default=2.0, gt=0, le=6553, description="Non-ferrous sphere, mm.")
    stainless_mm: float = Field(default=2.5, gt=0, le=6553, description="Stainless sphere, mm.")


class MetalDetectorSimConfig(ModbusSimConfig):
    """A metal detector with detections, reject confirmation and test-piece verifications."""

    kind: Literal["metal_detector"] = Field(description="Selects the metal detector simulator.")
    products_per_min: float = Field(default=60.0, gt=0, le=6000, description="Packs per minute.")
    detection_every_s: float | None = Field(
        default=13.0, gt=0, description="A contaminated pack this often, seconds; none = never."
    )
    reject_delay_s: float = Field(
        default=0.4, ge=0, le=60, description="From detection to confirmed reject, seconds."
    )
    unconfirmed_every: int | None = Field(
        default=3, ge=1, description="Every n-th detection is never confirmed; none = never."
    )
    verification_every_s: float | None = Field(
        default=20.0, gt=0, description="A test-piece verification this often; none = never."
    )
    failed_verification_every: int | None = Field(
        default=2, ge=1, description="Every n-th verification misses a piece; none = never."
    )
    test_pieces: MetalDetectorSimPieces = Field(
        default_factory=MetalDetectorSimPieces, description="Test-piece sizes used, mm."
    )


class MetalDetectorSim(ModbusSimBase):
    register_count = 12
    kind = "metal_detector"

    def __init__(self, config: MetalDetectorSimConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.products = 0
        self.detections = 0
        self.rejects = 0
        self.verifications = 0
        self.detected = dict.fromkeys(PIECES, True)
        self.unconfirmed: list[int] = []  # detections whose reject never came
        self.missed_pieces: dict[int, str | None] = {}  # verification → piece not found

    def snapshot(self) -> list[int]:
        status = 1 if self.running else 0
        for bit, piece in enumerate(PIECES, start=1):
            status |= (1 << bit) if self.detected[piece] else 0
        sizes = [min(round(getattr(self.cfg.test_pieces, f"{p}_mm") * 10), 0xFFFF) for p in PIECES]
        return [
            *u32(self.products),
            *u32(self.detections),
            *u32(self.rejects),
            *u32(self.verifications),
            status,
            *sizes,
        ]

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        out = [every(60.0 / self.cfg.products_per_min, self._pack)]
        if self.cfg.detection_every_s is not None:
            out.append(every(self.cfg.detection_every_s, self._scheduled_detection))
        if self.cfg.verification_every_s is not None:
            out.append(every(self.cfg.verification_every_s, self._scheduled_verification))
        return out

    # --- what happens ---------------------------------------------------------------------------
    def _pack(self) -> None:
        self.products += 1
        self.publish()

    def _scheduled_detection(self) -> None:
        n = self.cfg.unconfirmed_every
        self.detect(rejected=not (n is not None and (self.detections + 1) % n == 0))

    def detect(self, *, rejected: bool = True) -> int:
        """A contaminated pack now; its reject is confirmed ``reject_delay_s`` later unless
        ``rejected`` is False. Returns the detection's number."""
        self.detections += 1
        number = self.detections
        self.publish()
        if rejected:
            loop = asyncio.get_running_loop()
            loop.call_later(self.cfg.reject_delay_s, self._confirm_reject)
        else:
            self.unconfirmed.append(number)
        return number

    def _confirm_reject(self) -> None:
        self.rejects += 1
        self.publish()

    def _scheduled_verification(self) -> None:
        n = self.cfg.failed_verification_every
        missed = None
        if n is not None and (self.verifications + 1) % n == 0:
            missed = PIECES[((self.verifications + 1) // n - 1) % len(PIECES)]
        self.verify(missed=missed)

    def verify(self, missed: str | None = None) -> int:
        """A completed verification now; ``missed`` ("fe", "non_fe", "stainless") is the piece
        the detector failed to find. Returns the verification's number."""
        if missed is not None and missed not in PIECES:
            raise ValueError(f"unknown test piece {missed!r} (one of {PIECES})")
        self.detected = {p: p != missed for p in PIECES}
        self.verifications += 1
        self.missed_pieces[self.verifications] = missed
        self.publish()
        return self.verifications


METAL_DETECTOR = SimulatorSpec(
    name="metal_detector",
    config_model=MetalDetectorSimConfig,
    create=MetalDetectorSim,
    description="Metal detector on Modbus TCP: product/detection/reject/verification counters, "
    "test-piece results and sizes (holding registers 0-11, ABCD); unconfirmed rejects and "
    "failed verifications on a schedule.",
    extra="modbus",
    requires=("pymodbus",),
)
