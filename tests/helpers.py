"""Real material for tests: certificates, config trees, a loopback DNS server, rulesets made by
the real iptables/nft in a network namespace, and a SIP-over-TLS responder."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DATA = Path(__file__).parent / "data"
PUBLIC_IP = "54.240.196.10"  # any globally routable address; tests never send traffic to it
FQDN = "pbx.harbor-hotel.test"
AMAZON = "3.239.178.128/25"

NOW = dt.datetime.now(dt.timezone.utc)

# The command the CLI-level tests run: this checkout (``python -m pbx_bridge`` on the tests'
# interpreter), or an installed one that PBX_BRIDGE_TEST_BIN names (.ci/run: the Debian
# package's /usr/bin/pbx-bridge, on Debian's python3 and libraries; ``pytest -m cli``).
TEST_BIN = os.environ.get("PBX_BRIDGE_TEST_BIN") or None
PB_CMD: list[str] = [TEST_BIN] if TEST_BIN else [sys.executable, "-m", "pbx_bridge"]


def _name(cn: str, org: str = "Harbor Lab") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Cert:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def make_cert(cn: str, issuer: Cert | None = None, *, ca: bool = False,
              sans: tuple[str, ...] = (), days: int = 365, start_days: int = -1,
              org: str = "Harbor Lab") -> Cert:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(cn, org)
    b = (x509.CertificateBuilder()
         .subject_name(subject)
         .issuer_name(issuer.cert.subject if issuer else subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW + dt.timedelta(days=start_days))
         .not_valid_after(NOW + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]),
                            critical=False)
    signer = issuer.key if issuer else key
    return Cert(b.sign(signer, hashes.SHA256()), key)


@dataclass
class Pki:
    root: Cert
    inter: Cert
    leaf: Cert


def make_pki(fqdn: str = FQDN, days: int = 365, start_days: int = -1,
             org: str = "Harbor Lab") -> Pki:
    root = make_cert(f"{org} Root CA", ca=True, days=3650, org=org)
    inter = make_cert(f"{org} Intermediate CA", root, ca=True, days=1825, org=org)
    leaf = make_cert(fqdn, inter, sans=(fqdn,), days=days, start_days=start_days, org=org)
    return Pki(root, inter, leaf)


GOOD_PJSIP = """\
[global]
type=global
user_agent=Harbor Lab PBX

[transport-udp]
type=transport
protocol=udp
bind=0.0.0.0:5060

[transport-tls]
type=transport
protocol=tls
bind={bind}
cert_file=/etc/asterisk/keys/pbx.crt
priv_key_file=/etc/asterisk/keys/pbx.key
ca_list_file=/etc/asterisk/keys/ca.crt
method=tlsv1_2
cipher=ECDHE-ECDSA-AES128-GCM-SHA256,ECDHE-RSA-AES128-GCM-SHA256,ECDHE-RSA-AES256-GCM-SHA384
external_signaling_address={ip}
external_media_address={ip}

[endpoint-defaults](!)
type=endpoint
context=from-alexa
disallow=all
allow=ulaw,alaw
media_encryption=sdes
media_encryption_optimistic=no
direct_media=no
rtp_symmetric=yes
dtmf_mode=rfc4733

[alexa](endpoint-defaults)
transport=transport-tls
aors=alexa
identify_by=ip

[alexa]
type=aor
contact=sip:{ip}:5061

[alexa]
type=identify
endpoint=alexa
match=3.239.178.128/25
"""

GOOD_RTP = "[general]\nrtpstart=10000\nrtpend=20000\n"
# The trunk's context refuses what did not come over TLS (the PBX also has a UDP transport).
GOOD_EXTENSIONS = """\
[from-alexa]
exten => _X.,1,GotoIf($["${CHANNEL(pjsip,secure)}" = "1"]?ok)
 same => n,Hangup(21)
 same => n(ok),Goto(from-internal,${EXTEN},1)
"""
GOOD_MODULES = "[modules]\nautoload=yes\nnoload => chan_iax2.so\n"


@dataclass
class Host:
    root: Path
    pki: Pki

    @property
    def etc(self) -> Path:
        return self.root

    def write(self, name: str, text: str | bytes) -> Path:
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text)
        return p

    def edit(self, name: str, old: str, new: str) -> None:
        p = self.root / name
        text = p.read_text()
        assert old in text, f"{old!r} not in {name}"
        p.write_text(text.replace(old, new, 1))


def make_host(root: Path, pki: Pki | None = None, *, bind: str = "0.0.0.0:5061",
              ip: str = PUBLIC_IP, amazon_ca: bool = True) -> Host:
    pki = pki or make_pki()
    root.mkdir(parents=True, exist_ok=True)
    h = Host(root, pki)
    h.write("pjsip.conf", GOOD_PJSIP.format(bind=bind, ip=ip))
    h.write("rtp.conf", GOOD_RTP)
    h.write("modules.conf", GOOD_MODULES)
    h.write("extensions.conf", GOOD_EXTENSIONS)
    h.write("keys/pbx.crt", pki.leaf.pem() + pki.inter.pem())
    h.write("keys/pbx.key", pki.leaf.key_pem())
    (root / "keys/pbx.key").chmod(0o600)
    ca = make_cert("Amazon Root CA 1", ca=True, org="Amazon") if amazon_ca else pki.root
    h.write("keys/ca.crt", ca.pem())
    return h


def freepbx_tree(dest: Path) -> Path:
    shutil.copytree(DATA / "freepbx-real" / "etc-asterisk", dest)
    return dest


def add_freepbx_trunk(d: Path, pki: Pki) -> None:
    """What an integrator adds to a FreePBX tree for the Amazon trunk, in the files FreePBX
    never overwrites: a TLS transport, the trunk endpoint and identify, keys, rtp.conf."""
    install_keys(d, pki)
    (d / "pjsip.transports_custom.conf").write_text(
        "[0.0.0.0-tls]\ntype=transport\nprotocol=tls\nbind=0.0.0.0:5061\n"
        "cert_file=/etc/asterisk/keys/pbx.crt\npriv_key_file=/etc/asterisk/keys/pbx.key\n"
        "ca_list_file=/etc/asterisk/keys/ca.crt\nmethod=tlsv1_2\n"
        "cipher=ECDHE-ECDSA-AES128-GCM-SHA256,ECDHE-ECDSA-CHACHA20-POLY1305\n"
        f"external_signaling_address={PUBLIC_IP}\nexternal_media_address={PUBLIC_IP}\n")
    (d / "keys" / "pbx.key").chmod(0o640)
    (d / "pjsip.endpoint_custom.conf").write_text(
        "[alexa]\ntype=endpoint\ntransport=0.0.0.0-tls\nmedia_encryption=sdes\naors=alexa\n"
        "identify_by=ip\ncontext=from-alexa\n")
    # FreePBX's extensions.conf includes the generated and the hand-edit dialplan; the trunk's
    # context, in the hand-edit file, refuses what did not come over TLS
    (d / "extensions.conf").write_text("#include extensions_additional.conf\n"
                                       "#include extensions_custom.conf\n")
    (d / "globals_custom.conf").write_text("")  # FreePBX makes it; the public copy lacks it
    with open(d / "extensions_custom.conf", "a") as f:
        f.write("\n" + GOOD_EXTENSIONS.replace("from-internal,", "ext-local,"))
    (d / "pjsip.identify_custom.conf").write_text(
        f"[alexa]\ntype=identify\nendpoint=alexa\nmatch={AMAZON}\n")
    # FreePBX's rtp.conf includes the generated values, then the hand-edit file
    (d / "rtp.conf").write_text(FREEPBX_RTP_CONF)
    (d / "rtp_additional.conf").write_text("[general]\nrtpstart=10000\nrtpend=20000\n")
    (d / "rtp_custom.conf").write_text("")


# ------------------------------------------------------------------ DNS

class _Resolver:
    def __init__(self, records: dict[str, list[str]]) -> None:
        self.records = {k.rstrip(".").lower(): v for k, v in records.items()}
        self.queries: list[str] = []

    def resolve(self, request, handler):  # dnslib's resolver interface
        from dnslib import QTYPE, RCODE, RR, A
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        self.queries.append(qname)
        if qname not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if request.q.qtype == QTYPE.A:
            for ip in self.records[qname]:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=60))
        return reply


class DnsServer:
    """dnslib's DNS server on 127.0.0.1, on a free UDP port, answering ``records``."""

    def __init__(self, records: dict[str, list[str]]) -> None:
        from dnslib.server import DNSLogger, DNSServer
        self.resolver = _Resolver(records)
        self.server = DNSServer(self.resolver, address="127.0.0.1", port=0,
                                logger=DNSLogger("-request,-reply,-truncated,-error,-recv,"
                                                 "-send,-data", prefix=False))
        self.port = self.server.server.server_address[1]
        self.server.start_thread()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop()
        self.server.server.server_close()


# ------------------------------------------------------------------ firewall

def can_make_rulesets() -> str | None:
    """None when real rulesets can be made here; else why not."""
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    for tool in ("unshare", "iptables-save", "iptables-restore", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iptables nftables util-linux)"
    res = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if res.returncode != 0:
        return "cannot create a network namespace here"
    return None


def in_netns(script: str) -> str:
    """Run a shell script in a fresh network namespace; return its stdout."""
    res = subprocess.run(["unshare", "-n", "sh", "-ec", script], capture_output=True, text=True,
                         timeout=30)
    if res.returncode != 0:
        raise RuntimeError(f"namespace script failed: {res.stderr}")
    return res.stdout


def iptables_ruleset(commands: list[str]) -> str:
    """The real iptables-save output after running ``iptables ARGS`` for each entry."""
    script = "\n".join(f"iptables {c}" for c in commands) + "\niptables-save\n"
    return in_netns(script)


def nft_ruleset(ruleset: str, json_form: bool = False) -> str:
    script = f"nft -f - <<'EOF'\n{ruleset}\nEOF\nnft {'-j ' if json_form else ''}list ruleset\n"
    return in_netns(script)


# ------------------------------------------------------------------ SIP over TLS

RECORDED_200 = (DATA / "asterisk-22" / "sip-tls-options-and-srtp-call.txt").read_text()


def recorded_options_answer(request: str) -> bytes:
    """Asterisk's recorded 200 OK to OPTIONS, with the request's Via/Call-ID/CSeq/From copied
    in as a SIP server would."""
    block = RECORDED_200.split("<<<<<<\n", 1)[1].split("\n\n\n", 1)[0]
    lines = block.split("\n")
    req = {ln.split(":", 1)[0].lower(): ln for ln in request.split("\r\n") if ":" in ln}
    out = []
    for ln in lines:
        name = ln.split(":", 1)[0].lower()
        if name in ("via", "call-id", "cseq", "from") and name in req:
            out.append(req[name])
        else:
            out.append(ln)
    return ("\r\n".join(out) + "\r\n\r\n").encode()


class SipTlsServer:
    """A TLS 1.2 listener on 127.0.0.1 that answers SIP OPTIONS with Asterisk's recorded reply
    (or with ``reply`` bytes when given)."""

    def __init__(self, cert_file: Path, key_file: Path, reply: bytes | None = None,
                 tls_max: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                 ciphers: str | None = None) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert_file), str(key_file))
        self.ctx.maximum_version = tls_max
        if tls_max < ssl.TLSVersion.TLSv1_2:
            self.ctx.minimum_version = tls_max
            self.ctx.set_ciphers("ALL:@SECLEVEL=0")
        if ciphers:
            self.ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            try:
                conn.settimeout(5)
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    text = data.decode("latin-1")
                    self.requests.append(text)
                    tls.sendall(self.reply if self.reply is not None
                                else recorded_options_answer(text))
            except (ssl.SSLError, OSError):
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


__all__ = ["ipaddress"]


# ------------------------------------------------------------------ host commands

IP_ADDR_JSON = (DATA / "ip-j-4-addr-show.json").read_text()


class RecordedRunner:
    """The command door, answering from recorded output (pyinfra style: output + pure parser).
    Commands it has no recording for are "not installed"."""

    def __init__(self, outputs: dict[tuple[str, ...], str]) -> None:
        self.outputs = outputs
        self.calls: list[tuple[str, ...]] = []

    def which(self, name: str) -> str | None:
        return f"/usr/sbin/{name}" if any(k[0] == name for k in self.outputs) else None

    def run(self, argv, timeout: float = 10.0):
        from pbx_bridge.host import CommandResult
        key = tuple(argv)
        self.calls.append(key)
        if key not in self.outputs:
            return CommandResult(key, 127, "", f"{argv[0]}: not recorded")
        return CommandResult(key, 0, self.outputs[key], "")


def host_runner(public: bool = True, extra: dict | None = None) -> RecordedRunner:
    ip_json = IP_ADDR_JSON.replace("192.0.2.2", PUBLIC_IP) if public else IP_ADDR_JSON
    outputs = {("ip", "-j", "-4", "addr", "show"): ip_json}
    outputs.update(extra or {})
    return RecordedRunner(outputs)


# ------------------------------------------------------------------ Amazon side

class FakeClock:
    """The clock door for client tests: real wall time plus whatever the test skips ahead,
    and sleeps that are recorded instead of slept."""

    def __init__(self) -> None:
        import time
        self._time = time
        self.offset = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._time.time() + self.offset

    def monotonic(self) -> float:
        return self._time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds


def settings_for(url: str, state_dir: Path, **kw):
    from pbx_bridge.secret import Secret
    from pbx_bridge.settings import DEFAULT_SCOPE, Settings
    values = dict(client_id="emulator-client", client_secret=Secret("emulator-secret"),
                  refresh_token=None, api_url=url, token_url=url + "/auth/o2/token",
                  scope=DEFAULT_SCOPE, state_dir=state_dir, asterisk_dir=Path("/etc/asterisk"),
                  source="(test)", timeout=5.0)
    values.update(kw)
    return Settings(**values)


# ------------------------------------------------------------------ generator trees

FREEPBX_RTP_CONF = (
    ";--------------------------------------------------------------------------------;\n"
    "; Do NOT edit this file as it is auto-generated by FreePBX. All modifications to ;\n"
    "; this file must be done via the web gui. There are alternative files to make    ;\n"
    "; custom modifications.                                                          ;\n"
    ";--------------------------------------------------------------------------------;\n"
    "#include rtp_additional.conf\n#include rtp_custom.conf\n")


def install_keys(etc: Path, pki: Pki | None = None) -> Pki:
    """The certificate, key and CA list at /etc/asterisk/keys/{pbx.crt,pbx.key,ca.crt}."""
    pki = pki or make_pki()
    (etc / "keys").mkdir(exist_ok=True)
    (etc / "keys" / "pbx.crt").write_bytes(pki.leaf.pem() + pki.inter.pem())
    (etc / "keys" / "pbx.key").write_bytes(pki.leaf.key_pem())
    (etc / "keys" / "ca.crt").write_bytes(make_cert("Amazon Root CA 1", ca=True,
                                                    org="Amazon").pem())
    return pki


def freepbx_generate_tree(dest: Path) -> Path:
    freepbx_tree(dest)
    (dest / "rtp.conf").write_text(FREEPBX_RTP_CONF)
    (dest / "rtp_additional.conf").write_text(
        ";--------------------------------------------------------------------------------;\n"
        ";          Do NOT edit this file as it is auto-generated by FreePBX.             ;\n"
        ";--------------------------------------------------------------------------------;\n")
    (dest / "rtp_custom.conf").write_text("")
    # FreePBX's own extensions.conf includes the generated and the hand-edit dialplan
    (dest / "extensions.conf").write_text("#include extensions_additional.conf\n"
                                          "#include extensions_custom.conf\n")
    (dest / "globals_custom.conf").write_text("")  # FreePBX makes it empty
    install_keys(dest)
    return dest


def plain_generate_tree(dest: Path) -> Path:
    shutil.copytree(DATA / "plain-asterisk", dest)
    install_keys(dest)
    return dest


# ------------------------------------------------------------------ running the CLI

ROOT = Path(__file__).parent.parent
SECRET = "s3cret-Do-Not-Print"


def cli_env(server, state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a `pbx-bridge` process talking to an emulator, no settings file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env.update(PBX_BRIDGE_API_URL=server.url,
               PBX_BRIDGE_TOKEN_URL=server.url + "/auth/o2/token",
               PBX_BRIDGE_CLIENT_ID="emulator-client", PBX_BRIDGE_CLIENT_SECRET=SECRET,
               PBX_BRIDGE_STATE_DIR=str(state_dir))
    env.update(extra)
    return env


def pb(env: dict[str, str], *args: str, timeout: float = 120,
       stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PB_CMD, *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=timeout, input=stdin)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


class LoopbackServer:
    """A TCP listener on 127.0.0.1 that hands each connection to ``handle`` in a thread."""

    def __init__(self, handle) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.sock.close()


# ------------------------------------------------------------------ room maps

def csv_of(rows):
    return "extension,room,comms_profile_id\n" + "".join(
        f"{e},{r},{p}\n" for e, r, p in rows)


def rows(n, start=0, profile="amzn1.alexa.unit.did.p"):
    return [(str(7100 + i), f"Room {100 + i}", f"{profile}{i}") for i in range(start, start + n)]


def publish_routes(state: Path, rooms: dict[str, str],
                   trunk: str = "amzn1.comms.network.siptrunk.t1") -> Path:
    """A state dir whose published routes map each extension to its room name (as rooms
    apply leaves it), for the AGI tests."""
    from pbx_bridge.rooms.store import Store
    s = Store(state)
    s.set_meta(trunk_id=trunk, endpoint="alexa")
    for ext, room in rooms.items():
        s.record(trunk, ext, f"amzn1.alexa.unit.did.{ext}", room)
    s.publish()
    s.close()
    return state
