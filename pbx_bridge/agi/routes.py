"""What each AGI route decides, as pure functions of the call and the local mapping table:
the channel variables to set and one log line. The network is never touched."""

from __future__ import annotations

import re
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # process AGI must start fast: no typing, dataclasses or pathlib imports
    from typing import Callable

from ..rooms import routes as published

_EXT = re.compile(r"^[0-9]{1,15}$")


# What a route reads: the published routes (trunk, endpoint, extension -> (profile, room)).
Table = published.Routes


class Decision:
    __slots__ = ("variables", "log")

    def __init__(self, variables: tuple[tuple[str, str], ...], log: str) -> None:
        self.variables = variables
        self.log = log

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decision) and (self.variables, self.log) == \
            (other.variables, other.log)

    def __repr__(self) -> str:
        return f"Decision({self.variables!r}, {self.log!r})"


if TYPE_CHECKING:
    Route = Callable[[dict[str, str], list[str], "Table | None", str], Decision]


def load_table(state_dir: "str | os.PathLike[str]") -> Table:
    return published.load(state_dir)


# ALEXA_MAPPED is always the last variable set: the dialplan dials only once it reads "1",
# so a server killed part-way leaves it unset (Congestion), never "1" before ALEXA_DIAL
# (which would run Dial(",60")).
def _unmapped(why: str) -> Decision:
    return Decision((("ALEXA_ROOM", ""), ("ALEXA_DIAL", ""), ("ALEXA_MAPPED", "0")), why)


def alexa_route(env: dict[str, str], args: list[str], table: Table | None, why_none: str
                ) -> Decision:
    """A PBX phone dials an extension: is it an Alexa room, and how is it dialled?"""
    ext = (args[0] if args else env.get("agi_extension", "")).strip()
    if table is None:
        return _unmapped(f"alexa-route {ext or '?'}: not mapped ({why_none})")
    if not _EXT.match(ext):
        return _unmapped(f"alexa-route {ext[:20]!r}: not an extension")
    hit = table.rooms.get(ext)
    if hit is None:
        return _unmapped(f"alexa-route {ext}: not an Alexa room")
    _, room = hit
    dial = f"PJSIP/{ext}@{table.endpoint}"
    return Decision((("ALEXA_ROOM", room), ("ALEXA_DIAL", dial), ("ALEXA_MAPPED", "1")),
                    f"alexa-route {ext}: {room or 'room'} via {dial}")


def alexa_caller(env: dict[str, str], args: list[str], table: Table | None, why_none: str
                 ) -> Decision:
    """A call arrives from Alexa: name the caller after the room ("Room 204")."""
    caller = (args[0] if args else env.get("agi_callerid", "")).strip()
    if table is None:
        return _unmapped(f"alexa-caller {caller or '?'}: unknown ({why_none})")
    hit = table.rooms.get(caller) if _EXT.match(caller) else None
    if hit is None:
        return _unmapped(f"alexa-caller {caller[:20]!r}: not an Alexa room")
    room = hit[1] or f"Room {caller}"
    return Decision((("ALEXA_ROOM", room), ("CALLERID(name)", room), ("ALEXA_MAPPED", "1")),
                    f"alexa-caller {caller}: {room}")


ROUTES: dict[str, Route] = {
    "alexa-route": alexa_route,
    "alexa-caller": alexa_caller,
}
