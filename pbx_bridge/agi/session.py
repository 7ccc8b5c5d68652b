"""One AGI conversation, for process AGI (stdin/stdout) and FastAGI (a socket) alike: read the
header, decide with the route, set the variables, and never let anything crash the call."""

from __future__ import annotations

import _thread
import os
import select

TYPE_CHECKING = False
if TYPE_CHECKING:  # process AGI must start fast: no typing, dataclasses or pathlib imports
    from typing import BinaryIO, Callable, Generator, Optional, Protocol

from .protocol import (MAX_HEADER_LINES, AgiError, args_of, parse_env_line, parse_reply,
                       quote, set_variable)
from ..rooms.routes import ROUTES_NAME
from .routes import ROUTES, Decision, Table, load_table


if TYPE_CHECKING:
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


class TableSource:
    """The published routes (``routes.json``), re-read only when a new snapshot replaced it."""

    def __init__(self, state_dir: "str | os.PathLike[str]", note: str = "") -> None:
        self.state_dir = state_dir
        self.note = note  # how the state dir was chosen, when that may explain a miss
        self._cached: Table | None = None
        self._stamp: tuple[float, ...] | None = None
        self._lock = _thread.allocate_lock()

    def get(self) -> tuple[Table | None, str]:
        path = os.path.join(self.state_dir, ROUTES_NAME)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None, f"no routes published at {path} (run 'pbx-bridge rooms apply')"
        except OSError as exc:
            return None, f"routes unreadable: {exc}"
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        try:
            with self._lock:
                if stamp != self._stamp or self._cached is None:
                    self._cached = load_table(self.state_dir)
                    self._stamp = stamp
                return self._cached, ""
        except (OSError, ValueError) as exc:
            return None, f"routes unreadable: {exc}"


READ = None  # what the conversation yields to ask its driver for the next line
if TYPE_CHECKING:
    Conversation = Generator[Optional[str], Optional[str], Decision]


def conversation(route_name: str | None, argv_args: list[str] | None, tables: TableSource,
                 log: Callable[[str], None]) -> Conversation:
    """One call's AGI, free of I/O: it yields a line to write, or READ to be sent the next
    line; a driver's I/O failure is thrown in as AgiError. Always ends with a log line.

    Process AGI passes its command-line arguments (Asterisk's ``agi_arg_N`` there also holds
    the words before them); FastAGI passes None and the arguments come from ``agi_arg_N``."""
    decision: Decision | None = None
    warning = ""
    try:
        env: dict[str, str] = {}
        problem: str | None = None
        for _ in range(MAX_HEADER_LINES):
            line = yield READ
            assert line is not None
            if line == "":
                break
            if problem is not None:  # read a bad header to its end: the next line read
                continue             # must be the answer to our first command
            try:
                name, value = parse_env_line(line)
            except AgiError as exc:
                problem = str(exc)
                continue
            env[name] = value
        else:
            problem = "header too long"
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
            if table is None:  # said on Asterisk's console too, not only on our stderr
                warning = why + (f" ({tables.note})" if tables.note else "")
        for var, value in decision.variables:
            yield set_variable(var, value) + "\n"
            line = yield READ
            while line is not None and line.startswith("520-"):  # usage text: to its end
                line = yield READ
            reply = parse_reply(line or "")
            if reply.code != 200:
                raise AgiError(f"Asterisk answered {reply.code} {reply.text[:60]!r} to SET "
                               f"VARIABLE {var}")
        if warning:
            yield f"VERBOSE {quote('pbx-bridge agi: ' + warning)} 1\n"
            yield READ
        log(decision.log + (f" ({tables.note})" if warning and tables.note else ""))
    except AgiError as exc:
        text = decision.log + "; " if decision else ""
        log(f"{text}AGI ended early: {exc}")
    except Exception as exc:  # the call must go on whatever happens here
        log(f"AGI error: {type(exc).__name__}: {exc}")
    return decision or Decision((), "")


def converse(ch: Channel, route_name: str | None, argv_args: list[str] | None,
             tables: TableSource, log: Callable[[str], None]) -> Decision:
    """Drive a conversation over a blocking channel (process AGI)."""
    conv = conversation(route_name, argv_args, tables, log)
    try:
        op = next(conv)
        while True:
            try:
                if op is READ:
                    op = conv.send(ch.readline())
                else:
                    ch.write(op)
                    op = conv.send(None)
            except AgiError as exc:
                op = conv.throw(exc)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
