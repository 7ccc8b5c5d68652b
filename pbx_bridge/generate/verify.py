"""What a real Asterisk 22 does with the trunk config, checked rather than assumed.

Learned on Asterisk 22.10.1 (tests/test_real_asterisk.py shows each):

- A transport whose ``cert_file``, ``priv_key_file`` or ``ca_list_file`` is missing or
  unreadable is dropped whole ("ca_list_file ... is either missing or not readable", "Could not
  create an object of type 'transport'"), and the reload still answers "reloaded
  successfully". So the files are checked before writing, and the result after.
- ``module reload res_pjsip.so`` creates a *new* transport and its listener, but keeps a changed
  one as it was ("Transport '...' is not fully reloadable, not reloading: protocol, bind, TLS
  (everything but certificate and private key if filename is unchanged) ..."; logged on every
  reload of a TLS transport, changed or not), and keeps the old object when the new one fails
  to load ("Retaining existing configuration"). A changed bind shows on the object; a changed
  certificate path does not (the object shows the new path, the listener serves the old
  certificate). So the object and the served certificate are compared with the config: a
  difference means a restart is needed.
- Errors go to Asterisk's log, not to the CLI's answer; a log channel added for the reload
  (``logger add channel``) catches them in Asterisk's own words.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..asterisk.cli import Asterisk, parse_show_endpoint, show_fields
from ..certs import CertError, key_matches, load_chain, load_key
from ..host import FileSystem
from .render import TrunkConfig


def tls_file_problems(c: TrunkConfig, fs: FileSystem) -> list[str]:
    """Why Asterisk would drop the transport for its files: each names the file."""
    problems: list[str] = []
    data: dict[str, bytes] = {}
    for label, named in (("certificate", c.cert_file), ("private key", c.priv_key_file),
                         ("CA list", c.ca_list_file)):
        path = fs.host_path(named)
        seen = f" (looked for at {path})" if str(path) != named else ""
        try:
            data[label] = path.read_bytes()
        except FileNotFoundError:
            problems.append(f"the {label} {named} does not exist{seen}")
        except IsADirectoryError:
            problems.append(f"the {label} {named} is a directory")
        except OSError as exc:
            problems.append(f"the {label} {named} cannot be read: {exc.strerror or exc}")
    chain = None
    if "certificate" in data:
        try:
            chain = load_chain(data["certificate"])
        except CertError as exc:
            problems.append(f"the certificate {c.cert_file} is not a PEM certificate ({exc})")
    if "private key" in data:
        try:
            key = load_key(data["private key"])
        except CertError as exc:
            problems.append(f"the private key {c.priv_key_file} is not a usable PEM key ({exc})")
        else:
            if chain and not key_matches(chain[0], key):
                problems.append(f"the private key {c.priv_key_file} does not match the "
                                f"certificate {c.cert_file}")
    if "CA list" in data:
        try:
            load_chain(data["CA list"])
        except CertError as exc:
            problems.append(f"the CA list {c.ca_list_file} holds no PEM certificate ({exc})")
    return problems


@dataclass(frozen=True)
class Verdict:
    ok: bool
    restart_needed: bool
    problems: tuple[str, ...]  # what is wrong, in Asterisk's words where it said any
    summary: str


def _tls_target(c: TrunkConfig) -> str:
    host = c.bind
    if ipaddress.ip_address(host).is_unspecified:
        host = "127.0.0.1" if ipaddress.ip_address(host).version == 4 else "::1"
    return host


class LogCapture:
    """A log channel added to the running Asterisk while we reload, so its errors can be
    quoted. Only when Asterisk runs on this host; the file is removed afterwards. Its name is
    recorded in ``record`` (in the state dir) while it exists: a killed run's channel is
    removed by the next (``logger show channels`` cuts names, so it cannot tell them)."""

    def __init__(self, asterisk: Asterisk, record: Path | None = None) -> None:
        self.asterisk = asterisk
        self.record = record
        self.path = Path(tempfile.gettempdir()) / f"pbx-bridge-reload-{secrets.token_hex(8)}.log"
        self.active = False

    def __enter__(self) -> "LogCapture":
        if self.asterisk.local:
            self.remove_leftovers()
            if self.record is not None:
                from ..fileio import atomic_write
                atomic_write(self.record, str(self.path).encode(), mode=0o600)
            ok, _ = self.asterisk.rx(f"logger add channel {self.path} notice,warning,error")
            self.active = ok
        return self

    def remove_leftovers(self) -> None:
        """The channel a killed run left in Asterisk, and its file."""
        if self.record is None:
            return
        try:
            name = self.record.read_text().strip()
        except OSError:
            return
        if re.fullmatch(r"/\S*/pbx-bridge-reload-[0-9a-f]{16}\.log", name):
            self.asterisk.rx(f"logger remove channel {name}")
            try:
                os.unlink(name)
            except OSError:
                pass
        try:
            self.record.unlink()
        except OSError:
            pass

    def lines(self) -> list[str]:
        if not self.active:
            return []
        try:
            text = self.path.read_text(errors="replace")
        except OSError:
            return []
        return [ln for ln in text.splitlines() if re.search(r"\] (ERROR|WARNING|NOTICE)\[", ln)]

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self.asterisk.rx(f"logger remove channel {self.path}")
            try:
                os.unlink(self.path)
            except OSError:
                pass
        if self.record is not None:
            try:
                self.record.unlink()
            except OSError:
                pass


RELEVANT = re.compile(r"(?i)transport|ca_list_file|cert_file|priv_key_file|pjsip_pbx-bridge|"
                      r"_custom\.conf|endpoint|identify|srtp|Retaining existing|"
                      r"not fully reloadable")


def relevant(lines: list[str], c: TrunkConfig) -> list[str]:
    """Asterisk's log lines about our objects and files, without the date and thread."""
    out = []
    for ln in lines:
        if not (RELEVANT.search(ln) and (c.transport in ln or c.endpoint in ln or
                                         "pbx-bridge" in ln or "_custom" in ln or
                                         "transport" in ln.lower())):
            continue
        out.append(re.sub(r"^\[[^\]]*\]\s*", "", ln))
    return out


def dialplan_problems(asterisk: Asterisk, c: TrunkConfig) -> list[str]:
    """The generated contexts as the running dialplan has them (``dialplan show``)."""
    from .render import reach_context
    out = []
    _, text = asterisk.rx("dialplan show pbx-bridge-to-alexa")
    if f"'{c.room_pattern}' =>" not in text:
        out.append(f"the running dialplan's [pbx-bridge-to-alexa] has no {c.room_pattern}")
    if c.freepbx or c.phones_context is not None:  # [context] is ours: it checks for TLS
        _, text = asterisk.rx(f"dialplan show {c.context}")
        if "CHANNEL(pjsip,secure)" not in text:
            out.append(f"the running dialplan's [{c.context}] does not check that calls came "
                       "over TLS")
        if c.freepbx:
            _, text = asterisk.rx(f"dialplan show {reach_context(c)}")
            if "Include =>" not in text:
                out.append(f"the running dialplan has no [{reach_context(c)}]")
            _, text = asterisk.rx("dialplan show from-internal-custom")
            if f"'{c.room_pattern}' =>" not in text or "Goto(pbx-bridge-to-alexa" not in text:
                out.append(f"the running dialplan's [from-internal-custom] does not send "
                           f"{c.room_pattern} on to the rooms (another line took it?)")
    return out


def loaded(asterisk: Asterisk, c: TrunkConfig,
           handshake: Callable[[str, int], tuple[str | None, str | None]] | None,
           log: Callable[[], list[str]] = list) -> Verdict:
    """Compare what the running Asterisk loaded with ``c``. ``handshake(host, port)`` tries a
    TLS 1.2 handshake and returns (why it failed, why a restart is needed: e.g. it serves
    another certificate), both None when all is well; ``handshake`` is None when Asterisk is
    not on this host. ``log()`` gives Asterisk's log lines of the reload, read last (its
    logger writes asynchronously).

    ``pjsip show transport`` alone cannot tell that a changed certificate path was not
    applied: Asterisk 22 shows the new path on the object while the listener keeps the old
    certificate. The certificate it serves tells."""
    problems: list[str] = []
    restart: list[str] = []
    _, text = asterisk.rx(f"pjsip show transport {c.transport}")
    if "Unable to find object" in text or "ParameterName" not in text:
        problems.append(f"Asterisk did not load the transport {c.transport}")
    else:
        f = show_fields(text)
        want = {"bind": f"{c.bind}:{c.port}", "cert_file": c.cert_file,
                "priv_key_file": c.priv_key_file, "ca_list_file": c.ca_list_file,
                "method": "tlsv1_2", "protocol": "tls"}
        for key, value in want.items():
            if f.get(key, "") != value:
                restart.append(f"{key} is {f.get(key) or '(none)'}, the config says {value}")
        if not restart and handshake is not None:
            why, stale = handshake(_tls_target(c), c.port)
            if why:
                problems.append(f"the transport is loaded but {why}")
            if stale:
                restart.append(stale)
    _, text = asterisk.rx(f"pjsip show endpoint {c.endpoint}")
    shown = parse_show_endpoint(text)
    if shown is None:
        problems.append(f"Asterisk did not load the endpoint {c.endpoint}")
    else:
        f = show_fields(text)
        if f.get("media_encryption") != "sdes":
            problems.append(f"the endpoint {c.endpoint} has media_encryption: "
                            f"{f.get('media_encryption') or '(none)'}, not sdes")
        if shown.transport != c.transport:
            problems.append(f"the endpoint {c.endpoint} uses transport "
                            f"{shown.transport or '(none)'}, not {c.transport}")
        if (f.get("identify_by") or "").replace(" ", "") != "ip":
            problems.append(f"the endpoint {c.endpoint} is identified by "
                            f"{f.get('identify_by') or '(none)'}, not ip")
        matches = set(shown.matches)
        for cidr in c.amazon_cidrs:
            net = str(ipaddress.ip_network(cidr, strict=False))
            if net not in matches and cidr not in matches:
                problems.append(f"the identify of {c.endpoint} does not match {cidr} "
                                f"(Asterisk shows: {', '.join(sorted(matches)) or 'none'})")
    problems += dialplan_problems(asterisk, c)
    _, text = asterisk.rx("rtp show settings")
    got = {k.lower(): int(v) for k, v in re.findall(r"Port (start|end):\s+(\d+)", text)}
    if got and (got.get("start"), got.get("end")) != (c.rtp_start, c.rtp_end):
        problems.append(f"Asterisk uses RTP ports {got.get('start')}-{got.get('end')}, the "
                        f"config says {c.rtp_start}-{c.rtp_end} (another rtp.conf [general] "
                        "wins?)")
    ok_srtp, text = asterisk.rx("module show like res_srtp.so")
    if not re.search(r"res_srtp\.so\s.*Running", text):
        asterisk.rx("module load res_srtp.so")  # autoload=no: a reload does not load modules
        _, text = asterisk.rx("module show like res_srtp.so")
        if not re.search(r"res_srtp\.so\s.*Running", text):
            problems.append("res_srtp.so is not running, so SDES-SRTP cannot work")
    # Asterisk 22 logs "not fully reloadable" for a TLS transport on every reload, changed or
    # not: it is quoted below when a restart is needed, never taken as the sign of one
    words = relevant(log(), c) if problems or restart else []
    note = next((w for w in words if f"'{c.transport}' is not fully reloadable" in w), None)
    if problems:
        return Verdict(False, False, tuple(problems + words), "; ".join(problems))
    if restart:
        return Verdict(False, True, tuple(restart + ([note] if note else [])),
                       f"Asterisk still runs the old transport {c.transport} (" +
                       "; ".join(restart) + "): a reload cannot change it" +
                       (f" (Asterisk: {note})" if note else "") + ", so restart Asterisk")
    return Verdict(True, False, (), f"Asterisk loaded transport {c.transport} "
                   f"({c.bind}:{c.port}, TLS 1.2" + (", handshake checked" if handshake else "")
                   + f"), endpoint {c.endpoint} (sdes, identified by ip, "
                   f"{len(c.amazon_cidrs)} Amazon network(s) matched), the dialplan "
                   f"({c.room_pattern}), RTP {c.rtp_start}-{c.rtp_end}, res_srtp running")


def checker(config: TrunkConfig, asterisk_dir: Path) -> "Callable[[Asterisk, Callable[[], list[str]]], Verdict]":
    """How a written config is verified on the running Asterisk: what it loaded, and on this
    host a TLS 1.2 handshake that serves the certificate in ``cert_file``."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from ..certs import CertError, load_chain
    from ..host import FileSystem
    from ..net import Network

    def handshake(host: str, port: int) -> tuple[str | None, str | None]:
        probe = Network().tls_sip_probe(host, port)
        if not probe.connected:
            return probe.error or "no TLS 1.2 handshake", None
        if probe.version != "TLSv1.2":
            return f"it speaks {probe.version}, not TLS 1.2", None
        try:
            leaf = load_chain(FileSystem(asterisk_dir).host_path(config.cert_file)
                              .read_bytes())[0].public_bytes(Encoding.DER)
        except (OSError, CertError, IndexError):
            return None, None
        if probe.peer_cert_der is not None and probe.peer_cert_der != leaf:
            return None, f"it serves another certificate than {config.cert_file}"
        return None, None

    def check(a: Asterisk, log: Callable[[], list[str]]) -> Verdict:
        return loaded(a, config, handshake if a.local else None, log)
    return check
