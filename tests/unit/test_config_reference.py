from pathlib import Path

from gateway.config.reference import render_reference

DOC = Path(__file__).parents[2] / "docs" / "config-reference.md"


def test_reference_doc_is_current() -> None:
    fresh = render_reference()
    assert DOC.exists(), "run: saltgw schema --markdown > docs/config-reference.md"
    assert DOC.read_text(encoding="utf-8") == fresh, (
        "docs/config-reference.md is stale: run saltgw schema --markdown > docs/config-reference.md"
    )


def test_reference_documents_every_section() -> None:
    text = render_reference()
    for heading in (
        "## Config (top level)",
        "## GatewaySection",
        "## MqttSection",
        "## ModbusDeviceConfig",
        "## CheckweigherProfileConfig",
        "## CheckweigherSimConfig",
    ):
        assert heading in text
    assert "| `enterprise` | string | **required** |" in text
