"""A local emulator of Amazon's token endpoint and PBX API, following
``amazon-api-contract.md``: a real HTTP server on loopback for rehearsals and tests.

It issues and expires tokens, checks bearer tokens and scope, validates every body as the
contract says (IP vs FQDN peers, ports, PEM chains, extension format), answers 404/409 where
Amazon would, starts trunks ``PENDING`` and turns them ``ACTIVE`` after a delay, paginates with
``maxResults`` 1..10, sets ``X-Amzn-RequestId`` on every answer, and injects faults on request:
throttling (429 with ``Retry-After``), 500/503, latency and cut connections.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, TextIO
from urllib.parse import parse_qs, unquote, urlparse

from cryptography import x509

from ..fileio import atomic_write

SCOPE = "amazon_communication::network:siptrunk"
TRUNKS = "/v1/communications/network/siptrunk"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


@dataclass
class EmulatorConfig:
    client_id: str = "emulator-client"
    client_secret: str = "emulator-secret"
    refresh_tokens: tuple[str, ...] = ()
    scopes: tuple[str, ...] = (SCOPE,)  # scopes the client may be granted
    token_ttl: float = 3600.0
    activate_after: float = 10.0  # seconds a new trunk stays PENDING
    fail_names: tuple[str, ...] = ()  # trunks with a TLS name here end FAILED, not ACTIVE
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    cut_rate: float = 0.0
    latency_ms: float = 0.0
    retry_after: int = 1
    max_extension_length: int = 15
    seed: int | None = None
    state_file: Path | None = None
    rooms_file: Path | None = None
    log: TextIO | None = None


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class State:
    trunks: dict[str, dict[str, Any]] = field(default_factory=dict)
    mappings: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    properties: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)  # unit id -> profile id

    def to_json(self) -> dict[str, Any]:
        return {"trunks": self.trunks, "mappings": self.mappings, "profiles": self.profiles}


def _pem_chain_ok(chain: Any) -> str | None:
    if not isinstance(chain, list) or not chain:
        return "tls.certificateChain must be a non-empty list of PEM strings"
    for i, pem in enumerate(chain):
        if not isinstance(pem, str) or "-----BEGIN CERTIFICATE-----" not in pem:
            return f"tls.certificateChain[{i}] is not a PEM certificate"
        try:
            x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            return f"tls.certificateChain[{i}] does not parse as a certificate"
    return None


def _tls_part(tls: Any) -> dict[str, Any]:
    if isinstance(tls, list):  # Amazon's sample code: a list of {name, certificateChain}
        if len(tls) != 1 or not isinstance(tls[0], dict):
            raise HttpError(400, "InvalidInput", "tls must be an object (or a list of one)")
        tls = tls[0]
    if not isinstance(tls, dict):
        raise HttpError(400, "InvalidInput", "tls must be an object")
    name = tls.get("name")
    if not isinstance(name, str) or not _HOSTNAME.match(name):
        raise HttpError(400, "InvalidInput", "tls.name must be a host name")
    err = _pem_chain_ok(tls.get("certificateChain"))
    if err:
        raise HttpError(400, "InvalidInput", err)
    return {"name": name, "certificateChain": list(tls["certificateChain"])}


def _peers_part(peers: Any) -> list[dict[str, Any]]:
    if not isinstance(peers, list) or not peers:
        raise HttpError(400, "InvalidInput", "peers must be a non-empty list")
    kinds = set()
    out = []
    for i, p in enumerate(peers):
        if not isinstance(p, dict):
            raise HttpError(400, "InvalidInput", f"peers[{i}] must be an object")
        port = p.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise HttpError(400, "InvalidInput", f"peers[{i}].port must be 1..65535")
        if "ip" in p:
            kinds.add("ip")
            try:
                ip = ipaddress.IPv4Address(str(p["ip"]))
            except ValueError:
                raise HttpError(400, "InvalidInput",
                                f"peers[{i}].ip is not an IPv4 address") from None
            out.append({"ip": str(ip), "port": port})
        elif "fqdn" in p or "name" in p:
            kinds.add("fqdn")
            host = p.get("fqdn") or p.get("name")
            if not isinstance(host, str) or not _HOSTNAME.match(host) or \
                    re.match(r"^[\d.]+$", host):
                raise HttpError(400, "InvalidInput", f"peers[{i}].fqdn is not a host name")
            out.append({"fqdn": host, "port": port})
        else:
            raise HttpError(400, "InvalidInput", f"peers[{i}] needs ip or fqdn")
    if len(kinds) > 1:
        raise HttpError(400, "InvalidInput", "peers must be all IP-based or all FQDN-based")
    return out


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.rng = random.Random(config.seed)
        self.tokens: dict[str, tuple[float, str]] = {}
        self.state = State()
        self.requests = 0
        if config.state_file and config.state_file.exists():
            self.state = load_state(config.state_file)
        if config.rooms_file:
            self.state.properties = load_rooms(config.rooms_file)
            for rooms in self.state.properties.values():
                for room in rooms:
                    if room.get("profileId"):
                        self.state.profiles.setdefault(room["id"], room["profileId"])

    # ------------------------------------------------------------ plumbing

    def save(self) -> None:
        if self.config.state_file:
            atomic_write(self.config.state_file, json.dumps(self.state.to_json()).encode())

    def log(self, line: str) -> None:
        if self.config.log is not None:
            self.config.log.write(line + "\n")
            self.config.log.flush()

    def fault(self) -> str | None:
        """Which fault, if any, this request gets."""
        with self.lock:
            r = self.rng.random()
        c = self.config
        if r < c.throttle_rate:
            return "throttle"
        r -= c.throttle_rate
        if r < c.error_rate:
            return "error"
        r -= c.error_rate
        if r < c.cut_rate:
            return "cut"
        return None

    # ------------------------------------------------------------ token endpoint

    def token(self, form: dict[str, str]) -> tuple[int, Any]:
        c = self.config
        grant = form.get("grant_type")
        if grant not in ("client_credentials", "refresh_token"):
            return 400, {"error": "unsupported_grant_type",
                         "error_description": "Unsupported grant type"}
        if form.get("client_id") != c.client_id or \
                not secrets.compare_digest(form.get("client_secret", ""), c.client_secret):
            return 401, {"error": "invalid_client",
                         "error_description": "Client authentication failed"}
        if grant == "refresh_token":
            if form.get("refresh_token") not in c.refresh_tokens:
                return 400, {"error": "invalid_grant",
                             "error_description": "The request has an invalid grant parameter"
                                                  " : refresh_token"}
            scope = " ".join(c.scopes)
        else:
            wanted = form.get("scope", "").split()
            if not wanted:
                return 400, {"error": "invalid_request",
                             "error_description": "The request is missing scope"}
            if any(s not in c.scopes for s in wanted):
                return 400, {"error": "invalid_scope",
                             "error_description": "The request has an invalid parameter : "
                                                  "scope"}
            scope = " ".join(wanted)
        tok = "Atc|" + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[tok] = (time.time() + c.token_ttl, scope)
        return 200, {"access_token": tok, "expires_in": int(c.token_ttl), "scope": scope,
                     "token_type": "bearer"}

    def authorize(self, header: str | None, need_scope: bool) -> None:
        if not header or not header.startswith("Bearer "):
            raise HttpError(401, "Unauthorized", "missing bearer token")
        with self.lock:
            entry = self.tokens.get(header[7:].strip())
        if entry is None:
            raise HttpError(401, "Unauthorized", "invalid access token")
        expires, scope = entry
        if expires < time.time():
            raise HttpError(401, "Unauthorized", "access token expired")
        if need_scope and SCOPE not in scope.split():
            raise HttpError(403, "Forbidden", f"token lacks scope {SCOPE}")

    # ------------------------------------------------------------ API

    def status_of(self, trunk: dict[str, Any]) -> str:
        if time.time() - trunk["createdAt"] < self.config.activate_after:
            return "PENDING"
        return "FAILED" if trunk["tls"]["name"] in self.config.fail_names else "ACTIVE"

    def trunk_view(self, trunk: dict[str, Any]) -> dict[str, Any]:
        return {"trunkId": trunk["trunkId"], "status": self.status_of(trunk),
                "tls": trunk["tls"], "peers": trunk["peers"],
                "createdAt": _iso(trunk["createdAt"]), "updatedAt": _iso(trunk["updatedAt"])}

    def api(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if path.startswith(TRUNKS):
            return self.trunk_api(method, parts[4:], query, body)
        if path == "/v2/units" and method == "GET":
            return self.units(query)
        if path == "/v1/communications/profile":
            return self.profile(method, query, body)
        raise HttpError(404, "NotFound", f"no route {method} {path}")

    def page(self, items: list[Any], query: dict[str, str]) -> dict[str, Any]:
        raw = query.get("maxResults", "10")
        if not raw.isdigit() or not 1 <= int(raw) <= 10:
            raise HttpError(400, "InvalidInput", "maxResults must be 1..10")
        size = int(raw)
        start = 0
        if query.get("nextToken"):
            try:
                start = int(base64.urlsafe_b64decode(query["nextToken"].encode()).decode())
            except (ValueError, UnicodeDecodeError):
                raise HttpError(400, "InvalidInput", "invalid nextToken") from None
        chunk = items[start:start + size]
        doc: dict[str, Any] = {"results": chunk}
        if start + size < len(items):
            nxt = base64.urlsafe_b64encode(str(start + size).encode()).decode()
            doc["paginationContext"] = {"nextToken": nxt}
        return doc

    def trunk_api(self, method: str, rest: list[str], query: dict[str, str], body: Any
                  ) -> tuple[int, Any]:
        st = self.state
        with self.lock:
            if not rest:
                if method == "GET":
                    trunks = sorted(st.trunks.values(), key=lambda t: t["createdAt"])
                    return 200, self.page([self.trunk_view(t) for t in trunks], query)
                if method == "POST":
                    if not isinstance(body, dict):
                        raise HttpError(400, "InvalidInput", "body must be a JSON object")
                    tls = _tls_part(body.get("tls"))
                    peers = _peers_part(body.get("peers"))
                    tid = "amzn1.comms.network.siptrunk." + uuid.uuid4().hex[:24]
                    now = time.time()
                    st.trunks[tid] = {"trunkId": tid, "tls": tls, "peers": peers,
                                      "createdAt": now, "updatedAt": now}
                    st.mappings[tid] = {}
                    self.save()
                    return 201, {"trunkId": tid}
                raise HttpError(405, "MethodNotAllowed", method)
            tid = rest[0]
            trunk = st.trunks.get(tid)
            if trunk is None:
                raise HttpError(404, "NotFound", f"no trunk {tid}")
            if len(rest) == 1:
                if method == "GET":
                    return 200, self.trunk_view(trunk)
                if method == "PUT":  # replaces the trunk: the body is all of it
                    if not isinstance(body, dict):
                        raise HttpError(400, "InvalidInput", "body must be the trunk")
                    for part in ("tls", "peers"):
                        if part not in body:
                            raise HttpError(400, "InvalidInput", f"{part} missing: PUT "
                                            "replaces the trunk, tls and peers together")
                    trunk["tls"] = _tls_part(body["tls"])
                    trunk["peers"] = _peers_part(body["peers"])
                    trunk["updatedAt"] = time.time()
                    self.save()
                    return 200, self.trunk_view(trunk)
                if method == "DELETE":
                    del st.trunks[tid]
                    st.mappings.pop(tid, None)
                    self.save()
                    return 204, None
                raise HttpError(405, "MethodNotAllowed", method)
            maps = st.mappings.setdefault(tid, {})
            if rest[1:] == ["extensions"] and method == "GET":
                items = [maps[k] for k in sorted(maps)]
                return 200, self.page(items, query)
            if len(rest) == 3 and rest[1] == "extension":
                return self.extension(method, maps, rest[2], body)
        raise HttpError(404, "NotFound", "no such resource")

    def extension(self, method: str, maps: dict[str, dict[str, Any]], ext: str, body: Any
                  ) -> tuple[int, Any]:
        n = self.config.max_extension_length
        if not re.fullmatch(rf"[0-9]{{1,{n}}}", ext):
            raise HttpError(400, "InvalidInput", f"extension must be 1..{n} digits")
        if method in ("POST", "PUT"):
            if not isinstance(body, dict):
                raise HttpError(400, "InvalidInput", "body must be a JSON object")
            if body.get("routingType") != "communication-profile":
                raise HttpError(400, "InvalidInput", "routingType must be "
                                "communication-profile")
            pid = body.get("commsProfileId")
            if not isinstance(pid, str) or not pid.startswith("amzn1.") or len(pid) > 256:
                raise HttpError(400, "InvalidInput", "commsProfileId must be an amzn1. id")
            if method == "POST" and ext in maps:
                raise HttpError(409, "Conflict", f"extension {ext} is already mapped")
            if method == "PUT" and ext not in maps:
                raise HttpError(404, "NotFound", f"extension {ext} is not mapped")
            maps[ext] = {"extension": ext, "routingType": "communication-profile",
                         "commsProfileId": pid}
            self.save()
            return 200, maps[ext]
        if ext not in maps:
            raise HttpError(404, "NotFound", f"extension {ext} is not mapped")
        if method == "GET":
            return 200, maps[ext]
        if method == "DELETE":
            del maps[ext]
            self.save()
            return 204, None
        raise HttpError(405, "MethodNotAllowed", method)

    def units(self, query: dict[str, str]) -> tuple[int, Any]:
        parent = query.get("parentId")
        if not parent:
            raise HttpError(400, "InvalidInput", "parentId is required")
        rooms = self.state.properties.get(parent)
        if rooms is None:
            raise HttpError(404, "NotFound", f"no property {parent}")
        items = [{"id": r["id"], "name": {"type": "PLAIN_TEXT",
                                          "value": {"text": r["name"], "locale": "en-US"}}}
                 for r in rooms]
        return 200, self.page(items, query)

    def profile(self, method: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        known = {r["id"] for rooms in self.state.properties.values() for r in rooms}
        with self.lock:
            if method == "GET":
                uid = query.get("entity.id")
                if query.get("entity.type") != "UNIT" or not uid:
                    raise HttpError(400, "InvalidInput", "entity.type=UNIT and entity.id "
                                    "are required")
                if uid not in self.state.profiles:
                    raise HttpError(404, "NotFound", f"no profile for unit {uid}")
                return 200, {"profileId": self.state.profiles[uid],
                             "entity": {"type": "UNIT", "id": uid}}
            if method == "POST":
                ent = body.get("entity") if isinstance(body, dict) else None
                uid = ent.get("id") if isinstance(ent, dict) else None
                if not isinstance(ent, dict) or not isinstance(uid, str) or \
                        ent.get("type") != "UNIT":
                    raise HttpError(400, "InvalidInput", "entity {type: UNIT, id} required")
                if uid not in known:
                    raise HttpError(404, "NotFound", f"no unit {uid}")
                if uid in self.state.profiles:
                    return 200, {"profileId": self.state.profiles[uid]}
                pid = "amzn1.alexa.communications.profile.did." + uuid.uuid4().hex[:20]
                self.state.profiles[uid] = pid
                self.save()
                return 201, {"profileId": pid}
        raise HttpError(405, "MethodNotAllowed", method)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def load_state(path: Path) -> State:
    """A ``--state`` file as the emulator saved it; an empty file is an empty state. Raises
    ``ValueError`` (or ``OSError``) with what is wrong."""
    data = path.read_bytes()
    if not data.strip():
        return State()
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object with trunks, mappings and profiles")
    trunks, mappings, profiles = (doc.get(k, {}) for k in ("trunks", "mappings", "profiles"))
    if not (isinstance(trunks, dict) and all(isinstance(t, dict) for t in trunks.values())):
        raise ValueError("trunks must be an object of trunk objects")
    if not (isinstance(mappings, dict) and all(
            isinstance(m, dict) and all(isinstance(x, dict) for x in m.values())
            for m in mappings.values())):
        raise ValueError("mappings must be an object of {extension: mapping} objects")
    if not (isinstance(profiles, dict) and all(isinstance(v, str) for v in profiles.values())):
        raise ValueError("profiles must be an object of strings")
    return State(trunks, mappings, {}, profiles)


def load_rooms(path: Path) -> dict[str, list[dict[str, Any]]]:
    """``{"properties": {PROPERTY_ID: [{"id": UNIT_ID, "name": "Room 101"}, ...]}}``."""
    doc = json.loads(path.read_text())
    props = doc.get("properties") if isinstance(doc, dict) else None
    if not isinstance(props, dict):
        raise ValueError(f"{path}: expected {{\"properties\": {{PROPERTY_ID: [rooms]}}}}")
    for pid, rooms in props.items():
        if not isinstance(rooms, list) or not all(
                isinstance(r, dict) and isinstance(r.get("id"), str) and
                isinstance(r.get("name"), str) for r in rooms):
            raise ValueError(f"{path}: property {pid}: each room needs string id and name")
    return props


class _Handler(BaseHTTPRequestHandler):
    server: "EmulatorServer"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass  # our own one-line log instead

    def _reply(self, status: int, doc: Any, rid: str, headers: dict[str, str] | None = None
               ) -> None:
        body = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("X-Amzn-RequestId", rid)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _cut(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self) -> None:
        emu = self.server.emulator
        rid = str(uuid.uuid4())
        started = time.monotonic()
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status = 0
        with emu.lock:  # counted before the answer goes out, so a client never sees it lag
            emu.requests += 1
        fault = emu.fault()
        try:
            if emu.config.latency_ms:
                time.sleep(emu.config.latency_ms / 1000.0)
            if fault == "throttle":
                raise HttpError(429, "TooManyRequests", "Rate exceeded",
                                {"Retry-After": str(emu.config.retry_after)})
            if fault == "error":
                code = emu.rng.choice((500, 503))
                raise HttpError(code, "InternalFailure" if code == 500 else
                                "ServiceUnavailable", "injected failure")
            if fault == "cut" and emu.rng.random() < 0.5:
                status = -1
                self._cut()
                return
            if url.path == "/auth/o2/token":
                if self.command != "POST":
                    raise HttpError(405, "MethodNotAllowed", self.command)
                form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
                status, doc = emu.token(form)
            else:
                emu.authorize(self.headers.get("Authorization"),
                              need_scope=url.path.startswith(TRUNKS))
                body = None
                if raw:
                    try:
                        body = json.loads(raw.decode("utf-8"))
                    except (ValueError, UnicodeDecodeError):
                        raise HttpError(400, "InvalidInput", "body is not JSON") from None
                status, doc = emu.api(self.command, url.path, query, body)
            if fault == "cut":  # the work is done, but the answer never arrives
                status = -2
                self._cut()
                return
            self._reply(status, doc, rid)
        except HttpError as exc:
            status = exc.status
            self._reply(exc.status, {"code": exc.code, "message": exc.message}, rid,
                        exc.headers)
        finally:
            shown = {-1: "cut-before", -2: "cut-after"}.get(status, str(status))
            emu.log(f"{time.strftime('%H:%M:%S')} {self.command} {url.path} {shown} "
                    f"{(time.monotonic() - started) * 1000:.0f}ms {rid}")

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


def start(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0
          ) -> tuple[EmulatorServer, threading.Thread]:
    """Start in a background thread (tests, benchmarks). Stop with ``server.shutdown()``."""
    server = EmulatorServer((host, port), Emulator(config))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    return server, thread


def serve_forever(config: EmulatorConfig, host: str, port: int,
                  announce: Callable[[str], None] = lambda s: print(s, file=sys.stderr)
                  ) -> None:
    server = EmulatorServer((host, port), Emulator(config))
    announce(f"pbx-bridge emulator listening on {server.url}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
