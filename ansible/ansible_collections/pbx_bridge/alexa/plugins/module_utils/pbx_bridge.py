# -*- coding: utf-8 -*-
# Copyright: pbx-bridge developers
# MIT License (see LICENSE in the pbx-bridge repository)
"""What every module of the collection shares: the options that say which pbx-bridge to run
and with which settings and credentials, and the one place that runs it.

The modules never reimplement pbx-bridge: they run the installed CLI with ``--json`` (or
``--format json``) through ``AnsibleModule.run_command`` and translate its answer. Secrets go
to the CLI through its environment variables (``PBX_BRIDGE_CLIENT_SECRET``, ...), never on
its command line, where ``ps`` and Ansible's own logs would show them.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import time

# option -> the environment variable pbx-bridge reads it from
ENV_OPTIONS = (
    ("config", "PBX_BRIDGE_CONFIG"),
    ("state_dir", "PBX_BRIDGE_STATE_DIR"),
    ("api_url", "PBX_BRIDGE_API_URL"),
    ("token_url", "PBX_BRIDGE_TOKEN_URL"),
    ("client_id", "PBX_BRIDGE_CLIENT_ID"),
    ("client_secret", "PBX_BRIDGE_CLIENT_SECRET"),
    ("refresh_token", "PBX_BRIDGE_REFRESH_TOKEN"),
)


def common_argument_spec():
    """The options of the ``pbx_bridge.alexa.common`` documentation fragment."""
    return dict(
        executable=dict(type="str", default="pbx-bridge"),
        config=dict(type="path"),
        state_dir=dict(type="path"),
        api_url=dict(type="str"),
        token_url=dict(type="str", no_log=False),
        client_id=dict(type="str"),
        client_secret=dict(type="str", no_log=True),
        refresh_token=dict(type="str", no_log=True),
        allow_private_peers=dict(type="bool", default=False),
        lock_wait=dict(type="int", default=0),
    )


def lock_taken(rc, err):
    """Whether pbx-bridge stopped at once because another command holds the state dir."""
    return rc != 0 and "another pbx-bridge " in (err or "") and " is running (pid " in err


class PbxBridge:
    """Runs the installed ``pbx-bridge`` for one module invocation."""

    sleep = staticmethod(time.sleep)  # the clock's door (tests swap it)
    monotonic = staticmethod(time.monotonic)

    def __init__(self, module):
        self.module = module
        exe = module.params["executable"]
        if os.path.sep in exe:
            self.exe = exe
        else:
            self.exe = module.get_bin_path(exe, required=True)
        env = {"PBX_BRIDGE_LOG_FORMAT": "text", "NO_COLOR": "1"}
        for option, variable in ENV_OPTIONS:
            value = module.params.get(option)
            if value is not None:
                env[variable] = str(value)
        if module.check_mode:  # check mode writes no file, the token cache included
            env["PBX_BRIDGE_TOKEN_CACHE"] = "read-only"
        if module.params.get("allow_private_peers"):
            env["PBX_BRIDGE_ALLOW_PRIVATE_PEERS"] = "1"
        self.env = env

    def run(self, args):
        """(exit code, stdout, stderr) of ``pbx-bridge ARGS``; while another command holds
        the state dir's lock, run again for up to ``lock_wait`` seconds."""
        deadline = self.monotonic() + (self.module.params.get("lock_wait") or 0)
        while True:
            rc, out, err = self.module.run_command([self.exe] + list(args),
                                                   environ_update=self.env, check_rc=False)
            left = deadline - self.monotonic()
            if not lock_taken(rc, err) or left <= 0:
                return rc, out, err
            self.sleep(min(2.0, left))

    def json(self, args, ok=(0,)):
        """Run, and the JSON document it printed; fails the module (with pbx-bridge's own
        message) on an exit code outside ``ok`` or output that is not JSON."""
        rc, out, err = self.run(args)
        doc = parse_json(out)
        if rc not in ok or doc is None:
            self.fail(args, rc, out, err, doc)
        return rc, doc, err

    def fail(self, args, rc, out, err, doc=None, **extra):
        if rc == 0 and doc is None:  # it worked, but said something else than JSON
            first = (out or "").strip().splitlines()[:1]
            message = "pbx-bridge %s printed no JSON%s" % (
                " ".join(a for a in args[:2] if not a.startswith("-")),
                (": " + first[0]) if first else " (nothing)")
        else:
            message = last_error(err) or ("pbx-bridge %s: exit %d" % (" ".join(args[:2]), rc))
        result = dict(msg=message, rc=rc, stderr=err, command=["pbx-bridge"] + list(args))
        if doc is not None:
            result["result"] = doc
        elif out:
            result["stdout"] = out
        result.update(extra)
        self.module.fail_json(**result)


def parse_json(out):
    """The JSON document pbx-bridge printed, or None when it printed none (or no JSON)."""
    if not (out or "").strip():
        return None
    try:
        return json.loads(out)
    except ValueError:
        return None


def last_error(err):
    """pbx-bridge's error (``pbx-bridge: ...``) with the lines that follow it (a map's
    problems, the preflight checks that failed), else the last line of stderr."""
    lines = [line for line in (err or "").splitlines() if line.strip()]
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if line.startswith("pbx-bridge: ") and not line.startswith("pbx-bridge: warning"):
            return "\n".join([line[len("pbx-bridge: "):]] + lines[i + 1:])
    return lines[-1] if lines else ""


def prepared_diff(text):
    """Ansible's --diff from text pbx-bridge already made (a unified diff, a plan)."""
    return {"prepared": text} if text else {}
