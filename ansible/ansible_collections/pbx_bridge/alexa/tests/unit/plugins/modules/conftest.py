# -*- coding: utf-8 -*-
# Copyright: pbx-bridge developers
# MIT License (see LICENSE in the pbx-bridge repository)
"""Running a module's main() in-process with given arguments and a recorded pbx-bridge: each
run_command answers from a list of (exit code, stdout, stderr), and records the command line
and the environment it was given."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super(ModuleExit, self).__init__(result)
        self.result = result
        self.failed = failed


@contextlib.contextmanager
def module_args(args):
    try:  # ansible-core 2.19
        from ansible.module_utils.testing import patch_module_args
    except ImportError:  # 2.14 .. 2.18
        old = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = old
        return
    with patch_module_args(args):
        yield


class Recorded(object):
    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, module, args, environ_update=None, check_rc=False, **kwargs):
        self.calls.append((list(args), dict(environ_update or {})))
        if not self.answers:
            raise AssertionError("pbx-bridge run more often than recorded: %r" % (args,))
        answer = self.answers.pop(0)
        if callable(answer):  # an answer that depends on the command line
            answer = answer(list(args))
        rc, out, err = answer
        if not isinstance(out, str):
            out = json.dumps(out)
        return rc, out, err


@pytest.fixture
def run_module(monkeypatch):
    """run_module(main, args, answers) -> (result, failed, recorded)"""
    def run(main, args, answers):
        recorded = Recorded(answers)

        def exit_json(self, **kwargs):
            raise ModuleExit(kwargs, False)

        def fail_json(self, **kwargs):
            raise ModuleExit(kwargs, True)

        monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
        monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

        def run_command(module, *args, **kwargs):
            return recorded(module, *args, **kwargs)

        monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                            lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name)
        args = dict(args)
        with module_args(args):
            with pytest.raises(ModuleExit) as exc:
                main()
        return exc.value.result, exc.value.failed, recorded
    return run
