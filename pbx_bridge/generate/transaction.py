"""Writes are transactions: back up every file touched, write each atomically, reload
Asterisk and read the result back, and roll everything back if anything fails.

A backup is a folder in the state dir with a manifest written *before* the first file is
replaced, so that a crash or kill at any moment leaves each file old or new (never partial) and
``--rollback`` can always restore the old bytes. Backups are kept, one per change, so a
rollback can go back step by step (or ``--to`` a change) down to the untouched files.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..asterisk.cli import Asterisk, reload_hint
from ..errors import InputError, PbxBridgeError
from ..fileio import atomic_write, fsync_dir
from ..statedir import prepare, read_error, untrusted
from .plan import FileChange, text_lines
from .verify import LogCapture, Verdict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..settings import Settings
    from .render import TrunkConfig


class ApplyFailed(PbxBridgeError):
    pass


class RestartNeeded(PbxBridgeError):
    """The files are right, but the running Asterisk keeps the old transport until restarted
    (exit 1: it does not run what is on disk yet)."""


# Asterisk 22 never closes a TLS transport on reload: removed from the config it keeps
# listening, and re-added it comes back with its old settings (seen on 22.10.1).
STALE_TRANSPORT = (" (a TLS transport Asterisk started keeps its old port and settings until "
                   "Asterisk restarts: asterisk -rx 'core restart gracefully')")

Check = Callable[[Asterisk, Callable[[], list[str]]], Verdict]


class NotReloaded(ApplyFailed):
    """Asterisk runs but could not be reached to reload it (a wrong AMI secret and no working
    CLI): the files are written (or restored), and a person must reload (exit 1)."""


# atomic_write's temporary files: ".NAME.XXXXXXXX.tmp" (tempfile.mkstemp's 8 characters)
_TEMP = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.tmp$")


def key_mode(group: str | None) -> tuple[int, int | None]:
    """How a private key is written: 0640 to ``group`` when this host has it, else 0600
    (with the gid to give it, None to keep the file's). Never readable by others."""
    import grp
    if group:
        try:
            return 0o640, grp.getgrnam(group).gr_gid
        except KeyError:
            pass
    return 0o600, None


def key_group_warning(group: str | None, changes: Sequence[FileChange]) -> str | None:
    """What to say when a key is about to be written 0600 for want of the key group."""
    if not any(ch.private for ch in changes) or key_mode(group)[1] is not None:
        return None
    return (f"warning: [pbx] key_group {group!r} is no group of this host: the private key is "
            "written 0600, readable by its owner only (set key_group to the group Asterisk "
            "runs as)")


def _sha(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


@dataclass(frozen=True)
class Outcome:
    backup: Path
    written: tuple[Path, ...]
    reloaded: bool
    reload_note: str


class Transaction:
    """``asterisk_dir`` is the tree this transaction may write: backups record it (resolved)
    and rollback restores only a backup of that tree, only inside it."""

    def __init__(self, state_dir: Path, asterisk_dir: Path, asterisk: Asterisk,
                 between_files: Callable[[int], None] | None = None,
                 key_group: str | None = "asterisk", command: str = "generate") -> None:
        self.root = state_dir / "backups"
        self.command = command  # recorded in each backup's manifest: which command made it
        self.last_backup: Path | None = None  # the backup this transaction made
        self.log_record = state_dir / "reload-log-channel"  # see LogCapture
        self.key_group = key_group
        self.asterisk_dir = asterisk_dir.resolve()
        self.asterisk = asterisk
        # called after each file is written (tests inject a failure or a pause here)
        self.between_files = between_files or (lambda i: None)

    def _door_note(self, text: str) -> str:
        """``text``, after a word on how Asterisk was reached when AMI failed."""
        note = self.asterisk.note
        return f"{note}; {text}" if note else text

    def _unreachable(self, why: str, done: str, then: str) -> NotReloaded:
        """The error for a running Asterisk that could not be reloaded, naming the commands."""
        cli = getattr(getattr(self.asterisk, "cli", self.asterisk), "command", ("asterisk",))
        return NotReloaded(f"{done}, but Asterisk runs and could not be reloaded ({why}); "
                           f"reload it: {reload_hint(tuple(cli))}{then}")

    # ------------------------------------------------------------ backups

    def _inside(self, path: Path) -> Path:
        """``path`` resolved, which must lie inside the Asterisk dir."""
        real = path.parent.resolve() / path.name
        if not real.is_relative_to(self.asterisk_dir) or real == self.asterisk_dir:
            raise ApplyFailed(f"{path} is outside the Asterisk dir {self.asterisk_dir}; "
                              "pbx-bridge writes only inside it")
        return real

    def _new_backup(self, changes: Sequence[FileChange]) -> tuple[Path, dict[str, Any]]:
        prepare(self.root.parent)
        self.root.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)  # mkdir's mode is cut by the umask; this is not
        now = time.time_ns()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9))
        # names sort in time order (backups() takes the newest by name): nanoseconds within
        # the second, fixed width, before the pid (two runs in one second: pids do not sort)
        final = self.root / f"{stamp}.{now % 10**9:09d}-{os.getpid()}"
        n = 0
        while final.exists():
            n += 1
            final = self.root / f"{stamp}.{now % 10**9:09d}-{os.getpid()}-{n}"
        # built under a name backups() skips, then renamed whole: a backup is there with its
        # manifest, or not at all (a run killed before that had replaced nothing)
        folder = self.root / f".new-{final.name}"
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)
        files = []
        for i, ch in enumerate(changes):
            path = self._inside(ch.path)
            entry: dict[str, Any] = {"path": str(path), "existed": ch.old is not None,
                                     "old_sha256": _sha(ch.old), "new_sha256": _sha(ch.new)}
            if ch.old is not None:
                st = path.stat()
                entry.update(backup=f"{i:03d}.bak", mode=st.st_mode & 0o777,
                             uid=st.st_uid, gid=st.st_gid)
                atomic_write(folder / entry["backup"], ch.old, mode=0o600)
            else:  # a new file: readable by Asterisk, owned like its folder
                st = path.parent.stat()
                entry.update(mode=0o644, uid=st.st_uid, gid=st.st_gid)
            if ch.private:  # a key: 0640 to the key group, or 0600, whatever it was before;
                # put back (on a rollback) never readable by others either
                mode, gid = key_mode(self.key_group)
                entry.update(private=True, old_mode=entry["mode"] & 0o640,
                             old_gid=entry["gid"], mode=mode,
                             gid=entry["gid"] if gid is None else gid)
            files.append(entry)
        manifest = {"created": stamp, "asterisk_dir": str(self.asterisk_dir), "files": files,
                    "state": "writing", "command": self.command}
        atomic_write(folder / "manifest.json", json.dumps(manifest, indent=2).encode(), 0o600)
        os.rename(folder, final)
        fsync_dir(self.root)
        self.last_backup = final
        return final, manifest

    def _mark(self, folder: Path, manifest: dict[str, Any], state: str) -> None:
        manifest["state"] = state
        atomic_write(folder / "manifest.json", json.dumps(manifest, indent=2).encode(), 0o600)

    def _trusted(self, path: Path) -> None:
        try:
            if os.geteuid() != 0 and os.lstat(path).st_uid == 0:  # root's: not forged, ours
                raise read_error(path, PermissionError(13, "Permission denied"),  # to leave
                                 "the backups", self.root.parent)
            why = untrusted(path)
        except OSError as exc:
            raise ApplyFailed(f"{path}: {exc.strerror or exc}") from None
        if why:
            raise ApplyFailed(f"refusing to roll back from {path}: it {why}, so anyone could "
                              "have forged it; inspect and remove it")

    def backups(self) -> list[tuple[Path, dict[str, Any]]]:
        """Every backup in the state dir, newest first, each checked to be ours alone."""
        try:
            if not stat.S_ISDIR(os.stat(self.root).st_mode):
                return []
            folders = sorted(self.root.iterdir(), reverse=True)  # closed to us: say so
            self._trusted(self.root)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise read_error(self.root, exc, "the backups", self.root.parent) from None
        out = []
        for folder in folders:
            if folder.name.startswith("."):
                continue  # one being built, or left by a killed run: never a backup
            self._trusted(folder)
            mf = folder / "manifest.json"
            try:
                raw = mf.read_bytes()
            except FileNotFoundError:
                continue  # killed before its manifest: nothing was written from it
            except OSError as exc:  # unreadable is not absent: say so, skip nothing silently
                raise read_error(mf, exc, "a backup's manifest", self.root.parent) from None
            self._trusted(mf)
            try:
                manifest = json.loads(raw)
            except ValueError:
                continue
            if isinstance(manifest, dict) and isinstance(manifest.get("files"), list):
                out.append((folder, manifest))
        return out

    def history(self) -> tuple[list[tuple[Path, dict[str, Any]]], int]:
        """This Asterisk dir's backups, newest first, and how many others the state dir
        holds (of other Asterisk dirs)."""
        found = self.backups()
        mine = [b for b in found if b[1].get("asterisk_dir") == str(self.asterisk_dir)]
        return mine, len(found) - len(mine)

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest backup of this transaction's Asterisk dir."""
        for folder, manifest in self.backups():
            if manifest.get("asterisk_dir") == str(self.asterisk_dir):
                return folder, manifest
        return None

    # ------------------------------------------------------------ apply / restore

    def apply(self, changes: Sequence[FileChange], reload: bool, check: Check) -> Outcome:
        """Back up, write (``changes``: a plan's, or renew-hook's certificate files), reload,
        and ``check`` what Asterisk loaded (given Asterisk and a function returning its log
        lines of the reload). On a failed check every file is restored and Asterisk
        reloaded; when only a restart is missing, the files are kept and
        :class:`RestartNeeded` says so."""
        try:
            folder, manifest = self._new_backup(changes)
        except OSError as exc:
            import shutil
            for half in self.root.glob(".new-*") if self.root.is_dir() else []:
                shutil.rmtree(half, ignore_errors=True)
            raise ApplyFailed(f"cannot back up into {self.root}: {exc.strerror or exc}; "
                              "nothing changed") from None
        written: list[Path] = []
        path = Path()
        try:
            for i, ch in enumerate(changes):
                entry = manifest["files"][i]
                path = Path(entry["path"])  # resolved, inside the Asterisk dir
                # a key gets its group before its bytes: never readable by a wrong group
                gid = int(entry["gid"]) if entry.get("private") and os.geteuid() == 0 else None
                atomic_write(path, ch.new, mode=entry.get("mode", 0o640), gid=gid)
                _own_like(path, entry)
                written.append(path)
                self.between_files(i)
        except BaseException as exc:
            # only what was replaced goes back: the rest is as it was (on a full or
            # read-only disk, rewriting it would fail too)
            self._restore(folder, manifest, only=set(written))
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ApplyFailed(f"cannot write {path}: {reason}; nothing changed" +
                              (f" ({len(written)} file(s) written before were restored)"
                               if written else "")) from None
        self._mark(folder, manifest, "written")
        if not reload:
            return Outcome(folder, tuple(written), False, "reload skipped (--no-reload)")
        why = self.asterisk.unavailable()
        if why is not None:
            if self.asterisk.runs:  # not "not running": a deploy must not read success
                raise self._unreachable(why, f"files written ({len(written)}; backup "
                                        f"{folder.name})", ", or fix [ami]/[pbx] asterisk_cli "
                                        "and run 'pbx-bridge generate --write' again: it "
                                        "reloads and checks the written change")
            return Outcome(folder, tuple(written), False,
                           f"{why}: files written, reload skipped")
        verdict = self._reload_checked(
            folder, manifest, check,
            lambda problem: f"Asterisk did not accept the new config ({problem}); every file "
                            "was restored and Asterisk reloaded" + STALE_TRANSPORT,
            f"files written ({len(written)}; backup {folder.name})")
        return Outcome(folder, tuple(written), True,
                       self._door_note(f"Asterisk reloaded; {verdict.summary}"))

    # ------------------------------------------------------------ an interrupted run

    def recover(self, keep: Sequence[Path] = (), undo: bool = True) -> list[str]:
        """Finish what a killed run left: its temporary files beside the files of ours
        (``keep``: the files this run will write; a backup's are added) and its unfinished
        backup folders are removed, and a run killed while replacing files (manifest
        "writing") is undone: every file it had listed gets its old bytes back. What was done,
        as sentences. A run killed later ("written": files replaced, Asterisk not yet
        reloaded or checked) is left for :meth:`unverified` to finish."""
        notes: list[str] = []
        last = self.latest()
        paths = {Path(p) for p in keep}
        if last is not None:
            paths |= {Path(e["path"]) for e in last[1].get("files", [])
                      if isinstance(e, dict) and isinstance(e.get("path"), str)}
        swept = 0
        for d in {p.parent for p in paths}:
            names = {p.name for p in paths if p.parent == d}
            try:
                entries = list(d.iterdir())
            except OSError:
                continue
            for entry in entries:
                m = _TEMP.match(entry.name)
                if m and m.group(1) in names and entry.is_file() and not entry.is_symlink():
                    try:
                        entry.unlink()
                        swept += 1
                    except OSError:
                        pass  # a read-only dir: the write that follows says so
        if self.root.is_dir():
            import shutil
            for entry in self.root.iterdir():
                if entry.name.startswith(".new-") and entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
        if swept:
            notes.append(f"removed {swept} temporary file(s) an interrupted run left")
        if undo and last is not None and last[1].get("state") == "writing":
            restored = self._restore(*last)
            notes.append(f"undid the interrupted change {last[0].name} (killed while writing): "
                         f"{len(restored)} file(s) have their old bytes back")
        return notes

    def unverified(self) -> tuple[Path, dict[str, Any]] | None:
        """The last change, when its files were written but Asterisk was never seen to run
        them (killed before or during the reload, or written with --no-reload)."""
        last = self.latest()
        return last if last is not None and last[1].get("state") == "written" else None

    def finish(self, folder: Path, manifest: dict[str, Any], check: Check) -> Outcome:
        """Reload and check the written, unverified change; restore it when the check
        fails (as :meth:`apply` would have)."""
        why = self.asterisk.unavailable()
        if why is not None:
            if self.asterisk.runs:
                raise self._unreachable(why, f"the change {folder.name} is written", "")
            return Outcome(folder, (), False, f"{why}: not reloaded")
        verdict = self._reload_checked(
            folder, manifest, check,
            lambda problem: f"the interrupted change {folder.name} does not load ({problem}); "
                            "its files were restored and Asterisk reloaded",
            f"the change {folder.name} is written")
        return Outcome(folder, (), True, self._door_note(
            f"finished the interrupted change {folder.name}: Asterisk reloaded; "
            f"{verdict.summary}"))

    def _reload_checked(self, folder: Path, manifest: dict[str, Any], check: Check,
                        refused: Callable[[str], str], written: str) -> Verdict:
        """Reload Asterisk and ``check`` what it loaded (its log lines of the reload at hand).
        Refused: the backup's files go back, Asterisk is reloaded again, and ApplyFailed says
        ``refused(why)``. Only a restart missing: the files stay, RestartNeeded says so after
        ``written``. Else the backup is marked verified."""
        verdict = None
        with LogCapture(self.asterisk, self.log_record) as capture:
            errors = self.asterisk.reload()
            if not errors:
                verdict = check(self.asterisk, capture.lines)
        if errors or (verdict is not None and not verdict.ok and not verdict.restart_needed):
            self._restore(folder, manifest)
            self.asterisk.reload()
            raise ApplyFailed(refused("; ".join(errors) if errors else
                                      "; ".join(verdict.problems if verdict else ())))
        assert verdict is not None
        if verdict.restart_needed:
            raise RestartNeeded(f"{written}, but {verdict.summary}: asterisk -rx 'core restart "
                                "gracefully'")
        self._mark(folder, manifest, "verified")
        return verdict

    def _restore(self, folder: Path, manifest: dict[str, Any],
                 only: set[Path] | None = None) -> list[Path]:
        """Put the backup's files back (``only`` those, when given); a file that already
        has its old bytes is left alone."""
        return self._put_back(folder, manifest, self._prepare(folder, manifest), only)

    def _prepare(self, folder: Path, manifest: dict[str, Any]
                 ) -> list[tuple[Path, dict[str, Any], bytes | None]]:
        """Every file of a backup, checked (inside the Asterisk dir, trusted, intact) and
        read, before any file is touched."""
        if manifest.get("asterisk_dir") != str(self.asterisk_dir):
            raise ApplyFailed(f"backup {folder.name} is of {manifest.get('asterisk_dir')}, not "
                              f"of {self.asterisk_dir}; not restored")
        # check every entry before touching any file
        todo: list[tuple[Path, dict[str, Any], bytes | None]] = []
        for entry in manifest["files"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or \
                    not Path(entry["path"]).is_absolute():
                raise ApplyFailed(f"backup {folder.name}: a damaged manifest entry; nothing "
                                  "restored")
            path = self._inside(Path(entry["path"]))
            data = None
            if entry.get("existed"):
                name = str(entry.get("backup", ""))
                if not re.fullmatch(r"[0-9]{3}\.bak", name):
                    raise ApplyFailed(f"backup {folder.name}: bad backup name {name!r}")
                self._trusted(folder / name)
                data = (folder / name).read_bytes()
                if _sha(data) != entry.get("old_sha256"):
                    raise InputError(str(folder), f"backup of {path} is damaged; not restored")
            todo.append((path, entry, data))
        return todo

    def _put_back(self, folder: Path, manifest: dict[str, Any],
                  todo: list[tuple[Path, dict[str, Any], bytes | None]],
                  only: set[Path] | None = None) -> list[Path]:
        restored: list[Path] = []
        for path, entry, data in todo:
            if only is not None and path not in only:
                continue
            try:
                if data is not None:
                    if entry.get("private"):  # the old key, never readable by others
                        entry = {**entry, "mode": int(entry.get("old_mode", 0o600)) & 0o640,
                                 "gid": entry.get("old_gid", entry.get("gid"))}
                    # permission bits only: never setuid, setgid or sticky from a manifest
                    mode = int(entry.get("mode", 0o640)) & 0o777
                    if _current(path) != data or entry.get("private"):
                        atomic_write(path, data, mode=mode)
                        _own_like(path, entry)
                else:
                    try:
                        path.unlink()
                    except FileNotFoundError:
                        pass
            except OSError as exc:
                raise ApplyFailed(f"cannot restore {path}: {exc.strerror or exc} "
                                  f"({len(restored)} file(s) restored before it); run "
                                  "'pbx-bridge generate --rollback' once it can be written") \
                    from None
            restored.append(path)
        self._mark(folder, manifest, "rolled back")
        return restored

    def to_undo(self, to: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
        """The backups a rollback restores, newest first. Without ``to``: the newest change
        not rolled back yet (so a second rollback goes one more step back). With ``to`` (a
        backup's id, or a unique start of one): that change and every later one not rolled
        back yet, so the files come back to what they were before it. Empty when all of
        those are rolled back already."""
        mine, others = self.history()
        if not mine:
            found = self.backups()
            other = f" (the latest is of {found[0][1].get('asterisk_dir')})" if found else ""
            raise ApplyFailed(f"no backup of {self.asterisk_dir} in {self.root}{other}: "
                              "nothing to roll back")
        live = [b for b in mine if b[1].get("state") != "rolled back"]
        if to is None:
            if not live:
                raise ApplyFailed(f"nothing to roll back: every change of "
                                  f"{self.asterisk_dir} in the backups ({len(mine)}) is "
                                  f"already rolled back; its files are as before the oldest, "
                                  f"{mine[-1][0].name}")
            return live[:1]
        hits = [b for b in mine if b[0].name == to] or \
            [b for b in mine if b[0].name.startswith(to)]
        if len(hits) != 1:
            from ..errors import UsageError
            what = "names several backups" if hits else f"is no backup of {self.asterisk_dir}"
            raise UsageError(f"--to {to} {what}; pbx-bridge generate --list-backups lists "
                             "them")
        upto = mine.index(hits[0])
        return [b for b in mine[:upto + 1] if b[1].get("state") != "rolled back"]

    def rollback_preview(self, to: str | None = None
                         ) -> tuple[list[Path], list[Restore]]:
        """What :meth:`rollback` would do, read-only: the backups it would undo (newest first)
        and, for each file whose bytes would change, what it holds now and what it would
        hold (the oldest undone backup's copy wins, as in the rollback)."""
        undo = self.to_undo(to)
        final: dict[Path, tuple[dict[str, Any], bytes | None]] = {}
        for folder, manifest in undo:  # newest first: an older backup's bytes win
            for path, entry, data in self._prepare(folder, manifest):
                final[path] = (entry, data)
        out = []
        for path, (entry, data) in final.items():
            now = _current(path)
            if now != data:
                out.append(Restore(path, now, data, bool(entry.get("private"))))
        return [folder for folder, _ in undo], sorted(out, key=lambda r: str(r.path))

    def rollback(self, reload: bool, to: str | None = None
                 ) -> tuple[list[Path], list[Path], str]:
        """Restore the backups :meth:`to_undo` names, newest first (each one checked before
        any file is touched), and reload. The backups undone, the files restored, and what
        the reload did."""
        undo = self.to_undo(to)
        if not undo:
            return [], [], "nothing to roll back"
        prepared = [(folder, manifest, self._prepare(folder, manifest))
                    for folder, manifest in undo]
        restored: list[Path] = []
        for folder, manifest, todo in prepared:
            restored += [p for p in self._put_back(folder, manifest, todo)
                         if p not in restored]
        folders = [folder for folder, _, _ in prepared]
        files = [e for _, manifest, _ in prepared for e in manifest["files"]]
        note = "reload skipped (--no-reload)"
        if reload:
            why = self.asterisk.unavailable()
            if why is not None:
                if self.asterisk.runs:
                    raise self._unreachable(why, f"rolled back {_changes(folders)} "
                                            f"({len(restored)} file(s) restored)", "")
                note = f"{why}: reload skipped"
            else:
                LogCapture(self.asterisk, self.log_record).remove_leftovers()
                errors = self.asterisk.reload()
                note = self._door_note("Asterisk reloaded" if not errors else
                                       "reload reported: " + "; ".join(errors))
                if any(Path(e["path"]).name.startswith("pjsip") for e in files):
                    note += STALE_TRANSPORT
        return folders, restored, note


@dataclass(frozen=True)
class Restore:
    """A file a rollback would put back: its bytes now and then (None: no such file)."""
    path: Path
    now: bytes | None
    then: bytes | None
    private: bool = False

    def diff(self) -> str:
        if self.private:  # a key's bytes are never shown
            return f"# {self.path}: private key " + ("removed\n" if self.then is None else
                                                      "restored\n")
        name = str(self.path)
        return "".join(difflib.unified_diff(
            text_lines(self.now), text_lines(self.then), "/dev/null" if self.now is None else name,
            "/dev/null" if self.then is None else name))


def _changes(folders: Sequence[Path]) -> str:
    return (f"the change {folders[0].name}" if len(folders) == 1 else
            f"{len(folders)} changes ({', '.join(f.name for f in folders)})")


def made_by(manifest: dict[str, Any]) -> str:
    """Which command made a backup: recorded since --list-backups exists; for older ones
    guessed (renew-hook writes only certificate and key files), with a question mark."""
    cmd = manifest.get("command")
    if isinstance(cmd, str) and cmd:
        return cmd
    paths = [str(e.get("path", "")) for e in manifest.get("files", []) if isinstance(e, dict)]
    return ("generate" if any(p.endswith(".conf") for p in paths) else "renew-hook") + "?"


def _current(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _own_like(path: Path, entry: dict[str, Any]) -> None:
    if "uid" in entry and os.geteuid() == 0:
        try:
            os.chown(path, int(entry["uid"]), int(entry["gid"]), follow_symlinks=False)
            os.chmod(path, int(entry.get("mode", 0o640)) & 0o777)  # chown may clear bits
        except (OSError, ValueError, TypeError):
            pass


def open_transaction(settings: "Settings", asterisk_dir: Path, command: str = "generate"
                     ) -> "Transaction":
    """The transaction of a command that writes Asterisk's config: reload over AMI when
    [ami] is configured, else through the CLI."""
    import sys

    from ..asterisk.ami import AmiClient
    from ..asterisk.cli import Asterisk, AsteriskAmi, AsteriskAmiOrCli, AsteriskCli
    from ..host import Runner
    asterisk: Asterisk = AsteriskCli(Runner(), settings.asterisk_cli)
    if settings.ami is not None:  # reload over AMI when it is configured, else the CLI
        host, port, user, secret = settings.ami
        asterisk = AsteriskAmiOrCli(AsteriskAmi(AmiClient(host, port, user, secret)),
                                    AsteriskCli(Runner(), settings.asterisk_cli))
    delay = float(os.environ.get("PBX_BRIDGE_WRITE_PAUSE", "0") or 0)  # crash-safety tests

    def pause(i: int) -> None:
        if delay:
            sys.stderr.write(f"wrote file {i + 1}\n")
            sys.stderr.flush()
            time.sleep(delay)
    return Transaction(settings.state_dir, asterisk_dir, asterisk, pause, settings.key_group,
                       command)


def check_running(settings: "Settings", config: TrunkConfig, asterisk_dir: Path) -> str:
    """Nothing to write: does the running Asterisk run what is on disk? (After a "restart
    needed", a re-run must not say all is well until Asterisk was restarted.) The verdict's
    words; ApplyFailed or RestartNeeded when it does not."""
    from .verify import checker
    tx = open_transaction(settings, asterisk_dir)
    try:
        why = tx.asterisk.unavailable()
        if why is not None:
            if tx.asterisk.runs:
                raise ApplyFailed(f"nothing to write, but Asterisk runs and could not be "
                                  f"checked ({why}): fix [ami] or [pbx] asterisk_cli")
            return f"{why}: not checked"
        verdict = checker(config, asterisk_dir)(tx.asterisk, list)
    finally:
        tx.asterisk.close()
    if verdict.restart_needed:
        raise RestartNeeded(f"nothing to write, but {verdict.summary}: asterisk -rx 'core "
                            "restart gracefully'")
    if not verdict.ok:
        raise ApplyFailed("nothing to write, but the running Asterisk does not match the "
                          f"config: {verdict.summary}; reload it (asterisk -rx 'module reload "
                          "res_pjsip.so') and look at its log")
    return verdict.summary
