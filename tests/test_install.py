"""The README's venv install command (for systems without the Debian package), as written
(its paths moved into a temporary prefix, the apt-get step left out), on Debian's
/usr/bin/python3: the process-AGI link it makes works for an unprivileged user, as Asterisk
runs it. The package route is tests/test_deb.py's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers import ROOT, publish_routes


def readme_install() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"```sh\n(S=[^\n]*-m venv [^\n]*)\n```", text).group(1)


def test_readme_builds_the_venv_on_debians_python():
    cmd = readme_install()
    assert "/usr/bin/python3 -m venv /opt/pbx-bridge" in cmd
    assert " python3 -m venv" not in cmd.replace("/usr/bin/python3 -m venv", "")


def test_readme_install_gives_an_agi_link_an_unprivileged_user_can_run():
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root and runuser to run the AGI as nobody (.ci/run has them)")
    probe = subprocess.run(["/usr/bin/python3", "-c", "import venv, ensurepip"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("Debian's python3-venv is not installed (the README's apt-get step)")
    prefix = Path(tempfile.mkdtemp(prefix="pbx-bridge-install-"))
    try:
        prefix.chmod(0o755)
        cmd = readme_install()
        cmd = re.sub(r"\$S apt-get install [^&]*&& ", "", cmd)
        cmd = (cmd.replace("/opt/pbx-bridge", f"{prefix}/opt")
               .replace("/usr/local/bin/pbx-bridge", f"{prefix}/bin/pbx-bridge")
               .replace("/var/lib/asterisk/agi-bin", f"{prefix}/agi-bin")
               .replace("&& pbx-bridge preflight", f"&& {prefix}/bin/pbx-bridge preflight"))
        (prefix / "bin").mkdir()
        r = subprocess.run(["sh", "-c", cmd], cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
        assert "pbx-bridge preflight" in cmd and "NOT ready for Amazon" in r.stdout, \
            r.stdout[-1500:] + r.stderr[-1500:]
        assert os.readlink(prefix / "opt" / "bin" / "python3") in (
            "/usr/bin/python3", "python3") or \
            Path(os.path.realpath(prefix / "opt" / "bin" / "python3")).is_relative_to("/usr")
        # a copy, not a link: FreePBX's "fwconsole chown" gives what agi-bin holds to the
        # asterisk user, following links to their target (root runs the venv's command)
        assert not (prefix / "agi-bin" / "pbx-bridge").is_symlink()
        state = publish_routes(prefix / "state", {"7201": "Room 201"})
        state.chmod(0o711)
        header = "agi_request: pbx-bridge\nagi_channel: Local/7201@x-00000001;2\n\n"
        r = subprocess.run(["runuser", "-u", "nobody", "--", str(prefix / "agi-bin" /
                            "pbx-bridge"), "agi", "alexa-route", "7201", "--state-dir",
                            str(state)], input=header + "200 result=1\n" * 3,
                           capture_output=True, text=True, timeout=60, cwd="/")
        assert r.returncode == 0, r.stderr
        assert 'SET VARIABLE ALEXA_MAPPED "1"' in r.stdout and "Room 201" in r.stdout, \
            r.stdout + r.stderr
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
