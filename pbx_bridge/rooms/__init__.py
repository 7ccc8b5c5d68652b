"""The room map: the map file, the local store of mappings, the plan and its apply against
Amazon, the routes published for the AGI, and the PBX's endpoints (:mod:`.discover`)."""
