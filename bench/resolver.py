"""The resolver under load: lookups/s and p99 over a public snapshot of 1M codes, beside the
same server answering a static file in the same run (issue 16: >= 2,000 lookups/s, p99 <= 50 ms
on 2 cores).

    python bench/resolver.py [--quick] [--codes N] [--seconds S] [--connections C] [--workers W]
                             [--server auto|uvicorn|waitress]

Processes: ``saltgw resolver`` (its own process, as deployed, with ``workers: 2``: one per
core; CPU and peak RSS are summed over the parent and its workers) over a snapshot of ``--codes``
codes (default 1,000,000; ``--quick`` 50,000) written with the snapshot's own schema
(gateway/public_snapshot.py: one enterprise, one product, a batch per 20,000 codes, 1 % of the
codes withdrawn, 0.5 % recalled, half shipped), its query log in the same temporary folder, no
rate limit (one client address would be throttled otherwise), ``resolver.server`` from
``--server`` (auto: uvicorn when installed, else waitress; each row says which ran). The load is
Debian's ``wrk`` (C, keep-alive, ``--connections`` connections, 2 threads), so the client takes
little of the two cores: each request picks a random code, 90 % from the snapshot and 10 %
unknown.

Rows, each beside the static-file baseline measured on the same server in the same run
(``GET /static/…``: the server's own floor, no lookup, no query record, no template):

* ``resolver_lookups_per_s``: ``GET /api/v1/codes/{code}`` answers per second (target 2,000),
  with ``resolver_cpu`` (cores the resolver's processes used meanwhile) and
  ``cpu_us_per_lookup`` (their CPU per answer: what the machine's other load does not change
  much, while lookups/s follows the share of the cores the resolver gets);
* ``resolver_lookup_p99_ms``: their p99 latency (target 50 ms, lower is better);
* ``resolver_page_per_s``: ``GET /q/{code}`` (the consumer's HTML page) per second.

Every answer must be 200 or 404 (unknown code): another status (429, 5xx) or a socket error
makes the bench fail rather than report a figure.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sqlite3
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import procs
from bench.report import emit, row
from gateway.public_snapshot import SCHEMA_SQL, SCHEMA_VERSION

__all__ = ["fill_snapshot", "rows"]

TARGET_LOOKUPS = 2000.0
TARGET_P99_MS = 50.0
ENTERPRISE = "8035"
ALPHABET = string.ascii_uppercase + string.digits
CODES_PER_BATCH = 20_000
SAMPLE = 20_000  # codes handed to wrk (a random sample of the snapshot, plus unknown ones)

WRK_SCRIPT = r"""
local paths = {}
local threads = {}
local prefix = os.getenv("BENCH_PREFIX")
setup = function(thread) threads[#threads + 1] = thread end
init = function(args)
  for line in io.lines(os.getenv("BENCH_CODES")) do paths[#paths + 1] = prefix .. line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  ok, missing, other = 0, 0, 0
end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
response = function(status, headers, body)
  if status == 200 then ok = ok + 1 elseif status == 404 then missing = missing + 1
  else other = other + 1 end
end
done = function(summary, latency, requests)
  local s = {ok = 0, missing = 0, other = 0}
  for _, t in ipairs(threads) do
    for k, _ in pairs(s) do s[k] = s[k] + t:get(k) end
  end
  local e = summary.errors
  io.write(string.format(
    '\nBENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "timeout": %d, "ok": %d, "missing": %d, ' ..
    '"other": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.timeout, s.ok, s.missing, s.other))
end
"""


def _code(rnd: random.Random) -> str:
    return ENTERPRISE + "".join(rnd.choices(ALPHABET, k=12))


def fill_snapshot(path: Path, n: int, seed: int = 1) -> list[str]:
    """A published-style snapshot of ``n`` codes at ``path``; returns a sample of its codes."""
    rnd = random.Random(seed)
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_SQL)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    meta = {"schema_version": str(SCHEMA_VERSION), "built_at": "2026-11-22T10:00:00+08:00",
            "source": "bench", "codes": str(n)}  # fmt: skip
    db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    db.execute(
        "INSERT INTO enterprises VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (ENTERPRISE, "山东岱岳制盐有限公司", "山东省泰安市岱岳区", "0538-0000000",
         "http://www.example.cn", "SD-035", "自2024年4月1日至2027年3月31日", "AAA"),
    )  # fmt: skip
    db.execute(
        "INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("p400", "加碘精制盐", "400g", "GB/T 5461", "加碘食盐", "真空蒸发制盐工艺",
         "山东省泰安市", "山东岱岳制盐有限公司，山东省泰安市", "依据个人口味于烹饪时加入",
         "本品偶有结块时可放心食用", "氯化钠 ≥ 98.5 g/100g；碘 (以I计) 18~33 mg/kg",
         "密封、避光、防潮", "钠 38.5 g/100g", "甲状腺疾病患者遵医嘱"),
    )  # fmt: skip
    batches = max(1, (n + CODES_PER_BATCH - 1) // CODES_PER_BATCH)
    db.executemany(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
        [(f"20261122-L1-{b:03d}", ENTERPRISE, "p400", "2026-11-22", "1095天", "合格，一级")
         for b in range(batches)],
    )  # fmt: skip
    sale = {"date": "2026-11-23", "party_type": "批发企业", "party": "某盐业批发公司"}
    sales = json.dumps([sale], ensure_ascii=False)
    sample: list[str] = []
    chunk: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    i = 0
    while i < n:
        code = _code(rnd)
        if code in seen:
            continue
        seen.add(code)
        r = rnd.random()
        state = "withdrawn" if r < 0.01 else "recalled" if r < 0.015 else (
            "shipped" if r < 0.5 else "commissioned")  # fmt: skip
        chunk.append((code, f"20261122-L1-{i // CODES_PER_BATCH:03d}", "2026-11-22", state,
                       "2026-11-23", sales if state == "shipped" else None, None))  # fmt: skip
        if len(sample) < SAMPLE and rnd.random() < max(SAMPLE * 2 / n, 0.01):
            sample.append(code)
        i += 1
        if len(chunk) >= 50_000:
            db.executemany("INSERT INTO codes VALUES (?, ?, ?, ?, ?, ?, ?)", chunk)
            chunk.clear()
    db.executemany("INSERT INTO codes VALUES (?, ?, ?, ?, ?, ?, ?)", chunk)
    db.commit()
    db.execute("VACUUM")
    db.close()
    return sample


def _wrk(url: str, prefix: str, codes: Path, script: Path, seconds: float, conns: int,
         log: Path) -> dict[str, Any]:  # fmt: skip
    env = {"BENCH_PREFIX": prefix, "BENCH_CODES": str(codes), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
         "-s", str(script), url],
        capture_output=True, text=True, env=env, timeout=seconds + 60, check=False,
    )  # fmt: skip
    with log.open("a") as f:
        f.write(out.stdout + out.stderr)
    m = re.search(r"^BENCH (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or m is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {(out.stdout + out.stderr)[-600:]}")
    res: dict[str, Any] = json.loads(m.group(1))
    bad = {k: res[k] for k in ("connect", "read", "write", "timeout", "other") if res[k]}
    if bad:  # 200 and 404 (an unknown code) are the answers; anything else fails the bench
        raise RuntimeError(f"wrk saw errors or other statuses {bad} (see {log})")
    res["per_s"] = res["requests"] / (res["duration_us"] / 1e6)
    return res


def _family(pid: int) -> list[int]:
    """``pid`` and its child processes (the resolver's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(c) for c in children)]


def rows(quick: bool, codes: int | None = None, seconds: float | None = None,
         connections: int = 32, workers: int = 2,
         server: str = "auto") -> list[dict[str, Any]]:  # fmt: skip
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian package wrk; scripts/setup.sh apt)")
    n = codes or (50_000 if quick else 1_000_000)
    secs = seconds or (5.0 if quick else 20.0)
    with tempfile.TemporaryDirectory(prefix="saltgw-bench-resolver-") as tmp:
        d = Path(tmp)
        t0 = time.monotonic()
        sample = fill_snapshot(d / "public.db", n)
        fill_secs = time.monotonic() - t0
        rnd = random.Random(2)
        unknown = [_code(rnd) for _ in range(len(sample) // 9)]
        (d / "codes.txt").write_text("\n".join(sample + unknown) + "\n")
        (d / "static.txt").write_text("resolver.css\n")
        (d / "bench.lua").write_text(WRK_SCRIPT)
        cfg = {"resolver": {"snapshot": str(d / "public.db"), "query_log": str(d / "q.db"),
                            "workers": workers,
                            "server": server,
                            "rate_limit": {"per_second": 10000, "burst": 100000}}}  # fmt: skip
        (d / "resolver.yaml").write_text(json.dumps(cfg))
        port = procs.free_port_run(1)
        log = d / "resolver.log"
        proc = procs.start(
            [sys.executable, "-m", "gateway", "--log-level", "warning", "resolver",
             str(d / "resolver.yaml"), "--listen", f"127.0.0.1:{port}"],
            log, d,
        )  # fmt: skip
        try:
            procs.wait_ports([port], proc, log)
            url = f"http://127.0.0.1:{port}"
            _wrk(url, "/api/v1/codes/", d / "codes.txt", d / "bench.lua", 2, connections, log)
            pids = _family(proc.pid)
            cpu0 = sum(procs.proc_cpu_s(p) for p in pids)
            api = _wrk(url, "/api/v1/codes/", d / "codes.txt", d / "bench.lua", secs,
                       connections, log)  # fmt: skip
            api_cpu = (sum(procs.proc_cpu_s(p) for p in pids) - cpu0) / (api["duration_us"] / 1e6)
            page = _wrk(url, "/q/", d / "codes.txt", d / "bench.lua", secs, connections, log)
            static = _wrk(url, "/static/", d / "static.txt", d / "bench.lua", secs,
                          connections, log)  # fmt: skip
            rss_mb = sum(procs.status_kb(p, "VmHWM") for p in _family(proc.pid)) / 1024
            stored = sqlite3.connect(d / "q.db").execute("SELECT COUNT(*) FROM queries")
            recorded = stored.fetchone()[0]
        finally:
            procs.stop(proc)
    common = {"codes": n, "seconds": secs, "connections": connections, "workers": workers,
              "snapshot_fill_secs": round(fill_secs, 1), "resolver_peak_rss_mb": round(rss_mb, 1),
              "query_records": recorded, "server": _server_name(server)}  # fmt: skip
    return [
        row(
            "resolver_lookups_per_s",
            round(api["per_s"], 1),
            "lookups/s",
            round(static["per_s"], 1),
            target=TARGET_LOOKUPS,
            p50_ms=api["p50_us"] / 1000,
            resolver_cpu=round(api_cpu, 2),
            cpu_us_per_lookup=round(api_cpu / api["per_s"] * 1e6),  # all processes' CPU
            **common,
        ),
        row(
            "resolver_lookup_p99_ms",
            api["p99_us"] / 1000,
            "ms",
            static["p99_us"] / 1000,
            target=TARGET_P99_MS,
            higher_is_better=False,
            max_ms=api["max_us"] / 1000,
            **common,
        ),
        row(
            "resolver_page_per_s",
            round(page["per_s"], 1),
            "pages/s",
            round(static["per_s"], 1),
            p99_ms=page["p99_us"] / 1000,
            **common,
        ),
    ]


def _server_name(server: str) -> str:
    """The server ``resolver.server: server`` runs (gateway/resolver/server.py decides)."""
    from gateway.resolver.config import ResolverSection
    from gateway.resolver.server import server_kind

    return server_kind(ResolverSection(snapshot=Path("s.db"), server=server))  # type: ignore[arg-type]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="50,000 codes, 5 s per load")
    ap.add_argument("--codes", type=int, help="codes in the snapshot")
    ap.add_argument("--seconds", type=float, help="seconds per load")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--workers", type=int, default=2, help="resolver.workers (processes)")
    ap.add_argument("--server", choices=["auto", "uvicorn", "waitress"], default="auto",
                    help="resolver.server (auto: uvicorn when installed)")  # fmt: skip
    a = ap.parse_args()
    for r in rows(a.quick, a.codes, a.seconds, a.connections, a.workers, a.server):
        emit(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
