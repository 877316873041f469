"""The consumer's pages: Jinja2 templates (autoescaped, compiled once) beside this module, and
the table 6 rows they show. Also the JSON form of the same answer (:func:`answer_json`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from markupsafe import Markup

from gateway.public_snapshot import TABLE6
from gateway.resolver.verdict import Answer

__all__ = ["ITEM_FIELDS", "Pages", "Row", "answer_json", "table6_rows"]

ITEM_FIELDS = (17, 16, 6, 7, 23, 25, 26)
"""单品 (per bag) fields, shown first: what a consumer compares with the bag in hand."""
NOT_RELEASED = "尚未放行（检验结果未公布）"
_PHONE = re.compile(r"^[0-9+\-() ]{3,30}$")

VERDICT_TITLES = {
    "genuine": "验证通过",
    "unknown": "未找到该编码",
    "recalled": "该产品已召回",
    "withdrawn": "该编码已作废",
    "suspect_copy": "疑似仿冒",
}


@dataclass(frozen=True, slots=True)
class Row:
    """One table 6 field as a page shows it: ``lines`` of text (sales: one per entry);
    ``empty`` when the snapshot has no value."""

    no: int
    name: str
    attribute: str
    lines: tuple[str, ...]
    empty: bool
    phone: bool = False


def _sales_line(entry: dict[str, Any]) -> str:
    parts = [str(entry.get(k)) for k in ("date", "party_type", "party") if entry.get(k)]
    return " · ".join(parts)


def table6_rows(answer: Answer) -> tuple[list[Row], list[Row]]:
    """(the bag's rows, the product's rows) for a found code; both empty otherwise."""
    if answer.record is None:
        return [], []
    fields = answer.record.fields
    rows: dict[int, Row] = {}
    for f in TABLE6:
        value = fields.get(f.no)
        if f.no in (25, 26):
            lines = tuple(_sales_line(e) for e in value or [])
            rows[f.no] = Row(f.no, f.name, f.attribute, lines or ("暂无",), not lines)
        elif f.no == 23 and not value:
            rows[f.no] = Row(f.no, f.name, f.attribute, (NOT_RELEASED,), True)
        elif value is None or value == "":
            rows[f.no] = Row(f.no, f.name, f.attribute, ("—",), True)
        else:
            text = str(value)
            rows[f.no] = Row(
                f.no,
                f.name,
                f.attribute,
                tuple(text.splitlines()) or (text,),
                False,
                phone=f.no == 10 and bool(_PHONE.match(text)),
            )
    item = [rows[n] for n in ITEM_FIELDS]
    category = [rows[f.no] for f in TABLE6 if f.no not in ITEM_FIELDS]
    return item, category


def answer_json(answer: Answer) -> dict[str, Any]:
    """The API's answer (contract: code, verdict, public; and what else helps an app)."""
    public: dict[str, Any] = {}
    if answer.record is not None:
        for f in TABLE6:
            public[str(f.no)] = {"name": f.name, "value": answer.record.fields.get(f.no)}
    contact = answer.contact
    return {
        "code": answer.code,
        "verdict": answer.verdict,
        "reason": answer.reason,
        "message": answer.message,
        "detail": answer.detail,
        "state": answer.record.state if answer.record else None,
        "state_date": answer.record.state_date if answer.record else None,
        "released": bool(answer.record.fields.get(23)) if answer.record else None,
        "queries": answer.count,
        "places": answer.places,
        "query_id": answer.query_id,
        "public": public,
        "producer": (
            {"name": contact.name, "phone": contact.phone, "website": contact.website}
            if contact
            else None
        ),
        "snapshot": {"built_at": answer.snapshot.built_at},
    }


class Pages:
    """The templates, loaded and compiled once."""

    NAMES = ("index", "code", "complaint", "message")

    def __init__(self, hotline: str) -> None:
        env = Environment(
            loader=PackageLoader("gateway.resolver", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.globals["hotline"] = hotline
        self._templates: dict[str, Template] = {
            n: env.get_template(f"{n}.html") for n in self.NAMES
        }
        category = env.get_template("_category.html")

        # the product's rows are the same for every bag of a product: rendered once
        @lru_cache(maxsize=512)
        def category_html(rows: tuple[Row, ...]) -> Markup:
            return Markup(category.render(category_rows=rows))

        self._category_html = category_html

    def render(self, name: str, **context: Any) -> bytes:
        return self._templates[name].render(**context).encode("utf-8")

    def code(self, answer: Answer, checked_at: str) -> bytes:
        item, category = table6_rows(answer)
        return self.render(
            "code",
            a=answer,
            title=VERDICT_TITLES[answer.verdict],
            item_rows=item,
            category_html=self._category_html(tuple(category)),
            checked_at=checked_at,
        )

    def message(self, status: int, title: str, text: str, *, form: bool = False) -> bytes:
        return self.render("message", status=status, title=title, text=text, form=form)
