"""test-call's judge: pure functions of an observation, and the parsers of what Asterisk 22
printed (recorded from the two-instance calls of test_test_call.py)."""

from __future__ import annotations

from helpers import DATA
from pbx_bridge.findings import Status
from pbx_bridge.testcall.diagnose import diagnose, report
from pbx_bridge.testcall.observation import (Observation, contact_address, parse_channelstats,
                                             parse_sip)


def answered(**kw) -> Observation:
    o = Observation("to-alexa", "7201", "alexa", endpoint_loaded=True, mapped=True,
                    channel="PJSIP/alexa-00000008", answered=True, sip_code=200,
                    sip_reason="OK", tls=True, srtp=True, codec="ulaw", rtp_sent=100,
                    rtp_received=100)
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def by_id(o: Observation) -> dict[str, Status]:
    return {f.id: f.status for f in diagnose(o)}


def test_parsers_of_what_asterisk_printed():
    text = (DATA / "asterisk-22" / "cli-pjsip-show-channelstats.txt").read_text()
    assert parse_channelstats(text, "PJSIP/alexa-00000008") == (100, 0)
    assert parse_channelstats(text, "PJSIP/alexa-00000009") is None
    assert parse_sip("SIP 488 Not Acceptable Here") == (488, "Not Acceptable Here")
    assert parse_sip("") == (None, None)
    assert contact_address("sip:127.0.0.2:45213;transport=tls") == ("127.0.0.2", 45213)
    assert contact_address("sip:alexa@[::1];transport=tls") == ("::1", 5061)


def test_a_working_call_passes_every_step():
    o = answered()
    assert set(by_id(o).values()) == {Status.PASS}
    assert report(o, diagnose(o))["ok"] is True


def test_answered_without_srtp_or_tls_fails():
    got = by_id(answered(srtp=False))
    assert got["media.srtp"] == Status.FAIL and got["call.answer"] == Status.PASS
    assert by_id(answered(tls=False))["media.tls"] == Status.FAIL
    f = next(f for f in diagnose(answered(srtp=False)) if f.id == "media.srtp")
    assert "media_encryption=sdes" in (f.fix or "")


def test_one_way_audio_either_way():
    assert by_id(answered(rtp_received=0))["media.rtp"] == Status.FAIL
    assert by_id(answered(rtp_sent=0))["media.rtp"] == Status.FAIL
    assert by_id(answered(rtp_sent=None))["media.rtp"] == Status.WARN


def test_endpoint_not_loaded_stops_the_diagnosis():
    o = Observation("to-alexa", "7201", "alexa", endpoint_loaded=False)
    fs = diagnose(o)
    assert [f.id for f in fs] == ["trunk.endpoint"] and fs[0].status == Status.FAIL
    assert report(o, fs)["rtp"] is None


def test_contact_marked_down_is_named():
    o = Observation("to-alexa", "7201", "alexa", endpoint_loaded=True, mapped=True, cause=3,
                    cause_txt="No route to destination", contact="sip:127.0.0.2:5061",
                    contact_status="Unavail")
    f = next(f for f in diagnose(o) if f.id == "call.connect")
    assert f.status == Status.FAIL and "marks Amazon's contact sip:127.0.0.2:5061 Unavail" \
        in f.summary


def test_answered_without_the_trunk_channel_seen_says_media_was_not_checked():
    f = next(f for f in diagnose(answered(channel=None)) if f.id == "media.rtp")
    assert f.status == Status.WARN and "not checked" in f.summary
