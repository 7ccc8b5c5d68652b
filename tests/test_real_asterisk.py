"""pbx-bridge against a real Asterisk 22.10.1 (the bundle named by PBX_BRIDGE_TEST_ASTERISK):
generate's writes, reloads and checks, the dialplan's reach, AGI and FastAGI, AMI, and the
live TLS check. One instance per layout (plain, FreePBX), booted once for this module.

Everything listens on 127.0.0.1 ports that were free; nothing is sent anywhere else (the
FreePBX tree's carrier address is rewritten to loopback)."""

from __future__ import annotations

import json
import os
import time
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import PB_CMD, TEST_BIN
from helpers import (PUBLIC_IP, ROOT, freepbx_generate_tree,
                     make_cert, make_pki)
from realasterisk import Ami, RealAsterisk, base_files, boot, contexts_run, free_ports, \
    free_udp_range, varsets

pytestmark = pytest.mark.asterisk
PB = list(PB_CMD)
CIDR = "3.239.178.128/25"


def pb(args: list[str], env: dict[str, str], cwd: Path = ROOT, timeout: float = 120
       ) -> subprocess.CompletedProcess:
    return subprocess.run([*PB, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


# ------------------------------------------------------------------ the plain PBX

@dataclass
class Pbx:
    ast: RealAsterisk
    etc: Path
    home: Path
    state: Path
    settings: Path  # CLI door
    settings_ami: Path  # AMI door
    tls_port: int
    keys: Path

    def env(self, ami: bool = False, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
        env["PBX_BRIDGE_CONFIG"] = str(self.settings_ami if ami else self.settings)
        env.update(extra)
        return env

    def generate(self, *args: str, ami: bool = False, port: int | None = None,
                 ca: str | None = None, cert: str = "keys/pbx.crt",
                 key: str = "keys/pbx.key") -> subprocess.CompletedProcess:
        return pb(["generate", "--asterisk-dir", "etc", "--public-ip", PUBLIC_IP,
                   "--bind", "127.0.0.1", "--port", str(port or self.tls_port),
                   "--local-net", "127.0.0.0/8",
                   "--cert", cert, "--key", key,
                   "--ca-list", ca or "keys/ca.crt", *args], self.env(ami), cwd=self.home)


PLAIN_PJSIP = """\
; a small hotel PBX: phones in [internal], a carrier trunk
[transport-udp]
type=transport
protocol=udp
bind=127.0.0.1:{udp}
{phones}
[carrier]
type=endpoint
context=from-pstn
disallow=all
allow=ulaw

[carrier]
type=identify
endpoint=carrier
match=127.0.0.9
"""

PLAIN_EXTENSIONS = """\
[general]
static=yes
writeprotect=no

[internal]
include => pbx-bridge-to-alexa
exten => _2XX,1,NoOp(PHONE ${EXTEN} reached)
 same => n,Answer()
 same => n,Wait(1)
 same => n,Hangup()
exten => _9X.,1,NoOp(OUTBOUND ${EXTEN:1})
 same => n,Dial(PJSIP/${EXTEN:1}@carrier,5)

[from-pstn]
exten => _X.,1,Hangup()
"""


def _write_keys(keys: Path) -> None:
    pki = make_pki("127.0.0.1")
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "pbx.crt").write_bytes(pki.leaf.pem() + pki.inter.pem())
    (keys / "pbx.key").write_bytes(pki.leaf.key_pem())
    (keys / "ca.crt").write_bytes(pki.root.pem())


def _agi_wrapper(agi_bin: Path, state: Path) -> None:
    """What an admin installs as /var/lib/asterisk/agi-bin/pbx-bridge."""
    agi_bin.mkdir(parents=True, exist_ok=True)
    w = agi_bin / "pbx-bridge"
    run = TEST_BIN or f"{sys.executable} -m pbx_bridge"
    w.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} PBX_BRIDGE_STATE_DIR={state} "
                 f"exec {run} \"$@\"\n")
    w.chmod(0o755)


@pytest.fixture(scope="module")
def pbx(tmp_path_factory, request):
    return make_plain_pbx(tmp_path_factory, request)


def make_plain_pbx(tmp_path_factory, request) -> Pbx:
    """A small hotel PBX on a real Asterisk, before generate: phones, a carrier, keys."""
    home = tmp_path_factory.mktemp("plain")
    etc = home / "etc"
    udp, ami_port, tls_port = free_ports(3)
    phones = "".join(f"\n[{n}]\ntype=endpoint\ncontext=internal\ndisallow=all\nallow=ulaw\n"
                     for n in ("201", "202", "7101", "7102"))
    etc.mkdir()
    (etc / "pjsip.conf").write_text(PLAIN_PJSIP.format(udp=udp, phones=phones))
    (etc / "extensions.conf").write_text(PLAIN_EXTENSIONS)
    base_files(etc, ami_port, free_udp_range())
    _write_keys(home / "keys")
    state = home / "state"
    _agi_wrapper(etc / "agi-bin", state)
    ast = boot(etc, ami_port)
    request.addfinalizer(ast.stop)  # also when the set-up below fails
    p = Pbx(ast, etc, home, state, home / "cli.toml", home / "ami.toml", tls_port,
            home / "keys")
    p.settings.write_text(ast.settings_toml(state, etc))
    p.settings_ami.write_text(ast.settings_toml(state, etc, ami=True))
    for s in (p.settings, p.settings_ami):
        s.chmod(0o600)
    return p


@pytest.fixture(scope="module")
def written(pbx):
    """The trunk config written by generate into the running plain PBX."""
    r = pbx.generate("--agi", "process", "--write")
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_missing_ca_list_is_refused_before_writing(pbx):
    """The first defect: a CA list that does not exist makes Asterisk drop the whole TLS
    transport. generate refuses, names the file, and writes nothing."""
    before = {p.name: p.read_bytes() for p in pbx.etc.iterdir() if p.is_file()}
    r = pbx.generate("--write", ca="keys/no-such-ca.crt")
    assert r.returncode == 1
    assert f"the CA list {pbx.home}/keys/no-such-ca.crt does not exist" in r.stderr
    assert {p.name: p.read_bytes() for p in pbx.etc.iterdir() if p.is_file()} == before
    # and what Asterisk itself does with such a transport, to show why
    other = pbx.home / "drop-demo.conf"
    other.write_text(f"[demo-tls]\ntype=transport\nprotocol=tls\nbind=127.0.0.1:"
                     f"{free_ports(1)[0]}\ncert_file={pbx.keys}/pbx.crt\npriv_key_file="
                     f"{pbx.keys}/pbx.key\nca_list_file={pbx.keys}/no-such-ca.crt\n"
                     "method=tlsv1_2\n")
    (pbx.etc / "pjsip.conf").write_text((pbx.etc / "pjsip.conf").read_text() +
                                        f"\n#tryinclude {other}\n")
    try:
        pbx.ast.cli("module reload res_pjsip.so")
        assert "demo-tls" not in pbx.ast.cli("pjsip show transports")
        assert "ca_list_file" in pbx.ast.log() and "is either missing or not readable" in \
            pbx.ast.log()
    finally:
        (pbx.etc / "pjsip.conf").write_bytes(before["pjsip.conf"])
        pbx.ast.cli("module reload res_pjsip.so")


def test_key_that_does_not_match_the_certificate_is_refused(pbx):
    stray = make_cert("stray")
    (pbx.keys / "stray.key").write_bytes(stray.key_pem())
    r = pb(["generate", "--asterisk-dir", "etc", "--public-ip", PUBLIC_IP, "--bind",
            "127.0.0.1", "--port", str(pbx.tls_port), "--cert", "keys/pbx.crt", "--key",
            "keys/stray.key", "--ca-list", "keys/ca.crt", "--write"], pbx.env(), cwd=pbx.home)
    assert r.returncode == 1 and "does not match the certificate" in r.stderr
    assert not (pbx.etc / "pjsip_pbx-bridge.conf").exists()


def test_port_taken_makes_asterisk_drop_the_transport_and_everything_is_restored(pbx):
    """A fault only the real thing shows: the TLS port is taken. Asterisk lists the transport
    as loaded and logs nothing, but cannot listen: only the handshake shows it. generate
    restores every file."""
    before = {p.name: p.read_bytes() for p in pbx.etc.iterdir() if p.is_file()}
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        r = pbx.generate("--write", port=holder.getsockname()[1])
    finally:
        port = holder.getsockname()[1]
        holder.close()
    assert r.returncode == 1, r.stdout
    assert "did not accept the new config" in r.stderr
    assert f"the transport is loaded but TLS 1.2 handshake with 127.0.0.1:{port} failed" \
        in r.stderr
    assert "every file was restored" in r.stderr and "until Asterisk restarts" in r.stderr
    assert {p.name: p.read_bytes() for p in pbx.etc.iterdir() if p.is_file()} == before
    assert "transport-alexa-tls" not in pbx.ast.cli("pjsip show transports")
    # ... but Asterisk keeps the transport's state: re-added with another port, it would come
    # back on this one. So, as the message says, restart.
    pbx.ast.restart()


def test_write_reloads_and_verifies_what_asterisk_loaded(pbx, written):
    out = written.stdout
    rtp = re.search(r"Port start:\s+(\d+)\s+Port end:\s+(\d+)",
                    pbx.ast.cli("rtp show settings")).groups()
    assert "Asterisk reloaded; Asterisk loaded transport transport-alexa-tls " \
           f"(127.0.0.1:{pbx.tls_port}, TLS 1.2, handshake checked), endpoint alexa (sdes, " \
           "identified by ip, 1 Amazon network(s) matched), the dialplan (_7XXX), RTP " \
           f"{rtp[0]}-{rtp[1]}, res_srtp running" in out
    assert re.search(rf"transport-alexa-tls\s+tls.*127\.0\.0\.1:{pbx.tls_port}",
                     pbx.ast.cli("pjsip show transports"))
    shown = pbx.ast.cli("pjsip show endpoint alexa")
    assert re.search(r"media_encryption\s+:\s+sdes", shown) and f"Match: {CIDR}" in shown
    text = (pbx.etc / "pjsip_pbx-bridge.conf").read_text()
    assert f"cert_file={pbx.keys}/pbx.crt" in text  # typed relative, written absolute
    # nothing left to change: a second run writes nothing
    again = pbx.generate("--agi", "process", "--write")
    assert again.returncode == 0 and "nothing to change" in again.stdout


def test_changed_transport_needs_a_restart_and_says_so(pbx, written):
    """A reload does not change a running TLS transport: a new certificate path or a new port
    needs a restart, and generate says so (exit 1) instead of claiming success."""
    pki = make_pki("127.0.0.1", org="Renewed")
    (pbx.keys / "renewed.crt").write_bytes(pki.leaf.pem() + pki.inter.pem())
    (pbx.keys / "renewed.key").write_bytes(pki.leaf.key_pem())
    # 1. a renewed certificate under new file names: Asterisk shows the new cert_file on the
    # object, yet its listener keeps serving the old certificate
    r = pbx.generate("--agi", "process", "--write", cert="keys/renewed.crt",
                     key="keys/renewed.key")
    assert r.returncode == 1, r.stdout
    assert f"it serves another certificate than {pbx.keys}/renewed.crt" in r.stderr
    assert "restart Asterisk" in r.stderr and "not fully reloadable" in r.stderr
    assert f"{pbx.keys}/renewed.crt" in pbx.ast.cli("pjsip show transport transport-alexa-tls")
    # run again before the restart: nothing to write, and still not all well
    again = pbx.generate("--agi", "process", "--write", cert="keys/renewed.crt",
                         key="keys/renewed.key")
    assert again.returncode == 1 and "nothing to change" in again.stdout
    # (the change is written and was never seen running: the rerun reloads and checks again)
    assert "is written, but Asterisk still runs the old transport" in again.stderr
    pbx.ast.restart()
    again = pbx.generate("--agi", "process", "--write", cert="keys/renewed.crt",
                         key="keys/renewed.key")
    assert again.returncode == 0 and "nothing to change" in again.stdout
    assert "Asterisk loaded transport transport-alexa-tls" in again.stdout
    # 2. a new port (and the module's certificate back): the object keeps the old bind
    new_port = free_ports(1)[0]
    r = pbx.generate("--agi", "process", "--write", port=new_port)
    assert r.returncode == 1, r.stdout
    assert f"bind is 127.0.0.1:{pbx.tls_port}, the config says 127.0.0.1:{new_port}" in \
        r.stderr
    assert f"bind=127.0.0.1:{new_port}" in (pbx.etc / "pjsip_pbx-bridge.conf").read_text()
    pbx.ast.restart()
    pbx.ast.wait_for("pjsip show transports", rf"127\.0\.0\.1:{new_port}")
    # 3. back to the module's port, again through a restart
    r = pbx.generate("--agi", "process", "--write")
    assert r.returncode == 1 and "restart" in r.stderr
    pbx.ast.restart()
    pbx.ast.wait_for("pjsip show transports", rf"127\.0\.0\.1:{pbx.tls_port}")


def test_calls_from_alexa_reach_phones_and_nothing_else(pbx, written):
    """The second defect: calls from Alexa went to [default]. Now they reach the phones'
    context, and only a phone there: an outbound number is refused."""
    dial = (pbx.etc / "extensions_pbx-bridge.conf").read_text()
    assert "Goto(internal,${EXTEN},1)" in dial  # the context the phone endpoints use
    ami = Ami(pbx.ast.ami_port)
    try:
        answer, events = ami.originate("Local/201@from-alexa")
        ran = contexts_run(events)
        assert ("internal", "201", "NoOp") in ran, ran
        assert answer.get("Response") == "Success"
        answer, events = ami.originate("Local/9441234567@from-alexa")
        ran = contexts_run(events)
        assert ran and all(ctx == "from-alexa" for ctx, _, _ in ran), ran
        assert ("from-alexa", "9441234567", "Hangup") in ran
        # and that the outbound number is real from the phones' own context
        answer, events = ami.originate("Local/9441234567@internal")
        assert ("internal", "9441234567", "Dial") in contexts_run(events)
    finally:
        ami.close()


def test_phones_context_that_does_not_exist_is_refused(pbx, written):
    r = pbx.generate("--phones-context", "nowhere", "--write")
    assert r.returncode == 1 and "--phones-context nowhere: the dialplan has no such " \
        "context" in r.stderr


@pytest.fixture(scope="module")
def routes(pbx):
    from pbx_bridge.rooms.store import Store
    s = Store(pbx.state)
    s.set_meta(trunk_id="amzn1.comms.network.siptrunk.t1", endpoint="alexa")
    s.record("amzn1.comms.network.siptrunk.t1", "7201", "amzn1.alexa.unit.did.a", "Room 201")
    s.publish()
    s.close()
    return pbx.state


def test_process_agi_routes_mapped_and_unmapped_rooms(pbx, written, routes):
    ami = Ami(pbx.ast.ami_port)
    try:
        _, events = ami.originate("Local/7201@pbx-bridge-to-alexa", settle=3)
        got = varsets(events)
        assert got.get("ALEXA_MAPPED") == "1", contexts_run(events)
        assert got.get("ALEXA_ROOM") == "Room 201" and got.get("ALEXA_DIAL") == \
            "PJSIP/7201@alexa"
        assert any(e.get("Event") == "DialBegin" and "7201@alexa" in e.get("DialString", "")
                   + e.get("DestChannel", "") for e in events) or \
            ("pbx-bridge-to-alexa", "7201", "Dial") in contexts_run(events)
        _, events = ami.originate("Local/7299@pbx-bridge-to-alexa", settle=3)
        got = varsets(events)
        assert got.get("ALEXA_MAPPED") == "0"
        assert ("pbx-bridge-to-alexa", "7299", "Congestion") in contexts_run(events)
    finally:
        ami.close()


def test_fastagi_through_the_generated_dialplan_written_over_ami(pbx, written, routes):
    """generate with the [ami] settings reloads over AMI (the other door), and the
    regenerated dialplan asks the FastAGI server."""
    port = free_ports(1)[0]
    server = subprocess.Popen([*PB, "fastagi", "--listen", f"127.0.0.1:{port}", "--state-dir",
                               str(routes)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening" in server.stderr.readline()
        r = pbx.generate("--agi", f"agi://127.0.0.1:{port}", "--write", ami=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Asterisk reloaded; Asterisk loaded transport" in r.stdout
        assert f"AGI(agi://127.0.0.1:{port}/alexa-route" in pbx.ast.cli(
            "dialplan show pbx-bridge-to-alexa")
        ami = Ami(pbx.ast.ami_port)
        try:
            _, events = ami.originate("Local/7201@pbx-bridge-to-alexa", settle=3)
            assert varsets(events).get("ALEXA_DIAL") == "PJSIP/7201@alexa"
            _, events = ami.originate("Local/7300@pbx-bridge-to-alexa", settle=3)
            assert varsets(events).get("ALEXA_MAPPED") == "0"
        finally:
            ami.close()
    finally:
        server.terminate()
        server.wait(10)
        pbx.generate("--agi", "process", "--write")  # back to the module's dialplan


def test_rooms_import_over_the_real_ami(pbx, hotel, tmp_path):
    srv, _, env = hotel()
    env = dict(env, PBX_BRIDGE_CONFIG=str(pbx.settings_ami))
    r = pb(["rooms", "import", "--from-asterisk", "--ami", "--pattern", "7{room}",
            "--property", "amzn1.ask.unit.hotel"], env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "extension,room,comms_profile_id"
    assert [ln.split(",")[:2] for ln in lines[1:]] == [["7101", "Room 101"],
                                                        ["7102", "Room 102"]]


def test_preflight_live_against_the_real_transport(pbx, written, dns):
    args = ["preflight", "--asterisk-dir", "etc", "--live", "--format", "json",
            "--firewall-rules", str(ROOT / "tests" / "data" / "firewall" / "freepbx.rules"),
            "--dns-server", f"127.0.0.1:{dns.port}", "--public-ip", PUBLIC_IP]

    def live() -> dict[str, dict]:
        r = pb(args, pbx.env(), cwd=pbx.home)
        assert r.returncode in (0, 1), r.stderr
        return {f["id"]: f for f in json.loads(r.stdout)["findings"]}

    found = live()
    assert found["live.tls"]["status"] == "pass", found["live.tls"]
    assert found["live.tls"]["evidence"]["served_certificate"] == "matches cert_file"
    assert found["live.sip"]["status"] == "pass", found["live.sip"]
    # a renewed certificate on disk, not yet loaded: the live check sees the old one served
    old = {n: (pbx.keys / n).read_bytes() for n in ("pbx.crt", "pbx.key")}
    _write_keys(pbx.home / "renewed")
    for n in ("pbx.crt", "pbx.key"):
        shutil.copy(pbx.home / "renewed" / n, pbx.keys / n)
    try:
        found = live()
        assert found["live.tls"]["status"] == "fail"
        assert "serves a different certificate" in found["live.tls"]["summary"]
        # the fix it gives works on the real thing: same file names, so a reload loads it
        assert found["live.tls"]["fix"] == "asterisk -rx 'module reload res_pjsip.so'"
        pbx.ast.cli("module reload res_pjsip.so")
        assert live()["live.tls"]["status"] == "pass"
    finally:
        for n, data in old.items():
            (pbx.keys / n).write_bytes(data)
        pbx.ast.cli("module reload res_pjsip.so")


# ------------------------------------------------------------------ the FreePBX PBX

FREEPBX_EXTENSIONS = """\
; The part of FreePBX's own extensions.conf these tests need: the generated and the
; hand-edit dialplan, and from-internal reaching from-internal-additional (whose includes
; end in outbound-allroutes), as FreePBX's from-internal -> from-internal-xfer ->
; from-internal-noxfer chain does.
#include extensions_additional.conf
#include extensions_custom.conf

[from-internal]
include => from-internal-custom
include => from-internal-additional
"""


def freepbx_config(home: Path) -> tuple[Path, int, int]:
    """The real FreePBX tree made bootable on loopback: (its etc, the AMI port, a free TLS
    port). The carrier's address and FreePBX's UDP transport point at 127.0.0.1."""
    etc = freepbx_generate_tree(home / "etc")
    udp, ami_port, tls_port, dead = free_ports(4)
    for f in etc.glob("*.conf"):
        text = f.read_text(errors="replace")
        new = text.replace("113.164.240.242:5060", f"127.0.0.1:{dead}") \
            .replace("113.164.240.242", "127.0.0.1").replace("bind=0.0.0.0:5060",
                                                            f"bind=127.0.0.1:{udp}")
        if new != text:
            f.write_text(new)
    (etc / "extensions.conf").write_text(FREEPBX_EXTENSIONS)
    # FreePBX creates it empty; the public copy lacks it, and without it Asterisk drops all
    # of extensions_additional.conf, which #includes it (seen on Asterisk 22.10.1)
    (etc / "globals_custom.conf").write_text("")
    (etc / "rtp_additional.conf").write_text("[general]\nrtpstart={}\nrtpend={}\n".format(
        *free_udp_range()))
    base_files(etc, ami_port)
    _write_keys(home / "keys")
    return etc, ami_port, tls_port


@pytest.fixture(scope="module")
def freepbx(tmp_path_factory, request):
    home = tmp_path_factory.mktemp("freepbx")
    etc, ami_port, tls_port = freepbx_config(home)
    ast = boot(etc, ami_port)
    request.addfinalizer(ast.stop)
    settings = home / "cli.toml"
    settings.write_text(ast.settings_toml(home / "state", etc))
    settings.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env["PBX_BRIDGE_CONFIG"] = str(settings)
    r = pb(["generate", "--asterisk-dir", str(etc), "--public-ip", PUBLIC_IP, "--bind",
            "127.0.0.1", "--port", str(tls_port), "--local-net", "127.0.0.0/8",
            "--cert", str(home / "keys" / "pbx.crt"), "--key", str(home / "keys" / "pbx.key"),
            "--ca-list", str(home / "keys" / "ca.crt"), "--write"], env)
    return ast, etc, r, tls_port


def test_freepbx_write_reloads_and_verifies(freepbx):
    ast, etc, r, tls_port = freepbx
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Asterisk loaded transport transport-alexa-tls" in r.stdout
    assert "wrote " + str(etc / "pjsip.transports_custom.conf") in r.stdout
    assert "context=from-alexa" in (etc / "pjsip.endpoint_custom.conf").read_text()
    shown = ast.cli("pjsip show endpoints")
    for phone in ("100", "101", "alexa"):
        assert re.search(rf"Endpoint:\s+{phone}\b", shown), shown


def test_freepbx_calls_from_alexa_reach_extensions_but_no_outbound_route(freepbx):
    """The toll-fraud defect: from-internal reaches FreePBX's outbound routes. The trunk's
    context reaches extensions, ring groups and queues only."""
    ast, etc, r, _ = freepbx
    assert r.returncode == 0
    outbound = "00441234567"
    # the danger: what from-internal includes reaches an outbound route (this FreePBX's own
    # from-internal-custom catches _X. first, so look one step down the chain)
    assert "outrt-1" in ast.cli(f"dialplan show {outbound}@from-internal-additional")
    # from-alexa checks the call came over TLS, then goes on only to what from-alexa-reach has
    assert f"There is no existence of {outbound}@from-alexa-reach" in \
        ast.cli(f"dialplan show {outbound}@from-alexa-reach")
    for reachable, ctx in (("101", "ext-local"), ("19002811", "ext-queues")):
        assert f"'{reachable}' =>" in ast.cli(f"dialplan show {reachable}@from-alexa-reach")
    ami = Ami(ast.ami_port)
    try:
        _, events = ami.originate("Local/101@from-alexa")
        assert ("ext-local", "101") in [(c, e) for c, e, _ in contexts_run(events)]
        answer, events = ami.originate(f"Local/{outbound}@from-alexa")
        assert answer.get("Response") == "Failure"
        ran = contexts_run(events)
        assert ("from-alexa", outbound, "Hangup") in ran, ran
        assert not any(c.startswith("outrt") for c, _, _ in ran)
        # (from from-internal-additional the same number enters outrt-1, whose first step is
        # FreePBX's Macro, gone from Asterisk 22: `dialplan show` above is the proof)
    finally:
        ami.close()


def test_freepbx_test_call_from_alexa_follows_the_tls_check_to_the_reach_context(freepbx):
    """test-call --from-alexa reads FreePBX's from-alexa: past the TLS check, into
    from-alexa-reach and the FreePBX context that has the extension."""
    ast, etc, r, _ = freepbx
    assert r.returncode == 0
    settings = etc.parent / "ami.toml"
    settings.write_text(ast.settings_toml(etc.parent / "state", etc, ami=True))
    settings.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env["PBX_BRIDGE_CONFIG"] = str(settings)
    for to, code, words in (
            ("101", 0, "[from-alexa] -> [from-alexa-reach] -> [ext-findmefollow] 101"),
            ("00441234567", 1, "[from-alexa-reach] has no extension 00441234567")):
        got = pb(["test-call", "--from-alexa", "--to", to, "--format", "json"], env)
        doc = json.loads(got.stdout)
        reach = next(f for f in doc["findings"] if f["id"] == "dialplan.reach")
        assert got.returncode == code and words in reach["summary"], reach


def test_process_agi_as_nobody_reads_the_state_dir_the_dialplan_names(pbx, written):
    """Asterisk runs the process AGI as its own user, who cannot read the 0600 root settings
    file: the generated dialplan passes the state dir (here not the default), and the room
    is routed. An AGI call without it says why it found nothing, on Asterisk's console."""
    import shutil
    import tempfile

    from helpers import publish_routes
    from pbx_bridge.rooms.routes import unreadable_by
    py = "/usr/bin/python3"
    if os.geteuid() != 0 or not shutil.which("runuser") or not os.path.exists(py):
        pytest.skip("needs root, runuser and Debian's /usr/bin/python3 to run the AGI as "
                    "nobody (.ci/run has them)")
    why = unreadable_by(ROOT / "pbx_bridge" / "__init__.py", "nobody")
    if why:
        pytest.skip(f"nobody cannot read this checkout: {why}")
    state = Path(tempfile.mkdtemp(prefix="pbx-bridge-agi-state-"))  # not under pytest's 0700
    state.chmod(0o711)
    settings = pbx.home / "nobody.toml"
    settings.write_text(pbx.ast.settings_toml(state, pbx.etc))
    settings.chmod(0o600)
    wrapper = pbx.etc / "agi-bin" / "pbx-bridge"
    before_wrapper = wrapper.read_text()
    ext = pbx.etc / "extensions.conf"
    before_ext = ext.read_text()
    try:
        publish_routes(state, {"7201": "Room 201"})
        # what an admin installs, on Debian's Python, run as Asterisk's (here: nobody) user,
        # whose default settings file it cannot read
        run = TEST_BIN or f"env PYTHONPATH={ROOT} {py} -m pbx_bridge"
        wrapper.write_text(f"#!/bin/sh\nexec runuser -u nobody -- env "
                           f"PBX_BRIDGE_CONFIG={settings} {run} \"$@\"\n")
        r = pb(["generate", "--asterisk-dir", "etc", "--public-ip", PUBLIC_IP, "--bind",
                "127.0.0.1", "--port", str(pbx.tls_port), "--local-net", "127.0.0.0/8",
                "--cert", "keys/pbx.crt", "--key", "keys/pbx.key", "--ca-list", "keys/ca.crt",
                "--agi", "process", "--write"],
               {**pbx.env(), "PBX_BRIDGE_CONFIG": str(settings)}, cwd=pbx.home)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"AGI(pbx-bridge,agi,--state-dir={state},alexa-route," in \
            (pbx.etc / "extensions_pbx-bridge.conf").read_text()
        ext.write_text(before_ext + "\n[agi-no-state]\nexten => _7XXX,1,AGI(pbx-bridge,agi,"
                       "alexa-route,${EXTEN})\n")
        pbx.ast.cli("dialplan reload")
        ami = Ami(pbx.ast.ami_port)
        try:
            _, events = ami.originate("Local/7201@pbx-bridge-to-alexa", settle=3)
            got = varsets(events)
            assert got.get("ALEXA_MAPPED") == "1" and got.get("ALEXA_ROOM") == "Room 201", \
                (got, pbx.ast.log()[-1500:])
            _, events = ami.originate("Local/7201@agi-no-state", settle=3)
            assert varsets(events).get("ALEXA_MAPPED") == "0"
        finally:
            ami.close()
        deadline = time.monotonic() + 5
        while f"{settings} is not readable by uid 65534" not in pbx.ast.log() and \
                time.monotonic() < deadline:
            time.sleep(0.2)  # Asterisk's logger writes on its own thread
        assert "pbx-bridge agi: no routes published at /var/lib/pbx-bridge/routes.json" in \
            pbx.ast.log()
    finally:
        wrapper.write_text(before_wrapper)
        ext.write_text(before_ext)
        shutil.rmtree(state, ignore_errors=True)
        pbx.generate("--agi", "process", "--write")  # the module's dialplan again


def _freepbx_generate(ast, etc: Path, tls_port: int, *extra: str) -> subprocess.CompletedProcess:
    home = etc.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env["PBX_BRIDGE_CONFIG"] = str(home / "cli.toml")
    return pb(["generate", "--asterisk-dir", str(etc), "--public-ip", PUBLIC_IP, "--bind",
               "127.0.0.1", "--port", str(tls_port), "--local-net", "127.0.0.0/8",
               "--cert", str(home / "keys" / "pbx.crt"), "--key", str(home / "keys" / "pbx.key"),
               "--ca-list", str(home / "keys" / "ca.crt"), *extra], env)


def _ami_env(ast, etc: Path) -> dict[str, str]:
    settings = etc.parent / "ami.toml"
    settings.write_text(ast.settings_toml(etc.parent / "state", etc, ami=True))
    settings.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env["PBX_BRIDGE_CONFIG"] = str(settings)
    return env


def test_rtp_range_asterisk_uses_is_the_first_definition(freepbx):
    """FreePBX's rtp_additional.conf comes first: its range is the one Asterisk uses, a
    range in rtp_custom.conf (even as [general](+)) is never used. Preflight says so, and
    generate refuses to write another range where it would not count."""
    ast, etc, r, tls_port = freepbx
    running = re.search(r"Port start:\s+(\d+)\s+Port end:\s+(\d+)",
                        ast.cli("rtp show settings")).groups()
    additional = re.findall(r"rtp(?:start|end)=(\d+)", (etc / "rtp_additional.conf").read_text())
    assert list(running) == additional
    env = _ami_env(ast, etc)
    doc = json.loads(pb(["preflight", "--asterisk-dir", str(etc), "--public-ip", PUBLIC_IP,
                         "--format", "json"], env).stdout)
    f = next(f for f in doc["findings"] if f["id"] == "rtp.range")
    assert f["summary"].startswith(f"RTP ports {running[0]}-{running[1]}")
    assert f["where"] == f"{etc}/rtp_additional.conf:2"
    before = {p.name: p.read_bytes() for p in etc.iterdir() if p.is_file()}
    r = _freepbx_generate(ast, etc, tls_port, "--rtp-range", "16000-16999", "--write")
    assert r.returncode == 1 and f"{etc}/rtp_additional.conf:2 sets" in r.stderr, r.stderr
    assert "RTP Port Ranges" in r.stderr
    assert {p.name: p.read_bytes() for p in etc.iterdir() if p.is_file()} == before
    # status asks the running Asterisk: a range changed on disk but not loaded is named
    additional = etc / "rtp_additional.conf"
    was = additional.read_text()
    try:
        additional.write_text("[general]\nrtpstart=16000\nrtpend=16999\n")
        doc = json.loads(pb(["status", "--format", "json", "--asterisk-dir", str(etc)],
                            env).stdout)
        assert doc["checks"]["rtp.range"] == "warn", doc["checks"]
    finally:
        additional.write_text(was)
    # and what Asterisk does with a later [general](+), to show why
    custom = etc / "rtp_custom.conf"
    old = custom.read_text()
    try:
        custom.write_text(old + "\n[general](+)\nrtpstart=16000\nrtpend=16999\n")
        ast.cli("module reload res_rtp_asterisk.so")
        assert re.search(r"Port start:\s+(\d+)", ast.cli("rtp show settings")).group(1) == \
            running[0]
    finally:
        custom.write_text(old)
        ast.cli("module reload res_rtp_asterisk.so")


def test_freepbx_phones_reach_rooms_past_a_pattern_of_from_internal_custom(freepbx):
    """This FreePBX's from-internal-custom has its own _X. (to Stasis): an include of the
    room route would never be reached. The generated _7XXX there wins over it."""
    ast, etc, r, _ = freepbx
    assert r.returncode == 0
    assert "exten => _X.,1,NoOp()" in (etc / "extensions_custom.conf").read_text()
    ami = Ami(ast.ami_port)
    try:
        _, events = ami.originate("Local/7201@from-internal", settle=2)
    finally:
        ami.close()
    ran = contexts_run(events)
    assert ("pbx-bridge-to-alexa", "7201", "NoOp") in ran, ran
    assert not [x for x in ran if x[2] == "Stasis"], ran
    got = pb(["test-call", "--to", "7201", "--from-context", "from-internal", "--timeout", "3",
              "--format", "json"], _ami_env(ast, etc))
    doc = json.loads(got.stdout)
    route = next(f for f in doc["findings"] if f["id"] == "dialplan.route")
    assert route["status"] == "pass", route
    # a from-internal-custom line that takes room numbers first: generate names it
    custom = etc / "extensions_custom.conf"
    old = custom.read_text()
    try:
        custom.write_text(old.replace("[from-internal-custom]\n", "[from-internal-custom]\n"
                                      "exten => _72XX,1,Stasis(hello-world)\n", 1))
        r2 = _freepbx_generate(ast, etc, freepbx[3])
        assert r2.returncode == 1 and "has 'exten => _72XX'" in r2.stderr, r2.stderr
        ast.cli("dialplan reload")
        got = pb(["test-call", "--to", "7201", "--from-context", "from-internal",
                  "--timeout", "3", "--format", "json"], _ami_env(ast, etc))
        route = next(f for f in json.loads(got.stdout)["findings"]
                     if f["id"] == "dialplan.route")
        assert got.returncode == 1 and route["status"] == "fail" and \
            "never reached [pbx-bridge-to-alexa]" in route["summary"], route
    finally:
        custom.write_text(old)
        ast.cli("dialplan reload")


def test_freepbx_from_alexa_reaches_no_feature_code_and_names_the_caller(freepbx):
    ast, etc, r, tls_port = freepbx
    ami = Ami(ast.ami_port)
    try:
        for code in ("*2130", "FM5551234", "2130*"):
            answer, events = ami.originate(f"Local/{code}@from-alexa")
            ran = contexts_run(events)
            assert answer.get("Response") == "Failure", (code, ran)
            assert not [x for x in ran if x[0] in ("app-fmf-toggle", "followme-check")], ran
        # the caller's name from the AGI; a FastAGI server that is down does not stop the
        # call (TryExec): it reaches the extension all the same
        dead = free_ports(1)[0]
        g = _freepbx_generate(ast, etc, tls_port, "--agi", f"agi://127.0.0.1:{dead}",
                              "--write")
        assert g.returncode == 0, g.stdout + g.stderr
        assert f"TryExec(AGI(agi://127.0.0.1:{dead}/alexa-caller))" in \
            ast.cli("dialplan show from-alexa")
        _, events = ami.originate("Local/101@from-alexa")
        assert ("ext-local", "101") in [(c, e) for c, e, _ in contexts_run(events)]
    finally:
        ami.close()
        assert _freepbx_generate(ast, etc, tls_port, "--write").returncode == 0


def test_test_call_says_when_the_agi_did_not_route_the_room(pbx, written, routes):
    """The AGI leaves ALEXA_MAPPED 0 (a room not in the routes): the call ends in the
    route's Congestion() and never reaches the trunk, so test-call says that, not a fault of
    Amazon's or the network's."""
    r = pb(["test-call", "--to", "7299", "--timeout", "5", "--format", "json"],
           pbx.env(ami=True), cwd=pbx.home)
    doc = json.loads(r.stdout)
    ids = [f["id"] for f in doc["findings"]]
    route = next(f for f in doc["findings"] if f["id"] == "call.route")
    assert r.returncode == 1 and route["status"] == "fail", doc["findings"]
    assert "ALEXA_MAPPED 0" in route["summary"] and "call.connect" not in ids
