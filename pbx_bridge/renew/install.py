"""Installing a renewed certificate: into the files the TLS transport names, served by
Asterisk (reloaded, or restarted when allowed), then its chain sent to Amazon; on failure the
old files come back and the renewal is remembered for ``status`` and the next run.

Asterisk 22 reloads a TLS transport's certificate on ``module reload res_pjsip.so`` when the
*paths* are unchanged and the files are newer (seen on 22.10.1); a transport whose path was
changed since Asterisk started keeps its old certificate until a restart (``core restart
gracefully``: calls in progress finish first).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from .. import log
from ..errors import InputError, PbxBridgeError
from .lineage import Renewal
from .served import restart, served, verdict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from ..amazon.client import PbxApi
    from ..asterisk.cli import Asterisk
    from ..generate.verify import Verdict
    from ..preflight.snapshot import Snapshot
    from ..settings import Settings


class RenewFailed(PbxBridgeError):
    pass


@dataclass(frozen=True)
class Installed:
    installed: tuple[str, ...]  # the files written
    steps: list[str]  # what was done, in order; the last says what Amazon got
    note: str  # what Amazon got
    changed: bool


def install(settings: "Settings", lineage: "Path", renewal: Renewal, snap: "Snapshot",
            may_restart: bool, timeout: float, api: "Callable[[], PbxApi]") -> Installed:
    """Install the renewal, remembering it in the state dir until it is done (intent first: a
    run killed at any point leaves it remembered, and ``status`` says how to finish it)."""
    from ..state import State
    state = State(settings.state_dir)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:  # intent first: a run killed from here on leaves the renewal remembered
        state.remember_renewal(str(lineage), renewal.not_after, "renew-hook was interrupted "
                               "before it finished", stamp)
    except PbxBridgeError:
        pass  # the failure, if it comes, says what it can
    try:
        done = _install(settings, lineage, renewal, snap, may_restart, timeout, api)
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
    return done


def _update_amazon(settings: "Settings", renewal: Renewal, api: "Callable[[], PbxApi]"
                   ) -> tuple[str, bool]:
    """(what happened, whether the chain was sent). Sends it only when Amazon holds another
    one."""
    from ..state import State
    from ..trunk.lifecycle import send_chain
    tid = State(settings.state_dir).trunk_id
    if tid is None:
        return "no trunk saved in the state dir; Amazon not updated", False
    return send_chain(api(), tid, renewal.chain, "new certificate chain")


def _install(settings: "Settings", lineage: "Path", renewal: Renewal, snap: "Snapshot",
             may_restart: bool, timeout: float, api: "Callable[[], PbxApi]") -> Installed:
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
            if not may_restart:
                raise RenewFailed(
                    f"installed {files}, but Asterisk still "
                    f"serves the old certificate on {host}:{t.port} after a reload: restart it "
                    "(asterisk -rx 'core restart gracefully', or renew-hook --restart), then "
                    "run renew-hook again to update Amazon") from None
            if not restart(asterisk, host, t.port, renewal.leaf_der, timeout):
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
                if v.restart_needed and may_restart and \
                        restart(asterisk, host, t.port, renewal.leaf_der, timeout):
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
        note, sent = _update_amazon(settings, renewal, api)
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
    return Installed(tuple(str(c.path) for c in todo), steps, note, changed)
