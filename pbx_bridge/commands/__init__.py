"""The commands: one module each (``add_parser``, ``run``). Their one-line help lives here, so
that ``pbx-bridge --help`` lists them all without importing any."""

HELPS = {
    'preflight': "check that this PBX meets Amazon's requirements (read-only)",
    'generate': ("generate the Amazon trunk's Asterisk config (dry run: a diff), --write it, "
                 "or --rollback"),
    'token': 'get (or reuse) an access token and show its scope and expiry',
    'trunk': 'create, show, list, update or delete the Amazon SIP trunk',
    'rooms': 'keep extension-to-room mappings in sync with Amazon (discover, import, plan, apply)',
    'test-call': "place a test call to a room's Alexa (or check a call from one) and diagnose it",
    'status': 'report whether the trunk still works (text, JSON, Prometheus, Nagios); read-only',
    'renew-hook': ("certbot deploy hook: install a renewed certificate, make Asterisk serve "
                   "it, update Amazon"),
    'agi': 'process AGI for the dialplan: AGI(pbx-bridge,agi,ROUTE,${EXTEN})',
    'fastagi': 'FastAGI server for the dialplan: AGI(agi://127.0.0.1:4573/ROUTE,${EXTEN})',
    'emulator': ("run a local emulator of Amazon's token endpoint and PBX API (for rehearsals "
                 "and tests)"),
    'config': 'write a commented settings file to start from',
}

# command -> the module that defines its parser (agi and fastagi share one)
MODULES = {
    'preflight': 'pbx_bridge.commands.preflight',
    'generate': 'pbx_bridge.commands.generate',
    'token': 'pbx_bridge.commands.token',
    'trunk': 'pbx_bridge.commands.trunk',
    'rooms': 'pbx_bridge.commands.rooms',
    'test-call': 'pbx_bridge.commands.test_call',
    'status': 'pbx_bridge.commands.status',
    'renew-hook': 'pbx_bridge.commands.renew',
    'agi': 'pbx_bridge.commands.agi',
    'fastagi': 'pbx_bridge.commands.agi',
    'emulator': 'pbx_bridge.commands.emulator',
    'config': 'pbx_bridge.commands.config',
}
