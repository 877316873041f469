"""One bridge as a process of its own (no gateway beside it), for tests that kill it:
``python -m tests.support.bridge_proc CONFIG STATUS``. Loads CONFIG as ``saltgw`` does, starts
:class:`gateway.bridge.service.Bridge` and writes its counters as JSON to STATUS (atomically,
every 50 ms) until SIGTERM; then stops the bridge and exits 0.

``SALTGW_TEST_ACK_DELAY_SECS`` (the AMQP source only): wait that long after each group is
committed before it is acknowledged, so that a SIGKILL lands between the commit and the ack
(the window a crash hits by chance), and its events must come again as duplicates."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gateway.bridge.service import Bridge
from gateway.config.loader import load_config


def main(config: str, status: str) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    delay = float(os.environ.get("SALTGW_TEST_ACK_DELAY_SECS") or 0)
    if delay:
        import gateway.bridge.amqp as amqp_source

        committed = amqp_source.store_group

        def slow(*args: Any, **kw: Any) -> bool:
            ok = committed(*args, **kw)
            time.sleep(delay)
            return ok

        amqp_source.store_group = slow
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    bridge = Bridge(load_config(config)).start()
    out, tmp = Path(status), Path(status + ".tmp")
    while True:
        c = bridge.consumer
        body = {
            "pid": os.getpid(),
            "connected": bool(c and c.connected.is_set()),
            "subscribed": bool(c and c.subscribed.is_set()),
            "endpoint": bridge.rotation.in_use.name if bridge.rotation.in_use else None,
            "switches": bridge.rotation.switches,
            "standby_joined": bool(getattr(c, "standby_joined", False)),
            **bridge.status(),
        }
        tmp.write_text(json.dumps(body))
        tmp.replace(out)
        if stop.wait(0.05):
            break
    bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
