"""Where the AGI reads the routes: the state dir, found without the settings when Asterisk's
user may not read them (the process AGI and FastAGI share this)."""

from __future__ import annotations

import os


def state_dir(explicit: str | None) -> tuple[str, str]:
    """--state-dir (the generated dialplan passes it), else $PBX_BRIDGE_STATE_DIR, else the
    settings file's (read only when this user may read it: the asterisk user usually may
    not), else the default. With a note saying so when the default was taken for want of
    the settings, which a miss then explains."""
    from ..defaults import DEFAULT_CONFIG, DEFAULT_STATE_DIR, absolute
    if explicit:
        return absolute(explicit), ""
    if os.environ.get("PBX_BRIDGE_STATE_DIR"):
        return absolute(os.environ["PBX_BRIDGE_STATE_DIR"]), ""
    config = os.environ.get("PBX_BRIDGE_CONFIG") or DEFAULT_CONFIG
    if os.access(config, os.R_OK):
        from ..errors import PbxBridgeError
        from ..settings import load
        try:
            return str(load(None).state_dir), ""
        except PbxBridgeError as exc:
            return DEFAULT_STATE_DIR, f"the settings could not be used ({exc}): the default " \
                f"state dir was read; pass --state-dir"
    if os.path.exists(config):
        return DEFAULT_STATE_DIR, (f"{config} is not readable by uid {os.getuid()}: the "
                                   "default state dir was read; pass --state-dir (pbx-bridge "
                                   "generate --agi process writes it into the dialplan)")
    return DEFAULT_STATE_DIR, ""
