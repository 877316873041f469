"""``${NAME}`` substitution in the scalar values of a map (docs/operations.md, "Environment
variables and paths in a map").

- ``${NAME}``: the value of the environment variable ``NAME``; unset is an error (its
  FILE:LINE:COL names the variable). Set to the empty string is the empty string.
- ``${NAME:-default}``: the default when ``NAME`` is unset or empty (the shell's ``:-``).
- ``$${`` is a literal ``${`` (nothing substituted); any other ``$`` is kept as written.
- ``${SALTGW_MAP_DIR}``: always the absolute directory of the map file, whatever the
  environment says, so a path can be made relative to the map (``${SALTGW_MAP_DIR}/pki/gw.der``).

Substitution runs on the text of each value before YAML gives it a type, so an unquoted
``port: ${PORT}`` is the integer 1502 and ``${ON:-true}`` a boolean; a quoted value stays text.
Keys are never substituted. Names are ``[A-Za-z_][A-Za-z0-9_]*``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["MAP_DIR_VAR", "EnvSubstitutionError", "substitute"]

MAP_DIR_VAR = "SALTGW_MAP_DIR"

_TOKEN = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EnvSubstitutionError(ValueError):
    """A ``${…}`` that cannot be substituted; ``offset`` is where it starts in the text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def substitute(text: str, env: Mapping[str, str]) -> str:
    """``text`` with every ``${NAME}`` / ``${NAME:-default}`` replaced from ``env``; raises
    :class:`EnvSubstitutionError` for an unset variable without default or a malformed one."""
    if "$" not in text:
        return text
    out: list[str] = []
    at = 0
    for m in _TOKEN.finditer(text):
        out.append(text[at : m.start()])
        at = m.end()
        token = m.group()
        if token == "$${":
            out.append("${")
            continue
        body = m.group("body")
        if body is None:
            raise EnvSubstitutionError("'${' without a closing '}'", m.start())
        name, sep, default = body.partition(":-")
        if not _NAME.fullmatch(name):
            raise EnvSubstitutionError(
                f"${{{body}}}: expected ${{NAME}} or ${{NAME:-default}} (write $${{ for a "
                "literal ${)",
                m.start(),
            )
        value = env.get(name)
        if value is None or (sep and value == ""):
            if not sep:
                raise EnvSubstitutionError(
                    f"${{{name}}}: environment variable {name} is not set (write "
                    f"${{{name}:-default}} for a default)",
                    m.start(),
                )
            value = default
        out.append(value)
    out.append(text[at:])
    return "".join(out)
