"""QB/T 5279-2018 Annex A (normative), table A.1: the enterprise codes of the designated salt
producers (食盐定点生产企业, code 8xxx) and multi-variety salt producers (多品种盐生产企业, 9xxx).

The table ships as ``annex_a.csv`` next to this module, transcribed row by row from the
standard's text (all 139 rows; the file's header comment names the source). A.1's rule — 8 or 9
followed by the last three digits of the producer's certificate number (SD-nnn → 8nnn,
DZ-nnn → 9nnn) — is checked for every row when the table loads.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

__all__ = ["AnnexEntry", "annex_a", "enterprise_name"]


@dataclass(frozen=True, slots=True)
class AnnexEntry:
    """One row of table A.1."""

    seq: int  # 序号
    province: str  # 省市
    name: str  # 单位名称
    certificate: str  # 原证书编号, e.g. SD-035
    code: str  # 企业代码, e.g. 8035


def _expected_code(certificate: str) -> str:
    """A.1: 8 + last 3 digits for SD- certificates, 9 + last 3 digits for DZ- certificates."""
    prefix = {"SD": "8", "DZ": "9"}[certificate.split("-", 1)[0]]
    return prefix + certificate[-3:]


@cache
def annex_a() -> dict[str, AnnexEntry]:
    """Table A.1 by enterprise code."""
    text = files("gateway.codes").joinpath("annex_a.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    table: dict[str, AnnexEntry] = {}
    for row in rows:
        entry = AnnexEntry(
            seq=int(row["序号"]),
            province=row["省市"],
            name=row["单位名称"],
            certificate=row["原证书编号"],
            code=row["企业代码"],
        )
        if _expected_code(entry.certificate) != entry.code:  # pragma: no cover - data check
            raise ValueError(f"annex_a.csv row {entry.seq}: {entry.code} breaks rule A.1")
        if entry.code in table:  # pragma: no cover - data check
            raise ValueError(f"annex_a.csv row {entry.seq}: enterprise code {entry.code} twice")
        table[entry.code] = entry
    return table


def enterprise_name(code: str) -> str | None:
    """The producer's name in table A.1, or None when the code is not in the table."""
    entry = annex_a().get(code)
    return entry.name if entry else None
