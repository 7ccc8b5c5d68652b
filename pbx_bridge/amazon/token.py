"""Login with Amazon access tokens: client-credentials or refresh-token grant, cached in the
state dir (mode 0600) and reused across runs until a minute before expiry."""

from __future__ import annotations

import hashlib
import json
import random
import threading
from pathlib import Path

from ..host import Clock
from ..fileio import atomic_write
from ..errors import PbxBridgeError
from ..statedir import prepare, untrusted
from ..secret import Secret
from ..settings import Settings
from .errors import ApiError, error_fields
from .http import Http, TransportError
from .models import BadResponse, Token
from .retry import RETRY_STATUSES, RetryPolicy, Transient, parse_retry_after, with_retries

EARLY = 60.0  # refresh this many seconds before expiry


class TokenProvider:
    def __init__(self, settings: Settings, http: Http, clock: Clock | None = None,
                 retry: RetryPolicy | None = None, rng: random.Random | None = None,
                 save_cache: bool = True) -> None:
        self.settings = settings
        self.save_cache = save_cache  # False: the cache is read, never written (a dry run)
        self.http = http
        self.clock = clock or Clock()
        self.retry = retry or RetryPolicy()
        self.rng = rng or random.Random()
        self._token: Secret | None = None
        self._info: Token | None = None
        self._lock = threading.Lock()  # one refresh at a time when requests run in parallel

    @property
    def cache_path(self) -> Path:
        return self.settings.state_dir / "token.json"

    def _cache_key(self) -> str:
        """Which credentials made a cached token: a slow salted hash of all of them (URL, id,
        secret, scope, refresh token), so a token is reused only for exactly these
        credentials and the file never holds (or cheaply reveals) the secret."""
        s = self.settings
        raw = "\0".join((s.token_url, s.client_id or "", s.scope,
                         s.client_secret.reveal() if s.client_secret else "",
                         s.refresh_token.reveal() if s.refresh_token else ""))
        return hashlib.pbkdf2_hmac("sha256", raw.encode(), b"pbx-bridge token cache v2",
                                   2000).hex()

    def _load_cache(self) -> tuple[Secret, Token] | None:
        try:
            if untrusted(self.cache_path) is not None:
                return None  # another user could have written it: not a token we trust
            doc = json.loads(self.cache_path.read_text())
            if doc.get("key") != self._cache_key():
                return None
            info = Token(str(doc["scope"]), float(doc["expires_at"]), str(doc["token_type"]))
            return Secret(str(doc["access_token"])), info
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # no cache, or a damaged one: get a fresh token

    def _save_cache(self, token: Secret, info: Token) -> None:
        if not self.save_cache:
            return
        doc = {"key": self._cache_key(), "access_token": token.reveal(), "scope": info.scope,
               "expires_at": info.expires_at, "token_type": info.token_type}
        try:
            prepare(self.settings.state_dir)  # no group/other write in the state dir
            # a new file each time: 0600 and ours, whatever chmod -R was run on the old one
            atomic_write(self.cache_path, json.dumps(doc).encode(), mode=0o600)
        except (OSError, PbxBridgeError):
            pass  # a read-only state dir costs a token request per run, nothing more

    def get(self, force: bool = False) -> tuple[Secret, Token]:
        """A token valid for at least another minute."""
        with self._lock:
            return self._get(force)

    def _get(self, force: bool) -> tuple[Secret, Token]:
        now = self.clock.now()
        if not force:
            if self._token and self._info and self._info.expires_at - EARLY > now:
                return self._token, self._info
            cached = self._load_cache()
            if cached and cached[1].expires_at - EARLY > now:
                self._token, self._info = cached
                return cached
        token, info = self._request()
        self._token, self._info = token, info
        self._save_cache(token, info)
        return token, info

    def _request(self) -> tuple[Secret, Token]:
        client_id, secret = self.settings.require_credentials()
        form = {"client_id": client_id, "client_secret": secret.reveal()}
        if self.settings.refresh_token:
            form.update(grant_type="refresh_token",
                        refresh_token=self.settings.refresh_token.reveal())
        else:
            form.update(grant_type="client_credentials", scope=self.settings.scope)

        def attempt() -> tuple[Secret, Token]:
            try:
                r = self.http.request("POST", self.settings.token_url, data=form,
                                      headers={"Accept": "application/json"})
            except TransportError as exc:
                raise Transient(str(exc), unreachable=exc.unreachable) from None
            if r.status == 200:
                return self._parse(r.body)
            code, msg = error_fields(r.body)
            rid = r.header("x-amzn-requestid")
            if r.status in RETRY_STATUSES:
                raise Transient(f"HTTP {r.status}" + (f" (request id {rid})" if rid else ""),
                                parse_retry_after(r.header("retry-after"), self.clock))
            hint = {"invalid_client": " (check client_id and client_secret)",
                    "invalid_scope": " (enable the SIP trunk scope for this security profile)",
                    "invalid_grant": " (the refresh token is wrong or revoked)"}
            raise ApiError("token request", r.status, code,
                           (msg or "") + hint.get(code or "", ""), rid)

        return with_retries("token request", attempt, self.retry, self.clock, self.rng)

    def _parse(self, body: bytes) -> tuple[Secret, Token]:
        try:
            doc = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise BadResponse("token endpoint answered 200 with a body that is not JSON") \
                from None
        if not isinstance(doc, dict) or not isinstance(doc.get("access_token"), str):
            raise BadResponse("token endpoint answered 200 without an access_token")
        expires_in = doc.get("expires_in", 3600)
        if not isinstance(expires_in, (int, float)) or expires_in <= 0:
            raise BadResponse("token endpoint answered with a bad expires_in")
        info = Token(str(doc.get("scope") or self.settings.scope),
                     self.clock.now() + float(expires_in),
                     str(doc.get("token_type") or "bearer"))
        return Secret(doc["access_token"]), info
