"""Certificate renewal against a real Asterisk 22.10.1 and the emulator: Asterisk serves a
certificate, a renewal lands on disk, `status` sees file and served differ, `renew-hook` makes
Asterisk serve the new one and sends Amazon the new chain once. One instance for the module;
everything on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import grp

from helpers import PB_CMD, PUBLIC_IP, ROOT, SECRET, make_cert, make_pki
from pbx_bridge.net import Network
from realasterisk import base_files, boot, free_ports, free_udp_range
from test_status import m, metrics

pytestmark = pytest.mark.asterisk


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


# A group this host has, standing for the asterisk group: keys are written 0640 to it.
KEY_GROUP = next(g for g in ("nogroup", "daemon", "bin", "root") if _has_group(g))


def served(port: int) -> str | None:
    probe = Network().tls_sip_probe("127.0.0.1", port, options=False)
    return hashlib.sha256(probe.peer_cert_der).hexdigest() if probe.peer_cert_der else None


def fp(pki) -> str:
    return hashlib.sha256(pki.leaf.cert.public_bytes(Encoding.DER)).hexdigest()


def lineage(folder: Path, pki, key=None) -> Path:
    """What certbot leaves in /etc/letsencrypt/live/NAME for a deploy hook."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fullchain.pem").write_bytes(pki.leaf.pem() + pki.inter.pem())
    (folder / "privkey.pem").write_bytes((key or pki.leaf).key_pem())
    return folder


class Site:
    def __init__(self, tmp: Path, emulator) -> None:
        self.etc = tmp / "etc"
        self.keys = self.etc / "keys"
        self.keys.mkdir(parents=True)
        self.ami_port, self.tls_port = free_ports(2)
        base_files(self.etc, self.ami_port, rtp=free_udp_range())
        (self.keys / "ca.crt").write_bytes(make_cert("Amazon Root CA 1", ca=True,
                                                     org="Amazon").pem())
        self.first = make_pki(days=20)  # about to expire
        self.install(self.first)
        self.write_pjsip("pbx.crt", "pbx.key")
        self.ast = boot(self.etc, self.ami_port)
        self.state = tmp / "state"
        self.settings = tmp / "pbx-bridge.toml"
        self.srv = emulator(client_secret=SECRET, activate_after=0)
        self.settings.write_text(self.ast.settings_toml(self.state, key_group=KEY_GROUP) + (
            f"\n[amazon]\nclient_id = \"emulator-client\"\nclient_secret = \"{SECRET}\"\n"
            f"api_url = \"{self.srv.url}\"\ntoken_url = \"{self.srv.url}/auth/o2/token\"\n"))
        os.chmod(self.settings, 0o600)
        r = self.pb("trunk", "create", "--skip-preflight")  # peer: the transport's
        assert r.returncode == 0, r.stderr
        self.trunk = json.loads((self.state / "state.json").read_text())["trunkId"]

    def install(self, pki, crt: str = "pbx.crt", key: str = "pbx.key") -> None:
        (self.keys / crt).write_bytes(pki.leaf.pem() + pki.inter.pem())
        (self.keys / key).write_bytes(pki.leaf.key_pem())
        os.chmod(self.keys / key, 0o640)

    def write_pjsip(self, crt: str, key: str) -> None:
        (self.etc / "pjsip.conf").write_text(
            f"[transport-tls]\ntype=transport\nprotocol=tls\nbind=127.0.0.1:{self.tls_port}\n"
            f"cert_file={self.keys / crt}\npriv_key_file={self.keys / key}\nmethod=tlsv1_2\n"
            "cipher=ECDHE-ECDSA-AES128-GCM-SHA256,ECDHE-RSA-AES256-GCM-SHA384\n"
            f"ca_list_file={self.keys / 'ca.crt'}\n"
            f"external_signaling_address={PUBLIC_IP}\nexternal_media_address={PUBLIC_IP}\n")

    def pb(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
        env["PBX_BRIDGE_CONFIG"] = str(self.settings)
        return subprocess.run([*PB_CMD, *args], capture_output=True,
                              text=True, cwd=ROOT, env=env, timeout=timeout)

    def chain_updates(self) -> int:
        """Requests that changed the trunk, as the emulator logged them."""
        lines = [ln.split() for ln in self.srv.emulator.config.log.getvalue().splitlines()]
        return sum(1 for w in lines if w[1] in ("PATCH", "PUT") and
                   w[2].endswith(self.trunk) and w[3].startswith("2"))

    def amazon_chain(self) -> list[str]:
        return self.srv.emulator.state.trunks[self.trunk]["tls"]["certificateChain"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    import io

    from pbx_bridge.amazon.emulator import EmulatorConfig, start
    servers = []

    def emulator(**kw):
        kw.setdefault("log", io.StringIO())
        server, _ = start(EmulatorConfig(**kw))
        servers.append(server)
        return server
    s = Site(tmp_path_factory.mktemp("renew"), emulator)
    yield s
    s.ast.stop()
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_status_sees_a_renewal_not_loaded_and_renew_hook_makes_it_served(site, tmp_path):
    s = site
    assert served(s.tls_port) == fp(s.first)
    r = s.pb("status", "--format", "nagios", "--asterisk-dir", str(s.etc))
    assert r.returncode == 1 and "served certificate expires in" in r.stdout, r.stdout

    # certbot renews; someone copies the files by hand but nothing reloads Asterisk
    second = make_pki(days=90)
    s.install(second)
    r = s.pb("status", "--format", "prometheus")
    got = metrics(r.stdout)
    file_ts = m(got, "pbx_bridge_certificate_expiry_timestamp_seconds", source="file")
    served_ts = m(got, "pbx_bridge_certificate_expiry_timestamp_seconds", source="served")
    assert round((file_ts - served_ts) / 86400) == 70
    assert m(got, "pbx_bridge_certificate_served_matches_file") == 0
    assert m(got, "pbx_bridge_trunk_certificate_matches") == 0  # Amazon has the old one
    r = s.pb("status", "--format", "nagios")
    assert "Asterisk serves another certificate than" in r.stdout

    live = lineage(tmp_path / "live" / "pbx.harbor-hotel.test", second)
    before = s.chain_updates()
    r = s.pb("renew-hook", "--lineage", str(live))
    assert r.returncode == 0, r.stdout + r.stderr
    assert served(s.tls_port) == fp(second)
    assert s.amazon_chain()[0].strip() == second.leaf.pem().decode().strip()
    assert s.chain_updates() == before + 1
    r = s.pb("status", "--format", "nagios")
    assert r.returncode == 0, r.stdout

    # a second run (certbot calls the hook for each lineage it renews) changes nothing
    r = s.pb("renew-hook", "--lineage", str(live))
    assert r.returncode == 0 and r.stdout.startswith("nothing to do"), r.stdout
    assert s.chain_updates() == before + 1


def test_a_new_certificate_is_installed_reloaded_and_sent_once(site, tmp_path):
    s = site
    third = make_pki(days=80)
    live = lineage(tmp_path / "live", third)
    os.chmod(s.keys / "pbx.key", 0o644)  # an old key others can read
    before = s.chain_updates()
    env_run = subprocess.run  # certbot's way: RENEWED_LINEAGE, from another folder
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env.update(PBX_BRIDGE_CONFIG=str(s.settings), RENEWED_LINEAGE=str(live),
               PBX_BRIDGE_LOG_FORMAT="json")
    r = env_run([*PB_CMD, "renew-hook"], capture_output=True,
                text=True, cwd=tmp_path, env=env, timeout=180,
                preexec_fn=lambda: os.umask(0))  # no umask to lean on
    assert r.returncode == 0, r.stdout + r.stderr
    assert (s.keys / "pbx.crt").read_bytes() == (live / "fullchain.pem").read_bytes()
    st = (s.keys / "pbx.key").stat()  # 0640 to the key group, whatever the old mode
    assert (st.st_mode & 0o777, st.st_gid) == (0o640, grp.getgrnam(KEY_GROUP).gr_gid)
    assert served(s.tls_port) == fp(third)
    assert s.chain_updates() == before + 1
    events = [json.loads(line) for line in r.stderr.splitlines()]
    assert events and all(e["event"] == "renew" and e["level"] == "info" and
                          e["timestamp"].endswith("Z") for e in events)
    assert SECRET not in r.stdout + r.stderr
    backups = sorted((s.state / "backups").iterdir())
    manifest = json.loads((backups[-1] / "manifest.json").read_text())
    assert {Path(f["path"]).name for f in manifest["files"]} == {"pbx.crt", "pbx.key"}
    for f in manifest["files"]:  # the backups, the old key's too, are the owner's alone
        assert (backups[-1] / f["backup"]).stat().st_mode & 0o777 == 0o600


def test_a_key_that_does_not_match_is_refused_before_anything_changes(site, tmp_path):
    s = site
    before = (s.keys / "pbx.crt").read_bytes(), served(s.tls_port)
    bad = lineage(tmp_path / "bad", make_pki(days=90), key=make_pki().leaf)
    r = s.pb("renew-hook", "--lineage", str(bad))
    assert r.returncode == 2 and "cert.key: the private key does not belong to the " \
        "certificate" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert ((s.keys / "pbx.crt").read_bytes(), served(s.tls_port)) == before
    r = s.pb("renew-hook")
    assert r.returncode == 2 and "RENEWED_LINEAGE" in r.stderr
    r = s.pb("renew-hook", "--lineage", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def _lineage_of(folder: Path, chain: bytes, key) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fullchain.pem").write_bytes(chain)
    (folder / "privkey.pem").write_bytes(key.key_pem())
    return folder


@pytest.mark.parametrize("case", ["ca-first", "expired", "not-yet-valid", "other-name",
                                  "expired-intermediate"])
def test_renew_hook_checks_the_lineage_as_preflight_does_before_changing_anything(
        site, tmp_path, case):
    """A fullchain with the CA first used to be installed: Asterisk served no TLS for a
    moment, then the files came back with an error that named no cause. Each of preflight's
    certificate checks (and the trunk's TLS name) now refuses it first: exit 2, the check
    named, nothing installed, reloaded, sent or remembered."""
    from helpers import FQDN
    s = site
    before = ((s.keys / "pbx.crt").read_bytes(), (s.keys / "pbx.key").read_bytes(),
              served(s.tls_port), s.amazon_chain(), s.chain_updates())
    state_before = (s.state / "state.json").read_text()
    if case == "ca-first":
        p = make_pki(days=90)
        folder = _lineage_of(tmp_path / case, p.inter.pem() + p.leaf.pem(), p.leaf)
        want = "cert.chain: chain out of order: certificate 1 (CN=Harbor Lab Intermediate CA"
        fix = f"fix: rewrite the file leaf first: 1. CN={FQDN}"
    elif case == "expired":
        p = make_pki(days=-1, start_days=-90)
        folder = lineage(tmp_path / case, p)
        want, fix = "cert.valid: certificate expired on", "fix: renew the certificate"
    elif case == "not-yet-valid":
        p = make_pki(days=90, start_days=3)
        folder = lineage(tmp_path / case, p)
        want, fix = "cert.valid: certificate is not valid until", "check the host clock"
    elif case == "other-name":
        p = make_pki(fqdn="other.harbor-hotel.test", days=90)
        folder = lineage(tmp_path / case, p)
        want = (f"cert.name: the new certificate does not carry {FQDN} (the trunk's TLS "
                "name; it has other.harbor-hotel.test")
        fix = f"-d {FQDN}"
    else:
        from helpers import make_cert
        root = make_cert("Harbor Lab Root CA", ca=True, days=3650)
        inter = make_cert("Harbor Lab Intermediate CA", root, ca=True, days=-1,
                          start_days=-400)
        leaf = make_cert(FQDN, inter, sans=(FQDN,), days=60)
        folder = _lineage_of(tmp_path / case, leaf.pem() + inter.pem(), leaf)
        want, fix = "cert.valid: a chain certificate expired", "renew the certificate"
    r = s.pb("renew-hook", "--lineage", str(folder))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"pbx-bridge: {folder}: refused, nothing was installed or "
                               "changed: "), r.stderr
    assert want in r.stderr and fix in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert ((s.keys / "pbx.crt").read_bytes(), (s.keys / "pbx.key").read_bytes(),
            served(s.tls_port), s.amazon_chain(), s.chain_updates()) == before
    assert (s.state / "state.json").read_text() == state_before  # not a pending renewal


def test_amazon_failing_brings_the_old_files_back(site, tmp_path):
    s = site
    old = (s.keys / "pbx.crt").read_bytes(), (s.keys / "pbx.key").read_bytes()
    old_served = served(s.tls_port)
    trunk = s.srv.emulator.state.trunks.pop(s.trunk)  # Amazon answers 404 for the trunk
    try:
        r = s.pb("renew-hook", "--lineage", str(lineage(tmp_path / "l", make_pki(days=85))))
    finally:
        s.srv.emulator.state.trunks[s.trunk] = trunk
    assert r.returncode == 1 and "Amazon not updated" in r.stderr
    assert "old certificate files were restored" in r.stderr
    assert ((s.keys / "pbx.crt").read_bytes(), (s.keys / "pbx.key").read_bytes()) == old
    deadline = time.monotonic() + 5
    while served(s.tls_port) != old_served and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served(s.tls_port) == old_served  # never left serving nothing


def test_a_transport_asterisk_cannot_reload_needs_restart(site, tmp_path):
    """The config names new files since Asterisk started (and a reload cannot change a
    running TLS transport's paths): the reload leaves the old certificate served."""
    s = site
    s.install(make_pki(days=60), "pbx2.crt", "pbx2.key")
    s.write_pjsip("pbx2.crt", "pbx2.key")
    s.ast.cli("module reload res_pjsip.so")
    fourth = make_pki(days=88)
    live = lineage(tmp_path / "l4", fourth)
    r = s.pb("renew-hook", "--lineage", str(live))
    assert r.returncode == 1 and "restart it" in r.stderr, r.stderr
    assert served(s.tls_port) != fp(fourth)
    assert (s.keys / "pbx2.crt").read_bytes() == (live / "fullchain.pem").read_bytes()
    r = s.pb("renew-hook", "--lineage", str(live), "--restart")
    assert r.returncode == 0, r.stdout + r.stderr
    assert served(s.tls_port) == fp(fourth)
    assert s.amazon_chain()[0].strip() == fourth.leaf.pem().decode().strip()


def test_a_renewal_asterisk_could_not_take_is_remembered_until_installed(site, tmp_path):
    """certbot calls its deploy hook once per renewal: when Asterisk is down then, status
    says a renewal waits, and how to finish it; the rerun installs it and forgets it."""
    s = site
    down = tmp_path / "down.toml"  # the same state dir, an Asterisk CLI that is not there
    down.write_text(s.settings.read_text().replace(
        f'asterisk_cli = "{s.ast.cli_command}"', 'asterisk_cli = "no-such-asterisk"'))
    assert down.read_text() != s.settings.read_text()
    down.chmod(0o600)
    fifth = make_pki(days=70)
    live = lineage(tmp_path / "l5", fifth)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    r = subprocess.run([*PB_CMD, "renew-hook", "--lineage",
                        str(live)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**env, "PBX_BRIDGE_CONFIG": str(down)})
    assert r.returncode == 1 and "the certificate was not installed" in r.stderr, r.stderr
    assert f"run 'pbx-bridge renew-hook --lineage {live}' once Asterisk is up" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = s.pb("status", "--format", "nagios", "--asterisk-dir", str(s.etc))
    assert r.returncode == 1 and f"renew-hook --lineage {live}" in r.stdout, r.stdout
    got = metrics(s.pb("status", "--format", "prometheus").stdout)
    assert m(got, "pbx_bridge_renewal_pending") == 1
    r = s.pb("renew-hook", "--lineage", str(live))
    assert r.returncode == 0, r.stderr
    assert served(s.tls_port) == fp(fifth)
    got = metrics(s.pb("status", "--format", "prometheus").stdout)
    assert m(got, "pbx_bridge_renewal_pending") == 0
    assert "renew-hook --lineage" not in s.pb("status", "--format", "nagios").stdout


def test_rollback_after_renew_hook_puts_the_old_chain_back_at_amazon(site, tmp_path):
    s = site
    old_served = served(s.tls_port)
    old_leaf = s.amazon_chain()[0]
    sixth = make_pki(days=75)
    r = s.pb("renew-hook", "--lineage", str(lineage(tmp_path / "l6", sixth)))
    assert r.returncode == 0, r.stderr
    assert served(s.tls_port) == fp(sixth) and s.amazon_chain()[0] != old_leaf
    before = s.chain_updates()
    r = s.pb("generate", "--rollback")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the restored certificate chain sent to Amazon" in r.stdout
    assert served(s.tls_port) == old_served  # Asterisk serves the old one again
    assert s.amazon_chain()[0].strip() == old_leaf.strip() and s.chain_updates() == before + 1

    # Amazon unreachable for the rollback: exit 1, naming the command that finishes it
    r = s.pb("renew-hook", "--lineage", str(lineage(tmp_path / "l7", make_pki(days=74))))
    assert r.returncode == 0, r.stderr
    trunk = s.srv.emulator.state.trunks.pop(s.trunk)
    try:
        r = s.pb("generate", "--rollback")
    finally:
        s.srv.emulator.state.trunks[s.trunk] = trunk
    assert r.returncode == 1 and "run 'pbx-bridge trunk update'" in r.stderr, r.stderr
    assert served(s.tls_port) == old_served  # the files were rolled back all the same


def test_a_renew_hook_killed_midway_is_remembered(site, tmp_path):
    """Intent first: killed after the first file (certbot will not call it again), the
    renewal is remembered, status names the command, and the rerun finishes it."""
    import signal
    s = site
    live = lineage(tmp_path / "l8", make_pki(days=73))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env.update(PBX_BRIDGE_CONFIG=str(s.settings), PBX_BRIDGE_WRITE_PAUSE="5")
    proc = subprocess.Popen([*PB_CMD, "renew-hook", "--lineage",
                             str(live)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr.readline().startswith("wrote file 1")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stderr.close()
    r = s.pb("status", "--format", "nagios")
    assert f"renew-hook --lineage {live}" in r.stdout and "interrupted" in r.stdout, r.stdout
    r = s.pb("renew-hook", "--lineage", str(live))
    assert r.returncode == 0, r.stderr
    assert "renew-hook --lineage" not in s.pb("status", "--format", "nagios").stdout
