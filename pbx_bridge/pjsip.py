"""PJSIP objects (transports, endpoints, identifies) read from a parsed ``pjsip.conf`` tree."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .asterisk_conf import Config, Section, Setting, Where

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


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    text = text.strip()
    if text.startswith("!"):
        return None
    # Asterisk accepts ``1.2.3.4/255.255.255.0`` as well as prefix lengths.
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


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
