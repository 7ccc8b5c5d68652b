#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pbx-bridge developers
# MIT License (see LICENSE in the pbx-bridge repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: preflight
short_description: Check that a PBX meets Amazon's requirements for Alexa Smart Properties
description:
  - Runs C(pbx-bridge preflight --format json) on the managed host and returns its findings
    and verdict. Read-only; never changes anything, so it runs the same in check mode.
  - Fails when the PBX is not ready for Amazon (a check failed, errored, or a required check
    could not run), unless I(fail_when_not_ready=false).
version_added: 0.1.0
author:
  - pbx-bridge developers (!UNKNOWN)
extends_documentation_fragment:
  - pbx_bridge.alexa.common
options:
  asterisk_dir:
    description: Asterisk config directory (default C(/etc/asterisk)).
    type: path
  endpoint:
    description: The PJSIP endpoint of the Amazon trunk (default found by its identify).
    type: str
  public_ip:
    description: The PBX's public IP (default the TLS transport's external address).
    type: str
  fqdn:
    description: The TLS name to look up in DNS (default the certificate's CN and SANs).
    type: str
  amazon_cidr:
    description: Amazon's networks (default C(3.239.178.128/25)).
    type: list
    elements: str
  firewall_rules:
    description: A saved ruleset to judge instead of the live firewall.
    type: path
  dns_server:
    description: Resolver to ask, C(HOST[:PORT]), instead of the system's.
    type: str
  live:
    description: Also connect to the PBX's TLS port (handshake, served certificate, SIP OPTIONS).
    type: bool
    default: false
  key_group:
    description: The group Asterisk runs as, which may read the private key.
    type: str
  fail_when_not_ready:
    description: Fail the task when the verdict is not "ready for Amazon".
    type: bool
    default: true
  pending:
    description:
      - In check mode, why the config on disk is not what the run would leave (e.g. a config
        change that check mode did not write). The findings are then of the config on disk
        and the task does not fail on them; it warns with this reason instead. Empty, or
        outside check mode, it has no effect.
    type: str
    default: ''
attributes:
  check_mode:
    description: Read-only; runs in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
'''

EXAMPLES = r'''
- name: Is this PBX ready for Amazon?
  pbx_bridge.alexa.preflight:
    asterisk_dir: /etc/asterisk
  register: preflight

- name: Report without failing, e.g. to collect every property's findings first
  pbx_bridge.alexa.preflight:
    fail_when_not_ready: false
  register: preflight

- name: Show what fails
  ansible.builtin.debug:
    msg: "{{ preflight.findings | selectattr('status', 'in', ['fail', 'error']) | list }}"
'''

RETURN = r'''
ready:
  description: Whether the verdict is "ready for Amazon" (pbx-bridge's exit code 0).
  returned: always
  type: bool
  sample: true
verdict:
  description: pbx-bridge's one-line verdict.
  returned: always
  type: str
  sample: ready for Amazon
findings:
  description: Every check's finding, as C(pbx-bridge preflight --format json) gives it.
  returned: always
  type: list
  elements: dict
  sample:
    - id: tls.transport
      status: pass
      summary: transport transport-alexa-tls (protocol=tls) on 0.0.0.0:5061
      evidence: {}
      where: /etc/asterisk/pjsip.conf:12
      fix: null
counts:
  description: How many findings have each status.
  returned: always
  type: dict
  sample: {"pass": 15, "warn": 1, "fail": 0}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pbx_bridge.alexa.plugins.module_utils.pbx_bridge import (
    PbxBridge, common_argument_spec)


def preflight_args(params):
    args = ["preflight", "--format", "json"]
    for option, flag in (("asterisk_dir", "--asterisk-dir"), ("endpoint", "--endpoint"),
                         ("public_ip", "--public-ip"), ("fqdn", "--fqdn"),
                         ("firewall_rules", "--firewall-rules"),
                         ("dns_server", "--dns-server"), ("key_group", "--key-group")):
        if params.get(option):
            args += [flag, params[option]]
    for cidr in params.get("amazon_cidr") or ():
        args += ["--amazon-cidr", cidr]
    if params.get("live"):
        args.append("--live")
    return args


def main():
    spec = common_argument_spec()
    spec.update(
        asterisk_dir=dict(type="path"),
        endpoint=dict(type="str"),
        public_ip=dict(type="str"),
        fqdn=dict(type="str"),
        amazon_cidr=dict(type="list", elements="str"),
        firewall_rules=dict(type="path"),
        dns_server=dict(type="str"),
        live=dict(type="bool", default=False),
        key_group=dict(type="str", no_log=False),
        fail_when_not_ready=dict(type="bool", default=True),
        pending=dict(type="str", default=""),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    pb = PbxBridge(module)
    args = preflight_args(module.params)
    rc, doc, err = pb.json(args, ok=(0, 1))
    findings = doc.get("findings") or []
    counts = {}
    for f in findings:
        counts[f.get("status")] = counts.get(f.get("status"), 0) + 1
    result = dict(changed=False, ready=rc == 0, verdict=doc.get("verdict", ""),
                  findings=findings, counts=counts)
    if rc != 0:
        bad = [f.get("id") for f in findings if f.get("status") in ("fail", "error")]
        msg = "%s%s" % (result["verdict"], (": " + ", ".join(bad)) if bad else "")
        if module.check_mode and module.params["pending"]:
            module.warn("%s; these findings are of the config on disk, not of the one the run "
                        "would write: %s" % (module.params["pending"], msg))
        elif module.params["fail_when_not_ready"]:
            result["msg"] = msg
            module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
