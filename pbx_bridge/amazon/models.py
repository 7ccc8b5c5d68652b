"""Typed, frozen models of the PBX API's bodies. Wire names are mapped to fields in one place
per model (``from_wire``/``to_wire``); unknown fields in responses are ignored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import PbxBridgeError


class BadResponse(PbxBridgeError):
    """Amazon (or the emulator) answered with a body we cannot use."""


def _obj(doc: Any, what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BadResponse(f"{what}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _str(doc: dict[str, Any], key: str, what: str, required: bool = True) -> str | None:
    v = doc.get(key)
    if v is None:
        if required:
            raise BadResponse(f"{what}: no {key!r} in the answer")
        return None
    if not isinstance(v, str):
        raise BadResponse(f"{what}: {key!r} is not a string")
    return v


@dataclass(frozen=True, order=True)
class Peer:
    host: str  # an IP, or an FQDN
    port: int
    is_ip: bool = True

    def to_wire(self) -> dict[str, Any]:
        return {"ip" if self.is_ip else "fqdn": self.host, "port": self.port}

    @staticmethod
    def from_wire(doc: Any) -> "Peer":
        d = _obj(doc, "peer")
        host = d.get("ip") or d.get("fqdn") or d.get("host")
        port = d.get("port")
        if not isinstance(host, str) or not isinstance(port, int):
            raise BadResponse("peer: needs 'ip' (or 'fqdn') and an integer 'port'")
        return Peer(host, port, "ip" in d and bool(d.get("ip")))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TrunkSpec:
    """What we send to create or update a trunk."""

    name: str
    certificate_chain: tuple[str, ...]
    peers: tuple[Peer, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"tls": {"certificateChain": list(self.certificate_chain), "name": self.name},
                "peers": [p.to_wire() for p in self.peers]}


@dataclass(frozen=True)
class Trunk:
    trunk_id: str
    status: str | None
    name: str | None
    certificate_chain: tuple[str, ...]
    peers: tuple[Peer, ...]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @staticmethod
    def from_wire(doc: Any) -> "Trunk":
        d = _obj(doc, "trunk")
        tid = _str(d, "trunkId", "trunk")
        assert tid is not None
        tls = d.get("tls") or {}
        if isinstance(tls, list):  # Amazon's sample code sends a list of {name, chain}
            tls = tls[0] if tls and isinstance(tls[0], dict) else {}
        if not isinstance(tls, dict):
            raise BadResponse("trunk: 'tls' is not an object")
        chain = tls.get("certificateChain") or []
        if not isinstance(chain, list) or not all(isinstance(c, str) for c in chain):
            raise BadResponse("trunk: 'tls.certificateChain' is not a list of strings")
        peers_raw = d.get("peers") or []
        if not isinstance(peers_raw, list):
            raise BadResponse("trunk: 'peers' is not a list")
        status = d.get("status")
        name = tls.get("name")
        return Trunk(tid, status if isinstance(status, str) else None,
                     name if isinstance(name, str) else None, tuple(chain),
                     tuple(Peer.from_wire(p) for p in peers_raw),
                     {k: v for k, v in d.items()
                      if k in ("createdAt", "updatedAt", "statusReason")})

    def spec(self) -> TrunkSpec:
        return TrunkSpec(self.name or "", self.certificate_chain, self.peers)

    def to_json(self) -> dict[str, Any]:
        return {"trunkId": self.trunk_id, "status": self.status, "name": self.name,
                "peers": [str(p) for p in self.peers],
                "certificates": len(self.certificate_chain), **self.extra}


@dataclass(frozen=True)
class Mapping:
    extension: str
    comms_profile_id: str
    routing_type: str = "communication-profile"

    def to_wire(self) -> dict[str, Any]:
        return {"routingType": self.routing_type, "commsProfileId": self.comms_profile_id}

    @staticmethod
    def from_wire(doc: Any, extension: str | None = None) -> "Mapping":
        d = _obj(doc, "extension mapping")
        ext = d.get("extension", extension)
        pid = _str(d, "commsProfileId", "extension mapping")
        if not isinstance(ext, str):
            raise BadResponse("extension mapping: no 'extension'")
        assert pid is not None
        rt = d.get("routingType")
        return Mapping(ext, pid, rt if isinstance(rt, str) else "communication-profile")


@dataclass(frozen=True)
class Unit:
    unit_id: str
    name: str

    @staticmethod
    def from_wire(doc: Any) -> "Unit":
        d = _obj(doc, "unit")
        uid = _str(d, "id", "unit")
        assert uid is not None
        name = d.get("name")
        text = ""
        if isinstance(name, dict):
            value = name.get("value")
            if isinstance(value, dict) and isinstance(value.get("text"), str):
                text = value["text"]
        elif isinstance(name, str):
            text = name
        return Unit(uid, text)


@dataclass(frozen=True)
class Token:
    scope: str
    expires_at: float
    token_type: str
