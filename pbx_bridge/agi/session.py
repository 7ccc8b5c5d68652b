"""One AGI conversation, for process AGI (stdin/stdout) and FastAGI (a socket) alike: read the
header, decide with the route, set the variables, and never let anything crash the call."""

from __future__ import annotations

import os
import select
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Protocol

from .protocol import (MAX_HEADER_LINES, AgiError, args_of, parse_env_line, parse_reply,
                       set_variable)
from .routes import ROUTES, Decision, Table, load_table


class Channel(Protocol):
    def readline(self) -> str: ...
    def write(self, text: str) -> None: ...


class FdChannel:
    """Process AGI: Asterisk on stdin/stdout, with a timeout on every read."""

    def __init__(self, rfile: BinaryIO, wfile: BinaryIO, timeout: float) -> None:
        self.rfile = rfile
        self.wfile = wfile
        self.timeout = timeout
        self.buf = b""

    def readline(self) -> str:
        fd = self.rfile.fileno()
        while b"\n" not in self.buf:
            ready, _, _ = select.select([fd], [], [], self.timeout)
            if not ready:
                raise AgiError(f"no answer from Asterisk within {self.timeout:g} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AgiError("Asterisk closed the connection")
            self.buf += chunk
            if len(self.buf) > 65536:
                raise AgiError("line too long")
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")

    def write(self, text: str) -> None:
        try:
            self.wfile.write(text.encode("utf-8"))
            self.wfile.flush()
        except (BrokenPipeError, OSError) as exc:
            raise AgiError(f"Asterisk went away ({exc})") from None


class SocketChannel(FdChannel):
    """FastAGI: the socket's own timeout bounds every read."""

    def readline(self) -> str:
        try:
            raw = self.rfile.readline(65537)
        except OSError as exc:  # socket.timeout is an OSError
            raise AgiError(f"no answer within {self.timeout:g} s ({exc})") from None
        if not raw:
            raise AgiError("the client closed the connection")
        if not raw.endswith(b"\n"):
            raise AgiError("the client closed the connection mid-line")
        return raw.decode("utf-8", "replace").rstrip("\r\n")


def read_header(ch: Channel) -> tuple[dict[str, str], str | None]:
    """The ``agi_*`` environment, and what was wrong with it (None when it was fine)."""
    env: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = ch.readline()
        if line == "":
            return env, None
        try:
            name, value = parse_env_line(line)
        except AgiError as exc:
            return env, str(exc)
        env[name] = value
    return env, "header too long"


@dataclass
class TableSource:
    """The mapping table, re-read only when the state database changes."""

    state_dir: Path
    _cached: Table | None = None
    _stamp: tuple[float, ...] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> tuple[Table | None, str]:
        db = self.state_dir / "pbx-bridge.sqlite"
        try:
            stamp = tuple(os.stat(p).st_mtime_ns for p in (db, Path(f"{db}-wal"))
                          if os.path.exists(p))
            if not stamp:
                return None, f"no state database at {db} (run 'pbx-bridge rooms apply')"
            with self._lock:
                if stamp != self._stamp or self._cached is None:
                    self._cached = load_table(self.state_dir)
                    self._stamp = stamp
                return self._cached, ""
        except (OSError, sqlite3.Error) as exc:
            return None, f"state database unreadable: {exc}"


def converse(ch: Channel, route_name: str | None, argv_args: list[str] | None,
             tables: TableSource, log: Callable[[str], None]) -> Decision:
    """Run one call's AGI. Always ends with a log line, never raises.

    Process AGI passes its command-line arguments (Asterisk's ``agi_arg_N`` there also holds
    the words before them); FastAGI passes None and the arguments come from ``agi_arg_N``."""
    decision: Decision | None = None
    try:
        env, problem = read_header(ch)
        name = route_name or env.get("agi_network_script", "").split("?")[0].strip("/")
        route = ROUTES.get(name)
        args = args_of(env) if argv_args is None else argv_args
        if problem is not None:
            decision = Decision((("ALEXA_MAPPED", "0"),), f"{name or '?'}: bad AGI header "
                                f"({problem})")
        elif route is None:
            decision = Decision((("ALEXA_MAPPED", "0"),), f"unknown route {name[:40]!r} "
                                f"(known: {', '.join(ROUTES)})")
        else:
            table, why = tables.get()
            decision = route(env, args, table, why)
        for var, value in decision.variables:
            ch.write(set_variable(var, value) + "\n")
            line = ch.readline()
            while line.startswith("520-"):  # a usage message: read to its last line
                line = ch.readline()
            reply = parse_reply(line)
            if reply.code != 200:
                raise AgiError(f"Asterisk answered {reply.code} {reply.text[:60]!r} to SET "
                               f"VARIABLE {var}")
        log(decision.log)
    except AgiError as exc:
        text = decision.log + "; " if decision else ""
        log(f"{text}AGI ended early: {exc}")
    except Exception as exc:  # the call must go on whatever happens here
        log(f"AGI error: {type(exc).__name__}: {exc}")
    return decision or Decision((), "")
