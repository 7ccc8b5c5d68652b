"""PJSIP objects (transports, endpoints, identifies) read from a parsed ``pjsip.conf`` tree."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .conf import Config, Section, Setting, Where

WILDCARD = ("0.0.0.0", "::", "")  # bind addresses that mean every address
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 8088, "wss": 8089}
TCP_PROTOCOLS = frozenset({"tcp", "tls", "ws", "wss"})


@dataclass(frozen=True)
class Transport:
    name: str
    section: Section
    protocol: str
    host: str
    port: int
    bind_ok: bool  # the bind value parsed

    @property
    def where(self) -> Where:
        return self.section.where

    def get(self, key: str) -> Setting | None:
        return self.section.get(key)

    def value(self, key: str) -> str | None:
        return self.section.value(key)

    @property
    def wildcard(self) -> bool:
        """Bound to every address of the host."""
        return self.host in WILDCARD

    @property
    def connect_host(self) -> str:
        """Where a client on this host reaches the transport (loopback for a wildcard)."""
        return "127.0.0.1" if self.wildcard else self.host


def objects(config: Config, type_: str) -> list[Section]:
    """Every non-template section whose ``type`` is ``type_``, in load order."""
    return config.of_type(type_)


def parse_bind(value: str, protocol: str) -> tuple[str, int] | None:
    """``0.0.0.0:5061``, ``[::]:5061``, ``0.0.0.0`` -> (host, port); None when malformed."""
    value = value.strip()
    default = DEFAULT_PORTS.get(protocol, 5060)
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            return None
        host, rest = value[1:close], value[close + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host, port_text = value, ""
    if not host:
        return None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    else:
        port = default
    return host, port


def transports(config: Config) -> list[Transport]:
    out = []
    for sec in objects(config, "transport"):
        protocol = (sec.value("protocol") or "udp").strip().lower()
        parsed = parse_bind(sec.value("bind") or "0.0.0.0", protocol)
        host, port = parsed if parsed else ("", 0)
        out.append(Transport(sec.name, sec, protocol, host, port, parsed is not None))
    return out


def identify_matches(section: Section) -> list[tuple[str, Setting]]:
    """The ``match`` values of an identify (each setting may list several, comma-separated)."""
    out = []
    for s in section.get_all("match"):
        for part in s.value.split(","):
            part = part.strip()
            if part:
                out.append((part, s))
    return out


_V4 = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3})(?::\d{1,5})?(?:/(\S+))?$")
_V6 = re.compile(r"^\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?(?:/(\S+))?$")
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?(?::\d{1,5})?$")


def parse_match(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str:
    """An identify ``match`` value as Asterisk reads it: an address or network, with an
    optional source port (``1.2.3.4:5061/24``, ``[::1]:5060``) and a prefix length or mask;
    else "name" for a host name (Asterisk resolves it when it loads) or "invalid"."""
    text = text.strip()
    m = _V4.match(text) or _V6.match(text)
    if m:
        addr, mask = m.group(1), m.group(2)
    elif text.count(":") >= 2:  # a bare IPv6 address or network
        addr, _, mask = text.partition("/")
    else:
        return "name" if _HOST.match(text) and not text.replace(".", "").isdigit() \
            else "invalid"
    try:
        return ipaddress.ip_network(f"{addr}/{mask}" if mask else addr, strict=False)
    except ValueError:
        return "invalid"


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if text.strip().startswith("!"):
        return None
    found = parse_match(text)
    return None if isinstance(found, str) else found


def endpoint_for_cidrs(config: Config, cidrs: list[str]) -> tuple[str, Where] | None:
    """The endpoint whose identify ``match`` covers every Amazon CIDR, if any."""
    wanted = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    for sec in objects(config, "identify"):
        endpoint = sec.value("endpoint")
        if not endpoint:
            continue
        nets = [n for n in (_network(m) for m, _ in identify_matches(sec)) if n is not None]
        if all(any(w.version == n.version and w.subnet_of(n)  # type: ignore[arg-type]
                   for n in nets) for w in wanted):
            return endpoint.strip(), sec.where
    return None


def endpoint(config: Config, name: str) -> Section | None:
    for sec in objects(config, "endpoint"):
        if sec.name == name:
            return sec
    return None
