"""What the Ansible collection needs from the CLI (issue 24): generate --json (the dry run's
diff, what --write did, --list-backups --json) and trunk create/update --dry-run (nothing
sent, nothing saved, the trunk at Amazon beside the one wanted)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import PUBLIC_IP, SECRET, cli_env, pb, plain_generate_tree

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "asterisk" / "examples" / "hotel" / "etc-asterisk"


def _tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    etc = plain_generate_tree(tmp_path / "etc")
    settings = tmp_path / "s.toml"
    settings.write_text(f'[pbx]\nasterisk_cli = "{tmp_path / "no-asterisk"}"\n'
                        f'[paths]\nstate_dir = "{tmp_path / "state"}"\n')
    settings.chmod(0o600)
    env = {"PBX_BRIDGE_CONFIG": str(settings), "PATH": "/usr/bin:/bin"}
    return etc, env


def _files(d: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_generate_json_dry_run_then_write_then_nothing(tmp_path):
    etc, env = _tree(tmp_path)
    args = ["generate", "--asterisk-dir", str(etc), "--public-ip", PUBLIC_IP, "--json"]
    before = _files(etc)
    r = pb(env, *args)
    assert r.returncode == 0, r.stderr
    dry = json.loads(r.stdout)  # the whole output is the JSON document
    assert dry["changed"] is True and dry["written"] is False and dry["layout"] == "plain"
    assert any(f["path"].endswith("pjsip_pbx-bridge.conf") and f["new"] and
               "+[alexa]" in f["diff"] for f in dry["files"])
    assert "iptables" in dry["firewall"] or dry["firewall"]
    assert _files(etc) == before and not (tmp_path / "state").exists()

    r = pb(env, *args, "--write")
    assert r.returncode == 0, r.stderr
    wrote = json.loads(r.stdout)
    assert wrote["written"] is True and wrote["backup"] and "skipped" in wrote["reload"]
    assert [f["path"] for f in wrote["files"]] == [f["path"] for f in dry["files"]]

    r = pb(env, *args, "--write")
    again = json.loads(r.stdout)
    assert r.returncode == 0 and again["changed"] is False and again["files"] == []
    # written without a reload (no Asterisk here): the rerun tries to reload and check it
    assert again["written"] is False and "not installed" in (again["reload"] or again["running"])

    r = pb(env, "generate", "--asterisk-dir", str(etc), "--list-backups", "--json")
    listed = json.loads(r.stdout)
    assert [b["state"] for b in listed["backups"]] == ["written"]
    assert listed["backups"][0]["id"] == Path(wrote["backup"]).name
    assert listed["backups"][0]["by"] == "generate"
    r = pb(env, "generate", "--asterisk-dir", str(etc), "--rollback", "--json")
    assert r.returncode == 2 and "--json" in r.stderr


def test_trunk_dry_run_sends_and_saves_nothing(emulator, tmp_path):
    srv = emulator(client_secret=SECRET, activate_after=0)
    e = cli_env(srv, tmp_path / "state")
    r = pb(e, "trunk", "create", "--asterisk-dir", str(EXAMPLE), "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["action"] == "created" and doc["dry_run"] and doc["trunkId"] is None
    assert doc["current"] is None and doc["desired"]["name"] == "pbx.example-hotel.test"
    assert doc["desired"]["peers"] == [f"{PUBLIC_IP}:5061"]
    assert len(doc["desired"]["chain"]) == 2 and "sha256:" in doc["desired"]["chain"][0]
    assert srv.emulator.state.trunks == {}
    assert not (tmp_path / "state" / "state.json").exists()
    assert not (tmp_path / "state" / "pbx-bridge.lock").exists()

    r = pb(e, "trunk", "create", "--asterisk-dir", str(EXAMPLE), "--wait", "--json")
    tid = json.loads(r.stdout)["trunkId"]
    held = json.dumps(srv.emulator.state.trunks[tid], sort_keys=True)
    r = pb(e, "trunk", "update", "--asterisk-dir", str(EXAMPLE), "--peer",
           "54.240.196.11:5061", "--dry-run", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["action"] == "updated" and doc["changed"] == ["peers"]
    assert doc["current"]["peers"] == [f"{PUBLIC_IP}:5061"]
    assert doc["desired"]["peers"] == ["54.240.196.11:5061"]
    assert json.dumps(srv.emulator.state.trunks[tid], sort_keys=True) == held
    r = pb(e, "trunk", "update", "--asterisk-dir", str(EXAMPLE), "--wait", "--json")
    doc = json.loads(r.stdout)
    assert doc["action"] == "unchanged" and doc["status"] == "ACTIVE"
    assert doc["current"] == doc["desired"]
    # and create --dry-run for a PBX whose trunk Amazon has: adopt, as create would
    shutil.rmtree(tmp_path / "state")
    r = pb(e, "trunk", "create", "--asterisk-dir", str(EXAMPLE), "--dry-run", "--json")
    doc = json.loads(r.stdout)
    assert doc["action"] == "adopted" and doc["trunkId"] == tid


def test_trunk_update_create_keeps_one_trunk_as_the_pbx_wants(emulator, tmp_path):
    srv = emulator(client_secret=SECRET, activate_after=0)
    e = cli_env(srv, tmp_path / "state")
    update = ["trunk", "update", "--create", "--asterisk-dir", str(EXAMPLE), "--json"]
    r = pb(e, *update, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["action"] == "created" and srv.emulator.state.trunks == {}
    r = pb(e, *update, "--wait")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["action"] == "created" and doc["status"] == "ACTIVE"
    tid = doc["trunkId"]
    r = pb(e, *update, "--wait")
    assert json.loads(r.stdout)["action"] == "unchanged" and len(srv.emulator.state.trunks) == 1
    # deleted at Amazon behind its back: --create makes it again, and saves the new one
    del srv.emulator.state.trunks[tid]
    r = pb(e, *update)
    doc = json.loads(r.stdout)
    assert doc["action"] == "created" and doc["trunkId"] != tid
    assert json.loads((tmp_path / "state" / "state.json").read_text())["trunkId"] == \
        doc["trunkId"]
    # without --create a missing saved trunk is still an error
    del srv.emulator.state.trunks[doc["trunkId"]]
    r = pb(e, "trunk", "update", "--asterisk-dir", str(EXAMPLE), "--json")
    assert r.returncode == 1 and "404" in r.stderr


def test_rollback_dry_run_shows_what_the_files_would_become_hand_edits_included(tmp_path):
    """Finding 4: config state=absent in --check --diff needs what a rollback would restore,
    read-only, with the hand edit it would lose."""
    etc, env = _tree(tmp_path)
    args = ["generate", "--asterisk-dir", str(etc), "--public-ip", PUBLIC_IP]
    assert pb(env, *args, "--write").returncode == 0
    pjsip = etc / "pjsip.conf"
    pjsip.write_text(pjsip.read_text() + "; my hand edit\n")
    before = _files(tmp_path)
    bid = json.loads(pb(env, "generate", "--asterisk-dir", str(etc), "--list-backups",
                        "--json").stdout)["backups"][0]["id"]
    r = pb(env, "generate", "--asterisk-dir", str(etc), "--rollback", "--to", bid,
           "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["rolled_back"] == [bid] and doc["changed"] is True
    by_path = {f["path"]: f for f in doc["files"]}
    assert "-; my hand edit" in by_path[str(pjsip)]["diff"]
    assert any(f["removed"] and f["path"].endswith("pjsip_pbx-bridge.conf")
               for f in doc["files"])
    assert _files(tmp_path) == before  # nothing written, no lock, no marks
    r = pb(env, "generate", "--asterisk-dir", str(etc), "--dry-run")
    assert r.returncode == 2 and "--rollback" in r.stderr


def test_a_read_only_token_cache_is_read_and_never_written(emulator, tmp_path):
    """Finding 17: Ansible's check mode (PBX_BRIDGE_TOKEN_CACHE=read-only) wrote token.json."""
    srv = emulator(client_secret=SECRET, activate_after=0)
    e = cli_env(srv, tmp_path / "state")
    r = pb({**e, "PBX_BRIDGE_TOKEN_CACHE": "read-only"}, "trunk", "list", "--json")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "state" / "token.json").exists()
    assert pb(e, "trunk", "list", "--json").returncode == 0
    assert (tmp_path / "state" / "token.json").exists()  # otherwise cached as before


def test_a_wait_that_fails_after_the_change_still_says_what_was_done(emulator, tmp_path):
    """Finding 6: trunk create/update --wait --json whose wait fails prints the action done
    (with the error) before it exits 1, so Ansible can report changed."""
    srv = emulator(client_secret=SECRET, activate_after=3600)
    e = cli_env(srv, tmp_path / "state")
    r = pb(e, "trunk", "update", "--create", "--asterisk-dir", str(EXAMPLE), "--wait",
           "--timeout", "1", "--json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["action"] == "created" and doc["trunkId"] and "after" in doc["error"]
    assert doc["trunkId"] in srv.emulator.state.trunks


def test_trunk_delete_dry_run_refuses_as_the_delete_would_and_sends_nothing(emulator,
                                                                           tmp_path):
    """Finding 12: Ansible's check mode of trunk state=absent needs the delete's checks."""
    srv = emulator(client_secret=SECRET, activate_after=0)
    e = cli_env(srv, tmp_path / "state")
    r = pb(e, "trunk", "create", "--asterisk-dir", str(EXAMPLE), "--json")
    tid = json.loads(r.stdout)["trunkId"]
    mapfile = tmp_path / "rooms.csv"
    mapfile.write_text("extension,room,comms_profile_id\n7101,Room 101,amzn1.alexa.unit.did.1\n")
    assert pb(e, "rooms", "apply", "--map", str(mapfile), "--yes").returncode == 0
    r = pb(e, "trunk", "delete", "--yes", "--dry-run", "--json")
    assert r.returncode == 1 and "1 extension mapping" in r.stderr
    r = pb(e, "trunk", "delete", "--yes", "--dry-run", "--force", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc == {"action": "deleted", "dry_run": True, "trunkId": tid, "mappings_removed": 1}
    assert tid in srv.emulator.state.trunks
    assert json.loads((tmp_path / "state" / "state.json").read_text())["trunkId"] == tid


def test_a_renamed_room_is_in_the_plan_until_applied(emulator, tmp_path):
    """Finding 8: same profile, new name changes the routes' caller-ID name: the plan says
    so (renames), and after apply it is recorded."""
    srv = emulator(client_secret=SECRET, activate_after=0)
    e = cli_env(srv, tmp_path / "state")
    assert pb(e, "trunk", "create", "--asterisk-dir", str(EXAMPLE), "--json").returncode == 0
    mapfile = tmp_path / "rooms.csv"
    mapfile.write_text("extension,room,comms_profile_id\n7101,Room 101,amzn1.alexa.unit.did.1\n")
    assert pb(e, "rooms", "apply", "--map", str(mapfile), "--yes").returncode == 0
    mapfile.write_text("extension,room,comms_profile_id\n7101,Suite 1,amzn1.alexa.unit.did.1\n")
    r = pb(e, "rooms", "plan", "--map", str(mapfile), "--json")
    doc = json.loads(r.stdout)
    assert doc["renames"] == [{"extension": "7101", "oldRoom": "Room 101", "room": "Suite 1"}]
    assert doc["updates"] == [] and doc["creates"] == []
    assert pb(e, "rooms", "apply", "--map", str(mapfile), "--yes").returncode == 0
    assert "Suite 1" in (tmp_path / "state" / "routes.json").read_text()
    r = pb(e, "rooms", "plan", "--map", str(mapfile), "--json")
    assert json.loads(r.stdout)["renames"] == []
    # finding 20: a delete says which room it was (the recorded name)
    mapfile.write_text("extension,room,comms_profile_id\n")
    r = pb(e, "rooms", "plan", "--map", str(mapfile), "--json")
    assert [d["room"] for d in json.loads(r.stdout)["deletes"]] == ["Suite 1"], r.stderr
