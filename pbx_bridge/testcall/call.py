"""``pbx-bridge test-call``: Amazon's "Step 6", automated. A real call through the running
Asterisk over AMI, observed here (:class:`Caller`), then judged by pure functions
(:mod:`.diagnose`) into findings.

What the observation rests on was seen on a real Asterisk 22.10.1 calling a second one over
TLS + SDES-SRTP (tests/test_test_call.py): the generated ``[pbx-bridge-to-alexa]`` sets
``ALEXA_SIP`` to Amazon's SIP answer after the Dial ("SIP 404 Not Found"); the dialled PJSIP
channel's ``Hangup`` event carries the Q.850 cause (1 for a 404, 21 for a 403, 58 for a 488,
19 ringing unanswered, 34 when no connection could be made); ``CHANNEL(pjsip,secure)``,
``CHANNEL(rtp,secure,audio)`` and ``CHANNEL(audionativeformat)`` answer over ``Getvar``; and
``pjsip show channelstats`` counts the RTP packets each way.
"""

from __future__ import annotations

import re
import secrets
import ssl
import time
from typing import Callable

from ..asterisk.ami import AmiActionFailed, AmiClient, AmiError, Message
from ..asterisk.cli import show_fields
from . import quality
from .observation import (CAUSE_TO_SIP, NO_CONNECTION_CAUSES, Observation, contact_address,
                          parse_channelstats, parse_sip)


def probe_tls(host: str, port: int, cafile: str | None, timeout: float = 5.0) -> str | None:
    """What Asterisk's outbound TLS connection would meet: None when a TLS 1.2 handshake
    verified against the transport's CA list works, else why it did not."""
    import socket
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if cafile:
            ctx.load_verify_locations(cafile)
        else:
            ctx.verify_mode = ssl.CERT_NONE
    except (OSError, ssl.SSLError) as exc:
        return f"the CA list {cafile} cannot be used ({exc})"
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    try:
        with ctx.wrap_socket(raw) as tls:
            tls.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        return (f"TLS handshake with {host}:{port} failed: its certificate is not trusted by "
                f"the CA list {cafile} ({exc.verify_message})")
    except (ssl.SSLError, OSError) as exc:
        return f"TLS handshake with {host}:{port} failed: {exc}"
    finally:
        raw.close()
    return None


# ------------------------------------------------------------------ gather (over AMI)

# s past the ring timeout and the hold after which Asterisk hangs the call up by itself: the
# figures are read and the call hung up well within it
SAFETY = 10.0


class Caller:
    """Drives one test call over AMI and hangs up whatever it started, whatever happens."""

    def __init__(self, ami: AmiClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.ami = ami
        self.clock = clock
        tag = secrets.token_hex(4)
        self.ids = (f"pbxb-{tag}-1", f"pbxb-{tag}-2")  # the originated channel's uniqueids
        self.channels: dict[str, str] = {}  # uniqueid -> channel name, of ours, still up
        self.events: list[Message] = []
        self.times: list[float] = []  # when each of self.events reached us (self.clock)

    def cli(self, command: str) -> str:
        return self.ami.command(command)[1]

    def getvar(self, channel: str, variable: str) -> str | None:
        r = self.ami.action("Getvar", Channel=channel, Variable=variable)
        return r.get("Value") if r.get("Response") == "Success" else None

    def endpoint(self, obs: Observation) -> dict[str, str]:
        text = self.cli(f"pjsip show endpoint {obs.endpoint}")
        if "Unable to find object" in text or "ParameterName" not in text:
            obs.endpoint_loaded = False
            return {}
        obs.endpoint_loaded = True
        f = show_fields(text)
        obs.endpoint_context = f.get("context") or None
        aors = (f.get("aors") or obs.endpoint).split(",")[0].strip()
        text = self.cli(f"pjsip show aor {aors}")
        aor = show_fields(text)
        obs.contact = aor.get("contact") or None
        m = re.search(r"Contact:\s+\S+?/(sips?:\S+)\s+\S+\s+(\S+)", text)
        if m:  # "Contact: alexa/sip:127.0.0.2:5061;transport=tls  741527e0b0 Avail  0.750"
            obs.contact = obs.contact or m.group(1)
            obs.contact_status = m.group(2)
        return f

    def _track(self, m: Message) -> None:
        if m.get("Linkedid", self.ids[0]) != self.ids[0]:
            return  # another call's: every channel of ours is linked to the originated one
        self.events.append(m)
        self.times.append(self.clock())
        uid, name, ev = m.get("Uniqueid", ""), m.get("Channel", ""), m.get("Event")
        if ev == "Newchannel" and uid in self.ids:
            self.channels[uid] = name
        if ev == "DialBegin" and m.get("DestChannel", "").startswith("PJSIP/") and \
                (uid in self.ids or m.get("Channel", "") in self.channels.values()):
            self.channels[m.get("DestUniqueid", m["DestChannel"])] = m["DestChannel"]
        if ev == "Hangup":
            self.channels.pop(uid, None)

    def pump(self, seconds: float, until: Callable[[Message], bool] | None = None
             ) -> Message | None:
        """Read events for up to ``seconds``; return the first for which ``until`` is true."""
        end = self.clock() + seconds
        while True:
            left = end - self.clock()
            if left <= 0:
                return None
            m = self.ami.next_event(min(left, 0.5))
            if m is None:
                continue
            self._track(m)
            if until is not None and until(m):
                return m

    def originate(self, channel: str, timeout: float, hold: float = 0.0, **extra: str) -> None:
        """Place the call: ``timeout`` s to answer, then up to ``hold`` s. Asterisk itself
        ends it :data:`SAFETY` s after that (``TIMEOUT(absolute)``), should this process
        die or lose AMI before it hangs up."""
        limit = int(timeout + hold + SAFETY + 0.999)
        r = self.ami.action("Originate", Channel=channel, Async="true",
                            Timeout=str(int(timeout * 1000)), ChannelId=self.ids[0],
                            OtherChannelId=self.ids[1], Application="Milliwatt",
                            Variable=f"TIMEOUT(absolute)={limit}", **extra)
        if r.get("Response") != "Success":
            raise AmiError(f"Originate {channel}: {r.get('Message', 'refused')}")

    def hang_up_all(self, settle: float = 5.0) -> None:
        """Hang up every channel of ours still up, and return once Asterisk has reported each
        one gone (or after ``settle`` s): the originated pair by the uniqueids we gave it (its
        events may not have reached us yet), then every channel it dialled that we know of,
        also those we learn of meanwhile."""
        waiting: set[str] = set()  # uniqueids whose Hangup event has not come yet
        asked: set[str] = set()
        try:
            for uid in self.ids:
                r = self.ami.action("Hangup", Channel=uid)
                if r.get("Response") == "Success":
                    waiting.add(uid)
            end = self.clock() + settle
            while True:
                for uid, name in list(self.channels.items()):
                    if uid not in asked:
                        asked.add(uid)
                        waiting.add(uid)
                        self.ami.action("Hangup", Channel=name)
                if not waiting or self.clock() >= end:
                    return
                m = self.pump(min(0.5, end - self.clock()),
                              lambda m: m.get("Event") in ("Hangup", "Newchannel", "DialBegin"))
                if m is not None and m.get("Event") == "Hangup":
                    waiting.discard(m.get("Uniqueid", ""))
        except AmiError:
            return
        finally:
            self.channels.clear()

    # -------------------------------------------------------------- to a room

    def call_room(self, obs: Observation, direct: bool, hold: float, timeout: float,
                  cafile: str | None, local: bool, context: str | None = None) -> None:
        target = f"PJSIP/{obs.to}@{obs.endpoint}" if direct else \
            f"Local/{obs.to}@{context or 'pbx-bridge-to-alexa'}"
        self.originate(target, timeout, hold)
        done = self.pump(timeout + 10, lambda m: m.get("Event") == "OriginateResponse" and
                         m.get("Uniqueid") == self.ids[0])
        if context:
            obs.from_context = context
            ran = [m for m in self.events if m.get("Event") == "Newexten" and
                   m.get("Uniqueid") == self.ids[1]]
            obs.route_reached = any(m.get("Context") == "pbx-bridge-to-alexa" for m in ran)
            if not obs.route_reached and ran:  # the steps it took, as Asterisk names them
                obs.route_ran = ", ".join(f"{m.get('Application')}({m.get('AppData', '')})"
                                          for m in ran[:4]) + (", ..." if len(ran) > 4 else "")
            if not obs.route_reached:
                return
        if done is None:
            obs.timed_out = True
            return
        obs.answered = done.get("Response") == "Success"
        obs.ringing = done.get("Reason") == "3"
        if obs.answered:
            obs.sip_code, obs.sip_reason = 200, "OK"
            self.pump(0.3)
            obs.channel = self._pjsip_channel()
            if obs.channel is None:  # diagnose says so: no media checks without it
                return
            obs.pdd_ms, obs.answer_ms = quality.timing(zip(self.times, self.events),
                                                       obs.channel)
            obs.hold = hold
            self.pump(hold, lambda m: m.get("Event") == "Hangup" and
                      m.get("Channel") == obs.channel)
            if obs.channel not in self.channels.values():
                obs.hung_up_early = True
                return
            obs.tls = _flag(self.getvar(obs.channel, "CHANNEL(pjsip,secure)"))
            obs.srtp = _flag(self.getvar(obs.channel, "CHANNEL(rtp,secure,audio)"))
            codec = self.getvar(obs.channel, "CHANNEL(audionativeformat)")
            obs.codec = codec.strip("()") if codec else None
            stats = parse_channelstats(self.cli("pjsip show channelstats"), obs.channel)
            if stats is not None:
                obs.rtp_sent, obs.rtp_received = stats
            obs.quality = self.media_quality(obs.channel, obs.codec)
            seen = [m.get("Event") for m in self.events if m.get("Channel") == obs.channel]
            obs.rtcp_ours, obs.rtcp_theirs = seen.count("RTCPSent"), seen.count("RTCPReceived")
            return
        # not answered: Amazon's answer, from the dialplan, or the dialled channel's cause
        self.pump(2.0, lambda m: m.get("Event") == "Hangup" and
                  m.get("Uniqueid") == self.ids[1])
        trunk = self._pjsip_channel()
        if trunk is not None:
            obs.pdd_ms = quality.timing(zip(self.times, self.events), trunk)[0]
        if any(m.get("Event") == "Newexten" and m.get("Context") == "pbx-bridge-to-alexa" and
               m.get("Application") == "Congestion" for m in self.events):
            mapped = [m.get("Value", "") for m in self.events if m.get("Event") == "VarSet"
                      and m.get("Variable") == "ALEXA_MAPPED"]
            obs.not_routed = mapped[-1] if mapped else "unset"
            return  # the trunk was never dialled: nothing of Amazon's to judge
        for m in self.events:
            if m.get("Event") == "VarSet" and m.get("Variable") == "ALEXA_SIP" and \
                    m.get("Value"):
                obs.sip_code, obs.sip_reason = parse_sip(m["Value"])
            trunk_leg = m.get("Channel", "").startswith("PJSIP/")
            if m.get("Event") == "Hangup" and (trunk_leg or (
                    m.get("Uniqueid") == self.ids[1] and obs.cause is None)):
                obs.cause = int(m["Cause"]) if m.get("Cause", "").isdigit() else None
                obs.cause_txt = m.get("Cause-txt")
        if obs.sip_code is None and obs.cause is not None and not obs.ringing:
            obs.sip_guess = CAUSE_TO_SIP.get(obs.cause)
        if obs.cause in NO_CONNECTION_CAUSES and obs.sip_code is None and obs.contact and \
                local:
            where = contact_address(obs.contact)
            if where:
                obs.reach = probe_tls(where[0], where[1], cafile) or "reachable"

    def media_quality(self, channel: str, codec: str | None) -> dict[str, quality.Leg]:
        """Both directions of the media so far: Asterisk's RTCP figures for the channel and
        the report blocks its RTCPSent/RTCPReceived events carried during the hold."""
        rtcp = quality.parse_values(self.getvar(channel, "CHANNEL(rtcp,all)"))
        rtt = quality.parse_values(self.getvar(channel, "CHANNEL(rtcp,all_rtt)"))
        mes = quality.parse_values(self.getvar(channel, "CHANNEL(rtcp,all_mes)"))
        ours, theirs = _ssrc(rtcp.get("ssrc")), _ssrc(rtcp.get("themssrc"))
        received, sent = [], []
        our_counts: list[tuple[float, int]] = []  # our packet count, when
        amazon_counts: list[tuple[float, int]] = []  # Amazon's, from its sender reports
        start = None
        for at, m in zip(self.times, self.events):
            if m.get("Channel") != channel:
                continue
            ev = m.get("Event")
            if start is None and ev == "Newstate" and m.get("ChannelStateDesc") == "Up":
                start = at  # answered: both counts start at 0
            if ev == "RTCPReceived":
                b = quality.block_of(m, ours, at)
                if b is not None:
                    received.append(b)
                if m.get("SentPackets", "").isdigit():
                    amazon_counts.append((at, int(m["SentPackets"])))
            elif ev == "RTCPSent":
                b = quality.block_of(m, theirs, at)
                if b is not None:
                    sent.append(b)
                if m.get("SentPackets", "").isdigit():
                    our_counts.append((at, int(m["SentPackets"])))
        if "txcount" in rtcp:
            our_counts.append((self.clock(), int(rtcp["txcount"])))
        return quality.legs(codec, rtcp, rtt, mes, received, sent, our_counts, amazon_counts,
                            start)

    def _pjsip_channel(self) -> str | None:
        for m in self.events:
            if m.get("Event") == "DialBegin" and m.get("DestChannel", "").startswith("PJSIP/"):
                return m["DestChannel"]
            if m.get("Event") == "Newchannel" and m.get("Uniqueid") == self.ids[0] and \
                    m.get("Channel", "").startswith("PJSIP/"):
                return m["Channel"]
        return None

    # -------------------------------------------------------------- from a room

    def reach(self, obs: Observation, ring: bool, timeout: float) -> None:
        ctx = obs.endpoint_context or "default"
        entries = self._dialplan(ctx, obs.to)
        if not entries:
            obs.not_reached = f"[{ctx}] has no extension {obs.to}"
            return
        guard = next((e for e in entries if e.get("Application") == "Goto" and
                      e.get("AppData", "").endswith(",${EXTEN},1")), None)
        phones_only = any("PJSIP_ENDPOINT(" in e.get("AppData", "") for e in entries)
        if guard is not None and not phones_only:  # FreePBX's: on to the reach context
            target = guard["AppData"].split(",")[0]
            behind = self._dialplan(target, obs.to)
            if not behind:
                obs.not_reached = f"[{target}] has no extension {obs.to}"
                return
            where = next((e["Context"] for e in behind if e.get("Extension") and
                          e.get("Context")), target)  # the context that has it
            obs.reached = f"[{ctx}] -> [{target}]" + (f" -> [{where}]" if where != target
                                                       else "") + f" {obs.to}"
        elif guard is not None:  # our plain-Asterisk guard: a phone in the phones' context
            phones = guard["AppData"].split(",")[0]
            ep = show_fields(self.cli(f"pjsip show endpoint {obs.to}"))
            if ep.get("context") != phones:
                obs.not_reached = (f"{obs.to} is not a PJSIP endpoint in [{phones}], so "
                                   f"[{ctx}] refuses it (only the PBX's phones are reached)")
                return
            if not self._dialplan(phones, obs.to):
                obs.not_reached = f"[{phones}] has no extension {obs.to}"
                return
            obs.reached = f"[{ctx}] -> [{phones}] {obs.to}"
        else:
            where = entries[0].get("IncludeContext") or entries[0].get("Context") or ctx
            obs.reached = f"[{ctx}]" + (f" -> [{where}]" if where != ctx else "") + \
                f" {obs.to}"
        if ring:
            self.originate(f"Local/{obs.to}@{ctx}", timeout)
            done = self.pump(timeout + 10, lambda m: m.get("Event") == "OriginateResponse"
                             and m.get("Uniqueid") == self.ids[0])
            if done is None:
                obs.timed_out = True
                return
            obs.answered = done.get("Response") == "Success"
            obs.ringing = done.get("Reason") == "3"
            self.pump(0.5)
            for m in self.events:
                if m.get("Event") == "Hangup" and m.get("Uniqueid") == self.ids[1]:
                    obs.cause = int(m["Cause"]) if m.get("Cause", "").isdigit() else None
                    obs.cause_txt = m.get("Cause-txt")

    def _dialplan(self, context: str, exten: str) -> list[Message]:
        """Where ``exten`` matches in ``context`` (AMI ShowDialPlan); empty when nowhere."""
        try:
            return self.ami.event_list("ShowDialPlan", "ListDialplan", Context=context,
                                       Extension=exten)
        except AmiActionFailed:  # "Did not find extension ..."
            return []


def _ssrc(value: float | None) -> int | None:
    return None if value is None else int(value)


def _flag(value: str | None) -> bool | None:
    if value is None or value.strip() == "":
        return None
    return value.strip() == "1"


# ------------------------------------------------------------------ judge (pure)


