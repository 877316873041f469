"""Memory of ``saltgw run`` on two lines, each beside a bare interpreter importing the same
libraries.

    python bench/gateway_rss.py [--quick] [--seconds S] [--line demo|modbus_scanner]
                                [--malloc-arena-max N] [--with-simulators]

    gateway_rss_mb                  the demo line (mappings/demo-line.yaml): Modbus, OPC UA,
                                    scanners, a camera; target 80 MB
    gateway_rss_modbus_scanner_mb   the demo line without its PLC and camera (the pallet label
                                    on a fixed scanner; tests/support/configs.py); target 50 MB

Each line (every port moved to a free one) runs as users run it: ``saltgw sim`` in one
process, ``saltgw run --broker URL`` in another, mosquitto, and ``mosquitto_sub`` counting what
arrives. The gateway is given the map as a plant runs it: the line's map without its
``simulators:`` section (``<name>-plant.yaml`` beside it; a plant's map has none), while
``saltgw sim`` reads the full map. A gateway loads only the models its map names
(gateway/config/models.py), so a ``simulators:`` section would cost it the simulators' models
(~1.4 MB) that a plant never pays; ``--with-simulators`` gives it the full map instead (how the
bench measured before; the row's ``gateway_map`` says which). Every 0.5 s the gateway's
/proc/PID/status is read (VmRSS, VmHWM). The figure is VmHWM (peak RSS since start) of the
gateway process at the end of the run. A camera decodes in a
worker process of its own (drivers/camera/worker.py): the gateway's children are sampled too and
reported apart (``camera_worker_mb``: their VmHWM summed), never hidden in the figure's absence.

The gateway runs in the environment the shipped service gives it (docker/saltgw.service, the
image): ``MALLOC_ARENA_MAX=2`` (``--malloc-arena-max 0``: glibc's default, 8 arenas a core; the
row says which). It also runs with ``PYTHONPROFILEIMPORTTIME=1`` (the same as ``-X importtime``;
it writes to stderr, it keeps nothing), so the bench knows every module it imported, lazy ones
included. Baseline: a fresh ``python`` that imports those same top-level stdlib and third-party
packages (none of saltgw's own) and does nothing else; its VmHWM. A third process imports them
one by one in the gateway's order and reports what each added (``import_mb``), which is where
the memory goes.
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

from bench.report import emit, error_row, row

__all__ = ["LINES", "TARGET_MB", "RssSample", "imported_packages", "rows", "status_kb"]

TARGET_MB = 80.0
#: line -> (bench name, target MB, what)
LINES: dict[str, tuple[str, float, str]] = {
    "demo": ("gateway_rss_mb", TARGET_MB, "the demo line (Modbus, OPC UA, scanners, camera)"),
    "modbus_scanner": (
        "gateway_rss_modbus_scanner_mb",
        50.0,
        "the demo line's Modbus devices and scanners (no PLC, no camera)",
    ),
}
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
class LineRun:
    samples: list[RssSample] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    messages: int = 0
    events: int = 0  # of the messages, the line's events (…/event/…)
    sim_hwm_kb: int = 0
    children_hwm_kb: dict[int, int] = field(default_factory=dict)  # pid -> VmHWM
    stopped: str = ""


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a camera's decode worker)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def _hwm_or(pid: int, last: int) -> int:
    """VmHWM of ``pid``, or ``last`` once it has exited (a zombie has none)."""
    try:
        return status_kb(pid, "VmHWM")
    except (OSError, KeyError):
        return last


def _sample_children(pid: int, into: dict[int, int]) -> None:
    for child in children(pid):
        try:
            into[child] = status_kb(child, "VmHWM")
        except (OSError, KeyError):  # gone meanwhile
            continue


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


def line_config(line: str, workdir: Path) -> Path:
    from tests.support.configs import demo_line_on_free_ports, modbus_scanner_line_on_free_ports

    if line == "demo":
        return demo_line_on_free_ports(workdir)
    if line == "modbus_scanner":
        return modbus_scanner_line_on_free_ports(workdir)
    raise KeyError(line)


#: What docker/saltgw.service and docker/Dockerfile set (docs/deployment.md).
SERVICE_ARENA_MAX = 2


def run_line(
    workdir: Path,
    cfg: Path,
    seconds: float,
    arena_max: int = SERVICE_ARENA_MAX,
    with_simulators: bool = False,
) -> LineRun:
    from tests.support.broker import Mosquitto
    from tests.support.configs import without_simulators

    gw_cfg = cfg if with_simulators else without_simulators(cfg)

    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    out = LineRun()
    sim = _saltgw(["sim", str(cfg)], workdir / "sim.log", workdir)
    sub_out = (workdir / "sub.out").open("wb")
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(broker.port), "-t", "salt/v1/#", "-q", "1",
                            "-v"], stdout=sub_out)  # fmt: skip
    gw_log = workdir / "gateway.log"
    env = {"PYTHONPROFILEIMPORTTIME": "1"}
    if arena_max:
        env["MALLOC_ARENA_MAX"] = str(arena_max)
    gw = _saltgw(["run", str(gw_cfg), "--broker", broker.url], gw_log, workdir, **env)
    try:
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < seconds:
            if gw.poll() is not None:
                raise RuntimeError(f"saltgw run exited ({gw.returncode}) after {elapsed:.1f} s; "
                                   f"see {gw_log}")  # fmt: skip
            out.samples.append(
                RssSample(elapsed, status_kb(gw.pid, "VmRSS"), status_kb(gw.pid, "VmHWM"))
            )
            _sample_children(gw.pid, out.children_hwm_kb)
            out.sim_hwm_kb = _hwm_or(sim.pid, out.sim_hwm_kb)
            time.sleep(0.5)
        out.samples.append(
            RssSample(seconds, status_kb(gw.pid, "VmRSS"), status_kb(gw.pid, "VmHWM"))
        )
        _sample_children(gw.pid, out.children_hwm_kb)
        out.sim_hwm_kb = _hwm_or(sim.pid, out.sim_hwm_kb)
        if sim.poll() is not None:  # said, not hidden: the line stopped feeding the gateway
            out.stopped += f"saltgw sim exited ({sim.returncode}) during the run; "
    finally:
        out.stopped += _stop(gw)
        _stop(sim)
        sub.kill()
        sub.wait()
        sub_out.close()
        broker.kill()
    received = (workdir / "sub.out").read_bytes().splitlines()  # "topic payload" (-v)
    out.messages = len(received)
    out.events = sum(1 for m in received if b"/event/" in m.split(b" ", 1)[0])
    if not out.events:  # a gateway that never read its line is not the line's footprint
        raise RuntimeError(f"the line never came up: no event reached the broker in {seconds:.0f} "
                           f"s ({out.messages} other messages); see {gw_log}")  # fmt: skip
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


def rows(
    quick: bool,
    seconds: float | None = None,
    lines: tuple[str, ...] = tuple(LINES),
    arena_max: int = SERVICE_ARENA_MAX,
    with_simulators: bool = False,
) -> list[dict[str, Any]]:
    secs = seconds if seconds is not None else (15.0 if quick else 90.0)
    bare = import_probe([])
    out = []
    for line in lines:
        try:
            out.append(_line_row(line, secs, bare, arena_max, with_simulators))
        except RuntimeError as exc:  # this line's failure is its row; the others go on
            out.append(error_row(LINES[line][0], exc))
    return out


def _line_row(
    line: str, secs: float, bare: dict[str, Any], arena_max: int, with_simulators: bool
) -> dict[str, Any]:
    name, target, what = LINES[line]
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        cfg = line_config(line, Path(tmp))
        run = run_line(Path(tmp), cfg, secs, arena_max, with_simulators)
    base = import_probe(run.packages)
    stdlib = set(sys.stdlib_module_names)
    third = {k: v for k, v in base["added_kb"].items() if k not in stdlib}
    std_kb = sum(v for k, v in base["added_kb"].items() if k in stdlib)
    heavy = dict(sorted(third.items(), key=lambda kv: -kv[1])[:8])
    hwm_mb = run.samples[-1].hwm_kb / 1024
    mid = run.samples[len(run.samples) // 2]
    base_mb = base["hwm_kb"] / 1024
    workers_mb = sum(run.children_hwm_kb.values()) / 1024
    return row(
        name,
        round(hwm_mb, 1),
        "MB",
        round(base_mb, 1),
        target=target,
        higher_is_better=False,
        baseline_what=f"python importing the {len(run.packages)} stdlib and third-party "
        "packages saltgw run imported, nothing else (VmHWM)",
        what=f"saltgw run on {what}, its map without simulators: as a plant runs it "
        "(saltgw sim on the full map, mosquitto): the gateway process's VmHWM at the end",
        line=line,
        gateway_map="the full map, with simulators:"
        if with_simulators
        else "the map without simulators: (a plant's)",
        seconds=secs,
        malloc_arena_max=arena_max or "glibc default",
        rss_mid_mb=round(mid.rss_kb / 1024, 1),
        rss_end_mb=round(run.samples[-1].rss_kb / 1024, 1),
        gateway_own_mb=round(hwm_mb - base_mb, 1),
        camera_worker_mb=round(workers_mb, 1),
        camera_workers=len(run.children_hwm_kb),
        gateway_and_workers_mb=round(hwm_mb + workers_mb, 1),
        interpreter_mb=round(bare["hwm_kb"] / 1024, 1),
        stdlib_import_mb=round(std_kb / 1024, 1),
        import_mb={k: round(v / 1024, 1) for k, v in heavy.items()},
        third_party=sorted(third),
        messages_received=run.messages,
        events_received=run.events,
        sim_hwm_mb=round(run.sim_hwm_kb / 1024, 1),
        stopped=run.stopped,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="15 s instead of 90 s")
    ap.add_argument("--seconds", type=float, help="how long each line runs")
    ap.add_argument("--line", choices=sorted(LINES), action="append", help="only this line")
    ap.add_argument("--malloc-arena-max", type=int, default=SERVICE_ARENA_MAX, metavar="N",
                    help="MALLOC_ARENA_MAX for the gateway, as the shipped service sets it "
                    f"(default {SERVICE_ARENA_MAX}; 0: glibc's default)")  # fmt: skip
    ap.add_argument("--with-simulators", action="store_true",
                    help="give saltgw run the full map, simulators: included (default: the "
                    "map without them, as a plant runs it)")  # fmt: skip
    args = ap.parse_args()
    lines = tuple(args.line or LINES)
    for r in rows(args.quick, args.seconds, lines, args.malloc_arena_max, args.with_simulators):
        emit(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
