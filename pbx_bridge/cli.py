"""The ``pbx-bridge`` command: parses arguments, runs one command, and is the one place that
turns errors into exit codes and one-line messages."""

from __future__ import annotations

import gc
import os
import sys

from . import __version__
from .errors import PbxBridgeError

TYPE_CHECKING = False
if TYPE_CHECKING:  # argparse and the commands are imported only when a command needs them:
    import argparse  # process AGI and --version start in a few milliseconds


def _command_word(argv: list[str]) -> str | None:
    """The command the arguments name (skipping the top-level options), if any."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--log-format":
            i += 2
            continue
        if not word.startswith("-"):
            return word
        i += 1
    return None


def build_parser(argv: list[str] | None = None) -> "argparse.ArgumentParser":
    """The whole parser; given ``argv``, only the command it names is built in full (the
    others are listed by name and help, without importing their modules)."""
    import importlib

    from .commands import HELPS, MODULES
    from .commands.parser import Parser
    parser = Parser(prog="pbx-bridge", description="Link an Asterisk/FreePBX PBX to Alexa "
                    "Smart Properties: check the host, generate config, manage the trunk.")
    parser.add_argument("--version", action="version", version=f"pbx-bridge {__version__}")
    parser.add_argument("--log-format", choices=("text", "json"), default=None,
                        help="log lines on standard error as text (default) or JSON lines "
                        "(also $PBX_BRIDGE_LOG_FORMAT)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    word = _command_word(argv) if argv is not None else None
    full = argv is None
    done: set[str] = set()
    for name, help_ in HELPS.items():
        module = MODULES[name]
        if name in done:
            continue
        if full or module == MODULES.get(word or ""):
            mod = importlib.import_module(module)
            (getattr(mod, "add_parsers", None) or mod.add_parser)(sub)
            done.update(n for n, m in MODULES.items() if m == module)  # agi adds fastagi
        else:  # only listed: the arguments do not name it, so nothing parses with it
            sub.add_parser(name, help=help_, add_help=False)
    return parser


# Every option that names a file or folder: made absolute here, once, so that nothing later
# depends on the working directory (a path written into an Asterisk file, a backup manifest).
PATH_OPTIONS = ("asterisk_dir", "cert", "key", "ca_list", "map", "config", "state_dir",
                "firewall_rules", "state", "rooms", "out", "cert_chain", "textfile", "lineage")


def resolve_paths(args: "argparse.Namespace") -> None:
    from .defaults import absolute
    for name in PATH_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value:
            setattr(args, name, absolute(value))


def _pipe_closed() -> int:
    """Standard output was closed by its reader (``| head``): end quietly, and let no
    "Exception ignored" appear when Python flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C while the parser was still being built
        sys.stderr.write("pbx-bridge: interrupted\n")
        return 130


def _main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:
        sys.stdout.write(f"pbx-bridge {__version__}\n")
        return 0
    if argv[:1] == ["agi"]:  # process AGI: on every call, so no argparse
        from .commands.agi import agi_fast
        fast = agi_fast(argv[1:])
        if fast is not None:
            return fast
    parser = build_parser(argv)
    try:
        args, extra = parser.parse_known_args(argv)
    except BrokenPipeError:  # --help piped into head
        return _pipe_closed()
    if extra:  # reported by the sub-command they were given to, with its usage
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    resolve_paths(args)
    from . import log
    log.configure(args.log_format)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    # What the imports made lives as long as the process: move it out of the cyclic
    # collector's way, so the collections a command's work triggers do not walk it again and
    # again (heap.tree_built does the same for a large tree a command reads).
    gc.freeze()
    try:
        return int(args.run(args))
    except PbxBridgeError as exc:
        log.clear_line()
        if log.current() == "json":  # the journal gets the error as a JSON line too
            log.event("error", "error", str(exc), exit_code=exc.exit_code)
        else:
            sys.stderr.write(f"pbx-bridge: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        log.clear_line()
        sys.stderr.write("pbx-bridge: interrupted\n")
        return 130
    except BrokenPipeError:  # output piped into head: it read what it wanted
        return _pipe_closed()
    except Exception as exc:  # a bug: one line, not a traceback (PBX_BRIDGE_DEBUG=1 shows it)
        if os.environ.get("PBX_BRIDGE_DEBUG"):
            raise
        sys.stderr.write(f"pbx-bridge: internal error: {type(exc).__name__}: {exc} "
                         "(run with PBX_BRIDGE_DEBUG=1 for details, and please report it)\n")
        return 1
    finally:
        gc.unfreeze()  # main() called again in one process (the tests) starts as it was


def entry() -> None:
    try:
        code = main()
    finally:  # what is still buffered (stdout a pipe; --help leaves by SystemExit) meets a
        try:  # reader that is gone: end quietly
            sys.stdout.flush()
        except BrokenPipeError:
            _pipe_closed()
    # The process ends now: spare the collection Python runs at exit a walk over every
    # object left (20-25 ms after a preflight on 5,000 endpoints). Files are all closed by
    # then: nothing is left for that collection to flush.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
