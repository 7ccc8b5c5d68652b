"""``pbx-bridge rooms discover|import|plan|apply``: the property's extension-to-room mappings,
kept in sync with Amazon from one CSV file (plan, then apply)."""

from __future__ import annotations

import argparse
import os
import re
import sys

from ..errors import InputError, PbxBridgeError, UsageError
from .common import (Context, add_asterisk_dir, add_settings_args, context, emit, subcommands,
                     writes_state)

from . import HELPS

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and pathlib load only for the type checker (fast --help)
    from typing import Iterator, Literal
    from pathlib import Path
    from ..rooms.store import Store
    from ..rooms.sync import RoomPlan

HELP = HELPS["rooms"]
MAX_SHARE = 0.25
PROGRESS_EVERY = float(os.environ.get("PBX_BRIDGE_PROGRESS_EVERY", "10") or 10)


class Refused(PbxBridgeError):
    pass


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("rooms", help=HELP, description=HELP + ".")
    rsub = subcommands(p, "rooms_command")

    text = "write a starting CSV of the property's rooms (extensions left to fill in)"
    d = rsub.add_parser("discover", help=text, description=text + "; with --json, the rooms "
                        "as JSON.")
    add_settings_args(d)
    d.add_argument("--property", metavar="UNIT_ID", help="the property's unit id (default: "
                   "[pbx] property of the settings)")
    d.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    d.set_defaults(run=run_discover)

    text = "build the map from the PBX's own extensions: each extension whose number names " \
        "a room of the property (--pattern)"
    i = rsub.add_parser("import", help="build the map from the PBX's own extensions",
                        description=text + "; with --json, the rows as JSON.")
    add_settings_args(i)
    i.add_argument("--from-asterisk", action="store_true", required=True,
                   help="read the PJSIP endpoints of the Asterisk config")
    add_asterisk_dir(i)
    i.add_argument("--ami", action="store_true", help="read the endpoints over AMI "
                   "(PJSIPShowEndpoints) with the [ami] settings, instead of the config files")
    i.add_argument("--pattern", required=True, metavar="PATTERN",
                   help="how an extension names its room, e.g. '7{room}': 7204 is Room 204")
    i.add_argument("--property", metavar="UNIT_ID", help="the property's unit id (default: "
                   "[pbx] property of the settings)")
    i.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    i.set_defaults(run=run_import)

    for name, run, text in (("plan", run_plan, "show what apply would change (read-only)"),
                            ("apply", run_apply, "make Amazon's mappings match the map")):
        q = rsub.add_parser(name, help=text, description=text + ".")
        add_settings_args(q)
        q.add_argument("--map", required=True, metavar="FILE",
                       help="CSV: extension,room,comms_profile_id")
        q.add_argument("--trunk", metavar="TRUNK_ID", help="default: the saved trunk")
        q.add_argument("--property", metavar="UNIT_ID", help="look rooms without a profile id "
                       "up by name in this property (default: [pbx] property of the settings)")
        q.add_argument("--create-profiles", action="store_true",
                       help="create missing communication profiles (plan shows the ones apply "
                       "would create)")
        q.add_argument("--prune", action="store_true", help="also delete mappings this tool "
                       "did not create")
        if name == "apply":
            q.add_argument("--endpoint", default="alexa", help="the trunk's PJSIP endpoint, "
                           "for the dial strings the AGI hands out")
            q.add_argument("--yes", action="store_true", help="do not ask")
            q.add_argument("--force", action="store_true", help=f"allow deleting or changing "
                           f"more than {MAX_SHARE * 100:.0f}%% of the existing mappings")
            q.add_argument("--concurrency", type=int, default=4, metavar="N",
                           help="requests in flight (default 4)")
            q.add_argument("--quiet", action="store_true", help="print nothing when there "
                           "is nothing to change (for timers)")
        q.set_defaults(run=run)


def _output(args: argparse.Namespace, rows: list[tuple[str, str, str]]) -> None:
    """The rows as CSV, or as JSON with --json; into --out (atomically), else on standard
    output. A CSV file gets a UTF-8 BOM, or Excel reads it as Windows-1252."""
    from pathlib import Path
    from ..fileio import atomic_write
    from ..rooms.mapfile import BOM, write
    if args.json:
        import json
        doc = [{"extension": e, "room": r, "commsProfileId": p} for e, r, p in rows]
        text = data = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    else:
        text = write(rows)
        data = BOM + text
    if not args.out:
        sys.stdout.write(text)
        return
    try:
        atomic_write(Path(args.out), data.encode("utf-8"))
    except OSError as exc:
        raise InputError(args.out, f"cannot write: {exc.strerror or exc}") from None
    sys.stderr.write(f"wrote {len(rows)} room(s) to {args.out}\n")


def _property(args: argparse.Namespace, ctx: Context, required: bool = True) -> str | None:
    prop: str | None = args.property or ctx.settings.property
    if prop is None and required:
        raise UsageError("no property: pass --property UNIT_ID or set [pbx] property in the "
                         "settings")
    args.property = prop
    return prop


def run_discover(args: argparse.Namespace) -> int:
    ctx = context(args)
    units = ctx.api.list_units(str(_property(args, ctx)))
    rows = [("", u.name, ctx.api.get_profile(u.unit_id) or "") for u in units]
    _output(args, rows)
    return 0


def pattern_regex(pattern: str) -> re.Pattern[str]:
    if pattern.count("{room}") != 1:
        raise UsageError("--pattern must contain {room} once, e.g. '7{room}'")
    before, after = pattern.split("{room}")
    return re.compile(f"^{re.escape(before)}(?P<room>[0-9A-Za-z]+){re.escape(after)}$")


def _pbx_endpoints(args: argparse.Namespace, ctx: Context) -> list[str]:
    """The PJSIP endpoint names: over AMI (``--ami``), or from the config files."""
    from pathlib import Path

    from ..rooms.discover import pbx_endpoints
    if args.ami and ctx.settings.ami is None:
        raise UsageError("--ami needs [ami] username and secret in the settings file (or "
                         "PBX_BRIDGE_AMI_SECRET)")
    return pbx_endpoints(Path(args.asterisk_dir or ctx.settings.asterisk_dir),
                         ctx.settings.ami if args.ami else None)


def run_import(args: argparse.Namespace) -> int:
    rx = pattern_regex(args.pattern)
    ctx = context(args)
    _property(args, ctx)
    names = _pbx_endpoints(args, ctx)
    from ..rooms.discover import match_rooms, room_key
    listed = ctx.api.list_units(args.property)
    matched, unmatched = match_rooms(names, rx, listed)
    units = {room_key(u.name): u for u in listed}
    rows = sorted((name, unit.name, ctx.api.get_profile(unit.unit_id) or "")
                  for name, unit in matched)
    if not rows:
        digits = [n for n in names if n.isdigit()]
        matching = [n for n in digits if rx.match(n)]
        where = "over AMI" if args.ami else f"in {args.asterisk_dir or ctx.settings.asterisk_dir}"
        if not names:
            why = f"there are no PJSIP endpoints {where}"
        elif not matching:
            why = (f"none of the {len(digits)} numeric endpoint(s) {where} "
                   f"({', '.join(digits[:8]) or 'none'}) matches --pattern {args.pattern!r}"
                   f"; {len(names) - len(digits)} other endpoint(s) are not extensions")
        else:
            some = sorted(units.values(), key=lambda u: u.name)[:5]
            why = (f"{len(matching)} extension(s) match --pattern {args.pattern!r} (e.g. "
                   f"{', '.join(matching[:5])}) but property {args.property} has no room with "
                   f"their number (it has {len(units)} room(s): "
                   f"{', '.join(u.name for u in some) or 'none'}"
                   f"{', ...' if len(units) > 5 else ''})")
        raise Refused(f"no extension matched a room: {why}; nothing written")
    if unmatched:
        sys.stderr.write(f"{len(unmatched)} extension(s) match the pattern but no room: "
                         f"{', '.join(unmatched[:10])}\n")
    _output(args, rows)
    return 0


def _plan(args: argparse.Namespace, ctx: Context, store: "Store") -> "RoomPlan":
    from pathlib import Path
    from ..rooms.mapfile import read
    from ..rooms.sync import build_plan, resolve
    trunk = args.trunk or ctx.state.trunk_id
    if not trunk:
        raise UsageError(f"no --trunk given and none saved in {ctx.state.path}; run "
                         "'pbx-bridge trunk create' first")
    rooms = read(Path(args.map))
    create: "bool | Literal['preview']" = False
    if args.create_profiles:
        create = "preview" if args.rooms_command == "plan" else True
    desired = resolve(rooms, ctx.api, args.property, create, args.map)
    from ..amazon.errors import ApiError
    try:
        current = ctx.api.list_mappings(trunk)
    except ApiError as exc:
        if exc.status != 404:
            raise
        raise Refused(f"trunk {trunk} no longer exists at Amazon ({exc}); run 'pbx-bridge "
                      "trunk create', or 'trunk delete --force' to forget it") from None
    plan = build_plan(trunk, desired, current, store, args.prune)
    if args.rooms_command == "plan":
        from ..statedir import holder
        busy = holder(ctx.settings.state_dir)
        if busy:  # Amazon and the local table were read while it changed them
            pid, _, what = busy.partition(" ")
            sys.stderr.write(f"note: {what or 'a command'} is running (pid {pid}): this plan "
                             "is a moment of it; run plan again when it ends\n")
    return plan


def _show(plan: "RoomPlan") -> str:
    return "\n".join(_show_lines(plan))


def _show_lines(plan: "RoomPlan") -> "Iterator[str]":
    from ..textwidth import ljust
    yield f"trunk {plan.trunk_id}: {plan.summary()}"
    sign = {"create": "+", "update": "~", "delete": "-"}
    for c in plan.changes:
        detail = c.profile_id if c.action != "update" else \
            f"{c.old_profile_id} -> {c.profile_id}"
        # padded by display width: a dash, a curly quote or a wide CJK name keeps the columns
        yield f"  {sign[c.action]} {c.extension:<8} {ljust(c.room, 20)} {detail}"
    if plan.kept:
        yield (f"  ({len(plan.kept)} mapping(s) at Amazon not in the map are kept: "
               "pbx-bridge did not create them; --prune deletes them)")
    from ..rooms.sync import NEW_PROFILE
    new = [c for c in plan.changes if c.profile_id == NEW_PROFILE]
    if new:
        yield (f"  ({len(new)} communication profile(s) would be created first: "
               f"{', '.join(c.room for c in new[:5])}" + (", ..." if len(new) > 5 else "") + ")")


def _publish(store: "Store", group: str | None) -> "tuple[Path | None, str | None]":
    """Publish the routes from the table: (the file, None), or (None, why not)."""
    from ..rooms.store import StoreError
    try:
        return store.publish(group), None
    except StoreError as exc:
        return None, str(exc)


def run_plan(args: argparse.Namespace) -> int:
    from ..rooms.store import Store
    ctx = context(args)
    store = Store(ctx.settings.state_dir, readonly=True)  # works on a read-only state dir
    try:
        plan = _plan(args, ctx, store)
    finally:
        store.close()
    from .. import log
    if args.json:  # one form only: 50,000 changes as JSON and as text do not both fit
        emit(args, plan.to_json(), "")
    elif log.current() == "json":
        emit(args, plan.to_json(changes=False), _show(plan))
    else:  # line by line: the whole text of a large plan is never held at once
        for line in _show_lines(plan):
            sys.stdout.write(line + "\n")
    return 0


@writes_state("rooms apply")
def run_apply(args: argparse.Namespace) -> int:
    from ..rooms.store import Store
    if not 1 <= args.concurrency <= 32:
        raise UsageError("--concurrency must be 1..32")
    ctx = context(args)
    store = Store(ctx.settings.state_dir)
    try:
        return _apply(args, ctx, store)
    finally:
        store.close()  # a clean close checkpoints the WAL into the database file


def _apply(args: argparse.Namespace, ctx: Context, store: "Store") -> int:
    from pathlib import Path
    from ..rooms.sync import apply
    plan = _plan(args, ctx, store)
    if plan.disruptive_share > MAX_SHARE and not args.force:
        raise Refused(f"this plan deletes or changes {plan.disruptive_share:.0%} of the "
                      f"{plan.existing} existing mappings (more than {MAX_SHARE:.0%}); review "
                      "it with 'rooms plan' and pass --force")
    if not plan.empty and not args.yes and sys.stdin.isatty() and sys.stderr.isatty():
        sys.stderr.write(_show(plan) + "\nApply these changes? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            sys.stderr.write("nothing changed\n")
            return 0
    tty = sys.stderr.isatty()
    import time
    from .. import log
    started = last_line = time.monotonic()

    def progress(done: int, total: int) -> None:
        nonlocal last_line
        if tty:
            width = 30
            filled = width * done // total
            log.progress(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            if done == total:
                log.clear_line()
            return
        now = time.monotonic()  # no terminal: a line at most every 10 s, for the journal
        if now - last_line >= PROGRESS_EVERY and done < total:
            last_line = now
            rate = done / (now - started) if now > started else 0.0
            log.event("progress", message=f"rooms apply: {done}/{total} done "
                      f"({rate:.1f}/s)", done=done, total=total, rate=round(rate, 2))

    from ..rooms.store import StoreError
    from ..rooms.sync import Report
    report = Report()
    total = len(plan.changes)
    try:
        try:
            store.set_meta_if_changed(trunk_id=plan.trunk_id, endpoint=args.endpoint)
        except StoreError as exc:  # nothing is sent that could not be recorded
            report.error = str(exc)
            report.skipped.extend(plan.changes)
        else:
            apply(plan, ctx.api, store, args.concurrency, progress, report)
    except KeyboardInterrupt:
        log.clear_line()
        _publish(store, ctx.settings.agi_group)  # what Amazon confirmed is routed
        sys.stderr.write(f"pbx-bridge: interrupted: {len(report.done)}/{total} "
                         "done; run it again to finish\n")
        return 130
    # what Amazon confirmed is routed, also after a stop; a snapshot that cannot be written
    # leaves the previous one whole (it is only ever replaced by a complete new one)
    published, not_published = _publish(store, ctx.settings.agi_group)
    if not_published and report.error is None:
        report.error = not_published
    if published is not None:
        from ..agi.access import check_agi_access
        check_agi_access(published, ctx.settings.agi_user, ctx.settings.asterisk_dir)
    doc = {**plan.to_json(), "done": len(report.done), "not_done": len(report.skipped),
           "error": report.error}
    if report.error:
        also = f"\n{not_published}" if not_published and not_published != report.error \
            else ""
        if report.permanent is not None:
            c = report.permanent
            from ..rooms.mapfile import read
            line = next((r.line for r in read(Path(args.map)) if r.extension == c.extension),
                        None)
            row = f"line {line} of {args.map}" if line else "the map"
            emit(args, doc, f"stopped: {report.error}{also}\nAmazon refuses this for good: "
                 f"fix extension {c.extension} ({c.room or c.profile_id}) in {row}, then run "
                 f"'rooms apply' again; {len(report.done)} change(s) done, "
                 f"{len(report.skipped)} not done")
            return 1
        emit(args, doc, f"stopped: {report.error}{also}\n{len(report.done)}/{total} done "
             f"({len(report.skipped)} not done); run 'rooms apply' again to finish")
        return 1
    try:
        store.set_meta(last_apply_at=repr(time.time()))
    except StoreError as exc:  # every change is done and recorded; only the time is not
        log.event("state", "warning", f"the time of this apply is not recorded: {exc}")
    if plan.empty and args.quiet:
        return 0
    emit(args, doc, f"trunk {plan.trunk_id}: applied {len(report.done)} change(s) "
         f"({plan.summary()}); {len(store.rows(plan.trunk_id))} mapping(s) recorded in "
         f"{store.path}")
    return 0


