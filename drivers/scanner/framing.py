"""Cut a scanner's byte stream into frames, and reject what is not a frame.

Framings::

    cr / lf / crlf   text, then the terminator        "8035K7Q2M9X4TZ\\r\\n"
    stx_etx          STX (0x02), text, ETX (0x03)     "\\x028035K7Q2M9X4TZ\\x03" (CR/LF between
                                                       frames are tolerated)
    fixed            exactly ``frame_length`` bytes   "8035K7Q2M9X4TZ"

Garbage is never fatal: each rejected piece becomes a :class:`Frame` with ``error`` set and the
framer resynchronises on the next terminator (or STX; for ``fixed`` on the next chunk of bytes
that arrives, since fixed-length framing has nothing else to resynchronise on):

- *binary*: control bytes inside a frame, or bytes that do not decode in the encoding (the
  error names the first bad byte and its offset in the frame);
- *overlong*: more than ``max_bytes`` without a frame end (the rest up to the next end is
  dropped with it);
- *wrong framing*: bytes outside STX … ETX, an STX before the ETX, a CR or LF inside a
  frame (a CRLF scanner on a CR line), a frame never completed (:meth:`Framer.expire`).

What a chunk boundary cuts never matters: a CRLF split between two chunks still ends the frame
(also while the tail of an overlong frame is dropped). The framer holds at most ``max_bytes``
(plus a partial terminator) between two :meth:`Framer.feed` calls (:attr:`Framer.buffered`).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.scanner.config import Framing

__all__ = ["ETX", "STX", "Frame", "Framer", "show_bytes"]

STX, ETX = 0x02, 0x03
CR, LF = 0x0D, 0x0A
_TERMINATORS: dict[str, bytes] = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}
_FRAMING_BYTES = frozenset({CR, LF, STX, ETX, 0x09})  # judged separately (wrong framing)


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame's text, or why its bytes were rejected (``text`` None)."""

    raw: bytes
    text: str | None
    error: str | None = None


def show_bytes(raw: bytes, limit: int = 48) -> str:
    """Bytes for a log line or an event: printable ASCII as is, the rest escaped, truncated."""
    shown = raw[:limit].decode("ascii", "backslashreplace")
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in shown)
    return shown + (f"…(+{len(raw) - limit} bytes)" if len(raw) > limit else "")


class Framer:
    def __init__(
        self, framing: Framing, *, max_bytes: int, encoding: str, length: int | None = None
    ) -> None:
        if framing == "fixed" and not length:
            raise ValueError("fixed framing needs a length")
        self.framing = framing
        self.max_bytes = max_bytes
        self.encoding = encoding
        self.length = length or 0
        self._buf = bytearray()
        self._discarding = False  # dropping the tail of an overlong frame
        self._inside = False  # stx_etx: an STX was seen, no ETX yet
        self._outside = bytearray()  # stx_etx: bytes seen outside a frame

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished frame are waiting (see :meth:`expire`). Line ends between
        STX … ETX frames are not a frame."""
        return bool(self._buf or self._outside.strip(b"\r\n") or self._discarding)

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished frame (bounded by ``max_bytes`` + a partial terminator)."""
        return len(self._buf) + len(self._outside)

    def reset(self) -> list[Frame]:
        """Forget the state (link closed); an unfinished frame is returned as rejected."""
        out = self.expire("link closed in the middle of a frame")
        self._inside = False
        return out

    def expire(self, why: str | None = None) -> list[Frame]:
        """Reject the unfinished frame (it did not complete in time)."""
        out: list[Frame] = []
        raw = bytes(self._outside.strip(b"\r\n") + self._buf)
        if raw and not self._discarding:
            what = "STX … ETX" if self.framing == "stx_etx" else self._end_name()
            out.append(Frame(raw, None, why or f"incomplete frame: no {what} in time"))
        self._buf.clear()
        self._outside.clear()
        self._discarding = False
        self._inside = False
        return out

    def feed(self, data: bytes) -> list[Frame]:
        if self.framing == "fixed":
            return self._feed_fixed(data)
        if self.framing == "stx_etx":
            return self._feed_stx(data)
        return self._feed_terminated(data)

    # -- framings -------------------------------------------------------------------------------
    def _end_name(self) -> str:
        return {"cr": "CR", "lf": "LF", "crlf": "CRLF", "fixed": "full frame"}.get(
            self.framing, self.framing
        )

    def _feed_terminated(self, data: bytes) -> list[Frame]:
        term = _TERMINATORS[self.framing]
        self._buf += data
        out: list[Frame] = []
        while True:
            idx = self._buf.find(term)
            if idx < 0:
                break
            chunk = bytes(self._buf[:idx])
            del self._buf[: idx + len(term)]
            if self._discarding:
                self._discarding = False
                continue
            frame = self._check(chunk)
            if frame is not None:
                out.append(frame)
        out.extend(self._check_overlong())
        return out

    def _feed_stx(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        for byte in data:
            if not self._inside:
                if byte == STX:
                    junk = bytes(self._outside).strip(b"\r\n")
                    if junk:
                        out.append(Frame(junk, None, "bytes outside STX … ETX framing"))
                    self._outside.clear()
                    self._inside = True
                    self._discarding = False
                else:
                    self._outside.append(byte)
                    if len(self._outside) > self.max_bytes:
                        out.append(
                            Frame(
                                bytes(self._outside),
                                None,
                                f"bytes outside STX … ETX framing: more than {self.max_bytes} "
                                "bytes without an STX",
                            )
                        )
                        self._outside.clear()
                continue
            if byte == ETX:
                self._inside = False
                if self._discarding:
                    self._discarding = False
                else:
                    frame = self._check(bytes(self._buf))
                    if frame is not None:
                        out.append(frame)
                self._buf.clear()
            elif byte == STX:
                if not self._discarding:
                    out.append(Frame(bytes(self._buf), None, "STX before ETX: frame cut short"))
                self._buf.clear()
                self._discarding = False
            elif not self._discarding:
                self._buf.append(byte)
                if len(self._buf) > self.max_bytes:
                    out.append(self._overlong(bytes(self._buf)))
                    self._buf.clear()
                    self._discarding = True
        return out

    def _feed_fixed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        while len(self._buf) >= self.length:
            chunk = bytes(self._buf[: self.length])
            del self._buf[: self.length]
            frame = self._check(chunk)
            if frame is None:
                continue
            out.append(frame)
            if frame.error is not None:  # out of step: drop what is buffered, resync later
                self._buf.clear()
        return out

    # -- checks ---------------------------------------------------------------------------------
    def _overlong(self, raw: bytes) -> Frame:
        return Frame(raw, None, f"overlong frame: more than {self.max_bytes} bytes without an end")

    def _check_overlong(self) -> list[Frame]:
        """After a terminated feed: drop or reject what cannot become a frame, but keep a
        partial terminator (the CR of a CRLF whose LF is in the next chunk)."""
        body = len(self._buf)
        if self.framing == "crlf" and self._buf.endswith(b"\r"):
            body -= 1
        if self._discarding:
            del self._buf[:body]
            return []
        if body > self.max_bytes:
            frame = self._overlong(bytes(self._buf[:body]))
            del self._buf[:body]
            self._discarding = True
            return [frame]
        return []

    def _check(self, chunk: bytes) -> Frame | None:
        """A frame from its bytes; None for an empty frame (a bare terminator)."""
        if self.framing == "fixed":
            body = chunk.rstrip(b"\x00 ")
            if not body:
                return Frame(chunk, None, "empty fixed-length frame")
        else:
            body = chunk
        if not body.strip(b" \t\r\n"):
            return None
        if len(body) > self.max_bytes:
            return self._overlong(body)
        bad = next(
            (i for i, b in enumerate(body) if (b < 0x20 or b == 0x7F) and b not in _FRAMING_BYTES),
            None,
        )
        if bad is not None:
            return Frame(
                chunk,
                None,
                f"binary data: control bytes inside a frame (0x{body[bad]:02x} at byte {bad})",
            )
        if CR in body or LF in body:
            hint = {
                "cr": "is the scanner sending LF or CRLF?",
                "lf": "is the scanner sending CR or CRLF?",
                "crlf": "is the scanner sending CR or LF alone?",
            }.get(self.framing, "line ends inside a frame")
            return Frame(chunk, None, f"CR or LF inside a frame (framing {self.framing}: {hint})")
        if STX in body or ETX in body:
            if self.framing == "fixed":
                at = next(i for i, b in enumerate(body) if b in (STX, ETX))
                return Frame(
                    chunk,
                    None,
                    f"binary data: control bytes inside a frame (0x{body[at]:02x} at byte {at})",
                )
            return Frame(chunk, None, f"STX/ETX inside a frame (framing {self.framing})")
        try:
            text = body.decode(self.encoding)
        except UnicodeDecodeError as exc:
            return Frame(
                chunk,
                None,
                f"binary data: not {self.encoding} text "
                f"(0x{body[exc.start]:02x} at byte {exc.start})",
            )
        odd = next((i for i, c in enumerate(text) if c != "\t" and not c.isprintable()), None)
        if odd is not None:
            return Frame(
                chunk,
                None,
                f"binary data: non-printable characters (U+{ord(text[odd]):04X} at "
                f"character {odd})",
            )
        return Frame(chunk, text.strip())
