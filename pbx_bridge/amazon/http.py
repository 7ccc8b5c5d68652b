"""The HTTP door. Everything else speaks to Amazon (or the emulator) through :class:`Http`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import requests

from .. import __version__


class TransportError(Exception):
    """No HTTP answer: connection refused or cut, timeout, TLS failure. ``unreachable``: no
    connection could even be made (refused, unknown name, no route), which a few quick
    retries settle, unlike a busy server."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


_UNREACHABLE = ("Connection refused", "Name or service not known", "No route to host",
                "Network is unreachable", "Temporary failure in name resolution")


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


class Http:
    def __init__(self, timeout: float = 15.0) -> None:
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"pbx-bridge/{__version__}"

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                data: Mapping[str, str] | None = None, json_body: Any = None,
                params: Mapping[str, str] | None = None) -> Response:
        try:
            r = self.session.request(method, url, headers=dict(headers or {}), data=data,
                                     json=json_body, params=params, timeout=self.timeout,
                                     allow_redirects=False)
            body = r.content
        except requests.exceptions.Timeout:
            raise TransportError(f"no answer from {_host(url)} within {self.timeout:g} s") \
                from None
        except requests.exceptions.ConnectionError as exc:
            reason = _reason(exc)
            raise TransportError(f"connection to {_host(url)} failed: {reason}",
                                 reason in _UNREACHABLE) from None
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"request to {_host(url)} failed: {type(exc).__name__}") \
                from None
        length = r.headers.get("Content-Length", "")
        if length.isdigit() and len(body) < int(length) and method != "HEAD" and \
                r.headers.get("Content-Encoding", "identity") == "identity":
            # a cut connection: urllib3 2 raises it, Debian 12's urllib3 1.26 returns it short
            raise TransportError(f"request to {_host(url)} failed: the answer was cut short "
                                 f"({len(body)} of {length} bytes)")
        return Response(r.status_code, dict(r.headers), body)


def _host(url: str) -> str:
    from urllib.parse import urlparse
    u = urlparse(url)
    return f"{u.scheme}://{u.netloc}"


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in (*_UNREACHABLE, "Connection reset", "Connection aborted",
                   "RemoteDisconnected", "timed out"):
        if marker in text:
            return marker
    return type(exc).__name__
