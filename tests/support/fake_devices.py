"""Tiny raw-socket devices that die the way real ones do: in the middle of a frame.

- :class:`HalfModbus` is a Modbus TCP server (function 3 only) for a checkweigher-shaped register
  map. In ``good`` mode it answers every request; in a cut mode it answers the first request of a
  connection with part of the response (half the MBAP header, or the header and half the PDU),
  then closes (FIN), resets (RST) or goes silent. In ``down`` mode nothing listens.
- :class:`DyingScanner` is a fixed code scanner's TCP data port (the gateway connects to it). Each
  connection plays the next script: send bytes, pause, close or reset.

Both run on daemon threads with bounded waits and stop by themselves on :meth:`close`.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import threading
import time
from collections.abc import Sequence
from typing import Literal

from tests.support.net import free_port

ModbusMode = Literal["good", "down", "half_mbap_close", "half_pdu_reset", "half_pdu_stall"]


def _reset(conn: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER 0)."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            chunk = conn.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


class _Listener:
    """Accepts on a fixed loopback port on a thread; ``serve(conn)`` runs per connection."""

    def __init__(self, port: int | None) -> None:
        self.port = port or free_port()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0

    def listen(self) -> None:
        assert self._sock is None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(8)
        sock.settimeout(0.1)
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, args=(sock,), daemon=True)
        self._thread.start()

    def unlisten(self) -> None:
        """Stop listening and cut every open connection (a device powered off)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            _reset(c)

    close = unlisten

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.2)
            with self._lock:
                self._conns.add(conn)
                self.connections += 1
            threading.Thread(target=self._serve_and_forget, args=(conn,), daemon=True).start()

    def _serve_and_forget(self, conn: socket.socket) -> None:
        try:
            self.serve(conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class HalfModbus(_Listener):
    """Holding registers 0-7 of a checkweigher: count (uint32), weight_g (float32), status.

    In ``good`` mode the count goes up by one every ``polls_per_bag`` requests and every bag
    weighs ``weight_g``; any other weight in an event is a reading made of a cut frame.
    """

    def __init__(
        self, port: int | None = None, *, weight_g: float = 400.0, polls_per_bag: int = 3
    ) -> None:
        super().__init__(port)
        self.mode: ModbusMode = "good"
        self.weight_g = weight_g
        self.polls_per_bag = polls_per_bag
        self.count = 1000
        self.requests = 0
        self.cut_frames = 0

    def set_mode(self, mode: ModbusMode) -> None:
        was_down = self.mode == "down"
        self.mode = mode
        if mode == "down" and not was_down:
            self.unlisten()
        elif was_down and mode != "down":
            self.listen()

    def registers(self) -> list[int]:
        self.requests += 1
        if self.requests % self.polls_per_bag == 0:
            self.count += 1
        weight = struct.unpack(">HH", struct.pack(">f", self.weight_g))
        return [self.count >> 16, self.count & 0xFFFF, *weight, 0b10, 400, 0, 0]

    def _response(self, tid: int, unit: int, pdu: bytes) -> bytes:
        fc, addr, count = struct.unpack(">BHH", pdu[:5])
        if fc != 3 or addr + count > 8:
            body = struct.pack(">BB", fc | 0x80, 1 if fc != 3 else 2)
        else:
            regs = self.registers()[addr : addr + count]
            body = struct.pack(">BB", 3, 2 * count) + struct.pack(f">{count}H", *regs)
        return struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body

    def serve(self, conn: socket.socket) -> None:
        while not self.stopping():
            head = _recv_exact(conn, 7)
            if head is None:
                return
            tid, _pid, length, unit = struct.unpack(">HHHB", head)
            pdu = _recv_exact(conn, length - 1)
            if pdu is None:
                return
            resp = self._response(tid, unit, pdu)
            mode = self.mode
            if mode == "good":
                conn.sendall(resp)
                continue
            self.cut_frames += 1
            if mode == "half_mbap_close":  # 3 of the 7 header bytes, then FIN
                conn.sendall(resp[:3])
                conn.shutdown(socket.SHUT_WR)
                time.sleep(0.05)
                return
            conn.sendall(resp[: 7 + (len(resp) - 7) // 2])  # header, half the PDU
            if mode == "half_pdu_reset":
                _reset(conn)
                return
            deadline = time.monotonic() + 10  # half_pdu_stall: silent until the client gives up
            while time.monotonic() < deadline and not self.stopping():
                try:
                    if not conn.recv(256):
                        return
                except TimeoutError:
                    continue
            return


Step = tuple[str, bytes] | tuple[str, float] | tuple[str]  # ("send", b), ("sleep", s), ("close",)


class DyingScanner(_Listener):
    """Each connection plays the next queued script of steps: ``("send", data)``,
    ``("sleep", secs)``, ``("close",)`` (FIN) or ``("reset",)`` (RST); then, or with no script
    queued, it stays connected and silent, as a scanner between bags."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self.scripts: queue.SimpleQueue[Sequence[Step]] = queue.SimpleQueue()

    def play(self, *steps: Step) -> None:
        self.scripts.put(steps)

    def serve(self, conn: socket.socket) -> None:
        try:
            steps: Sequence[Step] = self.scripts.get_nowait()
        except queue.Empty:
            steps = ()
        for step in steps:
            if step[0] == "send":
                conn.sendall(step[1])  # type: ignore[misc]
            elif step[0] == "sleep":
                time.sleep(step[1])  # type: ignore[misc]
            elif step[0] == "close":
                conn.shutdown(socket.SHUT_RDWR)
                return
            elif step[0] == "reset":
                _reset(conn)
                return
        while not self.stopping():
            try:
                if not conn.recv(256):
                    return
            except TimeoutError:
                continue
