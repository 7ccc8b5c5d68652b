"""``pbx-bridge agi ROUTE`` (process AGI) and ``pbx-bridge fastagi`` (the FastAGI server).

Neither needs credentials: they read only the local mapping table in the state dir, so they
run as the asterisk user without access to the settings file's secrets.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # process AGI runs on every call: this module imports almost nothing
    import argparse

from . import HELPS

HELP_AGI = HELPS["agi"]
HELP_FAST = HELPS["fastagi"]


def add_parsers(sub: "argparse._SubParsersAction") -> None:  # type: ignore[type-arg]
    a = sub.add_parser("agi", help=HELP_AGI, description=HELP_AGI + ". Routes: alexa-route "
                       "(sets ALEXA_MAPPED, ALEXA_ROOM, ALEXA_DIAL), alexa-caller (sets "
                       "ALEXA_ROOM and the caller name).")
    a.add_argument("route", metavar="ROUTE")
    a.add_argument("args", nargs="*", metavar="ARG", default=[])
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


def agi_fast(argv: list[str]) -> int | None:
    """``agi ROUTE [ARG ...] [--state-dir DIR] [--timeout S]`` without argparse (process AGI
    starts on every call). None: anything else, for the full parser to handle or refuse."""
    route = None
    args: list[str] = []
    state: str | None = None
    timeout = 5.0
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in ("--state-dir", "--timeout") and i + 1 < len(argv):
            value = argv[i + 1]
            i += 2
        elif word.startswith(("--state-dir=", "--timeout=")):
            word, value = word.split("=", 1)
            i += 1
        elif word.startswith("-") and word != "-":
            return None  # --help, a typo: the full parser answers
        else:
            if route is None:
                route = word
            else:
                args.append(word)
            i += 1
            continue
        if word == "--state-dir":
            state = value
        else:
            try:
                timeout = float(value)
            except ValueError:
                return None
    if route is None:
        return None
    return _agi(route, args, state, timeout)


def run_agi(args: "argparse.Namespace") -> int:
    return _agi(args.route, list(args.args), args.state_dir, args.timeout)


def _agi(route: str, words: list[str], state: str | None, timeout: float) -> int:
    from ..agi.session import FdChannel, TableSource, converse
    from ..agi.where import state_dir as agi_state_dir

    def log(line: str) -> None:
        sys.stderr.write(f"pbx-bridge agi: {line}\n")
        sys.stderr.flush()

    ch = FdChannel(sys.stdin.buffer, sys.stdout.buffer, timeout)
    converse(ch, route, words, TableSource(*agi_state_dir(state)), log)
    return 0  # the call goes on whatever happened; the log line says what


def run_fastagi(args: "argparse.Namespace") -> int:
    import ipaddress
    from pathlib import Path

    from ..agi.fastagi import FastAgiServer
    from ..errors import UsageError
    from ..address import parse_listen
    host, port = parse_listen(args.listen)
    try:
        allow = [ipaddress.ip_network(c, strict=False)
                 for c in (args.allow or ["127.0.0.0/8", "::1/128"])]
    except ValueError as exc:
        raise UsageError(f"--allow: {exc}") from None
    try:
        from ..agi.where import state_dir as agi_state_dir
        where, note = agi_state_dir(args.state_dir)
        if note:
            sys.stderr.write(f"pbx-bridge fastagi: {note}\n")
        server = FastAgiServer((host, port), Path(where), allow, args.timeout)
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
