"""``pbx-bridge test-call``: place a real call through the trunk over AMI and say what broke
(Amazon's "Step 6: test your configuration", automated)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..log import use_colour
from ..errors import PbxBridgeError, UsageError

from . import HELPS

TYPE_CHECKING = False

if TYPE_CHECKING:
    from ..findings import Finding
    from ..testcall.observation import Observation

HELP = HELPS["test-call"]


class NoAmi(PbxBridgeError):
    """No AMI to place or follow the call with; ``finding_id`` names it in the metrics."""

    exit_code = 2

    def __init__(self, message: str, finding_id: str) -> None:
        super().__init__(message)
        self.finding_id = finding_id


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("test-call", help=HELP, description=HELP + ". Needs the [ami] "
                       "settings. Exit 0 when the call worked, 1 when it failed (with the "
                       "diagnosis), 2 for bad usage or no AMI.")
    p.add_argument("--config", metavar="FILE", help="settings file ([ami], state dir)")
    p.add_argument("--to", required=True, metavar="EXT", help="the room's Alexa extension "
                   "(to a room), or the PBX extension (--from-alexa)")
    p.add_argument("--from-alexa", action="store_true", help="check what Amazon will deliver "
                   "when a guest says 'Alexa, call extension EXT'")
    p.add_argument("--direct", action="store_true", help="dial the trunk endpoint itself, "
                   "not through the generated dialplan")
    p.add_argument("--from-context", metavar="CONTEXT", help="start where a phone starts: "
                   "dial EXT in this dialplan context (e.g. from-internal), so that what "
                   "shadows the route to the rooms shows (default: pbx-bridge-to-alexa)")
    p.add_argument("--ring", action="store_true", help="--from-alexa: really ring EXT")
    p.add_argument("--hold", type=float, default=12.0, metavar="SECONDS",
                   help="keep an answered call up this long (default 12: RTCP reports, "
                   "which the quality figures rest on, come every few seconds)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long to let it ring (default 30)")
    p.add_argument("--endpoint", metavar="NAME", help="the trunk endpoint (default: the one "
                   "the routes name, else alexa)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (colour only on a terminal, never with NO_COLOR) or json")
    p.add_argument("--max-loss", type=float, default=1.0, metavar="PERCENT",
                   help="packet loss in either direction from which it is a finding "
                   "(default 1)")
    p.add_argument("--max-jitter", type=float, default=30.0, metavar="MS",
                   help="RTCP jitter from which it is a finding (default 30)")
    p.add_argument("--max-rtt", type=float, default=300.0, metavar="MS",
                   help="round-trip time from which it is a finding (default 300)")
    p.add_argument("--min-mos", type=float, default=3.6, metavar="MOS",
                   help="estimated MOS under which the call fails (default 3.6)")
    p.add_argument("--textfile", metavar="PATH", help="also write the call as Prometheus "
                   "metrics to PATH (a *.prom file in node_exporter's textfile collector "
                   "directory), atomically")
    p.set_defaults(run=run)


def _check(args: argparse.Namespace) -> None:
    if not re.fullmatch(r"[0-9]{1,15}", args.to):
        raise UsageError(f"--to {args.to!r}: an extension is 1 to 15 digits")
    if args.ring and not args.from_alexa:
        raise UsageError("--ring goes with --from-alexa")
    if args.direct and args.from_alexa:
        raise UsageError("--direct is for calls to a room, not --from-alexa")
    if args.from_context is not None:
        if args.direct or args.from_alexa:
            raise UsageError("--from-context is for calls to a room through the dialplan, "
                             "not with --direct or --from-alexa")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}", args.from_context):
            raise UsageError(f"--from-context {args.from_context!r}: not a context name")
    if not 0 <= args.hold <= 600:
        raise UsageError("--hold must be 0..600 seconds")
    if not 0 < args.timeout <= 600:
        raise UsageError("--timeout must be more than 0 and at most 600 seconds")
    import math
    for option, value, low, high, unit in (
            ("--max-loss", args.max_loss, 0.0, 100.0, " %"),
            ("--max-jitter", args.max_jitter, 0.0, math.inf, " ms"),
            ("--max-rtt", args.max_rtt, 0.0, math.inf, " ms")):
        # 0 would make every clean call a finding; inf is no limit (and not JSON)
        if not (math.isfinite(value) and low < value <= high):
            raise UsageError(f"{option} {value:g}: more than 0" + (
                f" and at most {high:g}{unit}" if high < math.inf else f"{unit}, finite"))
    if not (math.isfinite(args.min_mos) and 1 <= args.min_mos <= 5):
        raise UsageError(f"--min-mos {args.min_mos:g}: 1..5")
    if args.textfile is not None:
        if not args.textfile.endswith(".prom"):
            raise UsageError(f"--textfile {args.textfile!r}: node_exporter's textfile "
                             "collector reads only files ending in .prom")
        _check_textfile(Path(args.textfile))


def _check_textfile(path: Path) -> None:
    """That --textfile can be written, before a call is placed: its folder is a folder we
    may create files in (prometheus_client writes a temporary file there and renames it),
    and the path is not a folder."""
    import os
    import tempfile
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--textfile {path}: {folder} is not a folder")
    if not folder.is_dir():
        raise UsageError(f"--textfile {path}: the folder {folder} does not exist")
    if path.is_dir():
        raise UsageError(f"--textfile {path}: is a folder, not a file")
    try:  # as it will be written: also a read-only mount, or root on a closed folder
        fd, tmp = tempfile.mkstemp(prefix=".pbx-bridge-check.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise UsageError(f"--textfile {path}: cannot write in {folder}: "
                         f"{exc.strerror or exc}") from None


class TextfileError(UsageError):
    """--textfile could not be written (exit 2)."""


class Stopped(KeyboardInterrupt):
    """SIGTERM (systemctl stop, timeout(1)) or SIGHUP: handled as Ctrl-C is, so the call is
    hung up on the way out (exit 130)."""


def _stop(signum: int, frame: object) -> None:
    import signal
    for sig in (signal.SIGTERM, signal.SIGHUP):  # one is enough: let the hang-up finish
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signal.Signals(signum).name)


def run(args: argparse.Namespace) -> int:
    import signal
    import time
    from ..findings import Finding, Status
    from ..testcall.observation import Observation
    _check(args)
    started, t0 = time.time(), time.monotonic()
    obs = Observation("from-alexa" if args.from_alexa else "to-alexa", args.to,
                      args.endpoint or "alexa")
    saved = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return _run(args, obs, started, t0)
    except BaseException as exc:
        # a daily call that could not be placed or finished is a failed one in its metrics
        # (else the last success would stand): written if it can be
        if args.textfile and not isinstance(exc, TextfileError):
            if isinstance(exc, KeyboardInterrupt):
                why = Finding("test_call.run", Status.FAIL, "the test call was interrupted ("
                              f"{exc.args[0] if exc.args else 'SIGINT'})")
            elif isinstance(exc, PbxBridgeError):
                why = Finding(exc.finding_id if isinstance(exc, NoAmi) else "test_call.run",
                              Status.FAIL, str(exc))
            else:
                why = Finding("test_call.run", Status.ERROR, f"internal error: "
                              f"{type(exc).__name__}: {exc}")
            try:
                _write_metrics(args.textfile, obs, [why], started, time.monotonic() - t0,
                               args.min_mos)
            except (TextfileError, ValueError):
                pass
        raise
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _run(args: argparse.Namespace, obs: "Observation", started: float, t0: float) -> int:
    from ..asterisk.ami import AmiClient, AmiError
    from ..findings import Finding, Status
    from ..rooms import routes
    from ..asterisk.cli import show_fields
    from ..settings import load
    from ..testcall.call import Caller
    from ..testcall.diagnose import diagnose, report
    from ..testcall.quality import Limits
    limits = Limits(args.max_loss, args.max_jitter, args.max_rtt, args.min_mos)
    settings = load(args.config)
    try:
        table = routes.load(settings.state_dir)
        obs.endpoint = args.endpoint or table.endpoint
        obs.mapped = args.to in table.rooms
    except PermissionError as exc:  # not "none published": it is there, closed to us
        from ..statedir import read_error
        obs.routes_note = read_error(settings.state_dir / routes.ROUTES_NAME, exc,
                                     "the published routes", settings.state_dir).reason
        obs.mapped = False
    except (OSError, ValueError) as exc:
        obs.routes_note = f"no routes published in {settings.state_dir} ({exc})"
        obs.mapped = False
    if settings.ami is None:
        raise NoAmi("test-call needs the [ami] settings (host, port, username, secret) in "
                    f"{settings.source}; or PBX_BRIDGE_AMI_SECRET for the secret",
                    "ami.settings")
    host, port, user, secret = settings.ami
    ami = AmiClient(host, port, user, secret, timeout=15.0, events="on")
    try:
        ami.connect()
    except AmiError as exc:
        finding = Finding("ami.connect", Status.FAIL, str(exc), {"host": host, "port": port,
                          "username": user}, settings.source,
                          f"check [ami] host, port, username and secret in {settings.source} "
                          "and that manager.conf enables AMI for that user")
        return _finish(args, obs, [finding], started, t0, 2)
    caller = Caller(ami)
    try:
        fields = caller.endpoint(obs)
        if obs.endpoint_loaded:
            if args.from_alexa:
                caller.reach(obs, args.ring, args.timeout)
            else:
                transport = show_fields(caller.cli(
                    f"pjsip show transport {fields.get('transport', '')}"))
                caller.call_room(obs, args.direct, args.hold, args.timeout,
                                 transport.get("ca_list_file") or None, ami.local,
                                 args.from_context)
    except AmiError as exc:
        raise NoAmi(f"AMI at {host}:{port} failed during the test call: {exc}",
                    "ami.session") from None
    finally:
        import signal
        for sig in (signal.SIGTERM, signal.SIGHUP):  # not now: let the hang-up finish
            signal.signal(sig, signal.SIG_IGN)
        caller.hang_up_all()  # also on Ctrl-C, SIGTERM, SIGHUP: never leave a channel up
        ami.close()
    findings = diagnose(obs, limits)
    return _finish(args, obs, findings, started, t0, 0 if report(obs, findings)["ok"] else 1)


def _finish(args: argparse.Namespace, obs: "Observation", findings: "list[Finding]",
            started: float, t0: float, code: int) -> int:
    """Write the metrics (--textfile), then show the result, also when they could not be
    written (and then exit 2, saying why)."""
    import time
    failed = None
    if args.textfile:
        try:
            _write_metrics(args.textfile, obs, findings, started, time.monotonic() - t0,
                           args.min_mos)
        except TextfileError as exc:
            failed = exc
    _show(args, obs, findings)
    if failed is not None:
        raise failed
    return code


def _write_metrics(path: str, obs: "Observation", findings: "list[Finding]", started: float,
                   duration: float, min_mos: float) -> None:
    from prometheus_client import write_to_textfile
    from ..testcall.metrics import registry
    try:
        write_to_textfile(path, registry(obs, findings, started, duration, min_mos))
    except OSError as exc:
        raise TextfileError(f"--textfile {path}: cannot write: {exc.strerror or exc}"
                            ) from None


def _show(args: argparse.Namespace, obs: "Observation", findings: "list[Finding]") -> None:
    from ..preflight.render import render_text
    from ..testcall.diagnose import report
    doc = report(obs, findings)
    if args.format == "json":
        import json
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    verdicts = ("the call works", "the call FAILED")
    if obs.direction == "from-alexa" and not getattr(args, "ring", False):
        # no call was placed: say what was checked, not "not answered"
        head = (f"test call from-alexa {obs.to}: the running dialplan checked, no call placed "
                "(--ring rings the phone)")
        verdicts = (f"a call from Alexa to {obs.to} would be delivered",
                    f"a call from Alexa to {obs.to} would NOT be delivered")
    else:
        head = f"test call {obs.direction} {obs.to}: " + ("answered" if obs.answered else
                                                          "not answered")
    if doc["sip"]["code"]:
        head += f", SIP {doc['sip']['code']} {doc['sip']['reason'] or ''}".rstrip()
    if obs.answered and obs.direction == "to-alexa":
        yes = {True: "yes", False: "NO", None: "?"}
        head += f", TLS {yes[obs.tls]}, SRTP {yes[obs.srtp]}, codec {obs.codec or '?'}"
        if doc["rtp"]:
            head += f", RTP {doc['rtp']['sent']} sent / {doc['rtp']['received']} received"
    lines = [head]
    timing = doc["timing"]
    if timing["pdd_ms"] is not None:
        lines.append(f"post-dial delay {timing['pdd_ms']:.0f} ms" + (
            f", answered after {timing['answer_ms']:.0f} ms"
            if timing["answer_ms"] is not None else ""))
    q = doc["quality"]
    if q:
        for name, said in (("to_amazon", "to Amazon:  "), ("from_amazon", "from Amazon:")):
            leg = q[name]
            lines.append(f"{said} {_n(leg['sent'])} sent, {_n(leg['received'])} received, "
                         f"{_n(leg['loss_pct'])} % lost, jitter {_n(leg['jitter_ms'])} ms, "
                         f"RTT {_n(leg['rtt_ms'])} ms, MES {_n(leg['mes'])}, "
                         f"MOS {_n(leg['mos'])} (estimate)")
    sys.stdout.write("\n".join(lines) + "\n" + render_text(
        findings, use_colour(sys.stdout), verdicts) + "\n")


def _n(v: object) -> str:
    return "?" if v is None else str(v)
