"""Parse ``iptables-save`` output (the ``filter`` table's INPUT path) into a :class:`Ruleset`."""

from __future__ import annotations

import shlex

from .model import Chain, Rule, Ruleset
from .values import RulesetSyntaxError, parse_mark, parse_nets, parse_ports

_TERMINAL = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject", "RETURN": "return"}
# Targets that only observe or annotate the packet: evaluation goes on with the next rule.
_CONTINUE = {"LOG", "NFLOG", "ULOG", "MARK", "CONNMARK", "CT", "NOTRACK", "AUDIT", "TRACE",
             "SET", "CLASSIFY", "DSCP", "TOS", "TCPMSS", "NFQUEUE"}
# Match modules whose options we evaluate; any other module makes the rule uncertain.
_KNOWN_MODULES = {"tcp", "udp", "multiport", "state", "conntrack", "comment", "mark", "addrtype"}


def parse_iptables_save(text: str, source: str) -> Ruleset:
    chains: dict[str, list[Rule]] = {}
    policies: dict[str, str] = {}
    where_chain: dict[str, str] = {}
    table = None
    seen_filter = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = line[1:].strip()
            seen_filter = seen_filter or table == "filter"
            continue
        if table != "filter" or line == "COMMIT":
            continue
        where = f"{source}:{lineno}"
        if line.startswith(":"):
            parts = line[1:].split()
            if not parts:
                raise RulesetSyntaxError(f"{where}: chain line without a name")
            chains.setdefault(parts[0], [])
            where_chain[parts[0]] = where
            if len(parts) > 1 and parts[1] != "-":
                policies[parts[0]] = parts[1]
            continue
        if line.startswith("["):  # iptables-save -c counters
            line = line.split("]", 1)[-1].strip()
        chain, rule = _parse_rule(line, where)
        chains.setdefault(chain, []).append(rule)
    if not seen_filter:
        # Only nat/mangle/raw tables loaded: iptables filters nothing.
        return Ruleset("iptables-save", source, {}, (),
                       ("no filter table: iptables filters nothing",))
    built = {
        name: Chain(name, tuple(rules),
                    ("accept" if policies.get(name, "ACCEPT") == "ACCEPT" else "drop")
                    if name == "INPUT" else None, where_chain.get(name, ""))
        for name, rules in chains.items()
    }
    base = ("INPUT",) if "INPUT" in built else ()
    return Ruleset("iptables-save", source, built, base)


def _parse_rule(line: str, where: str) -> tuple[str, Rule]:
    try:
        # iptables-save quotes only values with spaces (comments): split plainly otherwise.
        toks = shlex.split(line) if '"' in line or "'" in line else line.split()
    except ValueError as exc:
        raise RulesetSyntaxError(f"{where}: {exc}") from None
    if len(toks) < 2 or toks[0] not in ("-A", "--append"):
        raise RulesetSyntaxError(f"{where}: expected '-A CHAIN ...' (iptables-save output), "
                                 f"got {line[:60]!r}")
    chain = toks[1]
    f: dict[str, object] = {}
    unknown: list[str] = []
    module = ""
    neg = False
    verdict = "continue"
    target: str | None = None
    i = 2
    n = len(toks)

    def arg() -> str:
        nonlocal i
        i += 1
        if i >= n:
            raise RulesetSyntaxError(f"{where}: option {toks[i - 1]} needs a value")
        return toks[i]

    while i < n:
        t = toks[i]
        if t == "!":
            neg = True
            i += 1
            continue
        if t in ("-p", "--protocol"):
            f["proto"] = frozenset({arg().lower()})
            f["proto_neg"] = neg
        elif t in ("-s", "--source"):
            f["src"] = parse_nets(arg(), where)
            f["src_neg"] = neg
        elif t in ("-d", "--destination"):
            f["dst"] = parse_nets(arg(), where)
            f["dst_neg"] = neg
        elif t in ("-i", "--in-interface"):
            f["iif"] = arg()
            f["iif_neg"] = neg
        elif t in ("-o", "--out-interface", "--comment", "--reject-with", "--log-prefix",
                   "--log-level", "--dst-type", "--src-type", "-f"):
            if t != "-f":
                v = arg()
                if t == "--dst-type" and v.upper() != "LOCAL" and not neg:
                    unknown.append(f"addrtype --dst-type {v}")
        elif t in ("-m", "--match"):
            module = arg()
            if module not in _KNOWN_MODULES:
                unknown.append(module)
        elif t in ("--dport", "--destination-port", "--dports", "--destination-ports"):
            f["dports"] = parse_ports(arg(), where)
            f["dports_neg"] = neg
        elif t in ("--state", "--ctstate"):
            states = {s.upper() for s in arg().split(",")}
            f["states"] = frozenset(s.lower() for s in states)
            f["states_neg"] = neg
        elif t == "--mark" and module in ("mark", "connmark"):
            f["mark"] = parse_mark(arg(), where)
            f["mark_neg"] = neg
            if module == "connmark":
                unknown.append("connmark")
        elif t in ("--set-xmark", "--set-mark", "--or-mark", "--and-mark", "--xor-mark"):
            mv, mm = parse_mark(arg(), where)
            f["set_mark"] = {
                "--set-xmark": (mv, mm),
                "--set-mark": (mv, mm | mv),
                "--or-mark": (mv, mv),
                "--and-mark": (0, ~mv & 0xFFFFFFFF),
                "--xor-mark": (mv, 0),
            }[t]
        elif t in ("-j", "--jump", "-g", "--goto"):
            name = arg()
            if name in _TERMINAL:
                verdict = _TERMINAL[name]
            elif name in _CONTINUE:
                verdict = "continue"
            else:
                # A user chain; a target that is no chain in the table is passed over.
                verdict = "goto" if t in ("-g", "--goto") else "jump"
                target = name
        elif t.startswith("-"):
            # An option of a module we do not evaluate: skip its values.
            if module in _KNOWN_MODULES and module not in ("addrtype",):
                unknown.append(f"{module} {t}")
            while i + 1 < n and not toks[i + 1].startswith("-") and toks[i + 1] != "!":
                i += 1
        else:
            raise RulesetSyntaxError(f"{where}: unexpected {t!r}")
        neg = False
        i += 1
    rule = Rule(verdict=verdict, where=where, text=line, target=target,  # type: ignore[arg-type]
                unknown=tuple(unknown), **f)  # type: ignore[arg-type]
    return chain, rule
