"""A bridge whose subscription the broker refuses (an ACL) is not silently deaf: ``/healthz``
is not ready and names the refused filter and the broker's reason (the forwarder's gate stays
closed, so events wait in the journal); once the ACL is fixed (the broker restarted with a new
one) the bridge subscribes again by itself and the gateway becomes ready, and events reach the
trace store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.support.bridge_env import Publisher, known_gateway, wait
from tests.support.broker import Mosquitto, mosquitto_available
from tests.support.gateway_proc import GatewayProc
from tests.support.trace_events import LineEvents, payload

pytestmark = pytest.mark.e2e

LINE = "salt/v1/8035/daiyue/L1"
# mosquitto's acl_file grants every subscription and filters at delivery (2.0.11, checked): a
# refusal (SUBACK 0x80) comes from its dynamic security plugin, whose ACLs cover subscribing
PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")


def _acl(path: Path, *subscribe: str) -> None:
    """Anonymous clients may publish anything under salt/ and subscribe only to ``subscribe``."""
    acls = [{"acltype": "publishClientSend", "topic": "salt/#", "priority": 0, "allow": True}]
    acls += [{"acltype": "subscribePattern", "topic": t, "priority": 0, "allow": True}
             for t in subscribe]  # fmt: skip
    path.write_text(
        json.dumps(
            {
                "defaultACLAccess": {
                    "publishClientSend": False,
                    "publishClientReceive": True,
                    "subscribe": False,
                    "unsubscribe": True,
                },
                "clients": [],
                "groups": [{"groupname": "anon", "roles": [{"rolename": "line"}], "clients": []}],
                "roles": [{"rolename": "line", "acls": acls}],
                "anonymousGroup": "anon",
            }
        )
    )


def test_refused_subscription_is_named_by_healthz_and_recovers(tmp_path: Path) -> None:
    if not mosquitto_available() or not PLUGIN.exists():
        pytest.skip("mosquitto or its dynamic security plugin is not installed")
    acl = tmp_path / "dynamic-security.json"
    _acl(acl, f"{LINE}/cmd/#", f"{LINE}/alarm/#")  # not the events
    broker = Mosquitto(
        tmp_path / "mosquitto",
        extra_conf=f"plugin {PLUGIN}\nplugin_opt_config_file {acl}\n",
    )
    broker.start()
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "gateway": {"id": "gw-acl", "enterprise": "8035", "site": "daiyue", "line": "L1"},
                "mqtt": {"url": broker.url, "reconnect_min_secs": 0.2, "reconnect_max_secs": 1},
                "journal": {"path": str(tmp_path / "journal.db")},
                "bridge": {
                    "store": str(tmp_path / "bridge.db"),
                    "gateways": [known_gateway(tmp_path)],
                },  # the test line's gateway
            }
        )
    )
    gw = GatewayProc(cfg, tmp_path / "saltgw.log").start()
    try:
        gw.wait_serving()
        want = f"bridge subscription to '{LINE}/event/#' refused by the broker: "

        def refused_named() -> bool:
            code, body = gw.healthz()
            return code == 503 and any(r.startswith(want) for r in body.get("reasons", []))

        wait(refused_named, 30, "/healthz naming the refused subscription")
        assert gw.running()

        _acl(acl, "salt/#")
        broker.stop()
        broker.start()
        wait(lambda: gw.healthz()[0] == 200, 60, "/healthz ready after the ACL was fixed")
        ev = LineEvents().make("pack.bag", {"code": "8035ACL00001"}, "B1")
        pub = Publisher(broker.port)
        try:
            pub.publish(f"{LINE}/event/pack/bag", payload(ev))
        finally:
            pub.close()

        def stored() -> bool:
            with sqlite3.connect(tmp_path / "bridge.db") as db:
                return bool(db.execute("SELECT 1 FROM events WHERE id=?", (ev["id"],)).fetchone())

        wait(stored, 30, "an event stored after the recovery")
        assert "refused the subscription" in gw.log_text()
    finally:
        if gw.running():
            gw.stop()
        broker.kill()
