"""A firewall ruleset reduced to what decides whether an inbound packet is accepted, and an
evaluator that walks it as the kernel would: rule order, chain policies, jumps, gotos, returns,
packet marks, and several base chains on the input hook (each must accept).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Net = tuple[int, int]  # an IPv4 block a rule matches: its first and last address, as integers
Verdict = Literal["accept", "drop", "reject", "return", "jump", "goto", "continue"]
PortRange = tuple[int, int]

MAX_DEPTH = 64


class Rule(NamedTuple):
    """One rule. ``None`` for a match means "not restricted". A NamedTuple: a ruleset has
    thousands (fail2ban bans), and a tuple is made several times faster than a frozen
    dataclass."""

    verdict: Verdict
    where: str
    text: str
    target: str | None = None
    proto: frozenset[str] | None = None
    proto_neg: bool = False
    src: tuple[Net, ...] | None = None
    src_neg: bool = False
    dst: tuple[Net, ...] | None = None
    dst_neg: bool = False
    dports: tuple[PortRange, ...] | None = None
    dports_neg: bool = False
    iif: str | None = None
    iif_neg: bool = False
    states: frozenset[str] | None = None
    states_neg: bool = False
    mark: tuple[int, int] | None = None  # (value, mask)
    mark_neg: bool = False
    set_mark: tuple[int, int] | None = None  # (xor value, clear mask), iptables' --set-xmark
    never: bool = False  # matches no IPv4 packet (an ip6-only rule, say)
    unknown: tuple[str, ...] = ()  # matches we cannot judge


@dataclass(frozen=True)
class Chain:
    name: str
    rules: tuple[Rule, ...]
    policy: Literal["accept", "drop"] | None = None  # base chains only
    where: str = ""


@dataclass(frozen=True)
class Ruleset:
    """Chains keyed by a name unique in the ruleset; ``base`` are the input-hook chains in the
    order the kernel runs them. ``scope`` maps each chain to the prefix jumps are resolved in."""

    format: str
    source: str
    chains: dict[str, Chain]
    base: tuple[str, ...]
    notes: tuple[str, ...] = ()
    inactive: bool = False  # e.g. ``ufw status: inactive``: nothing filtered


@dataclass
class Packet:
    proto: str
    src: int
    dport: int
    dst: int | None
    iif: str | None = None  # None: the external interface, name unknown
    state: str = "new"
    mark: int = 0


@dataclass(frozen=True)
class Decision:
    accepted: bool
    rule: Rule | None  # the rule that decided, None when a policy did
    chain: str
    uncertain: tuple[str, ...] = ()


Assume = Literal["worst", "best"]


@dataclass
class _Walk:
    assume: Assume = "worst"
    uncertain: list[str] = field(default_factory=list)


def _in_nets(ip: int, nets: tuple[Net, ...]) -> bool:
    return any(lo <= ip <= hi for lo, hi in nets)


def _in_ports(port: int, ranges: tuple[PortRange, ...]) -> bool:
    return any(lo <= port <= hi for lo, hi in ranges)


def rule_matches(rule: Rule, pkt: Packet, walk: _Walk) -> bool:
    if rule.never:
        return False
    if rule.proto is not None and (pkt.proto in rule.proto) == rule.proto_neg:
        return False
    if rule.src is not None and _in_nets(pkt.src, rule.src) == rule.src_neg:
        return False
    if rule.dports is not None and _in_ports(pkt.dport, rule.dports) == rule.dports_neg:
        return False
    if rule.iif is not None:
        # The packet comes in on the external interface, whose name we do not know: it is never
        # loopback, and any other named interface is assumed to be it.
        is_lo = rule.iif in ("lo", "lo+")
        if (not is_lo) == rule.iif_neg:
            return False
    if rule.states is not None and (pkt.state in rule.states) == rule.states_neg:
        return False
    if rule.mark is not None:
        value, mask = rule.mark
        if ((pkt.mark & mask) == value) == rule.mark_neg:
            return False
    if rule.dst is not None:
        if pkt.dst is None:
            return _uncertain(rule, walk, "destination address unknown")
        if _in_nets(pkt.dst, rule.dst) == rule.dst_neg:
            return False
    if rule.unknown:
        return _uncertain(rule, walk, ", ".join(rule.unknown))
    return True


def _uncertain(rule: Rule, walk: _Walk, why: str) -> bool:
    # A rule we cannot evaluate is judged both ways: in the worst case it never accepts and
    # always refuses, in the best case the reverse. Chains it jumps to are not entered.
    note = f"{rule.where}: cannot judge '{why}' in: {rule.text}"
    if note not in walk.uncertain:
        walk.uncertain.append(note)
    refuses = rule.verdict in ("drop", "reject")
    accepts = rule.verdict == "accept"
    return refuses if walk.assume == "worst" else accepts


def _run_chain(rs: Ruleset, name: str, pkt: Packet, walk: _Walk, depth: int
               ) -> tuple[str, Rule | None, str]:
    """Returns (outcome, deciding rule, chain) with outcome accept/drop/reject/return."""
    chain = rs.chains.get(name)
    if chain is None or depth > MAX_DEPTH:
        return "return", None, name
    for rule in chain.rules:
        if not rule_matches(rule, pkt, walk):
            continue
        if rule.set_mark is not None:
            value, mask = rule.set_mark
            pkt.mark = (pkt.mark & ~mask) ^ value
        v = rule.verdict
        if v in ("accept", "drop", "reject"):
            return v, rule, name
        if v == "return":
            return "return", rule, name
        if v in ("jump", "goto") and rule.target:
            outcome, decider, where = _run_chain(rs, rule.target, pkt, walk, depth + 1)
            if outcome != "return" or v == "goto":
                return outcome, decider, where
    return "return", None, name


def decide(rs: Ruleset, pkt: Packet, assume: Assume = "worst") -> Decision:
    walk = _Walk(assume)
    if rs.inactive:
        return Decision(True, None, "", ())
    for base in rs.base:
        outcome, rule, chain = _run_chain(rs, base, pkt, walk, 0)
        if outcome == "return":
            policy = rs.chains[base].policy or "accept"
            if policy != "accept":
                return Decision(False, None, base, tuple(walk.uncertain))
            continue
        if outcome != "accept":
            return Decision(False, rule, chain, tuple(walk.uncertain))
    return Decision(True, None, rs.base[-1] if rs.base else "", tuple(walk.uncertain))


@dataclass(frozen=True)
class Gap:
    """Ports not accepted from some part of a source network, and what refused them."""

    src: str
    ports: PortRange
    decision: Decision

    def describe(self) -> str:
        lo, hi = self.ports
        ports = str(lo) if lo == hi else f"{lo}-{hi}"
        d = self.decision
        by = (f"rule at {d.rule.where} ({d.rule.text})" if d.rule
              else f"policy of chain {d.chain}")
        return f"{ports} from {self.src}: refused by {by}"


@dataclass(frozen=True)
class Coverage:
    gaps: tuple[Gap, ...]
    uncertain: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.gaps


def _relevant(rs: Ruleset, proto: str, cidr: ipaddress.IPv4Network) -> Ruleset:
    """Drop rules that cannot match any packet of this protocol from this network."""
    lo, hi = int(cidr.network_address), int(cidr.broadcast_address)
    chains = {}
    for name, chain in rs.chains.items():
        keep = []
        for r in chain.rules:
            if r.never:
                continue
            if r.proto is not None and not r.proto_neg and proto not in r.proto:
                continue
            if r.src is not None and not r.src_neg and not any(
                first <= hi and last >= lo for first, last in r.src
            ):
                continue
            keep.append(r)
        chains[name] = Chain(chain.name, tuple(keep), chain.policy, chain.where)
    return Ruleset(rs.format, rs.source, chains, rs.base, rs.notes, rs.inactive)


def coverage(rs: Ruleset, proto: str, cidr: ipaddress.IPv4Network, ports: PortRange,
             dst: int | None, assume: Assume = "worst") -> Coverage:
    """Which (source, port) pairs of ``cidr`` x ``ports`` the ruleset does not accept.

    The space is split at every boundary any relevant rule draws, so one packet per cell
    stands for the whole cell.
    """
    rel = _relevant(rs, proto, cidr)
    lo_ip, hi_ip = int(cidr.network_address), int(cidr.broadcast_address)
    ip_cuts = {lo_ip, hi_ip + 1}
    port_cuts = {ports[0], ports[1] + 1}
    for chain in rel.chains.values():
        for r in chain.rules:
            for first, last in r.src or ():
                for b in (first, last + 1):
                    if lo_ip < b <= hi_ip:
                        ip_cuts.add(b)
            for plo, phi in r.dports or ():
                for b in (plo, phi + 1):
                    if ports[0] < b <= ports[1]:
                        port_cuts.add(b)
    ips = sorted(ip_cuts)
    pts = sorted(port_cuts)
    gaps: list[Gap] = []
    uncertain: list[str] = []
    for i in range(len(ips) - 1):
        src_lo, src_hi = ips[i], ips[i + 1] - 1
        src_text = _ip_range_text(src_lo, src_hi)
        open_gap: tuple[int, Decision] | None = None
        for j in range(len(pts) - 1):
            p_lo, p_hi = pts[j], pts[j + 1] - 1
            d = decide(rel, Packet(proto, src_lo, p_lo, dst), assume)
            uncertain.extend(u for u in d.uncertain if u not in uncertain)
            if d.accepted:
                if open_gap:
                    gaps.append(Gap(src_text, (open_gap[0], p_lo - 1), open_gap[1]))
                    open_gap = None
            elif open_gap is None:
                open_gap = (p_lo, d)
            elif open_gap[1].rule != d.rule or open_gap[1].chain != d.chain:
                gaps.append(Gap(src_text, (open_gap[0], p_lo - 1), open_gap[1]))
                open_gap = (p_lo, d)
            if j == len(pts) - 2 and open_gap:
                gaps.append(Gap(src_text, (open_gap[0], p_hi), open_gap[1]))
    return Coverage(tuple(gaps), tuple(uncertain))


def _ip_range_text(lo: int, hi: int) -> str:
    nets = list(ipaddress.summarize_address_range(ipaddress.IPv4Address(lo),
                                                   ipaddress.IPv4Address(hi)))
    if len(nets) == 1:
        return str(nets[0])
    return f"{ipaddress.IPv4Address(lo)}-{ipaddress.IPv4Address(hi)}"
