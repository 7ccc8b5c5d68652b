"""A bare SIP client for the security tests: one request (OPTIONS or INVITE with an SDES-SRTP
offer) from a chosen source address, over UDP or TLS, and the status code of the final answer.
It plays whoever the test needs: an attacker on another loopback address, or Amazon."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import time
import uuid


def _offer(src: str) -> str:
    key = base64.b64encode(os.urandom(30)).decode()
    return ("v=0\r\n"
            f"o=- 1 1 IN IP4 {src}\r\n"
            "s=-\r\n"
            f"c=IN IP4 {src}\r\n"
            "t=0 0\r\n"
            "m=audio 40000 RTP/SAVP 0\r\n"
            "a=rtpmap:0 PCMU/8000\r\n"
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
            "a=sendrecv\r\n")


class Request:
    def __init__(self, method: str, dest: tuple[str, int], proto: str, src: tuple[str, int],
                 from_user: str, to_user: str, pai: str | None = None) -> None:
        self.method, self.dest, self.proto, self.src = method, dest, proto, src
        self.uri = f"sip:{to_user}@{dest[0]}:{dest[1]}" + (";transport=tls" if proto == "TLS"
                                                             else "")
        self.branch = "z9hG4bK" + uuid.uuid4().hex[:12]
        self.tag = uuid.uuid4().hex[:8]
        self.call_id = str(uuid.uuid4())
        self.from_user = from_user
        self.pai = pai

    def _head(self, method: str, to: str, cseq_method: str, length: int,
              extra: str = "") -> str:
        return (f"{method} {self.uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/{self.proto} {self.src[0]}:{self.src[1]};branch={self.branch};"
                "rport\r\n"
                f"From: <sip:{self.from_user}@{self.src[0]}>;tag={self.tag}\r\n"
                f"To: {to}\r\n"
                f"Call-ID: {self.call_id}\r\n"
                f"CSeq: 1 {cseq_method}\r\n"
                f"Contact: <sip:{self.from_user}@{self.src[0]}:{self.src[1]}>\r\n"
                "Max-Forwards: 70\r\n" + extra +
                f"Content-Length: {length}\r\n\r\n")

    def first(self) -> bytes:
        body = _offer(self.src[0]) if self.method == "INVITE" else ""
        extra = "Content-Type: application/sdp\r\n" if body else ""
        if self.pai:
            extra += f"P-Asserted-Identity: {self.pai}\r\n"
        return (self._head(self.method, f"<{self.uri}>", self.method, len(body.encode()),
                           extra) + body).encode()

    def ack(self, to_header: str) -> bytes:
        return self._head("ACK", to_header, "ACK", 0).encode()


def _parse(buf: bytes) -> tuple[list[tuple[int, str]], bytes]:
    """Complete responses in ``buf``: (status code, To header) each, and the rest."""
    out = []
    while b"\r\n\r\n" in buf:
        head, _, rest = buf.partition(b"\r\n\r\n")
        text = head.decode("latin-1")
        length = 0
        to = ""
        for line in text.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() in ("content-length", "l"):
                length = int(value.strip() or 0)
            if name.strip().lower() in ("to", "t"):
                to = value.strip()
        if len(rest) < length:
            break
        buf = rest[length:]
        first = text.split("\r\n", 1)[0].split()
        if len(first) >= 2 and first[0] == "SIP/2.0" and first[1].isdigit():
            out.append((int(first[1]), to))
    return out, buf


def send(method: str, dest: tuple[str, int], proto: str, src_ip: str,
         from_user: str = "alexa", to_user: str = "201", pai: str | None = None,
         timeout: float = 8.0) -> int | None:
    """The final status code Asterisk answers ``method`` with (None: no final answer)."""
    end = time.monotonic() + timeout
    if proto == "UDP":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((src_ip, 0))
        conn = sock
    else:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.bind((src_ip, 0))
        raw.settimeout(timeout)
        raw.connect(dest)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = ctx.wrap_socket(raw)
    try:
        req = Request(method, dest, proto, conn.getsockname()[:2], from_user, to_user, pai)
        out = conn.sendto if proto == "UDP" else None

        def write(data: bytes) -> None:
            if out is not None:
                out(data, dest)
            else:
                conn.sendall(data)
        write(req.first())
        buf = b""
        while time.monotonic() < end:
            conn.settimeout(max(0.05, end - time.monotonic()))
            try:
                chunk = conn.recv(65535)
            except (socket.timeout, TimeoutError):
                break
            if not chunk:
                break
            buf += chunk
            answers, buf = _parse(buf)
            for code, to in answers:
                if code >= 200:
                    if method == "INVITE":
                        write(req.ack(to))
                    return code
        return None
    finally:
        conn.close()
