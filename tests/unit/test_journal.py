from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.events import EventDraft, Origin
from gateway.journal import Journal, WhenFull

ORIGIN = Origin("gw-test", "8035", "daiyue", "L1")


def drafts(n: int, start: int = 0) -> list[EventDraft]:
    now = datetime.now(UTC)
    return [EventDraft("ccp.net_content", now, {"i": start + i}) for i in range(n)]


def test_seq_is_gapless_and_survives_reopen_even_when_all_delivered(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path, ORIGIN) as j:
        evs = j.append(drafts(5)).result(5) + j.append(drafts(3)).result(5)
        assert [e.seq for e in evs] == list(range(1, 9))
        assert len({e.id for e in evs}) == 8
        j.ack([e.seq for e in evs])
    with Journal(path, ORIGIN) as j:
        assert j.stats.backlog == 0
        assert j.stats.last_seq == 8
        assert [e.seq for e in j.append(drafts(2)).result(5)] == [9, 10]


def test_rows_hold_the_exact_envelope_and_stay_until_acked(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path, ORIGIN) as j:
        evs = j.append(drafts(4)).result(5)
        j.ack([evs[1].seq])
        j.append([]).result(5)  # a barrier: the ack is committed before this resolves
        reader = j.reader()
        rows = reader.after(0, 100)
        reader.close()
    assert [r.seq for r in rows] == [1, 3, 4]
    first = json.loads(rows[0].payload)
    assert first["id"] == evs[0].id
    assert first["seq"] == 1
    assert first["gateway"] == "gw-test" and first["enterprise"] == "8035"
    assert first["ts"].endswith("+00:00")
    assert first["data"] == {"i": 0}
    assert rows[0].type == "ccp.net_content"


def test_block_policy_parks_appends_until_acks_make_room(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", ORIGIN, max_events=100, when_full=WhenFull.BLOCK) as j:
        evs = j.append(drafts(100)).result(5)
        parked = j.append(drafts(10))
        time.sleep(0.3)
        assert not parked.done()
        assert j.stats.blocked == 10
        j.ack([e.seq for e in evs[:10]])
        later = parked.result(5)
        assert [e.seq for e in later] == list(range(101, 111))
        assert j.stats.dropped == 0


def test_drop_oldest_policy_counts_what_it_drops(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", ORIGIN, max_events=100, when_full=WhenFull.DROP_OLDEST) as j:
        j.append(drafts(100)).result(5)
        j.append(drafts(30)).result(5)
        assert j.stats.dropped == 30
        assert j.stats.backlog == 100
        reader = j.reader()
        assert reader.after(0, 1)[0].seq == 31
        reader.close()


def test_closed_journal_refuses_and_blocked_appends_fail(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db", ORIGIN, max_events=100).open()
    j.append(drafts(100)).result(5)
    parked = j.append(drafts(1))
    j.close()
    with pytest.raises(Exception, match=r"j\.db"):
        parked.result(5)
    with pytest.raises(Exception, match=r"j\.db"):
        j.append(drafts(1)).result(5)


CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from gateway.events import EventDraft, Origin
    from gateway.journal import Journal
    j = Journal(Path(sys.argv[1]), Origin("gw", "8035", "s", "L1")).open()
    i = 0
    while True:
        evs = j.append([EventDraft("ccp.net_content", datetime.now(UTC), {"i": i + k})
                        for k in range(7)]).result()
        i += 7
        # accepted: tell the parent, as a driver would ack its device
        sys.stdout.write(" ".join(str(e.seq) for e in evs) + "\\n")
        sys.stdout.flush()
    """
)


@pytest.mark.parametrize("round_", range(3))
def test_kill_9_loses_no_accepted_event(tmp_path: Path, round_: int) -> None:
    path = tmp_path / "j.db"
    accepted: list[int] = []
    for _ in range(2):  # kill, then restart on the same file and kill again
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        lines = 0
        while lines < 30 + 20 * round_ and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            accepted.extend(int(s) for s in line.split())
            lines += 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # whatever the child printed before dying was accepted
        rest = proc.stdout.read()
        accepted.extend(int(s) for s in rest.split())
    assert accepted, "child accepted nothing"
    j = Journal(path, ORIGIN).open()
    reader = j.reader()
    on_disk = [r.seq for r in reader.after(0, 10**6)]
    reader.close()
    j.close()
    assert set(accepted) <= set(on_disk)
    assert on_disk == list(range(1, len(on_disk) + 1)), "seq has gaps or repeats after kill -9"


def test_a_producer_that_gives_up_waiting_does_not_stop_the_writer(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", ORIGIN) as j:
        futs = [j.append(drafts(50)) for _ in range(20)]
        for f in futs[::2]:
            f.cancel()  # e.g. the awaiting task was cancelled at shutdown
        last = j.append(drafts(1)).result(5)
        # handed in is committed, whether or not the producer still waits for the answer
        assert last[0].seq == 1001
        assert all(f.result(5) for f in futs[1::2])
