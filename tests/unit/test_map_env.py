"""``${NAME}`` substitution in maps (gateway/config/env.py) through the loader: typed values,
defaults, escapes, the map's directory, and an unset variable reported at FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.env import EnvSubstitutionError, substitute
from gateway.config.loader import ConfigError, parse_yaml, read_config, read_journal_path

ENV = {"PORT": "1502", "HOST": "10.0.0.7", "EMPTY": "", "ON": "false"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${HOST}", "10.0.0.7"),
        ("mqtt://${HOST}:${PORT}", "mqtt://10.0.0.7:1502"),
        ("${NOPE:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),  # as the shell's :-
        ("${EMPTY}", ""),
        ("$${HOST}", "${HOST}"),  # escaped
        ("cost $5 and $HOST", "cost $5 and $HOST"),  # only ${…} is substituted
        ("${NOPE:-}", ""),
    ],
)
def test_substitute(text: str, expected: str) -> None:
    assert substitute(text, ENV) == expected


@pytest.mark.parametrize(
    ("text", "why", "offset"),
    [
        ("x ${NOPE}", "environment variable NOPE is not set", 2),
        ("${1BAD}", "expected ${NAME} or ${NAME:-default}", 0),
        ("ab ${OPEN", "without a closing", 3),
    ],
)
def test_substitute_errors(text: str, why: str, offset: int) -> None:
    with pytest.raises(EnvSubstitutionError, match=why.replace("$", r"\$").replace("{", r"\{"))\
            as err:  # fmt: skip
        substitute(text, ENV)
    assert err.value.offset == offset


def test_values_are_typed_after_substitution_keys_untouched(tmp_path: Path) -> None:
    text = (
        "port: ${PORT}\nquoted: '${PORT}'\nflag: ${ON}\n${HOST}: kept\ndir: ${SALTGW_MAP_DIR}/pki\n"
    )
    data, _pos, issues = parse_yaml(str(tmp_path / "m.yaml"), text, {**ENV, "SALTGW_MAP_DIR": "x"})
    assert issues == []
    assert data["port"] == 1502 and data["quoted"] == "1502" and data["flag"] is False
    assert data["${HOST}"] == "kept"
    assert data["dir"] == f"{tmp_path.resolve()}/pki"  # the map's directory, not the env's


def _map(tmp_path: Path, journal: str) -> Path:
    path = tmp_path / "line.yaml"
    path.write_text(
        "gateway: {id: gw-1, enterprise: '8035', site: s, line: L1}\n"
        "mqtt:\n"
        "  url: mqtt://${SALTGW_TEST_HOST:-127.0.0.1}:${SALTGW_TEST_PORT}\n"
        f"journal:\n  path: {journal}\n"
    )
    return path


def test_an_unset_variable_is_one_error_at_its_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SALTGW_TEST_PORT", raising=False)
    path = _map(tmp_path, "var/j.db")
    with pytest.raises(ConfigError) as err:
        read_config(path)
    [issue] = err.value.issues  # not also "not a valid URL" for the unsubstituted text
    col = len("  url: mqtt://${SALTGW_TEST_HOST:-127.0.0.1}:") + 1
    assert (issue.line, issue.col, issue.path) == (3, col, "mqtt.url")
    assert "SALTGW_TEST_PORT is not set" in issue.message


def test_a_substituted_map_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALTGW_TEST_PORT", "18830")
    monkeypatch.setenv("SALTGW_TEST_JOURNAL", "/srv/line3")
    cfg, _ = read_config(_map(tmp_path, "${SALTGW_TEST_JOURNAL}/journal.db"))
    assert cfg.mqtt.url == "mqtt://127.0.0.1:18830"
    assert cfg.journal.path == Path("/srv/line3/journal.db")
    # a relative path stays relative: to the working directory (docs/operations.md)
    cfg, _ = read_config(_map(tmp_path, "var/j.db"))
    assert cfg.journal.path == Path("var/j.db")


def test_read_journal_path_of_an_invalid_map(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("gateway: {id: 'bad id'}\njournal: {path: /srv/j.db, nope: 1}\n")
    assert read_journal_path(path) == Path("/srv/j.db")
    path.write_text("gateway: {}\n")
    assert read_journal_path(path) == Path("var/journal.db")
