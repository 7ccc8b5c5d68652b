#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pbx-bridge developers
# MIT License (see LICENSE in the pbx-bridge repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: test_call
short_description: Place a test call to a room's Alexa (or check one from it), through pbx-bridge
description:
  - Runs C(pbx-bridge test-call --format json) on the managed host; a real call through the
    running Asterisk over AMI (the settings' C([ami])), with the diagnosis of what broke.
    Changes no config; never C(changed). It never leaves a channel up.
  - Without I(ring), a check I(from_alexa) only reads the running dialplan; no call is placed.
  - The task fails when the call did not work, unless I(fail_when_failed=false).
version_added: 0.1.0
author:
  - pbx-bridge developers (!UNKNOWN)
extends_documentation_fragment:
  - pbx_bridge.alexa.common
options:
  to:
    description: The extension to call (a room's Alexa extension, or with I(from_alexa) a phone).
    type: str
    required: true
  from_alexa:
    description: Check a call from a room to I(to) instead.
    type: bool
    default: false
  ring:
    description: With I(from_alexa), really ring the phone.
    type: bool
    default: false
  direct:
    description: Call the trunk itself (C(PJSIP/EXT@alexa)) instead of the dialplan's route.
    type: bool
    default: false
  from_context:
    description: Start the call in this context, where a phone starts.
    type: str
  hold:
    description: Seconds to hold the answered call.
    type: int
  timeout:
    description: Seconds the call may take.
    type: int
  endpoint:
    description: The trunk's PJSIP endpoint (default C(alexa)).
    type: str
  ami_secret:
    description:
      - The AMI secret (C(PBX_BRIDGE_AMI_SECRET)); default the settings' C([ami] secret).
        A secret, handed to pbx-bridge in its environment, never shown in output or logs
        (unlike the task's C(environment) keyword, which C(-vvv) shows).
    type: str
  fail_when_failed:
    description: Fail the task when the call did not work.
    type: bool
    default: true
attributes:
  check_mode:
    description: A call is a real action, so check mode places none.
    support: partial
    details: In check mode no call is placed (the task is skipped); only a check
      I(from_alexa) without I(ring), which reads the running dialplan, runs.
  diff_mode:
    description: Nothing changes.
    support: none
'''

EXAMPLES = r'''
- name: Call room 101's Alexa as a phone would
  pbx_bridge.alexa.test_call:
    to: "7101"
    from_context: from-internal
'''

RETURN = r'''
ok:
  description: Whether the call worked.
  returned: unless skipped in check mode
  type: bool
result:
  description: The whole result, as C(pbx-bridge test-call --format json) gives it (answered, sip, tls, srtp, codec, rtp, findings).
  returned: unless skipped in check mode
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pbx_bridge.alexa.plugins.module_utils.pbx_bridge import (
    PbxBridge, common_argument_spec)


def call_args(p):
    args = ["test-call", "--format", "json", "--to", p["to"]]
    for option, flag in (("from_alexa", "--from-alexa"), ("ring", "--ring"),
                         ("direct", "--direct")):
        if p[option]:
            args.append(flag)
    for option, flag in (("from_context", "--from-context"), ("hold", "--hold"),
                         ("timeout", "--timeout"), ("endpoint", "--endpoint")):
        if p[option] is not None:
            args += [flag, str(p[option])]
    return args


def main():
    spec = common_argument_spec()
    spec.update(
        to=dict(type="str", required=True),
        from_alexa=dict(type="bool", default=False),
        ring=dict(type="bool", default=False),
        direct=dict(type="bool", default=False),
        from_context=dict(type="str"),
        hold=dict(type="int"),
        timeout=dict(type="int"),
        endpoint=dict(type="str"),
        ami_secret=dict(type="str", no_log=True),
        fail_when_failed=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=[("direct", "from_context", "from_alexa")])
    p = module.params
    if module.check_mode and not (p["from_alexa"] and not p["ring"]):
        module.exit_json(changed=False, skipped=True,
                         msg="check mode: no call placed")
    pb = PbxBridge(module)
    if p["ami_secret"]:
        pb.env["PBX_BRIDGE_AMI_SECRET"] = p["ami_secret"]
    rc, doc, err = pb.json(call_args(module.params), ok=(0, 1))
    result = dict(changed=False, ok=bool(doc.get("ok")), result=doc)
    if not result["ok"] and module.params["fail_when_failed"]:
        bad = [f.get("summary") for f in doc.get("findings") or ()
               if f.get("status") in ("fail", "error")]
        module.fail_json(msg="the call failed: " + "; ".join(bad), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
