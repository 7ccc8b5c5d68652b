"""The AMI client against a loopback server replaying the session a real Asterisk 22 recorded,
and `rooms import --ami` on top of it."""

from __future__ import annotations

import json
import socket

import pytest

from helpers import DATA, SECRET, LoopbackServer, cli_env, pb
from pbx_bridge.asterisk.ami import AmiClient, AmiError, parse_message
from pbx_bridge.secret import Secret


def recorded() -> tuple[str, list[tuple[str, list[str]]]]:
    """The banner, and each request with the blocks Asterisk answered it with."""
    text = (DATA / "asterisk-22" / "ami-session.txt").read_text()
    parts = text.split("\n>>>\n")
    banner = parts[0].split("<<<\n", 1)[1].strip()
    exchanges = []
    for part in parts[1:]:
        request, _, answer = part.partition("\n<<<\n")
        blocks = [b.strip("\n") for b in answer.split("\n\n") if b.strip()
                  and not b.startswith("#") and not b.startswith("<<<")
                  and not b.startswith("Asterisk Call Manager")]
        exchanges.append((request.strip(), blocks))
    return banner, exchanges


class ReplayAmi(LoopbackServer):
    def __init__(self) -> None:
        self.banner, self.exchanges = recorded()
        self.requests: list[dict[str, str]] = []
        super().__init__(self.session)

    def answer(self, req: dict[str, str]) -> list[str] | None:
        for request, blocks in self.exchanges:
            rec = parse_message(request.replace("\n", "\r\n"))
            if rec.get("Action") != req.get("Action"):
                continue
            if rec.get("Action") == "Login" and rec.get("Secret") != req.get("Secret"):
                continue
            return [b.replace(f"ActionID: {rec['ActionID']}", f"ActionID: {req['ActionID']}")
                    for b in blocks]
        return None

    def session(self, c: socket.socket) -> None:
        with c:
            c.sendall((self.banner + "\r\n").encode())
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = c.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                block, _, buf = buf.partition(b"\r\n\r\n")
                req = parse_message(block.decode())
                self.requests.append(req)
                if req.get("Action") == "Logoff":
                    return
                blocks = self.answer(req)
                if blocks is None:
                    blocks = [f"Response: Error\nActionID: {req.get('ActionID')}\n"
                              "Message: Invalid/unknown command"]
                c.sendall("".join(b.replace("\n", "\r\n") + "\r\n\r\n" for b in blocks).encode())
                if req.get("Action") == "Login" and "Error" in blocks[0]:
                    return  # Asterisk closes after a failed login


@pytest.fixture
def ami():
    server = ReplayAmi()
    yield server
    server.close()


def test_login_and_pjsip_endpoints(ami):
    c = AmiClient("127.0.0.1", ami.port, "pbxbridge", Secret("labsecret"))
    c.connect()
    assert c.pjsip_endpoints() == ["201", "alexa"]
    c.close()
    import time
    deadline = time.monotonic() + 2
    while len(ami.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [r["Action"] for r in ami.requests] == ["Login", "PJSIPShowEndpoints", "Logoff"]


def test_failed_login_is_a_clear_error(ami):
    c = AmiClient("127.0.0.1", ami.port, "pbxbridge", Secret("wrongsecret"))
    with pytest.raises(AmiError) as err:
        c.connect()
    assert "login as pbxbridge failed: Authentication failed" in str(err.value)
    assert "wrongsecret" not in str(err.value)


def test_not_ami_and_nothing_listening():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(AmiError) as err:
        AmiClient("127.0.0.1", port, "u", Secret("x"), timeout=1).connect()
    assert "cannot connect" in str(err.value)


def test_rooms_import_over_ami(ami, emulator, tmp_path):
    rooms = tmp_path / "rooms.json"
    rooms.write_text(json.dumps({"properties": {"amzn1.ask.unit.hotel": [
        {"id": "amzn1.ask.unit.r201", "name": "Room 201"}]}}))
    srv = emulator(client_secret=SECRET, rooms_file=rooms)
    cfg = tmp_path / "pbx-bridge.toml"
    cfg.write_text(f'[ami]\nport = {ami.port}\nusername = "pbxbridge"\n')
    cfg.chmod(0o600)
    env = cli_env(srv, tmp_path / "state", PBX_BRIDGE_AMI_SECRET="labsecret")
    r = pb(env, "rooms", "import", "--from-asterisk", "--ami", "--pattern", "{room}",
           "--property", "amzn1.ask.unit.hotel", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["extension,room,comms_profile_id", "201,Room 201,"]
    env["PBX_BRIDGE_AMI_SECRET"] = "wrongsecret"
    r = pb(env, "rooms", "import", "--from-asterisk", "--ami", "--pattern", "{room}",
           "--property", "amzn1.ask.unit.hotel", "--config", str(cfg))
    assert r.returncode == 1 and "Authentication failed" in r.stderr
    assert "wrongsecret" not in r.stderr


class CommandAmi(ReplayAmi):
    """The recorded AMI session, where `Command` actions the recording lacks are answered by
    the recorded-output asterisk stand-in (tests/bin/asterisk) on a config tree."""

    def __init__(self, etc, reject: bool = False) -> None:
        self.etc = etc
        self.reject = reject
        self.commands: list[str] = []
        super().__init__()

    def answer(self, req):
        if req.get("Action") != "Command":
            return super().answer(req)
        import os
        import subprocess
        import sys as _sys
        from helpers import ROOT
        self.commands.append(req["Command"])
        env = {**os.environ, "FAKE_ASTERISK_ETC": str(self.etc)}
        if self.reject:
            env["FAKE_ASTERISK_REJECT"] = "1"
        out = subprocess.run([_sys.executable, str(ROOT / "tests" / "bin" / "asterisk"), "-rx",
                              req["Command"]], capture_output=True, text=True, env=env).stdout
        lines = "".join(f"\nOutput: {line}" for line in out.rstrip("\n").split("\n"))
        return [f"Response: Success\nActionID: {req['ActionID']}\nMessage: Command output "
                f"follows{lines}"]


def test_generate_over_ami_rolls_back_when_the_reload_is_refused(tmp_path):
    """A fault a real Asterisk does not produce on demand: the reload command itself fails.
    (The accepted path is tested against the real Asterisk in test_real_asterisk.py.)"""
    reject = True
    import hashlib
    import os
    from helpers import PUBLIC_IP, plain_generate_tree
    etc = plain_generate_tree(tmp_path / "etc")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in etc.rglob("*.conf")}
    server = CommandAmi(etc, reject=reject)
    cfg = tmp_path / "pbx-bridge.toml"
    cfg.write_text(f'[ami]\nport = {server.port}\nusername = "pbxbridge"\n'
                   f'secret = "labsecret"\n[paths]\nstate_dir = "{tmp_path / "state"}"\n')
    cfg.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env["PATH"] = "/usr/bin:/bin"  # no `asterisk` binary: AMI is the only way in
    r = pb(env, "generate", "--config", str(cfg), "--asterisk-dir", str(etc), "--public-ip",
           PUBLIC_IP, "--write")
    server.close()
    assert r.returncode == 1 and "did not accept the new config" in r.stderr
    assert "module reload res_pjsip.so" in server.commands
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in etc.rglob("*.conf")} == before
