"""Golden cases for the scanner framer (scanner_cases/framing.yaml) and code splitting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.scanner import Framer, split_codes

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "scanner_cases" / "framing.yaml").read_text(encoding="utf-8")
)


def _bytes(chunk: str) -> bytes:
    return chunk.encode("latin-1")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_framing(case: dict[str, Any]) -> None:
    framer = Framer(
        case["framing"],
        max_bytes=case.get("max_bytes", 512),
        encoding="utf-8",
        length=case.get("length"),
    )
    frames = []
    for chunk in case["chunks"]:
        frames.extend(framer.feed(_bytes(chunk)))
    if case.get("expire"):
        assert framer.pending
        frames.extend(framer.expire())
    got = [f.text if f.text is not None else f"!{f.error}" for f in frames]
    want = case["frames"]
    assert len(got) == len(want), got
    for g, w in zip(got, want, strict=True):
        if w.startswith("!"):
            assert g.startswith("!") and w[1:] in g, (g, w)
        else:
            assert g == w


def test_split_codes() -> None:
    assert split_codes("8035A;8035B; ;8035C ", ";") == ["8035A", "8035B", "8035C"]
    assert split_codes("8035A;8035B", None) == ["8035A;8035B"]
