"""`pbx-bridge generate`: the trunk config for FreePBX and plain Asterisk, written safely."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import PB_CMD
from helpers import (DATA, PUBLIC_IP, freepbx_generate_tree, host_runner, install_keys,
                     plain_generate_tree)
from pbx_bridge.asterisk.cli import AsteriskCli
from pbx_bridge.host import Runner
from pbx_bridge.generate.plan import build
from pbx_bridge.generate.render import TrunkConfig
from pbx_bridge.generate.transaction import ApplyFailed, Transaction
from pbx_bridge.net import Network
from pbx_bridge.findings import Status
from pbx_bridge.preflight.checks import run_checks
from pbx_bridge.preflight.snapshot import Options, gather

ROOT = Path(__file__).parent.parent
FAKE_BIN = Path(__file__).parent / "bin"
MOVED = ("tls.transport", "tls.version", "tls.port", "srtp.endpoint", "srtp.module", "rtp.range",
         "tls.ciphers", "security.identify", "security.key")


def hashes(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def gen(etc: Path, state: Path, *args: str, asterisk: str | None = None,
        env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env.update(PBX_BRIDGE_STATE_DIR=str(state))
    # PATH decides whether an `asterisk` is "installed": none, or the recorded stand-in
    env["PATH"] = (f"{FAKE_BIN}:" if asterisk else "") + "/usr/bin:/bin"
    env["FAKE_ASTERISK_ETC"] = str(etc)
    if asterisk in ("down", "reject"):
        env[f"FAKE_ASTERISK_{asterisk.upper()}"] = "1"
    env.update(env_extra or {})
    return subprocess.run([*PB_CMD, "generate", "--asterisk-dir",
                           str(etc), "--public-ip", PUBLIC_IP, *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=60)


def statuses(etc: Path, **opts_: str) -> dict[str, Status]:
    opts = Options(asterisk_dir=etc, firewall=False, **opts_)
    runner = host_runner()
    snap = gather(opts, runner=runner, net=Network(("127.0.0.1", 9), 0.2, runner))
    return {f.id: f.status for f in run_checks(snap)}


@pytest.mark.parametrize("make", [plain_generate_tree, freepbx_generate_tree])
def test_write_then_preflight_passes_and_second_write_is_a_no_op(tmp_path, make):
    etc = make(tmp_path / "etc")
    before = statuses(etc)
    assert all(before[i] != Status.PASS for i in MOVED if not
               (i == "srtp.module" and make is freepbx_generate_tree)), before
    r = gen(etc, tmp_path / "state", "--write")
    assert r.returncode == 0, r.stderr
    assert "Asterisk is not installed here (asterisk not found): files written, reload " \
        "skipped" in r.stdout
    after = statuses(etc)
    assert {i: after[i] for i in MOVED} == {i: Status.PASS for i in MOVED}
    assert after["srtp.endpoint"] == Status.PASS and after["tls.transport"] == Status.PASS
    if make is freepbx_generate_tree:  # the generated from-alexa refuses calls not over TLS
        assert (before["security.transport"], after["security.transport"]) == \
            (Status.SKIP, Status.PASS)
    else:  # this PBX has a [from-alexa] of its own: generate leaves it, and says what to add
        assert after["security.transport"] == Status.FAIL
        assert "add the TLS check at its top" in r.stdout
    written = hashes(etc)
    r = gen(etc, tmp_path / "state", "--write")
    assert r.returncode == 0 and "nothing to change" in r.stdout and "wrote" not in r.stdout
    assert hashes(etc) == written


@pytest.mark.parametrize("make", [plain_generate_tree, freepbx_generate_tree])
def test_rollback_restores_the_original_bytes(tmp_path, make):
    etc = make(tmp_path / "etc")
    original = hashes(etc)
    assert gen(etc, tmp_path / "state", "--write").returncode == 0
    assert hashes(etc) != original
    r = gen(etc, tmp_path / "state", "--rollback")
    assert r.returncode == 0, r.stderr
    assert hashes(etc) == original
    r = gen(etc, tmp_path / "state", "--rollback")
    assert r.returncode == 1 and "already rolled back" in r.stderr


def _backup_ids(out: str) -> list[str]:
    """The ids --list-backups prints, newest first."""
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("ID "))
    return [ln.split()[0] for ln in lines[start + 1:] if ln and not ln.startswith(("(", "back"))]


@pytest.mark.parametrize("make", [plain_generate_tree, freepbx_generate_tree])
def test_two_writes_roll_back_step_by_step_or_to_a_backup(tmp_path, make):
    """Rollback goes back as far as the backups do: step by step, or --to a change, down to
    the untouched files byte for byte; --list-backups shows what there is to go back to."""
    etc = make(tmp_path / "etc")
    state = tmp_path / "state"
    untouched = hashes(etc)
    assert gen(etc, state, "--write").returncode == 0
    first = hashes(etc)
    r = gen(etc, state, "--write", "--amazon-sip", "3.239.178.130:5061", "--rtp-range",
            "12000-12999")
    assert r.returncode == 0, r.stderr
    second = hashes(etc)
    assert len({str(untouched), str(first), str(second)}) == 3
    r = gen(etc, state, "--list-backups")
    assert r.returncode == 0, r.stderr
    ids = _backup_ids(r.stdout)
    assert len(ids) == 2 and ids == sorted(ids, reverse=True), r.stdout
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith(tuple(ids))]
    assert all(" written " in ln and " generate " in ln for ln in rows), r.stdout
    assert "pbx-bridge generate --rollback --to ID" in r.stdout
    # one step, then one more: the untouched files
    r = gen(etc, state, "--rollback")
    assert r.returncode == 0, r.stderr
    assert hashes(etc) == first
    assert f"rolled back the change of {ids[0]}" in r.stdout
    assert f"1 earlier change(s) not rolled back (--rollback again undoes {ids[1]}" in r.stdout
    r = gen(etc, state, "--rollback")
    assert r.returncode == 0, r.stderr
    assert hashes(etc) == untouched
    assert "the files are as before the oldest backup" in r.stdout
    r = gen(etc, state, "--rollback")
    assert r.returncode == 1 and "already rolled back" in r.stderr
    assert " rolled back " in gen(etc, state, "--list-backups").stdout
    # two writes again, then straight back to before the first of them
    assert gen(etc, state, "--write").returncode == 0
    assert gen(etc, state, "--write", "--amazon-sip", "3.239.178.130:5061").returncode == 0
    ids = _backup_ids(gen(etc, state, "--list-backups").stdout)
    assert len(ids) == 4
    r = gen(etc, state, "--rollback", "--to", ids[1][:17])  # a unique start will do
    assert r.returncode == 0, r.stderr
    assert f"rolled back 2 changes, back to before {ids[1]}" in r.stdout
    assert hashes(etc) == untouched
    # ... also from further back: the rolled-back changes are skipped
    assert gen(etc, state, "--write").returncode == 0
    r = gen(etc, state, "--rollback", "--to", ids[3])
    assert r.returncode == 0 and hashes(etc) == untouched, r.stdout + r.stderr
    r = gen(etc, state, "--rollback", "--to", ids[3])
    assert r.returncode == 0 and "nothing to roll back" in r.stdout
    # bad input: one line, exit 2
    for args, words in ((("--rollback", "--to", "1999"), "--to 1999 is no backup of"),
                        (("--rollback", "--to", ids[0][:4]), "names several backups"),
                        (("--to", ids[0]), "--to needs --rollback")):
        r = gen(etc, state, *args)
        assert r.returncode == 2 and words in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_list_backups_names_renew_hook_and_older_backups(tmp_path):
    """Which command made a backup: recorded; for a backup from before that, guessed from its
    files (renew-hook writes only the certificate and key)."""
    import json
    etc = plain_generate_tree(tmp_path / "etc")
    state = tmp_path / "state"
    assert gen(etc, state, "--write").returncode == 0
    key = etc / "keys" / "pbx.key"
    tx = Transaction(state, etc, AsteriskCli(Runner(), "no-such-asterisk"),
                     command="renew-hook")
    from pbx_bridge.generate.plan import FileChange
    tx.apply([FileChange(key, key.read_bytes(), key.read_bytes() + b"\n", private=True)],
             reload=False, check=lambda a, log: None)
    old = next(f for f in sorted((state / "backups").iterdir()))
    doc = json.loads((old / "manifest.json").read_text())
    del doc["command"]  # as written before --list-backups existed
    (old / "manifest.json").write_text(json.dumps(doc))
    out = gen(etc, state, "--list-backups").stdout
    rows = out.splitlines()[2:4]
    assert " renew-hook " in rows[0] and "keys/pbx.key" in rows[0], out
    assert " generate? " in rows[1] and "pjsip_pbx-bridge.conf (new)" in rows[1], out
    r = gen(etc, state, "--list-backups", "--asterisk-dir", str(tmp_path))
    assert r.returncode == 0 and "no backups of" in r.stdout and "(2 of other" in r.stdout


def test_dry_run_shows_a_diff_and_writes_nothing(tmp_path):
    etc = plain_generate_tree(tmp_path / "etc")
    original = hashes(etc)
    r = gen(etc, tmp_path / "state")
    assert r.returncode == 0
    assert hashes(etc) == original and not (tmp_path / "state").exists()
    assert "+++ " + str(etc / "pjsip_pbx-bridge.conf") in r.stdout
    assert "+#include pjsip_pbx-bridge.conf" in r.stdout
    key = etc / "keys" / "pbx.key"
    assert key.stat().st_mode & 0o004  # the example's key, as copied: readable by others
    assert f"# {key}: private key mode and group tightened" in r.stdout
    assert "BEGIN" not in r.stdout.split(str(key))[1].split("\n")[0]  # its bytes never shown
    assert "dry run: 8 file(s) would change" in r.stdout
    assert "iptables -I INPUT -s 3.239.178.128/25 -p udp -m udp --dport 10000:20000 -j ACCEPT" \
        in r.stdout
    # FreePBX's firewall: the two services, not 'trust', which opens every port to the range
    assert "fwconsole firewall trust" not in r.stdout.replace("not 'fwconsole firewall trust'",
                                                              "")
    assert "'Alexa SIP TLS' TCP 5061 and 'Alexa SRTP' UDP 10000:20000" in r.stdout
    assert "FILL-IN-AMAZON-SIP-ADDRESS" in r.stdout  # Amazon's address is not invented


def test_user_lines_are_kept_byte_for_byte(tmp_path):
    etc = plain_generate_tree(tmp_path / "etc")
    rtp_before = (etc / "rtp.conf").read_bytes()
    pj_before = (etc / "pjsip.conf").read_bytes()
    assert gen(etc, tmp_path / "state", "--write").returncode == 0
    rtp_after = (etc / "rtp.conf").read_bytes()
    assert rtp_after.startswith(rtp_before)  # appended only
    assert b"\r\n#include rtp_pbx-bridge.conf\r\n" in rtp_after  # in the file's CRLF
    assert (etc / "pjsip.conf").read_bytes().startswith(pj_before)
    # the user edits outside our block; a new run with other values changes only our block
    (etc / "pjsip.conf").write_bytes((etc / "pjsip.conf").read_bytes() + b"; my note\n")
    mine = (etc / "pjsip.conf").read_bytes()
    assert gen(etc, tmp_path / "state", "--write", "--port", "5063").returncode == 0
    assert (etc / "pjsip.conf").read_bytes() == mine
    ours = (etc / "pjsip_pbx-bridge.conf").read_text()
    assert "bind=0.0.0.0:5063" in ours and ours.count("; BEGIN pbx-bridge") == 1
    rtp = (etc / "rtp_pbx-bridge.conf").read_text()
    assert rtp.splitlines()[1] == "[general](+)"  # appended to the existing [general]


def test_conflicts_stop_before_writing(tmp_path):
    import shutil
    etc = tmp_path / "etc"
    shutil.copytree(DATA / "asterisk-22" / "etc-asterisk", etc)
    original = hashes(etc)
    r = gen(etc, tmp_path / "state", "--write")
    assert r.returncode == 1 and "already binds TCP port 5061" in r.stderr
    r = gen(etc, tmp_path / "state", "--write", "--port", "5062")
    assert r.returncode == 1 and "[alexa] (type=endpoint)" in r.stderr and "pjsip.conf:" in r.stderr
    assert hashes(etc) == original
    r = gen(etc, tmp_path / "state", "--write", "--port", "5062", "--endpoint", "amazon")
    # no certificate, key or CA list in this tree: Asterisk would drop the transport
    assert r.returncode == 1 and "not written: the certificate /etc/asterisk/keys/pbx.crt " \
        "does not exist" in r.stderr
    assert hashes(etc) == original
    install_keys(etc)
    r = gen(etc, tmp_path / "state", "--write", "--port", "5062", "--endpoint", "amazon")
    assert r.returncode == 0, r.stderr
    assert "the dialplan already has [from-alexa]" in r.stdout


def test_noload_res_srtp_is_a_conflict(tmp_path):
    etc = plain_generate_tree(tmp_path / "etc")
    (etc / "modules.conf").write_text("[modules]\nautoload=yes\nnoload => res_srtp.so\n")
    r = gen(etc, tmp_path / "state", "--write")
    assert r.returncode == 1 and "noload" in r.stderr and "never edits your lines" in r.stderr


@pytest.mark.parametrize("args,word", [
    (["--endpoint", "alexa;evil"], "--endpoint"),
    (["--cert", "/etc/asterisk/keys/a]b.crt"], "cert_file"),
    (["--local-net", "10.0.0.0/8\n[evil]"], "network"),
    (["--rtp-range", "20000-10000"], "--rtp-range"),
    (["--context", "from[x]"], "--context"),
    (["--room-pattern", "7XXX;Hangup"], "--room-pattern"),
])
def test_unsafe_values_are_refused(tmp_path, args, word):
    etc = plain_generate_tree(tmp_path / "etc")
    original = hashes(etc)
    r = gen(etc, tmp_path / "state", "--write", *args)
    assert r.returncode == 2 and word in r.stderr and "Traceback" not in r.stderr
    assert hashes(etc) == original


def test_running_asterisk_rejects_and_everything_is_rolled_back(tmp_path):
    etc = plain_generate_tree(tmp_path / "etc")
    original = hashes(etc)
    r = gen(etc, tmp_path / "state", "--write", asterisk="reject")
    assert r.returncode == 1
    assert "did not accept the new config" in r.stderr and "restored" in r.stderr
    assert hashes(etc) == original


def test_asterisk_not_running_writes_and_says_so(tmp_path):
    etc = plain_generate_tree(tmp_path / "etc")
    r = gen(etc, tmp_path / "state", "--write", asterisk="down")
    assert r.returncode == 0 and "Asterisk is not running: files written, reload skipped" \
        in r.stdout


def test_failure_between_files_restores_every_file(tmp_path):
    etc = plain_generate_tree(tmp_path / "etc")
    original = hashes(etc)
    config = TrunkConfig(freepbx=False, transport="transport-alexa-tls", endpoint="alexa",
                         port=5061, cert_file="/etc/asterisk/keys/pbx.crt",
                         priv_key_file="/etc/asterisk/keys/pbx.key",
                         ca_list_file="/etc/asterisk/keys/ca.crt", public_ip=PUBLIC_IP,
                         local_nets=(), rtp_start=10000, rtp_end=20000, context="from-alexa",
                         amazon_cidrs=("3.239.178.128/25",), room_pattern="_7XXX",
                         amazon_sip=None)
    plan = build(etc, config)

    def fail_on_third(i: int) -> None:
        if i == 2:
            raise OSError(28, "No space left on device")

    tx = Transaction(tmp_path / "state", etc, AsteriskCli(Runner(), "no-such-asterisk"),
                     fail_on_third)
    with pytest.raises(ApplyFailed) as err:
        tx.apply(plan.changes, reload=True, check=lambda a, log: None)  # never reached
    assert "No space left" in str(err.value) and "restored" in str(err.value)
    assert hashes(etc) == original


def test_kill_during_write_leaves_files_old_or_new_and_rollback_restores(tmp_path):
    etc = plain_generate_tree(tmp_path / "etc")
    original = hashes(etc)
    # what a complete write produces, on a copy
    import shutil
    shutil.copytree(etc, tmp_path / "done")
    assert gen(tmp_path / "done", tmp_path / "s2", "--write").returncode == 0
    complete = hashes(tmp_path / "done")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env.update(PBX_BRIDGE_STATE_DIR=str(tmp_path / "state"), PATH="/usr/bin:/bin",
               PBX_BRIDGE_WRITE_PAUSE="2")
    proc = subprocess.Popen([*PB_CMD, "generate", "--asterisk-dir",
                             str(etc), "--public-ip", PUBLIC_IP, "--write"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while "wrote file 2" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert "wrote file 2" in seen
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    now = hashes(etc)
    assert set(original) <= set(now) <= set(complete)
    for name, digest in now.items():
        assert digest in (original.get(name), complete.get(name)), name
    assert sum(now[n] != original.get(n) for n in now) == 2  # two files were replaced
    assert not list(etc.glob(".*.tmp"))  # no half-written temporary left behind
    r = gen(etc, tmp_path / "state", "--rollback")
    assert r.returncode == 0, r.stderr
    assert hashes(etc) == original


def test_calls_from_alexa_go_only_to_the_phones_context(tmp_path):
    etc = plain_generate_tree(tmp_path / "etc")
    text = (etc / "extensions.conf").read_text()
    (etc / "extensions.conf").write_text(text.replace("[from-alexa]", "[old-alexa]"))
    r = gen(etc, tmp_path / "state")
    assert r.returncode == 0, r.stderr
    # the phone endpoint 201 lives in from-internal, which the dialplan has
    assert "+ same => n,Goto(from-internal,${EXTEN},1)" in r.stdout
    assert '"${PJSIP_ENDPOINT(${EXTEN},context)}" = "from-internal"' in r.stdout
    assert "Goto(default" not in r.stdout
    # phones whose context the dialplan lacks: refused, and the flag to pass is named
    (etc / "extensions.conf").write_text(text.replace("[from-alexa]", "[old-alexa]")
                                         .replace("[from-internal]", "[elsewhere]"))
    r = gen(etc, tmp_path / "state")
    assert r.returncode == 1 and "from-internal: 1 endpoint(s), not in the dialplan" in \
        r.stderr and "--phones-context" in r.stderr


def test_freepbx_context_with_outbound_routes_is_refused(tmp_path):
    etc = freepbx_generate_tree(tmp_path / "etc")
    before = hashes(etc)
    r = gen(etc, tmp_path / "state", "--write", "--context", "from-internal")
    assert r.returncode == 1 and "outbound routes" in r.stderr and "PSTN" in r.stderr
    assert hashes(etc) == before
    r = gen(etc, tmp_path / "state")
    assert r.returncode == 0
    assert "+include => ext-local" in r.stdout and "+include => from-internal" not in r.stdout
    assert "+context=from-alexa" in r.stdout


def _group() -> str:
    import grp
    return next(g for g in ("nogroup", "daemon", "bin", "root") if _exists(grp.getgrnam, g))


def _exists(get, name) -> bool:
    try:
        get(name)
        return True
    except KeyError:
        return False


@pytest.mark.parametrize("group", ["no-such-group-here", "existing"])
def test_a_key_others_can_read_is_made_private_and_stays_so(tmp_path, group):
    """Under umask 000, an old 0644 key: --write makes it 0640 to the key group (0600 when
    the host has no such group); its backup is 0600; a rollback puts the old bytes back
    without the bits for others."""
    import grp
    etc = plain_generate_tree(tmp_path / "etc")
    key = etc / "keys" / "pbx.key"
    key.chmod(0o644)
    data = key.read_bytes()
    name = _group() if group == "existing" else group
    settings = tmp_path / "pbx-bridge.toml"
    settings.write_text(f'[pbx]\nkey_group = "{name}"\n')
    settings.chmod(0o600)
    env = {"PBX_BRIDGE_CONFIG": str(settings)}

    def run(*args):
        return subprocess.run(
            [*PB_CMD, "generate", "--asterisk-dir", str(etc),
             "--public-ip", PUBLIC_IP, *args], capture_output=True, text=True, cwd=ROOT,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")},
                 "PBX_BRIDGE_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin",
                 **env}, timeout=60, preexec_fn=lambda: os.umask(0))
    r = run()
    assert f"the private key {key} is readable by other users (mode 0644)" in r.stdout
    assert key.stat().st_mode & 0o777 == 0o644  # a dry run changes nothing
    r = run("--write")
    assert r.returncode == 0, r.stderr
    assert ("key_group 'no-such-group-here' is no group of this host" in r.stderr) == \
        (group != "existing")
    st = key.stat()
    assert key.read_bytes() == data
    if group == "existing":
        assert (st.st_mode & 0o777, st.st_gid) == (0o640, grp.getgrnam(name).gr_gid)
    else:
        assert st.st_mode & 0o777 == 0o600
    backup = sorted((tmp_path / "state" / "backups").iterdir())[-1]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in backup.iterdir())
    assert statuses(etc, key_group=name)["security.key"] == Status.PASS
    assert "readable by other users" not in run().stdout  # nothing more to do
    r = run("--rollback")
    assert r.returncode == 0, r.stderr
    assert key.read_bytes() == data and key.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("context,words", [
    ("ext-local", "FreePBX generates contexts named so"),
    ("from-pstn", "FreePBX generates contexts named so"),
    ("macro-dial", "FreePBX generates contexts named so"),
    ("hotel-rooms", "the dialplan already has [hotel-rooms] at"),
])
def test_freepbx_context_must_be_ours(tmp_path, context, words):
    """Asterisk merges same-named contexts: --context ext-local would add the extension
    includes into FreePBX's own ext-local, --context from-pstn into the inbound context."""
    etc = freepbx_generate_tree(tmp_path / "etc")
    with open(etc / "extensions_custom.conf", "a") as f:
        f.write("\n[hotel-rooms]\nexten => 1,1,NoOp()\n")
    before = hashes(etc)
    r = gen(etc, tmp_path / "state", "--context", context, "--write")
    assert r.returncode == 1 and words in r.stderr, r.stderr
    assert hashes(etc) == before
    assert gen(etc, tmp_path / "state", "--context", "pbx-bridge-rooms").returncode == 0


@pytest.mark.parametrize("disk", ["full", "read-only"])
def test_a_full_or_read_only_asterisk_dir_is_one_line_and_changes_nothing(tmp_path, disk):
    import shutil
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a small tmpfs (.ci/run runs as root)")
    etc = tmp_path / "etc"
    etc.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(etc)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        plain_generate_tree(tmp_path / "src")
        for p in (tmp_path / "src").iterdir():
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, etc / p.name)
        if disk == "full":
            fd = os.open(etc / ".fill", os.O_WRONLY | os.O_CREAT)  # every block taken
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass
            finally:
                os.close(fd)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(etc)], check=True)
        before = hashes(etc)
        r = gen(etc, tmp_path / "state", "--write")
        why = "No space left on device" if disk == "full" else "Read-only file system"
        assert r.returncode == 1 and why in r.stderr and "nothing changed" in r.stderr, r.stderr
        last = r.stderr.splitlines()[-1]  # (a key_group warning may come before it)
        assert last.startswith("pbx-bridge: cannot write ") and "Traceback" not in r.stderr
        assert hashes(etc) == before  # and no temporary file left
    finally:
        subprocess.run(["umount", "-l", str(etc)], capture_output=True)


def test_freepbx_same_room_pattern_in_from_internal_custom_is_refused(tmp_path):
    """Asterisk will not register our _7XXX beside an identical one ('already in use'):
    phones would run the admin's line. Named, nothing written."""
    etc = freepbx_generate_tree(tmp_path / "etc")
    custom = etc / "extensions_custom.conf"
    custom.write_text(custom.read_text().replace(
        "[from-internal-custom]\n", "[from-internal-custom]\nexten => _7XXX,1,NoOp(mine)\n", 1))
    r = gen(etc, tmp_path / "state", "--write")
    assert r.returncode == 1 and "has 'exten => _7XXX'" in r.stderr, r.stderr
    assert "extensions_custom.conf:2" in r.stderr


def test_context_of_the_room_route_is_refused(tmp_path):
    etc = plain_generate_tree(tmp_path / "etc")
    r = gen(etc, tmp_path / "state", "--context", "pbx-bridge-to-alexa")
    assert r.returncode == 2 and "pbx-bridge's route from the phones to the rooms" in r.stderr
