"""The FastAGI server: the same routes at ``agi://HOST:PORT/ROUTE``. One asyncio event loop
drives every call's conversation (no thread per call), loopback by default, clients
restricted by address."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from .protocol import AgiError
from .session import READ, TableSource, conversation

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def _stderr(line: str) -> None:
    from .. import log
    if log.current() == "json":
        log.event("agi", message=line)
    else:
        print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


class FastAgiServer:
    def __init__(self, address: tuple[str, int], state_dir: Path, allow: Sequence[Net],
                 timeout: float = 5.0, log: Callable[[str], None] | None = None) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.sock.listen(256)
        self.tables = TableSource(state_dir)
        self.allow = list(allow)
        self.timeout = timeout
        self.log = log or _stderr
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._running = threading.Event()
        self._done = threading.Event()

    @property
    def server_address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        """Whatever the client has sent, at most one timeout per network read (the header's
        two dozen lines usually arrive in one read)."""
        try:
            if sys.version_info >= (3, 11):  # no extra task per read, unlike wait_for
                async with asyncio.timeout(self.timeout):
                    return await reader.read(65536)
            return await asyncio.wait_for(reader.read(65536), self.timeout)  # pragma: no cover
        except asyncio.TimeoutError:
            raise AgiError(f"no answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise AgiError(f"the client went away ({exc})") from None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            addr = ipaddress.ip_address(peer[0]) if peer else None
            if addr is None or not any(addr in n for n in self.allow):
                self.log(f"refused FastAGI client {peer[0] if peer else '?'} (not in --allow)")
                return
            conv = conversation(None, None, self.tables, self.log)
            buf = b""
            try:
                op = next(conv)
                while True:
                    try:
                        if op is READ:
                            while b"\n" not in buf:
                                chunk = await self._read(reader)
                                if not chunk:
                                    raise AgiError("the client closed the connection" +
                                                   (" mid-line" if buf else ""))
                                buf += chunk
                                if len(buf) > 65536:
                                    raise AgiError("line too long")
                            line, _, buf = buf.partition(b"\n")
                            op = conv.send(line.decode("utf-8", "replace").rstrip("\r"))
                        else:
                            writer.write(op.encode("utf-8"))
                            await writer.drain()
                            op = conv.send(None)
                    except AgiError as exc:
                        op = conv.throw(exc)
                    except OSError as exc:
                        op = conv.throw(AgiError(f"the client went away ({exc})"))
            except StopIteration:
                pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        server = await asyncio.start_server(self._handle, sock=self.sock)
        async with server:
            await self._stop.wait()

    def serve_forever(self) -> None:
        self._running.set()
        try:
            asyncio.run(self._main())
        finally:
            self._done.set()

    def shutdown(self) -> None:
        """Stop serving (from another thread) and wait until the loop has ended."""
        if not self._running.is_set():
            return
        while self._loop is None or self._stop is None:
            time.sleep(0.01)
        self._loop.call_soon_threadsafe(self._stop.set)
        self._done.wait(10)

    def server_close(self) -> None:
        self.sock.close()
