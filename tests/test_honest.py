"""Say only what is true (issue 12): each reproduction a user hit, as a test."""

from __future__ import annotations

import json

import pytest

from helpers import FQDN, PUBLIC_IP, SECRET, cli_env, make_host, make_pki, pb


# ------------------------------------------------------------------ 1. token proves them

def test_token_proves_the_credentials_it_was_given(emulator, tmp_path):
    srv = emulator(client_secret=SECRET)
    env = cli_env(srv, tmp_path / "state")
    assert pb(env, "token").returncode == 0
    r = pb({**env, "PBX_BRIDGE_CLIENT_SECRET": "wrong"}, "token")
    assert r.returncode == 1 and "invalid_client" in r.stderr and "credentials work" not in \
        r.stdout
    r = pb({**env, "PBX_BRIDGE_REFRESH_TOKEN": "not-a-refresh-token"}, "token")
    assert r.returncode == 1 and "invalid_client" not in r.stderr  # another grant: asked
    # the cache is reused for exactly these credentials (no token request), and holds no
    # secret
    before = srv.emulator.config.log.getvalue().count("/auth/o2/token")
    assert pb(env, "token").returncode == 0
    assert srv.emulator.config.log.getvalue().count("/auth/o2/token") == before
    cache = (tmp_path / "state" / "token.json").read_text()
    assert SECRET not in cache and "wrong" not in cache


# ------------------------------------------------------------------ 2. one trunk per PBX

def test_create_after_update_never_makes_a_second_trunk(emulator, tmp_path):
    srv = emulator(client_secret=SECRET, activate_after=0)
    host = make_host(tmp_path / "etc")
    env = cli_env(srv, tmp_path / "state")
    create = ("trunk", "create", "--asterisk-dir", str(host.etc))
    assert pb(env, *create).returncode == 0
    tid = json.loads((tmp_path / "state" / "state.json").read_text())["trunkId"]
    r = pb(env, *create)  # identical: adopted, still one
    assert r.returncode == 0 and r.stdout.startswith("adopted trunk " + tid)
    r = pb(env, "trunk", "update", "--asterisk-dir", str(host.etc), "--peer",
           "54.240.196.11:5061")
    assert r.returncode == 0, r.stderr
    for _ in range(3):
        r = pb(env, *create)
        assert r.returncode == 1 and f"this PBX already has trunk {tid}" in r.stderr
        assert "trunk update" in r.stderr
    assert len(srv.emulator.state.trunks) == 1
    assert json.loads((tmp_path / "state" / "state.json").read_text())["trunkId"] == tid
    # another PBX state dir (or a lost one) meets Amazon's trunk with this name: refused too
    r = pb(cli_env(srv, tmp_path / "state-2"), *create)
    assert r.returncode == 1 and f"Amazon already has trunk {tid} for {FQDN}" in r.stderr
    assert "peers 54.240.196.11:5061" in r.stderr and f"trunk update {tid}" in r.stderr
    assert len(srv.emulator.state.trunks) == 1


# ------------------------------------------------------------------ 3. values checked

@pytest.mark.parametrize("peer,kind", [
    ("10.1.2.3:5061", "private"), ("127.0.0.1:5061", "loopback"),
    ("169.254.1.1:5061", "link-local"), ("100.64.0.9:5061", "carrier-grade NAT (100.64.0.0/10)"),
    ("192.0.2.10:5061", "documentation"), ("203.0.113.5:5061", "documentation")])
def test_peers_amazon_cannot_reach_are_refused_before_sending(emulator, tmp_path, peer, kind):
    srv = emulator(client_secret=SECRET)
    host = make_host(tmp_path / "etc")
    env = cli_env(srv, tmp_path / "state")
    r = pb(env, "trunk", "create", "--asterisk-dir", str(host.etc), "--peer", peer)
    assert r.returncode == 2 and f"is a {kind} address" in r.stderr, r.stderr
    assert srv.emulator.requests == 0
    # the documented way to rehearse with a private address
    r = pb({**env, "PBX_BRIDGE_ALLOW_PRIVATE_PEERS": "1"}, "trunk", "create", "--asterisk-dir",
           str(host.etc), "--peer", peer, "--skip-preflight")
    assert r.returncode == 0, r.stderr


def test_bad_port_and_a_name_the_certificate_lacks_are_refused(emulator, tmp_path):
    srv = emulator(client_secret=SECRET, activate_after=0)
    host = make_host(tmp_path / "etc")
    env = cli_env(srv, tmp_path / "state")
    for peer in (f"{PUBLIC_IP}:0", f"{PUBLIC_IP}:70000"):
        r = pb(env, "trunk", "create", "--asterisk-dir", str(host.etc), "--peer", peer)
        assert r.returncode == 2 and "port 1..65535" in r.stderr
    r = pb(env, "trunk", "create", "--asterisk-dir", str(host.etc), "--fqdn",
           "sip.other-hotel.test")
    assert r.returncode == 2 and f"is not on the certificate (CN and SANs: {FQDN}" in r.stderr
    assert srv.emulator.requests == 0
    assert pb(env, "trunk", "create", "--asterisk-dir", str(host.etc)).returncode == 0
    r = pb(env, "trunk", "update", "--asterisk-dir", str(host.etc), "--peer", "10.0.0.1:5061")
    assert r.returncode == 2 and "private address" in r.stderr
    # a wildcard certificate covers one label
    wild = make_host(tmp_path / "etc-wild", make_pki("*.harbor-hotel.test"))
    r = pb(cli_env(srv, tmp_path / "s3"), "trunk", "create", "--asterisk-dir",
           str(wild.etc), "--fqdn", "a.b.harbor-hotel.test", "--skip-preflight")
    assert r.returncode == 2 and "not on the certificate" in r.stderr


def test_generate_warns_about_a_private_public_ip(tmp_path):
    from helpers import plain_generate_tree
    d = plain_generate_tree(tmp_path / "etc")
    r = pb(cli_env_none(tmp_path), "generate", "--asterisk-dir", str(d), "--public-ip",
           "192.168.1.20", "--fqdn", FQDN)
    assert "warning: public IP 192.168.1.20 is a private address" in r.stderr


def cli_env_none(tmp_path):
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env["PBX_BRIDGE_STATE_DIR"] = str(tmp_path / "state")
    return env


# ------------------------------------------------------------------ 4. "ready" means verified

def test_ready_needs_every_required_check_to_have_run(tmp_path, dns):
    """A dead resolver used to leave cert.dns skipped and still say "ready for Amazon"."""
    host = make_host(tmp_path / "etc")
    rules = tmp_path / "rules"
    rules.write_text(OPEN_RULES)
    base = ("preflight", "--asterisk-dir", str(host.etc), "--firewall-rules", str(rules),
            "--public-ip", PUBLIC_IP)
    env = cli_env_none(tmp_path)
    r = pb(env, *base, "--dns-server", dns.address)
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("ready for Amazon"), \
        r.stdout
    r = pb(env, *base, "--dns-server", "127.0.0.1:9")  # nothing answers there
    last = r.stdout.splitlines()[-1]
    assert r.returncode == 1 and last.startswith("not verified: 1 check could not run "
                                                 "(cert.dns)"), r.stdout
    r = pb(env, *base, "--dns-server", "127.0.0.1:9", "--format", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["ok"] is False and doc["verdict"].startswith("not verif")
    r = pb(env, *base, "--dns-server", dns.address, "--endpoint", "nosuch")
    assert r.returncode == 2 and "no such PJSIP endpoint; the config has: alexa" in r.stderr


OPEN_RULES = """\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 3.239.178.128/25 -p tcp -m tcp --dport 5061 -j ACCEPT
-A INPUT -s 3.239.178.128/25 -p udp -m udp --dport 10000:20000 -j ACCEPT
COMMIT
"""


# ------------------------------------------------------------------ 5. a reversed chain

def test_a_reversed_chain_fails_only_cert_chain(tmp_path, dns):
    """Intermediate first, leaf second: the key, dates and names are still the leaf's."""
    from pbx_bridge.findings import Status
    from test_preflight_checks import preflight
    pki = make_pki(days=200)
    host = make_host(tmp_path / "etc", pki)
    host.write("keys/pbx.crt", pki.inter.pem() + pki.leaf.pem())
    res = preflight(host, dns)
    assert res["cert.chain"].status == Status.FAIL
    assert "rewrite the file leaf first: 1. " in res["cert.chain"].fix
    assert res["cert.chain"].fix.index(FQDN) < res["cert.chain"].fix.index("Intermediate")
    bad = {k: f.summary for k, f in res.items() if f.status != Status.PASS}
    assert set(bad) == {"cert.chain"}, bad
    assert res["cert.valid"].evidence["subject"].startswith(f"CN={FQDN}")
    assert res["cert.key"].summary == "the private key matches the certificate"
    assert res["cert.dns"].evidence.get("names", [FQDN]) == [FQDN] or \
        "Intermediate" not in json.dumps(res["cert.dns"].evidence)


# ------------------------------------------------------------------ 6. text as written

ROOM = "Suite 301 \u2013 Sea View\u2019s"


def test_excel_windows_1252_map_reaches_the_routes_as_written(hotel, tmp_path):
    srv, trunk, env = hotel()
    m = tmp_path / "excel.csv"
    m.write_bytes(("extension,room,comms_profile_id\r\n"
                   f"7301,{ROOM},amzn1.alexa.unit.did.p301\r\n").encode("cp1252"))
    r = pb(env, "rooms", "apply", "--map", str(m), "--yes")
    assert r.returncode == 0, r.stderr
    routes = json.loads((tmp_path / "state" / "routes.json").read_text(encoding="utf-8"))
    assert ROOM in json.dumps(routes, ensure_ascii=False)
    assert "\x96" not in json.dumps(routes, ensure_ascii=False)


@pytest.mark.parametrize("data", [
    ("\ufeff" + f"extension,room,comms_profile_id\n7301,{ROOM},amzn1.x.p1\n").encode(),
    f"extension,room,comms_profile_id\n7301,{ROOM},amzn1.x.p1\n".encode(),
    f"extension,room,comms_profile_id\n7301,{ROOM},amzn1.x.p1\n".encode("cp1252"),
    # UTF-16 with its BOM, little- and big-endian (Excel's and Notepad's "Unicode")
    f"extension,room,comms_profile_id\n7301,{ROOM},amzn1.x.p1\n".encode("utf-16"),
    "\ufeff".encode("utf-16-be") +
    f"extension,room,comms_profile_id\n7301,{ROOM},amzn1.x.p1\n".encode("utf-16-be")])
def test_utf8_with_or_without_bom_and_cp1252_read_the_same(tmp_path, data):
    from pbx_bridge.rooms.mapfile import decode, read
    (tmp_path / "m.csv").write_bytes(data)
    assert [r.room for r in read(tmp_path / "m.csv")] == [ROOM]
    assert decode(data).lstrip("\ufeff").splitlines()[1] == f"7301,{ROOM},amzn1.x.p1"


def test_a_tab_separated_map_is_told_how_to_save_it(tmp_path):
    from pbx_bridge.rooms.mapfile import MapErrors, read
    (tmp_path / "m.txt").write_bytes(  # Excel's "Unicode Text": UTF-16, tabs
        "extension\troom\tcomms_profile_id\n7301\tRoom 301\t\n".encode("utf-16"))
    with pytest.raises(MapErrors) as e:
        read(tmp_path / "m.txt")
    assert "separated by tabs" in str(e.value) and "NUL" not in str(e.value)


def test_control_characters_and_semicolons_are_refused_with_the_line(tmp_path):
    from pbx_bridge.rooms.mapfile import MapErrors, read
    m = tmp_path / "m.csv"
    m.write_text("extension,room,comms_profile_id\n7301,Room 301,amzn1.x.p1\n"
                 "7302,\"Room\n302\",amzn1.x.p2\n7303,Room\u0085303,amzn1.x.p3\n",
                 encoding="utf-8")
    with pytest.raises(MapErrors) as e:
        read(m)
    assert len(e.value.problems) == 2
    assert e.value.problems[0].startswith("line 3: room 'Room\\n302' holds a control "
                                          "character (U+000A)")
    assert e.value.problems[1].startswith("line 5:") and "U+0085" in e.value.problems[1]
    m.write_text("extension;room;comms_profile_id\n7301;Room 301;amzn1.x.p1\n")
    with pytest.raises(MapErrors, match="separated by ';'"):
        read(m)


def test_rooms_discover_writes_a_file_excel_reads_as_utf8(hotel, tmp_path):
    srv, trunk, env = hotel()
    out = tmp_path / "rooms.csv"
    r = pb(env, "rooms", "discover", "--property", "amzn1.ask.unit.hotel", "--out", str(out))
    assert r.returncode == 0, r.stderr
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf" + b"extension,room,comms_profile_id")
    from pbx_bridge.rooms.mapfile import decode
    assert decode(raw).startswith("extension")


# ------------------------------------------------------------------ 7. no silent wrong turns

def test_unknown_settings_sections_and_keys_are_errors_with_the_line(emulator, tmp_path):
    srv = emulator(client_secret=SECRET)
    env = cli_env(srv, tmp_path / "state")
    conf = tmp_path / "pbx-bridge.toml"
    env["PBX_BRIDGE_CONFIG"] = str(conf)
    del env["PBX_BRIDGE_API_URL"]  # a typo here used to mean the real Amazon API
    for text, want in [
        (f'[amazon]\nclient_id = "x"\napi_ulr = "{srv.url}"\n',
         "line 3: unknown key 'api_ulr' in [amazon] (did you mean 'api_url'?)"),
        ('[amazon]\nclient_id = "x"\n\n[amazom_extra]\nx = 1\n',
         "line 4: unknown section [amazom_extra]"),
        (f'api_url = "{srv.url}"\n[amazon]\n',
         "line 1: key 'api_url' is outside any section (it belongs under [amazon])")]:
        conf.write_text(text)
        conf.chmod(0o600)
        r = pb(env, "token")
        assert r.returncode == 2 and want in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1
    assert srv.emulator.requests == 0


def test_plan_previews_the_profiles_it_would_create(hotel, tmp_path):
    srv, tid, env = hotel()
    m = tmp_path / "m.csv"
    m.write_text("extension,room,comms_profile_id\n7101,Room 101,\n7102,Room 102,\n")
    r = pb(env, "rooms", "plan", "--map", str(m), "--property", "amzn1.ask.unit.hotel",
           "--create-profiles")
    assert r.returncode == 0, r.stderr
    assert "2 to create" in r.stdout and "(new profile)" in r.stdout
    assert "2 communication profile(s) would be created first: Room 101, Room 102" in r.stdout
    assert srv.emulator.state.profiles == {}  # a plan creates nothing
    assert srv.emulator.state.mappings[tid] == {}


def test_import_that_matches_nothing_says_why(hotel, tmp_path):
    srv, tid, env = hotel()
    host = make_host(tmp_path / "etc")
    host.write("pjsip.conf", host.etc.joinpath("pjsip.conf").read_text() +
               "".join(f"\n[{e}]\ntype=endpoint\n" for e in ("201", "202", "203")))
    base = ("rooms", "import", "--from-asterisk", "--asterisk-dir", str(host.etc),
            "--property", "amzn1.ask.unit.hotel", "--out", str(tmp_path / "o.csv"))
    r = pb(env, *base, "--pattern", "7{room}")
    assert r.returncode == 1 and "none of the 3 numeric endpoint(s)" in r.stderr
    assert "(201, 202, 203) matches --pattern '7{room}'" in r.stderr
    r = pb(env, *base, "--pattern", "2{room}")
    assert r.returncode == 1 and "3 extension(s) match --pattern '2{room}'" in r.stderr
    assert "has no room with their number (it has 40 room(s): Room 100" in r.stderr
    assert not (tmp_path / "o.csv").exists()


def test_a_permanent_error_names_the_row_to_fix(hotel, tmp_path):
    srv, tid, env = hotel(max_extension_length=4)
    m = tmp_path / "m.csv"
    m.write_text("extension,room,comms_profile_id\n7101,Room 101,amzn1.x.p1\n"
                 "710200,Room 102,amzn1.x.p2\n")
    r = pb(env, "rooms", "apply", "--map", str(m), "--yes", "--concurrency", "1")
    assert r.returncode == 1
    assert "Amazon refuses this for good: fix extension 710200 (Room 102) in line 3 of " \
        in r.stdout, r.stdout
    assert "run 'rooms apply' again to finish" not in r.stdout


def test_deleting_a_trunk_that_is_already_gone(hotel, tmp_path):
    srv, tid, env = hotel()
    del srv.emulator.state.trunks[tid]
    r = pb(env, "trunk", "delete", "--yes")
    assert r.returncode == 1 and f"trunk {tid} is already gone at Amazon" in r.stderr
    assert "--force" in r.stderr and "HTTP 404" not in r.stderr
    r = pb(env, "trunk", "delete", "--yes", "--force")
    assert r.returncode == 0 and "already gone" in r.stdout


# ------------------------------------------------------------------ 8. regular files only

def test_includes_and_keys_that_are_not_regular_files_are_findings(tmp_path):
    import os
    import socket
    host = make_host(tmp_path / "etc")
    os.mkfifo(host.etc / "fifo.conf")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(host.etc / "sock.conf"))
    try:
        text = host.etc.joinpath("pjsip.conf").read_text()
        host.write("pjsip.conf", "#include /dev/zero\n#include fifo.conf\n"
                   "#include sock.conf\n#tryinclude /dev/stdin\n" + text)
        host.edit("pjsip.conf", "priv_key_file=/etc/asterisk/keys/pbx.key",
                  f"priv_key_file={host.etc / 'fifo.conf'}")
        r = pb(cli_env_none(tmp_path), "preflight", "--asterisk-dir", str(host.etc),
               "--format", "json", timeout=30)
        doc = json.loads(r.stdout)
        f = {x["id"]: x for x in doc["findings"]}
        cfg = f["asterisk.config"]
        assert r.returncode == 1 and cfg["status"] == "fail"
        text = json.dumps(cfg)
        for line, kind in ((1, "character device"), (2, "FIFO"), (3, "socket")):
            assert f"pjsip.conf:{line}" in text
            assert f"is a {kind}, not a config file" in text
        assert "/dev/stdin" in text
        assert "FIFO, not a regular file" in json.dumps(f["cert.key"])
    finally:
        sock.close()


# ------------------------------------------------------------------ 9. fail fast, say so

@pytest.mark.parametrize("line,key", [("api_url = 5", "api_url"), ("timeout = \"x\"", "timeout"),
                                      ("token_url = \"ftp://x\"", "token_url")])
def test_bad_settings_values_are_usage_errors_naming_the_key(tmp_path, line, key):
    import time
    conf = tmp_path / "s.toml"
    conf.write_text(f'[amazon]\nclient_id = "x"\nclient_secret = "y"\n{line}\n')
    conf.chmod(0o600)
    env = {**cli_env_none(tmp_path), "PBX_BRIDGE_CONFIG": str(conf)}
    start = time.monotonic()
    r = pb(env, "token", timeout=20)
    assert time.monotonic() - start < 5
    assert r.returncode == 2 and key in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_a_refused_connection_fails_within_seconds_naming_the_url(tmp_path):
    import time
    from helpers import free_port
    dead = f"http://127.0.0.1:{free_port()}"
    env = {**cli_env_none(tmp_path), "PBX_BRIDGE_CLIENT_ID": "x",
           "PBX_BRIDGE_CLIENT_SECRET": "y", "PBX_BRIDGE_TOKEN_URL": dead + "/auth/o2/token",
           "PBX_BRIDGE_API_URL": dead}
    start = time.monotonic()
    r = pb(env, "token", timeout=30)
    took = time.monotonic() - start
    assert took < 5, took
    lines = r.stderr.splitlines()
    assert r.returncode == 1 and len(lines) == 3
    assert all("retrying in" in ln for ln in lines[:2])  # each retry said as it happens
    assert f"connection to {dead} failed: Connection refused (3 attempt(s)" in lines[2]


def test_long_throttling_is_announced(emulator, tmp_path):
    """A 429 asking for 3 s: the wait is announced, then the call succeeds."""
    srv = emulator(client_secret=SECRET, throttle_rate=0.5, retry_after=3, seed=3)
    env = cli_env(srv, tmp_path / "state")
    r = pb(env, "trunk", "list", timeout=120)
    assert r.returncode == 0, r.stderr
    statuses = [ln.split()[3] for ln in srv.emulator.config.log.getvalue().splitlines()]
    assert "429" in statuses  # the seed makes it throttle at least once
    assert r.stderr.count("retrying in 3.0 s") == statuses.count("429"), r.stderr
