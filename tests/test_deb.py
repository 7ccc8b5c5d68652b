"""The installed Debian package (issue 23): what it put where, as whom the process AGI runs
through its agi-bin copy, its units, its man page and state dir. Each test skips, saying so,
where the package is not installed; .ci/run builds, installs and then runs them
(`pytest -m deb`), and purges the package afterwards."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers import ROOT, publish_routes

pytestmark = pytest.mark.deb

BIN = Path("/usr/bin/pbx-bridge")
AGI_LINK = Path("/var/lib/asterisk/agi-bin/pbx-bridge")
UNIT_DIR = Path("/lib/systemd/system")
UNITS = ("pbx-bridge-fastagi.service", "pbx-bridge-status.service", "pbx-bridge-status.timer",
         "pbx-bridge-sync.service", "pbx-bridge-sync.timer")
DOC = Path("/usr/share/doc/pbx-bridge")


def _installed_files() -> list[str] | None:
    if not shutil.which("dpkg-query"):
        return None
    r = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status}", "pbx-bridge"],
                       capture_output=True, text=True)
    if r.stdout != "installed":
        return None
    return subprocess.run(["dpkg-query", "-L", "pbx-bridge"], capture_output=True, text=True,
                          check=True).stdout.split("\n")


FILES = _installed_files()
needs_package = pytest.mark.skipif(
    FILES is None, reason="the Debian package pbx-bridge is not installed (.ci/run builds it "
    "with dpkg-buildpackage and installs it with apt; see the README's first command)")


def as_root_with_runuser() -> None:
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root and runuser to run the AGI as nobody (.ci/run has them)")


@needs_package
def test_the_package_holds_the_command_link_units_man_page_tmpfiles_and_docs():
    files = set(FILES or ())
    want = {str(BIN), str(AGI_LINK), "/usr/lib/tmpfiles.d/pbx-bridge.conf",
            "/usr/share/man/man1/pbx-bridge.1.gz", f"{DOC}/README.md.gz", f"{DOC}/copyright",
            f"{DOC}/examples/before/etc-asterisk/pjsip.conf",
            f"{DOC}/examples/hotel/firewall.rules",
            f"{DOC}/examples/dialplan/extensions_pbx-bridge.process-agi.conf",
            *(f"{UNIT_DIR}/{u}" for u in UNITS)}
    assert want <= files, sorted(want - files)
    # a copy, not a link to the command root runs: FreePBX's "fwconsole chown" gives what
    # agi-bin holds to the asterisk user, following links to their target
    assert not AGI_LINK.is_symlink() and AGI_LINK.read_bytes() == BIN.read_bytes()
    first = BIN.read_text().splitlines()[0]
    assert first == "#!/usr/bin/python3 -I", first  # Debian's python3, never one on PATH


@needs_package
def test_it_runs_on_debians_python_and_libraries():
    code = ("import pbx_bridge, cryptography, dns.version, requests, prometheus_client, sys; "
            "print(sys.executable, pbx_bridge.__file__, cryptography.__file__, "
            "dns.version.__file__, requests.__file__, prometheus_client.__file__)")
    r = subprocess.run(["/usr/bin/python3", "-I", "-c", code], capture_output=True, text=True,
                       cwd="/", check=True)
    exe, *mods = r.stdout.split()
    assert exe == "/usr/bin/python3"
    assert all(m.startswith("/usr/lib/python3/dist-packages/") for m in mods), mods
    r = subprocess.run([str(BIN), "--version"], capture_output=True, text=True, check=True)
    assert r.stdout.startswith("pbx-bridge ")


@needs_package
def test_the_launcher_keeps_usr_local_libraries_out():
    """Debian's python3 reads /usr/local/lib/python3*/dist-packages before its own, and -I
    keeps it: the launcher drops it, so a pip-installed library there cannot shadow
    Debian's."""
    code = BIN.read_text().replace("entry()", "print(sys.path)")
    r = subprocess.run(["/usr/bin/python3", "-I", "-c", code], capture_output=True,
                       text=True, check=True, cwd="/")
    path = eval(r.stdout)  # the list printed by repr
    assert "/usr/lib/python3/dist-packages" in path
    assert not [p for p in path if p.startswith("/usr/local/")], path


@needs_package
def test_the_maintainer_scripts_restart_after_upgrade_and_stop_on_remove():
    """Installed not enabled; but what runs is restarted after an upgrade (not left stopped)
    and stopped on remove (not left serving deleted files)."""
    info = Path("/var/lib/dpkg/info")
    postinst = (info / "pbx-bridge.postinst").read_text()
    prerm = (info / "pbx-bridge.prerm").read_text()
    assert "deb-systemd-invoke $_dh_action" in postinst and "_dh_action=restart" in postinst
    assert "deb-systemd-invoke stop" in prerm and "pbx-bridge-fastagi.service" in prerm
    # enabled again only where the admin had enabled it (installed disabled: see below)
    assert "deb-systemd-helper --quiet was-enabled" in postinst


@needs_package
def test_the_state_dir_is_root_0711_as_documented():
    st = Path("/var/lib/pbx-bridge").stat()
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o711
    assert (st.st_uid, st.st_gid) == (0, 0)


@needs_package
def test_the_process_agi_runs_through_the_agi_bin_link_as_an_unprivileged_user():
    as_root_with_runuser()
    top = Path(tempfile.mkdtemp(prefix="pbx-bridge-deb-"))
    try:
        top.chmod(0o755)
        state = publish_routes(top / "state", {"7201": "Room 201"})
        state.chmod(0o711)
        header = "agi_request: pbx-bridge\nagi_channel: Local/7201@x-00000001;2\n\n"
        r = subprocess.run(["runuser", "-u", "nobody", "--", str(AGI_LINK), "agi",
                            "alexa-route", "7201", "--state-dir", str(state)],
                           input=header + "200 result=1\n" * 3, capture_output=True,
                           text=True, timeout=60, cwd="/")
        assert r.returncode == 0, r.stderr
        assert 'SET VARIABLE ALEXA_MAPPED "1"' in r.stdout and "Room 201" in r.stdout, \
            r.stdout + r.stderr
    finally:
        shutil.rmtree(top, ignore_errors=True)


@needs_package
def test_the_units_are_installed_not_enabled_and_systemd_accepts_them():
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd; .ci/run does)")
    for name in UNITS:
        text = (UNIT_DIR / name).read_text()
        assert "/usr/local/bin" not in text, name
        if name.endswith(".service"):
            assert re.search(r"^ExecStart=/usr/bin/pbx-bridge ", text, re.M), name
        r = subprocess.run([tool, "verify", "--man=no", str(UNIT_DIR / name)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout + r.stderr == "", name + r.stdout + r.stderr
        r = subprocess.run(["systemctl", "is-enabled", name], capture_output=True, text=True)
        # disabled; static: a service its timer starts (no [Install] of its own)
        assert r.stdout.strip() in ("disabled", "static"), (name, r.stdout, r.stderr)


@needs_package
def test_the_man_page_has_every_command_and_groff_has_nothing_to_say():
    if not shutil.which("man"):
        pytest.skip("man is not installed (apt-get install man-db)")
    from pbx_bridge.commands import HELPS
    r = subprocess.run(["man", "--warnings", "-l", "/usr/share/man/man1/pbx-bridge.1.gz"],
                       capture_output=True, text=True, env={**os.environ, "MANWIDTH": "80",
                                                            "LC_ALL": "C.UTF-8"})
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = re.sub(r".\x08", "", r.stdout)
    for name in HELPS:
        assert f"pbx-bridge {name}" in text, name
    assert "pbx-bridge trunk create" in text  # sub-commands too


def readme_package_route() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"```sh\n(S=.*?)\n```", text, re.S).group(1)


def test_the_readmes_first_command_is_the_package_route():
    cmd = readme_package_route()
    assert "apt-get build-dep -y ./" in cmd and "dpkg-buildpackage -us -uc -b" in cmd
    assert "apt-get install -y ../pbx-bridge_$(dpkg-parsechangelog -S Version)_all.deb " in cmd
    assert cmd.endswith("--firewall-rules /usr/share/doc/pbx-bridge/examples/hotel/"
                        "firewall.rules")


@needs_package
def test_the_readmes_preflight_runs_on_the_installed_example_host(tmp_path):
    """The first command's last step (the build and apt steps are .ci/run's)."""
    last = readme_package_route().rsplit("&& ", 1)[1]
    assert last.startswith("pbx-bridge preflight ")
    r = subprocess.run(["sh", "-c", last], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path, env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert r.returncode == 1 and "NOT ready for Amazon" in r.stdout, r.stdout + r.stderr
