"""A wholesaler's identity (gateway/enterprise.py): the unified social credit code of GB
32100-2015 with its check character, and which form each kind of enterprise takes."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from gateway.config.models import GatewaySection
from gateway.enterprise import ENTERPRISE_ID_RE, enterprise_error, uscc_check_char, uscc_error
from gateway.event_schemas.compiled import check_event

DEMO_WHOLESALER = "91370900MA3C5DEM0H"


def test_check_character_of_a_published_code() -> None:
    # the sample code printed in GB 32100-2015 guides: 91350100M000100Y4 + check '3'
    assert uscc_check_char("91350100M000100Y4") == "3"
    assert uscc_error("91350100M000100Y43") is None
    assert uscc_error(DEMO_WHOLESALER) is None


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("91350100M000100Y44", "expected '3'"),
        ("91350100M000100Y4", "has 17"),
        ("91350100M00O100Y43", "'O'"),
        ("913501X0M000100Y43", "administrative division"),
    ],
)
def test_bad_credit_codes_say_why(value: str, says: str) -> None:
    why = uscc_error(value)
    assert why is not None and says in why


def test_each_kind_takes_its_own_form() -> None:
    assert enterprise_error("producer", "8035") is None
    assert enterprise_error("wholesaler", DEMO_WHOLESALER) is None
    producer_with_uscc = enterprise_error("producer", DEMO_WHOLESALER)
    assert producer_with_uscc is not None and "gateway.kind: wholesaler" in producer_with_uscc
    wholesaler_with_annex = enterprise_error("wholesaler", "8035")
    assert wholesaler_with_annex is not None and "no Annex A code" in wholesaler_with_annex


def test_config_section() -> None:
    g = GatewaySection(id="gw", kind="wholesaler", enterprise=DEMO_WHOLESALER, site="s", line="W1")
    assert g.kind == "wholesaler"
    assert GatewaySection(id="gw", enterprise="8035", site="s", line="L1").kind == "producer"
    with pytest.raises(ValidationError, match="unified social credit code"):
        GatewaySection(id="gw", kind="wholesaler", enterprise="8035", site="s", line="W1")
    with pytest.raises(ValidationError, match="Annex A"):
        GatewaySection(id="gw", enterprise=DEMO_WHOLESALER[:-1] + "X", site="s", line="L1")


def test_envelope_takes_both_forms_and_nothing_else() -> None:
    assert re.fullmatch(ENTERPRISE_ID_RE, DEMO_WHOLESALER)
    assert not re.fullmatch(ENTERPRISE_ID_RE, "7035")
    event = {
        "id": "0193f0c6-0000-7000-8000-000000000001", "gateway": "gw-ws-1", "seq": 1,
        "type": "ship.inbound", "ts": "2026-11-22T10:15:30.123+08:00",
        "enterprise": DEMO_WHOLESALER, "site": "taian", "line": "W1", "device": "in1",
        "batch": None,
        "data": {"code": "8035PALL000001", "level": "unknown", "order": "DO-1",
                 "supplier": "岱岳", "bags": 1, "children": []},
    }  # fmt: skip
    errors, known = check_event(event)
    assert known and errors == []
    errors, _ = check_event({**event, "enterprise": "WHOLESALER1"})
    assert errors
