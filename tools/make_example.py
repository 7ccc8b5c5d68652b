"""Writes the bundled example host, asterisk/examples/hotel/ (run from the repo root).

The example is a plain Asterisk 22 layout for a hotel PBX "pbx.example-hotel.test": a TLS
transport, an SDES-SRTP trunk endpoint for Amazon, rtp.conf, modules.conf, a certificate chain
made here (valid ten years; the key is an EXAMPLE key, never use it), and a firewall ruleset
saved by the real iptables-save (made in a network namespace when this runs as root, else
the copy in tests/data/firewall/amazon-open.rules).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "asterisk" / "examples" / "hotel"
FQDN = "pbx.example-hotel.test"
IP = "203.0.113.10"  # a documentation address: the example's ip.public check says so


def cert(cn: str, issuer=None, ca: bool = False, sans=()):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Hotel"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer[0].subject if issuer else name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=1))
         .not_valid_after(now + dt.timedelta(days=3650))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
    c = b.sign(issuer[1] if issuer else key, hashes.SHA256())
    return c, key


PJSIP = f"""\
; Example hotel PBX: the Amazon trunk over SIP/TLS with SDES-SRTP media.
[global]
type=global
user_agent=Example Hotel PBX

[transport-udp]
type=transport
protocol=udp
bind=0.0.0.0:5060

[transport-tls]
type=transport
protocol=tls
bind=0.0.0.0:5061
cert_file=/etc/asterisk/keys/pbx.crt
priv_key_file=/etc/asterisk/keys/pbx.key
ca_list_file=/etc/asterisk/keys/ca.crt
method=tlsv1_2
external_signaling_address={IP}
external_media_address={IP}
local_net=192.168.10.0/24

[amazon-defaults](!)
type=endpoint
context=from-alexa
disallow=all
allow=ulaw,alaw
media_encryption=sdes
media_encryption_optimistic=no
direct_media=no
rtp_symmetric=yes
dtmf_mode=rfc4733

[alexa](amazon-defaults)
transport=transport-tls
aors=alexa

[alexa]
type=aor
contact=sip:{IP}:5061

[alexa]
type=identify
endpoint=alexa
match=3.239.178.128/25

#include rooms.conf
"""

ROOMS = """\
; Room phones (one per room), from a template.
[room](!)
type=endpoint
context=from-internal
disallow=all
allow=ulaw
transport=transport-udp

""" + "".join(f"[{n}](room)\naors={n}\ncallerid=\"Room {n}\" <{n}>\n\n[{n}]\ntype=aor\n"
              f"max_contacts=1\n\n" for n in (201, 202, 203, 204))


def main() -> None:
    (DEST / "etc-asterisk" / "keys").mkdir(parents=True, exist_ok=True)
    etc = DEST / "etc-asterisk"
    (etc / "pjsip.conf").write_text(PJSIP)
    (etc / "rooms.conf").write_text(ROOMS)
    (etc / "rtp.conf").write_text("[general]\nrtpstart=10000\nrtpend=20000\n")
    (etc / "modules.conf").write_text("[modules]\nautoload=yes\nnoload => chan_iax2.so\n")
    root = cert("Example Hotel Root CA", ca=True)
    inter = cert("Example Hotel Issuing CA", root, ca=True)
    leaf = cert(FQDN, inter, sans=(FQDN,))
    pem = serialization.Encoding.PEM
    (etc / "keys" / "pbx.crt").write_bytes(leaf[0].public_bytes(pem) + inter[0].public_bytes(pem))
    (etc / "keys" / "pbx.key").write_bytes(leaf[1].private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (etc / "keys" / "ca.crt").write_bytes(root[0].public_bytes(pem))
    script = (ROOT / "tests/data/firewall/amazon-open.iptables.sh").read_text()
    try:
        rules = subprocess.run(["unshare", "-n", "sh", "-ec", script + "\niptables-save\n"],
                               capture_output=True, text=True, check=True).stdout
        rules = "".join(ln + "\n" for ln in rules.splitlines() if not ln.startswith("# "))
        (DEST / "firewall.rules").write_text(rules)
    except (OSError, subprocess.CalledProcessError):
        shutil.copy(ROOT / "tests/data/firewall/amazon-open.rules", DEST / "firewall.rules")
    print(f"wrote {DEST}")


if __name__ == "__main__":
    main()
