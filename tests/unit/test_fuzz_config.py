"""Fuzzing the config loader: whatever bytes an engineer saves, the answer is a list of
positioned issues (or a valid config), never a crash or a hang."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config.loader import ConfigError, load_config

ISSUE = re.compile(r"^.+:\d+:\d+: error: .+$")
DEMO = yaml.safe_load((Path(__file__).parents[2] / "mappings" / "demo-line.yaml").read_text())


def _check(tmp: Path, text: str) -> None:
    f = tmp / "fuzz.yaml"
    f.write_text(text, encoding="utf-8")
    issues = []
    try:
        load_config(f)
    except ConfigError as exc:
        issues = exc.issues
        if not issues:
            raise AssertionError("ConfigError without issues") from exc
    for issue in issues:
        assert ISSUE.match(str(issue)), str(issue)
        assert issue.line >= 1 and issue.col >= 1


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=400))
def test_any_text(tmp_path: Path, text: str) -> None:
    _check(tmp_path, text)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=12),
)


def _mutate(draw: Any, node: Any, depth: int = 0) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            choice = draw(st.integers(0, 9))
            if choice == 0:
                continue  # drop a key
            if choice == 1:
                out[k + draw(st.sampled_from(["", "x", "_"]))] = v  # misspell
            elif choice == 2:
                out[k] = draw(scalars)  # wrong type
            else:
                out[k] = _mutate(draw, v, depth + 1)
        return out
    if isinstance(node, list):
        return [_mutate(draw, v, depth + 1) for v in node]
    return draw(scalars) if draw(st.integers(0, 4)) == 0 else node


@st.composite
def mutated_demo(draw: Any) -> str:
    return yaml.safe_dump(_mutate(draw, DEMO), allow_unicode=True)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutated_demo())
def test_mutated_demo_line(tmp_path: Path, text: str) -> None:
    _check(tmp_path, text)
