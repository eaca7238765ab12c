"""Load from wrk on loopback: fixed connections, bounded in time, optionally held at a rate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path

from bench.support import BenchError

MARKER = "BENCH_JSON "

# wrk is LuaJIT, so the script can read a monotonic clock through ffi. With a rate, each
# thread hands out send slots ``interval`` apart; a connection that is ready early waits for
# its slot, one that is late sends at once and never bursts to catch up.
SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()

local rate = tonumber(os.getenv("BENCH_RATE") or "0")
if rate > 0 then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk_id, bench_timespec *tp);
  ]]
  local ts = ffi.new("bench_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval = 1000 * tonumber(os.getenv("BENCH_THREADS")) / rate
  local next_slot = nil
  function delay()
    local now = now_ms()
    if next_slot == nil or next_slot < now then next_slot = now end
    local wait = next_slot - now
    next_slot = next_slot + interval
    return math.floor(wait)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"p999_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One wrk run: how many answers, how fast, how many were not 2xx."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    errors: int
    non_2xx: int
    target_rps: float | None = None

    def as_dict(self) -> dict[str, object]:
        """Plain values for results.json."""
        return asdict(self)


def require_wrk() -> str:
    """The wrk binary, or BenchError saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise BenchError(
            "wrk is not installed: run `apt-get install wrk` (Debian/Ubuntu) "
            "or `brew install wrk`, then run the benchmark again"
        )
    return path


def parse(output: str, target_rps: float | None = None) -> LoadResult:
    """Read the summary line our wrk script prints."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            raw = json.loads(line[len(MARKER) :])
            break
    else:
        raise BenchError(f"wrk printed no summary; its output was:\n{output[-2000:]}")
    seconds = raw["duration_us"] / 1e6
    errors = raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    return LoadResult(
        requests=raw["requests"],
        seconds=round(seconds, 3),
        rps=round(raw["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        p999_ms=raw["p999_us"] / 1000,
        mean_ms=round(raw["mean_us"] / 1000, 3),
        max_ms=raw["max_us"] / 1000,
        errors=errors,
        non_2xx=raw["status_errors"],
        target_rps=target_rps,
    )


def post(
    url: str,
    body: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    rate: float | None = None,
    token: str | None = None,
) -> LoadResult:
    """POST ``body`` to ``url`` for ``seconds`` over ``connections``, at most ``rate`` per s."""
    wrk = require_wrk()
    with tempfile.TemporaryDirectory(prefix="engagehook-wrk-") as tmp:
        script = Path(tmp, "post.lua")
        script.write_text(SCRIPT)
        body_file = Path(tmp, "body.json")
        body_file.write_text(body)
        env = {
            **os.environ,
            "BENCH_BODY_FILE": str(body_file),
            "BENCH_THREADS": str(threads),
            "BENCH_RATE": str(rate or 0),
            "BENCH_TOKEN": token or "",
        }
        argv = [
            wrk,
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds:g}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            url,
        ]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 30)
    if result.returncode != 0:
        raise BenchError(f"wrk failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return parse(result.stdout, target_rps=rate)
