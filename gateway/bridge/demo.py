"""The bridge of ``saltgw demo``: platform XML written into an outbox directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.bridge.config import (
    BridgeSection,
    DirectoryUploadSection,
    EnterpriseInfoSection,
    ProductInfoSection,
)
from gateway.config.models import ConfigBase

__all__ = ["DEFAULT_OUTBOX", "bridge_summary", "with_demo_bridge"]

DEFAULT_OUTBOX = Path("var/demo-outbox")

# what the demo line packs (firmware-sim/line_model.py) and who packs it (Annex A: 8035)
DEMO_PRODUCT = ProductInfoSection(
    id="加碘精制盐 400g",
    name="加碘精制盐",
    net_content="400g",
    spec="400g×40",
    standard="GB/T 5461",
    category="加碘食盐",
    process="真空蒸发制盐工艺",
    shelf_life_days=1095,
    origin="山东省泰安市",
    storage="密封、避光、防潮",
)
DEMO_ENTERPRISE = EnterpriseInfoSection(name="山东岱岳制盐有限公司", licence_no="SD-035")


def with_demo_bridge(cfg: ConfigBase, outbox: Path | None) -> ConfigBase:
    """Give the demo config a bridge (platform profile, outbox directory, acknowledged on
    write) unless it has one; ``outbox`` replaces its upload target either way."""
    if cfg.bridge is None:
        cfg.bridge = BridgeSection(
            store=Path("var/demo-bridge.db"),
            profile="platform",
            codes_per_document=200,
            max_delay_secs=5.0,
            products=[DEMO_PRODUCT],
            enterprise_info=DEMO_ENTERPRISE,
        )
    elif outbox is None:
        return cfg
    cfg.bridge.upload = DirectoryUploadSection(
        type="directory", path=outbox or DEFAULT_OUTBOX, ack="on_write"
    )
    return cfg


def bridge_summary(bridge: Any) -> dict[str, Any]:
    """The bridge's counters and where its documents went, for the demo's summary line."""
    upload = bridge.bcfg.upload
    where = getattr(upload, "path", None) or getattr(upload, "url", None)
    return {**bridge.status(), "upload_to": str(where) if where else None}
