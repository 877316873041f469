"""Traceability codes (QB/T 5279-2018 clause 6, 8.2, 8.8, Annex A): parse a QR payload, check
the code, and remember every code seen to catch copied labels."""

from gateway.codes.annex_a import AnnexEntry, annex_a, enterprise_name
from gateway.codes.index import CodeIndex, Sighting
from gateway.codes.parse import CodeCheck, check_code
from gateway.codes.rules import MAX_RANDOM_LEN, TraceCodeRules

__all__ = [
    "MAX_RANDOM_LEN",
    "AnnexEntry",
    "CodeCheck",
    "CodeIndex",
    "Sighting",
    "TraceCodeRules",
    "annex_a",
    "check_code",
    "enterprise_name",
]
