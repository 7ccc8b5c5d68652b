"""``pbx-bridge preflight``: check a PBX host against Amazon's requirements (read-only)."""

from __future__ import annotations

import argparse
import sys

from ..defaults import DEFAULT_AMAZON_CIDR
from ..errors import UsageError

from ..commands import HELPS

TYPE_CHECKING = False
if TYPE_CHECKING:  # the checks' stack (cryptography, dnspython) loads only when preflight runs
    from .snapshot import Options

HELP = HELPS["preflight"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("preflight", help=HELP, description=HELP + ". Exit 0 when nothing "
                       "fails, 1 when a check fails, 2 for bad input.")
    p.add_argument("--asterisk-dir", default="/etc/asterisk", metavar="DIR",
                   help="Asterisk config directory (default: /etc/asterisk)")
    p.add_argument("--endpoint", metavar="NAME",
                   help="PJSIP endpoint of the Amazon trunk (default: the one whose identify "
                        "matches the Amazon CIDR)")
    p.add_argument("--public-ip", metavar="IP", help="the PBX's public IP (default: the TLS "
                   "transport's external_signaling_address, else detected)")
    p.add_argument("--fqdn", metavar="NAME", help="TLS name to check in DNS (default: the "
                   "certificate's CN and SANs)")
    p.add_argument("--amazon-cidr", action="append", metavar="CIDR",
                   help=f"Amazon's network (default {DEFAULT_AMAZON_CIDR}; may repeat)")
    p.add_argument("--firewall-rules", metavar="FILE", help="a saved ruleset to check instead "
                   "of the live one (iptables-save, nft list ruleset [-j], ufw status verbose, "
                   "firewall-cmd --list-all)")
    p.add_argument("--dns-server", metavar="HOST[:PORT]", help="DNS resolver to use")
    p.add_argument("--live", action="store_true", help="also connect to the PBX's TLS port: "
                   "handshake, served certificate, SIP OPTIONS")
    p.add_argument("--key-group", default="asterisk", metavar="GROUP",
                   help="the group Asterisk runs as, which may read the private key "
                   "(default asterisk)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (a table; colour only on a terminal, never with NO_COLOR) or "
                   "json")
    p.set_defaults(run=run)


def _dns_server(text: str) -> tuple[str, int]:
    import ipaddress
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(p, text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--dns-server {text}: give an IP address, optionally with :PORT") \
            from None
    return host, port


def _port(p: str, whole: str) -> int:
    if not p.isdigit() or not 0 < int(p) < 65536:
        raise UsageError(f"--dns-server {whole}: {p!r} is not a port")
    return int(p)


def options_from(args: argparse.Namespace) -> "Options":
    import ipaddress
    from pathlib import Path
    from .snapshot import Options
    cidrs = tuple(args.amazon_cidr or [DEFAULT_AMAZON_CIDR])
    for c in cidrs:
        try:
            net = ipaddress.ip_network(c, strict=False)
        except ValueError:
            raise UsageError(f"--amazon-cidr {c}: not a network (expected e.g. "
                             f"{DEFAULT_AMAZON_CIDR})") from None
        if net.version != 4:
            raise UsageError(f"--amazon-cidr {c}: Amazon's SIP network is IPv4")
    if args.public_ip:
        try:
            ipaddress.ip_address(args.public_ip)
        except ValueError:
            raise UsageError(f"--public-ip {args.public_ip}: not an IP address") from None
    return Options(
        asterisk_dir=Path(args.asterisk_dir), endpoint=args.endpoint, public_ip=args.public_ip,
        fqdn=args.fqdn, amazon_cidrs=cidrs,
        firewall_rules=Path(args.firewall_rules) if args.firewall_rules else None,
        dns_server=_dns_server(args.dns_server) if args.dns_server else None, live=args.live,
        key_group=args.key_group,
        asterisk_cli=("asterisk",) if args.live else None,  # --live: ask the running one
    )


def run(args: argparse.Namespace) -> int:
    from ..heap import tree_built
    from .checks import run_checks, verdict
    from .render import write
    from .snapshot import gather
    with tree_built():
        snap = gather(options_from(args))
    findings = run_checks(snap)
    write(findings, args.format, sys.stdout)
    return 0 if verdict(findings)[0] else 1
