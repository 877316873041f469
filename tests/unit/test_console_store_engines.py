"""The web console on an enterprise trace store (issue 20, docs/scaling.md): ``console.store``
(or the gateway's ``bridge.store``) may be a ``postgresql://`` URL. Filled with the same events,
a SQLite store and a PostgreSQL store give the console the same answers (trace, recall, the
recall CSV, CCP charts, completeness, documents), take its access-log rows and resend requests,
and a PostgreSQL store that cannot be reached is a 503 reason, not a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.console.config import ConsoleSection
from gateway.console.records import ConsoleStore, NoStore
from tests.support.console import fill_store
from tests.support.net import free_port
from tests.support.stores import KEY

BATCH = "20261122-L1-01"


def _console(store: Path | str, key_file: Path) -> ConsoleStore:
    cfg = ConsoleSection(enterprise="8035", site="daiyue", line="L1", users=key_file.parent /
                         "users.json", store=store, chain_key_env=None,
                         chain_key_file=key_file)  # fmt: skip
    return ConsoleStore(cfg)


WALL_CLOCK = {"last_activity"}  # when the bridge stored the batch: each fill's own time


def _plain(v: Any) -> Any:
    """``v`` without the keys that hold each fill's own wall clock."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if k not in WALL_CLOCK}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def _answers(cs: ConsoleStore, code: str) -> dict[str, Any]:
    found = cs.batch(BATCH)
    assert found is not None
    return {
        "code": cs.code(code),
        "batch": found,
        "customers": cs.customers(found[1]),
        "csv": cs.recall_csv(BATCH),
        "ccp_all": cs.ccp_summary(None),
        "ccp_batch": cs.ccp_summary(BATCH),
        "series": cs.ccp_series("net_content", BATCH, 30),
        "batches": cs.ccp_batches(),
        "completeness": cs.completeness(),
        "documents": cs.documents(),
        "quarantined": cs.documents("quarantined"),
    }


def test_the_console_answers_the_same_from_sqlite_and_postgresql(
    tmp_path: Path, pg_store: str
) -> None:
    key_file = tmp_path / "store.chain-key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    lite = fill_store(tmp_path / "bridge.db", key=KEY)
    pg = fill_store(pg_store, key=KEY, plans=lite.plans)  # the same events
    code = lite.plans[0].bags[3]
    got = {}
    for name, data in (("sqlite", lite), ("postgresql", pg)):
        cs = _console(data.store, key_file)
        try:
            got[name] = _answers(cs, code)
            # what the console writes: an access-log row, a resend of the rejected document
            cs.audit("trace", code, "ok", "quality", "127.0.0.1")
            rows = cs.access_rows(10)
            assert rows and rows[0].subject == code and rows[0].user == "quality", rows
            cs.resend(data.quarantined, "admin")
            states = {d["number"]: d["state"] for d in cs.documents()}
            assert states[data.quarantined] != "quarantined", states
        finally:
            cs.close()
    lite_answers, pg_answers = got["sqlite"], got["postgresql"]
    assert lite_answers["code"] is not None and lite_answers["series"]
    assert lite_answers["quarantined"] and lite_answers["ccp_batch"]["net_content"]["fail"] > 0
    for what in lite_answers:
        assert _plain(pg_answers[what]) == _plain(lite_answers[what]), what


def test_an_unreachable_postgresql_store_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    key_file = tmp_path / "store.chain-key"
    key_file.write_bytes(KEY)
    cs = _console(f"postgresql://saltgw@127.0.0.1:{free_port()}/trace", key_file)
    try:
        with pytest.raises(NoStore, match=r"trace store .*127\.0\.0\.1"):
            cs.code("8035ABC")
    finally:
        cs.close()
