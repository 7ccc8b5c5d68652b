"""The command line as a user meets it: help, version, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import shlex
from pathlib import Path

import pytest

from helpers import PB_CMD, DATA, make_host

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "asterisk" / "examples" / "hotel"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PB_CMD, *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, **(env or {})})


def test_help_and_version():
    r = cli("--help")
    assert r.returncode == 0 and "preflight" in r.stdout
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == "pbx-bridge 0.1.0"
    r = cli("preflight", "--help")
    assert r.returncode == 0
    for opt in ("--asterisk-dir", "--endpoint", "--public-ip", "--fqdn", "--amazon-cidr",
                "--firewall-rules", "--dns-server", "--live", "--format"):
        assert opt in r.stdout


def test_no_command_is_usage():
    r = cli()
    assert r.returncode == 2 and "usage" in r.stderr


def test_agi_without_a_route_asks_only_for_the_route():
    r = cli("agi")  # ARG is optional: the usage error names only what is missing
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1].endswith("the following arguments are required: ROUTE")


@pytest.mark.parametrize("args,msg", [
    (["preflight", "--asterisk-dir", "/nonexistent/asterisk"], "does not exist"),
    (["preflight", "--asterisk-dir", str(DATA / "asterisk-22" / "etc-asterisk" / "pjsip.conf")],
     "is not a directory"),
    (["preflight", "--asterisk-dir", str(EXAMPLE / "etc-asterisk"), "--firewall-rules",
      "/nonexistent.rules", "--dns-server", "127.0.0.1:9"], "firewall rules file does not exist"),
    (["preflight", "--asterisk-dir", str(EXAMPLE / "etc-asterisk"), "--firewall-rules",
      str(DATA / "README.md"), "--dns-server", "127.0.0.1:9"], "not a ruleset"),
    (["preflight", "--asterisk-dir", str(EXAMPLE / "etc-asterisk"), "--firewall-rules",
      str(DATA)], "is a directory"),
    (["preflight", "--amazon-cidr", "3.239.178"], "not a network"),
    (["preflight", "--amazon-cidr", "2600::/32"], "IPv4"),
    (["preflight", "--public-ip", "pbx.example"], "not an IP address"),
    (["preflight", "--dns-server", "resolver"], "give an IP address"),
    (["preflight", "--dns-server", "127.0.0.1:99999"], "not a port"),
    (["preflight", "--format", "yaml"], "invalid choice"),
    (["preflight", "--nonsense"], "unrecognized arguments"),
])
def test_bad_input_is_one_line_and_exit_2(args, msg):
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_example_host_json_report(dns):
    r = cli("preflight", "--asterisk-dir", str(EXAMPLE / "etc-asterisk"), "--firewall-rules",
            str(EXAMPLE / "firewall.rules"), "--dns-server", dns.address, "--format", "json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    by_id = {f["id"]: f for f in doc["findings"]}
    assert set(by_id) == {"asterisk.config", "tls.transport", "tls.version", "tls.port",
                          "cert.valid", "cert.key", "cert.chain", "cert.dns", "ip.public",
                          "srtp.module", "srtp.endpoint", "rtp.range", "firewall.signaling",
                          "firewall.media", "amazon.ca", "tls.ciphers", "security.identify",
                          "security.transport", "security.key"}
    for f in doc["findings"]:
        assert set(f) == {"id", "status", "summary", "evidence", "where", "fix"}
    assert by_id["ip.public"]["status"] == "pass"
    assert by_id["ip.public"]["where"].endswith("etc-asterisk/pjsip.conf:20")
    assert by_id["cert.dns"]["status"] == "fail" and "NXDOMAIN" in by_id["cert.dns"]["summary"]
    assert by_id["amazon.ca"]["status"] == "warn"
    assert by_id["firewall.media"]["status"] == "pass"
    for id_ in ("tls.ciphers", "security.identify", "security.transport"):
        assert by_id[id_]["status"] == "pass", by_id[id_]
    # git keeps no group or other bits: the checked-out key is 0644 under the usual umask
    key = EXAMPLE / "etc-asterisk" / "keys" / "pbx.key"
    if key.stat().st_mode & 0o004:
        assert by_id["security.key"]["status"] == "fail" and "chmod 640" in \
            by_id["security.key"]["fix"]
    else:
        assert by_id["security.key"]["status"] == "pass"


def test_text_report_exit_0_when_only_warnings(tmp_path, dns):
    h = make_host(tmp_path / "h", amazon_ca=False)
    # the CLI runs the real host door for addresses; give the IP explicitly
    r = cli("preflight", "--asterisk-dir", str(h.root), "--firewall-rules",
            str(DATA / "firewall" / "amazon-open.nft"), "--dns-server", dns.address)
    assert r.returncode == 0, r.stdout
    assert "\x1b[" not in r.stdout  # no colour when not a terminal
    lines = r.stdout.splitlines()
    assert lines[-1].startswith("ready for Amazon: 18 pass, 1 warn")
    assert any(ln.startswith("WARN   amazon.ca") for ln in lines)


NO_NETNS = __import__("helpers").can_make_rulesets()


@pytest.mark.skipif(NO_NETNS is not None, reason=f"live ruleset: {NO_NETNS}")
def test_live_ruleset_read_from_the_real_tools_in_a_namespace(tmp_path, dns):
    """Without --firewall-rules the preflight reads iptables-save and nft itself."""
    h = make_host(tmp_path / "h")
    script = (DATA / "firewall" / "blocked-first.iptables.sh").read_text()
    nft = "nft add table inet extra && nft add chain inet extra input " \
          "'{ type filter hook input priority 10; policy accept; }' && " \
          "nft add rule inet extra input udp dport 12000-12999 drop"
    cmd = (f"{script}\n{nft}\n{shlex.join(PB_CMD)} preflight --asterisk-dir "
           f"{h.root} --dns-server {dns.address} --format json")
    r = subprocess.run(["unshare", "-n", "sh", "-ec", cmd], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 1, r.stderr
    by_id = {f["id"]: f for f in json.loads(r.stdout)["findings"]}
    sig, media = by_id["firewall.signaling"], by_id["firewall.media"]
    assert sig["status"] == "fail" and "3.239.178.192/26" in sig["summary"]
    assert sig["evidence"]["format"] == "iptables-save+nft-json"
    refused = media["evidence"]["refused"]
    # the native nft table drops 12000-12999 even where iptables accepts
    assert any(g.startswith("12000-12999 from 3.239.178.128/26: refused by rule at nft -j "
                            "list ruleset") for g in refused), refused


def _all_commands(parser, prefix=()):
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _all_commands(sub, prefix + (name,))


def test_every_command_has_help():
    from pbx_bridge.cli import build_parser
    commands = list(_all_commands(build_parser()))
    assert ("rooms", "apply") in commands and ("trunk", "create") in commands
    for cmd in commands:
        r = cli(*cmd, "--help")
        assert r.returncode == 0 and "usage: pbx-bridge " + " ".join(cmd) in r.stdout, cmd
