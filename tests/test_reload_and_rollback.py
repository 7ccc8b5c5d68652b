"""Against a real Asterisk 22.10.1 on a real FreePBX config: how generate reaches Asterisk
when AMI refuses it (the CLI stands in; neither: exit 1, never "reload skipped"), and
rollback going back through every backup to the untouched FreePBX files."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from helpers import PUBLIC_IP
from realasterisk import AMI_SECRET, AMI_USER, RealAsterisk, boot
from test_real_asterisk import freepbx_config, pb

pytestmark = pytest.mark.asterisk


def hashes(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


class Site:
    def __init__(self, ast: RealAsterisk, etc: Path, home: Path, tls_port: int,
                 untouched: dict[str, str]) -> None:
        self.ast, self.etc, self.home, self.tls_port = ast, etc, home, tls_port
        self.untouched = untouched  # the FreePBX files before any generate
        self.state = home / "state"

    def settings(self, name: str, ami_secret: str | None = None, cli: str | None = None
                 ) -> Path:
        text = self.ast.settings_toml(self.state, self.etc)
        if cli is not None:
            text = text.replace(f'asterisk_cli = "{self.ast.cli_command}"',
                                f'asterisk_cli = "{cli}"')
        if ami_secret is not None:
            text += (f"\n[ami]\nhost = \"127.0.0.1\"\nport = {self.ast.ami_port}\n"
                     f"username = \"{AMI_USER}\"\nsecret = \"{ami_secret}\"\n")
        path = self.home / f"{name}.toml"
        path.write_text(text)
        path.chmod(0o600)
        return path

    def generate(self, settings: Path, *args: str):  # type: ignore[no-untyped-def]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
        env["PBX_BRIDGE_CONFIG"] = str(settings)
        keys = self.home / "keys"
        if "--rollback" in args or "--list-backups" in args:
            return pb(["generate", "--asterisk-dir", str(self.etc), *args], env)
        return pb(["generate", "--asterisk-dir", str(self.etc), "--public-ip", PUBLIC_IP,
                   "--bind", "127.0.0.1", "--port", str(self.tls_port), "--local-net",
                   "127.0.0.0/8", "--cert", str(keys / "pbx.crt"), "--key",
                   str(keys / "pbx.key"), "--ca-list", str(keys / "ca.crt"), *args], env)


@pytest.fixture(scope="module")
def site(tmp_path_factory, request) -> Site:
    """FreePBX's config on a running Asterisk, as test_real_asterisk's freepbx fixture builds
    it, its files recorded before anything is generated."""
    home = tmp_path_factory.mktemp("freepbx-doors")
    etc, ami_port, tls_port = freepbx_config(home)
    untouched = hashes(etc)
    ast = boot(etc, ami_port)
    request.addfinalizer(ast.stop)
    return Site(ast, etc, home, tls_port, untouched)


def test_wrong_ami_secret_falls_back_to_the_cli_or_fails(site):
    """A wrong AMI secret on a running Asterisk: the CLI reloads instead; when the CLI cannot
    either, the files are written and generate exits 1 naming the reload commands (an
    automated deploy must not read "reload skipped" as success)."""
    wrong = site.settings("wrong-ami", ami_secret="not-" + AMI_SECRET)
    r = site.generate(wrong, "--write")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"AMI login as {AMI_USER} failed: Authentication failed" in r.stdout
    assert f"reached it through the CLI ({site.ast.cli_command}) instead; Asterisk " \
        "reloaded; Asterisk loaded transport transport-alexa-tls" in r.stdout
    assert AMI_SECRET not in r.stdout + r.stderr
    assert re.search(r"Endpoint:\s+alexa\b", site.ast.cli("pjsip show endpoints"))

    # neither door: AMI refuses, the CLI names a control socket that is not there
    cli = f"{site.ast.binary} -C {site.home}/no-such/asterisk.conf"
    neither = site.settings("neither", ami_secret="not-" + AMI_SECRET, cli=cli)
    before = hashes(site.etc)
    r = site.generate(neither, "--write", "--amazon-sip", "3.239.178.130:5061")
    assert r.returncode == 1, r.stdout
    err = r.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "files written (" in err and "but Asterisk runs and could not be reloaded" in err
    assert "Authentication failed" in err and "Asterisk is not running" in err
    assert f"reload it: {cli} -rx 'module reload res_pjsip.so' && {cli} -rx " \
        "'module reload res_rtp_asterisk.so' && " in err
    assert "pbx-bridge generate --write' again" in err
    assert hashes(site.etc) != before  # written, not reloaded
    assert "3.239.178.130" not in site.ast.cli("pjsip show aor alexa")
    # with the settings fixed, the next run reloads and checks the written change
    good = site.settings("good-ami", ami_secret=AMI_SECRET)
    r = site.generate(good, "--write", "--amazon-sip", "3.239.178.130:5061")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "finished the interrupted change" in r.stdout
    assert "3.239.178.130" in site.ast.cli("pjsip show aor alexa")
    # a rollback that cannot reload says so too (exit 1), with the files restored
    r = site.generate(neither, "--rollback")
    assert r.returncode == 1 and "rolled back the change" in r.stderr
    assert "Asterisk runs and could not be reloaded" in r.stderr and "reload it:" in r.stderr
    assert hashes(site.etc) == before
    site.ast.cli("module reload res_pjsip.so")


def test_two_writes_then_rollback_to_the_untouched_freepbx_files(site):
    good = site.settings("good-ami", ami_secret=AMI_SECRET)
    assert site.generate(good, "--write").returncode in (0, 1)  # whatever the test above left
    r = site.generate(good, "--write", "--amazon-sip", "3.239.178.131:5061")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3.239.178.131" in site.ast.cli("pjsip show aor alexa")
    r = site.generate(good, "--list-backups")
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if re.match(r"\d{8}T", ln)]
    assert len(rows) >= 3 and " verified " in rows[0] and " generate " in rows[0], r.stdout
    assert "pjsip.endpoint_custom.conf" in rows[-1]
    oldest = rows[-1].split()[0]
    r = site.generate(good, "--rollback", "--to", oldest)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Asterisk reloaded" in r.stdout and f"back to before {oldest}" in r.stdout
    assert hashes(site.etc) == site.untouched  # the FreePBX files, byte for byte
    assert "Unable to find object alexa" in site.ast.cli("pjsip show endpoint alexa")
    r = site.generate(good, "--rollback")
    assert r.returncode == 1 and "already rolled back" in r.stderr
