#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pbx-bridge developers
# MIT License (see LICENSE in the pbx-bridge repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: rooms
short_description: Keep a property's extension-to-room mappings at Amazon in sync, through pbx-bridge
description:
  - Makes the mappings Amazon holds for the saved trunk match a room map, with
    C(pbx-bridge rooms apply --json --yes); deletes, then updates, then creates, and publishes
    the routes the dialplan's AGI reads. C(changed) only when Amazon's mappings change.
  - The map is a CSV file on the managed host (I(map)) or a list of dicts (I(mappings)),
    which the module writes to a temporary CSV for pbx-bridge; every row is checked by
    pbx-bridge before anything is sent.
  - In check mode it runs C(pbx-bridge rooms plan --json), the plan apply would run,
    read-only. C(--diff) lists the creates (C(+)), updates (C(~)) and deletes (C(-)).
  - pbx-bridge refuses a plan that deletes or changes more than 25% of the existing mappings
    unless I(force); only mappings pbx-bridge created are deleted, unless I(prune).
version_added: 0.1.0
author:
  - pbx-bridge developers (!UNKNOWN)
extends_documentation_fragment:
  - pbx_bridge.alexa.common
options:
  map:
    description: A CSV room map on the managed host, C(extension,room,comms_profile_id).
    type: path
  mappings:
    description: The room map as a list.
    type: list
    elements: dict
    suboptions:
      extension:
        description: The room's Alexa extension (digits).
        type: str
        required: true
      room:
        description: The room's display name.
        type: str
        required: true
      comms_profile_id:
        description: The room's communication profile id; may be empty with I(property), to be looked up by room name.
        type: str
        default: ''
  property:
    description: The property's unit id, to look rooms without a profile id up by name.
    type: str
  trunk:
    description: The trunk id (default the saved trunk).
    type: str
  create_profiles:
    description: Create missing communication profiles.
    type: bool
    default: false
  prune:
    description: Also delete mappings pbx-bridge did not create.
    type: bool
    default: false
  force:
    description: Allow deleting or changing more than 25% of the existing mappings.
    type: bool
    default: false
  concurrency:
    description: Requests in flight (1..32).
    type: int
    default: 4
  endpoint:
    description: The trunk's PJSIP endpoint, for the dial strings the AGI hands out.
    type: str
    default: alexa
attributes:
  check_mode:
    description: The plan (C(rooms plan)), read-only.
    support: full
  diff_mode:
    description: The creates, updates and deletes of the plan.
    support: full
'''

EXAMPLES = r'''
- name: Rooms from the inventory
  pbx_bridge.alexa.rooms:
    mappings:
      - {extension: "7101", room: "Room 101", comms_profile_id: "amzn1.alexa.unit.did.a1"}
      - {extension: "7102", room: "Room 102", comms_profile_id: "amzn1.alexa.unit.did.a2"}

- name: Rooms from a CSV on the PBX, looked up by name in the property
  pbx_bridge.alexa.rooms:
    map: /etc/pbx-bridge/rooms.csv
    property: amzn1.ask.unit.hotel
'''

RETURN = r'''
plan:
  description: The plan (C(rooms plan --json)) that was applied, or would be in check mode.
  returned: always
  type: dict
  sample: {"trunkId": "amzn1.comms.network.siptrunk.1", "creates": [], "updates": [], "deletes": [], "unchanged": 40, "kept": 0, "existing": 40}
done:
  description: Changes done at Amazon.
  returned: not in check mode
  type: int
'''

import csv
import io
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pbx_bridge.alexa.plugins.module_utils.pbx_bridge import (
    PbxBridge, common_argument_spec, prepared_diff)


def map_csv(mappings):
    """The CSV pbx-bridge reads, from the list of dicts."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["extension", "room", "comms_profile_id"])
    for m in mappings:
        w.writerow([m["extension"], m["room"], m.get("comms_profile_id") or ""])
    return out.getvalue()


def plan_lines(plan):
    lines = []
    for c in plan.get("deletes") or ():
        lines.append("- %s %s %s" % (c["extension"], c.get("room") or "", c["commsProfileId"]))
    for c in plan.get("updates") or ():
        lines.append("~ %s %s %s -> %s" % (c["extension"], c.get("room") or "",
                                           c.get("oldCommsProfileId"), c["commsProfileId"]))
    for c in plan.get("creates") or ():
        lines.append("+ %s %s %s" % (c["extension"], c.get("room") or "", c["commsProfileId"]))
    return lines


def has_changes(plan):
    return any(plan.get(k) for k in ("creates", "updates", "deletes"))


def main():
    spec = common_argument_spec()
    spec.update(
        map=dict(type="path"),
        mappings=dict(type="list", elements="dict", options=dict(
            extension=dict(type="str", required=True),
            room=dict(type="str", required=True),
            comms_profile_id=dict(type="str", default=""),
        )),
        property=dict(type="str"),
        trunk=dict(type="str"),
        create_profiles=dict(type="bool", default=False),
        prune=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        concurrency=dict(type="int", default=4),
        endpoint=dict(type="str", default="alexa"),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=[("map", "mappings")],
                           required_one_of=[("map", "mappings")])
    pb = PbxBridge(module)
    p = module.params
    path = p["map"]
    if path is None:
        path = os.path.join(module.tmpdir, "rooms.csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write(map_csv(p["mappings"]))
    args = ["--json", "--map", path]
    for option, flag in (("property", "--property"), ("trunk", "--trunk")):
        if p[option]:
            args += [flag, p[option]]
    for option, flag in (("create_profiles", "--create-profiles"), ("prune", "--prune")):
        if p[option]:
            args.append(flag)
    if module.check_mode:
        rc, plan, err = pb.json(["rooms", "plan"] + args)
        result = dict(changed=has_changes(plan), plan=plan)
        share = (len(plan.get("updates") or ()) + len(plan.get("deletes") or ())) / float(
            plan.get("existing") or 1)
        if plan.get("existing") and share > 0.25 and not p["force"]:
            module.warn("apply would refuse this plan: it deletes or changes %d%% of the %d "
                        "existing mappings (more than 25%%); pass force=true"
                        % (share * 100, plan["existing"]))
    else:
        args += ["--yes", "--endpoint", p["endpoint"], "--concurrency", str(p["concurrency"])]
        if p["force"]:
            args.append("--force")
        rc, doc, err = pb.json(["rooms", "apply"] + args)
        plan = dict((k, v) for k, v in doc.items() if k not in ("done", "not_done", "error"))
        result = dict(changed=doc.get("done", 0) > 0, plan=plan, done=doc.get("done", 0))
    if module._diff and has_changes(plan):
        result["diff"] = prepared_diff("\n".join(plan_lines(plan)) + "\n")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
