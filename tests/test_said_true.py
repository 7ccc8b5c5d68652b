"""Small untruths (issue 20): plan columns by display width, test-call's first line agreeing
with its verdict, status never counting a warning as a pass."""

from __future__ import annotations

import argparse
import time

import pytest

from pbx_bridge.findings import Finding, Status


# ------------------------------------------------------------------ rooms plan columns

@pytest.mark.parametrize("room", ["Room 101", "Suite 301 – Sea View’s", "海景套房 301",
                                  "Cafe\u0301 Noir", "Ｒｏｏｍ２０２", "x" * 25])
def test_plan_columns_align_by_display_width(room):
    from pbx_bridge.commands.rooms import _show_lines
    from pbx_bridge.rooms.sync import Change, RoomPlan
    from pbx_bridge.textwidth import width
    plan = RoomPlan("t1", (Change("create", "7101", "amzn1.p.1", "Room 1"),
                           Change("create", "7102", "amzn1.p.2", room)), (), (), 0)
    lines = list(_show_lines(plan))[1:]
    starts = [width(ln[:ln.index("amzn1.")]) for ln in lines]
    assert starts[0] == starts[1] or len(room) > 20, lines


def test_display_width_counts_cells():
    from pbx_bridge.textwidth import ljust, width
    assert width("Sea View’s – 1") == 14
    assert width("海景") == 4 and width("Cafe\u0301") == 4 and width("Ｒ") == 2
    assert ljust("海景", 6) == "海景  "


# ------------------------------------------------------------------ test-call's first line

def _show_call(capsys, ring: bool, reached: bool):
    from pbx_bridge.commands.test_call import _show
    from pbx_bridge.testcall.observation import Observation
    obs = Observation("from-alexa", "201", "alexa")
    findings = [Finding("dialplan.reach", Status.PASS if reached else Status.FAIL,
                        "a call from Alexa to 201 reaches [from-alexa] -> [internal] 201"
                        if reached else "a call from Alexa to 201 goes nowhere")]
    _show(argparse.Namespace(format="text", ring=ring), obs, findings)
    return capsys.readouterr().out.splitlines()


def test_from_alexa_without_ring_says_what_was_checked(capsys):
    """It used to print "not answered" first, then "the call works": no call was placed."""
    out = _show_call(capsys, ring=False, reached=True)
    assert out[0] == ("test call from-alexa 201: the running dialplan checked, no call "
                      "placed (--ring rings the phone)")
    assert "answered" not in out[0] and "the call works" not in "\n".join(out)
    assert out[-1] == "a call from Alexa to 201 would be delivered: 1 pass"
    out = _show_call(capsys, ring=False, reached=False)
    assert out[-1] == "a call from Alexa to 201 would NOT be delivered: 1 fail"


# ------------------------------------------------------------------ status counts

def _report():
    from pbx_bridge.status.report import Report
    return Report(time.time(), checks=[
        Finding("tls.transport", Status.PASS, "ok"),
        Finding("cert.valid", Status.PASS, "ok"),
        Finding("amazon.ca", Status.WARN, "no Amazon root in the CA list"),
        Finding("security.key", Status.FAIL, "readable by others")])


def test_status_never_counts_a_warning_as_a_pass():
    from prometheus_client import generate_latest
    from pbx_bridge.status.report import nagios, registry, text
    rep = _report()
    problems = rep.problems(21, 7)
    assert "config checks: 2 pass, 1 warn (amazon.ca), 1 fail (security.key)" in \
        text(rep, problems)
    doc = rep.to_json(problems)
    assert doc["checkCounts"] == {"pass": 2, "warn": 1, "fail": 1}
    line, _ = nagios(rep, problems, 21, 7)
    assert "checks_passed=2 checks_warned=1 checks_failed=1;;1" in line
    prom = generate_latest(registry(rep)).decode()
    assert 'pbx_bridge_check_ok{check="amazon.ca"} 0.0' in prom
    assert 'pbx_bridge_check_warning{check="amazon.ca"} 1.0' in prom
    assert 'pbx_bridge_check_ok{check="cert.valid"} 1.0' in prom
    # with no failure, nagios does not say "all checks pass" over a warning
    rep.checks = rep.checks[:3]
    rep.trunk_id, rep.trunk_exists, rep.trunk_status = "t1", True, "ACTIVE"
    line, code = nagios(rep, rep.problems(21, 7), 21, 7)
    assert line.startswith("PBX-BRIDGE OK - trunk t1 ACTIVE, 1 check warning(s) (amazon.ca)")
    rep.trunk_status = "PENDING"  # not ACTIVE: the summary speaks of the checks only
    line, code = nagios(rep, [], 21, 7)
    assert "all checks pass" not in line and "no check fails, 1 check warning(s)" in line
