"""SIP over TLS 1.2 on a dedicated TCP port: ``tls.transport``, ``tls.version``, ``tls.port``,
and with ``--live`` the handshake and an OPTIONS over it (``live.tls``, ``live.sip``).

Each check is a pure function of a :class:`~.snapshot.Snapshot`; :mod:`.checks` registers
them."""

from __future__ import annotations

import os
from typing import Any, Union

from ..asterisk.pjsip import TCP_PROTOCOLS, WILDCARD, transports
from ..findings import Finding, Status
from ..generate.render import TLS_CIPHERS
from ..net import TlsProbe
from .fixes import edit_fix as _edit_fix, new_fix as _new_fix, skip as _skip, \
    where_text as _w
from .snapshot import Located, Snapshot, Unknown


def _transport_block(snap: Snapshot) -> str:
    ip = snap.public_ip.value if isinstance(snap.public_ip, Located) else "<public IP>"
    return ("[transport-tls]\ntype=transport\nprotocol=tls\nbind=0.0.0.0:5061\n"
            "cert_file=/etc/asterisk/keys/pbx.crt\npriv_key_file=/etc/asterisk/keys/pbx.key\n"
            "ca_list_file=/etc/asterisk/keys/ca.crt\nmethod=tlsv1_2\n"
            f"cipher={','.join(TLS_CIPHERS)}\n"
            f"external_signaling_address={ip}\nexternal_media_address={ip}")


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
