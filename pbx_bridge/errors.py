"""One base error for the package; the CLI maps each kind to an exit code."""

from __future__ import annotations


class PbxBridgeError(Exception):
    """Base of every expected error. ``str(err)`` is a one-line message for the user."""

    exit_code = 1


class UsageError(PbxBridgeError):
    """Bad flags or unreadable input given by the user (exit 2)."""

    exit_code = 2


class InputError(PbxBridgeError):
    """A file or directory named by the user is missing or unreadable (exit 2)."""

    exit_code = 2

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
