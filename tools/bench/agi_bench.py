"""Benchmark: the AGI side.

- FastAGI: p50 and p99 latency of `alexa-route` calls (connect, header, three SET VARIABLE
  commands answered, close) with 50 concurrent clients on loopback against a
  `pbx-bridge fastagi` process, first paced (each client 10 calls/s, 500 calls/s in all),
  then back to back to find the saturation throughput; target p99 under 5 ms.
- Start-up, whole process, from a production-like install (this checkout built as a wheel
  and installed in a temporary venv, its console script `pbx-bridge`; or `--installed PATH`):
  process AGI `alexa-route` for a mapped room (start to exit, the conversation answered),
  target median <= 60 ms; `--version` and `--help`, target <= 50 ms; each beside the same
  venv's bare interpreter (`python -c pass`), the runs interleaved.
Run: python tools/bench/agi_bench.py [--clients 50] [--calls 40] [--starts 31]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pbx_bridge.rooms.store import Store  # noqa: E402
from wheel_venv import install  # noqa: E402

HEADER = (ROOT / "tests/data/asterisk-22/fastagi-alexa-route.txt").read_text()


def header_for(ext: str) -> bytes:
    lines = [ln[4:] for ln in HEADER.splitlines() if ln.startswith("<<< agi_")]
    lines = [f"agi_arg_1: {ext}" if ln.startswith("agi_arg_1:") else ln for ln in lines]
    return ("\n".join(lines) + "\n\n").encode()


def agi_call_ms(command: list[str], ext: str, state: Path, cwd: str | None = None) -> float:
    """One process AGI ``alexa-route`` for the mapped room ``ext``, the whole process as
    Asterisk runs it (``command`` is how pbx-bridge is started), in milliseconds."""
    t0 = time.perf_counter()
    p = subprocess.Popen([*command, "agi", "alexa-route", ext, "--state-dir", str(state)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, cwd=cwd)
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(header_for(ext))
    p.stdin.flush()
    first = p.stdout.readline()
    assert first.startswith(b"SET VARIABLE ALEXA_ROOM"), first
    last = first
    while True:
        p.stdin.write(b"200 result=1\n")
        p.stdin.flush()
        line = p.stdout.readline()
        if not line:
            break
        last = line
    assert last.startswith(b'SET VARIABLE ALEXA_MAPPED "1"'), last
    p.wait(10)
    return (time.perf_counter() - t0) * 1000


async def one_call(port: int, ext: str) -> float:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header_for(ext))
    await writer.drain()
    for i in range(3):
        line = await reader.readline()
        if not line.startswith(b"SET VARIABLE") or \
                (i == 2 and line != b'SET VARIABLE ALEXA_MAPPED "1"\n'):
            raise RuntimeError(f"unexpected {line!r} (every call is to a mapped room)")
        writer.write(b"200 result=1\n")
        await writer.drain()
    writer.close()
    await writer.wait_closed()
    return time.perf_counter() - t0


async def fastagi(port: int, clients: int, calls: int, rooms: int, rate: float
                  ) -> tuple[list[float], float]:
    """``clients`` concurrent clients, each placing ``calls`` calls: paced at ``rate`` calls
    per second per client (with jitter), or back to back when rate is 0 (saturation)."""
    import random
    times: list[float] = []
    rng = random.Random(1)

    async def client(n: int) -> None:
        if rate:
            await asyncio.sleep(rng.uniform(0, 1 / rate))
        for i in range(calls):
            start = time.perf_counter()
            times.append(await one_call(port, str(10000 + (n * calls + i) % rooms)))
            if rate:
                await asyncio.sleep(max(0.0, rng.uniform(0.5, 1.5) / rate
                                        - (time.perf_counter() - start)))
    for n in range(3):  # warm up
        await one_call(port, str(10000 + n))
    t0 = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return times, time.perf_counter() - t0


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--starts", type=int, default=31)
    ap.add_argument("--installed", metavar="PATH", help="measure this pbx-bridge instead of "
                    "building a wheel of the checkout into a temporary venv")
    ap.add_argument("--rooms", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=10.0, help="calls/s per client when paced")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pbx-bridge-agi-bench-"))
    store = Store(tmp)
    store.set_meta(trunk_id="T", endpoint="alexa")
    for i in range(args.rooms):
        store.record("T", str(10000 + i), f"amzn1.alexa.unit.did.{i}", f"Room {i}", ours=True)
    store.publish()  # what the AGI reads: the routes snapshot
    store.close()
    exe = shutil.which("pbx-bridge")
    base = [exe] if exe else [sys.executable, "-m", "pbx_bridge"]
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server_log = (tmp / "fastagi.log").open("w+")
    server = subprocess.Popen(base + ["fastagi", "--listen", f"127.0.0.1:{port}",
                                      "--state-dir", str(tmp)], cwd=ROOT,
                              stderr=server_log, text=True)
    try:
        while "listening" not in (tmp / "fastagi.log").read_text():
            time.sleep(0.02)
        for rate, label in ((args.rate, f"each placing {args.rate:g} calls/s"),
                            (0.0, "back to back (saturation)")):
            times, wall = asyncio.run(fastagi(port, args.clients, args.calls, args.rooms,
                                              rate))
            ms = [t * 1000 for t in times]
            print(f"FastAGI alexa-route, {args.clients} concurrent clients {label}: "
                  f"{len(ms)} calls, {len(ms) / wall:.0f} calls/s, p50 {pct(ms, 50):.2f} ms, "
                  f"p99 {pct(ms, 99):.2f} ms, max {max(ms):.2f} ms (target p99 < 5 ms)")
    finally:
        server.terminate()
        server.wait(10)

    exe_path = args.installed or install(tmp)
    py = str(Path(exe_path).parent / "python")
    def agi() -> float:
        return agi_call_ms([exe_path], "10001", tmp)

    def run(argv: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return (time.perf_counter() - t0) * 1000

    cases = {"bare interpreter (python -c pass)": lambda: run([py, "-c", "pass"]),
             "pbx-bridge --version": lambda: run([exe_path, "--version"]),
             "pbx-bridge --help": lambda: run([exe_path, "--help"]),
             "process AGI alexa-route (mapped room)": agi}
    got: dict[str, list[float]] = {k: [] for k in cases}
    for f in cases.values():  # warm the page cache
        f()
    for _ in range(args.starts):  # interleaved, so load on the machine hits all alike
        for name, f in cases.items():
            got[name].append(f())
    targets = {"pbx-bridge --version": 50, "pbx-bridge --help": 50,
               "process AGI alexa-route (mapped room)": 60}
    print(f"start-up, whole process, {args.starts} runs each, {exe_path}:")
    for name, xs in got.items():
        med = statistics.median(xs)
        target = targets.get(name)
        verdict = "" if target is None else \
            f" (target <= {target} ms: {'met' if med <= target else 'NOT met'})"
        print(f"  {name:40s} median {med:5.1f} ms, min {min(xs):5.1f} ms{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
