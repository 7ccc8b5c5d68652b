"""`pbx-bridge rooms`: the map file, plan and apply against the emulator, and the local state."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from helpers import PB_CMD, csv_of, pb, rows
from pbx_bridge.rooms.mapfile import MapErrors, parse

def test_map_file_problems_are_all_reported_with_lines():
    text = ("extension,room,comms_profile_id\n7101,Room 101,amzn1.a.1\n72a,Room 2,amzn1.a.2\n"
            "7101,Room 3,amzn1.a.3\n7104,Room 4,amzn1.a.1\n7105,Room 5,arn:aws:x\n"
            "7106,,\n7107,Room 7\n")
    with pytest.raises(MapErrors) as err:
        parse(text, "rooms.csv")
    assert err.value.problems == [
        "line 3: extension '72a' must be 1 to 15 digits",
        "line 4: extension 7101 is already on line 2",
        "line 5: comms_profile_id is already used on line 2",
        "line 6: comms_profile_id 'arn:aws:x' is not an amzn1. id",
        "line 7: neither room nor comms_profile_id",
        "line 8: expected 3 fields, got 2",
    ]
    with pytest.raises(MapErrors) as err:
        parse("ext,room\n1,2\n", "x.csv")
    assert "header must be extension,room,comms_profile_id" in str(err.value)


def test_bad_map_exits_2_before_anything_is_sent(hotel, tmp_path):
    srv, _, env = hotel()
    n = srv.emulator.requests
    (tmp_path / "m.csv").write_text(csv_of([("7101", "Room 101", "amzn1.x.1"),
                                            ("7101", "Room 102", "amzn1.x.2")]))
    r = pb(env, "rooms", "apply", "--map", str(tmp_path / "m.csv"), "--yes")
    assert r.returncode == 2 and "line 3: extension 7101 is already on line 2" in r.stderr
    assert srv.emulator.requests == n
    r = pb(env, "rooms", "plan", "--map", str(tmp_path / "missing.csv"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_plan_apply_then_plan_is_empty_and_state_is_recorded(hotel, tmp_path):
    srv, tid, env = hotel()
    m = tmp_path / "m.csv"
    m.write_text(csv_of(rows(30)))
    r = pb(env, "rooms", "plan", "--map", str(m), "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert len(plan["creates"]) == 30 and plan["unchanged"] == 0
    assert srv.emulator.state.mappings[tid] == {}  # plan is read-only
    r = pb(env, "rooms", "apply", "--map", str(m))  # no terminal: never asks
    assert r.returncode == 0, r.stderr
    assert "applied 30 change(s)" in r.stdout
    assert len(srv.emulator.state.mappings[tid]) == 30
    r = pb(env, "rooms", "plan", "--map", str(m), "--json")
    again = json.loads(r.stdout)
    assert again["creates"] == again["updates"] == again["deletes"] == []
    assert again["unchanged"] == 30
    db = sqlite3.connect(tmp_path / "state" / "pbx-bridge.sqlite")
    assert db.execute("SELECT count(*) FROM mappings WHERE ours = 1").fetchone()[0] == 30
    assert db.execute("SELECT room FROM mappings WHERE extension='7105'").fetchone()[0] == \
        "Room 105"


def test_updates_deletes_ours_only_and_prune(hotel, tmp_path):
    srv, tid, env = hotel()
    m = tmp_path / "m.csv"
    m.write_text(csv_of(rows(20)))
    assert pb(env, "rooms", "apply", "--map", str(m)).returncode == 0
    # someone else's mapping at Amazon
    srv.emulator.state.mappings[tid]["7999"] = {"extension": "7999",
                                                "routingType": "communication-profile",
                                                "commsProfileId": "amzn1.alexa.unit.did.other"}
    changed = rows(19)
    changed[0] = ("7100", "Room 100", "amzn1.alexa.unit.did.moved")
    m.write_text(csv_of(changed))
    plan = json.loads(pb(env, "rooms", "plan", "--map", str(m), "--json").stdout)
    assert [c["extension"] for c in plan["updates"]] == ["7100"]
    assert [c["extension"] for c in plan["deletes"]] == ["7119"]  # ours; 7999 is kept
    assert pb(env, "rooms", "apply", "--map", str(m)).returncode == 0
    maps = srv.emulator.state.mappings[tid]
    assert "7119" not in maps and "7999" in maps
    assert maps["7100"]["commsProfileId"] == "amzn1.alexa.unit.did.moved"
    plan = json.loads(pb(env, "rooms", "plan", "--map", str(m), "--prune", "--json").stdout)
    assert [c["extension"] for c in plan["deletes"]] == ["7999"]


def test_large_disruptive_plans_need_force(hotel, tmp_path):
    srv, tid, env = hotel()
    m = tmp_path / "m.csv"
    m.write_text(csv_of(rows(20)))
    assert pb(env, "rooms", "apply", "--map", str(m)).returncode == 0
    m.write_text(csv_of(rows(10)))  # deletes 10 of 20: 50%
    r = pb(env, "rooms", "apply", "--map", str(m))
    assert r.returncode == 1 and "50%" in r.stderr and "--force" in r.stderr
    assert len(srv.emulator.state.mappings[tid]) == 20
    r = pb(env, "rooms", "apply", "--map", str(m), "--force")
    assert r.returncode == 0 and len(srv.emulator.state.mappings[tid]) == 10


def test_hard_error_stops_cleanly_and_a_rerun_finishes(hotel, tmp_path):
    srv, tid, env = hotel(max_extension_length=4)
    m = tmp_path / "m.csv"
    bad = rows(12) + [("71000", "Room 151", "amzn1.alexa.unit.did.long")]
    m.write_text(csv_of(bad))
    r = pb(env, "rooms", "apply", "--map", str(m), "--concurrency", "1")
    assert r.returncode == 1
    assert "stopped: create 71000" in r.stdout and "HTTP 400" in r.stdout
    assert "run 'rooms apply' again" in r.stdout
    m.write_text(csv_of(rows(12)))
    r = pb(env, "rooms", "apply", "--map", str(m))
    assert r.returncode == 0, r.stderr
    assert len(srv.emulator.state.mappings[tid]) == 12


def test_apply_survives_throttling_and_cut_connections(hotel, tmp_path):
    srv, tid, env = hotel(throttle_rate=0.3, error_rate=0.05, cut_rate=0.05, seed=3)
    m = tmp_path / "m.csv"
    m.write_text(csv_of(rows(40)))
    r = pb(env, "rooms", "apply", "--map", str(m), "--concurrency", "8")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(srv.emulator.state.mappings[tid]) == 40
    log = srv.emulator.config.log.getvalue()
    assert " 429 " in log and "cut-" in log
    plan = json.loads(pb(env, "rooms", "plan", "--map", str(m), "--json").stdout)
    assert plan["creates"] == [] and plan["unchanged"] == 40


def test_rooms_by_name_with_profiles_looked_up_and_created(hotel, tmp_path):
    srv, tid, env = hotel()
    srv.emulator.state.profiles["amzn1.ask.unit.r101"] = "amzn1.alexa.communications.profile.did.x"
    m = tmp_path / "m.csv"
    m.write_text(csv_of([("7101", "Room 101", ""), ("7102", "room 102", ""),
                         ("7199", "Room 999", "")]))
    r = pb(env, "rooms", "plan", "--map", str(m))
    assert r.returncode == 2 and "--property" in r.stderr
    r = pb(env, "rooms", "plan", "--map", str(m), "--property", "amzn1.ask.unit.hotel")
    assert r.returncode == 2
    assert "line 4: no room named 'Room 999'" in r.stderr
    assert "line 3: room 'room 102' has no communication profile" in r.stderr
    m.write_text(csv_of([("7101", "Room 101", ""), ("7102", "room 102", "")]))
    r = pb(env, "rooms", "apply", "--map", str(m), "--property", "amzn1.ask.unit.hotel",
           "--create-profiles")
    assert r.returncode == 0, r.stderr
    maps = srv.emulator.state.mappings[tid]
    assert maps["7101"]["commsProfileId"] == "amzn1.alexa.communications.profile.did.x"
    assert maps["7102"]["commsProfileId"] == srv.emulator.state.profiles["amzn1.ask.unit.r102"]


def test_discover_and_import_from_asterisk(hotel, tmp_path):
    srv, tid, env = hotel()
    srv.emulator.state.profiles["amzn1.ask.unit.r101"] = "amzn1.alexa.communications.profile.did.y"
    out = tmp_path / "discovered.csv"
    r = pb(env, "rooms", "discover", "--property", "amzn1.ask.unit.hotel", "--out", str(out))
    assert r.returncode == 0, r.stderr
    lines = out.read_text(encoding="utf-8-sig").splitlines()  # BOM: for Excel
    assert lines[0] == "extension,room,comms_profile_id" and len(lines) == 41
    assert ",Room 101,amzn1.alexa.communications.profile.did.y" in lines
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "pjsip.conf").write_text("".join(
        f"[{n}]\ntype=endpoint\n\n" for n in ("7101", "7102", "7350", "201", "alexa")))
    r = pb(env, "rooms", "import", "--from-asterisk", "--asterisk-dir", str(etc), "--pattern",
           "7{room}", "--property", "amzn1.ask.unit.hotel")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["extension,room,comms_profile_id",
                                     "7101,Room 101,amzn1.alexa.communications.profile.did.y",
                                     "7102,Room 102,"]
    assert "7350" in r.stderr  # matches the pattern, but there is no Room 350
    r = pb(env, "rooms", "import", "--from-asterisk", "--asterisk-dir", str(etc), "--pattern",
           "7", "--property", "amzn1.ask.unit.hotel")
    assert r.returncode == 2 and "{room}" in r.stderr


def test_kill_during_apply_leaves_a_sound_state_and_a_rerun_finishes(hotel, tmp_path):
    import signal
    import subprocess
    import time

    from helpers import ROOT
    srv, tid, env = hotel(latency_ms=20)
    m = tmp_path / "m.csv"
    m.write_text(csv_of(rows(40)))
    proc = subprocess.Popen([*PB_CMD, "rooms", "apply", "--map",
                             str(m), "--concurrency", "2"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(srv.emulator.state.mappings[tid]) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    time.sleep(0.3)  # requests already in flight still land at the emulator
    done = len(srv.emulator.state.mappings[tid])
    assert 10 <= done < 40
    db = sqlite3.connect(tmp_path / "state" / "pbx-bridge.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    recorded = db.execute("SELECT count(*) FROM mappings").fetchone()[0]
    assert recorded <= done  # never records what Amazon has not confirmed
    db.close()
    r = pb(env, "rooms", "apply", "--map", str(m))
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(srv.emulator.state.mappings[tid]) == 40
    assert f"applied {40 - done} change(s)" in r.stdout


def test_plan_and_status_during_an_apply_say_it_runs(hotel, tmp_path):
    """A plan or a status read while rooms apply changes Amazon and the table sees a moment
    of it: the plan says so, and status does not call the requests in flight drift."""
    import subprocess
    import time

    from helpers import ROOT
    from pbx_bridge.statedir import holder
    srv, tid, env = hotel(latency_ms=60)
    state = Path(env["PBX_BRIDGE_STATE_DIR"])
    m = tmp_path / "m.csv"
    m.write_text(csv_of(rows(40)))
    proc = subprocess.Popen([*PB_CMD, "rooms", "apply", "--map",
                             str(m), "--yes", "--concurrency", "1"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (holder(state) or "").endswith("rooms apply"):
            assert proc.poll() is None and time.monotonic() < deadline, "apply never ran"
            time.sleep(0.05)  # polling for the lock the apply takes, not waiting on a race
        r = pb(env, "rooms", "plan", "--map", str(m))
        assert f"note: rooms apply is running (pid {proc.pid})" in r.stderr, r.stderr
        r = pb(env, "status", "--format", "json", "--asterisk-dir", str(tmp_path / "none"))
        doc = json.loads(r.stdout)
        assert doc["syncRunning"] == f"{proc.pid} rooms apply"
        assert not [p for p in doc["problems"] if "drifted" in p["message"]], doc["problems"]
    finally:
        assert proc.wait(60) == 0
    assert holder(state) is None


def test_room_names_that_would_spoof_caller_id_are_refused():
    """A right-to-left override (or an invisible character) in a room name reorders or hides
    what the front desk's phone shows; script marks stay allowed."""
    for bad, code in (("\u202eRoom 101", "U+202E"), ("Room\u2066 2", "U+2066"),
                      ("Ro\u200bom", "U+200B")):
        with pytest.raises(MapErrors) as err:
            parse(f"extension,room,comms_profile_id\n7101,{bad},amzn1.a.1\n", "rooms.csv")
        assert code in str(err.value), err.value.problems
    rows_ok = parse("extension,room,comms_profile_id\n7101,\u05d7\u05d3\u05e8 1\u200f,amzn1.a.1\n"
                    "7102,Suite \U0001f468\u200d\U0001f469,amzn1.a.2\n", "rooms.csv")
    assert len(rows_ok) == 2
