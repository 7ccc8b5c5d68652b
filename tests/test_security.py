"""Only Amazon gets in: the config `generate --write` produced, on a real Asterisk 22, probed
as an attacker would (a SIP client on 127.0.0.66, outside the identify's 127.0.0.2/32) and as
Amazon would (a client on 127.0.0.2), over TLS and over the PBX's UDP transport; and its TLS
as an auditor would (a handshake offering only CBC suites). The PBX and Amazon's side are the
pair of real Asterisks of the test-call tests; everything stays on 127.0.0.0/8."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import time

import pytest

import sipclient
from realasterisk import Ami, contexts_run
from test_test_call import PB, make_pair

pytestmark = pytest.mark.asterisk



@pytest.fixture(scope="module")
def pair(tmp_path_factory, request):
    return make_pair(tmp_path_factory, request)


OUTSIDE = "127.0.0.66"  # not in the identify's match (127.0.0.2/32)
AMAZON = "127.0.0.2"


def udp_port(p) -> int:
    text = (p.pbx.confdir / "pjsip.conf").read_text()
    return int(re.search(r"\[transport-udp\][^\[]*?bind=127\.0\.0\.1:(\d+)", text).group(1))


def watch(p):
    """An AMI session collecting the PBX's events (Newexten: which contexts ran)."""
    return Ami(p.pbx.ami_port)


def drain(ami: Ami, seconds: float) -> list[dict[str, str]]:
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        m = ami.msg(0.2)
        if m:
            seen.append(m)
    return seen


def test_from_user_alexa_from_outside_is_refused_on_tls_and_udp(pair):
    tls, udp = ("127.0.0.1", pair.pbx_tls), ("127.0.0.1", udp_port(pair))
    ami = watch(pair)
    try:
        for dest, proto in ((tls, "TLS"), (udp, "UDP")):
            assert sipclient.send("OPTIONS", dest, proto, OUTSIDE) in (401, 403), proto
            code = sipclient.send("INVITE", dest, proto, OUTSIDE,
                                  pai='"Room 201" <sip:201@127.0.0.66>')
            assert code in (401, 403), (proto, code)
        ran = contexts_run(drain(ami, 1.0))
        assert not [r for r in ran if r[0] in ("from-alexa", "internal")], ran
    finally:
        ami.close()


def test_without_identify_by_ip_the_attacker_was_the_trunk(pair):
    """The hole the generated identify_by=ip closes, shown on the same Asterisk: with
    Asterisk's default (username,ip) the outside From user 'alexa' is answered as the trunk."""
    ours = pair.pbx.confdir / "pjsip_pbx-bridge.conf"
    before = ours.read_text()
    assert "identify_by=ip\n" in before
    ours.write_text(before.replace("identify_by=ip\n", ""))
    try:
        pair.pbx.cli("module reload res_pjsip.so")
        pair.pbx.wait_for("pjsip show endpoint alexa", r"identify_by\s+:\s+username,ip")
        assert sipclient.send("OPTIONS", ("127.0.0.1", pair.pbx_tls), "TLS", OUTSIDE) == 200
    finally:
        ours.write_text(before)
        pair.pbx.cli("module reload res_pjsip.so")
        pair.pbx.wait_for("pjsip show endpoint alexa", r"identify_by\s+:\s+ip\b")
    assert sipclient.send("OPTIONS", ("127.0.0.1", pair.pbx_tls), "TLS", OUTSIDE) == 401


def test_amazon_over_udp_is_refused_in_from_alexa(pair):
    """From the identify's own address, the trunk is reached, but not over UDP: the SRTP keys
    would be in clear SDP, and Amazon never calls that way."""
    ami = watch(pair)
    try:
        code = sipclient.send("INVITE", ("127.0.0.1", udp_port(pair)), "UDP", AMAZON)
        ran = contexts_run(drain(ami, 1.0))
    finally:
        ami.close()
    assert code == 403, code  # Hangup(21): call rejected
    assert ("from-alexa", "201", "Log") in ran and ("from-alexa", "201", "Hangup") in ran
    assert not [r for r in ran if r[0] == "internal"], ran  # the phone never rang
    # and over TLS, from the same address, the call goes on to the phone
    ami = watch(pair)
    try:
        code = sipclient.send("INVITE", ("127.0.0.1", pair.pbx_tls), "TLS", AMAZON,
                              timeout=4)
        ran = contexts_run(drain(ami, 1.0))
    finally:
        ami.close()
        pair.pbx.cli("channel request hangup all")
    assert ("internal", "201", "NoOp") in ran, ran


def test_only_aead_suites_are_served(pair):
    from pbx_bridge.net import Network, weak_cipher_probe
    weak = weak_cipher_probe("127.0.0.1", pair.pbx_tls)
    assert weak.accepted is None and weak.error is None  # refused, not unreachable
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    import socket
    for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"):
        ctx.set_ciphers(suite)
        with socket.create_connection(("127.0.0.1", pair.pbx_tls), timeout=5) as raw:
            with ctx.wrap_socket(raw) as t:
                assert t.cipher()[0] == suite
    assert Network().tls_sip_probe("127.0.0.1", pair.pbx_tls).connected


def test_preflight_live_passes_the_security_checks_on_the_generated_config(pair):
    r = subprocess.run([*PB, "preflight", "--asterisk-dir", "etc", "--amazon-cidr",
                        f"{AMAZON}/32", "--public-ip", "54.240.196.10", "--live",
                        "--format", "json"], capture_output=True, text=True, cwd=pair.home,
                       env=pair.env(), timeout=120)
    doc = json.loads(r.stdout)
    got = {f["id"]: f for f in doc["findings"]}
    for id_ in ("security.identify", "security.transport", "tls.ciphers"):
        assert got[id_]["status"] == "pass", got[id_]
    assert "refuses a handshake offering only CBC suites" in got["tls.ciphers"]["summary"]
