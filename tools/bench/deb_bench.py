"""Benchmark: the process AGI's start under the Debian package (issue 23), on Debian's
/usr/bin/python3 and libraries, no venv, beside the bare interpreter, the runs interleaved.

- bare interpreter: `/usr/bin/python3 -c pass` (and `-I -c pass`, the flags the package's
  launcher starts it with);
- process AGI `alexa-route` for a mapped room of 3,000, through the agi-bin copy Asterisk
  runs (/var/lib/asterisk/agi-bin/pbx-bridge -> /usr/bin/pbx-bridge), start to exit with the
  conversation answered; goal: median <= bare + 12 ms;
- `pbx-bridge --version`, for scale.
Needs the package installed (`apt-get install ../pbx-bridge_*_all.deb`, README).
Run: python3 tools/bench/deb_bench.py [--starts 31] [--rooms 3000] [--as-user nobody]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from agi_bench import agi_call_ms  # noqa: E402

from pbx_bridge.rooms.store import Store  # noqa: E402

PY = "/usr/bin/python3"
LINK = "/var/lib/asterisk/agi-bin/pbx-bridge"
GOAL_MS = 12.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--starts", type=int, default=31)
    ap.add_argument("--rooms", type=int, default=3000)
    ap.add_argument("--as-user", metavar="USER", help="run every case as this user "
                    "(runuser; as Asterisk runs the AGI), e.g. nobody")
    args = ap.parse_args()
    if not os.path.exists(LINK) or not os.path.exists("/usr/bin/pbx-bridge"):
        print(f"{LINK} is not there: install the Debian package first (README)")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="pbx-bridge-deb-bench-"))
    try:
        tmp.chmod(0o755)
        state = tmp / "state"
        state.mkdir()
        store = Store(state)
        store.set_meta(trunk_id="T", endpoint="alexa")
        for i in range(args.rooms):
            store.record("T", str(10000 + i), f"amzn1.alexa.unit.did.{i}", f"Room {i}",
                         ours=True)
        store.publish()  # routes.json: all the AGI reads
        store.close()
        state.chmod(0o711)
        (state / "routes.json").chmod(0o644)
        return bench(args, state)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench(args: argparse.Namespace, state: Path) -> int:
    prefix = ["runuser", "-u", args.as_user, "--"] if args.as_user else []
    def agi() -> float:
        return agi_call_ms([*prefix, LINK], "10001", state, cwd="/")

    def run(argv: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run([*prefix, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True, cwd="/")
        return (time.perf_counter() - t0) * 1000

    bare = f"bare interpreter ({PY} -c pass)"
    cases = {bare: lambda: run([PY, "-c", "pass"]),
             f"bare, isolated ({PY} -I -c pass)": lambda: run([PY, "-I", "-c", "pass"]),
             "process AGI alexa-route via agi-bin copy": agi,
             "pbx-bridge --version": lambda: run(["/usr/bin/pbx-bridge", "--version"])}
    got: dict[str, list[float]] = {k: [] for k in cases}
    for f in cases.values():  # warm the page cache and the .pyc files
        f()
    for _ in range(args.starts):  # interleaved, so load on the machine hits all alike
        for name, f in cases.items():
            got[name].append(f())
    base = statistics.median(got[bare])
    who = f" as {args.as_user}" if args.as_user else ""
    print(f"start-up, whole process, {args.starts} runs each, interleaved{who}, "
          f"{args.rooms} rooms mapped:")
    for name, xs in got.items():
        med = statistics.median(xs)
        print(f"  {name:45s} median {med:5.1f} ms (bare + {med - base:4.1f}), "
              f"min {min(xs):5.1f} ms")
    agi_med = statistics.median(got["process AGI alexa-route via agi-bin copy"])
    met = agi_med <= base + GOAL_MS
    print(f"goal: process AGI <= bare + {GOAL_MS:g} ms = {base + GOAL_MS:.1f} ms: "
          f"{'met' if met else 'NOT met'} ({agi_med:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
