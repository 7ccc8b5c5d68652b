"""Judge: the preflight's checks, each a pure function of a :class:`Snapshot`.

The registry :data:`CHECKS` is a literal tuple; its ids are stable (the JSON and the text use
them). A check that crashes becomes an ``error`` finding and the others still run.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Union

from .. import certs
from ..asterisk.conf import Config, Setting, Where
from ..firewall.commands import open_commands, port_span
from ..firewall.model import Coverage, Ruleset, coverage
from ..findings import Finding, Status
from ..net import TlsProbe
from ..asterisk.pjsip import TCP_PROTOCOLS, WILDCARD, transports
from ..generate.render import TLS_CIPHERS
from . import security
from .fixes import edit_fix as _edit_fix, new_fix as _new_fix, skip as _skip, \
    where_text as _w
from .snapshot import Located, NoAddress, Snapshot, Unknown


def _transport_block(snap: Snapshot) -> str:
    ip = snap.public_ip.value if isinstance(snap.public_ip, Located) else "<public IP>"
    return ("[transport-tls]\ntype=transport\nprotocol=tls\nbind=0.0.0.0:5061\n"
            "cert_file=/etc/asterisk/keys/pbx.crt\npriv_key_file=/etc/asterisk/keys/pbx.key\n"
            "ca_list_file=/etc/asterisk/keys/ca.crt\nmethod=tlsv1_2\n"
            f"cipher={','.join(TLS_CIPHERS)}\n"
            f"external_signaling_address={ip}\nexternal_media_address={ip}")


# ------------------------------------------------------------------ the checks

def _configs(snap: Snapshot) -> tuple[Config, ...]:
    """The config files read, each with its includes: PJSIP, RTP, modules, the dialplan."""
    return (snap.pjsip, snap.rtp, snap.modules) + \
        ((snap.dialplan,) if snap.dialplan is not None and snap.dialplan.found else ())


def check_config(snap: Snapshot) -> Finding:
    id_ = "asterisk.config"
    if not snap.pjsip.found:
        why = snap.pjsip.problems[0].message if snap.pjsip.problems else \
            f"pjsip.conf not found in {snap.options.asterisk_dir}"
        return Finding(id_, Status.FAIL, why, {"asterisk_dir": str(snap.options.asterisk_dir)},
                       None, "point --asterisk-dir at the directory that holds pjsip.conf")
    problems = [p for c in _configs(snap) for p in c.problems]
    files = [s.path for c in _configs(snap) for s in c.sources]
    evidence = {
        "files_read": len(files),
        "lines": sum(c.line_count() for c in _configs(snap)),
        "freepbx": snap.freepbx,
        "problems": [{"severity": p.severity, "where": _w(p.where), "message": p.message}
                     for p in problems],
    }
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        first = errors[0]
        return Finding(id_, Status.FAIL,
                       f"{len(errors)} config error(s) Asterisk would not accept: {first.message}",
                       evidence, _w(first.where),
                       "fix each listed problem; a missing #include target must be created "
                       "(an empty file will do) or the line changed to #tryinclude")
    if problems:
        return Finding(id_, Status.WARN, f"config read with {len(problems)} warning(s): "
                       f"{problems[0].message}", evidence, _w(problems[0].where), None)
    return Finding(id_, Status.PASS, f"read {len(files)} file(s), {evidence['lines']} lines",
                   evidence)


def check_tls_transport(snap: Snapshot) -> Finding:
    id_ = "tls.transport"
    t = snap.transport
    if t is None:
        return Finding(id_, Status.FAIL, "no PJSIP transport with protocol=tls", {}, None,
                       _new_fix(snap, "transport", _transport_block(snap)))
    ev: dict[str, Any] = {"transport": t.name, "bind": f"{t.host}:{t.port}"}
    missing = [k for k in ("cert_file", "priv_key_file") if not t.value(k)]
    if missing:
        return Finding(id_, Status.FAIL, f"transport {t.name} has no {' or '.join(missing)}", ev,
                       _w(t.where), _edit_fix(snap, t.section, [
                           f"{k}=/etc/asterisk/keys/pbx.{'crt' if k == 'cert_file' else 'key'}"
                           for k in missing]))
    c = snap.cert
    assert not isinstance(c, Unknown)
    ev.update(cert_file=c.path, priv_key_file=c.key_path)
    for err, where in ((c.cert_read_error, c.where), (c.key_read_error, c.key_where)):
        if err and "Permission denied" in err:  # this user's limit, not Asterisk's problem
            return Finding(id_, Status.SKIP, f"{err} (as uid {os.geteuid()}): run the check "
                           "as root (Asterisk itself may well read it)", ev, _w(where))
        if err:
            return Finding(id_, Status.FAIL, f"transport {t.name}: {err}", ev, _w(where),
                           "put the file at that path, readable by the asterisk user "
                           "(chmod 640, chown root:asterisk), or correct the path")
    return Finding(id_, Status.PASS, f"TLS transport {t.name} on {t.host}:{t.port} with "
                   "readable certificate and key", ev, _w(t.where))


_TLS12_METHODS = {"tlsv1_2", "sslv23"}
_BAD_METHODS = {"tlsv1", "tlsv1_1", "sslv2", "sslv3", "tlsv1_3"}


def check_tls_version(snap: Snapshot) -> Finding:
    id_ = "tls.version"
    t = snap.transport
    if t is None:
        return _skip(id_, "no TLS transport")
    s = t.get("method")
    method = (s.value.lower() if s else "")
    ev = {"transport": t.name, "method": method or "(unset)"}
    fix = _edit_fix(snap, t.section, ["method=tlsv1_2"])
    if method in _TLS12_METHODS:
        return Finding(id_, Status.PASS, f"method={method} allows TLS 1.2", ev, _w(s.where if s
                                                                                   else t.where))
    if method in ("", "default", "unspecified"):
        return Finding(id_, Status.PASS, "method unset: PJSIP's default negotiates TLS 1.0 to "
                       "1.2, so 1.2 is allowed (set method=tlsv1_2 to pin it)", ev, _w(t.where))
    if method in _BAD_METHODS:
        return Finding(id_, Status.FAIL, f"method={method} does not allow TLS 1.2, which "
                       "Amazon uses", ev, _w(s.where if s else None), fix)
    return Finding(id_, Status.FAIL, f"method={method} is not a method Asterisk knows", ev,
                   _w(s.where if s else None), fix)


def _overlaps(a: str, b: str) -> bool:
    return a == b or a in WILDCARD or b in WILDCARD


def check_tls_port(snap: Snapshot) -> Finding:
    id_ = "tls.port"
    t = snap.transport
    if t is None:
        return _skip(id_, "no TLS transport")
    if not t.bind_ok:
        s = t.get("bind")
        return Finding(id_, Status.FAIL, f"transport {t.name}: bind={s.value if s else ''!r} "
                       "is not HOST[:PORT]", {}, _w(s.where if s else t.where),
                       _edit_fix(snap, t.section, ["bind=0.0.0.0:5061"]))
    others = [o for o in transports(snap.pjsip) if o.section is not t.section and
              o.protocol in TCP_PROTOCOLS and o.port == t.port and _overlaps(o.host, t.host)]
    ev = {"transport": t.name, "port": t.port,
          "conflicts": [f"{o.name} ({o.protocol} {o.host}:{o.port})" for o in others]}
    if others:
        o = others[0]
        used = {x.port for x in transports(snap.pjsip)}
        free = next(p for p in range(5061, 65536) if p not in used)
        return Finding(id_, Status.FAIL, f"TCP port {t.port} is also bound by transport {o.name} "
                       f"({o.protocol})", ev, _w(o.where),
                       _edit_fix(snap, t.section, [f"bind={t.host or '0.0.0.0'}:{free}"])
                       + f"\n(or move transport {o.name} to another port)")
    bind = t.get("bind")
    return Finding(id_, Status.PASS, f"TCP port {t.port} is used only by {t.name}", ev,
                   _w(bind.where if bind else t.where))


def _chain_or_skip(snap: Snapshot, id_: str, reports_parse: bool = False
                   ) -> Union[Finding, tuple[Any, ...]]:
    """The certificate chain, or the finding to give instead. Only ``cert.valid`` (with
    ``reports_parse``) fails for a certificate that does not parse; the others skip."""
    c = snap.cert
    if isinstance(c, Unknown):
        return _skip(id_, c.reason)
    if c.cert_read_error:
        return _skip(id_, c.cert_read_error)
    if not reports_parse and (isinstance(c.chain, Unknown) or not c.chain):
        return _skip(id_, "the certificate does not parse (see cert.valid)")
    if isinstance(c.chain, Unknown):
        return Finding(id_, Status.FAIL, c.chain.reason, {"cert_file": c.path}, _w(c.where),
                       "replace the file with the PEM certificate chain, leaf first")
    if not c.chain:
        return Finding(id_, Status.FAIL, f"{c.path} holds no certificate", {}, _w(c.where),
                       "replace the file with the PEM certificate chain, leaf first")
    return c.chain


def _leaf(snap: Snapshot) -> Any:
    """The PBX's own certificate (:meth:`CertFacts.leaf`), once :func:`_chain_or_skip` gave
    the chain."""
    assert not isinstance(snap.cert, Unknown)
    leaf = snap.cert.leaf()
    assert leaf is not None
    return leaf


def check_cert_valid(snap: Snapshot) -> Finding:
    id_ = "cert.valid"
    chain = _chain_or_skip(snap, id_, reports_parse=True)
    if isinstance(chain, Finding):
        return chain
    assert not isinstance(snap.cert, Unknown)
    leaf = _leaf(snap)
    nb, na = certs.not_before(leaf), certs.not_after(leaf)
    ev = {"subject": certs.describe(leaf), "not_before": nb.isoformat(),
          "not_after": na.isoformat(), "days_left": (na - snap.now).days}
    where = _w(snap.cert.where)
    renew = "renew the certificate and install it at the cert_file path, then " \
            "'asterisk -rx \"module reload res_pjsip.so\"'"
    if snap.now < nb:
        return Finding(id_, Status.FAIL, f"certificate is not valid until {nb:%Y-%m-%d}", ev,
                       where, "check the host clock, or " + renew)
    if snap.now > na:
        return Finding(id_, Status.FAIL, f"certificate expired on {na:%Y-%m-%d}", ev, where, renew)
    for other in (c for c in chain if c is not leaf):
        if snap.now > certs.not_after(other):
            ev["expired_in_chain"] = certs.describe(other)
            return Finding(id_, Status.FAIL, f"a chain certificate expired: "
                           f"{certs.describe(other)}", ev, where, renew)
    if na - snap.now < timedelta(days=30):
        return Finding(id_, Status.WARN, f"certificate expires in {(na - snap.now).days} days "
                       f"({na:%Y-%m-%d})", ev, where, renew)
    return Finding(id_, Status.PASS, f"certificate valid until {na:%Y-%m-%d}", ev, where)


def check_cert_key(snap: Snapshot) -> Finding:
    id_ = "cert.key"
    chain = _chain_or_skip(snap, id_)
    if isinstance(chain, Finding):
        return chain
    c = snap.cert
    assert not isinstance(c, Unknown)
    if c.key_read_error:
        return _skip(id_, c.key_read_error)
    if isinstance(c.key, Unknown):
        return Finding(id_, Status.FAIL, c.key.reason, {"priv_key_file": c.key_path},
                       _w(c.key_where), "install the unencrypted PEM private key of the "
                       "certificate at priv_key_file (or set priv_key_password)")
    ev = {"cert_file": c.path, "priv_key_file": c.key_path}
    if certs.key_matches(_leaf(snap), c.key):
        return Finding(id_, Status.PASS, "the private key matches the certificate", ev,
                       _w(c.key_where))
    return Finding(id_, Status.FAIL, "the private key does not belong to the certificate", ev,
                   _w(c.key_where), "install the key the certificate was issued for; compare "
                   f"'openssl x509 -noout -pubkey -in {c.path}' with "
                   f"'openssl pkey -pubout -in {c.key_path}'")


def check_cert_chain(snap: Snapshot) -> Finding:
    id_ = "cert.chain"
    chain = _chain_or_skip(snap, id_)
    if isinstance(chain, Finding):
        return chain
    assert not isinstance(snap.cert, Unknown)
    subjects = [certs.describe(c) for c in chain]
    ev: dict[str, Any] = {"certificates": subjects}
    where = _w(snap.cert.where)
    if len(chain) == 1:
        return Finding(id_, Status.PASS, "one certificate (no intermediates to order)", ev, where)
    broken = next((i for i in range(len(chain) - 1)
                   if not certs.issued_by(chain[i], chain[i + 1])), None)
    if broken is None:
        return Finding(id_, Status.PASS, f"{len(chain)} certificates, leaf first, each signed "
                       "by the next", ev, where)
    order = certs.best_order(list(chain))
    if order is not None:
        ev["correct_order"] = [subjects[i] for i in order]
        return Finding(id_, Status.FAIL, f"chain out of order: certificate {broken + 1} "
                       f"({subjects[broken]}) is not signed by certificate {broken + 2}", ev, where,
                       "rewrite the file leaf first: " + " ; ".join(
                           f"{n + 1}. {subjects[i]}" for n, i in enumerate(order)))
    return Finding(id_, Status.FAIL, f"certificate {broken + 1} ({subjects[broken]}) is not "
                   f"signed by certificate {broken + 2} ({subjects[broken + 1]}), and no order "
                   "of these certificates forms a chain", ev, where,
                   "put the leaf certificate first, then the intermediate that issued it, up "
                   "to (not necessarily including) the root")


def check_cert_dns(snap: Snapshot) -> Finding:
    id_ = "cert.dns"
    if isinstance(snap.public_ip, Unknown):
        return _skip(id_, f"public IP unknown: {snap.public_ip.reason}")
    if not snap.dns:
        if isinstance(snap.cert, Unknown):
            return _skip(id_, snap.cert.reason)
        return _skip(id_, "no name to look up (the certificate has no CN or SAN, or does not "
                     "parse); pass --fqdn")
    ip = snap.public_ip.value
    answers = {n: (list(a) if isinstance(a, tuple) else a.reason)
               for n, a in snap.dns.items()}
    ev = {"public_ip": ip, "names": answers,
          "dns_server": ":".join(map(str, snap.options.dns_server))
          if snap.options.dns_server else "system"}
    good = [n for n, a in snap.dns.items() if isinstance(a, tuple) and ip in a]
    if good:
        return Finding(id_, Status.PASS, f"{good[0]} resolves to {ip}", ev)
    # Only DNS's own answer (no such name, no A record, another address) is a failure; a
    # resolver that could not be asked (unreachable, refused, timed out, none answering)
    # says nothing about the record: could not run. A wildcard is never looked up.
    unasked = [a.reason for n, a in snap.dns.items()
               if isinstance(a, Unknown) and not n.startswith("*.")]
    if unasked:
        return _skip(id_, "DNS could not be asked: " + "; ".join(unasked))
    if not any(isinstance(a, (tuple, NoAddress)) for a in snap.dns.values()):
        return _skip(id_, "; ".join(a.reason for a in snap.dns.values()
                                    if isinstance(a, Unknown)))
    name = next((n for n in snap.dns if not n.startswith("*.")), next(iter(snap.dns)))
    detail = "; ".join(f"{n} -> {', '.join(a)}" if isinstance(a, list) else str(a)
                       for n, a in answers.items())
    return Finding(id_, Status.FAIL, f"no certificate name resolves to {ip} ({detail})", ev, None,
                   f"publish an A record: {name}. IN A {ip}  (or pass --fqdn with a name of the "
                   "certificate that does)")


def check_ip_public(snap: Snapshot) -> Finding:
    id_ = "ip.public"
    p = snap.public_ip
    if isinstance(p, Unknown):
        return _skip(id_, p.reason)
    ev: dict[str, Any] = {"public_ip": p.value, "source": p.source}
    try:
        addr = ipaddress.ip_address(p.value)
    except ValueError:
        return Finding(id_, Status.FAIL, f"{p.value!r} is not an IP address", ev, _w(p.where),
                       "give an IPv4 address")
    if not addr.is_global:
        return Finding(id_, Status.FAIL, f"{p.value} is not a public address (private, "
                       "loopback or reserved)", ev, _w(p.where),
                       "use the PBX's public static IP (set external_signaling_address and "
                       "external_media_address on the TLS transport to it)")
    t = snap.transport
    if t is None:
        return Finding(id_, Status.PASS, f"{p.value} is a public address (no TLS transport to "
                       "compare with)", ev, _w(p.where))
    sig, media = t.get("external_signaling_address"), t.get("external_media_address")
    ev.update(external_signaling_address=sig.value if sig else None,
              external_media_address=media.value if media else None, bind=t.host)
    wrong = [s for s in (sig, media) if s is not None and s.value != p.value
             and not (s is sig and p.source.startswith("external_signaling_address"))]
    if wrong:
        s = wrong[0]
        return Finding(id_, Status.FAIL, f"transport {t.name} advertises {s.key}={s.value}, not "
                       f"{p.value}", ev, _w(s.where), _edit_fix(snap, t.section, [
                           f"external_signaling_address={p.value}",
                           f"external_media_address={p.value}"]))
    local = snap.host_ips if not isinstance(snap.host_ips, Unknown) else ()
    if sig is not None and media is None and p.value not in local:
        return Finding(id_, Status.FAIL, f"transport {t.name} sets external_signaling_address "
                       "but not external_media_address: SDP would carry the private address",
                       ev, _w(sig.where), _edit_fix(snap, t.section,
                                                    [f"external_media_address={p.value}"]))
    if sig is None:
        if not t.wildcard and t.host != p.value:
            return Finding(id_, Status.FAIL, f"transport {t.name} binds {t.host} and advertises "
                           f"no external address, so calls would not carry {p.value}", ev,
                           _w(t.where), _edit_fix(snap, t.section, [
                               f"external_signaling_address={p.value}",
                               f"external_media_address={p.value}"]))
        if t.wildcard and p.value not in local:
            ev["host_addresses"] = list(local)
            return Finding(id_, Status.FAIL, f"{p.value} is not on this host's interfaces and "
                           f"transport {t.name} advertises no external address (NAT?)", ev,
                           _w(t.where), _edit_fix(snap, t.section, [
                               f"external_signaling_address={p.value}",
                               f"external_media_address={p.value}"]))
    return Finding(id_, Status.PASS, f"{p.value} is public and advertised by {t.name}", ev,
                   _w(sig.where if sig else t.where))


def _module_name(value: str) -> str:
    v = value.strip().lower()
    return v[:-3] if v.endswith(".so") else v


def check_srtp_module(snap: Snapshot) -> Finding:
    id_ = "srtp.module"
    m = snap.modules
    if not m.found:
        return Finding(id_, Status.PASS, "no modules.conf: Asterisk autoloads every module, "
                       "res_srtp included", {"modules_conf": m.path})
    settings = [s for sec in m.named("modules") for s in sec.settings]
    noload = [s for s in settings if s.key.lower() == "noload" and
              _module_name(s.value) == "res_srtp"]
    ev: dict[str, Any] = {"modules_conf": m.path}
    if noload:
        return Finding(id_, Status.FAIL, "modules.conf disables res_srtp (noload)", ev,
                       _w(noload[0].where), f"delete the line at {noload[0].where} "
                       f"('{noload[0].key} => {noload[0].value}'), then restart Asterisk")
    autoload = [s for s in settings if s.key.lower() == "autoload"]
    loads = [s for s in settings if s.key.lower() in ("load", "preload", "require",
                                                      "preload-require")
             and _module_name(s.value) == "res_srtp"]
    if autoload and autoload[-1].value.lower() in ("no", "false", "0") and not loads:
        return Finding(id_, Status.FAIL, "autoload=no and res_srtp is not loaded", ev,
                       _w(autoload[-1].where), "add to [modules] in modules.conf:\n"
                       "load => res_srtp.so")
    return Finding(id_, Status.PASS, "res_srtp is not disabled", ev,
                   _w(loads[0].where) if loads else None)


def check_srtp_endpoint(snap: Snapshot) -> Finding:
    id_ = "srtp.endpoint"
    e = snap.endpoint
    if isinstance(e, Unknown):
        return _skip(id_, e.reason)
    sec = e.value
    enc: Setting | None = sec.get("media_encryption")
    opt = sec.get("media_encryption_optimistic")
    ev = {"endpoint": sec.name, "chosen_by": e.source,
          "media_encryption": enc.value if enc else None,
          "media_encryption_optimistic": opt.value if opt else None}
    fix = _edit_fix(snap, sec, ["media_encryption=sdes", "media_encryption_optimistic=no"])
    if enc is None or enc.value.lower() != "sdes":
        return Finding(id_, Status.FAIL, f"endpoint {sec.name} has media_encryption="
                       f"{enc.value if enc else '(unset: no)'}, not sdes", ev,
                       _w(enc.where if enc else sec.where), fix)
    if opt is not None and opt.value.lower() in ("yes", "true", "1", "on"):
        return Finding(id_, Status.FAIL, f"endpoint {sec.name} allows unencrypted media "
                       "(media_encryption_optimistic=yes)", ev, _w(opt.where), fix)
    return Finding(id_, Status.PASS, f"endpoint {sec.name} requires SDES-SRTP", ev,
                   _w(enc.where))


@dataclass(frozen=True)
class RtpRange:
    start: int
    end: int
    where: Where | None


def rtp_range(snap: Snapshot) -> Union[RtpRange, str]:
    """The range Asterisk uses, or why it is not valid. Asterisk 22.10.1 takes the *first*
    rtpstart and rtpend of the first [general] (with what ``[general](+)`` adds to it, after
    its own lines), and ignores any later [general] (tests/test_real_asterisk.py shows it): so
    on FreePBX, rtp_additional.conf's range wins over anything in rtp_custom.conf."""
    if not snap.rtp.found:
        return f"rtp.conf not found in {snap.options.asterisk_dir}"
    general = snap.rtp.named("general")
    if not general:
        return "rtp.conf has no [general] section"
    sec = general[0]
    got = {}
    for key in ("rtpstart", "rtpend"):
        s = next((x for x in sec.settings if x.key.lower() == key), None)
        if s is None:
            return f"rtp.conf [general] does not set {key}"
        if not s.value.isdigit():
            return f"{key}={s.value!r} at {s.where} is not a number"
        got[key] = (int(s.value), s.where)
    (start, ws), (end, _) = got["rtpstart"], got["rtpend"]
    if not 1024 <= start < end <= 65535:
        return f"rtpstart={start}, rtpend={end} at {ws} is not a range within 1024..65535"
    return RtpRange(start, end, ws)


FREEPBX_RTP_FIX = ("set it in FreePBX: Settings > Asterisk SIP Settings > RTP Port Ranges "
                   "(FreePBX writes it to rtp_additional.conf on 'fwconsole reload'; a range "
                   "in rtp_custom.conf is never used: Asterisk takes the first)")


def check_rtp_range(snap: Snapshot) -> Finding:
    id_ = "rtp.range"
    r = rtp_range(snap)
    fix = (FREEPBX_RTP_FIX if snap.freepbx else "in rtp.conf's first [general], set:\n"
           "rtpstart=10000\nrtpend=20000")
    if isinstance(r, str):
        general = snap.rtp.named("general")
        return Finding(id_, Status.FAIL, r, {"rtp_conf": snap.rtp.path},
                       _w(general[0].where) if general else None, fix)
    ev = {"rtpstart": r.start, "rtpend": r.end}
    if snap.running_rtp is not None and snap.running_rtp != (r.start, r.end):
        a, b = snap.running_rtp
        return Finding(id_, Status.WARN, f"the running Asterisk uses RTP ports {a}-{b}, the "
                       f"config says {r.start}-{r.end}: the firewall checks judge {a}-{b}",
                       {**ev, "running": [a, b]}, _w(r.where),
                       "asterisk -rx 'module reload res_rtp_asterisk.so' (then run again)")
    return Finding(id_, Status.PASS, f"RTP ports {r.start}-{r.end} ({r.end - r.start + 1} ports)"
                   + (", as the running Asterisk uses" if snap.running_rtp else ""), ev,
                   _w(r.where))


def _firewall(snap: Snapshot, id_: str, proto: str, ports: tuple[int, int], what: str
              ) -> Finding:
    fw = snap.firewall
    if isinstance(fw, Unknown):
        return _skip(id_, fw.reason)
    assert isinstance(fw, Ruleset)
    dst = None
    if isinstance(snap.public_ip, Located):
        try:
            dst = int(ipaddress.IPv4Address(snap.public_ip.value))
        except ValueError:
            dst = None
    worst: list[str] = []
    best: list[str] = []
    uncertain: list[str] = []
    for cidr in snap.options.amazon_cidrs:
        net = ipaddress.IPv4Network(cidr, strict=False)
        w: Coverage = coverage(fw, proto, net, ports, dst, "worst")
        worst.extend(g.describe() for g in w.gaps)
        uncertain.extend(u for u in w.uncertain if u not in uncertain)
        if w.gaps:
            best.extend(g.describe() for g in coverage(fw, proto, net, ports, dst, "best").gaps)
    span = port_span(ports, "-")
    ev: dict[str, Any] = {"ruleset": fw.source, "format": fw.format, "protocol": proto,
                          "ports": span, "cidrs": list(snap.options.amazon_cidrs),
                          "notes": list(fw.notes)}
    cidrs = " ".join(snap.options.amazon_cidrs)
    fix = open_commands(fw.format, proto, ports, snap.options.amazon_cidrs)
    if not worst:
        return Finding(id_, Status.PASS, f"{proto.upper()} {span} ({what}) is open to {cidrs}",
                       ev)
    ev["refused"] = worst
    if uncertain:
        ev["cannot_judge"] = uncertain
    if not best:
        return Finding(id_, Status.WARN, f"{proto.upper()} {span} ({what}) is open to {cidrs} "
                       "only if rules pbx-bridge cannot judge let it through", ev,
                       uncertain[0].split(": ", 1)[0] if uncertain else None, fix)
    first = worst[0]
    return Finding(id_, Status.FAIL, f"{proto.upper()} {what} not open to Amazon: {first}"
                   + (f" (+{len(worst) - 1} more)" if len(worst) > 1 else ""), ev,
                   None, fix)


def check_firewall_signaling(snap: Snapshot) -> Finding:
    id_ = "firewall.signaling"
    if snap.transport is None or not snap.transport.bind_ok:
        return _skip(id_, "no TLS transport port to check")
    p = snap.transport.port
    return _firewall(snap, id_, "tcp", (p, p), "SIP/TLS signalling")


def check_firewall_media(snap: Snapshot) -> Finding:
    id_ = "firewall.media"
    if snap.running_rtp is not None:  # what Asterisk uses, not what a file says
        return _firewall(snap, id_, "udp", snap.running_rtp, "SRTP media")
    r = rtp_range(snap)
    if isinstance(r, str):
        return _skip(id_, f"no valid RTP range: {r}")
    return _firewall(snap, id_, "udp", (r.start, r.end), "SRTP media")


def _is_amazon(cert: Any) -> bool:
    from cryptography.x509.oid import NameOID
    for attr in (NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME):
        for a in cert.subject.get_attributes_for_oid(attr):
            if "amazon" in str(a.value).lower():
                return True
    return False


def check_amazon_ca(snap: Snapshot) -> Finding:
    id_ = "amazon.ca"
    t = snap.transport
    if t is None:
        return _skip(id_, "no TLS transport")
    ca = snap.ca_list
    named = t.value("ca_list_file")  # the file the config already uses: the fix names it
    target = named or "/etc/asterisk/keys/ca.crt"
    fix_block = ("download Amazon's root certificates (Amazon Root CA 1-4, from Amazon Trust "
                 f"Services) and append them to {target}" +
                 (" (the transport's ca_list_file)" if named else
                  ", and set on the transport:\nca_list_file=" + target))
    if isinstance(ca, Unknown):
        s = t.get("ca_list_file")
        return Finding(id_, Status.FAIL, ca.reason, {}, _w(s.where if s else t.where), fix_block)
    if not ca.value:
        return Finding(id_, Status.FAIL, f"{ca.source} holds no certificate", {}, _w(ca.where),
                       fix_block)
    amazon = [certs.describe(c) for c in ca.value if _is_amazon(c)]
    ev = {"ca_list_file": ca.source, "certificates": len(ca.value), "amazon_roots": amazon}
    if amazon:
        return Finding(id_, Status.PASS, f"CA list has {len(amazon)} Amazon root(s)", ev,
                       _w(ca.where))
    return Finding(id_, Status.WARN, f"CA list exists ({len(ca.value)} certificate(s)) but none "
                   "is Amazon's: Amazon's root certificate must be in it", ev, _w(ca.where),
                   fix_block)


def _live(snap: Snapshot, id_: str) -> Union[TlsProbe, Finding, None]:
    """The probe, or the finding to give instead (None: --live was not asked for)."""
    if snap.live is None:
        return None
    if isinstance(snap.live, Unknown):
        return _skip(id_, snap.live.reason)
    return snap.live


def check_live_tls(snap: Snapshot) -> Finding | None:
    id_ = "live.tls"
    p = _live(snap, id_)
    if not isinstance(p, TlsProbe):
        return p
    t = snap.transport
    assert t is not None
    target = f"{t.host if t.host not in ('0.0.0.0', '::', '') else '127.0.0.1'}:{t.port}"
    ev: dict[str, Any] = {"target": target, "version": p.version, "cipher": p.cipher}
    if not p.connected:
        return Finding(id_, Status.FAIL, p.error or "TLS connection failed", ev, _w(t.where),
                       "check that Asterisk is running with this transport loaded: "
                       "asterisk -rx 'pjsip show transports'")
    chain = snap.cert.chain if not isinstance(snap.cert, Unknown) else None
    if isinstance(chain, tuple) and chain and p.peer_cert_der is not None:
        from cryptography.hazmat.primitives.serialization import Encoding
        configured = chain[0].public_bytes(Encoding.DER)
        if configured != p.peer_cert_der:
            return Finding(id_, Status.FAIL, f"{target} serves a different certificate than "
                           "cert_file (Asterisk not reloaded since the file changed?)", ev,
                           _w(t.where), "asterisk -rx 'module reload res_pjsip.so'")
        ev["served_certificate"] = "matches cert_file"
    return Finding(id_, Status.PASS, f"TLS 1.2 handshake with {target} works ({p.cipher})", ev,
                   _w(t.where))


def check_live_sip(snap: Snapshot) -> Finding | None:
    id_ = "live.sip"
    p = _live(snap, id_)
    if not isinstance(p, TlsProbe):
        return p
    if not p.connected:
        return _skip(id_, "no TLS connection")
    if p.sip_status is None:
        return Finding(id_, Status.FAIL, p.sip_error or "no SIP answer to OPTIONS", {}, None,
                       "check 'pjsip set logger on' in the Asterisk CLI while re-running")
    return Finding(id_, Status.PASS, f"OPTIONS answered: {p.sip_status}",
                   {"status_line": p.sip_status})


Check = Callable[[Snapshot], "Finding | None"]

CHECKS: tuple[tuple[str, Check], ...] = (
    ("asterisk.config", check_config),
    ("tls.transport", check_tls_transport),
    ("tls.version", check_tls_version),
    ("tls.port", check_tls_port),
    ("tls.ciphers", security.check_ciphers),
    ("cert.valid", check_cert_valid),
    ("cert.key", check_cert_key),
    ("cert.chain", check_cert_chain),
    ("cert.dns", check_cert_dns),
    ("ip.public", check_ip_public),
    ("srtp.module", check_srtp_module),
    ("srtp.endpoint", check_srtp_endpoint),
    ("rtp.range", check_rtp_range),
    ("firewall.signaling", check_firewall_signaling),
    ("firewall.media", check_firewall_media),
    ("amazon.ca", check_amazon_ca),
    ("security.identify", security.check_identify),
    ("security.transport", security.check_transport),
    ("security.key", security.check_key),
    ("live.tls", check_live_tls),
    ("live.sip", check_live_sip),
)


def run_checks(snap: Snapshot) -> list[Finding]:
    out = []
    for id_, check in CHECKS:
        try:
            f = check(snap)
        except Exception as exc:  # a broken check must not hide the others
            f = Finding(id_, Status.ERROR, f"check crashed: {type(exc).__name__}: {exc}")
        if f is not None:
            out.append(f)
    return out


def overall_ok(findings: list[Finding]) -> bool:
    return not any(f.status in (Status.FAIL, Status.ERROR) for f in findings)


# What Amazon requires: "ready" means each of these ran and passed (or only warned).
REQUIRED = ("tls.", "cert.", "ip.public", "srtp.", "rtp.range", "firewall.")


def unverified(findings: list[Finding]) -> list[Finding]:
    """Required checks that could not run."""
    return [f for f in findings if f.status == Status.SKIP and f.id.startswith(REQUIRED)]


def verdict(findings: list[Finding]) -> tuple[bool, str]:
    """(ready, the verdict's words) for the preflight."""
    if not overall_ok(findings):
        return False, "NOT ready for Amazon"
    skipped = unverified(findings)
    if skipped:
        return False, (f"not verified: {len(skipped)} check{'s' * (len(skipped) != 1)} could "
                       f"not run ({', '.join(f.id for f in skipped)})")
    return True, "ready for Amazon"
