"""saltgw benchmarks: one JSON object per line, each figure measured beside its baseline in the
same run:

    {"bench": ..., "value": ..., "unit": ..., "baseline": ..., "ratio": ..., "target": ...,
     "met": ..., ...extra keys}

    python bench/run.py [--quick] [--only NAME[,NAME]]

``--only`` takes group names (below) or the bench names they print. Each group is also a
script of its own (bench/pipeline.py, scan_latency.py, gateway_rss.py, xml_export.py,
qr_decode.py, snapshot_publish.py). A group that fails prints a line with ``"error"`` and the
run goes on; the exit status is then 1. Needs mosquitto and mosquitto_sub (the README's test
set-up installs them).

    group          prints
    pipeline       pipeline_events_per_s        source → journal → QoS 1, vs raw paho
    backlog_drain  backlog_drain_events_per_s   journal backlog after an outage, vs raw paho
    scan_latency   scan_to_mqtt_p99_ms          1,000 scans/s over TCP → MQTT, vs a bare relay
    gateway_rss    gateway_rss_mb               saltgw run on the demo line, vs its imports;
                   gateway_rss_modbus_scanner_mb   a Modbus + scanner line, the same
    xml_export     xml_export_codes_per_s, xml_export_peak_rss_mb (each profile),
                   xml_export_fill_secs         vs one whole lxml tree
    qr_decode      qr_decode_ms_per_frame, qr_decode_rate   vs pyzbar (ZBar cascade);
                   qr_decode_opencv_ms_per_frame, _rate     the OpenCV-only fallback, same frames
    telemetry_rate telemetry_rate_10x100, _50x100   Modbus farm -> tag telemetry on MQTT
                   (delivered dp/s, CPU, RSS, latency), saltgw vs pymodbus + raw paho
    telemetry_outage  telemetry_outage_drain_secs, _events_lost   10k dp/s + checkweigher
                   events, the broker away 600 s (--quick: 60 s), drained; no event lost
    snapshot_publish  snapshot_build_secs, _publish_secs, _round_secs, _fill_secs   the public
                   snapshot over 1M codes (--quick: 100k): first build, publish, steady round
    resolver       resolver_lookups_per_s, _lookup_p99_ms, _page_per_s   saltgw resolver over
                   1M codes under wrk, vs its own static file
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import emit, error_row, parse_only

Group = Callable[[bool], list[dict[str, Any]]]

#: group → the bench names it prints (for --only)
GROUPS: dict[str, tuple[str, ...]] = {
    "pipeline": ("pipeline_events_per_s",),
    "backlog_drain": ("backlog_drain_events_per_s",),
    "scan_latency": ("scan_to_mqtt_p99_ms",),
    "gateway_rss": ("gateway_rss_mb", "gateway_rss_modbus_scanner_mb"),
    "xml_export": ("xml_export_codes_per_s", "xml_export_peak_rss_mb", "xml_export_fill_secs"),
    "qr_decode": (
        "qr_decode_ms_per_frame",
        "qr_decode_rate",
        "qr_decode_opencv_ms_per_frame",
        "qr_decode_opencv_rate",
    ),
    "telemetry_rate": ("telemetry_rate_10x100", "telemetry_rate_50x100"),
    "telemetry_outage": ("telemetry_outage_drain_secs", "telemetry_outage_events_lost"),
    "snapshot_publish": (
        "snapshot_build_secs",
        "snapshot_publish_secs",
        "snapshot_round_secs",
        "snapshot_fill_secs",
    ),
    "resolver": ("resolver_lookups_per_s", "resolver_lookup_p99_ms", "resolver_page_per_s"),
}


def _runner(group: str) -> Group:
    """Each group's module is imported only when it runs (they pull in heavy libraries)."""
    if group == "pipeline":
        from bench.pipeline import pipeline_rows

        return pipeline_rows
    if group == "backlog_drain":
        from bench.pipeline import drain_rows

        return drain_rows
    if group == "scan_latency":
        from bench.scan_latency import rows as scan_rows

        return scan_rows
    if group == "gateway_rss":
        from bench.gateway_rss import rows as rss_rows

        return rss_rows
    if group == "xml_export":
        from bench.xml_export import rows as xml_rows

        return lambda quick: xml_rows(100_000 if quick else 1_000_000)
    if group == "qr_decode":
        from bench.qr_decode import rows as qr_rows

        return qr_rows
    if group == "telemetry_rate":
        from bench.telemetry_rate import rows as telemetry_rows

        return telemetry_rows
    if group == "telemetry_outage":
        from bench.telemetry_outage import rows as outage_rows

        return outage_rows
    if group == "snapshot_publish":
        from bench.snapshot_publish import rows as snapshot_rows

        return lambda quick: snapshot_rows(100_000 if quick else 1_000_000)
    if group == "resolver":
        from bench.resolver import rows as resolver_rows

        return resolver_rows
    raise KeyError(group)


def run(groups: list[str], quick: bool) -> bool:
    """Run the groups in order, printing each line as it comes; False when one failed."""
    ok = True
    for group in groups:
        t0 = time.monotonic()
        try:
            results = _runner(group)(quick)
        except Exception as exc:  # one broken bench must not hide the others' figures
            ok = False
            emit(error_row(GROUPS[group][0], f"{type(exc).__name__}: {exc}"))
            continue
        secs = round(time.monotonic() - t0, 1)
        for result in results:
            emit({**result, "group_seconds": secs, "quick": quick})
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="smaller runs (CI-sized, < 2 min)")
    ap.add_argument("--only", metavar="NAME[,NAME]", help="groups or bench names to run")
    args = ap.parse_args()
    try:
        groups = parse_only(args.only, GROUPS)
    except ValueError as exc:
        ap.error(str(exc))
    return 0 if run(groups, args.quick) else 1


if __name__ == "__main__":
    sys.exit(main())
