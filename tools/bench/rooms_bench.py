"""Benchmark: `rooms apply` of 3,000 rooms from empty, and a `rooms plan` with nothing to
change, against the emulator with 25 ms injected latency on every request.

Targets (issue 5): apply within 1.3x of 3000 x 25 ms / concurrency; the no-change plan makes
no write calls and takes within 1.2x of pages x 25 ms. Run the `pbx-bridge` CLI as a user
would. Run: python tools/bench/rooms_bench.py [--rooms 3000] [--latency-ms 25]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import PUBLIC_IP, SECRET, cli_env, make_pki  # noqa: E402
from pbx_bridge.amazon.emulator import EmulatorConfig, start  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rooms", type=int, default=3000)
    ap.add_argument("--latency-ms", type=float, default=25.0)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    log = io.StringIO()
    server, _ = start(EmulatorConfig(client_secret=SECRET, latency_ms=args.latency_ms,
                                     activate_after=0, log=log))
    tmp = Path(tempfile.mkdtemp(prefix="pbx-bridge-rooms-bench-"))
    env = cli_env(server, tmp / "state")
    env["PYTHONPATH"] = str(ROOT)
    pki = make_pki()
    from pbx_bridge.amazon.models import Peer, TrunkSpec
    import requests
    tok = requests.post(server.url + "/auth/o2/token", data={
        "grant_type": "client_credentials", "client_id": "emulator-client",
        "client_secret": SECRET, "scope": "amazon_communication::network:siptrunk"}).json()
    spec = TrunkSpec("pbx.harbor-hotel.test", (pki.leaf.pem().decode(),),
                     (Peer(PUBLIC_IP, 5061),))
    trunk = requests.post(server.url + "/v1/communications/network/siptrunk",
                          json=spec.to_wire(),
                          headers={"Authorization": "Bearer " + tok["access_token"]}).json()
    (tmp / "state").mkdir(parents=True, exist_ok=True)
    (tmp / "state" / "state.json").write_text(json.dumps({"trunkId": trunk["trunkId"]}))
    rows = "".join(f"{10000 + i},Room {10000 + i},amzn1.alexa.unit.did.bench{i}\n"
                   for i in range(args.rooms))
    (tmp / "map.csv").write_text("extension,room,comms_profile_id\n" + rows)

    def cli(*a: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "pbx_bridge", *a], env=env, cwd=ROOT,
                           capture_output=True, text=True)
        return time.perf_counter() - t0, r

    lat = args.latency_ms / 1000
    before = server.emulator.requests
    t_apply, r = cli("rooms", "apply", "--map", str(tmp / "map.csv"), "--concurrency",
                     str(args.concurrency))
    if r.returncode != 0:
        print(r.stdout, r.stderr, file=sys.stderr)
        return 1
    apply_requests = server.emulator.requests - before
    bound = args.rooms * lat / args.concurrency
    print(f"rooms apply: {args.rooms} creates in {t_apply:.2f} s wall ({apply_requests} "
          f"requests); bound {args.rooms} x {args.latency_ms:g} ms / {args.concurrency} = "
          f"{bound:.2f} s; ratio {t_apply / bound:.2f} (target <= 1.30)")

    log.seek(0)
    log.truncate()
    t_plan, r = cli("rooms", "plan", "--map", str(tmp / "map.csv"), "--json")
    plan = json.loads(r.stdout)
    writes = sum(1 for line in log.getvalue().splitlines()
                 if line.split()[1] in ("POST", "PUT", "DELETE") and "/auth/" not in line)
    pages = math.ceil(args.rooms / 10)
    bound = pages * lat
    print(f"rooms plan (no change: {plan['unchanged']} unchanged, "
          f"{len(plan['creates']) + len(plan['updates']) + len(plan['deletes'])} changes): "
          f"{t_plan:.2f} s wall, {writes} write calls; bound {pages} pages x "
          f"{args.latency_ms:g} ms = {bound:.2f} s; ratio {t_plan / bound:.2f} "
          "(target <= 1.20)")
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
