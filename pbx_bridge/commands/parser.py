"""The argument parser pbx-bridge's commands are built with: strict, with defaults in help."""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# argparse asks gettext for each of its own strings; with no catalogue installed, every call
# searches the file system again (some 70 calls, a third of the time --help took). pbx-bridge
# speaks English, so argparse's strings are used as they are.
argparse._ = lambda message: message  # type: ignore[attr-defined]
_width: int | None = None


class Formatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the text already gives it. The
    terminal's width is asked once (argparse makes a formatter per option it adds)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        global _width
        if width is None:
            if _width is None:  # what shutil.get_terminal_size does, without importing shutil
                try:
                    columns = int(os.environ["COLUMNS"])
                except (KeyError, ValueError):
                    try:
                        columns = os.get_terminal_size(sys.stdout.fileno()).columns
                    except (AttributeError, ValueError, OSError):
                        columns = 80
                _width = max(columns - 2, 11)
            width = _width
        super().__init__(prog, indent_increment, max_help_position, width)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, argparse.SUPPRESS, [], ()) or \
                not action.option_strings or action.nargs == 0:
            return text
        shown = default if not isinstance(default, list) else " ".join(map(str, default))
        return f"{text} (default: {shown})"


class Parser(argparse.ArgumentParser):
    """No abbreviated options (``--wr`` is not ``--write``); errors show this (sub-)command's
    usage; help shows defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)
        self.set_defaults(_parser=self)  # the innermost parser chosen wins

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)
