"""The public static IP: ``ip.public``.

Each check is a pure function of a :class:`~.snapshot.Snapshot`; :mod:`.checks` registers
them."""

from __future__ import annotations

import ipaddress
from typing import Any

from ..findings import Finding, Status
from .fixes import edit_fix as _edit_fix, skip as _skip, where_text as _w
from .snapshot import Snapshot, Unknown


def check_ip_public(snap: Snapshot) -> Finding:
    id_ = "ip.public"
    p = snap.public_ip
    if isinstance(p, Unknown):
        return _skip(id_, p.reason)
    ev: dict[str, Any] = {"public_ip": p.value, "source": p.source}
    try:
        addr = ipaddress.ip_address(p.value)
    except ValueError:
        return Finding(id_, Status.FAIL, f"{p.value!r} is not an IP address", ev, _w(p.where),
                       "give an IPv4 address")
    if not addr.is_global:
        return Finding(id_, Status.FAIL, f"{p.value} is not a public address (private, "
                       "loopback or reserved)", ev, _w(p.where),
                       "use the PBX's public static IP (set external_signaling_address and "
                       "external_media_address on the TLS transport to it)")
    t = snap.transport
    if t is None:
        return Finding(id_, Status.PASS, f"{p.value} is a public address (no TLS transport to "
                       "compare with)", ev, _w(p.where))
    sig, media = t.get("external_signaling_address"), t.get("external_media_address")
    ev.update(external_signaling_address=sig.value if sig else None,
              external_media_address=media.value if media else None, bind=t.host)
    wrong = [s for s in (sig, media) if s is not None and s.value != p.value
             and not (s is sig and p.source.startswith("external_signaling_address"))]
    if wrong:
        s = wrong[0]
        return Finding(id_, Status.FAIL, f"transport {t.name} advertises {s.key}={s.value}, not "
                       f"{p.value}", ev, _w(s.where), _edit_fix(snap, t.section, [
                           f"external_signaling_address={p.value}",
                           f"external_media_address={p.value}"]))
    local = snap.host_ips if not isinstance(snap.host_ips, Unknown) else ()
    if sig is not None and media is None and p.value not in local:
        return Finding(id_, Status.FAIL, f"transport {t.name} sets external_signaling_address "
                       "but not external_media_address: SDP would carry the private address",
                       ev, _w(sig.where), _edit_fix(snap, t.section,
                                                    [f"external_media_address={p.value}"]))
    if sig is None:
        if not t.wildcard and t.host != p.value:
            return Finding(id_, Status.FAIL, f"transport {t.name} binds {t.host} and advertises "
                           f"no external address, so calls would not carry {p.value}", ev,
                           _w(t.where), _edit_fix(snap, t.section, [
                               f"external_signaling_address={p.value}",
                               f"external_media_address={p.value}"]))
        if t.wildcard and p.value not in local:
            ev["host_addresses"] = list(local)
            return Finding(id_, Status.FAIL, f"{p.value} is not on this host's interfaces and "
                           f"transport {t.name} advertises no external address (NAT?)", ev,
                           _w(t.where), _edit_fix(snap, t.section, [
                               f"external_signaling_address={p.value}",
                               f"external_media_address={p.value}"]))
    return Finding(id_, Status.PASS, f"{p.value} is public and advertised by {t.name}", ev,
                   _w(sig.where if sig else t.where))
