"""Check documents against their schema: EPCIS 2.0 against GS1's XSD, platform documents against
the shipped ``platform-1.xsd``. The root element's namespace says which (QB/T 5279 11.3; the
speech's part 三 names malformed uploads as a problem: nothing leaves unchecked).

GS1's XSD is not shipped with saltgw; it is found at ``--xsd`` / ``bridge.epcis_xsd``, else at
``$SALTGW_EPCIS_XSD``, else at ``../shared/reference/epcis-2.0/xsd/EPCglobal-epcis-2_0.xsd`` next
to the source tree (a development checkout). A bridge with ``profile: epcis`` and no readable
schema does not start unless the config says ``epcis_check: off`` (docs/bridge.md).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from gateway.bridge.config import EPCIS_XSD_ENV, epcis_xsd_path
from gateway.bridge.epcis import EPCIS_NS
from gateway.bridge.platform import PLATFORM_NS, platform_xsd_path

__all__ = [
    "CheckResult",
    "SchemaMissing",
    "check_document",
    "decode_body",
    "load_schema",
    "schema_path",
]

KINDS = {EPCIS_NS: "EPCIS 2.0", PLATFORM_NS: "saltgw platform XML v1"}


class SchemaMissing(Exception):
    """The schema a document needs cannot be found; the message says where it was looked for."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    kind: str  # EPCIS 2.0 | saltgw platform XML v1 | unknown
    errors: list[str]  # "LINE:COL: message", empty when valid
    schema: str | None = None  # the XSD file checked against (None: not parsed that far)

    @property
    def valid(self) -> bool:
        return not self.errors


def schema_path(namespace: str, epcis_xsd: Path | None = None) -> Path:
    """The XSD file documents of ``namespace`` are checked against."""
    if namespace == PLATFORM_NS:
        return platform_xsd_path()
    if namespace == EPCIS_NS:
        return epcis_xsd_path(epcis_xsd).resolve()
    raise ValueError(f"no schema for namespace {namespace!r}")


_local = threading.local()  # compiled schemas, per thread (lxml validators are not shared)


def _compile(path: str) -> etree.XMLSchema:
    schemas: dict[str, etree.XMLSchema] = _local.__dict__.setdefault("schemas", {})
    if path not in schemas:
        schemas[path] = etree.XMLSchema(etree.parse(path))
    return schemas[path]


def load_schema(namespace: str, epcis_xsd: Path | None = None) -> etree.XMLSchema:
    """The compiled schema of ``namespace``; :class:`SchemaMissing` when it cannot be read."""
    path = schema_path(namespace, epcis_xsd)
    if not path.is_file():
        raise SchemaMissing(
            f"EPCIS 2.0 schema not found at {path}: give GS1's EPCglobal-epcis-2_0.xsd (from "
            f"the EPCIS 2.0 package, with the files it imports beside it) with --xsd, "
            f"bridge.epcis_xsd or ${EPCIS_XSD_ENV}"
        )
    try:
        return _compile(str(path))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as exc:
        raise SchemaMissing(f"schema {path} cannot be loaded: {exc}") from None


def decode_body(body: bytes) -> bytes:
    """The XML of an uploaded body: as is, or from gzip+base64 (``bridge.gzip_base64``)."""
    head = body.lstrip()[:1]
    if head == b"<":
        return body
    try:
        return gzip.decompress(base64.b64decode(body, validate=False))
    except (binascii.Error, OSError, EOFError) as exc:
        raise ValueError(f"neither XML nor gzip+base64: {exc}") from None


def check_document(
    xml: bytes, epcis_xsd: Path | None = None, *, schema: etree.XMLSchema | None = None
) -> CheckResult:
    """Parse and validate (against ``schema`` when given, else the namespace's own); raises
    :class:`SchemaMissing` when GS1's XSD is not available."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        doc = etree.fromstring(xml, parser).getroottree()
    except etree.XMLSyntaxError as exc:
        return CheckResult("unknown", [f"{exc.lineno}:{exc.offset}: not well-formed: {exc.msg}"])
    ns = etree.QName(doc.getroot()).namespace or ""
    if ns not in KINDS:
        return CheckResult(
            "unknown",
            [
                f"1:1: root namespace {ns!r} is neither EPCIS 2.0 ({EPCIS_NS}) nor saltgw's "
                f"platform XML ({PLATFORM_NS}): not a document saltgw produced"
            ],
        )
    used = str(schema_path(ns, epcis_xsd))
    if schema is None:
        schema = load_schema(ns, epcis_xsd)
    if schema.validate(doc):
        return CheckResult(KINDS[ns], [], used)
    errors = [f"{e.line}:{e.column}: {e.message}" for e in schema.error_log]
    return CheckResult(KINDS[ns], errors, used)
