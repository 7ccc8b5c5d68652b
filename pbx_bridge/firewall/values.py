"""Value parsers shared by the ruleset formats."""

from __future__ import annotations

import ipaddress
import re

from ..errors import PbxBridgeError
from .model import Net, PortRange


class RulesetSyntaxError(PbxBridgeError):
    """A ruleset file that cannot be read as the format it claims to be."""

    exit_code = 2


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}(?:/([0-9]{{1,2}}))?")


def parse_net(text: str, where: str) -> Net | None:
    """An IPv4 network as (first, last) address; None for an IPv6 one (it never matches
    Amazon's IPv4 block). Host bits are ignored, as iptables and nft do."""
    text = text.strip().strip('"')
    m = _DOTTED.fullmatch(text)  # the common 203.0.113.7 or 203.0.113.0/24, read directly
    if m and (m[5] is None or int(m[5]) <= 32):
        a, b, c, d, prefix = m.groups()
        ip = (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
        host = (1 << (32 - int(prefix or 32))) - 1
        return ip & ~host, ip | host
    try:
        net = ipaddress.ip_network(text, strict=False)  # netmasks, IPv6, and what is wrong
    except ValueError:
        raise RulesetSyntaxError(f"{where}: not an address or network: {text!r}") from None
    if isinstance(net, ipaddress.IPv6Network):
        return None
    return int(net.network_address), int(net.broadcast_address)


def parse_nets(text: str, where: str) -> tuple[Net, ...]:
    if "," not in text:  # one address: most rules
        one = parse_net(text, where) if text.strip() else None
        return () if one is None else (one,)
    nets = (parse_net(p, where) for p in text.split(",") if p.strip())
    return tuple(n for n in nets if n is not None)


def parse_ip_range(lo: str, hi: str, where: str) -> tuple[Net, ...]:
    try:
        a, b = ipaddress.IPv4Address(lo.strip()), ipaddress.IPv4Address(hi.strip())
    except ValueError:
        raise RulesetSyntaxError(f"{where}: not an address range: {lo}-{hi}") from None
    if a > b:
        raise RulesetSyntaxError(f"{where}: not an address range: {lo}-{hi}")
    return ((int(a), int(b)),)


def parse_port(text: str, where: str) -> int:
    text = text.strip()
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise RulesetSyntaxError(f"{where}: not a port: {text!r}")
    return int(text)


def parse_ports(text: str, where: str, sep: str = ":") -> tuple[PortRange, ...]:
    """``5061``, ``10000:20000``, ``5060,10000:20000`` (or with ``-`` as range separator)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if sep in part:
            lo, hi = part.split(sep, 1)
            a = parse_port(lo, where) if lo else 0
            b = parse_port(hi, where) if hi else 65535
            out.append((min(a, b), max(a, b)))
        else:
            p = parse_port(part, where)
            out.append((p, p))
    return tuple(out)


def parse_mark(text: str, where: str) -> tuple[int, int]:
    """``0x2/0xffffffff`` or ``2`` -> (value, mask)."""
    value, _, mask = text.partition("/")
    try:
        v = int(value, 0)
        m = int(mask, 0) if mask else 0xFFFFFFFF
    except ValueError:
        raise RulesetSyntaxError(f"{where}: not a mark: {text!r}") from None
    return v, m
