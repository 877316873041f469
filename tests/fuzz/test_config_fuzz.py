"""Fuzzing the YAML config loader beyond tests/unit/test_fuzz_config.py.

That test throws arbitrary text and value-level mutations of the demo line at the loader (keys
dropped or misspelt, scalars of the wrong type). Here: structural mutations (a mapping where a
list belongs and back, list items dropped or repeated, unknown keys at any depth), edits of the
YAML text itself (lines deleted, repeated or swapped, tabs, truncation), bytes that are not
UTF-8, and what YAML allows that a config never needs (aliases expanding a billion times, an
alias that contains itself, nesting thousands deep). Whatever the file holds, the answer is a
valid config or a :class:`ConfigError` whose every issue is one ``FILE:LINE:COL: error:`` line
pointing into the file, within a bounded time.
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.config.loader import ConfigError, load_config
from gateway.config.models import config_model, config_model_for
from tests.fuzz.hypothesis_settings import fuzz_settings

ISSUE = re.compile(r"^.+:\d+:\d+: error: .+$")
DEMO_TEXT = (Path(__file__).parents[2] / "mappings" / "demo-line.yaml").read_text(encoding="utf-8")
DEMO = yaml.safe_load(DEMO_TEXT)
# CPU seconds of one load, however hostile the file (a runaway, e.g. a YAML alias bomb, would be
# the bug); CPU time, not wall-clock time: other processes on a loaded machine do not count
SECONDS = 10.0


def check_load(tmp: Path, data: bytes) -> None:
    f = tmp / "fuzz.yaml"
    f.write_bytes(data)
    lines = data.count(b"\n") + 1
    started = time.process_time()
    issues = []
    try:
        load_config(f)
    except ConfigError as exc:
        issues = exc.issues
        if not issues:
            raise AssertionError("ConfigError without issues") from exc
    for issue in issues:
        assert ISSUE.match(str(issue)), str(issue)
        assert 1 <= issue.line <= lines + 1 and issue.col >= 1, str(issue)
    assert time.process_time() - started < SECONDS


leaves = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
)


def _restructure(draw: Any, node: Any, depth: int = 0) -> Any:
    """Structural mutations of a parsed config, at every depth."""
    choice = draw(st.integers(0, 14))
    if choice == 0:
        return list(node.values()) if isinstance(node, dict) else {"x": node}  # container swap
    if choice == 1:
        return [node]
    if choice == 2 and depth < 3:
        return draw(leaves)
    if isinstance(node, dict):
        out = {k: _restructure(draw, v, depth + 1) for k, v in node.items()}
        if draw(st.integers(0, 5)) == 0:
            out[draw(st.sampled_from(["extra", "Id", "devices", "__proto__", "<<", "0"]))] = draw(
                leaves
            )
        return out
    if isinstance(node, list):
        items = [_restructure(draw, v, depth + 1) for v in node]
        if items and draw(st.integers(0, 3)) == 0:
            i = draw(st.integers(0, len(items) - 1))
            items.insert(i, items[i]) if draw(st.booleans()) else items.pop(i)
        return items
    return node


@st.composite
def restructured_demo(draw: Any) -> bytes:
    text: str = yaml.safe_dump(_restructure(draw, DEMO), allow_unicode=True)
    return text.encode()


@fuzz_settings(60)
@given(restructured_demo())
def test_restructured_demo_line(tmp_path: Path, data: bytes) -> None:
    check_load(tmp_path, data)


@st.composite
def edited_demo(draw: Any) -> bytes:
    """The demo line's text as an engineer's editor might leave it."""
    lines = DEMO_TEXT.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["delete", "repeat", "swap", "tab", "dedent", "junk"]))
        if edit == "delete":
            del lines[i]
        elif edit == "repeat":
            lines.insert(i, lines[i])  # a duplicate key, or a list item twice
        elif edit == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif edit == "tab":
            lines[i] = "\t" + lines[i].lstrip(" ")
        elif edit == "dedent":
            lines[i] = lines[i][2:] if lines[i].startswith("  ") else "  " + lines[i]
        else:
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.text(max_size=6)) + lines[i][at:]
    text = "".join(lines)
    if draw(st.integers(0, 4)) == 0:
        text = text[: draw(st.integers(0, len(text)))]  # a file cut short
    return text.encode("utf-8", "surrogatepass")


@fuzz_settings(100)
@given(edited_demo())
def test_edited_demo_line_text(tmp_path: Path, data: bytes) -> None:
    check_load(tmp_path, data)


def _laughs(levels: int) -> bytes:
    rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    rows += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, levels)]
    return ("\n".join(rows) + "\n").encode()


@fuzz_settings(40)
@given(
    st.binary(max_size=400)
    | st.sampled_from([b"\xff\xfe", b"gateway:\n  id: \xc3\x28\n", b"\x00" * 64]),
)
@example(_laughs(10))  # 9**9 values after expanding aliases: hung for ever (and ate the RAM)
@example(b"a: &x [*x]\n")  # an alias inside itself: RecursionError
@example(b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n")  # nested 5000 deep: RecursionError
@example(b"devices: &d\n  - *d\n")
def test_hostile_files(tmp_path: Path, data: bytes) -> None:
    check_load(tmp_path, data)


def _outcome(model: Any, data: Any) -> Any:
    try:
        return model.model_validate(data).model_dump(mode="json")
    except ValidationError:
        return "refused"


@fuzz_settings(60)
@given(st.data())
def test_the_model_of_what_a_file_names_agrees_with_the_full_model(data: Any) -> None:
    """gateway/config/models.py: the model built from the drivers, profiles, simulators and
    sections a file names accepts exactly the files the full model accepts, with the same
    values (so that the full model, asked only when it refuses, words every error)."""
    doc = copy.deepcopy(DEMO)
    for _ in range(data.draw(st.integers(1, 3))):
        _edit_once(data.draw, doc)
    narrow = config_model_for(doc)
    if narrow is config_model():
        return  # a file naming something unknown, or not shaped like a config
    assert _outcome(narrow, doc) == _outcome(config_model(), doc)


def _edit_once(draw: Any, node: Any) -> None:
    """One edit somewhere in ``node`` (a key dropped or added, a value replaced, a list entry
    dropped or repeated), leaving the rest as it was: most such files still name only known
    drivers, profiles and simulators, and some stay valid."""
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and draw(st.integers(0, 3)) > 0:
            node = child  # go deeper
            continue
        edit = draw(st.integers(0, 3))
        if edit == 0 and isinstance(node, dict):
            del node[key]
        elif edit == 0:
            node.pop(key)
        elif edit == 1 and isinstance(node, dict):
            extra = draw(st.sampled_from(["extra", "bridge", "resolver", "sparkplug", "id"]))
            node[extra] = draw(leaves)
        elif edit == 1:
            node.insert(key, copy.deepcopy(child))
        else:
            node[key] = draw(leaves | st.sampled_from(["modbus", "scanner", "opcua", "iodine"]))
        return


def test_the_model_of_what_a_file_names_is_not_the_full_model() -> None:
    for doc in (DEMO, {k: v for k, v in DEMO.items() if k != "simulators"}):
        narrow = config_model_for(doc)
        assert narrow is not config_model()
        assert _outcome(narrow, doc) == _outcome(config_model(), doc) != "refused"
