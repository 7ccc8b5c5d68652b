"""A finding: one checked thing, with a stable id, its status, a one-line summary, the
evidence, where (file:line) and the exact fix. Preflight and test-call both report these."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    id: str
    status: Status
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    where: str | None = None
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status.value, "summary": self.summary,
                "evidence": self.evidence, "where": self.where, "fix": self.fix}
