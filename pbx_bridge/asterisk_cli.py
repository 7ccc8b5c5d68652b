"""The running Asterisk, through ``asterisk -rx`` (the command door), and pure parsers of what
its CLI prints (tested against output recorded from a real Asterisk 22)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .doors import Runner

NOT_RUNNING = ("Unable to connect to remote asterisk", "does /var/run/asterisk",
               "Connection refused")


@dataclass(frozen=True)
class ShownEndpoint:
    name: str
    transport: str | None
    aors: tuple[str, ...]
    matches: tuple[str, ...]


def parse_show_endpoint(text: str) -> ShownEndpoint | None:
    """``pjsip show endpoint NAME`` output; None when Asterisk says there is no such object."""
    if "Unable to find object" in text:
        return None
    body = text.split("=" * 20, 1)[-1]
    name = transport = None
    aors: list[str] = []
    matches: list[str] = []
    for line in body.splitlines():
        m = re.match(r"\s*(Endpoint|Aor|Transport|Match):\s+(\S+)", line)
        if not m:
            continue
        kind, value = m.groups()
        if kind == "Endpoint" and name is None:
            name = value.split("/")[0]
        elif kind == "Aor":
            aors.append(value)
        elif kind == "Transport" and transport is None:
            transport = value
        elif kind == "Match":
            matches.append(value)
    if name is None:
        return None
    return ShownEndpoint(name, transport, tuple(aors), tuple(matches))


class AsteriskCli:
    def __init__(self, runner: Runner, binary: str = "asterisk") -> None:
        self.runner = runner
        self.binary = binary

    def unavailable(self) -> str | None:
        """Why we cannot talk to a running Asterisk, or None when we can."""
        if self.runner.which(self.binary) is None:
            return "Asterisk is not installed here"
        r = self.runner.run([self.binary, "-rx", "core show version"], timeout=15)
        text = r.stdout + r.stderr
        if r.returncode != 0 or any(s in text for s in NOT_RUNNING):
            return "Asterisk is not running"
        return None

    def rx(self, command: str) -> tuple[bool, str]:
        r = self.runner.run([self.binary, "-rx", command], timeout=30)
        text = (r.stdout + r.stderr).strip()
        failed = r.returncode != 0 or bool(re.search(
            r"(?i)\b(error|unable to|failed|not found|no such module)\b", text))
        return not failed, text

    def reload(self) -> list[str]:
        """Reload what the trunk config touches; the errors, if any."""
        errors = []
        for cmd in ("module reload res_pjsip.so", "module reload res_rtp_asterisk.so",
                    "dialplan reload"):
            ok, text = self.rx(cmd)
            if not ok:
                errors.append(f"'{cmd}': {text.splitlines()[0] if text else 'failed'}")
        return errors

    def show_endpoint(self, name: str) -> ShownEndpoint | None:
        r = self.runner.run([self.binary, "-rx", f"pjsip show endpoint {name}"], timeout=30)
        return parse_show_endpoint(r.stdout)
