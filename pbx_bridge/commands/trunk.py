"""``pbx-bridge trunk create|show|list|update|delete``: the Amazon SIP trunk of this PBX.

Values not given on the command line come from the Asterisk config (the TLS transport's
certificate chain, name, external address and port), through the preflight's snapshot.
"""

from __future__ import annotations

import argparse
import re
import sys

from ..errors import InputError, UsageError
from .common import (Context, add_asterisk_dir, add_settings_args, context, emit, subcommands,
                     writes_state)

from ..trunk.lifecycle import TrunkFailed, create_or_adopt
from ..trunk.local import (LocalTrunk, blocking, changes, check_name, from_snapshot,
                           gate_findings, not_public, read_chain, view)
from . import HELPS

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing loads only for the type checker (fast --help)
    from typing import Any
    from ..amazon.models import Peer, Trunk, TrunkSpec
    from ..findings import Finding
    from ..preflight.snapshot import Snapshot

HELP = HELPS["trunk"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("trunk", help=HELP, description=HELP + ".")
    tsub = subcommands(p, "trunk_command")

    def spec_args(q: argparse.ArgumentParser) -> None:
        add_settings_args(q)
        add_asterisk_dir(q)
        q.add_argument("--fqdn", metavar="NAME", help="TLS name (default: the certificate's "
                       "first SAN, else its CN)")
        q.add_argument("--cert-chain", metavar="FILE", help="PEM chain, leaf first (default: "
                       "the TLS transport's cert_file)")
        q.add_argument("--peer", action="append", metavar="HOST:PORT", help="public IP (or "
                       "FQDN) and TLS port Amazon connects to; may repeat (default: the "
                       "transport's external address and port)")
        q.add_argument("--public-ip", metavar="IP", help="as in preflight")
        q.add_argument("--dns-server", metavar="HOST[:PORT]", help="as in preflight")
        q.add_argument("--skip-preflight", action="store_true",
                       help="do not refuse when preflight checks fail")
        q.add_argument("--wait", action="store_true", help="wait until the trunk is ACTIVE")
        q.add_argument("--timeout", type=float, metavar="S",
                       help="how long --wait waits (default 900)")
        q.add_argument("--dry-run", action="store_true", help="send nothing, save nothing: "
                       "say what would be done (with --json: the trunk Amazon holds and the "
                       "one this PBX wants, for Ansible's check mode and --diff)")

    def action(name: str, help_: str, run: Any, spec: bool = False, takes_id: bool = True
               ) -> argparse.ArgumentParser:
        q: argparse.ArgumentParser = tsub.add_parser(name, help=help_,
                                                      description=help_ + ".")
        if spec:
            spec_args(q)
        else:
            add_settings_args(q)
        if takes_id:
            q.add_argument("trunk_id", nargs="?", metavar="TRUNK_ID",
                           help="default: the trunk saved by 'trunk create'")
        q.set_defaults(run=run)
        return q

    action("create", "create the trunk (or adopt an identical one)", run_create, spec=True,
           takes_id=False)
    u = action("update", "send what changed to the trunk", run_update, spec=True)
    u.add_argument("--create", action="store_true", help="with no trunk saved, or the saved "
                   "one gone at Amazon: create it (or adopt an identical one) as 'trunk "
                   "create' does, so one command keeps the trunk as this PBX wants it")
    action("show", "show one trunk", run_show)
    action("list", "list every trunk of this account", run_list, takes_id=False)
    d = action("delete", "delete the trunk", run_delete)
    d.add_argument("--yes", action="store_true", help="really delete")
    d.add_argument("--force", action="store_true", help="delete even while extensions are "
                   "mapped to it; forget a trunk already gone at Amazon")
    d.add_argument("--dry-run", action="store_true", help="check as the delete would "
                   "(refusing as it would) and say what it would do; nothing sent or changed")


# ---------------------------------------------------------------- building the spec

def _peer(text: str) -> "Peer":
    import ipaddress

    from ..amazon.models import Peer
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise UsageError(f"--peer {text}: expected HOST:PORT with a port 1..65535")
    try:
        ipaddress.IPv4Address(host)
        return Peer(host, int(port), True)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", host):
            raise UsageError(f"--peer {text}: {host!r} is neither an IPv4 address nor a "
                             "host name") from None
        return Peer(host, int(port), False)


def _needs_config(args: argparse.Namespace) -> bool:
    return not (args.fqdn and args.cert_chain and args.peer)


def desired(args: argparse.Namespace, ctx: Context) -> tuple["TrunkSpec", list["Finding"]]:
    """The trunk this PBX should have, and the gate's findings (empty without config)."""
    from pathlib import Path
    from ..amazon.models import TrunkSpec
    from ..preflight.checks import run_checks
    from ..address import parse_dns_server
    from ..preflight.snapshot import Options, gather
    snap: Snapshot | None = None
    findings: list[Finding] = []
    explicit_peers = tuple(_peer(p) for p in args.peer or ())  # flags first: fail fast
    if len({p.is_ip for p in explicit_peers}) > 1:
        raise UsageError("--peer values must be all IP addresses or all host names")
    if _needs_config(args):
        opts = Options(asterisk_dir=Path(args.asterisk_dir or ctx.settings.asterisk_dir),
                       public_ip=args.public_ip, fqdn=args.fqdn, firewall=False,
                       dns=False,
                       dns_server=parse_dns_server(args.dns_server) if args.dns_server else None)
        snap = gather(opts)
        findings = gate_findings(run_checks(snap))
    local = from_snapshot(snap) if snap is not None else LocalTrunk((), None, ())
    missing = []
    if args.cert_chain:
        path = Path(args.cert_chain)
        try:
            chain = read_chain(path.read_bytes(), str(path))
        except OSError as exc:
            raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
    else:
        chain = local.chain
        if not chain:
            missing.append("certificate chain (--cert-chain, or cert_file on a TLS transport)")
    name = args.fqdn or local.name
    if not name:
        missing.append("TLS name (--fqdn)")
    peers = explicit_peers or local.peers
    if not peers:
        missing.append("peer (--peer IP:PORT, or a TLS transport and --public-ip)")
    if missing:
        raise UsageError("cannot tell the trunk's " + "; ".join(missing))
    assert name is not None
    check_name(name, chain, "--fqdn" if args.fqdn else "the certificate's name")
    for p in peers:
        why = not_public(p.host) if p.is_ip else None
        if why:
            raise UsageError(f"peer {p}: {why}; Amazon connects to the PBX's public address "
                             "(--peer PUBLIC_IP:PORT, or --public-ip)")
    return TrunkSpec(name, chain, peers), findings


def _gate(args: argparse.Namespace, findings: list["Finding"]) -> None:
    bad = blocking(findings)
    if bad and not args.skip_preflight:
        lines = "\n".join(f"  {f.id}: {f.summary}" + (f" ({f.where})" if f.where else "")
                          for f in bad)
        raise TrunkFailed(f"preflight checks failed (fix them, or pass --skip-preflight):\n"
                          f"{lines}")


# ---------------------------------------------------------------- waiting


def wait_active(ctx: Context, trunk_id: str, timeout: float) -> Trunk:
    """Wait for ACTIVE, showing each poll: on a terminal one line rewritten, else one log
    line per poll (for the journal)."""
    from .. import log
    from ..trunk.lifecycle import wait_active as wait
    tty = sys.stderr.isatty()

    def show(status: str, elapsed: float) -> None:
        if tty:
            log.progress(f"trunk {trunk_id}: {status} after {elapsed:.0f} s")
            if status == "ACTIVE":  # the last state stays on its line
                sys.stderr.write("\n")
                log.clear_line()
        else:
            log.event("trunk-wait", message=f"trunk {trunk_id}: {status} after "
                      f"{elapsed:.0f} s", trunk=trunk_id, status=status,
                      elapsed=round(elapsed, 1))
    return wait(ctx.api, ctx.clock, trunk_id, timeout, show)


def _wait_after_change(args: argparse.Namespace, ctx: Context, trunk_id: str,
                       done: dict[str, Any]) -> Trunk:
    """--wait after a change was sent: when the wait fails, --json still prints what was
    done (``done`` with ``error``) before the error ends the command (exit 1)."""
    from ..errors import PbxBridgeError
    try:
        return wait_active(ctx, trunk_id, args.timeout)
    except PbxBridgeError as exc:
        if args.json:
            emit(args, {**done, "trunkId": trunk_id, "error": str(exc)}, "")
        raise


# ---------------------------------------------------------------- commands

def _save(ctx: Context, trunk: Trunk) -> None:
    ctx.state.set_trunk(trunk.trunk_id, name=trunk.name, peers=[str(p) for p in trunk.peers])


def _check_timeout(args: argparse.Namespace) -> None:
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout is how long --wait waits: give --wait too")
    args.timeout = 900.0 if args.timeout is None else args.timeout
    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")


@writes_state("trunk create")
def run_create(args: argparse.Namespace) -> int:
    _check_timeout(args)
    ctx = context(args)
    spec, findings = desired(args, ctx)
    _gate(args, findings)
    return _create(args, ctx, spec)


def _create(args: argparse.Namespace, ctx: Context, spec: "TrunkSpec") -> int:
    found, action = create_or_adopt(ctx.api, ctx.state, spec, args.dry_run)
    want = view(spec.name, spec.certificate_chain, spec.peers)
    if args.dry_run:  # nothing sent, nothing saved
        had = None if found is None else view(found.name, found.certificate_chain, found.peers)
        emit(args, {"action": action, "dry_run": True, "trunkId": found and found.trunk_id,
                    "current": had, "desired": want},
             f"would have {action} a trunk for {spec.name}, peers "
             f"{', '.join(map(str, spec.peers))} (dry run: nothing sent)")
        return 0
    assert found is not None
    trunk = found
    _save(ctx, trunk)
    if args.wait:
        trunk = _wait_after_change(args, ctx, trunk.trunk_id,
                                   {"action": action, "desired": want})
    elif trunk.status is None:
        trunk = ctx.api.get_trunk(trunk.trunk_id)
    emit(args, {"action": action, "desired": want, **trunk.to_json()},
         f"{action} trunk {trunk.trunk_id} ({trunk.status}) for {spec.name}, peers "
         f"{', '.join(map(str, spec.peers))}; saved in {ctx.state.path}")
    return 0


def _trunk_id(args: argparse.Namespace, ctx: Context) -> str:
    tid: str | None = args.trunk_id or ctx.state.trunk_id
    if not tid:
        raise UsageError(f"no TRUNK_ID given and none saved in {ctx.state.path}; run "
                         "'pbx-bridge trunk create' or 'pbx-bridge trunk list'")
    return tid


def _describe(t: Trunk) -> str:
    return (f"{t.trunk_id}  {t.status or '-'}  {t.name or '-'}  "
            f"peers {', '.join(map(str, t.peers)) or '-'}  "
            f"{len(t.certificate_chain)} certificate(s)")


def run_show(args: argparse.Namespace) -> int:
    ctx = context(args)
    trunk = ctx.api.get_trunk(_trunk_id(args, ctx))
    emit(args, trunk.to_json(), _describe(trunk))
    return 0


def run_list(args: argparse.Namespace) -> int:
    ctx = context(args)
    trunks = ctx.api.list_trunks()
    saved = ctx.state.trunk_id
    lines = [("* " if t.trunk_id == saved else "  ") + _describe(t) for t in trunks]
    emit(args, {"trunks": [t.to_json() for t in trunks], "saved": saved},
         "\n".join(lines) if lines else "no trunks")
    return 0


@writes_state("trunk update")
def run_update(args: argparse.Namespace) -> int:
    from ..amazon.errors import ApiError
    _check_timeout(args)
    ctx = context(args)
    if args.create and not args.trunk_id and ctx.state.trunk_id is None:
        spec, findings = desired(args, ctx)
        _gate(args, findings)
        return _create(args, ctx, spec)  # none saved: as trunk create
    tid = _trunk_id(args, ctx)
    spec, findings = desired(args, ctx)
    _gate(args, findings)
    try:
        current = ctx.api.get_trunk(tid)
    except ApiError as exc:
        if exc.status != 404 or not args.create or args.trunk_id:
            raise
        return _create(args, ctx, spec)  # the saved one is gone at Amazon: as trunk create
    diff = changes(current, spec)
    views = {"current": view(current.name, current.certificate_chain, current.peers),
             "desired": view(spec.name, spec.certificate_chain, spec.peers)}
    if not diff:
        if args.wait and current.status != "ACTIVE" and not args.dry_run:
            current = wait_active(ctx, tid, args.timeout)
        emit(args, {"action": "unchanged", "changed": [], **views, **current.to_json()},
             f"trunk {tid} already matches this PBX; nothing sent")
        return 0
    if args.dry_run:
        emit(args, {"action": "updated", "dry_run": True, "changed": sorted(diff), **views,
                    **current.to_json()},
             f"would update trunk {tid}: {', '.join(sorted(diff))} (dry run: nothing sent)")
        return 0
    trunk = ctx.api.update_trunk(tid, spec)  # the whole trunk: PUT replaces it
    if args.wait:
        trunk = _wait_after_change(args, ctx, tid, {"action": "updated",
                                                    "changed": sorted(diff), **views})
    emit(args, {"action": "updated", "changed": sorted(diff), **views, **trunk.to_json()},
         f"updated trunk {tid}: {', '.join(sorted(diff))} ({trunk.status})")
    return 0


@writes_state("trunk delete")
def run_delete(args: argparse.Namespace) -> int:
    from ..amazon.errors import ApiError
    ctx = context(args)
    tid = _trunk_id(args, ctx)
    if not args.yes:
        raise UsageError(f"this deletes trunk {tid} at Amazon; pass --yes to go ahead")
    api = ctx.api
    gone = False  # deleted at Amazon already (by hand, or by a run that died after it)
    try:
        mapped = api.list_mappings(tid)
    except ApiError as exc:
        if exc.status != 404:
            raise
        gone, mapped = True, []
    if gone and not args.force:
        raise TrunkFailed(f"trunk {tid} is already gone at Amazon (deleted elsewhere); pass "
                          "--force to forget it here with its local mappings")
    if mapped and not args.force:
        raise TrunkFailed(f"trunk {tid} still has {len(mapped)} extension mapping(s) "
                          f"(e.g. {mapped[0].extension}); remove them or pass --force")
    if args.dry_run:
        emit(args, {"action": "forgotten" if gone else "deleted", "dry_run": True,
                    "trunkId": tid, "mappings_removed": len(mapped)},
             f"would {'forget' if gone else 'delete'} trunk {tid} and its {len(mapped)} "
             "mapping(s) (dry run: nothing sent)")
        return 0
    if not gone:
        try:
            api.delete_trunk(tid)
        except ApiError as exc:
            if exc.status != 404:
                raise
            gone = True
    # its mappings go from the local table and the published routes at once: a deleted
    # trunk must route nothing
    from ..rooms.store import Store
    store = Store(ctx.settings.state_dir)
    try:
        forgotten = store.forget_trunk(tid)
        store.publish(ctx.settings.agi_group)
    finally:
        store.close()
    if ctx.state.trunk_id == tid:
        ctx.state.set_trunk(None)
    emit(args, {"action": "forgotten" if gone else "deleted", "trunkId": tid,
                "mappings_removed": len(mapped), "local_mappings_forgotten": forgotten},
         (f"trunk {tid} was already gone at Amazon" if gone else f"deleted trunk {tid}") +
         f"; {forgotten} local mapping(s) forgotten, calls to them are no longer routed")
    return 0
