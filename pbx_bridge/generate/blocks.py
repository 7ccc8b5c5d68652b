"""Our marked blocks in a user's file: found, replaced or appended, and everything outside them
kept byte for byte (comments, order, line endings, encoding)."""

from __future__ import annotations

from dataclasses import dataclass

BEGIN = b"; BEGIN pbx-bridge"
END = b"; END pbx-bridge"
BEGIN_LINE = "; BEGIN pbx-bridge: managed by 'pbx-bridge generate'; edits inside are replaced"
END_LINE = "; END pbx-bridge"


class BlockError(ValueError):
    """Markers that do not pair up: we will not guess which lines are ours."""


@dataclass(frozen=True)
class Span:
    start: int  # byte offset of the BEGIN line
    end: int  # byte offset just past the END line (and its newline)
    first_line: int  # 1-based line numbers of BEGIN and END
    last_line: int


def _newline(raw: bytes) -> bytes:
    return b"\r\n" if raw.count(b"\r\n") > raw.count(b"\n") / 2 and b"\r\n" in raw else b"\n"


def find(raw: bytes, name: str) -> Span | None:
    """Our block in ``raw`` (the file ``name``), if any."""
    spans = []
    pos = 0
    line = 1
    begin: tuple[int, int] | None = None
    for chunk in raw.splitlines(keepends=True):
        stripped = chunk.strip()
        if stripped.startswith(BEGIN):
            if begin is not None:
                raise BlockError(f"{name}:{line}: a second '{BEGIN.decode()}' before "
                                 f"'{END.decode()}'")
            begin = (pos, line)
        elif stripped.startswith(END):
            if begin is None:
                raise BlockError(f"{name}:{line}: '{END.decode()}' without a begin marker")
            spans.append(Span(begin[0], pos + len(chunk), begin[1], line))
            begin = None
        pos += len(chunk)
        line += 1
    if begin is not None:
        raise BlockError(f"{name}:{begin[1]}: '{BEGIN.decode()}' is never closed")
    if len(spans) > 1:
        raise BlockError(f"{name}:{spans[1].first_line}: more than one pbx-bridge block")
    return spans[0] if spans else None


def render(body: str, raw: bytes) -> bytes:
    """Our block around ``body`` in the file's own line ending."""
    nl = _newline(raw)
    lines = [BEGIN_LINE, *body.rstrip("\n").split("\n"), END_LINE]
    return nl.join(line.encode("utf-8") for line in lines) + nl


def put(raw: bytes, body: str, name: str) -> bytes:
    """``raw`` with our block set to ``body``: replaced in place, or appended at the end."""
    block = render(body, raw)
    span = find(raw, name)
    if span is not None:
        return raw[:span.start] + block + raw[span.end:]
    if raw and not raw.endswith(b"\n"):
        raw += _newline(raw)
    return raw + block


def remove(raw: bytes, name: str) -> bytes:
    span = find(raw, name)
    return raw if span is None else raw[:span.start] + raw[span.end:]
