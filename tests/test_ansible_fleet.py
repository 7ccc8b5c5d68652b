"""The Ansible collection (issue 24): the fleet playbook over three properties on localhost,
each with its own Asterisk dir, state dir, settings file and emulator playing Amazon; the
first property's Asterisk is the real one.

First run changes all three, the second nothing; after a map change a check-mode run changes
no file and sends no write to Amazon while its --diff shows the planned mappings; with one
property's Amazon down only that host fails, and the rerun converges.

Runs with every ansible-playbook it finds: the one in this venv (ansible-core from PyPI, the
test extra) and Debian's /usr/bin/ansible-playbook (ansible-core 2.14) when installed;
without any it skips and says so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import PUBLIC_IP, ROOT, SECRET, free_port, make_cert, make_pki
from realasterisk import base_files, boot, free_ports, free_udp_range
from test_real_asterisk import PLAIN_EXTENSIONS, PLAIN_PJSIP

COLLECTIONS = ROOT / "ansible"
PLAYBOOK = COLLECTIONS / "ansible_collections" / "pbx_bridge" / "alexa" / "playbooks" / "fleet.yml"
PB = [sys.executable, "-m", "pbx_bridge"]


def _which(path: str | None) -> str:
    """The test id: which ansible-core runs it."""
    if path is None:
        return "none"
    return "debian" if path.startswith("/usr/") else "venv"


def playbooks() -> list[str]:
    found = []
    for candidate in (Path(sys.executable).parent / "ansible-playbook",
                      Path("/usr/bin/ansible-playbook")):
        if candidate.exists() and str(candidate) not in found:
            found.append(str(candidate))
    return found


@dataclass
class Emulator:
    port: int
    state: Path
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [*PB, "emulator", "--listen", f"127.0.0.1:{self.port}", "--activate-after", "0",
                 "--client-secret", SECRET, "--state", str(self.state)],
                stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
        import socket
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("emulator did not start: " + self.log.read_text())
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def writes(self) -> list[str]:
        """The requests that could change Amazon's side (not the token endpoint's)."""
        lines = self.log.read_text().splitlines()
        return [line for line in lines if any(f" {m} /v" in line for m in ("POST", "PUT",
                                                                            "DELETE"))]


@dataclass
class Property:
    name: str
    home: Path
    emulator: Emulator
    rooms: list[dict[str, str]]
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def etc(self) -> Path:
        return self.home / "etc"

    @property
    def state(self) -> Path:
        return self.home / "state"

    def files(self) -> dict[str, bytes]:
        """Every file of its Asterisk dir and state dir (SQLite's -wal and -shm included: a
        read-only open makes none), and its emulator's state."""
        out = {}
        for root in (self.etc, self.state):
            for p in sorted(root.rglob("*")):
                if p.is_file():
                    out[str(p)] = p.read_bytes()
        if self.emulator.state.exists():  # a fresh emulator has saved nothing yet
            out[str(self.emulator.state)] = self.emulator.state.read_bytes()
        return out


def _make(home: Path, name: str, udp: int, tls_port: int, asterisk_cli: str) -> None:
    etc = home / "etc"
    etc.mkdir(parents=True)
    phones = "".join(f"\n[{n}]\ntype=endpoint\ncontext=internal\ndisallow=all\nallow=ulaw\n"
                     for n in ("201", "202"))
    (etc / "pjsip.conf").write_text(PLAIN_PJSIP.format(udp=udp, phones=phones))
    (etc / "extensions.conf").write_text(PLAIN_EXTENSIONS)
    pki = make_pki(f"pbx.{name}.fleet.test")
    keys = etc / "keys"
    keys.mkdir()
    (keys / "pbx.crt").write_bytes(pki.leaf.pem() + pki.inter.pem())
    (keys / "pbx.key").write_bytes(pki.leaf.key_pem())
    (keys / "pbx.key").chmod(0o600)
    (keys / "ca.crt").write_bytes(make_cert("Amazon Root CA 1", ca=True, org="Amazon").pem())
    (home / "state").mkdir(mode=0o700)
    settings = home / "pbx-bridge.toml"
    settings.write_text(f'[pbx]\nasterisk_dir = "{etc}"\nasterisk_cli = "{asterisk_cli}"\n\n'
                        f'[paths]\nstate_dir = "{home / "state"}"\n')
    settings.chmod(0o600)


@pytest.fixture
def fleet(tmp_path_factory, request):
    """Three properties: 'harbor' on the real Asterisk, 'lakeside' and 'summit' on config dirs
    no Asterisk runs (generate writes them and says the reload was skipped)."""
    top = tmp_path_factory.mktemp("fleet")
    props = []
    for i, name in enumerate(("harbor", "lakeside", "summit")):
        home = top / name
        emu = Emulator(free_port(), home.parent / f"{name}-amazon.json", top / f"{name}-amazon.log")
        rooms = [{"extension": f"7{i + 1}0{n}", "room": f"Room {i + 1}0{n}",
                  "comms_profile_id": f"amzn1.alexa.unit.did.{name}{n}"} for n in (1, 2, 4, 5)]
        props.append(Property(name, home, emu, rooms))
    harbor = props[0]
    udp, ami_port, tls_port = free_ports(3)
    _make(harbor.home, harbor.name, udp, tls_port, "to-be-set")
    base_files(harbor.etc, ami_port, free_udp_range())
    ast = boot(harbor.etc, ami_port)
    request.addfinalizer(ast.stop)
    settings = harbor.home / "pbx-bridge.toml"
    settings.write_text(settings.read_text().replace("to-be-set", ast.cli_command))
    harbor.extra = {"pbx_bridge_tls_port": tls_port, "pbx_bridge_bind": "127.0.0.1"}
    for p in props[1:]:  # no Asterisk: its CLI names a program that is not there
        _make(p.home, p.name, 5060, 5061, str(p.home / "no-asterisk"))
    for p in props:
        p.emulator.start()
        request.addfinalizer(p.emulator.stop)
    return props, ast


def inventory(props: list[Property], path: Path) -> Path:
    hosts = {}
    for p in props:
        hosts[p.name] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "pbx_bridge_executable": str(Path(sys.executable).parent / "pbx-bridge"),
            "pbx_bridge_config": str(p.home / "pbx-bridge.toml"),
            "pbx_bridge_api_url": p.emulator.url,
            "pbx_bridge_token_url": p.emulator.url + "/auth/o2/token",
            "pbx_bridge_client_id": "emulator-client",
            "pbx_bridge_client_secret": SECRET,
            "pbx_bridge_asterisk_dir": str(p.etc),
            "pbx_bridge_cert": str(p.etc / "keys" / "pbx.crt"),
            "pbx_bridge_key": str(p.etc / "keys" / "pbx.key"),
            "pbx_bridge_ca_list": str(p.etc / "keys" / "ca.crt"),
            "pbx_bridge_public_ip": PUBLIC_IP,
            "pbx_bridge_local_nets": ["127.0.0.0/8"],
            "pbx_bridge_require_ready": False,  # no DNS, no firewall rules on this machine
            "pbx_bridge_trunk_timeout": 30,
            "pbx_bridge_rooms": p.rooms,
            "pbx_bridge_rooms_file": str(p.home / "rooms.csv"),  # the sync timer's map
            **p.extra,
        }
    path.write_text(json.dumps({"pbx": {"hosts": hosts}}))
    return path


def run_playbook(ansible: str, inv: Path, tmp: Path, *extra: str) -> dict:
    """Run the fleet playbook; the record callback's JSON, with the exit code and the text
    the default callback showed."""
    record = tmp / "record.json"
    if record.exists():
        record.unlink()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PBX_BRIDGE_", "ANSIBLE_"))}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_CALLBACKS_ENABLED="record",
               ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent / "ansible_callback"),
               PBX_BRIDGE_TEST_RECORD=str(record),
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"), ANSIBLE_HOME=str(tmp / "ansible-home"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="3", ANSIBLE_RETRY_FILES_ENABLED="0")
    r = subprocess.run([ansible, "-i", str(inv), str(PLAYBOOK), *extra], capture_output=True,
                       text=True, env=env, cwd=tmp, timeout=240)
    if not record.exists():
        raise AssertionError(f"ansible-playbook recorded nothing (exit {r.returncode}):\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    doc = json.loads(record.read_text())
    doc.update(_rc=r.returncode, _stdout=r.stdout, _stderr=r.stderr)
    return doc


def results(doc: dict, task: str) -> dict[str, dict]:
    for t in doc["tasks"]:
        if t["task"].startswith(task):
            return t["hosts"]
    raise AssertionError(f"no task {task!r}")


def failures(doc: dict) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for t in doc["tasks"]:
        for host, r in t["hosts"].items():
            if r["_status"] in ("failed", "unreachable"):
                out.setdefault(host, []).append((t["task"], str(r.get("msg"))))
    return out


def stats(doc: dict) -> dict[str, tuple[int, int]]:
    """host -> (changed, failures)"""
    return {h: (s["changed"], s["failures"] + s["unreachable"]) for h, s in doc["stats"].items()}


@pytest.mark.asterisk
@pytest.mark.parametrize("ansible", playbooks() or [None], ids=_which)
def test_fleet_playbook_converges_checks_and_isolates_a_failing_property(ansible, request,
                                                                         tmp_path):
    if ansible is None:
        pytest.skip("no ansible-playbook: pip install -e '.[test]' installs ansible-core "
                    "(.ci/run also installs Debian's)")
    fleet = request.getfixturevalue("fleet")  # a fresh fleet for each ansible-core
    props, ast = fleet
    inv = inventory(props, tmp_path / "inventory.json")

    # a fresh fleet in check mode, preflight required (a string: | bool): no TLS transport
    # yet, but config would write it; the trunk and rooms say what waits for the config
    before = {p.name: p.files() for p in props}
    fresh = run_playbook(ansible, inv, tmp_path, "--check", "--diff",
                         "-e", "pbx_bridge_require_ready=true")
    assert fresh["_rc"] == 0, (failures(fresh), fresh["_stdout"][-3000:])
    after = {p.name: p.files() for p in props}
    assert [f for n in after for f in set(after[n]) | set(before[n])
            if after[n].get(f) != before[n].get(f)] == []  # byte for byte
    assert all(len(p.emulator.writes()) == 0 for p in props)
    assert all(r["changed"] and r["action"] == "pending"
               for r in results(fresh, "The Amazon SIP trunk").values())
    planned = results(fresh, "Extension-to-room")
    assert all(r["changed"] for r in planned.values())
    assert "+ 7101 Room 101 amzn1.alexa.unit.did.harbor1" in fresh["_stdout"]

    first = run_playbook(ansible, inv, tmp_path)
    assert first["_rc"] == 0, first["_stdout"][-4000:] + first["_stderr"][-2000:]
    assert all(changed > 0 and failed == 0 for changed, failed in stats(first).values()), \
        stats(first)
    for task in ("The trunk's Asterisk config", "The Amazon SIP trunk", "Extension-to-room"):
        assert all(r["changed"] for r in results(first, task).values()), task
    assert results(first, "The Amazon SIP trunk")["harbor"]["trunk"]["status"] == "ACTIVE"
    # the real Asterisk loaded what was written
    assert "transport-alexa-tls" in ast.cli("pjsip show transports")
    secret_seen = [SECRET in json.dumps(first)]
    assert secret_seen == [False]
    # the rooms are in the map the PBX's own sync timer applies: both agree
    assert (harbor_map := (props[0].home / "rooms.csv").read_text()).startswith(
        "extension,room,comms_profile_id\n7101,Room 101,amzn1.alexa.unit.did.harbor1\n")

    second = run_playbook(ansible, inv, tmp_path)
    assert second["_rc"] == 0
    assert all(s == (0, 0) for s in stats(second).values()), stats(second)

    # a map change: harbor re-profiles 7102 (1 of 4: within the 25% apply allows) and gains
    # 7103, lakeside gains 7203
    harbor, lakeside, summit = props
    harbor.rooms[1]["comms_profile_id"] = "amzn1.alexa.unit.did.harbor2b"
    harbor.rooms.append({"extension": "7103", "room": "Room 103",
                         "comms_profile_id": "amzn1.alexa.unit.did.harbor3"})
    lakeside.rooms.append({"extension": "7203", "room": "Room 203",
                           "comms_profile_id": "amzn1.alexa.unit.did.lakeside3"})
    inventory(props, inv)
    before = {p.name: p.files() for p in props}
    writes = {p.name: len(p.emulator.writes()) for p in props}
    check = run_playbook(ansible, inv, tmp_path, "--check", "--diff")
    assert check["_rc"] == 0, json.dumps(check["stats"])
    after = {p.name: p.files() for p in props}
    changed_files = sorted(f for name in after for f in set(after[name]) | set(before[name])
                           if after[name].get(f) != before[name].get(f))
    assert changed_files == []  # byte for byte
    assert {p.name: len(p.emulator.writes()) for p in props} == writes  # nothing sent
    planned = results(check, "Extension-to-room")
    assert planned["harbor"]["changed"] and planned["lakeside"]["changed"]
    assert not planned["summit"]["changed"]
    diff = planned["harbor"]["diff"]
    diff_text = diff["prepared"] if isinstance(diff, dict) else diff[0]["prepared"]
    assert "~ 7102 Room 102 amzn1.alexa.unit.did.harbor2 -> amzn1.alexa.unit.did.harbor2b" \
        in diff_text
    assert "+ 7103 Room 103 amzn1.alexa.unit.did.harbor3" in diff_text
    assert "+ 7103 Room 103 amzn1.alexa.unit.did.harbor3" in check["_stdout"]  # as shown
    assert not any(r["changed"] for r in results(check, "The trunk's Asterisk config").values())
    assert not any(r["changed"] for r in results(check, "The Amazon SIP trunk").values())

    # lakeside's Amazon is down: only lakeside fails; harbor applies its change
    lakeside.emulator.stop()
    down = run_playbook(ansible, inv, tmp_path)
    assert down["_rc"] != 0
    s = stats(down)
    assert s["lakeside"][1] > 0 and s["harbor"][1] == 0 and s["summit"] == (0, 0), \
        (s, failures(down))
    assert results(down, "Extension-to-room")["harbor"]["changed"]

    lakeside.emulator.start()
    again = run_playbook(ansible, inv, tmp_path)
    assert again["_rc"] == 0, json.dumps(again["stats"])
    s = stats(again)
    assert s["lakeside"][0] > 0 and s["harbor"] == (0, 0) and s["summit"] == (0, 0), s
    final = run_playbook(ansible, inv, tmp_path, "-e", "pbx_bridge_preflight=false")
    assert all(v == (0, 0) for v in stats(final).values()), stats(final)
    assert all(r["_status"] == "skipped" for r in results(final, "Preflight").values())
    assert "7103,Room 103" in (harbor.home / "rooms.csv").read_text() != harbor_map



@pytest.mark.parametrize("ansible", playbooks() or [None], ids=_which)
def test_the_example_inventory_and_the_playbook_parse(ansible, tmp_path):
    if ansible is None:
        pytest.skip("no ansible-playbook: pip install -e '.[test]' installs ansible-core")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_HOME=str(tmp_path),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    examples = COLLECTIONS / "examples"
    r = subprocess.run([str(Path(ansible).with_name("ansible-inventory")), "-i",
                        str(examples / "inventory.yml"), "--list"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    hosts = json.loads(r.stdout)["_meta"]["hostvars"]
    assert set(hosts) == {"harbor-hotel", "lakeside-inn"}
    # group vars for all, host vars override: the vault-kept secret is only referenced
    assert hosts["harbor-hotel"]["pbx_bridge_client_secret"] == \
        "{{ vault_pbx_bridge_client_secret }}"
    assert hosts["lakeside-inn"]["pbx_bridge_client_id"].endswith("lakeside")
    r = subprocess.run([ansible, "-i", str(examples / "inventory.yml"), "--syntax-check",
                        str(PLAYBOOK)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # as the README says: from ansible/examples, no collections path set (its ansible.cfg)
    del env["ANSIBLE_COLLECTIONS_PATH"]
    r = subprocess.run([ansible, "-i", "inventory.yml", "pbx_bridge.alexa.fleet",
                        "--syntax-check"], capture_output=True, text=True, env=env, cwd=examples,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # by its path from the top of the clone, as AWX runs it (the top's ansible.cfg); a
    # credential naming a vault variable that is not loaded stops that host, by name
    inv = tmp_path / "inv.json"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "pbx_bridge_executable": "/bin/false"}
    inv.write_text(json.dumps({"pbx": {"hosts": {
        "unloaded": {**host, "pbx_bridge_client_secret": "{{ vault_not_loaded }}"},
        "loaded": {**host, "pbx_bridge_client_secret": "s"}}}}))
    r = subprocess.run([ansible, "-i", str(inv), str(PLAYBOOK.relative_to(ROOT))],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert "module_defaults" not in r.stdout + r.stderr
    fatal = [line for line in r.stdout.splitlines() if line.startswith(("fatal", "failed"))]
    assert any("[unloaded]" in line and "vault_not_loaded" in line for line in fatal), r.stdout
    assert any("[loaded]" in line and "generate" in line for line in fatal), r.stdout
