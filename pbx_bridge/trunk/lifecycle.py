"""The trunk's life at Amazon: one trunk per PBX (created, or an identical one adopted), and
the wait for it to become ACTIVE."""

from __future__ import annotations

from typing import Callable

from ..errors import PbxBridgeError
from .local import changes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..amazon.client import PbxApi
    from ..amazon.models import Trunk, TrunkSpec
    from ..host import Clock
    from ..state import State


class TrunkFailed(PbxBridgeError):
    pass


def wait_active(api: "PbxApi", clock: "Clock", trunk_id: str, timeout: float,
                on_poll: Callable[[str, float], None]) -> "Trunk":
    """Poll the trunk until it is ACTIVE (backing off from 1 s to 30 s), telling ``on_poll``
    (status, seconds waited) after each poll; TrunkFailed when Amazon says FAILED or the
    timeout would pass."""
    start = clock.monotonic()
    delay = 1.0
    while True:
        trunk = api.get_trunk(trunk_id)
        status = trunk.status or "(no status)"
        elapsed = clock.monotonic() - start
        on_poll(status, elapsed)
        if status == "ACTIVE":
            return trunk
        if status == "FAILED":
            raise TrunkFailed(f"trunk {trunk_id} FAILED at Amazon; check the certificate "
                              "chain, TLS name and peers, then 'pbx-bridge trunk update'")
        if elapsed + delay > timeout:
            raise TrunkFailed(f"trunk {trunk_id} still {status} after {elapsed:.0f} s "
                              "(--timeout); run 'pbx-bridge trunk show' later")
        clock.sleep(delay)
        delay = min(delay * 1.5, 30.0)


def create_or_adopt(api: "PbxApi", state: "State", spec: "TrunkSpec", dry_run: bool = False
                    ) -> "tuple[Trunk | None, str]":
    """One trunk per PBX: Amazon's trunk with this TLS name is adopted when it is identical
    and refused when it differs; the saved trunk is never replaced while Amazon has it.
    ``dry_run``: the same decision, nothing created (the trunk is None for "created")."""
    from ..amazon.errors import ApiError
    saved = state.trunk_id
    named = [(t, changes(t, spec)) for t in api.list_trunks() if t.name == spec.name]
    same = [t for t, diff in named if not diff]
    if saved is not None and not any(t.trunk_id == saved for t in same):
        try:
            current = api.get_trunk(saved)
        except ApiError as exc:
            if exc.status != 404:
                raise
            current = None  # gone at Amazon: a new one may take its place
        if current is not None:
            raise TrunkFailed(f"this PBX already has trunk {saved} ({current.name}, "
                              f"{current.status}), saved in {state.path}; change it with "
                              f"'pbx-bridge trunk update', or delete it first ('pbx-bridge "
                              "trunk delete --yes')")
    if same:
        return same[0], "adopted"
    if named:
        t, diff = named[0]
        what = []  # the name is the same: "tls" differs by the chain
        if "peers" in diff:
            what.append(f"peers {', '.join(map(str, t.peers)) or '-'}")
        if "tls" in diff:
            what.append("another certificate chain")
        raise TrunkFailed(f"Amazon already has trunk {t.trunk_id} for {spec.name} "
                          f"({'; '.join(what) or 'different'}); make it match with "
                          f"'pbx-bridge trunk update {t.trunk_id}', or delete it first")
    if dry_run:
        return None, "created"
    return api.create_trunk(spec), "created"


def send_chain(api: "PbxApi", trunk_id: str, chain: tuple[str, ...], what: str
               ) -> tuple[str, bool]:
    """Give Amazon's trunk this certificate chain, unless it holds it already: (what happened,
    whether it was sent). ``what`` names the chain in the message."""
    from ..amazon.models import TrunkSpec
    from ..certs import same_chain
    trunk = api.get_trunk(trunk_id)
    if same_chain(trunk.certificate_chain, chain):
        return f"trunk {trunk_id} already holds this chain", False
    # the whole trunk, as Amazon holds it with the new chain: PUT replaces it
    api.update_trunk(trunk_id, TrunkSpec(trunk.name or "", chain, trunk.peers))
    return f"trunk {trunk_id}: {what} sent to Amazon", True
