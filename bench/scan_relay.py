"""The scan-latency baseline: the least a relay can do. Read CRLF lines from a scanner's TCP
server and publish each, as received, on one MQTT topic at QoS 1 (paho, its ``loop_start``
network thread, MQTT 5, 1,000 in flight as the gateway's default). No parsing, no checks, no
journal: what bench/scan_latency.py measures the gateway against.

    python bench/scan_relay.py --scanner-port P --broker-port B --topic T

Runs until the scanner closes the connection, then waits (bounded) for the last PUBACKs.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["relay"]


def relay(scanner_port: int, broker_port: int, topic: str, connect_secs: float = 30) -> int:
    """Relay until the scanner hangs up; returns the number of lines published."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-relay",
                         protocol=paho.MQTTv5)  # fmt: skip
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", broker_port)
    client.loop_start()
    published = 0
    try:
        sock = _connect(scanner_port, connect_secs)
        with sock:
            buf = b""
            while chunk := sock.recv(4096):
                buf += chunk
                *lines, buf = buf.split(b"\r\n")
                for line in lines:
                    if line:
                        client.publish(topic, line, qos=1)
                        published += 1
        deadline = time.monotonic() + 10
        while client.want_write() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the last PUBACKs
    finally:
        client.disconnect()
        client.loop_stop()
    return published


def _connect(port: int, within_secs: float) -> socket.socket:
    deadline = time.monotonic() + within_secs
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scanner-port", type=int, required=True)
    ap.add_argument("--broker-port", type=int, required=True)
    ap.add_argument("--topic", default="bench/scan/relay")
    args = ap.parse_args()
    n = relay(args.scanner_port, args.broker_port, args.topic)
    print(f"relayed {n} lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
