"""Whether the process AGI, run by Asterisk as its own user, will find the routes that
``rooms apply`` just published (checked after each publish; warnings only)."""

from __future__ import annotations

from pathlib import Path


def check_agi_access(path: Path, user: str, asterisk_dir: Path | None = None) -> None:
    """Whether the AGI, run by Asterisk as ``user``, reads the routes just published: the
    state dir the generated dialplan's process AGI names (it cannot read the settings), and
    that file, as that user."""
    from .. import log
    from ..defaults import DEFAULT_STATE_DIR
    from ..rooms.routes import unreadable_by
    named = dialplan_state_dirs(asterisk_dir) if asterisk_dir is not None else set()
    for d in sorted(named, key=str):
        reads = Path(d or DEFAULT_STATE_DIR) / path.name
        if reads != path:
            how = f"names the state dir {d}" if d else \
                f"names no state dir, so it reads the default {DEFAULT_STATE_DIR}"
            log.event("agi-access", "warning", f"the dialplan's process AGI {how}, but the "
                      f"routes are published in {path.parent}: calls will not find them; run "
                      "'pbx-bridge generate --agi process --write' to name this one",
                      user=user)
    try:
        why = unreadable_by(path, user)
    except OSError as exc:
        why = str(exc)
    if why:
        log.event("agi-access", "warning", f"the AGI user {user} ([agi] user) cannot read "
                  f"the routes it needs: {why}", user=user)


def dialplan_state_dirs(asterisk_dir: Path) -> "set[str | None]":
    """The state dirs named by the process AGI calls pbx-bridge wrote into the dialplan."""
    from ..generate.render import agi_state_dirs
    found: set[str | None] = set()
    for name in ("extensions_pbx-bridge.conf", "extensions_custom.conf"):
        try:
            found |= agi_state_dirs((asterisk_dir / name).read_text(errors="replace"))
        except OSError:
            continue
    return found
