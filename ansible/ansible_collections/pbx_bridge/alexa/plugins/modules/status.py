#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pbx-bridge developers
# MIT License (see LICENSE in the pbx-bridge repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: status
short_description: Whether a property's Amazon trunk still works, from pbx-bridge status
description:
  - Runs C(pbx-bridge status --format json) on the managed host; the config checks, the
    certificate the file holds and the one Asterisk serves, the trunk at Amazon, mapping drift,
    FastAGI and AMI. Read-only; never C(changed).
  - The task fails only with I(fail_when_not_ok) and a state other than C(OK).
version_added: 0.1.0
author:
  - pbx-bridge developers (!UNKNOWN)
extends_documentation_fragment:
  - pbx_bridge.alexa.common
options:
  asterisk_dir:
    description: Asterisk config directory (default the settings').
    type: path
  timeout:
    description: Seconds the whole report may take (a hung part is reported, the rest still is).
    type: int
    default: 20
  cert_warn_days:
    description: A served certificate expiring within this many days is a WARNING.
    type: int
    default: 21
  cert_crit_days:
    description: Within this many days, CRITICAL.
    type: int
    default: 7
  dns:
    description: Also look the certificate's names up in DNS.
    type: bool
    default: false
  fail_when_not_ok:
    description: Fail the task when the state is not C(OK).
    type: bool
    default: false
attributes:
  check_mode:
    description: Read-only; runs in check mode.
    support: full
  diff_mode:
    description: Nothing changes.
    support: none
'''

EXAMPLES = r'''
- name: How is every property doing?
  pbx_bridge.alexa.status:
  register: status

- name: List the problems
  ansible.builtin.debug:
    var: status.report.problems
  when: status.state != 'OK'
'''

RETURN = r'''
state:
  description: C(OK), C(WARNING), C(CRITICAL) or C(UNKNOWN).
  returned: always
  type: str
  sample: OK
report:
  description: The whole report, as C(pbx-bridge status --format json) gives it.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pbx_bridge.alexa.plugins.module_utils.pbx_bridge import (
    PbxBridge, common_argument_spec)


def main():
    spec = common_argument_spec()
    spec.update(
        asterisk_dir=dict(type="path"),
        timeout=dict(type="int", default=20),
        cert_warn_days=dict(type="int", default=21),
        cert_crit_days=dict(type="int", default=7),
        dns=dict(type="bool", default=False),
        fail_when_not_ok=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    args = ["status", "--format", "json", "--timeout", str(p["timeout"]),
            "--cert-warn-days", str(p["cert_warn_days"]),
            "--cert-crit-days", str(p["cert_crit_days"])]
    if p["asterisk_dir"]:
        args += ["--asterisk-dir", p["asterisk_dir"]]
    if p["dns"]:
        args.append("--dns")
    rc, doc, err = PbxBridge(module).json(args, ok=(0, 1))
    result = dict(changed=False, state=doc.get("state"), report=doc)
    if p["fail_when_not_ok"] and doc.get("state") != "OK":
        problems = [x.get("message") for x in doc.get("problems") or ()]
        module.fail_json(msg="%s: %s" % (doc.get("state"), "; ".join(problems)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
