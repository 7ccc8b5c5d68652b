"""Each preflight check id: a host that makes it pass and one that makes it fail.

Hosts are real config trees with certificates made here, DNS answered by a loopback server,
and rulesets recorded from the real iptables/nft.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from helpers import PB_CMD
from helpers import (AMAZON, DATA, FQDN, PUBLIC_IP, Host, SipTlsServer, add_freepbx_trunk,
                     free_port, freepbx_tree, host_runner, make_cert, make_host, make_pki)
from pbx_bridge.net import Network
from pbx_bridge.findings import Finding, Status
from pbx_bridge.preflight.checks import overall_ok, run_checks
from pbx_bridge.preflight.snapshot import Options, gather

FW = DATA / "firewall"


def preflight(host: Host | Path, dns=None, rules: str | None = "amazon-open.rules",
              public_host: bool = True, **opts) -> dict[str, Finding]:
    root = host.root if isinstance(host, Host) else host
    options = Options(asterisk_dir=root,
                      firewall_rules=FW / rules if rules else None,
                      dns_server=("127.0.0.1", dns.port) if dns else None, **opts)
    runner = host_runner(public_host)
    net = Network(options.dns_server, timeout=2.0, runner=runner)
    findings = run_checks(gather(options, runner=runner, net=net))
    return {f.id: f for f in findings}


@pytest.fixture
def host(tmp_path):
    return make_host(tmp_path / "etc-asterisk")


def test_good_host_passes_everything(host, dns):
    res = preflight(host, dns)
    assert {k: v.status for k, v in res.items()} == {k: Status.PASS for k in res}, \
        {k: v.summary for k, v in res.items() if v.status != Status.PASS}
    assert len(res) == 19  # live.* only with live=True
    assert overall_ok(list(res.values()))
    assert FQDN in dns.resolver.queries


# ------------------------------------------------------------ asterisk.config

def test_config_missing_include_fails_with_location(host, dns):
    host.edit("pjsip.conf", "[global]", "#include pjsip_custom.conf\n[global]")
    f = preflight(host, dns)["asterisk.config"]
    assert f.status == Status.FAIL
    assert f.where == f"{host.root}/pjsip.conf:1"
    assert "does not exist" in f.summary and "#tryinclude" in f.fix


def test_config_exec_is_a_warning(host, dns):
    host.edit("pjsip.conf", "[global]", "#exec /usr/local/bin/make-peers\n[global]")
    f = preflight(host, dns)["asterisk.config"]
    assert f.status == Status.WARN and "#exec" in f.summary


def test_config_text_output_lists_every_problem_with_its_line(host, dns):
    """"2 config error(s) ... fix each listed problem" used to show only the first; the other
    include, the #exec warning and the ignored line were only in --format json."""
    from pbx_bridge.preflight.render import render_text
    host.edit("pjsip.conf", "[global]", "#include missing_one.conf\n#include missing_two.conf\n"
              "#exec /usr/local/bin/make-peers\nthis is not a setting\n[global]")
    res = preflight(host, dns)
    text = render_text(list(res.values()), colour=False)
    pj = f"{host.root}/pjsip.conf"
    for n, words in ((1, "missing_one.conf was listed as a #include"),
                     (2, "missing_two.conf was listed as a #include"),
                     (3, "#exec /usr/local/bin/make-peers is not run"),
                     (4, "ignored: 'this is not a setting'")):
        assert any(f"{pj}:{n}: " in line and words in line for line in text.splitlines()), \
            (n, text)
    assert "more: --format json" not in text


def test_config_text_output_lists_ten_then_says_how_many_more(host, dns):
    from pbx_bridge.preflight.render import render_text
    host.edit("pjsip.conf", "[global]", "".join(f"not a setting {i}\n" for i in range(14)) +
              "[global]")
    text = render_text(list(preflight(host, dns).values()), colour=False)
    listed = [ln for ln in text.splitlines() if f"{host.root}/pjsip.conf:" in ln]
    assert len(listed) == 10 and f"{host.root}/pjsip.conf:10: " in listed[-1]
    assert "and 4 more: --format json lists them all" in text


def test_config_no_pjsip_conf_fails(tmp_path, dns):
    (tmp_path / "empty").mkdir()
    f = preflight(tmp_path / "empty", dns)["asterisk.config"]
    assert f.status == Status.FAIL and "pjsip.conf not found" in f.summary


# ------------------------------------------------------------ tls.*

def test_tls_transport_missing(host, dns):
    host.edit("pjsip.conf", "protocol=tls", "protocol=tcp")
    res = preflight(host, dns)
    assert res["tls.transport"].status == Status.FAIL
    assert "[transport-tls]" in res["tls.transport"].fix
    assert "protocol=tls" in res["tls.transport"].fix
    for dep in ("tls.version", "tls.port", "cert.valid", "amazon.ca"):
        assert res[dep].status == Status.SKIP


def test_tls_transport_unreadable_key(host, dns):
    (host.root / "keys" / "pbx.key").unlink()
    f = preflight(host, dns)["tls.transport"]
    assert f.status == Status.FAIL and "pbx.key" in f.summary
    assert f.where == f"{host.root}/pjsip.conf:15"


@pytest.mark.parametrize("method,status", [
    ("tlsv1_2", Status.PASS), ("sslv23", Status.PASS), ("tlsv1", Status.FAIL),
    ("tlsv1_3", Status.FAIL), ("tls9", Status.FAIL),
])
def test_tls_version(host, dns, method, status):
    host.edit("pjsip.conf", "method=tlsv1_2", f"method={method}")
    f = preflight(host, dns)["tls.version"]
    assert f.status == status
    if status == Status.FAIL:
        assert f.where == f"{host.root}/pjsip.conf:17"
        assert "method=tlsv1_2" in f.fix


def test_tls_version_unset_negotiates_12(host, dns):
    host.edit("pjsip.conf", "method=tlsv1_2\n", "")
    f = preflight(host, dns)["tls.version"]
    assert f.status == Status.PASS and "default" in f.summary


def test_tls_port_shared_with_tcp_transport(host, dns):
    host.edit("pjsip.conf", "[transport-tls]",
              "[transport-tcp]\ntype=transport\nprotocol=tcp\nbind=0.0.0.0:5061\n\n[transport-tls]")
    f = preflight(host, dns)["tls.port"]
    assert f.status == Status.FAIL and "transport-tcp" in f.summary
    assert f.where == f"{host.root}/pjsip.conf:10"
    assert "bind=0.0.0.0:5062" in f.fix


def test_tls_port_udp_on_same_number_is_fine(host, dns):
    host.edit("pjsip.conf", "bind=0.0.0.0:5060", "bind=0.0.0.0:5061")
    assert preflight(host, dns)["tls.port"].status == Status.PASS


# ------------------------------------------------------------ cert.*

def test_cert_expired(tmp_path, dns):
    h = make_host(tmp_path / "e", make_pki(days=-1, start_days=-30))
    f = preflight(h, dns)["cert.valid"]
    assert f.status == Status.FAIL and "expired" in f.summary
    assert f.where == f"{h.root}/pjsip.conf:14"


def test_cert_expiring_soon_warns(tmp_path, dns):
    h = make_host(tmp_path / "s", make_pki(days=10))
    f = preflight(h, dns)["cert.valid"]
    assert f.status == Status.WARN and "expires in" in f.summary


def test_cert_not_yet_valid(tmp_path, dns):
    h = make_host(tmp_path / "f", make_pki(days=60, start_days=5))
    assert preflight(h, dns)["cert.valid"].status == Status.FAIL


def test_cert_garbage_file(host, dns):
    host.write("keys/pbx.crt", "-----BEGIN CERTIFICATE-----\nnot base64!\n"
               "-----END CERTIFICATE-----\n")
    res = preflight(host, dns)
    assert res["cert.valid"].status == Status.FAIL
    assert res["cert.key"].status == Status.SKIP and res["cert.chain"].status == Status.SKIP


def test_cert_wrong_key(host, dns):
    host.write("keys/pbx.key", make_cert("other").key_pem())
    f = preflight(host, dns)["cert.key"]
    assert f.status == Status.FAIL and "does not belong" in f.summary
    assert "openssl" in f.fix


def test_cert_chain_out_of_order_names_the_right_order(host, dns):
    host.write("keys/pbx.crt", host.pki.inter.pem() + host.pki.leaf.pem())
    res = preflight(host, dns)
    f = res["cert.chain"]
    assert f.status == Status.FAIL and "out of order" in f.summary
    assert f.evidence["correct_order"][0] == f"CN={FQDN},O=Harbor Lab"
    assert f.fix.startswith(f"rewrite the file leaf first: 1. CN={FQDN}")


def test_cert_chain_that_is_no_chain(host, dns):
    stranger = make_cert("Stranger CA", ca=True)
    host.write("keys/pbx.crt", host.pki.leaf.pem() + stranger.pem())
    f = preflight(host, dns)["cert.chain"]
    assert f.status == Status.FAIL and "no order" in f.summary


def test_cert_dns_wrong_name(tmp_path, dns):
    h = make_host(tmp_path / "w", make_pki(fqdn="elsewhere.harbor-hotel.test"))
    f = preflight(h, dns)["cert.dns"]
    assert f.status == Status.FAIL and "52.95.110.1" in f.summary
    assert f.fix.startswith(f"publish an A record: elsewhere.harbor-hotel.test. IN A {PUBLIC_IP}")


def test_cert_dns_nxdomain(tmp_path, dns):
    h = make_host(tmp_path / "n", make_pki(fqdn="nowhere.harbor-hotel.test"))
    f = preflight(h, dns)["cert.dns"]
    assert f.status == Status.FAIL and "NXDOMAIN" in f.summary


def test_cert_dns_with_fqdn_option(tmp_path, dns):
    h = make_host(tmp_path / "q", make_pki(fqdn="elsewhere.harbor-hotel.test"))
    dns.resolver.records["elsewhere.harbor-hotel.test"] = [PUBLIC_IP]
    assert preflight(h, dns, fqdn="elsewhere.harbor-hotel.test")["cert.dns"].status == \
        Status.PASS


def test_cert_dns_server_that_does_not_answer_skips(host):
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))  # bound, never answers
    try:
        class Silent:
            port = s.getsockname()[1]
        f = preflight(host, Silent)["cert.dns"]
    finally:
        s.close()
    assert f.status == Status.SKIP and "timed out" in f.summary


@pytest.mark.parametrize("rcode", ["REFUSED", "SERVFAIL"])
def test_cert_dns_resolver_that_refuses_is_could_not_run(host, rcode):
    """A resolver that answers but will not look the name up knows nothing of the record."""
    from dnslib import RCODE
    from dnslib.server import DNSLogger, DNSServer

    class Refuse:
        def resolve(self, request, handler):
            reply = request.reply()
            reply.header.rcode = getattr(RCODE, rcode)
            return reply
    server = DNSServer(Refuse(), address="127.0.0.1", port=0,
                       logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data",
                                        prefix=False))
    server.start_thread()
    try:
        class At:
            port = server.server.server_address[1]
        f = preflight(host, At)["cert.dns"]
    finally:
        server.stop()
        server.server.server_close()
    assert f.status == Status.SKIP and f.summary.startswith("DNS could not be asked: "), f
    assert rcode in f.summary and not f.fix


def test_cert_dns_resolver_the_kernel_cannot_reach_is_could_not_run(tmp_path):
    """[Errno 101] Network is unreachable used to be a FAIL whose fix was "publish an A
    record". In a network namespace of our own (loopback down), 127.0.0.1:53 and 10.9.9.9
    are unreachable; the preflight says "not verified", never "publish"."""
    import json
    import os
    import shutil
    import subprocess
    from helpers import ROOT
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare (util-linux) for a network namespace")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr!r}")
    h = make_host(tmp_path / "etc")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env["PBX_BRIDGE_STATE_DIR"] = str(tmp_path / "state")
    for server in ("127.0.0.1:53", "10.9.9.9:53"):
        base = [*PB_CMD, "preflight", "--asterisk-dir", str(h.etc),
                "--firewall-rules", str(FW / "amazon-open.rules"), "--public-ip", PUBLIC_IP,
                "--dns-server", server]
        r = subprocess.run(["unshare", "-n", *base, "--format", "json"], capture_output=True,
                           text=True, cwd=ROOT, env=env, timeout=60)
        doc = json.loads(r.stdout)
        f = next(x for x in doc["findings"] if x["id"] == "cert.dns")
        assert f["status"] == "skip", f
        assert "Network is unreachable" in f["summary"] and not f["fix"], f
        assert r.returncode == 1 and doc["verdict"].startswith("not verified"), doc["verdict"]
        t = subprocess.run(["unshare", "-n", *base], capture_output=True, text=True, cwd=ROOT,
                           env=env, timeout=60)
        assert t.returncode == 1 and "publish an A record" not in t.stdout, t.stdout
        assert t.stdout.splitlines()[-1].startswith("not verified: 1 check could not run "
                                                    "(cert.dns)"), t.stdout


# ------------------------------------------------------------ ip.public

def test_ip_public_private_address_fails(tmp_path, dns):
    h = make_host(tmp_path / "p", ip="10.1.2.3")
    f = preflight(h, dns)["ip.public"]
    assert f.status == Status.FAIL and "not a public address" in f.summary
    assert f.where == f"{h.root}/pjsip.conf:19"


def test_ip_public_option_differs_from_advertised(host, dns):
    f = preflight(host, dns, public_ip="52.95.110.1")["ip.public"]
    assert f.status == Status.FAIL
    assert f"external_signaling_address={PUBLIC_IP}" in f.summary
    assert "external_signaling_address=52.95.110.1" in f.fix


def test_ip_public_nat_without_external_address(host, dns):
    host.edit("pjsip.conf", f"external_signaling_address={PUBLIC_IP}\n", "")
    host.edit("pjsip.conf", f"external_media_address={PUBLIC_IP}\n", "")
    f = preflight(host, dns, public_ip=PUBLIC_IP, public_host=False)["ip.public"]
    assert f.status == Status.FAIL and "NAT" in f.summary
    # on a host that owns the address, the same config is fine
    g = preflight(host, dns, public_host=True)["ip.public"]
    assert g.status == Status.PASS and g.evidence["source"] == "this host's interface address"


def test_ip_unknown_skips(host, dns):
    host.edit("pjsip.conf", f"external_signaling_address={PUBLIC_IP}\n", "")
    res = preflight(host, dns, public_host=False)
    assert res["ip.public"].status == Status.SKIP and "--public-ip" in res["ip.public"].summary
    assert res["cert.dns"].status == Status.SKIP


# ------------------------------------------------------------ srtp.*

def test_srtp_module_noload(host, dns):
    host.write("modules.conf", "[modules]\nautoload=yes\nnoload => res_srtp.so\n")
    f = preflight(host, dns)["srtp.module"]
    assert f.status == Status.FAIL and f.where == f"{host.root}/modules.conf:3"


def test_srtp_module_autoload_off(host, dns):
    host.write("modules.conf", "[modules]\nautoload=no\nload => res_pjsip.so\n")
    assert preflight(host, dns)["srtp.module"].status == Status.FAIL
    host.write("modules.conf", "[modules]\nautoload=no\nload => res_srtp.so\n")
    assert preflight(host, dns)["srtp.module"].status == Status.PASS


@pytest.mark.parametrize("old,new,word", [
    ("media_encryption=sdes", "media_encryption=no", "not sdes"),
    ("media_encryption_optimistic=no", "media_encryption_optimistic=yes", "optimistic"),
])
def test_srtp_endpoint_fails(host, dns, old, new, word):
    host.edit("pjsip.conf", old, new)
    f = preflight(host, dns)["srtp.endpoint"]
    assert f.status == Status.FAIL and word in f.summary
    assert f.where.startswith(f"{host.root}/pjsip.conf:")
    assert "media_encryption=sdes" in f.fix


def test_srtp_endpoint_override_in_section_wins_over_template(host, dns):
    host.edit("pjsip.conf", "aors=alexa\n", "aors=alexa\nmedia_encryption=no\n")
    f = preflight(host, dns)["srtp.endpoint"]
    assert f.status == Status.FAIL and f.where == f"{host.root}/pjsip.conf:36"


def test_srtp_endpoint_without_identify_skips_unless_named(host, dns):
    host.edit("pjsip.conf", f"match={AMAZON}", "match=198.51.100.0/24")
    assert preflight(host, dns)["srtp.endpoint"].status == Status.SKIP
    assert preflight(host, dns, endpoint="alexa")["srtp.endpoint"].status == Status.PASS
    from pbx_bridge.errors import UsageError
    with pytest.raises(UsageError, match="--endpoint nosuch: no such PJSIP endpoint; the "
                                         "config has: alexa"):
        preflight(host, dns, endpoint="nosuch")


# ------------------------------------------------------------ rtp.range

@pytest.mark.parametrize("text,word", [
    ("[general]\nrtpstart=20000\nrtpend=10000\n", "not a range"),
    ("[general]\nrtpstart=10000\n", "does not set rtpend"),
    ("[general]\nrtpstart=ten\nrtpend=20000\n", "not a number"),
    ("[other]\nrtpstart=10000\n", "no [general]"),
])
def test_rtp_range_fails(host, dns, text, word):
    host.write("rtp.conf", text)
    res = preflight(host, dns)
    assert res["rtp.range"].status == Status.FAIL and word in res["rtp.range"].summary
    assert res["firewall.media"].status == Status.SKIP


def test_rtp_range_missing_file(host, dns):
    (host.root / "rtp.conf").unlink()
    assert preflight(host, dns)["rtp.range"].status == Status.FAIL


# ------------------------------------------------------------ firewall.*

@pytest.mark.parametrize("rules", ["amazon-open.rules", "amazon-open.nft", "amazon-open.json",
                                   "ufw-open.txt", "firewalld-open.txt", "freepbx.rules"])
def test_firewall_passes_in_every_format(host, dns, rules):
    res = preflight(host, dns, rules=rules)
    assert res["firewall.signaling"].status == Status.PASS
    assert res["firewall.media"].status == Status.PASS


def test_firewall_drop_first_and_partial_range(host, dns):
    res = preflight(host, dns, rules="blocked-first.rules")
    sig, media = res["firewall.signaling"], res["firewall.media"]
    assert sig.status == Status.FAIL and "3.239.178.192/26" in sig.summary
    assert media.status == Status.FAIL
    assert any(r.startswith("15001-20000 from 3.239.178.128/26") for r in media.evidence["refused"])
    assert "iptables -I INPUT -s 3.239.178.128/25 -p udp -m udp --dport 10000:20000 -j ACCEPT" \
        in media.fix


def test_firewall_uncertain_rule_warns(host, dns, tmp_path):
    text = (FW / "amazon-open.rules").read_text().replace(
        "-A INPUT -i lo -j ACCEPT", "-A INPUT -i lo -j ACCEPT\n-A INPUT -m set --match-set "
        "blocklist src -j DROP")
    (tmp_path / "set.rules").write_text(text)
    res = preflight(host, dns, rules=str(tmp_path / "set.rules"))
    f = res["firewall.signaling"]
    assert f.status == Status.WARN and f.evidence["cannot_judge"]


def test_firewall_skips_without_a_ruleset(host, dns):
    res = preflight(host, dns, rules=None)  # the recorded runner has no firewall tools
    assert res["firewall.signaling"].status == Status.SKIP
    assert "--firewall-rules" in res["firewall.signaling"].summary


# ------------------------------------------------------------ amazon.ca

def test_amazon_ca_present_missing_or_without_amazon(tmp_path, dns):
    h = make_host(tmp_path / "c", amazon_ca=False)
    f = preflight(h, dns)["amazon.ca"]
    assert f.status == Status.WARN and "Amazon's root certificate must be in it" in f.summary
    (h.root / "keys" / "ca.crt").unlink()
    f = preflight(h, dns)["amazon.ca"]
    assert f.status == Status.FAIL and f.where == f"{h.root}/pjsip.conf:16"


def test_amazon_ca_fix_names_the_file_the_transport_already_uses(tmp_path, dns):
    h = make_host(tmp_path / "c", amazon_ca=False)
    (h.root / "keys" / "ca.crt").rename(h.root / "keys" / "trusted-roots.pem")
    h.edit("pjsip.conf", "ca_list_file=/etc/asterisk/keys/ca.crt",
           "ca_list_file=/etc/asterisk/keys/trusted-roots.pem")
    f = preflight(h, dns)["amazon.ca"]
    assert f.status == Status.WARN
    assert "append them to /etc/asterisk/keys/trusted-roots.pem (the transport's " \
        "ca_list_file)" in f.fix and "ca.crt" not in f.fix, f.fix
    (h.root / "keys" / "trusted-roots.pem").unlink()  # named but missing: still that file
    f = preflight(h, dns)["amazon.ca"]
    assert f.status == Status.FAIL and "trusted-roots.pem" in f.fix and "ca.crt" not in f.fix


# ------------------------------------------------------------ live.*

def test_live_tls_and_sip_against_a_loopback_sip_responder(tmp_path, dns):
    pki = make_pki()
    h = make_host(tmp_path / "live", pki)
    server = SipTlsServer(h.root / "keys/pbx.crt", h.root / "keys/pbx.key")
    try:
        h.edit("pjsip.conf", "bind=0.0.0.0:5061", f"bind=127.0.0.1:{server.port}")
        h.edit("pjsip.conf", f"external_signaling_address={PUBLIC_IP}\n"
               f"external_media_address={PUBLIC_IP}",
               f"external_signaling_address={PUBLIC_IP}\nexternal_media_address={PUBLIC_IP}")
        res = preflight(h, dns, live=True)
    finally:
        server.stop()
    assert res["live.tls"].status == Status.PASS, res["live.tls"].summary
    assert res["live.tls"].evidence["version"] == "TLSv1.2"
    assert res["live.tls"].evidence["served_certificate"] == "matches cert_file"
    assert res["live.sip"].status == Status.PASS
    assert res["live.sip"].summary == "OPTIONS answered: SIP/2.0 200 OK"
    assert server.requests[0].startswith(f"OPTIONS sip:127.0.0.1:{server.port};transport=tls")


def test_live_served_certificate_differs(tmp_path, dns):
    h = make_host(tmp_path / "live2")
    other = make_pki()
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    (other_dir / "c.pem").write_bytes(other.leaf.pem())
    (other_dir / "k.pem").write_bytes(other.leaf.key_pem())
    server = SipTlsServer(other_dir / "c.pem", other_dir / "k.pem")
    try:
        h.edit("pjsip.conf", "bind=0.0.0.0:5061", f"bind=127.0.0.1:{server.port}")
        res = preflight(h, dns, live=True)
    finally:
        server.stop()
    assert res["live.tls"].status == Status.FAIL and "different certificate" in res["live.tls"].summary


def test_live_nothing_listening_and_not_sip(tmp_path, dns):
    port = free_port()
    h = make_host(tmp_path / "live3")
    h.edit("pjsip.conf", "bind=0.0.0.0:5061", f"bind=127.0.0.1:{port}")
    res = preflight(h, dns, live=True)
    assert res["live.tls"].status == Status.FAIL and "cannot connect" in res["live.tls"].summary
    assert res["live.sip"].status == Status.SKIP
    server = SipTlsServer(h.root / "keys/pbx.crt", h.root / "keys/pbx.key",
                          reply=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    try:
        h.edit("pjsip.conf", f"bind=127.0.0.1:{port}", f"bind=127.0.0.1:{server.port}")
        res = preflight(h, dns, live=True)
    finally:
        server.stop()
    assert res["live.tls"].status == Status.PASS
    assert res["live.sip"].status == Status.FAIL and "not SIP" in res["live.sip"].summary


# ------------------------------------------------------------ FreePBX layout

def test_freepbx_real_tree_fixes_point_at_custom_files(tmp_path, dns):
    d = freepbx_tree(tmp_path / "fpbx")
    res = preflight(d, dns)
    assert res["asterisk.config"].status == Status.PASS
    assert res["asterisk.config"].evidence["freepbx"] is True
    t = res["tls.transport"]
    assert t.status == Status.FAIL and t.fix.startswith("add to pjsip.transports_custom.conf:")
    # rtp.conf is absent in that copy
    assert res["rtp.range"].status == Status.FAIL


def test_freepbx_tree_with_tls_in_custom_files_passes(tmp_path, dns):
    d = freepbx_tree(tmp_path / "fpbx")
    add_freepbx_trunk(d, make_pki())
    res = preflight(d, dns, rules="freepbx.rules")
    bad = {k: v.summary for k, v in res.items() if v.status != Status.PASS}
    assert bad == {}
    # a value in rtp_custom.conf does not override FreePBX's: Asterisk 22.10.1 takes the first
    # (test_real_asterisk.py: test_rtp_range_asterisk_uses_is_the_first_definition)
    (d / "rtp_custom.conf").write_text("rtpend=12000\n[general](+)\nrtpstart=16000\n")
    res = preflight(d, dns, rules="freepbx.rules")
    assert res["rtp.range"].summary.startswith("RTP ports 10000-20000")
    assert res["rtp.range"].where == f"{d}/rtp_additional.conf:2"  # its rtpstart


def test_freepbx_edit_fix_uses_custom_post_for_generated_sections(tmp_path, dns):
    d = freepbx_tree(tmp_path / "fpbx")
    (d / "pjsip.identify_custom.conf").write_text(
        f"[alexa]\ntype=identify\nendpoint=30\nmatch={AMAZON}\n")
    f = preflight(d, dns)["srtp.endpoint"]
    assert f.status == Status.FAIL
    assert f.fix.startswith("FreePBX regenerates pjsip.endpoint.conf; add to "
                            "pjsip.endpoint_custom_post.conf")
    assert "[30](+)" in f.fix


def test_a_crashing_check_is_an_error_and_the_others_run(host, dns, monkeypatch):
    from pbx_bridge.preflight import checks

    def boom(snap):
        raise RuntimeError("kaput")

    registry = tuple((i, boom if i == "tls.port" else c) for i, c in checks.CHECKS)
    monkeypatch.setattr(checks, "CHECKS", registry)
    res = preflight(host, dns)
    assert res["tls.port"].status == Status.ERROR and "kaput" in res["tls.port"].summary
    assert res["rtp.range"].status == Status.PASS
    assert not overall_ok(list(res.values()))


def test_clock_door_decides_validity(host, dns):
    class Later:
        def now(self):
            return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)).timestamp()
    options = Options(asterisk_dir=host.root, firewall_rules=FW / "amazon-open.rules",
                      dns_server=("127.0.0.1", dns.port))
    runner = host_runner()
    snap = gather(options, runner=runner, net=Network(options.dns_server, runner=runner),
                  clock=Later())
    f = {x.id: x for x in run_checks(snap)}["cert.valid"]
    assert f.status == Status.FAIL and "expired" in f.summary


def test_pjsip_conf_that_is_a_directory(tmp_path, dns):
    (tmp_path / "d" / "pjsip.conf").mkdir(parents=True)
    f = preflight(tmp_path / "d", dns)["asterisk.config"]
    assert f.status == Status.FAIL and "is a directory" in f.summary


def test_text_rendering_colours_only_when_asked(host, dns):
    from pbx_bridge.preflight.render import render_text
    findings = list(preflight(host, dns, rules="blocked-first.rules").values())
    plain = render_text(findings, colour=False)
    coloured = render_text(findings, colour=True)
    assert "\x1b[" not in plain and "\x1b[31mFAIL \x1b[0m  firewall.signaling" in coloured
    assert plain.splitlines()[-1] == "NOT ready for Amazon: 17 pass, 2 fail"
    assert "fix:   iptables -I INPUT -s 3.239.178.128/25 -p tcp -m tcp --dport 5061 -j ACCEPT" \
        in plain


def test_callers_without_cert_dns_make_no_dns_lookups(host):
    """generate and trunk create gather with dns=False: no look-up leaves the host."""
    class NoDns(Network):
        def resolve_a(self, name):
            raise AssertionError(f"looked up {name}")
    runner = host_runner()
    snap = gather(Options(asterisk_dir=host.root, firewall=False, dns=False), runner=runner,
                  net=NoDns(None, runner=runner))
    assert snap.dns == {} and snap.public_ip.value == PUBLIC_IP


# ------------------------------------------------------------ security.* and tls.ciphers

def test_security_identify_appended_with_plus_is_seen(host, dns):
    """[alexa](+) changes the first [alexa], the endpoint (README's own advice for changing a
    section): Asterisk 22.10.1 then shows identify_by username,ip."""
    (host.root / "pjsip.conf").write_text((host.root / "pjsip.conf").read_text() +
                                          "\n[alexa](+)\nidentify_by=username,ip\n")
    f = preflight(host, dns, rules=None)["security.identify"]
    assert f.status == Status.FAIL and "username,ip" in f.summary, f.summary


def test_security_identify_a_port_in_match_is_an_address(host, dns):
    host.edit("pjsip.conf", "match=3.239.178.128/25", "match=3.239.178.130:5061")
    f = preflight(host, dns, rules=None, amazon_cidrs=("3.239.178.130/32",))
    assert f["security.identify"].status == Status.PASS, f["security.identify"].summary


def test_security_identify_by_username_fails(host, dns):
    host.edit("pjsip.conf", "identify_by=ip\n", "")  # what generate wrote before: the default
    f = preflight(host, dns, rules=None)["security.identify"]
    assert f.status == Status.FAIL and "username,ip (Asterisk default)" in f.summary
    assert f.where.endswith("pjsip.conf:33") and "identify_by=ip" in f.fix  # [alexa]
    host.edit("pjsip.conf", "aors=alexa\n", "aors=alexa\nidentify_by=ip,username\n")
    f = preflight(host, dns, rules=None)["security.identify"]
    assert f.status == Status.FAIL and "ip,username" in f.summary


@pytest.mark.parametrize("change,words", [
    (("match=3.239.178.128/25", "match=3.239.178.128/25,0.0.0.0/0"), "outside Amazon's"),
    (("match=3.239.178.128/25", "match=3.239.178.128/25\nmatch_header=X-Trunk: alexa"),
     "SIP header"),
    (("match=3.239.178.128/25", "match=3.239.178.128/25,localhost"), "host name localhost"),
    (("match=3.239.178.128/25", "match=3.239.178.128/25,300.1.1.1"), "which is no address"),
    (("match=3.239.178.128/25", "match=3.239.178.128/25,[::1]:5060"), "outside Amazon's"),
    (("aors=alexa\nidentify_by=ip\n", "aors=alexa\nidentify_by=\n"), "empty identify_by"),
    (("[alexa]\ntype=aor", "[anonymous]\ntype=endpoint\ncontext=from-alexa\n\n[alexa]\n"
      "type=aor"), "anonymous"),
])
def test_security_identify_wider_than_amazon_fails(host, dns, change, words):
    """Each seen on Asterisk 22.10.1: a name is resolved at load (whoever it resolves to is
    the trunk), a bad value makes it refuse the identify, an empty identify_by matches
    nobody."""
    assert preflight(host, dns, rules=None)["security.identify"].status == Status.PASS
    host.edit("pjsip.conf", *change)
    f = preflight(host, dns, rules=None)["security.identify"]
    assert f.status == Status.FAIL and words in f.summary, f.summary


def test_security_transport_needs_the_tls_check_in_the_trunk_context(host, dns):
    f = preflight(host, dns, rules=None)["security.transport"]
    assert f.status == Status.PASS and "refuses calls that did not come over TLS" in f.summary
    host.edit("extensions.conf", 'exten => _X.,1,GotoIf($["${CHANNEL(pjsip,secure)}" = "1"]?ok)',
              "exten => _X.,1,NoOp()")  # an unguarded context, as before
    f = preflight(host, dns, rules=None)["security.transport"]
    assert f.status == Status.FAIL and "transport-udp" in f.summary
    assert "CHANNEL(pjsip,secure)" in f.fix and f.where.endswith("extensions.conf:1")
    (host.root / "extensions.conf").unlink()
    assert "no extensions.conf" in preflight(host, dns, rules=None)["security.transport"].summary


def test_security_transport_include_skips_the_check(host, dns):
    host.edit("extensions.conf", " same => n,Hangup(21)", " same => n,Hangup(21)\n"
              "include => from-internal")
    f = preflight(host, dns, rules=None)["security.transport"]
    assert f.status == Status.FAIL and "includes from-internal" in f.summary


def test_security_transport_passes_with_tls_only(host, dns):
    host.edit("pjsip.conf", "[transport-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0:5060\n",
              "")
    (host.root / "extensions.conf").unlink()  # not even read: nothing else listens
    f = preflight(host, dns, rules=None)["security.transport"]
    assert f.status == Status.PASS and "no transport but TLS" in f.summary


def test_security_key_readable_by_others_fails(host, dns):
    key = host.root / "keys" / "pbx.key"
    assert preflight(host, dns, rules=None)["security.key"].status == Status.PASS
    key.chmod(0o644)
    f = preflight(host, dns, rules=None)["security.key"]
    assert f.status == Status.FAIL and "(mode 0644)" in f.summary and f"chmod 640 {key}" in f.fix
    key.chmod(0o640)  # group-readable is how Asterisk's group reads it
    assert preflight(host, dns, rules=None)["security.key"].status == Status.PASS


@pytest.mark.parametrize("cipher,words", [
    (None, "sets no cipher list"),
    ("ECDHE-RSA-AES128-GCM-SHA256,ECDHE-RSA-AES128-SHA,AES256-SHA", "ECDHE-RSA-AES128-SHA, "
     "AES256-SHA"),
    ("ECDHE-RSA-AES128-GCM-SHA256,0xC030", "fits its certificate's ECDSA key"),  # EC certs
    # Asterisk 22.10.1 drops the whole transport for a name it does not know
    ("ecdhe-ecdsa-aes128-gcm-sha256", "does not know the cipher 'ecdhe-ecdsa"),
    ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256", "does not know the cipher"),
    ("ECDHE-ECDSA-AES128-GCM-SHA256,TLS_AES_128_GCM_SHA256", "'TLS_AES_128_GCM_SHA256'"),
])
def test_tls_ciphers_weak_or_unusable_fails(host, dns, cipher, words):
    line = next(ln for ln in (host.root / "pjsip.conf").read_text().splitlines()
                if ln.startswith("cipher="))
    host.edit("pjsip.conf", line + "\n", f"cipher={cipher}\n" if cipher else "")
    f = preflight(host, dns, rules=None)["tls.ciphers"]
    assert f.status == Status.FAIL and words in f.summary, f.summary
    assert "cipher=ECDHE-ECDSA-AES128-GCM-SHA256," in f.fix


def test_tls_ciphers_numeric_ids_pass(host, dns):
    line = next(ln for ln in (host.root / "pjsip.conf").read_text().splitlines()
                if ln.startswith("cipher="))
    host.edit("pjsip.conf", line, "cipher=0xC02B, 0xCCA9")
    assert preflight(host, dns, rules=None)["tls.ciphers"].status == Status.PASS


def test_tls_ciphers_live_handshake_offering_cbc_only(host, dns):
    """A server that still takes a CBC suite (as Asterisk does until restarted after cipher=
    was set), then one that takes only the configured AEAD suite."""
    keys = (host.root / "keys/pbx.crt", host.root / "keys/pbx.key")
    bind = "bind=0.0.0.0:5061"
    for ciphers, status, words in (
            ("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256", Status.FAIL,
             "handshake with ECDHE-ECDSA-AES128-SHA"),
            ("ECDHE-ECDSA-AES128-GCM-SHA256", Status.PASS,
             "refuses a handshake offering only CBC suites")):
        srv = SipTlsServer(*keys, ciphers=ciphers)
        try:
            host.edit("pjsip.conf", bind, f"bind=127.0.0.1:{srv.port}")
            bind = f"bind=127.0.0.1:{srv.port}"
            f = preflight(host, dns, rules=None, live=True)["tls.ciphers"]
        finally:
            srv.stop()
        assert f.status == status and words in f.summary, f.summary


@pytest.mark.parametrize("extra,words", [
    ("exten => 201,1,Goto(from-internal,201,1)", "extension '201' beside the checked"),
    ("exten => s,1,Goto(from-internal,100,1)", "extension 's' beside the checked"),
    ("exten => _+X.,1,Goto(from-internal,${EXTEN:1},1)", "extension '_+X.' beside"),
    ("switch => Realtime/from-internal@extensions", "switches to Realtime"),
    ("\n[from-alexa]\nexten => 7201,1,Dial(PJSIP/7201)", "extension '7201' beside"),
])
def test_security_transport_a_way_past_the_check_fails(host, dns, extra, words):
    """Exact matches win over the checked pattern; a switch or a second block of the same
    context (Asterisk merges them) is another way in. Each was seen live on 22.10.1."""
    (host.root / "extensions.conf").write_text(
        (host.root / "extensions.conf").read_text() + extra + "\n")
    f = preflight(host, dns, rules=None)["security.transport"]
    assert f.status == Status.FAIL and words in f.summary, f.summary


def test_security_transport_a_jump_before_the_check_fails(host, dns):
    host.edit("extensions.conf", 'exten => _X.,1,GotoIf(', 'exten => _X.,1,Goto('
              'from-internal,${EXTEN},1)\n same => n,GotoIf(')
    f = preflight(host, dns, rules=None)["security.transport"]
    assert f.status == Status.FAIL and "runs Goto before its" in f.summary, f.summary
    host.edit("extensions.conf", "Goto(from-internal,${EXTEN},1)", "NoOp(a note)")
    assert preflight(host, dns, rules=None)["security.transport"].status == Status.PASS


def test_firewall_fix_for_freepbx_names_the_services_not_trust(host, dns):
    f = preflight(host, dns, rules="blocked-first.rules")["firewall.signaling"]
    assert f.status == Status.FAIL and "fwconsole firewall trust" not in f.fix
    assert "zone 'Other', and a Custom Service for TCP 5061 allowed for zone 'Other' only" \
        in f.fix, f.fix


def test_config_a_missing_include_in_the_dialplan_fails(host, dns):
    """Asterisk drops the whole extensions.conf for it: from-alexa and the room route gone."""
    host.edit("extensions.conf", "[from-alexa]", "#include nope-missing.conf\n[from-alexa]")
    f = preflight(host, dns, rules=None)["asterisk.config"]
    assert f.status == Status.FAIL and "nope-missing.conf" in f.summary
    assert f.where == f"{host.root}/extensions.conf:1"


def test_a_key_only_root_may_read_is_not_a_failure_for_another_user(host, dns):
    """A user who may not read the key (here: root without the capabilities that let it read
    anything, as helpers' setpriv does) gets a skip that says to run as root, never 'put the
    file at that path' for a key Asterisk reads fine."""
    import json
    import os
    import subprocess

    from helpers import ROOT
    from test_named_errors import NO_DAC, _cannot_drop_privileges
    why = _cannot_drop_privileges()
    if why:
        pytest.skip(why)
    key = host.root / "keys" / "pbx.key"
    os.chown(key, 65534, 65534)  # another user's, 0600: closed to us without the override
    r = subprocess.run([*NO_DAC, *PB_CMD, "preflight",
                        "--asterisk-dir", str(host.root), "--dns-server",
                        f"127.0.0.1:{dns.port}", "--format", "json"], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    got = {f["id"]: f for f in json.loads(r.stdout)["findings"]}
    t = got["tls.transport"]
    assert t["status"] == "skip" and "run the check as root" in t["summary"], t
    assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False  # not verified
