"""What pbx-bridge remembers between runs, in the state dir: the trunk it manages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InputError
from .fileio import atomic_write


class State:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.json"

    def read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise InputError(str(self.path), f"state file is unreadable ({exc}); move it "
                             "away to start afresh") from None
        return doc if isinstance(doc, dict) else {}

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

    def set_trunk(self, trunk_id: str | None, **extra: Any) -> None:
        doc = self.read()
        if trunk_id is None:
            doc.pop("trunkId", None)
            doc.pop("trunk", None)
        else:
            doc["trunkId"] = trunk_id
            doc["trunk"] = extra
        self.write(doc)
