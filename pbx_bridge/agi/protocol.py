"""The AGI protocol as pure functions: the environment header, reply lines, and quoting.

Asterisk sends ``agi_name: value`` lines ending with a blank line; each command gets a reply
such as ``200 result=1 (7204)``, ``200 result=0``, ``510 Invalid or unknown command`` or a
multi-line ``520-...`` usage message; ``HANGUP`` may arrive at any time.
"""

from __future__ import annotations

import re

MAX_HEADER_LINES = 200
_REPLY = re.compile(r"^(\d{3})(?:[ -](.*))?$")
_RESULT = re.compile(r"^result=(-?\d+)(?:\s+\((.*)\))?(?:\s+(.*))?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AgiError(Exception):
    """The other side broke the protocol, went away, or took too long."""


class Reply:
    """One reply from Asterisk. (A plain class: process AGI imports no dataclasses, to start
    fast.)"""

    __slots__ = ("code", "result", "data", "text")

    def __init__(self, code: int, result: str | None, data: str | None, text: str) -> None:
        self.code = code
        self.result = result
        self.data = data
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reply) and (self.code, self.result, self.data, self.text) == \
            (other.code, other.result, other.data, other.text)

    def __repr__(self) -> str:
        return f"Reply({self.code!r}, {self.result!r}, {self.data!r}, {self.text!r})"

    @property
    def ok(self) -> bool:
        return self.code == 200 and self.result not in (None, "-1")


def parse_env_line(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep or not name.startswith("agi_") or not name[4:].replace("_", "").isalnum():
        raise AgiError(f"not an AGI header line: {line[:60]!r}")
    return name, value.strip()


def parse_reply(line: str) -> Reply:
    """One reply line (the last line of a multi-line 520 reply)."""
    line = line.strip()
    if line == "HANGUP":
        raise AgiError("the channel hung up")
    m = _REPLY.match(line)
    if not m:
        raise AgiError(f"not an AGI reply: {line[:60]!r}")
    code, rest = int(m.group(1)), (m.group(2) or "")
    result = data = None
    r = _RESULT.match(rest)
    if r:
        result, data = r.group(1), r.group(2)
    return Reply(code, result, data, rest)


def quote(value: str) -> str:
    """An AGI argument that cannot break out of its quotes or inject a second command:
    control characters (newlines first) are dropped, backslash and quote escaped."""
    clean = _CONTROL.sub("", value)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def set_variable(name: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\([A-Za-z0-9_-]*\))?", name):
        raise ValueError(f"not a channel variable name: {name!r}")
    return f"SET VARIABLE {name} {quote(value)}"


def args_of(env: dict[str, str]) -> list[str]:
    out = []
    n = 1
    while f"agi_arg_{n}" in env:
        out.append(env[f"agi_arg_{n}"])
        n += 1
    return out
