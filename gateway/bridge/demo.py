"""The bridge of ``saltgw demo``: platform XML written into an outbox directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.bridge.config import (
    BridgeSection,
    DirectoryUploadSection,
    EnterpriseInfoSection,
    ProductInfoSection,
    PublicSnapshotSection,
)
from gateway.config.models import ConfigBase

__all__ = ["DEFAULT_OUTBOX", "DEMO_PUBLIC", "bridge_summary", "with_demo_bridge"]

DEFAULT_OUTBOX = Path("var/demo-outbox")
DEMO_PUBLIC = Path("var/demo-public.db")  # the public snapshot the demo's resolver reads

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
    raw_salt_source="山东岱岳制盐有限公司，山东省泰安市",
    usage="依据个人口味于烹饪时加入",
    tips="本品偶有结块时可放心食用",
    ingredients="精制盐、碘酸钾、亚铁氰化钾；氯化钠 ≥ 98.5 g/100g；碘含量（以I计）18~33 mg/kg",
    storage="密封、避光、防潮",
    nutrition="每100克：能量 0 kJ，蛋白质 0 g，脂肪 0 g，碳水化合物 0 g，钠 39000 mg",
    special_groups="甲状腺疾病等特殊人群遵医嘱选用",
)
DEMO_ENTERPRISE = EnterpriseInfoSection(
    name="山东岱岳制盐有限公司",
    address="山东省泰安市岱岳区（演示数据）",
    phone="0538-0000000",
    website="http://www.example.cn",
    licence_no="SD-035",
    licence_valid="演示数据",
    credit_rating="AAA",
)


def with_demo_bridge(cfg: ConfigBase, outbox: Path | None, *, epcis: bool = False) -> ConfigBase:
    """Give the demo config a bridge (platform profile, or EPCIS 2.0 with ``epcis``; outbox
    directory, acknowledged on write) unless it has one; ``outbox`` replaces its upload target
    either way."""
    if cfg.bridge is None:
        cfg.bridge = BridgeSection(
            store=Path("var/demo-bridge.db"),
            profile="epcis" if epcis else "platform",
            codes_per_document=200,
            max_delay_secs=5.0,
            products=[DEMO_PRODUCT],
            enterprise_info=DEMO_ENTERPRISE,
            public=PublicSnapshotSection(path=DEMO_PUBLIC, interval_secs=2.0),
        )
    elif outbox is None and not epcis:
        return cfg
    elif epcis:
        cfg.bridge = cfg.bridge.model_copy(update={"profile": "epcis"})
    cfg.bridge.upload = DirectoryUploadSection(
        type="directory", path=outbox or DEFAULT_OUTBOX, ack="on_write"
    )
    return cfg


def bridge_summary(bridge: Any) -> dict[str, Any]:
    """The bridge's counters and where its documents went, for the demo's summary line."""
    upload = bridge.bcfg.upload
    where = getattr(upload, "path", None) or getattr(upload, "url", None)
    return {**bridge.status(), "upload_to": str(where) if where else None}
