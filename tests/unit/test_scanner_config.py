"""The scanner driver's config: the example is valid (it is the README's example too) and
mistakes are refused with a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from drivers.scanner import ScannerDeviceConfig
from gateway.config.models import device_adapter

EXAMPLE = Path(__file__).parents[2] / "drivers" / "scanner" / "example.yaml"
README = Path(__file__).parents[2] / "drivers" / "scanner" / "README.md"


def test_example_is_valid_and_quoted_in_the_readme() -> None:
    entries = yaml.safe_load(EXAMPLE.read_text())
    parsed = [device_adapter().validate_python(e) for e in entries]
    assert [type(p) for p in parsed] == [ScannerDeviceConfig] * 3
    assert parsed[0].tag_names() == {"codes", "noread", "raw", "frames", "rejected"}
    readme = README.read_text()
    assert "```yaml\n" + EXAMPLE.read_text() + "```" in readme


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"framing": "fixed"}, "framing fixed needs frame_length"),
        ({"frame_length": 12}, "frame_length applies to framing fixed only"),
        ({"framing": "fixed", "frame_length": 600}, "exceeds max_frame_bytes"),
        ({"framing": "etx"}, "Input should be 'cr', 'lf', 'crlf', 'stx_etx' or 'fixed'"),
        ({"parity": "N"}, "Extra inputs are not permitted"),
    ],
)
def test_mistakes_are_refused(extra: dict[str, Any], message: str) -> None:
    cfg = {
        "id": "s",
        "driver": "scanner",
        "connection": {"type": "tcp_client", "host": "h", "port": 1},
        **extra,
    }
    with pytest.raises(ValidationError, match=message):
        ScannerDeviceConfig(**cfg)
