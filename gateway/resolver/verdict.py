"""The legality verdict on a queried code (QB/T 5279 9.1: 解析服务器对请求的追溯编码进行合法判断)
and the suspect-copy rule (8.8: 追溯标识不能被转移、复制).

In order, the first that fails decides:

1. **Form** (6.2, Annex A): a 4-digit enterprise code starting 8 or 9 that Annex A lists, then an
   in-house code of the configured charset and length (at most 20) → else ``unknown``
   (reason ``form``, with the rule broken).
2. **Enterprise known here**: the snapshot holds that enterprise → else ``unknown``
   (``enterprise_not_here``: this resolver does not answer for that producer).
3. **Code known**: the snapshot holds the code → else ``unknown`` (``not_found``).
4. **State**: ``withdrawn`` (rejected off the line or destroyed) → ``withdrawn``; ``recalled``
   → ``recalled``.
5. **Suspect copy**: within ``suspect_copy.window_days``, this query included, more than
   ``max_queries`` queries of the code or queries from more than ``max_places`` networks →
   ``suspect_copy``; else ``genuine``.

Every query, whatever its verdict, is recorded (:mod:`.querylog`) with its channel, place and
count so far.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from gateway.codes import check_code
from gateway.resolver.config import Channel, ResolverSection
from gateway.resolver.lookup import CodeRecord, EnterpriseContact, find_code, find_enterprise
from gateway.resolver.querylog import QueryLog, QueryRecord, Recent, new_id
from gateway.resolver.snapshot import Snapshot, SnapshotHolder

__all__ = ["MAX_CODE_CHARS", "Answer", "NoSnapshot", "Resolver", "Verdict", "normalise"]

Verdict = Literal["genuine", "unknown", "recalled", "withdrawn", "suspect_copy"]

MAX_CODE_CHARS = 64
"""Longer is not a code at all (4 + at most 20 characters, 6.2): answered 400, not recorded."""

_ACCEPTABLE = re.compile(  # letters, digits and the URL-safe -_.~
    rf"[A-Za-z0-9._~-]{{1,{MAX_CODE_CHARS}}}"
)

REASONS: dict[str, str] = {
    "form": "编码格式不符合食盐追溯编码规则",
    "enterprise_not_here": "本查询服务不提供该企业的产品信息",
    "not_found": "未找到该追溯编码",
    "withdrawn": "该编码已在生产中剔除或销毁，不应在市场上流通",
    "recalled": "该批产品已召回",
    "suspect_copy": "该编码被查询的次数或地区异常，追溯标识可能被复制",
}


class NoSnapshot(Exception):
    """No public snapshot has been published yet."""


def normalise(raw: str, channel: Channel) -> str:
    """The code as looked up: surrounding blanks removed; a typed code also loses inner blanks
    and hyphens people add when copying the print, full-width characters become ASCII (NFKC),
    and it is upper-cased."""
    code = raw.strip()
    if channel == "typed":  # a Chinese keyboard in full-width mode types ８０３５Ｋ７…: NFKC
        code = unicodedata.normalize("NFKC", code)
        code = "".join(code.split()).replace("-", "").upper()
    return code


def acceptable(code: str) -> bool:
    """Worth a lookup and a query record at all (else 400): short, URL-safe ASCII."""
    return _ACCEPTABLE.fullmatch(code) is not None


@dataclass(frozen=True, slots=True)
class Answer:
    code: str
    verdict: Verdict
    reason: str | None  # key of REASONS (None for genuine)
    detail: str | None  # the form rule broken, or the counts behind suspect_copy
    record: CodeRecord | None
    contact: EnterpriseContact | None
    count: int  # this query's number for the code (次数)
    places: int  # distinct places within the window, this query's included
    query_id: str
    snapshot: Snapshot

    @property
    def message(self) -> str | None:
        return REASONS.get(self.reason) if self.reason else None


class Resolver:
    """Looks a code up in the current snapshot, decides the verdict and records the query."""

    def __init__(self, cfg: ResolverSection, snapshots: SnapshotHolder, log: QueryLog) -> None:
        self.cfg = cfg
        self.snapshots = snapshots
        self.log = log
        rule = cfg.suspect_copy
        self._window_ms = int(rule.window_days * 86_400_000)
        self._cap = max(rule.max_queries, rule.max_places) + 1
        self._channels = tuple(rule.channels)

    def resolve(self, code: str, channel: Channel, place: str, count: bool = True) -> Answer:
        """``code`` already :func:`acceptable`; ``count`` False for a HEAD request (looked
        up, not recorded nor counted). Raises :class:`NoSnapshot`."""
        held = self.snapshots.connection()
        if held is None:
            raise NoSnapshot
        snap, db = held
        now = self.log.now_ms()
        recent = self.log.recent(code, now - self._window_ms, self._channels, self._cap)
        counted = channel in self._channels
        places = len(recent.places | {place}) if counted else len(recent.places)
        in_window = recent.in_window + (1 if counted else 0)
        verdict: Verdict
        record: CodeRecord | None = None
        contact: EnterpriseContact | None = None
        reason: str | None = None
        detail: str | None = None

        rules = self.cfg.codes
        check = check_code(code, rules, rules.enterprise or "")
        if not check.valid:
            verdict, reason, detail = "unknown", "form", check.reason
        else:
            contact = find_enterprise(db, code[:4], snap.cache)
            if contact is None:
                verdict, reason = "unknown", "enterprise_not_here"
            else:
                record = find_code(db, code, snap.cache)
                if record is None:
                    verdict, reason = "unknown", "not_found"
                elif record.state == "withdrawn":
                    verdict, reason = "withdrawn", "withdrawn"
                elif record.state == "recalled":
                    verdict, reason = "recalled", "recalled"
                else:
                    verdict, detail = self.copy_rule(in_window, places)
                    reason = "suspect_copy" if verdict == "suspect_copy" else None
        query_id = new_id()
        if count:
            self.log.record(
                QueryRecord(query_id, now, code, channel, place, recent.total + 1, verdict, reason)
            )
        return Answer(
            code,
            verdict,
            reason,
            detail,
            record,
            contact,
            recent.total + 1,
            places,
            query_id,
            snap,
        )

    def copy_rule(self, in_window: int, places: int) -> tuple[Verdict, str | None]:
        """``suspect_copy`` with the counts that fired it, else ``genuine``."""
        rule = self.cfg.suspect_copy
        days = f"{rule.window_days:g}"
        if in_window > rule.max_queries:
            return "suspect_copy", f"{days} 天内被查询超过 {rule.max_queries} 次"
        if places > rule.max_places:
            return "suspect_copy", f"{days} 天内在超过 {rule.max_places} 个不同网络地区被查询"
        return "genuine", None

    def recent(self, code: str) -> Recent:
        return self.log.recent(code, self.log.now_ms() - self._window_ms, self._channels, self._cap)
