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
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return parse(text, str(path))


def parse(text: str, name: str) -> list[Room]:
    problems: list[str] = []
    rows: list[Room] = []
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise MapErrors(name, [f"line 1: {exc}"]) from None
    if header is None or tuple(h.strip().lower() for h in header) != HEADER:
        raise MapErrors(name, [f"line 1: the header must be {','.join(HEADER)}"])
    seen_ext: dict[str, int] = {}
    seen_profile: dict[str, int] = {}
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != 3:
                problems.append(f"line {line}: expected 3 fields, got {len(fields)}")
                continue
            ext, room, pid = (f.strip() for f in fields)
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
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(rows)
    return out.getvalue()
