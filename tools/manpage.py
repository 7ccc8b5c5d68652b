"""pbx-bridge(1), in roff, from the command line's own argparse parsers (``cli.build_parser``):
every command and sub-command with its usage, help and options, so the page never disagrees
with ``--help``. The Debian build runs it (debian/rules); nothing else needs it.

Run: python3 tools/manpage.py [--out FILE]   (the checkout on sys.path; no extra module)
Its date is SOURCE_DATE_EPOCH's (set by dpkg-buildpackage from debian/changelog), so the
page is reproducible.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FILES = (
    ("/etc/pbx-bridge/pbx-bridge.toml", "the settings (credentials; mode 0600, root): "
     "written by \\fBpbx\\-bridge config init\\fR; \\fB\\-\\-config\\fR or "
     "\\fBPBX_BRIDGE_CONFIG\\fR name another"),
    ("/var/lib/pbx-bridge/", "the state dir (0711 root): token cache, the local room "
     "database, backups of the Asterisk files \\fBgenerate\\fR changed, and "
     "\\fBroutes.json\\fR, the one file the AGI reads"),
    ("/var/lib/asterisk/agi-bin/pbx-bridge", "the link the dialplan's process AGI runs"),
    ("/usr/share/doc/pbx-bridge/", "the README, the example hosts and the dialplan "
     "(\\fBexamples/\\fR)"),
)
ENVIRONMENT = (
    ("PBX_BRIDGE_CONFIG", "the settings file to read instead of the default"),
    ("PBX_BRIDGE_STATE_DIR", "the state dir to use instead of the default"),
    ("PBX_BRIDGE_LOG_FORMAT", "\\fBjson\\fR: log lines as JSON objects (as "
     "\\fB\\-\\-log\\-format json\\fR)"),
    ("NO_COLOR", "set: no colour, even on a terminal"),
    ("PBX_BRIDGE_DEBUG", "set: an internal error shows its traceback"),
)
EXIT_STATUS = (
    ("0", "success (preflight: ready for Amazon)"),
    ("1", "a check or the operation failed"),
    ("2", "bad usage or unreadable input"),
    ("130", "interrupted (Ctrl\\-C)"),
)


def esc(text: str) -> str:
    """Text as roff shows it literally: backslashes doubled, a leading dot or quote guarded."""
    text = text.replace("\\", "\\e")
    lines = []
    for line in text.splitlines() or [""]:
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def opt(text: str) -> str:
    """An option or command name: its hyphens are minus signs (so the page can be searched
    and copied)."""
    return esc(text).replace("-", "\\-")


def subparsers(p: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each sub-command, in the order ``--help`` lists them."""
    out = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            seen: set[int] = set()
            for name, sp in action.choices.items():
                if id(sp) not in seen:
                    seen.add(id(sp))
                    out.append((name, helps.get(name, ""), sp))
    return out


def options(p: argparse.ArgumentParser) -> list[str]:
    fmt = p._get_formatter()
    out = []
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction) or a.help == argparse.SUPPRESS:
            continue
        if a.option_strings:
            meta = "" if a.nargs == 0 else " " + fmt._format_args(a, a.dest.upper())
            head = ", ".join(f"\\fB{opt(s)}\\fR" for s in a.option_strings) + \
                (f"\\fI{esc(meta)}\\fR" if meta else "")
        else:
            head = f"\\fI{esc(fmt._metavar_formatter(a, a.dest)(1)[0])}\\fR"
        text = fmt._expand_help(a) if a.help else ""
        out += [".TP", head, esc(" ".join(text.split()))]
    return out


def usage(p: argparse.ArgumentParser) -> list[str]:
    text = p.format_usage().removeprefix("usage: ").rstrip()
    return [".PP", ".nf", esc(text), ".fi"]


def section(path: str, help_: str, p: argparse.ArgumentParser) -> list[str]:
    out = [f'.SS "{opt(path)}"']
    if help_:
        out += [esc(help_[:1].upper() + help_[1:] + ("" if help_.endswith(".") else "."))]
    out += usage(p)
    if p.description and p.description != help_:
        out += [".PP", esc(" ".join(p.description.split()))]
    out += options(p)
    for name, sub_help, sp in subparsers(p):
        out += section(f"{path} {name}", sub_help, sp)
    return out


def page() -> str:
    os.environ["COLUMNS"] = "80"  # usage lines wrapped as on a terminal of 80 columns
    sys.path.insert(0, str(ROOT))
    from pbx_bridge import __version__
    from pbx_bridge.cli import build_parser
    parser = build_parser()
    when = dt.datetime.fromtimestamp(int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or
                                     dt.datetime.now().timestamp(), dt.timezone.utc)
    out = [f'.TH PBX\\-BRIDGE 1 "{when:%Y-%m-%d}" "pbx\\-bridge {__version__}" '
           '"User Commands"',
           ".SH NAME", "pbx\\-bridge \\- link an Asterisk or FreePBX phone system to Alexa "
           "Smart Properties",
           ".SH SYNOPSIS"] + usage(parser)[1:] + [
           ".SH DESCRIPTION", esc(" ".join((parser.description or "").split())),
           ".PP", "Each command below has its own \\fB\\-\\-help\\fR. Options are never "
           "abbreviated; paths may be relative (each is made absolute once).",
           ".SH OPTIONS"] + options(parser) + [".SH COMMANDS"]
    for name, help_, sp in subparsers(parser):
        out += section(f"pbx-bridge {name}", help_, sp)
    for title, rows in (("ENVIRONMENT", ENVIRONMENT), ("FILES", FILES),
                        ("EXIT STATUS", EXIT_STATUS)):
        out.append(f".SH {title}")
        for head, text in rows:
            out += [".TP", f"\\fB{opt(head)}\\fR", text]
    out += [".SH SEE ALSO", "\\fBasterisk\\fR(8), \\fBcertbot\\fR(1), "
            "/usr/share/doc/pbx\\-bridge/README.md.gz"]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the page here (default: standard output)")
    args = ap.parse_args()
    text = page()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
