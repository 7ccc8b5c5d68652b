"""The network door: DNS look-ups, the host's own addresses, and a TLS + SIP OPTIONS probe."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import __version__
from .host import Runner

if TYPE_CHECKING:  # dnspython, socket and ssl: imported by the look-up and the probe using them
    import ssl

    import dns.resolver


class LookupFailed(Exception):
    """A DNS look-up gave no usable answer; the message says why. ``answered``: DNS itself
    said there is no such address (NXDOMAIN, no A record); otherwise no resolver could be
    asked (unreachable, refused, timed out, no server answering) and nothing is known."""

    def __init__(self, message: str, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


@dataclass(frozen=True)
class TlsProbe:
    connected: bool
    error: str | None = None
    version: str | None = None
    cipher: str | None = None
    peer_cert_der: bytes | None = None
    sip_status: str | None = None  # the status line of the answer to OPTIONS
    sip_error: str | None = None


class Network:
    def __init__(self, dns_server: tuple[str, int] | None = None, timeout: float = 3.0,
                 runner: Runner | None = None) -> None:
        self.dns_server = dns_server
        self.timeout = timeout
        self.runner = runner or Runner()

    def _resolver(self) -> dns.resolver.Resolver:
        import dns.resolver
        if self.dns_server:
            r = dns.resolver.Resolver(configure=False)
            r.nameservers = [self.dns_server[0]]
            r.port = self.dns_server[1]
        else:
            r = dns.resolver.Resolver()
        r.lifetime = self.timeout
        return r

    def resolve_a(self, name: str) -> list[str]:
        import dns.exception
        import dns.resolver
        try:
            answer = self._resolver().resolve(name, "A")
        except dns.resolver.NXDOMAIN:
            raise LookupFailed(f"{name} does not exist in DNS (NXDOMAIN)", True) from None
        except dns.resolver.NoAnswer:
            raise LookupFailed(f"{name} has no A record", True) from None
        except dns.resolver.NoNameservers as exc:  # unreachable, refused, SERVFAIL: per server
            raise LookupFailed(f"no DNS server could answer for {name}: {exc}") from None
        except dns.exception.Timeout:
            raise LookupFailed(f"DNS look-up of {name} timed out") from None
        except OSError as exc:  # the resolver could not be reached at all
            raise LookupFailed(f"could not reach a DNS server for {name}: "
                               f"{exc.strerror or exc}") from None
        except dns.exception.DNSException as exc:
            raise LookupFailed(f"DNS look-up of {name} failed: {exc}") from None
        return sorted({r.address for r in answer})

    def global_ipv4_addresses(self) -> list[str]:
        """The host's own globally routable IPv4 addresses (from ``ip -j addr``)."""
        if not self.runner.which("ip"):
            raise LookupFailed("the 'ip' command is not installed")
        res = self.runner.run(["ip", "-j", "-4", "addr", "show"])
        if res.returncode != 0:
            raise LookupFailed(f"'ip -j -4 addr show' failed: {res.stderr.strip()[:100]}")
        try:
            ifaces = json.loads(res.stdout)
        except ValueError:
            raise LookupFailed("'ip -j -4 addr show' printed no JSON") from None
        out = []
        for iface in ifaces:
            for a in iface.get("addr_info", []):
                ip = a.get("local")
                if ip and ipaddress.ip_address(ip).is_global:
                    out.append(ip)
        return out

    def weak_cipher_probe(self, host: str, port: int) -> "WeakProbe":
        return weak_cipher_probe(host, port, self.timeout)

    def tls_sip_probe(self, host: str, port: int, options: bool = True) -> TlsProbe:
        """A TLS 1.2 handshake to host:port, then (``options``) a SIP OPTIONS over that
        connection."""
        import socket
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # we compare the served certificate ourselves
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        try:
            raw = socket.create_connection((host, port), timeout=self.timeout)
        except OSError as exc:
            return TlsProbe(False, f"cannot connect to {host}:{port}: {exc.strerror or exc}")
        try:
            try:
                tls = ctx.wrap_socket(raw, server_hostname=None)
            except (ssl.SSLError, OSError) as exc:
                return TlsProbe(False, f"TLS 1.2 handshake with {host}:{port} failed: {exc}")
            with tls:
                cipher = tls.cipher()
                probe = dict(connected=True, version=tls.version(),
                             cipher=cipher[0] if cipher else None,
                             peer_cert_der=tls.getpeercert(binary_form=True))
                if not options:
                    return TlsProbe(**probe)  # type: ignore[arg-type]
                status, err = _options(tls, host, port)
                return TlsProbe(**probe, sip_status=status, sip_error=err)  # type: ignore[arg-type]
        finally:
            raw.close()


# What a TLS auditor flags on a TLS 1.2 server: CBC suites (SHA-1 and SHA-2 MACs, LUCKY13) and
# RSA key exchange (no forward secrecy). A server that completes a handshake offering only
# these offers a weak suite.
WEAK_CIPHERS = ("ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA:"
                "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:"
                "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:AES128-SHA:AES256-SHA:"
                "AES128-SHA256:AES256-SHA256:AES128-GCM-SHA256:AES256-GCM-SHA384")


@dataclass(frozen=True)
class WeakProbe:
    """A TLS 1.2 handshake offering only weak suites: ``accepted`` is the suite the server
    chose (weak), None when it refused them all; ``error`` when no answer was had at all."""

    accepted: str | None = None
    error: str | None = None


def weak_cipher_probe(host: str, port: int, timeout: float = 3.0) -> WeakProbe:
    import socket
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.set_ciphers(WEAK_CIPHERS + ":@SECLEVEL=0")
    except ssl.SSLError as exc:  # this OpenSSL has none of them left
        return WeakProbe(error=f"this host's OpenSSL cannot offer CBC suites ({exc})")
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return WeakProbe(error=f"cannot connect to {host}:{port}: {exc.strerror or exc}")
    try:
        with ctx.wrap_socket(raw, server_hostname=None) as tls:
            cipher = tls.cipher()
            return WeakProbe(accepted=cipher[0] if cipher else "?")
    except ssl.SSLError:
        return WeakProbe()  # a handshake failure alert: none of them is offered
    except OSError as exc:
        return WeakProbe(error=f"TLS handshake with {host}:{port}: {exc.strerror or exc}")
    finally:
        raw.close()


def _options(tls: ssl.SSLSocket, host: str, port: int) -> tuple[str | None, str | None]:
    import ssl
    import uuid
    lhost, lport = tls.getsockname()[:2]
    branch = "z9hG4bK" + uuid.uuid4().hex[:10]
    msg = (
        f"OPTIONS sip:{host}:{port};transport=tls SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS {lhost}:{lport};branch={branch};rport\r\n"
        f"From: <sip:preflight@{lhost}:{lport};transport=tls>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {uuid.uuid4()}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        f"User-Agent: pbx-bridge/{__version__} preflight\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    try:
        tls.sendall(msg.encode())
        buf = b""
        while b"\r\n" not in buf and len(buf) < 65536:
            chunk = tls.recv(4096)
            if not chunk:
                break
            buf += chunk
    except (OSError, ssl.SSLError) as exc:
        return None, f"OPTIONS got no answer: {exc}"
    first = buf.split(b"\r\n", 1)[0].decode("latin-1").strip()
    if not first:
        return None, "the connection closed without a SIP answer to OPTIONS"
    if not first.startswith("SIP/2.0 "):
        return None, f"the answer to OPTIONS is not SIP: {first[:60]!r}"
    return first, None
