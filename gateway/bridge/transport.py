"""Delivering one document: HTTP(S) POST, or a file in an outbox directory. Reply format:
docs/platform-xml.md. A transport makes one attempt; retries live in :mod:`gateway.bridge.upload`.

Errors (what the uploader does with each)::

    DeliveryError
    ├── Unavailable   the platform cannot be reached or says it is unavailable (connection
    │                 refused, TLS handshake, 401/403 credentials, 429, 503, a full disk):
    │                 retried with backoff for as long as it lasts; not counted
    ├── Failed        an attempt went wrong (5xx, 408, time-out, a garbage or mismatched reply,
    │                 the connection dropped mid-way): retried, counted; quarantined after
    │                 ``retry.max_attempts``
    └── Rejected      the platform refused this document (``"status": "rejected"``, other 4xx):
                      quarantined at once with the reason
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from drivers.secrets import secret
from gateway.bridge.config import DirectoryUploadSection, HttpUploadSection

__all__ = [
    "DeliveryError",
    "DirectoryTransport",
    "Failed",
    "HttpTransport",
    "Outgoing",
    "Receipt",
    "Rejected",
    "Transport",
    "Unavailable",
    "make_transport",
    "parse_reply",
]

MAX_REPLY_BYTES = 64 * 1024


class DeliveryError(Exception):
    """One delivery attempt did not end in an acknowledgement; the message says why."""


class Unavailable(DeliveryError):
    pass


class Failed(DeliveryError):
    pass


class Rejected(DeliveryError):
    pass


@dataclass(frozen=True, slots=True)
class Outgoing:
    number: str
    body: bytes
    encoding: str  # xml | gzip+base64
    sha256: str  # of the XML


@dataclass(frozen=True, slots=True)
class Receipt:
    status: str  # ok | duplicate
    receipt: str


class Transport(Protocol):
    def send(self, doc: Outgoing) -> Receipt | None:
        """Deliver; a receipt when acknowledged now, None when the acknowledgement comes later
        (:meth:`poll`). Raises a :class:`DeliveryError`."""

    def poll(self, number: str) -> Receipt | None:
        """The acknowledgement of a document sent earlier, if it has come."""


def parse_reply(raw: bytes, number: str) -> Receipt:
    """The platform's JSON reply for document ``number``; raises :class:`Rejected` or
    :class:`Failed` (garbage, wrong document, no receipt)."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Failed(f"garbage reply (not JSON): {raw[:120]!r}") from None
    if not isinstance(obj, dict):
        raise Failed(f"garbage reply (not a JSON object): {raw[:120]!r}")
    status = obj.get("status")
    if obj.get("document") != number:
        raise Failed(f"reply names document {obj.get('document')!r}, not {number!r}")
    if status == "rejected":
        raise Rejected(f"platform rejected the document: {str(obj.get('reason'))[:300]}")
    if status not in ("ok", "duplicate"):
        raise Failed(f"reply status {status!r} is not ok, duplicate or rejected")
    receipt = obj.get("receipt")
    if not isinstance(receipt, str) or not receipt:
        raise Failed("reply has no receipt")
    return Receipt(str(status), receipt)


class HttpTransport:
    def __init__(self, cfg: HttpUploadSection) -> None:
        self.cfg = cfg
        self.url = urlsplit(cfg.url)
        self._ctx: ssl.SSLContext | None = None
        if self.url.scheme == "https":
            ctx = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
            if cfg.cert_file is not None:
                ctx.load_cert_chain(str(cfg.cert_file), str(cfg.key_file) if cfg.key_file else None)
            self._ctx = ctx

    def _conn(self) -> http.client.HTTPConnection:
        host, port, t = self.url.hostname or "127.0.0.1", self.url.port, self.cfg.timeout_secs
        if self._ctx is not None:
            return http.client.HTTPSConnection(host, port, timeout=t, context=self._ctx)
        return http.client.HTTPConnection(host, port, timeout=t)

    def headers(self, doc: Outgoing) -> dict[str, str]:
        h = {
            "Content-Type": "application/xml; charset=utf-8"
            if doc.encoding == "xml"
            else "text/plain; charset=us-ascii",
            "X-Document-Number": doc.number,
            "X-Document-Encoding": doc.encoding,
            "X-Document-Sha256": doc.sha256,
            "Accept": "application/json",
        }
        token = secret(self.cfg.token_env, self.cfg.token_file, "platform token")
        if token:
            h["Authorization"] = f"Bearer {token}"
        return h

    def send(self, doc: Outgoing) -> Receipt | None:
        conn = self._conn()
        try:
            try:
                conn.connect()
            except (ssl.SSLError, OSError) as exc:
                raise Unavailable(f"cannot connect to {self.cfg.url}: {exc}") from None
            path = self.url.path or "/"
            if self.url.query:
                path += "?" + self.url.query
            try:
                conn.request("POST", path, body=doc.body, headers=self.headers(doc))
                resp = conn.getresponse()
                raw = resp.read(MAX_REPLY_BYTES)
            except TimeoutError:
                raise Failed(f"no reply within {self.cfg.timeout_secs} s") from None
            except (http.client.HTTPException, OSError) as exc:
                raise Failed(f"connection failed mid-way: {exc!r}") from None
        finally:
            conn.close()
        return self._judge(resp.status, raw, doc.number)

    @staticmethod
    def _judge(status: int, raw: bytes, number: str) -> Receipt:
        if 200 <= status < 300:
            return parse_reply(raw, number)
        text = raw[:200].decode("utf-8", "replace")
        if status in (401, 403, 429, 503):
            raise Unavailable(f"HTTP {status}: {text!r}")
        if status == 408 or status >= 500:
            raise Failed(f"HTTP {status}: {text!r}")
        if 400 <= status < 500:
            try:
                parse_reply(raw, number)
            except Rejected:
                raise
            except Failed:
                pass
            raise Rejected(f"HTTP {status}: {text!r}")
        raise Failed(f"unexpected HTTP {status}: {text!r}")

    def poll(self, number: str) -> Receipt | None:
        return None


class DirectoryTransport:
    """``{number}.xml`` (or ``.xml.gz.b64``) written atomically: a temporary file in the same
    directory, fsync, rename, fsync of the directory. Receipts: ``{number}.receipt.json``."""

    def __init__(self, cfg: DirectoryUploadSection) -> None:
        self.cfg = cfg
        self.dir = Path(cfg.path)

    @staticmethod
    def filename(doc: Outgoing) -> str:
        return doc.number + (".xml" if doc.encoding == "xml" else ".xml.gz.b64")

    def send(self, doc: Outgoing) -> Receipt | None:
        name = self.filename(doc)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.dir / f".{name}.tmp"
            with open(tmp, "wb") as f:
                f.write(doc.body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.dir / name)
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise Unavailable(f"cannot write {self.dir / name}: {exc}") from None
        if self.cfg.ack == "on_write":
            digest = hashlib.sha256(doc.body).hexdigest()
            return Receipt("ok", f"file:{name}:sha256:{digest}")
        return None

    def poll(self, number: str) -> Receipt | None:
        path = self.dir / f"{number}.receipt.json"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise Unavailable(f"cannot read {path}: {exc}") from None
        try:
            return parse_reply(raw, number)
        except Failed:
            path.replace(path.with_name(path.name + ".bad"))  # kept for people; sent again
            raise


def make_transport(cfg: HttpUploadSection | DirectoryUploadSection) -> Transport:
    if isinstance(cfg, HttpUploadSection):
        return HttpTransport(cfg)
    return DirectoryTransport(cfg)
