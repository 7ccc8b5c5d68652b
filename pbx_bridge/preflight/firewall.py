"""The firewall open to Amazon's range: ``firewall.signaling`` (the TLS port) and
``firewall.media`` (the RTP range).

Each check is a pure function of a :class:`~.snapshot.Snapshot`; :mod:`.checks` registers
them."""

from __future__ import annotations

import ipaddress
from typing import Any

from ..firewall.commands import open_commands, port_span
from ..firewall.model import Coverage, Ruleset, coverage
from ..findings import Finding, Status
from .fixes import skip as _skip
from .media import rtp_range
from .snapshot import Located, Snapshot, Unknown


def _firewall(snap: Snapshot, id_: str, proto: str, ports: tuple[int, int], what: str
              ) -> Finding:
    fw = snap.firewall
    if isinstance(fw, Unknown):
        return _skip(id_, fw.reason)
    assert isinstance(fw, Ruleset)
    dst = None
    if isinstance(snap.public_ip, Located):
        try:
            dst = int(ipaddress.IPv4Address(snap.public_ip.value))
        except ValueError:
            dst = None
    worst: list[str] = []
    best: list[str] = []
    uncertain: list[str] = []
    for cidr in snap.options.amazon_cidrs:
        net = ipaddress.IPv4Network(cidr, strict=False)
        w: Coverage = coverage(fw, proto, net, ports, dst, "worst")
        worst.extend(g.describe() for g in w.gaps)
        uncertain.extend(u for u in w.uncertain if u not in uncertain)
        if w.gaps:
            best.extend(g.describe() for g in coverage(fw, proto, net, ports, dst, "best").gaps)
    span = port_span(ports, "-")
    ev: dict[str, Any] = {"ruleset": fw.source, "format": fw.format, "protocol": proto,
                          "ports": span, "cidrs": list(snap.options.amazon_cidrs),
                          "notes": list(fw.notes)}
    cidrs = " ".join(snap.options.amazon_cidrs)
    fix = open_commands(fw.format, proto, ports, snap.options.amazon_cidrs)
    if not worst:
        return Finding(id_, Status.PASS, f"{proto.upper()} {span} ({what}) is open to {cidrs}",
                       ev)
    ev["refused"] = worst
    if uncertain:
        ev["cannot_judge"] = uncertain
    if not best:
        return Finding(id_, Status.WARN, f"{proto.upper()} {span} ({what}) is open to {cidrs} "
                       "only if rules pbx-bridge cannot judge let it through", ev,
                       uncertain[0].split(": ", 1)[0] if uncertain else None, fix)
    first = worst[0]
    return Finding(id_, Status.FAIL, f"{proto.upper()} {what} not open to Amazon: {first}"
                   + (f" (+{len(worst) - 1} more)" if len(worst) > 1 else ""), ev,
                   None, fix)


def check_firewall_signaling(snap: Snapshot) -> Finding:
    id_ = "firewall.signaling"
    if snap.transport is None or not snap.transport.bind_ok:
        return _skip(id_, "no TLS transport port to check")
    p = snap.transport.port
    return _firewall(snap, id_, "tcp", (p, p), "SIP/TLS signalling")


def check_firewall_media(snap: Snapshot) -> Finding:
    id_ = "firewall.media"
    if snap.running_rtp is not None:  # what Asterisk uses, not what a file says
        return _firewall(snap, id_, "udp", snap.running_rtp, "SRTP media")
    r = rtp_range(snap)
    if isinstance(r, str):
        return _skip(id_, f"no valid RTP range: {r}")
    return _firewall(snap, id_, "udp", (r.start, r.end), "SRTP media")
