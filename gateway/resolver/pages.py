"""The consumer's pages: Jinja2 templates (autoescaped, compiled once) beside this module, and
the table 6 rows they show. Also the JSON form of the same answer (:func:`answer_json`).

The code page is rendered by Jinja once per batch group, verdict and snapshot (a *skeleton*:
the page with markers where an answer's own values go) and filled per answer with the code,
its count, query id, time, the reason's detail and the bag's rows (:func:`item_html`); the
output is byte-identical to a whole render (:meth:`Pages.code_full`, compared in
tests/unit/test_resolver_pages.py).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from markupsafe import Markup, escape

from gateway.public_snapshot import TABLE6
from gateway.resolver.lookup import EnterpriseContact, Group
from gateway.resolver.verdict import Answer

__all__ = [
    "ITEM_FIELDS",
    "Pages",
    "Row",
    "answer_body",
    "answer_json",
    "item_html",
    "table6_rows",
]

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


_BY_NO = {f.no: f for f in TABLE6}
_CATEGORY = tuple(f for f in TABLE6 if f.no not in ITEM_FIELDS)


def _row(no: int, value: Any) -> Row:
    f = _BY_NO[no]
    if no in (25, 26):
        lines = tuple(_sales_line(e) for e in value or [])
        return Row(no, f.name, f.attribute, lines or ("暂无",), not lines)
    if no == 23 and not value:
        return Row(no, f.name, f.attribute, (NOT_RELEASED,), True)
    if value is None or value == "":
        return Row(no, f.name, f.attribute, ("—",), True)
    text = str(value)
    return Row(
        no,
        f.name,
        f.attribute,
        tuple(text.splitlines()) or (text,),
        False,
        phone=no == 10 and bool(_PHONE.match(text)),
    )


def table6_rows(answer: Answer) -> tuple[list[Row], list[Row]]:
    """(the bag's rows, the product's rows) for a found code; both empty otherwise. The
    product's rows are built once per batch group and snapshot (the record's group)."""
    record = answer.record
    if record is None:
        return [], []
    fields = record.fields
    item = [_row(no, fields.get(no)) for no in ITEM_FIELDS]
    group = record.group
    category: list[Row] | None = group.memo.get("rows") if group is not None else None
    if category is None:
        category = [_row(f.no, fields.get(f.no)) for f in _CATEGORY]
        if group is not None and all(f.no in group.fields for f in _CATEGORY):
            group.memo["rows"] = category
    return item, list(category)


def item_html(rows: list[Row]) -> Markup:
    """The bag's rows of the code page (``<tr>`` lines, each ending in a newline)."""
    out: list[str] = []
    for r in rows:
        cls = ' class="empty"' if r.empty else ""
        if r.no == 23:
            cls += f' data-released="{"false" if r.empty else "true"}"'
        cells = "<br>".join(str(escape(line)) for line in r.lines)
        out.append(f'<tr data-field="{r.no}"{cls}><th>{escape(r.name)}</th><td>{cells}</td></tr>\n')
    return Markup("".join(out))


# what stands for an answer's own values in a skeleton: letters only, so that neither HTML
# escaping nor the URL encoding of the complaint link changes them
_MARK = {
    "code": "QzSkelCodeQz",
    "count": "QzSkelCountQz",
    "query_id": "QzSkelQidQz",
    "checked_at": "QzSkelCheckedQz",
    "detail": "QzSkelDetailQz",
    "items": "QzSkelItemsQz",
}
_MARKS = re.compile("(" + "|".join(_MARK.values()) + ")")
_NAME_OF = {v: k for k, v in _MARK.items()}
Skeleton = tuple[str, ...]  # literal text and marker names alternately (literal first)
UNKNOWN_SKELETONS = 64
"""Skeletons kept for answers without a batch group (unknown codes): one per verdict, reason
and producer, for the current snapshot."""


def answer_json(answer: Answer, public: bool = True) -> dict[str, Any]:
    """The API's answer (contract: code, verdict, public; and what else helps an app);
    without ``public`` when ``public`` is False (:func:`answer_body` encodes it)."""
    fields: dict[str, Any] = {}
    if answer.record is not None and public:
        for f in TABLE6:
            fields[str(f.no)] = {"name": f.name, "value": answer.record.fields.get(f.no)}
    contact = answer.contact
    body = {
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
        "public": fields,
        "producer": (
            {"name": contact.name, "phone": contact.phone, "website": contact.website}
            if contact
            else None
        ),
        "snapshot": {"built_at": answer.snapshot.built_at},
    }
    if not public:
        del body["public"]
    return body


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # json.dumps(…, ensure_ascii=False), built once
_dumps = _ENCODER.encode
_FIELD_HEAD = {f.no: f'"{f.no}": {{"name": {_dumps(f.name)}, "value": ' for f in TABLE6}


def _field_json(no: int, value: Any) -> str:
    return f"{_FIELD_HEAD[no]}{_dumps(value)}}}"


def _public_parts(group: Group) -> tuple[str | int, ...]:
    """The ``public`` object of every code of ``group`` as pieces: text where the fields are the
    group's (encoded once), a field number where each code has its own value."""
    parts: list[str | int] = []
    run: list[str] = []
    for f in TABLE6:
        if f.no in group.fields:
            run.append(_field_json(f.no, group.fields[f.no]))
            continue
        if run:
            parts.append(", ".join(run))
            run = []
        parts.append(f.no)
    if run:
        parts.append(", ".join(run))
    return tuple(parts)


def answer_body(answer: Answer) -> bytes:
    """:func:`answer_json` encoded (UTF-8 JSON), the same value and key order: the table 6
    fields a batch's codes share, and the producer and snapshot, are encoded once per batch
    and snapshot (the record's group); per answer only the code's own fields and the verdict."""
    record = answer.record
    group = record.group if record is not None else None
    if record is None or group is None:
        return _dumps(answer_json(answer)).encode("utf-8")
    memo = group.memo
    parts: tuple[str | int, ...] | None = memo.get("json_parts")
    if parts is None:
        parts = memo["json_parts"] = _public_parts(group)
    fields = record.fields
    public = ", ".join(p if isinstance(p, str) else _field_json(p, fields.get(p)) for p in parts)
    contact, snap = answer.contact, answer.snapshot
    tail: tuple[EnterpriseContact | None, Any, str] | None = memo.get("json_tail")
    if tail is None or tail[0] is not contact or tail[1] is not snap:
        producer = (
            {"name": contact.name, "phone": contact.phone, "website": contact.website}
            if contact
            else None
        )
        text = _dumps({"producer": producer, "snapshot": {"built_at": snap.built_at}})
        tail = memo["json_tail"] = (contact, snap, text[1:])
    head = {
        "code": answer.code,
        "verdict": answer.verdict,
        "reason": answer.reason,
        "message": answer.message,
        "detail": answer.detail,
        "state": record.state,
        "state_date": record.state_date,
        "released": bool(fields.get(23)),
        "queries": answer.count,
        "places": answer.places,
        "query_id": answer.query_id,
    }
    return f'{_dumps(head)[:-1]}, "public": {{{public}}}, {tail[2]}'.encode()


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
            auto_reload=False,  # installed templates: never stat them per render
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
        self._code_template = self._templates["code"]
        self._unknown: OrderedDict[tuple[Any, ...], Skeleton] = OrderedDict()
        self._unknown_snapshot: Any = None

    def render(self, name: str, **context: Any) -> bytes:
        return self._templates[name].render(**context).encode("utf-8")

    def code(self, answer: Answer, checked_at: str) -> bytes:
        """The code page: the skeleton of the answer's group and verdict, filled."""
        record = answer.record
        group = record.group if record is not None else None
        key = (answer.verdict, answer.reason, bool(answer.detail))
        skeleton: Skeleton | None
        if record is not None:
            if group is None or "category_html" not in group.memo:
                return self.code_full(answer, checked_at)
            held = group.memo.get("page")
            if held is None:
                held = group.memo["page"] = {}
            found = held.get(key)
            if found is None or found[0] is not answer.contact or found[1] is not answer.snapshot:
                skeleton = self._skeleton(answer)
                held[key] = (answer.contact, answer.snapshot, skeleton)
            else:
                skeleton = found[2]
            items = item_html(table6_rows(answer)[0])
        else:
            if self._unknown_snapshot is not answer.snapshot:
                self._unknown.clear()
                self._unknown_snapshot = answer.snapshot
            ukey = (*key, answer.contact)
            skeleton = self._unknown.get(ukey)
            if skeleton is None:
                skeleton = self._unknown[ukey] = self._skeleton(answer)
                if len(self._unknown) > UNKNOWN_SKELETONS:
                    self._unknown.popitem(last=False)
            items = Markup("")
        values = {
            "code": answer.code,  # acceptable(): letters, digits and -._~ (nothing to escape)
            "count": str(answer.count),
            "query_id": answer.query_id,  # URL-safe base64
            "checked_at": str(escape(checked_at)),
            "detail": str(escape(answer.detail or "")),
            "items": str(items),
        }
        return "".join(
            part if i % 2 == 0 else values[part] for i, part in enumerate(skeleton)
        ).encode("utf-8")

    def _skeleton(self, answer: Answer) -> Skeleton:
        stand_in = dataclasses.replace(
            answer,
            code=_MARK["code"],
            count=_MARK["count"],  # type: ignore[arg-type]  # only ever printed
            query_id=_MARK["query_id"],
            detail=_MARK["detail"] if answer.detail else answer.detail,
        )
        html = self._code_template.render(
            a=stand_in,
            title=VERDICT_TITLES[answer.verdict],
            item_html=Markup(_MARK["items"]),
            category_html=self._category(answer),
            checked_at=_MARK["checked_at"],
        )
        parts = _MARKS.split(html)
        return tuple(p if i % 2 == 0 else _NAME_OF[p] for i, p in enumerate(parts))

    def code_full(self, answer: Answer, checked_at: str) -> bytes:
        """The code page rendered whole by Jinja (what :meth:`code` must equal)."""
        return self.render(
            "code",
            a=answer,
            title=VERDICT_TITLES[answer.verdict],
            item_html=item_html(table6_rows(answer)[0]),
            category_html=self._category(answer),
            checked_at=checked_at,
        )

    def _category(self, answer: Answer) -> Markup:
        category = table6_rows(answer)[1]
        group = answer.record.group if answer.record is not None else None
        html: Markup | None = group.memo.get("category_html") if group is not None else None
        if html is None:
            html = self._category_html(tuple(category))
            if group is not None and "rows" in group.memo:
                group.memo["category_html"] = html
        return html

    def message(self, status: int, title: str, text: str, *, form: bool = False) -> bytes:
        return self.render("message", status=status, title=title, text=text, form=form)
