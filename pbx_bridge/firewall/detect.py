"""Tell a saved ruleset's format from its text and parse it."""

from __future__ import annotations

from typing import Callable

from .model import Ruleset
from .values import RulesetSyntaxError


def detect_format(text: str) -> str | None:
    head = text.lstrip()
    if head.startswith("{") and '"nftables"' in head[:200]:
        return "nft-json"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if any(ln.startswith("*filter") or ln.startswith("*nat") or ln.startswith("*raw")
           or ln.startswith("*mangle") for ln in lines):
        return "iptables-save"
    if any(ln.startswith("table ") and ln.endswith("{") for ln in lines) or (
            lines and lines[0].startswith("# Warning: table ")):
        return "nft"
    if any(ln.startswith("Status: ") for ln in lines[:3]):
        return "ufw"
    if any(ln.startswith("target:") for ln in lines) and \
            any(ln.startswith("services:") or ln.startswith("ports:") for ln in lines):
        return "firewalld"
    return None


def parser(fmt: str) -> Callable[[str, str], Ruleset]:
    """The parser of a format; only the module a ruleset needs is imported."""
    if fmt == "iptables-save":
        from .iptables import parse_iptables_save
        return parse_iptables_save
    if fmt == "nft":
        from .nft import parse_nft_text
        return parse_nft_text
    if fmt == "nft-json":
        from .nft import parse_nft_json
        return parse_nft_json
    if fmt == "ufw":
        from .frontends import parse_ufw
        return parse_ufw
    if fmt == "firewalld":
        from .frontends import parse_firewalld
        return parse_firewalld
    raise KeyError(fmt)


def parse_ruleset(text: str, source: str) -> Ruleset:
    fmt = detect_format(text)
    if fmt is None:
        raise RulesetSyntaxError(
            f"{source}: not a ruleset pbx-bridge knows (iptables-save, nft list ruleset, "
            "nft -j list ruleset, ufw status verbose, firewall-cmd --list-all)")
    return parser(fmt)(text, source)


def combine(parts: list[Ruleset], source: str) -> Ruleset:
    """Rulesets that all filter the same packet (iptables plus native nft tables)."""
    if len(parts) == 1:
        return parts[0]
    chains = {}
    base: list[str] = []
    notes: list[str] = []
    for i, rs in enumerate(parts):
        for name, chain in rs.chains.items():
            chains[f"{rs.format}:{name}"] = chain
        base.extend(f"{rs.format}:{b}" for b in rs.base)
        notes.extend(rs.notes)
    # Jump targets are names inside each part: re-key them.
    from dataclasses import replace
    fixed = {}
    for key, chain in chains.items():
        fmt = key.split(":", 1)[0]
        fixed[key] = replace(chain, rules=tuple(
            r._replace(target=f"{fmt}:{r.target}") if r.target else r for r in chain.rules))
    return Ruleset("+".join(p.format for p in parts), source, fixed, tuple(base), tuple(notes))
