"""The hashed lock files (requirements/*.lock, scripts/lock.sh) hold every dependency that
pyproject.toml asks for, at a version it allows: a dependency changed without running
scripts/lock.sh fails here, not on a user's machine or in the Docker build."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", re.M)


def wanted(extra: str) -> list[Requirement]:
    """The requirements of saltgw[extra], the self-references (saltgw[demo]) expanded."""
    out = [Requirement(r) for r in PROJECT["dependencies"]]
    todo, seen = [extra], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in PROJECT["optional-dependencies"][name]:
            req = Requirement(text)
            if canonicalize_name(req.name) == "saltgw":
                todo += sorted(req.extras)
            else:
                out.append(req)
    return [r for r in out if r.marker is None or r.marker.evaluate()]


def pins(lock: Path) -> dict[str, str]:
    return {canonicalize_name(n): v for n, v in PIN.findall(lock.read_text())}


@pytest.mark.parametrize("extra", ["all", "dev"])
def test_the_lock_holds_every_requirement_at_an_allowed_version(extra: str) -> None:
    lock = ROOT / "requirements" / f"{extra}.lock"
    pinned = pins(lock)
    stale = [
        f"{req} (locked: {pinned.get(canonicalize_name(req.name), 'missing')})"
        for req in wanted(extra)
        if pinned.get(canonicalize_name(req.name)) is None
        or not req.specifier.contains(pinned[canonicalize_name(req.name)], prereleases=True)
    ]
    assert not stale, f"{lock.name} is stale, run scripts/lock.sh: {', '.join(stale)}"


@pytest.mark.parametrize("lock", sorted((ROOT / "requirements").glob("*.lock")), ids=str)
def test_every_pin_carries_a_hash(lock: Path) -> None:
    text = lock.read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", text)
    for block in blocks:
        m = PIN.match(block)
        if m:
            assert "--hash=sha256:" in block, f"{lock.name}: {m.group(1)} has no hash"
    assert "file://" not in text, f"{lock.name} names a local path"
