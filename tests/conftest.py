from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import FQDN, PUBLIC_IP, DnsServer  # noqa: E402

# Several tests press Ctrl-C on a command they started (SIGINT). A shell that starts the suite
# in the background (`cmd &` without job control) leaves SIGINT ignored, and an ignored signal
# stays ignored in every child: those commands would never see it. A handler (not an
# ignore) is reset to the default at exec, so the commands get Python's KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)

# The modules whose tests drive the pbx-bridge command (through helpers.PB_CMD or pb()):
# `pytest -m cli` with PBX_BRIDGE_TEST_BIN=/usr/bin/pbx-bridge runs them against an installed
# command (.ci/run: the Debian package, on Debian's python3 and libraries).
CLI_MODULES = (
    "test_agi", "test_ami", "test_cli", "test_everyday", "test_examples", "test_generate",
    "test_generate_crash", "test_honest", "test_map_bounds", "test_named_errors",
    "test_preflight_checks", "test_real_asterisk", "test_reload_and_rollback", "test_renew",
    "test_rooms", "test_rooms_crash", "test_safety", "test_security", "test_status",
    "test_test_call", "test_trunk_cli", "test_units",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module is not None and item.module.__name__ in CLI_MODULES:
            item.add_marker(pytest.mark.cli)


DEFAULT_RECORDS = {FQDN: [PUBLIC_IP], "elsewhere.harbor-hotel.test": ["52.95.110.1"]}


@pytest.fixture(scope="session")
def _dns_server():
    server = DnsServer(DEFAULT_RECORDS)
    yield server
    server.stop()


@pytest.fixture
def dns(_dns_server):
    """A loopback DNS server (dnslib): FQDN -> PUBLIC_IP, plus what a test adds to .records."""
    _dns_server.resolver.records = {k: list(v) for k, v in DEFAULT_RECORDS.items()}
    _dns_server.resolver.queries.clear()
    return _dns_server


@pytest.fixture
def emulator():
    """Start emulators on loopback (config overrides as keyword arguments); all stopped after."""
    import io

    from pbx_bridge.amazon.emulator import EmulatorConfig, start
    servers = []

    def make(**kw):
        kw.setdefault("log", io.StringIO())
        kw.setdefault("activate_after", 0.3)
        kw.setdefault("retry_after", 0)
        server, _ = start(EmulatorConfig(**kw))
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def api_for(tmp_path):
    """A client (PbxApi) for an emulator server, with a fake clock."""
    from helpers import FakeClock, settings_for
    from pbx_bridge.amazon.client import PbxApi
    from pbx_bridge.amazon.http import Http
    from pbx_bridge.amazon.token import TokenProvider

    def make(server, clock=None, **kw):
        clock = clock or FakeClock()
        settings = settings_for(server.url, tmp_path / "state", **kw)
        http = Http(5.0)
        tokens = TokenProvider(settings, http, clock)
        return PbxApi(settings.api_url, http, tokens, clock)

    return make


@pytest.fixture
def hotel(emulator, tmp_path, api_for):
    """An emulator with a trunk and a property of 40 rooms; the trunk id saved in the state."""
    from helpers import PUBLIC_IP, SECRET, cli_env, make_pki
    from pbx_bridge.amazon.models import Peer, TrunkSpec
    rooms = tmp_path / "rooms.json"
    rooms.write_text(json.dumps({"properties": {"amzn1.ask.unit.hotel": [
        {"id": f"amzn1.ask.unit.r{100 + i}", "name": f"Room {100 + i}"} for i in range(40)]}}))

    def make(**kw):
        # The hotel's trunk is an existing one, ACTIVE from the start: a trunk that stays
        # PENDING for a while would race every command that reads it (status, rooms).
        kw.setdefault("activate_after", 0)
        srv = emulator(client_secret=SECRET, rooms_file=rooms, **kw)
        pki = make_pki()
        api = api_for(srv, client_secret=__import__("pbx_bridge.secret").secret.Secret(SECRET))
        t = api.create_trunk(TrunkSpec("pbx.harbor-hotel.test",
                                       (pki.leaf.pem().decode(),), (Peer(PUBLIC_IP, 5061),)))
        state = tmp_path / "state"
        state.mkdir(exist_ok=True)
        (state / "state.json").write_text(json.dumps({"trunkId": t.trunk_id}))
        return srv, t.trunk_id, cli_env(srv, state)
    return make
