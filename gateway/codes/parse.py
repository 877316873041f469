"""Parse a scanned QR payload into a traceability code and say whether it is valid.

Payload forms (QB/T 5279-2018 8.2: the mark holds the resolver's address and the code)::

    https://trace.example.cn/q/8035K7Q2M9X4TZ         the last path segment (saltgw resolver)
    https://trace.example.cn/t/8035K7Q2M9X4TZ         any other path: the last segment
    https://trace.example.cn/q?c=8035K7Q2M9X4TZ      code in a query parameter (rules.query_keys)
    trace.example.cn/t/8035K7Q2M9X4TZ                 the same without a scheme
    8035K7Q2M9X4TZ                                    a bare code (a printed or typed code, 9.2)

The code itself (6.2) is the 4-digit enterprise code of Annex A followed by a random in-house
code of at most 20 characters from the configured charset. The first rule a payload breaks is
its reason; :class:`CodeCheck` carries both a stable ``error`` key and a sentence for people.

A ``#`` is not a URL fragment here: a mark holds the resolver address and the code and nothing
after them, so ``…?c=8035K7Q2#X4TZ`` is a misread (``#`` outside the charset), never the code
``8035K7Q2``. Nothing a payload holds raises: every failure is a :class:`CodeCheck`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from gateway.codes.annex_a import annex_a
from gateway.codes.rules import TraceCodeRules

__all__ = ["MAX_PAYLOAD_LEN", "CodeCheck", "check_code", "extract_code"]

MAX_PAYLOAD_LEN = 512  # longer is not a traceability mark (a QR misread or a wrong symbol)


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """The verdict on one payload. ``code`` is the extracted code (also when invalid, if any)."""

    raw: str
    code: str | None
    valid: bool
    error: str | None = None  # stable key: empty, binary, no_code, resolver, length, ...
    reason: str | None = None  # the same for people
    resolver: str | None = None  # host of the resolver URL, None for a bare code

    @property
    def enterprise(self) -> str | None:
        return self.code[:4] if self.code and _is_enterprise_code(self.code[:4]) else None

    @property
    def serial(self) -> str | None:
        """The in-house random part (6.2), when there is a code."""
        return self.code[4:] if self.code else None

    def as_dict(self) -> dict[str, object]:
        return {
            "raw": self.raw,
            "code": self.code,
            "valid": self.valid,
            "error": self.error,
            "reason": self.reason,
        }


class _Invalid(Exception):
    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason


def _printable(text: str) -> bool:
    return text.isprintable()  # every character printable (True for ""), in C


def _is_enterprise_code(prefix: str) -> bool:
    """Four ASCII digits (str.isdigit alone also takes '٨٠٣٥' or '８０３５')."""
    return len(prefix) == 4 and prefix.isascii() and prefix.isdigit()


def extract_code(raw: str, rules: TraceCodeRules) -> tuple[str, str | None]:
    """(code, resolver host) from a payload; raises _Invalid when no code can be found."""
    text = raw.strip()
    if not text:
        raise _Invalid("empty", "empty payload")
    if len(text) > MAX_PAYLOAD_LEN:
        raise _Invalid("length", f"payload of {len(text)} characters is not a traceability mark")
    if not _printable(text):
        raise _Invalid("binary", "payload holds control or non-printable characters")
    if "/" not in text and "?" not in text:
        return text, None
    url = text if "://" in text else "//" + text
    try:
        parts = urlsplit(url, allow_fragments=False)
        host = (parts.hostname or "").lower()
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unbalanced '['
        raise _Invalid("no_code", f"not a resolver URL: {exc}") from None
    if parts.scheme not in ("", "http", "https"):
        raise _Invalid("no_code", f"resolver URL scheme {parts.scheme!r} is not http(s)")
    if not host:
        raise _Invalid("no_code", "resolver URL without a host")
    if rules.resolver_hosts and host not in rules.resolver_hosts:
        allowed = ", ".join(rules.resolver_hosts)
        raise _Invalid("resolver", f"resolver host {host!r} is not this line's ({allowed})")
    query = parse_qs(parts.query, keep_blank_values=True)
    for key in rules.query_keys:
        if key in query:
            return query[key][0].strip(), host
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not segments:
        keys = ", ".join(rules.query_keys)
        raise _Invalid("no_code", f"resolver URL holds no code (no path, no query key {keys})")
    return segments[-1].strip(), host


def check_code(raw: str, rules: TraceCodeRules, enterprise: str) -> CodeCheck:
    """Parse ``raw`` and check the code against 6.2, Annex A and this line's enterprise."""
    try:
        code, host = extract_code(raw, rules)
    except _Invalid as exc:
        return CodeCheck(raw, None, False, exc.error, exc.reason)
    try:
        _check(code, rules, rules.enterprise_or(enterprise))
    except _Invalid as exc:
        return CodeCheck(raw, code or None, False, exc.error, exc.reason, host)
    return CodeCheck(raw, code, True, resolver=host)


def _check(code: str, rules: TraceCodeRules, enterprise: str) -> None:
    if not code:
        raise _Invalid("no_code", "no code after the resolver address")
    prefix, serial = code[:4], code[4:]
    if not _is_enterprise_code(prefix):
        raise _Invalid(
            "enterprise_format", f"code does not start with a 4-digit enterprise code: {code!r}"
        )
    if prefix[0] not in "89":
        raise _Invalid(
            "enterprise_format",
            f"enterprise code {prefix} does not start with 8 or 9 (QB/T 5279 Annex A.1)",
        )
    if rules.require_annex_a and prefix not in annex_a():
        raise _Invalid(
            "enterprise_unknown", f"enterprise code {prefix} is not in QB/T 5279 Annex A"
        )
    if rules.own_enterprise_only and prefix != enterprise:
        raise _Invalid(
            "enterprise_foreign",
            f"enterprise code {prefix} is not this enterprise's ({enterprise})",
        )
    if len(serial) > rules.max_random_len:
        raise _Invalid(
            "length",
            f"in-house code has {len(serial)} characters, more than {rules.max_random_len} "
            "(QB/T 5279 6.2)",
        )
    if len(serial) < rules.min_random_len:
        raise _Invalid(
            "length",
            f"in-house code has {len(serial)} characters, fewer than {rules.min_random_len}",
        )
    bad = sorted({c for c in serial if c not in rules.charset})
    if bad:
        shown = "".join(bad)
        raise _Invalid("charset", f"in-house code has characters outside the charset: {shown!r}")
