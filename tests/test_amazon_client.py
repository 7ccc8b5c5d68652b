"""The token provider and PBX API client against the emulator, over real HTTP on loopback."""

from __future__ import annotations

import json
import socket
import stat

import pytest

from helpers import PUBLIC_IP, FakeClock, LoopbackServer, make_pki, settings_for
from pbx_bridge.amazon.client import PbxApi
from pbx_bridge.amazon.errors import ApiError, NetworkError
from pbx_bridge.amazon.http import Http
from pbx_bridge.amazon.models import BadResponse, Mapping, Peer, TrunkSpec
from pbx_bridge.amazon.token import TokenProvider
from pbx_bridge.errors import UsageError
from pbx_bridge.secret import Secret

PKI = make_pki()
CHAIN = (PKI.leaf.pem().decode(), PKI.inter.pem().decode())
SPEC = TrunkSpec("pbx.harbor-hotel.test", CHAIN, (Peer(PUBLIC_IP, 5061),))


def provider(server, tmp_path, clock=None, **kw):
    s = settings_for(server.url, tmp_path / "state", **kw)
    return TokenProvider(s, Http(5.0), clock or FakeClock())


# ------------------------------------------------------------------ tokens

def test_token_is_cached_0600_and_reused_across_runs(emulator, tmp_path):
    srv = emulator()
    tok, info = provider(srv, tmp_path).get()
    assert info.scope == "amazon_communication::network:siptrunk"
    cache = tmp_path / "state" / "token.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    before = srv.emulator.requests
    tok2, _ = provider(srv, tmp_path).get()  # a new run: from the cache, no request
    assert tok2 == tok and srv.emulator.requests == before


def test_token_refreshed_a_minute_before_expiry(emulator, tmp_path):
    srv = emulator(token_ttl=3600)
    clock = FakeClock()
    p = provider(srv, tmp_path, clock)
    first, _ = p.get()
    clock.offset = 3600 - 61
    assert p.get()[0] == first
    clock.offset = 3600 - 59
    assert p.get()[0] != first


def test_refresh_token_grant(emulator, tmp_path):
    srv = emulator(refresh_tokens=("Atzr|admin-login",))
    p = provider(srv, tmp_path, refresh_token=Secret("Atzr|admin-login"))
    assert p.get()[1].scope
    bad = provider(srv, tmp_path / "b", refresh_token=Secret("Atzr|revoked"))
    with pytest.raises(ApiError) as err:
        bad.get()
    assert err.value.status == 400 and "invalid_grant" in str(err.value)


@pytest.mark.parametrize("kw,status,code", [
    ({"client_secret": Secret("wrong")}, 401, "invalid_client"),
    ({"scope": "alexa::devices:all"}, 400, "invalid_scope"),
])
def test_token_errors_are_clear_and_not_retried(emulator, tmp_path, kw, status, code):
    srv = emulator()
    with pytest.raises(ApiError) as err:
        provider(srv, tmp_path, **kw).get()
    assert err.value.status == status and code in str(err.value)
    assert "request id" in str(err.value)
    assert srv.emulator.requests == 1
    assert "wrong" not in str(err.value)


def test_api_401_refreshes_once_and_retries(emulator, api_for):
    srv = emulator()
    api = api_for(srv)
    api.list_trunks()
    srv.emulator.tokens.clear()  # as if Amazon revoked every token
    assert api.list_trunks() == []
    # a server that refuses every token: refreshed once, then the 401 is the answer
    from pbx_bridge.amazon.emulator import HttpError

    def refuse(header, need_scope):
        raise HttpError(401, "Unauthorized", "invalid access token")
    srv.emulator.authorize = refuse
    n = srv.emulator.requests
    with pytest.raises(ApiError) as err:
        api.list_trunks()
    assert err.value.status == 401
    assert srv.emulator.requests - n == 3  # call, token refresh, call again


def test_scope_missing_is_403(emulator, api_for):
    srv = emulator(scopes=("amazon_communication::network:siptrunk", "profile"))
    api = api_for(srv, scope="profile")
    with pytest.raises(ApiError) as err:
        api.list_trunks()
    assert err.value.status == 403 and err.value.request_id


# ------------------------------------------------------------------ trunks and mappings

def test_trunk_lifecycle_and_pagination(emulator, api_for):
    srv = emulator(activate_after=0)
    api = api_for(srv)
    t = api.create_trunk(SPEC)
    assert t.trunk_id.startswith("amzn1.comms.network.siptrunk.")
    got = api.get_trunk(t.trunk_id)
    assert got.status == "ACTIVE" and got.name == SPEC.name and got.peers == SPEC.peers
    assert got.certificate_chain == CHAIN
    assert api.find_trunk(SPEC) == got
    for i in range(25):
        api.map_extension(t.trunk_id, Mapping(str(7200 + i), f"amzn1.alexa.unit.did.r{i}"))
    before = api.calls
    maps = api.list_mappings(t.trunk_id)
    assert [m.extension for m in maps] == [str(7200 + i) for i in range(25)]
    assert api.calls - before == 3  # 10 + 10 + 5
    api.update_mapping(t.trunk_id, Mapping("7200", "amzn1.alexa.unit.did.new"))
    assert api.get_mapping(t.trunk_id, "7200").comms_profile_id == "amzn1.alexa.unit.did.new"
    api.delete_mapping(t.trunk_id, "7200")
    moved = TrunkSpec(SPEC.name, SPEC.certificate_chain, (Peer("54.240.196.11", 5061),))
    updated = api.update_trunk(t.trunk_id, moved)
    assert updated.peers == (Peer("54.240.196.11", 5061),)
    assert updated.certificate_chain == SPEC.certificate_chain  # the whole trunk was sent
    # PUT replaces the trunk: the emulator, as the contract says, refuses a part of it
    with pytest.raises(ApiError) as err:
        api.call("PUT", f"/v1/communications/network/siptrunk/{t.trunk_id}", "update trunk",
                 {"tls": SPEC.to_wire()["tls"]})
    assert err.value.status == 400 and "peers missing" in str(err.value)
    api.delete_trunk(t.trunk_id)
    with pytest.raises(ApiError) as err:
        api.get_trunk(t.trunk_id)
    assert err.value.status == 404


@pytest.mark.parametrize("body,word", [
    ({"tls": {"name": "pbx.test", "certificateChain": ["nope"]},
      "peers": [{"ip": PUBLIC_IP, "port": 5061}]}, "not a PEM"),
    ({"tls": {"name": "pbx.test", "certificateChain": list(CHAIN)},
      "peers": [{"ip": PUBLIC_IP, "port": 5061}, {"fqdn": "pbx.test", "port": 5061}]},
     "all IP-based or all FQDN-based"),
    ({"tls": {"name": "pbx.test", "certificateChain": list(CHAIN)},
      "peers": [{"ip": PUBLIC_IP, "port": 70000}]}, "1..65535"),
    ({"tls": {"name": "pbx.test", "certificateChain": list(CHAIN)}, "peers": []},
     "non-empty"),
])
def test_emulator_validates_trunks(emulator, api_for, body, word):
    api = api_for(emulator())
    with pytest.raises(ApiError) as err:
        api.call("POST", "/v1/communications/network/siptrunk", "create trunk", body)
    assert err.value.status == 400 and word in str(err.value)


def test_emulator_accepts_sample_code_tls_list_shape(emulator, api_for):
    api = api_for(emulator())
    body = {"tls": [{"name": "pbx.test", "certificateChain": list(CHAIN)}],
            "peers": [{"ip": PUBLIC_IP, "port": 5061, "name": "pbx"}]}
    status, doc = api.call("POST", "/v1/communications/network/siptrunk", "create", body,
                           ok=(201,))
    assert status == 201 and api.get_trunk(doc["trunkId"]).name == "pbx.test"


def test_mapping_errors(emulator, api_for):
    api = api_for(emulator())
    t = api.create_trunk(SPEC)
    api.map_extension(t.trunk_id, Mapping("7201", "amzn1.alexa.unit.did.abc"))
    with pytest.raises(ApiError) as err:  # a different profile on a mapped extension
        api.map_extension(t.trunk_id, Mapping("7201", "amzn1.alexa.unit.did.other"))
    assert err.value.status == 409
    with pytest.raises(ApiError) as err:
        api.map_extension(t.trunk_id, Mapping("7202", "arn:aws:not-amazon-id"))
    assert err.value.status == 400
    with pytest.raises(ApiError) as err:
        api.get_mapping("amzn1.comms.network.siptrunk.nosuch", "7201")
    assert err.value.status == 404
    with pytest.raises(UsageError):
        api.get_mapping(t.trunk_id, "72a1")
    with pytest.raises(UsageError):
        api.get_trunk("../../etc")
    with pytest.raises(ApiError) as err:
        api.call("GET", f"/v1/communications/network/siptrunk/{t.trunk_id}/extensions",
                 "list", params={"maxResults": "11"})
    assert err.value.status == 400 and "1..10" in str(err.value)


# ------------------------------------------------------------------ retries

def test_throttling_errors_and_cuts_are_survived_without_duplicates(emulator, api_for):
    srv = emulator(throttle_rate=0.3, error_rate=0.05, cut_rate=0.05, seed=7)
    clock = FakeClock()
    api = api_for(srv, clock)
    t = api.create_trunk(SPEC)
    for i in range(40):
        api.map_extension(t.trunk_id, Mapping(str(8000 + i), f"amzn1.alexa.unit.did.{i}"))
    assert len(api.list_mappings(t.trunk_id)) == 40
    assert len(srv.emulator.state.trunks) == 1
    assert clock.sleeps  # it did back off
    log = srv.emulator.config.log.getvalue()
    assert " 429 " in log and ("cut-after" in log or "cut-before" in log)


def test_retry_after_is_honoured_and_retries_are_bounded(emulator, api_for):
    srv = emulator(throttle_rate=1.0, retry_after=3)
    clock = FakeClock()
    api = api_for(srv, clock)
    with pytest.raises(NetworkError) as err:
        api.list_trunks()
    assert "HTTP 429" in str(err.value) and "gave up after" in str(err.value)
    assert clock.sleeps and all(s >= 3 for s in clock.sleeps)
    assert len(clock.sleeps) < 8


def test_4xx_is_not_retried(emulator, api_for):
    srv = emulator()
    api = api_for(srv)
    api.list_trunks()
    n = srv.emulator.requests
    with pytest.raises(ApiError) as err:
        api.get_trunk("amzn1.comms.network.siptrunk.missing")
    assert err.value.status == 404 and srv.emulator.requests == n + 1
    assert err.value.request_id and err.value.request_id in str(err.value)


class _Raw(LoopbackServer):
    """A loopback server that answers every request with fixed raw bytes."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        super().__init__(self.answer)
        self.url = f"http://127.0.0.1:{self.port}"

    def answer(self, c: socket.socket) -> None:
        with c:
            c.recv(65536)
            c.sendall(self.raw)


@pytest.mark.parametrize("raw,word", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n<html>hi</html>", "not JSON"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n{\"access_tok", "failed"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]", "without an access_token"),
])
def test_garbage_token_answers_are_clear_errors(tmp_path, raw, word):
    server = _Raw(raw)
    s = settings_for(server.url, tmp_path)
    clock = FakeClock()
    with pytest.raises((BadResponse, NetworkError)) as err:
        TokenProvider(s, Http(2.0), clock).get()
    assert word in str(err.value)
    server.close()


def test_garbage_api_answer_is_a_clear_error(emulator, tmp_path):
    srv = emulator()
    server = _Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nx-amzn-requestid: r-1\r\n\r\n"
                  b"not json!")
    s = settings_for(server.url, tmp_path, token_url=srv.url + "/auth/o2/token")
    http = Http(2.0)
    api = PbxApi(server.url, http, TokenProvider(s, http, FakeClock()), FakeClock())
    with pytest.raises(BadResponse) as err:
        api.list_trunks()
    assert "not JSON" in str(err.value) and "r-1" in str(err.value)
    server.close()


def test_connection_refused_is_retried_then_reported(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    clock = FakeClock()
    with pytest.raises(NetworkError) as err:
        TokenProvider(settings_for(url, tmp_path), Http(2.0), clock).get()
    assert "Connection refused" in str(err.value)
    assert len(clock.sleeps) >= 1


def test_units_and_profiles(emulator, api_for, tmp_path):
    rooms = tmp_path / "rooms.json"
    rooms.write_text(json.dumps({"properties": {"amzn1.ask.unit.hotel": [
        {"id": f"amzn1.ask.unit.room{i}", "name": f"Room {100 + i}"} for i in range(12)]}}))
    api = api_for(emulator(rooms_file=rooms))
    units = api.list_units("amzn1.ask.unit.hotel")
    assert [u.name for u in units][:2] == ["Room 100", "Room 101"] and len(units) == 12
    assert api.get_profile(units[0].unit_id) is None
    pid = api.create_profile(units[0].unit_id, "Room 100")
    assert pid.startswith("amzn1.alexa.communications.profile.did.")
    assert api.get_profile(units[0].unit_id) == pid
    assert api.create_profile(units[0].unit_id, "Room 100") == pid
