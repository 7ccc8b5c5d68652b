"""``pbx-bridge status``: one cheap, read-only snapshot of whether the Alexa trunk still works,
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

import hashlib
import re
import signal
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .findings import Finding, Status

if TYPE_CHECKING:
    from cryptography import x509

    from .settings import Settings

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
PARTS = ("config", "certificate", "renewal", "trunk", "mappings", "fastagi", "ami")
MAPPING_STATES = ("in_sync", "missing", "changed", "extra")


class OutOfTime(Exception):
    """``--timeout`` ran out during a part."""


@dataclass
class CertInfo:
    source: str  # "file" or "served"
    where: str  # the file, or host:port
    not_after: float  # epoch seconds
    subject: str
    sha256: str  # of the leaf's DER

    def days_left(self, now: float) -> float:
        return (self.not_after - now) / 86400

    def to_json(self, now: float) -> dict[str, Any]:
        return {"where": self.where, "notAfter": _iso(self.not_after), "daysLeft":
                round(self.days_left(now), 1), "subject": self.subject, "sha256": self.sha256}


@dataclass
class Report:
    now: float
    checks: list[Finding] = field(default_factory=list)
    cert_file: CertInfo | None = None
    cert_served: CertInfo | None = None
    served_error: str | None = None  # why no served certificate was seen
    trunk_id: str | None = None
    trunk_exists: bool | None = None
    trunk_status: str | None = None
    trunk_chain_matches: bool | None = None
    trunk_peers_match: bool | None = None
    mappings: dict[str, int] | None = None
    drift: list[str] = field(default_factory=list)  # a few examples of mapping drift
    last_sync: float | None = None
    services: dict[str, bool] = field(default_factory=dict)  # fastagi/ami -> answered
    service_errors: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # part -> why it could not be checked
    pending_renewal: dict[str, Any] | None = None  # a renewal renew-hook could not install
    sync_running: str | None = None  # "pid rooms apply" while one runs: drift not judged
    agi_lookup: "AgiLookup | None" = None  # FastAGI asked to route a mapped room
    duration: float = 0.0

    @property
    def success(self) -> bool:
        return not self.errors

    def check_counts(self) -> dict[str, int]:
        """Config checks by status: a warning is a warning, never a pass."""
        counts = {"pass": 0, "warn": 0, "fail": 0}
        for f in self.checks:
            key = "fail" if f.status in (Status.FAIL, Status.ERROR) else f.status.value
            counts[key] = counts.get(key, 0) + 1
        return counts

    # ------------------------------------------------------------ verdicts

    def problems(self, warn_days: float, crit_days: float) -> list[tuple[int, str]]:
        """(state, sentence) for everything not OK, worst first."""
        out: list[tuple[int, str]] = []
        for f in self.checks:
            if f.status in (Status.FAIL, Status.ERROR):
                out.append((CRITICAL, f"{f.id}: {f.summary}"))
        for info in (self.cert_served, self.cert_file):
            if info is None:
                continue
            days = info.days_left(self.now)
            what = "served certificate" if info.source == "served" else \
                f"certificate file {info.where}"
            if days <= 0:
                out.append((CRITICAL, f"{what} expired {_iso(info.not_after)[:10]}"))
            elif days <= crit_days:
                out.append((CRITICAL, f"{what} expires in {days:.0f} days"))
            elif days <= warn_days:
                out.append((WARNING, f"{what} expires in {days:.0f} days"))
        if self.served_error:
            out.append((CRITICAL, self.served_error))
        if self.pending_renewal:
            r = self.pending_renewal
            out.append((WARNING, f"a renewed certificate (valid until {r.get('notAfter')}) is "
                        f"not installed since {r.get('since')}: {r.get('reason')}; finish it: "
                        f"pbx-bridge renew-hook --lineage {r.get('lineage')}"))
        if self.cert_served and self.cert_file and \
                self.cert_served.sha256 != self.cert_file.sha256:
            out.append((WARNING, "Asterisk serves another certificate than "
                        f"{self.cert_file.where} (renewed but not loaded: pbx-bridge "
                        "renew-hook --lineage DIR, certbot's live folder of it)"))
        if self.trunk_exists is False:
            out.append((CRITICAL, f"trunk {self.trunk_id} does not exist at Amazon"))
        elif self.trunk_id is None and not self.errors.keys() & {"trunk", "settings"}:
            out.append((CRITICAL, "no trunk saved: run 'pbx-bridge trunk create'"))
        elif self.trunk_status is not None and self.trunk_status != "ACTIVE":
            out.append((CRITICAL, f"trunk {self.trunk_id} is {self.trunk_status}"))
        if self.trunk_chain_matches is False:
            out.append((WARNING, "Amazon holds another certificate chain than the PBX "
                        "('pbx-bridge trunk update')"))
        if self.trunk_peers_match is False:
            out.append((WARNING, "Amazon holds other peers than the PBX's address "
                        "('pbx-bridge trunk update')"))
        if self.mappings:
            off = {k: v for k, v in self.mappings.items() if k != "in_sync" and v}
            if off:
                out.append((WARNING, "mappings drifted at Amazon: " + ", ".join(
                    f"{v} {k}" for k, v in off.items()) + " ('pbx-bridge rooms apply')"))
        for name, up in self.services.items():
            if not up:
                err = self.service_errors.get(name, "")
                out.append((CRITICAL if name == "fastagi" else WARNING,
                            f"{name} is not what answers there: {err}" if " answered " in err
                            else f"{name} does not answer: {err}"))
        lookup = self.agi_lookup
        if self.services.get("fastagi") and lookup is not None and lookup.problem:
            out.append((CRITICAL, f"fastagi answers but does not route mapped room "
                        f"{lookup.extension}: {lookup.problem} (calls to Alexa rooms fail)"))
        for part, why in self.errors.items():
            out.append((UNKNOWN, f"{part} not checked: {why}"))
        order = {CRITICAL: 0, WARNING: 1, UNKNOWN: 2}
        return sorted(out, key=lambda p: order[p[0]])

    def to_json(self, problems: list[tuple[int, str]]) -> dict[str, Any]:
        """The report and its :meth:`problems`."""
        return {
            "state": STATE_NAMES[worst(problems)], "success": self.success,
            "problems": [{"state": STATE_NAMES[s], "message": m} for s, m in problems],
            "checks": {f.id: f.status.value for f in self.checks},
            "checkCounts": self.check_counts(),
            "certificate": {k: v.to_json(self.now) for k, v in
                            (("file", self.cert_file), ("served", self.cert_served)) if v},
            "trunk": {"id": self.trunk_id, "exists": self.trunk_exists,
                      "status": self.trunk_status, "certificateMatches":
                      self.trunk_chain_matches, "peersMatch": self.trunk_peers_match},
            "mappings": self.mappings, "drift": self.drift,
            "lastSync": _iso(self.last_sync) if self.last_sync else None,
            "services": self.services, "errors": self.errors,
            "pendingRenewal": self.pending_renewal, "syncRunning": self.sync_running,
            "fastagiLookup": self.agi_lookup.to_json() if self.agi_lookup else None,
            "durationSeconds": round(self.duration, 3),
        }


def worst(problems: list[tuple[int, str]]) -> int:
    """The state of a list of problems, worst first (:meth:`Report.problems`): OK if none."""
    return problems[0][0] if problems else OK


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


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


def cert_info(cert: "x509.Certificate", source: str, where: str) -> CertInfo:
    from cryptography.hazmat.primitives.serialization import Encoding

    from . import certs
    return CertInfo(source, where, certs.not_after(cert).timestamp(),
                    cert.subject.rfc4514_string(),
                    hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest())


def read_mappings(state_dir: Path, trunk_id: str) -> tuple[dict[str, str], float | None]:
    """The mappings the last ``rooms apply`` recorded (extension -> profile) and when it last
    succeeded, read-only: status never creates or changes the state database."""
    from .rooms.store import DB_NAME, open_readonly
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


@dataclass(frozen=True)
class AgiLookup:
    """What FastAGI set when asked to route ``extension`` (a room the local routes map, or
    None when none is: then only whether it answers was checked)."""
    extension: str | None
    expected_dial: str | None  # PJSIP/EXT@ENDPOINT, when the routes name the endpoint
    variables: dict[str, str]
    messages: tuple[str, ...]  # its VERBOSE lines: why it found no routes

    @property
    def problem(self) -> str | None:
        """Why the mapped room is not routed, or None when it is (or none was asked)."""
        if self.extension is None:
            return None
        mapped = self.variables.get("ALEXA_MAPPED")
        dial = self.variables.get("ALEXA_DIAL", "")
        if mapped != "1":
            why = "; ".join(m.removeprefix("pbx-bridge agi: ") for m in self.messages)
            return f"ALEXA_MAPPED {mapped!r}" + (f" ({why})" if why else
                                                 " (it does not know the room)")
        if self.expected_dial and dial != self.expected_dial:
            return (f"ALEXA_DIAL {dial!r}, the routes say {self.expected_dial!r} (does it read "
                    "another state dir?)")
        return None

    def to_json(self) -> dict[str, Any]:
        return {"extension": self.extension, "routed": self.extension is not None and
                self.problem is None, "problem": self.problem, "variables": self.variables,
                "messages": list(self.messages)}


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
    from .rooms import routes
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
            from .errors import PbxBridgeError
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
        from .net import Network
        from .preflight.checks import run_checks
        from .preflight.snapshot import Options, Unknown, gather
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
        from .state import State
        from .statedir import holder
        if "renew-hook" in (holder(self.settings.state_dir) or ""):
            return  # it is being installed now
        self.report.pending_renewal = State(self.settings.state_dir).pending_renewal

    def served(self) -> None:
        from cryptography import x509

        from .net import Network
        from .errors import PbxBridgeError
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
        from .amazon.client import PbxApi
        from .amazon.http import Http
        from .amazon.retry import RetryPolicy
        from .amazon.token import TokenProvider
        from .doors import Clock
        left = self.deadline.left()
        http = Http(min(self.settings.timeout, max(left, 0.5)))
        clock = Clock()
        return PbxApi(self.settings.api_url, http, TokenProvider(self.settings, http, clock),
                      clock, RetryPolicy(attempts=3, cap=2.0, deadline=min(5.0, max(left - 1,
                                                                                   1.0))))

    def trunk(self) -> None:
        from .amazon.errors import ApiError
        from .certs import same_chain
        from .commands.trunk import from_snapshot
        from .state import State
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
            from .errors import PbxBridgeError
            raise PbxBridgeError("the trunk could not be read")
        from .statedir import holder
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
        from .state import State
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
        from .ami import AmiClient, AmiError
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

def registry(report: Report) -> Any:
    """The report as Prometheus metrics (``prometheus_client``'s registry)."""
    from prometheus_client import CollectorRegistry, Gauge
    reg = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=reg)

    check = gauge("pbx_bridge_check_ok", "1 when the preflight config check passes, 0 when it "
                  "fails or warns", ("check",))
    warned = gauge("pbx_bridge_check_warning", "1 when the preflight config check warns "
                   "(not a failure, not a pass)", ("check",))
    for f in report.checks:
        check.labels(f.id).set(int(f.status == Status.PASS))
        warned.labels(f.id).set(int(f.status == Status.WARN))
    expiry = gauge("pbx_bridge_certificate_expiry_timestamp_seconds", "notAfter of the PBX "
                   "certificate: in the file the TLS transport names, and as Asterisk serves "
                   "it", ("source",))
    for info in (report.cert_file, report.cert_served):
        if info is not None:
            expiry.labels(info.source).set(info.not_after)
    if report.cert_file and report.cert_served:
        gauge("pbx_bridge_certificate_served_matches_file", "1 when Asterisk serves the "
              "certificate in the file").set(int(report.cert_served.sha256 ==
                                                 report.cert_file.sha256))
    if report.served_error or report.cert_served:
        gauge("pbx_bridge_tls_up", "1 when Asterisk completes a TLS 1.2 handshake on the "
              "trunk's port").set(int(report.cert_served is not None))
    if "trunk" not in report.errors:
        gauge("pbx_bridge_trunk_active", "1 when the saved trunk is ACTIVE at Amazon").set(
            int(report.trunk_status == "ACTIVE"))
        trunk_info = gauge("pbx_bridge_trunk_info", "the saved trunk and its status at Amazon",
                     ("trunk_id", "status"))
        if report.trunk_id:
            status = report.trunk_status or ("MISSING" if report.trunk_exists is False
                                             else "UNKNOWN")
            trunk_info.labels(report.trunk_id, status).set(1)
    if report.trunk_chain_matches is not None:
        gauge("pbx_bridge_trunk_certificate_matches", "1 when Amazon holds the PBX's "
              "certificate chain").set(int(report.trunk_chain_matches))
    if report.trunk_peers_match is not None:
        gauge("pbx_bridge_trunk_peers_match", "1 when Amazon holds the PBX's address and "
              "port").set(int(report.trunk_peers_match))
    if report.mappings is not None:
        maps = gauge("pbx_bridge_mappings", "extension mappings at Amazon against the last "
                     "rooms apply: in_sync, missing (at Amazon), changed, extra", ("state",))
        for state, n in report.mappings.items():
            maps.labels(state).set(n)
    if "renewal" not in report.errors:
        gauge("pbx_bridge_renewal_pending", "1 when a renewed certificate waits to be "
              "installed (renew-hook failed; pbx-bridge status says how to finish it)").set(
            int(report.pending_renewal is not None))
    if report.last_sync is not None:
        gauge("pbx_bridge_last_sync_timestamp_seconds", "when rooms apply last succeeded"
              ).set(report.last_sync)
    if report.services:
        up = gauge("pbx_bridge_service_up", "1 when the service answers", ("service",))
        for name, ok in report.services.items():
            up.labels(name).set(int(ok))
    if report.agi_lookup is not None and report.agi_lookup.extension is not None:
        gauge("pbx_bridge_fastagi_routes", "1 when FastAGI routes a room the local routes map "
              "(asked as Asterisk asks it)").set(int(report.agi_lookup.problem is None))
    part = gauge("pbx_bridge_status_part_success", "1 when this part could be checked",
                 ("part",))
    for name in PARTS:
        if name in ("fastagi", "ami") and name not in report.services and \
                name not in report.errors:
            continue
        part.labels(name).set(int(name not in report.errors))
    gauge("pbx_bridge_status_success", "1 when every part of the status could be checked"
          ).set(int(report.success))
    gauge("pbx_bridge_status_timestamp_seconds", "when this status was taken").set(report.now)
    gauge("pbx_bridge_status_duration_seconds", "how long it took").set(report.duration)
    return reg


def nagios(report: Report, problems: list[tuple[int, str]], warn_days: float,
           crit_days: float) -> tuple[str, int]:
    """The monitoring-plugin line and exit code (the thresholds go into its perfdata)."""
    state = worst(problems)
    if problems:
        summary = "; ".join(m for _, m in problems[:4])
        if len(problems) > 4:
            summary += f"; and {len(problems) - 4} more"
    else:
        warns = [f.id for f in report.checks if f.status == Status.WARN]
        summary = (f"trunk {report.trunk_id} ACTIVE" if report.trunk_status == "ACTIVE"
                   else "no check fails" if warns else "all checks pass")
        if warns:
            summary += f", {len(warns)} check warning(s) ({', '.join(warns)})"
        if report.cert_served:
            summary += (f", certificate valid {report.cert_served.days_left(report.now):.0f} "
                        "days")
        if report.mappings is not None:
            summary += f", {report.mappings['in_sync']} mappings in sync"
    perf = []
    for info in (report.cert_file, report.cert_served):
        if info is not None:
            perf.append(f"cert_days_{info.source}={info.days_left(report.now):.1f};"
                        f"{warn_days:g};{crit_days:g}")
    if report.mappings is not None:
        perf += [f"mappings_{k}={v}" for k, v in report.mappings.items()]
    counts = report.check_counts()
    perf.append(f"checks_passed={counts['pass']} checks_warned={counts['warn']} "
                f"checks_failed={counts['fail']};;1")
    perf.append(f"time={report.duration:.3f}s")
    summary = summary.replace("|", "/").replace("\n", " ")
    return f"PBX-BRIDGE {STATE_NAMES[state]} - {summary} | {' '.join(perf)}", state


def text(report: Report, problems: list[tuple[int, str]]) -> str:
    lines = [f"status: {STATE_NAMES[worst(problems)]}"]
    failed = [f.id for f in report.checks if f.status in (Status.FAIL, Status.ERROR)]
    warned = [f.id for f in report.checks if f.status == Status.WARN]
    counts = report.check_counts()
    lines.append(f"  config checks: {counts['pass']} pass, {counts['warn']} warn" +
                 (f" ({', '.join(warned)})" if warned else "") + f", {counts['fail']} fail" +
                 (f" ({', '.join(failed)})" if failed else ""))
    for label, info in (("certificate file", report.cert_file),
                        ("certificate served", report.cert_served)):
        if info is not None:
            lines.append(f"  {label}: {info.where}, expires {_iso(info.not_after)} "
                         f"({info.days_left(report.now):.0f} days)")
    if report.served_error:
        lines.append(f"  certificate served: {report.served_error}")
    if report.trunk_id:
        tail = []
        if report.trunk_chain_matches is not None:
            tail.append("certificate " + ("matches" if report.trunk_chain_matches
                                          else "DIFFERS"))
        if report.trunk_peers_match is not None:
            tail.append("peers " + ("match" if report.trunk_peers_match else "DIFFER"))
        status = report.trunk_status or ("MISSING" if report.trunk_exists is False else "?")
        lines.append(f"  trunk: {report.trunk_id} {status}" +
                     (f" ({', '.join(tail)})" if tail else ""))
    if report.mappings is not None:
        lines.append("  mappings: " + ", ".join(f"{v} {k.replace('_', ' ')}"
                                                for k, v in report.mappings.items()))
        lines += [f"    {d}" for d in report.drift]
    if report.sync_running:
        lines.append(f"  mappings: not compared, a rooms apply is running (pid "
                     f"{report.sync_running.split()[0]})")
    if report.last_sync is not None:
        lines.append(f"  last rooms apply: {_iso(report.last_sync)}")
    for name, up in report.services.items():
        line = f"  {name}: " + ("answers" if up else
                                f"DOWN ({report.service_errors.get(name, '')})")
        lookup = report.agi_lookup
        if name == "fastagi" and up and lookup is not None:
            if lookup.extension is None:
                line += " (no room mapped: only checked that it answers)"
            elif lookup.problem:
                line += f", but does NOT route mapped room {lookup.extension}: {lookup.problem}"
            else:
                line += (f", routes {lookup.extension} via "
                         f"{lookup.variables.get('ALEXA_DIAL', '?')}")
        lines.append(line)
    if problems:
        lines.append("problems:")
        lines += [f"  {STATE_NAMES[s]}: {m}" for s, m in problems]
    return "\n".join(lines)
