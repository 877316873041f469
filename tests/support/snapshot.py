"""Public snapshots for tests and benchmarks: the tables of gateway/public_snapshot.py written
from dicts, published as the bridge does (written beside the target, then ``os.replace``).

Bulk insertion is one ``executemany`` per table in one transaction, so a benchmark can fill
a million codes (:func:`bulk_codes` yields them lazily)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gateway.public_snapshot import SCHEMA_SQL, SCHEMA_VERSION

__all__ = [
    "BATCH",
    "ENTERPRISE",
    "PRODUCT",
    "bulk_codes",
    "code_row",
    "write_snapshot",
]

ENTERPRISE: dict[str, Any] = {
    "enterprise": "8035",
    "name": "某某盐业有限公司",
    "address": "某省某市某路1号",
    "phone": "0571-12345678",
    "website": "http://www.example.cn",
    "licence_no": "SD-035",
    "licence_valid": "自2024年1月1日至2028年12月31日",
    "credit_rating": "AAA",
}
PRODUCT: dict[str, Any] = {
    "product": "jingzhiyan-400",
    "name": "精制盐",
    "net_content": "400g",
    "standard": "GB/T 5461",
    "category": "加碘食盐",
    "process": "真空蒸发制盐工艺",
    "origin": "某省某市",
    "raw_salt_source": "某某盐业有限公司，某省某市",
    "usage": "依据个人口味于烹饪时加入",
    "tips": "本品偶有结块时可放心食用",
    "ingredients": "精制盐，碘酸钾",
    "storage": "密封、避光、防潮",
    "nutrition": "钠 39000mg/100g",
    "special_groups": "甲状腺疾病患者请遵医嘱",
}
BATCH: dict[str, Any] = {
    "batch": "20240501-L1-01",
    "enterprise": "8035",
    "product": "jingzhiyan-400",
    "production_date": "2024-05-01",
    "shelf_life": "1095 天",
    "inspection": "合格，一级",
}

_COLUMNS = {
    "enterprises": (
        "enterprise",
        "name",
        "address",
        "phone",
        "website",
        "licence_no",
        "licence_valid",
        "credit_rating",
    ),
    "products": (
        "product",
        "name",
        "net_content",
        "standard",
        "category",
        "process",
        "origin",
        "raw_salt_source",
        "usage",
        "tips",
        "ingredients",
        "storage",
        "nutrition",
        "special_groups",
    ),
    "batches": ("batch", "enterprise", "product", "production_date", "shelf_life", "inspection"),
    "codes": (
        "code",
        "batch",
        "produced",
        "state",
        "state_date",
        "producer_sales",
        "wholesale_sales",
    ),
}


def code_row(
    code: str,
    state: str = "shipped",
    batch: str = BATCH["batch"],
    produced: str = "2024-05-01",
    state_date: str = "2024-05-02",
    producer_sales: list[dict[str, Any]] | None = None,
    wholesale_sales: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One ``codes`` row; sales lists are stored as JSON (SALES_KEYS)."""
    return {
        "code": code,
        "batch": batch,
        "produced": produced,
        "state": state,
        "state_date": state_date,
        "producer_sales": json.dumps(producer_sales, ensure_ascii=False)
        if producer_sales is not None
        else None,
        "wholesale_sales": json.dumps(wholesale_sales, ensure_ascii=False)
        if wholesale_sales is not None
        else None,
    }


def bulk_codes(
    n: int, prefix: str = "8035", batch: str = BATCH["batch"]
) -> Iterator[tuple[Any, ...]]:
    """``n`` shipped codes ``{prefix}B000000001`` … as row tuples (for :func:`write_snapshot`)."""
    for i in range(1, n + 1):
        yield (f"{prefix}B{i:09d}", batch, "2024-05-01", "shipped", "2024-05-02", None, None)


def _rows(
    table: str, rows: Iterable[Mapping[str, Any] | tuple[Any, ...]]
) -> Iterator[tuple[Any, ...]]:
    cols = _COLUMNS[table]
    for row in rows:
        yield row if isinstance(row, tuple) else tuple(row.get(c) for c in cols)


def write_snapshot(
    path: Path,
    *,
    enterprises: Iterable[Mapping[str, Any]] = (ENTERPRISE,),
    products: Iterable[Mapping[str, Any]] = (PRODUCT,),
    batches: Iterable[Mapping[str, Any]] = (BATCH,),
    codes: Iterable[Mapping[str, Any] | tuple[Any, ...]] = (),
    built_at: str = "2024-05-03T08:00:00+08:00",
    source: str = "tests",
    schema_version: int = SCHEMA_VERSION,
) -> Path:
    """Write a snapshot beside ``path`` and publish it there atomically; returns ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.executescript(SCHEMA_SQL)
        with db:
            for table, rows in (
                ("enterprises", enterprises),
                ("products", products),
                ("batches", batches),
                ("codes", codes),
            ):
                marks = ",".join("?" * len(_COLUMNS[table]))
                db.executemany(
                    f"INSERT INTO {table} ({','.join(_COLUMNS[table])}) VALUES ({marks})",
                    _rows(table, rows),
                )
            n = db.execute("SELECT COUNT(*) FROM codes").fetchone()[0]
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(schema_version)),
                    ("built_at", built_at),
                    ("source", source),
                    ("codes", str(n)),
                ],
            )
    finally:
        db.close()
    os.replace(tmp, path)
    return path
