"""The state dir's safety rules: who may write what pbx-bridge later trusts, and one writer at
a time.

The state dir holds secrets (the token cache), what rollback trusts (backups) and the local
mapping database: all private to the user who runs pbx-bridge (root on a PBX). The only thing
meant for another user is the published routes file the AGI reads (``routes.json``), which
holds no secret. So the dir itself is made 0711 (others may pass through it to that one file,
not list it or write in it), and every writing command takes group/other write access away
again, whatever ``chmod -R`` a user ran.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import InputError, PbxBridgeError

DIR_MODE = 0o711
LOCK_NAME = "pbx-bridge.lock"


class Busy(PbxBridgeError):
    """Another pbx-bridge that writes the state is running (exit 1)."""


def run_as_owner(state_dir: Path) -> str:
    """The advice for a state dir this user may not read: who may."""
    try:
        import pwd
        uid = os.stat(state_dir).st_uid
        try:
            who = f"user {pwd.getpwuid(uid).pw_name}"
        except KeyError:
            who = f"uid {uid}"
        owner = f" (or as the owner of {state_dir}, {who})" if uid != 0 else \
            f" (or as the owner of {state_dir})"
    except OSError:  # its own parent is closed to us too
        owner = f" (or as the owner of {state_dir})"
    return "run as root" + owner


def read_error(path: Path, exc: OSError, what: str, state_dir: Path | None = None
               ) -> InputError:
    """Why ``path`` (in the state dir) could not be read. Permission is not corruption: the
    advice is to run as someone who may read it, never to move the file away (that would
    lose the trunk id, the mappings or the backups)."""
    where = state_dir or path.parent
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return InputError(str(path), f"cannot read {what}: permission denied; "
                          f"{run_as_owner(where)}")
    return InputError(str(path), f"cannot read {what}: {exc.strerror or exc}")


def untrusted(path: Path, st: os.stat_result | None = None) -> str | None:
    """Why ``path`` cannot be trusted (owned by another user, or writable by group or
    others), or None. Symlinks are not followed."""
    st = st or os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not by the user running pbx-bridge " \
               f"(uid {os.geteuid()})"
    if st.st_mode & 0o022:
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def prepare(state_dir: Path) -> Path:
    """Create the state dir if needed (0711) and take away group/other write access from it
    and from what pbx-bridge keeps in it. Refuses a dir owned by another user, or a shared
    sticky one such as /tmp (never chmodded)."""
    try:
        created = not state_dir.exists()
        state_dir.mkdir(parents=True, exist_ok=True)
        st = os.lstat(state_dir)
    except PermissionError as exc:
        raise InputError(str(state_dir), f"cannot create or enter the state dir: "
                         f"{exc.strerror or exc}; {run_as_owner(state_dir)}") from None
    except OSError as exc:
        raise InputError(str(state_dir), f"cannot create the state dir: "
                         f"{exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(str(state_dir), "the state dir is not a directory")
    if st.st_uid != os.geteuid():
        if st.st_uid == 0:  # never hand root's state (credentials, token) to another user
            raise InputError(str(state_dir), "the state dir is root's: run pbx-bridge as root")
        raise InputError(str(state_dir), f"the state dir is owned by uid {st.st_uid}; run "
                         f"pbx-bridge as that user, or: chown {os.geteuid()} {state_dir}")
    if st.st_mode & stat.S_ISVTX:
        raise InputError(str(state_dir), "the state dir is a shared folder (sticky, like /tmp); "
                         "give pbx-bridge a folder of its own, e.g. /var/lib/pbx-bridge")
    try:
        mode = DIR_MODE if created else stat.S_IMODE(st.st_mode) & ~0o022
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(state_dir, mode)
        for name, mode in (("backups", 0o700),):
            sub = state_dir / name
            if sub.is_dir() and not sub.is_symlink() and \
                    stat.S_IMODE(sub.stat().st_mode) != mode:
                os.chmod(sub, mode)
        for name in ("token.json", "state.json", "pbx-bridge.sqlite",
                     "pbx-bridge.sqlite-wal", "pbx-bridge.sqlite-shm", LOCK_NAME):
            f = state_dir / name
            if f.is_file() and not f.is_symlink() and stat.S_IMODE(f.stat().st_mode) & 0o077:
                os.chmod(f, 0o600)
    except OSError as exc:
        raise InputError(str(state_dir), f"cannot tighten the state dir's permissions: "
                         f"{exc.strerror or exc}") from None
    return state_dir


def _taken(fd: int, how: int) -> str | None:
    """Take the lock on ``fd`` (``how``: LOCK_SH or LOCK_EX) without waiting: None when
    taken, else what its holder wrote in it ("pid command", "" when nothing)."""
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    return None


def holder(state_dir: Path) -> str | None:
    """Who holds the state dir's write lock now ("pid command"), or None: read-only, so a
    reader (rooms plan, status) can tell that what it reads is a moment of a run."""
    try:
        fd = os.open(state_dir / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            text = _taken(fd, fcntl.LOCK_SH)
        except OSError:
            return None
        if text is not None:
            return text or "?"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def exclusive(state_dir: Path, command: str) -> Iterator[None]:
    """Hold the state dir's write lock for ``command``; a second writer gets :class:`Busy`
    at once. The lock is the kernel's (``flock``), so it dies with its process: a killed run
    never blocks the next one."""
    prepare(state_dir)
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise InputError(str(path), f"cannot open the lock file: {exc.strerror or exc}") \
            from None
    try:
        busy = _taken(fd, fcntl.LOCK_EX)
        if busy is not None:
            holder = busy.split()
            pid = holder[0] if holder else "?"
            what = " ".join(holder[1:]) or "command"
            raise Busy(f"another pbx-bridge {what} is running (pid {pid}); wait for it to "
                       f"finish (lock: {path})")
        try:  # who holds it, for the next one's message; a full disk only loses the note
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
        except OSError:
            pass
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the lock
