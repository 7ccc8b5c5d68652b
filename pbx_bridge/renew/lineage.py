"""A certbot lineage (``fullchain.pem``, ``privkey.pem``): read it, and refuse one that does
not fit the TLS transport before anything is installed."""

from __future__ import annotations

from ..errors import InputError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from pathlib import Path
    from ..preflight.snapshot import Snapshot


class Renewal:
    def __init__(self, chain_pem: bytes, key_pem: bytes, chain: tuple[str, ...],
                 leaf_der: bytes, not_after: str, certs: tuple[Any, ...] = (),
                 key: Any = None) -> None:
        self.chain_pem = chain_pem  # fullchain.pem as certbot wrote it
        self.key_pem = key_pem
        self.chain = chain  # the PEM blocks
        self.leaf_der = leaf_der
        self.not_after = not_after
        self.certs = certs  # the parsed chain, in the file's order
        self.key = key


def read_lineage(folder: Path) -> Renewal:
    """The renewed certificate, checked: it parses, the key is its key, it is valid now."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from .. import certs
    from ..trunk.local import read_chain
    if not folder.is_dir():
        raise InputError(str(folder), "lineage folder does not exist (--lineage, or "
                         "RENEWED_LINEAGE from certbot)")
    data = {}
    for name in ("fullchain.pem", "privkey.pem"):
        p = folder / name
        try:
            if not p.is_file():
                raise InputError(str(p), "is missing (a certbot lineage holds fullchain.pem "
                                 "and privkey.pem)")
            data[name] = p.read_bytes()
        except OSError as exc:
            raise InputError(str(p), f"cannot read: {exc.strerror or exc}") from None
    pems = read_chain(data["fullchain.pem"], str(folder / "fullchain.pem"))
    try:
        key = certs.load_key(data["privkey.pem"])
    except certs.CertError as exc:
        raise InputError(str(folder / "privkey.pem"), str(exc)) from None
    chain = tuple(certs.load_chain("".join(pems).encode()))
    leaf = certs.leaf_of(chain, key)  # judged by check_lineage, before anything changes
    return Renewal(data["fullchain.pem"], data["privkey.pem"], pems,
                   leaf.public_bytes(Encoding.DER), certs.not_after(leaf).isoformat(),
                   chain, key)


def tls_name(snap: "Snapshot", saved: str | None) -> tuple[str, str] | None:
    """(the name the new certificate must carry, where it comes from): the saved trunk's TLS
    name (Amazon checks the served certificate against it), else the name ``trunk create``
    takes from the certificate installed now (its first non-wildcard SAN, else its CN);
    None when neither is known."""
    from .. import certs
    from ..preflight.snapshot import Unknown
    if saved:
        return saved, "the trunk's TLS name"
    leaf = None if isinstance(snap.cert, Unknown) else snap.cert.leaf()
    if leaf is None:
        return None
    cn, sans = certs.names(leaf)
    name = next((n for n in sans if not n.startswith("*.")), None) or cn
    return (name, "the name of the certificate installed now") if name else None


def check_lineage(snap: "Snapshot", renewal: Renewal, folder: "Path",
                  saved_name: str | None) -> None:
    """The preflight's own certificate checks (``cert.valid``, ``cert.key``, ``cert.chain``)
    on the renewed lineage as if it were installed, and that it carries the TLS name
    (:func:`tls_name`). Raises :class:`InputError` (exit 2) naming each check that fails, with
    its fix, before anything is changed."""
    from dataclasses import replace

    from .. import certs
    from ..asterisk.conf import Where
    from ..findings import Status
    from ..preflight.cert import check_cert_chain, check_cert_key, check_cert_valid
    from ..preflight.snapshot import CertFacts
    full = str(folder / "fullchain.pem")
    facts = CertFacts(full, Where(full, 1), renewal.certs, str(folder / "privkey.pem"),
                      Where(str(folder / "privkey.pem"), 1), renewal.key)
    as_installed = replace(snap, cert=facts)
    failed = []
    for check in (check_cert_valid, check_cert_key, check_cert_chain):
        f = check(as_installed)
        if f.status in (Status.FAIL, Status.ERROR):
            failed.append(f"{f.id}: {f.summary}" + (f" (fix: {f.fix})" if f.fix else ""))
    want = tls_name(snap, saved_name)
    leaf = facts.leaf()
    if want and leaf is not None and not certs.carries(leaf, want[0]):
        cn, sans = certs.names(leaf)
        failed.append(f"cert.name: the new certificate does not carry {want[0]} ({want[1]}; "
                      f"it has {', '.join(dict.fromkeys(n for n in (*sans, cn) if n)) or 'no name'}"
                      ") (fix: "
                      f"renew it for {want[0]}: certbot certonly --cert-name ... -d "
                      f"{want[0]}, or change the trunk's name with pbx-bridge trunk update "
                      "--fqdn)")
    if failed:
        raise InputError(str(folder), "refused, nothing was installed or changed: " +
                         "; ".join(failed))
