"""The running Asterisk, through ``asterisk -rx`` (the command door), and pure parsers of what
its CLI prints (tested against output recorded from a real Asterisk 22)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from typing import TYPE_CHECKING

from ..host import Runner

if TYPE_CHECKING:
    from .ami import AmiClient

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


def show_fields(text: str) -> dict[str, str]:
    """The ``ParameterName : ParameterValue`` rows of a ``pjsip show <object> NAME``."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([a-z_0-9]+)\s+:\s?(.*)$", line)
        if m:
            out.setdefault(m.group(1), m.group(2).strip())
    return out


RELOAD_COMMANDS = ("module reload res_pjsip.so", "module reload res_rtp_asterisk.so",
                   "dialplan reload")


def reload_hint(cli: "tuple[str, ...]" = ("asterisk",)) -> str:
    """The commands that reload what the trunk config touches, for a person to run."""
    return " && ".join(f"{' '.join(cli)} -rx '{c}'" for c in RELOAD_COMMANDS)


FAILURE_WORDS = re.compile(r"(?i)\b(error|unable to|failed|not found|no such module)\b")


class Asterisk:
    """A running Asterisk, whichever way its CLI is reached."""

    @property
    def local(self) -> bool:
        """Whether Asterisk runs on this host (so its files and ports are ours to check)."""
        return False

    def unavailable(self) -> str | None:
        """Why we cannot talk to a running Asterisk, or None when we can."""
        raise NotImplementedError

    note = ""  # a word on how Asterisk was reached, when not the way configured

    @property
    def runs(self) -> bool:
        """After :meth:`unavailable` gave a reason: whether Asterisk evidently runs all the
        same (its AMI port answered but refused us), so a reload that could not be done is a
        failure, not "Asterisk is not running"."""
        return False

    @property
    def how(self) -> str:
        """How this door reaches Asterisk, for messages."""
        return "Asterisk"

    def _run(self, command: str) -> tuple[bool, str]:
        raise NotImplementedError

    def rx(self, command: str) -> tuple[bool, str]:
        ok, text = self._run(command)
        text = text.strip()
        return ok and not FAILURE_WORDS.search(text), text

    def reload(self) -> list[str]:
        """Reload what the trunk config touches; the errors, if any."""
        errors = []
        for cmd in RELOAD_COMMANDS:
            ok, text = self.rx(cmd)
            if not ok:
                errors.append(f"'{cmd}': {text.splitlines()[0] if text else 'failed'}")
        return errors

    def close(self) -> None:
        pass


class AsteriskCli(Asterisk):
    """Through ``asterisk -rx`` (the command door)."""

    def __init__(self, runner: Runner, command: "str | tuple[str, ...]" = "asterisk") -> None:
        """``command`` is how the CLI is run (``[pbx] asterisk_cli``), e.g.
        ``("asterisk", "-C", "/etc/asterisk/asterisk.conf")``; ``-rx CMD`` is appended."""
        self.runner = runner
        self.command = (command,) if isinstance(command, str) else tuple(command)

    @property
    def local(self) -> bool:
        return True

    @property
    def how(self) -> str:
        return f"the CLI ({' '.join(self.command)})"

    def unavailable(self) -> str | None:
        if self.runner.which(self.command[0]) is None:
            return f"Asterisk is not installed here ({self.command[0]} not found)"
        r = self.runner.run([*self.command, "-rx", "core show version"], timeout=15)
        text = r.stdout + r.stderr
        if r.returncode != 0 or any(s in text for s in NOT_RUNNING):
            return "Asterisk is not running"
        return None

    def _run(self, command: str) -> tuple[bool, str]:
        r = self.runner.run([*self.command, "-rx", command], timeout=30)
        return r.returncode == 0, r.stdout + r.stderr


class AsteriskAmi(Asterisk):
    """Through the Asterisk Manager Interface's ``Command`` action, when [ami] is set."""

    def __init__(self, client: "AmiClient") -> None:
        self.client = client
        self.connected = False

    @property
    def local(self) -> bool:
        return self.client.local

    @property
    def how(self) -> str:
        return f"AMI ({self.client.host}:{self.client.port})"

    @property
    def runs(self) -> bool:
        return self.client.answered  # an AMI banner was seen: Asterisk is up

    def unavailable(self) -> str | None:
        from .ami import AmiError
        try:
            self.client.connect()
        except (AmiError, OSError) as exc:
            try:
                self.client.close()
            except OSError:
                pass
            return f"Asterisk is not reachable over AMI ({exc})"
        self.connected = True
        return None

    def close(self) -> None:
        if self.connected:
            self.client.close()
            self.connected = False

    def _run(self, command: str) -> tuple[bool, str]:
        from .ami import AmiError
        if not self.connected and self.unavailable() is not None:
            return False, "AMI not reachable"
        try:
            return self.client.command(command)
        except AmiError as exc:
            return False, str(exc)


class AsteriskAmiOrCli(Asterisk):
    """AMI when ``[ami]`` is set, and the CLI (``[pbx] asterisk_cli``) when AMI fails (a wrong
    secret, AMI off): whichever reaches the running Asterisk first is used for the rest."""

    def __init__(self, ami: AsteriskAmi, cli: AsteriskCli) -> None:
        self.ami = ami
        self.cli = cli
        self.active: Asterisk | None = None
        self.tried: dict[str, str] = {}  # door -> why it failed
        self.note = ""  # said when the CLI stood in for AMI
        self.why: str | None = None  # why neither door reached Asterisk

    @property
    def local(self) -> bool:
        return (self.active or self.ami).local

    @property
    def how(self) -> str:
        return (self.active or self.ami).how

    @property
    def runs(self) -> bool:
        return self.ami.runs or self.cli.runs

    def unavailable(self) -> str | None:
        if self.active is not None:
            return None
        if self.why is not None:
            return self.why
        why_ami = self.ami.unavailable()
        if why_ami is None:
            self.active = self.ami
            return None
        why_cli = self.cli.unavailable()
        if why_cli is None:
            self.active = self.cli
            self.note = f"{why_ami}; reached it through {self.cli.how} instead"
            return None
        self.why = f"{why_ami}; through {self.cli.how}: {why_cli}"
        return self.why

    def _run(self, command: str) -> tuple[bool, str]:
        if self.active is None and self.unavailable() is not None:
            return False, "Asterisk not reachable over AMI nor the CLI"
        assert self.active is not None
        return self.active._run(command)

    def close(self) -> None:
        self.ami.close()
