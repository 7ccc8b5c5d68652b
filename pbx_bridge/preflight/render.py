"""Show: preflight findings as text (a readable table) or JSON. Nothing else prints them."""

from __future__ import annotations

import json
from typing import TextIO

from ..findings import Finding, Status
from .checks import overall_ok, verdict

_COLOURS = {Status.PASS: "32", Status.WARN: "33", Status.FAIL: "31", Status.SKIP: "2",
            Status.ERROR: "35"}


MAX_PROBLEMS = 10  # listed in text; --format json has them all


def _problems(f: Finding) -> list[str]:
    """A finding's listed problems (``asterisk.config``'s), each ``severity file:line:
    message``, when it is not a pass."""
    raw = f.evidence.get("problems") if f.status not in (Status.PASS, Status.SKIP) else None
    if not isinstance(raw, list):
        return []
    out = []
    for p in raw:
        if isinstance(p, dict):
            where = f"{p['where']}: " if p.get("where") else ""
            out.append(f"{str(p.get('severity', 'problem')).ljust(7)} {where}"
                       f"{p.get('message', '')}")
    return out


def render_json(findings: list[Finding]) -> str:
    ready, words = verdict(findings)
    doc = {"ok": ready, "verdict": words, "findings": [f.to_json() for f in findings]}
    return json.dumps(doc, indent=2, ensure_ascii=False)


def render_text(findings: list[Finding], colour: bool,
                verdicts: tuple[str, str] | None = None) -> str:
    """The findings as a table, then the verdict: the preflight's (which needs every required
    check to have run), or ``verdicts`` (good, bad) by failures alone."""
    width = max((len(f.id) for f in findings), default=10)
    lines = []
    for f in findings:
        tag = f.status.value.upper().ljust(5)
        if colour:
            tag = f"\x1b[{_COLOURS[f.status]}m{tag}\x1b[0m"
        lines.append(f"{tag}  {f.id.ljust(width)}  {f.summary}")
        pad = " " * (width + 9)
        listed = _problems(f)
        if listed:  # each problem with its file:line, not only the first
            shown = listed[:MAX_PROBLEMS]
            for p in shown:
                lines.append(f"{pad}{p}")
            if len(listed) > len(shown):
                lines.append(f"{pad}and {len(listed) - len(shown)} more: --format json "
                             "lists them all")
        elif f.where and f.status not in (Status.PASS, Status.SKIP):
            lines.append(f"{pad}where: {f.where}")
        if f.fix and f.status in (Status.FAIL, Status.WARN, Status.ERROR):
            fix_lines = f.fix.split("\n")
            lines.append(f"{pad}fix:   {fix_lines[0]}")
            lines.extend(f"{pad}       {ln}" for ln in fix_lines[1:])
    counts = {s: sum(1 for f in findings if f.status == s) for s in Status}
    summary = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    if verdicts is None:
        words = verdict(findings)[1]
    else:
        words = verdicts[0] if overall_ok(findings) else verdicts[1]
    lines.append("")
    lines.append(f"{words}: {summary}")
    return "\n".join(lines)


def write(findings: list[Finding], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(render_json(findings) + "\n")
    else:
        from ..log import use_colour
        colour = use_colour(out)
        out.write(render_text(findings, colour) + "\n")
