"""``saltgw import CONFIG.yaml epcis FILE.xml...``: producers' EPCIS 2.0 documents into the
line's trace store, so that its scanners expand cases and pallets to their bags
(docs/wholesale.md)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.codes import TraceCodeRules
from gateway.config.models import ConfigBase
from gateway.traceline import open_trace_line
from gateway.wholesale.aggregation_import import ImportSummary, import_documents
from gateway.wholesale.epcis_read import DocError, ProducerDocument, read_document

__all__ = ["import_epcis", "trace_setup"]


class NoTraceStore(Exception):
    """The config has no traceability profile: nothing would read the imported aggregation."""


def trace_setup(cfg: ConfigBase) -> tuple[Path, TraceCodeRules]:
    """The line's trace store and the code rules the documents' codes are checked with: those
    of the inbound scanner (else of any scanner profile), taking any producer's codes."""
    stores: list[Path] = []
    rules: TraceCodeRules | None = None
    for prof in sorted(cfg.profiles, key=lambda p: p.profile != "inbound_scanner"):
        store: Any = getattr(prof, "store", None)
        if isinstance(store, Path):
            stores.append(store)
        codes: Any = getattr(prof, "codes", None)
        if rules is None and isinstance(codes, TraceCodeRules):
            rules = codes
    if not stores:
        raise NoTraceStore(
            "the config has no traceability profile (inbound_scanner, outbound_scanner, …): "
            "no trace store to import the aggregation into"
        )
    rules = (rules or TraceCodeRules()).model_copy(
        update={"own_enterprise_only": False, "enterprise": None}
    )
    return stores[0], rules


def import_epcis(cfg: ConfigBase, files: list[str], *, check: bool, now: datetime) -> int:
    """Read, check and import ``files``; prints what happened; the exit status."""
    try:
        store, rules = trace_setup(cfg)
    except NoTraceStore as exc:
        print(f"saltgw: error: {exc}", file=sys.stderr)
        return 2
    xsd = cfg.bridge.epcis_xsd if cfg.bridge is not None else None
    docs: list[ProducerDocument] = []
    errors: list[DocError] = []
    for name in files:
        doc, errs = read_document(Path(name), rules, epcis_xsd=xsd, name=name)
        errors.extend(errs)
        if doc is not None:
            docs.append(doc)
            if not doc.schema_checked:
                print(f"{name}: warning: GS1's EPCIS 2.0 XSD not found (bridge.epcis_xsd or "
                      "$SALTGW_EPCIS_XSD): checked for what the import reads only",
                      file=sys.stderr)  # fmt: skip
    if errors:
        return _failed(errors)
    if check:
        for doc in docs:
            print(f"{doc.file}: good: {_counts(doc)}")
        return 0
    line = open_trace_line(store, cfg.gateway.line)
    summary, errors = import_documents(line, docs, now)
    if errors:
        return _failed(errors)
    _report(summary)
    return 0


def _failed(errors: list[DocError]) -> int:
    for err in errors:
        print(err, file=sys.stderr)
    print(f"{len(errors)} error(s): nothing imported", file=sys.stderr)
    return 1


def _counts(doc: ProducerDocument) -> str:
    return (
        f"{len(doc.bags)} bag code(s), {len(doc.packings)} packing event(s), "
        f"{len(doc.shipments)} shipment(s) of producer {doc.enterprise or '?'}"
    )


def _report(s: ImportSummary) -> None:
    for doc in s.imported:
        print(f"{doc.file}: imported {_counts(doc)}")
        for ship in doc.shipments:
            print(f"{doc.file}:{ship.line}: shipment {ship.order or '?'} to "
                  f"{ship.customer or '?'}: {len(ship.codes)} code(s)")  # fmt: skip
    for doc, when in s.already:
        print(f"{doc.file}: already imported at {when}: nothing changed")
    for late in s.late:
        print(f"{late.code}: scanned {late.direction} on {late.ts} (order {late.ref or '?'}) "
              f"before its aggregation was known: now {late.bags} bag(s) in the trace store"
              + (f", {late.duplicates} of them already recorded {late.direction}"
                 if late.duplicates else "")
              + "; that scan's upload listed it unexpanded")  # fmt: skip
