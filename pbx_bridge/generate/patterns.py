"""Which of a context's own extensions a call to a room extension would run, as Asterisk 22
chooses: an exact extension before any pattern, then the most specific pattern (character
by character, the smaller set of digits first; ``.`` and ``!`` last). Includes come only
after every extension of the context itself."""

from __future__ import annotations

_ANY = 1000  # '.' (one or more of anything) and '!' (zero or more): sorted last


def _positions(pattern: str) -> list[frozenset[str] | None] | None:
    """A pattern's positions as sets of digits (None: '.' or '!', the rest of the number);
    None when it is not a pattern of digits we can judge."""
    if not pattern.startswith("_"):
        return None
    out: list[frozenset[str] | None] = []
    i, p = 0, pattern[1:]
    while i < len(p):
        ch = p[i].upper()
        if ch == "X":
            out.append(frozenset("0123456789"))
        elif ch == "Z":
            out.append(frozenset("123456789"))
        elif ch == "N":
            out.append(frozenset("23456789"))
        elif ch.isdigit() or ch in "*#+":
            out.append(frozenset(ch))
        elif ch in ".!":
            out.append(None)
            break
        elif ch == "[":
            end = p.find("]", i)
            if end < 0:
                return None
            body, digits, j = p[i + 1:end], set(), 0
            while j < len(body):
                if j + 2 < len(body) and body[j + 1] == "-":
                    digits |= {chr(c) for c in range(ord(body[j]), ord(body[j + 2]) + 1)}
                    j += 3
                else:
                    digits.add(body[j])
                    j += 1
            out.append(frozenset(digits))
            i = end
        else:
            return None
        i += 1
    return out


def _key(pos: list[frozenset[str] | None]) -> list[int]:
    return [_ANY if s is None else len(s) for s in pos]


def _intersects(a: list[frozenset[str] | None], b: list[frozenset[str] | None]) -> bool:
    """Whether some number matches both (``b`` has no wildcard: a room pattern)."""
    for i, sb in enumerate(b):
        if i >= len(a):
            return False
        sa = a[i]
        if sa is None:
            return True  # '.' or '!': the rest of the number
        if sb is None or not sa & sb:
            return False
    return len(a) == len(b)


def shadows(theirs: str, ours: str) -> bool:
    """Whether extension ``theirs``, in the same context as ``ours`` (a room pattern), takes
    some of ours' numbers: an exact extension ours matches, the same pattern (Asterisk then
    refuses to register ours: "already in use"), or a pattern that matches some of the same
    numbers and is more specific."""
    if theirs == ours:
        return True
    mine = _positions(ours)
    if mine is None or any(s is None for s in mine):
        return theirs == ours
    if not theirs.startswith("_"):
        return len(theirs) == len(mine) and all(ch in s for ch, s in zip(theirs, mine)
                                                if s is not None)
    other = _positions(theirs)
    if other is None:
        return False
    return _intersects(other, mine) and _key(other) < _key(mine)
