"""``pbx-bridge generate``: the Amazon trunk's Asterisk/FreePBX config, shown as a diff (the
default), written safely (``--write``), or undone (``--rollback``)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from ..errors import InputError, UsageError

from . import HELPS

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and pathlib load only for the type checker (fast --help)
    from typing import Union
    from pathlib import Path
    from ..preflight.media import RtpRange
    from ..preflight.snapshot import Snapshot
    from ..settings import Settings

HELP = HELPS["generate"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("generate", help=HELP, description=HELP + ". Without --write nothing "
                       "is changed.")
    p.add_argument("--config", metavar="FILE", help="settings file (for the state dir)")
    p.add_argument("--asterisk-dir", metavar="DIR", help="Asterisk config directory")
    p.add_argument("--fqdn", metavar="NAME", help="the PBX's TLS name (names the default "
                   "certificate files /etc/asterisk/keys/NAME.crt and .key)")
    p.add_argument("--cert", metavar="FILE", help="certificate chain for the TLS transport")
    p.add_argument("--key", metavar="FILE", help="its private key")
    p.add_argument("--ca-list", metavar="FILE", default="/etc/asterisk/keys/ca.crt",
                   help="CA list with Amazon's root (default /etc/asterisk/keys/ca.crt)")
    p.add_argument("--port", type=int, default=5061, help="TLS port (default 5061)")
    p.add_argument("--rtp-range", metavar="START-END", help="media ports (default: rtp.conf's, "
                   "else 10000-20000)")
    p.add_argument("--public-ip", metavar="IP", help="default: detected as in preflight")
    p.add_argument("--local-net", action="append", default=[], metavar="CIDR",
                   help="a local network (may repeat)")
    p.add_argument("--context", default="from-alexa", help="dialplan context for calls from "
                   "Alexa (default from-alexa, generated unless the dialplan has it)")
    p.add_argument("--phones-context", metavar="NAME", help="plain Asterisk: the context "
                   "where the PBX's phones are dialled, the only place calls from Alexa may go "
                   "(default: the context most phone endpoints use)")
    p.add_argument("--bind", default="0.0.0.0", metavar="IP", help="address the TLS "
                   "transport listens on (default 0.0.0.0)")
    p.add_argument("--endpoint", default="alexa", help="name of the trunk endpoint/aor/"
                   "identify (default alexa)")
    p.add_argument("--transport-name", default="transport-alexa-tls",
                   help="name of the TLS transport (default transport-alexa-tls)")
    p.add_argument("--amazon-cidr", action="append", metavar="CIDR",
                   help="Amazon's network for the identify and firewall rules (default "
                   "3.239.178.128/25; may repeat)")
    p.add_argument("--amazon-sip", metavar="HOST[:PORT]", help="Amazon's outbound SIP address, "
                   "when known")
    p.add_argument("--agi", metavar="agi://HOST:PORT|process", help="look rooms up at call "
                   "time through pbx-bridge's FastAGI server (or process AGI) instead of "
                   "dialling every extension of --room-pattern")
    p.add_argument("--room-pattern", default="_7XXX", help="dialplan pattern of the rooms' "
                   "Alexa extensions (default _7XXX)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the files (with backups), "
                      "reload Asterisk, verify, roll back on failure")
    mode.add_argument("--rollback", action="store_true", help="restore the files of the last "
                      "change not rolled back yet (again: one more step back); with --to ID, "
                      "back to before that change")
    mode.add_argument("--list-backups", action="store_true", help="list the backups of "
                      "--asterisk-dir, newest first (id, when, state, files, which command)")
    p.add_argument("--to", metavar="ID", help="with --rollback: undo the change of backup ID "
                   "and every later one (an id from --list-backups, or a unique start of one)")
    p.add_argument("--dry-run", action="store_true", help="with --rollback: show the diff of "
                   "what it would restore (hand edits made since included), write nothing")
    p.add_argument("--no-reload", action="store_true", help="write without reloading Asterisk")
    p.add_argument("--json", action="store_true", help="print the result as JSON (the diff, "
                   "files, notes, firewall rules, what was written; --list-backups: the "
                   "backups), for Ansible and other tools")
    p.set_defaults(run=run)


def _range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    if not sep or not lo.isdigit() or not hi.isdigit():
        raise UsageError(f"--rtp-range {text}: expected START-END, e.g. 10000-20000")
    return int(lo), int(hi)


def _rtp_range_is_ours_to_set(snap: "Snapshot", r: "Union[RtpRange, str]", start: int,
                              end: int) -> None:
    """Asterisk takes the first rtpstart/rtpend: a range written after someone else's is
    never used (the firewall would be opened for ports Asterisk does not use). Refuse."""
    from ..generate.plan import Conflict, inside_blocks, ours_blocks
    from ..preflight.media import FREEPBX_RTP_FIX
    if isinstance(r, str) or (r.start, r.end) == (start, end) or r.where is None or \
            inside_blocks(ours_blocks(snap.rtp), r.where):
        return
    where = f"{r.where} sets {r.start}-{r.end}, which Asterisk uses (it takes the first range)"
    if snap.freepbx:
        raise Conflict(f"--rtp-range {start}-{end}: {where}; {FREEPBX_RTP_FIX}; or leave "
                       "--rtp-range out")
    raise Conflict(f"--rtp-range {start}-{end}: {where}; change it there (pbx-bridge does not "
                   "edit your lines), or leave --rtp-range out")


def _list_backups(settings: "Settings", asterisk_dir: Path, as_json: bool = False) -> int:
    """``--list-backups``: read-only, no lock (a backup being made is not listed yet)."""
    from ..generate.transaction import Transaction, made_by
    from ..asterisk.cli import Asterisk
    tx = Transaction(settings.state_dir, asterisk_dir, Asterisk())
    mine, others = tx.history()
    out = sys.stdout
    if as_json:
        import json
        json.dump({"asterisk_dir": str(tx.asterisk_dir), "others": others, "backups": [
            {"id": folder.name, "created": str(manifest.get("created", "")),
             "state": str(manifest.get("state", "?")), "by": made_by(manifest),
             "files": [str(e.get("path", "?")) for e in manifest["files"]
                       if isinstance(e, dict)]}
            for folder, manifest in mine]}, out, indent=2)
        out.write("\n")
        return 0
    if not mine:
        out.write(f"no backups of {tx.asterisk_dir} in {tx.root}" +
                  (f" ({others} of other Asterisk dirs)" if others else "") + "\n")
        return 0
    out.write(f"backups of {tx.asterisk_dir} in {tx.root}, newest first:\n")
    rows = [("ID", "WHEN (UTC)", "STATE", "BY", "FILES")]
    for folder, manifest in mine:
        stamp = str(manifest.get("created", ""))
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.strptime(stamp, "%Y%m%dT%H%M%S")) \
            if len(stamp) == 15 else stamp or "?"
        names = []
        for e in manifest["files"]:
            path = str(e.get("path", "?")) if isinstance(e, dict) else "?"
            rel = os.path.relpath(path, tx.asterisk_dir) if path.startswith("/") else path
            names.append(rel + ("" if not isinstance(e, dict) or e.get("existed") else " (new)"))
        rows.append((folder.name, when, str(manifest.get("state", "?")), made_by(manifest),
                     f"{len(names)}: {', '.join(names)}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4] + "\n")
    if others:
        out.write(f"({others} backup(s) of other Asterisk dirs not shown)\n")
    out.write("back to before a change: pbx-bridge generate --rollback --to ID\n")
    return 0


def _rollback_preview(settings: "Settings", asterisk_dir: Path, to: "str | None",
                      as_json: bool) -> int:
    """``--rollback --dry-run``: read-only, no lock; each file's diff from now to restored."""
    from ..generate.transaction import Transaction
    from ..asterisk.cli import Asterisk
    folders, restores = Transaction(settings.state_dir, asterisk_dir,
                                    Asterisk()).rollback_preview(to)
    if as_json:
        import json
        json.dump({"rolled_back": [f.name for f in folders], "changed": bool(restores),
                   "files": [{"path": str(r.path), "removed": r.then is None,
                              "private": r.private, "diff": r.diff()} for r in restores]},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for r in restores:
        sys.stdout.write(r.diff())
    sys.stdout.write(f"# dry run: undoing {len(folders)} change(s) would change "
                     f"{len(restores)} file(s); nothing written\n")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..generate.transaction import open_transaction
    from pathlib import Path
    from ..settings import load
    from ..statedir import exclusive
    if args.to is not None and not args.rollback:
        raise UsageError("--to needs --rollback")
    if args.dry_run and not args.rollback:
        raise UsageError("--dry-run is for --rollback (generate without --write is the "
                         "dry run)")
    settings = load(args.config)
    asterisk_dir = Path(args.asterisk_dir or settings.asterisk_dir)
    if args.list_backups:
        return _list_backups(settings, asterisk_dir, args.json)
    if args.rollback and args.dry_run:
        return _rollback_preview(settings, asterisk_dir, args.to, args.json)
    if args.rollback:
        if args.json:
            raise UsageError("--json is for the diff, --list-backups and --rollback "
                             "--dry-run, not --rollback")
        tx = open_transaction(settings, asterisk_dir)
        try:
            with exclusive(settings.state_dir, "generate --rollback"):
                for line in tx.recover(undo=False):
                    sys.stdout.write(f"{line}\n")
                folders, restored, note = tx.rollback(reload=not args.no_reload, to=args.to)
                left = [b for b in tx.history()[0] if b[1].get("state") != "rolled back"]
        finally:
            tx.asterisk.close()
        if not folders:
            sys.stdout.write(f"nothing to roll back: {args.to} and every later change are "
                             "rolled back already\n")
            return 0
        for path in restored:
            sys.stdout.write(f"restored {path}\n")
        what = f"the change of {folders[0].name}" if len(folders) == 1 else \
            f"{len(folders)} changes, back to before {folders[-1].name}"
        sys.stdout.write(f"rolled back {what}; {note}\n")
        sys.stdout.write(f"{len(left)} earlier change(s) not rolled back" +
                         (f" (--rollback again undoes {left[0][0].name}; "
                          "--list-backups lists them)\n" if left else
                          ": the files are as before the oldest backup\n"))
        from ..renew.restore import chain_after_rollback
        from .common import context
        amazon = chain_after_rollback(settings, asterisk_dir, restored,
                                      note.startswith("Asterisk reloaded"),
                                      lambda: context(args).api)
        if amazon:
            sys.stdout.write(f"{amazon}\n")
        return 0
    if not asterisk_dir.is_dir():
        raise InputError(str(asterisk_dir), "Asterisk config directory does not exist")
    if not args.write:
        return _generate(args, settings, asterisk_dir)
    with exclusive(settings.state_dir, "generate --write"):
        return _generate(args, settings, asterisk_dir)


def _generate(args: argparse.Namespace, settings: "Settings", asterisk_dir: Path) -> int:
    """Plan, show, and with --write (the state dir's lock held) finish an interrupted run,
    then write, reload and check."""
    from ..generate.transaction import open_transaction
    from ..generate.verify import checker
    from ..host import FileSystem
    from ..generate.plan import build
    from ..generate.render import TrunkConfig
    from ..heap import tree_built
    from ..preflight.media import rtp_range
    from ..defaults import DEFAULT_AMAZON_CIDR
    from ..preflight.snapshot import Located, Options, gather
    pending: list[str] = []
    if args.write:
        tx0 = open_transaction(settings, asterisk_dir)
        try:
            pending = tx0.recover()
        finally:
            tx0.asterisk.close()
    with tree_built():
        snap = gather(Options(asterisk_dir=asterisk_dir, public_ip=args.public_ip,
                              firewall=False, dns=False), fs=FileSystem(asterisk_dir))
    if isinstance(snap.public_ip, Located):
        from ..trunk.local import not_public
        why = not_public(snap.public_ip.value)
        if why:
            sys.stderr.write(f"warning: public IP {why}: Amazon cannot reach the PBX there "
                             "(--public-ip)\n")
    r = rtp_range(snap)
    if args.rtp_range:
        start, end = _range(args.rtp_range)
        _rtp_range_is_ours_to_set(snap, r, start, end)
    else:
        start, end = (10000, 20000) if isinstance(r, str) else (r.start, r.end)
    keys = "/etc/asterisk/keys"
    base = args.fqdn or "pbx"
    config = TrunkConfig(
        freepbx=snap.freepbx, transport=args.transport_name, endpoint=args.endpoint,
        port=args.port, cert_file=args.cert or f"{keys}/{base}.crt",
        priv_key_file=args.key or f"{keys}/{base}.key", ca_list_file=args.ca_list,
        public_ip=snap.public_ip.value if isinstance(snap.public_ip, Located) else None,
        local_nets=tuple(args.local_net), rtp_start=start, rtp_end=end,
        context=args.context, phones_context=args.phones_context, bind=args.bind,
        amazon_cidrs=tuple(args.amazon_cidr or [DEFAULT_AMAZON_CIDR]),
        room_pattern=args.room_pattern, amazon_sip=args.amazon_sip, agi=args.agi,
        state_dir=str(settings.state_dir) if args.agi == "process" else None)
    assert snap.dialplan is not None  # gather reads it
    plan = build(asterisk_dir, config, (snap.pjsip, snap.rtp, snap.modules, snap.dialplan))
    import io
    out = io.StringIO() if args.json else sys.stdout  # with --json the text is not shown
    doc: dict[str, object] = {
        "layout": "freepbx" if config.freepbx else "plain", "changed": bool(plan.changes),
        "written": False, "recovered": pending,
        "files": [{"path": str(ch.path), "new": ch.old is None, "private": ch.private,
                   "diff": ch.diff()} for ch in plan.changes],
        "notes": list(plan.notes), "firewall": plan.firewall, "backup": None,
        "reload": None, "running": None}
    layout = "FreePBX (hand-edit *_custom.conf files)" if config.freepbx else \
        "plain Asterisk (our own included files)"
    out.write(f"# layout: {layout}\n")
    for line in pending:
        out.write(f"{line}\n")
    if not plan.changes:
        out.write("nothing to change: the config already matches; nothing written\n")
    elif not args.write:
        for ch in plan.changes:
            out.write(ch.diff())
        out.write(f"# dry run: {len(plan.changes)} file(s) would change; pass --write to "
                  "write them\n")
    for note in plan.notes:
        out.write(f"# note: {note}\n")
    out.write("# firewall rules to apply yourself (pbx-bridge never changes the firewall):\n")
    out.write("".join(f"#   {line}\n" for line in plan.firewall.splitlines()))
    if args.write and plan.changes:
        from ..generate.transaction import ApplyFailed
        from ..generate.verify import tls_file_problems
        problems = tls_file_problems(plan.config, FileSystem(asterisk_dir))
        if problems:  # Asterisk would drop the whole transport: nothing is written
            raise ApplyFailed("not written: " + "; ".join(problems) + " (Asterisk would drop "
                              "the TLS transport; give --cert/--key/--ca-list files it can use)")
        from ..generate.transaction import key_group_warning
        warning = key_group_warning(settings.key_group, plan.changes)
        if warning:
            sys.stderr.write(warning + "\n")
        tx = open_transaction(settings, asterisk_dir)
        try:
            outcome = tx.apply(plan.changes, reload=not args.no_reload,
                               check=checker(plan.config, asterisk_dir))
        finally:
            tx.asterisk.close()
        for path in outcome.written:
            out.write(f"wrote {path}\n")
        out.write(f"backup: {outcome.backup} (undo with: pbx-bridge generate --rollback)\n")
        out.write(f"{outcome.reload_note}\n")
        doc.update(written=True, backup=str(outcome.backup), reload=outcome.reload_note)
    elif args.write and not args.no_reload:
        tx = open_transaction(settings, asterisk_dir)
        try:
            left = tx.unverified()
            if left is not None:  # written, never seen running: reload and check it now
                note = tx.finish(*left, checker(plan.config, asterisk_dir)).reload_note
                out.write(f"{note}\n")
                doc.update(reload=note)
                return _json_done(args, doc)
        finally:
            tx.asterisk.close()
        from ..generate.transaction import check_running
        running = check_running(settings, plan.config, asterisk_dir)
        out.write(f"{running}\n")
        doc.update(running=running)
    return _json_done(args, doc)


def _json_done(args: argparse.Namespace, doc: dict[str, object]) -> int:
    if args.json:
        import json
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0
