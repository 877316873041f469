"""The broker link with TLS (server verification, mutual TLS) and with a password, against a real
mosquitto configured for each (QB/T 5279 11.4: encrypted transfer, access control)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config.models import config_model
from gateway.runtime import Gateway
from tests.support.broker import Mosquitto, mosquitto_available
from tests.support.certs import Pki, make_pki
from tests.support.loop import BackgroundLoop

pytestmark = pytest.mark.integration


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def _broker(tmp_path: Path, extra: str, anonymous: bool = True) -> Iterator[Mosquitto]:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    b = Mosquitto(tmp_path / "mosq", extra_conf=extra, anonymous=anonymous)
    b.start()
    try:
        yield b
    finally:
        b.kill()


def _gateway(tmp_path: Path, mqtt: dict[str, Any]) -> Gateway:
    cfg = config_model().model_validate(
        {
            "gateway": {"id": "gw-test-1", "enterprise": "8035", "site": "daiyue", "line": "L1"},
            "mqtt": {"reconnect_min_secs": 0.2, "reconnect_max_secs": 0.5, **mqtt},
            "journal": {"path": str(tmp_path / "journal.db")},
        }
    )
    return Gateway(cfg)


def _connects(gw: Gateway, within: float = 8.0) -> bool:
    """Run the gateway until it is connected to the broker or ``within`` s passed."""
    with BackgroundLoop() as bg:
        stop = bg.run(_event())
        fut = asyncio.run_coroutine_threadsafe(gw.run(stop), bg.loop)
        ok = gw.link.connected.wait(within)
        bg.loop.call_soon_threadsafe(stop.set)
        fut.result(30)
    return ok


async def _event() -> asyncio.Event:
    return asyncio.Event()


def test_tls_with_server_verification_and_client_certificate(tmp_path: Path, pki: Pki) -> None:
    extra = (
        f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
        "require_certificate true\n"
    )
    for broker in _broker(tmp_path, extra):
        tls = {
            "ca_file": str(pki.ca),
            "cert_file": str(pki.client_cert),
            "key_file": str(pki.client_key),
        }
        gw = _gateway(tmp_path, {"url": f"mqtts://127.0.0.1:{broker.port}", "tls": tls})
        assert _connects(gw)
        assert gw.link.stats.connects >= 1


def test_tls_refuses_a_broker_it_cannot_verify(tmp_path: Path, pki: Pki) -> None:
    extra = f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
    for broker in _broker(tmp_path, extra):
        gw = _gateway(
            tmp_path,
            {"url": f"mqtts://127.0.0.1:{broker.port}", "tls": {"ca_file": str(pki.other_ca)}},
        )
        assert not _connects(gw, within=3)
        assert "CERTIFICATE_VERIFY_FAILED" in (gw.link.stats.last_error or "")


def test_mutual_tls_broker_refuses_a_gateway_without_certificate(tmp_path: Path, pki: Pki) -> None:
    extra = (
        f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
        "require_certificate true\n"
    )
    for broker in _broker(tmp_path, extra):
        gw = _gateway(
            tmp_path, {"url": f"mqtts://127.0.0.1:{broker.port}", "tls": {"ca_file": str(pki.ca)}}
        )
        assert not _connects(gw, within=3)
        assert gw.link.stats.last_error


def test_password_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(
        ["mosquitto_passwd", "-b", str(pwfile), "line1", "s3cret-pw"],
        check=True,
        capture_output=True,
    )
    pwfile.chmod(0o644)
    for broker in _broker(tmp_path, f"password_file {pwfile}\n", anonymous=False):
        monkeypatch.setenv("LINE1_PW", "wrong")
        gw = _gateway(
            tmp_path, {"url": broker.url, "username": "line1", "password_env": "LINE1_PW"}
        )
        assert not _connects(gw, within=3)
        assert "refused" in (gw.link.stats.last_error or "")
        monkeypatch.setenv("LINE1_PW", "s3cret-pw")
        gw = _gateway(
            tmp_path, {"url": broker.url, "username": "line1", "password_env": "LINE1_PW"}
        )
        assert _connects(gw)
