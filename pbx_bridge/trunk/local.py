"""The trunk this PBX's config describes, and how it differs from Amazon's.

The local side comes from the preflight's snapshot: the TLS transport's certificate chain, the
name on it, the public address and the TLS port. ``trunk create|update`` send it, ``status`` and
``renew-hook`` compare it with what Amazon holds.
"""

from __future__ import annotations

import re

from ..errors import InputError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing loads only for the type checker (fast --help)
    from typing import Any
    from ..amazon.models import Peer, Trunk, TrunkSpec
    from ..findings import Finding
    from ..preflight.snapshot import Snapshot


_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.S)


def read_chain(data: bytes, source: str) -> tuple[str, ...]:
    from .. import certs
    pems = tuple(m.group(0) for m in _PEM.finditer(data.decode("ascii", "replace")))
    if not pems:
        raise InputError(source, "holds no PEM certificate")
    try:
        for pem in pems:
            certs.load_chain(pem.encode())
    except certs.CertError as exc:
        raise InputError(source, str(exc)) from None
    return pems


class LocalTrunk:
    """What the PBX's config says the trunk should be (empty parts where it cannot tell)."""

    def __init__(self, chain: tuple[str, ...], name: str | None,
                 peers: "tuple[Peer, ...]") -> None:
        self.chain = chain  # PEM, as in cert_file
        self.name = name  # the certificate's first non-wildcard SAN, else its CN
        self.peers = peers  # public IP and TLS port


def from_snapshot(snap: "Snapshot") -> LocalTrunk:
    from pathlib import Path
    from .. import certs
    from ..amazon.models import Peer
    from ..preflight.snapshot import Located, Unknown
    chain: tuple[str, ...] = ()
    name = None
    if not isinstance(snap.cert, Unknown) and snap.cert.cert_read_error is None:
        chain = read_chain(Path(snap.cert.path).read_bytes(), snap.cert.path)
        leaf = snap.cert.leaf()
        if leaf is not None:
            cn, sans = certs.names(leaf)
            name = next((n for n in sans if not n.startswith("*.")), None) or cn
    peers: tuple[Peer, ...] = ()
    if snap.transport is not None and isinstance(snap.public_ip, Located):
        peers = (Peer(snap.public_ip.value, snap.transport.port, True),)
    return LocalTrunk(chain, name, peers)


def not_public(ip: str) -> str | None:
    """Why Amazon could never reach this address, or None for a public one. (The emulator
    and tests use 54.240.196.10, public but never contacted; set
    PBX_BRIDGE_ALLOW_PRIVATE_PEERS=1 to rehearse with a private address.)"""
    import ipaddress
    import os
    if os.environ.get("PBX_BRIDGE_ALLOW_PRIVATE_PEERS") == "1":
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return f"{ip!r} is not an IP address"
    if addr.is_global and not addr.is_multicast:
        return None
    kinds = [("loopback", addr.is_loopback), ("link-local", addr.is_link_local),
             ("multicast", addr.is_multicast), ("unspecified", addr.is_unspecified),
             ("carrier-grade NAT (100.64.0.0/10)",
              addr in ipaddress.ip_network("100.64.0.0/10")),
             ("documentation", any(addr in ipaddress.ip_network(n) for n in
                                   ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))),
             ("private", addr.is_private)]
    kind = next((k for k, hit in kinds if hit), "reserved")
    return f"{ip} is a {kind} address, not a public one"


def check_name(name: str, chain: tuple[str, ...], what: str) -> None:
    """The TLS name must be one the certificate carries: Amazon checks it against the
    certificate the PBX serves."""
    from .. import certs
    if not chain:
        return
    try:
        leaf = certs.leaf_of(certs.load_chain("".join(chain).encode()))
    except certs.CertError:
        return
    if certs.carries(leaf, name):
        return
    cn, sans = certs.names(leaf)
    carried = [n for n in (*sans, cn) if n]
    raise UsageError(f"{what} {name} is not on the certificate (CN and SANs: "
                     f"{', '.join(carried) or 'none'}); use one of those names or a "
                     "certificate for this one")


def changes(current: Trunk, want: TrunkSpec) -> dict[str, Any]:
    """Only the parts of the trunk that differ from what this PBX wants (a chain is the same
    when it holds the same certificates, however the PEM is wrapped)."""
    from ..certs import same_chain
    out: dict[str, Any] = {}
    if current.name != want.name or not same_chain(current.certificate_chain,
                                                   want.certificate_chain):
        out["tls"] = want.to_wire()["tls"]
    if sorted(current.peers) != sorted(want.peers):
        out["peers"] = want.to_wire()["peers"]
    return out


# The preflight checks that decide whether what we would send is right.
GATE = ("tls.transport", "tls.version", "tls.port", "cert.valid", "cert.key", "cert.chain",
        "ip.public")


def gate_findings(findings: "list[Finding]") -> "list[Finding]":
    """The preflight's findings that decide whether what ``trunk create|update`` would send
    is right."""
    return [f for f in findings if f.id in GATE]


def blocking(findings: "list[Finding]") -> "list[Finding]":
    """Those that stop ``trunk create|update`` (unless --skip-preflight)."""
    from ..findings import Status
    return [f for f in findings if f.status in (Status.FAIL, Status.ERROR)]


def view(name: str | None, chain: tuple[str, ...], peers: "tuple[Peer, ...]"
         ) -> dict[str, Any]:
    """A trunk as a person compares two: its name, peers, and each certificate of the chain
    by subject and SHA-256 fingerprint (never the PEM itself)."""
    import hashlib

    from .. import certs
    shown = []
    for pem in chain:
        try:
            cert = certs.load_chain(pem.encode())[0]
            from cryptography.hazmat.primitives.serialization import Encoding
            der = cert.public_bytes(Encoding.DER)
            shown.append(f"{cert.subject.rfc4514_string()} sha256:"
                         f"{hashlib.sha256(der).hexdigest()[:16]}")
        except (certs.CertError, IndexError):
            shown.append("(unreadable certificate)")
    return {"name": name, "peers": sorted(str(p) for p in peers), "chain": shown}
