"""Configuration of the simulated line PLC (``line_plc.py``), apart from the simulator so that
validating a config does not import asyncua (~23 MB) unless a line PLC is actually started."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from firmware_sim.base import SimulatorConfigBase, SimulatorSpec
from firmware_sim.line_model import LineSettings

if TYPE_CHECKING:
    from firmware_sim.line_plc import LinePlcSim

__all__ = ["LINE_PLC", "LinePlcConfig", "Policy"]

Policy = Literal[
    "None",
    "Basic256Sha256_Sign",
    "Basic256Sha256_SignAndEncrypt",
    "Aes128_Sha256_RsaOaep_Sign",
    "Aes128_Sha256_RsaOaep_SignAndEncrypt",
]


class LinePlcConfig(SimulatorConfigBase):
    """A salt packing line's PLC, speaking OPC UA."""

    kind: Literal["line_plc"] = Field(description="Selects the packing-line PLC simulator.")
    namespace_uri: str = Field(
        default="urn:saltgw:sim:line-plc", description="Namespace URI of the line's nodes."
    )
    line_name: str = Field(
        default="Line1",
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        description="Name of the line object (Objects/{line_name}) and NodeId prefix.",
    )
    line_id: str = Field(default="L1", description="Line id in automatic batch numbers.")
    speed_min_bags_per_min: float = Field(
        default=120, gt=0, le=600, description="Lowest speed while executing, bags/min."
    )
    speed_max_bags_per_min: float = Field(
        default=200, gt=0, le=600, description="Highest speed while executing, bags/min."
    )
    bags_per_case: int = Field(default=20, ge=1, le=1000, description="Bags packed per case.")
    nominal_g: float = Field(default=400, gt=0, description="Nominal net content of a bag, g.")
    product: str = Field(default="加碘精制盐 400g", description="Product of automatic batches.")
    shift: str | None = Field(
        default=None, description="Shift of every batch; none = by the clock (A 06–14, B, C)."
    )
    auto_batches: bool = Field(
        default=True,
        description="Start and end batches on a schedule until the first command arrives.",
    )
    batch_secs: float = Field(
        default=25, gt=0, description="How long an automatic batch executes, seconds."
    )
    idle_secs: float = Field(default=5, ge=0, description="Idle time between automatic batches.")
    first_batch_after_secs: float = Field(
        default=2, ge=0, description="When the first automatic batch starts after power-on."
    )
    transition_secs: float = Field(
        default=1, ge=0, description="Duration of the acting states (Starting, Completing, …)."
    )
    hold_every_s: float | None = Field(
        default=None, gt=0, description="Hold the line (e.g. a film splice) this often; none."
    )
    hold_for_s: float = Field(default=3, gt=0, description="How long each hold lasts, seconds.")
    iodine_mg_kg: float = Field(
        default=25, ge=0, description="Mean iodine content the analyser reports, mg/kg."
    )
    feed_every_s: float | None = Field(
        default=15, gt=0, description="A material feeding (投料) this often while producing; none."
    )
    security_policies: list[Policy] = Field(
        default_factory=lambda: list[Policy](["None"]),
        min_length=1,
        description="Endpoints offered: None and/or Basic256Sha256 / Aes128_Sha256_RsaOaep with "
        "_Sign or _SignAndEncrypt.",
    )
    certificate: Path | None = Field(
        default=None,
        description="Server certificate (DER or PEM); none = a self-signed one made at start.",
    )
    private_key: Path | None = Field(
        default=None, description="Private key of `certificate` (PEM or DER)."
    )
    export_certificate: Path | None = Field(
        default=None,
        description="Write the server certificate (DER) here at start, for a gateway's trust_dir.",
    )
    trusted_client_certificates: list[Path] | None = Field(
        default=None,
        description="Client certificates accepted on secure channels; none = any certificate.",
    )
    username: str | None = Field(
        default=None, description="Require this user name (and password); none = anonymous."
    )
    password: str | None = Field(
        default=None, description="Password of `username` (a simulator: tests set it here)."
    )

    @model_validator(mode="after")
    def _check(self) -> LinePlcConfig:
        if self.speed_min_bags_per_min > self.speed_max_bags_per_min:
            raise ValueError("speed_min_bags_per_min is above speed_max_bags_per_min")
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("certificate and private_key go together")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    def settings(self) -> LineSettings:
        return LineSettings(
            line_id=self.line_id,
            speed_min=self.speed_min_bags_per_min,
            speed_max=self.speed_max_bags_per_min,
            bags_per_case=self.bags_per_case,
            nominal_g=self.nominal_g,
            product=self.product,
            shift=self.shift,
            auto_batches=self.auto_batches,
            batch_secs=self.batch_secs,
            idle_secs=self.idle_secs,
            first_batch_after_secs=self.first_batch_after_secs,
            transition_secs=self.transition_secs,
            hold_every_s=self.hold_every_s,
            hold_for_s=self.hold_for_s,
            iodine_mg_kg=self.iodine_mg_kg,
            feed_every_s=self.feed_every_s,
        )


def _create(config: LinePlcConfig) -> LinePlcSim:
    from firmware_sim.line_plc import LinePlcSim

    return LinePlcSim(config)


LINE_PLC = SimulatorSpec(
    name="line_plc",
    config_model=LinePlcConfig,
    create=_create,
    description="Packing-line PLC on OPC UA: PackML state and mode, speed, bag and case counters, "
    "batch, product, shift, fill weight, iodine; command tags for batches; security None or "
    "Basic256Sha256/Aes128_Sha256_RsaOaep; fault knobs restart, namespace change, stall.",
    extra="opcua",
    requires=("asyncua",),
)
