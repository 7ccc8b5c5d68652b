"""Errors that say where and what (issue 20): a settings value names its file, line and key;
a state dir the user may not read says to run as root, never to throw the state away."""

from __future__ import annotations

import pytest

from helpers import pb
from pbx_bridge.errors import PbxBridgeError
from pbx_bridge.settings import load


# ------------------------------------------------------------------ settings values

@pytest.mark.parametrize("body, line, key", [
    ('[amazon]\nclient_id = "x"\n\n# seconds\ntimeout = "fast"\n', 5, "[amazon] timeout"),
    ('[amazon]\ntimeout = 0\n', 2, "[amazon] timeout"),
    ('[amazon]\ntimeout = true\n', 2, "[amazon] timeout"),
    ('[amazon]\nclient_id = 7\n', 2, "[amazon] client_id"),
    ('[amazon]\napi_url = "ftp://x"\n', 2, "[amazon] api_url"),
    ('[amazon]\nscope = 3\n', 2, "[amazon] scope"),
    ('[amazon]\nclient_secret_file = 1\n', 2, "[amazon] client_secret_file"),
    ('[pbx]\nasterisk_dir = 1\n', 2, "[pbx] asterisk_dir"),
    ('[pbx]\nkey_group = ""\n', 2, "[pbx] key_group"),
    ('[pbx]\nproperty = 5\n', 2, "[pbx] property"),
    ('[pbx]\nasterisk_cli = "asterisk -C \\"x"\n', 2, "[pbx] asterisk_cli"),
    ('[ami]\nhost = "h"\nport = 99999\n', 3, "[ami] port"),
    ('[ami]\nusername = 4\n', 2, "[ami] username"),
    ('[agi]\nuser = ""\n', 2, "[agi] user"),
    ('[agi]\nfastagi = "nowhere"\n', 2, "[agi] fastagi"),
    ('[paths]\nstate_dir = 0\n', 2, "[paths] state_dir"),
    ('amazon.timeout = -1\n', 1, "[amazon] timeout"),
    # the same key name in another section is not the one named
    ('[ami]\nport = 5038\n[agi]\nuser = "asterisk"\n[amazon]\ntimeout = "x"\n', 6,
     "[amazon] timeout"),
])
def test_every_settings_value_error_names_file_line_and_key(tmp_path, body, line, key):
    conf = tmp_path / "pbx-bridge.toml"
    conf.write_text(body)
    conf.chmod(0o600)
    with pytest.raises(PbxBridgeError) as err:
        load(str(conf), env={})
    assert err.value.exit_code == 2
    assert str(err.value).startswith(f"{conf}, line {line}: {key}"), str(err.value)


def test_a_secret_of_the_wrong_kind_is_named_not_shown(tmp_path):
    conf = tmp_path / "pbx-bridge.toml"
    conf.write_text('[ami]\nusername = "u"\nsecret = 123456789\n')
    conf.chmod(0o600)
    with pytest.raises(PbxBridgeError) as err:
        load(str(conf), env={})
    assert str(err.value) == f"{conf}, line 3: [ami] secret: must be a string"


def test_settings_value_error_on_the_command_line_is_one_line(tmp_path):
    conf = tmp_path / "pbx-bridge.toml"
    conf.write_text('[amazon]\nclient_id = "x"\ntimeout = "fast"\n')
    conf.chmod(0o600)
    r = pb({"PATH": "/usr/bin:/bin"}, "token", "--config", str(conf))
    assert r.returncode == 2
    assert r.stderr == (f"pbx-bridge: {conf}, line 3: [amazon] timeout = 'fast': must be a "
                        "positive number of seconds, e.g. 15\n")
    conf.write_text('[amazon]\nclient_id = "x"\n')
    r = pb({"PATH": "/usr/bin:/bin", "PBX_BRIDGE_API_URL": "nope"}, "token", "--config",
           str(conf))
    assert r.returncode == 2
    assert r.stderr == "pbx-bridge: PBX_BRIDGE_API_URL = 'nope': not an http(s) URL\n"


# ------------------------------------------------------------------ a state dir we may not read

NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
          "--inh-caps=-dac_override,-dac_read_search"]


def _cannot_drop_privileges() -> str | None:
    import os
    import shutil
    import subprocess
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return "needs root and setpriv (util-linux) to run as a user the state dir is closed to"
    r = subprocess.run([*NO_DAC, "true"], capture_output=True)
    return None if r.returncode == 0 else f"setpriv cannot drop capabilities here: {r.stderr!r}"


def _closed_state(tmp_path):
    """A state dir (0711) whose files are another user's, 0600, as root's are to a user."""
    import json
    import os
    import pwd
    state = tmp_path / "state"
    state.mkdir(mode=0o711)
    (state / "state.json").write_text(json.dumps({"trunkId": "amzn1.trunk.kept"}))
    (state / "pbx-bridge.sqlite").write_bytes(b"SQLite format 3\0" + b"\0" * 100)
    backups = state / "backups" / "20240101T000000.000000001"
    backups.mkdir(parents=True)
    (backups / "manifest.json").write_text("{}")
    nobody = pwd.getpwnam("nobody").pw_uid
    for p in [state, *state.rglob("*")]:
        os.chown(p, nobody, -1)
        p.chmod(0o711 if p == state else 0o700 if p.is_dir() else 0o600)
    conf = tmp_path / "pbx-bridge.toml"
    conf.write_text('[amazon]\nclient_id = "x"\nclient_secret = "y"\n'
                    'api_url = "http://127.0.0.1:9"\ntoken_url = "http://127.0.0.1:9/t"\n')
    conf.chmod(0o600)
    return state, {"PATH": "/usr/bin:/bin", "PBX_BRIDGE_STATE_DIR": str(state),
                   "PBX_BRIDGE_CONFIG": str(conf)}


def _run_closed(env, *args):
    import subprocess
    from helpers import PB_CMD, ROOT
    return subprocess.run([*NO_DAC, *PB_CMD, *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)


def test_a_state_dir_we_may_not_read_says_run_as_root_never_move_it_away(tmp_path):
    why = _cannot_drop_privileges()
    if why:
        pytest.skip(why)
    import json
    from helpers import ROOT
    state, env = _closed_state(tmp_path)
    hint = f"permission denied; run as root (or as the owner of {state}, user nobody)"
    hotel = str(ROOT / "asterisk" / "examples" / "hotel" / "etc-asterisk")
    r = _run_closed(env, "status", "--asterisk-dir", hotel, "--timeout", "5")
    assert f"state.json: cannot read the state file: {hint}" in r.stdout, r.stdout + r.stderr
    r = _run_closed(env, "status", "--asterisk-dir", hotel, "--timeout", "5", "--format",
                    "json")
    errors = json.loads(r.stdout)["errors"]
    assert hint in errors["trunk"] and hint in errors["renewal"], errors
    for args in (("trunk", "show"), ("rooms", "plan", "--map", "/dev/null")):
        r = _run_closed(env, *args)
        assert r.returncode == 2 and hint in r.stderr and r.stderr.count("\n") == 1, r.stderr
    # the database, once state.json can be read
    (state / "state.json").chmod(0o644)
    r = _run_closed(env, "rooms", "plan", "--map", "/dev/null")
    assert r.returncode == 2, r.stderr
    assert r.stderr == f"pbx-bridge: {state}/pbx-bridge.sqlite: cannot read the state " \
                       f"database: {hint}\n"
    for r in (_run_closed(env, "status", "--asterisk-dir", hotel, "--timeout", "5"),):
        assert "move it away" not in r.stdout + r.stderr


def test_backups_we_may_not_read_are_said_not_skipped(tmp_path):
    why = _cannot_drop_privileges()
    if why:
        pytest.skip(why)
    import subprocess
    import sys
    from helpers import ROOT
    state, env = _closed_state(tmp_path)
    code = ("from pathlib import Path; from pbx_bridge.generate.transaction import "
            "Transaction; from pbx_bridge.errors import PbxBridgeError\n"
            f"t = Transaction.__new__(Transaction); t.root = Path({str(state / 'backups')!r})\n"
            "try:\n    print(t.backups())\nexcept PbxBridgeError as e:\n    print(e)\n")
    r = subprocess.run([*NO_DAC, sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=60)
    assert f"{state}/backups: cannot read the backups: permission denied; run as root (or " \
           f"as the owner of {state}, user nobody)" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("content, why", [(b"{\"trunkId\": ", "it is not JSON"),
                                          (b"\xff\xfe", "it is not JSON"),
                                          (b"[1, 2]", "it is JSON but not an object")])
def test_only_a_corrupt_state_file_is_to_be_moved_away(tmp_path, content, why):
    from pbx_bridge.state import State
    (tmp_path / "state.json").write_bytes(content)
    with pytest.raises(PbxBridgeError) as err:
        State(tmp_path).read()
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path}/state.json: the state file is corrupt: {why}")
    assert msg.endswith("move it away to start afresh (the trunk id it held: pbx-bridge "
                        "trunk list)")


def test_a_bad_fastagi_address_is_said_once(tmp_path):
    conf = tmp_path / "pbx-bridge.toml"
    conf.write_text('[agi]\nfastagi = "nope"\n')
    conf.chmod(0o600)
    with pytest.raises(PbxBridgeError) as err:
        load(str(conf), env={})
    assert str(err.value) == f"{conf}, line 2: [agi] fastagi = 'nope': expected HOST:PORT"
