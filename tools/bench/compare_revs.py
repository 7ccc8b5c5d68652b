"""Start-up and preflight of two revisions side by side, in the same interleaved runs: did a
change (a restructuring, a new import) make the everyday commands slower?

    python tools/bench/compare_revs.py BASE [OTHER]     (OTHER: default the working tree)

Each revision is built as a wheel into a venv of its own (as a production host gets it), then
every round runs, in turn for each: the venv's bare interpreter, ``pbx-bridge --version``, the
process AGI routing a mapped room, and ``preflight --format json`` on a FreePBX tree of 5,000
endpoints with a 2,000-rule ruleset (loopback DNS). Load on the machine hits both alike.
Prints the medians and OTHER minus BASE. With ``--instructions``, also each case once under
valgrind's callgrind (PYTHONHASHSEED=0): instruction counts, repeatable whatever else the
machine is doing.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from agi_bench import agi_call_ms, header_for  # noqa: E402
from helpers import FQDN, PUBLIC_IP, DnsServer  # noqa: E402
from pbx_bridge.rooms.store import Store  # noqa: E402
from preflight_bench import build_rules, build_tree  # noqa: E402
from wheel_venv import install  # noqa: E402


def checkout(rev: str, dest: Path) -> Path:
    """The tree of ``rev`` (git archive: no worktree left behind)."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev],
                          capture_output=True, check=True).stdout
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def instructions(argv: list[str], stdin: bytes = b"") -> int:
    """Instructions the whole process ran (callgrind's "I refs")."""
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                        *argv], input=stdin, capture_output=True,
                       env={**os.environ, "PYTHONHASHSEED": "0"})
    for line in r.stderr.decode(errors="replace").splitlines():
        if "I   refs:" in line:
            return int(line.split(":")[1].replace(",", ""))
    raise RuntimeError(f"no instruction count from {argv}: {r.stderr[-500:]!r}")


def run(argv: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if r.returncode not in (0, 1):  # preflight's "not ready" is 1
        raise RuntimeError(f"{argv} exited {r.returncode}")
    return (time.perf_counter() - t0) * 1000


def agi(exe: str, state: Path) -> float:
    return agi_call_ms([exe], "10001", state)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="the revision to compare against (e.g. HEAD~3)")
    ap.add_argument("other", nargs="?", help="the other revision (default: the working tree)")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--endpoints", type=int, default=5000)
    ap.add_argument("--rules", type=int, default=2000)
    ap.add_argument("--instructions", action="store_true",
                    help="also count each case's instructions once under callgrind")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pbx-bridge-compare-"))
    try:
        return compare(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare(args: argparse.Namespace, tmp: Path) -> int:
    labels = {"base": args.base, "other": args.other or "working tree"}
    exes = {"base": install(tmp / "base", checkout(args.base, tmp / "src-base")),
            "other": install(tmp / "other", checkout(args.other, tmp / "src-other")
                             if args.other else ROOT)}
    state = tmp / "state"
    store = Store(state)
    store.set_meta(trunk_id="T", endpoint="alexa")
    for i in range(3000):
        store.record("T", str(10000 + i), f"amzn1.alexa.unit.did.{i}", f"Room {i}", ours=True)
    store.publish()
    store.close()
    build_tree(tmp / "etc-asterisk", args.endpoints)
    build_rules(tmp / "rules.v4", args.rules)
    dns = DnsServer({FQDN: [PUBLIC_IP]})
    try:
        cases = {
            "bare interpreter": lambda e: run([str(Path(e).parent / "python"), "-c", "pass"]),
            "--version": lambda e: run([e, "--version"]),
            "process AGI alexa-route": lambda e: agi(e, state),
            f"preflight, {args.endpoints} endpoints": lambda e: run(
                [e, "preflight", "--asterisk-dir", str(tmp / "etc-asterisk"),
                 "--firewall-rules", str(tmp / "rules.v4"), "--dns-server", dns.address,
                 "--format", "json"]),
        }
        got = {(c, k): [] for c in cases for k in exes}
        for c, f in cases.items():  # warm the page cache
            for e in exes.values():
                f(e)
        for i in range(args.rounds):
            for c, f in cases.items():
                order = list(exes.items()) if i % 2 == 0 else list(exes.items())[::-1]
                for k, e in order:
                    got[(c, k)].append(f(e))
    finally:
        dns.stop()
    print(f"medians of {args.rounds} interleaved rounds (ms); base = {labels['base']}, "
          f"other = {labels['other']}")
    print(f"{'':28} {'base':>9} {'other':>9} {'other-base':>11}")
    for c in cases:
        b, o = (statistics.median(got[(c, k)]) for k in ("base", "other"))
        print(f"{c:28} {b:9.1f} {o:9.1f} {o - b:+11.1f}")
    if args.instructions:
        dns = DnsServer({FQDN: [PUBLIC_IP]})
        try:
            argvs = {"bare interpreter": lambda e: ([str(Path(e).parent / "python"), "-c",
                                                     "pass"], b""),
                     "--version": lambda e: ([e, "--version"], b""),
                     "process AGI alexa-route": lambda e: (
                         [e, "agi", "alexa-route", "10001", "--state-dir", str(state)],
                         header_for("10001") + b"200 result=1\n" * 5),
                     f"preflight, {args.endpoints} endpoints": lambda e: (
                         [e, "preflight", "--asterisk-dir", str(tmp / "etc-asterisk"),
                          "--firewall-rules", str(tmp / "rules.v4"), "--dns-server",
                          dns.address, "--format", "json"], b"")}
            print("instructions (millions, callgrind, once each)")
            for c, f in argvs.items():
                b, o = (instructions(*f(exes[k])) / 1e6 for k in ("base", "other"))
                print(f"{c:28} {b:9.1f} {o:9.1f} {o - b:+11.1f} ({(o - b) / b:+.2%})")
        finally:
            dns.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
