"""A user-space UDP relay for the media of a real call, that impairs it on purpose (this
kernel has no netem): Amazon's side of the lab announces ``media_address`` = the relay's
address, so the PBX sends its RTP and RTCP there, on the port Amazon's Asterisk uses; the
relay, bound to every port of Amazon's RTP range on its own loopback address, passes each
packet on to Amazon's real address, and Amazon's back to where the PBX sent from.

Only RTP is impaired (RTCP, told apart by its packet type as RFC 5761 does, always passes),
toward one side: ``loss_every=20`` drops exactly one packet of every 20, at a place in each
block drawn from the seeded generator (5 %, whatever stretch a report covers);
``delay=(10, 190)`` holds each packet for a uniform random 10-190 ms (100 +/- 90 ms), so
packets arrive unevenly and out of order, as over a congested link.

Each side starts sending to the address it was told, so Amazon's first packets go to the PBX
directly; both use symmetric RTP (and Amazon's side no strict RTP), so each turns to the
relay as soon as packets come from it. The first ``after`` (15) packets of each way pass
untouched, so that a delayed or reordered start cannot keep a side from learning the relay
(seen: with the delay from the first packet, the PBX locked onto Amazon's direct address
and the media left the relay). The tests check the relay's counts: the media went through
it both ways.
"""

from __future__ import annotations

import heapq
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass

TO_AMAZON, TO_PBX = "to_amazon", "to_pbx"


@dataclass
class Impairment:
    loss_every: int = 0  # drop one RTP packet in each block of this many (0: none)
    delay: tuple[float, float] | None = None  # uniform delay range in ms (None: none)
    after: int = 15  # RTP packets passed untouched first, while each side learns the relay
    until: int = 0  # RTP packets from which none is dropped any more (0: never)


class Relay:
    def __init__(self, listen: str, amazon: str, ports: range, seed: int) -> None:
        self.amazon = amazon
        self.seed = seed
        self.rng = random.Random(seed)
        self.impair = {TO_AMAZON: Impairment(), TO_PBX: Impairment()}
        self.counts = {TO_AMAZON: [0, 0], TO_PBX: [0, 0]}  # RTP [passed, dropped]
        self._block = {TO_AMAZON: (0, 0), TO_PBX: (0, 0)}  # (packets in block, drop index)
        self.peer: dict[int, tuple[str, int]] = {}  # port -> where the PBX sends from
        self.sel = selectors.DefaultSelector()
        self.socks: dict[int, socket.socket] = {}
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((listen, port))
            s.setblocking(False)
            self.socks[port] = s
            self.sel.register(s, selectors.EVENT_READ, port)
        self.queue: list[tuple[float, int, socket.socket, bytes, tuple[str, int]]] = []
        self.n = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def set(self, to_amazon: Impairment | None = None, to_pbx: Impairment | None = None
            ) -> None:
        """New impairments (and counts from zero), as of the next packet."""
        self.impair = {TO_AMAZON: to_amazon or Impairment(), TO_PBX: to_pbx or Impairment()}
        self.counts = {TO_AMAZON: [0, 0], TO_PBX: [0, 0]}
        self._block = {TO_AMAZON: (0, 0), TO_PBX: (0, 0)}

    def _drop(self, way: str) -> bool:
        every = self.impair[way].loss_every
        if sum(self.counts[way]) < self.impair[way].after:
            return False
        if not every:
            return False
        if self.impair[way].until and sum(self.counts[way]) >= self.impair[way].until:
            return False
        i, at = self._block[way]
        if i == 0:
            at = self.rng.randrange(every)
        self._block[way] = ((i + 1) % every, at)
        return i == at

    def _run(self) -> None:
        while not self.stopping:
            wait = 0.05
            if self.queue:
                wait = max(0.0, min(wait, self.queue[0][0] - time.monotonic()))
            for key, _ in self.sel.select(wait):
                sock, port = key.fileobj, key.data
                assert isinstance(sock, socket.socket)
                try:
                    data, src = sock.recvfrom(4096)
                except (BlockingIOError, ConnectionRefusedError):
                    continue
                if src[0] == self.amazon:
                    way = TO_PBX
                    dest = self.peer.get(port)
                    if dest is None:
                        continue
                else:
                    way = TO_AMAZON
                    self.peer[port] = src
                    dest = (self.amazon, port)
                rtcp = len(data) > 1 and 192 <= data[1] <= 223
                due = time.monotonic()
                if not rtcp:
                    if self._drop(way):
                        self.counts[way][1] += 1
                        continue
                    self.counts[way][0] += 1
                    delay = self.impair[way].delay
                    if delay and sum(self.counts[way]) > self.impair[way].after:
                        due += self.rng.uniform(*delay) / 1000
                self.n += 1
                heapq.heappush(self.queue, (due, self.n, sock, data, dest))
            now = time.monotonic()
            while self.queue and self.queue[0][0] <= now:
                _, _, sock, data, dest = heapq.heappop(self.queue)
                try:
                    sock.sendto(data, dest)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopping = True
        self.thread.join(5)
        for s in self.socks.values():
            self.sel.unregister(s)
            s.close()
        self.sel.close()
