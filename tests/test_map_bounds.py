"""A --map file is read in bounded memory (issue 20): 100 MB of NULs once took 716 MB. Each
case runs the CLI as a subprocess and reads its peak RSS from the kernel."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import PB_CMD, ROOT

LIMIT_MB = 100


def peak_mb(env, *args):
    """(result, peak RSS in MB, CPU seconds) of one ``pbx-bridge`` run. The peak of the
    children waited for so far only grows, so each run gets a fresh waiter process of its own.
    CPU time (user + system), not wall time: other work on the machine does not stretch it."""
    code = ("import resource, subprocess, sys; "
            "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(u.ru_maxrss, u.ru_utime + u.ru_stime); "
            "sys.stderr.write(r.stderr); sys.exit(r.returncode)")
    r = subprocess.run([sys.executable, "-c", code, *PB_CMD, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    kb, secs = r.stdout.split()
    return r, int(kb) / 1024, float(secs)


@pytest.fixture(scope="module")
def garbage(tmp_path_factory):
    d = tmp_path_factory.mktemp("garbage")
    rng = __import__("random").Random(20)
    for mb in (100, 10):  # 100 MB: past the size bound; 10 MB: read, and found not a map
        with open(d / f"nul-{mb}.csv", "wb") as f:
            f.truncate(mb * 1_000_000)  # NUL bytes (sparse: cheap to make)
        with open(d / f"random-{mb}.csv", "wb") as f:
            for _ in range(mb):
                f.write(rng.randbytes(1_000_000))
    # text without NULs: one endless line, and endless lines of junk
    (d / "one-line-10.csv").write_bytes(b"x" * 10_000_000)
    (d / "junk-10.csv").write_bytes(b"extension,room,comms_profile_id\n" +
                                    b"x,y\n" * 2_500_000)
    return d


@pytest.mark.parametrize("name, says", [
    ("nul-100.csv", "the file is 95 MB; a room map is at most 10 MB (60,000 rows)"),
    ("random-100.csv", "the file is 95 MB; a room map is at most 10 MB (60,000 rows)"),
    ("nul-10.csv", "it holds NUL bytes (the first at byte 0), as binary files do"),
    ("random-10.csv", "it holds NUL bytes (the first at byte"),
    ("one-line-10.csv", "line 1 is longer than 65536 characters"),
    ("junk-10.csv", "line 60002: more than 60,000 rows")])
def test_a_garbage_map_is_refused_in_one_line_in_bounded_memory(hotel, garbage, name, says):
    srv, tid, env = hotel()
    r, mb, secs = peak_mb(env, "rooms", "plan", "--map", str(garbage / name))
    print(f"{name}: peak {mb:.0f} MB, {secs:.2f} s CPU")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"pbx-bridge: {garbage / name}: ") and "Traceback" not in \
        r.stderr
    assert says in r.stderr, r.stderr
    assert mb < LIMIT_MB and secs < 10


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_50000_row_map_plans_in_bounded_memory(hotel, tmp_path, fmt):
    srv, tid, env = hotel()
    m = tmp_path / "big.csv"
    with open(m, "w", encoding="utf-8") as f:
        f.write("extension,room,comms_profile_id\n")
        for i in range(50_000):
            f.write(f"{100000 + i},Suite {i} – Sea View’s,amzn1.alexa.unit.did.p{i:06d}\n")
    r, mb, secs = peak_mb(env, "rooms", "plan", "--map", str(m),
                          *(["--json"] if fmt == "json" else []))
    print(f"50,000 rows ({fmt}): peak {mb:.0f} MB, {secs:.2f} s CPU")
    assert r.returncode == 0, r.stderr
    assert mb < LIMIT_MB and secs < 10


def test_the_largest_map_accepted_plans_in_bounded_memory(hotel, tmp_path):
    """60,000 rows in just under 10 MB, names with dashes, accents, CJK and an emoji (the
    strings Python then holds take the most room): the worst a map may be, still bounded."""
    from pbx_bridge.rooms.mapfile import MAX_BYTES, MAX_ROWS
    srv, tid, env = hotel()
    m = tmp_path / "largest.csv"
    with open(m, "w", encoding="utf-8") as f:
        f.write("extension,room,comms_profile_id\n")
        for i in range(MAX_ROWS):
            f.write(f"{100000 + i},Suite {i} – 海景房 Sea View’s 😀{'é' * 20}{'字' * 17},"
                    f"amzn1.alexa.unit.did.p{i:06d}\n")
    assert MAX_BYTES * 0.9 < m.stat().st_size <= MAX_BYTES
    for fmt in ([], ["--json"]):
        r, mb, secs = peak_mb(env, "rooms", "plan", "--map", str(m), *fmt)
        print(f"{MAX_ROWS} rows, {m.stat().st_size / 2**20:.1f} MB {fmt}: peak {mb:.0f} MB, "
              f"{secs:.2f} s CPU")
        assert r.returncode == 0, r.stderr
        assert mb < LIMIT_MB and secs < 10
