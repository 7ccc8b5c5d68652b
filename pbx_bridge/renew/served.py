"""Which certificate Asterisk serves on the TLS port, waited for after a reload or restart."""

from __future__ import annotations

import time

from .. import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..asterisk.cli import Asterisk
    from ..generate.verify import Verdict


def served(host: str, port: int) -> bytes | None:
    from ..net import Network
    probe = Network(timeout=3.0).tls_sip_probe(host, port, options=False)
    return probe.peer_cert_der if probe.connected else None


def wait_served(host: str, port: int, want: bytes, seconds: float) -> bytes | None:
    """What Asterisk serves, waiting up to ``seconds`` for it to become ``want`` (a
    transport restarts its listener a moment after the reload returns)."""
    end = time.monotonic() + seconds
    while True:
        got = served(host, port)
        if got == want or time.monotonic() >= end:
            return got
        time.sleep(0.2)


def verdict(host: str, port: int, want: bytes, settle: float = 5.0) -> "Verdict":
    from ..generate.verify import Verdict
    got = wait_served(host, port, want, settle)
    if got == want:
        return Verdict(True, False, (), f"Asterisk serves the new certificate on {host}:{port}")
    if got is None:
        return Verdict(False, False, (f"Asterisk serves no TLS on {host}:{port}",),
                       f"Asterisk serves no TLS on {host}:{port}")
    return Verdict(False, True, ("it still serves the old certificate",),
                   f"Asterisk still serves the old certificate on {host}:{port}")


def restart(asterisk: "Asterisk", host: str, port: int, want: bytes, timeout: float) -> bool:
    log.event("restart", message="restarting Asterisk (core restart gracefully) so that it "
              "serves the new certificate")
    asterisk.rx("core restart gracefully")
    end = time.monotonic() + timeout
    time.sleep(1.0)
    while time.monotonic() < end:
        ok, text = asterisk.rx("core waitfullybooted")
        if "fully booted" in text.lower():
            break
        time.sleep(0.5)
    return wait_served(host, port, want, max(1.0, end - time.monotonic())) == want
