"""The trace store on both engines: ``store_at`` is parametrised ``sqlite`` / ``postgresql``
(a fresh migrated database from tests/support/postgres.py), so one test runs against each.

``store_at()`` opens a :class:`TraceStore`; ``store_at.location`` is what ``--store`` takes (the
file, or the URL), ``store_at.key`` the chain key every opening shares (a PostgreSQL store has
no key file beside it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.bridge.store import TraceStore

__all__ = ["ENGINES", "KEY", "KEY_TEXT", "StoreAt", "store_at"]

ENGINES = ("sqlite", "postgresql")
KEY_TEXT = "5a1t" * 16  # as a key file or $SALTGW_STORE_CHAIN_KEY holds it
KEY = KEY_TEXT.encode()


class StoreAt:
    def __init__(self, engine: str, location: Path | str, key_file: Path) -> None:
        self.engine = engine
        self.location = location
        self.key = KEY
        self.key_file = key_file  # the key for --store-key-file, bridge.chain_key_file
        key_file.write_text(KEY_TEXT)
        key_file.chmod(0o600)

    @property
    def pg(self) -> bool:
        return self.engine == "postgresql"

    def __call__(self, **kw: Any) -> TraceStore:
        return TraceStore(self.location, chain_key=self.key, **kw)


@pytest.fixture(params=ENGINES)
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> StoreAt:
    if request.param == "postgresql":
        location: Path | str = request.getfixturevalue("pg_store")
    else:
        location = tmp_path / "t.db"
    return StoreAt(request.param, location, tmp_path / "store.chain-key")
