#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pbx-bridge developers
# MIT License (see LICENSE in the pbx-bridge repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: trunk
short_description: The PBX's Amazon SIP trunk, through pbx-bridge
description:
  - I(state=present) makes Amazon hold the trunk this PBX should have; its TLS name,
    certificate chain and peers, taken from the Asterisk config unless given. It runs
    C(pbx-bridge trunk update --create --json); with a saved trunk that Amazon still has, it
    sends the whole trunk only when a part differs; otherwise it does what C(trunk create)
    does, which adopts an identical trunk Amazon already has for this name and refuses a
    different one. Never a second trunk.
  - With I(wait), waits until the trunk is C(ACTIVE) (up to I(timeout) seconds), also when
    nothing had to change.
  - In check mode it runs the same commands with C(--dry-run); nothing is sent or saved.
    C(--diff) shows the trunk Amazon holds beside the one this PBX wants (name, peers, and
    each certificate by subject and fingerprint).
  - I(state=absent) deletes the saved trunk (C(pbx-bridge trunk delete --yes)); it refuses
    while extensions are mapped to it unless I(force); so does check mode
    (C(trunk delete --dry-run)). A saved trunk Amazon no longer has is
    forgotten locally with its mappings.
version_added: 0.1.0
author:
  - pbx-bridge developers (!UNKNOWN)
extends_documentation_fragment:
  - pbx_bridge.alexa.common
options:
  state:
    description: Whether the trunk should exist.
    type: str
    choices: [present, absent]
    default: present
  asterisk_dir:
    description: Asterisk config directory the trunk's values come from.
    type: path
  fqdn:
    description: TLS name (default the certificate's first SAN, else its CN).
    type: str
  cert_chain:
    description: PEM chain, leaf first (default the TLS transport's C(cert_file)).
    type: path
  peers:
    description: Public C(IP:PORT) (or C(FQDN:PORT)) Amazon connects to (default the transport's external address and port).
    type: list
    elements: str
  public_ip:
    description: As in preflight.
    type: str
  dns_server:
    description: As in preflight.
    type: str
  skip_preflight:
    description: Do not refuse when the preflight checks the trunk depends on fail.
    type: bool
    default: false
  wait:
    description: Wait until the trunk is C(ACTIVE).
    type: bool
    default: true
  timeout:
    description: Seconds to wait for C(ACTIVE).
    type: int
    default: 900
  force:
    description: With I(state=absent), delete the trunk even while extensions are mapped to it.
    type: bool
    default: false
  pending:
    description:
      - In check mode, why the trunk cannot be judged now (e.g. a config change that check
        mode did not write, which the trunk's values come from). The dry run is then not
        run (it would read the config on disk); the task reports C(changed) with
        I(action=pending) and warns with this reason, and never fails or claims the trunk
        is as wanted. Empty, or outside check mode, it has no effect.
    type: str
    default: ''
attributes:
  check_mode:
    description: pbx-bridge's C(--dry-run); nothing is sent to Amazon or saved.
    support: full
  diff_mode:
    description: Name, peers and certificate chain, at Amazon and as this PBX wants them.
    support: full
'''

EXAMPLES = r'''
- name: The trunk, from what the Asterisk config says, ACTIVE within 15 minutes
  pbx_bridge.alexa.trunk:
    asterisk_dir: /etc/asterisk
    client_id: "{{ pbx_bridge_client_id }}"
    client_secret: "{{ pbx_bridge_client_secret }}"
    timeout: 900

- name: Delete it
  pbx_bridge.alexa.trunk:
    state: absent
'''

RETURN = r'''
action:
  description: What pbx-bridge did (or, in check mode, would do).
  returned: always
  type: str
  sample: created
  choices: [created, adopted, updated, unchanged, deleted, forgotten, absent, pending]
trunk:
  description: The trunk as Amazon holds it, after the change (C(trunk show --json)).
  returned: state=present, not in check mode
  type: dict
  sample: {"trunkId": "amzn1.comms.network.siptrunk.12345", "status": "ACTIVE"}
trunk_id:
  description: The trunk's id (none when one would be created in check mode, or, with
    I(pending), when none is saved).
  returned: always
  type: str
unsaved_at_amazon:
  description: With state=absent and no trunk saved on this PBX, the trunks Amazon holds for
    these credentials (not deleted; they may be other PBXs'; a warning names them).
  returned: state=absent, when no trunk is saved
  type: list
  elements: str
changed_parts:
  description: Which parts differ (C(tls), C(peers)).
  returned: state=present
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pbx_bridge.alexa.plugins.module_utils.pbx_bridge import (
    PbxBridge, common_argument_spec, last_error, parse_json)


def spec_args(params, check_mode):
    args = ["--json"]
    for option, flag in (("asterisk_dir", "--asterisk-dir"), ("fqdn", "--fqdn"),
                         ("cert_chain", "--cert-chain"), ("public_ip", "--public-ip"),
                         ("dns_server", "--dns-server")):
        if params.get(option):
            args += [flag, params[option]]
    for peer in params.get("peers") or ():
        args += ["--peer", peer]
    if params.get("skip_preflight"):
        args.append("--skip-preflight")
    if check_mode:
        args.append("--dry-run")
    elif params.get("wait"):
        args += ["--wait", "--timeout", str(params["timeout"])]
    return args


def trunk_diff(doc, action):
    before = doc.get("current") or {}
    after = doc.get("desired") or before
    return {"before": before, "after": after,
            "before_header": "trunk at Amazon" if before else "no trunk at Amazon",
            "after_header": "trunk this PBX wants (%s)" % action}


def saved_trunk(pb, listed=None):
    """(the saved trunk id or None, whether Amazon still has it)."""
    rc, doc, err = pb.json(["trunk", "list", "--json"])
    if listed is not None:
        listed.extend(doc.get("trunks") or ())
    saved = doc.get("saved")
    ids = set(t.get("trunkId") for t in doc.get("trunks") or ())
    return saved, saved in ids


def pending(module, pb):
    """Check mode with the config not written: say so, with the saved trunk (if any)."""
    saved, at_amazon = saved_trunk(pb)
    reason = module.params["pending"]
    module.warn(reason)
    return dict(changed=True, action="pending", msg=reason,
                trunk_id=saved if at_amazon else None, changed_parts=[])


def present(module, pb):
    """One command: the saved trunk updated where it differs, or created (adopted) when none
    is saved or Amazon no longer has it."""
    if module.check_mode and module.params["pending"]:
        return pending(module, pb)
    args = ["trunk", "update", "--create"] + spec_args(module.params, module.check_mode)
    rc, out, err = pb.run(args)
    doc = parse_json(out)
    action = doc.get("action") if doc else None
    changed = action in ("created", "adopted", "updated")
    if rc != 0 or doc is None:
        # a wait that fails after the change was sent: the change happened (changed)
        extra = dict(changed=True, action=action, trunk_id=doc.get("trunkId")) \
            if rc != 0 and changed else {}
        pb.fail(args, rc, out, err, doc, **extra)
    parts = doc.get("changed") or ([] if action in ("updated", "unchanged") else
                                   ["tls", "peers"])
    result = dict(changed=changed, action=action, trunk_id=doc.get("trunkId"),
                  changed_parts=parts)
    if not module.check_mode:
        result["trunk"] = dict((k, v) for k, v in doc.items()
                               if k not in ("action", "changed", "current", "desired"))
    if module._diff and changed:
        result["diff"] = trunk_diff(doc, action)
    return result


def absent(module, pb):
    listed = []
    saved, at_amazon = saved_trunk(pb, listed)
    if saved is None:
        # nothing saved here; what Amazon holds for the account is not this PBX's to judge
        # (it may be another PBX's), but it is said
        if listed:
            module.warn("no trunk is saved on this PBX, so none is deleted; Amazon holds %d "
                        "trunk(s) for these credentials: %s (pbx-bridge trunk list; delete one "
                        "with pbx-bridge trunk delete TRUNK_ID --yes)" % (len(listed), ", ".join(
                            "%s %s" % (t.get("trunkId"), t.get("name") or "") for t in listed)))
        return dict(changed=False, action="absent", trunk_id=None,
                    unsaved_at_amazon=[t.get("trunkId") for t in listed])
    action = "deleted" if at_amazon else "forgotten"
    result = dict(changed=True, action=action, trunk_id=saved)
    if module._diff:
        result["diff"] = {"before": {"trunkId": saved}, "after": {}}
    # check mode: the delete's own checks (--dry-run), so it refuses where the real run would
    args = ["trunk", "delete", saved, "--yes", "--json"]
    if module.params["force"] or not at_amazon:  # gone at Amazon: only forgotten here
        args.append("--force")
    if module.check_mode:
        args.append("--dry-run")
    rc, out, err = pb.run(args)
    doc = parse_json(out)
    if rc != 0 or doc is None:
        pb.fail(args, rc, out, err, doc,
                msg=last_error(err).replace("pass --force", "set force: true") or
                "pbx-bridge trunk delete: exit %d" % rc)
    result["action"] = doc.get("action", action)
    return result


def main():
    spec = common_argument_spec()
    spec.update(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        asterisk_dir=dict(type="path"),
        fqdn=dict(type="str"),
        cert_chain=dict(type="path"),
        peers=dict(type="list", elements="str"),
        public_ip=dict(type="str"),
        dns_server=dict(type="str"),
        skip_preflight=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        timeout=dict(type="int", default=900),
        force=dict(type="bool", default=False),
        pending=dict(type="str", default=""),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    pb = PbxBridge(module)
    if module.params["state"] == "present":
        module.exit_json(**present(module, pb))
    module.exit_json(**absent(module, pb))


if __name__ == "__main__":
    main()
