"""The routes the AGI reads: a snapshot of the mapping table, published into the state dir
as ``routes.json`` by every command that changes the mappings.

It holds no secret (extensions, room names, profile ids), is replaced atomically (a reader
sees the old snapshot or the new one) and is the only file the asterisk user needs: the AGI
opens it read-only, so the state dir may be read-only to it (the FastAGI unit's
``ReadOnlyPaths``) and nothing rollback or the token code trusts is ever writable by it.
"""

from __future__ import annotations

import json
import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:  # the AGI reads routes on every call: it imports only what load needs
    from pathlib import Path

ROUTES_NAME = "routes.json"


class Routes:
    __slots__ = ("trunk_id", "endpoint", "rooms")

    def __init__(self, trunk_id: str | None, endpoint: str,
                 rooms: dict[str, tuple[str, str]]) -> None:
        self.trunk_id = trunk_id
        self.endpoint = endpoint
        self.rooms = rooms  # extension -> (profile id, room name)


def publish(state_dir: Path, trunk_id: str | None, endpoint: str | None,
            rooms: dict[str, tuple[str, str]], group: str | None = None) -> Path:
    """Write the snapshot: 0644, or 0640 owned by ``group`` when one is given."""
    import grp

    from ..fileio import atomic_write
    doc = {"version": 1, "trunk_id": trunk_id, "endpoint": endpoint or "alexa",
           "rooms": {ext: [pid, room] for ext, (pid, room) in sorted(rooms.items())}}
    path = state_dir / ROUTES_NAME
    gid = grp.getgrnam(group).gr_gid if group else None
    atomic_write(path, (json.dumps(doc, indent=1) + "\n").encode(),
                 mode=0o640 if gid is not None else 0o644, gid=gid)
    return path


def load(state_dir: "str | os.PathLike[str]") -> Routes:
    """Read the snapshot. Raises ``OSError`` or ``ValueError`` when it is missing or bad."""
    with open(os.path.join(state_dir, ROUTES_NAME), "rb") as f:
        doc = json.loads(f.read().decode("utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("rooms"), dict):
        raise ValueError("not a routes file")
    rooms: dict[str, tuple[str, str]] = {}
    for ext, value in doc["rooms"].items():
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str)
                                                                for v in value):
            rooms[str(ext)] = (value[0], value[1])
    trunk = doc.get("trunk_id")
    endpoint = doc.get("endpoint")
    return Routes(trunk if isinstance(trunk, str) else None,
                  endpoint if isinstance(endpoint, str) and endpoint else "alexa", rooms)


def _may(st: os.stat_result, uid: int, gids: set[int], bit: int) -> bool:
    """Whether a user may read (bit 4) or search/execute (bit 1), by the mode bits."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & (bit << 6))
    if st.st_gid in gids:
        return bool(st.st_mode & (bit << 3))
    return bool(st.st_mode & bit)


def unreadable_by(path: Path, user: str) -> str | None:
    """Why ``user`` could not read ``path`` (a folder on the way it may not pass, or the
    file itself), or None when it can. Judged from the mode bits (no ACLs)."""
    import pwd
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return f"there is no user {user!r} on this host"
    gids = set(os.getgrouplist(user, pw.pw_gid))
    path = path.absolute()
    for folder in reversed(path.parents):
        st = os.stat(folder)
        if not _may(st, pw.pw_uid, gids, 1):
            return f"{folder} is {stat.filemode(st.st_mode)} {_owner(st)}: {user} may not " \
                   f"pass through it (e.g. chmod o+x {folder})"
    st = os.stat(path)
    if not _may(st, pw.pw_uid, gids, 4):
        return f"{path} is {stat.filemode(st.st_mode)} {_owner(st)}: {user} may not read " \
               "it (set [agi] group to a group of that user)"
    return None


def _owner(st: os.stat_result) -> str:
    import grp
    import pwd
    try:
        u = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        u = str(st.st_uid)
    try:
        g = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        g = str(st.st_gid)
    return f"{u}:{g}"
