"""Coverage-guided fuzzing with atheris (libFuzzer), for long runs on a developer's machine.

atheris is optional (``pip install atheris``; not a dependency, CI does without it)::

    python tests/fuzz/atheris_targets.py framing -max_total_time=600
    python tests/fuzz/atheris_targets.py commands -runs=200000 var/corpus-commands/

Targets: ``framing``, ``codes``, ``modbus``, ``commands``. Each decodes libFuzzer's bytes into an
input for the code under test and checks the invariants of the hypothesis properties beside this
file (their ``check_*`` helpers). libFuzzer writes a failing input to ``crash-<sha1>``: replay it
with ``python tests/fuzz/atheris_targets.py TARGET crash-<sha1>`` and keep it as an ``@example``.
``tests/fuzz/test_atheris.py`` runs each target briefly when atheris is installed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["drivers", "gateway"]):
    from drivers.modbus.codec import DecodeError, apply_scaling, decode_registers
    from gateway.codes import TraceCodeRules, check_code
    from tests.fuzz.test_codes_fuzz import OWN, check_verdict
    from tests.fuzz.test_commands_fuzz import ROOT, Line
    from tests.fuzz.test_modbus_codec_fuzz import TYPES, check_reason, check_value
    from tests.fuzz.test_scanner_framing_fuzz import Line as ScannerLine
    from tests.fuzz.test_scanner_framing_fuzz import check_frame

FRAMINGS = ["cr", "lf", "crlf", "stx_etx", "fixed"]
ENCODINGS = ["utf-8", "ascii", "latin-1", "gb18030"]
RULES = [
    TraceCodeRules(),
    TraceCodeRules(own_enterprise_only=False, require_annex_a=False, charset="0123456789#%/?"),
    TraceCodeRules(resolver_hosts=["trace.example.cn"], min_random_len=1, max_random_len=4),
]


def fuzz_framing(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    framing = fdp.PickValueInList(FRAMINGS)
    max_bytes = fdp.ConsumeIntInRange(8, 64)
    length = fdp.ConsumeIntInRange(1, max_bytes) if framing == "fixed" else None
    line = ScannerLine(framing, fdp.PickValueInList(ENCODINGS), max_bytes, length)
    framer = line.framer()
    while fdp.remaining_bytes():
        for frame in framer.feed(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 48))):
            check_frame(frame, line)
        assert framer.buffered <= max_bytes + 1
    for frame in framer.expire():
        check_frame(frame, line)
    assert not framer.pending


def fuzz_codes(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    rules = fdp.PickValueInList(RULES)
    raw = fdp.ConsumeUnicode(fdp.remaining_bytes())
    check_verdict(check_code(raw, rules, OWN), raw, rules, OWN)


def fuzz_modbus(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    type_ = fdp.PickValueInList(TYPES)
    orders = ["big", "little"]
    byte_order, word_order = fdp.PickValueInList(orders), fdp.PickValueInList(orders)
    length = fdp.ConsumeIntInRange(0, 8) if fdp.ConsumeBool() else None
    bit = fdp.ConsumeIntInRange(-1, 16) if fdp.ConsumeBool() else None
    scale, offset = fdp.ConsumeRegularFloat(), fdp.ConsumeFloat()
    minimum = fdp.ConsumeFloat() if fdp.ConsumeBool() else None
    regs = fdp.ConsumeIntListInRange(fdp.ConsumeIntInRange(0, 8), 0, 0xFFFF)
    try:
        value = decode_registers(
            regs, type_, byte_order=byte_order, word_order=word_order, length=length, bit=bit
        )
        value = apply_scaling(value, scale=scale, offset=offset, minimum=minimum)
    except DecodeError as exc:
        check_reason(exc)
    else:
        check_value(value)


def fuzz_commands(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    device = fdp.PickValueInList(["plc1", "plc2", "cw1", "case1", "nope"])
    retained = fdp.ConsumeBool()
    Line().run([(f"{ROOT}/{device}", fdp.ConsumeBytes(fdp.remaining_bytes()), retained)])


TARGETS: dict[str, Callable[[bytes], None]] = {
    "framing": fuzz_framing,
    "codes": fuzz_codes,
    "modbus": fuzz_modbus,
    "commands": fuzz_commands,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options and corpus]")
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
