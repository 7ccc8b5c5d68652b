"""``pbx-bridge renew-hook``: certbot's ``--deploy-hook``. Installs a renewed certificate into
the files the TLS transport names, makes Asterisk serve it, checks over TLS that it does, then
sends the new chain to the Amazon trunk when it changed (:mod:`pbx_bridge.renew.install`).
Idempotent; on failure the old files come back and Asterisk serves them again. ``--restart``
restarts Asterisk when a reload does not make it serve the new certificate.
"""

from __future__ import annotations

import argparse
import os

from ..errors import UsageError
from .common import add_asterisk_dir, add_log_format, add_settings_args, emit, writes_state

from . import HELPS
from ..renew.lineage import check_lineage, read_lineage

HELP = HELPS["renew-hook"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("renew-hook", help=HELP, description=HELP + ". For certbot: "
                       "certbot renew --deploy-hook 'pbx-bridge renew-hook' (certbot sets "
                       "RENEWED_LINEAGE).")
    add_settings_args(p)
    p.add_argument("--lineage", metavar="DIR", help="the certificate's folder, holding "
                   "fullchain.pem and privkey.pem (default: $RENEWED_LINEAGE, set by certbot)")
    add_asterisk_dir(p)
    p.add_argument("--restart", action="store_true", help="restart Asterisk (gracefully) "
                   "when a reload does not make it serve the new certificate")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="how long to wait for Asterisk to serve it after a restart "
                   "(default 120)")
    add_log_format(p)
    p.set_defaults(run=run)


@writes_state("renew-hook")
def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..preflight.snapshot import Options, gather
    from ..renew.install import install
    from ..settings import absolute, load
    from ..state import State
    from .common import context
    lineage = args.lineage or os.environ.get("RENEWED_LINEAGE")
    if not lineage:
        raise UsageError("no lineage: pass --lineage DIR (certbot sets RENEWED_LINEAGE for "
                         "its deploy hooks)")
    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    lineage = absolute(lineage)
    renewal = read_lineage(lineage)
    settings = load(args.config)
    asterisk_dir = Path(args.asterisk_dir or settings.asterisk_dir)
    snap = gather(Options(asterisk_dir=asterisk_dir, firewall=False, dns=False))
    saved = State(settings.state_dir).read().get("trunk")
    check_lineage(snap, renewal, lineage, str(saved["name"]) if isinstance(saved, dict) and
                  isinstance(saved.get("name"), str) and saved["name"] else None)
    done = install(settings, lineage, renewal, snap, args.restart, args.timeout,
                   lambda: context(args).api)
    emit(args, {"installed": list(done.installed), "steps": done.steps,
                "notAfter": renewal.not_after, "changed": done.changed},
         f"renewed: Asterisk serves the certificate valid until {renewal.not_after}; "
         f"{done.note}" if done.changed else f"nothing to do: Asterisk serves the certificate "
         f"valid until {renewal.not_after}; {done.note}")
    return 0
