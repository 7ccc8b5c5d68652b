"""A test call as Prometheus metrics (``test-call --textfile PATH.prom``), for node_exporter's
textfile collector: a timer places a daily call to a designated test room, and
asterisk/prometheus/pbx-bridge-rules.yml alerts on what it wrote. Base units (seconds,
ratios), as Prometheus names them."""

from __future__ import annotations

from typing import Any

from ..findings import Finding
from .diagnose import report
from .observation import Observation
from .quality import DIRECTIONS, Limits


def registry(o: Observation, findings: list[Finding], now: float, duration: float,
             min_mos: float = Limits().mos) -> Any:
    """The call as a ``prometheus_client`` registry: always its outcome and time; the
    figures only those that were measured. Every series has the label ``room`` (the
    extension called), so that calls to two test rooms do not collide. ``min_mos`` is
    test-call's --min-mos, exported for the alert to compare with."""
    from prometheus_client import CollectorRegistry, Gauge
    reg = CollectorRegistry()
    room = o.to

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, ("room",) + labels, registry=reg)

    def put(name: str, doc: str, value: float) -> None:
        gauge(name, doc).labels(room).set(value)

    doc = report(o, findings)
    put("pbx_bridge_test_call_success", "1 when the test call worked (test-call exit 0)",
        int(doc["ok"]))
    put("pbx_bridge_test_call_answered", "1 when the test call was answered", int(o.answered))
    put("pbx_bridge_test_call_timestamp_seconds", "when the test call was placed", now)
    put("pbx_bridge_test_call_duration_seconds", "how long test-call took", duration)
    failed = gauge("pbx_bridge_test_call_finding_failed", "1 for each test-call finding that "
                   "failed", ("finding",))
    for f in findings:
        if f.status.value in ("fail", "error"):
            failed.labels(room, f.id).set(1)
    if o.pdd_ms is not None:
        put("pbx_bridge_test_call_post_dial_delay_seconds", "INVITE to the first answer "
            "other than 100 Trying", o.pdd_ms / 1000)
    if o.answer_ms is not None:
        put("pbx_bridge_test_call_answer_seconds", "INVITE to 200 OK", o.answer_ms / 1000)
    if o.answered and o.direction == "to-alexa" and o.channel and not o.hung_up_early:
        # held and looked at: were the figures measured? (0: never, on a host whose AMI
        # user lacks read=reporting or whose far end sends no RTCP, is an alert of its own)
        known = bool(o.quality) and all(o.quality.get(d) is not None and
                                        o.quality[d].mos is not None for d in DIRECTIONS)
        put("pbx_bridge_test_call_quality_measured", "1 when both directions' quality "
            "was measured (RTCP), 0 when the answered call's was not", int(known))
        put("pbx_bridge_test_call_min_mos", "test-call's --min-mos: the estimated MOS under "
            "which the call fails", min_mos)
    if not o.quality:
        return reg
    packets = gauge("pbx_bridge_test_call_rtp_packets", "RTP packets of the test call, per "
                    "direction (to_amazon, from_amazon) and kind (sent, received, lost)",
                    ("direction", "kind"))
    loss = gauge("pbx_bridge_test_call_loss_ratio", "fraction of the RTP packets lost (RTCP)",
                 ("direction",))
    jitter = gauge("pbx_bridge_test_call_jitter_seconds", "RTCP interarrival jitter",
                   ("direction",))
    mes = gauge("pbx_bridge_test_call_mes", "Asterisk's Media Experience Score (0-100)",
                ("direction",))
    mos = gauge("pbx_bridge_test_call_mos_estimate", "estimated MOS (ITU-T G.107 E-model, "
                "simplified), per direction; the call's is the lower of those known",
                ("direction",))
    for d in DIRECTIONS:
        leg = o.quality.get(d)
        if leg is None:
            continue
        for kind, v in (("sent", leg.sent), ("received", leg.received), ("lost", leg.lost)):
            if v is not None:
                packets.labels(room, d, kind).set(v)
        if leg.loss_pct is not None:
            loss.labels(room, d).set(leg.loss_pct / 100)
        if leg.jitter_ms is not None:
            jitter.labels(room, d).set(leg.jitter_ms / 1000)
        if leg.mes is not None:
            mes.labels(room, d).set(leg.mes)
        if leg.mos is not None:
            mos.labels(room, d).set(leg.mos)
    rtts = [leg.rtt_ms for leg in o.quality.values() if leg.rtt_ms is not None]
    if rtts:  # made only when known: a gauge without samples of its own would read 0
        put("pbx_bridge_test_call_rtt_seconds", "RTCP round-trip time", rtts[0] / 1000)
    worst = [leg.mos for leg in o.quality.values() if leg.mos is not None]
    if worst:  # what is known is worth an alert, even with the other direction unknown
        mos.labels(room, "call").set(min(worst))
    return reg
