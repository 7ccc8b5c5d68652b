"""A test call judged: pure functions from an :class:`~.observation.Observation` to findings,
each with the likely cause and its fix, and the JSON report."""

from __future__ import annotations

from typing import Any

from ..findings import Finding, Status
from .observation import NO_CONNECTION_CAUSES, Observation
from .quality import DIRECTIONS, FROM_AMAZON, SAID, TO_AMAZON, Leg, Limits


def diagnose(o: Observation, limits: Limits = Limits()) -> list[Finding]:
    """Each step of the call as a finding, with the fix for what broke."""
    out: list[Finding] = []
    if o.endpoint_loaded is False:
        out.append(Finding("trunk.endpoint", Status.FAIL, f"the running Asterisk has no "
                           f"endpoint {o.endpoint}", {}, None,
                           "pbx-bridge generate --write (then check 'pjsip show endpoints')"))
        return out
    out.append(Finding("trunk.endpoint", Status.PASS, f"endpoint {o.endpoint} is loaded",
                       {"context": o.endpoint_context, "contact": o.contact}))
    if o.direction == "from-alexa":
        return out + _diagnose_inbound(o)
    if o.from_context is not None:
        if not o.route_reached:
            out.append(Finding("dialplan.route", Status.FAIL, f"a call from [{o.from_context}] "
                               f"to {o.to} never reached [pbx-bridge-to-alexa]" + (
                                   f": {o.route_ran} ran instead" if o.route_ran else ""),
                               {"from_context": o.from_context, "ran": o.route_ran}, None,
                               "a pattern or extension of that context (or of a context it "
                               "includes first) takes the room numbers: pbx-bridge generate "
                               "names the line; phones need 'exten => ROOM_PATTERN,1,Goto("
                               "pbx-bridge-to-alexa,${EXTEN},1)' where it wins"))
            return out
        out.append(Finding("dialplan.route", Status.PASS, f"a call from [{o.from_context}] to "
                           f"{o.to} goes through [pbx-bridge-to-alexa]"))
    if o.mapped is False:
        out.append(Finding("room.mapped", Status.WARN, f"{o.to} is not mapped to a room in "
                           "the local state: Amazon will refuse it", {"routes": o.routes_note},
                           None, "pbx-bridge rooms apply --map FILE"))
    elif o.mapped:
        out.append(Finding("room.mapped", Status.PASS, f"{o.to} is mapped to a room"))
    if o.not_routed is not None:
        out.append(Finding(
            "call.route", Status.FAIL, f"the dialplan did not route {o.to} to Amazon: its AGI "
            f"left ALEXA_MAPPED {o.not_routed} and the call ended in Congestion()",
            {"ALEXA_MAPPED": o.not_routed}, None,
            "unset: the AGI did not run (is pbx-bridge in Asterisk's agi-bin, or the FastAGI "
            "server up? Asterisk's log says); 0: it found no route for the room (its "
            "'pbx-bridge agi:' line on Asterisk's console says why; pbx-bridge rooms apply)"))
        return out
    out.append(_call_finding(o))
    if o.answered and not o.hung_up_early:
        out += _media_findings(o) + _quality_findings(o, limits) if o.channel else [Finding(
            "media.rtp", Status.WARN, "answered, but the trunk channel was not seen: TLS, "
            "SRTP and RTP were not checked", {}, None, "asterisk -rx 'core show channels' "
            "during a call")]
    return out


def _call_finding(o: Observation) -> Finding:
    ev: dict[str, Any] = {"sip": o.sip_code, "reason": o.sip_reason, "cause": o.cause,
                          "cause_txt": o.cause_txt, "contact": o.contact,
                          "contact_status": o.contact_status, "reach": o.reach,
                          "sip_from_cause": o.sip_guess}
    if o.timed_out:
        return Finding("call.answer", Status.FAIL, "Asterisk did not report the call's end "
                       "in time", ev, None, "asterisk -rx 'core show channels' and its log")
    if o.answered:
        if o.hung_up_early:
            return Finding("call.answer", Status.FAIL, "answered, then Amazon hung up during "
                           "the hold", ev, None, "check the room's Echo and 'pjsip set logger "
                           "on' during a call")
        return Finding("call.answer", Status.PASS, f"{o.to} answered", ev)
    code = o.sip_code or o.sip_guess
    guess = "" if o.sip_code or code is None else \
        f" (from Q.850 cause {o.cause} {o.cause_txt or ''}".rstrip() + ")"
    said = f"SIP {code} {o.sip_reason or ''}".rstrip() + guess if code else None
    if o.ringing:
        return Finding("call.answer", Status.FAIL, f"{o.to} rang but nobody answered "
                       "(signalling to Amazon works)", ev, None,
                       "answer the Echo in the room, or raise --timeout")
    if code == 403:
        return Finding("call.sip", Status.FAIL, f"Amazon refused the call: {said}", ev, None,
                       "the trunk must be ACTIVE and know this PBX: pbx-bridge trunk show "
                       "(status, peers = this PBX's public IP:port, the certificate's name)")
    if code == 404:
        return Finding("call.sip", Status.FAIL, f"Amazon does not know extension {o.to}: "
                       f"{said}", ev, None, "map it to the room: pbx-bridge rooms plan --map "
                       "FILE, then pbx-bridge rooms apply --map FILE")
    if code == 488:
        return Finding("call.sip", Status.FAIL, f"Amazon refused the media offer: {said} "
                       "(SRTP or codec mismatch)", ev, None,
                       f"the endpoint {o.endpoint} needs media_encryption=sdes and "
                       "allow=ulaw,alaw: pbx-bridge generate --write")
    if code in (408, 480) and not o.reach:
        return Finding("call.sip", Status.FAIL, f"no answer from Amazon: {said}", ev, None,
                       "check that Amazon can be reached (egress firewall to its TLS port) "
                       "and that the aor's contact is Amazon's SIP address")
    if o.reach and o.reach != "reachable":
        fix = ("the TLS transport's CA list must hold the CA that signed Amazon's "
               "certificate, and its own certificate and key must be valid (pbx-bridge "
               "preflight)") if "handshake" in o.reach or "CA list" in o.reach else \
            ("the aor's contact must be Amazon's SIP address and port (pbx-bridge generate "
             "--amazon-sip), and the egress firewall must let this PBX reach it")
        return Finding("call.connect", Status.FAIL, f"no SIP connection to Amazon: "
                       f"{o.reach}", ev, None, fix)
    if code is None and o.cause in NO_CONNECTION_CAUSES:
        down = f"; Asterisk marks Amazon's contact {o.contact} {o.contact_status}" \
            if o.contact_status and o.contact_status != "Avail" else ""
        return Finding("call.connect", Status.FAIL, "Asterisk could not set up the call to "
                       f"Amazon (cause {o.cause} {o.cause_txt or ''}".rstrip() + ")" + down, ev,
                       None, "the aor's contact (pbx-bridge generate --amazon-sip), the TLS "
                       "transport (pbx-bridge preflight --live) and the egress firewall")
    return Finding("call.sip", Status.FAIL, f"the call failed: {said or 'no SIP answer'}"
                   + (f" (cause {o.cause} {o.cause_txt})" if o.cause and not guess else ""),
                   ev, None, "asterisk -rx 'pjsip set logger on' and place the call again")


def _media_findings(o: Observation) -> list[Finding]:
    out = []
    if o.tls is False:
        out.append(Finding("media.tls", Status.FAIL, "signalling was not over TLS", {},
                           None, "the endpoint's transport must be the TLS transport"))
    elif o.tls:
        out.append(Finding("media.tls", Status.PASS, "signalling over TLS"))
    if o.srtp is False:
        out.append(Finding("media.srtp", Status.FAIL, "answered without SRTP: media was "
                           "not encrypted", {"codec": o.codec}, None,
                           f"in [{o.endpoint}]: media_encryption=sdes and "
                           "media_encryption_optimistic=no (pbx-bridge generate --write)"))
    elif o.srtp:
        out.append(Finding("media.srtp", Status.PASS, f"media over SRTP ({o.codec or '?'})",
                           {"codec": o.codec}))
    ev = {"sent": o.rtp_sent, "received": o.rtp_received, "codec": o.codec}
    if o.rtp_sent is None or o.rtp_received is None:
        out.append(Finding("media.rtp", Status.WARN, "RTP packet counts were not available",
                           ev, None, "asterisk -rx 'pjsip show channelstats' during a call"))
    elif o.rtp_received == 0:
        out.append(Finding("media.rtp", Status.FAIL, f"answered but no RTP received "
                           f"({o.rtp_sent} sent): one-way audio", ev, None,
                           "open the RTP range to Amazon in the firewall, and check the "
                           "transport's external_media_address (pbx-bridge preflight)"))
    elif stopped := [d for d in DIRECTIONS if d in o.quality and o.quality[d].stopped]:
        legs = {d: o.quality[d] for d in stopped}
        said = " and ".join(f"{SAID[d]} ({_n(leg.received)} of {_n(leg.sent)} packets "
                            "arrived)" for d, leg in legs.items())
        out.append(Finding("media.rtp", Status.FAIL, f"the audio stopped {said}: one-way "
                           "audio (the receiver's RTCP reports show no new packet while the "
                           "sender still sends)", {**ev, "stopped": stopped}, None,
                           LOSS_FIX[stopped[0] if len(stopped) == 1 else "both"]))
    elif o.rtp_sent == 0:
        out.append(Finding("media.rtp", Status.FAIL, f"no RTP sent ({o.rtp_received} "
                           "received): one-way audio", ev, None,
                           "check the egress firewall and the endpoint's media settings"))
    else:
        out.append(Finding("media.rtp", Status.PASS, f"RTP both ways: {o.rtp_sent} sent, "
                           f"{o.rtp_received} received", ev))
    return out


# Why one figure is off, by the direction(s) it is off in: the likely cause and what to do.
LOSS_FIX = {
    TO_AMAZON: "packets leave the PBX but not all reach Amazon: the way out (the uplink "
               "saturated, a firewall or NAT rate-limiting or timing out UDP, the "
               "provider's shaping); give RTP priority (DSCP EF) and check the egress "
               "firewall's RTP rule and conntrack limits",
    FROM_AMAZON: "packets from Amazon do not all reach Asterisk: the way in (the inbound "
                 "firewall or NAT, conntrack table full, the downlink saturated) or an "
                 "overloaded host; open the RTP range to Amazon and check 'conntrack -S'",
    "both": "loss both ways: the access link itself (saturated, faulty, Wi-Fi or a VPN "
            "on the path); test the line without the PBX's traffic",
}
JITTER_FIX = {
    TO_AMAZON: "packets to Amazon queue on the way out: the uplink is saturated "
               "(bufferbloat); shape it below its rate and give RTP priority (DSCP EF)",
    FROM_AMAZON: "packets from Amazon arrive unevenly: queueing on the downlink, Wi-Fi or "
                 "a VPN on the path, or a host too busy to read them in time",
    "both": "uneven delivery both ways: a congested or wireless access link; shape the "
            "line and give RTP priority",
}
RTT_FIX = ("a long or congested path: the PBX far from Amazon's SIP region, traffic "
           "hairpinned through a VPN or proxy, or queueing (see the jitter)")


def _quality_findings(o: Observation, lim: Limits) -> list[Finding]:
    q = o.quality
    if not q:
        return []

    def figures(attr: str) -> dict[str, Any]:
        return {d: getattr(q[d], attr) for d in DIRECTIONS if d in q}

    def judge(id_: str, attr: str, limit: float, unit: str, what: str,
              fixes: dict[str, str] | str, worse_high: bool = True) -> Finding:
        vals = figures(attr)
        bad = [d for d, v in vals.items() if v is not None and
               (v >= limit if worse_high else v < limit)]
        ev = {**vals, "limit": limit}
        shown = ", ".join(f"{SAID[d]} {_fmt(v)}{unit}" for d, v in vals.items())
        if bad:
            which = bad[0] if len(bad) == 1 else "both"
            fix = fixes if isinstance(fixes, str) else fixes[which]
            where = " and ".join(SAID[d] for d in bad)
            return Finding(id_, Status.WARN if worse_high else Status.FAIL,
                           f"{what} {where} {'at or over' if worse_high else 'under'} "
                           f"{limit:g}{unit}: {shown}", ev, None, fix)
        if any(v is None for v in vals.values()):
            gone = [d for d, v in vals.items() if v is None]
            return Finding(id_, Status.SKIP, f"{what} {' and '.join(SAID[d] for d in gone)} "
                           f"not known: {_why_unknown(o, gone)}", ev)
        return Finding(id_, Status.PASS, f"{what} under {limit:g}{unit}: {shown}"
                       if worse_high else f"{what} {limit:g} or more: {shown}", ev)

    mos = judge("quality.mos", "mos", lim.mos, "", "estimated MOS (E-model)",
                "the guest hears a degraded call: the loss, jitter and round-trip findings "
                "say which direction and why", worse_high=False)
    return [judge("quality.loss", "loss_pct", lim.loss_pct, " %", "packet loss",
                  LOSS_FIX),
            judge("quality.jitter", "jitter_ms", lim.jitter_ms, " ms", "jitter", JITTER_FIX),
            judge("quality.rtt", "rtt_ms", lim.rtt_ms, " ms", "round-trip time", RTT_FIX),
            mos]


def _why_unknown(o: Observation, gone: list[str]) -> str:
    """Why no RTCP report covered a direction, from which of the call's RTCP events came."""
    hold = f"the {o.hold:g} s hold" if o.hold else "the hold"
    longer = ("hold longer (--hold 15): reports come every few seconds, 5 s is usual")
    if not o.rtcp_ours:  # not even our own reports: Asterisk's RTCP events do not reach us
        return (f"no RTCP event of the call reached pbx-bridge during {hold}: the AMI user "
                "needs read=reporting (or all) in manager.conf for Asterisk's RTCP events; "
                "if it has it, " + longer)
    if not o.rtcp_theirs:
        return (f"Amazon sent no RTCP report during {hold} (Asterisk sent {o.rtcp_ours} of "
                "its own): " + ("if short, " + longer + "; else " if (o.hold or 0) < 15
                                else "") +
                "Amazon's side sends no RTCP, or the firewall drops it (it comes from the "
                "RTP port + 1)")
    said = []
    if TO_AMAZON in gone:
        said.append("Amazon's reports said nothing of the stream we sent it (it received "
                    "none: see media.rtp)")
    if FROM_AMAZON in gone:
        said.append("our reports said nothing of Amazon's stream (nothing came from Amazon: "
                    "see media.rtp)")
    return "; ".join(said) or longer


def _n(v: int | None) -> str:
    return "?" if v is None else str(v)


def _fmt(v: float | None) -> str:
    return "?" if v is None else f"{v:.2f}" if 0 < abs(v) < 10 and v != int(v) else f"{v:.0f}"


def _diagnose_inbound(o: Observation) -> list[Finding]:
    if o.not_reached:
        return [Finding("dialplan.reach", Status.FAIL, f"a call from Alexa to {o.to} goes "
                        f"nowhere: {o.not_reached}", {"context": o.endpoint_context}, None,
                        "pbx-bridge generate --write (--phones-context NAME on plain "
                        "Asterisk), or add the extension")]
    out = [Finding("dialplan.reach", Status.PASS, f"a call from Alexa to {o.to} reaches "
                   f"{o.reached}", {"context": o.endpoint_context})]
    if o.timed_out:
        out.append(Finding("call.answer", Status.FAIL, "Asterisk did not report the call's "
                           "end in time", {}, None, "asterisk -rx 'core show channels'"))
    elif o.answered:
        out.append(Finding("call.answer", Status.PASS, f"{o.to} rang and answered"))
    elif o.ringing:
        out.append(Finding("call.answer", Status.FAIL, f"{o.to} rang but nobody answered",
                           {}, None, "answer the phone, or raise --timeout"))
    elif o.cause is not None:
        out.append(Finding("call.answer", Status.FAIL, f"{o.to} did not ring (cause "
                           f"{o.cause} {o.cause_txt or ''})".rstrip() + ")",
                           {"cause": o.cause}, None, "is the phone registered? asterisk -rx "
                           f"'pjsip show endpoint {o.to}'"))
    return out


def report(o: Observation, findings: list[Finding]) -> dict[str, Any]:
    """The JSON document (--format json)."""
    ok = not any(f.status in (Status.FAIL, Status.ERROR) for f in findings)
    return {"ok": ok, "direction": o.direction, "to": o.to, "answered": o.answered,
            "sip": {"code": o.sip_code, "reason": o.sip_reason},
            "tls": o.tls, "srtp": o.srtp, "codec": o.codec,
            "rtp": None if o.rtp_sent is None or o.rtp_received is None else
            {"sent": o.rtp_sent, "received": o.rtp_received},
            "timing": {"pdd_ms": _ms(o.pdd_ms), "answer_ms": _ms(o.answer_ms)},
            "quality": quality_json(o),
            "findings": [f.to_json() for f in findings]}


def quality_json(o: Observation) -> dict[str, Any] | None:
    """Per direction, and the call's MOS: the lower of the two (an estimate)."""
    if not o.quality:
        return None
    mos = call_mos(o)
    return {"hold_s": o.hold, **{d: o.quality[d].to_json() for d in DIRECTIONS
                                 if d in o.quality},
            "mos": None if mos is None else round(mos, 2), "mos_estimated": True}


def call_mos(o: Observation) -> float | None:
    """The call's estimated MOS: the worse direction's, when both are known."""
    legs: list[Leg] = list(o.quality.values())
    if not legs or any(leg.mos is None for leg in legs):
        return None
    return min(leg.mos for leg in legs if leg.mos is not None)


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v, 1)
