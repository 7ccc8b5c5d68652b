"""Everyday CLI (issue 13): strict flags, help with defaults, NO_COLOR, progress without a
terminal, Ctrl-C during an apply, output piped into head, prompts."""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import PB_CMD, ROOT, SECRET, csv_of, pb, rows
from pbx_bridge.cli import build_parser

EXAMPLE = ROOT / "asterisk" / "examples" / "hotel"


def parsers():
    """(command words, parser) for every command and sub-command."""
    def walk(p, path):
        yield path, p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    yield from walk(sp, path + [name])
    yield from walk(build_parser(), [])


def plain_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env["PBX_BRIDGE_STATE_DIR"] = str(tmp_path / "state")
    env.update(extra)
    return env


def on_pty(argv: list[str], env: dict[str, str], answer: bytes | None = None,
           timeout: float = 60) -> tuple[int, bytes]:
    """Run with stdin, stdout and stderr on a terminal; returns (exit code, what it showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.chdir(ROOT)
        os.execve(PB_CMD[0], [*PB_CMD, *argv], env)
    out = b""
    deadline = time.monotonic() + timeout
    sent = False
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if answer is not None and not sent and b"[y/N]" in out:
            os.write(fd, answer)
            sent = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


# ------------------------------------------------------------------ flags

def test_abbreviated_flags_are_refused_and_nothing_is_written(tmp_path):
    from helpers import plain_generate_tree
    d = plain_generate_tree(tmp_path / "etc")
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    r = pb(plain_env(tmp_path), "generate", "--asterisk-dir", str(d), "--wr", "--no")
    assert r.returncode == 2
    assert r.stderr.startswith("usage: pbx-bridge generate")
    assert "unrecognized arguments: --wr --no" in r.stderr
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before
    r = pb(plain_env(tmp_path), "rooms", "apply", "--map", "m.csv", "--f")
    assert r.returncode == 2 and r.stderr.startswith("usage: pbx-bridge rooms apply")
    for _, p in parsers():
        assert p.allow_abbrev is False


def test_every_option_has_help_showing_its_default():
    for words, p in parsers():
        if words and not any(isinstance(a, argparse._SubParsersAction) for a in p._actions):
            assert p.description, f"{' '.join(words)} has no description"
        text = p.format_help()
        for a in p._actions:
            if not a.option_strings or a.dest in ("help", "version"):
                continue
            assert a.help, f"{' '.join(words)} {a.option_strings[0]} has no help"
            if a.default not in (None, False, argparse.SUPPRESS, [], ()) and a.nargs != 0:
                flat = "".join(text.split())  # help wraps lines, even inside from-alexa
                shown = {str(a.default).replace(" ", "")}
                if isinstance(a.default, (int, float)):
                    shown.add(f"{a.default:g}")
                assert "default" in flat and any(x in flat for x in shown), \
                    f"{' '.join(words)} {a.option_strings[0]}: default {a.default} not shown"


def test_options_are_offered_only_where_they_work():
    found = dict((" ".join(w), p) for w, p in parsers())
    opts = {k: {o for a in p._actions for o in a.option_strings} for k, p in found.items()}
    assert "--endpoint" in opts["rooms apply"] and "--endpoint" not in opts["rooms plan"]
    assert "--yes" not in opts["rooms plan"] and "--concurrency" not in opts["rooms plan"]


def test_rooms_discover_json_is_json_and_property_comes_from_settings(hotel, tmp_path):
    srv, tid, env = hotel()
    conf = tmp_path / "s.toml"
    conf.write_text('[pbx]\nproperty = "amzn1.ask.unit.hotel"\n')
    conf.chmod(0o600)
    r = pb({**env, "PBX_BRIDGE_CONFIG": str(conf)}, "rooms", "discover", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc) == 40 and doc[0] == {"extension": "", "room": "Room 100",
                                         "commsProfileId": ""}
    r = pb(env, "rooms", "discover")
    assert r.returncode == 2 and "[pbx] property" in r.stderr


# ------------------------------------------------------------------ terminals and pipes

def test_no_color_turns_colour_off(tmp_path):
    argv = ["preflight", "--asterisk-dir", str(EXAMPLE / "etc-asterisk"),
            "--firewall-rules", str(EXAMPLE / "firewall.rules"), "--dns-server", "127.0.0.1:9"]
    code, shown = on_pty(argv, plain_env(tmp_path))
    assert b"\x1b[32mPASS" in shown
    for value in ("1", ""):  # any value, even empty
        code, shown = on_pty(argv, plain_env(tmp_path, NO_COLOR=value))
        assert b"PASS" in shown and b"\x1b[" not in shown


def test_output_into_a_closed_pipe_ends_quietly(hotel, tmp_path):
    srv, tid, env = hotel()
    for argv in (["rooms", "discover", "--property", "amzn1.ask.unit.hotel"], ["--help"],
                 ["trunk", "list"]):
        # as on a host (Asterisk, systemd, a shell): stdout block-buffered into the pipe
        env = {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}
        p = subprocess.Popen([*PB_CMD, *argv], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close()  # like `| head -0`: the reader is gone before anything is written
        err = p.stderr.read().decode()
        assert p.wait(60) == 0 and err == "", (argv, err)


def test_declining_the_prompt_changes_nothing_and_exits_0(hotel, tmp_path):
    srv, tid, env = hotel()
    m = tmp_path / "m.csv"
    m.write_text(csv_of(rows(3)))
    code, shown = on_pty(["rooms", "apply", "--map", str(m)], env, answer=b"n\n")
    assert code == 0 and b"nothing changed" in shown, shown
    assert srv.emulator.state.mappings[tid] == {}


def test_messages_never_land_on_the_progress_line(hotel, tmp_path):
    """On a terminal, a throttling notice during the progress bar starts a line of its
    own."""
    srv, tid, env = hotel(throttle_rate=0.3, retry_after=3, seed=5)
    m = tmp_path / "m.csv"
    m.write_text(csv_of(rows(8)))
    code, shown = on_pty(["rooms", "apply", "--map", str(m), "--yes", "--concurrency", "1"],
                         env, timeout=120)
    assert code == 0, shown
    text = shown.decode()
    assert "retrying in 3.0 s" in text and "8/8" in text
    before = [text[:i] for i in range(len(text)) if text.startswith("pbx-bridge: warning:", i)]
    assert before and all(b.endswith(("\r\x1b[K", "\n")) for b in before)


# ------------------------------------------------------------------ progress and Ctrl-C

def test_interrupted_apply_says_how_far_it_got_and_a_rerun_finishes(hotel, tmp_path):
    import threading
    srv, tid, env = hotel(latency_ms=20)
    # the third write at "Amazon" waits until Ctrl-C was sent: the apply cannot have ended
    # before it, however slow this machine is (a gate, not a longer sleep)
    gate, writes = threading.Event(), []

    def saved() -> None:  # the emulator's save(), after each change it made
        writes.append(1)
        if len(writes) == 3:
            assert gate.wait(60)
    srv.emulator.save = saved
    m = tmp_path / "m.csv"
    m.write_text(csv_of(rows(30)))
    env = {**env, "PBX_BRIDGE_PROGRESS_EVERY": "0"}  # a line at every step
    p = subprocess.Popen([*PB_CMD, "rooms", "apply", "--map",
                          str(m), "--yes", "--concurrency", "1"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stderr.readline()  # a progress line: no terminal, yet it reports
        assert first.startswith("pbx-bridge: rooms apply: ") and "/30 done (" in first, first
        p.send_signal(signal.SIGINT)
    finally:
        gate.set()
    rest = p.stderr.read()
    assert p.wait(60) == 130
    last = rest.strip().splitlines()[-1]
    assert last.startswith("pbx-bridge: interrupted: ") and \
        last.endswith("/30 done; run it again to finish"), rest
    done = int(last.split(": ")[2].split("/")[0])
    assert 0 < done < 30
    assert len(srv.emulator.state.mappings[tid]) == done  # nothing done that was not counted
    routes = json.loads((tmp_path / "state" / "routes.json").read_text())
    assert len(routes["rooms"]) == done  # and what was done is routed
    r = pb(env, "rooms", "apply", "--map", str(m), "--yes")
    assert r.returncode == 0 and f"applied {30 - done} change(s)" in r.stdout
    assert SECRET not in r.stdout + r.stderr + rest


IMPORT_PROBE = """
import contextlib, io, json, sys
from pbx_bridge.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)))
"""


def imported(*argv: str) -> set[str]:
    """The modules a whole ``pbx-bridge ARGV`` process has imported when it ends."""
    r = subprocess.run([sys.executable, "-c", IMPORT_PROBE, *argv], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout))


def packages(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_each_command_imports_only_what_it_uses():
    """Start-up cost is imports: --version needs no argparse, --help no command module, and
    preflight imports cryptography only for a certificate and dnspython only for a look-up
    (the issue measured 0.29 s of a preflight in modules the run never touched)."""
    from helpers import PUBLIC_IP, DnsServer
    assert "argparse" not in imported("--version")
    helped = imported("--help")
    assert not {m for m in helped if m.startswith("pbx_bridge.preflight")}, helped
    assert not packages(helped) & {"cryptography", "dns", "requests", "sqlite3"}, helped

    before = ROOT / "asterisk" / "examples" / "before"
    bare = packages(imported("preflight", "--asterisk-dir", str(before / "etc-asterisk"),
                             "--firewall-rules", str(before / "firewall.rules")))
    unused = bare & {"cryptography", "dns", "requests", "ssl", "sqlite3"}
    assert not unused, f"imported for a host without a TLS transport or certificate: {unused}"

    dns = DnsServer({})
    try:
        full = packages(imported("preflight", "--asterisk-dir", str(EXAMPLE / "etc-asterisk"),
                                 "--firewall-rules", str(EXAMPLE / "firewall.rules"),
                                 "--public-ip", PUBLIC_IP, "--dns-server", dns.address))
    finally:
        dns.stop()
    assert {"cryptography", "dns"} <= full  # the certificate is read, its names looked up
    # dnspython before 2.4 imports requests itself (dns.query tries it for DNS over HTTPS):
    # Debian 12's 2.3 does, in every program that resolves a name
    from importlib.metadata import version
    dns_version = tuple(int(x) for x in version("dnspython").split(".")[:2])
    theirs = {"requests"} if dns_version < (2, 4) else set()
    assert not (full - theirs) & {"requests", "sqlite3"}, full & {"requests", "sqlite3"}


def test_a_command_leaves_the_garbage_collector_as_it_found_it(capsys, monkeypatch, tmp_path):
    """main() freezes what the imports made, and preflight/generate freeze the tree they
    read (so the collector does not walk it again and again); when the command returns, in
    success or failure, the collector is enabled and nothing stays frozen (the tests, and
    anything else calling main() in one process, go on as before)."""
    import gc

    from pbx_bridge.cli import main
    (tmp_path / "settings.ini").write_text("")  # every setting at its default
    (tmp_path / "settings.ini").chmod(0o600)
    monkeypatch.setenv("PBX_BRIDGE_CONFIG", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("PBX_BRIDGE_STATE_DIR", str(tmp_path / "state"))
    before = ROOT / "asterisk" / "examples" / "before"
    runs = [["preflight", "--asterisk-dir", str(before / "etc-asterisk"), "--firewall-rules",
             str(before / "firewall.rules")],
            ["generate", "--asterisk-dir", str(before / "etc-asterisk"), "--public-ip",
             "54.240.196.10"],
            ["preflight", "--asterisk-dir", "/nonexistent"]]
    codes = []
    for argv in runs:
        codes.append(main(argv))
        assert gc.isenabled() and gc.get_freeze_count() == 0, argv
    assert codes == [1, 0, 2]  # not ready; the diff shown; a bad directory
    capsys.readouterr()
