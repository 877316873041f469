"""What a non-editable install ships: every package of the source tree is listed in
pyproject.toml (a missing one installs fine and fails at the first import, as the first-hour
check found for gateway.records)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_every_package_is_in_pyproject() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("gateway", "drivers")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert sorted(found - listed) == []
    assert {"firmware_sim", "mappings"} <= listed
