"""A test-only Ansible callback: every task's result per host, and the recap, as one JSON file
(``PBX_BRIDGE_TEST_RECORD``). ansible-core no longer ships the json callback (it moved to
ansible.posix), and the default one's text is for people."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = '''
name: record
type: aggregate
short_description: write task results and stats as JSON (pbx-bridge's tests)
description: Writes the file named by PBX_BRIDGE_TEST_RECORD at the end of the playbook.
'''

import json
import os

from ansible.plugins.callback import CallbackBase


def plain(value):
    """Plain JSON data from a result (2.19's values are tagged subclasses of str, dict, ...)."""
    if isinstance(value, dict):
        return dict((str(k), plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'record'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.tasks = []

    def _record(self, result, status):
        name = result._task.get_name()
        if not self.tasks or self.tasks[-1]["task"] != name:
            self.tasks.append({"task": name, "hosts": {}})
        data = dict(result._result)
        data["_status"] = status
        self.tasks[-1]["hosts"][result._host.get_name()] = data

    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result, **kwargs):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        doc = {"tasks": self.tasks, "stats": dict((h, stats.summarize(h)) for h in hosts)}
        with open(os.environ["PBX_BRIDGE_TEST_RECORD"], "w") as f:
            f.write(json.dumps(plain(doc)))
