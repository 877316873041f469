"""The public snapshot: what the resolver may know, and nothing more (QB/T 5279-2018 9, 11.4).

The bridge writes it (:mod:`gateway.bridge.public`) from the trace store; the resolver
(:mod:`gateway.resolver`) only reads it. It is one SQLite file, replaced atomically
(written beside the target, then ``os.replace``) so a reader never sees half a snapshot and can
run on another host from a copy (``rsync`` keeps the rename atomic). This module is the one
definition both sides share: the tables, the code states and the table 6 fields.

What is in it (table 6 公开信息, and the code's state for the legality verdict of 9.1):

- ``meta``: ``schema_version``, ``built_at`` (RFC 3339), ``source`` (the bridge that built it),
  ``codes`` (how many).
- ``enterprises``: the producer's category fields #8-11, 14, 15, 27 by 4-digit enterprise code.
- ``products``: a product's category fields #1-5, 12, 13, 18-22, 24 by product id.
- ``batches``: #16 batch, its enterprise and product, #6 production date, #7 shelf life and
  #23 inspection result and grade (only once the batch is released; NULL otherwise).
- ``codes``: #17 the code, its batch, its own production date (#6, per bag), its ``state``
  (:data:`CODE_STATES`) and when it took it, and #25/#26 sales information as far as it is
  public (JSON lists, see :data:`SALES_KEYS`).

What is never in it: customers beyond what #25/#26 make public, CCP records, device, line and
gateway ids, event ids, document numbers, query records.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "CODE_STATES",
    "SALES_KEYS",
    "SCHEMA_SQL",
    "SCHEMA_VERSION",
    "TABLE6",
    "CodeState",
    "SnapshotError",
    "Table6Field",
    "open_snapshot",
]

SCHEMA_VERSION = 1

CodeState = Literal["commissioned", "shipped", "withdrawn", "recalled"]
CODE_STATES: tuple[CodeState, ...] = ("commissioned", "shipped", "withdrawn", "recalled")
"""A code's state, latest wins except that ``withdrawn`` and ``recalled`` are never undone by a
later shipment: ``commissioned`` (bound to its batch on the line), ``shipped`` (left the producer
in an outbound record, itself or in its case or pallet), ``withdrawn`` (rejected off the line or
destroyed: the code was decommissioned), ``recalled`` (scanned in a recall, 10.6, itself or in
its case or pallet)."""

SALES_KEYS = ("date", "party_type", "party")
"""Keys of one entry of ``codes.producer_sales`` (#25) and ``codes.wholesale_sales`` (#26):
``date`` (YYYY-MM-DD of the outbound record), ``party_type`` (单位类型 of table 4:
``生产企业``/``批发企业``/``终端客户`` or the record's own wording) and ``party`` (单位名称,
published only for a 批发企业; NULL for other customers)."""

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS enterprises (
    enterprise    TEXT PRIMARY KEY,  -- 4-digit enterprise code (Annex A)
    name          TEXT,              -- #8 生产企业
    address       TEXT,              -- #9 生产企业地址
    phone         TEXT,              -- #10 电话
    website       TEXT,              -- #11 企业网址
    licence_no    TEXT,              -- #14 定点生产企业许可证编号
    licence_valid TEXT,              -- #15 定点生产企业许可证有效期
    credit_rating TEXT               -- #27 企业信用等级
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS products (
    product         TEXT PRIMARY KEY,  -- the id batch.start events name
    name            TEXT,              -- #1 产品名称
    net_content     TEXT,              -- #2 净含量
    standard        TEXT,              -- #3 产品标准编号
    category        TEXT,              -- #4 产品的类别
    process         TEXT,              -- #5 生产工艺
    origin          TEXT,              -- #12 产地
    raw_salt_source TEXT,              -- #13 原料盐生产商及产地
    usage           TEXT,              -- #18 食用方法
    tips            TEXT,              -- #19 温馨提示
    ingredients     TEXT,              -- #20 配料表及其含量
    storage         TEXT,              -- #21 贮存条件
    nutrition       TEXT,              -- #22 营养成分表
    special_groups  TEXT               -- #24 特殊人群适应性
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS batches (
    batch           TEXT PRIMARY KEY,  -- #16 产品批次
    enterprise      TEXT NOT NULL,
    product         TEXT,
    production_date TEXT,              -- #6 (YYYY-MM-DD) when the batch names one
    shelf_life      TEXT,              -- #7 保质期, e.g. "1095 天"
    inspection      TEXT               -- #23 产品检验结果及产品等级, NULL until released
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS codes (
    code            TEXT PRIMARY KEY,  -- #17 产品的追溯编码
    batch           TEXT,
    produced        TEXT NOT NULL,     -- #6 for this bag (YYYY-MM-DD, the line's local date)
    state           TEXT NOT NULL,     -- one of CODE_STATES
    state_date      TEXT NOT NULL,     -- YYYY-MM-DD the code took its state
    producer_sales  TEXT,              -- #25 JSON list of {date, party_type, party}
    wholesale_sales TEXT               -- #26 JSON list of {date, party_type, party}
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Table6Field:
    """One row of table 6: its number, name (信息项名称), attribute (品类 category / 单品 item),
    and where the snapshot holds it (``table.column``)."""

    no: int
    name: str
    attribute: Literal["品类", "单品"]
    column: str


TABLE6: tuple[Table6Field, ...] = (
    Table6Field(1, "产品名称", "品类", "products.name"),
    Table6Field(2, "净含量", "品类", "products.net_content"),
    Table6Field(3, "产品标准编号", "品类", "products.standard"),
    Table6Field(4, "产品的类别", "品类", "products.category"),
    Table6Field(5, "生产工艺", "品类", "products.process"),
    Table6Field(6, "生产日期", "单品", "codes.produced"),
    Table6Field(7, "保质期", "单品", "batches.shelf_life"),
    Table6Field(8, "生产企业", "品类", "enterprises.name"),
    Table6Field(9, "生产企业地址", "品类", "enterprises.address"),
    Table6Field(10, "电话", "品类", "enterprises.phone"),
    Table6Field(11, "企业网址", "品类", "enterprises.website"),
    Table6Field(12, "产地", "品类", "products.origin"),
    Table6Field(13, "原料盐生产商及产地", "品类", "products.raw_salt_source"),
    Table6Field(14, "定点生产企业许可证编号", "品类", "enterprises.licence_no"),
    Table6Field(15, "定点生产企业许可证有效期", "品类", "enterprises.licence_valid"),
    Table6Field(16, "产品批次", "单品", "codes.batch"),
    Table6Field(17, "产品的追溯编码", "单品", "codes.code"),
    Table6Field(18, "食用方法", "品类", "products.usage"),
    Table6Field(19, "温馨提示", "品类", "products.tips"),
    Table6Field(20, "配料表及其含量", "品类", "products.ingredients"),
    Table6Field(21, "贮存条件", "品类", "products.storage"),
    Table6Field(22, "营养成分表", "品类", "products.nutrition"),
    Table6Field(23, "产品检验结果及产品等级", "单品", "batches.inspection"),
    Table6Field(24, "特殊人群适应性", "品类", "products.special_groups"),
    Table6Field(25, "生产企业销售信息", "单品", "codes.producer_sales"),
    Table6Field(26, "批发企业销售信息", "单品", "codes.wholesale_sales"),
    Table6Field(27, "企业信用等级", "品类", "enterprises.credit_rating"),
)


class SnapshotError(Exception):
    """The snapshot is missing, unreadable or of another schema version."""


def open_snapshot(path: Path | str) -> sqlite3.Connection:
    """A read-only connection to a published snapshot (``immutable``: a published file is
    never written again, it is replaced). Raises :class:`SnapshotError` with the reason."""
    p = Path(path)
    if not p.is_file():
        raise SnapshotError(f"{p}: no public snapshot (has the bridge published one yet?)")
    try:
        db = sqlite3.connect(
            f"{p.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise SnapshotError(f"{p}: not a public snapshot: {exc}") from None
    if row is None or row[0] != str(SCHEMA_VERSION):
        db.close()
        found = "none" if row is None else row[0]
        raise SnapshotError(
            f"{p}: public snapshot schema version {found}; this saltgw reads {SCHEMA_VERSION}"
        )
    return db
