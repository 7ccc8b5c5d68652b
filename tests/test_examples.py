"""The README's walk on the "before" example host, run as written (only /tmp/pbx-try and its
state dir point into the test's own folder): preflight fails, generate shows then writes the
trunk, preflight passes apart from DNS."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

from helpers import PB_CMD, ROOT


def walk_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("### Try it on the example host", 1)[1].split("```sh\n", 1)[1]
    block = block.split("```", 1)[0]
    return [ln for ln in block.splitlines() if ln and not ln.startswith("#")]


def test_the_readme_walk_on_the_before_host(tmp_path):
    cmds = walk_commands()
    assert cmds[0].startswith("cp -r asterisk/examples/before/etc-asterisk /tmp/pbx-try")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_BRIDGE_")}
    results = []
    for line in cmds:
        line = line.split("  #")[0].replace("/tmp/pbx-try", str(tmp_path / "pbx-try"))
        argv = shlex.split(line)
        if argv[0] == "export":
            name, value = argv[1].split("=", 1)
            env[name] = value
            continue
        if argv[0] == "pbx-bridge":
            argv = [*PB_CMD, *argv[1:]]
            if argv[len(PB_CMD)] == "preflight":
                argv += ["--format", "json"]
        results.append(subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                                      timeout=120))
    copy, before, diff, write, after = results
    assert copy.returncode == 0
    doc = json.loads(before.stdout)
    status = {f["id"]: f["status"] for f in doc["findings"]}
    assert before.returncode == 1 and status["tls.transport"] == "fail"
    assert diff.returncode == 0 and "+[transport-alexa-tls]" in diff.stdout
    assert write.returncode == 0, write.stderr
    assert re.search(r"backup: .*pbx-try-state", write.stdout)
    doc = json.loads(after.stdout)
    status = {f["id"]: f["status"] for f in doc["findings"]}
    bad = {k: v for k, v in status.items() if v != "pass"}
    assert bad == {"cert.dns": "fail", "amazon.ca": "warn"}, bad
