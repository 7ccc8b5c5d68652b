"""The room map file: CSV with a header ``extension,room,comms_profile_id``. Every row is
checked and all problems are reported together, with line numbers, before anything is sent."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import PbxBridgeError

HEADER = ("extension", "room", "comms_profile_id")
_EXT = re.compile(r"^[0-9]{1,15}$")


@dataclass(frozen=True)
class Room:
    line: int
    extension: str
    room: str
    profile_id: str  # may be "" until looked up by room name


class MapErrors(PbxBridgeError):
    exit_code = 2

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__(f"{path}: {len(problems)} problem(s), nothing sent:\n  "
                         + "\n  ".join(problems))
        self.problems = problems


def read(path: Path) -> list[Room]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise MapErrors(str(path), ["the file does not exist"]) from None
    except IsADirectoryError:
        raise MapErrors(str(path), ["is a directory"]) from None
    except OSError as exc:
        raise MapErrors(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    return parse(decode(raw), str(path))


def decode(raw: bytes) -> str:
    """UTF-8 (with or without the BOM Excel writes for "CSV UTF-8"), else Windows-1252, what
    Excel writes for plain "CSV" on Western Windows (its curly quotes and dashes are C1 bytes
    in Latin-1, which is how they used to reach the front desk's caller-ID as garbage)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined
        return raw.decode("latin-1")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def parse(text: str, name: str) -> list[Room]:
    problems: list[str] = []
    rows: list[Room] = []
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise MapErrors(name, [f"line 1: {exc}"]) from None
    if header is None or tuple(h.strip().lower() for h in header) != HEADER:
        first = text.split("\n", 1)[0]
        hint = ""
        if first.count(";") >= 2 and "," not in first:
            hint = (" (this file is separated by ';', as Excel writes CSV where the decimal "
                    "mark is a comma: save it with ',' separators, or replace ';' by ',')")
        raise MapErrors(name, [f"line 1: the header must be {','.join(HEADER)}{hint}"])
    seen_ext: dict[str, int] = {}
    seen_profile: dict[str, int] = {}
    last_end = reader.line_num
    try:
        for fields in reader:
            line = last_end + 1  # where the row starts (a quoted field may span lines)
            last_end = reader.line_num
            if not any(f.strip() for f in fields):
                continue
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
        raise MapErrors(name, problems)
    return rows


def write(rows: list[tuple[str, str, str]]) -> str:
    """The CSV text; files written for Excel carry a UTF-8 BOM (see :data:`BOM`)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(rows)
    return out.getvalue()


BOM = "\ufeff"  # so that Excel opens the file as UTF-8, not the system code page
