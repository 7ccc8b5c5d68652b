"""What ``pbx-bridge status`` looks at: one cheap, read-only snapshot of whether the Alexa trunk still works,
for people (text), scripts (JSON), Prometheus (the textfile collector) and Nagios/Icinga.

Parts, each checked independently (one that cannot be checked does not hide the others):

- ``config``: the preflight's config checks (no DNS unless asked, no firewall);
- ``certificate``: expiry of the file the TLS transport names, and of the certificate the
  running Asterisk serves on that port (they differ after a renewal that was not loaded);
- ``trunk``: the saved trunk at Amazon: its status, and whether its certificate chain and
  peers equal what the PBX has now;
- ``mappings``: Amazon's mappings against the ones the last ``rooms apply`` recorded;
- ``fastagi`` / ``ami``: whether they answer, when configured; FastAGI is asked, as Asterisk
  would ask it, to route a room the local routes map (answering is not routing: a server
  that cannot read the routes answers every call with ``ALEXA_MAPPED "0"``).
"""

from __future__ import annotations

import re
import signal
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..findings import Status
from .report import MAPPING_STATES, AgiLookup, Report, cert_info

if TYPE_CHECKING:
    from ..settings import Settings


class OutOfTime(Exception):
    """``--timeout`` ran out during a part."""


# ---------------------------------------------------------------- gathering

@dataclass(frozen=True)
class StatusOptions:
    asterisk_dir: Path
    timeout: float = 20.0
    dns: bool = False
    dns_server: tuple[str, int] | None = None


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        left = max(0.0, self.end - time.monotonic())
        return min(left, cap) if cap is not None else left


@contextmanager
def _alarm(deadline: Deadline) -> Iterator[None]:
    """A hard stop at the deadline (main thread only): whatever part is running is cut off
    with :class:`OutOfTime`, so one hung call cannot hold the snapshot past ``--timeout``."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ring(signum: int, frame: Any) -> None:
        raise OutOfTime(f"--timeout {deadline.seconds:g} s ran out")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(deadline.left(), 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def read_mappings(state_dir: Path, trunk_id: str) -> tuple[dict[str, str], float | None]:
    """The mappings the last ``rooms apply`` recorded (extension -> profile) and when it last
    succeeded, read-only: status never creates or changes the state database."""
    from ..rooms.store import DB_NAME, open_readonly
    db = open_readonly(state_dir / DB_NAME)  # also on a read-only state dir; none: empty
    try:
        rows = db.execute("SELECT extension, profile_id FROM mappings WHERE trunk_id = ?",
                          (trunk_id,)).fetchall()
        got = db.execute("SELECT value FROM meta WHERE key = 'last_apply_at'").fetchone()
    finally:
        db.close()
    last = None
    if got:
        try:
            last = float(got[0])
        except ValueError:
            pass
    return {str(e): str(p) for e, p in rows}, last


_SET = re.compile(r'^SET VARIABLE (\S+) "((?:[^"\\]|\\.)*)"$')
_VERBOSE = re.compile(r'^VERBOSE "((?:[^"\\]|\\.)*)"')


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def probe_fastagi(host: str, port: int, timeout: float, extension: str | None = None,
                  expected_dial: str | None = None) -> AgiLookup:
    """Be Asterisk to the FastAGI server: ask ``alexa-route`` for ``extension`` (a mapped
    room; None: a number no room has, only to see it answer), answer each command with
    ``200 result=1`` as Asterisk does, and collect what it set. Raises OSError when it does
    not speak AGI."""
    ext = extension or "pbx-bridge-status"
    header = (f"agi_network: yes\nagi_network_script: alexa-route\n"
              f"agi_request: agi://{host}:{port}/alexa-route\n"
              f"agi_channel: Local/{ext}@pbx-bridge-to-alexa-00000000;2\n"
              f"agi_language: en\nagi_type: Local\nagi_uniqueid: 0.0\nagi_version: 22.10.1\n"
              f"agi_callerid: pbx-bridge-status\nagi_calleridname: pbx-bridge status\n"
              f"agi_context: pbx-bridge-to-alexa\nagi_extension: {ext}\nagi_priority: 2\n"
              f"agi_enhanced: 0.0\nagi_accountcode: \nagi_threadid: 0\nagi_arg_1: {ext}\n\n")
    variables: dict[str, str] = {}
    messages: list[str] = []
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(header.encode())
        buf = b""
        for n in range(20):
            while b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    if n == 0:
                        raise OSError("it closed the connection without a command")
                    return AgiLookup(extension, expected_dial, variables, tuple(messages))
                buf += chunk
            raw, _, buf = buf.partition(b"\n")
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if m := _SET.match(line):
                variables[m.group(1)] = _unquote(m.group(2))
            elif m := _VERBOSE.match(line):
                messages.append(_unquote(m.group(1)))
            else:
                raise OSError(f"it answered {line[:40]!r}, not an AGI command")
            s.sendall(b"200 result=1\n")
    raise OSError("it sent more than 20 commands for one call")


def mapped_room(state_dir: Path, trunk_id: str | None) -> tuple[str | None, str | None]:
    """A room the local routes map (the lowest extension) and its dial string: from the
    published routes, else from the mapping table; (None, None) when none is mapped."""
    from ..rooms import routes
    try:
        table = routes.load(state_dir)
    except (OSError, ValueError):
        table = None
    if table is not None and table.rooms:
        ext = min(table.rooms, key=lambda e: (len(e), e))
        return ext, f"PJSIP/{ext}@{table.endpoint}"
    if trunk_id is not None:
        ours = read_mappings(state_dir, trunk_id)[0]
        if ours:
            return min(ours, key=lambda e: (len(e), e)), None
    return None, None


class Gatherer:
    def __init__(self, settings: "Settings", opts: StatusOptions) -> None:
        self.settings = settings
        self.opts = opts
        self.deadline = Deadline(opts.timeout)
        self.report = Report(time.time())
        self.snap: Any = None

    def _part(self, name: str, fn: Callable[[], None]) -> None:
        if self.deadline.left() <= 0:
            self.report.errors[name] = f"--timeout {self.opts.timeout:g} s ran out first"
            return
        try:
            fn()
        except OutOfTime as exc:
            self.report.errors[name] = str(exc)
        except Exception as exc:  # one part failing must not hide the others
            from ..errors import PbxBridgeError
            why = str(exc) if isinstance(exc, PbxBridgeError) else \
                f"{type(exc).__name__}: {exc}"
            self.report.errors[name] = why

    def run(self) -> Report:
        start = time.monotonic()
        with _alarm(self.deadline):
            self._part("config", self.config)
            self._part("certificate", self.served)
            self._part("renewal", self.renewal)
            self._part("trunk", self.trunk)
            self._part("mappings", self.mappings)
            if self.settings.fastagi is not None:
                self._part("fastagi", self.fastagi)
            if self.settings.ami is not None:
                self._part("ami", self.ami)
        self.report.duration = time.monotonic() - start
        return self.report

    # ------------------------------------------------------------ parts

    def config(self) -> None:
        from ..net import Network
        from ..preflight.checks import run_checks
        from ..preflight.snapshot import Options, Unknown, gather
        opts = Options(asterisk_dir=self.opts.asterisk_dir, firewall=False, dns=self.opts.dns,
                       dns_server=self.opts.dns_server, key_group=self.settings.key_group,
                       asterisk_cli=self.settings.asterisk_cli)
        net = Network(self.opts.dns_server, timeout=self.deadline.left(3.0))
        self.snap = snap = gather(opts, net=net)
        self.report.checks = [f for f in run_checks(snap)
                              if f.status != Status.SKIP and not f.id.startswith("firewall.")]
        cert = snap.cert
        if not isinstance(cert, Unknown) and (leaf := cert.leaf()) is not None:
            self.report.cert_file = cert_info(leaf, "file", cert.path)

    def renewal(self) -> None:
        from ..state import State
        from ..statedir import holder
        if "renew-hook" in (holder(self.settings.state_dir) or ""):
            return  # it is being installed now
        self.report.pending_renewal = State(self.settings.state_dir).pending_renewal

    def served(self) -> None:
        from cryptography import x509

        from ..net import Network
        from ..errors import PbxBridgeError
        if self.snap is None:
            raise PbxBridgeError("the Asterisk config could not be read")
        t = self.snap.transport
        if t is None:
            raise PbxBridgeError("no TLS transport in the config to connect to")
        host = t.connect_host
        probe = Network(timeout=self.deadline.left(5.0)).tls_sip_probe(host, t.port,
                                                                       options=False)
        if not probe.connected or probe.peer_cert_der is None:
            self.report.served_error = (f"Asterisk serves no TLS on {host}:{t.port} "
                                        f"({probe.error or 'no certificate'})")
            return
        cert = x509.load_der_x509_certificate(probe.peer_cert_der)
        self.report.cert_served = cert_info(cert, "served", f"{host}:{t.port}")

    def _api(self) -> Any:
        from ..amazon.client import PbxApi
        from ..amazon.http import Http
        from ..amazon.retry import RetryPolicy
        from ..amazon.token import TokenProvider
        from ..host import Clock
        left = self.deadline.left()
        http = Http(min(self.settings.timeout, max(left, 0.5)))
        clock = Clock()
        return PbxApi(self.settings.api_url, http, TokenProvider(self.settings, http, clock),
                      clock, RetryPolicy(attempts=3, cap=2.0, deadline=min(5.0, max(left - 1,
                                                                                   1.0))))

    def trunk(self) -> None:
        from ..amazon.errors import ApiError
        from ..certs import same_chain
        from ..trunk.local import from_snapshot
        from ..state import State
        self.report.trunk_id = tid = State(self.settings.state_dir).trunk_id
        if tid is None:
            return
        self.api = self._api()
        try:
            trunk = self.api.get_trunk(tid)
        except ApiError as exc:
            if exc.status == 404:
                self.report.trunk_exists = False
                return
            raise
        self.report.trunk_exists = True
        self.report.trunk_status = trunk.status or "(none)"
        if self.snap is not None:
            local = from_snapshot(self.snap)
            if local.chain:
                self.report.trunk_chain_matches = same_chain(trunk.certificate_chain,
                                                             local.chain)
            if local.peers:
                self.report.trunk_peers_match = sorted(trunk.peers) == sorted(local.peers)

    def mappings(self) -> None:
        tid = self.report.trunk_id
        if tid is None or self.report.trunk_exists is False:
            return
        if "trunk" in self.report.errors:
            from ..errors import PbxBridgeError
            raise PbxBridgeError("the trunk could not be read")
        from ..statedir import holder
        busy = holder(self.settings.state_dir)
        if busy and "rooms apply" in busy:  # its requests in flight are not drift
            self.report.sync_running = busy
            _, self.report.last_sync = read_mappings(self.settings.state_dir, tid)
            return
        ours, self.report.last_sync = read_mappings(self.settings.state_dir, tid)
        theirs = {m.extension: m.comms_profile_id for m in self.api.list_mappings(tid)}
        counts = dict.fromkeys(MAPPING_STATES, 0)
        drift = []
        for ext, profile in sorted(ours.items()):
            if ext not in theirs:
                counts["missing"] += 1
                drift.append(f"{ext} missing at Amazon")
            elif theirs[ext] != profile:
                counts["changed"] += 1
                drift.append(f"{ext} changed at Amazon ({theirs[ext]})")
            else:
                counts["in_sync"] += 1
        for ext in sorted(set(theirs) - set(ours)):
            counts["extra"] += 1
            drift.append(f"{ext} extra at Amazon")
        self.report.mappings = counts
        self.report.drift = drift[:10]

    def fastagi(self) -> None:
        assert self.settings.fastagi is not None
        host, port = self.settings.fastagi
        from ..state import State
        try:
            trunk_id = self.report.trunk_id or State(self.settings.state_dir).trunk_id
            ext, dial = mapped_room(self.settings.state_dir, trunk_id)
        except Exception:  # the routes could not be read here: still ask it to answer
            ext, dial = None, None
        try:
            self.report.agi_lookup = probe_fastagi(host, port, self.deadline.left(5.0), ext,
                                                   dial)
            self.report.services["fastagi"] = True
        except OSError as exc:
            self.report.services["fastagi"] = False
            self.report.service_errors["fastagi"] = f"{host}:{port}: {exc.strerror or exc}"

    def ami(self) -> None:
        from ..asterisk.ami import AmiClient, AmiError
        assert self.settings.ami is not None
        host, port, user, secret = self.settings.ami
        client = AmiClient(host, port, user, secret, timeout=self.deadline.left(5.0))
        try:
            client.connect()
            reply = client.action("Ping")
            self.report.services["ami"] = reply.get("Response") == "Success"
            if not self.report.services["ami"]:
                self.report.service_errors["ami"] = reply.get("Message", "Ping failed")
        except (AmiError, OSError) as exc:
            self.report.services["ami"] = False
            self.report.service_errors["ami"] = f"{host}:{port}: {exc}"
        finally:
            client.close()


# ---------------------------------------------------------------- output


