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
    the routes the dialplan's AGI reads. C(changed) only when Amazon's mappings change, a
    room's name changes (the routes' caller-ID name), or the I(map) file written changes.
  - The map is a CSV file on the managed host (I(map)) or a list of dicts (I(mappings));
    every row is checked by pbx-bridge before anything is sent. With both, the list is
    written to I(map) first (only when its bytes change, atomically) and applied from there.
    Give it the map the PBX's own C(pbx-bridge-sync.timer) applies
    (C(/etc/pbx-bridge/rooms.csv)) so that the timer and the inventory agree rather than undo
    each other every 15 minutes. With I(mappings) alone they go to a temporary CSV.
  - In check mode it runs C(pbx-bridge rooms plan --json), the plan apply would run,
    read-only. C(--diff) lists the creates (C(+)), updates (C(~)) and deletes (C(-)).
  - pbx-bridge refuses a plan that deletes or changes more than 25% of the existing mappings
    unless I(force) (so does check mode); only mappings pbx-bridge created are deleted,
    unless I(prune).
  - An apply that stops part way fails with pbx-bridge's reason, and is C(changed) when some
    of its changes were done (I(done)).
version_added: 0.1.0
author:
  - pbx-bridge developers (!UNKNOWN)
extends_documentation_fragment:
  - pbx_bridge.alexa.common
options:
  map:
    description: A CSV room map on the managed host, C(extension,room,comms_profile_id);
      with I(mappings), where they are written.
    type: path
  mappings:
    description: The room map as a list.
    type: list
    elements: dict
    suboptions:
      extension:
        description:
          - The room's Alexa extension (digits), a string. Quote it in YAML, as in
            C("0701"); unquoted, YAML reads a leading zero as an octal number. A number is
            refused.
        type: raw
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
  pending:
    description:
      - In check mode, why no plan can be made now (e.g. no trunk yet, which check mode did
        not create). The plan is not run; the task reports C(changed), shows the I(mappings)
        as creates, and warns with this reason. Empty, or outside check mode, no effect.
    type: str
    default: ''
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
map_changed:
  description: Whether the I(map) file written from I(mappings) changed (or would).
  returned: with map and mappings
  type: bool
'''

import csv
import difflib
import io
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pbx_bridge.alexa.plugins.module_utils.pbx_bridge import (
    PbxBridge, common_argument_spec, last_error, prepared_diff)


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
    for c in plan.get("renames") or ():
        lines.append("~ %s room name %s -> %s" % (
            c["extension"], c.get("oldRoom") or '""', c.get("room") or '""'))
    return lines


def name_rows(message, mappings, path):
    """pbx-bridge names a map's rows by line; a temporary map's lines mean nothing to the
    task's author: name them by the list's index and extension instead."""
    def row(match):
        i = int(match.group(1)) - 2  # line 1 is the header
        if 0 <= i < len(mappings):
            return "mappings[%d] (extension %s)" % (i, mappings[i]["extension"])
        return match.group(0)
    return re.sub(r"\bline (\d+)\b", row, message.replace(path + ": ", "mappings: "))


def read_text(path):
    """The map file's text, or None when there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (IOError, OSError):
        return None


def text_diff(path, old, new):
    return "".join(difflib.unified_diff((old or "").splitlines(True), new.splitlines(True),
                                        "/dev/null" if old is None else path, path))


def write_map(module, path, text):
    """Atomically, keeping the old file's mode (a new one 0644: it holds no secret)."""
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        module.fail_json(msg="map %s: its folder does not exist" % path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".rooms-", suffix=".csv")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
    os.chmod(tmp, mode)
    module.atomic_move(tmp, path)


def has_changes(plan):
    return any(plan.get(k) for k in ("creates", "updates", "deletes", "renames"))


def main():
    spec = common_argument_spec()
    spec.update(
        map=dict(type="path"),
        mappings=dict(type="list", elements="dict", options=dict(
            extension=dict(type="raw", required=True),
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
        pending=dict(type="str", default=""),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_one_of=[("map", "mappings")])
    p = module.params
    for i, m in enumerate(p["mappings"] or ()):
        if not isinstance(m["extension"], str):  # 0701 unquoted is YAML's octal 449
            module.fail_json(msg="mappings[%d].extension %r is a number, not a string: quote "
                             "it in YAML (\"0701\": unquoted, a leading zero makes it octal)"
                             % (i, m["extension"]))
    pb = PbxBridge(module)
    result = {}
    file_diff = ""
    path = p["map"]
    if p["mappings"] is not None:
        text = map_csv(p["mappings"])
        if path is not None:
            old = read_text(path)
            result["map_changed"] = old != text
            if old != text:
                file_diff = text_diff(path, old, text)
        if path is None or (module.check_mode and result["map_changed"]):
            path = os.path.join(module.tmpdir, "rooms.csv")  # check mode writes no file
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        elif result["map_changed"]:
            write_map(module, path, text)
    if module.check_mode and p["pending"]:
        module.warn(p["pending"])
        plan = dict(creates=[dict(extension=m["extension"], room=m["room"],
                                  commsProfileId=m.get("comms_profile_id") or "")
                             for m in p["mappings"] or ()],
                    updates=[], deletes=[], pending=p["pending"])
        result.update(changed=True, plan=plan, msg=p["pending"])
        if module._diff:
            result["diff"] = prepared_diff(file_diff + "\n".join(plan_lines(plan)) + "\n")
        module.exit_json(**result)
    if p["mappings"] is not None and path.startswith(module.tmpdir):
        plain_fail = pb.fail

        def fail(args, rc, out, err, doc=None, **extra):
            plain_fail(args, rc, out, name_rows(err or "", p["mappings"], path), doc, **extra)
        pb.fail = fail
    args = ["--json", "--map", path]
    for option, flag in (("property", "--property"), ("trunk", "--trunk")):
        if p[option]:
            args += [flag, p[option]]
    for option, flag in (("create_profiles", "--create-profiles"), ("prune", "--prune")):
        if p[option]:
            args.append(flag)
    map_changed = bool(result.get("map_changed"))
    if module.check_mode:
        rc, plan, err = pb.json(["rooms", "plan"] + args)
        result.update(changed=has_changes(plan) or map_changed, plan=plan)
        share = (len(plan.get("updates") or ()) + len(plan.get("deletes") or ())) / float(
            plan.get("existing") or 1)
        if module._diff and (has_changes(plan) or file_diff):
            result["diff"] = prepared_diff(file_diff + "".join(
                line + "\n" for line in plan_lines(plan)))
        if plan.get("existing") and share > 0.25 and not p["force"]:
            result["msg"] = ("the apply would refuse this plan: it deletes or changes %d%% of "
                             "the %d existing mappings (more than 25%%); review it and set "
                             "force: true" % (share * 100, plan["existing"]))
            module.fail_json(**result)
        module.exit_json(**result)
    args += ["--yes", "--endpoint", p["endpoint"], "--concurrency", str(p["concurrency"])]
    if p["force"]:
        args.append("--force")
    rc, doc, err = pb.json(["rooms", "apply"] + args, ok=(0, 1))
    plan = dict((k, v) for k, v in doc.items() if k not in ("done", "not_done", "error"))
    done = doc.get("done") or 0
    # a rename changes only the routes the AGI reads (the caller-ID name), recorded on success
    renamed = rc == 0 and bool(plan.get("renames"))
    result.update(changed=done > 0 or renamed or map_changed, plan=plan, done=done)
    if module._diff and (has_changes(plan) or file_diff):
        result["diff"] = prepared_diff(file_diff + "".join(
            line + "\n" for line in plan_lines(plan)))
    if rc != 0:
        error = doc.get("error") or last_error(err) or "exit %d" % rc
        result.update(msg="rooms apply stopped: %s; %d change(s) done, %d not done (run it "
                      "again to finish)" % (error, done, doc.get("not_done") or 0),
                      rc=rc, stderr=err)
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
