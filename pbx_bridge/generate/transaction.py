"""Writes are transactions: back up every file touched, write each atomically, reload
Asterisk and read the result back, and roll everything back if anything fails.

A backup is a folder in the state dir with a manifest written *before* the first file is
replaced, so that a crash or kill at any moment leaves each file old or new (never partial) and
``--rollback`` can always restore the old bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..asterisk_cli import Asterisk
from ..errors import InputError, PbxBridgeError
from ..fileio import atomic_write
from .plan import Plan


class ApplyFailed(PbxBridgeError):
    pass


def _sha(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


@dataclass(frozen=True)
class Outcome:
    backup: Path
    written: tuple[Path, ...]
    reloaded: bool
    reload_note: str


class Transaction:
    def __init__(self, state_dir: Path, asterisk: Asterisk,
                 between_files: Callable[[int], None] | None = None) -> None:
        self.root = state_dir / "backups"
        self.asterisk = asterisk
        # called after each file is written (tests inject a failure or a pause here)
        self.between_files = between_files or (lambda i: None)

    # ------------------------------------------------------------ backups

    def _new_backup(self, plan: Plan) -> tuple[Path, dict[str, Any]]:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        folder = self.root / f"{stamp}-{os.getpid()}"
        n = 0
        while folder.exists():
            n += 1
            folder = self.root / f"{stamp}-{os.getpid()}-{n}"
        folder.mkdir(parents=True, mode=0o700)
        files = []
        for i, ch in enumerate(plan.changes):
            entry: dict[str, Any] = {"path": str(ch.path), "existed": ch.old is not None,
                                     "old_sha256": _sha(ch.old), "new_sha256": _sha(ch.new)}
            if ch.old is not None:
                st = ch.path.stat()
                entry.update(backup=f"{i:03d}.bak", mode=st.st_mode & 0o7777,
                             uid=st.st_uid, gid=st.st_gid)
                atomic_write(folder / entry["backup"], ch.old, mode=0o600)
            else:  # a new file: readable by Asterisk, owned like its folder
                st = ch.path.parent.stat()
                entry.update(mode=0o644, uid=st.st_uid, gid=st.st_gid)
            files.append(entry)
        manifest = {"created": stamp, "files": files, "state": "writing"}
        atomic_write(folder / "manifest.json", json.dumps(manifest, indent=2).encode(), 0o600)
        return folder, manifest

    def _mark(self, folder: Path, manifest: dict[str, Any], state: str) -> None:
        manifest["state"] = state
        atomic_write(folder / "manifest.json", json.dumps(manifest, indent=2).encode(), 0o600)

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        if not self.root.is_dir():
            return None
        for folder in sorted(self.root.iterdir(), reverse=True):
            try:
                manifest = json.loads((folder / "manifest.json").read_text())
            except (OSError, ValueError):
                continue
            return folder, manifest
        return None

    # ------------------------------------------------------------ apply / restore

    def apply(self, plan: Plan, reload: bool, verify_endpoint: str) -> Outcome:
        folder, manifest = self._new_backup(plan)
        written: list[Path] = []
        try:
            for i, ch in enumerate(plan.changes):
                mode = manifest["files"][i].get("mode", 0o640)
                atomic_write(ch.path, ch.new, mode=mode)
                _own_like(ch.path, manifest["files"][i])
                written.append(ch.path)
                self.between_files(i)
        except BaseException as exc:
            self._restore(folder, manifest)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise ApplyFailed(f"writing failed ({exc}); every file was restored") from None
        self._mark(folder, manifest, "written")
        if not reload:
            return Outcome(folder, tuple(written), False, "reload skipped (--no-reload)")
        why = self.asterisk.unavailable()
        if why is not None:
            return Outcome(folder, tuple(written), False,
                           f"{why}: files written, reload skipped")
        errors = self.asterisk.reload()
        shown = self.asterisk.show_endpoint(verify_endpoint) if not errors else None
        if errors or shown is None:
            self._restore(folder, manifest)
            self.asterisk.reload()
            problem = "; ".join(errors) if errors else \
                f"after the reload Asterisk has no endpoint {verify_endpoint}"
            raise ApplyFailed(f"Asterisk did not accept the new config ({problem}); every file "
                              "was restored and Asterisk reloaded")
        return Outcome(folder, tuple(written), True,
                       f"Asterisk reloaded; endpoint {shown.name} is loaded "
                       f"(transport {shown.transport})")

    def _restore(self, folder: Path, manifest: dict[str, Any]) -> list[Path]:
        restored = []
        for entry in manifest["files"]:
            path = Path(entry["path"])
            if entry["existed"]:
                data = (folder / entry["backup"]).read_bytes()
                if _sha(data) != entry["old_sha256"]:
                    raise InputError(str(folder), f"backup of {path} is damaged; not restored")
                atomic_write(path, data, mode=entry.get("mode", 0o640))
                _own_like(path, entry)
            else:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
            restored.append(path)
        self._mark(folder, manifest, "rolled back")
        return restored

    def rollback(self, reload: bool) -> tuple[Path, list[Path], str]:
        last = self.latest()
        if last is None:
            raise ApplyFailed(f"no backup in {self.root}: nothing to roll back")
        folder, manifest = last
        if manifest.get("state") == "rolled back":
            raise ApplyFailed(f"the last change ({folder.name}) was already rolled back")
        restored = self._restore(folder, manifest)
        note = "reload skipped (--no-reload)"
        if reload:
            why = self.asterisk.unavailable()
            if why is not None:
                note = f"{why}: reload skipped"
            else:
                errors = self.asterisk.reload()
                note = "Asterisk reloaded" if not errors else "reload reported: " + \
                    "; ".join(errors)
        return folder, restored, note


def _own_like(path: Path, entry: dict[str, Any]) -> None:
    if "uid" in entry and os.geteuid() == 0:
        try:
            os.chown(path, entry["uid"], entry["gid"])
        except OSError:
            pass
