"""What ``status`` found, and how it is said: a sentence per problem, JSON, Prometheus
metrics, a Nagios line, text. Nothing here looks at the host; :mod:`.gather` fills the report.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..findings import Finding, Status

if TYPE_CHECKING:
    from cryptography import x509

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


STATE_NAMES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")


PARTS = ("config", "certificate", "renewal", "trunk", "mappings", "fastagi", "ami")


MAPPING_STATES = ("in_sync", "missing", "changed", "extra")


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
        return {"where": self.where, "notAfter": iso(self.not_after), "daysLeft":
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
                out.append((CRITICAL, f"{what} expired {iso(info.not_after)[:10]}"))
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
            "lastSync": iso(self.last_sync) if self.last_sync else None,
            "services": self.services, "errors": self.errors,
            "pendingRenewal": self.pending_renewal, "syncRunning": self.sync_running,
            "fastagiLookup": self.agi_lookup.to_json() if self.agi_lookup else None,
            "durationSeconds": round(self.duration, 3),
        }


def worst(problems: list[tuple[int, str]]) -> int:
    """The state of a list of problems, worst first (:meth:`Report.problems`): OK if none."""
    return problems[0][0] if problems else OK


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def cert_info(cert: "x509.Certificate", source: str, where: str) -> CertInfo:
    from cryptography.hazmat.primitives.serialization import Encoding

    from .. import certs
    return CertInfo(source, where, certs.not_after(cert).timestamp(),
                    cert.subject.rfc4514_string(),
                    hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest())


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
            lines.append(f"  {label}: {info.where}, expires {iso(info.not_after)} "
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
        lines.append(f"  last rooms apply: {iso(report.last_sync)}")
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
