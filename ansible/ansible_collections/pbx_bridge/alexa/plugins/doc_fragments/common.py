# -*- coding: utf-8 -*-
# Copyright: pbx-bridge developers
# MIT License (see LICENSE in the pbx-bridge repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  executable:
    description:
      - The C(pbx-bridge) command to run on the managed host, a name looked up on C(PATH)
        or an absolute path.
      - The modules run it and translate its JSON output; pbx-bridge must be installed on
        the host (see the project's README). The modules never start daemons themselves.
    type: str
    default: pbx-bridge
  config:
    description:
      - The pbx-bridge settings file on the managed host (C(PBX_BRIDGE_CONFIG)); default
        C(/etc/pbx-bridge/pbx-bridge.toml). It must be mode 0600.
    type: path
  state_dir:
    description:
      - The state dir (C(PBX_BRIDGE_STATE_DIR)); default the settings' C([paths] state_dir),
        else C(/var/lib/pbx-bridge).
    type: path
  api_url:
    description:
      - Amazon's PBX API base URL (C(PBX_BRIDGE_API_URL)); default the settings', else
        C(https://api.amazonalexa.com). Point it at C(pbx-bridge emulator) to rehearse.
    type: str
  token_url:
    description:
      - The Login with Amazon token endpoint (C(PBX_BRIDGE_TOKEN_URL)).
    type: str
  client_id:
    description:
      - The Login with Amazon client id (C(PBX_BRIDGE_CLIENT_ID)); default the settings'.
    type: str
  client_secret:
    description:
      - The client secret (C(PBX_BRIDGE_CLIENT_SECRET)); default the settings'. Keep it in
        ansible-vault. It is handed to pbx-bridge in its environment, never on its command
        line, and never shown in output or logs.
    type: str
  refresh_token:
    description:
      - A refresh token, to use the refresh-token grant instead of client credentials
        (C(PBX_BRIDGE_REFRESH_TOKEN)). A secret, like I(client_secret).
    type: str
  allow_private_peers:
    description:
      - Let the trunk's peer be a private address (C(PBX_BRIDGE_ALLOW_PRIVATE_PEERS=1)), to
        rehearse against the emulator. Amazon itself can only reach a public address.
    type: bool
    default: false
  lock_wait:
    description:
      - Seconds to wait, retrying, while another pbx-bridge command holds the state dir's
        lock (another playbook, or the PBX's own timers); 0 fails at once. A command that
        finds the lock taken has done nothing yet, so running it again is safe.
    type: int
    default: 0
notes:
  - Runs the installed C(pbx-bridge) CLI, which does the work; see its README for what each
    command checks and writes.
requirements:
  - pbx-bridge installed on the managed host (Python 3.10 or later).
'''
