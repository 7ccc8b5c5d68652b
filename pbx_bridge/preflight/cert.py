"""The certificate: ``cert.valid``, ``cert.key``, ``cert.chain``, ``cert.dns`` (its CN or a SAN
resolves to the PBX), and ``amazon.ca`` (the CA list lets Amazon's certificate in).

Each check is a pure function of a :class:`~.snapshot.Snapshot`; :mod:`.checks` registers
them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Union

from .. import certs
from ..findings import Finding, Status
from .fixes import skip as _skip, where_text as _w
from .snapshot import NoAddress, Snapshot, Unknown


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
