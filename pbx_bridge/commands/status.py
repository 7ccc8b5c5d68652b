"""``pbx-bridge status``: is the trunk still working? Read-only, safe to run every minute."""

from __future__ import annotations

import argparse
import sys

from ..errors import PbxBridgeError, UsageError
from .common import add_asterisk_dir, add_log_format, add_settings_args

from . import HELPS

HELP = HELPS["status"]
FORMATS = ("text", "json", "prometheus", "nagios")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("status", help=HELP, description=HELP + ". Exit codes: nagios 0 OK, "
                       "1 WARNING, 2 CRITICAL, 3 UNKNOWN; text and json 0 when OK, else 1; "
                       "prometheus 0 once the metrics are written.")
    add_settings_args(p)
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (default), json, prometheus (text exposition format) or nagios "
                   "(one monitoring-plugin line)")
    p.add_argument("--textfile", metavar="PATH", help="with --format prometheus: write the "
                   "metrics atomically to PATH (a *.prom file in node_exporter's textfile "
                   "collector directory) instead of standard output")
    add_asterisk_dir(p)
    p.add_argument("--timeout", type=float, default=20.0, metavar="S",
                   help="the whole status takes at most this long (default 20)")
    p.add_argument("--cert-warn-days", type=float, default=21.0, metavar="DAYS",
                   help="WARNING when a certificate expires within DAYS (default 21)")
    p.add_argument("--cert-crit-days", type=float, default=7.0, metavar="DAYS",
                   help="CRITICAL when a certificate expires within DAYS (default 7)")
    p.add_argument("--dns", action="store_true", help="also look the certificate's names up "
                   "in DNS (off by default: status stays cheap)")
    p.add_argument("--dns-server", metavar="HOST[:PORT]", help="DNS resolver for --dns")
    add_log_format(p)
    p.set_defaults(run=run)


def _check_args(args: argparse.Namespace) -> None:
    from pathlib import Path
    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if not 0 <= args.cert_crit_days <= args.cert_warn_days:
        raise UsageError("--cert-crit-days must be between 0 and --cert-warn-days")
    if args.textfile:
        if args.format != "prometheus":
            raise UsageError("--textfile needs --format prometheus")
        if not args.textfile.endswith(".prom"):
            raise UsageError(f"--textfile {args.textfile}: node_exporter's textfile collector "
                             "reads only files ending in .prom")
        if not Path(args.textfile).parent.is_dir():
            raise UsageError(f"--textfile {args.textfile}: the folder "
                             f"{Path(args.textfile).parent} does not exist")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path
    from .. import log
    from ..status.gather import Gatherer, StatusOptions
    from ..status.report import STATE_NAMES, Report, nagios, registry, text, worst
    from ..settings import load
    from ..address import parse_dns_server
    if args.json:
        args.format = "json"
    _check_args(args)
    warn, crit = args.cert_warn_days, args.cert_crit_days
    try:
        settings = load(args.config)
        opts = StatusOptions(
            asterisk_dir=Path(args.asterisk_dir or settings.asterisk_dir),
            timeout=args.timeout, dns=args.dns,
            dns_server=parse_dns_server(args.dns_server) if args.dns_server else None)
        report = Gatherer(settings, opts).run()
    except PbxBridgeError as exc:  # no settings: still a status, of a host we cannot check
        if args.format == "text":
            raise
        import time
        report = Report(time.time(), errors={"settings": str(exc)})
    problems = report.problems(warn, crit)
    state = worst(problems)
    if args.format == "nagios":
        line, code = nagios(report, problems, warn, crit)
        sys.stdout.write(line + "\n")
        return code
    if args.format == "json":
        import json
        sys.stdout.write(json.dumps(report.to_json(problems), indent=2) + "\n")
        return 0 if state == 0 else 1
    if args.format == "prometheus":
        reg = registry(report)
        if args.textfile:
            from prometheus_client import write_to_textfile
            try:
                write_to_textfile(args.textfile, reg)
            except OSError as exc:
                raise UsageError(f"--textfile {args.textfile}: cannot write: "
                                 f"{exc.strerror or exc}") from None
            if state != 0:
                log.event("status", "warning", f"status {STATE_NAMES[state]}: " +
                          "; ".join(m for _, m in problems[:3]), state=STATE_NAMES[state],
                          textfile=args.textfile)
        else:
            from prometheus_client import generate_latest
            sys.stdout.write(generate_latest(reg).decode())
        return 0
    sys.stdout.write(text(report, problems) + "\n")
    return 0 if state == 0 else 1
