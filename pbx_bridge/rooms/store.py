"""The local state the dialplan reads: SQLite in the state dir (WAL, full sync), recording the
trunk, its endpoint, and each mapping with whether we created it and when it was confirmed.

Each change is one transaction, so a kill at any moment leaves the database as it was before
or after that change. It is private (0600, like the state dir's other files): the AGI reads
the routes snapshot that :meth:`Store.publish` writes from it, never the database.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from ..statedir import prepare
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
"""
DB_NAME = "pbx-bridge.sqlite"


@dataclass(frozen=True)
class Row:
    extension: str
    profile_id: str
    room: str
    ours: bool
    confirmed_at: float


class Store:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / DB_NAME
        self._lock = threading.Lock()
        try:
            prepare(state_dir)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            os.close(fd)
            self.db = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise InputError(str(self.path), f"cannot open the state database: {exc}") \
                from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction at a time (apply runs requests from several threads)."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def set_meta(self, **values: str) -> None:
        with self._tx():
            for k, v in values.items():
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, v))

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def rows(self, trunk_id: str) -> dict[str, Row]:
        with self._lock:
            got = self.db.execute("SELECT extension, profile_id, room, ours, confirmed_at "
                                  "FROM mappings WHERE trunk_id = ?", (trunk_id,)).fetchall()
        return {r[0]: Row(r[0], r[1], r[2], bool(r[3]), r[4]) for r in got}

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

    def forget_trunk(self, trunk_id: str) -> int:
        """A trunk deleted at Amazon: its mappings (and the trunk, if it is the one the
        routes name) go in one transaction. Returns how many mappings were removed."""
        with self._tx() as db:
            n = db.execute("DELETE FROM mappings WHERE trunk_id = ?", (trunk_id,)).rowcount
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
        except OSError as exc:
            raise InputError(str(self.path.parent / routes.ROUTES_NAME),
                             f"cannot publish the routes: {exc.strerror or exc}") from None

    def forget(self, trunk_id: str, extension: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM mappings WHERE trunk_id = ? AND extension = ?",
                       (trunk_id, extension))
