"""Defaults several modules share: Amazon's network, and where pbx-bridge's files live. Kept
free of imports, so that the AGI (which starts on every call) can read them."""

# Amazon's network for SIP signalling and media (configurable: --amazon-cidr).
DEFAULT_AMAZON_CIDR = "3.239.178.128/25"

# The settings file and the state dir (overridable: --config / PBX_BRIDGE_CONFIG, [paths]
# state_dir / PBX_BRIDGE_STATE_DIR).
DEFAULT_CONFIG = "/etc/pbx-bridge/pbx-bridge.toml"
DEFAULT_STATE_DIR = "/var/lib/pbx-bridge"
