"""`pbx-bridge status` against the emulator over real HTTP, with drift made on purpose behind
pbx-bridge's back. The served certificate here comes from a loopback TLS listener; the real
Asterisk serving a renewed certificate is in test_renew.py."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import (SECRET, FQDN, SipTlsServer, cli_env, csv_of, free_port, make_host,
                     make_pki, pb, rows)


def metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, parsed by prometheus_client's own parser: (name, labels) -> value."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def m(samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def site(emulator, tmp_path):
    """A PBX config whose TLS port is served on loopback, an emulator with its trunk created
    by `trunk create`, and 12 mappings applied by `rooms apply`."""
    pki = make_pki()
    keys = tmp_path / "served"
    keys.mkdir()
    (keys / "c.pem").write_bytes(pki.leaf.pem() + pki.inter.pem())
    (keys / "k.pem").write_bytes(pki.leaf.key_pem())
    tls = SipTlsServer(keys / "c.pem", keys / "k.pem")

    class Site:
        def __init__(self, **emu) -> None:
            self.srv = emulator(client_secret=SECRET, activate_after=0, **emu)
            self.host = make_host(tmp_path / "etc", pki, bind=f"127.0.0.1:{tls.port}")
            self.state = tmp_path / "state"
            self.env = cli_env(self.srv, self.state)
            self.dir = str(self.host.etc)
            r = self.run("trunk", "create", "--asterisk-dir", self.dir)
            assert r.returncode == 0, r.stderr
            self.trunk = json.loads((self.state / "state.json").read_text())["trunkId"]
            (tmp_path / "m.csv").write_text(csv_of(rows(12)))
            r = self.run("rooms", "apply", "--map", str(tmp_path / "m.csv"), "--yes")
            assert r.returncode == 0, r.stderr

        def run(self, *args: str, timeout: float = 60):
            return pb(self.env, *args, timeout=timeout)

        def status(self, fmt: str, *extra: str):
            return self.run("status", "--asterisk-dir", self.dir, "--format", fmt, *extra)

        @property
        def emu(self):
            return self.srv.emulator

    yield Site
    tls.stop()


def test_healthy_site_in_every_format(site, tmp_path):
    s = site()
    r = s.status("nagios")
    assert r.returncode == 0, r.stdout + r.stderr
    line = r.stdout.strip()
    assert line.startswith(f"PBX-BRIDGE OK - trunk {s.trunk} ACTIVE") and "\n" not in line
    assert "mappings_in_sync=12" in line and "cert_days_served=" in line
    assert "| " in line and line.count("|") == 1

    r = s.status("prometheus")
    assert r.returncode == 0, r.stderr
    got = metrics(r.stdout)
    assert m(got, "pbx_bridge_status_success") == 1
    assert m(got, "pbx_bridge_trunk_active") == 1
    assert m(got, "pbx_bridge_trunk_certificate_matches") == 1
    assert m(got, "pbx_bridge_mappings", state="in_sync") == 12
    for state in ("missing", "changed", "extra"):
        assert m(got, "pbx_bridge_mappings", state=state) == 0
    assert m(got, "pbx_bridge_check_ok", check="tls.transport") == 1
    file_ts = m(got, "pbx_bridge_certificate_expiry_timestamp_seconds", source="file")
    served_ts = m(got, "pbx_bridge_certificate_expiry_timestamp_seconds", source="served")
    assert file_ts == served_ts and 364 < (file_ts - time.time()) / 86400 < 366
    last = m(got, "pbx_bridge_last_sync_timestamp_seconds")
    assert time.time() - 120 < last <= time.time()

    r = s.status("json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["state"] == "OK" and doc["trunk"]["status"] == "ACTIVE"
    r = s.status("text")
    assert r.returncode == 0 and r.stdout.startswith("status: OK")
    # read-only, and a few API calls at most: token, trunk, one page per 10 mappings
    before = s.emu.requests
    s.status("nagios")
    assert s.emu.requests - before <= 4


def test_mappings_changed_behind_our_back_are_a_warning(site):
    s = site()
    maps = s.emu.state.mappings[s.trunk]
    maps.pop("7101")  # deleted at Amazon
    maps["7102"]["commsProfileId"] = "amzn1.alexa.unit.did.someone-else"  # remapped
    maps["7999"] = {**maps["7103"], "extension": "7999"}  # added by hand
    r = s.status("nagios")
    assert r.returncode == 1, r.stdout
    assert r.stdout.startswith("PBX-BRIDGE WARNING - mappings drifted at Amazon: 1 missing, "
                               "1 changed, 1 extra")
    got = metrics(s.status("prometheus").stdout)
    assert [m(got, "pbx_bridge_mappings", state=k) for k in
            ("in_sync", "missing", "changed", "extra")] == [10, 1, 1, 1]
    assert m(got, "pbx_bridge_status_success") == 1  # checked fine; what it found is drift
    text = s.status("text").stdout
    assert "7101 missing at Amazon" in text and "7999 extra at Amazon" in text
    # the remedy the message names puts it right
    r = s.run("rooms", "apply", "--map", str(Path(s.dir).parent / "m.csv"), "--yes",
              "--prune")
    assert r.returncode == 0, r.stderr
    assert s.status("nagios").returncode == 0


def test_failed_trunk_and_changed_chain_are_critical(site):
    s = site()
    s.emu.config.fail_names = (FQDN,)
    r = s.status("nagios")
    assert r.returncode == 2
    assert r.stdout.startswith(f"PBX-BRIDGE CRITICAL - trunk {s.trunk} is FAILED")
    got = metrics(s.status("prometheus").stdout)
    assert m(got, "pbx_bridge_trunk_active") == 0
    assert m(got, "pbx_bridge_trunk_info", trunk_id=s.trunk, status="FAILED") == 1
    # Amazon holding another chain (a renewal not sent) is drift: a warning of its own
    s.emu.config.fail_names = ()
    other = make_pki()
    s.emu.state.trunks[s.trunk]["tls"]["certificateChain"] = [other.leaf.pem().decode()]
    r = s.status("nagios")
    assert r.returncode == 1 and "Amazon holds another certificate chain" in r.stdout
    assert m(metrics(s.status("prometheus").stdout),
             "pbx_bridge_trunk_certificate_matches") == 0


def test_deleted_trunk_is_critical(site):
    s = site()
    s.emu.state.trunks.pop(s.trunk)
    r = s.status("nagios")
    assert r.returncode == 2 and f"trunk {s.trunk} does not exist at Amazon" in r.stdout


@pytest.mark.parametrize("days,code,word", [(15, 1, "WARNING"), (5, 2, "CRITICAL")])
def test_certificate_expiry_thresholds(emulator, tmp_path, days, code, word):
    pki = make_pki(days=days)
    host = make_host(tmp_path / "etc", pki)
    keys = host.etc / "keys"
    tls = SipTlsServer(keys / "pbx.crt", keys / "pbx.key")
    try:
        host.edit("pjsip.conf", "bind=0.0.0.0:5061", f"bind=127.0.0.1:{tls.port}")
        srv = emulator(client_secret=SECRET, activate_after=0)
        env = cli_env(srv, tmp_path / "state")
        assert pb(env, "trunk", "create", "--asterisk-dir", str(host.etc),
                  "--skip-preflight").returncode == 0
        r = pb(env, "status", "--asterisk-dir", str(host.etc), "--format", "nagios")
        assert r.returncode == code, r.stdout
        assert r.stdout.startswith(f"PBX-BRIDGE {word} - served certificate expires in")
        assert f"cert_days_served={days - 1}." in r.stdout or \
            f"cert_days_served={days}." in r.stdout
        # thresholds are the user's to set
        r = pb(env, "status", "--asterisk-dir", str(host.etc), "--format", "nagios",
               "--cert-warn-days", "3", "--cert-crit-days", "1")
        assert r.returncode == 0, r.stdout
    finally:
        tls.stop()


def test_nothing_listening_on_the_tls_port_is_critical(site):
    s = site()
    s.host.edit("pjsip.conf", "bind=127.0.0.1:", "bind=127.0.0.1:1")  # port 1xxxx: closed
    port = free_port()
    text = s.host.etc.joinpath("pjsip.conf").read_text()
    import re
    s.host.write("pjsip.conf", re.sub(r"bind=127\.0\.0\.1:\d+", f"bind=127.0.0.1:{port}",
                                      text))
    r = s.status("nagios")
    assert r.returncode == 2 and f"Asterisk serves no TLS on 127.0.0.1:{port}" in r.stdout
    got = metrics(s.status("prometheus").stdout)
    assert m(got, "pbx_bridge_tls_up") == 0


def test_unreachable_api_is_unknown_and_the_textfile_is_still_written(site, tmp_path):
    s = site()
    dead = f"http://127.0.0.1:{free_port()}"
    s.env.update(PBX_BRIDGE_API_URL=dead, PBX_BRIDGE_TOKEN_URL=dead + "/auth/o2/token")
    prom = tmp_path / "textfile" / "pbx_bridge.prom"
    prom.parent.mkdir()
    start = time.monotonic()
    r = s.status("prometheus", "--textfile", str(prom), "--timeout", "4")
    assert time.monotonic() - start < 15
    assert r.returncode == 0 and r.stdout == "", r.stderr
    got = metrics(prom.read_text())
    assert m(got, "pbx_bridge_status_success") == 0
    assert m(got, "pbx_bridge_status_part_success", part="trunk") == 0
    assert m(got, "pbx_bridge_status_part_success", part="certificate") == 1
    assert ("pbx_bridge_trunk_active", ()) not in got  # not known: not claimed either way
    assert "status UNKNOWN" in r.stderr and "trunk not checked" in r.stderr
    assert not [p for p in prom.parent.iterdir() if p != prom]  # no temporary left behind
    r = s.status("nagios", "--timeout", "4")
    assert r.returncode == 3 and r.stdout.startswith("PBX-BRIDGE UNKNOWN - trunk not checked")


def test_timeout_bounds_a_hung_api(site):
    s = site()
    s.emu.config.latency_ms = 60000  # every answer takes a minute
    start = time.monotonic()
    r = s.status("nagios", "--timeout", "3")
    took = time.monotonic() - start
    assert took < 8, took
    assert r.returncode == 3 and "not checked" in r.stdout


def test_bad_settings_and_flags(site, tmp_path):
    s = site()
    r = s.status("prometheus", "--textfile", str(tmp_path / "metrics.txt"))
    assert r.returncode == 2 and "ending in .prom" in r.stderr
    r = s.status("text", "--textfile", str(tmp_path / "x.prom"))
    assert r.returncode == 2 and "needs --format prometheus" in r.stderr
    r = s.status("nagios", "--cert-warn-days", "3", "--cert-crit-days", "9")
    assert r.returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[amazon\n")
    os.chmod(bad, 0o600)
    r = s.status("nagios", "--config", str(bad))
    assert r.returncode == 3 and r.stdout.startswith("PBX-BRIDGE UNKNOWN - settings not "
                                                     "checked: ") and "not valid TOML" in r.stdout
    r = s.status("text", "--config", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_fastagi_and_ami_answer_or_not(site, tmp_path):
    import threading

    from pbx_bridge.agi.fastagi import FastAgiServer
    import ipaddress
    s = site()
    agi = FastAgiServer(("127.0.0.1", 0), s.state, [ipaddress.ip_network("127.0.0.0/8")],
                        log=lambda line: None)
    t = threading.Thread(target=agi.serve_forever, daemon=True)
    t.start()
    conf = tmp_path / "pbx-bridge.toml"
    conf.write_text(f"[agi]\nfastagi = \"127.0.0.1:{agi.server_address[1]}\"\n"
                    f"[ami]\nhost = \"127.0.0.1\"\nport = {free_port()}\nusername = \"x\"\n"
                    "secret = \"ami-Secret-1\"\n")
    os.chmod(conf, 0o600)
    r = s.status("prometheus", "--config", str(conf))
    got = metrics(r.stdout)
    assert m(got, "pbx_bridge_service_up", service="fastagi") == 1
    assert m(got, "pbx_bridge_service_up", service="ami") == 0
    r = s.status("nagios", "--config", str(conf))
    assert r.returncode == 1 and "ami does not answer" in r.stdout
    assert "ami-Secret-1" not in r.stdout + r.stderr
    agi.shutdown()
    t.join(5)
    agi.server_close()
    r = s.status("nagios", "--config", str(conf))
    assert r.returncode == 2 and "fastagi does not answer" in r.stdout
    # something else on the port (a web server): said as such, not "does not answer"
    import socket
    web = socket.socket()
    web.bind(("127.0.0.1", 0))
    web.listen(1)

    def serve() -> None:
        conn, _ = web.accept()
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    conf.write_text(f"[agi]\nfastagi = \"127.0.0.1:{web.getsockname()[1]}\"\n")
    r = s.status("nagios", "--config", str(conf))
    web.close()
    assert r.returncode == 2 and "fastagi is not what answers there: " in r.stdout, r.stdout
    assert "'HTTP/1.0 200 OK'" in r.stdout


def test_secrets_appear_nowhere(site, tmp_path):
    s = site()
    outs = []
    for fmt in ("text", "json", "prometheus", "nagios"):
        r = s.status(fmt)
        outs.append(r.stdout + r.stderr)
    log = s.emu.config.log.getvalue()
    assert SECRET not in "".join(outs) + log
    assert not any("Atc|" in o for o in outs)


def test_textfile_is_replaced_atomically_and_readable(site, tmp_path):
    s = site()
    prom = tmp_path / "pbx_bridge.prom"
    prom.write_text("old\n")
    r = s.status("prometheus", "--textfile", str(prom))
    assert r.returncode == 0 and r.stderr == ""
    assert m(metrics(prom.read_text()), "pbx_bridge_status_success") == 1
    assert stat.S_IMODE(prom.stat().st_mode) & 0o044  # node_exporter (another user) reads it


def test_fastagi_is_asked_to_route_a_mapped_room(site, tmp_path):
    """Answering is not routing: status asks FastAGI for a mapped room as Asterisk would."""
    import ipaddress
    import threading

    from pbx_bridge.agi.fastagi import FastAgiServer
    s = site()
    conf = tmp_path / "agi.toml"

    def status(state_dir: Path):  # a FastAGI server reading state_dir
        agi = FastAgiServer(("127.0.0.1", 0), state_dir, [ipaddress.ip_network("127.0.0.0/8")],
                            log=lambda line: None)
        t = threading.Thread(target=agi.serve_forever, daemon=True)
        t.start()
        conf.write_text(f"[agi]\nfastagi = \"127.0.0.1:{agi.server_address[1]}\"\n")
        os.chmod(conf, 0o600)
        try:
            return [s.status(fmt, "--config", str(conf)) for fmt in ("json", "text")]
        finally:
            agi.shutdown()
            t.join(5)
            agi.server_close()

    js, txt = status(s.state)
    doc = json.loads(js.stdout)
    assert doc["fastagiLookup"]["routed"] is True and doc["fastagiLookup"]["extension"] == \
        "7100", doc["fastagiLookup"]
    assert doc["state"] == "OK" and js.returncode == 0, doc["problems"]
    assert "fastagi: answers, routes 7100 via PJSIP/7100@alexa" in txt.stdout
    # a server reading another (empty) state dir answers, but routes nothing
    js, txt = status(tmp_path / "elsewhere")
    doc = json.loads(js.stdout)
    assert js.returncode == 1 and doc["state"] == "CRITICAL"
    assert doc["services"]["fastagi"] is True and doc["fastagiLookup"]["routed"] is False
    assert any("fastagi answers but does not route mapped room 7100: ALEXA_MAPPED '0' (no "
               "routes published at" in p["message"] for p in doc["problems"]), doc["problems"]
    assert "but does NOT route mapped room 7100" in txt.stdout


def test_fastagi_as_an_unprivileged_user_on_a_0700_state_dir_is_critical(tmp_path):
    """The FastAGI unit runs as User=asterisk: with the state dir made 0700 it answers every
    call with ALEXA_MAPPED "0". status says CRITICAL and why, and OK once it can pass."""
    import shutil
    import signal
    import subprocess
    import tempfile

    from pbx_bridge.rooms.store import Store
    from test_safety import _unprivileged_ok, as_nobody, installed
    why = _unprivileged_ok()
    if why:
        pytest.skip(why)
    top = Path(tempfile.mkdtemp(prefix="pbxb-", dir="/tmp"))  # pytest's tmp_path is 0700
    top.chmod(0o755)
    state = top / "state"
    st = Store(state)
    st.set_meta(trunk_id="amzn1.comms.network.siptrunk.t1", endpoint="alexa")
    st.record("amzn1.comms.network.siptrunk.t1", "7201", "amzn1.alexa.unit.did.a", "Room 201")
    st.publish()
    st.close()
    state.chmod(0o700)
    port = free_port()
    proc = subprocess.Popen(["sh", "-c", f"exec {as_nobody(installed(top))} fastagi --listen "
                             f"127.0.0.1:{port} --state-dir {state}"], cwd="/",
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert "listening" in proc.stderr.readline()
        conf = tmp_path / "s.toml"
        conf.write_text(f"[paths]\nstate_dir = \"{state}\"\n[agi]\nfastagi = "
                        f"\"127.0.0.1:{port}\"\n")
        conf.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
        env["PBX_BRIDGE_CONFIG"] = str(conf)
        args = ("status", "--asterisk-dir", str(tmp_path), "--timeout", "10")
        r = pb(env, *args, "--format", "nagios")
        assert r.returncode == 2 and r.stdout.startswith("PBX-BRIDGE CRITICAL"), r.stdout
        doc = json.loads(pb(env, *args, "--format", "json").stdout)
        assert doc["services"]["fastagi"] is True
        assert any(p["state"] == "CRITICAL" and p["message"].startswith(
            "fastagi answers but does not route mapped room 7201: ALEXA_MAPPED '0' (routes "
            "unreadable: [Errno 13] Permission denied") for p in doc["problems"]), doc
        assert doc["fastagiLookup"]["routed"] is False
        state.chmod(0o711)  # as pbx-bridge keeps it: the asterisk user may pass
        doc = json.loads(pb(env, *args, "--format", "json").stdout)
        assert doc["fastagiLookup"]["routed"] is True, doc["fastagiLookup"]
        assert doc["fastagiLookup"]["variables"]["ALEXA_DIAL"] == "PJSIP/7201@alexa"
        assert not any("mapped room" in p["message"] for p in doc["problems"]), doc["problems"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        log = proc.stderr.read()
        shutil.rmtree(top, ignore_errors=True)
    assert "routes unreadable: [Errno 13] Permission denied" in log
