"""What the Amazon-facing commands share: settings, the client, output."""

from __future__ import annotations

import argparse
import functools
import os
import sys


TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and pathlib load only for the type checker (fast --help)
    from typing import Any, Callable
    from ..amazon.client import PbxApi
    from ..amazon.token import TokenProvider
    from ..host import Clock
    from ..settings import Settings
    from ..state import State


def subcommands(p: argparse.ArgumentParser, dest: str) -> "argparse._SubParsersAction[Any]":
    """The ACTION level of a two-word command (``trunk create``, ``rooms plan``)."""
    return p.add_subparsers(dest=dest, metavar="ACTION", required=True,
                            parser_class=type(p))


def writes_state(name: str) -> Callable[[Callable[[argparse.Namespace], int]],
                                         Callable[[argparse.Namespace], int]]:
    """A command that changes the state dir (or Amazon's side of it): one at a time."""
    def wrap(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(fn)
        def run(args: argparse.Namespace) -> int:
            from ..settings import load
            from ..statedir import exclusive
            if getattr(args, "dry_run", False):  # changes nothing: no lock (no lock file)
                return fn(args)
            with exclusive(load(args.config).state_dir, name):
                return fn(args)
        return run
    return wrap


def add_asterisk_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--asterisk-dir", metavar="DIR", help="Asterisk config directory "
                   "(default: [pbx] asterisk_dir of the settings, /etc/asterisk)")


def add_log_format(p: argparse.ArgumentParser) -> None:
    """``--log-format`` after the command too (as the systemd units give it); the top-level
    option's value stands when it is not given here."""
    p.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS,
                   help="how log lines on standard error look (default text)")


def add_settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="settings file (default: "
                   "$PBX_BRIDGE_CONFIG or /etc/pbx-bridge/pbx-bridge.toml)")
    p.add_argument("--json", action="store_true", help="print JSON")


class Context:
    """What an Amazon-facing command works with."""

    def __init__(self, settings: "Settings", tokens: "TokenProvider", api: "PbxApi",
                 state: "State", clock: "Clock") -> None:
        self.settings = settings
        self.tokens = tokens
        self.api = api
        self.state = state
        self.clock = clock


def context(args: argparse.Namespace, clock: "Clock | None" = None) -> Context:
    from ..host import Clock
    from ..settings import load
    from ..state import State
    from ..amazon.client import PbxApi
    from ..amazon.http import Http
    from ..amazon.token import TokenProvider
    settings = load(args.config)
    clock = clock or Clock()
    http = Http(settings.timeout)
    # PBX_BRIDGE_TOKEN_CACHE=read-only (Ansible's check mode): a dry run writes no file
    tokens = TokenProvider(settings, http, clock, save_cache=os.environ.get(
        "PBX_BRIDGE_TOKEN_CACHE", "") != "read-only")
    api = PbxApi(settings.api_url, http, tokens, clock)
    return Context(settings, tokens, api, State(settings.state_dir), clock)


def emit(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    """A command's result: JSON with ``--json``; as a log event with ``--log-format json``
    (every line in the journal is then JSON); else the sentence."""
    from .. import log
    if getattr(args, "json", False):
        import json
        json.dump(doc, sys.stdout, indent=2)  # written as it is encoded, never whole
        sys.stdout.write("\n")
    elif log.current() == "json":
        name = " ".join(str(getattr(args, k)) for k in ("command", "trunk_command",
                                                         "rooms_command") if getattr(args, k, None))
        fields: dict[str, Any] = {k: v for k, v in doc.items() if isinstance(
            v, (str, int, float, bool)) and k not in ("name", "level", "message", "stream")}
        log.event(name or "result", message=text, stream=sys.stdout, **fields)
    else:
        sys.stdout.write(text + "\n")
