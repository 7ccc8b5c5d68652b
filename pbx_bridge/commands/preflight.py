"""``pbx-bridge preflight``: check a PBX host against Amazon's requirements (read-only)."""

from __future__ import annotations

import argparse
import sys

from ..defaults import DEFAULT_AMAZON_CIDR
from ..address import parse_dns_server
from ..errors import UsageError

from . import HELPS

TYPE_CHECKING = False
if TYPE_CHECKING:  # the checks' stack (cryptography, dnspython) loads only when preflight runs
    from ..preflight.snapshot import Options

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


def options_from(args: argparse.Namespace) -> "Options":
    import ipaddress
    from pathlib import Path
    from ..preflight.snapshot import Options
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
        dns_server=parse_dns_server(args.dns_server) if args.dns_server else None, live=args.live,
        key_group=args.key_group,
        asterisk_cli=("asterisk",) if args.live else None,  # --live: ask the running one
    )


def run(args: argparse.Namespace) -> int:
    from ..heap import tree_built
    from ..preflight.checks import run_checks, verdict
    from ..preflight.render import write
    from ..preflight.snapshot import gather
    with tree_built():
        snap = gather(options_from(args))
    findings = run_checks(snap)
    write(findings, args.format, sys.stdout)
    return 0 if verdict(findings)[0] else 1
