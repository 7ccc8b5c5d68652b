"""Addresses typed by the user: ``--listen HOST:PORT``, ``[fastagi] listen``, ``--dns-server``.

A leaf: the settings and the commands both parse them.
"""

from __future__ import annotations

from .errors import UsageError


def parse_listen(text: str, flag: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) with HOST an IP address."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"{flag} {text}: expected HOST:PORT")
    host = host.strip("[]")
    import ipaddress  # lazily: the process AGI starts without it
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"{flag} {text}: {host!r} is not an IP address") from None
    return host, int(port)


def parse_dns_server(text: str) -> tuple[str, int]:
    """``--dns-server``: an IP address, optionally with ``:PORT`` (``[IPv6]:PORT``); port 53
    by default."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _dns_port(rest[1:], text)
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _dns_port(p, text)
    import ipaddress
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--dns-server {text}: give an IP address, optionally with :PORT") \
            from None
    return host, port


def _dns_port(p: str, whole: str) -> int:
    if not p.isdigit() or not 0 < int(p) < 65536:
        raise UsageError(f"--dns-server {whole}: {p!r} is not a port")
    return int(p)
