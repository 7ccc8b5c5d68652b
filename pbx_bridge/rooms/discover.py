"""The PBX's PJSIP endpoints, the rooms ``rooms import`` matches against: over AMI from the
running Asterisk, or from the config files."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from ..secret import Secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..amazon.models import Unit


def pbx_endpoints(asterisk_dir: Path, ami: "tuple[str, int, str, Secret] | None") -> list[str]:
    """The endpoint names: over AMI when ``ami`` (host, port, user, secret) is given, else
    from ``pjsip.conf`` in ``asterisk_dir``."""
    if ami is not None:
        from ..asterisk.ami import AmiClient
        host, port, user, secret = ami
        client = AmiClient(host, port, user, secret)
        client.connect()
        try:
            return client.pjsip_endpoints()
        finally:
            client.close()
    from ..asterisk import pjsip
    from ..asterisk.conf import read_config
    from ..host import FileSystem
    if not asterisk_dir.is_dir():
        raise InputError(str(asterisk_dir), "Asterisk config directory does not exist")
    cfg = read_config(FileSystem(asterisk_dir), "pjsip.conf")
    if not cfg.found:
        raise InputError(str(asterisk_dir / "pjsip.conf"), "does not exist")
    return [sec.name for sec in pjsip.objects(cfg, "endpoint")]


def room_key(name: str) -> str:
    """A room's number as the PBX names it: the last word of the unit's name ("Room 101")."""
    parts = name.split()
    return (parts[-1] if parts else name).casefold()


def match_rooms(names: list[str], pattern: "re.Pattern[str]", units: "list[Unit]"
                ) -> "tuple[list[tuple[str, Unit]], list[str]]":
    """The numeric extensions whose ``room`` part (``pattern``) names a unit: (extension,
    unit) pairs, and the extensions that match the pattern but no unit."""
    by_key = {room_key(u.name): u for u in units}
    matched: list[tuple[str, Unit]] = []
    unmatched = []
    for name in names:
        m = pattern.match(name)
        if not m or not name.isdigit():
            continue
        unit = by_key.get(m.group("room").casefold())
        if unit is None:
            unmatched.append(name)
        else:
            matched.append((name, unit))
    return matched, unmatched
