"""Check one `saltgw demo` run as a new user would judge it (scripts/first-hour.sh, issue 12):
exit 0, no Python traceback anywhere, every device online at the end, every event type of the
contract published (shared/design/contract.md: pallets, outbound, inbound and recall scans
included), the web console's URL printed and its /healthz answering with the broker connected
at the end, and documents in the outbox. Prints what is wrong and exits 1; else a one-line OK."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CONTRACT_TYPES = {
    "ccp.metal_detector", "ccp.magnet_rod", "ccp.net_content", "ccp.sieve", "ccp.iodine",
    "feed.material", "batch.start", "batch.end",
    "pack.bag", "pack.noread", "pack.reject", "pack.case", "pack.pallet", "pack.unpack",
    "ship.outbound", "ship.inbound", "recall.scan",
    "alarm.duplicate_code", "alarm.invalid_code", "alarm.aggregation", "alarm.ccp",
    "alarm.device", "alarm.scan_rate",
}  # fmt: skip


def problems(rc: int, out: str, err: str, outbox: Path) -> list[str]:
    found: list[str] = []
    if rc != 0:
        found.append(f"saltgw demo exited {rc}")
    for name, text in (("stdout", out), ("stderr", err)):
        if "Traceback (most recent call last)" in text:
            at = text.index("Traceback (most recent call last)")
            found.append(f"a Python traceback on {name}:\n{text[at : at + 2000]}")
    lines = [ln for ln in out.splitlines() if ln.startswith("summary: ")]
    if not lines:
        return [*found, "no 'summary: {JSON}' line in the output"]
    summary = json.loads(lines[-1].removeprefix("summary: "))
    seen = set(summary.get("events_by_type", {}))
    missing = sorted(CONTRACT_TYPES - seen)
    if missing:
        found.append(f"event types of the contract never published: {', '.join(missing)}")
    states = summary.get("device_states", {})
    if not states:
        found.append("no device states in the summary")
    not_online = {d: s for d, s in states.items() if s != "online"}
    if not_online:
        found.append(f"devices not online at the end: {not_online}")
    console = summary.get("console") or {}
    if not any(ln.startswith("console: http://") for ln in out.splitlines()):
        found.append("no 'console: http://HOST:PORT/' line (saltgw demo starts the web console)")
    elif console.get("status") != "ok" or console.get("broker") != "connected":
        found.append(
            f"the web console did not answer /healthz with its broker connected: {console}"
        )
    docs = sorted(outbox.glob("*.xml")) if outbox.is_dir() else []
    if not docs:
        found.append(f"no document in the outbox {outbox}")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rc", type=int, required=True, help="the demo's exit code")
    ap.add_argument("--stdout", type=Path, required=True)
    ap.add_argument("--stderr", type=Path, required=True)
    ap.add_argument("--outbox", type=Path, required=True)
    a = ap.parse_args(argv)
    out = a.stdout.read_text(errors="replace")
    err = a.stderr.read_text(errors="replace")
    found = problems(a.rc, out, err, a.outbox)
    if found:
        print("first hour: FAILED", file=sys.stderr)
        for p in found:
            print(f"- {p}", file=sys.stderr)
        return 1
    n = len(list(a.outbox.glob("*.xml")))
    print(f"first hour: OK (every contract event type, every device online, {n} documents)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
