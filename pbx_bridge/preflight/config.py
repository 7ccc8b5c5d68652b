"""The ``asterisk.config`` check: whether Asterisk would load the config as read.

Each check is a pure function of a :class:`~.snapshot.Snapshot`; :mod:`.checks` registers
them."""

from __future__ import annotations


from ..asterisk.conf import Config
from ..findings import Finding, Status
from .fixes import where_text as _w
from .snapshot import Snapshot


def _configs(snap: Snapshot) -> tuple[Config, ...]:
    """The config files read, each with its includes: PJSIP, RTP, modules, the dialplan."""
    return (snap.pjsip, snap.rtp, snap.modules) + \
        ((snap.dialplan,) if snap.dialplan is not None and snap.dialplan.found else ())


def check_config(snap: Snapshot) -> Finding:
    id_ = "asterisk.config"
    if not snap.pjsip.found:
        why = snap.pjsip.problems[0].message if snap.pjsip.problems else \
            f"pjsip.conf not found in {snap.options.asterisk_dir}"
        return Finding(id_, Status.FAIL, why, {"asterisk_dir": str(snap.options.asterisk_dir)},
                       None, "point --asterisk-dir at the directory that holds pjsip.conf")
    problems = [p for c in _configs(snap) for p in c.problems]
    files = [s.path for c in _configs(snap) for s in c.sources]
    evidence = {
        "files_read": len(files),
        "lines": sum(c.line_count() for c in _configs(snap)),
        "freepbx": snap.freepbx,
        "problems": [{"severity": p.severity, "where": _w(p.where), "message": p.message}
                     for p in problems],
    }
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        first = errors[0]
        return Finding(id_, Status.FAIL,
                       f"{len(errors)} config error(s) Asterisk would not accept: {first.message}",
                       evidence, _w(first.where),
                       "fix each listed problem; a missing #include target must be created "
                       "(an empty file will do) or the line changed to #tryinclude")
    if problems:
        return Finding(id_, Status.WARN, f"config read with {len(problems)} warning(s): "
                       f"{problems[0].message}", evidence, _w(problems[0].where), None)
    return Finding(id_, Status.PASS, f"read {len(files)} file(s), {evidence['lines']} lines",
                   evidence)
