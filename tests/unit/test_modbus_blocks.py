"""drivers.modbus.blocks: which tags are fetched by which read request."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.modbus.blocks import Block, TagSlot, plan_blocks
from drivers.modbus.config import TagConfig


def tags(**specs: dict[str, Any]) -> dict[str, TagConfig]:
    return {name: TagConfig.model_validate(spec) for name, spec in specs.items()}


def hr(address: int, type_: str = "uint16", **extra: Any) -> dict[str, Any]:
    return {"table": "holding_register", "address": address, "type": type_, **extra}


def plan(t: dict[str, TagConfig], max_registers: int = 100, max_gap: int = 10) -> list[Block]:
    return plan_blocks(t, max_registers=max_registers, max_gap=max_gap)


def test_adjacent_tags_merge_with_offsets() -> None:
    blocks = plan(tags(count=hr(0, "uint32"), weight=hr(2, "float32"), status=hr(4)))
    assert blocks == [
        Block(
            "holding_register",
            0,
            5,
            (TagSlot("count", 0, 2), TagSlot("weight", 2, 2), TagSlot("status", 4, 1)),
        )
    ]
    assert blocks[0].last == 4


def test_gap_up_to_max_gap_merges_beyond_splits() -> None:
    merged = plan(tags(a=hr(0), b=hr(11)), max_gap=10)  # 10 unused registers: 1..10
    assert [(b.address, b.count) for b in merged] == [(0, 12)]
    split = plan(tags(a=hr(0), b=hr(12)), max_gap=10)  # 11 unused registers
    assert [(b.address, b.count) for b in split] == [(0, 1), (12, 1)]


def test_zero_gap_merges_only_contiguous() -> None:
    blocks = plan(tags(a=hr(0), b=hr(1), c=hr(3)), max_gap=0)
    assert [(b.address, b.count) for b in blocks] == [(0, 2), (3, 1)]


def test_size_limit_splits() -> None:
    blocks = plan(tags(a=hr(0, "float64"), b=hr(4, "float64"), c=hr(8, "float64")), 8)
    assert [(b.address, b.count, [s.name for s in b.tags]) for b in blocks] == [
        (0, 8, ["a", "b"]),
        (8, 4, ["c"]),
    ]


def test_a_tag_is_never_split_across_blocks() -> None:
    blocks = plan(tags(a=hr(0), s=hr(1, "string", length=5)), max_registers=5)
    assert [(b.address, b.count) for b in blocks] == [(0, 1), (1, 5)]
    assert blocks[1].tags == (TagSlot("s", 0, 5),)


def test_tag_wider_than_limit_is_rejected() -> None:
    with pytest.raises(ValueError, match="spans 5"):
        plan(tags(s=hr(0, "string", length=5)), max_registers=4)


def test_overlapping_tags_share_a_block() -> None:
    blocks = plan(tags(whole=hr(10, "uint32"), low=hr(11), high=hr(10)))
    assert len(blocks) == 1
    assert (blocks[0].address, blocks[0].count) == (10, 2)
    slots = {s.name: (s.offset, s.count) for s in blocks[0].tags}
    assert slots == {"whole": (0, 2), "low": (1, 1), "high": (0, 1)}


def test_unsorted_input_is_sorted_by_address() -> None:
    blocks = plan(tags(z=hr(5), a=hr(3), m=hr(4)))
    assert [s.name for s in blocks[0].tags] == ["a", "m", "z"]


def test_tables_are_never_mixed() -> None:
    t = tags(
        h=hr(0),
        i={"table": "input_register", "address": 1, "type": "int16"},
        c={"table": "coil", "address": 0, "type": "bool"},
        d={"table": "discrete_input", "address": 2, "type": "bool"},
        c2={"table": "coil", "address": 5, "type": "bool"},
    )
    blocks = plan(t)
    assert [(b.table, b.address, b.count) for b in blocks] == [
        ("coil", 0, 6),
        ("discrete_input", 2, 1),
        ("holding_register", 0, 1),
        ("input_register", 1, 1),
    ]
    assert [s.name for s in blocks[0].tags] == ["c", "c2"]


def test_bits_use_the_2000_bit_limit_not_the_register_limit() -> None:
    t = tags(
        a={"table": "coil", "address": 0, "type": "bool"},
        b={"table": "coil", "address": 8, "type": "bool"},
        c={"table": "coil", "address": 1999, "type": "bool"},
        d={"table": "coil", "address": 2000, "type": "bool"},
    )
    blocks = plan_blocks(t, max_registers=4, max_gap=5000)
    assert [(b.address, b.count) for b in blocks] == [(0, 2000), (2000, 1)]


def test_empty() -> None:
    assert plan({}) == []
