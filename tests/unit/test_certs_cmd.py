"""``saltgw certs`` (gateway/certs_cmd.py): the certificate the OPC UA driver presents."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from drivers.opcua.security import certificate_uri
from gateway.cli import main


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "line.yaml"
    path.write_text(
        f"""gateway: {{id: gw-l3, enterprise: '8035', site: s, line: L3}}
journal: {{path: {tmp_path}/j.db}}
devices:
  - id: plc1
    driver: opcua
    endpoint: opc.tcp://127.0.0.1:4840
    namespace_uri: urn:x
    security:
      policy: Basic256Sha256
      mode: SignAndEncrypt
      certificate: {tmp_path}/pki/gw.der
      private_key: {tmp_path}/pki/gw.pem
      trust_dir: {tmp_path}/pki/trusted
    tags: {{state: {{node: "s=Line1.State"}}}}
"""
    )
    return path


def test_certs_from_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "--config", str(_config(tmp_path)), "--days", "30"]) == 0
    out = capsys.readouterr().out
    cert, key = tmp_path / "pki" / "gw.der", tmp_path / "pki" / "gw.pem"
    assert certificate_uri(cert) == "urn:saltgw:gw-l3"  # what the driver will present
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    parsed = x509.load_der_x509_certificate(cert.read_bytes())
    days = (parsed.not_valid_after_utc - parsed.not_valid_before_utc).days
    assert 29 <= days <= 31
    assert "urn:saltgw:gw-l3" in out and "SHA-256 fingerprint" in out
    before = cert.read_bytes()
    assert main(["certs", "--config", str(_config(tmp_path))]) == 2  # no overwrite
    assert "exists (--force replaces it)" in capsys.readouterr().err
    assert cert.read_bytes() == before
    assert main(["certs", "--config", str(_config(tmp_path)), "--force", "--uri", "urn:x:y"]) == 0
    assert cert.read_bytes() != before and certificate_uri(cert) == "urn:x:y"


def test_certs_needs_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs"]) == 2
    assert "--cert FILE --key FILE" in capsys.readouterr().err
