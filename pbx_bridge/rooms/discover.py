"""The PBX's PJSIP endpoints, the rooms ``rooms import`` matches against: over AMI from the
running Asterisk, or from the config files."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..secret import Secret


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
