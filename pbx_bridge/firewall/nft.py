"""Parse ``nft list ruleset`` and ``nft -j list ruleset`` into a :class:`Ruleset`.

Both forms are reduced to the same matches (see :func:`_Builder.match`), so the two can never
disagree about what a rule means.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Union

from .model import Chain, Net, PortRange, Rule, Ruleset
from .values import RulesetSyntaxError, parse_ip_range, parse_net, parse_port

_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50,
               "srcnat": 100}
_IPV4_FAMILIES = {"ip", "inet"}
_PROTO_NUMBERS = {"6": "tcp", "17": "udp", "1": "icmp"}

# A value: a word, a range (lo, hi) or a prefix (addr, len), as both forms give them.
Value = Union[str, int, tuple[str, Any, Any]]


@dataclass
class _Builder:
    where: str
    text: str
    sets: dict[str, list[Value]]
    f: dict[str, Any] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    verdict: str = "continue"
    target: str | None = None

    def values(self, raw: list[Value]) -> list[Value]:
        out: list[Value] = []
        for v in raw:
            if isinstance(v, str) and v.startswith("@"):
                if v[1:] not in self.sets:
                    self.unknown.append(f"set {v} (not in this ruleset)")
                    continue
                out.extend(self.sets[v[1:]])
            else:
                out.append(v)
        return out

    def match(self, key: str, op: str, raw: list[Value]) -> None:
        neg = op in ("!=", "ne")
        vals = self.values(raw)
        if key in ("ip saddr", "ip daddr"):
            nets: list[Net] = []
            for v in vals:
                nets.extend(_nets(v, self.where))
            name = "src" if key == "ip saddr" else "dst"
            self.f[name] = tuple(nets)
            self.f[name + "_neg"] = neg
        elif key in ("ip protocol", "meta l4proto", "meta protocol l4"):
            protos = frozenset(_PROTO_NUMBERS.get(str(v), str(v)).lower() for v in vals)
            self._proto(protos, neg)
        elif key in ("tcp dport", "udp dport", "th dport"):
            if key != "th dport":
                self._proto(frozenset({key.split()[0]}), False)
            self.f["dports"] = tuple(_ports(v, self.where) for v in vals)
            self.f["dports_neg"] = neg
        elif key in ("meta iifname", "meta iif", "iifname", "iif"):
            names = [str(v).strip('"') for v in vals]
            self.f["iif"] = names[0] if names else ""
            self.f["iif_neg"] = neg
            if len(names) > 1:
                self.unknown.append(f"{key} with several interfaces")
        elif key == "ct state":
            self.f["states"] = frozenset(str(v).lower() for v in vals)
            self.f["states_neg"] = neg
        elif key == "meta mark":
            value = int(str(vals[0]), 0) if vals else 0
            self.f["mark"] = (value, self.f.pop("_mask", 0xFFFFFFFF))
            self.f["mark_neg"] = neg
        elif key in ("meta nfproto",):
            if (str(vals[0]) == "ipv6") != neg:
                self.f["never"] = True
        elif key.startswith("ip6 ") or key.startswith("icmpv6"):
            self.f["never"] = not neg
        elif key.startswith("fib daddr") and [str(v) for v in vals] == ["local"] and not neg:
            pass  # addressed to this host: always true for what we judge
        elif key.startswith(("oif", "meta oif", "meta oifname", "oifname")):
            pass  # output interface: not part of an inbound decision
        else:
            self.unknown.append(f"{key} {op} {','.join(str(v) for v in vals)}".strip())

    def _proto(self, protos: frozenset[str], neg: bool) -> None:
        old = self.f.get("proto")
        if old is not None and not neg and not self.f.get("proto_neg"):
            protos = protos & old
            if not protos:
                self.f["never"] = True
        self.f["proto"] = protos
        self.f["proto_neg"] = neg

    def verdict_of(self, word: str, target: str | None = None) -> None:
        self.verdict = word
        self.target = target

    def rule(self) -> Rule:
        self.f.pop("_mask", None)
        return Rule(verdict=self.verdict, where=self.where, text=self.text,  # type: ignore[arg-type]
                    target=self.target, unknown=tuple(self.unknown), **self.f)


def _nets(v: Value, where: str) -> list[Net]:
    if isinstance(v, tuple) and v[0] == "prefix":
        n = parse_net(f"{v[1]}/{v[2]}", where)
        return [n] if n else []
    if isinstance(v, tuple) and v[0] == "range":
        if ":" in str(v[1]):
            return []
        return list(parse_ip_range(str(v[1]), str(v[2]), where))
    text = str(v)
    if "-" in text and "/" not in text:
        lo, hi = text.split("-", 1)
        if ":" in lo:
            return []
        return list(parse_ip_range(lo, hi, where))
    n = parse_net(text, where)
    return [n] if n else []


def _ports(v: Value, where: str) -> PortRange:
    if isinstance(v, tuple) and v[0] == "range":
        return (parse_port(str(v[1]), where), parse_port(str(v[2]), where))
    text = str(v)
    if "-" in text:
        lo, hi = text.split("-", 1)
        return (parse_port(lo, where), parse_port(hi, where))
    return _named_port(text, where)


_SERVICES = {"sip": 5060, "sips": 5061, "ssh": 22, "http": 80, "https": 443}


def _named_port(text: str, where: str) -> PortRange:
    if text in _SERVICES:
        p = _SERVICES[text]
        return (p, p)
    p = parse_port(text, where)
    return (p, p)


def _priority(words: list[str], where: str) -> int:
    total = 0
    sign = 1
    for w in words:
        if w in ("+", "-"):
            sign = 1 if w == "+" else -1
        elif w.lstrip("-").isdigit():
            total += sign * int(w)
        elif w in _PRIORITIES:
            total += sign * _PRIORITIES[w]
        else:
            raise RulesetSyntaxError(f"{where}: unknown chain priority {w!r}")
    return total


# ---------------------------------------------------------------- text form

_TOKEN = re.compile(r'"[^"\n]*"|!=|==|[{};,&]|\n|[^\s{};,"&]+')


@dataclass
class _Tok:
    text: str
    line: int


def _tokens(text: str) -> list[_Tok]:
    out = []
    line = 1
    for m in _TOKEN.finditer(text):
        t = m.group(0)
        if t.startswith("#"):
            continue
        out.append(_Tok(t, line))
        if t == "\n":
            line += 1
    return out


def _strip_comments(text: str) -> str:
    return "\n".join(ln.split("#", 1)[0] if '"' not in ln else ln for ln in text.split("\n"))


class _TextParser:
    def __init__(self, text: str, source: str) -> None:
        self.toks = _tokens(_strip_comments(text))
        self.i = 0
        self.source = source

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> _Tok:
        if self.i >= len(self.toks):
            raise RulesetSyntaxError(f"{self.source}: unexpected end of nft ruleset")
        t = self.toks[self.i]
        self.i += 1
        return t

    def skip_newlines(self) -> None:
        while (t := self.peek()) is not None and t.text in ("\n", ";"):
            self.i += 1

    def expect(self, text: str) -> None:
        t = self.next()
        if t.text != text:
            raise RulesetSyntaxError(f"{self.source}:{t.line}: expected {text!r}, got {t.text!r}")

    def statement(self) -> list[Any]:
        """Tokens up to the end of a line or ';', with ``{ ... }`` as nested lists."""
        out: list[Any] = []
        while (t := self.peek()) is not None and t.text not in ("\n", ";", "}"):
            self.i += 1
            if t.text == "{":
                out.append(self.block_values())
            else:
                out.append(t)
        return out

    def block_values(self) -> list[_Tok]:
        vals: list[_Tok] = []
        depth = 1
        while depth:
            t = self.next()
            if t.text == "{":
                depth += 1
            elif t.text == "}":
                depth -= 1
            elif t.text not in ("\n", ",", ";"):
                vals.append(t)
        return vals

    def skip_block(self) -> None:
        self.expect("{")
        self.block_values()

    def parse(self) -> Ruleset:
        chains: dict[str, Chain] = {}
        base: list[tuple[int, int, str]] = []
        notes: list[str] = []
        while True:
            self.skip_newlines()
            t = self.peek()
            if t is None:
                break
            self.i += 1
            if t.text != "table":
                raise RulesetSyntaxError(
                    f"{self.source}:{t.line}: expected 'table', got {t.text!r}; "
                    "is this 'nft list ruleset' output?")
            words = []
            while (w := self.next()).text != "{":
                words.append(w.text)
            family, name = (words[0], words[1]) if len(words) == 2 else ("ip", words[0])
            self.table(family, name, chains, base, notes)
        base.sort()
        return Ruleset("nft", self.source, chains, tuple(b[2] for b in base), tuple(notes))

    def table(self, family: str, table: str, chains: dict[str, Chain],
              base: list[tuple[int, int, str]], notes: list[str]) -> None:
        sets: dict[str, list[Value]] = {}
        pending: list[tuple[str, int, list[list[Any]], str | None, int | None]] = []
        while True:
            self.skip_newlines()
            t = self.next()
            if t.text == "}":
                break
            if t.text in ("set", "map"):
                name = self.next().text
                self.expect("{")
                sets[name] = self.set_body()
            elif t.text == "chain":
                name = self.next().text
                line = t.line
                self.expect("{")
                stmts, policy, prio = self.chain_body()
                pending.append((name, line, stmts, policy, prio))
            elif t.text in ("flags", "comment"):
                self.statement()
            else:
                self.statement()
                if (p := self.peek()) is not None and p.text == "{":
                    self.skip_block()
        if family not in _IPV4_FAMILIES:
            if any(p[4] is not None for p in pending):
                notes.append(f"table {family} {table} not judged (not IPv4 input)")
            return
        prefix = f"{family} {table} "
        for name, line, stmts, policy, prio in pending:
            rules = tuple(self.rule(toks, sets, prefix) for toks in stmts)
            key = prefix + name
            chains[key] = Chain(key, rules, policy if prio is not None else None,  # type: ignore[arg-type]
                                f"{self.source}:{line}")
            if prio is not None:
                base.append((prio, len(base), key))

    def set_body(self) -> list[Value]:
        elements: list[Value] = []
        while True:
            self.skip_newlines()
            t = self.next()
            if t.text == "}":
                return elements
            if t.text == "elements":
                self.expect("=")
                self.expect("{")
                for v in self.block_values():
                    elements.append(v.text.strip('"'))
            else:
                self.statement()

    def chain_body(self) -> tuple[list[list[Any]], str | None, int | None]:
        stmts: list[list[Any]] = []
        policy = None
        prio = None
        while True:
            self.skip_newlines()
            t = self.peek()
            if t is None:
                raise RulesetSyntaxError(f"{self.source}: chain not closed")
            if t.text == "}":
                self.i += 1
                return stmts, policy, prio
            st = self.statement()
            words = [x.text for x in st if isinstance(x, _Tok)]
            if words and words[0] == "type":
                where = f"{self.source}:{t.line}"
                if "hook" in words and words[words.index("hook") + 1] == "input" and \
                        words[1] == "filter":
                    pw = words[words.index("priority") + 1:] if "priority" in words else ["0"]
                    prio = _priority(pw, where)
            elif words and words[0] == "policy":
                policy = words[1]
            elif words and words[0] == "comment":
                continue
            elif st:
                stmts.append(st)

    def rule(self, toks: list[Any], sets: dict[str, list[Value]], prefix: str) -> Rule:
        line = next(t.line for t in toks if isinstance(t, _Tok))
        text = " ".join(t.text if isinstance(t, _Tok) else
                        "{ " + ", ".join(x.text for x in t) + " }" for t in toks)
        b = _Builder(f"{self.source}:{line}", text, sets)
        words: list[Any] = [t.text if isinstance(t, _Tok) else [x.text for x in t] for t in toks]
        i = 0
        n = len(words)

        def value_at(j: int) -> tuple[list[Value], int]:
            w = words[j]
            if isinstance(w, list):
                return [v.strip('"') for v in w], j + 1
            vals: list[Value] = [w.strip('"')]
            j += 1
            while j + 1 < n and words[j] == ",":
                vals.append(str(words[j + 1]).strip('"'))
                j += 2
            return vals, j

        while i < n:
            w = words[i]
            if not isinstance(w, str):
                b.unknown.append("anonymous set")
                i += 1
                continue
            if w in ("accept", "drop", "return", "continue"):
                b.verdict_of(w)
                i += 1
                continue
            if w == "reject":
                b.verdict_of("reject")
                i += 1
                if i < n and words[i] == "with":
                    i += 4 if i + 3 < n and words[i + 2] == "type" else 3
                continue
            if w in ("jump", "goto"):
                b.verdict_of(w, prefix + str(words[i + 1]))
                i += 2
                continue
            if w == "counter":
                i += 1
                while i + 1 < n and words[i] in ("packets", "bytes"):
                    i += 2
                continue
            if w == "log":
                i += 1
                while i + 1 < n and words[i] in ("prefix", "level", "flags", "group",
                                                  "snaplen", "queue-threshold"):
                    i += 2
                continue
            if w == "comment":
                i += 2
                continue
            if w == "xt":
                kind, name = words[i + 1], str(words[i + 2]).strip('"')
                if kind == "match":
                    b.unknown.append(f"xt match {name}")
                i += 3
                continue
            if w == "limit":
                b.unknown.append("limit")
                i += 1
                while i < n and words[i] not in ("accept", "drop", "reject", "counter", "log",
                                                  "jump", "goto", "return"):
                    i += 1
                continue
            # meta mark set X / mark set X
            if w in ("meta", "mark") and "set" in words[i:i + 3]:
                j = words.index("set", i)
                if (w == "mark" or words[i + 1] == "mark") and j + 1 < n:
                    b.f["set_mark"] = (int(str(words[j + 1]), 0), 0xFFFFFFFF)
                else:
                    b.unknown.append(" ".join(str(x) for x in words[i:j + 2]))
                i = j + 2
                continue
            # selectors: one word (iif, iifname) or two (ip saddr, tcp dport, ct state ...)
            if w in ("iif", "iifname", "oif", "oifname"):
                key = w
                i += 1
            elif i + 1 < n and isinstance(words[i + 1], str):
                key = f"{w} {words[i + 1]}"
                i += 2
                if key == "fib daddr" and i < n and words[i] == "type":
                    i += 1
            else:
                raise RulesetSyntaxError(f"{b.where}: cannot read rule near {w!r}: {text}")
            if key == "meta mark" and i < n and words[i] == "&":
                b.f["_mask"] = int(str(words[i + 1]), 0)
                i += 2
            op = "=="
            if i < n and words[i] in ("!=", "==", "eq", "ne"):
                op = str(words[i])
                i += 1
            if i >= n:
                raise RulesetSyntaxError(f"{b.where}: '{key}' without a value: {text}")
            vals, i = value_at(i)
            b.match(key, op, vals)
        return b.rule()


def parse_nft_text(text: str, source: str) -> Ruleset:
    parser = _TextParser(text, source)
    try:
        return parser.parse()
    except (IndexError, ValueError, StopIteration) as exc:
        if isinstance(exc, RulesetSyntaxError):
            raise
        tok = parser.toks[min(parser.i, len(parser.toks) - 1)] if parser.toks else None
        where = f"{source}:{tok.line}" if tok else source
        raise RulesetSyntaxError(f"{where}: cannot read this nft ruleset near here "
                                 f"({type(exc).__name__})") from None


# ---------------------------------------------------------------- JSON form

def _json_value(v: Any) -> list[Value]:
    if isinstance(v, dict):
        if "set" in v:
            out: list[Value] = []
            for x in v["set"]:
                out.extend(_json_value(x))
            return out
        if "prefix" in v:
            return [("prefix", v["prefix"]["addr"], v["prefix"]["len"])]
        if "range" in v:
            return [("range", v["range"][0], v["range"][1])]
        raise ValueError(f"unsupported value {json.dumps(v)[:60]}")
    if isinstance(v, list):
        return [str(x) for x in v]
    return [str(v) if not isinstance(v, str) else v]


def _json_key(left: Any) -> str:
    if isinstance(left, dict):
        if "payload" in left:
            p = left["payload"]
            return f"{p.get('protocol', 'th')} {p.get('field')}"
        if "meta" in left:
            k = left["meta"]["key"]
            return k if k in ("iif", "iifname", "oif", "oifname") else f"meta {k}"
        if "ct" in left:
            return f"ct {left['ct']['key']}"
        if "fib" in left:
            return "fib daddr"
        if "&" in left:
            return "&"
    raise ValueError(f"unsupported match {json.dumps(left)[:60]}")


def parse_nft_json(text: str, source: str) -> Ruleset:
    try:
        return _parse_nft_json(text, source)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, RulesetSyntaxError):
            raise
        raise RulesetSyntaxError(f"{source}: an nft JSON object lacks or garbles a field "
                                 f"({type(exc).__name__}: {exc})") from None


def _parse_nft_json(text: str, source: str) -> Ruleset:
    try:
        doc = json.loads(text)
        items = doc["nftables"]
    except (ValueError, KeyError, TypeError):
        raise RulesetSyntaxError(f"{source}: not 'nft -j list ruleset' output") from None
    sets: dict[tuple[str, str], dict[str, list[Value]]] = {}
    chains_meta: dict[str, dict[str, Any]] = {}
    rules: dict[str, list[Rule]] = {}
    notes: list[str] = []
    for idx, item in enumerate(items):
        if "set" in item or "map" in item:
            s = item.get("set") or item.get("map")
            elems: list[Value] = []
            for e in s.get("elem", []):
                elems.extend(_json_value(e if not isinstance(e, dict) or "elem" not in e
                                         else e["elem"]["val"]))
            sets.setdefault((s["family"], s["table"]), {})[s["name"]] = elems
        elif "chain" in item:
            c = item["chain"]
            chains_meta[f"{c['family']} {c['table']} {c['name']}"] = c
    for idx, item in enumerate(items):
        if "rule" not in item:
            continue
        r = item["rule"]
        family, table = r["family"], r["table"]
        if family not in _IPV4_FAMILIES:
            continue
        prefix = f"{family} {table} "
        key = prefix + r["chain"]
        where = f"{source}: rule handle {r.get('handle', idx)} in chain {r['chain']}"
        b = _Builder(where, json.dumps(r.get("expr", []))[:200], sets.get((family, table), {}))
        try:
            _json_rule(b, r.get("expr", []), prefix)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            b.unknown.append(str(exc))
        rules.setdefault(key, []).append(b.rule())
    chains: dict[str, Chain] = {}
    base: list[tuple[int, int, str]] = []
    for key, c in chains_meta.items():
        if c["family"] not in _IPV4_FAMILIES:
            if c.get("hook") == "input":
                notes.append(f"table {c['family']} {c['table']} not judged (not IPv4 input)")
            continue
        hooked = c.get("hook") == "input" and c.get("type", "filter") == "filter"
        chains[key] = Chain(key, tuple(rules.get(key, [])),
                            c.get("policy", "accept") if hooked else None,
                            f"{source}: chain {c['name']}")
        if hooked:
            prio = c.get("prio", 0)
            base.append((prio if isinstance(prio, int) else
                         _priority(str(prio).split(), source), len(base), key))
    if not chains_meta:
        notes.append("no nftables chains: nothing is filtered by nftables")
    base.sort()
    return Ruleset("nft-json", source, chains, tuple(b[2] for b in base), tuple(notes))


def _json_rule(b: _Builder, exprs: list[dict[str, Any]], prefix: str) -> None:
    for e in exprs:
        (kind, body), = e.items()
        if kind == "match":
            left = body["left"]
            key = _json_key(left)
            if key == "&":
                inner, mask = left["&"]
                key = _json_key(inner)
                b.f["_mask"] = int(mask) if not isinstance(mask, str) else int(mask, 0)
            op = body.get("op", "==")
            right = body["right"]
            if op == "in":
                op = "=="
            b.match(key, op, _json_value(right))
        elif kind in ("accept", "drop", "return", "continue"):
            b.verdict_of(kind)
        elif kind == "reject":
            b.verdict_of("reject")
        elif kind in ("jump", "goto"):
            b.verdict_of(kind, prefix + body["target"])
        elif kind in ("counter", "log", "comment", "notrack"):
            continue
        elif kind == "mangle" and body.get("key", {}).get("meta", {}).get("key") == "mark":
            b.f["set_mark"] = (int(body["value"]), 0xFFFFFFFF)
        elif kind == "xt":
            if body.get("type") == "match":
                b.unknown.append(f"xt match {body.get('name')}")
        else:
            b.unknown.append(kind)


__all__ = ["parse_nft_text", "parse_nft_json", "ipaddress"]
