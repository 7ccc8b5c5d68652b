"""After ``generate --rollback`` put an older certificate back (undoing a renew-hook), Amazon's
trunk must get that chain back too, once Asterisk serves it, or the next call fails TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..amazon.client import PbxApi
    from ..settings import Settings


def chain_after_rollback(settings: "Settings", asterisk_dir: Path, restored: list[Path],
                         reloaded: bool, api: "Callable[[], PbxApi]") -> str | None:
    """Send the restored certificate's chain to Amazon when the rollback restored the TLS
    transport's certificate: what was done, or None when nothing was to do. Raises
    ApplyFailed, naming `pbx-bridge trunk update`, when that cannot be done."""
    from ..amazon.models import TrunkSpec
    from ..certs import same_chain
    from ..errors import PbxBridgeError
    from ..generate.transaction import ApplyFailed
    from ..preflight.snapshot import Options, Unknown, gather
    from ..state import State
    from .served import wait_served
    snap = gather(Options(asterisk_dir=asterisk_dir, firewall=False, dns=False))
    cert, t = snap.cert, snap.transport
    if t is None or isinstance(cert, Unknown) or isinstance(cert.chain, Unknown) or \
            not cert.chain or Path(cert.path).resolve() not in {p.resolve() for p in restored}:
        return None
    from cryptography.hazmat.primitives.serialization import Encoding
    chain = tuple(c.public_bytes(Encoding.PEM).decode() for c in cert.chain)
    leaf = cert.leaf() or cert.chain[0]
    undone = "; Amazon may still hold the renewed chain: run 'pbx-bridge trunk update' "
    try:
        tid = State(settings.state_dir).trunk_id
        if tid is None:
            return None
        amazon = api()
        trunk = amazon.get_trunk(tid)
        if same_chain(trunk.certificate_chain, chain):
            return f"trunk {tid} at Amazon already holds the restored certificate chain"
        want = leaf.public_bytes(Encoding.DER)
        if not reloaded or wait_served(t.connect_host, t.port, want, 5.0) != want:
            raise ApplyFailed(f"rolled back, but Asterisk does not serve the restored "
                              f"certificate on {t.connect_host}:{t.port}, so Amazon keeps its "
                              f"chain; restart Asterisk, then run 'pbx-bridge trunk update'")
        amazon.update_trunk(tid, TrunkSpec(trunk.name or "", chain, trunk.peers))
    except ApplyFailed:
        raise
    except PbxBridgeError as exc:
        raise ApplyFailed(f"rolled back the certificate files, but Amazon was not updated "
                          f"({exc})" + undone + "once it answers") from None
    return f"trunk {tid}: the restored certificate chain sent to Amazon"
