"""The host's doors: its files, the commands it runs, its clock. (The network's door is
:mod:`pbx_bridge.net`, HTTP's :mod:`pbx_bridge.amazon.http`.)

Library code receives these as arguments; tests pass real ones pointed at fixture trees and
loopback servers instead of patching internals.
"""

from __future__ import annotations

import glob as _glob
import os
import stat
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ETC_ASTERISK = "/etc/asterisk"


class NotRegularFile(OSError):
    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path} is a {kind}, not a regular file")
        self.kind = kind


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISDIR, "directory")):
        if test(mode):
            return name
    return "special file"


class FileSystem:
    """Rooted file access.

    Asterisk config names files relative to its config dir or by absolute path, usually under
    ``/etc/asterisk``. When the config tree being read lives elsewhere (a staging copy, a test
    fixture), absolute paths under ``/etc/asterisk`` are mapped into ``asterisk_dir``.
    """

    def __init__(self, asterisk_dir: str | os.PathLike[str]) -> None:
        self.asterisk_dir = Path(asterisk_dir)

    def host_path(self, config_path: str) -> Path:
        if config_path == ETC_ASTERISK or config_path.startswith(ETC_ASTERISK + "/"):
            rest = config_path[len(ETC_ASTERISK) :].lstrip("/")
            return self.asterisk_dir / rest if rest else self.asterisk_dir
        if os.path.isabs(config_path):
            return Path(config_path)
        return self.asterisk_dir / config_path

    def read_bytes(self, path: Path) -> bytes:
        """A regular file's bytes. Anything else (a FIFO, a socket, a device such as
        ``/dev/zero`` or ``/dev/stdin``) raises :class:`NotRegularFile` without reading: opened
        non-blocking, so not even a FIFO's open waits."""
        mode = os.stat(path).st_mode  # a socket cannot even be opened: say what it is
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, _kind(mode))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NotRegularFile(path, _kind(st.st_mode))
            os.set_blocking(fd, True)
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read()
        finally:
            os.close(fd)

    def stat(self, path: Path) -> os.stat_result:
        return os.stat(path)

    def glob(self, pattern: Path) -> list[Path]:
        return [Path(p) for p in sorted(_glob.glob(str(pattern)))]


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class Runner:
    """Runs host commands (read-only ones, for the preflight)."""

    def which(self, name: str) -> str | None:
        return shutil.which(name)

    def run(self, argv: list[str], timeout: float = 10.0) -> CommandResult:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False,
            errors="replace",
        )
        return CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)


class Clock:
    """Wall time, a monotonic timer, and sleeping: tests pass a clock that only pretends."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
