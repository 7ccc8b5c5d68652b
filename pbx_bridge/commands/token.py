"""``pbx-bridge token``: prove the credentials work (prints scope and expiry, never the token)."""

from __future__ import annotations

import argparse
import time

from .common import add_settings_args, context, emit

from . import HELPS

HELP = HELPS["token"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("token", help=HELP, description=HELP + ". The token itself is never "
                       "shown; it is cached (mode 0600) in the state dir.")
    add_settings_args(p)
    p.add_argument("--refresh", action="store_true", help="ignore the cached token")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    ctx = context(args)
    _, info = ctx.tokens.get(force=args.refresh)
    left = int(info.expires_at - ctx.clock.now())
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.expires_at))
    grant = "refresh_token" if ctx.settings.refresh_token else "client_credentials"
    emit(args, {"ok": True, "scope": info.scope, "expires_at": when, "expires_in": left,
                "grant": grant, "token_url": ctx.settings.token_url},
         f"credentials work ({grant} grant): scope {info.scope}, expires {when} "
         f"(in {left // 60} min)")
    return 0
