"""Parse ``ufw status verbose`` and ``firewall-cmd --list-all`` into a :class:`Ruleset`."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from .model import Chain, Net, PortRange, Rule, Ruleset
from .values import RulesetSyntaxError, parse_nets, parse_ports

_UFW_ACTIONS = {"ALLOW": "accept", "DENY": "drop", "REJECT": "reject", "LIMIT": "accept"}


@dataclass(frozen=True)
class _UfwEnd:
    nets: tuple[Net, ...] | None = None  # None: any address
    ports: tuple[PortRange, ...] | None = None
    protos: frozenset[str] | None = None
    understood: bool = True
    ipv6: bool = False


def _ufw_endpoint(text: str, where: str) -> _UfwEnd:
    """``5061/tcp``, ``10000:20000/udp``, ``Anywhere``, ``1.2.3.0/24 5061/tcp``, ``OpenSSH``."""
    if "(v6)" in text:
        return _UfwEnd(ipv6=True)
    text = text.split(" on ")[0].strip()
    nets = None
    ports = None
    protos = None
    for part in text.split():
        if part == "Anywhere":
            continue
        if re.match(r"^[\d.]+(/\d+)?$", part):
            nets = parse_nets(part, where)
            continue
        if re.match(r"^[0-9a-fA-F:]+(/\d+)?$", part) and part.count(":") > 1:
            return _UfwEnd(ipv6=True)
        m = re.match(r"^([\d,:]+)(?:/(tcp|udp))?$", part)
        if m:
            ports = parse_ports(m.group(1), where)
            protos = frozenset({m.group(2)}) if m.group(2) else None
            continue
        return _UfwEnd(understood=False)  # an application profile: its ports are not listed
    return _UfwEnd(nets, ports, protos)


def parse_ufw(text: str, source: str) -> Ruleset:
    lines = text.splitlines()
    status = next((ln for ln in lines if ln.startswith("Status:")), None)
    if status is None:
        raise RulesetSyntaxError(f"{source}: no 'Status:' line; is this 'ufw status verbose'?")
    if "inactive" in status:
        return Ruleset("ufw", source, {}, (), ("ufw is inactive: it filters nothing",), True)
    default = next((ln for ln in lines if ln.startswith("Default:")), None)
    if default is None:
        raise RulesetSyntaxError(f"{source}: no 'Default:' line; run 'ufw status verbose' "
                                 "(not plain 'ufw status')")
    m = re.search(r"(allow|deny|reject)\s+\(incoming\)", default)
    policy = "accept" if m and m.group(1) == "allow" else "drop"
    rules: list[Rule] = []
    notes: list[str] = []
    in_table = False
    for lineno, line in enumerate(lines, 1):
        if line.startswith("--"):
            in_table = True
            continue
        if not in_table or not line.strip():
            continue
        where = f"{source}:{lineno}"
        cols = re.split(r"\s{2,}", line.strip())
        if len(cols) < 3:
            raise RulesetSyntaxError(f"{where}: cannot read ufw rule {line.strip()!r}")
        to, action, frm = cols[0], cols[1], cols[2]
        words = action.split()
        if len(words) > 1 and words[1] != "IN":
            continue  # OUT and FWD rules do not decide inbound traffic
        verdict = _UFW_ACTIONS.get(words[0])
        if verdict is None:
            raise RulesetSyntaxError(f"{where}: unknown ufw action {action!r}")
        dst = _ufw_endpoint(to, where)
        src = _ufw_endpoint(frm, where)
        unknown = []
        if not dst.understood or not src.understood:
            unknown.append("application profile (ports not listed by ufw status)")
        if src.ports is not None:
            unknown.append("source port")
        if words[0] == "LIMIT":
            unknown.append("LIMIT (rate-limited)")
        rules.append(Rule(verdict=verdict, where=where, text=line.strip(),  # type: ignore[arg-type]
                          proto=dst.protos or src.protos, src=src.nets, dst=dst.nets,
                          dports=dst.ports, never=dst.ipv6 or src.ipv6, unknown=tuple(unknown)))
    chain = Chain("ufw", tuple(rules), policy, source)  # type: ignore[arg-type]
    return Ruleset("ufw", source, {"ufw": chain}, ("ufw",), tuple(notes))


# firewalld services we know the ports of (from firewalld's own service files).
_FIREWALLD_SERVICES: dict[str, tuple[tuple[str, PortRange], ...]] = {
    "sip": (("tcp", (5060, 5060)), ("udp", (5060, 5060))),
    "sips": (("tcp", (5061, 5061)), ("udp", (5061, 5061))),
    "ssh": (("tcp", (22, 22)),),
    "http": (("tcp", (80, 80)),),
    "https": (("tcp", (443, 443)),),
}


def parse_firewalld(text: str, source: str) -> Ruleset:
    lines = text.splitlines()
    zone_line = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith(" ")
                      and not ln.startswith("\t")), None)
    if zone_line is None or not any(ln.strip().startswith("target:") for ln in lines):
        raise RulesetSyntaxError(f"{source}: no zone with 'target:'; is this "
                                 "'firewall-cmd --list-all'?")
    fields: dict[str, tuple[int, str]] = {}
    rich: list[tuple[int, str]] = []
    in_rich = False
    for lineno, line in enumerate(lines[zone_line + 1:], zone_line + 2):
        if line and not line[0].isspace():
            break  # another zone: --list-all names one
        stripped = line.strip()
        if not stripped:
            continue
        if in_rich and not re.match(r"^[a-z-]+:", stripped):
            rich.append((lineno, stripped))
            continue
        key, _, value = stripped.partition(":")
        fields[key.strip()] = (lineno, value.strip())
        in_rich = key.strip() == "rich rules"
        if in_rich and value.strip():
            rich.append((lineno, value.strip()))
    target_line, target = fields.get("target", (0, "default"))
    policy = "accept" if target.upper() == "ACCEPT" else "drop"
    allows: list[Rule] = []
    denies: list[Rule] = []
    notes: list[str] = []
    src_line, sources = fields.get("sources", (0, ""))
    if sources:
        notes.append(f"zone is bound to sources {sources}; traffic from elsewhere uses another "
                     "zone, which this listing does not show")
    ports_line, ports = fields.get("ports", (0, ""))
    for p in ports.split():
        where = f"{source}:{ports_line}"
        num, _, proto = p.partition("/")
        allows.append(Rule(verdict="accept", where=where, text=f"ports: {p}",
                           proto=frozenset({proto}), dports=parse_ports(num, where, sep="-")))
    svc_line, services = fields.get("services", (0, ""))
    for s in services.split():
        where = f"{source}:{svc_line}"
        for proto, rng in _FIREWALLD_SERVICES.get(s, ()):
            allows.append(Rule(verdict="accept", where=where, text=f"services: {s}",
                               proto=frozenset({proto}), dports=(rng,)))
    for lineno, text_rule in rich:
        where = f"{source}:{lineno}"
        rule = _rich_rule(text_rule, where)
        (denies if rule.verdict in ("drop", "reject") else allows).append(rule)
    rules = tuple(denies + allows)
    if sources:
        src_nets = parse_nets(sources.replace(" ", ","), f"{source}:{src_line}")
        rules = (Rule(verdict="drop", where=f"{source}:{src_line}",
                      text=f"sources: {sources} (other sources go to another zone)",
                      src=src_nets, src_neg=True, unknown=("traffic outside the zone's sources",)),
                 ) + rules
    chain = Chain("zone", rules, policy, f"{source}:{target_line}")  # type: ignore[arg-type]
    return Ruleset("firewalld", source, {"zone": chain}, ("zone",), tuple(notes))


def _rich_rule(text: str, where: str) -> Rule:
    try:
        toks = shlex.split(text)
    except ValueError as exc:
        raise RulesetSyntaxError(f"{where}: {exc}") from None
    kv: dict[str, str] = {}
    flags = set()
    context = ""
    neg = False
    for t in toks:
        if "=" in t:
            k, v = t.split("=", 1)
            kv[f"{context}.{k}"] = v
        elif t == "NOT":
            neg = True
        else:
            flags.add(t)
            context = t
            if t == "source" and neg:
                kv["source.not"] = "1"
    verdict = next((v for k, v in (("accept", "accept"), ("drop", "drop"),
                                   ("reject", "reject")) if k in flags), None)
    unknown: list[str] = []
    if verdict is None:
        verdict = "continue"
    if kv.get("rule.family") == "ipv6":
        return Rule(verdict=verdict, where=where, text=text, never=True)  # type: ignore[arg-type]
    src = parse_nets(kv["source.address"], where) if "source.address" in kv else None
    dports = None
    proto = None
    if "port.port" in kv:
        dports = parse_ports(kv["port.port"], where, sep="-")
        proto = frozenset({kv.get("port.protocol", "tcp")})
    if "service.name" in kv:
        svc = _FIREWALLD_SERVICES.get(kv["service.name"])
        if svc is None:
            unknown.append(f"service {kv['service.name']}")
        else:
            proto = frozenset(p for p, _ in svc)
            dports = tuple(r for _, r in svc)
    if "limit" in flags:
        unknown.append("limit")
    if "source.ipset" in kv:
        unknown.append(f"ipset {kv['source.ipset']}")
    return Rule(verdict=verdict, where=where, text=text, src=src,  # type: ignore[arg-type]
                src_neg="source.not" in kv, proto=proto, dports=dports, unknown=tuple(unknown))
