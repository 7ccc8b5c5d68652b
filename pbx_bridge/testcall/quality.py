"""What the guest hears, in numbers: the call's timing, and per direction the packets, loss,
jitter, round-trip time, Asterisk's Media Experience Score and an estimated MOS. Pure
functions of what Asterisk reported during the call (its RTCP events over AMI and
``CHANNEL(rtcp,...)``); gathered by :mod:`.call`, judged by :mod:`.diagnose`.

Seen on a real Asterisk 22.10.1 (tests/test_call_quality.py): ``RTCPSent`` and
``RTCPReceived`` events carry the report block of each sender or receiver report
(``Report0SourceSSRC``, ``Report0FractionLost``, ``Report0CumulativeLost``,
``Report0HighestSequence``, ``Report0SequenceNumberCycles``, ``Report0IAJitter`` in RTP
timestamp units); a block in ``RTCPReceived`` is Amazon's account of what we sent it, one in
``RTCPSent`` ours of what it sent us. ``CHANNEL(rtcp,all)`` answers
``ssrc=..;themssrc=..;lp=..;rxjitter=..;rxcount=..;txjitter=..;txcount=..;rlp=..;rtt=..;
rxmes=..;txmes=..`` (jitter and rtt in seconds), ``CHANNEL(rtcp,all_rtt)``
``minrtt=..; maxrtt=..; avgrtt=..; stdevrtt=..`` (seconds) and ``CHANNEL(rtcp,all_mes)``
``minrxmes=..; ...; avgtxmes=..``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

# RTP clock rate of the codecs a trunk to Amazon carries (jitter arrives in its units)
CLOCK_RATES = {"ulaw": 8000, "alaw": 8000, "g722": 8000, "g729": 8000, "gsm": 8000,
               "opus": 48000, "slin16": 16000}

TO_AMAZON, FROM_AMAZON = "to_amazon", "from_amazon"
DIRECTIONS = (TO_AMAZON, FROM_AMAZON)
SAID = {TO_AMAZON: "to Amazon", FROM_AMAZON: "from Amazon"}


@dataclass(frozen=True)
class Limits:
    """Where a figure becomes a finding (test-call's --max-loss, --max-jitter, --max-rtt,
    --min-mos)."""

    loss_pct: float = 1.0
    jitter_ms: float = 30.0
    rtt_ms: float = 300.0
    mos: float = 3.6


@dataclass(frozen=True)
class Block:
    """One RTCP report block: what the receiver of a stream said of it."""

    at: float  # when it reached us (our clock)
    fraction_lost: int  # of 256, since the previous report
    cumulative_lost: int
    highest_seq: int  # extended: cycles * 65536 + highest sequence number
    jitter: int  # interarrival jitter, RTP timestamp units
    lsr: int = 0  # our last sender report it answers (0: none yet, so no round trip)


@dataclass(frozen=True)
class Leg:
    """One direction of the media. ``None``: not known (no report covered it)."""

    sent: int | None = None
    received: int | None = None
    lost: int | None = None
    loss_pct: float | None = None
    jitter_ms: float | None = None
    rtt_ms: float | None = None  # the round trip, as the PBX measured it: the same both ways
    mes: float | None = None  # Asterisk's Media Experience Score, 0-100
    mos: float | None = None  # estimated (simplified E-model)
    reports: int = 0  # RTCP report blocks the figures rest on
    stopped: bool | None = None  # the receiver got nothing new in its last report's span

    def to_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "received": self.received, "lost": self.lost,
                "loss_pct": _round(self.loss_pct), "jitter_ms": _round(self.jitter_ms),
                "rtt_ms": _round(self.rtt_ms), "mes": _round(self.mes),
                "mos": _round(self.mos, 2), "mos_estimated": True, "reports": self.reports,
                "stopped": self.stopped}


def _round(v: float | None, digits: int = 1) -> float | None:
    return None if v is None else round(v, digits)


def parse_values(text: str | None) -> dict[str, float]:
    """``minrtt=000.000000;     maxrtt=...;`` -> {"minrtt": 0.0, ...}; what is not a number is
    left out."""
    out: dict[str, float] = {}
    for part in (text or "").split(";"):
        key, sep, value = part.partition("=")
        if sep:
            try:
                out[key.strip()] = float(value.strip())
            except ValueError:
                pass
    return out


def block_of(event: Mapping[str, str], ssrc: int | None, at: float) -> Block | None:
    """The report block of an ``RTCPSent``/``RTCPReceived`` event about the stream ``ssrc``
    (any, when None), or None."""
    count = event.get("ReportCount", "")
    for i in range(int(count) if count.isdigit() else 0):
        p = f"Report{i}"
        try:
            source = int(event.get(p + "SourceSSRC", ""), 0)
            fraction = int(event[p + "FractionLost"])
            lost = int(event[p + "CumulativeLost"])
            high = int(event[p + "HighestSequence"])
            cycles = int(event.get(p + "SequenceNumberCycles", "0"))
            jitter = int(event[p + "IAJitter"])
            lsr = int(event.get(p + "LSR", "0") or 0)
        except (KeyError, ValueError):
            continue
        if ssrc is not None and source != ssrc:
            continue
        # cycles as a count (seen: 0), or already shifted
        ext = high + (cycles << 16 if cycles < 65536 else cycles)
        return Block(at, fraction, lost, ext, jitter, lsr)
    return None


def loss_from(blocks: list[Block]) -> float | None:
    """The fraction lost, in %, as the receiver's reports alone tell it: between the first and
    the last report (their cumulative counts and highest sequence numbers), or the one
    report's own fraction. Blind to packets that never arrive (a receiver cannot count what
    it never saw) and to loss before the first report: :func:`span` is what test-call
    uses; this is its fallback when the sender's own count is not at hand."""
    if not blocks:
        return None
    first, last = blocks[0], blocks[-1]
    expected = last.highest_seq - first.highest_seq
    if len(blocks) >= 2 and expected > 0:
        return max(0.0, min(100.0, 100.0 * (last.cumulative_lost - first.cumulative_lost)
                            / expected))
    return 100.0 * last.fraction_lost / 256


IN_FLIGHT_S = 0.25  # s of the sender's packets taken as the timing of the reports


def count_at(samples: list[tuple[float, int]], at: float) -> float | None:
    """The sender's packet count at ``at``, from its counts at known times (its sender
    reports, and 0 at the answer): linear between two, on the last two's rate after them."""
    pts = sorted(samples)
    if not pts:
        return None
    if len(pts) == 1:
        return float(pts[0][1]) if at >= pts[0][0] else None
    for (t0, c0), (t1, c1) in zip(pts, pts[1:]):
        if at <= t1 or (t1, c1) == pts[-1]:
            if t1 <= t0:
                return float(c1)
            return max(0.0, c0 + (c1 - c0) * (at - t0) / (t1 - t0))
    return None  # not reached


def span(blocks: list[Block], sender: list[tuple[float, int]]
         ) -> tuple[int, int, bool | None] | None:
    """(expected, lost, stopped) from the call's start to the receiver's last report:
    expected is what the sender had sent by then (its own count), lost what of it the
    receiver's reports do not show as received: its cumulative count (loss from the start,
    also before its first report) plus what the sender sent between the first and the last
    report beyond the advance of the receiver's highest sequence number (packets that never
    arrive, as when the audio stops one way, move neither). ``stopped``: the receiver saw
    no new packet between its last two reports while the sender sent (None: one report).
    Assumes the stream reached the receiver at its first report (else the loss shown is a
    lower bound). None without a report or the sender's count."""
    if not blocks:
        return None
    first, last = blocks[0], blocks[-1]
    s_first, s_last = count_at(sender, first.at), count_at(sender, last.at)
    if s_first is None or s_last is None:
        return None
    expected = round(s_last)
    # the sender's count at a report is interpolated from when the events reached us over
    # AMI: a fraction of a second's packets either way is that timing (seen: 1 of 300 on a
    # clean call; more on a busy host), not loss, which a stream that stops soon exceeds
    unseen = (s_last - s_first) - (last.highest_seq - first.highest_seq)
    rate = (s_last - s_first) / (last.at - first.at) if last.at > first.at else 50.0
    if abs(unseen) <= max(2.0, rate * IN_FLIGHT_S):
        unseen = 0
    lost_n = max(0, min(expected, round(last.cumulative_lost + unseen)))
    stopped = None
    if len(blocks) >= 2:
        before = blocks[-2]
        s_before = count_at(sender, before.at)
        stopped = last.highest_seq == before.highest_seq and s_before is not None and \
            s_last - s_before >= 5
    return expected, lost_n, stopped


def jitter_from(blocks: list[Block], codec: str | None) -> float | None:
    """The interarrival jitter, in ms: the mean of the later half of the reports. A
    receiver's estimate starts at 0 and, as seen on Asterisk 22 (100 +/- 90 ms of delay
    reads 10-20 ms in the first second, then 30-50), takes seconds to settle."""
    if not blocks:
        return None
    rate = CLOCK_RATES.get((codec or "").lower(), 8000)
    settled = blocks[len(blocks) // 2:]
    return 1000.0 * sum(b.jitter for b in settled) / len(settled) / rate


def estimated_mos(loss_pct: float, jitter_ms: float, rtt_ms: float) -> float:
    """ITU-T G.107's E-model in its common simplified form (G.711, no codec impairment):
    effective latency = one-way delay + 2 x jitter + 10 ms; R = 93.2 - latency/40 (under
    160 ms, else - (latency - 120)/10) - 2.5 x loss %; MOS from R as G.107 maps it. An
    estimate, not a listening test."""
    latency = rtt_ms / 2 + 2 * jitter_ms + 10
    r = 93.2 - (latency / 40 if latency < 160 else (latency - 120) / 10) - 2.5 * loss_pct
    r = max(0.0, min(100.0, r))
    return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)


def legs(codec: str | None, rtcp_all: Mapping[str, float], rtt: Mapping[str, float],
         mes: Mapping[str, float], received: Iterable[Block], sent: Iterable[Block],
         our_counts: Iterable[tuple[float, int]], amazon_counts: Iterable[tuple[float, int]],
         start: float | None = None) -> dict[str, Leg]:
    """Both directions from what Asterisk said: ``received`` are Amazon's report blocks on our
    stream (RTCPReceived), ``sent`` ours on Amazon's (RTCPSent); ``our_counts`` and
    ``amazon_counts`` each sender's packet count at known times (the SentPackets of its
    sender reports; ours also txcount at the end), ``start`` when the call was answered
    (both counts 0). Packets, loss and the stream having stopped from the start to the
    receiver's last report (:func:`span`)."""
    to_blocks, from_blocks = list(received), list(sent)
    # a round trip is measured from a report that answers one of ours (LSR set)
    rtt_ms = 1000.0 * rtt["avgrtt"] if any(b.lsr for b in to_blocks) and "avgrtt" in rtt \
        else None
    anchor = [] if start is None else [(start, 0)]
    out: dict[str, Leg] = {}
    for name, blocks, counts in ((TO_AMAZON, to_blocks, list(our_counts)),
                                 (FROM_AMAZON, from_blocks, list(amazon_counts))):
        jitter = jitter_from(blocks, codec)
        measured = span(blocks, anchor + counts)
        s = got = lost = None
        loss = stopped = None
        if measured is not None:
            s, lost, stopped = measured
            got = s - lost
            loss = 100.0 * lost / s if s else None
        elif blocks:  # no count of the sender's: what the receiver's reports alone say
            loss = loss_from(blocks)
        if not blocks:
            score = None
        elif name == TO_AMAZON:
            score = mes.get("avgtxmes", rtcp_all.get("rxmes"))
        else:
            score = mes.get("avgrxmes", rtcp_all.get("txmes"))
        mos = estimated_mos(loss, jitter, rtt_ms) if loss is not None and \
            jitter is not None and rtt_ms is not None else None
        out[name] = Leg(s, got, lost, loss, jitter, rtt_ms, score, mos, len(blocks), stopped)
    return out


def timing(events: Iterable[tuple[float, Mapping[str, str]]], channel: str
           ) -> tuple[float | None, float | None]:
    """(post-dial delay, time to answer) in ms, from the AMI events of the call with the time
    each reached us: the INVITE leaves when the trunk channel is dialled (``DialBegin``, or
    its ``Newchannel`` when originated on the trunk itself); the first answer other than
    100 Trying shows as the channel ringing or in progress, answered, or gone (a refusal);
    the answer as it going Up."""
    start = pdd = answer = None
    for at, m in events:
        ev = m.get("Event")
        if start is None:
            if (ev == "DialBegin" and m.get("DestChannel") == channel) or \
                    (ev == "Newchannel" and m.get("Channel") == channel):
                start = at
            continue
        mine = m.get("Channel") == channel or m.get("DestChannel") == channel
        if not mine:
            continue
        state = m.get("ChannelStateDesc") if ev == "Newstate" else None
        first = (ev == "DialState" and m.get("DialStatus") in ("RINGING", "PROGRESS")) or \
            state in ("Ringing", "Up") or ev in ("Hangup", "DialEnd")
        if pdd is None and first:
            pdd = at
        if state == "Up" or (ev == "DialEnd" and m.get("DialStatus") == "ANSWER"):
            answer = at
            break
        if ev == "Hangup":
            break
    if start is None:
        return None, None
    return (None if pdd is None else 1000.0 * (pdd - start),
            None if answer is None else 1000.0 * (answer - start))
