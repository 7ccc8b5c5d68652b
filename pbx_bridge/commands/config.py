"""``pbx-bridge config init``: write a commented settings file (mode 0600) to start from."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import UsageError

from . import HELPS


HELP = HELPS["config"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("config", help=HELP, description=HELP + ".")
    p.add_argument("action", choices=("init",), help="init: write the file")
    p.add_argument("--config", metavar="FILE", help="where (default: $PBX_BRIDGE_CONFIG or "
                   "/etc/pbx-bridge/pbx-bridge.toml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path
    from ..settings import DEFAULT_CONFIG, write_template
    target = Path(args.config or os.environ.get("PBX_BRIDGE_CONFIG") or DEFAULT_CONFIG)
    if target.is_dir():
        raise UsageError(f"{target} is a directory; name a file")
    write_template(target, force=args.force)
    sys.stdout.write(f"wrote {target} (mode 0600); fill in client_id and client_secret\n")
    return 0
