"""Writes the bundled example host, asterisk/examples/hotel/ (run from the repo root).

The example is a plain Asterisk 22 layout for a hotel PBX "pbx.example-hotel.test": the same
TLS transport and SDES-SRTP Amazon trunk the tests use as their passing host, room phones from
a template in an included file, rtp.conf, modules.conf, a certificate chain made here (valid
ten years; the key is an EXAMPLE key, never use it), and a firewall ruleset saved by the real
iptables-save (made in a network namespace when run as root with iptables, else the recorded
copy in tests/data/firewall/).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import (GOOD_EXTENSIONS, GOOD_MODULES, GOOD_PJSIP, GOOD_RTP, PUBLIC_IP,  # noqa: E402
                     make_pki)

DEST = ROOT / "asterisk" / "examples" / "hotel"
FQDN = "pbx.example-hotel.test"
IP = PUBLIC_IP  # made up; nothing ever connects to it

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
    etc = DEST / "etc-asterisk"
    (etc / "keys").mkdir(parents=True, exist_ok=True)
    (etc / "pjsip.conf").write_text(
        "; Example hotel PBX: the Amazon trunk over SIP/TLS with SDES-SRTP media.\n"
        + GOOD_PJSIP.format(bind="0.0.0.0:5061", ip=IP) + "\n#include rooms.conf\n")
    (etc / "rooms.conf").write_text(ROOMS)
    (etc / "rtp.conf").write_text(GOOD_RTP)
    (etc / "modules.conf").write_text(GOOD_MODULES)
    (etc / "extensions.conf").write_text(GOOD_EXTENSIONS + "\n[from-internal]\n"
                                         "exten => _20X,1,Dial(PJSIP/${EXTEN},30)\n")
    pki = make_pki(FQDN, days=3650, org="Example Hotel")
    (etc / "keys" / "pbx.crt").write_bytes(pki.leaf.pem() + pki.inter.pem())
    (etc / "keys" / "pbx.key").write_bytes(pki.leaf.key_pem())
    (etc / "keys" / "ca.crt").write_bytes(pki.root.pem())
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
