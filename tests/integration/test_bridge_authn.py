"""Issue 15, "the bridge accepts events from anyone who can publish on the event topics": through
a real mosquitto, a forged ``pack.bag`` from gateway ``not-our-gateway`` (signed with a key of
its own, as an attacker would), an event of a known gateway altered after signing, and one
without a signature are quarantined with a reason naming the gateway and why, acknowledged,
never stored or chained, and the ingest thread goes on; correctly signed events are stored —
from a listed gateway (bridge.gateways) and from the bridge's own gateway, whose journal and
forwarder sign with the key generated beside the journal (no configuration), seq marks
included. On main before this change the forged event was stored and verified intact."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.bridge.service import Bridge
from gateway.config.models import MqttSection
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.mqtt import Forwarder, MqttLink
from gateway.signing import EnvelopeSigner, event_key
from gateway.topics import Topics
from gateway.verify import verify_store
from tests.support.bridge_env import Publisher, bridge_config, q, wait
from tests.support.broker import Mosquitto
from tests.support.trace_events import LineEvents, _complete, payload

pytestmark = pytest.mark.integration

ATTACKER_KEY = b"the-attackers-own-key-0123456789"


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    p = Publisher(mosquitto.port)
    yield p
    p.close()


def test_only_events_signed_by_known_gateways_are_stored(
    tmp_path: Path, mosquitto: Mosquitto, publisher: Publisher
) -> None:
    cfg = bridge_config(tmp_path, mosquitto.port, "authn")  # knows gw-authn and gw-test-1
    store = cfg.bridge.store if cfg.bridge else Path()
    bridge = Bridge(cfg, host="127.0.0.1", port=mosquitto.port).start()
    # the bridge's own gateway: journal + forwarder, signing with event_key(cfg) as
    # gateway/runtime.py does (the key file beside the journal, generated at first use)
    g = cfg.gateway
    topics = Topics("salt/v1", g.enterprise, g.site, g.line, g.id)
    journal = Journal(
        Path(cfg.journal.path), Origin(g.id, g.enterprise, g.site, g.line),
        signer=EnvelopeSigner(g.id, event_key(cfg)),
    ).open()  # fmt: skip
    fwd = Forwarder(journal, MqttLink(MqttSection(url=mosquitto.url), topics, "gw-authn-test"),
                    topics, 10, backoff_min_secs=0.1)  # fmt: skip
    fwd.start()
    try:
        wait(bridge.listening, 15, "the bridge subscribed")
        line = LineEvents()  # gateway gw-test-1, listed with its key
        intruder = LineEvents(gateway="not-our-gateway")
        forged = intruder.make("pack.bag", {"code": "8035FORGED0001"}, "B1")
        altered = line.make("pack.bag", {"code": "8035REAL00001"}, "B1")
        unsigned = line.make("pack.bag", {"code": "8035REAL00002"}, "B1")
        good = line.make("pack.bag", {"code": "8035REAL00003"}, "B1")
        publisher.publish(intruder.topic(forged), payload(forged, key=ATTACKER_KEY))
        tampered = payload(altered).replace(b"8035REAL00001", b"8035FORGED0002")
        publisher.publish(line.topic(altered), tampered)
        publisher.publish(line.topic(unsigned), payload(unsigned, key=None))
        publisher.publish(line.topic(good), payload(good))
        data, device = _complete("pack.bag", {"code": "8035OWN00001"}, None)
        draft = EventDraft("pack.bag", datetime(2026, 11, 22, tzinfo=UTC), data, device=device,
                           batch="B1")  # fmt: skip
        (own,) = journal.append([draft]).result(10)

        def ids() -> set[str]:
            return {r[0] for r in q(store, "SELECT id FROM events")}

        wait(lambda: ids() == {good["id"], own.id}, 15, "the two signed events stored")
        wait(lambda: len(q(store, "SELECT 1 FROM quarantine")) == 3, 15, "three quarantined")
        reasons = dict(q(store, "SELECT substr(topic, 1, 200), reason FROM quarantine"))
        assert set(reasons) == {intruder.topic(forged), line.topic(good)}  # same topic thrice
        rows = q(store, "SELECT reason, kind FROM quarantine ORDER BY qid")
        assert [k for _r, k in rows] == ["unauthenticated"] * 3
        assert "event from gateway 'not-our-gateway', which this bridge does not know" in rows[0][0]
        assert "gateway 'gw-test-1': the signature does not match" in rows[1][0]
        assert "gateway 'gw-test-1' carries no signature" in rows[2][0]
        codes = {r[0] for r in q(store, "SELECT code FROM codes")}
        assert codes == {"8035REAL00003", "8035OWN00001"}
        assert bridge.ingest_stats.by_kind["unauthenticated"] == 3
        assert bridge.alive()

        # the gateway's seq mark (signed by its forwarder) is taken, not quarantined
        c = bridge.consumer
        assert c is not None
        wait(lambda: c.received >= 6, 15, "the own gateway's seq mark received (retained)")
        assert len(q(store, "SELECT 1 FROM quarantine")) == 3
        rep = verify_store(store)  # only the stored events are chained
        assert rep.ok and rep.checked == 2, rep.line()
    finally:
        bridge.stop()
        fwd.stop()
        journal.close()
