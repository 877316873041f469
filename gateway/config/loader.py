"""Load YAML config files into the pydantic model, reporting every mistake with its position.

Each problem is an :class:`Issue` printed ``FILE:LINE:COL: error: PATH: message`` (1-based),
for YAML syntax errors, duplicate keys, schema violations and cross-references alike.

A valid config may still name a driver or simulator whose optional packages are not installed
(gateway/config/extras.py): :func:`read_config` returns those as warnings, or raises them as
errors for the sections a command is about to start (``need``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from gateway.config.checks import cross_checks, profile_warnings
from gateway.config.cleartext import cleartext_risks
from gateway.config.env import MAP_DIR_VAR, EnvSubstitutionError, substitute
from gateway.config.extras import missing_extras, unusable_drivers
from gateway.config.models import (
    ConfigBase,
    JournalSection,
    config_model,
    config_model_for,
    device_adapter,
)

if TYPE_CHECKING:
    from gateway.console.config import ConsoleSection
    from gateway.resolver.config import ResolverFile, ResolverSection

__all__ = [
    "ConfigError",
    "Issue",
    "LoadedMap",
    "format_path",
    "load_config",
    "read_any_config",
    "read_config",
    "read_journal_path",
    "read_map",
    "read_resolver_config",
    "read_resolver_only",
]

Loc = tuple[str | int, ...]

MAX_DEPTH = 64  # nesting a config never needs (deeper ends in a RecursionError)
MAX_VALUES = 100_000  # values after expanding aliases (a "billion laughs" file stops here)


@dataclass(frozen=True, slots=True)
class Issue:
    file: str
    line: int
    col: int
    path: str
    message: str
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        message = " ".join(self.message.split())  # one line each, whatever the text held
        return f"{self.file}:{self.line}:{self.col}: {self.level}: {where}{message}"


class ConfigError(Exception):
    """A config file has mistakes; ``issues`` lists every one of them. ``sha256``: of the
    file's bytes, when it could be read (:func:`read_map`)."""

    def __init__(self, issues: list[Issue], sha256: str | None = None) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues
        self.sha256 = sha256


@dataclass
class _Positions:
    """Where each value (and each mapping key) sits in the file: 1-based (line, col)."""

    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    #: values whose ${NAME} could not be substituted: their issue says so, not the schema's
    unsubstituted: set[str] = field(default_factory=set)
    substitution_issues: list[Issue] = field(default_factory=list)

    def drop_echoes(self, issues: list[Issue]) -> list[Issue]:
        """``issues`` without the schema's complaints about an unsubstituted value."""
        return [
            i for i in issues
            if i.path not in self.unsubstituted or i in self.substitution_issues
        ]  # fmt: skip


def format_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _pos(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    """Turns a composed YAML node tree into plain data, recording positions; ``${NAME}`` in
    values is substituted from ``env`` (gateway/config/env.py)."""

    def __init__(self, file: str, env: Mapping[str, str] | None = None) -> None:
        self.file = file
        self.env = {
            **(os.environ if env is None else env),
            MAP_DIR_VAR: str(Path(file).resolve().parent),
        }
        self._resolver = Resolver()
        self.pos = _Positions()
        self.issues: list[Issue] = []
        self._scalars = SafeConstructor()
        self._values = 0
        self._open: set[int] = set()  # ids of the collection nodes being built (alias loops)

    def build(self, node: Node, loc: Loc = ()) -> Any:
        self._values += 1
        refusal = None
        if id(node) in self._open:
            refusal = "an alias refers to a value that contains it"
        elif len(loc) > MAX_DEPTH:
            refusal = f"nested more than {MAX_DEPTH} levels deep"
        elif self._values > MAX_VALUES:
            refusal = f"more than {MAX_VALUES} values (aliases expanding?)"
        if refusal is not None:
            if self._values <= MAX_VALUES + 1:  # the values limit is reported once
                line, col = _pos(node)
                self.issues.append(Issue(self.file, line, col, format_path(loc), refusal))
            return None
        if isinstance(node, MappingNode | SequenceNode):
            self._open.add(id(node))
            try:
                return self._build_collection(node, loc)
            finally:
                self._open.discard(id(node))
        if isinstance(node, ScalarNode) and "$" in node.value and loc[-1:] != ("<key>",):
            node = self._substituted(node, loc)
        return self._build_scalar(node, loc)

    def _substituted(self, node: ScalarNode, loc: Loc) -> ScalarNode:
        """The node with ``${NAME}`` replaced; an unquoted value is typed again (``${PORT}``
        → an int). A variable that cannot be substituted is an issue at its position."""
        try:
            value = substitute(node.value, self.env)
        except EnvSubstitutionError as exc:
            line, col = _pos(node)
            before = node.value[: exc.offset]
            if "\n" not in before:  # on the value's first line: point at the ${
                col += exc.offset + (0 if node.style is None else 1)
            path = format_path(loc)
            issue = Issue(self.file, line, col, path, str(exc))
            self.issues.append(issue)
            self.pos.substitution_issues.append(issue)
            self.pos.unsubstituted.add(path)
            value = node.value
        tag = node.tag
        if node.style is None and tag == "tag:yaml.org,2002:str":
            tag = self._resolver.resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
        return ScalarNode(tag, value, node.start_mark, node.end_mark, node.style)

    def _build_collection(self, node: MappingNode | SequenceNode, loc: Loc) -> Any:
        self.pos.values[loc] = _pos(node)
        if isinstance(node, MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.build(key_node, (*loc, "<key>"))
                if not isinstance(key, str | int | float | bool) or key is None:
                    line, col = _pos(key_node)
                    self.issues.append(
                        Issue(self.file, line, col, format_path(loc), "keys must be plain text")
                    )
                    continue
                key = str(key) if not isinstance(key, str) else key
                if key_node.tag == "tag:yaml.org,2002:merge":
                    line, col = _pos(key_node)
                    self.issues.append(
                        Issue(
                            self.file,
                            line,
                            col,
                            format_path(loc),
                            "merge keys (<<) are not supported",
                        )
                    )
                    continue
                if key in out:
                    line, col = _pos(key_node)
                    first = self.pos.keys[(*loc, key)]
                    self.issues.append(
                        Issue(
                            self.file,
                            line,
                            col,
                            format_path((*loc, key)),
                            f"duplicate key (first at line {first[0]})",
                        )
                    )
                    continue
                self.pos.keys[(*loc, key)] = _pos(key_node)
                out[key] = self.build(value_node, (*loc, key))
            return out
        return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]

    def _build_scalar(self, node: Node, loc: Loc) -> Any:
        self.pos.values[loc] = _pos(node)
        assert isinstance(node, ScalarNode)
        try:
            return self._scalars.construct_object(node, deep=True)
        except ConstructorError as exc:
            line, col = _pos(node)
            self.issues.append(Issue(self.file, line, col, format_path(loc), str(exc.problem)))
            return None


def _yaml_error(file: str, exc: yaml.YAMLError) -> Issue:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    msg = f"YAML syntax: {problem}" + (f" ({context})" if context else "")
    if mark is None:
        return Issue(file, 1, 1, "", msg)
    return Issue(file, mark.line + 1, mark.column + 1, "", msg)


def _walk(data: Any, loc: tuple[Any, ...]) -> tuple[Loc, bool]:
    """Drop the union tags pydantic puts into ``loc`` (they are not keys in the data).
    Returns the data path and whether the full path exists."""
    path: list[str | int] = []
    cur = data
    exists = True
    for part in loc:
        if (isinstance(cur, dict) and part in cur) or (
            isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        ):
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and isinstance(part, str) and not _is_union_tag(cur, part):
            path.append(part)  # a missing or unknown key
            exists = False
            cur = None
        elif cur is None or not isinstance(cur, dict | list):
            exists = False
            if isinstance(part, str) and part.startswith(("function-", "lax-", "strict-")):
                continue
            path.append(part)
        # else: a union tag (e.g. 'modbus', 'tcp'): not part of the data
    return tuple(path), exists


def _is_union_tag(mapping: dict[str, Any], part: str) -> bool:
    return part in {str(v) for v in mapping.values() if isinstance(v, str)}


def _message(err: ErrorDetails) -> str:
    etype = err["type"]
    ctx = err.get("ctx") or {}
    got = err.get("input")
    if etype == "missing":
        return "required key missing"
    if etype == "extra_forbidden":
        return "unknown key"
    if etype == "literal_error":
        expected = str(ctx.get("expected", ""))
        # strings come quoted ("'a', 'b' or 'c'"), numbers bare ("20, 25 or 30")
        options = re.findall(r"'([^']*)'", expected) or re.split(r",\s*|\s+or\s+", expected)
        return f"expected one of {', '.join(options)}; got {got!r}"
    if etype == "union_tag_invalid":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        return f"expected one of {', '.join(options)}; got {ctx.get('tag')!r}"
    if etype == "union_tag_not_found":
        return f"required key {ctx.get('discriminator', '')!s} missing".replace("'", "")
    msg = err["msg"]
    msg = msg.removeprefix("Value error, ")
    if isinstance(got, str | int | float | bool) and etype not in ("value_error",):
        return f"{msg[0].lower()}{msg[1:]}; got {got!r}"
    return f"{msg[0].lower()}{msg[1:]}"


def _locate(pos: _Positions, path: Loc, etype: str) -> tuple[int, int]:
    if etype == "extra_forbidden" and path in pos.keys:
        return pos.keys[path]
    if etype != "missing" and path in pos.values:
        return pos.values[path]
    probe = path[:-1] if etype == "missing" else path
    while probe and probe not in pos.values:
        probe = probe[:-1]
    return pos.values.get(probe, (1, 1))


def _issues_from_validation(
    file: str, data: Any, pos: _Positions, exc: ValidationError
) -> Iterator[Issue]:
    seen: set[tuple[int, int, str, str]] = set()
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if err["type"] == "union_tag_invalid":  # point at the key that picks the variant
            picker = str((err.get("ctx") or {}).get("discriminator", "")).strip("'")
            loc = (*loc, picker) if picker else loc
        path, _exists = _walk(data, loc)
        line, col = _locate(pos, path, err["type"])
        issue = Issue(file, line, col, format_path(path), _message(err))
        key = (line, col, issue.path, issue.message)
        if key not in seen:
            seen.add(key)
            yield issue


def parse_yaml(
    file: str, text: str, env: Mapping[str, str] | None = None
) -> tuple[Any, _Positions, list[Issue]]:
    """The data of ``text``, its positions and issues; ``env``: the variables ``${NAME}``
    takes (default: the process's environment)."""
    builder = _Builder(file, env)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        return None, builder.pos, [_yaml_error(file, exc)]
    except RecursionError:
        return None, builder.pos, [Issue(file, 1, 1, "", "YAML syntax: nested too deeply")]
    if node is None:
        return None, builder.pos, [Issue(file, 1, 1, "", "the file is empty")]
    data = builder.build(node)
    return data, builder.pos, builder.issues


def load_config(path: Path | str) -> ConfigBase:
    """Read and validate one config file; raise :class:`ConfigError` with every issue."""
    return read_config(path)[0]


def _read_mapping(
    path: Path | str, digest: list[str] | None = None
) -> tuple[dict[str, Any], _Positions, list[Issue]]:
    """The file's top-level mapping, positions and YAML issues; ConfigError when unreadable.
    ``digest``: receives the sha256 of the bytes read (the same bytes that are parsed)."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([Issue(file, 1, 1, "", f"cannot read: {exc.strerror}")]) from exc
    sha = hashlib.sha256(raw).hexdigest()
    if digest is not None:
        digest.append(sha)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Issue(file, 1, 1, "", f"not UTF-8 text: {exc.reason}")], sha) from exc
    data, pos, issues = parse_yaml(file, text)
    if issues and not isinstance(data, dict):
        raise ConfigError(issues, sha)
    if not isinstance(data, dict):
        raise ConfigError([Issue(file, 1, 1, "", "expected a mapping at the top level")], sha)
    return data, pos, issues


def _resolver_only(data: dict[str, Any]) -> bool:
    """A file for the resolver on its own host: ``resolver:`` and no ``gateway:`` section."""
    return "resolver" in data and "gateway" not in data


def read_resolver_only(path: Path | str) -> ResolverFile:
    """Read and validate a file holding only ``resolver:``; ConfigError with every issue."""
    from gateway.resolver.config import ResolverFile

    return _read_model(path, ResolverFile)


_M = TypeVar("_M", bound=BaseModel)


def _read_model(path: Path | str, model: type[_M]) -> _M:
    """Read a YAML file and validate it as ``model``; ConfigError with every issue, each at
    its line and column."""
    file = str(path)
    data, pos, issues = _read_mapping(path)
    cfg: _M | None
    try:
        cfg = model.model_validate(data)
    except ValidationError as exc:
        issues.extend(_issues_from_validation(file, data, pos, exc))
        cfg = None
    if issues:
        issues = pos.drop_echoes(issues)
        issues.sort(key=lambda i: (i.line, i.col))
        raise ConfigError(issues)
    assert cfg is not None
    return cfg


def _console_only(data: dict[str, Any]) -> bool:
    """A console file: ``console:`` and no ``gateway:`` section (docs/console.md)."""
    return "console" in data and "gateway" not in data


def read_console_config(path: Path | str) -> ConsoleSection:
    """The console's settings from a console file, or from the ``console:`` section of a full
    gateway config (validated whole, as ``saltgw validate`` does; the line, store and broker
    are the config's); ConfigError with every issue."""
    from gateway.console.config import ConsoleFile

    data, _pos, _issues = _read_mapping(path)
    if "gateway" not in data:
        return _read_model(path, ConsoleFile).console
    cfg, _warnings = read_config(path)
    if cfg.console is None:
        raise ConfigError(
            [Issue(str(path), 1, 1, "console", "no console: section (docs/console.md)")]
        )
    return cfg.console.resolve(cfg)


def read_resolver_config(path: Path | str) -> ResolverSection:
    """The ``resolver:`` section of a resolver-only file or of a full gateway config (which is
    then validated whole, as ``saltgw validate`` does); ConfigError with every issue."""
    data, _pos, _issues = _read_mapping(path)
    if _resolver_only(data) or "gateway" not in data:
        return read_resolver_only(path).resolver
    cfg, _warnings = read_config(path)
    if cfg.resolver is None:
        raise ConfigError(
            [Issue(str(path), 1, 1, "resolver", "no resolver: section (docs/resolver.md)")]
        )
    return cfg.resolver


def read_any_config(path: Path | str) -> tuple[BaseModel, list[Issue]]:
    """What ``saltgw validate`` checks: a resolver-only file, a console file, else a gateway
    config."""
    from gateway.console.config import ConsoleFile

    data, _pos, _issues = _read_mapping(path)
    if _resolver_only(data):
        return read_resolver_only(path), []
    if _console_only(data):
        return _read_model(path, ConsoleFile), []
    return read_config(path)


@dataclass(frozen=True, slots=True)
class LoadedMap:
    """A valid config as read from ``file``: ``sha256`` of the file's bytes (what a reload
    reports, gateway/reload.py), and its warnings."""

    file: str
    cfg: ConfigBase
    warnings: list[Issue]
    sha256: str


def read_map(path: Path | str, need: tuple[str, ...] = ()) -> LoadedMap:
    """:func:`read_config`, with the sha256 of the bytes validated; a :class:`ConfigError`
    carries it too when the file could be read."""
    digest: list[str] = []
    try:
        cfg, warnings = _read_config(path, need, digest)
    except ConfigError as exc:
        exc.sha256 = exc.sha256 or (digest[0] if digest else None)
        raise
    return LoadedMap(str(path), cfg, warnings, digest[0])


def read_journal_path(path: Path | str) -> Path:
    """``journal.path`` of a map that need not be valid (``saltgw reload`` finds the running
    gateway's control socket beside it); the default when it names none. ConfigError when the
    file is not a YAML mapping."""
    data, _pos, _issues = _read_mapping(path)
    journal = data.get("journal")
    value = journal.get("path") if isinstance(journal, dict) else None
    if isinstance(value, str) and value:
        return Path(value)
    default = JournalSection.model_fields["path"].default
    assert isinstance(default, Path)
    return default


def read_config(path: Path | str, need: tuple[str, ...] = ()) -> tuple[ConfigBase, list[Issue]]:
    """Read and validate one config file: the config and its warnings (drivers or simulators
    whose optional packages are not installed). Raises :class:`ConfigError` with every issue;
    missing packages of the sections in ``need`` (``"devices"``, ``"simulators"``) are errors.
    """
    return _read_config(path, need, None)


def _validated(
    model: type[ConfigBase], data: Any
) -> tuple[ConfigBase, None] | tuple[None, ValidationError]:
    try:
        return model.model_validate(data), None
    except ValidationError as exc:
        return None, exc


def _read_config(
    path: Path | str, need: tuple[str, ...], digest: list[str] | None
) -> tuple[ConfigBase, list[Issue]]:
    file = str(path)
    data, pos, issues = _read_mapping(path, digest)
    # the model of what the file names; when it refuses the file, the full model says why
    # (the same errors whatever the file names; gateway/config/models.py)
    model = config_model_for(data)
    cfg, error = _validated(model, data)
    if error is not None and model is not config_model():
        cfg, error = _validated(config_model(), data)
    if error is not None:
        issues.extend(_issues_from_validation(file, data, pos, error))
    for i, message in unusable_drivers(data):  # said instead of "expected one of …"
        entry = f"devices[{i}]"
        issues = [x for x in issues if x.path != entry and not x.path.startswith(entry + ".")]
        line, col = _locate(pos, ("devices", i, "driver"), "value")
        issues.append(Issue(file, line, col, f"{entry}.driver", message))
    valid = cfg  # its devices are the entries validated, index for index
    for loc, message in cross_checks(
        data,
        (lambda i, _entry: valid.devices[i])
        if valid is not None
        else (lambda _i, entry: device_adapter().validate_python(entry)),
    ):
        data_path, _ = _walk(data, loc)
        line, col = _locate(pos, data_path, "value")
        issues.append(Issue(file, line, col, format_path(data_path), message))
    warnings: list[Issue] = []
    for loc, message in profile_warnings(data):  # settings a profile needs (it still runs)
        data_path, _ = _walk(data, loc)
        line, col = _locate(pos, data_path, "value")
        warnings.append(Issue(file, line, col, format_path(data_path), message, "warning"))
    for risk in cleartext_risks(cfg) if cfg is not None else ():  # secrets sent in clear
        line, col = _locate(pos, risk.loc, "value")
        level_c: Literal["error", "warning"] = "warning" if risk.allowed else "error"
        issue = Issue(file, line, col, format_path(risk.loc), risk.message, level_c)
        (warnings if risk.allowed else issues).append(issue)
    for missing in missing_extras(cfg) if cfg is not None else ():
        line, col = _locate(pos, missing.loc, "value")
        level: Literal["error", "warning"] = "error" if missing.section in need else "warning"
        issue = Issue(file, line, col, missing.entry, missing.message, level)
        (issues if level == "error" else warnings).append(issue)
    if issues:
        issues = pos.drop_echoes(issues)
        issues.sort(key=lambda i: (i.line, i.col))
        raise ConfigError(issues)
    assert cfg is not None
    return cfg, warnings
