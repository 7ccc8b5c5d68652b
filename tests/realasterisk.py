"""A real Asterisk 22 for the tests: the relocatable bundle (``../shared/asterisk-22``, found
through ``PBX_BRIDGE_TEST_ASTERISK`` or an ``asterisk`` on PATH that has ``asterisk-sandbox``
beside it), booted on a config dir the test wrote, on free loopback ports.

When ``PBX_BRIDGE_TEST_ASTERISK`` is set, a test that cannot boot it fails; otherwise it
skips and says why.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ENV = "PBX_BRIDGE_TEST_ASTERISK"
AMI_USER, AMI_SECRET = "pbxbridge", "ami-s3cret"


def find_bundle() -> tuple[Path | None, str]:
    """The bundle dir, or None and why not."""
    named = os.environ.get(ENV)
    if named:
        d = Path(named).resolve()
        if not (d / "bin" / "asterisk-sandbox").exists():
            return None, f"{ENV}={named} is not an Asterisk bundle (no bin/asterisk-sandbox)"
        return d, ""
    on_path = shutil.which("asterisk")
    if on_path:
        d = Path(on_path).resolve().parent.parent
        if (d / "bin" / "asterisk-sandbox").exists():
            return d, ""
        return None, (f"the asterisk on PATH ({on_path}) is not a relocatable bundle with "
                      f"asterisk-sandbox; set {ENV} to one (e.g. ../shared/asterisk-22)")
    return None, (f"no real Asterisk: set {ENV} to the bundle dir (e.g. ../shared/asterisk-22) "
                  "or put its bin/ on PATH")


def unavailable(why: str) -> None:
    """Skip, or fail when the bundle was named (CI must run these tests)."""
    if os.environ.get(ENV):
        pytest.fail(f"real Asterisk named by {ENV} cannot be used: {why}", pytrace=False)
    pytest.skip(why)


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def free_udp_range(size: int = 100) -> tuple[int, int]:
    """A block of UDP ports for RTP, none bound now (best effort, like free ports)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        start = s.getsockname()[1] & ~1
        s.close()
        if start < 20000 or start + size > 65000:
            continue
        ok = True
        for p in range(start, start + size, 7):
            t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                t.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return start, start + size - 1
    return 40000, 40099


def base_files(confdir: Path, ami_port: int, rtp: tuple[int, int] | None = None,
               modules: str | None = None) -> None:
    """What any sandboxed instance needs: modules.conf (autoload), logger.conf, manager.conf
    (AMI on loopback), and rtp.conf when a range is given."""
    confdir.mkdir(parents=True, exist_ok=True)
    if modules is not None or not (confdir / "modules.conf").exists():
        (confdir / "modules.conf").write_text(modules or (
            "[modules]\nautoload=yes\nnoload => res_stun_monitor.so\n"
            "noload => res_phoneprov.so\nnoload => res_pjsip_phoneprov_provider.so\n"))
    (confdir / "logger.conf").write_text("[general]\n[logfiles]\n"
                                         "messages => notice,warning,error,verbose\n")
    (confdir / "manager.conf").write_text(
        f"[general]\nenabled=yes\nport={ami_port}\nbindaddr=127.0.0.1\n\n"
        f"[{AMI_USER}]\nsecret={AMI_SECRET}\ndeny=0.0.0.0/0.0.0.0\n"
        "permit=127.0.0.1/255.255.255.255\nread=all\nwrite=all\n")
    if rtp is not None and not (confdir / "rtp.conf").exists():
        (confdir / "rtp.conf").write_text(f"[general]\nrtpstart={rtp[0]}\nrtpend={rtp[1]}\n")


@dataclass
class RealAsterisk:
    bundle: Path
    confdir: Path
    ami_port: int
    conf: Path = Path()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def binary(self) -> Path:
        return self.bundle / "bin" / "asterisk"

    @property
    def cli_command(self) -> str:
        """What ``[pbx] asterisk_cli`` is set to for this instance."""
        return f"{self.binary} -C {self.conf}"

    @property
    def rundir(self) -> Path:
        return self.conf.parent

    def boot(self) -> "RealAsterisk":
        env = {**os.environ, **self.env, "ASTERISK_SANDBOX_TIMEOUT": "60"}
        r = subprocess.run([str(self.bundle / "bin" / "asterisk-sandbox"), str(self.confdir)],
                           capture_output=True, text=True, env=env, timeout=120)
        if r.returncode != 0:
            unavailable(f"asterisk-sandbox {self.confdir} failed: {r.stderr.strip()[-600:]}")
        self.conf = Path(r.stdout.strip().splitlines()[-1])
        return self

    def cli(self, command: str) -> str:
        r = subprocess.run([str(self.binary), "-C", str(self.conf), "-rx", command],
                           capture_output=True, text=True, timeout=60)
        return r.stdout + r.stderr

    def log(self) -> str:
        try:
            return (self.rundir / "log" / "messages").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.conf != Path():
            subprocess.run([str(self.bundle / "bin" / "asterisk-sandbox-stop"), str(self.conf),
                            "--clean"], capture_output=True, timeout=60)

    def restart(self) -> None:
        """What pbx-bridge tells an admin to run: Asterisk restarts in place (same process,
        same asterisk.conf), and we wait until it is fully booted again."""
        self.cli("core restart now")
        deadline = time.monotonic() + 60
        time.sleep(0.5)
        while "fully booted" not in self.cli("core waitfullybooted"):
            if time.monotonic() > deadline:
                raise AssertionError("Asterisk did not come back after core restart now:\n"
                                     + self.log()[-2000:])
            time.sleep(0.2)

    def wait_for(self, command: str, pattern: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            out = self.cli(command)
            if re.search(pattern, out):
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"{command!r} never showed {pattern!r}:\n{out}")
            time.sleep(0.2)

    def ami(self):  # type: ignore[no-untyped-def]
        from pbx_bridge.asterisk.ami import AmiClient
        from pbx_bridge.secret import Secret
        c = AmiClient("127.0.0.1", self.ami_port, AMI_USER, Secret(AMI_SECRET))
        c.connect()
        return c

    def settings_toml(self, state_dir: Path, asterisk_dir: Path | None = None,
                      ami: bool = False, key_group: str | None = None) -> str:
        text = (f"[pbx]\nasterisk_dir = \"{asterisk_dir or self.confdir}\"\n"
                f"asterisk_cli = \"{self.cli_command}\"\n" +
                (f"key_group = \"{key_group}\"\n" if key_group else "") + "\n"
                f"[paths]\nstate_dir = \"{state_dir}\"\n")
        if ami:
            text += (f"\n[ami]\nhost = \"127.0.0.1\"\nport = {self.ami_port}\n"
                     f"username = \"{AMI_USER}\"\nsecret = \"{AMI_SECRET}\"\n")
        return text


def boot(confdir: Path, ami_port: int, env: dict[str, str] | None = None) -> RealAsterisk:
    bundle, why = find_bundle()
    if bundle is None:
        unavailable(why)
    assert bundle is not None
    return RealAsterisk(bundle, confdir, ami_port, env=env or {}).boot()


class Ami:
    """A raw AMI session with events on: originate, and what the channels did."""

    def __init__(self, port: int) -> None:
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""
        self._line(20)  # the banner
        self.n = 0
        self.action("Login", Username=AMI_USER, Secret=AMI_SECRET)

    def _line(self, timeout: float) -> str | None:
        end = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except (socket.timeout, TimeoutError):
                return None
            if not chunk:
                raise ConnectionError("AMI closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode("utf-8", "replace")

    def send(self, action: str, **fields: str) -> str:
        self.n += 1
        aid = f"t{self.n}"
        text = f"Action: {action}\r\nActionID: {aid}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        self.s.sendall(text.encode())
        return aid

    def msg(self, timeout: float = 20) -> dict[str, str] | None:
        """The next message, or None when none came in ``timeout`` seconds."""
        d: dict[str, str] = {}
        end = time.monotonic() + timeout
        while True:
            line = self._line(max(0.0, end - time.monotonic()))
            if line is None:
                if d:
                    end = time.monotonic() + 5  # a message is half read: finish it
                    continue
                return None
            if not line:
                if d:
                    return d
                continue
            k, _, v = line.partition(": ")
            d[k] = d[k] + "\n" + v if k in d else v

    def action(self, action: str, **fields: str) -> dict[str, str]:
        aid = self.send(action, **fields)
        while True:
            m = self.msg()
            assert m is not None, f"no answer to {action}"
            if m.get("ActionID") == aid and "Response" in m:
                return m

    def originate(self, channel: str, settle: float = 1.5, **fields: str
                  ) -> tuple[dict[str, str], list[dict[str, str]]]:
        """Originate (async) and collect every event until the answer and ``settle`` s more."""
        aid = self.send("Originate", Channel=channel, Async="true", Timeout="10000",
                        **({"Application": "Wait", "Data": "1"} | fields))
        events: list[dict[str, str]] = []
        answer: dict[str, str] = {}
        deadline = None
        end = time.monotonic() + 30
        while time.monotonic() < end and (deadline is None or time.monotonic() < deadline):
            m = self.msg(0.3)
            if m is None:
                continue
            events.append(m)
            if m.get("Event") == "OriginateResponse" and m.get("ActionID") == aid:
                answer = m
                deadline = time.monotonic() + settle
        return answer, events

    def close(self) -> None:
        try:
            self.send("Logoff")
        finally:
            self.s.close()


def contexts_run(events: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(e.get("Context", ""), e.get("Extension", ""), e.get("Application", ""))
            for e in events if e.get("Event") == "Newexten"]


def varsets(events: list[dict[str, str]]) -> dict[str, str]:
    return {e["Variable"]: e.get("Value", "") for e in events
            if e.get("Event") == "VarSet" and "Variable" in e}
