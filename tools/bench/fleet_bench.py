"""The Ansible fleet playbook on 50 properties (issue 24): the no-change run beside Ansible's
own floor, a play that only runs ``ansible.builtin.command: pbx-bridge --version`` on the same
50 hosts, interleaved, with forks=10. Goal: the fleet run takes at most 2x the floor.

Each property is a host on localhost (connection local) with its own Asterisk config dir (the
plain test tree, no Asterisk running: generate writes it and says the reload was skipped), its
own state dir, settings file and certificate; one emulator plays Amazon for all 50 (each
property's trunk has its own TLS name). pbx-bridge runs from a production-like install (this
checkout built as a wheel into a venv of its own). The first fleet run links all 50 (timed, not
the goal); then ROUNDS rounds, each timing a no-change fleet run and a floor run, in
alternating order, and the same pbx-bridge commands run without Ansible (to tell Ansible's
share from pbx-bridge's). Prints the medians and the ratio.

    .venv/bin/python tools/bench/fleet_bench.py [--properties 50] [--forks 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from helpers import PUBLIC_IP, SECRET, install_keys, make_pki  # noqa: E402
from wheel_venv import install  # noqa: E402

COLLECTIONS = ROOT / "ansible"
PLAYBOOK = COLLECTIONS / "ansible_collections" / "pbx_bridge" / "alexa" / "playbooks" / "fleet.yml"
FLOOR = """\
- name: Ansible's floor, the same hosts
  hosts: pbx
  gather_facts: false
  tasks:
    - name: pbx-bridge --version
      ansible.builtin.command: "{{ pbx_bridge_executable }} --version"
      changed_when: false
"""


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_fleet(top: Path, n: int, exe: str, url: str) -> Path:
    hosts = {}
    for i in range(n):
        name = f"p{i:03d}"
        home = top / name
        etc = home / "etc"
        shutil.copytree(ROOT / "tests" / "data" / "plain-asterisk", etc)
        install_keys(etc, make_pki(f"pbx.{name}.fleet.test"))
        (etc / "keys" / "pbx.key").chmod(0o600)
        (home / "state").mkdir(mode=0o700)
        settings = home / "pbx-bridge.toml"
        settings.write_text(f'[pbx]\nasterisk_dir = "{etc}"\nasterisk_cli = "{home}/none"\n'
                            f'[paths]\nstate_dir = "{home / "state"}"\n')
        settings.chmod(0o600)
        hosts[name] = {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "pbx_bridge_executable": exe, "pbx_bridge_config": str(settings),
            "pbx_bridge_api_url": url, "pbx_bridge_token_url": url + "/auth/o2/token",
            "pbx_bridge_client_id": "emulator-client", "pbx_bridge_client_secret": SECRET,
            "pbx_bridge_asterisk_dir": str(etc), "pbx_bridge_cert": str(etc / "keys/pbx.crt"),
            "pbx_bridge_key": str(etc / "keys/pbx.key"),
            "pbx_bridge_ca_list": str(etc / "keys/ca.crt"), "pbx_bridge_public_ip": PUBLIC_IP,
            "pbx_bridge_require_ready": False, "pbx_bridge_trunk_timeout": 60,
            "pbx_bridge_rooms": [{"extension": f"7{r:03d}", "room": f"Room {r}",
                                  "comms_profile_id": f"amzn1.alexa.unit.did.{name}r{r}"}
                                 for r in range(101, 111)],
        }
    inv = top / "inventory.json"
    inv.write_text(json.dumps({"pbx": {"hosts": hosts}}))
    return inv


def cli_alone(inv: Path, forks: int) -> float:
    """The pbx-bridge commands the fleet playbook's modules run on each host, without Ansible,
    ``forks`` hosts at a time: what the modules cost beyond Ansible's own work."""
    from concurrent.futures import ThreadPoolExecutor
    hosts = json.loads(inv.read_text())["pbx"]["hosts"]

    def one(h: dict) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
        env.update(PBX_BRIDGE_CONFIG=h["pbx_bridge_config"],
                   PBX_BRIDGE_API_URL=h["pbx_bridge_api_url"],
                   PBX_BRIDGE_TOKEN_URL=h["pbx_bridge_token_url"],
                   PBX_BRIDGE_CLIENT_ID=h["pbx_bridge_client_id"],
                   PBX_BRIDGE_CLIENT_SECRET=h["pbx_bridge_client_secret"])
        etc, ip = h["pbx_bridge_asterisk_dir"], h["pbx_bridge_public_ip"]
        rooms = Path(h["pbx_bridge_config"]).with_name("rooms.csv")
        rooms.write_text("extension,room,comms_profile_id\n" + "".join(
            f"{r['extension']},{r['room']},{r['comms_profile_id']}\n"
            for r in h["pbx_bridge_rooms"]))
        for args in (["preflight", "--format", "json", "--asterisk-dir", etc, "--public-ip", ip],
                     ["generate", "--json", "--asterisk-dir", etc, "--cert", h["pbx_bridge_cert"],
                      "--key", h["pbx_bridge_key"], "--ca-list", h["pbx_bridge_ca_list"],
                      "--public-ip", ip, "--write"],
                     ["trunk", "update", "--create", "--json", "--asterisk-dir", etc,
                      "--public-ip", ip, "--wait", "--timeout", "60"],
                     ["rooms", "apply", "--json", "--map", str(rooms), "--yes"]):
            r = subprocess.run([h["pbx_bridge_executable"], *args], env=env,
                               capture_output=True, text=True)
            if r.returncode not in (0, 1):
                raise SystemExit(f"pbx-bridge {' '.join(args[:2])}: {r.stderr}")

    start = time.monotonic()
    with ThreadPoolExecutor(forks) as pool:
        list(pool.map(one, hosts.values()))
    return time.monotonic() - start


def run(playbook: Path, inv: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.monotonic()
    r = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inv),
                        str(playbook)], capture_output=True, text=True, env=env)
    took = time.monotonic() - start
    if r.returncode != 0:
        raise SystemExit(f"{playbook.name} failed (exit {r.returncode}):\n{r.stdout[-3000:]}\n"
                         f"{r.stderr[-2000:]}")
    recap = r.stdout[r.stdout.rfind("PLAY RECAP"):]
    return took, recap


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--properties", type=int, default=50)
    ap.add_argument("--forks", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-bench.") as tmp_:
        tmp = Path(tmp_)
        exe = install(tmp / "install")
        port = free_port()
        emu = subprocess.Popen([exe, "emulator", "--listen", f"127.0.0.1:{port}",
                                "--activate-after", "0", "--client-secret", SECRET],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("the emulator did not start")
                    time.sleep(0.05)
            inv = make_fleet(tmp / "fleet", args.properties, exe, f"http://127.0.0.1:{port}")
            floor = tmp / "floor.yml"
            floor.write_text(FLOOR)
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("PBX_BRIDGE_", "ANSIBLE_"))}
            env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_FORKS=str(args.forks),
                       ANSIBLE_HOME=str(tmp / "ansible-home"), ANSIBLE_NOCOLOR="1",
                       ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
                       ANSIBLE_RETRY_FILES_ENABLED="0")
            first, recap = run(PLAYBOOK, inv, env)
            changed = recap.count("changed=0")
            print(f"{args.properties} properties, forks={args.forks}; first fleet run (links "
                  f"all): {first:.1f} s ({args.properties - changed} hosts changed)")
            fleet_times: list[float] = []
            floor_times: list[float] = []
            alone_times: list[float] = []
            for i in range(args.rounds):
                order = [(PLAYBOOK, fleet_times), (floor, floor_times)]
                if i % 2:
                    order.reverse()
                for playbook, times in order:
                    took, recap = run(playbook, inv, env)
                    if playbook == PLAYBOOK and recap.count("changed=0") != args.properties:
                        raise SystemExit("a no-change run changed something:\n" + recap)
                    times.append(took)
                alone_times.append(cli_alone(inv, args.forks))
                print(f"  round {i + 1}: fleet {fleet_times[-1]:.2f} s, floor "
                      f"{floor_times[-1]:.2f} s, pbx-bridge alone {alone_times[-1]:.2f} s",
                      flush=True)
        finally:
            emu.terminate()
            emu.wait(10)
    fleet, base = statistics.median(fleet_times), statistics.median(floor_times)
    ratio = fleet / base
    print(f"no-change fleet run: median {fleet:.2f} s over {args.rounds} "
          f"(min {min(fleet_times):.2f})")
    print(f"floor (command: pbx-bridge --version): median {base:.2f} s "
          f"(min {min(floor_times):.2f})")
    print(f"ratio {ratio:.2f}x (goal: at most 2x) -> {'OK' if ratio <= 2 else 'OVER'}")
    alone = statistics.median(alone_times)
    print(f"the same pbx-bridge commands without Ansible ({args.forks} hosts at a time): "
          f"median {alone:.2f} s = {alone / base:.2f}x the floor; Ansible's share of the fleet "
          f"run: {fleet - alone:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
