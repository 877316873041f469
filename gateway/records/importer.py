"""``saltgw import CONFIG KIND FILE.csv``: records from a CSV file, sent to the running gateway
over MQTT on ``…/{line}/record/{kind}``, each signed by ``--issuer`` (docs/records.md).

Why through the gateway and not into its journal: the journal has one writer, the gateway's
own thread, which allocates ``seq`` and extends the hash chain from what it holds in memory; a
second process appending to the SQLite file would reuse seqs and break the chain. So the import
publishes each record and waits for the gateway's answer: ``accepted`` is sent only after the
journal committed the record (``synchronous=FULL``), so an imported record is as durable as
any event. A record already journaled is answered as a duplicate: importing a file again adds
nothing.

Half-good files: by default nothing is sent when any row is bad (exit status 1, every error
printed); ``--partial`` sends the good rows and still prints the bad ones (exit status 1).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import paho.mqtt.client as paho

from drivers.secrets import secret
from gateway.command_auth import Receiver, signing_bytes
from gateway.config.models import ConfigBase
from gateway.mqtt import broker_address, new_client
from gateway.records.file_import import FileRecord
from gateway.topics import Topics

__all__ = ["ImportError_", "send_records"]

WINDOW = 50  # records in flight at once (the gateway takes up to 256 waiting)


class ImportError_(Exception):  # not the builtin ImportError
    """The import could not be done (broker, issuer key, no answer); the message says why."""


def _key(cfg: ConfigBase, issuer: str | None) -> bytes | None:
    auth = cfg.commands
    if auth is None:
        raise ImportError_("the config has no commands: section: the gateway refuses records")
    if auth.mode == "open":
        return None
    if issuer is None:
        names = [i.name for i in auth.issuers]
        raise ImportError_(f"give --issuer (one of the config's issuers: {', '.join(names)})")
    for i in auth.issuers:
        if i.name == issuer:
            if not i.signs():
                return None
            key = secret(i.key_env, i.key_file, f"key of issuer {issuer!r}")
            if key is None:
                raise ImportError_(f"key of issuer {issuer!r}: {i.key_env} is not set")
            return key.encode()
    raise ImportError_(f"issuer {issuer!r} is not in the config's commands: issuers")


def message(
    kind: str,
    rec: FileRecord,
    receiver: Receiver,
    issuer: str | None,
    key: bytes | None,
    now: datetime,
) -> dict[str, Any]:
    """The signed MQTT message of one imported record."""
    body: dict[str, Any] = {
        k: v for k, v in rec.record.model_dump(mode="json", exclude_none=True).items()
    }
    body["record_id"] = rec.record_id
    body["id"] = f"import-{uuid.uuid4().hex}"
    body["source"] = rec.source
    if issuer is not None:
        body["issuer"] = issuer
    if key is not None:
        body["ts"] = now.isoformat(timespec="seconds")
        to = receiver.fields(f"record/{kind}")
        body["sig"] = hmac.new(key, signing_bytes(body, to), hashlib.sha256).hexdigest()
    return body


def send_records(
    cfg: ConfigBase,
    kind: str,
    records: Sequence[FileRecord],
    *,
    issuer: str | None,
    broker_url: str | None = None,
    timeout_secs: float = 30.0,
    clock: Callable[[], float] = time.time,
) -> list[dict[str, Any]]:
    """Send the records, one answer (the gateway's response) per record, in order."""
    key = _key(cfg, issuer)
    g = cfg.gateway
    topics = Topics(cfg.mqtt.topic_prefix, g.enterprise, g.site, g.line, g.id)
    receiver = Receiver(g.enterprise, g.site, g.line, g.id)
    tz = g.tz()
    client = new_client(cfg.mqtt, f"saltgw-import-{uuid.uuid4().hex[:8]}", broker_url=broker_url)
    answers: dict[str, dict[str, Any]] = {}
    cond = threading.Condition()
    subscribed = threading.Event()
    refused: list[str] = []

    def on_connect(c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            refused.append(str(rc))
            subscribed.set()
            return
        c.subscribe(topics.record_response(kind), qos=1)

    def on_subscribe(*_a: Any) -> None:
        subscribed.set()

    def on_message(_c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        try:
            obj = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            with cond:
                answers[obj["id"]] = obj
                cond.notify_all()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    host, port = broker_address(client_url(cfg, broker_url))
    try:
        client.connect(host, port, keepalive=cfg.mqtt.keepalive_secs)
    except OSError as exc:
        raise ImportError_(f"cannot reach the broker at {host}:{port}: {exc}") from None
    client.loop_start()
    try:
        if not subscribed.wait(timeout_secs) or refused:
            raise ImportError_(
                f"broker {host}:{port} " + (f"refused the connection: {refused[0]}" if refused
                                            else f"did not answer within {timeout_secs:g} s")
            )  # fmt: skip
        out: list[dict[str, Any]] = []
        for start in range(0, len(records), WINDOW):
            part = records[start : start + WINDOW]
            ids = []
            for rec in part:
                msg = message(kind, rec, receiver, issuer, key, datetime.fromtimestamp(clock(), tz))
                ids.append(msg["id"])
                body = json.dumps(msg, ensure_ascii=False).encode()
                client.publish(topics.record(kind), body, qos=1)
            deadline = time.monotonic() + timeout_secs
            with cond:
                while not all(i in answers for i in ids):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        done = sum(i in answers for i in ids) + start
                        raise ImportError_(
                            f"the gateway answered {done} of {len(records)} records within "
                            f"{timeout_secs:g} s (is it running, with this config?); the "
                            "records answered are journaled, import the file again for the rest"
                        )
                    cond.wait(left)
            out.extend(answers[i] for i in ids)
        return out
    finally:
        client.loop_stop()
        client.disconnect()


def client_url(cfg: ConfigBase, broker_url: str | None) -> Any:
    from urllib.parse import urlsplit

    from gateway.mqtt import broker_urls

    return urlsplit(broker_urls(cfg.mqtt, broker_url)[0])
