"""A test call as Prometheus metrics (``test-call --textfile PATH.prom``), for node_exporter's
textfile collector: a timer places a daily call to a designated test room, and
asterisk/prometheus/pbx-bridge-rules.yml alerts on what it wrote. Base units (seconds,
ratios), as Prometheus names them."""

from __future__ import annotations

from typing import Any

from ..findings import Finding
from .diagnose import call_mos, report
from .observation import Observation
from .quality import DIRECTIONS


def registry(o: Observation, findings: list[Finding], now: float, duration: float) -> Any:
    """The call as a ``prometheus_client`` registry: always its outcome and time; the
    figures only those that were measured."""
    from prometheus_client import CollectorRegistry, Gauge
    reg = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=reg)

    doc = report(o, findings)
    gauge("pbx_bridge_test_call_success", "1 when the test call worked (test-call exit 0)"
          ).set(int(doc["ok"]))
    gauge("pbx_bridge_test_call_answered", "1 when the test call was answered").set(
        int(o.answered))
    gauge("pbx_bridge_test_call_timestamp_seconds", "when the test call was placed").set(now)
    gauge("pbx_bridge_test_call_duration_seconds", "how long test-call took").set(duration)
    failed = gauge("pbx_bridge_test_call_finding_failed", "1 for each test-call finding that "
                   "failed", ("finding",))
    for f in findings:
        if f.status.value in ("fail", "error"):
            failed.labels(f.id).set(1)
    if o.pdd_ms is not None:
        gauge("pbx_bridge_test_call_post_dial_delay_seconds", "INVITE to the first answer "
              "other than 100 Trying").set(o.pdd_ms / 1000)
    if o.answer_ms is not None:
        gauge("pbx_bridge_test_call_answer_seconds", "INVITE to 200 OK").set(
            o.answer_ms / 1000)
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
                "simplified), per direction; the call's is the lower", ("direction",))
    for d in DIRECTIONS:
        leg = o.quality.get(d)
        if leg is None:
            continue
        for kind, v in (("sent", leg.sent), ("received", leg.received), ("lost", leg.lost)):
            if v is not None:
                packets.labels(d, kind).set(v)
        if leg.loss_pct is not None:
            loss.labels(d).set(leg.loss_pct / 100)
        if leg.jitter_ms is not None:
            jitter.labels(d).set(leg.jitter_ms / 1000)
        if leg.mes is not None:
            mes.labels(d).set(leg.mes)
        if leg.mos is not None:
            mos.labels(d).set(leg.mos)
    known = [leg.rtt_ms for leg in o.quality.values() if leg.rtt_ms is not None]
    if known:  # an unlabelled gauge reads 0 from its making: made only when known
        gauge("pbx_bridge_test_call_rtt_seconds", "RTCP round-trip time").set(
            known[0] / 1000)
    worst = call_mos(o)
    if worst is not None:
        mos.labels("call").set(worst)
    return reg
