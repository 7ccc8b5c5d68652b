"""``pbx-bridge test-call``: Amazon's "Step 6", automated. A real call through the running
Asterisk over AMI, observed (gather), then judged by pure functions (diagnose) into findings.

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
from dataclasses import dataclass
from typing import Any, Callable

from .ami import AmiActionFailed, AmiClient, AmiError, Message
from .asterisk_cli import show_fields
from .findings import Finding, Status

# Q.850 causes Asterisk's chan_pjsip gives for Amazon's SIP answers, when the SIP answer
# itself is not at hand (--direct): the most likely SIP code for each.
CAUSE_TO_SIP = {1: 404, 21: 403, 58: 488, 65: 488, 18: 408, 102: 408, 19: 480, 17: 486}
NO_CONNECTION_CAUSES = {3, 27, 34, 38, 41, 42}  # 3: no trunk channel at all (contact down)


@dataclass
class Observation:
    """What happened, as gathered; everything may be unknown (None)."""

    direction: str  # "to-alexa" | "from-alexa"
    to: str
    endpoint: str
    endpoint_loaded: bool | None = None
    endpoint_context: str | None = None
    mapped: bool | None = None  # in the published routes
    routes_note: str | None = None
    channel: str | None = None  # the dialled PJSIP channel
    answered: bool = False
    ringing: bool = False
    sip_code: int | None = None
    sip_reason: str | None = None
    sip_guess: int | None = None  # no SIP answer at hand (--direct): from the Q.850 cause
    cause: int | None = None
    cause_txt: str | None = None
    tls: bool | None = None
    srtp: bool | None = None
    codec: str | None = None
    rtp_sent: int | None = None
    rtp_received: int | None = None
    hung_up_early: bool = False  # Amazon hung up during the hold
    contact: str | None = None  # the aor's contact (Amazon's address)
    contact_status: str | None = None  # Asterisk's qualify status of it (Avail, Unavail)
    reach: str | None = None  # our own TLS probe of the contact: None ok, else why not
    reached: str | None = None  # from-alexa: where the extension is found
    not_reached: str | None = None  # from-alexa: why it is not
    timed_out: bool = False
    from_context: str | None = None  # --from-context: where the call started
    route_reached: bool | None = None  # it went through [pbx-bridge-to-alexa]
    route_ran: str | None = None  # else what ran first instead, as "Context Application"
    not_routed: str | None = None  # the room route's Congestion ran: ALEXA_MAPPED as it was


def parse_sip(value: str) -> tuple[int | None, str | None]:
    """``SIP 404 Not Found`` -> (404, "Not Found")."""
    m = re.match(r"\s*SIP\s+(\d{3})\s*(.*)$", value or "")
    return (int(m.group(1)), m.group(2).strip() or None) if m else (None, None)


def parse_channelstats(text: str, channel: str) -> tuple[int, int] | None:
    """(sent, received) RTP packets of ``PJSIP/<id>`` in ``pjsip show channelstats``:
    ``BridgeId ChannelId UpTime Codec RxCount RxLost RxPct RxJitter TxCount ...``."""
    cid = channel.split("/", 1)[-1]
    for line in text.splitlines():
        t = line.split()
        if cid in t:
            i = t.index(cid)
            nums = t[i + 3:]
            if len(nums) >= 5 and nums[0].isdigit() and nums[4].isdigit():
                return int(nums[4]), int(nums[0])
    return None


def contact_address(contact: str) -> tuple[str, int] | None:
    """``sip:3.239.178.130:5061;transport=tls`` -> (host, port)."""
    m = re.match(r"sips?:(?:[^@;]*@)?(\[[^\]]+\]|[^:;>]+)(?::(\d+))?", contact.strip())
    if not m:
        return None
    return m.group(1).strip("[]"), int(m.group(2) or 5061)


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

class Caller:
    """Drives one test call over AMI and hangs up whatever it started, whatever happens."""

    def __init__(self, ami: AmiClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.ami = ami
        self.clock = clock
        tag = secrets.token_hex(4)
        self.ids = (f"pbxb-{tag}-1", f"pbxb-{tag}-2")  # the originated channel's uniqueids
        self.channels: dict[str, str] = {}  # uniqueid -> channel name, of ours, still up
        self.events: list[Message] = []

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
        self.events.append(m)
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

    def originate(self, channel: str, timeout: float, **extra: str) -> None:
        r = self.ami.action("Originate", Channel=channel, Async="true",
                            Timeout=str(int(timeout * 1000)), ChannelId=self.ids[0],
                            OtherChannelId=self.ids[1], Application="Milliwatt", **extra)
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
        self.originate(target, timeout)
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
            return
        # not answered: Amazon's answer, from the dialplan, or the dialled channel's cause
        self.pump(2.0, lambda m: m.get("Event") == "Hangup" and
                  m.get("Uniqueid") == self.ids[1])
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


def _flag(value: str | None) -> bool | None:
    if value is None or value.strip() == "":
        return None
    return value.strip() == "1"


# ------------------------------------------------------------------ judge (pure)

def diagnose(o: Observation) -> list[Finding]:
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
        out += _media_findings(o) if o.channel else [Finding(
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
    elif o.rtp_sent == 0:
        out.append(Finding("media.rtp", Status.FAIL, f"no RTP sent ({o.rtp_received} "
                           "received): one-way audio", ev, None,
                           "check the egress firewall and the endpoint's media settings"))
    else:
        out.append(Finding("media.rtp", Status.PASS, f"RTP both ways: {o.rtp_sent} sent, "
                           f"{o.rtp_received} received", ev))
    return out


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
            "findings": [f.to_json() for f in findings]}
