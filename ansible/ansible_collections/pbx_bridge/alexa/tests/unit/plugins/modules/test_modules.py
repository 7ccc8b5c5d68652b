# -*- coding: utf-8 -*-
# Copyright: pbx-bridge developers
# MIT License (see LICENSE in the pbx-bridge repository)
"""The modules translate: which pbx-bridge command they run for a task, and what they make of
its JSON (recorded from the CLI), in normal and check mode."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.pbx_bridge.alexa.plugins.module_utils import pbx_bridge as utils
from ansible_collections.pbx_bridge.alexa.plugins.modules import (config, preflight, rooms,
                                                                  status, test_call, trunk)

SECRET = "s3cret-never-on-a-command-line"
CREDS = {"client_id": "amzn1.application-oa2-client.x", "client_secret": SECRET,
         "api_url": "http://127.0.0.1:8080", "config": "/etc/pbx-bridge/pbx-bridge.toml"}

PLAN = {"trunkId": "amzn1.comms.network.siptrunk.t1",
        "creates": [{"action": "create", "extension": "7103", "room": "Room 103",
                     "commsProfileId": "amzn1.alexa.unit.did.p3"}],
        "updates": [{"action": "update", "extension": "7102", "room": "Room 102",
                     "commsProfileId": "amzn1.alexa.unit.did.p2b",
                     "oldCommsProfileId": "amzn1.alexa.unit.did.p2"}],
        "deletes": [], "unchanged": 3, "kept": 0, "existing": 4}
EMPTY_PLAN = dict(PLAN, creates=[], updates=[], unchanged=4)
TRUNKS = {"trunks": [{"trunkId": "amzn1.comms.network.siptrunk.t1", "status": "ACTIVE"}],
          "saved": "amzn1.comms.network.siptrunk.t1"}
VIEW = {"name": "pbx.example.test", "peers": ["54.240.196.10:5061"],
        "chain": ["CN=pbx.example.test sha256:00112233"]}


def cmd(recorded, i=0):
    return recorded.calls[i][0][1:]


# ------------------------------------------------------------------ module_utils

def test_secrets_go_in_the_environment_never_on_the_command_line(run_module):
    result, failed, rec = run_module(status.main, CREDS, [(0, {"state": "OK"}, "")])
    argv, env = rec.calls[0]
    assert SECRET not in " ".join(argv)
    assert env["PBX_BRIDGE_CLIENT_SECRET"] == SECRET
    assert env["PBX_BRIDGE_CONFIG"] == "/etc/pbx-bridge/pbx-bridge.toml"
    assert env["PBX_BRIDGE_API_URL"] == "http://127.0.0.1:8080"
    assert "PBX_BRIDGE_REFRESH_TOKEN" not in env
    assert not failed and result["changed"] is False and result["state"] == "OK"


def test_secret_options_are_no_log():
    spec = utils.common_argument_spec()
    assert spec["client_secret"]["no_log"] is True and spec["refresh_token"]["no_log"] is True


def test_errors_are_pbx_bridges_own_line():
    err = "retrying in 0.5 s\npbx-bridge: trunk t1 FAILED at Amazon; check the chain\n"
    assert utils.last_error(err) == "trunk t1 FAILED at Amazon; check the chain"
    assert utils.last_error("Traceback\nboom\n") == "boom"
    assert utils.last_error("") == ""


def test_a_failing_command_fails_the_task_with_its_message(run_module):
    result, failed, rec = run_module(status.main, {}, [
        (2, "", "pbx-bridge: /etc/pbx-bridge/pbx-bridge.toml, line 5: [amazon] timeout\n")])
    assert failed and result["msg"].startswith("/etc/pbx-bridge/pbx-bridge.toml, line 5")
    assert result["rc"] == 2


def test_output_that_is_not_json_fails_the_task(run_module):
    result, failed, rec = run_module(status.main, {}, [(0, "PBX-BRIDGE OK", "")])
    assert failed and result["stdout"] == "PBX-BRIDGE OK"
    # finding 20: not "exit 0"
    assert result["msg"] == "pbx-bridge status printed no JSON: PBX-BRIDGE OK"


# ------------------------------------------------------------------ preflight

def test_preflight_not_ready_fails_unless_told_not_to(run_module):
    doc = {"ok": False, "verdict": "NOT ready for Amazon", "findings": [
        {"id": "tls.transport", "status": "fail"}, {"id": "amazon.ca", "status": "warn"}]}
    result, failed, rec = run_module(preflight.main, {"asterisk_dir": "/etc/asterisk",
                                                      "amazon_cidr": ["3.239.178.128/25"]},
                                     [(1, doc, "")])
    assert failed and result["msg"] == "NOT ready for Amazon: tls.transport"
    assert cmd(rec) == ["preflight", "--format", "json", "--asterisk-dir", "/etc/asterisk",
                        "--amazon-cidr", "3.239.178.128/25"]
    result, failed, rec = run_module(preflight.main, {"fail_when_not_ready": False},
                                     [(1, doc, "")])
    assert not failed and result["ready"] is False and result["changed"] is False
    assert result["counts"] == {"fail": 1, "warn": 1}


def test_preflight_bad_input_fails_whatever_is_asked(run_module):
    result, failed, rec = run_module(preflight.main, {"fail_when_not_ready": False}, [
        (2, "", "pbx-bridge: /nope: Asterisk config directory does not exist\n")])
    assert failed and "does not exist" in result["msg"]


# ------------------------------------------------------------------ config

GENERATED = {"layout": "plain", "changed": True, "written": False, "recovered": [],
             "files": [{"path": "/etc/asterisk/pjsip_pbx-bridge.conf", "new": True,
                        "private": False, "diff": "--- /dev/null\n+++ x\n+[alexa]\n"}],
             "notes": [], "firewall": "iptables ...", "backup": None, "reload": None,
             "running": None}


def test_config_check_mode_is_the_dry_run_with_its_diff(run_module):
    args = {"asterisk_dir": "/etc/asterisk", "public_ip": "54.240.196.10", "port": 5061,
            "local_net": ["10.0.0.0/8"], "_ansible_check_mode": True, "_ansible_diff": True}
    result, failed, rec = run_module(config.main, args, [(0, GENERATED, "")])
    assert cmd(rec) == ["generate", "--json", "--asterisk-dir", "/etc/asterisk", "--port",
                        "5061", "--public-ip", "54.240.196.10", "--local-net", "10.0.0.0/8"]
    assert result["changed"] is True and "+[alexa]" in result["diff"]["prepared"]


def test_config_writes_and_is_changed_only_when_files_were_written(run_module):
    written = dict(GENERATED, written=True, backup="/var/lib/pbx-bridge/backups/1",
                   reload="Asterisk reloaded")
    result, failed, rec = run_module(config.main, {"reload": False}, [(0, written, "")])
    assert cmd(rec)[-2:] == ["--write", "--no-reload"]
    assert result["changed"] is True and result["backup"].endswith("/1")
    same = dict(GENERATED, changed=False, files=[], running="Asterisk runs the trunk config")
    result, failed, rec = run_module(config.main, {}, [(0, same, "")])
    assert result["changed"] is False and result["running"].startswith("Asterisk runs")


def test_config_absent_rolls_back_to_before_the_oldest_change_in_effect(run_module):
    backups = {"backups": [
        {"id": "20260102T000000-b", "state": "verified", "files": ["/etc/asterisk/a.conf"]},
        {"id": "20260101T000000-a", "state": "written", "files": ["/etc/asterisk/b.conf"]},
        {"id": "20251231T000000-z", "state": "rolled back", "files": ["/etc/asterisk/c"]}]}
    preview = {"rolled_back": ["20260102T000000-b", "20260101T000000-a"], "changed": True,
               "files": [{"path": "/etc/asterisk/a.conf", "removed": False, "private": False,
                          "diff": "--- a\n+++ a\n-; a hand edit\n"}]}
    result, failed, rec = run_module(config.main, {"state": "absent", "_ansible_check_mode": True},
                                     [(0, backups, ""), (0, preview, "")])
    assert result["changed"] and result["rolled_back"] == ["20260102T000000-b",
                                                           "20260101T000000-a"]
    assert len(rec.calls) == 2  # check mode: the listing and the read-only preview
    result, failed, rec = run_module(config.main, {"state": "absent"},
                                     [(0, backups, ""), (0, "rolled back 2 changes\n", "")])
    assert cmd(rec, 1) == ["generate", "--rollback", "--to", "20260101T000000-a"]
    result, failed, rec = run_module(config.main, {"state": "absent"},
                                     [(0, {"backups": backups["backups"][2:]}, "")])
    assert result["changed"] is False


# ------------------------------------------------------------------ trunk

def test_trunk_is_one_update_or_create_command(run_module):
    unchanged = {"action": "unchanged", "changed": [], "current": VIEW, "desired": VIEW,
                 "trunkId": "amzn1.comms.network.siptrunk.t1", "status": "ACTIVE"}
    result, failed, rec = run_module(trunk.main, {"timeout": 60}, [(0, unchanged, "")])
    assert cmd(rec) == ["trunk", "update", "--create", "--json", "--wait", "--timeout", "60"]
    assert result["changed"] is False and result["trunk"]["status"] == "ACTIVE"


def test_trunk_check_mode_is_a_dry_run_and_diffs_the_trunk(run_module):
    want = dict(VIEW, peers=["54.240.196.11:5061"])
    updated = {"action": "updated", "dry_run": True, "changed": ["peers"], "current": VIEW,
               "desired": want, "trunkId": "amzn1.comms.network.siptrunk.t1"}
    result, failed, rec = run_module(trunk.main, {"_ansible_check_mode": True,
                                                  "_ansible_diff": True},
                                     [(0, updated, "")])
    assert cmd(rec) == ["trunk", "update", "--create", "--json", "--dry-run"]
    assert result["changed"] and result["changed_parts"] == ["peers"]
    assert result["diff"]["before"]["peers"] == ["54.240.196.10:5061"]
    assert result["diff"]["after"]["peers"] == ["54.240.196.11:5061"]


def test_trunk_without_one_saved_is_created(run_module):
    created = {"action": "created", "trunkId": "amzn1.comms.network.siptrunk.t2",
               "status": "ACTIVE", "desired": VIEW}
    result, failed, rec = run_module(trunk.main, {}, [(0, created, "")])
    assert result["changed"] and result["trunk_id"].endswith("t2")
    assert result["changed_parts"] == ["tls", "peers"]


def test_trunk_absent(run_module):
    result, failed, rec = run_module(trunk.main, {"state": "absent"},
                                     [(0, {"trunks": [], "saved": None}, "")])
    assert result["changed"] is False
    gone = {"trunks": [], "saved": "amzn1.comms.network.siptrunk.t1"}
    result, failed, rec = run_module(trunk.main, {"state": "absent"},
                                     [(0, gone, ""), (0, {"action": "forgotten"}, "")])
    assert cmd(rec, 1) == ["trunk", "delete", "amzn1.comms.network.siptrunk.t1", "--yes",
                           "--json", "--force"]
    refused = "pbx-bridge: trunk t1 still has 4 extension mapping(s)\n"
    result, failed, rec = run_module(trunk.main, {"state": "absent"},
                                     [(0, TRUNKS, ""), (1, "", refused)])
    assert failed and "--force" not in cmd(rec, 1) and "mapping" in result["msg"]


# ------------------------------------------------------------------ rooms

MAPPINGS = [{"extension": "7101", "room": "Room 101, sea view",
             "comms_profile_id": "amzn1.alexa.unit.did.p1"},
            {"extension": "7102", "room": "Room 102"}]


def test_mappings_become_the_csv_pbx_bridge_reads():
    rows = [dict(m, comms_profile_id=m.get("comms_profile_id")) for m in MAPPINGS]
    assert rooms.map_csv(rows) == ("extension,room,comms_profile_id\n"
                                   "7101,\"Room 101, sea view\",amzn1.alexa.unit.did.p1\n"
                                   "7102,Room 102,\n")


def test_rooms_check_mode_is_the_plan_and_its_diff(run_module):
    result, failed, rec = run_module(rooms.main, {"mappings": MAPPINGS, "_ansible_check_mode": True,
                                                  "_ansible_diff": True}, [(0, PLAN, "")])
    assert cmd(rec)[:4] == ["rooms", "plan", "--json", "--map"]
    assert result["changed"] is True
    assert result["diff"]["prepared"].splitlines() == [
        "~ 7102 Room 102 amzn1.alexa.unit.did.p2 -> amzn1.alexa.unit.did.p2b",
        "+ 7103 Room 103 amzn1.alexa.unit.did.p3"]


def test_rooms_apply_is_changed_only_when_something_was_done(run_module):
    done = dict(EMPTY_PLAN, done=0, not_done=0, error=None)
    result, failed, rec = run_module(rooms.main, {"map": "/etc/pbx-bridge/rooms.csv",
                                                  "prune": True, "force": True},
                                     [(0, done, "")])
    assert cmd(rec) == ["rooms", "apply", "--json", "--map", "/etc/pbx-bridge/rooms.csv",
                        "--prune", "--yes", "--endpoint", "alexa", "--concurrency", "4",
                        "--force"]
    assert result["changed"] is False and result["done"] == 0


def test_rooms_apply_stopped_fails_with_what_was_done(run_module):
    stopped = dict(PLAN, done=1, not_done=1, error="429 throttled")
    result, failed, rec = run_module(rooms.main, {"mappings": MAPPINGS}, [
        (1, stopped, "pbx-bridge: stopped: 429 throttled\n")])
    assert failed and result["done"] == 1


def test_rooms_needs_a_map_or_mappings(run_module):
    result, failed, rec = run_module(rooms.main, {}, [])
    assert failed and "map" in result["msg"] and rec.calls == []


# ------------------------------------------------------------------ test_call

def test_test_call_failure_fails_the_task(run_module):
    doc = {"ok": False, "findings": [{"id": "call.sip", "status": "fail",
                                      "summary": "Amazon does not know extension 7404"}]}
    result, failed, rec = run_module(test_call.main, {"to": "7404", "hold": 1},
                                     [(1, doc, "")])
    assert cmd(rec) == ["test-call", "--format", "json", "--to", "7404", "--hold", "1"]
    assert failed and "7404" in result["msg"] and result["changed"] is False


# ------------------------------------------------------------------ findings of the review

def test_preflight_in_check_mode_with_the_config_pending_does_not_fail(run_module):
    """Finding 1: a fresh PBX has no TLS transport until config writes it; in check mode the
    preflight of the config on disk must not stop the host."""
    doc = {"ok": False, "verdict": "NOT ready for Amazon", "findings": [
        {"id": "tls.transport", "status": "fail"}]}
    args = {"pending": "the config change is not written (check mode)",
            "_ansible_check_mode": True}
    result, failed, rec = run_module(preflight.main, args, [(1, doc, "")])
    assert not failed and result["ready"] is False
    # not in check mode, pending changes nothing: not ready fails
    result, failed, rec = run_module(preflight.main, dict(args, _ansible_check_mode=False),
                                     [(1, doc, "")])
    assert failed and "tls.transport" in result["msg"]


def test_trunk_in_check_mode_with_the_config_pending_runs_no_dry_run(run_module):
    """Finding 2: the dry run would read the config on disk, not the one the run writes."""
    args = {"pending": "the trunk is checked once the config change is written",
            "_ansible_check_mode": True, "_ansible_diff": True}
    result, failed, rec = run_module(trunk.main, args, [(0, TRUNKS, "")])
    assert not failed and cmd(rec) == ["trunk", "list", "--json"] and len(rec.calls) == 1
    assert result["changed"] is True and result["action"] == "pending"
    assert result["trunk_id"] == TRUNKS["saved"] and "config" in result["msg"]
    result, failed, rec = run_module(trunk.main, args, [(0, {"trunks": [], "saved": None}, "")])
    assert result["changed"] is True and result["trunk_id"] is None


def test_rooms_in_check_mode_without_a_trunk_yet_shows_the_mappings_as_creates(run_module):
    """Finding 2: a fresh fleet's check mode never showed the rooms."""
    args = {"mappings": MAPPINGS, "pending": "no trunk yet", "_ansible_check_mode": True,
            "_ansible_diff": True}
    result, failed, rec = run_module(rooms.main, args, [])
    assert not failed and rec.calls == [] and result["changed"] is True
    assert result["diff"]["prepared"].splitlines() == [
        "+ 7101 Room 101, sea view amzn1.alexa.unit.did.p1", "+ 7102 Room 102 "]


def test_rooms_mappings_are_written_to_the_map_the_timer_applies(run_module, tmp_path):
    """Finding 3: with map and mappings the list goes to the map file (the one
    pbx-bridge-sync.timer applies), so the timer and the inventory agree."""
    path = tmp_path / "rooms.csv"
    path.write_text("extension,room,comms_profile_id\n7109,Old,amzn1.alexa.unit.did.old\n")
    args = {"map": str(path), "mappings": MAPPINGS}
    # check mode: the file is not written; the plan is of a temporary copy of the new map
    result, failed, rec = run_module(rooms.main, dict(args, _ansible_check_mode=True,
                                                      _ansible_diff=True),
                                     [(0, EMPTY_PLAN, "")])
    assert "7109,Old" in path.read_text() and result["changed"] and result["map_changed"]
    planned = cmd(rec)[cmd(rec).index("--map") + 1]
    assert planned != str(path)
    assert "-7109,Old,amzn1.alexa.unit.did.old" in result["diff"]["prepared"]
    done = dict(EMPTY_PLAN, done=0, not_done=0, error=None)
    result, failed, rec = run_module(rooms.main, args, [(0, done, "")])
    assert not failed and result["changed"] and cmd(rec)[4] == str(path)
    assert path.read_text() == rooms.map_csv(
        [dict(m, comms_profile_id=m.get("comms_profile_id")) for m in MAPPINGS])
    result, failed, rec = run_module(rooms.main, args, [(0, done, "")])
    assert result["changed"] is False and result["map_changed"] is False


def test_config_absent_check_mode_diff_is_what_the_files_would_become(run_module):
    """Finding 4: --check --diff showed only '# FILE: restored as before ID'; a hand edit
    the rollback would lose must show."""
    backups = {"backups": [{"id": "20260101T000000-a", "state": "verified",
                            "files": ["/etc/asterisk/pjsip.conf"]}]}
    hand = "--- /etc/asterisk/pjsip.conf\n+++ /etc/asterisk/pjsip.conf\n-; my hand edit\n"
    preview = {"rolled_back": ["20260101T000000-a"], "changed": True, "files": [
        {"path": "/etc/asterisk/pjsip.conf", "removed": False, "private": False, "diff": hand}]}
    result, failed, rec = run_module(config.main, {"state": "absent", "_ansible_check_mode": True,
                                                   "_ansible_diff": True},
                                     [(0, backups, ""), (0, preview, "")])
    assert cmd(rec, 1) == ["generate", "--rollback", "--to", "20260101T000000-a", "--dry-run",
                           "--json"]
    assert result["diff"]["prepared"] == hand and "restored as before" not in hand


def test_test_call_places_no_call_in_check_mode(run_module):
    """Finding 21: check mode placed a real call (with ring, the guest's phone rang)."""
    for extra in ({}, {"from_alexa": True, "ring": True}):
        result, failed, rec = run_module(test_call.main, dict(extra, to="7101",
                                                              _ansible_check_mode=True), [])
        assert rec.calls == [] and result["skipped"] and not failed
    doc = {"ok": True, "findings": []}  # a check from a room without ring only reads
    result, failed, rec = run_module(test_call.main, {"to": "201", "from_alexa": True,
                                                      "_ansible_check_mode": True},
                                     [(0, doc, "")])
    assert "--from-alexa" in cmd(rec) and "--ring" not in cmd(rec)


def test_rooms_apply_part_done_is_changed_and_says_why(run_module):
    """Finding 5: 2 mappings done at Amazon, then HTTP 400: changed, and the real cause."""
    stopped = dict(PLAN, done=2, not_done=1, error="HTTP 400: profile unknown")
    result, failed, rec = run_module(rooms.main, {"map": "/r.csv"}, [
        (1, stopped, "pbx-bridge: warning: the AGI user cannot read routes.json\n")])
    assert failed and result["changed"] is True and result["done"] == 2
    assert "HTTP 400: profile unknown" in result["msg"]


def test_rooms_check_mode_refuses_what_apply_would_refuse(run_module):
    """Finding 12: over 25 % check mode only warned; the real run refuses."""
    big = dict(PLAN, updates=PLAN["updates"] * 2, existing=4)
    result, failed, rec = run_module(rooms.main, {"map": "/r.csv", "_ansible_check_mode": True},
                                     [(0, big, "")])
    assert failed and "force: true" in result["msg"] and "--force" not in result["msg"]
    result, failed, rec = run_module(rooms.main, {"map": "/r.csv", "force": True,
                                                  "_ansible_check_mode": True},
                                     [(0, big, "")])
    assert not failed


def test_check_mode_asks_for_a_read_only_token_cache(run_module):
    """Finding 17: check mode wrote token.json when the cached token was missing."""
    result, failed, rec = run_module(status.main, {"_ansible_check_mode": True},
                                     [(0, {"state": "OK"}, "")])
    assert rec.calls[0][1]["PBX_BRIDGE_TOKEN_CACHE"] == "read-only"
    result, failed, rec = run_module(status.main, {}, [(0, {"state": "OK"}, "")])
    assert "PBX_BRIDGE_TOKEN_CACHE" not in rec.calls[0][1]


def test_a_wait_that_fails_after_the_update_is_changed(run_module):
    """Finding 6: the update was sent, then the wait for ACTIVE timed out: changed."""
    doc = {"action": "updated", "changed": ["peers"], "trunkId": TRUNKS["saved"],
           "error": "trunk t1 still PENDING after 60 s"}
    result, failed, rec = run_module(trunk.main, {"timeout": 60}, [
        (1, doc, "pbx-bridge: trunk t1 still PENDING after 60 s\n")])
    assert failed and result["changed"] is True and result["action"] == "updated"
    assert result["msg"] == "trunk t1 still PENDING after 60 s"
    result, failed, rec = run_module(trunk.main, {}, [(1, "", "pbx-bridge: 401 denied\n")])
    assert failed and not result.get("changed")


def test_a_multi_line_error_is_kept_whole():
    """Finding 7: the map's problems and the preflight gate's list followed the first line."""
    err = ("pbx-bridge: warning: slow\npbx-bridge: /etc/pbx-bridge/rooms.csv: 2 problem(s):\n"
           "  line 3: extension 7x01 is not digits\n  line 5: room is empty\n")
    assert utils.last_error(err) == ("/etc/pbx-bridge/rooms.csv: 2 problem(s):\n"
                                     "  line 3: extension 7x01 is not digits\n"
                                     "  line 5: room is empty")


def test_a_taken_lock_is_waited_for_up_to_lock_wait(run_module, monkeypatch):
    """Finding 11: another playbook or the PBX's own timer held the lock: failed at once."""
    now = [0.0]
    monkeypatch.setattr(utils.PbxBridge, "monotonic", staticmethod(lambda: now[0]))
    monkeypatch.setattr(utils.PbxBridge, "sleep",
                        staticmethod(lambda s: now.__setitem__(0, now[0] + s)))
    busy = (1, "", "pbx-bridge: another pbx-bridge rooms apply is running (pid 7); wait for "
            "it to finish (lock: /var/lib/pbx-bridge/pbx-bridge.lock)\n")
    done = dict(EMPTY_PLAN, done=0, not_done=0, error=None)
    result, failed, rec = run_module(rooms.main, {"map": "/r.csv", "lock_wait": 10},
                                     [busy, busy, (0, done, "")])
    assert not failed and len(rec.calls) == 3 and now[0] == 4.0
    result, failed, rec = run_module(rooms.main, {"map": "/r.csv"}, [busy])
    assert failed and "another pbx-bridge rooms apply" in result["msg"]
    now[0] = 0.0
    result, failed, rec = run_module(rooms.main, {"map": "/r.csv", "lock_wait": 3},
                                     [busy, busy, busy])
    assert failed and len(rec.calls) == 3 and now[0] == 3.0


def test_trunk_absent_in_check_mode_refuses_as_the_delete_would(run_module):
    """Finding 12: check mode said changed; the real run refused (and named --force)."""
    refused = ("pbx-bridge: trunk t1 still has 4 extension mapping(s) (e.g. 7101); remove "
               "them or pass --force\n")
    result, failed, rec = run_module(trunk.main, {"state": "absent",
                                                  "_ansible_check_mode": True},
                                     [(0, TRUNKS, ""), (1, "", refused)])
    assert cmd(rec, 1) == ["trunk", "delete", TRUNKS["saved"], "--yes", "--json", "--dry-run"]
    assert failed and "set force: true" in result["msg"] and "--force" not in result["msg"]
    would = {"action": "deleted", "dry_run": True, "trunkId": TRUNKS["saved"],
             "mappings_removed": 4}
    result, failed, rec = run_module(trunk.main, {"state": "absent", "force": True,
                                                  "_ansible_check_mode": True},
                                     [(0, TRUNKS, ""), (0, would, "")])
    assert not failed and result["changed"] and "--force" in cmd(rec, 1)


def test_a_renamed_room_is_a_change_with_its_diff(run_module):
    """Finding 8: same profile, new name: routes.json changes, yet it was changed=false."""
    renamed = dict(EMPTY_PLAN, renames=[{"extension": "7102", "oldRoom": "Room 102",
                                         "room": "Suite 102"}])
    result, failed, rec = run_module(rooms.main, {"map": "/r.csv", "_ansible_check_mode": True,
                                                  "_ansible_diff": True}, [(0, renamed, "")])
    assert result["changed"] is True
    assert result["diff"]["prepared"] == "~ 7102 room name Room 102 -> Suite 102\n"
    done = dict(renamed, done=0, not_done=0, error=None)
    result, failed, rec = run_module(rooms.main, {"map": "/r.csv"}, [(0, done, "")])
    assert result["changed"] is True and result["done"] == 0


def test_an_unquoted_extension_is_refused(run_module):
    """Finding 19: 0701 unquoted is YAML's octal 449 and became extension 449, silently."""
    result, failed, rec = run_module(rooms.main, {"mappings": [
        {"extension": 449, "room": "Room 701"}]}, [])
    assert failed and "mappings[0].extension 449" in result["msg"] and rec.calls == []
    assert "quote" in result["msg"]


def test_the_ami_secret_goes_in_the_environment(run_module):
    """Finding 16: the AMI secret had no no_log option (only environment:, shown by -vvv)."""
    result, failed, rec = run_module(test_call.main, {"to": "7101", "ami_secret": SECRET},
                                     [(0, {"ok": True, "findings": []}, "")])
    argv, env = rec.calls[0]
    assert env["PBX_BRIDGE_AMI_SECRET"] == SECRET and SECRET not in " ".join(argv)


def test_map_problems_of_a_list_name_its_rows_not_a_temporary_files_lines(run_module):
    """Finding 7: with mappings, line numbers referred to a temporary CSV already deleted."""
    def answer(argv):
        path = argv[argv.index("--map") + 1]
        return (2, "", "pbx-bridge: %s: 1 problem(s):\n  line 3: no room named 'Room 102'\n"
                % path)
    result, failed, rec = run_module(rooms.main, {"mappings": MAPPINGS, "_ansible_check_mode": True},
                                     [answer])
    assert failed and result["msg"] == ("mappings: 1 problem(s):\n"
                                        "  mappings[1] (extension 7102): no room named 'Room 102'")


def test_trunk_absent_with_nothing_saved_names_what_amazon_holds(run_module):
    """Finding 14: absent trusted local state only, silent while Amazon held a trunk."""
    held = {"trunks": [{"trunkId": "amzn1.comms.network.siptrunk.t9", "name": "pbx.x"}],
            "saved": None}
    result, failed, rec = run_module(trunk.main, {"state": "absent"}, [(0, held, "")])
    assert not failed and result["changed"] is False
    assert result["unsaved_at_amazon"] == ["amzn1.comms.network.siptrunk.t9"]
