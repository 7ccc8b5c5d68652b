#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pbx-bridge developers
# MIT License (see LICENSE in the pbx-bridge repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: config
short_description: The Amazon trunk's Asterisk/FreePBX config, written safely by pbx-bridge
description:
  - I(state=present) runs C(pbx-bridge generate --json --write) on the managed host; the TLS
    transport, the trunk endpoint, aor and identify, the RTP range and the dialplan, written
    only inside pbx-bridge's own blocks or FreePBX's C(*_custom.conf) files, each file backed
    up and replaced atomically, then Asterisk reloaded and what it loaded verified; any
    failure restores every file. See the README's C(generate) section.
  - C(changed) only when a file's bytes change. With nothing to change, pbx-bridge still checks
    that the running Asterisk runs what is on disk (and fails when a restart is needed).
  - In check mode it runs C(pbx-bridge generate --json) (its dry run) and reports the diff
    without writing anything.
  - I(state=absent) undoes every change pbx-bridge made to this Asterisk dir that is not
    rolled back yet (C(pbx-bridge generate --rollback --to) the oldest of them), so the files
    are as they were before pbx-bridge's first change.
  - B(A hand edit made since to one of those files is lost with it), as whole files are
    put back. Run it with C(--check --diff) first; the diff shows exactly what each file
    would become (C(generate --rollback --dry-run --json)), hand edits included.
version_added: 0.1.0
author:
  - pbx-bridge developers (!UNKNOWN)
extends_documentation_fragment:
  - pbx_bridge.alexa.common
options:
  state:
    description: Whether the trunk config should be there.
    type: str
    choices: [present, absent]
    default: present
  asterisk_dir:
    description: Asterisk config directory (default the settings' C([pbx] asterisk_dir), else C(/etc/asterisk)).
    type: path
  fqdn:
    description: The PBX's TLS name (names the default certificate files C(/etc/asterisk/keys/NAME.crt) and C(.key)).
    type: str
  cert:
    description: Certificate chain for the TLS transport.
    type: path
  key:
    description: Its private key (a path; the key's bytes are never shown).
    type: path
  ca_list:
    description: CA list with Amazon's root (default C(/etc/asterisk/keys/ca.crt)).
    type: path
  port:
    description: TLS port (default 5061).
    type: int
  rtp_range:
    description: Media ports, C(START-END) (default rtp.conf's, else C(10000-20000)).
    type: str
  public_ip:
    description: The PBX's public IP (default detected as in preflight).
    type: str
  local_net:
    description: Local networks.
    type: list
    elements: str
  bind:
    description: Address the TLS transport listens on (default C(0.0.0.0)).
    type: str
  context:
    description: Dialplan context for calls from Alexa (default C(from-alexa)).
    type: str
  phones_context:
    description: Plain Asterisk, the context where the PBX's phones are dialled.
    type: str
  endpoint:
    description: Name of the trunk endpoint, aor and identify (default C(alexa)).
    type: str
  transport_name:
    description: Name of the TLS transport (default C(transport-alexa-tls)).
    type: str
  amazon_cidr:
    description: Amazon's networks (default C(3.239.178.128/25)).
    type: list
    elements: str
  amazon_sip:
    description: Amazon's outbound SIP address, C(HOST[:PORT]), when known.
    type: str
  agi:
    description: Look rooms up at call time through FastAGI (C(agi://HOST:PORT)) or process AGI (C(process)).
    type: str
  room_pattern:
    description: Dialplan pattern of the rooms' Alexa extensions (default C(_7XXX)).
    type: str
  reload:
    description: Reload Asterisk and verify what it loaded after writing (C(--no-reload) when false).
    type: bool
    default: true
attributes:
  check_mode:
    description: Runs pbx-bridge's dry run; nothing is written.
    support: full
  diff_mode:
    description: The unified diff of every file that would change (private keys named, never shown).
    support: full
'''

EXAMPLES = r'''
- name: Write the trunk config, reload Asterisk and verify it
  pbx_bridge.alexa.config:
    asterisk_dir: /etc/asterisk
    fqdn: pbx.example-hotel.com
    cert: /etc/asterisk/keys/pbx.crt
    key: /etc/asterisk/keys/pbx.key
    ca_list: /etc/asterisk/keys/ca.crt
    public_ip: 54.240.196.10
    agi: process

- name: Undo pbx-bridge's changes to this Asterisk dir
  pbx_bridge.alexa.config:
    state: absent
'''

RETURN = r'''
layout:
  description: C(freepbx) or C(plain), as pbx-bridge found the Asterisk dir.
  returned: state=present
  type: str
  sample: plain
files:
  description: The files that change (or would), each with its unified diff.
  returned: state=present
  type: list
  elements: dict
  sample: [{"path": "/etc/asterisk/pjsip_pbx-bridge.conf", "new": true, "private": false, "diff": "..."}]
notes:
  description: pbx-bridge's notes about the config (e.g. the line to add to the phones' context).
  returned: state=present
  type: list
  elements: str
firewall:
  description: Firewall rules to apply yourself (pbx-bridge never changes the firewall).
  returned: state=present
  type: str
backup:
  description: The backup of what was replaced (C(generate --rollback) undoes it).
  returned: when files were written
  type: str
reload:
  description: What the reload did, as pbx-bridge says it.
  returned: when Asterisk was reloaded, or the reload skipped
  type: str
running:
  description: With nothing to write, what the check of the running Asterisk found.
  returned: when nothing changed
  type: str
rolled_back:
  description: The backups undone (state=absent), newest first.
  returned: state=absent
  type: list
  elements: str
restores:
  description: With state=absent in check or diff mode, each file that would change, with
    its diff from what it holds now to what it would hold.
  returned: state=absent, in check or diff mode, when something is undone
  type: list
  elements: dict
recovered:
  description: What pbx-bridge finished or undid of an interrupted earlier run first.
  returned: state=present
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pbx_bridge.alexa.plugins.module_utils.pbx_bridge import (
    PbxBridge, common_argument_spec, prepared_diff)

FLAGS = (("fqdn", "--fqdn"), ("cert", "--cert"), ("key", "--key"), ("ca_list", "--ca-list"),
         ("port", "--port"), ("rtp_range", "--rtp-range"), ("public_ip", "--public-ip"),
         ("bind", "--bind"), ("context", "--context"),
         ("phones_context", "--phones-context"), ("endpoint", "--endpoint"),
         ("transport_name", "--transport-name"), ("amazon_sip", "--amazon-sip"),
         ("agi", "--agi"), ("room_pattern", "--room-pattern"))


def generate_args(params, write):
    args = ["generate", "--json"]
    if params.get("asterisk_dir"):
        args += ["--asterisk-dir", params["asterisk_dir"]]
    for option, flag in FLAGS:
        if params.get(option) is not None:
            args += [flag, str(params[option])]
    for cidr in params.get("local_net") or ():
        args += ["--local-net", cidr]
    for cidr in params.get("amazon_cidr") or ():
        args += ["--amazon-cidr", cidr]
    if write:
        args.append("--write")
        if not params.get("reload", True):
            args.append("--no-reload")
    return args


def present(module, pb):
    write = not module.check_mode
    rc, doc, err = pb.json(generate_args(module.params, write))
    files = doc.get("files") or []
    changed = bool(doc.get("written")) if write else bool(doc.get("changed"))
    result = dict(changed=changed, layout=doc.get("layout"), files=files,
                  notes=doc.get("notes") or [], firewall=doc.get("firewall", ""),
                  recovered=doc.get("recovered") or [])
    for key in ("backup", "reload", "running"):
        if doc.get(key) is not None:
            result[key] = doc[key]
    if module._diff and files:
        result["diff"] = prepared_diff("".join(f.get("diff", "") for f in files))
    return result


def not_rolled_back(backups):
    """The backups still in effect, newest first (as pbx-bridge lists them)."""
    return [b for b in backups if b.get("state") != "rolled back"]


def absent(module, pb):
    base = ["generate"]
    if module.params.get("asterisk_dir"):
        base += ["--asterisk-dir", module.params["asterisk_dir"]]
    rc, doc, err = pb.json(base + ["--list-backups", "--json"])
    undo = not_rolled_back(doc.get("backups") or [])
    if not undo:
        return dict(changed=False, rolled_back=[])
    files = sorted(set(f for b in undo for f in b.get("files") or []))
    result = dict(changed=True, rolled_back=[b["id"] for b in undo], files=files)
    if module._diff or module.check_mode:
        # what the files would become: a hand edit made since shows as a line taken away
        rc, preview, err = pb.json(base + ["--rollback", "--to", undo[-1]["id"], "--dry-run",
                                           "--json"])
        result["restores"] = preview.get("files") or []
        if module._diff:
            result["diff"] = prepared_diff("".join(f.get("diff", "")
                                                   for f in result["restores"]))
    if module.check_mode:
        return result
    args = base + ["--rollback", "--to", undo[-1]["id"]]
    if not module.params.get("reload", True):
        args.append("--no-reload")
    rc, out, err = pb.run(args)
    if rc != 0:
        pb.fail(args, rc, out, err)
    result["stdout_lines"] = out.splitlines()
    return result


def main():
    spec = common_argument_spec()
    spec.update(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        asterisk_dir=dict(type="path"),
        fqdn=dict(type="str"),
        cert=dict(type="path"),
        key=dict(type="path", no_log=False),
        ca_list=dict(type="path"),
        port=dict(type="int"),
        rtp_range=dict(type="str"),
        public_ip=dict(type="str"),
        local_net=dict(type="list", elements="str"),
        bind=dict(type="str"),
        context=dict(type="str"),
        phones_context=dict(type="str"),
        endpoint=dict(type="str"),
        transport_name=dict(type="str"),
        amazon_cidr=dict(type="list", elements="str"),
        amazon_sip=dict(type="str"),
        agi=dict(type="str"),
        room_pattern=dict(type="str"),
        reload=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    pb = PbxBridge(module)
    if module.params["state"] == "present":
        module.exit_json(**present(module, pb))
    module.exit_json(**absent(module, pb))


if __name__ == "__main__":
    main()
