"""Golden folders: profile_cases/<case>/{profile.yaml, readings.yaml, expected.yaml}.

* ``profile.yaml`` — ``device_tags`` (the tags the device yields), ``profile`` (the profile
  entry exactly as in a tag map) and, optionally, ``cursors`` (the journal's cursors a
  restarted gateway hands to a resumable profile);
* ``readings.yaml`` — steps in order: ``{t: s, values: {...}, errors: {...}}`` is a reading taken
  ``t`` seconds after 2026-11-22 10:00:00+08:00, ``{tick: s}`` a runtime tick at that time;
* ``expected.yaml`` — every event draft the profile returns, in order: ``{t, type, device, data}``.

A behaviour that goes wrong becomes a new folder, not new test code. ``SALTGW_REGEN_GOLDEN=1``
rewrites expected.yaml from the current output (review the diff before committing it).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.base import Reading
from gateway.profiles import profile_specs

CASES = Path(__file__).parent / "profile_cases"
TZ = timezone(timedelta(hours=8))
BASE = datetime(2026, 11, 22, 10, 0, 0, tzinfo=TZ)


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def run_case(case: Path) -> list[dict[str, Any]]:
    setup = _load(case / "profile.yaml")
    entry: dict[str, Any] = setup["profile"]
    spec = profile_specs()[entry["profile"]]
    cfg = spec.config_model.model_validate(entry)
    tags = spec.bind(cfg.tags, set(setup["device_tags"]), entry)
    prof = spec.create(cfg, tags, TZ)
    if "cursors" in setup:
        prof.resume(setup["cursors"])  # type: ignore[attr-defined]
    out: list[dict[str, Any]] = []
    for step in _load(case / "readings.yaml"):
        if "tick" in step:
            drafts = prof.on_tick(BASE + timedelta(seconds=step["tick"]))
        else:
            ts = BASE + timedelta(seconds=step["t"])
            reading = Reading(cfg.device, ts, step.get("values") or {}, step.get("errors") or {})
            drafts = prof.on_reading(reading)
        for d in drafts:
            t = (d.ts - BASE).total_seconds()
            out.append(
                {
                    "t": int(t) if t == int(t) else t,
                    "type": d.type,
                    "device": d.device,
                    "data": d.data,
                }
            )
    return out


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_golden_case(case: str) -> None:
    got = run_case(CASES / case)
    expected_file = CASES / case / "expected.yaml"
    if os.environ.get("SALTGW_REGEN_GOLDEN"):
        expected_file.write_text(
            yaml.safe_dump(got, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8"
        )
    expected = _load(expected_file) or []
    assert got == expected
