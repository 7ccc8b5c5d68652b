"""The alert rules we ship (asterisk/prometheus/pbx-bridge-rules.yml), proven: `promtool check
rules` accepts them, `promtool test rules` runs their unit tests (each alert firing for one
host and silent for another, or before its `for:`), and every metric they name is one that
`status` or `test-call` really exports.

promtool comes with Debian's `prometheus` package (.ci/run installs it): missing, these
tests skip and say so, except under CI (CI set), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from helpers import ROOT

RULES_DIR = ROOT / "asterisk" / "prometheus"
RULES = RULES_DIR / "pbx-bridge-rules.yml"
TESTS = RULES_DIR / "pbx-bridge-rules.test.yml"


def promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        why = "promtool is not installed (apt-get install prometheus; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {why}", pytrace=False)
        pytest.skip(why)
    return tool


def alerts() -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.M)


def test_promtool_check_rules_accepts_them():
    r = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in r.stdout


def test_promtool_test_rules_passes():
    r = subprocess.run([promtool(), "test", "rules", TESTS.name], capture_output=True,
                       text=True, timeout=60, cwd=RULES_DIR)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_each_alert_has_a_firing_and_a_silent_case():
    """promtool compares the alerts exactly: a host not listed must not fire. So each alert
    needs a case that lists a host (fires) and a host of its input left out of every list,
    or an empty list (silent)."""
    text = TESTS.read_text()
    groups = text.split("\n  - name: ")[1:]
    assert len(alerts()) == 12
    for alert in alerts():
        mine = [g for g in groups if f"alertname: {alert}\n" in g]
        assert mine, f"{alert}: no promtool test"
        fires = silent = False
        for g in mine:
            hosts = set(re.findall(r'instance="([^"]+)"', g))
            for case in g.split("      - eval_time:")[1:]:
                if f"alertname: {alert}\n" not in case:
                    continue
                if "exp_alerts: []" in case:
                    silent = True
                    continue
                listed = set(re.findall(r"instance: ([\w-]+)", case))
                fires = fires or bool(listed)
                silent = silent or bool(hosts - listed)
        assert fires and silent, f"{alert}: fires {fires}, silent {silent}"


def exported() -> set[str]:
    """Every metric name status and test-call write, from their own registries filled as
    fully as they can be."""
    from prometheus_client import generate_latest

    from pbx_bridge.findings import Finding, Status
    from pbx_bridge.status.report import AgiLookup, CertInfo, Report, registry
    from pbx_bridge.testcall.diagnose import diagnose
    from pbx_bridge.testcall.metrics import registry as call_registry
    from pbx_bridge.testcall.observation import Observation
    from pbx_bridge.testcall.quality import FROM_AMAZON, TO_AMAZON, Leg

    cert = CertInfo("file", "/etc/asterisk/keys/pbx.crt", 2e9, "CN=pbx", "ab")
    served = CertInfo("served", "127.0.0.1:5061", 2e9, "CN=pbx", "ab")
    report = Report(1.8e9, [Finding("cert.valid", Status.PASS, "ok")], cert, served,
                    trunk_id="t1", trunk_exists=True, trunk_status="ACTIVE",
                    trunk_chain_matches=True, trunk_peers_match=True,
                    mappings={"in_sync": 1, "missing": 0, "changed": 0, "extra": 0},
                    last_sync=1.7e9, services={"fastagi": True, "ami": True},
                    agi_lookup=AgiLookup("7201", None, {"ALEXA_MAPPED": "1"}, ()))
    o = Observation("to-alexa", "7201", "alexa", endpoint_loaded=True, mapped=True,
                    channel="PJSIP/alexa-1", answered=True, sip_code=200, tls=True,
                    srtp=False, codec="ulaw", rtp_sent=1, rtp_received=1, pdd_ms=1.0,
                    answer_ms=1.0)
    o.quality = {d: Leg(1, 1, 0, 0.0, 1.0, 1.0, 88.0, 4.4, 3) for d in (TO_AMAZON,
                                                                          FROM_AMAZON)}
    text = generate_latest(registry(report)).decode() + generate_latest(
        call_registry(o, diagnose(o), 1.8e9, 1.0)).decode()
    return set(re.findall(r"^# TYPE (\w+) ", text, re.M))


def test_the_rules_name_only_metrics_that_are_exported():
    named = set(re.findall(r"\bpbx_bridge_\w+", "\n".join(
        line for line in RULES.read_text().splitlines() if "expr:" in line)))
    have = exported()
    assert {"pbx_bridge_trunk_active", "pbx_bridge_test_call_mos_estimate"} <= have
    assert named and named <= have, sorted(named - have)
    # and so do the promtool tests' input series
    inputs = set(re.findall(r"series: '(pbx_bridge_\w+)", TESTS.read_text()))
    assert inputs <= have, sorted(inputs - have)
