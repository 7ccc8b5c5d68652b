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
