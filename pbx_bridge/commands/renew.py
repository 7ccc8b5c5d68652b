"""``pbx-bridge renew-hook``: certbot's ``--deploy-hook``. Installs a renewed certificate into
the files the TLS transport names, makes Asterisk serve it, checks over TLS that it does, then
sends the new chain to the Amazon trunk when it changed. Idempotent; on failure the old files
come back and Asterisk serves them again.

Asterisk 22 reloads a TLS transport's certificate on ``module reload res_pjsip.so`` when the
*paths* are unchanged and the files are newer (seen on 22.10.1); a transport whose path was
changed since Asterisk started keeps its old certificate until a restart, which ``--restart``
does (``core restart gracefully``: calls in progress finish first).
"""

from __future__ import annotations

import argparse
import os
import time

from .. import log
from ..errors import InputError, PbxBridgeError, UsageError
from .common import add_asterisk_dir, add_log_format, add_settings_args, emit, writes_state

from . import HELPS
from ..renew.lineage import Renewal, check_lineage, read_lineage
from ..renew.served import restart, served, verdict

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and pathlib load only for the type checker (fast --help)
    from typing import Any
    from pathlib import Path

    from ..asterisk.cli import Asterisk
    from ..generate.verify import Verdict
    from ..preflight.snapshot import Snapshot
    from ..settings import Settings

HELP = HELPS["renew-hook"]


class RenewFailed(PbxBridgeError):
    pass


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


def _update_amazon(args: argparse.Namespace, settings: "Settings", renewal: Renewal
                   ) -> tuple[str, bool]:
    """(what happened, whether the chain was sent). Sends it only when Amazon holds another
    one."""
    from ..amazon.models import TrunkSpec
    from ..state import State
    from ..certs import same_chain
    from .common import context
    tid = State(settings.state_dir).trunk_id
    if tid is None:
        return "no trunk saved in the state dir; Amazon not updated", False
    ctx = context(args)
    trunk = ctx.api.get_trunk(tid)
    if same_chain(trunk.certificate_chain, renewal.chain):
        return f"trunk {tid} already holds this chain", False
    # the whole trunk, as Amazon holds it with the new chain: PUT replaces it
    ctx.api.update_trunk(tid, TrunkSpec(trunk.name or "", renewal.chain, trunk.peers))
    return f"trunk {tid}: new certificate chain sent to Amazon", True


@writes_state("renew-hook")
def run(args: argparse.Namespace) -> int:
    from ..settings import load
    lineage = args.lineage or os.environ.get("RENEWED_LINEAGE")
    if not lineage:
        raise UsageError("no lineage: pass --lineage DIR (certbot sets RENEWED_LINEAGE for "
                         "its deploy hooks)")
    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    from ..settings import absolute
    lineage = absolute(lineage)
    renewal = read_lineage(lineage)
    settings = load(args.config)
    from pathlib import Path
    from ..preflight.snapshot import Options, gather
    from ..state import State
    state = State(settings.state_dir)
    asterisk_dir = Path(args.asterisk_dir or settings.asterisk_dir)
    snap = gather(Options(asterisk_dir=asterisk_dir, firewall=False, dns=False))
    saved = state.read().get("trunk")
    check_lineage(snap, renewal, lineage, str(saved["name"]) if isinstance(saved, dict) and
                  isinstance(saved.get("name"), str) and saved["name"] else None)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:  # intent first: a run killed from here on leaves the renewal remembered
        state.remember_renewal(str(lineage), renewal.not_after, "renew-hook was interrupted "
                               "before it finished", stamp)
    except PbxBridgeError:
        pass  # the failure, if it comes, says what it can
    try:
        code = _install(args, settings, lineage, renewal, snap)
    except RenewFailed as exc:
        # certbot calls a deploy hook once per renewal: remember this one, so that status
        # says it waits and how to finish it
        try:
            state.remember_renewal(str(lineage), renewal.not_after, str(exc), stamp)
            note = "status reports it"
        except PbxBridgeError:
            note = "it could not be recorded in the state dir"
        raise RenewFailed(f"{exc}; the renewal is not installed ({note}): run 'pbx-bridge "
                          f"renew-hook --lineage {lineage}' once Asterisk is up and "
                          "Amazon answers") from None
    state.forget_renewal()
    return code


def _install(args: argparse.Namespace, settings: "Settings", lineage: "Path",
             renewal: Renewal, snap: "Snapshot") -> int:
    from pathlib import Path
    from ..generate.plan import FileChange
    from ..preflight.snapshot import Unknown
    from ..generate.transaction import open_transaction
    asterisk_dir = snap.options.asterisk_dir
    t = snap.transport
    if t is None or isinstance(snap.cert, Unknown) or snap.cert.key_path is None:
        why = snap.cert.reason if isinstance(snap.cert, Unknown) else \
            "the TLS transport names no priv_key_file"
        raise RenewFailed(f"nowhere to install the certificate: {why} (in {asterisk_dir})")
    cert_path, key_path = Path(snap.cert.path), Path(snap.cert.key_path)
    if cert_path == key_path:
        raise RenewFailed(f"cert_file and priv_key_file are the same file ({cert_path}); "
                          "give the key a file of its own")
    host = t.connect_host

    def current(p: Path) -> bytes | None:
        try:
            return p.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InputError(str(p), f"cannot read: {exc.strerror or exc}") from None

    todo = tuple(FileChange(p, old, new, private=p == key_path)
                 for p, new in ((cert_path, renewal.chain_pem), (key_path, renewal.key_pem))
                 if (old := current(p)) != new)
    files = ", ".join(str(c.path) for c in todo)
    txn = open_transaction(settings, asterisk_dir, "renew-hook")
    asterisk = txn.asterisk
    steps: list[str] = []
    backup = False  # whether this run backed up (and replaced) the old files

    def check(a: "Asterisk", lines: Any) -> "Verdict":
        return verdict(host, t.port, renewal.leaf_der)

    if todo:
        if asterisk.unavailable() is not None:
            raise RenewFailed(f"{asterisk.unavailable()}: the certificate was not installed "
                              "(Asterisk must serve it)")
        from ..generate.transaction import ApplyFailed, RestartNeeded, key_group_warning
        warning = key_group_warning(settings.key_group, todo)
        if warning:
            log.event("renew", message=warning[len("warning: "):], level="warning")
        try:
            outcome = txn.apply(todo, True, check)
            backup = True
            steps.append(f"installed {files} (backup "
                         f"{outcome.backup.name}); {outcome.reload_note}")
        except ApplyFailed as exc:
            raise RenewFailed(f"{exc}; the old certificate is served again") from None
        except RestartNeeded:
            if not args.restart:
                raise RenewFailed(
                    f"installed {files}, but Asterisk still "
                    f"serves the old certificate on {host}:{t.port} after a reload: restart it "
                    "(asterisk -rx 'core restart gracefully', or renew-hook --restart), then "
                    "run renew-hook again to update Amazon") from None
            if not restart(asterisk, host, t.port, renewal.leaf_der, args.timeout):
                raise RenewFailed(f"Asterisk restarted but does not serve the new "
                                  f"certificate on {host}:{t.port}") from None
            steps.append(f"installed {files}; Asterisk "
                         "restarted and serves it")
            backup = True
    else:
        serving = served(host, t.port)
        if serving != renewal.leaf_der:  # installed earlier but never loaded
            errors = asterisk.reload() if asterisk.unavailable() is None else \
                [str(asterisk.unavailable())]
            v = verdict(host, t.port, renewal.leaf_der)
            if errors or not v.ok:
                if v.restart_needed and args.restart and \
                        restart(asterisk, host, t.port, renewal.leaf_der, args.timeout):
                    steps.append("Asterisk restarted and serves the new certificate")
                else:
                    raise RenewFailed(f"the files already hold the new certificate, but "
                                      f"{v.summary}" + (f" ({'; '.join(errors)})" if errors
                                                         else "") +
                                      ("; restart Asterisk or pass --restart"
                                       if v.restart_needed else ""))
            else:
                steps.append("files already current; Asterisk reloaded and serves them")
    try:
        note, sent = _update_amazon(args, settings, renewal)
    except PbxBridgeError as exc:
        if not backup:  # nothing of ours to undo: Asterisk served this before
            raise RenewFailed(f"Amazon not updated: {exc}; run renew-hook again") from None
        # this run's backup only (never a step further back)
        txn.rollback(reload=True, to=txn.last_backup.name if txn.last_backup else None)
        raise RenewFailed(f"Amazon not updated ({exc}); the old certificate files were "
                          "restored and Asterisk reloaded; run renew-hook again once Amazon "
                          "answers") from None
    changed = bool(steps) or sent
    steps.append(note)
    if changed:
        for s in steps:
            log.event("renew", message=s, lineage=str(lineage))
    emit(args, {"installed": [str(c.path) for c in todo], "steps": steps,
                "notAfter": renewal.not_after, "changed": changed},
         f"renewed: Asterisk serves the certificate valid until {renewal.not_after}; {note}"
         if changed else f"nothing to do: Asterisk serves the certificate valid until "
         f"{renewal.not_after}; {note}")
    return 0
