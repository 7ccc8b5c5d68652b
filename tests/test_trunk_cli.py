"""The Amazon-facing commands end to end: a real `pbx-bridge` process against the emulator."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from helpers import PB_CMD, PUBLIC_IP, SECRET, cli_env, free_port, pb

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "asterisk" / "examples" / "hotel" / "etc-asterisk"


@pytest.fixture
def env(tmp_path):
    def make(server, **extra):
        return cli_env(server, tmp_path / "state", **extra)
    return make


def no_secrets(r, server):
    tokens = list(server.emulator.tokens)
    for text in (r.stdout, r.stderr, server.emulator.config.log.getvalue()):
        assert SECRET not in text
        for t in tokens:
            assert t not in text and t.split("|", 1)[1] not in text


def test_rehearsal_on_the_example_host(emulator, env, tmp_path):
    srv = emulator(client_secret=SECRET, activate_after=0.5)
    e = env(srv)
    r = pb(e, "token", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["scope"] == "amazon_communication::network:siptrunk" and doc["expires_in"] > 3000
    assert stat.S_IMODE((tmp_path / "state" / "token.json").stat().st_mode) == 0o600

    r = pb(e, "trunk", "create", "--asterisk-dir", str(EXAMPLE), "--wait", "--json")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    tid = created["trunkId"]
    assert created["action"] == "created" and created["status"] == "ACTIVE"
    assert created["name"] == "pbx.example-hotel.test"
    assert created["peers"] == [f"{PUBLIC_IP}:5061"] and created["certificates"] == 2
    assert "PENDING" in r.stderr  # progress was shown
    sent = srv.emulator.state.trunks[tid]
    chain = (EXAMPLE / "keys" / "pbx.crt").read_text()
    assert "".join(c + "\n" for c in sent["tls"]["certificateChain"]) == chain

    # idempotent: the same PBX again adopts the trunk instead of creating another
    r = pb(e, "trunk", "create", "--asterisk-dir", str(EXAMPLE), "--json")
    assert json.loads(r.stdout)["action"] == "adopted" and len(srv.emulator.state.trunks) == 1

    r = pb(e, "trunk", "show", "--json")
    assert json.loads(r.stdout)["trunkId"] == tid
    r = pb(e, "trunk", "list")
    assert r.returncode == 0 and r.stdout.startswith(f"* {tid}  ACTIVE")

    r = pb(e, "trunk", "update", "--asterisk-dir", str(EXAMPLE), "--json")
    assert json.loads(r.stdout)["action"] == "unchanged"
    before = srv.emulator.requests
    r = pb(e, "trunk", "update", "--asterisk-dir", str(EXAMPLE), "--peer",
           "54.240.196.11:5061", "--json")
    assert r.returncode == 0, r.stderr
    upd = json.loads(r.stdout)
    assert upd["changed"] == ["peers"] and upd["peers"] == ["54.240.196.11:5061"]
    assert srv.emulator.requests > before
    # PUT replaces the trunk (the emulator refuses a body without tls or peers): the chain
    # went along with the new peers, unchanged
    assert srv.emulator.state.trunks[tid]["tls"]["certificateChain"]

    # delete refuses while an extension is mapped, and without --yes
    srv.emulator.state.mappings[tid]["7201"] = {"extension": "7201",
                                                "commsProfileId": "amzn1.alexa.unit.did.x"}
    r = pb(e, "trunk", "delete")
    assert r.returncode == 2 and "--yes" in r.stderr
    r = pb(e, "trunk", "delete", "--yes")
    assert r.returncode == 1 and "1 extension mapping" in r.stderr
    r = pb(e, "trunk", "delete", "--yes", "--force", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["trunkId"] == tid
    assert srv.emulator.state.trunks == {}
    r = pb(e, "trunk", "show")
    assert r.returncode == 2 and "none saved" in r.stderr
    no_secrets(r, srv)


def test_rehearsal_under_throttling_and_server_errors(emulator, env):
    srv = emulator(client_secret=SECRET, activate_after=0.3, throttle_rate=0.3,
                   error_rate=0.05, seed=11)
    e = env(srv)
    for args in (["token"], ["trunk", "create", "--asterisk-dir", str(EXAMPLE), "--wait"],
                 ["trunk", "show"], ["trunk", "list"],
                 ["trunk", "update", "--asterisk-dir", str(EXAMPLE), "--peer",
                  "54.240.196.12:5061"],
                 ["trunk", "create", "--asterisk-dir", str(EXAMPLE), "--peer",
                  "54.240.196.12:5061"]):
        r = pb(e, *args)
        assert r.returncode == 0, (args, r.stderr)
        no_secrets(r, srv)
    assert len(srv.emulator.state.trunks) == 1  # nothing created twice
    log = srv.emulator.config.log.getvalue()
    assert " 429 " in log and (" 500 " in log or " 503 " in log)
    r = pb(e, "trunk", "delete", "--yes")
    assert r.returncode == 0, r.stderr
    assert srv.emulator.state.trunks == {}


def test_failed_trunk_and_wait_timeout(emulator, env):
    srv = emulator(client_secret=SECRET, activate_after=0.2,
                   fail_names=("pbx.example-hotel.test",))
    r = pb(env(srv), "trunk", "create", "--asterisk-dir", str(EXAMPLE), "--wait")
    assert r.returncode == 1 and "FAILED" in r.stderr and "Traceback" not in r.stderr
    srv2 = emulator(client_secret=SECRET, activate_after=600)
    r = pb(env(srv2), "trunk", "create", "--asterisk-dir", str(EXAMPLE), "--wait",
           "--timeout", "2")
    assert r.returncode == 1 and "still PENDING" in r.stderr


def test_preflight_gate_refuses_and_can_be_skipped(emulator, env, tmp_path):
    import shutil
    d = tmp_path / "etc"
    shutil.copytree(EXAMPLE, d)
    text = (d / "pjsip.conf").read_text().replace("method=tlsv1_2", "method=tlsv1")
    (d / "pjsip.conf").write_text(text)
    srv = emulator(client_secret=SECRET)
    r = pb(env(srv), "trunk", "create", "--asterisk-dir", str(d))
    assert r.returncode == 1 and "tls.version" in r.stderr and "--skip-preflight" in r.stderr
    assert srv.emulator.state.trunks == {}
    r = pb(env(srv), "trunk", "create", "--asterisk-dir", str(d), "--skip-preflight")
    assert r.returncode == 0, r.stderr


def test_explicit_values_need_no_asterisk_config(emulator, env, tmp_path):
    srv = emulator(client_secret=SECRET)
    r = pb(env(srv), "trunk", "create", "--fqdn", "pbx.example-hotel.test", "--cert-chain",
           str(EXAMPLE / "keys" / "pbx.crt"), "--peer", "pbx.example-hotel.test:5061",
           "--asterisk-dir", "/nonexistent", "--json")
    assert r.returncode == 0, r.stderr
    t = srv.emulator.state.trunks[json.loads(r.stdout)["trunkId"]]
    assert t["peers"] == [{"fqdn": "pbx.example-hotel.test", "port": 5061}]


@pytest.mark.parametrize("args,code,word", [
    (["trunk", "create", "--peer", "1.2.3.4"], 2, "HOST:PORT"),
    (["trunk", "create", "--peer", "1.2.3.4:5061", "--peer", "pbx.test:5061", "--fqdn", "x.test",
      "--cert-chain", str(EXAMPLE / "keys" / "pbx.crt")], 2, "all IP addresses or all host"),
    (["trunk", "create", "--fqdn", "x.test", "--cert-chain", "/nonexistent.pem", "--peer",
      "1.2.3.4:5061"], 2, "cannot read"),
    (["trunk", "create", "--fqdn", "x.test", "--cert-chain", str(EXAMPLE / "rtp.conf"),
      "--peer", "1.2.3.4:5061"], 2, "holds no PEM certificate"),
    (["trunk", "show", "amzn1/../../x"], 2, "not a valid id"),
    (["trunk", "create", "--wait", "--timeout", "-1"], 2, "--timeout must be a positive"),
    (["trunk", "create", "--timeout", "60"], 2, "--timeout is how long --wait waits"),
    (["trunk", "show", "amzn1.comms.network.siptrunk.nosuch"], 1, "HTTP 404"),
])
def test_bad_input_and_api_errors_are_one_line(emulator, env, args, code, word):
    srv = emulator(client_secret=SECRET)
    r = pb(env(srv), *args)
    assert r.returncode == code, r.stderr
    assert word in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_wrong_secret_is_reported_without_the_secret(emulator, env):
    srv = emulator(client_secret="the-right-one")
    r = pb(env(srv), "token")
    assert r.returncode == 1 and "invalid_client" in r.stderr
    assert SECRET not in r.stderr + r.stdout


def test_settings_file_permissions_and_overrides(emulator, tmp_path, env):
    srv = emulator(client_secret=SECRET)
    cfg = tmp_path / "pbx-bridge.toml"
    r = pb({**os.environ}, "config", "init", "--config", str(cfg))
    assert r.returncode == 0 and stat.S_IMODE(cfg.stat().st_mode) == 0o600
    r = pb({**os.environ}, "config", "init", "--config", str(cfg))
    assert r.returncode == 2 and "--force" in r.stderr
    text = cfg.read_text().replace('client_id = ""', 'client_id = "emulator-client"')
    text = text.replace('client_secret = ""\n', "").replace(
        '# client_secret_file = "/etc/pbx-bridge/client_secret"',
        f'client_secret_file = "{tmp_path / "secret"}"')
    text = text.replace('"https://api.amazonalexa.com"', f'"{srv.url}"').replace(
        '"https://api.amazon.com/auth/o2/token"', f'"{srv.url}/auth/o2/token"').replace(
        '"/var/lib/pbx-bridge"', f'"{tmp_path / "st"}"')
    cfg.write_text(text)
    (tmp_path / "secret").write_text(SECRET + "\n")
    (tmp_path / "secret").chmod(0o600)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    r = pb(base, "token", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    cfg.chmod(0o644)
    r = pb(base, "token", "--config", str(cfg))
    assert r.returncode == 2 and f"chmod 600 {cfg}" in r.stderr
    cfg.chmod(0o600)
    (tmp_path / "secret").chmod(0o640)
    r = pb(base, "token", "--config", str(cfg))
    assert r.returncode == 2 and f"chmod 600 {tmp_path / 'secret'}" in r.stderr
    # environment variables win over the file (an unused secret file is not read)
    r = pb({**base, "PBX_BRIDGE_CLIENT_SECRET": SECRET}, "token", "--config", str(cfg),
           "--refresh")
    assert r.returncode == 0, r.stderr
    (tmp_path / "secret").chmod(0o600)
    r = pb({**base, "PBX_BRIDGE_CLIENT_ID": "nobody"}, "token", "--config", str(cfg),
           "--refresh")
    assert r.returncode == 1 and "invalid_client" in r.stderr
    cfg.write_text("[amazon\nclient_id=")
    r = pb(base, "token", "--config", str(cfg))
    assert r.returncode == 2 and "not valid TOML" in r.stderr
    r = pb(base, "token", "--config", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_no_credentials_is_a_usage_error(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    base["PBX_BRIDGE_CONFIG"] = str(tmp_path / "empty.toml")
    (tmp_path / "empty.toml").write_text("")
    (tmp_path / "empty.toml").chmod(0o600)
    r = pb(base, "token")
    assert r.returncode == 2 and "no client id" in r.stderr


def test_emulator_command_bad_flags():
    r = pb({**os.environ}, "emulator", "--listen", "localhost")
    assert r.returncode == 2 and "HOST:PORT" in r.stderr
    r = pb({**os.environ}, "emulator", "--throttle-rate", "1.5")
    assert r.returncode == 2 and "between 0 and 1" in r.stderr
    r = pb({**os.environ}, "emulator", "--rooms", "/nonexistent.json")
    assert r.returncode == 2 and "rooms file" in r.stderr
    r = pb({**os.environ}, "emulator", "--latency-ms", "-5")
    assert r.returncode == 2 and "--latency-ms must not be negative" in r.stderr


def test_emulator_command_serves(tmp_path):
    import time
    port = free_port()
    proc = subprocess.Popen([*PB_CMD, "emulator", "--listen",
                             f"127.0.0.1:{port}", "--client-secret", SECRET], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert f"listening on http://127.0.0.1:{port}" in line
        base = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
        e = {**base, "PBX_BRIDGE_API_URL": f"http://127.0.0.1:{port}",
             "PBX_BRIDGE_TOKEN_URL": f"http://127.0.0.1:{port}/auth/o2/token",
             "PBX_BRIDGE_CLIENT_ID": "emulator-client", "PBX_BRIDGE_CLIENT_SECRET": SECRET,
             "PBX_BRIDGE_STATE_DIR": str(tmp_path / "st"),
             "PBX_BRIDGE_CONFIG": str(tmp_path / "c.toml")}
        (tmp_path / "c.toml").write_text("")
        (tmp_path / "c.toml").chmod(0o600)
        r = pb(e, "trunk", "list")
        assert r.returncode == 0 and r.stdout.strip() == "no trunks", r.stderr
        time.sleep(0.1)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[1]
    assert "GET /v1/communications/network/siptrunk 200" in out
    assert SECRET not in out
