"""The broker config shipped for deployment (docker/mosquitto.conf) keeps saltgw's promise on a
real mosquitto: a persistent session queues more than mosquitto's default 1,000 messages while
its client is away, and the queue survives a broker restart (issue 13: the compose file ran
mosquitto without persistence, so a restart lost the bridge's queue)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.broker import Mosquitto, mosquitto_available
from tests.support.subscriber import Collector

pytestmark = pytest.mark.integration

SHIPPED = Path(__file__).parents[2] / "docker" / "mosquitto.conf"
QUEUED = 2_500  # more than mosquitto's default max_queued_messages (1,000)


def _shipped_conf(workdir: Path, port: int) -> str:
    """docker/mosquitto.conf with the container's port and data folder made local."""
    conf = SHIPPED.read_text()
    conf, n_listen = re.subn(r"(?m)^listener 1883$", f"listener {port} 127.0.0.1", conf)
    conf, n_data = re.subn(
        r"(?m)^persistence_location .*$", f"persistence_location {workdir}/", conf
    )
    assert n_listen == 1 and n_data == 1, "the shipped config changed shape"
    if os.geteuid() == 0:  # as root mosquitto drops to 'mosquitto', who cannot write workdir
        conf += "user root\n"
    return conf


class _ShippedBroker(Mosquitto):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.conf.write_text(_shipped_conf(workdir, self.port))


def _publish(port: int, n: int) -> None:
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-pub", protocol=paho.MQTTv311)
    pub.max_queued_messages_set(0)
    pub.max_inflight_messages_set(100)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        infos = [pub.publish("salt/v1/8035/s/L1/event/pack/bag", str(i), qos=1) for i in range(n)]
        for info in infos:
            info.wait_for_publish(timeout=30)
    finally:
        pub.disconnect()
        pub.loop_stop()


def test_the_shipped_broker_config_queues_for_the_bridge_across_a_restart(
    tmp_path: Path,
) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")  # CI: a skip fails (tests/support/ci_skips)
    broker = _ShippedBroker(tmp_path / "broker")
    broker.start()
    try:
        bridge = Collector(broker.port, topic="salt/v1/#", client_id="saltgw-bridge-test")
        bridge.start()
        bridge.stop()  # away: the broker queues for its persistent session
        _publish(broker.port, QUEUED)
        broker.stop()  # graceful: sessions written to disk
        broker.start()
        again = Collector(broker.port, topic="salt/v1/#", client_id="saltgw-bridge-test")
        again.start()
        try:
            got = again.wait_for(lambda m: len(m) >= QUEUED, 60, f"{QUEUED} queued messages")
        finally:
            again.stop()
        assert sorted(int(m.payload) for m in got) == list(range(QUEUED))
    finally:
        broker.kill()
