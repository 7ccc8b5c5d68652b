"""What a test call was seen to do (:class:`Observation`), and the parsers of what Asterisk
says about it. Filled by :mod:`.call`, judged by :mod:`.diagnose`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .quality import Leg


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
    pdd_ms: float | None = None  # post-dial delay: INVITE to the first answer but 100
    answer_ms: float | None = None  # INVITE to 200 OK
    hold: float | None = None  # how long the answered call was held (s)
    quality: dict[str, Leg] = field(default_factory=dict)  # per direction (quality.DIRECTIONS)
    rtcp_ours: int | None = None  # RTCPSent events of the call seen over AMI (our reports)
    rtcp_theirs: int | None = None  # RTCPReceived events (Amazon's reports)


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
