"""Defaults several modules share: Amazon's network, where pbx-bridge's files live, and how a
path the user typed is taken. Kept free of imports but ``os`` (loaded with the interpreter),
so that the AGI (which starts on every call) can use them."""

import os

# Amazon's network for SIP signalling and media (configurable: --amazon-cidr).
DEFAULT_AMAZON_CIDR = "3.239.178.128/25"

# The settings file and the state dir (overridable: --config / PBX_BRIDGE_CONFIG, [paths]
# state_dir / PBX_BRIDGE_STATE_DIR).
DEFAULT_CONFIG = "/etc/pbx-bridge/pbx-bridge.toml"
DEFAULT_STATE_DIR = "/var/lib/pbx-bridge"


def absolute(path: str) -> str:
    """A path as the user meant it, made absolute against the working directory now (``~``
    expanded, ``..`` folded), so that nothing later depends on where it is used from."""
    return os.path.abspath(os.path.expanduser(path))
