"""What every check's finding is made of beside its verdict: where (file:line) as text, a
skip with its reason, and the fix that names the file the user may edit (on FreePBX, the
``*_custom*.conf`` files it never overwrites)."""

from __future__ import annotations

import os

from ..asterisk.conf import Section, Where
from ..findings import Finding, Status
from .snapshot import Snapshot

# FreePBX writes these on every 'fwconsole reload': changes go beside them, never into them
GENERATED = {"pjsip.transports.conf", "pjsip.endpoint.conf", "pjsip.aor.conf",
             "pjsip.identify.conf", "pjsip.auth.conf", "pjsip.registration.conf",
             "rtp_additional.conf"}


def where_text(where: Where | None) -> str | None:
    return str(where) if where is not None else None


def skip(id_: str, why: str) -> Finding:
    return Finding(id_, Status.SKIP, why)


def edit_fix(snap: Snapshot, section: Section, lines: list[str]) -> str:
    """How to change settings of an existing section, in the file the user may edit."""
    base = os.path.basename(section.where.file)
    body = "\n".join(lines)
    if snap.freepbx and base in GENERATED:
        custom = base.replace(".conf", "_custom_post.conf")
        return (f"FreePBX regenerates {base}; add to {custom} (next to it):\n"
                f"[{section.name}](+)\n{body}")
    return f"in [{section.name}] at {section.where}, set:\n{body}"


def new_fix(snap: Snapshot, kind: str, block: str) -> str:
    if snap.freepbx:
        target = {"transport": "pjsip.transports_custom.conf",
                  "endpoint": "pjsip.endpoint_custom.conf"}.get(kind, "pjsip_custom.conf")
        return f"add to {target}:\n{block}"
    return f"add to pjsip.conf:\n{block}"
