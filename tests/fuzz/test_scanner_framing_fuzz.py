"""Fuzzing the scanner framer (drivers/scanner/framing.py) and driver.

A scanner line carries frames in one of five framings, cut by TCP or a serial port wherever they
happen to be cut, with garbage in between: binary bytes, text in another encoding, overlong runs,
the wrong framing. Whatever arrives, the framer must not raise or hang, hold at most
``max_frame_bytes`` (plus a partial CRLF), return every well-formed code exactly once and in
order whatever the chunking, and turn each piece of garbage into a rejection that names what is
wrong (and, for binary data, the first bad byte and where it is).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from typing import Any
from unittest.mock import patch

from hypothesis import example, given
from hypothesis import strategies as st

from drivers.base import DeviceOffline, Reading
from drivers.scanner import Framer, ScannerDeviceConfig, ScannerDriver, split_codes
from drivers.scanner.framing import Frame
from tests.fuzz.hypothesis_settings import fuzz_settings

TERMINATED = ("cr", "lf", "crlf")
STREAMED = (*TERMINATED, "stx_etx")
ENCODINGS = ("utf-8", "ascii", "latin-1", "gb18030")
ENDS = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}
STX, ETX = b"\x02", b"\x03"
#: control bytes that are garbage in every framing (not STX/ETX, TAB, CR, LF)
CONTROL = bytes(b for b in [*range(0x20), 0x7F] if b not in (0x02, 0x03, 0x09, 0x0A, 0x0D))
#: a byte that is never text in the encoding (latin-1 decodes anything: a C1 control then)
BAD_BYTE = {"utf-8": b"\xff", "ascii": b"\x80", "gb18030": b"\xff", "latin-1": b"\x85"}
#: how every rejection starts: what is wrong
REJECTIONS = (
    "binary data",
    "overlong frame",
    "CR or LF inside a frame",
    "STX/ETX inside a frame",
    "bytes outside STX … ETX framing",
    "STX before ETX",
    "incomplete frame",
    "empty fixed-length frame",
    "link closed",
)
WHERE = re.compile(r"\((0x[0-9a-f]{2} at byte \d+|U\+[0-9A-F]{4,6} at character \d+)\)")


@dataclass(frozen=True)
class Line:
    """One scanner line's settings."""

    framing: str
    encoding: str
    max_bytes: int
    length: int | None = None

    def framer(self) -> Framer:
        return Framer(
            self.framing,  # type: ignore[arg-type]
            max_bytes=self.max_bytes,
            encoding=self.encoding,
            length=self.length,
        )


@dataclass(frozen=True)
class Piece:
    """Bytes on the line and what the framer must make of them: a code (``text``), a
    rejection whose error starts with ``error``, or nothing (both None)."""

    raw: bytes
    text: str | None = None
    error: str | None = None


# -- strategies ---------------------------------------------------------------------------------
def lines(framings: tuple[str, ...] = STREAMED) -> st.SearchStrategy[Line]:
    return st.builds(
        Line,
        framing=st.sampled_from(framings),
        encoding=st.sampled_from(ENCODINGS),
        max_bytes=st.sampled_from([8, 16, 40, 512]),
    )


@st.composite
def code_text(draw: Any, line: Line, limit: int) -> str:
    """A code as a scanner sends it: printable text of at most ``limit`` bytes in the line's
    encoding, no leading or trailing blanks (the framer strips them)."""
    chars = st.characters(codec=line.encoding, categories=("L", "N", "P", "S"))
    text = draw(st.text(chars | st.just(" "), min_size=1, max_size=limit)).strip()
    while len(text.encode(line.encoding)) > limit:
        text = text[:-1].strip()
    return text or "8035K7Q2M9X4TZ"[: max(1, min(limit, 14))]


def _ascii(draw: Any, max_size: int, min_size: int = 0) -> bytes:
    text: str = draw(
        st.text(
            st.characters(min_codepoint=0x21, max_codepoint=0x7E),
            min_size=min_size,
            max_size=max_size,
        )
    )
    return text.encode()


@st.composite
def garbage(draw: Any, line: Line) -> Piece:
    """One piece of garbage that the line's framing can still find the end of."""
    kinds = ["binary", "undecodable", "overlong", "blank"]
    kinds += ["cut", "outside"] if line.framing == "stx_etx" else ["stx_inside", "line_end"]
    kind = draw(st.sampled_from(kinds))
    forbidden = b"\x02\x03" if line.framing == "stx_etx" else ENDS[line.framing][:1]
    room = line.max_bytes - 2
    if kind == "binary":
        tail = draw(st.binary(max_size=room)).translate(None, forbidden)
        body = _ascii(draw, room)
        pos = draw(st.integers(0, len(body)))
        body = body[:pos] + draw(st.sampled_from(CONTROL)).to_bytes(1, "big") + body[pos:] + tail
        return _framed(line, body[: line.max_bytes - 1], "binary data")
    if kind == "undecodable":
        body = _ascii(draw, room // 2) + BAD_BYTE[line.encoding] + _ascii(draw, room // 2)
        return _framed(line, body, "binary data")
    if kind == "overlong":
        size = draw(st.integers(line.max_bytes + 1, line.max_bytes + 80))
        body = (
            draw(st.binary(min_size=size, max_size=size)).translate(None, forbidden) + b"A" * size
        )[:size]
        return _framed(line, body, "overlong frame")
    if kind == "blank":
        return _framed(line, draw(st.sampled_from([b"", b" ", b"\t ", b"  \t"])), None)
    if kind == "stx_inside":
        body = _ascii(draw, room // 2) + STX + _ascii(draw, room // 2) + ETX
        return _framed(line, body[: line.max_bytes], "STX/ETX inside a frame")
    if kind == "line_end":
        stray = b"\n" if line.framing == "cr" else b"\r"
        body = _ascii(draw, room // 2, 1) + stray + _ascii(draw, room // 2, 1)
        return _framed(line, body, "CR or LF inside a frame")
    if kind == "cut":  # an STX, a partial frame, then the next frame's STX
        return Piece(STX + _ascii(draw, room), None, "STX before ETX")
    junk = _ascii(draw, line.max_bytes - 4, 1)  # outside: text with no STX … ETX around it
    return Piece(junk, None, "bytes outside STX … ETX framing")


def _framed(line: Line, body: bytes, error: str | None) -> Piece:
    if line.framing == "stx_etx":
        return Piece(STX + body + ETX, None, error)
    return Piece(body + ENDS[line.framing], None, error)


def good(line: Line, text: str, crlf_after_etx: bool = False) -> Piece:
    body = text.encode(line.encoding)
    if line.framing == "stx_etx":
        return Piece(STX + body + ETX + (b"\r\n" if crlf_after_etx else b""), text)
    return Piece(body + ENDS[line.framing], text)


@st.composite
def streams(draw: Any, line: Line) -> list[Piece]:
    """Codes and garbage as a scanner line carries them."""
    pieces: list[Piece] = []
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.integers(0, 2)):
            text = draw(code_text(line, min(line.max_bytes, 40)))
            pieces.append(good(line, text, draw(st.booleans())))
        else:
            junk = draw(garbage(line))
            pieces.append(junk)
            if junk.error in ("STX before ETX", "bytes outside STX … ETX framing"):
                # only the next STX ends these: a frame follows
                pieces.append(good(line, draw(code_text(line, min(line.max_bytes, 40)))))
    return pieces


@st.composite
def chunked(draw: Any, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary points (byte by byte sometimes), as a link delivers it."""
    if draw(st.integers(0, 9)) == 0:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=24))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds) if b > a]


# -- helpers ------------------------------------------------------------------------------------
def feed_all(line: Line, chunks: list[bytes]) -> tuple[list[Frame], Framer]:
    framer = line.framer()
    frames: list[Frame] = []
    for chunk in chunks:
        frames.extend(framer.feed(chunk))
        assert framer.buffered <= line.max_bytes + 1, (framer.buffered, line)
    frames.extend(framer.expire())
    assert not framer.pending and framer.buffered == 0
    return frames, framer


def outcome(frames: list[Frame]) -> list[tuple[str | None, str | None]]:
    return [(f.text, f.error) for f in frames]


def check_frame(frame: Frame, line: Line) -> None:
    """A frame is a code or a rejection that says what is wrong, never both or neither."""
    assert (frame.text is None) != (frame.error is None), frame
    if frame.text is not None:
        assert frame.text and frame.text == frame.text.strip(), frame
        assert frame.text.replace("\t", " ").isprintable(), frame
        assert len(frame.text.encode(line.encoding)) <= line.max_bytes
    else:
        assert frame.error is not None and frame.error.startswith(REJECTIONS), frame.error
        if frame.error.startswith("binary data"):
            assert WHERE.search(frame.error), frame.error


# -- properties ---------------------------------------------------------------------------------
@st.composite
def cases(draw: Any) -> tuple[Line, list[Piece], list[bytes]]:
    line = draw(lines())
    pieces = draw(streams(line))
    return line, pieces, draw(chunked(b"".join(p.raw for p in pieces)))


def _overlong_then_code(chunks: list[bytes]) -> tuple[Line, list[Piece], list[bytes]]:
    pieces = [
        Piece(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n", None, "overlong frame"),
        Piece(b"8035K7Q2\r\n", "8035K7Q2"),
    ]
    return Line("crlf", "utf-8", 8), pieces, chunks


@fuzz_settings(250)
@given(cases())
# an overlong frame's CR in one chunk and its LF in the next: the next code was swallowed
@example(_overlong_then_code([b"ABCDEFGHIJKLMNOPQRSTUVWXYZ\r", b"\n8035K7Q2\r\n"]))
# a frame of exactly max_bytes with its CRLF split between chunks was rejected as overlong
@example(
    (
        Line("crlf", "utf-8", 8),
        [Piece(b"8035K7Q2\r\n", "8035K7Q2"), Piece(b"8035K7Q3\r\n", "8035K7Q3")],
        [b"8035K7Q2\r", b"\n8035K7Q3\r\n"],
    )
)
# vertical tab and form feed made a frame "blank": dropped silently instead of rejected
@example(
    (
        Line("lf", "ascii", 8),
        [Piece(b"\x0b\x0c\n", None, "binary data"), Piece(b"8035K7Q2\n", "8035K7Q2")],
        [b"\x0b\x0c\n8035K7Q2\n"],
    )
)
# CRLF after each STX … ETX frame was held as an unfinished frame, then rejected on time-out
@example(
    (
        Line("stx_etx", "utf-8", 16),
        [Piece(b"\x028035K7Q2\x03\r\n", "8035K7Q2")],
        [b"\x028035K7Q2\x03\r", b"\n"],
    )
)
def test_codes_come_out_once_in_order_and_garbage_is_rejected(
    case: tuple[Line, list[Piece], list[bytes]],
) -> None:
    line, pieces, chunks = case
    stream = b"".join(p.raw for p in pieces)
    assert b"".join(chunks) == stream
    frames, _ = feed_all(line, chunks)
    want = [(p.text, p.error) for p in pieces if p.text is not None or p.error is not None]
    got = outcome(frames)
    assert len(got) == len(want), (got, want, stream)
    for (text, error), (want_text, want_error) in zip(got, want, strict=True):
        if want_text is not None:
            assert text == want_text, (got, want)
        else:
            assert error is not None and want_error is not None, (got, want)
            assert error.startswith(want_error), (error, want_error)
    for frame in frames:
        check_frame(frame, line)


NOISE = st.lists(
    st.binary(max_size=24)
    | st.sampled_from(
        [
            b"\r",
            b"\n",
            b"\r\n",
            STX,
            ETX,
            b"\x00",
            b"\xff",
            b"8035K7Q2M9X4TZ",
            b"NoRead",
            "盐".encode(),
            "盐".encode("gb18030"),
            b"A" * 600,
        ]
    ),
    max_size=30,
).map(b"".join)


@fuzz_settings(300)
@given(st.data(), lines(), NOISE)
@example(None, Line("crlf", "utf-8", 8), b"AAAAAAAAAAAA\rX\r\n8035K7Q2\r\n")
def test_any_bytes_any_chunking_same_frames_bounded_buffer(
    data: st.DataObject | None, line: Line, stream: bytes
) -> None:
    chunks = data.draw(chunked(stream)) if data is not None else [stream[:13], stream[13:]]
    whole, _ = feed_all(line, [stream])
    cut, _ = feed_all(line, chunks)
    assert outcome(cut) == outcome(whole)
    for frame in whole:
        check_frame(frame, line)


@fuzz_settings(100)
@given(
    st.sampled_from(ENCODINGS),
    st.integers(8, 24),
    st.data(),
)
def test_fixed_length_frames_read_whatever_the_chunking(
    encoding: str, length: int, data: st.DataObject
) -> None:
    line = Line("fixed", encoding, 512, length)
    texts = data.draw(st.lists(code_text(line, length), min_size=1, max_size=8))
    pads = data.draw(
        st.lists(st.sampled_from([b" ", b"\x00"]), min_size=len(texts), max_size=len(texts))
    )
    stream = b"".join(
        t.encode(encoding).ljust(length, pad) for t, pad in zip(texts, pads, strict=True)
    )
    frames, _ = feed_all(line, data.draw(chunked(stream)))
    assert [f.text for f in frames] == texts


@fuzz_settings(100)
@given(st.sampled_from(ENCODINGS), st.integers(8, 24), st.data())
def test_fixed_length_garbage_drops_its_burst_and_the_next_burst_reads(
    encoding: str, length: int, data: st.DataObject
) -> None:
    """A fixed-length line resynchronises on the next burst: a garbage frame is rejected, the
    rest of its burst dropped, and every later burst reads."""
    line = Line("fixed", encoding, 512, length)
    bursts: list[bytes] = []
    want: list[str] = []
    for _ in range(data.draw(st.integers(1, 5))):
        texts = data.draw(st.lists(code_text(line, length), min_size=1, max_size=3))
        frames = [t.encode(encoding).ljust(length) for t in texts]
        bad = data.draw(st.none() | st.integers(0, len(frames) - 1))
        if bad is not None:
            junk = bytearray(data.draw(st.binary(min_size=length, max_size=length)))
            junk[data.draw(st.integers(0, length - 1))] = data.draw(st.sampled_from(CONTROL))
            frames[bad] = bytes(junk)
            want.extend(texts[:bad])
            want.append("!")
        else:
            want.extend(texts)
        bursts.append(b"".join(frames))
    got, _ = feed_all(line, bursts)
    for frame in got:
        check_frame(frame, line)
    assert ["!" if f.text is None else f.text for f in got] == want


@fuzz_settings(200)
@given(st.sampled_from([*ENCODINGS]), st.integers(1, 40), st.data())
def test_fixed_length_any_bytes(encoding: str, length: int, data: st.DataObject) -> None:
    line = Line("fixed", encoding, max(8, length), length)
    stream = data.draw(NOISE)
    frames, _ = feed_all(line, data.draw(chunked(stream)))
    for frame in frames:
        check_frame(frame, line)


# -- the driver: frames become readings ---------------------------------------------------------
class RecordedLink:
    """A ByteLink double replaying chunks; then the line falls silent and the link closes."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = deque(chunks)

    async def recv(self, wait_secs: float | None) -> bytes | None:
        if self.chunks:
            return self.chunks.popleft()
        if wait_secs is not None:
            return None  # nothing within the frame time-out
        raise DeviceOffline("end of the recorded stream")

    async def close(self) -> None:
        return None


async def _readings(cfg: ScannerDeviceConfig, chunks: list[bytes]) -> list[Reading]:
    async def replay(*_: Any) -> RecordedLink:
        return RecordedLink(chunks)

    driver = ScannerDriver(cfg)
    out: list[Reading] = []
    with patch("drivers.scanner.driver.open_tcp", replay):
        await driver.connect()
        # bounded: every reading consumes at least one byte, and each chunk may end in a wait
        for _ in range(sum(len(c) for c in chunks) + len(chunks) * 4 + 10):
            try:
                out.append(await driver.read())
            except DeviceOffline:
                return out
    raise AssertionError("the driver kept reading after the stream ended")


MARKERS = ["NoRead", "ERROR"]


@fuzz_settings(120)
@given(st.data(), lines(("crlf", "stx_etx")), st.sampled_from([None, ";"]))
def test_driver_gives_one_reading_per_frame(
    data: st.DataObject, line: Line, separator: str | None
) -> None:
    pieces = data.draw(streams(line))
    if data.draw(st.booleans()):
        pieces.insert(data.draw(st.integers(0, len(pieces))), good(line, "noread"))
    chunks = data.draw(chunked(b"".join(p.raw for p in pieces)))
    cfg = ScannerDeviceConfig(
        id="scan1",
        driver="scanner",
        connection={"type": "tcp_client", "host": "127.0.0.1", "port": 9},  # type: ignore[arg-type]
        framing=line.framing,  # type: ignore[arg-type]
        max_frame_bytes=line.max_bytes,
        encoding=line.encoding,  # type: ignore[arg-type]
        separator=separator,
        noread_markers=MARKERS,
    )
    readings = asyncio.run(_readings(cfg, chunks))
    want = [p for p in pieces if p.text is not None or p.error is not None]
    assert len(readings) == len(want)
    rejected = 0
    for n, (reading, piece) in enumerate(zip(readings, want, strict=True), start=1):
        assert reading.device == "scan1" and reading.values["frames"] == n
        if piece.text is None:
            rejected += 1
            assert piece.error is not None and reading.errors["frame"].startswith(piece.error)
            assert reading.values["codes"] == "" and reading.values["noread"] is False
        elif piece.text.casefold() in {m.casefold() for m in MARKERS}:
            assert reading.values["noread"] is True and reading.values["codes"] == ""
        else:
            assert not reading.errors
            assert reading.values["codes"] == "\n".join(split_codes(piece.text, separator))
        assert reading.values["rejected"] == rejected
