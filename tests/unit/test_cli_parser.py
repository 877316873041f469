"""The ``saltgw`` parser built for one of its own verbs (gateway/cli.py ``build_parser(verb)``)
parses, helps and fails exactly as the full parser does; the other modules' sub-commands are
only left out (docs/performance.md, "Gateway memory", fourth pass)."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from gateway.cli import OWN_VERBS, build_parser, verb_of


def _verbs(p: argparse.ArgumentParser) -> list[str]:
    (sub,) = (a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def _outcome(p: argparse.ArgumentParser, argv: list[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: object = vars(p.parse_args(argv))
        except SystemExit as exc:
            result = ("exit", exc.code)
    return result, out.getvalue(), err.getvalue()


def test_own_verbs_are_the_ones_cli_defines() -> None:
    full = _verbs(build_parser())
    assert full[: len(OWN_VERBS)] == list(OWN_VERBS)
    assert {"verify", "trace", "import", "resolver", "console", "certs"} <= set(full)
    for verb in OWN_VERBS:
        assert _verbs(build_parser(verb)) == list(OWN_VERBS)


@pytest.mark.parametrize(
    ("argv", "verb"),
    [
        (["run", "map.yaml"], "run"),
        (["--log-level", "debug", "run", "map.yaml"], "run"),
        (["--log-level=debug", "--log-format", "json", "sim", "x.yaml"], "sim"),
        (["--log-l", "warning", "validate", "a.yaml"], "validate"),  # argparse's abbreviation
        (["verify", "map.yaml"], None),  # another module's verb: the full parser
        (["--help"], None),
        ([], None),
        (["--log-level", "bogus", "run", "map.yaml"], None),  # the full parser reports it
        (["--log-level"], None),
        (["--", "run"], None),
        (["run-it"], None),
    ],
)
def test_verb_of(argv: list[str], verb: str | None) -> None:
    assert verb_of(argv) == verb


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "map.yaml", "--broker", "mqtt://127.0.0.1:1883", "--http", ":9108"],
        ["run", "--help"],
        ["run"],  # missing CONFIG.yaml
        ["run", "map.yaml", "--nope"],
        ["--log-level", "debug", "--log-format", "json", "reload", "m.yaml", "--timeout", "3"],
        ["health", "--timeout", "x"],
        ["demo", "--duration", "5", "--sparkplug"],
        ["validate", "-q", "a.yaml", "b.yaml"],
        ["schema", "--markdown", "--events"],
        ["sim", "--help"],
        ["decode", "a.png", "--json", "--enterprise", "8035"],
    ],
)
def test_a_verb_parses_helps_and_fails_as_in_the_full_parser(argv: list[str]) -> None:
    verb = verb_of(argv)
    assert verb in OWN_VERBS
    assert _outcome(build_parser(verb), argv) == _outcome(build_parser(), argv)
