"""Telemetry config: the UNS example file, per-tag plans and meta, and errors that name the
file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.loader import ConfigError, load_config
from gateway.telemetry.config import TagPolicy, device_plan, store_path
from gateway.telemetry.record import TagMeta

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "gateway" / "telemetry" / "uns" / "example.yaml"


def test_the_uns_example_loads_and_plans_every_tag() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.telemetry is not None and cfg.telemetry.when_full == "coalesce"
    metas, policies = device_plan(cfg.devices[0])
    assert metas == [
        TagMeta("mixer1", "speed_rpm", "int", "rpm"),
        TagMeta("mixer1", "temp_c", "float", "degC"),  # a scaled int16 is a float
        TagMeta("mixer1", "running", "bool", None),
        TagMeta("mixer1", "batch_kg", "float", "kg"),
    ]
    assert policies["speed_rpm"] == TagPolicy(0.0, None, 0.0, 60.0)
    assert policies["temp_c"] == TagPolicy(0.5, None, 0.0, 60.0)
    assert policies["batch_kg"] == TagPolicy(0.0, 1.0, 1.0, 60.0)
    assert store_path(cfg.telemetry, Path("var/j.db")) == Path("var/uns-telemetry.db")


def test_default_store_sits_beside_the_journal() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.telemetry is not None
    section = cfg.telemetry.model_copy(update={"store": None})
    assert store_path(section, Path("var/demo-journal.db")) == Path("var/demo-journal-telemetry.db")


def _errors(tmp: Path, text: str) -> list[str]:
    path = tmp / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    return str(exc.value).splitlines()


def test_errors_name_the_place(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    text = text.replace("tags: all                   # or a list", "tags: [speed_rpm, speed]  # or")
    text = text.replace("temp_c: {deadband: 0.5", "temp: {deadband: 0.5")
    text = text.replace("when_full: coalesce", "when_full: block")
    lines = _errors(tmp_path, text)
    joined = "\n".join(lines)
    assert "telemetry.when_full" in joined and "coalesce" in joined
    assert any("devices[0].telemetry.tags[1]" in x and "no tag 'speed'" in x for x in lines)
    assert any("devices[0].telemetry.overrides.temp" in x and "no tag 'temp'" in x for x in lines)
    typo = _errors(tmp_path, EXAMPLE.read_text().replace("min_interval_ms: 0\n", "min_iv_ms: 0\n"))
    assert any("devices[0].telemetry.min_iv_ms: unknown key" in x for x in typo)
    for x in lines + typo:
        assert x.startswith(str(tmp_path / "c.yaml") + ":"), x
        file_line_col = x.split(": ", 1)[0].rsplit(":", 2)
        assert file_line_col[1].isdigit() and file_line_col[2].isdigit(), x


def test_a_scanner_has_no_telemetry_tags(tmp_path: Path) -> None:
    text = (
        'gateway: {id: g, enterprise: "8035", site: s, line: L1}\n'
        "devices:\n"
        "  - id: sc1\n"
        "    driver: scanner\n"
        "    connection: {type: tcp_client, host: 127.0.0.1, port: 2001}\n"
        "    telemetry: {tags: all}\n"
    )
    lines = _errors(tmp_path, text)
    assert any("devices[0].telemetry" in x and "no tags telemetry can report" in x for x in lines)
