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
