"""A small Asterisk Manager Interface client: login, one action with its event list, logoff.

pyst2's manager is not used: it runs a background thread per connection and logs the whole
traffic, secrets included, at debug level; this needs four messages and no threads.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import time
from dataclasses import dataclass

from ..errors import PbxBridgeError
from ..secret import Secret

Message = dict[str, str]


class AmiError(PbxBridgeError):
    pass


class AmiActionFailed(AmiError):
    """Asterisk answered an action with an error (the connection itself is fine)."""


def parse_message(block: str) -> Message:
    msg: Message = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            msg[key.strip()] = value.strip()
    return msg


@dataclass
class AmiClient:
    host: str
    port: int
    username: str
    secret: Secret
    timeout: float = 5.0
    events: str = "off"  # the Login's Events: "on" to receive events (test-call)

    @property
    def local(self) -> bool:
        """Whether this AMI is on this host (loopback), so its files and ports are ours too."""
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    def __post_init__(self) -> None:
        self.sock: socket.socket | None = None
        self.buf = b""
        self.next_id = 1
        self.backlog: list[Message] = []  # events that arrived while awaiting a response
        self.answered = False  # an AMI banner was seen (Asterisk runs, whatever the login)

    def _read_block(self) -> str:
        block = self._block_within(None)
        assert block is not None
        return block

    def _block_within(self, timeout: float | None) -> str | None:
        """The next message's text; with ``timeout``, None when none is complete by then
        (without, the socket's own timeout applies and is an error)."""
        assert self.sock is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    return None
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                raise AmiError(f"AMI at {self.host}:{self.port}: {exc}") from None
            if not chunk:
                raise AmiError(f"AMI at {self.host}:{self.port} closed the connection")
            self.buf += chunk
        block, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return block.decode("utf-8", "replace")

    def _send(self, action: str, **fields: str) -> str:
        assert self.sock is not None
        aid = str(self.next_id)
        self.next_id += 1
        lines = [f"Action: {action}", f"ActionID: {aid}"]
        for k, v in fields.items():
            if any(c in v for c in "\r\n"):
                raise AmiError(f"AMI field {k} has a line break")
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return aid

    def connect(self) -> None:
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise AmiError(f"cannot connect to AMI at {self.host}:{self.port}: "
                           f"{exc.strerror or exc}") from None
        banner = b""
        while b"\r\n" not in banner:
            chunk = self.sock.recv(1024)
            if not chunk:
                raise AmiError(f"{self.host}:{self.port} closed before its banner")
            banner += chunk
        line, _, self.buf = banner.partition(b"\r\n")
        if not line.startswith(b"Asterisk Call Manager/"):
            raise AmiError(f"{self.host}:{self.port} is not AMI ({line[:40]!r})")
        self.answered = True
        aid = self._send("Login", Username=self.username, Secret=self.secret.reveal(),
                         Events=self.events)
        resp = self._response(aid)
        if resp.get("Response") != "Success":
            raise AmiError(f"AMI login as {self.username} failed: "
                           f"{resp.get('Message', 'no reason given')}")

    def _reply(self, aid: str) -> tuple[str, Message]:
        """The next message of action ``aid``: its text and its fields. Events of anything
        else are kept for :meth:`next_event` when events are on."""
        while True:
            block = self._read_block()
            msg = parse_message(block)
            if msg.get("ActionID") == aid:
                return block, msg
            if "Event" in msg and self.events != "off":
                self.backlog.append(msg)

    def _response(self, aid: str) -> Message:
        while True:
            msg = self._reply(aid)[1]
            if "Response" in msg:
                return msg

    def action(self, action: str, **fields: str) -> Message:
        """Send an action and return its response (events meanwhile are kept)."""
        return self._response(self._send(action, **fields))

    def next_event(self, timeout: float) -> Message | None:
        """The next event, or None when none arrives within ``timeout`` seconds."""
        if self.backlog:
            return self.backlog.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            block = self._block_within(max(0.0, deadline - time.monotonic()))
            if block is None:
                return None
            msg = parse_message(block)
            if "Event" in msg:
                return msg

    def event_list(self, action: str, item_event: str, **fields: str) -> list[Message]:
        """An action answered by a list of events, ending in one whose EventList is
        Complete."""
        aid = self._send(action, **fields)
        resp = self._response(aid)
        if resp.get("Response") != "Success":
            raise AmiActionFailed(f"AMI {action}: {resp.get('Message', 'failed')}")
        items: list[Message] = []
        while True:
            msg = self._reply(aid)[1]
            if msg.get("EventList") == "Complete":
                return items
            if msg.get("Event") == item_event:
                items.append(msg)

    def command(self, cli: str) -> tuple[bool, str]:
        """A CLI command through the ``Command`` action: (succeeded, its output)."""
        aid = self._send("Command", Command=cli)
        while True:
            block, msg = self._reply(aid)
            if "Response" in msg:
                output = [line.partition(":")[2].strip() for line in block.split("\r\n")
                          if line.startswith("Output:")]
                return msg["Response"] == "Success", "\n".join(output) or msg.get("Message", "")

    def pjsip_endpoints(self) -> list[str]:
        return [m["ObjectName"] for m in self.event_list("PJSIPShowEndpoints", "EndpointList")
                if m.get("ObjectName")]

    def close(self) -> None:
        if self.sock is not None:
            try:
                self._send("Logoff")
            except OSError:
                pass
            self.sock.close()
            self.sock = None
