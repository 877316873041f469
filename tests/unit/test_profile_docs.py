"""docs/profiles.md stays in sync with the code: its example payloads are golden outputs, and it
names every role's default tag and every setting of each CCP profile."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from gateway.profiles import profile_specs
from gateway.profiles.records import CcpProfileConfig

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "profiles.md"
CASES = Path(__file__).parent / "profile_cases"
EXAMPLE = re.compile(r"<!-- golden: (\S+) (\d+) -->\n```json\n(.*?)```", re.S)


def examples() -> list[tuple[str, int, str]]:
    return [(m[1], int(m[2]), m[3]) for m in EXAMPLE.finditer(DOC.read_text(encoding="utf-8"))]


def test_the_doc_has_examples_for_every_profile() -> None:
    cases = {case for case, _, _ in examples()}
    for prefix in ("metal-detector", "magnet-rod", "sieve", "iodine"):
        assert any(c.startswith(prefix) for c in cases), prefix


@pytest.mark.parametrize(("case", "index", "text"), examples())
def test_example_payload_is_the_golden_output(case: str, index: int, text: str) -> None:
    expected = yaml.safe_load((CASES / case / "expected.yaml").read_text(encoding="utf-8"))
    event = expected[index]
    assert json.loads(text) == {k: event[k] for k in ("type", "device", "data")}


@pytest.mark.parametrize(
    "name", ["metal_detector", "magnet_rod", "sieve", "iodine", "checkweigher"]
)
def test_section_names_every_role_and_setting(name: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"\n## {name} ")[1].split("\n## ")[0]
    spec = profile_specs()[name]
    for role in spec.roles:
        assert f"`{role.default}`" in section or f"`{role.name}`" in section, role
    common = set(CcpProfileConfig.model_fields) - {"max_reading_age_s"}
    for field in set(spec.config_model.model_fields) - common:
        assert f"`{field}`" in section, field


def test_roles_table_lists_every_role_of_every_profile() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("<!-- roles table -->\n")[1].split("<!-- end roles table -->")[0]
    rows = {tuple(c.strip(" `") for c in line.split("|")[1:4]) for line in table.splitlines()[2:]}
    expected = {
        (name, role.name, role.default)
        for name, spec in profile_specs().items()
        for role in spec.roles
    }
    assert rows == expected
