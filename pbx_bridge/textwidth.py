"""Columns by what a terminal shows: a wide (East Asian) character takes two cells, a
combining mark or a zero-width character none. ``str.ljust`` counts code points, which pads
"Suite 301 – Sea View’s" right but a CJK name or a decomposed "é" wrong."""

from __future__ import annotations

import unicodedata


def width(text: str) -> int:
    """Display cells of ``text``."""
    if text.isascii():
        return len(text)
    cells = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        cells += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return cells


def ljust(text: str, cells: int) -> str:
    """``text`` padded with spaces to ``cells`` display cells (never cut)."""
    return text + " " * max(0, cells - width(text))
