"""The demo's view: a snapshot rendered to text (rich) or to a plain progress line, and the
watcher that turns what a MES receives into snapshots."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import paho.mqtt.client as paho
import pytest
from rich.console import Console

from gateway.config.loader import load_config
from gateway.demo import Watch, demo_config_path
from gateway.live_view import (
    AlarmLine,
    DemoSnapshot,
    LiveProgress,
    PlainProgress,
    UploadView,
    closing_line,
    open_progress,
    progress_line,
    render,
)

SNAP = DemoSnapshot(
    elapsed_secs=42.4,
    broker="mqtt://127.0.0.1:41234",
    duration_secs=60,
    last_seq=321,
    types={
        "pack.bag": 55,
        "pack.case": 4,
        "pack.pallet": 1,
        "pack.reject": 3,
        "pack.noread": 2,
        "ccp.net_content": 50,
        "ccp.metal_detector": 5,
        "alarm.ccp": 3,
        "alarm.aggregation": 5,
        "alarm.device": 1,
    },
    ccp={"ccp.net_content": {"pass": 47, "fail": 3}, "ccp.metal_detector": {"pass": 5}},
    latest_alarms=(
        AlarmLine("15:54:27", "alarm.ccp", "cw1", "net content 379.53 g below 388.0 g"),
        AlarmLine("15:54:28", "alarm.device", "md1", "offline: connection refused"),
    ),
    bags_per_min=82.4,
    scan_rate=0.975,
    scan_rate_window=0.99,
    backlog=12,
    devices={"cw1": ("online", None), "md1": ("offline", "connection refused by 127.0.0.1")},
    upload=UploadView(
        stored=320,
        built=5,
        uploaded=4,
        pending=1,
        quarantined=2,
        events_waiting=11,
        target="/srv/outbox",
    ),
)


def text_of(renderable: Any, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


def test_the_view_shows_every_figure_of_the_snapshot() -> None:
    text = text_of(render(SNAP))
    lines = text.splitlines()
    assert lines[0].startswith("saltgw demo running  42 / 60 s")
    assert "events 129 (last seq 321)" in lines[0] and "journal backlog 12" in lines[0]
    assert "broker mqtt://127.0.0.1:41234" in text and "/srv/outbox" in text
    for figure in (
        "bags                55",
        "bags/min            82",
        "scan rate, shift 97.5%",
        "scan rate, live  99.0%",
        "cases    4",
        "pallets  1",
        "rejects  3",
        "no-reads 2",
    ):
        assert figure in text, figure
    assert "net content       47     3" in text
    assert "metal detector     5     0" in text
    assert "iodine             0     0" in text  # every CCP is listed, even without a reading
    assert "aggregation 5 · ccp 3 · device 1" in text
    assert "15:54:28 device md1  offline: connection refused" in text
    assert "cw1 online" in text and "md1 offline" in text
    assert "md1: connection refused by 127.0.0.1" in text
    for figure in (
        "events stored     320",
        "events waiting     11",
        "documents written   5",
        "uploaded            4",
        "pending             1",
        "quarantined         2",
    ):
        assert figure in text, figure


def test_the_view_fits_an_80_column_terminal() -> None:
    text = text_of(render(SNAP), width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert len(text.splitlines()) <= 30
    assert "net content       47     3" in text


def test_an_empty_snapshot_renders() -> None:
    text = text_of(render(DemoSnapshot(elapsed_secs=0.0, broker="mqtt://b:1883")))
    assert "waiting for the first device state" in text
    assert "upload" not in text  # no bridge, no upload panel
    assert "none" in text  # no alarms


def test_progress_line_is_one_line_of_key_values() -> None:
    line = progress_line(SNAP)
    assert "\n" not in line
    assert line.startswith("[   42s] events=129 last_seq=321 ccp pass=52 fail=3 rejects=3")
    for part in (
        "alarms=9",
        "bags=55",
        "bags/min=82",
        "cases=4",
        "pallets=1",
        "scan_rate=97.5%",
        "backlog=12",
        "devices: cw1=online md1=offline",
        "upload: stored=320 docs=5 uploaded=4 pending=1 quarantined=2",
    ):
        assert part in line, part
    assert "refused" not in line  # said only while the broker refuses events
    bare = progress_line(DemoSnapshot(elapsed_secs=1, broker="b"))
    assert "bags/min=- " in bare and "scan_rate=- " in bare and "upload:" not in bare


def test_events_the_broker_refuses_are_said() -> None:
    """A PUBACK refusal (gateway/refusals.py): the events wait in the journal; the view says
    how many, only while there are some."""
    snap = replace(SNAP, refused=4)
    assert "backlog=12 refused=4 devices:" in progress_line(snap)
    text = text_of(render(snap))
    assert "refuses 4 events (they wait in the journal" in text
    assert "refuses" not in text_of(render(SNAP))


def test_closing_line_names_the_outbox() -> None:
    assert closing_line(SNAP) == (
        "stopped after 42 s: 129 events (last seq 321), 5 documents in /srv/outbox"
    )


def test_plain_progress_prints_only_while_running() -> None:
    out = io.StringIO()
    with open_progress(out) as show:  # a StringIO is no terminal
        assert isinstance(show, PlainProgress)
        show.update(SNAP)
        show.update(DemoSnapshot(elapsed_secs=50, broker="b", phase="stopping"))
    assert out.getvalue() == progress_line(SNAP) + "\n"


def test_live_progress_redraws_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    with LiveProgress(out, console=console) as show:
        show.update(DemoSnapshot(elapsed_secs=1, broker="b"))
        show.update(SNAP)
    text = out.getvalue()
    assert "\x1b[" in text  # cursor movements: drawn in place
    assert "saltgw demo running  1 s" in text and "net content       47     3" in text


# -- the watcher -------------------------------------------------------------------------------
ROOT = "salt/v1/8035/daiyue/L1"


def message(topic: str, obj: Any) -> paho.MQTTMessage:
    msg = paho.MQTTMessage(topic=topic.encode())
    msg.payload = json.dumps(obj).encode()
    return msg


def event(seq: int, kind: str, data: dict[str, Any], device: str | None = "cw1") -> dict[str, Any]:
    return {
        "id": f"id-{seq}",
        "seq": seq,
        "type": kind,
        "ts": f"2026-11-22T10:15:{seq:02d}.000+08:00",
        "device": device,
        "data": data,
    }


@pytest.fixture
def watch() -> Watch:
    return Watch(load_config(demo_config_path()), 1883)  # never connected


def test_watch_counts_verdicts_per_ccp_alarms_and_states(watch: Watch) -> None:
    feed = [
        (f"{ROOT}/event/ccp/net_content", event(1, "ccp.net_content", {"verdict": "pass"})),
        (f"{ROOT}/event/ccp/net_content", event(2, "ccp.net_content", {"verdict": "fail"})),
        (f"{ROOT}/event/ccp/sieve", event(3, "ccp.sieve", {"verdict": "pass"}, "panel1")),
        (f"{ROOT}/event/pack/bag", event(4, "pack.bag", {"code": "8035A"}, "scan1")),
        (f"{ROOT}/alarm/ccp", event(5, "alarm.ccp", {"detail": "net content low"})),
        (f"{ROOT}/alarm/device", event(6, "alarm.device", {"state": "offline"}, "md1")),
        (f"{ROOT}/state/md1", {"device": "md1", "state": "offline", "detail": "refused"}),
        (f"{ROOT}/kpi", {"window": {"scan_rate": 0.9}, "scopes": {"shift": {"scan_rate": 0.95}}}),
        (f"{ROOT}/event/pack/bag", b"not json"),
    ]
    for topic, obj in feed:
        if isinstance(obj, bytes):
            msg = paho.MQTTMessage(topic=topic.encode())
            msg.payload = obj
        else:
            msg = message(topic, obj)
        watch._on_message(None, None, msg)
    snap = watch.snapshot(elapsed_secs=10.0, broker="mqtt://x:1")
    assert snap.ccp == {"ccp.net_content": {"pass": 1, "fail": 1}, "ccp.sieve": {"pass": 1}}
    assert snap.verdicts() == (2, 1)
    assert snap.alarms == {"alarm.ccp": 1, "alarm.device": 1}
    assert snap.latest_alarms == (
        AlarmLine("10:15:05", "alarm.ccp", "cw1", "net content low"),
        AlarmLine("10:15:06", "alarm.device", "md1", "offline"),
    )
    assert snap.devices == {"md1": ("offline", "refused")}
    assert (snap.scan_rate, snap.scan_rate_window) == (0.95, 0.9)
    assert snap.last_seq == 6 and snap.count("pack.bag") == 1
    summary = watch.summary()
    assert summary["verdicts"] == {"pass": 2, "fail": 1}
    assert summary["alarms"] == {"alarm.ccp": 1, "alarm.device": 1}
    assert summary["device_states"] == {"md1": "offline"}


def test_watch_keeps_the_latest_five_alarms(watch: Watch) -> None:
    for seq in range(1, 9):
        watch._on_message(None, None, message(f"{ROOT}/alarm/ccp", event(seq, "alarm.ccp", {})))
    snap = watch.snapshot(elapsed_secs=1.0, broker="b")
    assert [a.time for a in snap.latest_alarms] == [f"10:15:0{s}" for s in range(4, 9)]
    assert snap.alarms == {"alarm.ccp": 8}
