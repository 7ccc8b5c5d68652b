"""Extension-to-room mappings: the desired state from the map file, the plan (a value), and an
apply that runs exactly that plan with bounded concurrency and stops cleanly on a hard error.

Intent before action: each mapping write is recorded as pending before its request goes out,
so a run killed (or stopped by a full disk) after Amazon did the work but before the answer
was recorded loses nothing: the next plan reconciles the pending rows with what Amazon holds
(:func:`reconcile`), and the next apply records that before it changes anything.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from ..amazon.client import PbxApi
from ..amazon.errors import ApiError
from ..amazon.models import Mapping
from ..errors import PbxBridgeError
from .mapfile import MapErrors, Room
from .store import Pending, Row, Store, StoreError

Action = Literal["create", "update", "delete"]
ORDER: tuple[Action, ...] = ("delete", "update", "create")


@dataclass(frozen=True, slots=True)  # one per room: 100,000 of them fit
class Desired:
    extension: str
    profile_id: str
    room: str


@dataclass(frozen=True, slots=True)  # one per room: 100,000 of them fit
class Change:
    action: Action
    extension: str
    profile_id: str  # the new profile (the old one for a delete)
    room: str = ""
    old_profile_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"action": self.action, "extension": self.extension,
                             "commsProfileId": self.profile_id, "room": self.room}
        if self.old_profile_id is not None:
            d["oldCommsProfileId"] = self.old_profile_id
        return d


# A pending write older than this that Amazon does not show never landed (the client gives
# up on a call after 120 s); a younger one may still be on its way, so it is kept.
PENDING_GRACE = 3600.0


@dataclass(frozen=True)
class Reconciled:
    """Pending rows judged against what Amazon holds (pure: :func:`reconcile`)."""
    confirm: tuple[tuple[str, str, str], ...] = ()  # (extension, profile, room): landed, ours
    gone: tuple[str, ...] = ()  # pending deletes Amazon no longer holds: forget locally
    stale: tuple[str, ...] = ()  # pending writes that never landed: drop the intent

    @property
    def empty(self) -> bool:
        return not (self.confirm or self.gone or self.stale)


def reconcile(rows: dict[str, Row], pending: dict[str, Pending], at_amazon: list[Mapping],
              now: float) -> tuple[frozenset[str], Reconciled]:
    """Which of Amazon's mappings pbx-bridge created (recorded as ours, or a pending create or
    update Amazon now holds exactly), and what to record about the pending rows."""
    have = {m.extension: m.comms_profile_id for m in at_amazon}
    ours = {e for e, r in rows.items() if r.ours and e in have}
    confirm: list[tuple[str, str, str]] = []
    gone: list[str] = []
    stale: list[str] = []
    for ext, p in sorted(pending.items()):
        old = now - p.started_at > PENDING_GRACE
        if p.action == "delete":
            if ext not in have:
                gone.append(ext)
            elif old:
                stale.append(ext)
        elif have.get(ext) == p.profile_id:
            ours.add(ext)
            confirm.append((ext, p.profile_id, p.room))
        elif old:
            stale.append(ext)
    return frozenset(ours), Reconciled(tuple(confirm), tuple(gone), tuple(stale))


@dataclass(frozen=True)
class RoomPlan:
    """Every mapping Amazon holds is in exactly one of updates, deletes, unchanged, kept:
    their counts add up to ``existing``."""
    trunk_id: str
    changes: tuple[Change, ...]  # deletes, updates, creates; each sorted by extension
    unchanged: tuple[Desired, ...]
    kept: tuple[Mapping, ...]  # at Amazon, not in the map, not ours to delete
    existing: int
    ours: frozenset[str] = frozenset()  # of Amazon's mappings, those pbx-bridge created
    reconciled: Reconciled = Reconciled()
    # unchanged at Amazon, but the room's name differs from the one recorded (and routed:
    # the caller-ID name): (extension, recorded name, new name); apply records the new one
    renames: tuple[tuple[str, str, str], ...] = ()

    def of(self, action: Action) -> list[Change]:
        return [c for c in self.changes if c.action == action]

    @property
    def empty(self) -> bool:
        return not self.changes

    @property
    def disruptive_share(self) -> float:
        """Share of existing mappings this plan deletes or changes."""
        hit = sum(1 for c in self.changes if c.action != "create")
        return hit / self.existing if self.existing else 0.0

    def to_json(self, changes: bool = True) -> dict[str, Any]:
        """The plan as JSON; ``changes=False``: only its counts (what a log line carries)."""
        doc: dict[str, Any] = {"trunkId": self.trunk_id}
        if changes:
            doc.update(creates=[c.to_json() for c in self.of("create")],
                       updates=[c.to_json() for c in self.of("update")],
                       deletes=[c.to_json() for c in self.of("delete")],
                       renames=[{"extension": e, "oldRoom": old, "room": new}
                                for e, old, new in self.renames])
        doc.update(unchanged=len(self.unchanged), kept=len(self.kept), existing=self.existing)
        return doc

    def summary(self) -> str:
        kept = f", {len(self.kept)} kept (not created by pbx-bridge)" if self.kept else ""
        return (f"{len(self.of('create'))} to create, {len(self.of('update'))} to update, "
                f"{len(self.of('delete'))} to delete, {len(self.unchanged)} unchanged{kept}")


NEW_PROFILE = "(new profile)"  # what rooms plan --create-profiles shows for one to create


def resolve(rooms: list[Room], api: PbxApi | None, property_id: str | None,
            create_profiles: bool | Literal["preview"], name: str) -> list[Desired]:
    """Rows with their communication profiles, looking rooms up by name where needed. All
    problems are reported together before anything is written."""
    problems: list[str] = []
    need = [r for r in rooms if not r.profile_id]
    by_name: dict[str, str] = {}
    if need:
        if property_id is None or api is None:
            raise MapErrors(name, [f"line {r.line}: no comms_profile_id (give one, or "
                                   "--property UNIT_ID to look the room up by name)"
                                   for r in need])
        for unit in api.list_units(property_id):
            by_name.setdefault(unit.name.strip().casefold(), unit.unit_id)
    out: list[Desired] = []
    seen: dict[str, int] = {r.profile_id: r.line for r in rooms if r.profile_id}
    for r in rooms:
        pid = r.profile_id
        if not pid:
            assert api is not None
            unit_id = by_name.get(r.room.strip().casefold())
            if unit_id is None:
                problems.append(f"line {r.line}: no room named {r.room!r} in property "
                                f"{property_id}")
                continue
            found = api.get_profile(unit_id)
            if found is None and create_profiles == "preview":
                out.append(Desired(r.extension, NEW_PROFILE, r.room))  # plan: shown, not made
                continue
            if found is None and create_profiles:
                found = api.create_profile(unit_id, r.room)
            if found is None:
                problems.append(f"line {r.line}: room {r.room!r} has no communication profile "
                                "(pass --create-profiles to create it)")
                continue
            if found in seen:
                problems.append(f"line {r.line}: room {r.room!r} has the profile of line "
                                f"{seen[found]}")
                continue
            seen[found] = r.line
            pid = found
        out.append(Desired(r.extension, pid, r.room))
    if problems:
        raise MapErrors(name, problems)
    return out


def build_plan(trunk_id: str, desired: list[Desired], at_amazon: list[Mapping], store: Store,
               prune: bool, now: float | None = None) -> RoomPlan:
    import time
    have = {m.extension: m for m in at_amazon}
    rows = store.rows(trunk_id)
    ours, reconciled = reconcile(rows, store.pending(trunk_id), at_amazon,
                                 time.time() if now is None else now)
    changes: list[Change] = []
    unchanged: list[Desired] = []
    wanted = {d.extension for d in desired}
    for d in sorted(desired, key=lambda d: d.extension):
        m = have.get(d.extension)
        if m is None:
            changes.append(Change("create", d.extension, d.profile_id, d.room))
        elif m.comms_profile_id != d.profile_id:
            changes.append(Change("update", d.extension, d.profile_id, d.room,
                                  m.comms_profile_id))
        else:
            unchanged.append(d)
    kept = []
    for ext in sorted(set(have) - wanted):
        if prune or ext in ours:
            # the room's recorded name, so a delete says which room it was
            changes.append(Change("delete", ext, have[ext].comms_profile_id,
                                  rows[ext].room if ext in rows else ""))
        else:
            kept.append(have[ext])
    changes.sort(key=lambda c: (ORDER.index(c.action), c.extension))
    renames = tuple((d.extension, rows[d.extension].room, d.room) for d in unchanged
                    if d.extension in rows and rows[d.extension].room != d.room)
    return RoomPlan(trunk_id, tuple(changes), tuple(unchanged), tuple(kept), len(have), ours,
                    reconciled, renames)


class ApplyStopped(PbxBridgeError):
    pass


@dataclass
class Report:
    done: list[Change] = field(default_factory=list)
    skipped: list[Change] = field(default_factory=list)
    error: str | None = None
    permanent: Change | None = None  # the change Amazon refused for good (a 4xx)


def apply(plan: RoomPlan, api: PbxApi, store: Store, concurrency: int,
          progress: Callable[[int, int], None] = lambda done, total: None,
          report: Report | None = None) -> Report:
    """Run exactly ``plan``. What the plan reconciled is recorded first; then each change is
    recorded as pending before its request goes out and as done once Amazon confirms it, so
    a re-run after a stop, a kill or a full disk finishes the job without duplicating or
    orphaning anything. A state database that cannot be written stops the run like a hard
    error: no request goes out unrecorded. Interrupted (Ctrl-C), the requests in flight
    finish, nothing new starts, and KeyboardInterrupt goes on up; ``report`` (when given)
    then says what was done. After a run without error the local table holds exactly what
    Amazon holds."""
    report = report if report is not None else Report()
    stop = threading.Event()
    lock = threading.Lock()
    tid = plan.trunk_id
    rec = plan.reconciled

    def fail(c: Change, message: str, exc: Exception | None = None,
             done: bool = False) -> None:
        with lock:
            if report.error is None:
                report.error = message
                if isinstance(exc, ApiError) and 400 <= exc.status < 500 and \
                        exc.status not in (409, 429):
                    report.permanent = c
            (report.done if done else report.skipped).append(c)
        stop.set()

    def one(c: Change) -> None:
        if stop.is_set():
            with lock:
                report.skipped.append(c)
            return
        try:  # intent before action: nothing goes out that a rerun could not account for
            store.intend(tid, c.action, c.extension, c.profile_id, c.room)
        except StoreError as exc:
            fail(c, f"{c.action} {c.extension} not sent: {exc}")
            return
        try:
            if c.action == "create":
                try:
                    api.map_extension(tid, Mapping(c.extension, c.profile_id))
                except ApiError as exc:
                    # already mapped (a run that was cut off after Amazon did the work)
                    if exc.status != 409 or \
                            api.get_mapping(tid, c.extension).comms_profile_id != c.profile_id:
                        raise
            elif c.action == "update":
                api.update_mapping(tid, Mapping(c.extension, c.profile_id))
            else:
                try:
                    api.delete_mapping(tid, c.extension)
                except ApiError as exc:
                    if exc.status != 404:
                        raise
        except PbxBridgeError as exc:
            if isinstance(exc, ApiError) and 400 <= exc.status < 500 and exc.status != 429:
                try:  # Amazon answered that nothing was done
                    store.settle(tid, c.extension)
                except StoreError:
                    pass  # the next run reconciles it
            fail(c, f"{c.action} {c.extension}: {exc}", exc)
            return
        try:
            if c.action == "delete":
                store.forget(tid, c.extension)
            else:
                store.record(tid, c.extension, c.profile_id, c.room, ours=True)
        except StoreError as exc:  # done at Amazon, pending here: the next run records it
            fail(c, f"{c.action} {c.extension} done at Amazon but not recorded: {exc}",
                 done=True)
            return
        with lock:
            report.done.append(c)
            progress(len(report.done), len(plan.changes))

    if not rec.empty:
        try:
            store.reconcile(tid, rec.confirm, rec.gone, rec.stale)
        except StoreError as exc:
            report.error = str(exc)
            report.skipped.extend(plan.changes)
            return report
    # deletes first (they free extensions), then updates, then creates: one phase at a time
    for action in ORDER:
        batch = plan.of(action)
        if not batch:
            continue
        pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
        try:
            list(pool.map(one, batch))
        except BaseException:
            stop.set()  # what has not started yet is skipped
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    if report.error is None:  # Amazon now holds exactly this: so does the table
        final = [(d.extension, d.profile_id, d.room, d.extension in plan.ours)
                 for d in plan.unchanged]
        final += [(m.extension, m.comms_profile_id, "", False) for m in plan.kept]
        final += [(c.extension, c.profile_id, c.room, True) for c in report.done
                  if c.action != "delete"]
        try:
            store.replace(tid, final)
        except StoreError as exc:
            report.error = str(exc)
    return report
