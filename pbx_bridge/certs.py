"""Certificates and keys as the preflight needs them: parsed from bytes, compared, ordered.

cryptography is imported by the functions that parse or compare, not with this module: a
host without a certificate yet (and every command that reads none) does not pay for it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, Sequence

if TYPE_CHECKING:
    from cryptography import x509


class PrivateKey(Protocol):
    """What is used of a loaded private key: cryptography's ``PrivateKey`` (40+), which
    Debian 12's 38 calls ``PRIVATE_KEY_TYPES``; any of them matches."""

    def public_key(self) -> Any: ...


class CertError(ValueError):
    pass


def load_chain(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM file (or one DER certificate), in file order."""
    from cryptography import x509
    if b"-----BEGIN" in data:
        try:
            certs = _load_pem_certificates(data)
        except ValueError as exc:
            raise CertError(f"PEM certificate does not parse: {exc}") from None
        return certs
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise CertError("neither a PEM nor a DER certificate") from None


def _load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """``x509.load_pem_x509_certificates`` (cryptography 39+), or the same on Debian 12's 38:
    each CERTIFICATE block in file order, ValueError when there is none or one is bad."""
    from cryptography import x509
    load = getattr(x509, "load_pem_x509_certificates", None)
    if load is not None:
        return list(load(data))
    import re
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data,
                        re.S)
    if not blocks:
        raise ValueError("no CERTIFICATE block")
    return [x509.load_pem_x509_certificate(b) for b in blocks]


def load_key(data: bytes, password: str | None = None) -> PrivateKey:
    from cryptography.hazmat.primitives import serialization
    pw = password.encode() if password else None
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, pw)
        return serialization.load_der_private_key(data, pw)
    except TypeError:
        raise CertError("the private key is encrypted and no priv_key_password is set") from None
    except ValueError as exc:
        raise CertError(f"private key does not parse: {exc}") from None


def names(cert: x509.Certificate) -> tuple[str | None, tuple[str, ...]]:
    """(CN, DNS SANs)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else None
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        sans = tuple(ext.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        sans = ()
    return cn, sans


def carries(cert: x509.Certificate, name: str) -> bool:
    """Whether the certificate is good for ``name``: its CN or a DNS SAN, a wildcard covering
    one label (``*.example.com`` covers ``pbx.example.com``, not ``a.pbx.example.com``)."""
    cn, sans = names(cert)
    want = name.lower().rstrip(".")
    for n in (*sans, cn):
        if not n:
            continue
        n = n.lower().rstrip(".")
        if n == want or (n.startswith("*.") and want.count(".") == n.count(".") and
                         want.split(".", 1)[1] == n[2:]):
            return True
    return False


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    from cryptography.hazmat.primitives import serialization
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return bool(cert.public_key().public_bytes(enc, fmt) == key.public_key().public_bytes(enc, fmt))


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        if hasattr(cert, "verify_directly_issued_by"):  # cryptography 40+
            cert.verify_directly_issued_by(issuer)
        else:  # Debian 12's 38: the same check, for the key types a PBX certificate has
            _verify_signature(cert, issuer)
        return True
    except (ValueError, TypeError, Exception):  # InvalidSignature has no common base
        return False


def _verify_signature(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """Raise unless ``issuer`` names and signed ``cert`` (RSA PKCS#1 v1.5, ECDSA, EdDSA)."""
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    if cert.issuer != issuer.subject:
        raise ValueError("issuer name differs")
    key: Any = issuer.public_key()
    hash_ = cert.signature_hash_algorithm
    if isinstance(key, rsa.RSAPublicKey) and hash_ is not None:
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hash_)
    elif isinstance(key, ec.EllipticCurvePublicKey) and hash_ is not None:
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hash_))
    else:
        key.verify(cert.signature, cert.tbs_certificate_bytes)


def best_order(certs: list[x509.Certificate]) -> list[int] | None:
    """Indexes of ``certs`` ordered leaf first, each signed by the next; None if no such order."""
    n = len(certs)
    for start in range(n):
        order = [start]
        used = {start}
        while len(order) < n:
            nxt = next((j for j in range(n) if j not in used
                        and issued_by(certs[order[-1]], certs[j])), None)
            if nxt is None:
                break
            order.append(nxt)
            used.add(nxt)
        if len(order) == n:
            return order
    return None


def describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def not_after(cert: x509.Certificate) -> datetime:
    if hasattr(cert, "not_valid_after_utc"):  # cryptography 42+
        value: datetime = cert.not_valid_after_utc
        return value
    return cert.not_valid_after.replace(tzinfo=timezone.utc)  # 38-41: naive UTC


def not_before(cert: x509.Certificate) -> datetime:
    if hasattr(cert, "not_valid_before_utc"):
        value: datetime = cert.not_valid_before_utc
        return value
    return cert.not_valid_before.replace(tzinfo=timezone.utc)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def same_chain(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two PEM chains hold the same certificates in the same order (whitespace and
    line wrapping aside)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    def der(pems: Sequence[str]) -> list[bytes]:
        out = []
        for pem in pems:
            try:
                out.append(x509.load_pem_x509_certificate(pem.encode()).public_bytes(
                    serialization.Encoding.DER))
            except ValueError:
                out.append(pem.strip().encode())
        return out
    return der(a) == der(b)


def leaf_of(chain: Sequence[x509.Certificate], key: Any = None) -> x509.Certificate:
    """The server's own certificate wherever it sits in a chain file: the one the private key
    belongs to, else the first that is not a CA, else the first."""
    from cryptography import x509
    if key is not None:
        for c in chain:
            try:
                if key_matches(c, key):
                    return c
            except Exception:  # a key type the certificate cannot be compared with
                pass
    for c in chain:
        try:
            if not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                return c
        except x509.ExtensionNotFound:
            return c
    return chain[0]
