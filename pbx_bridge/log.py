"""One line per event on standard error, for journald, Loki and people.

``text`` (the default): ``pbx-bridge: EVENT key=value ...``. ``json`` (``--log-format json`` or
``PBX_BRIDGE_LOG_FORMAT=json``): one JSON object per line with ``timestamp`` (UTC, ISO 8601),
``level``, ``event`` and the event's fields. A :class:`~pbx_bridge.secret.Secret`, or any field
whose name says it holds a secret, is written as ``***``: secrets are never logged.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported by every command: kept light
    from typing import Any, TextIO

FORMATS = ("text", "json")
_SECRET_WORDS = ("secret", "token", "password", "authorization")
_format = "text"
_progress_on = False  # a progress line (no newline yet) is on the terminal


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (to anything)."""
    try:
        return stream.isatty() and "NO_COLOR" not in os.environ
    except (AttributeError, ValueError):
        return False


def progress(text: str) -> None:
    """Redraw the progress line on the terminal (standard error)."""
    global _progress_on
    sys.stderr.write("\r\x1b[K" + text)
    sys.stderr.flush()
    _progress_on = True


def clear_line() -> None:
    """End the progress line, so the next message starts on a line of its own."""
    global _progress_on
    if _progress_on:
        _progress_on = False
        try:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
        except (BrokenPipeError, ValueError):
            pass


def configure(fmt: str | None) -> None:
    global _format
    fmt = fmt or os.environ.get("PBX_BRIDGE_LOG_FORMAT") or "text"
    _format = fmt if fmt in FORMATS else "text"


def current() -> str:
    return _format


def _clean(key: str, value: Any) -> Any:
    from .secret import Secret
    if isinstance(value, Secret) or any(w in key.lower() for w in _SECRET_WORDS):
        return "***"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_clean(key, v) for v in value]
    return str(value)


def _text_value(v: Any) -> str:
    import json
    s = json.dumps(v) if not isinstance(v, str) else v
    return json.dumps(s) if (not s or any(c in s for c in ' "=\n')) else s


def event(name: str, level: str = "info", message: str | None = None,
          stream: TextIO | None = None, **fields: Any) -> None:
    """Log one event. ``message`` is the human sentence (the text form prints only it; the
    JSON form carries it and the fields)."""
    out = stream or sys.stderr
    if out is sys.stderr:
        clear_line()
    clean = {k: _clean(k, v) for k, v in fields.items()}
    if _format == "json":
        import json
        now = time.time()
        doc = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) +
               f".{int(now % 1 * 1000):03d}Z", "level": level, "event": name}
        if message:
            doc["message"] = message
        doc.update(clean)
        line = json.dumps(doc, ensure_ascii=False)
    else:
        parts = [f"pbx-bridge: {message or name}"]
        if level in ("warning", "error"):
            parts[0] = f"pbx-bridge: {level}: {message or name}"
        if not message:  # a sentence says it all; bare events show their fields
            parts += [f"{k}={_text_value(v)}" for k, v in clean.items()]
        line = " ".join(parts)
    try:
        out.write(line + "\n")
        out.flush()
    except (BrokenPipeError, ValueError):
        pass
