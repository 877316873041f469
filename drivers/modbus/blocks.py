"""Plan the read requests of a poll: merge tags that sit close together into one block read.

Per table, tags are sorted by address and merged greedily: a tag joins the current block when
the unused addresses between the block's end and the tag's start are at most ``max_gap`` and
the block, grown to include the tag, stays within the size limit (``max_registers`` for
register tables, ``max_bits`` — 2000, the Modbus limit — for coils and discrete inputs).
Overlapping tags (e.g. a uint32 and a uint16 on its low word) share the block. A tag is never
split across blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from drivers.modbus.config import BIT_TABLES, MAX_READ_BITS, Table, TagConfig, register_count

__all__ = ["Block", "TagSlot", "plan_blocks"]

_TABLE_ORDER: tuple[Table, ...] = ("coil", "discrete_input", "holding_register", "input_register")


@dataclass(frozen=True, slots=True)
class TagSlot:
    """Where one tag's data sits in a block: ``count`` entries from ``offset``."""

    name: str
    offset: int
    count: int


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` entries of ``table`` from ``address``, feeding ``tags``."""

    table: Table
    address: int
    count: int
    tags: tuple[TagSlot, ...]

    @property
    def last(self) -> int:
        """Address of the last entry read."""
        return self.address + self.count - 1


def plan_blocks(
    tags: Mapping[str, TagConfig],
    *,
    max_registers: int,
    max_gap: int,
    max_bits: int = MAX_READ_BITS,
) -> list[Block]:
    """The block reads that fetch every tag, ordered by table then address.

    Raises ``ValueError`` when a single tag is wider than ``max_registers`` (the device config
    rejects that earlier).
    """
    blocks: list[Block] = []
    for table in _TABLE_ORDER:
        limit = max_bits if table in BIT_TABLES else max_registers
        members = sorted(
            (
                (tag.address, register_count(tag), name)
                for name, tag in tags.items()
                if tag.table == table
            ),
        )
        start = end = 0  # current block covers [start, end)
        current: list[tuple[str, int, int]] = []  # (name, address, count)
        for address, count, name in members:
            if count > limit:
                raise ValueError(f"tag {name!r} spans {count} entries, more than {limit}")
            if current and address - end <= max_gap and max(end, address + count) - start <= limit:
                end = max(end, address + count)
            else:
                if current:
                    blocks.append(_block(table, start, end, current))
                start, end, current = address, address + count, []
            current.append((name, address, count))
        if current:
            blocks.append(_block(table, start, end, current))
    return blocks


def _block(table: Table, start: int, end: int, members: list[tuple[str, int, int]]) -> Block:
    slots = tuple(TagSlot(name, address - start, count) for name, address, count in members)
    return Block(table=table, address=start, count=end - start, tags=slots)
