from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import FQDN, PUBLIC_IP, DnsServer  # noqa: E402


@pytest.fixture
def dns():
    """A loopback DNS server: FQDN -> PUBLIC_IP, plus whatever a test adds to .records."""
    server = DnsServer({FQDN: [PUBLIC_IP], "elsewhere.harbor-hotel.test": ["52.95.110.1"]})
    yield server
    server.stop()
