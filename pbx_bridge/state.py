"""What pbx-bridge remembers between runs, in the state dir: the trunk it manages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InputError
from .fileio import atomic_write
from .statedir import read_error


class State:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.json"

    def read(self) -> dict[str, Any]:
        """The state; {} when there is none yet. A file this user may not read is not
        corrupt: only one that does not parse is worth moving away."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise read_error(self.path, exc, "the state file") from None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise self._corrupt(f"it is not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise self._corrupt("it is JSON but not an object")
        return doc

    def _corrupt(self, why: str) -> InputError:
        return InputError(str(self.path), f"the state file is corrupt: {why}; move it away "
                          "to start afresh (the trunk id it held: pbx-bridge trunk list)")

    def write(self, doc: dict[str, Any]) -> None:
        try:
            atomic_write(self.path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)
        except OSError as exc:
            raise InputError(str(self.path), f"cannot write the state file: "
                             f"{exc.strerror or exc}") from None

    @property
    def trunk_id(self) -> str | None:
        tid = self.read().get("trunkId")
        return tid if isinstance(tid, str) else None

    @property
    def pending_renewal(self) -> dict[str, Any] | None:
        """A certificate renewal renew-hook could not install: lineage, notAfter, reason."""
        doc = self.read().get("pendingRenewal")
        return doc if isinstance(doc, dict) and isinstance(doc.get("lineage"), str) else None

    def remember_renewal(self, lineage: str, not_after: str, reason: str, when: str) -> None:
        doc = self.read()
        doc["pendingRenewal"] = {"lineage": lineage, "notAfter": not_after, "reason": reason,
                                 "since": when}
        self.write(doc)

    def forget_renewal(self) -> None:
        doc = self.read()
        if doc.pop("pendingRenewal", None) is not None:
            self.write(doc)

    def set_trunk(self, trunk_id: str | None, **extra: Any) -> None:
        doc = self.read()
        if trunk_id is None:
            doc.pop("trunkId", None)
            doc.pop("trunk", None)
        else:
            doc["trunkId"] = trunk_id
            doc["trunk"] = extra
        self.write(doc)
