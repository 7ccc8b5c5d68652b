"""The room map file: CSV with a header ``extension,room,comms_profile_id``. Every row is
checked and all problems are reported together, with line numbers, before anything is sent.

Read in bounded memory, whatever the file: at most :data:`MAX_BYTES` and :data:`MAX_ROWS`,
streamed line by line (no line longer than :data:`MAX_LINE`), a file with NUL bytes refused
as not a map, at most :data:`MAX_PROBLEMS` problems kept (the rest counted)."""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from ..errors import PbxBridgeError

HEADER = ("extension", "room", "comms_profile_id")
MAX_BYTES = 10 * 1024 * 1024  # a 50,000-room map is about 5 MB
MAX_ROWS = 60_000  # the largest hotels have under 10,000 rooms
MAX_LINE = 64 * 1024  # characters; a row is well under 1 KB
MAX_PROBLEMS = 100
_CHUNK = 1 << 20
_EXT = re.compile(r"^[0-9]{1,15}$")


@dataclass(frozen=True, slots=True)  # one per room: 100,000 of them fit
class Room:
    line: int
    extension: str
    room: str
    profile_id: str  # may be "" until looked up by room name


class MapErrors(PbxBridgeError):
    exit_code = 2

    def __init__(self, path: str, problems: list[str], more: int = 0) -> None:
        if len(problems) == 1 and not more:
            super().__init__(f"{path}: {problems[0]}; nothing sent")
        else:
            tail = f"\n  and {more} more" if more else ""
            super().__init__(f"{path}: {len(problems) + more} problem(s), nothing sent:\n  "
                             + "\n  ".join(problems) + tail)
        self.problems = problems
        self.more = more


def _not_a_map(path: Path, why: str) -> MapErrors:
    return MapErrors(str(path), [f"{why}: not a CSV room map ({','.join(HEADER)})"])


def read(path: Path) -> list[Room]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise MapErrors(str(path), ["the file does not exist"]) from None
    except IsADirectoryError:
        raise MapErrors(str(path), ["is a directory"]) from None
    except OSError as exc:
        raise MapErrors(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    with f:
        try:
            st = os.fstat(f.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise MapErrors(str(path), ["is a directory"])
            if stat.S_ISREG(st.st_mode) and st.st_size > MAX_BYTES:
                raise MapErrors(str(path), [
                    f"the file is {st.st_size / 2**20:.0f} MB; a room map is at most "
                    f"{MAX_BYTES // 2**20} MB ({MAX_ROWS:,} rows)"])
            src: BinaryIO = f
            if not stat.S_ISREG(st.st_mode) or not f.seekable():  # a pipe: read it, bounded
                data = f.read(MAX_BYTES + 1)
                if len(data) > MAX_BYTES:
                    raise MapErrors(str(path), [f"more than {MAX_BYTES // 2**20} MB; a room "
                                                f"map is at most that ({MAX_ROWS:,} rows)"])
                src = io.BytesIO(data)
            encoding = _encoding(src, path)
            src.seek(0)
            text = io.TextIOWrapper(src, encoding=encoding, newline="")
            return parse(_lines(text, path), str(path))
        except OSError as exc:
            raise MapErrors(str(path), [f"cannot read: {exc.strerror or exc}"]) from None


def _encoding(f: BinaryIO, path: Path) -> str:
    """What :func:`decode` would pick, found by streaming the file (nothing kept): UTF-16 when
    it starts with its BOM (Excel's "Unicode Text", Notepad's "Unicode"), else UTF-8 (with or
    without BOM), else Windows-1252, else Latin-1. A NUL byte is no text."""
    start = f.read(2)
    f.seek(0)
    if start in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "utf-16"
    decoders = {enc: codecs.getincrementaldecoder(enc)() for enc in ("utf-8-sig", "cp1252")}
    offset = 0
    while True:
        chunk = f.read(_CHUNK)
        final = not chunk
        nul = chunk.find(b"\0")
        if nul >= 0:
            raise _not_a_map(path, f"it holds NUL bytes (the first at byte {offset + nul}), "
                             "as binary files do")
        for enc, dec in list(decoders.items()):
            try:
                dec.decode(chunk, final)
            except UnicodeDecodeError:
                del decoders[enc]
        if final:
            return next(iter(decoders), "latin-1")
        offset += len(chunk)


def _lines(text: io.TextIOWrapper, path: Path) -> Iterator[str]:
    n = 0
    while True:
        line = text.readline(MAX_LINE)
        if not line:
            return
        n += 1
        if len(line) >= MAX_LINE and not line.endswith(("\n", "\r")):
            raise _not_a_map(path, f"line {n} is longer than {MAX_LINE} characters")
        yield line


def decode(raw: bytes) -> str:
    """UTF-8 (with or without the BOM Excel writes for "CSV UTF-8"), else Windows-1252, what
    Excel writes for plain "CSV" on Western Windows (its curly quotes and dashes are C1 bytes
    in Latin-1, which is how they used to reach the front desk's caller-ID as garbage);
    UTF-16 when it starts with its BOM."""
    if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined
        return raw.decode("latin-1")


# Control characters, and the bidirectional embeddings, overrides and isolates (and invisible
# U+200B, U+FEFF) that reorder or hide what a phone shows as caller-ID: "\u202eRoom" could
# spoof another name. Marks scripts need (LRM, RLM, ZWJ, ZWNJ) stay allowed.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200b\ufeff]")


class _Problems(list[str]):
    """The first :data:`MAX_PROBLEMS`; the rest only counted."""
    more = 0

    def append(self, problem: str) -> None:
        if len(self) < MAX_PROBLEMS:
            super().append(problem)
        else:
            self.more += 1


def parse(text: "str | Iterable[str]", name: str) -> list[Room]:
    """The rows of a map given as text or as lines (with their line ends)."""
    problems = _Problems()
    rows: list[Room] = []
    reader = csv.reader(io.StringIO(text) if isinstance(text, str) else text)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise MapErrors(name, [f"line 1: {exc}"]) from None
    if header is None or tuple(h.strip().lower() for h in header) != HEADER:
        first = ",".join(header or [])
        hint = ""
        if first.count(";") >= 2 and "," not in first:
            hint = (" (this file is separated by ';', as Excel writes CSV where the decimal "
                    "mark is a comma: save it with ',' separators, or replace ';' by ',')")
        elif first.count("\t") >= 2 and "," not in first:
            hint = (" (this file is separated by tabs, as Excel's \"Unicode Text\" is: save it "
                    "as \"CSV UTF-8 (Comma delimited)\")")
        raise MapErrors(name, [f"line 1: the header must be {','.join(HEADER)}{hint}"])
    seen_ext: dict[str, int] = {}
    seen_profile: dict[str, int] = {}
    last_end = reader.line_num
    records = 0  # rows with anything in them, good or bad: bounded too
    try:
        for fields in reader:
            line = last_end + 1  # where the row starts (a quoted field may span lines)
            last_end = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            records += 1
            if records > MAX_ROWS:
                raise MapErrors(name, [f"line {line}: more than {MAX_ROWS:,} rows, more "
                                       "than any property has rooms"])
            if len(fields) != 3:
                problems.append(f"line {line}: expected 3 fields, got {len(fields)}")
                continue
            ext, room, pid = (f.strip() for f in fields)
            bad = _CONTROL.search(room)
            if bad:
                problems.append(f"line {line}: room {room!r} holds a control character "
                                f"(U+{ord(bad.group()):04X}); room names go to caller-ID "
                                "as they are")
                continue
            if not _EXT.match(ext):
                problems.append(f"line {line}: extension {ext!r} must be 1 to 15 digits")
            elif ext in seen_ext:
                problems.append(f"line {line}: extension {ext} is already on line "
                                f"{seen_ext[ext]}")
            else:
                seen_ext[ext] = line
            if pid:
                if not pid.startswith("amzn1.") or any(c.isspace() for c in pid):
                    problems.append(f"line {line}: comms_profile_id {pid!r} is not an amzn1. id")
                elif pid in seen_profile:
                    problems.append(f"line {line}: comms_profile_id is already used on line "
                                    f"{seen_profile[pid]}")
                else:
                    seen_profile[pid] = line
            if not pid and not room:
                problems.append(f"line {line}: neither room nor comms_profile_id")
            rows.append(Room(line, ext, room, pid))
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: {exc}")
    if problems:
        raise MapErrors(name, list(problems), problems.more)
    return rows


def write(rows: list[tuple[str, str, str]]) -> str:
    """The CSV text; files written for Excel carry a UTF-8 BOM (see :data:`BOM`)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(rows)
    return out.getvalue()


BOM = "\ufeff"  # so that Excel opens the file as UTF-8, not the system code page
