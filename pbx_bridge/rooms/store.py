"""The local state the dialplan reads: SQLite in the state dir (WAL, full sync), recording the
trunk, its endpoint, and each mapping with whether we created it and when it was confirmed.

Each change is one transaction, so a kill at any moment leaves the database as it was before
or after that change. A mapping write is recorded as *pending* (table ``pending``) before its
request goes out and settled when Amazon answers; a pending row left by a kill or a full disk
is reconciled against what Amazon holds on the next run (:func:`..sync.reconcile`). It is
private (0600, like the state dir's other files): the AGI reads the routes snapshot that
:meth:`Store.publish` writes from it, never the database.

Commands that only read (``rooms plan``, ``status``) open it read-only (:func:`open_readonly`),
so they work on a read-only state dir and never create or change anything in it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError, PbxBridgeError
from ..statedir import prepare, read_error
from . import routes

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mappings (
    trunk_id TEXT NOT NULL,
    extension TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    room TEXT NOT NULL DEFAULT '',
    ours INTEGER NOT NULL DEFAULT 0,
    confirmed_at REAL NOT NULL,
    PRIMARY KEY (trunk_id, extension)
);
CREATE TABLE IF NOT EXISTS pending (
    trunk_id TEXT NOT NULL,
    extension TEXT NOT NULL,
    action TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    room TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    PRIMARY KEY (trunk_id, extension)
);
"""
DB_NAME = "pbx-bridge.sqlite"


@dataclass(frozen=True, slots=True)  # one per room: 100,000 of them fit
class Row:
    extension: str
    profile_id: str
    room: str
    ours: bool
    confirmed_at: float


@dataclass(frozen=True, slots=True)  # one per room: 100,000 of them fit
class Pending:
    """A mapping write sent (or about to be) whose answer was not recorded yet."""
    extension: str
    action: str  # create, update, delete
    profile_id: str  # the new profile (the old one for a delete)
    room: str
    started_at: float


class StoreError(PbxBridgeError):
    """The state database or the routes could not be written (a full or read-only disk).
    Exit 1: the operation failed, the input was fine."""


def open_readonly(path: Path) -> sqlite3.Connection:
    """The database opened for reading only: nothing is created or changed in its folder,
    which may be read-only. Without a WAL file (no connection open) it is opened
    ``immutable``. SQLite's read-only mode needs the WAL index (``-shm``) to exist or be
    creatable; without it, a database with no WAL content is opened ``immutable``
    (everything is in the main file), and one whose WAL holds commits (a writer was killed)
    is read from a private copy, so no committed change is missed. A missing database reads
    as empty."""
    try:  # SQLite says only "unable to open database file": ask the kernel first
        os.close(os.open(path, os.O_RDONLY))
    except FileNotFoundError:
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.executescript(SCHEMA)
        return db
    except OSError as exc:
        raise read_error(path, exc, "the state database") from None
    wal = Path(f"{path}-wal")
    if not wal.exists():  # no connection has it open (the last one checkpoints and removes
        # the WAL): everything is in the main file. Read-only mode would create the WAL and
        # its index beside it, in a folder a reader must leave as it found it
        db = sqlite3.connect(f"file:{path}?immutable=1", uri=True, check_same_thread=False)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10,
                             check_same_thread=False)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.Error:
        pass
    if not wal.exists() or wal.stat().st_size == 0:
        db = sqlite3.connect(f"file:{path}?immutable=1", uri=True, check_same_thread=False)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    with tempfile.TemporaryDirectory(prefix="pbx-bridge-ro.") as tmp:
        copy = Path(tmp) / DB_NAME
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, f"{copy}-wal")
        disk = sqlite3.connect(copy)
        db = sqlite3.connect(":memory:", check_same_thread=False)
        disk.backup(db)  # reads through the WAL
        disk.close()
    return db


class Store:
    def __init__(self, state_dir: Path, readonly: bool = False) -> None:
        """``readonly``: for commands that only read (plan); writes then fail."""
        self.path = state_dir / DB_NAME
        self._lock = threading.Lock()
        self.readonly = readonly
        if readonly:
            try:
                self.db = open_readonly(self.path)
                have = {r[0] for r in self.db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
            except (OSError, sqlite3.Error) as exc:
                raise InputError(str(self.path), f"cannot read the state database: {exc}") \
                    from None
            self._has_pending = "pending" in have
            self._has_mappings = "mappings" in have and "meta" in have
            return
        self._has_pending = self._has_mappings = True
        try:
            prepare(state_dir)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            os.close(fd)
            self.db = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            have = {r[0] for r in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"meta", "mappings", "pending"} <= have:
                self.db.executescript(SCHEMA)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self.path}: cannot open the state database: {exc}") from None
        except (OSError, sqlite3.Error) as exc:
            raise InputError(str(self.path), f"cannot open the state database: {exc}") \
                from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction at a time (apply runs requests from several threads)."""
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                    self.db.execute("COMMIT")
                except BaseException:
                    if self.db.in_transaction:  # SQLite may have rolled back already
                        try:
                            self.db.execute("ROLLBACK")
                        except sqlite3.Error:
                            pass
                    raise
            except sqlite3.Error as exc:  # e.g. "database or disk is full"
                raise StoreError(f"{self.path}: cannot write the state database: {exc}") \
                    from None

    def set_meta(self, **values: str) -> None:
        with self._tx():
            for k, v in values.items():
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, v))

    def set_meta_if_changed(self, **values: str) -> None:
        if any(self.meta(k) != v for k, v in values.items()):
            self.set_meta(**values)

    def meta(self, key: str) -> str | None:
        if not self._has_mappings:
            return None
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def rows(self, trunk_id: str) -> dict[str, Row]:
        if not self._has_mappings:
            return {}
        with self._lock:
            got = self.db.execute("SELECT extension, profile_id, room, ours, confirmed_at "
                                  "FROM mappings WHERE trunk_id = ?", (trunk_id,)).fetchall()
        return {r[0]: Row(r[0], r[1], r[2], bool(r[3]), r[4]) for r in got}

    def pending(self, trunk_id: str) -> dict[str, Pending]:
        if not self._has_pending:
            return {}
        with self._lock:
            got = self.db.execute("SELECT extension, action, profile_id, room, started_at "
                                  "FROM pending WHERE trunk_id = ?", (trunk_id,)).fetchall()
        return {r[0]: Pending(r[0], r[1], r[2], r[3], r[4]) for r in got}

    def intend(self, trunk_id: str, action: str, extension: str, profile_id: str,
               room: str) -> None:
        """Before a mapping request goes out: what it is about to do."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?)",
                       (trunk_id, extension, action, profile_id, room, time.time()))

    def settle(self, trunk_id: str, extension: str) -> None:
        """Amazon answered that a pending request did nothing (a refusal)."""
        with self._tx() as db:
            db.execute("DELETE FROM pending WHERE trunk_id = ? AND extension = ?",
                       (trunk_id, extension))

    def reconcile(self, trunk_id: str, confirm: Iterable[tuple[str, str, str]],
                  gone: Iterable[str], stale: Iterable[str]) -> None:
        """Settle pending rows against Amazon in one transaction: ``confirm`` (extension,
        profile, room) landed and are ours, ``gone`` were deleted, ``stale`` never landed."""
        now = time.time()
        confirm, gone, stale = list(confirm), list(gone), list(stale)
        with self._tx() as db:
            for ext, pid, room in confirm:
                db.execute("INSERT OR REPLACE INTO mappings VALUES (?, ?, ?, ?, 1, ?)",
                           (trunk_id, ext, pid, room, now))
            for ext in gone:
                db.execute("DELETE FROM mappings WHERE trunk_id = ? AND extension = ?",
                           (trunk_id, ext))
            for ext in [*(c[0] for c in confirm), *gone, *stale]:
                db.execute("DELETE FROM pending WHERE trunk_id = ? AND extension = ?",
                           (trunk_id, ext))

    def replace(self, trunk_id: str, confirmed: Iterable[tuple[str, str, str, bool]]) -> None:
        """After a successful apply: the trunk's table becomes exactly ``confirmed``
        (extension, profile, room, ours), what Amazon holds; rows it lacks go."""
        now = time.time()
        keep = list(confirmed)
        with self._tx() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS keep (extension TEXT PRIMARY KEY)")
            db.execute("DELETE FROM keep")
            db.executemany("INSERT OR IGNORE INTO keep VALUES (?)", [(k[0],) for k in keep])
            db.execute("DELETE FROM mappings WHERE trunk_id = ? AND extension NOT IN "
                       "(SELECT extension FROM keep)", (trunk_id,))
            db.executemany("INSERT OR REPLACE INTO mappings VALUES (?, ?, ?, ?, ?, ?)",
                           [(trunk_id, e, p, r, int(o), now) for e, p, r, o in keep])
            db.execute("DELETE FROM keep")

    def record(self, trunk_id: str, extension: str, profile_id: str, room: str,
               ours: bool | None = None) -> None:
        """A mapping confirmed at Amazon. ``ours`` None keeps what was recorded before."""
        with self._tx() as db:
            old = db.execute("SELECT ours FROM mappings WHERE trunk_id=? AND extension=?",
                             (trunk_id, extension)).fetchone()
            keep = bool(old[0]) if old else False
            db.execute("INSERT OR REPLACE INTO mappings VALUES (?, ?, ?, ?, ?, ?)",
                       (trunk_id, extension, profile_id, room,
                        int(keep if ours is None else ours), time.time()))
            db.execute("DELETE FROM pending WHERE trunk_id = ? AND extension = ?",
                       (trunk_id, extension))

    def forget_trunk(self, trunk_id: str) -> int:
        """A trunk deleted at Amazon: its mappings (and the trunk, if it is the one the
        routes name) go in one transaction. Returns how many mappings were removed."""
        with self._tx() as db:
            n = db.execute("DELETE FROM mappings WHERE trunk_id = ?", (trunk_id,)).rowcount
            db.execute("DELETE FROM pending WHERE trunk_id = ?", (trunk_id,))
            db.execute("DELETE FROM meta WHERE key = 'trunk_id' AND value = ?", (trunk_id,))
        return int(n)

    def publish(self, group: str | None = None) -> Path:
        """Write the routes snapshot the AGI reads (the current trunk's mappings)."""
        trunk = self.meta("trunk_id")
        rooms = {r.extension: (r.profile_id, r.room)
                 for r in self.rows(trunk).values()} if trunk else {}
        try:
            return routes.publish(self.path.parent, trunk, self.meta("endpoint"), rooms, group)
        except KeyError:
            raise InputError(str(group), "[agi] group: no such group on this host") from None
        except OSError as exc:  # the old snapshot stays whole: it is only ever renamed over
            raise StoreError(f"{self.path.parent / routes.ROUTES_NAME}: cannot publish the "
                             f"routes: {exc.strerror or exc}; the previous routes stay in "
                             "place") from None

    def forget(self, trunk_id: str, extension: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM mappings WHERE trunk_id = ? AND extension = ?",
                       (trunk_id, extension))
            db.execute("DELETE FROM pending WHERE trunk_id = ? AND extension = ?",
                       (trunk_id, extension))
