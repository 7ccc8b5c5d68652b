"""The PBX API client: every trunk and extension operation of the contract, plus the unit and
communication-profile look-ups. Takes its HTTP door, token provider and clock as arguments."""

from __future__ import annotations

import json
import random
import re
from typing import Any, Callable, Iterator, Mapping as MappingT
from urllib.parse import quote

from ..host import Clock
from ..errors import UsageError
from .errors import ApiError, NetworkError, error_fields
from .http import Http, TransportError
from .models import BadResponse, Mapping, Trunk, TrunkSpec, Unit
from .retry import RETRY_STATUSES, RetryPolicy, Transient, parse_retry_after, with_retries
from .token import TokenProvider

TRUNKS = "/v1/communications/network/siptrunk"
PAGE = 10  # maxResults must be 1..10
_EXTENSION = re.compile(r"^[0-9]{1,15}$")


def _segment(value: str, what: str) -> str:
    """A path segment from checked input, URL-encoded."""
    if what == "extension":
        if not _EXTENSION.match(value):
            raise UsageError(f"extension {value!r} must be 1 to 15 digits")
    elif not value or "/" in value or any(ord(c) < 32 for c in value) or value in (".", ".."):
        raise UsageError(f"{what} {value!r} is not a valid id")
    return quote(value, safe="")


class PbxApi:
    def __init__(self, api_url: str, http: Http, tokens: TokenProvider,
                 clock: Clock | None = None, retry: RetryPolicy | None = None,
                 rng: random.Random | None = None) -> None:
        self.base = api_url.rstrip("/")
        self.http = http
        self.tokens = tokens
        self.clock = clock or Clock()
        self.retry = retry or RetryPolicy()
        self.rng = rng or random.Random()
        self.calls = 0  # HTTP requests sent, for plans and benchmarks

    # ---------------------------------------------------------------- transport

    def call(self, method: str, path: str, what: str, body: Any = None,
             params: MappingT[str, str] | None = None, ok: tuple[int, ...] = (200,),
             on_transient: Callable[[], Any] | None = None) -> tuple[int, Any]:
        """One API operation with retries. ``on_transient`` (for non-idempotent calls) is asked,
        after an error that may or may not have been applied, whether the work is already done:
        a non-None result ends the call with that result."""
        refreshed = False

        def attempt() -> tuple[int, Any]:
            nonlocal refreshed
            while True:
                token, _ = self.tokens.get()
                headers = {"Authorization": f"Bearer {token.reveal()}",
                           "Accept": "application/json"}
                try:
                    self.calls += 1
                    r = self.http.request(method, self.base + path, headers=headers,
                                          json_body=body, params=params)
                except TransportError as exc:
                    raise Transient(str(exc), unreachable=exc.unreachable) from None
                rid = r.header("x-amzn-requestid")
                if r.status in ok:
                    return r.status, self._json(r.body, what, r.status, rid)
                if r.status == 401 and not refreshed:  # refresh once, retry once
                    refreshed = True
                    self.tokens.get(force=True)
                    continue
                code, msg = error_fields(r.body)
                if r.status in RETRY_STATUSES:
                    raise Transient(f"HTTP {r.status}" + (f" {code}" if code else "")
                                    + (f" (request id {rid})" if rid else ""),
                                    parse_retry_after(r.header("retry-after"), self.clock),
                                    maybe_applied=r.status != 429)
                raise ApiError(what, r.status, code, msg, rid)

        def done() -> tuple[int, Any] | None:
            result = on_transient() if on_transient is not None else None
            return None if result is None else (200, result)

        return with_retries(what, attempt, self.retry, self.clock, self.rng,
                            done if on_transient is not None else None)

    @staticmethod
    def _json(body: bytes, what: str, status: int, rid: str | None) -> Any:
        if not body.strip():
            return None
        try:
            return json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise BadResponse(f"{what}: HTTP {status} with a body that is not JSON"
                              + (f" (request id {rid})" if rid else "")) from None

    def _pages(self, path: str, what: str, key: str = "results",
               extra: MappingT[str, str] | None = None) -> Iterator[Any]:
        token: str | None = None
        seen: set[str] = set()
        while True:
            params = {"maxResults": str(PAGE), **(extra or {})}
            if token:
                params["nextToken"] = token
            _, doc = self.call("GET", path, what, params=params)
            if not isinstance(doc, dict):
                raise BadResponse(f"{what}: expected a JSON object")
            items = doc.get(key, [])
            if not isinstance(items, list):
                raise BadResponse(f"{what}: {key!r} is not a list")
            yield from items
            pc = doc.get("paginationContext") or {}
            token = pc.get("nextToken") if isinstance(pc, dict) else None
            if not token:
                return
            if token in seen:
                raise BadResponse(f"{what}: the same nextToken came back twice")
            seen.add(token)

    # ---------------------------------------------------------------- trunks

    def create_trunk(self, spec: TrunkSpec) -> Trunk:
        def already() -> Trunk | None:
            return self.find_trunk(spec)
        _, doc = self.call("POST", TRUNKS, "create trunk", spec.to_wire(), ok=(200, 201),
                           on_transient=already)
        if isinstance(doc, Trunk):
            return doc
        if not isinstance(doc, dict) or not isinstance(doc.get("trunkId"), str):
            raise BadResponse("create trunk: the answer has no trunkId")
        if "peers" not in doc:  # the guide shows only the id: fill in what we sent
            doc = {**spec.to_wire(), **doc}
        return Trunk.from_wire(doc)

    def get_trunk(self, trunk_id: str) -> Trunk:
        _, doc = self.call("GET", f"{TRUNKS}/{_segment(trunk_id, 'trunk id')}", "get trunk")
        return Trunk.from_wire(doc)

    def list_trunks(self) -> list[Trunk]:
        return [Trunk.from_wire(t) for t in self._pages(TRUNKS, "list trunks")]

    def find_trunk(self, spec: TrunkSpec) -> Trunk | None:
        """A trunk Amazon already has with the same TLS name and peers, if any."""
        want = sorted(spec.peers)
        for t in self.list_trunks():
            if t.name == spec.name and sorted(t.peers) == want:
                return t
        return None

    def update_trunk(self, trunk_id: str, spec: TrunkSpec) -> Trunk:
        """PUT replaces the trunk: the whole of it is sent, tls and peers together (a body
        with only the part that changed is refused, or taken as dropping the other)."""
        _, doc = self.call("PUT", f"{TRUNKS}/{_segment(trunk_id, 'trunk id')}",
                           "update trunk", spec.to_wire(), ok=(200, 204))
        if isinstance(doc, dict) and "trunkId" in doc:
            return Trunk.from_wire(doc)
        return self.get_trunk(trunk_id)

    def delete_trunk(self, trunk_id: str) -> None:
        def gone() -> bool | None:
            try:
                self.get_trunk(trunk_id)
                return None
            except ApiError as exc:
                return True if exc.status == 404 else None
        self.call("DELETE", f"{TRUNKS}/{_segment(trunk_id, 'trunk id')}", "delete trunk",
                  ok=(200, 202, 204), on_transient=gone)

    # ---------------------------------------------------------------- extensions

    def _ext_path(self, trunk_id: str, extension: str) -> str:
        return (f"{TRUNKS}/{_segment(trunk_id, 'trunk id')}/extension/"
                f"{_segment(extension, 'extension')}")

    def map_extension(self, trunk_id: str, mapping: Mapping) -> Mapping:
        def already() -> Mapping | None:
            try:
                got = self.get_mapping(trunk_id, mapping.extension)
            except ApiError:
                return None
            return got if got.comms_profile_id == mapping.comms_profile_id else None
        _, doc = self.call("POST", self._ext_path(trunk_id, mapping.extension), "map extension",
                           mapping.to_wire(), ok=(200, 201), on_transient=already)
        return doc if isinstance(doc, Mapping) else mapping

    def get_mapping(self, trunk_id: str, extension: str) -> Mapping:
        _, doc = self.call("GET", self._ext_path(trunk_id, extension), "get extension mapping")
        return Mapping.from_wire(doc, extension)

    def update_mapping(self, trunk_id: str, mapping: Mapping) -> Mapping:
        self.call("PUT", self._ext_path(trunk_id, mapping.extension), "update extension mapping",
                  mapping.to_wire(), ok=(200, 204))
        return mapping

    def delete_mapping(self, trunk_id: str, extension: str) -> None:
        self.call("DELETE", self._ext_path(trunk_id, extension), "delete extension mapping",
                  ok=(200, 202, 204))

    def list_mappings(self, trunk_id: str) -> list[Mapping]:
        path = f"{TRUNKS}/{_segment(trunk_id, 'trunk id')}/extensions"
        return [Mapping.from_wire(m) for m in self._pages(path, "list extension mappings")]

    # ---------------------------------------------------------------- rooms

    def list_units(self, property_id: str) -> list[Unit]:
        _segment(property_id, "property id")
        return [Unit.from_wire(u) for u in
                self._pages("/v2/units", "list units", "results",
                            {"parentId": property_id, "expand": "all"})]

    def get_profile(self, unit_id: str) -> str | None:
        _segment(unit_id, "unit id")
        try:
            _, doc = self.call("GET", "/v1/communications/profile", "get communication profile",
                               params={"entity.type": "UNIT", "entity.id": unit_id})
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        pid = doc.get("profileId") if isinstance(doc, dict) else None
        return pid if isinstance(pid, str) else None

    def create_profile(self, unit_id: str, name: str) -> str:
        _segment(unit_id, "unit id")
        _, doc = self.call("POST", "/v1/communications/profile", "create communication profile",
                           {"entity": {"type": "UNIT", "id": unit_id}, "name": name},
                           ok=(200, 201), on_transient=lambda: self.get_profile(unit_id))
        if isinstance(doc, str):
            return doc
        pid = doc.get("profileId") if isinstance(doc, dict) else None
        if not isinstance(pid, str):
            raise BadResponse("create communication profile: no profileId in the answer")
        return pid


__all__ = ["PbxApi", "ApiError", "NetworkError"]
