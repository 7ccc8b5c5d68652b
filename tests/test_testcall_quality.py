"""test-call's quality figures and their findings: pure functions, fed what a real Asterisk
22.10.1 reported during a call with 5 % of the RTP dropped toward Amazon
(data/testcall/rtcp-loss-toward-amazon.json, recorded on test_call_quality.py's lab), and
the metrics test-call --textfile writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import DATA, ROOT
from pbx_bridge.findings import Status
from pbx_bridge.testcall.diagnose import diagnose, report
from pbx_bridge.testcall.metrics import registry
from pbx_bridge.testcall.observation import Observation
from pbx_bridge.testcall.quality import (FROM_AMAZON, TO_AMAZON, Leg, Limits, block_of,
                                         estimated_mos, legs, loss_from, parse_values, timing)

RECORDED = json.loads((DATA / "testcall" / "rtcp-loss-toward-amazon.json").read_text())


def recorded_legs(events: list[dict] | None = None) -> dict[str, Leg]:
    """What test-call makes of the recorded call (or of ``events`` instead of its events)."""
    ch, got = RECORDED["channel"], RECORDED["getvar"]
    rtcp = parse_values(got["rtcp,all"])
    ours, theirs = int(rtcp["ssrc"]), int(rtcp["themssrc"])
    ev = [e for e in (events or RECORDED["events"]) if e.get("Channel") == ch]
    received = [b for e in ev if e["Event"] == "RTCPReceived"
                if (b := block_of(e, ours, e["at"])) is not None]
    sent = [b for e in ev if e["Event"] == "RTCPSent"
            if (b := block_of(e, theirs, e["at"])) is not None]
    amazon = [(e["at"], int(e["SentPackets"])) for e in ev if e["Event"] == "RTCPReceived"]
    ours_n = [(e["at"], int(e["SentPackets"])) for e in ev if e["Event"] == "RTCPSent"]
    start = next(e["at"] for e in ev if e["Event"] == "Newstate" and
                 e["ChannelStateDesc"] == "Up")
    return legs("ulaw", rtcp, parse_values(got["rtcp,all_rtt"]),
                parse_values(got["rtcp,all_mes"]), received, sent,
                ours_n + [(ev[-1]["at"] + 0.05, int(rtcp["txcount"]))], amazon, start)


def test_what_asterisk_reported_of_a_call_losing_5_percent_toward_amazon():
    q = recorded_legs()
    to, back = q[TO_AMAZON], q[FROM_AMAZON]
    assert 3.0 <= to.loss_pct <= 7.0 and back.loss_pct == 0  # type: ignore[operator]
    assert to.reports >= 3 and back.reports >= 3
    # from the answer to the receiver's last report: what the sender sent by then (its own
    # count), and what of it the receiver's reports do not show
    assert to.sent == 251 and to.lost == 12 and to.received == 239
    assert back.sent == 249 and back.received == 249 and back.lost == 0
    assert to.stopped is False and back.stopped is False
    assert to.rtt_ms == back.rtt_ms and 0 < to.rtt_ms < 10  # type: ignore[operator]
    # Asterisk's MES: the outgoing stream's from Amazon's reports (tx), ours of what we got
    assert to.mes == pytest.approx(83.3, abs=0.1) and back.mes == pytest.approx(88.07, abs=0.1)
    assert to.mos < back.mos and to.mos >= 3.9  # type: ignore[operator]


def with_amazon_reports(change) -> list[dict]:
    """The recorded events, Amazon's report blocks on our stream (RTCPReceived) changed by
    ``change(n, event)`` (n counts them from 0)."""
    out, n = [], 0
    for e in RECORDED["events"]:
        if e.get("Event") == "RTCPReceived":
            e = dict(e)
            change(n, e)
            n += 1
        out.append(e)
    return out


def test_audio_that_stops_toward_amazon_is_lost_not_perfect():
    """Amazon's reports stop moving after its second (it gets nothing more): its highest
    sequence number and cumulative loss freeze, and only our own count shows the rest."""
    def freeze(n, e):
        if n >= 2:
            e["Report0HighestSequence"], e["Report0CumulativeLost"] = "52521", "4"
    to = recorded_legs(with_amazon_reports(freeze))[TO_AMAZON]
    # lost: its 4, and our 200 packets since its first report less its 50 seen of them
    assert to.sent == 251 and to.lost == 4 + 200 - 50 and to.received == 97, to
    assert to.stopped is True
    assert to.loss_pct > 55 and to.mos == 1.0  # type: ignore[operator]
    o = call(to=to)
    assert status(o, "quality.loss")[0] == Status.WARN
    s, f = status(o, "media.rtp")
    assert s == Status.FAIL and "audio stopped to Amazon (97 of 251" in f.summary
    assert "one-way audio" in f.summary and "way out" in (f.fix or "")


def test_loss_before_the_first_report_counts():
    """20 packets lost before Amazon's first report: in its cumulative count from then on,
    and in the loss from the call's start."""
    def earlier(n, e):
        e["Report0CumulativeLost"] = str(int(e["Report0CumulativeLost"]) + 20)
    to = recorded_legs(with_amazon_reports(earlier))[TO_AMAZON]
    assert to.lost == 32 and to.loss_pct == pytest.approx(100 * 32 / 251)
    assert to.mos < recorded_legs()[TO_AMAZON].mos  # type: ignore[operator]


def test_the_senders_count_between_and_after_its_reports():
    from pbx_bridge.testcall.quality import Block, count_at, span
    counts = [(0.0, 0), (1.0, 50), (2.0, 100)]
    assert count_at(counts, 0.5) == 25 and count_at(counts, 3.0) == 150
    assert count_at([], 1.0) is None and count_at([(1.0, 7)], 0.5) is None
    blocks = [Block(1.0, 0, 0, 1049, 0), Block(2.0, 0, 0, 1099, 0)]
    assert span(blocks, counts) == (100, 0, False)
    assert span(blocks[:1], counts) == (50, 0, None)
    assert span(blocks, []) is None and span([], counts) is None
    stalled = [Block(1.0, 0, 0, 1049, 0), Block(2.0, 0, 0, 1049, 0)]
    assert span(stalled, counts) == (100, 50, True)


def test_parsers_of_the_channel_function_and_the_rtcp_events():
    assert parse_values("minrtt=000.000564;     maxrtt=000.003784;  x=y;") == \
        {"minrtt": 0.000564, "maxrtt": 0.003784}
    assert parse_values(None) == {}
    e = {"Event": "RTCPReceived", "ReportCount": "1", "Report0SourceSSRC": "0x7c45633d",
         "Report0FractionLost": "12", "Report0CumulativeLost": "30",
         "Report0HighestSequence": "5", "Report0SequenceNumberCycles": "1",
         "Report0IAJitter": "80", "Report0LSR": "123"}
    b = block_of(e, 0x7c45633d, 1.0)
    assert b is not None and b.highest_seq == 65536 + 5 and b.jitter == 80 and b.lsr == 123
    assert block_of(e, 1, 1.0) is None  # another stream's
    assert block_of({"Event": "RTCPSent", "ReportCount": "0"}, None, 1.0) is None


def test_loss_between_the_first_and_last_report_or_the_one_reports_fraction():
    from pbx_bridge.testcall.quality import Block
    assert loss_from([]) is None
    assert loss_from([Block(0, 64, 5, 100, 0)]) == 25.0
    assert loss_from([Block(0, 0, 5, 100, 0), Block(1, 0, 15, 300, 0)]) == 5.0
    assert loss_from([Block(0, 0, 5, 100, 0), Block(1, 0, 3, 300, 0)]) == 0.0  # duplicates


def test_timing_from_the_recorded_events():
    events = [(e["at"], e) for e in RECORDED["events"]]
    pdd, answer = timing(events, RECORDED["channel"])
    assert pdd is not None and answer is not None and 0 <= pdd <= answer < 1000
    refused = [(0.0, {"Event": "DialBegin", "DestChannel": "PJSIP/alexa-1"}),
               (0.25, {"Event": "Hangup", "Channel": "PJSIP/alexa-1"})]
    assert timing(refused, "PJSIP/alexa-1") == (250.0, None)
    ringing = [(0.0, {"Event": "Newchannel", "Channel": "PJSIP/alexa-1"}),
               (0.1, {"Event": "Newstate", "Channel": "PJSIP/alexa-1",
                      "ChannelStateDesc": "Ringing"}),
               (2.1, {"Event": "Newstate", "Channel": "PJSIP/alexa-1",
                      "ChannelStateDesc": "Up"})]
    assert timing(ringing, "PJSIP/alexa-1") == pytest.approx((100.0, 2100.0))
    assert timing([], "PJSIP/alexa-1") == (None, None)


def test_estimated_mos_follows_the_simplified_e_model():
    assert estimated_mos(0, 0, 0) == pytest.approx(4.41, abs=0.01)  # R 92.95
    assert estimated_mos(5, 0, 0) == pytest.approx(4.06, abs=0.02)
    assert estimated_mos(0, 0, 600) < estimated_mos(0, 0, 200) < estimated_mos(0, 0, 0)
    assert estimated_mos(0, 60, 0) < estimated_mos(0, 0, 0)
    assert estimated_mos(40, 0, 0) == 1.0  # R floored at 0


def leg(loss=0.0, jitter=1.0, rtt=2.0, mos=None) -> Leg:
    return Leg(500, 500, 0, loss, jitter, rtt, 88.0,
               estimated_mos(loss, jitter, rtt) if mos is None else mos, 9)


def call(to=None, back=None) -> Observation:
    o = Observation("to-alexa", "7201", "alexa", endpoint_loaded=True, mapped=True,
                    channel="PJSIP/alexa-00000008", answered=True, sip_code=200,
                    sip_reason="OK", tls=True, srtp=True, codec="ulaw", rtp_sent=500,
                    rtp_received=500, hold=10.0, pdd_ms=40.0, answer_ms=40.0)
    o.quality = {TO_AMAZON: to or leg(), FROM_AMAZON: back or leg()}
    return o


def status(o: Observation, id_: str, limits: Limits = Limits()):
    f = next(f for f in diagnose(o, limits) if f.id == id_)
    return f.status, f


def test_each_quality_finding_passes_on_a_clean_call():
    o = call()
    got = {f.id: f.status for f in diagnose(o) if f.id.startswith("quality.")}
    assert got == dict.fromkeys(("quality.loss", "quality.jitter", "quality.rtt",
                                 "quality.mos"), Status.PASS)
    doc = report(o, diagnose(o))
    assert doc["ok"] and doc["quality"]["mos"] == pytest.approx(4.4, abs=0.05)
    assert doc["timing"] == {"pdd_ms": 40.0, "answer_ms": 40.0}
    assert set(doc["quality"][TO_AMAZON]) >= {"sent", "received", "lost", "loss_pct",
                                              "jitter_ms", "rtt_ms", "mes", "mos"}


def test_loss_in_one_direction_names_it_and_the_way_it_takes():
    s, f = status(call(to=leg(loss=5.0)), "quality.loss")
    assert s == Status.WARN and f.summary.startswith("packet loss to Amazon at or over 1 %")
    assert "way out" in (f.fix or "") and "firewall" in (f.fix or "")
    s, f = status(call(back=leg(loss=2.0)), "quality.loss")
    assert s == Status.WARN and "from Amazon at or over" in f.summary
    assert "way in" in (f.fix or "")
    s, f = status(call(to=leg(loss=2.0), back=leg(loss=2.0)), "quality.loss")
    assert "to Amazon and from Amazon" in f.summary and "both ways" in (f.fix or "")
    assert status(call(to=leg(loss=2.0)), "quality.loss", Limits(loss_pct=3))[0] == \
        Status.PASS


def test_jitter_rtt_and_mos_findings():
    s, f = status(call(back=leg(jitter=45.0)), "quality.jitter")
    assert s == Status.WARN and "jitter from Amazon" in f.summary and "downlink" in f.fix
    s, f = status(call(to=leg(jitter=45.0)), "quality.jitter")
    assert "uplink" in (f.fix or "")
    s, f = status(call(to=leg(rtt=450.0), back=leg(rtt=450.0)), "quality.rtt")
    assert s == Status.WARN and "round-trip time" in f.summary and "SIP region" in f.fix
    o = call(to=leg(loss=12.0))
    s, f = status(o, "quality.mos")
    assert s == Status.FAIL and "under 3.6" in f.summary
    assert report(o, diagnose(o))["ok"] is False  # a degraded call fails the test call
    assert status(call(), "quality.mos", Limits(mos=4.5))[0] == Status.FAIL


def test_unknown_figures_are_skipped_with_how_to_measure_them():
    o = call(to=Leg(500, None, None, None, None, None, None, None, 0))
    for id_ in ("quality.loss", "quality.jitter", "quality.rtt", "quality.mos"):
        s, f = status(o, id_)
        assert s == Status.SKIP and "to Amazon not known" in f.summary, f
        assert "--hold 15" in f.summary and "read=reporting" in f.summary
    assert report(o, diagnose(o))["quality"]["mos"] is None
    # a worse figure that is known still shows, whatever is unknown
    o.quality[FROM_AMAZON] = leg(loss=4.0)
    assert status(o, "quality.loss")[0] == Status.WARN


def test_the_skip_says_which_rtcp_did_not_come():
    """No RTCP event at all: the AMI user's rights; ours but none of Amazon's: Amazon."""
    o = call(to=Leg(), back=Leg())
    o.rtcp_ours, o.rtcp_theirs, o.hold = 0, 0, 15.0
    s, f = status(o, "quality.loss")
    assert s == Status.SKIP and "read=reporting" in f.summary and "Amazon sent" not in \
        f.summary
    o.rtcp_ours = 3
    s, f = status(o, "quality.loss")
    assert "Amazon sent no RTCP report during the 15 s hold (Asterisk sent 3" in f.summary
    assert "read=reporting" not in f.summary and "--hold" not in f.summary
    o.hold = 4.0
    assert "--hold 15" in status(o, "quality.loss")[1].summary  # a short hold may be why


def metrics_of(o: Observation, min_mos: float = 3.6) -> dict[str, dict[tuple, float]]:
    """name -> labels but the room -> value; every sample has the room called."""
    from prometheus_client import generate_latest
    text = generate_latest(registry(o, diagnose(o), 1_800_000_000.0, 12.5, min_mos)).decode()
    out: dict[str, dict[tuple, float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            assert s.labels.pop("room") == o.to, s
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_metrics_name_the_room_and_the_calls_own_limit():
    """Two timers calling two test rooms write two sets of series, not duplicates; the low
    MOS alert compares with the call's own --min-mos."""
    o = call()
    o.to = "7299"
    m = metrics_of(o, min_mos=4.1)  # every sample's room is 7299
    assert m["pbx_bridge_test_call_min_mos"][()] == 4.1
    assert m["pbx_bridge_test_call_quality_measured"][()] == 1


def test_what_is_known_of_the_quality_is_exported_and_unknown_is_said():
    half = call(back=Leg(500, None, None, None, None, 2.0, None, None, 0))
    m = metrics_of(half)
    mos = m["pbx_bridge_test_call_mos_estimate"]
    assert mos[(("direction", "call"),)] == mos[(("direction", TO_AMAZON),)]
    assert m["pbx_bridge_test_call_quality_measured"][()] == 0  # for the alert
    blind = call(to=Leg(), back=Leg())
    assert metrics_of(blind)["pbx_bridge_test_call_quality_measured"][()] == 0
    refused = Observation("to-alexa", "7404", "alexa", endpoint_loaded=True, sip_code=404)
    assert "pbx_bridge_test_call_quality_measured" not in metrics_of(refused)  # not held


def test_metrics_of_a_measured_call():
    m = metrics_of(call(to=leg(loss=5.0, jitter=40.0)))
    assert m["pbx_bridge_test_call_success"][()] == 1
    assert m["pbx_bridge_test_call_timestamp_seconds"][()] == 1_800_000_000.0
    assert m["pbx_bridge_test_call_post_dial_delay_seconds"][()] == 0.04
    assert m["pbx_bridge_test_call_loss_ratio"][(("direction", TO_AMAZON),)] == 0.05
    assert m["pbx_bridge_test_call_jitter_seconds"][(("direction", TO_AMAZON),)] == 0.04
    assert m["pbx_bridge_test_call_rtt_seconds"][()] == 0.002
    assert m["pbx_bridge_test_call_rtp_packets"][(("direction", FROM_AMAZON),
                                                  ("kind", "received"))] == 500
    mos = m["pbx_bridge_test_call_mos_estimate"]
    assert mos[(("direction", "call"),)] == min(mos[(("direction", TO_AMAZON),)],
                                                mos[(("direction", FROM_AMAZON),)])
    assert "pbx_bridge_test_call_finding_failed" not in m  # no sample: nothing failed


def test_unknown_figures_are_absent_not_0():
    """No round trip measured, no report of ours on Amazon's stream yet: not 0."""
    # no report answers one of ours (no round trip), and none of ours came
    events = [e for e in with_amazon_reports(lambda n, e: e.update(Report0LSR="0"))
              if e.get("Event") != "RTCPSent"]
    q = recorded_legs(events)
    back = q[FROM_AMAZON]
    assert back.jitter_ms is None and back.mes is None and back.loss_pct is None, back
    assert back.received is None and q[TO_AMAZON].rtt_ms is None
    m = metrics_of(call(to=q[TO_AMAZON], back=back))
    assert "pbx_bridge_test_call_rtt_seconds" not in m
    assert (("direction", FROM_AMAZON),) not in m["pbx_bridge_test_call_mes"]
    assert (("direction", FROM_AMAZON),) not in m.get("pbx_bridge_test_call_jitter_seconds",
                                                      {})
    assert json.loads(json.dumps(q[FROM_AMAZON].to_json()))["jitter_ms"] is None


def test_metrics_of_a_failed_call_say_so_without_figures():
    o = Observation("to-alexa", "7404", "alexa", endpoint_loaded=True, mapped=True,
                    sip_code=404, sip_reason="Not Found")
    m = metrics_of(o)
    assert m["pbx_bridge_test_call_success"][()] == 0
    assert m["pbx_bridge_test_call_answered"][()] == 0
    assert m["pbx_bridge_test_call_finding_failed"][(("finding", "call.sip"),)] == 1
    assert "pbx_bridge_test_call_mos_estimate" not in m


def run_test_call(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    return subprocess.run([sys.executable, "-m", "pbx_bridge", "test-call", "--to", "7201",
                           *args], capture_output=True, text=True, cwd=ROOT, timeout=30,
                          env={**environ, **env})


@pytest.mark.parametrize("args, said", [
    (["--textfile", "/tmp/x.txt"], "--textfile '/tmp/x.txt': node_exporter"),
    (["--textfile", ""], "--textfile '': node_exporter"),
    (["--textfile", "/nonexistent-dir/x.prom"], "the folder /nonexistent-dir does not exist"),
    (["--min-mos", "6"], "--min-mos 6: 1..5"), (["--max-loss", "-1"], "--max-loss -1: more"),
    # 0 makes every clean call a finding; inf is no limit, and not JSON
    (["--max-loss", "0"], "--max-loss 0: more than 0 and at most 100 %"),
    (["--max-jitter", "0"], "--max-jitter 0: more than 0 ms"),
    (["--max-rtt", "inf"], "--max-rtt inf: more than 0 ms, finite"),
    (["--max-jitter", "nan"], "--max-jitter nan")])
def test_bad_quality_options_are_exit_2_naming_the_option(args, said):
    r = run_test_call(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert said in r.stderr, r.stderr


def test_an_unwritable_textfile_is_found_before_the_call(tmp_path):
    """Not after a 12 s call: checked before anything is placed (here there are no [ami]
    settings at all: the --textfile error comes first)."""
    (tmp_path / "file").write_text("")
    (tmp_path / "folder.prom").mkdir()
    for path, said in ((tmp_path / "file" / "x.prom", "file is not a folder"),
                       (tmp_path / "folder.prom", "is a folder, not a file"),
                       (Path("/proc/x.prom"), "cannot write in /proc")):
        r = run_test_call("--textfile", str(path),
                          PBX_BRIDGE_CONFIG=str(tmp_path / "none.toml"))
        assert r.returncode == 2 and said in r.stderr and "[ami]" not in r.stderr, r.stderr


def test_no_ami_settings_still_writes_a_failed_call(tmp_path):
    """A timer's daily call that cannot be placed must not leave yesterday's success 1."""
    prom = tmp_path / "tc.prom"
    prom.write_text('pbx_bridge_test_call_success{room="7201"} 1.0\n')
    settings = tmp_path / "pbx-bridge.toml"
    settings.write_text(f'[paths]\nstate_dir = "{tmp_path}"\n')
    settings.chmod(0o600)
    r = run_test_call("--textfile", str(prom), PBX_BRIDGE_CONFIG=str(settings))
    assert r.returncode == 2 and "[ami] settings" in r.stderr
    text = prom.read_text()
    assert 'pbx_bridge_test_call_success{room="7201"} 0.0' in text
    assert 'pbx_bridge_test_call_finding_failed{finding="ami.settings",room="7201"} 1.0' \
        in text
