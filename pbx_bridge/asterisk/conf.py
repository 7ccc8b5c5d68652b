"""A reader for Asterisk ``.conf`` files: the real syntax, not an INI subset.

Handles repeated section names, templates ``[t](!)`` and ``[x](t1,t2)``, append ``[x](+)``,
``=`` and ``=>``, ``;`` and ``;-- ... --;`` comments, ``#include``/``#tryinclude`` (relative to
the config dir, with globs), ``#exec`` (reported, never run), include loops, CRLF and bytes that
are not UTF-8. Every section and setting remembers its file and line; syntax problems become
:class:`Problem` values, never exceptions, and the raw bytes of every file read are kept so that a
later edit can round-trip them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from ..host import FileSystem, NotRegularFile

Severity = Literal["error", "warning"]


# Where and Setting are NamedTuples, not dataclasses: a large FreePBX tree has hundreds of
# thousands of them, and tuple construction is several times cheaper.
class Where(NamedTuple):
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Setting(NamedTuple):
    key: str
    value: str
    file: str
    line: int
    arrow: bool = False  # written with ``=>``

    @property
    def where(self) -> Where:
        return Where(self.file, self.line)


@dataclass(frozen=True)
class Problem:
    severity: Severity
    message: str
    where: Where | None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class Section:
    """One ``[name]`` of a config: where its header is, its template flags, and its settings.

    A plain class with slots, not a dataclass: a large tree has one per PJSIP object, and
    each is made with as few objects as can be (the lists below are made when needed)."""

    __slots__ = ("name", "where", "is_template", "templates", "inherited", "_own", "_pending")

    def __init__(self, name: str, where: Where) -> None:
        self.name = name
        self.where = where
        self.is_template = False
        self.templates: tuple[str, ...] = ()
        self.inherited: tuple[Setting, ...] = ()  # copied from the templates, in order
        self._own: list[Setting] | None = None
        # runs of plain key=value lines not parsed yet: (text, file, first line); a large
        # tree's sections are mostly never looked into beyond their type, so they are
        # parsed on demand
        self._pending: tuple[tuple[str, str, int], ...] = ()

    def __repr__(self) -> str:
        return f"Section({self.name!r}, {self.where})"

    @property
    def own(self) -> list[Setting]:
        """The section's own settings, in file order."""
        if self._own is None:
            self._own = []
        if self._pending:
            for text, file, first in self._pending:
                self._own.extend(_block_settings(text, file, first))
            self._pending = ()
        return self._own

    @property
    def settings(self) -> list[Setting]:
        """Settings in effect order: those copied from templates, then the section's own."""
        return [*self.inherited, *self.own]

    def get(self, key: str) -> Setting | None:
        """The last setting for ``key`` (the one Asterisk's single-value options use)."""
        if self._pending and not self._own:  # look it up in the text, parsing nothing else
            for text, file, first in reversed(self._pending):
                found = _find_last(text, key, file, first)
                if found is not None:
                    return found
            for s in reversed(self.inherited):
                if s.key == key:
                    return s
            return None
        for s in reversed(self.own):
            if s.key == key:
                return s
        for s in reversed(self.inherited):
            if s.key == key:
                return s
        return None

    def value(self, key: str, default: str | None = None) -> str | None:
        s = self.get(key)
        return s.value if s is not None else default

    def get_all(self, key: str) -> list[Setting]:
        return [s for s in self.settings if s.key == key]


@dataclass(frozen=True)
class SourceFile:
    path: str
    raw: bytes
    encoding: str


@dataclass
class Config:
    """One Asterisk config file with everything it includes, flattened in load order."""

    name: str
    path: str
    found: bool
    sections: list[Section] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    sources: list[SourceFile] = field(default_factory=list)
    _types: dict[str, list[Section]] | None = field(default=None, repr=False, compare=False)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def named(self, name: str) -> list[Section]:
        return [s for s in self.sections if s.name == name]

    def of_type(self, type_: str) -> list[Section]:
        """Non-template sections whose ``type`` setting is ``type_`` (PJSIP's object types)."""
        if self._types is None:
            index: dict[str, list[Section]] = {}
            for s in self.sections:
                if s.is_template:
                    continue
                found = None
                if s._own is None and len(s._pending) == 1:  # one unparsed run: most
                    found = _run_type(s._pending[0][0])
                if found is None:
                    found = s.value("type") or ""
                index.setdefault(found.strip().lower(), []).append(s)
            self._types = index
        return self._types.get(type_, [])

    def line_count(self) -> int:
        return sum(src.raw.count(b"\n") + (1 if src.raw and not src.raw.endswith(b"\n") else 0)
                   for src in self.sources)


def _run_type(text: str) -> str | None:
    """The ``type`` of a section whose settings are the one run ``text``, not parsed yet,
    when the run's last line starting with "type" is a ``type=`` line (else None: ask
    :meth:`Section.value`). It is what value("type") gives, without making a Setting: a
    tree has one per PJSIP object."""
    at = text.rfind("\ntype")
    if at < 0:
        return None
    stop = text.find("\n", at + 5)
    rest = (text[at + 5:stop] if stop >= 0 else text[at + 5:]).lstrip()
    if rest[:1] != "=":
        return None
    return rest[2:] if rest[1:2] == ">" else rest[1:]


def _decode(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # Asterisk reads bytes; Latin-1 room names are common and every byte maps to a character.
        return raw.decode("latin-1"), "latin-1"


class _Reader:
    def __init__(self, fs: FileSystem, config: Config) -> None:
        self.fs = fs
        self.config = config
        self.current: Section | None = None
        self.stack: list[str] = []
        self.by_name: dict[str, list[Section]] = {}

    def problem(self, severity: Severity, message: str, where: Where | None) -> None:
        self.config.problems.append(Problem(severity, message, where))

    def read_file(self, path: Path, where: Where | None, required: bool) -> None:
        display = str(path)
        key = os.path.realpath(path)
        if key in self.stack:
            self.problem("error", f"include loop: {display} includes itself (not followed)", where)
            return
        try:
            if path.is_dir():
                self.problem("error", f"{display} is a directory, not a config file", where)
                return
            raw = self.fs.read_bytes(path)
        except FileNotFoundError:
            if required:
                self.problem(
                    "error",
                    f"{display} was listed as a #include but it does not exist; "
                    "Asterisk rejects the whole file",
                    where,
                )
            return
        except PermissionError:
            self.problem("error", f"{display} is not readable (permission denied)", where)
            return
        except NotRegularFile as exc:
            self.problem("error", f"{display} is a {exc.kind}, not a config file; not read "
                         "(Asterisk would block or read garbage)", where)
            return
        except OSError as exc:
            self.problem("error", f"{display} cannot be read: {exc.strerror or exc}", where)
            return
        text, encoding = _decode(raw)
        self.config.sources.append(SourceFile(display, raw, encoding))
        self.stack.append(key)
        try:
            self.parse_text(text, display)
        finally:
            self.stack.pop()

    def parse_text(self, text: str, display: str) -> None:
        """Runs of plain ``key=value`` lines are kept as text on their section, parsed when
        first needed (:attr:`Section.own`); every other line (headers, directives, comments,
        lines without '=') is read here, in order, by :meth:`parse_lines`; from a block comment
        left open on to the end of the file, every line is."""
        pos = 0
        line = 1
        for start in _special_starts(text):
            if start < pos:
                continue
            end = text.find("\n", start)
            if end < 0:
                end = len(text)
            if start > pos:
                block = text[pos:start]
                current = self.current
                if current is not None and "=" in block:  # the common case, inline
                    current._pending += ((block, display, line),)
                else:
                    self.settings_block(block, display, line)
                line += text.count("\n", pos, start)
            pos = end
            one = text[start:end]
            if one[:1] == "[" and ";" not in one:  # a header, as parse_lines would read it
                self.header(one.strip(), Where(display, line))
                continue
            depth = self.parse_lines(one, display, line, final=False)
            if depth:  # inside ;-- --; to the end of the file: line by line
                self.parse_lines(text[pos + 1:], display, line + 1, depth)
                return
        if pos < len(text):
            self.settings_block(text[pos:], display, line)

    def settings_block(self, block: str, display: str, first_line: int) -> None:
        """Lines that are each blank or ``key=value`` / ``key=>value``, without ';'."""
        current = self.current
        if current is None:  # settings outside any section: each is reported
            self.parse_lines(block, display, first_line)
        elif "=" in block:  # else only blank lines (every other line has an '=')
            current._pending += ((block, display, first_line),)

    def parse_lines(self, text: str, display: str, first_line: int, depth: int = 0,
                    final: bool = True) -> int:
        """Line by line from ``first_line``, inside ``depth`` block comments; returns the
        depth at the end (``final``: the file's end, where an open block is reported)."""
        lineno = first_line - 1
        for line in text.split("\n"):
            lineno += 1
            if depth or ";" in line:
                line, depth = _strip_comments(line, depth)
            line = line.strip()
            if not line:
                continue
            first = line[0]
            if first == "[":
                self.header(line, Where(display, lineno))
            elif first == "#":
                self.directive(line, Where(display, lineno))
            else:  # plain runs of settings never come here (settings_block keeps them)
                self.setting(line, Where(display, lineno))
        if depth and final:
            self.problem("warning", "block comment ';--' is never closed with '--;'",
                         Where(display, lineno))
        return depth

    def header(self, line: str, where: Where) -> None:
        close = line.find("]")
        if close == len(line) - 1 and "(" not in line:  # plain [name]: most of them
            section = Section(line[1:close].strip(), where)
            self.config.sections.append(section)
            by_name = self.by_name.get(section.name)
            if by_name is None:
                self.by_name[section.name] = [section]
            else:
                by_name.append(section)
            self.current = section
            return
        if close < 0:
            self.problem("error", f"section header without ']': {line!r}", where)
            self.current = Section("", where)  # its settings go nowhere
            return
        name = line[1:close].strip()
        rest = line[close + 1 :].strip()
        options: list[str] = []
        if rest:
            if rest.startswith("(") and rest.endswith(")"):
                options = [o.strip() for o in rest[1:-1].split(",") if o.strip()]
            else:
                self.problem("warning", f"text after section header ignored: {rest!r}", where)
        plus = next((o for o in options if o.startswith("+")), None)
        if plus is not None:
            # Asterisk adds to the *first* section of that name (config.c's
            # category_get_sep), or the first whose settings match "(+key=value&...)"
            wanted = [tuple(x.strip() for x in f.split("=", 1)) for f in plus[1:].split("&")
                      if "=" in f]
            targets = [s for s in self.by_name.get(name, [])
                       if all(s.value(k) == v for k, v in wanted)]
            if not targets:
                self.problem("error", f"[{name}]({plus}) appends to a section that does not "
                             "exist", where)
                self.current = Section(name, where)  # its settings go nowhere
                return
            self.current = targets[0]
            return
        section = Section(name, where)
        for opt in options:
            if opt == "!":
                section.is_template = True
                continue
            bases = self.by_name.get(opt)
            if not bases:
                self.problem("error", f"[{name}] inherits from [{opt}], which is not defined "
                             "before it", where)
                continue
            section.templates += (opt,)
            section.inherited += tuple(bases[-1].settings)
        self.config.sections.append(section)
        self.by_name.setdefault(name, []).append(section)
        self.current = section

    def directive(self, line: str, where: Where) -> None:
        word, _, arg = line[1:].partition(" ")
        if not arg:
            word, _, arg = line[1:].partition("\t")
        word = word.strip().lower()
        arg = arg.strip()
        if len(arg) >= 2 and arg[0] in "\"<" and arg[-1] in "\">":
            arg = arg[1:-1].strip()
        if word in ("exec", "tryexec"):
            self.problem("warning", f"#{word} {arg} is not run by pbx-bridge; settings it would "
                         "produce are not checked", where)
            return
        if word not in ("include", "tryinclude"):
            self.problem("warning", f"unknown directive #{word}", where)
            return
        if not arg:
            self.problem("error", f"#{word} without a file name", where)
            return
        required = word == "include"
        target = self.fs.host_path(arg)
        if any(c in arg for c in "*?["):
            matches = self.fs.glob(target)
            if not matches and required:
                self.problem("error", f"#include {arg} matches no file", where)
            for m in matches:
                self.read_file(m, where, required)
            return
        self.read_file(target, where, required)

    def setting(self, line: str, where: Where) -> None:
        eq = line.find("=")
        if eq < 0:
            self.problem("warning", f"no '=' in line, ignored: {line!r}", where)
            return
        if self.current is None:
            self.problem("error", f"setting outside any [section]: {line!r}", where)
            return
        self.current.own.append(_setting(line, eq, where.file, where.line))


# a line that is not a plain setting at its first column: one with a ';' (comments), leading
# whitespace (unless blank), a [header] or #directive, or text without '='
_NOT_PLAIN = re.compile(r"(?m)^(?:[^\n]*;[^\n]*|[^\S\n]+\S[^\n]*|[\[#][^\n]*|"
                        r"[^\s=\[#][^=\n]*)$")


def _byte_classes() -> bytes:
    """A translation table for :func:`_special_starts`: newline and '=' stay, whitespace
    becomes ' ', '[' and '#' become '#', every other character 'a'."""
    table = bytearray(b"a" * 256)
    for c in range(256):
        ch = chr(c)
        if ch in "\n=":
            table[c] = c
        elif ch.isspace():  # what str.strip() and the regex \s take as whitespace
            table[c] = 32
        elif ch in "[#":
            table[c] = 35
    return bytes(table)


_CLASSES = _byte_classes()
# after a newline, a line that is not blank and does not begin with key characters and '='
# (lines with ';' are found apart)
_MAYBE_SPECIAL = re.compile(rb"\n(?!a*=| *(?:\n|\Z))")


def _special_starts(text: str) -> list[int]:
    """Where the lines start that :data:`_NOT_PLAIN` matches, in order, and possibly a few
    more (a key with '[', '#' or a space in it), which :meth:`_Reader.parse_lines` reads as
    a run would be read.

    It scans a copy of the text with each character reduced to its class (one C pass, and a
    regex whose only repetition is of one byte) instead of trying :data:`_NOT_PLAIN` at every
    position, which is several times slower. A character past U+00FF has no one-byte class:
    such a text is scanned with :data:`_NOT_PLAIN` itself."""
    if text.isascii():
        raw = text.encode("ascii")
    else:
        try:
            raw = text.encode("latin-1")
        except UnicodeEncodeError:
            return [m.start() for m in _NOT_PLAIN.finditer(text)]
    classes = b"\n" + raw.translate(_CLASSES)  # index i + 1 is the character at i
    starts = [m.start() for m in _MAYBE_SPECIAL.finditer(classes)]
    semi = text.find(";")
    if semi < 0:
        return starts
    more = set(starts)
    while semi >= 0:  # each line with a ';' (comments)
        more.add(text.rfind("\n", 0, semi) + 1)
        end = text.find("\n", semi)
        semi = text.find(";", end) if end >= 0 else -1
    return sorted(more)


def _setting(line: str, eq: int, file: str, lineno: int) -> Setting:
    """A stripped ``key=value`` (or ``key=>value``) line whose first '=' is at ``eq``."""
    if line[eq + 1 : eq + 2] == ">":
        return Setting(line[:eq].rstrip(), line[eq + 2 :].lstrip(), file, lineno, True)
    return Setting(line[:eq].rstrip(), line[eq + 1 :].lstrip(), file, lineno)


def _block_settings(text: str, file: str, first: int) -> list[Setting]:
    """The settings of a run of plain lines, as the line-by-line reader makes them."""
    out = []
    lineno = first - 1
    for line in text.split("\n"):
        lineno += 1
        line = line.strip()
        if line:
            out.append(_setting(line, line.find("="), file, lineno))
    return out


def _find_last(text: str, key: str, file: str, first: int) -> Setting | None:
    """The last ``key=`` line of a run of plain lines, as :func:`_block_settings` would
    give it, found by string search without parsing the others. Every line of a run starts
    with its key (a line with leading whitespace is never put in a run)."""
    probe = "\n" + key
    end = len(text)
    while True:
        start = text.rfind(probe, 0, end) + 1  # 0: not found, or found at the run's start
        if not start and not text.startswith(key):
            return None
        stop = text.find("\n", start)
        line = (text[start:stop] if stop >= 0 else text[start:]).strip()
        eq = line.find("=")
        if eq >= 0 and line[:eq].rstrip() == key:
            return _setting(line, eq, file, first + text.count("\n", 0, start))
        if not start:
            return None
        end = start + len(key) - 1  # the next search ends before this line's newline


def _strip_comments(line: str, depth: int) -> tuple[str, int]:
    out: list[str] = []
    i = 0
    n = len(line)
    while i < n:
        if depth:
            close = line.find("--;", i)
            opener = line.find(";--", i)
            if opener >= 0 and (close < 0 or opener < close):
                depth += 1
                i = opener + 3
                continue
            if close < 0:
                return "".join(out), depth
            depth -= 1
            i = close + 3
            continue
        semi = line.find(";", i)
        if semi < 0:
            out.append(line[i:])
            break
        if semi > 0 and line[semi - 1] == "\\":
            out.append(line[i : semi - 1] + ";")
            i = semi + 1
            continue
        out.append(line[i:semi])
        if line.startswith(";--", semi):
            depth = 1
            i = semi + 3
            continue
        break
    return "".join(out), depth


def read_config(fs: FileSystem, name: str) -> Config:
    """Read ``name`` (e.g. ``pjsip.conf``) from the config dir with all it includes."""
    path = fs.host_path(name)
    config = Config(name=name, path=str(path), found=path.exists() and not path.is_dir())
    reader = _Reader(fs, config)
    if path.exists() or path.is_symlink():
        reader.read_file(path, None, True)
    return config
