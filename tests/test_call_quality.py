"""What the guest hears, measured on the two-instance real Asterisk lab (test_test_call.py's
pair) with the media through a user-space UDP relay (udprelay.py) that drops or delays the
RTP toward one side: test-call must report the loss and the jitter in that direction, with
a finding naming it, and a clean call as clean.

The relay's randomness is seeded (PBX_BRIDGE_TEST_SEED, default 25) and the seed printed.
The calls go to Amazon's room 7202, which plays a tone of its own: with the echo of 7201 an
impairment toward Amazon would come back in the stream it sends (Echo() passes the gaps in
the sequence numbers on, as seen).
"""

from __future__ import annotations

import json
import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from realasterisk import free_udp_range
from test_test_call import finding, make_pair
from udprelay import TO_AMAZON, TO_PBX, Impairment, Relay

pytestmark = pytest.mark.asterisk
SEED = int(os.environ.get("PBX_BRIDGE_TEST_SEED", "25"))
RELAY = "127.0.0.3"
# RTCP reports come every second in the lab: 6 s is five or so each way, enough for the loss
# (exact between the first and the last); the jitter estimate settles over seconds, and is
# read on the later half of the reports, so those calls hold 12 s
HOLD, JITTER_HOLD = "6", "12"


@pytest.fixture(scope="module")
def lab(tmp_path_factory, request):
    start, end = free_udp_range(20)
    pair = make_pair(tmp_path_factory, request, rtcp_ms=1000,
                     endpoint_extra=f"media_address={RELAY}", amazon_rtp=(start, end),
                     amazon_rtp_extra="strictrtp=no\n")
    relay = Relay(RELAY, "127.0.0.2", range(start, end + 1), SEED)
    request.addfinalizer(relay.close)
    print(f"\nUDP relay on {RELAY}:{start}-{end}, seed {SEED} (PBX_BRIDGE_TEST_SEED)")
    return pair, relay


def call(lab, what: str, *extra: str, hold: str = HOLD, through: bool = True) -> dict:
    pair, relay = lab
    code, doc, err = pair.test_call("--to", "7202", "--hold", hold, *extra)
    assert doc.get("answered"), (code, doc, err)
    q = doc["quality"]
    print(f"\n{what} (seed {SEED}; relay RTP passed/dropped {relay.counts}): "
          f"pdd {doc['timing']['pdd_ms']} ms, answer {doc['timing']['answer_ms']} ms\n" +
          json.dumps({d: q[d] for d in ("to_amazon", "from_amazon")}) + f" MOS {q['mos']}")
    # the media really went through the relay, both ways
    assert not through or relay.counts[TO_AMAZON][0] > 100 and relay.counts[TO_PBX][0] > 100, relay.counts
    return doc


def test_a_clean_call_has_no_loss_and_a_good_mos(lab):
    lab[1].set()
    prom = lab[0].home / "test_call.prom"
    doc = call(lab, "clean", "--textfile", str(prom))
    q = doc["quality"]
    for d in ("to_amazon", "from_amazon"):
        assert q[d]["loss_pct"] == 0 and q[d]["reports"] >= 2, q[d]
        assert q[d]["sent"] > 150 and q[d]["received"] > 150
        assert q[d]["mes"] is not None and q[d]["rtt_ms"] is not None
    assert q["mos"] >= 4.0 and q["mos_estimated"] is True
    assert 0 <= doc["timing"]["pdd_ms"] <= doc["timing"]["answer_ms"] < 10000
    assert {f["id"]: f["status"] for f in doc["findings"] if f["id"].startswith("quality.")
            } == dict.fromkeys(("quality.loss", "quality.jitter", "quality.rtt",
                                "quality.mos"), "pass")
    assert doc["ok"]
    # the same figures as Prometheus metrics, for the rules in asterisk/prometheus/
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(prom.read_text())
               for s in fam.samples}
    room = ("room", "7202")
    assert samples[("pbx_bridge_test_call_success", (room,))] == 1
    assert samples[("pbx_bridge_test_call_quality_measured", (room,))] == 1
    assert samples[("pbx_bridge_test_call_loss_ratio", (("direction", "to_amazon"),
                                                        room))] == 0
    assert samples[("pbx_bridge_test_call_mos_estimate", (("direction", "call"), room))] == \
        pytest.approx(q["mos"], abs=0.01)


def test_loss_toward_amazon_is_reported_in_that_direction(lab):
    lab[1].set(to_amazon=Impairment(loss_every=20))  # 5 %
    doc = call(lab, "5 % loss toward Amazon")
    q = doc["quality"]
    assert 3.0 <= q["to_amazon"]["loss_pct"] <= 7.0, q
    assert q["from_amazon"]["loss_pct"] < 1.0, q
    f = finding(doc, "quality.loss")
    assert f["status"] == "warn" and "to Amazon" in f["summary"]
    assert "from Amazon" not in f["summary"].split(":")[0]  # named: only the bad direction
    assert "firewall" in f["fix"] and "way out" in f["fix"]


def test_loss_toward_the_pbx_is_reported_in_that_direction(lab):
    lab[1].set(to_pbx=Impairment(loss_every=20))
    doc = call(lab, "5 % loss toward the PBX")
    q = doc["quality"]
    assert 3.0 <= q["from_amazon"]["loss_pct"] <= 7.0, q
    assert q["to_amazon"]["loss_pct"] < 1.0, q
    f = finding(doc, "quality.loss")
    assert f["status"] == "warn" and f["summary"].startswith("packet loss from Amazon at")
    assert "way in" in f["fix"]


def test_jitter_toward_amazon_is_reported_in_that_direction(lab):
    lab[1].set(to_amazon=Impairment(delay=(10, 190)))
    doc = call(lab, "100 +/- 90 ms jitter toward Amazon", hold=JITTER_HOLD)
    q = doc["quality"]
    assert q["to_amazon"]["jitter_ms"] >= 30 and q["from_amazon"]["jitter_ms"] < 30, q
    f = finding(doc, "quality.jitter")
    assert f["status"] == "warn" and f["summary"].startswith("jitter to Amazon at")
    assert "uplink" in f["fix"]


def test_jitter_toward_the_pbx_is_reported_in_that_direction(lab):
    lab[1].set(to_pbx=Impairment(delay=(10, 190)))  # 100 +/- 90 ms: RFC 3550 reads ~60 ms
    doc = call(lab, "100 +/- 90 ms jitter toward the PBX", hold=JITTER_HOLD)
    q = doc["quality"]
    assert q["from_amazon"]["jitter_ms"] >= 30, q
    assert q["to_amazon"]["jitter_ms"] < 30, q
    f = finding(doc, "quality.jitter")
    assert f["status"] == "warn" and f["summary"].startswith("jitter from Amazon at")
    assert "downlink" in f["fix"]


@pytest.mark.parametrize("way, said", [(TO_AMAZON, "to Amazon"), (TO_PBX, "from Amazon")])
def test_audio_that_stops_one_way_is_one_way_audio_not_a_perfect_call(lab, way, said):
    """After the relay's first 15 packets, all of one way's RTP is dropped: the receiver's
    reports stop moving (it cannot count what it never saw), the sender's count goes on."""
    lab[1].set(**{way: Impairment(loss_every=1)})
    doc = call(lab, f"the audio {said} stopped", hold="3", through=False)
    assert lab[1].counts[way][0] == 15 and lab[1].counts[way][1] > 80, lab[1].counts
    d = "to_amazon" if way == TO_AMAZON else "from_amazon"
    leg, other = doc["quality"][d], doc["quality"]["from_amazon" if way == TO_AMAZON
                                                    else "to_amazon"]
    # a lower bound: its first report is taken as what it had got by then (were the audio
    # gone from the start, there would be no report of it at all)
    assert leg["loss_pct"] >= 25 and leg["stopped"] is True, leg
    assert leg["sent"] > 100 and leg["received"] < leg["sent"] * 3 / 4, leg
    assert other["loss_pct"] < 1 and other["stopped"] is False, other
    f = finding(doc, "media.rtp")
    assert f["status"] == "fail" and f"the audio stopped {said}" in f["summary"], f
    assert finding(doc, "quality.loss")["status"] == "warn"
    assert not doc["ok"]


def test_loss_before_the_first_report_counts(lab):
    """1 packet in 4 dropped toward Amazon between its 15th and 35th (0.3-0.7 s), before
    its first report (1 s): in its cumulative count, so in the loss from the call's start
    (measured only between the first and the last report, it read 0 %)."""
    lab[1].set(to_amazon=Impairment(loss_every=4, until=35))
    doc = call(lab, "loss before the first report", hold="3")
    assert lab[1].counts[TO_AMAZON][1] == 5, lab[1].counts
    to = doc["quality"]["to_amazon"]
    assert to["lost"] == 5 and to["loss_pct"] >= 2.5, to
    assert finding(doc, "quality.loss")["status"] == "warn"
