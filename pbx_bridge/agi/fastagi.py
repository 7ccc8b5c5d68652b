"""The FastAGI server: the same routes at ``agi://HOST:PORT/ROUTE``, one thread per call,
loopback by default, clients restricted by address."""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from .session import SocketChannel, TableSource, converse

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Handler(socketserver.StreamRequestHandler):
    server: "FastAgiServer"
    disable_nagle_algorithm = True

    def handle(self) -> None:
        srv = self.server
        peer = self.client_address[0]
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            addr = None
        if addr is None or not any(addr in n for n in srv.allow):
            srv.log(f"refused FastAGI client {peer} (not in --allow)")
            return
        self.connection.settimeout(srv.timeout_s)
        ch = SocketChannel(self.rfile, self.wfile, srv.timeout_s)  # type: ignore[arg-type]
        converse(ch, None, None, srv.tables, srv.log)


class FastAgiServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state_dir: Path, allow: Sequence[Net],
                 timeout: float = 5.0, log: Callable[[str], None] | None = None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.tables = TableSource(state_dir)
        self.allow = list(allow)
        self.timeout_s = timeout
        self.log = log or (lambda line: print(f"{time.strftime('%H:%M:%S')} {line}",
                                              file=sys.stderr, flush=True))
