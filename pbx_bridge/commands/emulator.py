"""``pbx-bridge emulator``: run the local Amazon emulator (token endpoint + PBX API)."""

from __future__ import annotations

import argparse
import sys

from ..errors import InputError, UsageError
from ..address import parse_listen

from . import HELPS


HELP = HELPS["emulator"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("emulator", help=HELP, description=HELP + ".")
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                   help="address (default 127.0.0.1:8080; loopback unless told otherwise)")
    p.add_argument("--client-id", default="emulator-client",
                   help="the client id the token endpoint accepts")
    p.add_argument("--client-secret", default="emulator-secret",
                   help="the client secret the token endpoint accepts")
    p.add_argument("--refresh-token", action="append", default=[], metavar="TOKEN",
                   help="accept this refresh token (may repeat)")
    p.add_argument("--token-ttl", type=float, default=3600.0, metavar="S",
                   help="seconds an access token stays valid")
    p.add_argument("--activate-after", type=float, default=10.0, metavar="S",
                   help="seconds a new trunk stays PENDING (Amazon: about 600)")
    p.add_argument("--fail-name", action="append", default=[], metavar="NAME",
                   help="trunks with this TLS name end FAILED (may repeat)")
    p.add_argument("--throttle-rate", type=float, default=0.0, metavar="R",
                   help="share of requests answered 429 with Retry-After (0..1)")
    p.add_argument("--retry-after", type=int, default=1, metavar="S",
                   help="the Retry-After seconds a throttled answer carries")
    p.add_argument("--error-rate", type=float, default=0.0, metavar="R",
                   help="share of requests answered 500 or 503 (0..1)")
    p.add_argument("--cut-rate", type=float, default=0.0, metavar="R",
                   help="share of requests whose connection is cut, before or after the "
                        "work is done (0..1)")
    p.add_argument("--latency-ms", type=float, default=0.0, metavar="MS",
                   help="delay added to every answer")
    p.add_argument("--max-extension-length", type=int, default=15, metavar="N",
                   help="longest extension a mapping may have (longer: 400 InvalidInput)")
    p.add_argument("--seed", type=int, help="seed for fault injection")
    p.add_argument("--state", metavar="FILE", help="keep state in this JSON file "
                   "(default: in memory)")
    p.add_argument("--rooms", metavar="FILE", help="JSON rooms for the unit/profile look-ups: "
                   '{"properties": {PROPERTY_ID: [{"id": UNIT_ID, "name": "Room 101"}]}}')
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path
    from ..amazon.emulator import EmulatorConfig, load_rooms, load_state, serve_forever
    host, port = parse_listen(args.listen)
    for name in ("throttle_rate", "error_rate", "cut_rate"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 1")
    if args.throttle_rate + args.error_rate + args.cut_rate > 1.0:
        raise UsageError("the fault rates add up to more than 1")
    for flag, value, low in (("--latency-ms", args.latency_ms, 0.0),
                             ("--activate-after", args.activate_after, 0.0),
                             ("--retry-after", args.retry_after, 0.0)):
        if value < low:
            raise UsageError(f"{flag} must not be negative")
    if args.token_ttl <= 0:
        raise UsageError("--token-ttl must be positive")
    if not 1 <= args.max_extension_length <= 32:
        raise UsageError("--max-extension-length must be 1..32")
    rooms = Path(args.rooms) if args.rooms else None
    if rooms is not None:
        try:
            load_rooms(rooms)
        except (OSError, ValueError) as exc:
            raise InputError(str(rooms), f"cannot use as rooms file: {exc}") from None
    state = Path(args.state) if args.state else None
    if state is not None and state.exists():
        try:
            load_state(state)
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise InputError(str(state), f"cannot use as emulator state: {why} (move it "
                             "away to start empty)") from None
    config = EmulatorConfig(
        client_id=args.client_id, client_secret=args.client_secret,
        refresh_tokens=tuple(args.refresh_token), token_ttl=args.token_ttl,
        activate_after=args.activate_after, fail_names=tuple(args.fail_name),
        throttle_rate=args.throttle_rate, error_rate=args.error_rate, cut_rate=args.cut_rate,
        latency_ms=args.latency_ms, retry_after=args.retry_after,
        max_extension_length=args.max_extension_length, seed=args.seed,
        state_file=state, rooms_file=rooms,
        log=sys.stderr)

    def announce(line: str) -> None:
        url = line.rsplit(" ", 1)[-1]
        sys.stderr.write(f"{line}\nIn another terminal:\n"
                         f"  export PBX_BRIDGE_API_URL={url} "
                         f"PBX_BRIDGE_TOKEN_URL={url}/auth/o2/token\n"
                         f"  export PBX_BRIDGE_CLIENT_ID={args.client_id} "
                         "PBX_BRIDGE_CLIENT_SECRET=... (the --client-secret)\n")
        sys.stderr.flush()

    try:
        serve_forever(config, host, port, announce)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    return 0
