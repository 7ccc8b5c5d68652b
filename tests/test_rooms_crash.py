"""Nothing lost when `rooms apply` dies: SIGKILL with requests in flight, a full disk, a
read-only state dir. Against the emulator; the kill points and free space are seeded
(``PBX_BRIDGE_TEST_SEED`` replays a run; the seed is printed)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from helpers import PB_CMD, ROOT, csv_of, pb, rows
from pbx_bridge.amazon.models import Mapping
from pbx_bridge.rooms.store import Pending, Row
from pbx_bridge.rooms.sync import PENDING_GRACE, reconcile

N = 60  # rows per map; switching maps deletes 30, updates 30, creates 30
MAP_A = rows(N, 0, "amzn1.alexa.unit.did.a")
MAP_B = rows(N, N // 2, "amzn1.alexa.unit.did.b")
MAP_C = MAP_B[:20]  # a later map that drops rooms


def _seed() -> random.Random:
    seed = int(os.environ.get("PBX_BRIDGE_TEST_SEED") or random.SystemRandom().randrange(2**31))
    print(f"PBX_BRIDGE_TEST_SEED={seed}")  # shown with the failure: replays this run
    return random.Random(seed)


class Watch:
    """The emulator's log (one line per answered request) and a hook into its state saves
    (a mapping written at "Amazon", its answer not yet sent): kills the client at the k-th
    write, and tells when every request that reached the emulator has been answered."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.answered = 0
        self.writes = 0
        self.kill_at: int | None = None
        self.pid: int | None = None
        self.killed_at_write: int | None = None

    def write(self, line: str) -> int:
        with self.cond:
            self.answered += line.count("\n")
            self.cond.notify_all()
        return len(line)

    def flush(self) -> None:
        pass

    def saved(self) -> None:  # the emulator's save(): under its lock, after the work
        self.writes += 1
        if self.kill_at is not None and self.writes >= self.kill_at and self.pid:
            os.kill(self.pid, signal.SIGKILL)  # the answer to this write never arrives
            self.killed_at_write, self.kill_at = self.writes, None

    def quiet(self, emu, timeout: float = 30) -> None:
        """Wait until every request that reached the emulator was answered (the ones in
        flight at a kill land at "Amazon" after the client is gone)."""
        with self.cond:
            assert self.cond.wait_for(lambda: self.answered >= emu.requests, timeout), \
                (self.answered, emu.requests)


def _table(tid, emu) -> dict[str, str]:
    return {e: m["commsProfileId"] for e, m in emu.state.mappings[tid].items()}


def _want(m) -> dict[str, str]:
    return {e: p for e, _, p in m}


def _routes(state: Path) -> dict[str, list[str]]:
    return json.loads((state / "routes.json").read_text())["rooms"]


def _plan(env, m: Path) -> dict:
    r = pb(env, "rooms", "plan", "--map", str(m), "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    # every mapping Amazon holds is in exactly one bucket
    assert len(plan["updates"]) + len(plan["deletes"]) + plan["unchanged"] + plan["kept"] == \
        plan["existing"], plan
    return plan


def _converged(env, tid, emu, state: Path, m: Path, want, foreign=None) -> None:
    """Amazon holds exactly the map (and ``foreign``, the mappings pbx-bridge did not make,
    which it keeps), the routes say the same, plan is empty, nothing is pending."""
    foreign = foreign or {}
    assert _table(tid, emu) == {**_want(want), **foreign}
    assert _routes(state) == {**{e: [p, room] for e, room, p in want},
                              **{e: [p, ""] for e, p in foreign.items()}}
    plan = _plan(env, m)
    assert (plan["creates"], plan["updates"], plan["deletes"], plan["kept"]) == \
        ([], [], [], len(foreign)), plan
    db = sqlite3.connect(state / "pbx-bridge.sqlite")
    try:
        assert db.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM mappings WHERE ours = 1").fetchone()[0] == \
            len(want)  # all created by pbx-bridge, so a later map may delete them
    finally:
        db.close()


def _apply(env, m: Path, *extra: str):
    return pb(env, "rooms", "apply", "--map", str(m), "--yes", "--force", *extra)


# ------------------------------------------------------------------ pure reconciliation

def test_reconcile_judges_pending_rows_against_amazon():
    now = 1_000_000.0
    rows_ = {"1": Row("1", "amzn1.p1", "R1", True, now), "2": Row("2", "amzn1.p2", "R2", False, now),
             "5": Row("5", "amzn1.p5", "R5", True, now)}
    pending = {
        "3": Pending("3", "create", "amzn1.p3", "R3", now - 1),  # landed: ours
        "4": Pending("4", "create", "amzn1.p4", "R4", now - 1),  # not (yet) there: kept
        "5": Pending("5", "delete", "amzn1.p5", "", now - 1),  # landed: gone
        "6": Pending("6", "update", "amzn1.new", "R6", now - 1),  # landed over theirs: ours
        "7": Pending("7", "create", "amzn1.p7", "R7", now - PENDING_GRACE - 1),  # never landed
        "2": Pending("2", "delete", "amzn1.p2", "", now - 1),  # still there: maybe in flight
    }
    amazon = [Mapping("1", "amzn1.p1"), Mapping("2", "amzn1.p2"), Mapping("3", "amzn1.p3"),
              Mapping("6", "amzn1.new"), Mapping("8", "amzn1.p8")]
    ours, rec = reconcile(rows_, pending, amazon, now)
    assert ours == {"1", "3", "6"}
    assert rec.confirm == (("3", "amzn1.p3", "R3"), ("6", "amzn1.new", "R6"))
    assert rec.gone == ("5",) and rec.stale == ("7",)


# ------------------------------------------------------------------ SIGKILL

def test_sigkill_at_random_points_then_a_rerun_converges(hotel, tmp_path):
    rng = _seed()
    watch = Watch()
    srv, tid, env = hotel(latency_ms=20, log=watch)
    emu = srv.emulator
    emu.save = watch.saved  # the hook: a write done at "Amazon", its answer not yet sent
    foreign = {"7999": "amzn1.alexa.unit.did.theirs"}  # made by someone else: always kept
    emu.state.mappings[tid]["7999"] = {"extension": "7999", "commsProfileId": foreign["7999"],
                                       "routingType": "communication-profile"}
    state = tmp_path / "state"
    maps = {"a": (tmp_path / "a.csv", MAP_A), "b": (tmp_path / "b.csv", MAP_B)}
    for path, m in maps.values():
        path.write_text(csv_of(m))
    kills = []
    for i in range(6):
        path, want = maps["ab"[i % 2]]
        have = {e: p for e, p in _table(tid, emu).items() if e not in foreign}
        todo = len(set(have) ^ set(_want(want))) + sum(
            1 for e, p in _want(want).items() if e in have and have[e] != p)
        watch.kill_at = watch.writes + rng.randint(1, todo - 1)
        proc = subprocess.Popen([*PB_CMD, "rooms", "apply", "--map",
                                 str(path), "--yes", "--force", "--concurrency", "4"], cwd=ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        watch.pid = proc.pid
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, (out, err)
        watch.quiet(emu)  # requests in flight at the kill have landed at "Amazon"
        kills.append((todo, watch.killed_at_write))
        # after the kill, plan puts every mapping in a bucket, and only 7999 in "kept"
        plan = _plan(env, path)
        assert plan["kept"] == 1, plan
        r = _apply(env, path)
        assert r.returncode == 0, r.stdout + r.stderr
        _converged(env, tid, emu, state, path, want, foreign)
    print("kills (changes to do, killed at write #):", kills)
    c = tmp_path / "c.csv"  # a later map that drops rooms deletes them everywhere
    c.write_text(csv_of(MAP_C))
    assert _apply(env, c).returncode == 0
    _converged(env, tid, emu, state, c, MAP_C, foreign)


def test_a_delete_done_at_amazon_but_not_recorded_is_gone_after_a_rerun(hotel, tmp_path):
    """The kill lands between Amazon's delete and the local record: the rerun forgets it,
    and the AGI no longer routes the extension."""
    watch = Watch()
    srv, tid, env = hotel(log=watch)
    emu = srv.emulator
    m = tmp_path / "m.csv"
    m.write_text(csv_of(rows(4)))
    assert _apply(env, m).returncode == 0
    emu.save = watch.saved
    m.write_text(csv_of(rows(3)))  # drops 7103
    watch.kill_at = watch.writes + 1
    proc = subprocess.Popen([*PB_CMD, "rooms", "apply", "--map",
                             str(m), "--yes", "--force"], cwd=ROOT, env=env)
    watch.pid = proc.pid
    assert proc.wait(60) == -signal.SIGKILL
    watch.quiet(emu)
    assert "7103" not in _table(tid, emu) and "7103" in _routes(tmp_path / "state")
    r = _apply(env, m)
    assert r.returncode == 0, r.stderr
    assert "7103" not in _routes(tmp_path / "state")
    from pbx_bridge.agi.routes import load_table
    assert "7103" not in load_table(tmp_path / "state").rooms  # what the AGI reads
    _converged(env, tid, emu, tmp_path / "state", m, rows(3))


# ------------------------------------------------------------------ full and read-only disks

@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (root only; skipped with the reason otherwise); unmounted after."""
    mounted: list[Path] = []

    def make(path: Path, size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                            str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
        mounted.append(path)
        return path

    yield make
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(state: Path, leave: int) -> None:
    """Leave about ``leave`` bytes free on the state dir's file system."""
    st = os.statvfs(state)
    with open(state / "filler", "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


def test_a_full_disk_stops_apply_cleanly_and_a_rerun_converges(hotel, tmp_path, tmpfs):
    rng = _seed()
    state = tmpfs(tmp_path / "state", "6m")
    srv, tid, env = hotel(latency_ms=5)
    emu = srv.emulator
    maps = {"a": (tmp_path / "a.csv", MAP_A), "b": (tmp_path / "b.csv", MAP_B)}
    for path, m in maps.values():
        path.write_text(csv_of(m))
    assert _apply(env, maps["a"][0]).returncode == 0
    stops = []
    for i, leave in enumerate((rng.randint(64, 400) * 1024, rng.randint(400, 1500) * 1024)):
        path, want = maps["ba"[i % 2]]
        old_routes = (state / "routes.json").read_bytes()
        _fill(state, leave)
        r = _apply(env, path)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "run 'rooms apply' again to finish" in r.stdout, r.stdout
        assert "full" in r.stdout or "No space left" in r.stdout, r.stdout
        line = r.stdout.strip().splitlines()[-1]
        done, total = line.split(" done ")[0].split("/")
        stops.append((leave // 1024, f"{done}/{total}", "cannot publish" in r.stdout))
        # the routes are whole: the old snapshot when the new one could not be written
        routes = json.loads((state / "routes.json").read_text())
        if "cannot publish the routes" in r.stdout:
            assert (state / "routes.json").read_bytes() == old_routes
        assert set(routes["rooms"]) <= set(_table(tid, emu)) | set(json.loads(old_routes)["rooms"])
        assert not [p for p in os.listdir(state) if p.endswith(".tmp")]
        (state / "filler").unlink()
        r = _apply(env, path)
        assert r.returncode == 0, r.stdout + r.stderr
        _converged(env, tid, emu, state, path, want)
    print("full disk (KiB left, done/total):", stops)
    c = tmp_path / "c.csv"
    c.write_text(csv_of(MAP_C))
    assert _apply(env, c).returncode == 0
    _converged(env, tid, emu, state, c, MAP_C)


@pytest.mark.parametrize("db", ["clean", "killed", "killed-no-shm"])
def test_read_only_commands_work_on_a_read_only_state_dir(hotel, tmp_path, tmpfs, db):
    state = tmpfs(tmp_path / "state", "4m")
    watch = Watch()
    srv, tid, env = hotel(log=watch)
    m = tmp_path / "m.csv"
    m.write_text(csv_of(rows(10)))
    assert _apply(env, m).returncode == 0
    m.write_text(csv_of(rows(14)))
    if db != "clean":  # a writer killed with its last commits still in the WAL
        srv.emulator.save = watch.saved
        watch.kill_at = watch.writes + 3
        proc = subprocess.Popen([*PB_CMD, "rooms", "apply", "--map",
                                 str(m), "--yes", "--concurrency", "1"], cwd=ROOT, env=env)
        watch.pid = proc.pid
        assert proc.wait(60) == -signal.SIGKILL
        watch.quiet(srv.emulator)
        assert (state / "pbx-bridge.sqlite-wal").stat().st_size > 0
        if db == "killed-no-shm":
            (state / "pbx-bridge.sqlite-shm").unlink()
    else:  # closed cleanly: everything in the database file, no WAL index to open
        assert not (state / "pbx-bridge.sqlite-wal").exists()
        assert not (state / "pbx-bridge.sqlite-shm").exists()
    before = sorted(os.listdir(state))
    r = subprocess.run(["mount", "-o", "remount,ro", str(state)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with pytest.raises(OSError):
        (state / "x").touch()
    r = pb(env, "rooms", "plan", "--map", str(m), "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    # the pending row of the write Amazon did before the kill is seen: 13 mappings, all ours
    assert (plan["existing"], len(plan["creates"]), plan["kept"]) == \
        ((10, 4, 0) if db == "clean" else (13, 1, 0)), plan
    r = pb(env, "trunk", "show", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["trunkId"] == tid, r.stderr
    r = pb(env, "status", "--format", "json", "--timeout", "5")  # no Asterisk here: exit 1
    doc = json.loads(r.stdout)
    assert "mappings" not in doc["errors"] and "trunk" not in doc["errors"], doc["errors"]
    assert doc["mappings"]["in_sync"] == (10 if db == "clean" else 12) and doc["lastSync"]
    assert sorted(os.listdir(state)) == before


def test_plan_creates_nothing_in_the_state_dir(hotel, tmp_path):
    """Without root: plan opens the database read-only, so a state dir without one stays
    without one (and one with it gains no file)."""
    srv, tid, env = hotel()
    state = tmp_path / "state"
    m = tmp_path / "m.csv"
    m.write_text(csv_of(rows(5)))
    before = {p: (state / p).stat().st_mtime_ns for p in os.listdir(state)}
    r = pb(env, "rooms", "plan", "--map", str(m), "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["creates"]) == 5
    after = {p: (state / p).stat().st_mtime_ns for p in os.listdir(state)}
    assert set(after) - set(before) <= {"token.json"}  # the token cache, nothing else
    assert "pbx-bridge.sqlite" not in after
    # with a database (after an apply): plan still adds no file, not even SQLite's -wal/-shm
    assert pb(env, "rooms", "apply", "--map", str(m), "--yes").returncode == 0
    before = sorted(os.listdir(state))
    db_bytes = (state / "pbx-bridge.sqlite").read_bytes()
    m.write_text(csv_of(rows(6)))
    r = pb(env, "rooms", "plan", "--map", str(m), "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["creates"]) == 1
    assert sorted(os.listdir(state)) == before
    assert (state / "pbx-bridge.sqlite").read_bytes() == db_bytes


def test_routes_are_only_replaced_by_a_whole_new_snapshot(tmp_path, tmpfs):
    """A snapshot that does not fit leaves the old one in place, whole, and no temp file."""
    from pbx_bridge.rooms import routes
    state = tmpfs(tmp_path / "state", "1m")
    routes.publish(state, "t1", "alexa", {"7100": ("amzn1.alexa.unit.did.p0", "Room 100")})
    old = (state / "routes.json").read_bytes()
    _fill(state, 0)
    big = {str(10000 + i): (f"amzn1.alexa.unit.did.p{i}", f"Room {i}") for i in range(3000)}
    with pytest.raises(OSError) as err:
        routes.publish(state, "t1", "alexa", big)
    assert err.value.errno == __import__("errno").ENOSPC
    assert (state / "routes.json").read_bytes() == old
    assert sorted(os.listdir(state)) == ["filler", "routes.json"]
