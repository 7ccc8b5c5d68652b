"""``pbx-bridge agi ROUTE`` (process AGI) and ``pbx-bridge fastagi`` (the FastAGI server).

Neither needs credentials: they read only the local mapping table in the state dir, so they
run as the asterisk user without access to the settings file's secrets.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from ..errors import PbxBridgeError, UsageError
from ..settings import DEFAULT_STATE_DIR, absolute
from .common import parse_listen

HELP_AGI = "process AGI for the dialplan: AGI(pbx-bridge,agi,ROUTE,${EXTEN})"
HELP_FAST = "FastAGI server for the dialplan: AGI(agi://127.0.0.1:4573/ROUTE,${EXTEN})"


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    a = sub.add_parser("agi", help=HELP_AGI, description=HELP_AGI + ". Routes: alexa-route "
                       "(sets ALEXA_MAPPED, ALEXA_ROOM, ALEXA_DIAL), alexa-caller (sets "
                       "ALEXA_ROOM and the caller name).")
    a.add_argument("route", metavar="ROUTE")
    a.add_argument("args", nargs="*", metavar="ARG")
    a.add_argument("--state-dir", metavar="DIR", help="default: $PBX_BRIDGE_STATE_DIR, the "
                   "settings file's, or /var/lib/pbx-bridge")
    a.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for each line from Asterisk")
    a.set_defaults(run=run_agi)
    f = sub.add_parser("fastagi", help=HELP_FAST, description=HELP_FAST + ".")
    f.add_argument("--listen", default="127.0.0.1:4573", metavar="HOST:PORT",
                   help="address to listen on (port 0: any free port)")
    f.add_argument("--allow", action="append", metavar="CIDR", help="clients allowed "
                   "(default: loopback only; may repeat)")
    f.add_argument("--state-dir", metavar="DIR", help="where routes.json is (default: "
                   "$PBX_BRIDGE_STATE_DIR, the settings file's, or /var/lib/pbx-bridge)")
    f.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for each line from Asterisk")
    f.set_defaults(run=run_fastagi)


def state_dir(explicit: str | None) -> Path:
    if explicit:
        return absolute(explicit)
    if os.environ.get("PBX_BRIDGE_STATE_DIR"):
        return absolute(os.environ["PBX_BRIDGE_STATE_DIR"])
    try:
        from ..settings import load
        return load(None).state_dir
    except PbxBridgeError:  # e.g. a settings file the asterisk user may not read
        return DEFAULT_STATE_DIR


def run_agi(args: argparse.Namespace) -> int:
    from ..agi.session import FdChannel, TableSource, converse

    def log(line: str) -> None:
        sys.stderr.write(f"pbx-bridge agi: {line}\n")
        sys.stderr.flush()

    ch = FdChannel(sys.stdin.buffer, sys.stdout.buffer, args.timeout)
    converse(ch, args.route, list(args.args), TableSource(state_dir(args.state_dir)), log)
    return 0  # the call goes on whatever happened; the log line says what


def run_fastagi(args: argparse.Namespace) -> int:
    from ..agi.fastagi import FastAgiServer
    host, port = parse_listen(args.listen)
    try:
        allow = [ipaddress.ip_network(c, strict=False)
                 for c in (args.allow or ["127.0.0.0/8", "::1/128"])]
    except ValueError as exc:
        raise UsageError(f"--allow: {exc}") from None
    try:
        server = FastAgiServer((host, port), state_dir(args.state_dir), allow, args.timeout)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    sys.stderr.write(f"pbx-bridge fastagi listening on {host}:{server.server_address[1]} "
                     f"(allow {', '.join(map(str, allow))})\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
