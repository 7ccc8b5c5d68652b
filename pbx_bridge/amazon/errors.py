"""Errors from the Amazon side, carrying what a user needs to report them."""

from __future__ import annotations

import json

from ..errors import PbxBridgeError


class ApiError(PbxBridgeError):
    """An HTTP error answer (after retries where they apply)."""

    def __init__(self, what: str, status: int, code: str | None, message: str | None,
                 request_id: str | None) -> None:
        text = f"{what}: HTTP {status}"
        if code:
            text += f" {code}"
        if message:
            text += f": {message}"
        if request_id:
            text += f" (request id {request_id})"
        super().__init__(text)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


class NetworkError(PbxBridgeError):
    """No usable answer after every retry (connection errors, timeouts)."""


def error_fields(body: bytes) -> tuple[str | None, str | None]:
    """Amazon's code and message from an error body, which may be absent or not JSON."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip().splitlines()
        return None, (text[0][:200] if text else None)
    if not isinstance(doc, dict):
        return None, None
    code = doc.get("code") or doc.get("error") or doc.get("type")
    msg = doc.get("message") or doc.get("error_description") or doc.get("Message")
    return (str(code) if code else None), (str(msg)[:300] if msg else None)
