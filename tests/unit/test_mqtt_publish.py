"""MqttLink.publish: what paho keeps (and sends again after a reconnect) is pending, not an
error (bench/telemetry_outage.py found a socket dying under a publish stopping delivery)."""

from __future__ import annotations

from typing import Any

import pytest
from paho.mqtt.enums import MQTTErrorCode

from gateway.config.models import MqttSection
from gateway.mqtt import MqttLink
from gateway.topics import Topics


class _Info:
    def __init__(self, rc: MQTTErrorCode, mid: int) -> None:
        self.rc, self.mid = rc, mid


def _link(rc: MQTTErrorCode, monkeypatch: pytest.MonkeyPatch) -> MqttLink:
    link = MqttLink(
        MqttSection(url="mqtt://127.0.0.1:1"),
        Topics("salt/v1", "8035", "daiyue", "L1", "gw-1"),
        "test-publish",
    )

    def publish(topic: str, payload: bytes, qos: int, retain: bool) -> Any:
        return _Info(rc, 42)

    monkeypatch.setattr(link.client, "publish", publish)
    return link


@pytest.mark.parametrize(
    "rc",
    [MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN,
     MQTTErrorCode.MQTT_ERR_CONN_LOST],
)  # fmt: skip
def test_a_message_paho_keeps_is_pending(
    rc: MQTTErrorCode, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = _link(rc, monkeypatch)
    link.publish("salt/v1/t", b"{}", seq=7)
    assert link.pending == {42: 7}


def test_a_message_paho_refuses_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    link = _link(MQTTErrorCode.MQTT_ERR_QUEUE_SIZE, monkeypatch)
    with pytest.raises(RuntimeError, match="refused by paho"):
        link.publish("salt/v1/t", b"{}", seq=7)
    assert link.pending == {}
