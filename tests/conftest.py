from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import FQDN, PUBLIC_IP, DnsServer  # noqa: E402

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

    from pbx_bridge.emulator import EmulatorConfig, start
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
