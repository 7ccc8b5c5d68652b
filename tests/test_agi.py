"""AGI and FastAGI replayed from transcripts a real Asterisk 22 produced."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import PB_CMD, DATA, ROOT, free_port
from pbx_bridge.agi.fastagi import FastAgiServer
from pbx_bridge.agi.protocol import AgiError, parse_reply, quote, set_variable
from pbx_bridge.rooms.store import Store

A22 = DATA / "asterisk-22"


class Transcript:
    """The Asterisk side of a recorded AGI session: its header, and its replies by command."""

    def __init__(self, path: Path) -> None:
        lines = path.read_text().splitlines()
        self.header: list[str] = []
        i = 0
        while i < len(lines) and lines[i].startswith("<<<"):
            text = lines[i][4:] if len(lines[i]) > 3 else ""
            self.header.append(text)
            i += 1
            if text == "":
                break
        self.replies: dict[str, str] = {}
        while i < len(lines) - 1:
            if lines[i].startswith(">>> ") and lines[i + 1].startswith("<<< "):
                verb = " ".join(lines[i][4:].split()[:2])
                self.replies.setdefault(verb, lines[i + 1][4:])
            i += 1
        self.unknown = self.replies.get("NOSUCHCOMMAND", "510 Invalid or unknown command")

    def header_bytes(self) -> bytes:
        return "".join(h + "\n" for h in self.header).encode()

    def reply(self, command: str) -> bytes:
        return (self.replies.get(" ".join(command.split()[:2]), self.unknown) + "\n").encode()


PROCESS = Transcript(A22 / "agi-process-from-alexa.txt")
FAST = Transcript(A22 / "fastagi-alexa-route.txt")


def test_transcripts_parse():
    assert PROCESS.header[-1] == "" and "agi_callerid: 7204" in PROCESS.header
    assert PROCESS.replies["SET VARIABLE"] == "200 result=1"
    assert FAST.replies["GET VARIABLE"] == "200 result=1 ()"
    assert parse_reply("200 result=1 (Room 201 via PJSIP/alexa-00000001)").data == \
        "Room 201 via PJSIP/alexa-00000001"
    assert parse_reply("200 result=0").result == "0"
    assert parse_reply(PROCESS.unknown).code == 510
    with pytest.raises(AgiError):
        parse_reply("HANGUP")


def test_values_cannot_inject_commands():
    line = set_variable("ALEXA_ROOM", 'Room 2"04\nHANGUP\r\\')
    assert "\n" not in line and "\r" not in line
    assert line == 'SET VARIABLE ALEXA_ROOM "Room 2\\"04HANGUP\\\\"'
    assert quote("Chambre été") == '"Chambre été"'
    with pytest.raises(ValueError):
        set_variable("X Y", "1")


@pytest.fixture
def state(tmp_path):
    s = Store(tmp_path / "state")
    s.set_meta(trunk_id="amzn1.comms.network.siptrunk.t1", endpoint="alexa")
    s.record("amzn1.comms.network.siptrunk.t1", "7201", "amzn1.alexa.unit.did.a", "Room 201",
             ours=True)
    s.record("amzn1.comms.network.siptrunk.t1", "7204", "amzn1.alexa.unit.did.b",
             'Room "204"\nHANGUP', ours=True)
    s.publish()
    s.close()
    return tmp_path / "state"


def play(reader, writer, transcript: Transcript, header: bytes | None = None,
         max_commands: int = 10, answer=None) -> list[str]:
    """Be Asterisk: send the header, answer every command as the recording did."""
    writer(header if header is not None else transcript.header_bytes())
    commands = []
    for _ in range(max_commands):
        line = reader()
        if not line:
            break
        cmd = line.decode().rstrip("\n")
        commands.append(cmd)
        writer(answer(cmd) if answer else transcript.reply(cmd))
    return commands


def process_agi(state_dir, *args, header=None, answer=None, transcript=PROCESS):
    p = subprocess.Popen([*PB_CMD, "agi", *args, "--state-dir",
                          str(state_dir), "--timeout", "2"], cwd=ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(b):
        try:
            p.stdin.write(b)
            p.stdin.flush()
        except BrokenPipeError:
            pass
    cmds = play(p.stdout.readline, write, transcript, header, answer=answer)
    p.stdin.close()
    err = p.stderr.read().decode()
    assert p.wait(10) == 0
    return cmds, err


def test_process_agi_alexa_caller_from_the_recorded_call(state):
    cmds, err = process_agi(state, "alexa-caller")  # caller 7204 from the recorded header
    assert cmds == ['SET VARIABLE ALEXA_ROOM "Room \\"204\\"HANGUP"',
                    'SET VARIABLE CALLERID(name) "Room \\"204\\"HANGUP"',
                    'SET VARIABLE ALEXA_MAPPED "1"']
    assert err.startswith("pbx-bridge agi: alexa-caller 7204:")


def test_process_agi_alexa_route_by_argument(state):
    cmds, err = process_agi(state, "alexa-route", "7201")
    # ALEXA_MAPPED last: a server killed before it leaves the dialplan at Congestion()
    assert cmds == ['SET VARIABLE ALEXA_ROOM "Room 201"',
                    'SET VARIABLE ALEXA_DIAL "PJSIP/7201@alexa"', 'SET VARIABLE ALEXA_MAPPED "1"']
    cmds, err = process_agi(state, "alexa-route", "201")  # the recorded dialled number
    assert cmds[-1] == 'SET VARIABLE ALEXA_MAPPED "0"' and "not an Alexa room" in err


@pytest.mark.parametrize("case", ["no-state", "bad-header", "unknown-route", "510", "hangup"])
def test_process_agi_never_fails_the_call(tmp_path, state, case):
    args = ["alexa-route", "7201"]
    header = None
    answer = None
    sd = state
    if case == "no-state":
        sd = tmp_path / "nowhere"
    elif case == "bad-header":
        header = b"agi_request: x\nthis is not a header\n\n"
    elif case == "unknown-route":
        args = ["no-such-route"]
    elif case == "510":
        answer = lambda cmd: (PROCESS.unknown + "\n").encode()  # noqa: E731
    elif case == "hangup":
        answer = lambda cmd: b"HANGUP\n"  # noqa: E731
    cmds, err = process_agi(sd, *args, header=header, answer=answer)
    if case in ("510", "hangup"):  # the first answer is bad: nothing more is sent, and
        assert cmds == ['SET VARIABLE ALEXA_ROOM "Room 201"']  # ALEXA_MAPPED is never "1"
    else:
        assert 'SET VARIABLE ALEXA_MAPPED "0"' in cmds
        assert [c for c in cmds if c.startswith("SET")][-1] == 'SET VARIABLE ALEXA_MAPPED "0"'
    assert err.count("\n") == 1 and "Traceback" not in err
    if case not in ("510", "hangup"):  # a bad header is read to its end, then answered
        assert "ended early" not in err, err
    expected = {"no-state": "no routes published", "bad-header": "bad AGI header",
                "unknown-route": "unknown route", "510": "answered 510",
                "hangup": "hung up"}[case]
    assert expected in err


def test_process_agi_times_out_when_asterisk_says_nothing(state):
    p = subprocess.Popen([*PB_CMD, "agi", "alexa-route", "7201",
                          "--state-dir", str(state), "--timeout", "0.5"], cwd=ROOT,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(b"agi_request: pbx-bridge\n")  # the header never ends
    p.stdin.flush()
    start = time.monotonic()
    rc = p.wait(10)
    assert rc == 0 and time.monotonic() - start < 5
    assert "no answer from Asterisk within 0.5 s" in p.stderr.read().decode()
    p.stdin.close()


@pytest.fixture
def fastagi(state):
    logs: list[str] = []
    servers = []

    def start(allow=("127.0.0.0/8",), timeout=2.0, sd=state):
        import ipaddress
        srv = FastAgiServer(("127.0.0.1", 0), sd, [ipaddress.ip_network(a) for a in allow],
                            timeout, logs.append)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    yield start, logs
    for s in servers:
        s.shutdown()
        s.server_close()


def fast_call(port, transcript=FAST, header=None, answer=None, max_commands=10):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        f = s.makefile("rb")

        def read():
            try:
                return f.readline()
            except ConnectionResetError:  # the server closed with our extra bytes unread
                return b""

        def write(b):
            try:
                s.sendall(b)
            except (BrokenPipeError, ConnectionResetError):
                pass
        return play(read, write, transcript, header, max_commands, answer)


def test_fastagi_replays_the_recorded_route_request(fastagi):
    start, logs = fastagi
    srv = start()
    cmds = fast_call(srv.server_address[1])
    assert cmds == ['SET VARIABLE ALEXA_ROOM "Room 201"',
                    'SET VARIABLE ALEXA_DIAL "PJSIP/7201@alexa"', 'SET VARIABLE ALEXA_MAPPED "1"']
    assert logs == ["alexa-route 7201: Room 201 via PJSIP/7201@alexa"]


def test_fastagi_sees_new_mappings_without_restart(fastagi, state):
    start, logs = fastagi
    srv = start()
    header = FAST.header_bytes().replace(b"agi_arg_1: 7201", b"agi_arg_1: 7300")
    assert fast_call(srv.server_address[1], header=header)[-1] == 'SET VARIABLE ALEXA_MAPPED "0"'
    s = Store(state)
    s.record("amzn1.comms.network.siptrunk.t1", "7300", "amzn1.alexa.unit.did.c", "Room 300")
    s.close()
    # recorded but not yet published: the AGI sees only what was published
    assert fast_call(srv.server_address[1], header=header)[-1] == 'SET VARIABLE ALEXA_MAPPED "0"'
    s = Store(state)
    s.publish()
    s.close()
    assert fast_call(srv.server_address[1], header=header)[-1] == 'SET VARIABLE ALEXA_MAPPED "1"'


def test_fastagi_client_that_disconnects_mid_command_and_server_goes_on(fastagi):
    start, logs = fastagi
    srv = start()
    port = srv.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(FAST.header_bytes())
        s.makefile("rb").readline()  # first command, then hang up without answering
    time.sleep(0.3)
    assert any("AGI ended early" in line for line in logs)
    assert fast_call(port)[-1] == 'SET VARIABLE ALEXA_MAPPED "1"'


def test_fastagi_malformed_and_silent_clients(fastagi):
    start, logs = fastagi
    srv = start(timeout=0.5)
    port = srv.server_address[1]
    cmds = fast_call(port, header=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert cmds[0] == 'SET VARIABLE ALEXA_MAPPED "0"'
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"agi_network: yes\n")
        assert s.recv(100) == b""  # closed after the timeout
    assert any("bad AGI header" in line for line in logs)
    assert any("within 0.5 s" in line for line in logs)


def test_fastagi_restricts_clients_by_address(fastagi):
    start, logs = fastagi
    srv = start(allow=("10.0.0.0/8",))
    with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=5) as s:
        try:
            s.sendall(FAST.header_bytes())
            assert s.recv(100) == b""  # closed without a word
        except ConnectionResetError:
            pass  # or reset, when the header was still unread
    assert logs == ["refused FastAGI client 127.0.0.1 (not in --allow)"]


def test_fastagi_command_binds_loopback_by_default(state):
    import os
    import signal
    port = free_port()
    p = subprocess.Popen([*PB_CMD, "fastagi", "--listen",
                          f"127.0.0.1:{port}", "--state-dir", str(state)], cwd=ROOT,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on 127.0.0.1:" in p.stderr.readline()
        assert fast_call(port)[1:] == ['SET VARIABLE ALEXA_DIAL "PJSIP/7201@alexa"',
                                       'SET VARIABLE ALEXA_MAPPED "1"']
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(10)
    r = subprocess.run([*PB_CMD, "fastagi", "--listen", "nowhere"],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ})
    assert r.returncode == 2 and "HOST:PORT" in r.stderr


def test_dialplan_examples_match_the_generator():
    sys.path.insert(0, str(ROOT / "tools"))
    import make_asterisk_examples
    for name, text in make_asterisk_examples.render_all().items():
        assert (ROOT / "asterisk" / "dialplan" / name).read_text() == text, name
