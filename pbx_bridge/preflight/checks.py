"""Judge: the preflight's checks, each a pure function of a :class:`Snapshot`, one module per
requirement (:mod:`.tls`, :mod:`.cert`, :mod:`.network`, :mod:`.media`, :mod:`.firewall`,
:mod:`.security`), registered here.

The registry :data:`CHECKS` is a literal tuple; its ids are stable (the JSON and the text use
them). A check that crashes becomes an ``error`` finding and the others still run.
"""

from __future__ import annotations

from typing import Callable

from ..findings import Finding, Status
from . import security
from .cert import (check_amazon_ca, check_cert_chain, check_cert_dns, check_cert_key,
                   check_cert_valid)
from .config import check_config
from .firewall import check_firewall_media, check_firewall_signaling
from .media import check_rtp_range, check_srtp_endpoint, check_srtp_module
from .network import check_ip_public
from .snapshot import Snapshot
from .tls import (check_live_sip, check_live_tls, check_tls_port, check_tls_transport,
                  check_tls_version)


Check = Callable[[Snapshot], "Finding | None"]

CHECKS: tuple[tuple[str, Check], ...] = (
    ("asterisk.config", check_config),
    ("tls.transport", check_tls_transport),
    ("tls.version", check_tls_version),
    ("tls.port", check_tls_port),
    ("tls.ciphers", security.check_ciphers),
    ("cert.valid", check_cert_valid),
    ("cert.key", check_cert_key),
    ("cert.chain", check_cert_chain),
    ("cert.dns", check_cert_dns),
    ("ip.public", check_ip_public),
    ("srtp.module", check_srtp_module),
    ("srtp.endpoint", check_srtp_endpoint),
    ("rtp.range", check_rtp_range),
    ("firewall.signaling", check_firewall_signaling),
    ("firewall.media", check_firewall_media),
    ("amazon.ca", check_amazon_ca),
    ("security.identify", security.check_identify),
    ("security.transport", security.check_transport),
    ("security.key", security.check_key),
    ("live.tls", check_live_tls),
    ("live.sip", check_live_sip),
)


def run_checks(snap: Snapshot) -> list[Finding]:
    out = []
    for id_, check in CHECKS:
        try:
            f = check(snap)
        except Exception as exc:  # a broken check must not hide the others
            f = Finding(id_, Status.ERROR, f"check crashed: {type(exc).__name__}: {exc}")
        if f is not None:
            out.append(f)
    return out


def overall_ok(findings: list[Finding]) -> bool:
    return not any(f.status in (Status.FAIL, Status.ERROR) for f in findings)


# What Amazon requires: "ready" means each of these ran and passed (or only warned).
REQUIRED = ("tls.", "cert.", "ip.public", "srtp.", "rtp.range", "firewall.")


def unverified(findings: list[Finding]) -> list[Finding]:
    """Required checks that could not run."""
    return [f for f in findings if f.status == Status.SKIP and f.id.startswith(REQUIRED)]


def verdict(findings: list[Finding]) -> tuple[bool, str]:
    """(ready, the verdict's words) for the preflight."""
    if not overall_ok(findings):
        return False, "NOT ready for Amazon"
    skipped = unverified(findings)
    if skipped:
        return False, (f"not verified: {len(skipped)} check{'s' * (len(skipped) != 1)} could "
                       f"not run ({', '.join(f.id for f in skipped)})")
    return True, "ready for Amazon"
