"""Memory of ``saltgw run`` on the demo line, beside a bare interpreter importing the same
libraries.

    python bench/gateway_rss.py [--quick] [--seconds S]

The demo line (mappings/demo-line.yaml, every port moved to a free one) runs as users run it:
``saltgw sim`` in one process, ``saltgw run --broker URL`` in another, mosquitto, and
``mosquitto_sub`` counting what arrives. Every 0.5 s the gateway's /proc/PID/status is read
(VmRSS, VmHWM). The figure is VmHWM (peak RSS since start) at the end of the run.

The gateway runs with ``PYTHONPROFILEIMPORTTIME=1`` (the same as ``-X importtime``; it writes
to stderr, it keeps nothing), so the bench knows every module it imported, lazy ones included.
Baseline: a fresh ``python`` that imports those same top-level stdlib and third-party packages
(none of saltgw's own) and does nothing else; its VmHWM. A third process imports them one by
one in the gateway's order and reports what each added (``import_mb``), which is where the
memory goes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import emit, row

__all__ = ["TARGET_MB", "RssSample", "imported_packages", "rows", "status_kb"]

TARGET_MB = 80.0
FIRST_PARTY = {"gateway", "drivers", "firmware_sim", "tests", "bench", "mappings"}
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|(\s*)(\S+)\s*$")


def status_kb(pid: int | str, key: str) -> int:
    """A ``Vm…`` line of /proc/PID/status, in kB (``pid`` may be ``self``)."""
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    if m is None:
        raise KeyError(f"{key} not in /proc/{pid}/status")
    return int(m.group(1))


def imported_packages(importtime_log: str) -> list[str]:
    """Top-level packages in the order ``-X importtime`` output finished them, without
    saltgw's own, private ones (``_ssl``, ``__editable__…``) and start-up hooks."""
    seen: dict[str, None] = {}
    for line in importtime_log.splitlines():
        m = IMPORT_LINE.match(line)
        if m is None:
            continue
        top = m.group(2).split(".")[0]
        if top.startswith("_") or top in FIRST_PARTY:
            continue
        if top in {"site", "sitecustomize", "usercustomize", "encodings"}:
            continue
        seen.setdefault(top)
    return list(seen)


@dataclass
class RssSample:
    t: float
    rss_kb: int
    hwm_kb: int


@dataclass
class DemoRun:
    samples: list[RssSample] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    messages: int = 0
    sim_hwm_kb: int = 0
    stopped: str = ""


def _saltgw(args: list[str], log: Path, cwd: Path, **env: str) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    with log.open("ab") as f:
        return subprocess.Popen([sys.executable, "-m", "gateway", *args], stdout=f,
                                stderr=subprocess.STDOUT, cwd=cwd, env=full_env)  # fmt: skip


def _stop(proc: subprocess.Popen[bytes], secs: float = 30) -> str:
    proc.terminate()
    try:
        proc.wait(secs)
        return f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"did not stop within {secs:g} s: killed"


def run_demo(workdir: Path, seconds: float) -> DemoRun:
    from tests.support.broker import Mosquitto
    from tests.support.configs import demo_line_on_free_ports

    cfg = demo_line_on_free_ports(workdir)
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    out = DemoRun()
    sim = _saltgw(["sim", str(cfg)], workdir / "sim.log", workdir)
    sub_out = (workdir / "sub.out").open("wb")
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(broker.port), "-t", "salt/v1/#", "-q", "1"],
                           stdout=sub_out)  # fmt: skip
    gw_log = workdir / "gateway.log"
    gw = _saltgw(["run", str(cfg), "--broker", broker.url], gw_log, workdir,
                 PYTHONPROFILEIMPORTTIME="1")  # fmt: skip
    try:
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < seconds:
            if gw.poll() is not None:
                raise RuntimeError(f"saltgw run exited ({gw.returncode}) after {elapsed:.1f} s; "
                                   f"see {gw_log}")  # fmt: skip
            out.samples.append(
                RssSample(elapsed, status_kb(gw.pid, "VmRSS"), status_kb(gw.pid, "VmHWM"))
            )
            time.sleep(0.5)
        out.samples.append(
            RssSample(seconds, status_kb(gw.pid, "VmRSS"), status_kb(gw.pid, "VmHWM"))
        )
        out.sim_hwm_kb = status_kb(sim.pid, "VmHWM")
    finally:
        out.stopped = _stop(gw)
        _stop(sim)
        sub.kill()
        sub.wait()
        sub_out.close()
        broker.kill()
    out.messages = len((workdir / "sub.out").read_bytes().splitlines())
    out.packages = imported_packages(gw_log.read_text(errors="replace"))
    return out


# -- the baseline: the same imports, nothing else -------------------------------------------------
#: Run as ``python -c PROBE NAME…`` in a fresh interpreter (no bench code loaded): imports the
#: names in order and prints JSON: the kB each added, the ones that failed, VmHWM.
PROBE = r"""
import importlib, json, re, sys
def kb(key):
    text = open("/proc/self/status").read()
    return int(re.search(r"^" + key + r":\s+(\d+) kB", text, re.M).group(1))
added, skipped = {}, []
start = before = kb("VmRSS")
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        skipped.append(name)
        continue
    now = kb("VmRSS")
    added[name] = now - before
    before = now
print(json.dumps({"start_kb": start, "added_kb": added, "skipped": skipped, "hwm_kb": kb("VmHWM")}))
"""


def import_probe(names: list[str]) -> dict[str, Any]:
    """A fresh interpreter importing ``names`` (no names: the interpreter alone)."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *names],
        capture_output=True, text=True, check=True, timeout=120, cwd=tempfile.gettempdir(),
    )  # fmt: skip
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def rows(quick: bool, seconds: float | None = None) -> list[dict[str, Any]]:
    secs = seconds if seconds is not None else (15.0 if quick else 90.0)
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        demo = run_demo(Path(tmp), secs)
    base = import_probe(demo.packages)
    bare = import_probe([])
    stdlib = set(sys.stdlib_module_names)
    third = {k: v for k, v in base["added_kb"].items() if k not in stdlib}
    std_kb = sum(v for k, v in base["added_kb"].items() if k in stdlib)
    heavy = dict(sorted(third.items(), key=lambda kv: -kv[1])[:8])
    hwm_mb = demo.samples[-1].hwm_kb / 1024
    mid = demo.samples[len(demo.samples) // 2]
    base_mb = base["hwm_kb"] / 1024
    return [
        row(
            "gateway_rss_mb",
            round(hwm_mb, 1),
            "MB",
            round(base_mb, 1),
            target=TARGET_MB,
            higher_is_better=False,
            baseline_what=f"python importing the {len(demo.packages)} stdlib and third-party "
            "packages saltgw run imported, nothing else (VmHWM)",
            what="saltgw run on the demo line (saltgw sim, mosquitto): VmHWM at the end",
            seconds=secs,
            rss_mid_mb=round(mid.rss_kb / 1024, 1),
            rss_end_mb=round(demo.samples[-1].rss_kb / 1024, 1),
            gateway_own_mb=round(hwm_mb - base_mb, 1),
            interpreter_mb=round(bare["hwm_kb"] / 1024, 1),
            stdlib_import_mb=round(std_kb / 1024, 1),
            import_mb={k: round(v / 1024, 1) for k, v in heavy.items()},
            third_party=sorted(third),
            messages_received=demo.messages,
            sim_hwm_mb=round(demo.sim_hwm_kb / 1024, 1),
            stopped=demo.stopped,
        )
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="15 s instead of 90 s")
    ap.add_argument("--seconds", type=float, help="how long the demo line runs")
    args = ap.parse_args()
    for r in rows(args.quick, args.seconds):
        emit(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
