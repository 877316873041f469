"""``console:`` inside a gateway config (docs/console.md): the console follows the line over
the broker of the config's ``mqtt:`` section with the gateway's user name and password (a real
mosquitto that refuses anonymous clients), and reads the bridge's trace store."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config.loader import read_console_config
from gateway.console.live import LineState, LiveFeed
from tests.support.broker import Mosquitto, mosquitto_available

pytestmark = pytest.mark.integration

WAIT_SECS = 10.0


def _config(tmp: Path, port: int, password_env: str) -> Path:
    cfg = {
        "gateway": {"id": "gw-1", "enterprise": "8035", "site": "daiyue", "line": "L1",
                    "timezone": "+08:00"},
        "mqtt": {"url": f"mqtt://127.0.0.1:{port}", "protocol": "3.1.1", "username": "line1",
                 "password_env": password_env, "topic_prefix": "plant/v1"},
        "bridge": {"store": str(tmp / "line-bridge.db"), "chain_key_env": "LINE_STORE_KEY"},
        "console": {"listen": "127.0.0.1:0", "users": str(tmp / "users.json")},
    }  # fmt: skip
    path = tmp / "line.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _until(cond: object, secs: float = WAIT_SECS) -> bool:
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if callable(cond) and cond():
            return True
        time.sleep(0.05)
    return False


def test_the_console_of_a_gateway_config_uses_its_broker_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "line1", "s3cret-pw"], check=True,
                   capture_output=True)  # fmt: skip
    pwfile.chmod(0o644)
    broker = Mosquitto(tmp_path / "mqtt", extra_conf=f"password_file {pwfile}\n", anonymous=False)
    broker.start()
    pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    feeds: list[LiveFeed] = []
    try:
        cfg = read_console_config(_config(tmp_path, broker.port, "LINE1_PW"))
        assert cfg.line_root == "plant/v1/8035/daiyue/L1"
        assert cfg.timezone == "+08:00"
        assert cfg.store == tmp_path / "line-bridge.db"
        assert cfg.chain_key_env == "LINE_STORE_KEY"
        assert cfg.mqtt().username == "line1"

        monkeypatch.setenv("LINE1_PW", "wrong")
        refused = LineState(cfg)
        feeds.append(LiveFeed(cfg, refused))
        feeds[-1].start()

        monkeypatch.setenv("LINE1_PW", "s3cret-pw")
        state = LineState(cfg)
        feeds.append(LiveFeed(cfg, state))
        feeds[-1].start()
        assert _until(lambda: state.broker_connected)

        pub.username_pw_set("line1", "s3cret-pw")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        body = {"device": "cw1", "state": "online", "ts": "2026-11-22T10:15:30.123+08:00"}
        info = pub.publish(f"{cfg.line_root}/state/cw1", json.dumps(body), qos=1, retain=True)
        info.wait_for_publish(timeout=5)
        assert _until(lambda: state.snapshot()["devices"].get("cw1", {}).get("state") == "online")
        assert not refused.broker_connected  # the wrong password: refused, never connected
        assert refused.snapshot()["devices"] == {}
    finally:
        pub.disconnect()
        pub.loop_stop()
        for f in feeds:
            f.stop()
        broker.stop()


def test_a_console_section_naming_its_own_broker_gets_no_credentials(tmp_path: Path) -> None:
    path = _config(tmp_path, 1883, "LINE1_PW")
    data = yaml.safe_load(path.read_text())
    data["console"]["broker"] = "mqtt://127.0.0.1:1999"
    data["console"]["store"] = str(tmp_path / "other.db")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    cfg = read_console_config(path)
    assert cfg.mqtt().url == "mqtt://127.0.0.1:1999" and cfg.mqtt().username is None
    assert cfg.store == tmp_path / "other.db"
    assert cfg.chain_key_env == "SALTGW_STORE_CHAIN_KEY"  # not the bridge's: another store


def test_a_gateway_config_without_console_section_is_refused_for_the_console(
    tmp_path: Path,
) -> None:
    from gateway.config.loader import ConfigError

    path = _config(tmp_path, 1883, "LINE1_PW")
    data = yaml.safe_load(path.read_text())
    del data["console"]
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        read_console_config(path)
    assert [str(i) for i in err.value.issues] == [
        f"{path}:1:1: error: console: no console: section (docs/console.md)"
    ]
