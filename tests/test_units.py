"""The shipped systemd units: `systemd-analyze verify` accepts each, and the commands they run
do their job when run the way the unit runs them (its ExecStart and Environment=, with only the
install paths pointed at this checkout and a temporary folder). Also: log lines a machine can
read (--log-format json) from the scheduled commands."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PB_CMD, ROOT, TEST_BIN, SECRET, csv_of, pb, rows
from test_status import m, metrics

UNITS = ROOT / "asterisk" / "systemd"
BIN = Path(TEST_BIN or Path(sys.executable).parent / "pbx-bridge")


def unit(name: str) -> dict[str, list[str]]:
    """key -> values, over all sections (enough for these units)."""
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def exec_start(name: str, **paths: str) -> tuple[list[str], dict[str, str]]:
    u = unit(name)
    argv = shlex.split(u["ExecStart"][0])
    assert argv[0] == "/usr/local/bin/pbx-bridge"
    argv = [*PB_CMD, *argv[1:]]
    argv = [paths.get(a, a) for a in argv]
    env = dict(v.split("=", 1) for v in u.get("Environment", []))
    return argv, env


@pytest.mark.parametrize("name", sorted(p.name for p in UNITS.iterdir()))
def test_systemd_analyze_verify_accepts_each_unit(name, tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd; .ci/run does)")
    if not BIN.exists():
        pytest.skip(f"{BIN} is not installed (pip install -e .)")
    for p in UNITS.iterdir():  # a timer is verified with its service beside it
        (tmp_path / p.name).write_text(p.read_text().replace("/usr/local/bin/pbx-bridge",
                                                             str(BIN)))
    r = subprocess.run([tool, "verify", "--man=no", str(tmp_path / name)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr


def test_timers_start_their_services():
    for timer in ("pbx-bridge-sync.timer", "pbx-bridge-status.timer"):
        assert (UNITS / timer.replace(".timer", ".service")).exists()
        assert "timers.target" in unit(timer)["WantedBy"]
    assert unit("pbx-bridge-status.timer")["OnUnitActiveSec"] == ["1min"]


def test_sync_unit_applies_then_stays_quiet(hotel, tmp_path):
    srv, trunk, env = hotel()
    mapfile = tmp_path / "rooms.csv"
    mapfile.write_text(csv_of(rows(12)))
    argv, unit_env = exec_start("pbx-bridge-sync.service",
                                **{"/etc/pbx-bridge/rooms.csv": str(mapfile)})
    assert unit_env == {"PBX_BRIDGE_LOG_FORMAT": "json"}
    settings = tmp_path / "pbx-bridge.toml"  # an AGI user this host has: no warning
    settings.write_text("[agi]\nuser = \"root\"\n")
    settings.chmod(0o600)
    env = {**env, **unit_env, "PBX_BRIDGE_CONFIG": str(settings)}
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in (r.stdout + r.stderr).splitlines()]  # all JSON
    done = [e for e in lines if e["event"] == "rooms apply"]
    assert done and done[0]["level"] == "info" and "applied 12 change(s)" in done[0]["message"]
    assert len(srv.emulator.state.mappings[trunk]) == 12
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""  # nothing changed: quiet
    assert SECRET not in r.stdout + r.stderr


def test_status_unit_writes_the_textfile(hotel, tmp_path):
    srv, trunk, env = hotel()
    prom = tmp_path / "node-exporter" / "pbx_bridge.prom"
    prom.parent.mkdir()
    argv, unit_env = exec_start(
        "pbx-bridge-status.service",
        **{"/var/lib/prometheus/node-exporter/pbx_bridge.prom": str(prom)})
    argv += ["--asterisk-dir", str(tmp_path / "no-asterisk-here")]
    r = subprocess.run(argv, capture_output=True, text=True, env={**env, **unit_env},
                       cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    got = metrics(prom.read_text())
    assert m(got, "pbx_bridge_trunk_active") == 1
    assert m(got, "pbx_bridge_status_success") == 0  # no Asterisk config: that part failed
    assert m(got, "pbx_bridge_status_part_success", part="config") == 0
    event = json.loads(r.stderr)  # one JSON line saying why
    assert event["event"] == "status" and event["level"] == "warning"
    assert "config not checked" in event["message"] and event["state"] == "UNKNOWN"


def test_json_logs_of_a_long_apply_and_a_wait(hotel, tmp_path, emulator):
    srv, trunk, env = hotel(latency_ms=40)
    (tmp_path / "m.csv").write_text(csv_of(rows(30)))
    r = pb({**env, "PBX_BRIDGE_PROGRESS_EVERY": "0.2"}, "--log-format", "json", "rooms",
           "apply", "--map", str(tmp_path / "m.csv"), "--yes", "--concurrency", "1")
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in r.stderr.splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and all(0 < e["done"] < e["total"] == 30 for e in progress)
    assert all(set(e) >= {"timestamp", "level", "event"} for e in events)
    assert SECRET not in r.stdout + r.stderr
    # trunk create --wait without a terminal: one line per poll
    srv2 = emulator(client_secret=SECRET, activate_after=2.5)
    from helpers import cli_env, make_host
    host = make_host(tmp_path / "etc")
    env2 = cli_env(srv2, tmp_path / "state2", PBX_BRIDGE_LOG_FORMAT="json")
    r = pb(env2, "trunk", "create", "--asterisk-dir", str(host.etc), "--wait",
           "--skip-preflight")
    assert r.returncode == 0, r.stderr
    waits = [json.loads(x) for x in r.stderr.splitlines()]
    assert len(waits) >= 2 and {w["status"] for w in waits} == {"PENDING", "ACTIVE"}
    assert all(w["event"] == "trunk-wait" and "elapsed" in w for w in waits)
    assert json.loads(r.stdout)["event"] == "trunk create"


def test_json_log_lines_never_carry_secrets():
    from pbx_bridge import log
    from pbx_bridge.secret import Secret
    import io
    out = io.StringIO()
    log.configure("json")
    try:
        log.event("x", message="m", stream=out, client_secret="plain-secret",
                  token=Secret("tok-123"), extension="7101")
    finally:
        log.configure("text")
    doc = json.loads(out.getvalue())
    assert doc["client_secret"] == "***" and doc["token"] == "***"
    assert doc["extension"] == "7101"
    assert "plain-secret" not in out.getvalue() and "tok-123" not in out.getvalue()


def test_errors_are_json_lines_too_with_json_logs(tmp_path):
    from helpers import pb
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    env.update(PBX_BRIDGE_STATE_DIR=str(tmp_path / "state"), PBX_BRIDGE_LOG_FORMAT="json")
    r = pb(env, "rooms", "plan", "--map", str(tmp_path / "m.csv"))
    assert r.returncode == 2
    doc = json.loads(r.stderr)
    assert doc["level"] == "error" and doc["exit_code"] == 2 and "no --trunk" in doc["message"]
