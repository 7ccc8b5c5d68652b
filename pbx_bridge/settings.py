"""Settings: one TOML file (default ``/etc/pbx-bridge/pbx-bridge.toml``, or ``--config FILE``,
or ``PBX_BRIDGE_CONFIG``), overridden by environment variables. Secrets may come from a file;
a settings or secret file that group or others can read is refused."""

from __future__ import annotations

import os
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from . import defaults
from .errors import InputError, UsageError
from .fileio import atomic_write
from .secret import Secret

DEFAULT_CONFIG = Path(defaults.DEFAULT_CONFIG)
DEFAULT_STATE_DIR = Path(defaults.DEFAULT_STATE_DIR)
DEFAULT_API_URL = "https://api.amazonalexa.com"
DEFAULT_TOKEN_URL = "https://api.amazon.com/auth/o2/token"
DEFAULT_SCOPE = "amazon_communication::network:siptrunk"

ENV = {
    "client_id": "PBX_BRIDGE_CLIENT_ID",
    "client_secret": "PBX_BRIDGE_CLIENT_SECRET",
    "refresh_token": "PBX_BRIDGE_REFRESH_TOKEN",
    "api_url": "PBX_BRIDGE_API_URL",
    "token_url": "PBX_BRIDGE_TOKEN_URL",
    "state_dir": "PBX_BRIDGE_STATE_DIR",
}


@dataclass(frozen=True)
class Settings:
    client_id: str | None
    client_secret: Secret | None
    refresh_token: Secret | None
    api_url: str
    token_url: str
    scope: str
    state_dir: Path
    asterisk_dir: Path
    source: str  # the settings file used, or which one was looked for (absent)
    timeout: float = 15.0
    ami: tuple[str, int, str, Secret] | None = None  # host, port, username, secret
    agi_user: str = "asterisk"  # who runs the AGI: rooms apply checks it can read the routes
    agi_group: str | None = None  # routes file 0640 with this group (else 0644)
    asterisk_cli: tuple[str, ...] = ("asterisk",)  # how to run the Asterisk CLI
    fastagi: tuple[str, int] | None = None  # where the FastAGI server listens (status asks)
    property: str | None = None  # the property's unit id, for the rooms commands
    key_group: str = "asterisk"  # private keys are written 0640 to it (0600 without it)

    def require_credentials(self) -> tuple[str, Secret]:
        if not self.client_id:
            raise UsageError("no client id: set client_id in [amazon] of the settings file or "
                             "PBX_BRIDGE_CLIENT_ID (pbx-bridge config init writes a file)")
        if not self.client_secret:
            raise UsageError("no client secret: set client_secret or client_secret_file in "
                             "[amazon], or PBX_BRIDGE_CLIENT_SECRET")
        return self.client_id, self.client_secret


def _check_private(path: Path, what: str) -> None:
    try:
        st = path.stat()
    except OSError as exc:
        raise InputError(str(path), f"cannot read {what}: {exc.strerror or exc}") from None
    if st.st_uid not in (0, os.geteuid()):
        raise InputError(str(path), f"{what} is owned by uid {st.st_uid}, who could change "
                         f"it; run: chown {os.geteuid()} {path}")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise InputError(str(path), f"{what} is readable by group or others; run: "
                         f"chmod 600 {path}")


SCHEMA = {
    "amazon": ("client_id", "client_secret", "client_secret_file", "refresh_token", "api_url",
               "token_url", "scope", "timeout"),
    "pbx": ("asterisk_dir", "asterisk_cli", "property", "key_group"),
    "agi": ("user", "group", "fastagi"),
    "paths": ("state_dir",),
    "ami": ("host", "port", "username", "secret"),
}


def _at(source: str, text: str, *patterns: str) -> str:
    """``SOURCE, line N`` for the first line matching one of ``patterns``, tried in order
    (``SOURCE`` alone when none does)."""
    import re
    for pattern in patterns:
        for n, line in enumerate(text.splitlines(), 1):
            if re.match(pattern, line.strip()):
                return f"{source}, line {n}"
    return source


def _key(name: str) -> str:
    """The pattern of a ``name = ...`` line."""
    import re
    return rf"{re.escape(name)}\s*="


def _unknown_keys(doc: dict[str, Any], text: str, source: str) -> None:
    """A typo (``api_ulr``) must not silently fall back to a default (the real Amazon)."""
    import difflib
    import re
    for name, value in doc.items():
        if name not in SCHEMA and not isinstance(value, dict):
            home = next((t for t, keys in SCHEMA.items() if name in keys), None)
            raise UsageError(f"{_at(source, text, _key(name))}: key {name!r} is outside any "
                             "section" + (f" (it belongs under [{home}])" if home else ""))
        if name not in SCHEMA:
            near = difflib.get_close_matches(name, SCHEMA, 1)
            header = rf"\[\s*{re.escape(name)}\s*\]"
            raise UsageError(f"{_at(source, text, header, _key(name))}: unknown section "
                             f"[{name}]" + (f" (did you mean [{near[0]}]?)" if near else
                                            f" (sections: {', '.join(SCHEMA)})"))
        if not isinstance(value, dict):
            continue
        for key in value:
            if key not in SCHEMA[name]:
                near = difflib.get_close_matches(key, SCHEMA[name], 1)
                raise UsageError(f"{_at(source, text, _key(key))}: unknown key {key!r} in "
                                 f"[{name}]" + (f" (did you mean {near[0]!r}?)" if near else
                                                f" (keys: {', '.join(SCHEMA[name])})"))


def _line_of(text: str, section: str, key: str) -> int | None:
    """The line that sets ``key`` in ``[section]`` (also as ``section.key = ...`` at the top,
    or a quoted key), or None."""
    import re
    current: str | None = None
    name = rf"[\"']?{re.escape(key)}[\"']?\s*="
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        header = re.match(r"\[\s*([^\[\]]+?)\s*\](\s*#.*)?$", s)
        if header:
            current = header.group(1).strip("\"'")
            continue
        if current == section and re.match(name, s):
            return n
        if current is None and re.match(rf"{re.escape(section)}\s*\.\s*{name}", s):
            return n
    return None


def absolute(path: str | Path) -> Path:
    """:func:`pbx_bridge.defaults.absolute`, as a Path."""
    return Path(defaults.absolute(str(path)))


def _url(value: str, where: str) -> str:
    u = urlparse(value)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise UsageError(f"{where} = {value!r}: not an http(s) URL")
    return value.rstrip("/")


def load(config: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings. ``config`` is ``--config``; else ``PBX_BRIDGE_CONFIG``; else the
    default path, which may be absent (environment variables alone then)."""
    env = os.environ if env is None else env
    explicit = config or env.get("PBX_BRIDGE_CONFIG")
    path = absolute(explicit) if explicit else DEFAULT_CONFIG
    doc: dict[str, Any] = {}
    source = f"a settings file ({DEFAULT_CONFIG} does not exist; --config)"
    text = ""
    if path.exists() or explicit:
        if not path.exists():
            raise InputError(str(path), "settings file does not exist "
                             "(pbx-bridge config init --config FILE writes one)")
        if path.is_dir():
            raise InputError(str(path), "is a directory, not a settings file")
        _check_private(path, "the settings file")
        try:
            text = path.read_bytes().decode("utf-8")
            doc = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(str(path), f"not valid TOML: {exc}") from None
        except OSError as exc:
            raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
        source = str(path)
        _unknown_keys(doc, text, source)  # the lines they are on, from the text just read
    amazon = doc.get("amazon", {})
    paths = doc.get("paths", {})
    pbx = doc.get("pbx", {})
    ami_t = doc.get("ami", {})
    agi_t = doc.get("agi", {})
    for name, table in (("amazon", amazon), ("paths", paths), ("pbx", pbx), ("ami", ami_t),
                        ("agi", agi_t)):
        if not isinstance(table, dict):
            raise UsageError(f"{_at(source, text, _key(name))}: {name} must be a table "
                             f"([{name}] and its keys under it)")
    tables = {"amazon": amazon, "paths": paths, "pbx": pbx, "ami": ami_t, "agi": agi_t}

    def where(section: str, key: str) -> str:
        """``FILE, line N: [section] key``: every value error names file, line and key."""
        line = _line_of(text, section, key)
        at = f"{source}, line {line}" if line else source
        return f"{at}: [{section}] {key}"

    def bad(section: str, key: str, why: str) -> UsageError:
        shown = "" if key in ("client_secret", "refresh_token", "secret") else \
            f" = {tables[section].get(key)!r}"  # a secret's value is never shown
        return UsageError(f"{where(section, key)}{shown}: {why}")

    def get(key: str, table: dict[str, Any]) -> str | None:
        v = env.get(ENV[key]) if key in ENV else None
        if v:
            return v
        raw = table.get(key)
        if raw is None:
            return None
        if not isinstance(raw, str):
            section = next(n for n, t in tables.items() if t is table)
            raise bad(section, key, "must be a string")
        return raw or None

    def text_value(section: str, key: str, why: str) -> str | None:
        raw = tables[section].get(key)
        if raw is not None and (not isinstance(raw, str) or not raw.strip()):
            raise bad(section, key, why)
        return raw

    def url(key: str) -> str:
        if env.get(ENV[key]):
            return _url(env[ENV[key]], ENV[key])
        return _url(get(key, amazon) or (DEFAULT_API_URL if key == "api_url" else
                                         DEFAULT_TOKEN_URL), where("amazon", key))

    secret = get("client_secret", amazon)
    secret_file = text_value("amazon", "client_secret_file", "must be the path of a file")
    if not secret and secret_file:
        sf = Path(str(secret_file))
        _check_private(sf, "the client secret file")
        try:
            secret = sf.read_text().strip()
        except OSError as exc:
            raise InputError(str(sf), f"cannot read: {exc.strerror or exc}") from None
    refresh = get("refresh_token", amazon)
    timeout = amazon.get("timeout", 15.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or \
            not 0 < timeout < float("inf"):
        raise bad("amazon", "timeout", "must be a positive number of seconds, e.g. 15")
    scope = text_value("amazon", "scope", "must be an OAuth scope, e.g. "
                       f"\"{DEFAULT_SCOPE}\"")
    ami = None
    for key in ("host", "username"):
        text_value("ami", key, "must be a string")
    if ami_t.get("secret") is not None and not isinstance(ami_t["secret"], str):
        raise bad("ami", "secret", "must be a string")
    ami_secret = env.get("PBX_BRIDGE_AMI_SECRET") or ami_t.get("secret")
    port = ami_t.get("port", 5038)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise bad("ami", "port", "must be a port number, 1..65535")
    if ami_t.get("username") and ami_secret:
        ami = (str(ami_t.get("host", "127.0.0.1")), port, str(ami_t["username"]),
               Secret(str(ami_secret)))
    agi_user = text_value("agi", "user", "must be a user name") or "asterisk"
    agi_group = text_value("agi", "group", "must be a group name")
    fastagi = None
    if agi_t.get("fastagi") is not None:
        from .address import parse_listen
        raw = text_value("agi", "fastagi", "must be \"HOST:PORT\", e.g. \"127.0.0.1:4573\"")
        try:
            fastagi = parse_listen(str(raw), "")
        except UsageError as exc:  # "value: why": the value and key are said once
            raise bad("agi", "fastagi", str(exc).split(": ", 1)[-1]) from None
    prop = text_value("pbx", "property", "must be the property's unit id, e.g. "
                      "\"amzn1.ask.unit.A1B2C3\"")
    key_group = text_value("pbx", "key_group", "must be a group name, e.g. \"asterisk\"") \
        or "asterisk"
    cli = pbx.get("asterisk_cli", "asterisk")
    try:
        words = shlex.split(cli) if isinstance(cli, str) else []
    except ValueError as exc:  # an unclosed quote
        raise bad("pbx", "asterisk_cli", f"{exc}") from None
    if not words:
        raise bad("pbx", "asterisk_cli", "must be a command, e.g. "
                  "\"asterisk -C /etc/asterisk/asterisk.conf\"")
    asterisk_dir = text_value("pbx", "asterisk_dir", "must be a folder, e.g. "
                              "\"/etc/asterisk\"") or "/etc/asterisk"
    return Settings(
        ami=ami, agi_user=agi_user, agi_group=agi_group, fastagi=fastagi, property=prop,
        asterisk_cli=tuple(words), key_group=key_group.strip(),
        client_id=get("client_id", amazon),
        client_secret=Secret(secret) if secret else None,
        refresh_token=Secret(refresh) if refresh else None,
        api_url=url("api_url"), token_url=url("token_url"),
        scope=scope or DEFAULT_SCOPE,
        state_dir=absolute(get("state_dir", paths) or DEFAULT_STATE_DIR),
        asterisk_dir=absolute(asterisk_dir),
        source=source,
        timeout=float(timeout),
    )


TEMPLATE = """\
# pbx-bridge settings. Keep this file private (mode 0600): it holds credentials.
# Environment variables override it: PBX_BRIDGE_CLIENT_ID, PBX_BRIDGE_CLIENT_SECRET,
# PBX_BRIDGE_REFRESH_TOKEN, PBX_BRIDGE_API_URL, PBX_BRIDGE_TOKEN_URL, PBX_BRIDGE_STATE_DIR.

[amazon]
# The Login with Amazon security profile that has the SIP trunk scope.
client_id = ""
# The client secret, here or in a file of its own (also mode 0600):
client_secret = ""
# client_secret_file = "/etc/pbx-bridge/client_secret"
# Set this to use the refresh-token grant (an administrator's login) instead of
# client credentials:
# refresh_token = ""
# Amazon's hosts; point both at `pbx-bridge emulator` to rehearse offline.
api_url = "https://api.amazonalexa.com"
token_url = "https://api.amazon.com/auth/o2/token"
scope = "amazon_communication::network:siptrunk"
# Seconds to wait for one HTTP request.
timeout = 15

[pbx]
asterisk_dir = "/etc/asterisk"
# The property's unit id, so the rooms commands need no --property:
# property = "amzn1.ask.unit.A1B2C3"
# How pbx-bridge runs the Asterisk CLI (asterisk -rx ...); add -C for a non-default
# asterisk.conf:
# asterisk_cli = "asterisk -C /etc/asterisk/asterisk.conf"
# The group Asterisk runs as: the private keys pbx-bridge writes (renew-hook) or tightens
# (generate) are 0640 to it, never readable by others; 0600 when the host has no such group.
# key_group = "asterisk"

[agi]
# The user the dialplan's AGI runs as: `rooms apply` checks that it can read the routes
# it publishes (routes.json in the state dir, no secrets in it).
user = "asterisk"
# Publish the routes 0640 to this group instead of 0644:
# group = "asterisk"
# Where `pbx-bridge fastagi` listens, so that `pbx-bridge status` checks it answers:
# fastagi = "127.0.0.1:4573"

[paths]
# The trunk id and the cached access token (mode 0600) are kept here.
state_dir = "/var/lib/pbx-bridge"

# Asterisk Manager Interface, for `rooms import --from-asterisk --ami` (optional; the
# secret may also come from PBX_BRIDGE_AMI_SECRET):
# [ami]
# host = "127.0.0.1"
# port = 5038
# username = "pbxbridge"
# secret = ""
"""


def write_template(path: Path, force: bool = False) -> None:
    if path.exists() and not force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    try:
        atomic_write(path, TEMPLATE.encode(), mode=0o600)
    except OSError as exc:
        raise InputError(str(path), f"cannot write: {exc.strerror or exc}") from None
