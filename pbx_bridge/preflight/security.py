"""Judge: who can reach the Amazon trunk, and how well its TLS is kept. Pure functions of a
:class:`Snapshot`, registered in ``checks.CHECKS`` beside the others.

- ``security.identify``: only Amazon's addresses are the trunk (``identify_by=ip``, an identify
  inside Amazon's range, no other endpoint landing in the trunk's context);
- ``security.transport``: a call on another transport (UDP, TCP) is refused by the dialplan;
- ``security.key``: the private key is not readable by other users;
- ``tls.ciphers``: forward secrecy with AEAD suites only (the config; with ``--live``, a real
  handshake offering only weak suites must fail).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ..asterisk.conf import Config, Section
from ..findings import Finding, Status
from ..asterisk.pjsip import identify_matches, objects, parse_match, transports
from .fixes import edit_fix as _edit, skip as _skip, where_text as _w
from .snapshot import Snapshot, Unknown


# ------------------------------------------------------------------ security.identify

def check_identify(snap: Snapshot) -> Finding:
    """Asterisk 22 identifies an endpoint by ``username,ip`` unless told otherwise: an INVITE
    whose From user is the trunk's name, from any address and on any transport, is then the
    trunk, lands in its context and rings a phone (with the caller it claims)."""
    id_ = "security.identify"
    if isinstance(snap.endpoint, Unknown):
        return _skip(id_, snap.endpoint.reason)
    ep = snap.endpoint.value
    name = ep.name
    by = ep.get("identify_by")
    methods = [m.strip().lower() for m in (by.value if by else "username,ip").split(",")
               if m.strip()]
    ev: dict[str, Any] = {"endpoint": name, "identify_by": ",".join(methods)}
    if by is not None and not methods:
        return Finding(id_, Status.FAIL, f"endpoint {name} has an empty identify_by: Asterisk "
                       "identifies nothing by it, Amazon's calls neither", ev, _w(by.where),
                       _edit(snap, ep, ["identify_by=ip"]))
    if methods != ["ip"]:
        others = [m for m in methods if m != "ip"]
        return Finding(id_, Status.FAIL,
                       f"endpoint {name} is identified by {','.join(methods)}"
                       f"{' (Asterisk default)' if by is None else ''}: a request whose "
                       f"{' or '.join(others)} says {name!r} is taken as Amazon's from any "
                       "address", ev, _w(by.where if by else ep.where),
                       _edit(snap, ep, ["identify_by=ip"]))
    idents = [s for s in objects(snap.pjsip, "identify")
              if (s.value("endpoint") or "").strip() == name]
    if not idents:
        return Finding(id_, Status.FAIL, f"no identify names endpoint {name}: with "
                       "identify_by=ip nothing reaches it", ev, _w(ep.where),
                       f"add a type=identify section with endpoint={name} and "
                       f"match={', '.join(snap.options.amazon_cidrs)}")
    amazon = [ipaddress.ip_network(c, strict=False) for c in snap.options.amazon_cidrs]
    wide = []
    for sec in idents:
        hdr = sec.get("match_header") or sec.get("match_request_uri")
        if hdr is not None:
            return Finding(id_, Status.FAIL, f"identify {sec.name} matches by a SIP header "
                           f"({hdr.key}), which any caller can write", ev, _w(hdr.where),
                           f"delete the line at {hdr.where}; match Amazon by address only")
        for text, setting in identify_matches(sec):
            if text.startswith("!"):
                continue  # an exclusion narrows the match
            net = parse_match(text)
            if net == "name":
                return Finding(id_, Status.FAIL, f"identify {sec.name} matches the host name "
                               f"{text}: Asterisk resolves it when it loads, and whoever it "
                               "resolves to is the trunk", ev, _w(setting.where),
                               f"at {setting.where}, match Amazon's network "
                               f"{', '.join(snap.options.amazon_cidrs)} by address")
            if isinstance(net, str):
                return Finding(id_, Status.FAIL, f"identify {sec.name} matches {text!r}, which "
                               "is no address: Asterisk refuses the whole identify, and no "
                               "call of Amazon's is identified", ev, _w(setting.where),
                               f"at {setting.where}, match only "
                               f"{', '.join(snap.options.amazon_cidrs)}")
            if not any(net.version == a.version and net.subnet_of(a)  # type: ignore[arg-type]
                       for a in amazon):
                wide.append((text, setting))
    ev["identifies"] = [s.name for s in idents]
    if wide:
        text, setting = wide[0]
        return Finding(id_, Status.FAIL, f"identify matches {text}, outside Amazon's network "
                       f"{', '.join(snap.options.amazon_cidrs)}: callers there are the trunk",
                       ev, _w(setting.where), f"at {setting.where}, match only "
                       f"{', '.join(snap.options.amazon_cidrs)}")
    ctx = (ep.value("context") or "default").strip()
    also = [s for s in objects(snap.pjsip, "endpoint")
            if s.name != name and (s.value("context") or "default").strip() == ctx]
    if also:
        first = also[0]
        return Finding(id_, Status.FAIL, f"endpoint {first.name} also lands in [{ctx}], the "
                       "trunk's context" + (" (anonymous callers)" if first.name == "anonymous"
                                            else ""), {**ev, "also": [x.name for x in also]},
                       _w(first.where), f"give [{first.name}] at {first.where} another "
                       "context, or remove it")
    return Finding(id_, Status.PASS, f"endpoint {name} is reached from Amazon's addresses "
                   "only (identify_by=ip)", ev, _w(by.where if by else ep.where))


# ------------------------------------------------------------------ security.transport

INSECURE = ("udp", "tcp", "ws")


# What may run before the TLS check without letting a call on: no-ops, logging, variables, and
# the generated jump that lets the admin's Local channels past.
_BEFORE_CHECK = ("noop", "verbose", "log", "set")
_SECURE = "CHANNEL(pjsip,secure)"


def _bypass(dialplan: Config, name: str) -> tuple[list[Section], str | None]:
    """The sections of context ``name`` (all of them: Asterisk merges same-named contexts),
    and how a call gets past the TLS check, or None when none does: every call must enter
    one pattern extension whose steps before the check only log or set variables."""
    secs = [s for s in dialplan.named(name) if not s.is_template]
    extens: dict[str, list[str]] = {}  # extension -> its applications' text, in order
    last = None
    for x in (x for s in secs for x in s.settings):
        key = x.key.lower()
        if key in ("include", "switch", "eswitch", "lswitch"):
            return secs, f"[{name}] {'includes' if key == 'include' else 'switches to'} " \
                f"{x.value.strip()}: calls found there skip the check ({x.where})"
        if key == "exten":
            parts = x.value.split(",", 2)
            last = parts[0].strip()
            if len(parts) == 3 and parts[1].strip().lower() != "hint":
                extens.setdefault(last, []).append(parts[2].strip())
        elif key == "same" and last is not None:
            parts = x.value.split(",", 1)
            if len(parts) == 2:
                extens[last].append(parts[1].strip())
    if not any(_SECURE in a.replace(" ", "") for steps in extens.values() for a in steps):
        return secs, None if not extens else f"[{name}] does not check {_SECURE}"
    others = [e for e in extens if e != "h"]  # h: the hang-up handler, no way in
    if len(others) != 1 or not others[0].startswith("_"):
        extra = next((e for e in others if not any(_SECURE in a.replace(" ", "")
                                                   for a in extens[e])), others[0])
        return secs, (f"[{name}] has extension {extra!r} beside the checked pattern: a call "
                      "to it skips the check (an exact match wins over a pattern)")
    for app in extens[others[0]]:
        text = app.replace(" ", "")
        if _SECURE in text:
            return secs, None
        word = text.split("(", 1)[0].lower()
        if word not in _BEFORE_CHECK and "CHANNEL(channeltype)" not in text:
            return secs, (f"[{name}] runs {app.split('(', 1)[0]} before its {_SECURE} check, "
                          "so a call can leave before it")
    return secs, None


def check_transport(snap: Snapshot) -> Finding:
    """Amazon calls only over TLS, but an endpoint takes requests on every transport (its
    ``transport`` is for sending): a call from Amazon's range over UDP reaches the trunk's
    context with its SRTP keys in clear SDP, unless the dialplan refuses it."""
    id_ = "security.transport"
    if isinstance(snap.endpoint, Unknown):
        return _skip(id_, snap.endpoint.reason)
    ep = snap.endpoint.value
    other = [t for t in transports(snap.pjsip) if t.protocol in INSECURE]
    ev: dict[str, Any] = {"endpoint": ep.name,
                          "other_transports": [f"{t.name} ({t.protocol} {t.host}:{t.port})"
                                               for t in other]}
    if not other:
        return Finding(id_, Status.PASS, "the PBX has no transport but TLS", ev)
    ctx = (ep.value("context") or "default").strip()
    ev["context"] = ctx
    from ..generate.render import guard
    lines = "\n".join(guard("NoOp(Alexa room ${CALLERID(num)} calls ${EXTEN})"))
    where = "extensions_custom.conf" if snap.freepbx else "extensions.conf"
    fix = (f"start [{ctx}] in {where} with this check, and move its includes behind it (the "
           f"context pbx-bridge generate writes has it):\n{lines}")
    t = other[0]
    risk = (f"the trunk also takes calls on {t.name} ({t.protocol} {t.host}:{t.port}): from "
            "Amazon's range a call over it reaches ")
    if snap.dialplan is None or not snap.dialplan.found:
        return Finding(id_, Status.FAIL, risk + f"[{ctx}] unchecked (no extensions.conf read)",
                       ev, _w(t.where), fix)
    secs, bypass = _bypass(snap.dialplan, ctx)
    if not secs:
        return Finding(id_, Status.FAIL, risk + f"[{ctx}], which the dialplan does not have",
                       ev, _w(ep.where), fix)
    guarded = any(_SECURE in x.value.replace(" ", "") for s in secs for x in s.settings)
    if not guarded:
        return Finding(id_, Status.FAIL, risk + f"[{ctx}], which does not check "
                       f"{_SECURE}: SRTP keys in clear SDP, and the call rings",
                       ev, _w(secs[0].where), fix)
    if bypass:
        return Finding(id_, Status.FAIL, risk + f"[{ctx}] past its TLS check: {bypass}", ev,
                       _w(secs[0].where), fix)
    return Finding(id_, Status.PASS, f"[{ctx}] refuses calls that did not come over TLS "
                   f"(the PBX also has {', '.join(t.name for t in other)})", ev,
                   _w(secs[0].where))


# ------------------------------------------------------------------ security.key

def check_key(snap: Snapshot) -> Finding:
    id_ = "security.key"
    c = snap.cert
    if isinstance(c, Unknown):
        return _skip(id_, c.reason)
    if c.key_path is None or c.key_mode is None:
        return _skip(id_, "no private key file to look at")
    ev = {"priv_key_file": c.key_path, "mode": f"{c.key_mode & 0o777:04o}"}
    group = _group_name(c.key_gid)
    ev["group"] = group
    want = snap.options.key_group
    if c.key_mode & 0o020:
        return Finding(id_, Status.FAIL, f"the private key {c.key_path} is writable by group "
                       f"{group} (mode {c.key_mode & 0o777:04o})", ev, _w(c.key_where),
                       f"chgrp {want} {c.key_path} && chmod 640 {c.key_path}")
    if c.key_mode & 0o040 and group not in (want, "root"):
        return Finding(id_, Status.WARN, f"the private key {c.key_path} is readable by group "
                       f"{group}, not {want} (the group Asterisk runs as: --key-group)", ev,
                       _w(c.key_where), f"chgrp {want} {c.key_path}")
    if c.key_mode & 0o007:
        return Finding(id_, Status.FAIL, f"the private key {c.key_path} is readable by every "
                       f"user of the host (mode {c.key_mode & 0o777:04o}): anyone there can "
                       "pose as this PBX", ev, _w(c.key_where),
                       f"chgrp asterisk {c.key_path} && chmod 640 {c.key_path} (or chmod 600 "
                       "where Asterisk runs as the key's owner; pbx-bridge generate --write "
                       "does it for a key inside the Asterisk dir)")
    return Finding(id_, Status.PASS, f"the private key is not readable by other users (mode "
                   f"{c.key_mode & 0o777:04o})", ev, _w(c.key_where))


def _group_name(gid: int | None) -> str:
    import grp
    if gid is None:
        return "?"
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# ------------------------------------------------------------------ tls.ciphers

# ECDHE key exchange (forward secrecy) with an AEAD cipher: Mozilla's "intermediate" TLS 1.2
# suites, by OpenSSL name or by the numeric ids Asterisk also accepts.
_GOOD_NAME = re.compile(r"^ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$")
_GOOD_IDS = {0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA8, 0xCCA9}
_ECDSA_IDS = {0xC02B, 0xC02C, 0xCCA9}


def _signs_with(name: str) -> str | None:
    """"ECDSA" or "RSA": the certificate key a suite needs (None: not judged)."""
    try:
        return "ECDSA" if int(name, 0) in _ECDSA_IDS else "RSA"
    except ValueError:
        pass
    parts = name.upper().split("-")
    return parts[1] if len(parts) > 2 and parts[0] == "ECDHE" and \
        parts[1] in ("ECDSA", "RSA") else None


def _openssl_names() -> set[str]:
    """The TLS 1.2 suite names this host's OpenSSL knows (Asterisk's is the host's)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return {c["name"] for c in ctx.get_ciphers() if not c["name"].startswith("TLS_")}


def unknown_suites(value: str) -> list[str]:
    """Names Asterisk would refuse: it then drops the whole transport ("Cipher '...' is
    unsupported", seen on 22.10.1 for lower case, IANA and TLS 1.3 names)."""
    out = []
    known: set[str] | None = None
    for part in value.split(","):
        name = part.strip()
        if not name:
            continue
        try:
            int(name, 0)
            continue
        except ValueError:
            pass
        if _GOOD_NAME.match(name):
            continue
        known = known if known is not None else _openssl_names()
        if name not in known:
            out.append(name)
    return out


def weak_suites(value: str) -> list[str]:
    """The names in a transport's ``cipher`` list that are not ECDHE with AEAD."""
    out = []
    for part in value.split(","):
        name = part.strip()
        if not name:
            continue
        try:
            number = int(name, 0)
        except ValueError:
            number = None
        if (number is not None and number in _GOOD_IDS) or _GOOD_NAME.match(name.upper()):
            continue
        out.append(name)
    return out


def check_ciphers(snap: Snapshot) -> Finding:
    id_ = "tls.ciphers"
    t = snap.transport
    if t is None:
        return _skip(id_, "no TLS transport")
    from ..generate.render import TLS_CIPHERS
    s = t.get("cipher")
    fix = _edit(snap, t.section, [f"cipher={','.join(TLS_CIPHERS)}"]) + \
        "\nthen restart Asterisk (a TLS transport keeps its settings until a restart)"
    ev: dict[str, Any] = {"transport": t.name, "cipher": s.value if s else None}
    if s is None or not s.value.strip():
        return Finding(id_, Status.FAIL, f"transport {t.name} sets no cipher list: it offers "
                       "OpenSSL's defaults, CBC suites with SHA-1 among them", ev, _w(t.where),
                       fix)
    unknown = unknown_suites(s.value)
    if unknown:
        return Finding(id_, Status.FAIL, f"transport {t.name}: Asterisk does not know the "
                       f"cipher {unknown[0]!r} and drops the whole transport (OpenSSL names, "
                       "upper case, separated by commas: asterisk -rx 'pjsip list ciphers')",
                       ev, _w(s.where), fix)
    weak = weak_suites(s.value)
    if weak:
        return Finding(id_, Status.FAIL, f"transport {t.name} offers suites without forward "
                       f"secrecy or AEAD: {', '.join(weak[:4])}" +
                       (f" and {len(weak) - 4} more" if len(weak) > 4 else ""), ev, _w(s.where),
                       fix)
    leaf = None if isinstance(snap.cert, Unknown) else snap.cert.leaf()
    if leaf is not None:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        key = leaf.public_key()
        need = "ECDSA" if isinstance(key, ec.EllipticCurvePublicKey) else \
            "RSA" if isinstance(key, rsa.RSAPublicKey) else None
        signs = {_signs_with(x.strip()) for x in s.value.split(",") if x.strip()}
        if need is not None and None not in signs and need not in signs:
            return Finding(id_, Status.FAIL, f"no suite of transport {t.name} fits its "
                           f"certificate's {need} key: Asterisk would complete no handshake",
                           ev, _w(s.where), fix)
    if snap.weak_tls is not None:
        ev["live"] = {"weak_suite_accepted": snap.weak_tls.accepted,
                      "error": snap.weak_tls.error}
        if snap.weak_tls.accepted:
            return Finding(id_, Status.FAIL, f"{t.connect_host}:{t.port} completed a "
                           f"handshake with {snap.weak_tls.accepted}, a CBC suite, though the "
                           "config has none (Asterisk not restarted since cipher was set?)",
                           ev, _w(s.where), "asterisk -rx 'core restart gracefully'")
        if snap.weak_tls.error is None:
            return Finding(id_, Status.PASS, "ECDHE with AES-GCM or ChaCha20-Poly1305 only; "
                           f"{t.connect_host}:{t.port} refuses a handshake offering only CBC "
                           "suites", ev, _w(s.where))
    return Finding(id_, Status.PASS, "ECDHE with AES-GCM or ChaCha20-Poly1305 only", ev,
                   _w(s.where))
