"""SRTP on a port range: ``srtp.module``, ``srtp.endpoint``, ``rtp.range``.

Each check is a pure function of a :class:`~.snapshot.Snapshot`; :mod:`.checks` registers
them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from ..asterisk.conf import Setting, Where
from ..findings import Finding, Status
from .fixes import edit_fix as _edit_fix, skip as _skip, where_text as _w
from .snapshot import Snapshot, Unknown


def _module_name(value: str) -> str:
    v = value.strip().lower()
    return v[:-3] if v.endswith(".so") else v


def check_srtp_module(snap: Snapshot) -> Finding:
    id_ = "srtp.module"
    m = snap.modules
    if not m.found:
        return Finding(id_, Status.PASS, "no modules.conf: Asterisk autoloads every module, "
                       "res_srtp included", {"modules_conf": m.path})
    settings = [s for sec in m.named("modules") for s in sec.settings]
    noload = [s for s in settings if s.key.lower() == "noload" and
              _module_name(s.value) == "res_srtp"]
    ev: dict[str, Any] = {"modules_conf": m.path}
    if noload:
        return Finding(id_, Status.FAIL, "modules.conf disables res_srtp (noload)", ev,
                       _w(noload[0].where), f"delete the line at {noload[0].where} "
                       f"('{noload[0].key} => {noload[0].value}'), then restart Asterisk")
    autoload = [s for s in settings if s.key.lower() == "autoload"]
    loads = [s for s in settings if s.key.lower() in ("load", "preload", "require",
                                                      "preload-require")
             and _module_name(s.value) == "res_srtp"]
    if autoload and autoload[-1].value.lower() in ("no", "false", "0") and not loads:
        return Finding(id_, Status.FAIL, "autoload=no and res_srtp is not loaded", ev,
                       _w(autoload[-1].where), "add to [modules] in modules.conf:\n"
                       "load => res_srtp.so")
    return Finding(id_, Status.PASS, "res_srtp is not disabled", ev,
                   _w(loads[0].where) if loads else None)


def check_srtp_endpoint(snap: Snapshot) -> Finding:
    id_ = "srtp.endpoint"
    e = snap.endpoint
    if isinstance(e, Unknown):
        return _skip(id_, e.reason)
    sec = e.value
    enc: Setting | None = sec.get("media_encryption")
    opt = sec.get("media_encryption_optimistic")
    ev = {"endpoint": sec.name, "chosen_by": e.source,
          "media_encryption": enc.value if enc else None,
          "media_encryption_optimistic": opt.value if opt else None}
    fix = _edit_fix(snap, sec, ["media_encryption=sdes", "media_encryption_optimistic=no"])
    if enc is None or enc.value.lower() != "sdes":
        return Finding(id_, Status.FAIL, f"endpoint {sec.name} has media_encryption="
                       f"{enc.value if enc else '(unset: no)'}, not sdes", ev,
                       _w(enc.where if enc else sec.where), fix)
    if opt is not None and opt.value.lower() in ("yes", "true", "1", "on"):
        return Finding(id_, Status.FAIL, f"endpoint {sec.name} allows unencrypted media "
                       "(media_encryption_optimistic=yes)", ev, _w(opt.where), fix)
    return Finding(id_, Status.PASS, f"endpoint {sec.name} requires SDES-SRTP", ev,
                   _w(enc.where))


@dataclass(frozen=True)
class RtpRange:
    start: int
    end: int
    where: Where | None


def rtp_range(snap: Snapshot) -> Union[RtpRange, str]:
    """The range Asterisk uses, or why it is not valid. Asterisk 22.10.1 takes the *first*
    rtpstart and rtpend of the first [general] (with what ``[general](+)`` adds to it, after
    its own lines), and ignores any later [general] (tests/test_real_asterisk.py shows it): so
    on FreePBX, rtp_additional.conf's range wins over anything in rtp_custom.conf."""
    if not snap.rtp.found:
        return f"rtp.conf not found in {snap.options.asterisk_dir}"
    general = snap.rtp.named("general")
    if not general:
        return "rtp.conf has no [general] section"
    sec = general[0]
    got = {}
    for key in ("rtpstart", "rtpend"):
        s = next((x for x in sec.settings if x.key.lower() == key), None)
        if s is None:
            return f"rtp.conf [general] does not set {key}"
        if not s.value.isdigit():
            return f"{key}={s.value!r} at {s.where} is not a number"
        got[key] = (int(s.value), s.where)
    (start, ws), (end, _) = got["rtpstart"], got["rtpend"]
    if not 1024 <= start < end <= 65535:
        return f"rtpstart={start}, rtpend={end} at {ws} is not a range within 1024..65535"
    return RtpRange(start, end, ws)


FREEPBX_RTP_FIX = ("set it in FreePBX: Settings > Asterisk SIP Settings > RTP Port Ranges "
                   "(FreePBX writes it to rtp_additional.conf on 'fwconsole reload'; a range "
                   "in rtp_custom.conf is never used: Asterisk takes the first)")


def check_rtp_range(snap: Snapshot) -> Finding:
    id_ = "rtp.range"
    r = rtp_range(snap)
    fix = (FREEPBX_RTP_FIX if snap.freepbx else "in rtp.conf's first [general], set:\n"
           "rtpstart=10000\nrtpend=20000")
    if isinstance(r, str):
        general = snap.rtp.named("general")
        return Finding(id_, Status.FAIL, r, {"rtp_conf": snap.rtp.path},
                       _w(general[0].where) if general else None, fix)
    ev = {"rtpstart": r.start, "rtpend": r.end}
    if snap.running_rtp is not None and snap.running_rtp != (r.start, r.end):
        a, b = snap.running_rtp
        return Finding(id_, Status.WARN, f"the running Asterisk uses RTP ports {a}-{b}, the "
                       f"config says {r.start}-{r.end}: the firewall checks judge {a}-{b}",
                       {**ev, "running": [a, b]}, _w(r.where),
                       "asterisk -rx 'module reload res_rtp_asterisk.so' (then run again)")
    return Finding(id_, Status.PASS, f"RTP ports {r.start}-{r.end} ({r.end - r.start + 1} ports)"
                   + (", as the running Asterisk uses" if snap.running_rtp else ""), ev,
                   _w(r.where))
